/* SPDX-License-Identifier: MIT */
/* Redis client on hiredis' async API and its libevent adapter: timeouts, reconnects, pub/sub. */
#include "fsr/redis.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/status.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <event2/event.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

/*
 * hiredis 0.14 owns each command's callback slot until the reply arrives, or until the
 * context is freed, when every pending callback runs with a NULL reply.  So each command
 * gets a small wrapper (redis_cmd) as hiredis' privdata: our timer may answer the caller first
 * (FSR_E_TIMEOUT) and mark it done, and the wrapper is freed only when hiredis lets go of
 * it, dropping the late reply.  That keeps "exactly once" without touching hiredis'
 * internals.  A timed-out command is not retracted: Redis answers in order on a connection,
 * so commands behind it wait for it (Redis is single-threaded anyway).
 *
 * hiredis frees a context itself after a connection error (and calls onDisconnect, or
 * onConnect with an error when the connection never came up).  We learn about it only in
 * those callbacks, so |ac| is cleared there and a timer schedules the next attempt.
 *
 * Freeing from inside a callback: fsr_redis_free() detaches every wrapper (redis_cmd.r = NULL)
 * and clears ac->data before asking hiredis to free the context, which hiredis defers while
 * one of its callbacks is on the stack (REDIS_IN_CALLBACK).  Our callbacks therefore do all
 * their bookkeeping before calling the user and touch nothing of |r| afterwards.
 */

typedef struct redis_cmd redis_cmd;
struct redis_cmd {
    LIST_ENTRY(redis_cmd) link;
    fsr_redis *r; /* NULL once the client is being freed */
    fsr_redis_cb cb;
    void *arg;
    struct event *timer;
    bool done; /* the callback ran */
    bool ping; /* expects PONG */
};

enum rconn_state {
    RC_DOWN, /* no context; |timer| schedules the next attempt */
    RC_CONNECTING,
    RC_UP,
};

typedef struct redis_conn {
    fsr_redis *r;
    redisAsyncContext *ac;
    enum rconn_state state;
    struct event *timer; /* connect timeout or next attempt */
    int attempts;        /* consecutive failures */
    bool ever_connected;
    bool is_sub;
    bool started;
} redis_conn;

typedef struct redis_sub redis_sub;
struct redis_sub {
    TAILQ_ENTRY(redis_sub) link;
    char *pattern;
    fsr_redis_message_cb cb;
    void *arg;
    bool confirmed;
};

struct fsr_redis {
    struct event_base *base;
    char *host;
    int port;
    int connect_timeout_ms;
    int command_timeout_ms;
    redis_conn cmd;
    redis_conn sub;
    LIST_HEAD(, redis_cmd) cmds;
    int pending;
    TAILQ_HEAD(, redis_sub) subs;
    bool closing;
    uint32_t rng;
    fsr_redis_stats st;
};

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static void rconn_connect(redis_conn *rc);

static struct timeval ms_tv(int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    return tv;
}

static const char *conn_name(const redis_conn *rc)
{
    return rc->is_sub ? "pub/sub" : "command";
}

static void rconn_schedule(redis_conn *rc, int ms)
{
    rc->state = RC_DOWN;
    struct timeval tv = ms_tv(ms);
    evtimer_add(rc->timer, &tv);
}

