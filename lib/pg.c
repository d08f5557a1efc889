/* SPDX-License-Identifier: MIT */
/* PostgreSQL connection pool on libpq's non-blocking API, one pool per loop thread. */
#include "fsr/pg.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/status.h"

#include <libpq-fe.h>
#include <event2/event.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

/*
 * Shape of the pool
 * -----------------
 * A request (pg_req) is one statement plus its callback.  fsr_pg_query() and friends only
 * append requests to a queue and "kick" the pool: a libevent event made active by hand, so
 * the actual dispatch runs from the loop and a callback can never fire inside the call that
 * started it (STYLE §4).  The kick handler hands queued requests to idle connections.
 *
 * A connection is DOWN (no PGconn; its timer schedules the next attempt), CONNECTING
 * (PQconnectPoll driven by one-shot socket events, bounded by the same timer) or READY.  A
 * READY connection runs at most one request (|cur|).  When pinned to a transaction it takes
 * requests only from its own |pending| list, never from the pool queue.  A pinned connection
 * that is lost becomes DEAD until its owner ends the transaction, so a stale fsr_pg_conn
 * handle can never reach a reconnected connection that serves someone else.
 *
 * Timeouts: every request has a timer armed when it is accepted.  A request still queued is
 * simply failed.  A running one is failed at once (the caller's deadline wins), marked
 * abandoned, and cancelled with PQcancel.  PQcancel blocks (it opens a new connection to the
 * server), so it runs on a short-lived detached thread that touches nothing but its own
 * PGcancel.  The connection is not reused until both the abandoned statement has finished
 * and the cancel request has been delivered; otherwise a late cancel could hit the next,
 * innocent statement.  If that takes longer than the connect timeout (server unreachable),
 * the connection is dropped and reconnected.
 *
 * Re-entrancy: user callbacks may call anything, including fsr_pg_pool_free().  Each event
 * handler counts itself in |depth|; a free requested inside one marks the pool closing,
 * fails every request, and leaves the memory to the outermost handler.  After every user
 * callback the handlers check |closing| and stop touching state.
 */

enum req_kind {
    REQ_STMT,     /* named prepared statement */
    REQ_SQL,      /* unnamed statement with parameters */
    REQ_BEGIN,    /* BEGIN; pins the connection on success */
    REQ_COMMIT,   /* COMMIT; unpins */
    REQ_ROLLBACK, /* ROLLBACK; unpins (also the internal safety rollback) */
};

typedef struct pg_req pg_req;
TAILQ_HEAD(pg_req_list, pg_req);

struct pg_req {
    TAILQ_ENTRY(pg_req) link;
    fsr_pg_pool *pool;
    fsr_pg_conn *conn; /* the connection running it or whose |pending| holds it */
    enum req_kind kind;
    const fsr_pg_stmt *stmt; /* REQ_STMT */
    const char *sql;         /* REQ_SQL (copy in this allocation) or a literal */
    int nparams;
    const char **values; /* copies in this allocation */
    fsr_pg_cb cb;
    fsr_pg_tx_cb tx_cb;
    void *arg;
    struct event *timer;
    bool queued;    /* on the pool queue or a connection's |pending| */
    bool preparing; /* waiting for the PREPARE of |stmt| */
    bool abandoned; /* callback already ran (or internal): discard the result */
};

/* Shared by a connection and its cancel thread; freed by whichever lets go last. */
typedef struct pg_cancel_job {
    PGcancel *cancel;
    atomic_int refs;
    atomic_bool done;
} pg_cancel_job;

enum conn_state {
    CONN_DOWN,
    CONN_CONNECTING,
    CONN_READY,
    CONN_DEAD, /* lost while pinned: waits for commit/rollback before reconnecting */
};

struct fsr_pg_conn {
    fsr_pg_pool *pool;
    enum conn_state state;
    PGconn *pg;
    struct event *cev;   /* one-shot socket event while CONNECTING */
    struct event *rev;   /* persistent read event while READY */
    struct event *wev;   /* write event while READY and output is pending */
    struct event *timer; /* connect timeout / next attempt / cancel watch */
    int attempts;        /* consecutive failed connection attempts */
    bool ever_connected;
    pg_req *cur;                /* request running now */
    struct pg_req_list pending; /* requests of the pinned transaction */
    bool pinned;                /* inside a transaction handed out by fsr_pg_tx_begin() */
    bool ending;                /* COMMIT/ROLLBACK requested */
    PGresult *acc;              /* result of |cur| accumulated so far */
    pg_cancel_job *cancel;      /* cancel in flight for an abandoned statement */
    int64_t cancel_deadline_us; /* drop the connection if not settled by then */
    const fsr_pg_stmt **stmts;  /* prepared on this connection */
    int nstmts, capstmts;
};

#define MAX_PARAMS 8

struct fsr_pg_pool {
    struct event_base *base;
    /* PQconnectStartParams arguments: NULL-terminated, values owned */
    const char *keywords[MAX_PARAMS];
    char *values[MAX_PARAMS];
    int expand_dbname;
    int size;
    int queue_max;
    int connect_timeout_ms;
    int query_timeout_ms;
    struct pg_req_list queue;
    int nqueued;
    struct event *kick;
    fsr_pg_conn *conns;
    int depth;    /* event handlers on the stack */
    bool closing; /* fsr_pg_pool_free() was called */
    uint32_t rng;
    fsr_pg_stats st; /* counters only; gauges are computed */
};

struct fsr_pg_result {
    const PGresult *res; /* NULL for errors raised here (timeout, closed) */
    int status;
    const char *sqlstate;
    const char *message;
};

/* How often a connection with a cancel in flight checks whether it is settled. */
#define CANCEL_POLL_MS 5
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static void conn_connect(fsr_pg_conn *c);
static void conn_lost(fsr_pg_conn *c, const char *why);
static void conn_send(fsr_pg_conn *c, pg_req *req);
static void pool_kick(fsr_pg_pool *pool);
static void pool_destroy(fsr_pg_pool *pool);

/* --- small helpers ------------------------------------------------------------------------ */

static struct timeval ms_tv(int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    return tv;
}

