/* SPDX-License-Identifier: MIT */
/*
 * The engine of one loop thread: a consumer of the queue's stream.  It reads new entries
 * with XREADGROUP BLOCK on a Redis connection of its own (a blocked read would otherwise
 * hold up every other command), reclaims entries other consumers left pending longer than
 * the visibility timeout (XAUTOCLAIM, every WORKER_CLAIM_INTERVAL_MS), and hands both to
 * batch.c.  Thread 0 also moves due retries from the delayed set back to the stream,
 * re-publishes jobs Postgres says are unfinished but nobody touched for
 * WORKER_REQUEUE_AFTER_MS (Redis lost them: flushed, or the enqueuer died between its
 * INSERT and its XADD), and refreshes the queue gauges.
 *
 * Shutdown (SIGTERM): the server stops this thread's loop almost at once (a worker has no
 * client connections to drain), then calls wk_thread_dispose(), which stops fetching and
 * runs the loop again until the jobs already delivered are finished and settled, or
 * SHUTDOWN_GRACE_MS passes.  Jobs still running then are abandoned: their transactions
 * roll back when the pool closes and their entries come back through the visibility
 * timeout.
 */
#include "engine_int.h"
#include "ops.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "fsr/config.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/status.h"

#define RETRY_MS 1000 /* after a failed XGROUP CREATE or a lost connection */

static atomic_int wk_next_index;

/* ---- metrics -------------------------------------------------------------------------- */

wk_metrics wk_m;
static wk_type_metrics *wk_tm; /* one per table row, then one for unknown types */
static pthread_once_t wk_metrics_once = PTHREAD_ONCE_INIT;

static const double latency_buckets[] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
                                          5,     10,    30,   60,   300, 900, 3600 };

static void metrics_init(void)
{
    const char *q = wk_cfg.queue->name;
    static const char *const ql[] = { "queue" };
    static const char *const qtl[] = { "queue", "type" };
    const char *qv[] = { q };
#define GAUGE(name, help)   fsr_metric_labels(fsr_metric_gauge(name, help, ql, 1), qv)
#define COUNTER(name, help) fsr_metric_labels(fsr_metric_counter(name, help, ql, 1), qv)
    wk_m.depth = GAUGE("worker_queue_depth",
                       "Jobs in the queue's stream not yet acknowledged (waiting or running).");
    wk_m.pending = GAUGE("worker_queue_pending",
                         "Stream entries delivered to some worker and not yet acknowledged.");
    wk_m.delayed = GAUGE("worker_queue_delayed", "Failed jobs waiting for their retry.");
    wk_m.dead_len = GAUGE("worker_queue_dead_letters", "Entries in the dead-letter stream.");
    wk_m.inflight = GAUGE("worker_jobs_in_flight", "Jobs this worker process is processing.");
    wk_m.skipped = COUNTER("worker_jobs_skipped",
                           "Deliveries of already finished jobs, acknowledged without running.");
    wk_m.reclaimed = COUNTER("worker_jobs_reclaimed",
                             "Entries taken over from other consumers after the visibility "
                             "timeout.");
    wk_m.requeued =
        COUNTER("worker_jobs_requeued", "Unfinished jobs re-published by the requeue sweep.");
#undef GAUGE
#undef COUNTER
    fsr_metric *processed = fsr_metric_counter(
        "worker_jobs_processed", "Attempts finished and committed, whatever the outcome.", qtl, 2);
    fsr_metric *succeeded =
        fsr_metric_counter("worker_jobs_succeeded", "Attempts that succeeded.", qtl, 2);
    fsr_metric *failed = fsr_metric_counter("worker_jobs_failed", "Attempts that failed.", qtl, 2);
    fsr_metric *retried = fsr_metric_counter(
        "worker_jobs_retried", "Failed attempts scheduled for a retry with backoff.", qtl, 2);
    fsr_metric *dead = fsr_metric_counter("worker_jobs_dead_lettered",
                                          "Jobs moved to the dead-letter stream (DEAD).", qtl, 2);
    fsr_metric *duration = fsr_metric_histogram(
        "worker_job_duration_seconds", "Run time of an attempt, from its start to its commit.", qtl,
        2, NULL, FSR_METRIC_LATENCY_BUCKETS_N);
    fsr_metric *latency = fsr_metric_histogram("worker_job_latency_seconds",
                                               "Time from enqueueing to SUCCEEDED or DEAD.", qtl, 2,
                                               latency_buckets, FSR_ARRAY_SIZE(latency_buckets));
    wk_tm = fsr_xcalloc(wk_job_types_count + 1, sizeof(*wk_tm));
    for (size_t i = 0; i <= wk_job_types_count; i++) {
        /* Test-only types get no series unless enabled (NULL series are no-ops). */
        if (i < wk_job_types_count && (wk_job_types[i].flags & WK_T_TEST) && !wk_cfg.test_jobs)
            continue;
        const char *type = i < wk_job_types_count ? wk_job_types[i].name : "unknown";
        const char *v[] = { q, type };
        wk_tm[i] = (wk_type_metrics){
            .processed = fsr_metric_labels(processed, v),
            .succeeded = fsr_metric_labels(succeeded, v),
            .failed = fsr_metric_labels(failed, v),
            .retried = fsr_metric_labels(retried, v),
            .dead = fsr_metric_labels(dead, v),
            .duration = fsr_metric_labels(duration, v),
            .latency = fsr_metric_labels(latency, v),
        };
    }
}