/* An attempt failed: retry with exponential backoff and jitter. */
static void rconn_failed(redis_conn *rc, const char *why)
{
    fsr_redis *r = rc->r;
    rc->ac = NULL;
    rc->attempts++;
    int ms = BACKOFF_MIN_MS;
    for (int i = 1; i < rc->attempts && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 17;
    r->rng ^= r->rng << 5;
    ms -= (int)(r->rng % (uint32_t)(ms / 4 + 1));
    if (rc->attempts == 1)
        FSR_WARN("redis: %s connection to %s:%d failed: %s (retrying)", conn_name(rc), r->host,
                 r->port, why ? why : "error");
    else
        FSR_DEBUG("redis: %s connection failed again (%d): %s; retry in %d ms", conn_name(rc),
                  rc->attempts, why ? why : "error", ms);
    rconn_schedule(rc, ms);
}

static void sub_send(redis_conn *rc, redis_sub *s);

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_conn *rc = ac->data;
    if (rc == NULL)
        return;
    fsr_redis *r = rc->r;
    evtimer_del(rc->timer);
    if (status != REDIS_OK) {
        // hiredis frees the context after this and fails its pending commands.
        rconn_failed(rc, ac->c.errstr);
        return;
    }
    rc->state = RC_UP;
    if (rc->ever_connected || rc->attempts > 0) {
        r->st.reconnects++;
        FSR_INFO("redis: %s connection to %s:%d re-established", conn_name(rc), r->host, r->port);
    }
    rc->ever_connected = true;
    rc->attempts = 0;
    if (rc->is_sub) {
        redis_sub *s;
        TAILQ_FOREACH(s, &r->subs, link)
        sub_send(rc, s);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_conn *rc = ac->data;
    if (rc == NULL)
        return;
    fsr_redis *r = rc->r;
    rc->ac = NULL;
    if (rc->is_sub) {
        redis_sub *s;
        TAILQ_FOREACH(s, &r->subs, link)
        s->confirmed = false;
    }
    FSR_WARN("redis: %s connection to %s:%d lost: %s", conn_name(rc), r->host, r->port,
             ac->errstr ? ac->errstr : "closed");
    // Reconnect at once; backoff applies if that fails.
    rc->attempts = 0;
    rconn_schedule(rc, 0);
}

static void rconn_connect(redis_conn *rc)
{
    fsr_redis *r = rc->r;
    redisAsyncContext *ac =
        r->host[0] == '/' ? redisAsyncConnectUnix(r->host) : redisAsyncConnect(r->host, r->port);
    if (ac == NULL) {
        FSR_ERROR("redis: out of memory");
        abort();
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr ? ac->errstr : "error");
        redisAsyncFree(ac);
        rconn_failed(rc, why);
        return;
    }
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        redisAsyncFree(ac);
        rconn_failed(rc, "cannot attach to the loop");
        return;
    }
    ac->data = rc;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rc->ac = ac;
    rc->state = RC_CONNECTING;
    struct timeval tv = ms_tv(r->connect_timeout_ms);
    evtimer_add(rc->timer, &tv);
}

static void on_rconn_timer(evutil_socket_t fd, short what, void *arg)
{
    redis_conn *rc = arg;
    if (rc->state == RC_DOWN) {
        rconn_connect(rc);
    } else if (rc->state == RC_CONNECTING) {
        // hiredis 0.14 has no connect timeout.  Everything is settled before freeing the
        // context, because its pending commands' callbacks run inside redisAsyncFree and
        // may free |r|.
        redisAsyncContext *ac = rc->ac;
        ac->data = NULL;
        rconn_failed(rc, "connect timeout");
        redisAsyncFree(ac);
    }
}

static void rconn_init(fsr_redis *r, redis_conn *rc, bool is_sub)
{
    rc->r = r;
    rc->is_sub = is_sub;
    rc->state = RC_DOWN;
    rc->timer = evtimer_new(r->base, on_rconn_timer, rc);
    if (rc->timer == NULL) {
        FSR_ERROR("redis: evtimer_new failed");
        abort();
    }
}

/* --- commands ----------------------------------------------------------------------------- */

static void cmd_free(redis_cmd *cmd)
{
    if (cmd->timer)
        event_free(cmd->timer);
    free(cmd);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_cmd *cmd = privdata;
    const redisReply *rep = reply;
    fsr_redis *r = cmd->r;
    if (r != NULL) {
        LIST_REMOVE(cmd, link);
        r->pending--;
    }
    if (!cmd->done) {
        cmd->done = true;
        int status = 0;
        if (rep == NULL)
            status = FSR_E_CLOSED;
        else if (rep->type == REDIS_REPLY_ERROR)
            status = FSR_E_DB;
        else if (cmd->ping && !(rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0))
            status = FSR_E_DB;
        if (r != NULL && status != 0)
            r->st.errors++;
        // The user may free |r| in there: nothing of it is touched afterwards.
        if (cmd->cb)
            cmd->cb(rep, status, cmd->arg);
    }
    cmd_free(cmd);
}

static void on_cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
    redis_cmd *cmd = arg;
    if (cmd->done)
        return;
    cmd->done = true;
    if (cmd->r != NULL) {
        cmd->r->st.errors++;
        cmd->r->st.timeouts++;
    }
    // The wrapper stays with hiredis until the late reply (dropped) or the disconnect.
    if (cmd->cb)
        cmd->cb(NULL, FSR_E_TIMEOUT, cmd->arg);
}

static int cmd_check(const fsr_redis *r)
{
    if (r->closing || r->cmd.ac == NULL || r->cmd.state == RC_DOWN)
        return FSR_E_CLOSED;
    return 0;
}

static redis_cmd *cmd_new(fsr_redis *r, fsr_redis_cb cb, void *arg)
{
    redis_cmd *cmd = fsr_xcalloc(1, sizeof(*cmd));
    cmd->cb = cb;
    cmd->arg = arg;
    return cmd;
}