/* libpq messages end with a newline and may span lines; logs want one line. */
static void one_line(char *dst, size_t len, const char *src)
{
    size_t i = 0;
    if (len == 0)
        return;
    for (; src && *src && i + 1 < len; src++) {
        if (*src == '\n' || *src == '\r') {
            if (src[1] == '\0')
                break;
            dst[i++] = ' ';
        } else {
            dst[i++] = *src;
        }
    }
    dst[i] = '\0';
}

static void on_notice(void *arg, const char *message)
{
    char line[512];
    one_line(line, sizeof line, message);
    FSR_DEBUG("postgres: %s", line);
}

int fsr_pg_err_from_sqlstate(const char *s)
{
    if (s == NULL || strlen(s) != 5)
        return FSR_E_DB;
    if (s[0] == '0' && s[1] == '0')
        return 0;
    if (strcmp(s, "23505") == 0)
        return FSR_E_UNIQUE;
    if (strcmp(s, "23503") == 0 || strcmp(s, "23514") == 0)
        return FSR_E_CHECK;
    if (strcmp(s, "57014") == 0)
        return FSR_E_TIMEOUT;
    if ((s[0] == '0' && s[1] == '8') || strcmp(s, "57P01") == 0 || strcmp(s, "57P02") == 0 ||
        strcmp(s, "57P03") == 0)
        return FSR_E_CLOSED;
    return FSR_E_DB;
}

/* The status of a finished statement: |res| may be NULL when libpq produced none. */
static int status_of(PGconn *pg, const PGresult *res)
{
    if (res == NULL)
        return FSR_E_CLOSED;
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
        return 0;
    case PGRES_FATAL_ERROR: {
        int rv = fsr_pg_err_from_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE));
        // libpq's own errors ("server closed the connection") carry no SQLSTATE.
        if (rv == FSR_E_DB && pg != NULL && PQstatus(pg) == CONNECTION_BAD)
            return FSR_E_CLOSED;
        return rv == 0 ? FSR_E_DB : rv;
    }
    default:
        // COPY and friends are not supported through the pool.
        return FSR_E_DB;
    }
}

/* Appends key='value' (libpq quoting: backslash before ' and \) to |buf| at *|pos|. */
static int ci_append(char *buf, size_t len, size_t *pos, const char *key, const char *val)
{
    if (val == NULL || *val == '\0')
        return 0;
    size_t need = strlen(key) + 4;
    for (const char *p = val; *p; p++)
        need += (*p == '\'' || *p == '\\') ? 2 : 1;
    if (*pos + need + 1 > len)
        return FSR_E_TOO_LARGE;
    char *d = buf + *pos;
    if (*pos > 0)
        *d++ = ' ';
    d += sprintf(d, "%s='", key);
    for (const char *p = val; *p; p++) {
        if (*p == '\'' || *p == '\\')
            *d++ = '\\';
        *d++ = *p;
    }
    *d++ = '\'';
    *d = '\0';
    *pos = (size_t)(d - buf);
    return 0;
}

int fsr_pg_config_conninfo(const fsr_pg_config *cfg, char *buf, size_t len)
{
    if (cfg == NULL || buf == NULL || len == 0)
        return -EINVAL;
    if (cfg->conninfo != NULL) {
        if (strlen(cfg->conninfo) + 1 > len)
            return FSR_E_TOO_LARGE;
        strcpy(buf, cfg->conninfo);
        // Later keywords win in a key=value string; a URI would need its own syntax.
        if (strstr(cfg->conninfo, "://") == NULL) {
            size_t pos = strlen(buf);
            return ci_append(buf, len, &pos, "application_name", cfg->application_name);
        }
        return 0;
    }
    char port[16] = "", timeout[16] = "";
    if (cfg->port > 0)
        snprintf(port, sizeof port, "%d", cfg->port);
    if (cfg->connect_timeout_ms > 0)
        snprintf(timeout, sizeof timeout, "%d", (cfg->connect_timeout_ms + 999) / 1000);
    size_t pos = 0;
    buf[0] = '\0';
    int rv;
    if ((rv = ci_append(buf, len, &pos, "host", cfg->host)) != 0 ||
        (rv = ci_append(buf, len, &pos, "port", port)) != 0 ||
        (rv = ci_append(buf, len, &pos, "dbname", cfg->dbname)) != 0 ||
        (rv = ci_append(buf, len, &pos, "user", cfg->user)) != 0 ||
        (rv = ci_append(buf, len, &pos, "password", cfg->password)) != 0 ||
        (rv = ci_append(buf, len, &pos, "application_name", cfg->application_name)) != 0 ||
        (rv = ci_append(buf, len, &pos, "connect_timeout", timeout)) != 0)
        return rv;
    return 0;
}

/* --- results ------------------------------------------------------------------------------ */

int fsr_pg_result_status(const fsr_pg_result *r)
{
    return r->status;
}

const char *fsr_pg_result_sqlstate(const fsr_pg_result *r)
{
    return r->sqlstate ? r->sqlstate : "";
}

const char *fsr_pg_result_message(const fsr_pg_result *r)
{
    return r->message ? r->message : "";
}

int fsr_pg_result_rows(const fsr_pg_result *r)
{
    return (r->status == 0 && r->res) ? PQntuples(r->res) : 0;
}

int fsr_pg_result_cols(const fsr_pg_result *r)
{
    return (r->status == 0 && r->res) ? PQnfields(r->res) : 0;
}

static bool in_range(const fsr_pg_result *r, int row, int col)
{
    return r->status == 0 && r->res && row >= 0 && row < PQntuples(r->res) && col >= 0 &&
           col < PQnfields(r->res);
}

const char *fsr_pg_result_getvalue(const fsr_pg_result *r, int row, int col)
{
    return in_range(r, row, col) ? PQgetvalue(r->res, row, col) : NULL;
}

int fsr_pg_result_getlength(const fsr_pg_result *r, int row, int col)
{
    return in_range(r, row, col) ? PQgetlength(r->res, row, col) : 0;
}

bool fsr_pg_result_isnull(const fsr_pg_result *r, int row, int col)
{
    return !in_range(r, row, col) || PQgetisnull(r->res, row, col);
}

