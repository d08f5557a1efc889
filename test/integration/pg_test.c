/* SPDX-License-Identifier: MIT */
/* Integration tests for lib/pg.c and lib/migrate.c against a throwaway PostgreSQL. */
#include "fsr/pg.h"
#include "fsr/migrate.h"
#include "fsr/log.h"
#include "fsr/loop.h"
#include "fsr/mem.h"
#include "fsr/status.h"

#include <check.h>
#include <event2/event.h>
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static fsr_loop *loop;
static struct event_base *base;
static const char *conninfo;

/* Set around every API call: a callback that sees it set ran synchronously (STYLE §4). */
static bool in_call;

static void setup(void)
{
    conninfo = getenv("TEST_PG_CONNINFO");
    ck_assert_msg(conninfo != NULL, "TEST_PG_CONNINFO not set: run through with_deps.sh");
    ck_assert_int_eq(fsr_loop_new(&loop), 0);
    base = fsr_loop_base(loop);
}

static void teardown(void)
{
    fsr_loop_free(loop);
    loop = NULL;
}

static int64_t now_ms(void)
{
    return fsr_now_us() / 1000;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

/* Runs the loop until *|counter| >= |target| or |ms| pass; returns whether it got there. */
static bool run_until(const int *counter, int target, int ms)
{
    bool expired = false;
    struct event *t = evtimer_new(base, on_deadline, &expired);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(t, &tv);
    while (*counter < target && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    return *counter >= target;
}

static void run_for(int ms)
{
    int never = 0;
    run_until(&never, 1, ms);
}

/* What a statement callback saw. */
typedef struct box {
    int calls;
    int status;
    char sqlstate[6];
    char message[256];
    char value[256]; /* row 0, col 0 */
    bool isnull;
    int rows, cols;
    int64_t affected;
    int seq; /* completion order, from |order| */
    int64_t at_ms;
} box;

static int order;

static void on_res(const fsr_pg_result *r, void *arg)
{
    box *b = arg;
    ck_assert_msg(!in_call, "callback ran inside the call that started it");
    b->calls++;
    b->status = fsr_pg_result_status(r);
    snprintf(b->sqlstate, sizeof b->sqlstate, "%s", fsr_pg_result_sqlstate(r));
    snprintf(b->message, sizeof b->message, "%s", fsr_pg_result_message(r));
    const char *v = fsr_pg_result_getvalue(r, 0, 0);
    snprintf(b->value, sizeof b->value, "%s", v ? v : "<none>");
    b->isnull = fsr_pg_result_isnull(r, 0, 0);
    b->rows = fsr_pg_result_rows(r);
    b->cols = fsr_pg_result_cols(r);
    b->affected = fsr_pg_result_affected(r);
    b->seq = ++order;
    b->at_ms = now_ms();
}

static int q(fsr_pg_pool *p, const fsr_pg_stmt *s, int n, const char *const *v, box *b)
{
    in_call = true;
    int rv = fsr_pg_query(p, s, n, v, on_res, b);
    in_call = false;
    return rv;
}

static int x(fsr_pg_pool *p, const char *sql, int n, const char *const *v, box *b)
{
    in_call = true;
    int rv = fsr_pg_exec(p, sql, n, v, on_res, b);
    in_call = false;
    return rv;
}

/* Runs |sql| through the pool and returns row 0 col 0 (asserting success). */
static const char *scalar(fsr_pg_pool *p, const char *sql, int n, const char *const *v)
{
    static box b;
    memset(&b, 0, sizeof b);
    ck_assert_int_eq(x(p, sql, n, v, &b), 0);
    ck_assert(run_until(&b.calls, 1, 5000));
    ck_assert_msg(b.status == 0, "%s: %s", sql, b.message);
    return b.value;
}

static fsr_pg_pool *make_pool(int size, int queue_max, int query_timeout_ms, const char *app)
{
    fsr_pg_config cfg = { .conninfo = conninfo,
                          .application_name = app,
                          .size = size,
                          .queue_max = queue_max,
                          .connect_timeout_ms = 3000,
                          .query_timeout_ms = query_timeout_ms };
    fsr_pg_pool *p = NULL;
    ck_assert_int_eq(fsr_pg_pool_new(loop, &cfg, &p), 0);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void wait_connected(fsr_pg_pool *p, int n)
{
    int64_t deadline = now_ms() + 10000;
    fsr_pg_stats st;
    for (;;) {
        fsr_pg_pool_stats(p, &st);
        if (st.connected >= n)
            return;
        ck_assert_msg(now_ms() < deadline, "pool did not connect (%d/%d)", st.connected, n);
        run_for(20);
    }
}

/* Blocking admin statement on its own connection; returns row 0 col 0 or "". */
static const char *admin(const char *sql)
{
    static char out[256];
    char err[256];
    PGconn *c;
    ck_assert_msg(fsr_pg_sync_connect(conninfo, &c, err, sizeof err) == 0, "%s", err);
    PGresult *res = NULL;
    int rv = fsr_pg_sync_exec(c, sql, 0, NULL, &res, err, sizeof err);
    ck_assert_msg(rv == 0, "%s: %s", sql, err);
    out[0] = '\0';
    if (PQntuples(res) > 0 && PQnfields(res) > 0)
        snprintf(out, sizeof out, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    fsr_pg_sync_close(c);
    return out;
}

/* A name unique to this test process (tests share one database). */
static const char *uniq(const char *prefix)
{
    static char buf[4][64];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s_%ld", prefix, (long)getpid());
    return buf[i];
}

static const fsr_pg_stmt st_add = { "it_add", "SELECT $1::int + 1 AS n, NULL::text AS z" };
static const fsr_pg_stmt st_echo = { "it_echo", "SELECT $1::text" };
static const fsr_pg_stmt st_bad = { "it_bad", "SELEC 1" };

/* --- pool basics -------------------------------------------------------------------------- */

START_TEST(test_pg_query_basic)
{
    fsr_pg_pool *p = make_pool(2, 0, 5000, NULL);
    box b = { 0 };
    const char *v[] = { "41" };
    ck_assert_int_eq(q(p, &st_add, 1, v, &b), 0);
    ck_assert_int_eq(b.calls, 0);
    ck_assert(run_until(&b.calls, 1, 5000));
    ck_assert_int_eq(b.status, 0);
    ck_assert_str_eq(b.value, "42");
    ck_assert_int_eq(b.rows, 1);
    ck_assert_int_eq(b.cols, 2);
    ck_assert_str_eq(b.sqlstate, "");

    // Accessors on a live result.
    box e = { 0 };
    const char *v2[] = { "a" };
    ck_assert_int_eq(
        x(p, "SELECT $1::text || 'b' AS s, NULL::int AS z, g FROM generate_series(1, 5) g", 1, v2,
          &e),
        0);
    ck_assert(run_until(&e.calls, 1, 5000));
    ck_assert_int_eq(e.status, 0);
    ck_assert_str_eq(e.value, "ab");
    ck_assert_int_eq(e.rows, 5);
    ck_assert_int_eq(e.affected, 5);

    // Ping.
    box pb = { 0 };
    in_call = true;
    ck_assert_int_eq(fsr_pg_ping(p, on_res, &pb), 0);
    in_call = false;
    ck_assert(run_until(&pb.calls, 1, 5000));
    ck_assert_int_eq(pb.status, 0);
    ck_assert_str_eq(pb.value, "1");

    // A syntax error is FSR_E_DB with its SQLSTATE and a message for logs.
    box se = { 0 };
    ck_assert_int_eq(x(p, "SELEC 1", 0, NULL, &se), 0);
    ck_assert(run_until(&se.calls, 1, 5000));
    ck_assert_int_eq(se.status, FSR_E_DB);
    ck_assert_str_eq(se.sqlstate, "42601");
    ck_assert(strstr(se.message, "syntax error") != NULL);
    ck_assert_int_eq(se.rows, 0);
    ck_assert_str_eq(se.value, "<none>");

    // Argument checks fail synchronously and never call back.
    box no = { 0 };
    ck_assert_int_eq(fsr_pg_query(p, NULL, 0, NULL, on_res, &no), -EINVAL);
    ck_assert_int_eq(fsr_pg_query(p, &st_add, -1, NULL, on_res, &no), -EINVAL);
    ck_assert_int_eq(fsr_pg_query(p, &st_add, 1, NULL, on_res, &no), -EINVAL);
    ck_assert_int_eq(fsr_pg_exec(p, NULL, 0, NULL, on_res, &no), -EINVAL);
    run_for(50);
    ck_assert_int_eq(no.calls, 0);

    fsr_pg_stats st;
    fsr_pg_pool_stats(p, &st);
    ck_assert_int_eq(st.size, 2);
    ck_assert_int_ge(st.connected, 1);
    ck_assert_int_eq(st.busy, 0);
    ck_assert_int_eq(st.waiting, 0);
    ck_assert_uint_eq(st.queries, 4);
    ck_assert_uint_eq(st.errors, 1);
    ck_assert_int_eq(b.calls + e.calls + pb.calls + se.calls, 4);
    fsr_pg_pool_free(p);
}
END_TEST

START_TEST(test_pg_null_params_and_result_access)
{
    fsr_pg_pool *p = make_pool(1, 0, 5000, NULL);
    box b = { 0 };
    const char *v[] = { NULL };
    ck_assert_int_eq(q(p, &st_echo, 1, v, &b), 0);
    ck_assert(run_until(&b.calls, 1, 5000));
    ck_assert_int_eq(b.status, 0);
    ck_assert(b.isnull);
    ck_assert_str_eq(b.value, "");
    fsr_pg_pool_free(p);
}
END_TEST

START_TEST(test_pg_config_conninfo)
{
    char buf[256];
    fsr_pg_config c = { .host = "/tmp/x y",
                        .port = 5433,
                        .dbname = "equity",
                        .user = "fsr",
                        .password = "p'w\\d",
                        .connect_timeout_ms = 1500 };
    ck_assert_int_eq(fsr_pg_config_conninfo(&c, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "host='/tmp/x y' port='5433' dbname='equity' user='fsr' "
                          "password='p\\'w\\\\d' connect_timeout='2'");
    char *perr = NULL;
    PQconninfoOption *o = PQconninfoParse(buf, &perr);
    ck_assert_ptr_nonnull(o);
    for (PQconninfoOption *i = o; i->keyword; i++)
        if (strcmp(i->keyword, "password") == 0)
            ck_assert_str_eq(i->val, "p'w\\d");
    PQconninfoFree(o);
    ck_assert_int_eq(fsr_pg_config_conninfo(&c, buf, 20), FSR_E_TOO_LARGE);
    fsr_pg_config c2 = { .conninfo = "host=/tmp dbname=x", .application_name = "svc" };
    ck_assert_int_eq(fsr_pg_config_conninfo(&c2, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "host=/tmp dbname=x application_name='svc'");

    // Bad configurations are refused up front.
    fsr_pg_pool *p = NULL;
    fsr_pg_config bad = { .conninfo = "host=/tmp nonsense", .size = 1 };
    ck_assert_int_eq(fsr_pg_pool_new(loop, &bad, &p), FSR_E_CONFIG);
    fsr_pg_config big = { .conninfo = conninfo, .size = FSR_PG_MAX_SIZE + 1 };
    ck_assert_int_eq(fsr_pg_pool_new(loop, &big, &p), FSR_E_CONFIG);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(fsr_pg_pool_new(NULL, &big, &p), -EINVAL);
}
END_TEST

START_TEST(test_pg_sqlstate_mapping)
{
    ck_assert_int_eq(fsr_pg_err_from_sqlstate("00000"), 0);
    ck_assert_int_eq(fsr_pg_err_from_sqlstate("23505"), FSR_E_UNIQUE);
    ck_assert_int_eq(fsr_pg_err_from_sqlstate("23503"), FSR_E_CHECK);
    ck_assert_int_eq(fsr_pg_err_from_sqlstate("23514"), FSR_E_CHECK);
    ck_assert_int_eq(fsr_pg_err_from_sqlstate("57014"), FSR_E_TIMEOUT);
    ck_assert_int_eq(fsr_pg_err_from_sqlstate("08006"), FSR_E_CLOSED);
    ck_assert_int_eq(fsr_pg_err_from_sqlstate("57P01"), FSR_E_CLOSED);
    ck_assert_int_eq(fsr_pg_err_from_sqlstate("42P01"), FSR_E_DB);
    ck_assert_int_eq(fsr_pg_err_from_sqlstate("235"), FSR_E_DB);
    ck_assert_int_eq(fsr_pg_err_from_sqlstate(NULL), FSR_E_DB);
}
END_TEST

/* --- prepared statements ------------------------------------------------------------------ */

START_TEST(test_pg_prepared_reused)
{
    fsr_pg_pool *p = make_pool(1, 0, 5000, NULL);
    for (int i = 0; i < 3; i++) {
        box b = { 0 };
        char n[8];
        snprintf(n, sizeof n, "%d", i);
        const char *v[] = { n };
        ck_assert_int_eq(q(p, &st_add, 1, v, &b), 0);
        ck_assert(run_until(&b.calls, 1, 5000));
        ck_assert_int_eq(b.status, 0);
        ck_assert_int_eq(atoi(b.value), i + 1);
    }
    fsr_pg_stats st;
    fsr_pg_pool_stats(p, &st);
    ck_assert_uint_eq(st.prepares, 1);
    // The server agrees: one prepared statement of that name in the session.
    ck_assert_str_eq(
        scalar(p, "SELECT count(*) FROM pg_prepared_statements WHERE name = 'it_add'", 0, NULL),
        "1");

    // A statement that does not compile fails every time and is never recorded.
    for (int i = 0; i < 2; i++) {
        box bad = { 0 };
        ck_assert_int_eq(q(p, &st_bad, 0, NULL, &bad), 0);
        ck_assert(run_until(&bad.calls, 1, 5000));
        ck_assert_int_eq(bad.status, FSR_E_DB);
        ck_assert_str_eq(bad.sqlstate, "42601");
    }
    box e = { 0 };
    const char *v[] = { "hi" };
    ck_assert_int_eq(q(p, &st_echo, 1, v, &e), 0);
    ck_assert(run_until(&e.calls, 1, 5000));
    ck_assert_str_eq(e.value, "hi");
    fsr_pg_pool_stats(p, &st);
    ck_assert_uint_eq(st.prepares, 2);
    fsr_pg_pool_free(p);

    // Concurrent use on several connections prepares at most once per connection.
    p = make_pool(3, 0, 5000, NULL);
    box bs[12] = { 0 };
    char nums[12][8];
    for (int i = 0; i < 12; i++) {
        snprintf(nums[i], sizeof nums[i], "%d", 100 + i);
        const char *vi[] = { nums[i] };
        ck_assert_int_eq(q(p, &st_add, 1, vi, &bs[i]), 0);
    }
    for (int i = 0; i < 12; i++) {
        ck_assert_msg(run_until(&bs[i].calls, 1, 5000), "query %d never completed", i);
        ck_assert_int_eq(bs[i].calls, 1);
        ck_assert_int_eq(bs[i].status, 0);
        ck_assert_int_eq(atoi(bs[i].value), 101 + i);
    }
    fsr_pg_pool_stats(p, &st);
    ck_assert_uint_ge(st.prepares, 1);
    ck_assert_uint_le(st.prepares, 3);
    fsr_pg_pool_free(p);
}
END_TEST

/* --- queueing ----------------------------------------------------------------------------- */

START_TEST(test_pg_pool_exhaustion_queue_and_bound)
{
    fsr_pg_pool *p = make_pool(2, 3, 10000, NULL);
    wait_connected(p, 2);
    box bs[5] = { 0 };
    int64_t t0 = now_ms();
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(x(p, "SELECT pg_sleep(0.2)", 0, NULL, &bs[i]), 0);
    // 2 connections + 3 waiting: the next one is refused at once and never called back.
    box over = { 0 };
    ck_assert_int_eq(x(p, "SELECT 1", 0, NULL, &over), FSR_E_POOL);
    ck_assert_int_eq(q(p, &st_add, 1, (const char *const[]){ "1" }, &over), FSR_E_POOL);
    in_call = true;
    ck_assert_int_eq(fsr_pg_tx_begin(p, NULL, NULL), -EINVAL);
    in_call = false;

    run_for(60);
    fsr_pg_stats st;
    fsr_pg_pool_stats(p, &st);
    ck_assert_int_eq(st.busy, 2);
    ck_assert_int_eq(st.waiting, 3);
    ck_assert_int_eq(x(p, "SELECT 1", 0, NULL, &over), FSR_E_POOL);

    int total = 0;
    int64_t deadline = now_ms() + 5000;
    while (total < 5 && now_ms() < deadline) {
        run_for(20);
        total = 0;
        for (int i = 0; i < 5; i++)
            total += bs[i].calls;
    }
    ck_assert_int_eq(total, 5);
    int64_t elapsed = now_ms() - t0;
    for (int i = 0; i < 5; i++)
        ck_assert_msg(bs[i].status == 0, "%d: %s", i, bs[i].message);
    // Three rounds of 200 ms on two connections: the queue really waited.
    ck_assert_int_ge(elapsed, 580);
    // FIFO: the first two finish before the last.
    ck_assert_int_lt(bs[0].seq, bs[4].seq);
    ck_assert_int_lt(bs[1].seq, bs[4].seq);
    ck_assert_int_eq(over.calls, 0);

    fsr_pg_pool_stats(p, &st);
    ck_assert_int_eq(st.busy, 0);
    ck_assert_int_eq(st.waiting, 0);
    box after = { 0 };
    ck_assert_int_eq(x(p, "SELECT 1", 0, NULL, &after), 0);
    ck_assert(run_until(&after.calls, 1, 5000));
    ck_assert_int_eq(after.status, 0);
    fsr_pg_pool_free(p);
}
END_TEST

/* --- timeouts ----------------------------------------------------------------------------- */

START_TEST(test_pg_query_timeout_cancels)
{
    fsr_pg_pool *p = make_pool(1, 0, 300, uniq("it_to"));
    wait_connected(p, 1);
    box slow = { 0 };
    int64_t t0 = now_ms();
    ck_assert_int_eq(x(p, "SELECT pg_sleep(5)", 0, NULL, &slow), 0);
    ck_assert(run_until(&slow.calls, 1, 3000));
    ck_assert_int_eq(slow.status, FSR_E_TIMEOUT);
    int64_t waited = slow.at_ms - t0;
    ck_assert_int_ge(waited, 250);
    ck_assert_int_lt(waited, 1500);

    // The only connection is usable again at once: the statement was cancelled on the
    // server (otherwise this would wait for the 5 s sleep and time out itself).
    box next = { 0 };
    ck_assert_int_eq(x(p, "SELECT 7", 0, NULL, &next), 0);
    ck_assert(run_until(&next.calls, 1, 3000));
    ck_assert_msg(next.status == 0, "%s", next.message);
    ck_assert_str_eq(next.value, "7");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
             "AND query LIKE '%%pg_sleep(5)%%' AND state = 'active'",
             uniq("it_to"));
    ck_assert_str_eq(admin(sql), "0");

    // A request that waited in the queue past its deadline times out too, exactly once.
    box a = { 0 }, b = { 0 };
    ck_assert_int_eq(x(p, "SELECT pg_sleep(5)", 0, NULL, &a), 0);
    ck_assert_int_eq(x(p, "SELECT 1", 0, NULL, &b), 0);
    ck_assert(run_until(&b.calls, 1, 3000));
    ck_assert(run_until(&a.calls, 1, 3000));
    ck_assert_int_eq(a.status, FSR_E_TIMEOUT);
    ck_assert_int_eq(b.status, FSR_E_TIMEOUT);
    run_for(400);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(slow.calls, 1);

    fsr_pg_stats st;
    fsr_pg_pool_stats(p, &st);
    ck_assert_uint_eq(st.timeouts, 3);
    ck_assert_int_eq(st.connected, 1);
    ck_assert_uint_eq(st.reconnects, 0); // cancelled, not dropped
    fsr_pg_pool_free(p);
}
END_TEST

/* --- constraint errors -------------------------------------------------------------------- */

START_TEST(test_pg_unique_and_check_violations)
{
    const char *parent = uniq("it_parent");
    const char *child = uniq("it_child");
    char sql[512];
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s (id int PRIMARY KEY);"
             "CREATE TABLE %s (id int PRIMARY KEY, parent int REFERENCES %s (id),"
             " qty int CHECK (qty > 0))",
             parent, child, parent);
    admin(sql);
    fsr_pg_pool *p = make_pool(2, 0, 5000, NULL);

    char ins_parent[128], ins_child[160];
    snprintf(ins_parent, sizeof ins_parent, "INSERT INTO %s (id) VALUES ($1::int)", parent);
    snprintf(ins_child, sizeof ins_child,
             "INSERT INTO %s (id, parent, qty) VALUES ($1::int, $2::int, $3::int)", child);
    box b1 = { 0 }, b2 = { 0 }, b3 = { 0 }, b4 = { 0 }, b5 = { 0 };
    ck_assert_int_eq(x(p, ins_parent, 1, (const char *const[]){ "1" }, &b1), 0);
    ck_assert(run_until(&b1.calls, 1, 5000));
    ck_assert_int_eq(b1.status, 0);
    ck_assert_int_eq(b1.affected, 1);

    ck_assert_int_eq(x(p, ins_parent, 1, (const char *const[]){ "1" }, &b2), 0);
    ck_assert(run_until(&b2.calls, 1, 5000));
    ck_assert_int_eq(b2.status, FSR_E_UNIQUE);
    ck_assert_str_eq(b2.sqlstate, "23505");
    ck_assert_int_eq(fsr_code_from_err(b2.status), FSR_ALREADY_EXISTS);

    ck_assert_int_eq(x(p, ins_child, 3, (const char *const[]){ "1", "99", "5" }, &b3), 0);
    ck_assert(run_until(&b3.calls, 1, 5000));
    ck_assert_int_eq(b3.status, FSR_E_CHECK);
    ck_assert_str_eq(b3.sqlstate, "23503");

    ck_assert_int_eq(x(p, ins_child, 3, (const char *const[]){ "1", "1", "-5" }, &b4), 0);
    ck_assert(run_until(&b4.calls, 1, 5000));
    ck_assert_int_eq(b4.status, FSR_E_CHECK);
    ck_assert_str_eq(b4.sqlstate, "23514");
    ck_assert_int_eq(fsr_code_from_err(b4.status), FSR_FAILED_PRECONDITION);

    ck_assert_int_eq(x(p, ins_child, 3, (const char *const[]){ "1", "1", "5" }, &b5), 0);
    ck_assert(run_until(&b5.calls, 1, 5000));
    ck_assert_int_eq(b5.status, 0);
    fsr_pg_pool_free(p);
}
END_TEST

/* --- transactions ------------------------------------------------------------------------- */

typedef struct txbox {
    int calls;
    int status;
    fsr_pg_conn *conn;
    int seq;
} txbox;

static void on_tx(fsr_pg_conn *conn, int status, void *arg)
{
    txbox *t = arg;
    ck_assert_msg(!in_call, "callback ran inside the call that started it");
    t->calls++;
    t->status = status;
    t->conn = conn;
    t->seq = ++order;
}

static fsr_pg_conn *begin(fsr_pg_pool *p)
{
    txbox t = { 0 };
    in_call = true;
    ck_assert_int_eq(fsr_pg_tx_begin(p, on_tx, &t), 0);
    in_call = false;
    ck_assert(run_until(&t.calls, 1, 5000));
    ck_assert_int_eq(t.status, 0);
    ck_assert_ptr_nonnull(t.conn);
    return t.conn;
}

static int cx(fsr_pg_conn *c, const char *sql, int n, const char *const *v, box *b)
{
    in_call = true;
    int rv = fsr_pg_conn_exec(c, sql, n, v, on_res, b);
    in_call = false;
    return rv;
}

static int commit(fsr_pg_conn *c, box *b)
{
    in_call = true;
    int rv = fsr_pg_tx_commit(c, on_res, b);
    in_call = false;
    return rv;
}

static int rollback(fsr_pg_conn *c, box *b)
{
    in_call = true;
    int rv = fsr_pg_tx_rollback(c, on_res, b);
    in_call = false;
    return rv;
}

START_TEST(test_pg_tx_commit_and_rollback)
{
    const char *t = uniq("it_tx");
    char sql[256], ins[128], cnt[128];
    snprintf(sql, sizeof sql, "CREATE TABLE %s (k text PRIMARY KEY)", t);
    admin(sql);
    snprintf(ins, sizeof ins, "INSERT INTO %s (k) VALUES ($1)", t);
    snprintf(cnt, sizeof cnt, "SELECT count(*) FROM %s WHERE k = $1", t);
    fsr_pg_pool *p = make_pool(2, 0, 5000, NULL);

    // Commit: invisible to other connections until committed.
    fsr_pg_conn *c = begin(p);
    box i1 = { 0 };
    ck_assert_int_eq(cx(c, ins, 1, (const char *const[]){ "a" }, &i1), 0);
    ck_assert(run_until(&i1.calls, 1, 5000));
    ck_assert_int_eq(i1.status, 0);
    ck_assert_str_eq(scalar(p, cnt, 1, (const char *const[]){ "a" }), "0");
    fsr_pg_stats st;
    fsr_pg_pool_stats(p, &st);
    ck_assert_int_eq(st.busy, 1);
    box cm = { 0 };
    ck_assert_int_eq(commit(c, &cm), 0);
    ck_assert(run_until(&cm.calls, 1, 5000));
    ck_assert_int_eq(cm.status, 0);
    ck_assert_str_eq(scalar(p, cnt, 1, (const char *const[]){ "a" }), "1");

    // Rollback.
    c = begin(p);
    box i2 = { 0 }, rb = { 0 };
    ck_assert_int_eq(cx(c, ins, 1, (const char *const[]){ "b" }, &i2), 0);
    ck_assert_int_eq(rollback(c, &rb), 0); // queued behind the insert
    ck_assert(run_until(&rb.calls, 1, 5000));
    ck_assert_int_eq(i2.status, 0);
    ck_assert_int_eq(rb.status, 0);
    ck_assert_int_lt(i2.seq, rb.seq);
    ck_assert_str_eq(scalar(p, cnt, 1, (const char *const[]){ "b" }), "0");

    // A failed statement aborts the transaction: later ones fail, COMMIT reports it.
    c = begin(p);
    box s1 = { 0 }, s2 = { 0 }, s3 = { 0 }, cm2 = { 0 };
    ck_assert_int_eq(cx(c, ins, 1, (const char *const[]){ "c" }, &s1), 0);
    ck_assert_int_eq(cx(c, ins, 1, (const char *const[]){ "a" }, &s2), 0);
    ck_assert_int_eq(cx(c, ins, 1, (const char *const[]){ "d" }, &s3), 0);
    ck_assert_int_eq(commit(c, &cm2), 0);
    ck_assert(run_until(&cm2.calls, 1, 5000));
    ck_assert_int_eq(s1.status, 0);
    ck_assert_int_eq(s2.status, FSR_E_UNIQUE);
    ck_assert_int_eq(s3.status, FSR_E_DB);
    ck_assert_str_eq(s3.sqlstate, "25P02");
    ck_assert_int_eq(cm2.status, FSR_E_DB);
    ck_assert(s1.seq < s2.seq && s2.seq < s3.seq && s3.seq < cm2.seq);
    ck_assert_str_eq(scalar(p, cnt, 1, (const char *const[]){ "c" }), "0");

    fsr_pg_pool_stats(p, &st);
    ck_assert_int_eq(st.busy, 0);
    fsr_pg_pool_free(p);

    // With one connection, a pool query waits for the transaction to end.
    p = make_pool(1, 0, 5000, NULL);
    c = begin(p);
    box during = { 0 }, e1 = { 0 }, cm3 = { 0 };
    ck_assert_int_eq(x(p, cnt, 1, (const char *const[]){ "e" }, &during), 0);
    ck_assert_int_eq(cx(c, ins, 1, (const char *const[]){ "e" }, &e1), 0);
    ck_assert(run_until(&e1.calls, 1, 5000));
    run_for(50);
    ck_assert_int_eq(during.calls, 0);
    ck_assert_int_eq(commit(c, &cm3), 0);
    ck_assert(run_until(&during.calls, 1, 5000));
    ck_assert_int_eq(cm3.status, 0);
    ck_assert_int_lt(cm3.seq, during.seq);
    ck_assert_str_eq(during.value, "1");
    fsr_pg_pool_free(p);
}
END_TEST

static fsr_pg_pool *free_in_cb;

static void on_res_free_pool(const fsr_pg_result *r, void *arg)
{
    on_res(r, arg);
    fsr_pg_pool_free(free_in_cb);
    free_in_cb = NULL;
}

START_TEST(test_pg_tx_timeout_rolls_back)
{
    const char *t = uniq("it_txto");
    char sql[256], ins[128], cnt[128];
    snprintf(sql, sizeof sql, "CREATE TABLE %s (k text PRIMARY KEY)", t);
    admin(sql);
    snprintf(ins, sizeof ins, "INSERT INTO %s (k) VALUES ($1)", t);
    snprintf(cnt, sizeof cnt, "SELECT count(*) FROM %s", t);

    // A statement of the transaction times out (and is cancelled); the COMMIT queued behind
    // it times out too, and must not commit: it becomes a ROLLBACK.
    fsr_pg_pool *p = make_pool(1, 0, 300, NULL);
    fsr_pg_conn *c = begin(p);
    box i1 = { 0 }, slow = { 0 }, cm = { 0 };
    ck_assert_int_eq(cx(c, ins, 1, (const char *const[]){ "x" }, &i1), 0);
    ck_assert(run_until(&i1.calls, 1, 3000));
    ck_assert_int_eq(i1.status, 0);
    ck_assert_int_eq(cx(c, "SELECT pg_sleep(5)", 0, NULL, &slow), 0);
    ck_assert_int_eq(commit(c, &cm), 0);
    ck_assert(run_until(&cm.calls, 1, 3000));
    ck_assert(run_until(&slow.calls, 1, 3000));
    ck_assert_int_eq(slow.status, FSR_E_TIMEOUT);
    ck_assert_int_eq(cm.status, FSR_E_TIMEOUT);
    // The only connection comes back to the pool rolled back: nothing committed, and it is
    // not still inside the transaction (which would see its own row).
    ck_assert_str_eq(scalar(p, cnt, 0, NULL), "0");
    ck_assert_str_eq(scalar(p, "SELECT pg_current_xact_id_if_assigned() IS NULL", 0, NULL), "t");
    run_for(400);
    ck_assert_int_eq(cm.calls, 1);
    ck_assert_int_eq(slow.calls, 1);
    fsr_pg_stats st;
    fsr_pg_pool_stats(p, &st);
    ck_assert_int_eq(st.busy, 0);
    ck_assert_uint_eq(st.reconnects, 0);
    fsr_pg_pool_free(p);

    // The same, with the pool freed from the COMMIT's timeout callback.
    free_in_cb = make_pool(1, 0, 300, NULL);
    c = begin(free_in_cb);
    box slow2 = { 0 }, cm2 = { 0 };
    ck_assert_int_eq(cx(c, "SELECT pg_sleep(5)", 0, NULL, &slow2), 0);
    in_call = true;
    ck_assert_int_eq(fsr_pg_tx_commit(c, on_res_free_pool, &cm2), 0);
    in_call = false;
    ck_assert(run_until(&cm2.calls, 1, 3000));
    ck_assert_ptr_null(free_in_cb);
    ck_assert_int_eq(cm2.status, FSR_E_TIMEOUT);
    ck_assert_int_eq(slow2.calls, 1);
    run_for(100);
    ck_assert_int_eq(cm2.calls, 1);
}
END_TEST

/* --- connection loss ---------------------------------------------------------------------- */

static const char *terminate_sql(const char *app)
{
    static char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE application_name = '%s'",
             app);
    return sql;
}

START_TEST(test_pg_reconnect_after_terminate)
{
    const char *app = uniq("it_rc");
    fsr_pg_pool *p = make_pool(2, 0, 10000, app);
    wait_connected(p, 2);
    box warm[2] = { 0 };
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(q(p, &st_add, 1, (const char *const[]){ "1" }, &warm[i]), 0);
    ck_assert(run_until(&warm[1].calls, 1, 5000));
    ck_assert(run_until(&warm[0].calls, 1, 5000));

    // A statement in flight when its backend dies fails with FSR_E_CLOSED.
    box slow = { 0 };
    ck_assert_int_eq(x(p, "SELECT pg_sleep(30)", 0, NULL, &slow), 0);
    run_for(150);
    ck_assert_int_eq(slow.calls, 0);
    ck_assert_str_eq(admin(terminate_sql(app)), "2");
    ck_assert(run_until(&slow.calls, 1, 5000));
    ck_assert_int_eq(slow.status, FSR_E_CLOSED);

    // Both connections come back by themselves; statements are re-prepared transparently.
    int64_t deadline = now_ms() + 10000;
    fsr_pg_stats st;
    do {
        run_for(20);
        fsr_pg_pool_stats(p, &st);
    } while ((st.connected < 2 || st.reconnects < 2) && now_ms() < deadline);
    ck_assert_int_eq(st.connected, 2);
    ck_assert_uint_ge(st.reconnects, 2);
    uint64_t prepares = st.prepares;
    box after[4] = { 0 };
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(q(p, &st_add, 1, (const char *const[]){ "9" }, &after[i]), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert(run_until(&after[i].calls, 1, 5000));
        ck_assert_msg(after[i].status == 0, "%s", after[i].message);
        ck_assert_str_eq(after[i].value, "10");
    }
    fsr_pg_pool_stats(p, &st);
    ck_assert_uint_gt(st.prepares, prepares);

    // A pinned transaction whose connection dies: later calls fail synchronously, and the
    // connection is released and reconnects once the owner ends the transaction.
    fsr_pg_conn *c = begin(p);
    ck_assert_str_eq(admin(terminate_sql(app)), "2");
    run_for(300);
    box dead = { 0 };
    ck_assert_int_eq(cx(c, "SELECT 1", 0, NULL, &dead), FSR_E_CLOSED);
    ck_assert_int_eq(commit(c, &dead), FSR_E_CLOSED);
    run_for(50);
    ck_assert_int_eq(dead.calls, 0);
    wait_connected(p, 2);
    ck_assert_str_eq(scalar(p, "SELECT 5", 0, NULL), "5");
    fsr_pg_pool_free(p);
}
END_TEST

START_TEST(test_pg_unreachable_fails_fast)
{
    // Nothing listens on a port just found free: every attempt fails, requests do not sit
    // out their timeout.
    int s = -1;
    char port[16];
    {
        FILE *f = popen("/usr/bin/python3 -c 'import socket; s=socket.socket(); "
                        "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'",
                        "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(port, sizeof port, f));
        pclose(f);
        port[strcspn(port, "\n")] = '\0';
        s = atoi(port);
    }
    ck_assert_int_gt(s, 0);
    fsr_pg_config cfg = { .host = "127.0.0.1",
                          .port = s,
                          .dbname = "x",
                          .user = "fsr",
                          .size = 2,
                          .connect_timeout_ms = 1000,
                          .query_timeout_ms = 20000 };
    fsr_pg_pool *p = NULL;
    ck_assert_int_eq(fsr_pg_pool_new(loop, &cfg, &p), 0);
    box b = { 0 };
    int64_t t0 = now_ms();
    ck_assert_int_eq(x(p, "SELECT 1", 0, NULL, &b), 0);
    ck_assert(run_until(&b.calls, 1, 5000));
    ck_assert_int_eq(b.status, FSR_E_CLOSED);
    ck_assert_int_lt(b.at_ms - t0, 3000);
    fsr_pg_stats st;
    fsr_pg_pool_stats(p, &st);
    ck_assert_int_eq(st.connected, 0);
    fsr_pg_pool_free(p);

    // A server that accepts TCP but never answers: the connect timeout ends each attempt
    // (libpq's PQconnectPoll has none of its own).
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(ls, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(ls, 16), 0);
    socklen_t salen = sizeof sa;
    ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&sa, &salen), 0);
    fsr_pg_config silent = { .host = "127.0.0.1",
                             .port = ntohs(sa.sin_port),
                             .dbname = "x",
                             .user = "fsr",
                             .size = 1,
                             .connect_timeout_ms = 300,
                             .query_timeout_ms = 20000 };
    ck_assert_int_eq(fsr_pg_pool_new(loop, &silent, &p), 0);
    box c = { 0 };
    t0 = now_ms();
    ck_assert_int_eq(x(p, "SELECT 1", 0, NULL, &c), 0);
    ck_assert(run_until(&c.calls, 1, 5000));
    ck_assert_int_eq(c.status, FSR_E_CLOSED);
    ck_assert_int_ge(c.at_ms - t0, 250);
    ck_assert_int_lt(c.at_ms - t0, 2000);
    fsr_pg_pool_free(p);
    close(ls);
}
END_TEST

/* --- freeing with work outstanding -------------------------------------------------------- */

static fsr_pg_pool *free_me;

static void on_res_then_free(const fsr_pg_result *r, void *arg)
{
    on_res(r, arg);
    fsr_pg_pool_free(free_me);
    free_me = NULL;
}

START_TEST(test_pg_free_with_pending)
{
    fsr_pg_pool *p = make_pool(1, 0, 5000, NULL);
    wait_connected(p, 1);
    box running = { 0 }, queued = { 0 };
    txbox tq = { 0 };
    ck_assert_int_eq(x(p, "SELECT pg_sleep(2)", 0, NULL, &running), 0);
    ck_assert_int_eq(x(p, "SELECT 1", 0, NULL, &queued), 0);
    ck_assert_int_eq(fsr_pg_tx_begin(p, on_tx, &tq), 0);
    run_for(50);
    fsr_pg_pool_free(p);
    ck_assert_int_eq(running.calls, 1);
    ck_assert_int_eq(running.status, FSR_E_CLOSED);
    ck_assert_int_eq(queued.calls, 1);
    ck_assert_int_eq(queued.status, FSR_E_CLOSED);
    ck_assert_int_eq(tq.calls, 1);
    ck_assert_int_eq(tq.status, FSR_E_CLOSED);
    ck_assert_ptr_null(tq.conn);

    // Freed from inside its own callback, with another request still queued.
    free_me = make_pool(1, 0, 5000, NULL);
    box first = { 0 }, second = { 0 };
    in_call = true;
    ck_assert_int_eq(fsr_pg_exec(free_me, "SELECT 1", 0, NULL, on_res_then_free, &first), 0);
    in_call = false;
    ck_assert_int_eq(x(free_me, "SELECT 2", 0, NULL, &second), 0);
    ck_assert(run_until(&first.calls, 1, 5000));
    ck_assert_int_eq(first.status, 0);
    ck_assert_int_eq(second.calls, 1);
    ck_assert_int_eq(second.status, FSR_E_CLOSED);
    ck_assert_ptr_null(free_me);
    run_for(50);
    ck_assert_int_eq(second.calls, 1);
}
END_TEST

/* --- migrations --------------------------------------------------------------------------- */

/* A fresh schema and a conninfo whose search_path points at it. */
static const char *mig_conninfo(const char *schema)
{
    static char ci[512];
    char sql[256];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema, schema);
    admin(sql);
    snprintf(ci, sizeof ci, "%s options='-csearch_path=%s'", conninfo, schema);
    return ci;
}

static const char *mig_scalar(const char *ci, const char *sql)
{
    static char out[256];
    char err[256];
    PGconn *c;
    ck_assert_msg(fsr_pg_sync_connect(ci, &c, err, sizeof err) == 0, "%s", err);
    PGresult *res = NULL;
    ck_assert_msg(fsr_pg_sync_exec(c, sql, 0, NULL, &res, err, sizeof err) == 0, "%s: %s", sql,
                  err);
    snprintf(out, sizeof out, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    fsr_pg_sync_close(c);
    return out;
}

/* No precomputed checksums here: these exercise the runtime digest path. */
static const fsr_migration migs[] = {
    { 1, "items",
      "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\n"
      "CREATE INDEX items_name ON items (name);\n",
      NULL },
    { 2, "seed", "INSERT INTO items (id, name) VALUES (1, 'one');", NULL },
    { 5, "price", "ALTER TABLE items ADD COLUMN price numeric(20, 4);", NULL },
};

START_TEST(test_pg_migrate_applies_once)
{
    const char *ci = mig_conninfo(uniq("it_mig"));
    char err[512];
    ck_assert_msg(fsr_migrate(ci, migs, 2, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM items"), "1");
    ck_assert_str_eq(mig_scalar(ci,
                                "SELECT string_agg(version || ':' || name, ',' ORDER BY version)"
                                " FROM schema_migrations"),
                     "1:items,2:seed");
    char hex[65];
    ck_assert_int_eq(fsr_migration_checksum(migs[1].sql, hex), 0);
    ck_assert_str_eq(mig_scalar(ci, "SELECT checksum FROM schema_migrations WHERE version = 2"),
                     hex);
    ck_assert_int_eq(fsr_migration_checksum("", hex), 0);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM schema_migrations "
                                    "WHERE applied_at > now() - interval '1 minute'"),
                     "2");

    // Idempotent: nothing runs twice (the INSERT would violate the primary key).
    ck_assert_msg(fsr_migrate(ci, migs, 2, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM items"), "1");

    // A new version applies alone.
    ck_assert_msg(fsr_migrate(ci, migs, 3, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM schema_migrations"), "3");
    ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM information_schema.columns "
                                    "WHERE table_name = 'items' AND column_name = 'price' "
                                    "AND table_schema = current_schema()"),
                     "1");

    // A failing migration rolls back entirely and is not recorded; its error names it.
    fsr_migration more[4] = {
        migs[0], migs[1], migs[2], { 6, "broken", "CREATE TABLE t6 (id int); SELECT 1/0;", NULL }
    };
    int rv = fsr_migrate(ci, more, 4, err, sizeof err);
    ck_assert_int_eq(rv, FSR_E_DB);
    ck_assert_msg(strstr(err, "migration 6 (broken)") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "division by zero") != NULL, "%s", err);
    ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM schema_migrations"), "3");
    ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM pg_tables "
                                    "WHERE tablename = 't6' AND schemaname = current_schema()"),
                     "0");

    // Bad input and unreachable databases.
    fsr_migration unordered[2] = { migs[1], migs[0] };
    ck_assert_int_eq(fsr_migrate(ci, unordered, 2, err, sizeof err), FSR_E_CONFIG);
    ck_assert_int_eq(fsr_migrate(NULL, migs, 1, err, sizeof err), -EINVAL);
    ck_assert_int_eq(
        fsr_migrate("host=127.0.0.1 port=1 connect_timeout=2", migs, 1, err, sizeof err),
        FSR_E_CLOSED);
    ck_assert_int_eq(fsr_migrate(ci, NULL, 0, err, sizeof err), 0);
}
END_TEST

START_TEST(test_pg_migrate_changed_checksum_refused)
{
    const char *ci = mig_conninfo(uniq("it_mig_ck"));
    char err[512];
    ck_assert_msg(fsr_migrate(ci, migs, 2, err, sizeof err) == 0, "%s", err);
    // Version 2 edited after it shipped (even whitespace counts), plus a new version 5.
    fsr_migration edited[3] = {
        migs[0], { 2, "seed", "INSERT INTO items (id, name) VALUES (1, 'one'); ", NULL }, migs[2]
    };
    int rv = fsr_migrate(ci, edited, 3, err, sizeof err);
    ck_assert_int_eq(rv, FSR_E_CONFIG);
    ck_assert_msg(strstr(err, "migration 2 (seed)") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "changed") != NULL, "%s", err);
    // Nothing was applied past the refusal.
    ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM schema_migrations"), "2");
    ck_assert_str_eq(mig_scalar(ci, "SELECT max(version) FROM schema_migrations"), "2");
    // The original set still passes.
    ck_assert_msg(fsr_migrate(ci, migs, 3, err, sizeof err) == 0, "%s", err);
}
END_TEST