/* hiredis accepted |cmd|: arm its timer and track it. */
static int cmd_started(fsr_redis *r, redis_cmd *cmd)
{
    cmd->r = r;
    LIST_INSERT_HEAD(&r->cmds, cmd, link);
    r->pending++;
    r->st.commands++;
    cmd->timer = evtimer_new(r->base, on_cmd_timeout, cmd);
    if (cmd->timer == NULL) {
        FSR_ERROR("redis: evtimer_new failed");
        abort();
    }
    struct timeval tv = ms_tv(r->command_timeout_ms);
    evtimer_add(cmd->timer, &tv);
    return 0;
}

/* hiredis refused: the context is going away, or the format was bad. */
static int cmd_refused(fsr_redis *r, redis_cmd *cmd)
{
    free(cmd);
    if (r->cmd.ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))
        return FSR_E_CLOSED;
    return -EINVAL;
}

int fsr_redis_commandv(fsr_redis *r, fsr_redis_cb cb, void *arg, const char *fmt, va_list ap)
{
    if (r == NULL || fmt == NULL)
        return -EINVAL;
    int rv = cmd_check(r);
    if (rv != 0)
        return rv;
    redis_cmd *cmd = cmd_new(r, cb, arg);
    if (redisvAsyncCommand(r->cmd.ac, on_reply, cmd, fmt, ap) != REDIS_OK)
        return cmd_refused(r, cmd);
    return cmd_started(r, cmd);
}

int fsr_redis_command(fsr_redis *r, fsr_redis_cb cb, void *arg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rv = fsr_redis_commandv(r, cb, arg, fmt, ap);
    va_end(ap);
    return rv;
}

int fsr_redis_command_argv(fsr_redis *r, fsr_redis_cb cb, void *arg, int argc,
                           const char *const *argv, const size_t *argvlen)
{
    if (r == NULL || argc <= 0 || argv == NULL)
        return -EINVAL;
    for (int i = 0; i < argc; i++)
        if (argv[i] == NULL)
            return -EINVAL;
    int rv = cmd_check(r);
    if (rv != 0)
        return rv;
    redis_cmd *cmd = cmd_new(r, cb, arg);
    // hiredis' prototype lacks the inner const; it only reads the vector.
    if (redisAsyncCommandArgv(r->cmd.ac, on_reply, cmd, argc, (const char **)(uintptr_t)argv,
                              argvlen) != REDIS_OK)
        return cmd_refused(r, cmd);
    return cmd_started(r, cmd);
}

int fsr_redis_ping(fsr_redis *r, fsr_redis_cb cb, void *arg)
{
    if (r == NULL)
        return -EINVAL;
    int rv = cmd_check(r);
    if (rv != 0)
        return rv;
    redis_cmd *cmd = cmd_new(r, cb, arg);
    cmd->ping = true;
    if (redisAsyncCommand(r->cmd.ac, on_reply, cmd, "PING") != REDIS_OK)
        return cmd_refused(r, cmd);
    return cmd_started(r, cmd);
}

/* --- pub/sub ------------------------------------------------------------------------------ */

static redis_sub *sub_find(fsr_redis *r, const char *pattern)
{
    redis_sub *s;
    TAILQ_FOREACH(s, &r->subs, link)
    if (strcmp(s->pattern, pattern) == 0)
        return s;
    return NULL;
}

/*
 * Every reply on the pub/sub connection: the PSUBSCRIBE confirmation, then the messages.
 * hiredis keeps this callback per pattern for the life of the context.
 */
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    const redisReply *rep = reply;
    redis_conn *rc = ac->data;
    if (rc == NULL || rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
        return;
    fsr_redis *r = rc->r;
    for (size_t i = 0; i < rep->elements; i++)
        if (rep->element[i]->type != REDIS_REPLY_STRING &&
            rep->element[i]->type != REDIS_REPLY_INTEGER)
            return;
    const char *kind = rep->element[0]->str;
    redis_sub *s =
        rep->element[1]->type == REDIS_REPLY_STRING ? sub_find(r, rep->element[1]->str) : NULL;
    if (s == NULL)
        return;
    if (strcmp(kind, "psubscribe") == 0) {
        s->confirmed = true;
    } else if (strcmp(kind, "pmessage") == 0 && rep->elements == 4 &&
               rep->element[2]->type == REDIS_REPLY_STRING &&
               rep->element[3]->type == REDIS_REPLY_STRING) {
        r->st.messages++;
        s->cb(s->pattern, rep->element[2]->str, rep->element[3]->str, rep->element[3]->len, s->arg);
    }
}