int fsr_pg_result_col(const fsr_pg_result *r, const char *name)
{
    if (r->status != 0 || r->res == NULL || name == NULL)
        return -1;
    // PQfnumber folds unquoted names to lower case; column names here are exact.
    for (int i = 0; i < PQnfields(r->res); i++)
        if (strcmp(PQfname(r->res, i), name) == 0)
            return i;
    return -1;
}

int64_t fsr_pg_result_affected(const fsr_pg_result *r)
{
    if (r->status != 0 || r->res == NULL)
        return 0;
    const char *t = PQcmdTuples((PGresult *)(uintptr_t)r->res);
    return (t && *t) ? strtoll(t, NULL, 10) : 0;
}

/* --- requests ----------------------------------------------------------------------------- */

static void on_req_timeout(evutil_socket_t fd, short what, void *arg);

/* One allocation: the request, the parameter vector, the strings. */
static pg_req *req_new(fsr_pg_pool *pool, enum req_kind kind, const char *sql, int nparams,
                       const char *const *values)
{
    size_t size = sizeof(pg_req) + (size_t)nparams * sizeof(char *);
    size_t sqllen = (kind == REQ_SQL) ? strlen(sql) + 1 : 0;
    size += sqllen;
    for (int i = 0; i < nparams; i++)
        if (values[i] != NULL)
            size += strlen(values[i]) + 1;
    pg_req *req = fsr_xcalloc(1, size);
    req->pool = pool;
    req->kind = kind;
    req->nparams = nparams;
    req->values = (const char **)(req + 1);
    char *p = (char *)(req->values + nparams);
    for (int i = 0; i < nparams; i++) {
        if (values[i] == NULL) {
            req->values[i] = NULL;
            continue;
        }
        size_t n = strlen(values[i]) + 1;
        memcpy(p, values[i], n);
        req->values[i] = p;
        p += n;
    }
    if (kind == REQ_SQL) {
        memcpy(p, sql, sqllen);
        req->sql = p;
    } else {
        req->sql = sql;
    }
    req->timer = evtimer_new(pool->base, on_req_timeout, req);
    if (req->timer == NULL) {
        FSR_ERROR("pg: evtimer_new failed");
        abort();
    }
    if (pool->query_timeout_ms > 0) {
        struct timeval tv = ms_tv(pool->query_timeout_ms);
        evtimer_add(req->timer, &tv);
    }
    pool->st.queries++;
    return req;
}

static void req_free(pg_req *req)
{
    event_free(req->timer);
    free(req);
}

/*
 * Runs the request's callback (unless it already ran) with |status| and |res|, then frees
 * the request.  The request must already be detached from every list and connection.
 */
static void req_complete(pg_req *req, int status, const PGresult *res, const char *msg,
                         fsr_pg_conn *pinned)
{
    fsr_pg_pool *pool = req->pool;
    evtimer_del(req->timer);
    if (!req->abandoned) {
        if (status != 0) {
            pool->st.errors++;
            if (status == FSR_E_TIMEOUT)
                pool->st.timeouts++;
        }
        if (req->kind == REQ_BEGIN) {
            if (req->tx_cb)
                req->tx_cb(status == 0 ? pinned : NULL, status, req->arg);
        } else if (req->cb) {
            char line[512] = "";
            const char *sqlstate = "";
            if (res != NULL && status != 0) {
                const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                sqlstate = s ? s : "";
                one_line(line, sizeof line, PQresultErrorMessage(res));
            }
            if (msg != NULL)
                one_line(line, sizeof line, msg);
            fsr_pg_result r = {
                .res = res, .status = status, .sqlstate = sqlstate, .message = line
            };
            req->cb(&r, req->arg);
        }
    }
    req_free(req);
}

/* --- connections -------------------------------------------------------------------------- */