typedef struct mig_thread {
    const char *ci;
    pthread_barrier_t *barrier;
    int rv;
    char err[512];
} mig_thread;

static void *mig_thread_main(void *arg)
{
    mig_thread *t = arg;
    pthread_barrier_wait(t->barrier);
    t->rv = fsr_migrate(t->ci, migs, FSR_ARRAY_SIZE(migs), t->err, sizeof t->err);
    return NULL;
}

START_TEST(test_pg_migrate_concurrent)
{
    enum {
        THREADS = 4,
        ROUNDS = 5
    };
    for (int round = 0; round < ROUNDS; round++) {
        char schema[64];
        snprintf(schema, sizeof schema, "it_migc_%ld_%d", (long)getpid(), round);
        char ci[512];
        snprintf(ci, sizeof ci, "%s", mig_conninfo(schema));
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, THREADS);
        mig_thread ts[THREADS];
        pthread_t tids[THREADS];
        for (int i = 0; i < THREADS; i++) {
            ts[i] = (mig_thread){ .ci = ci, .barrier = &barrier };
            ck_assert_int_eq(pthread_create(&tids[i], NULL, mig_thread_main, &ts[i]), 0);
        }
        for (int i = 0; i < THREADS; i++)
            pthread_join(tids[i], NULL);
        pthread_barrier_destroy(&barrier);
        for (int i = 0; i < THREADS; i++)
            ck_assert_msg(ts[i].rv == 0, "round %d thread %d: %s", round, i, ts[i].err);
        ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM items"), "1");
        ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM schema_migrations"), "3");
    }
}
END_TEST