wk_type_metrics *wk_type_metrics_of(const wk_job_type *type)
{
    if (type >= wk_job_types && type < wk_job_types + wk_job_types_count)
        return &wk_tm[type - wk_job_types];
    return &wk_tm[wk_job_types_count];
}

/* ---- lifetime ------------------------------------------------------------------------- */

static void maybe_fetch(wk_thread *t);
static void ensure_group(wk_thread *t);

void wk_thread_ref(wk_thread *t)
{
    t->refs++;
}

void wk_thread_unref(wk_thread *t)
{
    if (--t->refs > 0)
        return;
    fsr_redis_free(t->block); /* NULL by now unless never disposed */
    free(t);
}

uint64_t wk_thread_rand(wk_thread *t)
{
    t->rng ^= t->rng << 13;
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    return t->rng;
}

static void arm(struct event *ev, uint32_t ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(ev, &tv);
}

/* While wk_thread_dispose() runs the loop: stop it once nothing is left to finish. */
static void check_drained(wk_thread *t)
{
    if (t->draining_loop && !t->reading && !t->claiming && t->inflight == 0)
        fsr_loop_stop(t->ctx->loop);
}

void wk_thread_batch_begin(wk_thread *t, int n)
{
    wk_thread_ref(t);
    t->inflight += n;
    t->batches++;
    fsr_gauge_add(wk_m.inflight, n);
}

void wk_thread_batch_done(wk_thread *t, int n)
{
    t->batches--;
    t->inflight -= n;
    fsr_gauge_add(wk_m.inflight, -n);
    if (t->closing)
        return;
    check_drained(t);
    maybe_fetch(t);
}

void wk_thread_pause(wk_thread *t, int ms)
{
    int64_t until = fsr_now_us() + (int64_t)ms * 1000;
    if (until > t->pause_until_us)
        t->pause_until_us = until;
}

/*
 * Room for another batch: at most WORKER_PREFETCH jobs in flight, in at most
 * WORKER_PREFETCH / WORKER_BATCH batches.  The second bound makes batches grow with the
 * load: while a few batches are in the database, new entries wait in the stream and the
 * next read takes them all at once, instead of each entry becoming a transaction of its own.
 */
static bool can_take(const wk_thread *t)
{
    return !t->stopping && !t->closing && t->group_ready &&
           t->inflight + wk_cfg.batch <= wk_cfg.prefetch &&
           t->batches < wk_cfg.prefetch / wk_cfg.batch;
}

/* ---- the consumer group --------------------------------------------------------------- */

static void arm_timers(wk_thread *t);