static int backoff_ms(fsr_pg_pool *pool, int attempts)
{
    int ms = BACKOFF_MIN_MS;
    for (int i = 1; i < attempts && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    // Up to 25% jitter so that replicas and connections don't retry in lockstep.
    pool->rng ^= pool->rng << 13;
    pool->rng ^= pool->rng >> 17;
    pool->rng ^= pool->rng << 5;
    return ms - (int)(pool->rng % (uint32_t)(ms / 4 + 1));
}

static void conn_free_events(fsr_pg_conn *c)
{
    if (c->cev) {
        event_free(c->cev);
        c->cev = NULL;
    }
    if (c->rev) {
        event_free(c->rev);
        c->rev = NULL;
    }
    if (c->wev) {
        event_free(c->wev);
        c->wev = NULL;
    }
}

static void cancel_job_release(pg_cancel_job *job)
{
    if (atomic_fetch_sub(&job->refs, 1) == 1) {
        PQfreeCancel(job->cancel);
        free(job);
    }
}

/* Forgets the cancel in flight (the thread keeps its own reference). */
static void conn_drop_cancel(fsr_pg_conn *c)
{
    if (c->cancel) {
        cancel_job_release(c->cancel);
        c->cancel = NULL;
    }
}

/* Closes the PGconn and forgets everything tied to the server session. */
static void conn_close(fsr_pg_conn *c)
{
    conn_free_events(c);
    evtimer_del(c->timer);
    conn_drop_cancel(c);
    if (c->acc) {
        PQclear(c->acc);
        c->acc = NULL;
    }
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->nstmts = 0;
}

static void conn_schedule(fsr_pg_conn *c, int ms)
{
    c->state = CONN_DOWN;
    struct timeval tv = ms_tv(ms);
    evtimer_add(c->timer, &tv);
}

static void conn_connect_failed(fsr_pg_conn *c, const char *why)
{
    fsr_pg_pool *pool = c->pool;
    char line[512];
    one_line(line, sizeof line, why);
    conn_close(c);
    c->attempts++;
    int ms = backoff_ms(pool, c->attempts);
    // The first failure is worth a warning; repeats of an outage only at debug level.
    if (c->attempts == 1)
        FSR_WARN("pg: connection %d failed: %s (retrying)", (int)(c - pool->conns), line);
    else
        FSR_DEBUG("pg: connection %d failed again (%d): %s; retry in %d ms", (int)(c - pool->conns),
                  c->attempts, line, ms);
    conn_schedule(c, ms);
    // May leave the pool without a live connection: the kick fails the waiting requests.
    pool_kick(pool);
}

static bool stmt_prepared(const fsr_pg_conn *c, const fsr_pg_stmt *stmt)
{
    for (int i = 0; i < c->nstmts; i++)
        if (c->stmts[i] == stmt || strcmp(c->stmts[i]->name, stmt->name) == 0)
            return true;
    return false;
}

static void stmt_remember(fsr_pg_conn *c, const fsr_pg_stmt *stmt)
{
    if (c->nstmts == c->capstmts) {
        c->capstmts = c->capstmts ? c->capstmts * 2 : 16;
        c->stmts = fsr_xrealloc(c->stmts, (size_t)c->capstmts * sizeof(*c->stmts));
    }
    c->stmts[c->nstmts++] = stmt;
}

/* Writes what libpq has buffered; arms the write event if the socket is full. */
static int conn_flush(fsr_pg_conn *c)
{
    int rv = PQflush(c->pg);
    if (rv < 0)
        return -1;
    if (rv > 0)
        event_add(c->wev, NULL);
    return 0;
}

static void on_conn_io(evutil_socket_t fd, short what, void *arg);
static void on_connect_io(evutil_socket_t fd, short what, void *arg);

static void conn_ready(fsr_pg_conn *c)
{
    fsr_pg_pool *pool = c->pool;
    conn_free_events(c);
    evtimer_del(c->timer);
    PQsetnonblocking(c->pg, 1);
    int fd = PQsocket(c->pg);
    c->rev = event_new(pool->base, fd, EV_READ | EV_PERSIST, on_conn_io, c);
    c->wev = event_new(pool->base, fd, EV_WRITE, on_conn_io, c);
    if (c->rev == NULL || c->wev == NULL) {
        conn_connect_failed(c, "event_new failed");
        return;
    }
    event_add(c->rev, NULL);
    c->state = CONN_READY;
    if (c->ever_connected || c->attempts > 0) {
        pool->st.reconnects++;
        FSR_INFO("pg: connection %d re-established", (int)(c - pool->conns));
    }
    c->ever_connected = true;
    c->attempts = 0;
    pool_kick(pool);
}

/* Waits on the socket for what PQconnectPoll asked for (the socket may change). */
static void conn_poll_wait(fsr_pg_conn *c, PostgresPollingStatusType st)
{
    if (c->cev) {
        event_free(c->cev);
        c->cev = NULL;
    }
    short what = (st == PGRES_POLLING_READING) ? EV_READ : EV_WRITE;
    c->cev = event_new(c->pool->base, PQsocket(c->pg), what, on_connect_io, c);
    if (c->cev == NULL) {
        conn_connect_failed(c, "event_new failed");
        return;
    }
    event_add(c->cev, NULL);
}

static void conn_connect(fsr_pg_conn *c)
{
    fsr_pg_pool *pool = c->pool;
    c->pg = PQconnectStartParams(pool->keywords, (const char *const *)pool->values,
                                 pool->expand_dbname);
    if (c->pg == NULL) {
        FSR_ERROR("pg: out of memory");
        abort();
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, NULL);
    c->state = CONN_CONNECTING;
    struct timeval tv = ms_tv(pool->connect_timeout_ms);
    evtimer_add(c->timer, &tv);
    // libpq's documented start: behave as if PQconnectPoll had returned POLLING_WRITING.
    conn_poll_wait(c, PGRES_POLLING_WRITING);
}

/* Starts |req| on the (READY, free) connection |c|. */
static void conn_send(fsr_pg_conn *c, pg_req *req)
{
    int ok;
    c->cur = req;
    req->conn = c;
    switch (req->kind) {
    case REQ_STMT:
        if (!stmt_prepared(c, req->stmt)) {
            req->preparing = true;
            ok = PQsendPrepare(c->pg, req->stmt->name, req->stmt->sql, 0, NULL);
        } else {
            ok = PQsendQueryPrepared(c->pg, req->stmt->name, req->nparams, req->values, NULL, NULL,
                                     0);
        }
        break;
    case REQ_SQL:
        ok = PQsendQueryParams(c->pg, req->sql, req->nparams, NULL, req->values, NULL, NULL, 0);
        break;
    default:
        ok = PQsendQuery(c->pg, req->sql);
        break;
    }
    if (!ok || conn_flush(c) != 0)
        conn_lost(c, PQerrorMessage(c->pg));
}

/* Idle: up, not pinned, nothing running, no cancel that could still hit the next query. */
static bool conn_idle(const fsr_pg_conn *c)
{
    return c->state == CONN_READY && !c->pinned && c->cur == NULL && c->cancel == NULL;
}

/*
 * The connection is gone.  Its running request and (if pinned) the requests of its
 * transaction fail with FSR_E_CLOSED.  An unpinned connection reconnects at once.
 */
static void conn_lost(fsr_pg_conn *c, const char *why)
{
    fsr_pg_pool *pool = c->pool;
    char line[512];
    one_line(line, sizeof line, why && *why ? why : "connection lost");
    FSR_WARN("pg: connection %d lost: %s", (int)(c - pool->conns), line);
    conn_close(c);
    pg_req *cur = c->cur;
    c->cur = NULL;
    bool ends_tx = cur && (cur->kind == REQ_COMMIT || cur->kind == REQ_ROLLBACK);
    if (c->pinned && !ends_tx) {
        c->state = CONN_DEAD;
    } else {
        c->pinned = false;
        c->ending = false;
        c->attempts = 0;
        conn_schedule(c, 0);
    }
    if (cur)
        req_complete(cur, FSR_E_CLOSED, NULL, line, NULL);
    if (pool->closing)
        return;
    // A transaction's queued statements fail too; its COMMIT/ROLLBACK ends the pinning.
    while (c->pinned && !TAILQ_EMPTY(&c->pending)) {
        pg_req *req = TAILQ_FIRST(&c->pending);
        TAILQ_REMOVE(&c->pending, req, link);
        req->queued = false;
        if (req->kind == REQ_COMMIT || req->kind == REQ_ROLLBACK) {
            c->pinned = false;
            c->ending = false;
            c->attempts = 0;
            conn_schedule(c, 0);
        }
        req_complete(req, FSR_E_CLOSED, NULL, line, NULL);
        if (pool->closing)
            return;
    }
}

/* |cur| finished: PQgetResult returned NULL.  Delivers the result and moves on. */
static void conn_finish(fsr_pg_conn *c)
{
    fsr_pg_pool *pool = c->pool;
    pg_req *req = c->cur;
    PGresult *res = c->acc;
    c->acc = NULL;
    int status = status_of(c->pg, res);

    if (req->preparing) {
        req->preparing = false;
        if (status == 0) {
            stmt_remember(c, req->stmt);
            pool->st.prepares++;
            PQclear(res);
            if (!req->abandoned) {
                // Now run it; |cur| stays set.
                c->cur = NULL;
                conn_send(c, req);
                return;
            }
            res = NULL;
        }
        // A failed PREPARE (bad SQL) is the statement's error.
    }

    c->cur = NULL;
    req->conn = NULL;
    fsr_pg_conn *pinned = NULL;
    const char *msg = NULL;
    switch (req->kind) {
    case REQ_BEGIN:
        if (status == 0 && !req->abandoned) {
            c->pinned = true;
            c->ending = false;
            pinned = c;
        }
        break;
    case REQ_COMMIT:
    case REQ_ROLLBACK:
        c->pinned = false;
        c->ending = false;
        // COMMIT of an aborted transaction "succeeds" with the tag ROLLBACK.
        if (req->kind == REQ_COMMIT && status == 0 && strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
            status = FSR_E_DB;
            msg = "transaction was aborted and has been rolled back";
        }
        break;
    default:
        break;
    }
    req_complete(req, status, res, msg, pinned);
    if (res)
        PQclear(res);
    if (pool->closing)
        return;
    pool_kick(pool);
}

/* Reads whatever arrived and completes |cur| once libpq has all of its results. */
static void conn_read(fsr_pg_conn *c)
{
    if (!PQconsumeInput(c->pg)) {
        conn_lost(c, PQerrorMessage(c->pg));
        return;
    }
    // Asynchronous notifications are not used; drain them.
    PGnotify *n;
    while ((n = PQnotifies(c->pg)) != NULL)
        PQfreemem(n);
    while (c->cur != NULL && !PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        if (res == NULL) {
            conn_finish(c);
            return;
        }
        // One statement yields one result; keep the first error if there are several.
        if (c->acc == NULL || (PQresultStatus(c->acc) != PGRES_FATAL_ERROR &&
                               PQresultStatus(res) == PGRES_FATAL_ERROR)) {
            if (c->acc)
                PQclear(c->acc);
            c->acc = res;
        } else {
            PQclear(res);
        }
    }
    if (c->state == CONN_READY && PQstatus(c->pg) == CONNECTION_BAD)
        conn_lost(c, PQerrorMessage(c->pg));
}

static void pool_enter(fsr_pg_pool *pool)
{
    pool->depth++;
}

static void pool_leave(fsr_pg_pool *pool)
{
    if (--pool->depth == 0 && pool->closing)
        pool_destroy(pool);
}

static void on_conn_io(evutil_socket_t fd, short what, void *arg)
{
    fsr_pg_conn *c = arg;
    fsr_pg_pool *pool = c->pool;
    pool_enter(pool);
    if ((what & EV_WRITE) && conn_flush(c) != 0)
        conn_lost(c, PQerrorMessage(c->pg));
    else if (what & EV_READ)
        conn_read(c);
    pool_leave(pool);
}

static void on_connect_io(evutil_socket_t fd, short what, void *arg)
{
    fsr_pg_conn *c = arg;
    fsr_pg_pool *pool = c->pool;
    pool_enter(pool);
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    if (st == PGRES_POLLING_OK)
        conn_ready(c);
    else if (st == PGRES_POLLING_FAILED)
        conn_connect_failed(c, PQerrorMessage(c->pg));
    else
        conn_poll_wait(c, st);
    pool_leave(pool);
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    fsr_pg_conn *c = arg;
    fsr_pg_pool *pool = c->pool;
    pool_enter(pool);
    switch (c->state) {
    case CONN_DOWN:
        conn_connect(c);
        break;
    case CONN_CONNECTING:
        conn_connect_failed(c, "connect timeout");
        break;
    case CONN_READY:
        // Watching a cancel: settled once delivered and the statement is over.
        if (c->cancel && atomic_load(&c->cancel->done) && c->cur == NULL) {
            conn_drop_cancel(c);
            pool_kick(pool);
        } else if (c->cancel && fsr_now_us() >= c->cancel_deadline_us) {
            conn_lost(c, "cancelled statement did not finish in time");
        } else if (c->cancel) {
            struct timeval tv = ms_tv(CANCEL_POLL_MS);
            evtimer_add(c->timer, &tv);
        }
        break;
    case CONN_DEAD:
        break;
    }
    pool_leave(pool);
}

static void *cancel_thread(void *arg)
{
    pg_cancel_job *job = arg;
    char err[256];
    // Failure is harmless: the statement runs to completion and its result is dropped.
    PQcancel(job->cancel, err, sizeof err);
    atomic_store(&job->done, true);
    cancel_job_release(job);
    return NULL;
}

/*
 * Asks the server to cancel what |c| is running, from a helper thread (PQcancel blocks),
 * and watches the connection until the cancel is settled.
 */
static void conn_cancel(fsr_pg_conn *c)
{
    fsr_pg_pool *pool = c->pool;
    if (c->cancel == NULL) {
        PGcancel *pc = PQgetCancel(c->pg);
        if (pc == NULL) {
            conn_lost(c, "cannot cancel a timed-out statement");
            return;
        }
        pg_cancel_job *job = fsr_xcalloc(1, sizeof(*job));
        job->cancel = pc;
        atomic_init(&job->refs, 2);
        atomic_init(&job->done, false);
        c->cancel = job;
        pthread_attr_t attr;
        pthread_t tid;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&tid, &attr, cancel_thread, job) != 0) {
            // No thread to spare: cancel inline; it blocks the loop only briefly on a
            // reachable server.
            cancel_thread(job);
        }
        pthread_attr_destroy(&attr);
    }
    c->cancel_deadline_us = fsr_now_us() + (int64_t)pool->connect_timeout_ms * 1000;
    struct timeval tv = ms_tv(CANCEL_POLL_MS);
    evtimer_add(c->timer, &tv);
}

