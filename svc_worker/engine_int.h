/* SPDX-License-Identifier: MIT */
/* The engine's internals shared by engine.c (streams, timers, lifecycle) and batch.c. */
#ifndef WK_ENGINE_INT_H
#define WK_ENGINE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "worker.h"

#include "fsr/metrics.h"

struct redisReply;
struct event;

/* Per job type: counters and histograms, one series per (queue, type). */
typedef struct wk_type_metrics {
    fsr_series *processed, *succeeded, *failed, *retried, *dead, *duration, *latency;
} wk_type_metrics;

/* Per queue. */
typedef struct wk_metrics {
    fsr_series *depth, *pending, *delayed, *dead_len, *inflight;
    fsr_series *skipped, *reclaimed, *requeued;
} wk_metrics;

extern wk_metrics wk_m;

/* The series of |type| (a table row or &wk_unknown_job_type). */
wk_type_metrics *wk_type_metrics_of(const wk_job_type *type);

/*
 * One loop thread's consumer.  Lifetime: |refs| counts the base reference (dropped by
 * wk_thread_dispose()), every live batch and every outstanding thread-level command; the
 * last release frees it, possibly from a callback run while fsr_app_main frees the
 * thread's Redis client and Postgres pool after the dispose hook.
 */
typedef struct wk_thread {
    fsr_app_ctx *ctx;
    int index; /* 0 runs the once-per-process duties: sweep, retry mover, gauges */
    char consumer[160];
    fsr_redis *block; /* XREADGROUP BLOCK only, so it never delays other commands */
    struct event *ev_fetch, *ev_claim, *ev_mover, *ev_sweep, *ev_stats, *ev_group, *ev_stop;
    int refs;
    int inflight; /* jobs in live batches (delivered to us, not yet settled or left) */
    int batches;  /* live batches */
    bool group_ready, group_pending;
    bool reading, claiming, moving, sweeping;
    int stats_pending;
    bool timers_armed;
    bool stopping;      /* SIGTERM: no new deliveries; finish what we have */
    bool closing;       /* disposed: callbacks only release what they hold */
    bool draining_loop; /* wk_thread_dispose() is running the loop to finish jobs */
    int64_t pause_until_us;
    char claim_cursor[48];
    uint64_t rng;
} wk_thread;

void wk_thread_ref(wk_thread *t);
void wk_thread_unref(wk_thread *t);

/* A batch of |n| jobs began / ended (settled or left pending): flow control, drain check. */
void wk_thread_batch_begin(wk_thread *t, int n);
void wk_thread_batch_done(wk_thread *t, int n);

/* Postgres trouble: no new deliveries for |ms|. */
void wk_thread_pause(wk_thread *t, int ms);

/* A random number from the thread's generator (backoff jitter). */
uint64_t wk_thread_rand(wk_thread *t);

/*
 * batch.c: takes the stream entries |entries| (an array of [id, [field, value, ...]], as
 * in XREADGROUP and XAUTOCLAIM replies; borrowed) just delivered to this consumer and
 * processes them: start, run, commit, settle.  |claimed|: they came from XAUTOCLAIM.
 */
void wk_batch_start(wk_thread *t, const struct redisReply *entries, bool claimed);

/*
 * batch.c: the atomic "settle" of stream entries, as a Lua script run with EVAL:
 * acknowledge and delete entries, schedule retries in the delayed set, append dead letters.
 * Exposed for the sweep's re-publishing too (engine.c builds envelopes with
 * wk_envelope_encode()).
 */
int wk_envelope_encode(const char *id, const char *type, uint32_t attempt, int64_t enqueued_us,
                       const uint8_t *payload, size_t payload_len, const char *request_id,
                       uint8_t *out, size_t cap, size_t *len);

/* main.c: logs the worker's effective configuration (once, after logging is set up). */
void wk_config_log(void);

#endif /* WK_ENGINE_INT_H */