static void on_group(const struct redisReply *reply, int status, void *arg)
{
    wk_thread *t = arg;
    t->group_pending = false;
    if (t->closing) {
        wk_thread_unref(t);
        return;
    }
    /* BUSYGROUP: another worker (or an earlier run) created it first, which is the goal. */
    bool exists = status == FSR_E_DB && reply != NULL && reply->str != NULL &&
                  strncmp(reply->str, "BUSYGROUP", 9) == 0;
    if (status != 0 && !exists) {
        FSR_WARN("cannot create consumer group %s on %s (%s%s%s); retrying", WK_GROUP,
                 wk_cfg.queue->stream, fsr_strerror(status), reply != NULL ? ": " : "",
                 reply != NULL && reply->str != NULL ? reply->str : "");
        arm(t->ev_group, RETRY_MS);
    } else {
        if (!t->group_ready)
            FSR_INFO("consuming %s as %s (group %s)", wk_cfg.queue->stream, t->consumer, WK_GROUP);
        t->group_ready = true;
        arm_timers(t);
        maybe_fetch(t);
    }
    wk_thread_unref(t);
}

/*
 * XGROUP CREATE <stream> workers 0 MKSTREAM: creates the stream too if needed.  "0", not
 * "$": jobs enqueued before any worker existed must be delivered too.
 */
static void ensure_group(wk_thread *t)
{
    if (t->group_pending || t->closing)
        return;
    int rv = t->ctx->redis == NULL
                 ? FSR_E_CLOSED
                 : fsr_redis_command(t->ctx->redis, on_group, t, "XGROUP CREATE %s %s 0 MKSTREAM",
                                     wk_cfg.queue->stream, WK_GROUP);
    if (rv != 0) {
        /* Not connected right now: the client reconnects by itself; try again later. */
        arm(t->ev_group, RETRY_MS);
        return;
    }
    t->group_pending = true;
    wk_thread_ref(t);
}

static void on_group_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ensure_group(arg);
}

/* A NOGROUP error: the stream or the group is gone (Redis flushed or restarted empty). */
static bool is_nogroup(const struct redisReply *reply, int status)
{
    return status == FSR_E_DB && reply != NULL && reply->str != NULL &&
           strncmp(reply->str, "NOGROUP", 7) == 0;
}

static void group_lost(wk_thread *t)
{
    if (t->group_ready)
        FSR_WARN("consumer group %s on %s is gone; re-creating it", WK_GROUP, wk_cfg.queue->stream);
    t->group_ready = false;
    ensure_group(t);
}

/* ---- new entries: XREADGROUP ---------------------------------------------------------- */

static void on_read(const struct redisReply *reply, int status, void *arg)
{
    wk_thread *t = arg;
    t->reading = false;
    if (t->closing) {
        wk_thread_unref(t);
        return;
    }
    if (status == 0 && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
        const redisReply *s = reply->element[0];
        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2)
            wk_batch_start(t, s->element[1], false);
    } else if (is_nogroup(reply, status)) {
        group_lost(t);
    } else if (status != 0) {
        if (status != FSR_E_CLOSED)
            FSR_WARN("XREADGROUP failed (%s%s%s)", fsr_strerror(status),
                     reply != NULL && reply->str != NULL ? ": " : "",
                     reply != NULL && reply->str != NULL ? reply->str : "");
        wk_thread_pause(t, 200);
    }
    check_drained(t);
    maybe_fetch(t);
    wk_thread_unref(t);
}

static void maybe_fetch(wk_thread *t)
{
    if (t->reading || !can_take(t))
        return;
    int64_t now = fsr_now_us();
    if (now < t->pause_until_us) {
        if (!evtimer_pending(t->ev_fetch, NULL))
            arm(t->ev_fetch, (uint32_t)((t->pause_until_us - now) / 1000 + 1));
        return;
    }
    char count[16], block[16];
    snprintf(count, sizeof(count), "%d", wk_cfg.batch);
    snprintf(block, sizeof(block), "%u", wk_cfg.block_ms);
    int rv = fsr_redis_command(t->block, on_read, t,
                               "XREADGROUP GROUP %s %s COUNT %s BLOCK %s "
                               "STREAMS %s >",
                               WK_GROUP, t->consumer, count, block, wk_cfg.queue->stream);
    if (rv != 0) {
        /* Reconnecting: try again shortly. */
        if (!evtimer_pending(t->ev_fetch, NULL))
            arm(t->ev_fetch, 200);
        return;
    }
    t->reading = true;
    wk_thread_ref(t);
}

static void on_fetch_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    maybe_fetch(arg);
}

/* ---- reclaiming: XAUTOCLAIM ----------------------------------------------------------- */