/* Runs the callback of |req| with FSR_E_TIMEOUT now and marks it abandoned. */
static void req_abandon(pg_req *req)
{
    fsr_pg_pool *pool = req->pool;
    if (req->abandoned)
        return;
    req->abandoned = true;
    pool->st.errors++;
    pool->st.timeouts++;
    if (req->kind == REQ_BEGIN) {
        if (req->tx_cb)
            req->tx_cb(NULL, FSR_E_TIMEOUT, req->arg);
    } else if (req->cb) {
        fsr_pg_result r = { .status = FSR_E_TIMEOUT, .sqlstate = "", .message = "timeout" };
        req->cb(&r, req->arg);
    }
}

static void on_req_timeout(evutil_socket_t fd, short what, void *arg)
{
    pg_req *req = arg;
    fsr_pg_pool *pool = req->pool;
    fsr_pg_conn *c = req->conn;
    pool_enter(pool);
    if (req->queued && c != NULL && (req->kind == REQ_COMMIT || req->kind == REQ_ROLLBACK)) {
        // Waiting behind a statement of its transaction.  The transaction must still end,
        // and after reporting a timeout it must not commit: it stays queued as a ROLLBACK
        // (with a fresh timer, so that a stuck connection is eventually dropped).
        req_abandon(req);
        // If the callback freed the pool, |req| went with it.
        if (!pool->closing) {
            req->kind = REQ_ROLLBACK;
            req->sql = "ROLLBACK";
            struct timeval tv = ms_tv(pool->query_timeout_ms);
            evtimer_add(req->timer, &tv);
        }
    } else if (req->queued) {
        // Waiting in the pool queue, or behind another statement of a transaction.
        if (c != NULL) {
            TAILQ_REMOVE(&c->pending, req, link);
        } else {
            TAILQ_REMOVE(&pool->queue, req, link);
            pool->nqueued--;
        }
        req->queued = false;
        req->conn = NULL;
        req_complete(req, FSR_E_TIMEOUT, NULL, "timeout waiting for a connection", NULL);
    } else if (c != NULL) {
        // Running: answer now, cancel on the server, drop the result when it comes.
        req_abandon(req);
        if (!pool->closing && c->state == CONN_READY && c->cur == req)
            conn_cancel(c);
    }
    pool_leave(pool);
}

