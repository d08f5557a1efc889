/* SPDX-License-Identifier: MIT */
/* The worker's queue: its Redis stream and consumer group, and readiness. */
#include "worker.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/redis.h"
#include "fsr/status.h"

/* Each queue lives on its service's own Postgres and Redis (the service's env prefix). */
static const wk_queue wk_queues[] = {
    { "equity", "worker-equity", "jobs:equity", "EQUITY", 9101, 5432, "equity", 6379 },
    { "fixed_income", "worker-fixed-income", "jobs:fixed_income", "FI", 9102, 5433, "fixed_income",
      6380 },
    { "portfolio", "worker-portfolio", "jobs:portfolio", "PORTFOLIO", 9103, 5434, "portfolio",
      6382 },
};

/* Set once by main() before any thread starts, read-only afterwards. */
static const wk_queue *wk_selected;

/* "no job handlers" is said once per process, not once per thread. */
static atomic_bool wk_announced;

#define WK_RETRY_MS 1000

const wk_queue *wk_queue_find(const char *name)
{
    if (name == NULL)
        return NULL;
    if (strcmp(name, "fi") == 0) /* DESIGN.md's short name */
        name = "fixed_income";
    for (size_t i = 0; i < FSR_ARRAY_SIZE(wk_queues); i++) {
        if (strcmp(wk_queues[i].name, name) == 0)
            return &wk_queues[i];
    }
    return NULL;
}

void wk_queue_select(const wk_queue *q)
{
    wk_selected = q;
}

/*
 * Per-thread state.  A command may still be pending in the Redis client when the thread
 * is disposed (the client is freed after our dispose hook, and then completes it with
 * FSR_E_CLOSED), so the state is freed by whichever comes last: dispose, or that callback.
 */
typedef struct wk_thread {
    fsr_app_ctx *ctx;
    struct event *retry; /* next XGROUP CREATE attempt */
    bool group_ready;    /* the stream and the group exist */
    bool pending;        /* an XGROUP CREATE is in flight */
    bool closing;        /* disposed while pending: the callback frees */
} wk_thread;

static void ensure_group(wk_thread *t);

static void schedule_retry(wk_thread *t)
{
    struct timeval tv = { WK_RETRY_MS / 1000, (WK_RETRY_MS % 1000) * 1000 };
    evtimer_add(t->retry, &tv);
}

static void on_group(const struct redisReply *reply, int status, void *arg)
{
    wk_thread *t = arg;
    t->pending = false;
    if (t->closing) {
        free(t);
        return;
    }
    /* BUSYGROUP: another worker (or an earlier run) created it first, which is the goal. */
    bool exists = status == FSR_E_DB && reply != NULL && reply->str != NULL &&
                  strncmp(reply->str, "BUSYGROUP", 9) == 0;
    if (status != 0 && !exists) {
        FSR_WARN("cannot create consumer group %s on %s (%s%s%s); retrying", WK_GROUP,
                 wk_selected->stream, fsr_strerror(status), reply != NULL ? ": " : "",
                 reply != NULL && reply->str != NULL ? reply->str : "");
        schedule_retry(t);
        return;
    }
    t->group_ready = true;
    if (!atomic_exchange(&wk_announced, true))
        FSR_INFO("stream %s and consumer group %s ready; no job handlers registered yet, so "
                 "jobs stay queued",
                 wk_selected->stream, WK_GROUP);
}

/* XGROUP CREATE <stream> workers $ MKSTREAM: creates the stream too if needed. */
static void ensure_group(wk_thread *t)
{
    if (t->ctx->redis == NULL) {
        schedule_retry(t);
        return;
    }
    int rv = fsr_redis_command(t->ctx->redis, on_group, t, "XGROUP CREATE %s %s $ MKSTREAM",
                               wk_selected->stream, WK_GROUP);
    if (rv != 0) {
        /* Not connected right now: the client reconnects by itself; try again later. */
        schedule_retry(t);
        return;
    }
    t->pending = true;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ensure_group(arg);
}

void *wk_thread_init(fsr_app_ctx *ctx)
{
    wk_thread *t = fsr_xcalloc(1, sizeof(*t));
    t->ctx = ctx;
    t->retry = evtimer_new(fsr_loop_base(ctx->loop), on_retry, t);
    if (t->retry == NULL) {
        FSR_ERROR("cannot create a timer");
        abort();
    }
    ensure_group(t);
    return t;
}

void wk_thread_dispose(fsr_app_ctx *ctx)
{
    wk_thread *t = ctx->user;
    if (t == NULL)
        return;
    event_free(t->retry);
    t->retry = NULL;
    if (t->pending)
        t->closing = true; /* on_group frees it when the client completes the command */
    else
        free(t);
    ctx->user = NULL;
}

/* Ready when the database answers (checked by fsr_app_main) and the queue exists. */
int wk_ready(fsr_app_ctx *ctx)
{
    const wk_thread *t = ctx->user;
    return t != NULL && t->group_ready && ctx->redis != NULL && fsr_redis_is_connected(ctx->redis);
}