static void on_claimed(const struct redisReply *reply, int status, void *arg)
{
    wk_thread *t = arg;
    t->claiming = false;
    if (t->closing) {
        wk_thread_unref(t);
        return;
    }
    uint32_t next = wk_cfg.claim_interval_ms;
    if (status == 0 && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING) {
        const redisReply *entries = reply->element[1];
        size_t n = entries->type == REDIS_REPLY_ARRAY ? entries->elements : 0;
        snprintf(t->claim_cursor, sizeof(t->claim_cursor), "%s", reply->element[0]->str);
        if (n > 0) {
            FSR_INFO("reclaimed %zu entries pending longer than the visibility timeout", n);
            fsr_counter_add(wk_m.reclaimed, (double)n);
            wk_batch_start(t, entries, true);
        }
        /* More to scan: continue as soon as there is room. */
        if (strcmp(t->claim_cursor, "0-0") != 0)
            next = 1;
    } else if (is_nogroup(reply, status)) {
        group_lost(t);
    } else if (status != 0 && status != FSR_E_CLOSED) {
        FSR_WARN("XAUTOCLAIM failed (%s%s%s)", fsr_strerror(status),
                 reply != NULL && reply->str != NULL ? ": " : "",
                 reply != NULL && reply->str != NULL ? reply->str : "");
    }
    if (!t->stopping)
        arm(t->ev_claim, next);
    check_drained(t);
    wk_thread_unref(t);
}

static void on_claim_timer(evutil_socket_t fd, short what, void *arg)
{
    wk_thread *t = arg;
    (void)fd;
    (void)what;
    if (t->claiming || t->stopping)
        return;
    if (!can_take(t) || fsr_now_us() < t->pause_until_us) {
        arm(t->ev_claim, wk_cfg.claim_interval_ms);
        return;
    }
    char idle[16], count[16];
    snprintf(idle, sizeof(idle), "%u", wk_cfg.visibility_ms);
    snprintf(count, sizeof(count), "%d", wk_cfg.batch);
    int rv = fsr_redis_command(t->ctx->redis, on_claimed, t, "XAUTOCLAIM %s %s %s %s %s COUNT %s",
                               wk_cfg.queue->stream, WK_GROUP, t->consumer, idle, t->claim_cursor,
                               count);
    if (rv != 0) {
        arm(t->ev_claim, wk_cfg.claim_interval_ms);
        return;
    }
    t->claiming = true;
    wk_thread_ref(t);
}

/* ---- due retries: the delayed set back to the stream (thread 0) ------------------------ */

#define MOVE_LIMIT 1000