/* --- the pool ----------------------------------------------------------------------------- */

static void pool_kick(fsr_pg_pool *pool)
{
    if (!pool->closing)
        event_active(pool->kick, EV_TIMEOUT, 0);
}

/*
 * Hands work to free connections: a pinned connection's next statement, the safety
 * ROLLBACK of a connection left inside a transaction, then the pool queue in order.
 */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    fsr_pg_pool *pool = arg;
    pool_enter(pool);
    bool live = false;
    for (int i = 0; i < pool->size && !pool->closing; i++) {
        fsr_pg_conn *c = &pool->conns[i];
        if (c->state == CONN_CONNECTING || c->state == CONN_READY ||
            (c->state == CONN_DOWN && c->attempts == 0))
            live = true;
        if (c->state != CONN_READY || c->cur != NULL || c->cancel != NULL)
            continue;
        if (c->pinned) {
            pg_req *req = TAILQ_FIRST(&c->pending);
            if (req) {
                TAILQ_REMOVE(&c->pending, req, link);
                req->queued = false;
                conn_send(c, req);
            }
        } else if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
            // A BEGIN whose caller gave up, or "BEGIN" sent through fsr_pg_exec(): never
            // hand a connection inside a transaction to the next request.
            pg_req *req = req_new(pool, REQ_ROLLBACK, "ROLLBACK", 0, NULL);
            pool->st.queries--;
            req->abandoned = true;
            conn_send(c, req);
        }
    }
    while (!pool->closing && !TAILQ_EMPTY(&pool->queue)) {
        fsr_pg_conn *idle = NULL;
        for (int i = 0; i < pool->size && idle == NULL; i++)
            if (conn_idle(&pool->conns[i]))
                idle = &pool->conns[i];
        if (idle == NULL)
            break;
        pg_req *req = TAILQ_FIRST(&pool->queue);
        TAILQ_REMOVE(&pool->queue, req, link);
        pool->nqueued--;
        req->queued = false;
        conn_send(idle, req);
    }
    // Every connection failed its last attempt: the database is unreachable, so fail fast
    // rather than let requests sit out their timeouts.
    while (!live && !pool->closing && !TAILQ_EMPTY(&pool->queue)) {
        pg_req *req = TAILQ_FIRST(&pool->queue);
        TAILQ_REMOVE(&pool->queue, req, link);
        pool->nqueued--;
        req->queued = false;
        req_complete(req, FSR_E_CLOSED, NULL, "database unreachable", NULL);
    }
    pool_leave(pool);
}

