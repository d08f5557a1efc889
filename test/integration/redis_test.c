/* SPDX-License-Identifier: MIT */
/* Integration tests for lib/redis.c against a throwaway redis-server. */
#include "fsr/redis.h"
#include "fsr/log.h"
#include "fsr/loop.h"
#include "fsr/mem.h"
#include "fsr/status.h"

#include <check.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static fsr_loop *loop;
static struct event_base *base;
static const char *host;
static int port;

/* Set around every API call: a callback that sees it set ran synchronously (STYLE §4). */
static bool in_call;

static void setup(void)
{
    host = getenv("TEST_REDIS_HOST");
    const char *p = getenv("TEST_REDIS_PORT");
    ck_assert_msg(host && p, "TEST_REDIS_HOST/PORT not set: run through with_deps.sh");
    port = atoi(p);
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

typedef struct box {
    int calls;
    int status;
    int type;
    long long integer;
    char str[256];
    size_t len;
    int64_t at_ms;
} box;

static void on_reply(const redisReply *reply, int status, void *arg)
{
    box *b = arg;
    ck_assert_msg(!in_call, "callback ran inside the call that started it");
    b->calls++;
    b->status = status;
    b->type = reply ? reply->type : -1;
    b->integer = reply ? reply->integer : 0;
    b->str[0] = '\0';
    b->len = 0;
    if (reply && reply->str) {
        b->len = reply->len;
        memcpy(b->str, reply->str, reply->len < sizeof b->str ? reply->len : sizeof b->str - 1);
        b->str[reply->len < sizeof b->str ? reply->len : sizeof b->str - 1] = '\0';
    }
    b->at_ms = now_ms();
}

/* fsr_redis_command with the synchronous-callback guard. */
#define CMD(r, b, ...)                                                                             \
    ({                                                                                             \
        in_call = true;                                                                            \
        int rv_ = fsr_redis_command((r), on_reply, (b), __VA_ARGS__);                              \
        in_call = false;                                                                           \
        rv_;                                                                                       \
    })

static fsr_redis *make(int command_timeout_ms)
{
    fsr_redis_options o = { .connect_timeout_ms = 2000, .command_timeout_ms = command_timeout_ms };
    fsr_redis *r = NULL;
    ck_assert_int_eq(fsr_redis_new(loop, host, port, &o, &r), 0);
    ck_assert_ptr_nonnull(r);
    return r;
}

static void wait_connected(fsr_redis *r)
{
    int64_t deadline = now_ms() + 5000;
    while (!fsr_redis_is_connected(r)) {
        ck_assert_msg(now_ms() < deadline, "redis did not connect");
        run_for(10);
    }
}

/* A blocking side connection for admin commands (CLIENT KILL, CLIENT PAUSE, PUBLISH). */
static redisReply *admin(const char *fmt, ...)
{
    redisContext *c = redisConnect(host, port);
    ck_assert_msg(c != NULL && c->err == 0, "admin connect: %s", c ? c->errstr : "oom");
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(rep);
    redisFree(c);
    return rep;
}

START_TEST(test_redis_set_get)
{
    fsr_redis *r = make(2000);
    // Issued before the connection is up: queued, then sent.
    box set = { 0 }, get = { 0 };
    ck_assert_int_eq(CMD(r, &set, "SET %s %s", "it:k", "hello world"), 0);
    ck_assert_int_eq(CMD(r, &get, "GET %s", "it:k"), 0);
    ck_assert_int_eq(set.calls + get.calls, 0);
    ck_assert(run_until(&get.calls, 1, 5000));
    ck_assert_int_eq(set.calls, 1);
    ck_assert_int_eq(set.status, 0);
    ck_assert_str_eq(set.str, "OK");
    ck_assert_int_eq(get.status, 0);
    ck_assert_int_eq(get.type, REDIS_REPLY_STRING);
    ck_assert_str_eq(get.str, "hello world");
    ck_assert(fsr_redis_is_connected(r));

    // argv form, binary-safe.
    const char *argv[] = { "SET", "it:bin", "a\0b" };
    size_t lens[] = { 3, 6, 3 };
    box s2 = { 0 }, g2 = { 0 };
    in_call = true;
    ck_assert_int_eq(fsr_redis_command_argv(r, on_reply, &s2, 3, argv, lens), 0);
    in_call = false;
    ck_assert_int_eq(CMD(r, &g2, "GET %b", "it:bin", (size_t)6), 0);
    ck_assert(run_until(&g2.calls, 1, 5000));
    ck_assert_int_eq(s2.status, 0);
    ck_assert_int_eq(g2.len, 3);
    ck_assert_mem_eq(g2.str, "a\0b", 3);

    // A missing key is a nil reply, not an error.
    box nil = { 0 };
    ck_assert_int_eq(CMD(r, &nil, "GET %s", "it:missing"), 0);
    ck_assert(run_until(&nil.calls, 1, 5000));
    ck_assert_int_eq(nil.status, 0);
    ck_assert_int_eq(nil.type, REDIS_REPLY_NIL);

    // An error reply is FSR_E_DB with the reply.
    box err = { 0 };
    ck_assert_int_eq(CMD(r, &err, "INCR %s", "it:k"), 0);
    ck_assert(run_until(&err.calls, 1, 5000));
    ck_assert_int_eq(err.status, FSR_E_DB);
    ck_assert_int_eq(err.type, REDIS_REPLY_ERROR);
    ck_assert(strstr(err.str, "not an integer") != NULL);

    // Ping.
    box ping = { 0 };
    in_call = true;
    ck_assert_int_eq(fsr_redis_ping(r, on_reply, &ping), 0);
    in_call = false;
    ck_assert(run_until(&ping.calls, 1, 5000));
    ck_assert_int_eq(ping.status, 0);
    ck_assert_str_eq(ping.str, "PONG");

    // Fire and forget.
    ck_assert_int_eq(fsr_redis_command(r, NULL, NULL, "SET %s %s", "it:ff", "1"), 0);
    box ff = { 0 };
    ck_assert_int_eq(CMD(r, &ff, "GET %s", "it:ff"), 0);
    ck_assert(run_until(&ff.calls, 1, 5000));
    ck_assert_str_eq(ff.str, "1");

    ck_assert_int_eq(fsr_redis_command(r, on_reply, NULL, NULL), -EINVAL);
    ck_assert_int_eq(fsr_redis_command_argv(r, on_reply, NULL, 0, argv, NULL), -EINVAL);

    fsr_redis_stats st;
    fsr_redis_stats_get(r, &st);
    ck_assert(st.connected);
    ck_assert_int_eq(st.pending, 0);
    ck_assert_uint_eq(st.commands, 9);
    ck_assert_uint_eq(st.errors, 1);
    ck_assert_uint_eq(st.reconnects, 0);
    fsr_redis_free(r);
}
END_TEST

START_TEST(test_redis_command_timeout)
{
    fsr_redis *r = make(200);
    wait_connected(r);
    // Every client is paused for 800 ms: the GET is answered only after that.
    redisReply *rep = admin("CLIENT PAUSE 800 ALL");
    ck_assert_int_eq(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    box slow = { 0 };
    int64_t t0 = now_ms();
    ck_assert_int_eq(CMD(r, &slow, "GET %s", "it:k"), 0);
    ck_assert(run_until(&slow.calls, 1, 3000));
    ck_assert_int_eq(slow.status, FSR_E_TIMEOUT);
    ck_assert_int_eq(slow.type, -1);
    ck_assert_int_ge(slow.at_ms - t0, 180);
    ck_assert_int_lt(slow.at_ms - t0, 700);
    fsr_redis_stats st;
    fsr_redis_stats_get(r, &st);
    ck_assert_int_eq(st.pending, 1); // the late reply is still owed by the server

    // The late reply arrives and is dropped: exactly one callback.
    int64_t deadline = now_ms() + 3000;
    do {
        run_for(20);
        fsr_redis_stats_get(r, &st);
    } while (st.pending > 0 && now_ms() < deadline);
    ck_assert_int_eq(st.pending, 0);
    ck_assert_int_eq(slow.calls, 1);
    ck_assert_uint_eq(st.timeouts, 1);

    // The connection is still good.
    box ok = { 0 };
    ck_assert_int_eq(CMD(r, &ok, "PING"), 0);
    ck_assert(run_until(&ok.calls, 1, 3000));
    ck_assert_int_eq(ok.status, 0);
    fsr_redis_stats_get(r, &st);
    ck_assert_uint_eq(st.reconnects, 0);
    fsr_redis_free(r);
}
END_TEST

static fsr_redis *retry_r;
static int retry_rv;

static void on_reply_retry(const redisReply *reply, int status, void *arg)
{
    on_reply(reply, status, arg);
    // During the disconnect the client refuses new commands synchronously.
    retry_rv = fsr_redis_command(retry_r, on_reply, NULL, "PING");
}

START_TEST(test_redis_reconnect_after_client_kill)
{
    fsr_redis *r = make(10000);
    wait_connected(r);
    box id1 = { 0 };
    ck_assert_int_eq(CMD(r, &id1, "CLIENT ID"), 0);
    ck_assert(run_until(&id1.calls, 1, 3000));
    ck_assert_int_eq(id1.type, REDIS_REPLY_INTEGER);

    // A command in flight when the connection is killed fails with FSR_E_CLOSED.
    box blocked = { 0 };
    retry_r = r;
    retry_rv = 0;
    in_call = true;
    ck_assert_int_eq(fsr_redis_command(r, on_reply_retry, &blocked, "BLPOP %s %d", "it:nothing", 5),
                     0);
    in_call = false;
    run_for(100);
    redisReply *rep = admin("CLIENT KILL ID %lld", id1.integer);
    ck_assert_int_eq(rep->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(rep->integer, 1);
    freeReplyObject(rep);
    ck_assert(run_until(&blocked.calls, 1, 3000));
    ck_assert_int_eq(blocked.status, FSR_E_CLOSED);
    ck_assert_int_eq(retry_rv, FSR_E_CLOSED);

    // It reconnects by itself, as a new client.
    wait_connected(r);
    box id2 = { 0 };
    ck_assert_int_eq(CMD(r, &id2, "CLIENT ID"), 0);
    ck_assert(run_until(&id2.calls, 1, 3000));
    ck_assert_int_eq(id2.status, 0);
    ck_assert_int_ne(id2.integer, id1.integer);
    fsr_redis_stats st;
    fsr_redis_stats_get(r, &st);
    ck_assert_uint_eq(st.reconnects, 1);
    ck_assert_int_eq(blocked.calls, 1);
    fsr_redis_free(r);
}
END_TEST

typedef struct msgbox {
    int calls;
    char pattern[64];
    char channel[64];
    char msg[64];
    size_t len;
} msgbox;

static void on_message(const char *pattern, const char *channel, const char *msg, size_t len,
                       void *arg)
{
    msgbox *m = arg;
    m->calls++;
    snprintf(m->pattern, sizeof m->pattern, "%s", pattern);
    snprintf(m->channel, sizeof m->channel, "%s", channel);
    snprintf(m->msg, sizeof m->msg, "%s", msg);
    m->len = len;
}

/* Publishes until the subscriber got |want| messages in total. */
static void publish_until(fsr_redis *r, msgbox *m, int want, const char *channel,
                          const char *payload)
{
    int64_t deadline = now_ms() + 5000;
    while (m->calls < want) {
        ck_assert_msg(now_ms() < deadline, "no message delivered on %s", channel);
        box pub = { 0 };
        ck_assert_int_eq(CMD(r, &pub, "PUBLISH %s %s", channel, payload), 0);
        ck_assert(run_until(&pub.calls, 1, 3000));
        ck_assert_int_eq(pub.status, 0);
        run_for(pub.integer > 0 ? 50 : 30);
    }
}

START_TEST(test_redis_pubsub_delivery)
{
    fsr_redis *r = make(2000);
    msgbox m = { 0 }, other = { 0 };
    ck_assert_int_eq(fsr_redis_subscribe(r, "it.events.*", on_message, &m), 0);
    ck_assert_int_eq(fsr_redis_subscribe(r, "it.events.*", on_message, &m), -EEXIST);
    ck_assert_int_eq(fsr_redis_subscribe(r, "it.other", on_message, &other), 0);
    wait_connected(r);
    int64_t deadline = now_ms() + 5000;
    while (!fsr_redis_is_subscribed(r)) {
        ck_assert_msg(now_ms() < deadline, "subscriptions not confirmed");
        run_for(10);
    }
    publish_until(r, &m, 1, "it.events.price", "{\"id\":1}");
    ck_assert_str_eq(m.pattern, "it.events.*");
    ck_assert_str_eq(m.channel, "it.events.price");
    ck_assert_str_eq(m.msg, "{\"id\":1}");
    ck_assert_int_eq(m.len, 8);
    ck_assert_int_eq(other.calls, 0);

    // Plain channel names match themselves only.
    publish_until(r, &other, 1, "it.other", "x");
    ck_assert_str_eq(other.channel, "it.other");
    int before = m.calls;
    run_for(50);
    ck_assert_int_eq(m.calls, before);

    // Kill the pub/sub connection: it comes back and subscribes again.
    redisReply *rep = admin("CLIENT KILL TYPE pubsub");
    ck_assert_int_eq(rep->type, REDIS_REPLY_INTEGER);
    ck_assert_int_ge(rep->integer, 1);
    freeReplyObject(rep);
    run_for(20);
    deadline = now_ms() + 5000;
    while (!fsr_redis_is_subscribed(r)) {
        ck_assert_msg(now_ms() < deadline, "not resubscribed");
        run_for(10);
    }
    publish_until(r, &m, before + 1, "it.events.bond", "again");
    ck_assert_str_eq(m.channel, "it.events.bond");
    ck_assert_str_eq(m.msg, "again");
    fsr_redis_stats st;
    fsr_redis_stats_get(r, &st);
    ck_assert_uint_ge(st.messages, 3);
    ck_assert_uint_ge(st.reconnects, 1);
    fsr_redis_free(r);
}
END_TEST

START_TEST(test_redis_unreachable)
{
    // A port just found free has no server: commands fail with FSR_E_CLOSED, never hang.
    FILE *f = popen("/usr/bin/python3 -c 'import socket; s=socket.socket(); "
                    "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'",
                    "r");
    ck_assert_ptr_nonnull(f);
    char buf[16];
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
    pclose(f);
    fsr_redis_options o = { .connect_timeout_ms = 500, .command_timeout_ms = 5000 };
    fsr_redis *r = NULL;
    ck_assert_int_eq(fsr_redis_new(loop, "127.0.0.1", atoi(buf), &o, &r), 0);
    box b = { 0 };
    int rv = CMD(r, &b, "PING");
    if (rv == 0) {
        ck_assert(run_until(&b.calls, 1, 3000));
        ck_assert_int_eq(b.status, FSR_E_CLOSED);
    } else {
        ck_assert_int_eq(rv, FSR_E_CLOSED);
    }
    run_for(300);
    ck_assert(!fsr_redis_is_connected(r));
    in_call = true;
    ck_assert_int_eq(fsr_redis_command(r, on_reply, &b, "PING"), FSR_E_CLOSED);
    in_call = false;
    fsr_redis_free(r);
    ck_assert_int_eq(fsr_redis_new(loop, NULL, 1, NULL, &r), -EINVAL);
    ck_assert_int_eq(fsr_redis_new(loop, "h", 70000, NULL, &r), -EINVAL);
}
END_TEST

static fsr_redis *free_me;

static void on_reply_then_free(const redisReply *reply, int status, void *arg)
{
    on_reply(reply, status, arg);
    fsr_redis_free(free_me);
    free_me = NULL;
}

START_TEST(test_redis_free_with_pending)
{
    fsr_redis *r = make(5000);
    wait_connected(r);
    box a = { 0 }, b = { 0 };
    ck_assert_int_eq(CMD(r, &a, "BLPOP %s %d", "it:nothing", 2), 0);
    ck_assert_int_eq(CMD(r, &b, "PING"), 0);
    fsr_redis_free(r);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(a.status, FSR_E_CLOSED);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(b.status, FSR_E_CLOSED);

    // Freed from inside a reply callback with another command pending and a subscription.
    free_me = make(5000);
    msgbox m = { 0 };
    ck_assert_int_eq(fsr_redis_subscribe(free_me, "it.x", on_message, &m), 0);
    wait_connected(free_me);
    box first = { 0 }, second = { 0 };
    in_call = true;
    ck_assert_int_eq(fsr_redis_command(free_me, on_reply_then_free, &first, "PING"), 0);
    in_call = false;
    ck_assert_int_eq(CMD(free_me, &second, "BLPOP %s %d", "it:nothing", 2), 0);
    ck_assert(run_until(&first.calls, 1, 3000));
    ck_assert_int_eq(first.status, 0);
    ck_assert_ptr_null(free_me);
    ck_assert_int_eq(second.calls, 1);
    ck_assert_int_eq(second.status, FSR_E_CLOSED);
    run_for(100);
    ck_assert_int_eq(second.calls, 1);
}
END_TEST

static Suite *redis_suite(void)
{
    Suite *s = suite_create("redis");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        { "set_get", test_redis_set_get },
        { "timeout", test_redis_command_timeout },
        { "reconnect", test_redis_reconnect_after_client_kill },
        { "pubsub", test_redis_pubsub_delivery },
        { "unreachable", test_redis_unreachable },
        { "free", test_redis_free_with_pending },
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
    fsr_log_init("redis_test", level, NULL);
    if (level == NULL || *level == '\0')
        fsr_log_min_level = (fsr_log_level)(FSR_LOG_ERROR + 1);
    SRunner *sr = srunner_create(redis_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