static const char mover_lua[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "for _, m in ipairs(due) do\n"
    "  redis.call('XADD', KEYS[2], '*', 'e', m)\n"
    "end\n"
    "if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end\n"
    "return #due\n";

static void on_moved(const struct redisReply *reply, int status, void *arg)
{
    wk_thread *t = arg;
    t->moving = false;
    if (!t->closing && !t->stopping) {
        bool more =
            status == 0 && reply->type == REDIS_REPLY_INTEGER && reply->integer >= MOVE_LIMIT;
        if (status == 0 && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
            FSR_DEBUG("%lld retries are due", (long long)reply->integer);
        else if (status != 0 && status != FSR_E_CLOSED)
            FSR_WARN("cannot move due retries (%s)", fsr_strerror(status));
        arm(t->ev_mover, more ? 1 : wk_cfg.retry_poll_ms);
    }
    wk_thread_unref(t);
}

static void on_mover_timer(evutil_socket_t fd, short what, void *arg)
{
    wk_thread *t = arg;
    (void)fd;
    (void)what;
    if (t->moving || t->stopping)
        return;
    char now[24], limit[16];
    snprintf(now, sizeof(now), "%lld", (long long)(fsr_wall_us() / 1000));
    snprintf(limit, sizeof(limit), "%d", MOVE_LIMIT);
    int rv = fsr_redis_command(t->ctx->redis, on_moved, t, "EVAL %s 2 %s %s %s %s", mover_lua,
                               wk_cfg.delayed_key, wk_cfg.queue->stream, now, limit);
    if (rv != 0) {
        arm(t->ev_mover, wk_cfg.retry_poll_ms);
        return;
    }
    t->moving = true;
    wk_thread_ref(t);
}

/* ---- the requeue sweep (thread 0) ----------------------------------------------------- */

#define SWEEP_LIMIT 500

/*
 * Unfinished jobs nobody touched for WORKER_REQUEUE_AFTER_MS: QUEUED ones published that
 * long ago, FAILED ones whose retry was due that long ago, RUNNING ones whose lease ended
 * that long ago.  Each is re-published (at most SWEEP_LIMIT per sweep, oldest first) and
 * stamped, so the next sweep leaves it alone for another period.  SKIP LOCKED lets several
 * workers sweep at once without waiting on each other or publishing a job twice.
 * A duplicate entry is harmless: the start statement runs a job only once.
 */
static const fsr_pg_stmt st_sweep = {
    "wk_sweep",
    "WITH due AS ("
    " SELECT id FROM jobs"
    " WHERE finished_at IS NULL"
    "  AND published_at < now() - $1::integer * interval '1 millisecond'"
    "  AND CASE state WHEN 'QUEUED' THEN true"
    "   WHEN 'FAILED' THEN coalesce(next_run_at, published_at)"
    "    < now() - $1::integer * interval '1 millisecond'"
    "   ELSE coalesce(lease_until, published_at)"
    "    < now() - $1::integer * interval '1 millisecond' END"
    " ORDER BY published_at LIMIT $2::integer FOR UPDATE SKIP LOCKED"
    ")"
    " UPDATE jobs j SET published_at = now() FROM due WHERE j.id = due.id"
    " RETURNING j.id::text, j.type, encode(j.payload, 'hex'), j.attempts,"
    "  coalesce(j.request_id, ''), (extract(epoch FROM j.created_at) * 1000000)::bigint",
};

static void on_republished(const struct redisReply *reply, int status, void *arg)
{
    wk_thread *t = arg;
    (void)reply;
    if (status == 0)
        fsr_counter_add(wk_m.requeued, 1);
    wk_thread_unref(t);
}

static int unhex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2 != 0 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    *len = n / 2;
    return 0;
}

static void on_swept(const fsr_pg_result *res, void *arg)
{
    wk_thread *t = arg;
    t->sweeping = false;
    int st = fsr_pg_result_status(res);
    if (t->closing) {
        wk_thread_unref(t);
        return;
    }
    if (st != 0) {
        /* 42P01: the service has not created its tables yet. */
        if (strcmp(fsr_pg_result_sqlstate(res), "42P01") != 0)
            FSR_WARN("requeue sweep failed: %s", fsr_pg_result_message(res));
    } else {
        int rows = fsr_pg_result_rows(res);
        if (rows > 0)
            FSR_WARN("re-publishing %d unfinished jobs Redis had lost", rows);
        for (int r = 0; r < rows; r++) {
            uint8_t payload[FSR_JOB_PAYLOAD_MAX], env[FSR_JOB_ENVELOPE_MAX];
            size_t plen = 0, elen = 0;
            const char *id = fsr_pg_result_getvalue(res, r, 0);
            if (unhex(fsr_pg_result_getvalue(res, r, 2), payload, sizeof(payload), &plen) != 0 ||
                wk_envelope_encode(id, fsr_pg_result_getvalue(res, r, 1),
                                   (uint32_t)atoi(fsr_pg_result_getvalue(res, r, 3)) + 1,
                                   strtoll(fsr_pg_result_getvalue(res, r, 5), NULL, 10), payload,
                                   plen, fsr_pg_result_getvalue(res, r, 4), env, sizeof(env),
                                   &elen) != 0) {
                FSR_ERROR("job %s: cannot rebuild its envelope", id);
                continue;
            }
            if (fsr_redis_command(t->ctx->redis, on_republished, t, "XADD %s * e %b",
                                  wk_cfg.queue->stream, (const char *)env, elen) == 0)
                wk_thread_ref(t);
        }
    }
    if (!t->stopping)
        arm(t->ev_sweep, wk_cfg.sweep_interval_ms);
    wk_thread_unref(t);
}

static void on_sweep_timer(evutil_socket_t fd, short what, void *arg)
{
    wk_thread *t = arg;
    (void)fd;
    (void)what;
    if (t->sweeping || t->stopping || wk_cfg.requeue_after_ms == 0)
        return;
    char after[16], limit[16];
    snprintf(after, sizeof(after), "%u", wk_cfg.requeue_after_ms);
    snprintf(limit, sizeof(limit), "%d", SWEEP_LIMIT);
    const char *v[] = { after, limit };
    if (t->ctx->pg == NULL || fsr_pg_query(t->ctx->pg, &st_sweep, 2, v, on_swept, t) != 0) {
        arm(t->ev_sweep, wk_cfg.sweep_interval_ms);
        return;
    }
    t->sweeping = true;
    wk_thread_ref(t);
}

/* ---- queue gauges (thread 0) ---------------------------------------------------------- */

typedef struct stat_req {
    wk_thread *t;
    fsr_series *s;
    bool xpending; /* the reply is XPENDING's summary: its first element */
} stat_req;

static void on_stat(const struct redisReply *reply, int status, void *arg)
{
    stat_req *r = arg;
    wk_thread *t = r->t;
    if (status == 0 && !t->closing) {
        if (r->xpending && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
            reply->element[0]->type == REDIS_REPLY_INTEGER)
            fsr_gauge_set(r->s, (double)reply->element[0]->integer);
        else if (!r->xpending && reply->type == REDIS_REPLY_INTEGER)
            fsr_gauge_set(r->s, (double)reply->integer);
    }
    t->stats_pending--;
    free(r);
    wk_thread_unref(t);
}

static void stat_cmd(wk_thread *t, fsr_series *s, bool xpending, const char *fmt, ...)
{
    stat_req *r = fsr_xcalloc(1, sizeof(*r));
    r->t = t;
    r->s = s;
    r->xpending = xpending;
    va_list ap;
    va_start(ap, fmt);
    int rv = fsr_redis_commandv(t->ctx->redis, on_stat, r, fmt, ap);
    va_end(ap);
    if (rv != 0) {
        free(r);
        return;
    }
    t->stats_pending++;
    wk_thread_ref(t);
}

static void on_stats_timer(evutil_socket_t fd, short what, void *arg)
{
    wk_thread *t = arg;
    (void)fd;
    (void)what;
    if (t->stopping)
        return;
    if (t->stats_pending == 0 && t->ctx->redis != NULL) {
        const char *s = wk_cfg.queue->stream;
        stat_cmd(t, wk_m.depth, false, "XLEN %s", s);
        stat_cmd(t, wk_m.pending, true, "XPENDING %s %s", s, WK_GROUP);
        stat_cmd(t, wk_m.delayed, false, "ZCARD %s", wk_cfg.delayed_key);
        stat_cmd(t, wk_m.dead_len, false, "XLEN %s", wk_cfg.dead_stream);
    }
    arm(t->ev_stats, wk_cfg.stats_interval_ms);
}

/* ---- thread hooks --------------------------------------------------------------------- */

static void arm_timers(wk_thread *t)
{
    if (t->timers_armed || t->stopping)
        return;
    t->timers_armed = true;
    arm(t->ev_claim, wk_cfg.claim_interval_ms);
    if (t->index == 0) {
        arm(t->ev_mover, wk_cfg.retry_poll_ms);
        arm(t->ev_sweep, wk_cfg.sweep_interval_ms);
        arm(t->ev_stats, 1);
    }
}

static struct event *timer_new(wk_thread *t, event_callback_fn fn)
{
    struct event *ev = evtimer_new(fsr_loop_base(t->ctx->loop), fn, t);
    if (ev == NULL) {
        FSR_ERROR("cannot create a timer");
        abort();
    }
    return ev;
}

static void on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
    wk_thread *t = arg;
    (void)fd;
    (void)what;
    fsr_loop_stop(t->ctx->loop);
}