int fsr_pg_pool_new(fsr_loop *loop, const fsr_pg_config *cfg, fsr_pg_pool **out)
{
    if (loop == NULL || cfg == NULL || out == NULL)
        return -EINVAL;
    int size = cfg->size ? cfg->size : FSR_PG_DEFAULT_SIZE;
    int queue_max = cfg->queue_max ? cfg->queue_max : FSR_PG_DEFAULT_QUEUE_MAX;
    int cto = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : FSR_PG_DEFAULT_TIMEOUT;
    int qto = cfg->query_timeout_ms ? cfg->query_timeout_ms : FSR_PG_DEFAULT_TIMEOUT;
    if (size < 1 || size > FSR_PG_MAX_SIZE || queue_max < 0 || cto < 0 || qto < 0)
        return FSR_E_CONFIG;

    if (cfg->conninfo != NULL) {
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(cfg->conninfo, &perr);
        if (opts == NULL) {
            char line[256];
            one_line(line, sizeof line, perr ? perr : "out of memory");
            FSR_ERROR("pg: bad connection string: %s", line);
            PQfreemem(perr);
            return FSR_E_CONFIG;
        }
        PQconninfoFree(opts);
    }

    fsr_pg_pool *pool = fsr_xcalloc(1, sizeof(*pool));
    pool->base = fsr_loop_base(loop);
    // With a conninfo, it goes in as "dbname" with expand_dbname, and application_name
    // (listed after it) overrides what it says; otherwise the fields go in one by one.
    // connect_timeout is left out: PQconnectPoll ignores it, our timer enforces it.
    char port[16] = "";
    if (cfg->port > 0)
        snprintf(port, sizeof port, "%d", cfg->port);
    const char *kv[][2] = {
        { "dbname", cfg->conninfo },
        { "host", cfg->conninfo ? NULL : cfg->host },
        { "port", cfg->conninfo ? NULL : port },
        { "dbname", cfg->conninfo ? NULL : cfg->dbname },
        { "user", cfg->conninfo ? NULL : cfg->user },
        { "password", cfg->conninfo ? NULL : cfg->password },
        { "application_name", cfg->application_name },
    };
    int nkw = 0;
    for (size_t i = 0; i < FSR_ARRAY_SIZE(kv); i++) {
        if (kv[i][1] == NULL || kv[i][1][0] == '\0')
            continue;
        pool->keywords[nkw] = kv[i][0];
        pool->values[nkw] = fsr_xstrdup(kv[i][1]);
        nkw++;
    }
    pool->expand_dbname = cfg->conninfo != NULL;
    pool->size = size;
    pool->queue_max = queue_max;
    pool->connect_timeout_ms = cto;
    pool->query_timeout_ms = qto;
    pool->rng = (uint32_t)fsr_now_us() | 1u;
    TAILQ_INIT(&pool->queue);
    pool->kick = event_new(pool->base, -1, 0, on_kick, pool);
    pool->conns = fsr_xcalloc((size_t)size, sizeof(fsr_pg_conn));
    pool->st.size = size;
    for (int i = 0; i < size; i++) {
        fsr_pg_conn *c = &pool->conns[i];
        c->pool = pool;
        TAILQ_INIT(&c->pending);
        c->timer = evtimer_new(pool->base, on_conn_timer, c);
        if (c->timer == NULL || pool->kick == NULL) {
            FSR_ERROR("pg: event_new failed");
            abort();
        }
    }
    // Connect from the loop, so a synchronous failure cannot call back into the caller.
    for (int i = 0; i < size; i++)
        conn_schedule(&pool->conns[i], 0);
    *out = pool;
    return 0;
}

static void pool_destroy(fsr_pg_pool *pool)
{
    for (int i = 0; i < pool->size; i++) {
        fsr_pg_conn *c = &pool->conns[i];
        conn_close(c);
        event_free(c->timer);
        free(c->stmts);
    }
    event_free(pool->kick);
    free(pool->conns);
    for (int i = 0; pool->values[i] != NULL; i++)
        free(pool->values[i]);
    free(pool);
}

void fsr_pg_pool_free(fsr_pg_pool *pool)
{
    if (pool == NULL || pool->closing)
        return;
    pool->closing = true;
    // Everything still owed a callback gets FSR_E_CLOSED.  Callbacks may call back into the
    // pool: every entry point refuses work once |closing| is set.
    pool_enter(pool);
    while (!TAILQ_EMPTY(&pool->queue)) {
        pg_req *req = TAILQ_FIRST(&pool->queue);
        TAILQ_REMOVE(&pool->queue, req, link);
        pool->nqueued--;
        req->queued = false;
        req_complete(req, FSR_E_CLOSED, NULL, "pool closed", NULL);
    }
    for (int i = 0; i < pool->size; i++) {
        fsr_pg_conn *c = &pool->conns[i];
        pg_req *cur = c->cur;
        c->cur = NULL;
        if (cur)
            req_complete(cur, FSR_E_CLOSED, NULL, "pool closed", NULL);
        while (!TAILQ_EMPTY(&c->pending)) {
            pg_req *req = TAILQ_FIRST(&c->pending);
            TAILQ_REMOVE(&c->pending, req, link);
            req->queued = false;
            req_complete(req, FSR_E_CLOSED, NULL, "pool closed", NULL);
        }
    }
    pool_leave(pool); // destroys now, or when the outermost handler returns
}

/* Accepts |req| into the pool queue, within the bound (see fsr_pg_query()). */
static int pool_submit(fsr_pg_pool *pool, pg_req *req)
{
    TAILQ_INSERT_TAIL(&pool->queue, req, link);
    pool->nqueued++;
    req->queued = true;
    pool_kick(pool);
    return 0;
}

/*
 * The queue bound: requests that will find a free connection at the next kick don't count
 * as waiting.
 */
static int pool_admit(const fsr_pg_pool *pool)
{
    if (pool->closing)
        return FSR_E_CLOSED;
    int idle = 0;
    for (int i = 0; i < pool->size; i++)
        idle += conn_idle(&pool->conns[i]);
    if (pool->nqueued >= pool->queue_max + idle)
        return FSR_E_POOL;
    return 0;
}

static int check_params(int nparams, const char *const *values)
{
    if (nparams < 0 || nparams > 65535 || (nparams > 0 && values == NULL))
        return -EINVAL;
    return 0;
}

int fsr_pg_query(fsr_pg_pool *pool, const fsr_pg_stmt *stmt, int nparams, const char *const *values,
                 fsr_pg_cb cb, void *arg)
{
    if (pool == NULL || stmt == NULL || stmt->name == NULL || stmt->sql == NULL || cb == NULL ||
        check_params(nparams, values) != 0)
        return -EINVAL;
    int rv = pool_admit(pool);
    if (rv != 0)
        return rv;
    pg_req *req = req_new(pool, REQ_STMT, NULL, nparams, values);
    req->stmt = stmt;
    req->cb = cb;
    req->arg = arg;
    return pool_submit(pool, req);
}

int fsr_pg_exec(fsr_pg_pool *pool, const char *sql, int nparams, const char *const *values,
                fsr_pg_cb cb, void *arg)
{
    if (pool == NULL || sql == NULL || cb == NULL || check_params(nparams, values) != 0)
        return -EINVAL;
    int rv = pool_admit(pool);
    if (rv != 0)
        return rv;
    pg_req *req = req_new(pool, REQ_SQL, sql, nparams, values);
    req->cb = cb;
    req->arg = arg;
    return pool_submit(pool, req);
}

