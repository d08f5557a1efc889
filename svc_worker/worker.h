/* SPDX-License-Identifier: MIT */
/* svc_worker internals: the queues a worker can serve and their per-thread state. */
#ifndef WK_WORKER_H
#define WK_WORKER_H

#include "fsr/app.h"

/* A job queue: one per service, on that service's own Postgres and Redis. */
typedef struct wk_queue {
    const char *name;       /* "equity": --queue value */
    const char *app_name;   /* "worker-equity": logs, metrics, pg application_name */
    const char *stream;     /* "jobs:equity": the Redis stream of the queue's jobs */
    const char *env_prefix; /* "EQUITY": the service's <prefix>_DB_* and _REDIS_* */
    int default_port;       /* WORKER_PORT default: /health and /metrics */
    int default_db_port;
    const char *default_db;
    int default_redis_port;
} wk_queue;

/* The consumer group every worker of a queue reads through. */
#define WK_GROUP "workers"

/* queue.c: the queue a name (or alias, "fi") stands for, or NULL. */
const wk_queue *wk_queue_find(const char *name);

/*
 * queue.c: selects the queue the thread hooks below serve; call once before
 * fsr_app_main().
 */
void wk_queue_select(const wk_queue *q);

/* queue.c: fsr_app_config hooks: per-thread stream/group setup and readiness. */
void *wk_thread_init(fsr_app_ctx *ctx);
void wk_thread_dispose(fsr_app_ctx *ctx);
int wk_ready(fsr_app_ctx *ctx);

#endif /* WK_WORKER_H */