void *wk_thread_init(fsr_app_ctx *ctx)
{
    wk_thread *t = fsr_xcalloc(1, sizeof(*t));
    t->ctx = ctx;
    t->refs = 1;
    t->index = atomic_fetch_add(&wk_next_index, 1);
    if (t->index == 0) {
        wk_config_log();
        for (size_t i = 0; i < wk_job_types_count; i++) {
            const wk_job_type *jt = &wk_job_types[i];
            if ((jt->flags & WK_T_TEST) && !wk_cfg.test_jobs)
                continue;
            if (jt->timeout_ms > wk_cfg.visibility_ms / 2)
                FSR_WARN("job type %s: timeout %u ms capped at half the visibility timeout "
                         "(%u ms)",
                         jt->name, jt->timeout_ms, wk_cfg.visibility_ms / 2);
        }
    }
    pthread_once(&wk_metrics_once, metrics_init);
    char host[64] = "worker";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(t->consumer, sizeof(t->consumer), "%s-%d-%d", host, (int)getpid(), t->index);
    t->rng = (uint64_t)fsr_now_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)t;
    if (t->rng == 0)
        t->rng = 1;
    snprintf(t->claim_cursor, sizeof(t->claim_cursor), "0-0");

    t->ev_fetch = timer_new(t, on_fetch_timer);
    t->ev_claim = timer_new(t, on_claim_timer);
    t->ev_mover = timer_new(t, on_mover_timer);
    t->ev_sweep = timer_new(t, on_sweep_timer);
    t->ev_stats = timer_new(t, on_stats_timer);
    t->ev_group = timer_new(t, on_group_timer);
    t->ev_stop = timer_new(t, on_stop_timer);

    /*
     * The blocking reads get a connection of their own, with a command timeout beyond the
     * BLOCK time: a timeout would drop a reply that may carry entries (they would then wait
     * in our pending list for the visibility timeout).
     */
    fsr_redis_addr addr;
    char err[256];
    if (fsr_config_redis_addr(wk_cfg.queue->env_prefix, wk_cfg.queue->default_redis_port, &addr,
                              err, sizeof(err)) != 0) {
        FSR_ERROR("configuration: %s", err);
    } else {
        fsr_redis_options o = { .connect_timeout_ms = 2000,
                                .command_timeout_ms = (int)wk_cfg.block_ms + 5000 };
        if (fsr_redis_new(ctx->loop, addr.host, addr.port, &o, &t->block) != 0)
            FSR_ERROR("cannot create the Redis client for blocking reads");
    }
    ensure_group(t);
    if (t->index == 0)
        wk_ops_start(ctx, t->consumer); /* the schedule, dead consumers (scheduler.c) */
    return t;
}