static void sub_send(redis_conn *rc, redis_sub *s)
{
    if (redisAsyncCommand(rc->ac, on_sub_reply, NULL, "PSUBSCRIBE %s", s->pattern) != REDIS_OK)
        FSR_WARN("redis: cannot send PSUBSCRIBE (connection closing); will retry on reconnect");
}

int fsr_redis_subscribe(fsr_redis *r, const char *pattern, fsr_redis_message_cb on_message,
                        void *arg)
{
    if (r == NULL || pattern == NULL || on_message == NULL)
        return -EINVAL;
    if (r->closing)
        return FSR_E_CLOSED;
    if (sub_find(r, pattern) != NULL)
        return -EEXIST;
    redis_sub *s = fsr_xcalloc(1, sizeof(*s));
    s->pattern = fsr_xstrdup(pattern);
    s->cb = on_message;
    s->arg = arg;
    TAILQ_INSERT_TAIL(&r->subs, s, link);
    if (!r->sub.started) {
        // Connected from the loop; on_connect subscribes every pattern.
        r->sub.started = true;
        rconn_schedule(&r->sub, 0);
    } else if (r->sub.state == RC_UP) {
        sub_send(&r->sub, s);
    }
    return 0;
}

/* --- lifecycle ---------------------------------------------------------------------------- */

int fsr_redis_new(fsr_loop *loop, const char *host, int port, const fsr_redis_options *opts,
                  fsr_redis **out)
{
    if (loop == NULL || host == NULL || *host == '\0' || out == NULL || port < 0 || port > 65535)
        return -EINVAL;
    int cto =
        opts && opts->connect_timeout_ms ? opts->connect_timeout_ms : FSR_REDIS_DEFAULT_TIMEOUT;
    int qto =
        opts && opts->command_timeout_ms ? opts->command_timeout_ms : FSR_REDIS_DEFAULT_TIMEOUT;
    if (cto < 0 || qto < 0)
        return FSR_E_CONFIG;
    fsr_redis *r = fsr_xcalloc(1, sizeof(*r));
    r->base = fsr_loop_base(loop);
    r->host = fsr_xstrdup(host);
    r->port = port;
    r->connect_timeout_ms = cto;
    r->command_timeout_ms = qto;
    r->rng = (uint32_t)fsr_now_us() | 1u;
    LIST_INIT(&r->cmds);
    TAILQ_INIT(&r->subs);
    rconn_init(r, &r->cmd, false);
    rconn_init(r, &r->sub, true);
    // Start connecting now so that commands issued right away are queued in hiredis; a
    // synchronous failure only schedules a retry (no callbacks yet).
    r->cmd.started = true;
    rconn_connect(&r->cmd);
    *out = r;
    return 0;
}

void fsr_redis_free(fsr_redis *r)
{
    if (r == NULL || r->closing)
        return;
    r->closing = true;
    event_free(r->cmd.timer);
    event_free(r->sub.timer);
    // Detach the wrappers: hiredis may run their callbacks after |r| is gone.
    while (!LIST_EMPTY(&r->cmds)) {
        redis_cmd *cmd = LIST_FIRST(&r->cmds);
        LIST_REMOVE(cmd, link);
        cmd->r = NULL;
    }
    redisAsyncContext *acs[2] = { r->cmd.ac, r->sub.ac };
    r->cmd.ac = r->sub.ac = NULL;
    for (int i = 0; i < 2; i++) {
        if (acs[i] != NULL) {
            acs[i]->data = NULL;
            // Runs the pending callbacks (FSR_E_CLOSED) now, or once the hiredis callback
            // on the stack returns.
            redisAsyncFree(acs[i]);
        }
    }
    while (!TAILQ_EMPTY(&r->subs)) {
        redis_sub *s = TAILQ_FIRST(&r->subs);
        TAILQ_REMOVE(&r->subs, s, link);
        free(s->pattern);
        free(s);
    }
    free(r->host);
    free(r);
}

bool fsr_redis_is_connected(const fsr_redis *r)
{
    return r != NULL && r->cmd.state == RC_UP;
}

bool fsr_redis_is_subscribed(const fsr_redis *r)
{
    if (r == NULL || r->sub.state != RC_UP || TAILQ_EMPTY(&r->subs))
        return false;
    const redis_sub *s;
    TAILQ_FOREACH(s, &r->subs, link)
    if (!s->confirmed)
        return false;
    return true;
}

void fsr_redis_stats_get(const fsr_redis *r, fsr_redis_stats *out)
{
    *out = r->st;
    out->connected = r->cmd.state == RC_UP;
    out->pending = r->pending;
}