static void *mig_lock_thread_main(void *arg)
{
    mig_thread *t = arg;
    t->rv = fsr_migrate(t->ci, migs, FSR_ARRAY_SIZE(migs), t->err, sizeof t->err);
    return NULL;
}

/*
 * The lock serialising replicas is pg_advisory_xact_lock(7370707117760419) (lib/migrate.c):
 * while another session holds it, fsr_migrate() waits on it with nothing applied (not even
 * the bookkeeping table), and completes once it is released.
 */
START_TEST(test_pg_migrate_waits_for_advisory_lock)
{
    char ci[512];
    snprintf(ci, sizeof ci, "%s", mig_conninfo(uniq("it_mig_lock")));
    char err[512];
    PGconn *holder;
    PGresult *res = NULL;
    ck_assert_msg(fsr_pg_sync_connect(conninfo, &holder, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(fsr_pg_sync_exec(holder, "SELECT pg_advisory_lock(7370707117760419)", 0, NULL,
                                   &res, err, sizeof err) == 0,
                  "%s", err);
    PQclear(res);

    mig_thread t = { .ci = ci, .rv = 1 };
    pthread_t tid;
    ck_assert_int_eq(pthread_create(&tid, NULL, mig_lock_thread_main, &t), 0);
    bool waiting = false;
    for (int i = 0; i < 100 && !waiting; i++) {
        waiting = strcmp(mig_scalar(conninfo, "SELECT count(*) FROM pg_locks WHERE locktype = "
                                              "'advisory' AND NOT granted"),
                         "1") == 0;
        if (!waiting)
            usleep(50 * 1000);
    }
    ck_assert_msg(waiting, "fsr_migrate() never waited on the advisory lock");
    usleep(200 * 1000);
    ck_assert_str_eq(mig_scalar(ci, "SELECT to_regclass('schema_migrations') IS NULL"), "t");

    ck_assert_msg(fsr_pg_sync_exec(holder, "SELECT pg_advisory_unlock(7370707117760419)", 0, NULL,
                                   &res, err, sizeof err) == 0,
                  "%s", err);
    PQclear(res);
    pthread_join(tid, NULL);
    ck_assert_msg(t.rv == 0, "%s", t.err);
    ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM schema_migrations"), "3");
    fsr_pg_sync_close(holder);
}
END_TEST

FSR_MIGRATIONS_DECLARE(it_migrations);

/* Reads |dir|/|name| whole. */
static char *slurp(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

START_TEST(test_pg_migrate_embedded_files)
{
    // scripts/embed_sql.py kept versions, names and every byte (quotes, backslashes, tabs,
    // "??=", UTF-8, a missing final newline).
    ck_assert_uint_eq(it_migrations_count, 2);
    ck_assert_int_eq(it_migrations[0].version, 1);
    ck_assert_str_eq(it_migrations[0].name, "create_things");
    ck_assert_str_eq(it_migrations[0].sql, slurp(IT_SQL_DIR, "001_create_things.sql"));
    ck_assert_int_eq(it_migrations[1].version, 10);
    ck_assert_str_eq(it_migrations[1].name, "seed_things");
    ck_assert_str_eq(it_migrations[1].sql, slurp(IT_SQL_DIR, "010_seed_things.sql"));
    // The build-time checksum is the one the runtime would compute.
    for (size_t i = 0; i < it_migrations_count; i++) {
        char hex[65];
        ck_assert_int_eq(fsr_migration_checksum(it_migrations[i].sql, hex), 0);
        ck_assert_ptr_nonnull(it_migrations[i].checksum);
        ck_assert_str_eq(it_migrations[i].checksum, hex);
    }

    const char *ci = mig_conninfo(uniq("it_mig_emb"));
    char err[512];
    ck_assert_msg(fsr_migrate(ci, it_migrations, it_migrations_count, err, sizeof err) == 0, "%s",
                  err);
    ck_assert_str_eq(mig_scalar(ci, "SELECT count(*) FROM things"), "2");
    ck_assert_str_eq(mig_scalar(ci, "SELECT DISTINCT label FROM things"),
                     "it's \"q\" \\ ?\?= \xe2\x82\xac");
}
END_TEST

static Suite *pg_suite(void)
{
    Suite *s = suite_create("pg");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        { "query", test_pg_query_basic },
        { "null_params", test_pg_null_params_and_result_access },
        { "config", test_pg_config_conninfo },
        { "sqlstate", test_pg_sqlstate_mapping },
        { "prepared", test_pg_prepared_reused },
        { "queue", test_pg_pool_exhaustion_queue_and_bound },
        { "timeout", test_pg_query_timeout_cancels },
        { "constraints", test_pg_unique_and_check_violations },
        { "tx", test_pg_tx_commit_and_rollback },
        { "tx_timeout", test_pg_tx_timeout_rolls_back },
        { "reconnect", test_pg_reconnect_after_terminate },
        { "unreachable", test_pg_unreachable_fails_fast },
        { "free", test_pg_free_with_pending },
        { "migrate", test_pg_migrate_applies_once },
        { "migrate_checksum", test_pg_migrate_changed_checksum_refused },
        { "migrate_concurrent", test_pg_migrate_concurrent },
        { "migrate_lock", test_pg_migrate_waits_for_advisory_lock },
        { "migrate_embedded", test_pg_migrate_embedded_files },
    };
    for (size_t i = 0; i < FSR_ARRAY_SIZE(cases); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    // Tests provoke errors on purpose: stay quiet unless LOG_LEVEL asks otherwise.
    const char *level = getenv("LOG_LEVEL");
    fsr_log_init("pg_test", level, NULL);
    if (level == NULL || *level == '\0')
        fsr_log_min_level = (fsr_log_level)(FSR_LOG_ERROR + 1);
    SRunner *sr = srunner_create(pg_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