void wk_thread_dispose(fsr_app_ctx *ctx)
{
    wk_thread *t = ctx->user;
    if (t == NULL)
        return;
    t->stopping = true;
    if (t->index == 0)
        wk_ops_stop();
    struct event *timers[] = { t->ev_fetch, t->ev_claim, t->ev_mover,
                               t->ev_sweep, t->ev_stats, t->ev_group };
    for (size_t i = 0; i < FSR_ARRAY_SIZE(timers); i++)
        event_del(timers[i]);
    if (t->reading || t->claiming || t->inflight > 0) {
        FSR_INFO("stopping: finishing %d jobs in flight (up to %u ms)", t->inflight,
                 wk_cfg.grace_ms);
        arm(t->ev_stop, wk_cfg.grace_ms);
        t->draining_loop = true;
        fsr_loop_run(ctx->loop);
        t->draining_loop = false;
        event_del(t->ev_stop);
        if (t->inflight > 0)
            FSR_WARN("grace period over: %d jobs abandoned; their transactions roll back and "
                     "they return after the visibility timeout",
                     t->inflight);
        else
            FSR_INFO("all jobs in flight finished");
    }
    wk_pf_calc_thread_dispose(); /* pf.calculate's channel, while the loop exists */
    t->closing = true;
    if (t->index == 0)
        wk_ops_close();
    for (size_t i = 0; i < FSR_ARRAY_SIZE(timers); i++)
        event_free(timers[i]);
    event_free(t->ev_stop);
    /* Pending commands complete now (FSR_E_CLOSED) and release their references. */
    fsr_redis *block = t->block;
    t->block = NULL;
    fsr_redis_free(block);
    ctx->user = NULL;
    wk_thread_unref(t);
}

/* Ready when the database answers (checked by fsr_app_main) and the queue is consumed. */
int wk_ready(fsr_app_ctx *ctx)
{
    const wk_thread *t = ctx->user;
    return t != NULL && t->group_ready && ctx->redis != NULL &&
           fsr_redis_is_connected(ctx->redis) && t->block != NULL;
}