int fsr_pg_ping(fsr_pg_pool *pool, fsr_pg_cb cb, void *arg)
{
    return fsr_pg_exec(pool, "SELECT 1", 0, NULL, cb, arg);
}

int fsr_pg_tx_begin(fsr_pg_pool *pool, fsr_pg_tx_cb cb, void *arg)
{
    if (pool == NULL || cb == NULL)
        return -EINVAL;
    int rv = pool_admit(pool);
    if (rv != 0)
        return rv;
    pg_req *req = req_new(pool, REQ_BEGIN, "BEGIN", 0, NULL);
    req->tx_cb = cb;
    req->arg = arg;
    return pool_submit(pool, req);
}

/* Queues |req| behind the transaction's earlier statements. */
static void conn_submit(fsr_pg_conn *c, pg_req *req)
{
    req->conn = c;
    req->queued = true;
    TAILQ_INSERT_TAIL(&c->pending, req, link);
    pool_kick(c->pool);
}

static int conn_check(const fsr_pg_conn *c)
{
    if (c == NULL || !c->pinned)
        return -EINVAL;
    if (c->pool->closing || c->state != CONN_READY || c->ending)
        return FSR_E_CLOSED;
    return 0;
}

int fsr_pg_conn_query(fsr_pg_conn *c, const fsr_pg_stmt *stmt, int nparams,
                      const char *const *values, fsr_pg_cb cb, void *arg)
{
    if (stmt == NULL || stmt->name == NULL || stmt->sql == NULL || cb == NULL ||
        check_params(nparams, values) != 0)
        return -EINVAL;
    int rv = conn_check(c);
    if (rv != 0)
        return rv;
    pg_req *req = req_new(c->pool, REQ_STMT, NULL, nparams, values);
    req->stmt = stmt;
    req->cb = cb;
    req->arg = arg;
    conn_submit(c, req);
    return 0;
}

int fsr_pg_conn_exec(fsr_pg_conn *c, const char *sql, int nparams, const char *const *values,
                     fsr_pg_cb cb, void *arg)
{
    if (sql == NULL || cb == NULL || check_params(nparams, values) != 0)
        return -EINVAL;
    int rv = conn_check(c);
    if (rv != 0)
        return rv;
    pg_req *req = req_new(c->pool, REQ_SQL, sql, nparams, values);
    req->cb = cb;
    req->arg = arg;
    conn_submit(c, req);
    return 0;
}

static int tx_end(fsr_pg_conn *c, enum req_kind kind, fsr_pg_cb cb, void *arg)
{
    if (c == NULL || !c->pinned || c->ending)
        return -EINVAL;
    fsr_pg_pool *pool = c->pool;
    if (pool->closing)
        return FSR_E_CLOSED;
    if (c->state == CONN_DEAD) {
        // The server already rolled back; the connection goes back to reconnecting.
        c->pinned = false;
        c->attempts = 0;
        conn_schedule(c, 0);
        return FSR_E_CLOSED;
    }
    c->ending = true;
    pg_req *req = req_new(pool, kind, kind == REQ_COMMIT ? "COMMIT" : "ROLLBACK", 0, NULL);
    req->cb = cb;
    req->arg = arg;
    if (cb == NULL)
        req->abandoned = true;
    conn_submit(c, req);
    return 0;
}

int fsr_pg_tx_commit(fsr_pg_conn *c, fsr_pg_cb cb, void *arg)
{
    return tx_end(c, REQ_COMMIT, cb, arg);
}

int fsr_pg_tx_rollback(fsr_pg_conn *c, fsr_pg_cb cb, void *arg)
{
    return tx_end(c, REQ_ROLLBACK, cb, arg);
}

void fsr_pg_pool_stats(const fsr_pg_pool *pool, fsr_pg_stats *out)
{
    *out = pool->st;
    out->size = pool->size;
    out->connected = out->busy = 0;
    for (int i = 0; i < pool->size; i++) {
        const fsr_pg_conn *c = &pool->conns[i];
        out->connected += c->state == CONN_READY;
        out->busy += (c->state == CONN_READY || c->state == CONN_DEAD) &&
                     (c->cur != NULL || c->pinned || c->cancel != NULL);
    }
    out->waiting = pool->nqueued;
}

/* --- blocking helpers --------------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        one_line(err, errlen, msg);
}

int fsr_pg_sync_connect(const char *conninfo, PGconn **out, char *err, size_t errlen)
{
    if (conninfo == NULL || out == NULL)
        return -EINVAL;
    PGconn *c = PQconnectdb(conninfo);
    if (c == NULL) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        set_err(err, errlen, PQerrorMessage(c));
        PQfinish(c);
        return FSR_E_CLOSED;
    }
    PQsetNoticeProcessor(c, on_notice, NULL);
    *out = c;
    return 0;
}

int fsr_pg_sync_exec(PGconn *conn, const char *sql, int nparams, const char *const *values,
                     PGresult **out, char *err, size_t errlen)
{
    if (conn == NULL || sql == NULL || check_params(nparams, values) != 0)
        return -EINVAL;
    PGresult *res = nparams == 0 ? PQexec(conn, sql)
                                 : PQexecParams(conn, sql, nparams, NULL, values, NULL, NULL, 0);
    int rv = status_of(conn, res);
    if (rv != 0) {
        set_err(err, errlen, res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        PQclear(res);
        return rv;
    }
    if (out != NULL)
        *out = res;
    else
        PQclear(res);
    return 0;
}

void fsr_pg_sync_close(PGconn *conn)
{
    if (conn != NULL)
        PQfinish(conn);
}

int fsr_pg_sync_run(const char *conninfo, const char *sql, char *err, size_t errlen)
{
    PGconn *c;
    int rv = fsr_pg_sync_connect(conninfo, &c, err, errlen);
    if (rv != 0)
        return rv;
    rv = fsr_pg_sync_exec(c, sql, 0, NULL, NULL, err, errlen);
    PQfinish(c);
    return rv;
}
