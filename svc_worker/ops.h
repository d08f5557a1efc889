/* SPDX-License-Identifier: MIT */
/*
 * svc_worker's operations: the daily schedule (scheduler.c), the removal of dead consumers
 * from the consumer group (consumers.c) and the scheduled job types (jobs_fi.c, jobs_pf.c).
 * Thread 0 of each replica runs the schedule and the consumer cleanup; the job types run
 * wherever the engine delivers them.
 */
#ifndef WK_OPS_H
#define WK_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "worker.h"

/* The operations' settings, read once by main() (wk_ops_config_load()), then read-only. */
typedef struct wk_ops_config {
    const char *schedule;      /* WORKER_SCHEDULE: unset = the built-in entries */
    uint32_t tick_ms;          /* WORKER_SCHEDULE_TICK_MS: how often due runs are checked */
    uint32_t lock_ttl_ms;      /* WORKER_SCHEDULE_LOCK_TTL_MS: the Redis lock's expiry */
    uint32_t consumer_idle_ms; /* WORKER_CONSUMER_IDLE_MS: idle this long = dead (0: keep) */
    uint32_t consumer_gc_ms;   /* WORKER_CONSUMER_GC_INTERVAL_MS: cleanup period */
    uint32_t idempotency_retention_ms; /* WORKER_IDEMPOTENCY_RETENTION_MS */
} wk_ops_config;

extern wk_ops_config wk_ops_cfg;

/*
 * Reads the settings above and the schedule (WORKER_SCHEDULE and the per-entry overrides
 * WORKER_SCHEDULE_<NAME>) for the queue in wk_cfg, which main() has filled.  Returns 0, or
 * FSR_E_CONFIG with a one-line message in |err| naming the variable (main() then exits 2
 * before opening any socket).
 */
int wk_ops_config_load(char *err, size_t errlen);

/* Logs the effective settings and schedule (once, from thread 0). */
void wk_ops_config_log(void);

/*
 * Thread 0's periodic operations (the schedule and the consumer cleanup) on |ctx| (its
 * loop, Postgres pool and Redis), as consumer |consumer| ("<host>-<pid>-0").
 *   wk_ops_start()  from wk_thread_init();
 *   wk_ops_stop()   at the beginning of wk_thread_dispose(): nothing new starts, what is in
 *                   flight may finish while the engine drains;
 *   wk_ops_close()  at its end, before the pool and Redis client are freed: callbacks that
 *                   still come only let go (a half-done enqueue rolls back or is re-published
 *                   by the requeue sweep; a held lock expires).
 */
void wk_ops_start(fsr_app_ctx *ctx, const char *consumer);
void wk_ops_stop(void);
void wk_ops_close(void);

/* consumers.c, driven by the three above. */
void wk_consumers_start(fsr_app_ctx *ctx, const char *consumer);
void wk_consumers_stop(void);
void wk_consumers_close(void);

/* ---- scheduled job types (rows in handlers.c) ------------------------------------------- */

/*
 * fi.eod_reprice (queue fixed_income): prices every bond outstanding on the run date from
 * its latest quote on or before it and replaces that date's rows of bond_eod_analytics.
 * Payload: {"run_date": "YYYY-MM-DD"} (what the schedule sends; absent: today, UTC).
 */
void wk_fi_eod_reprice(wk_job *job);

/*
 * pf.idempotency_cleanup (queue portfolio): deletes the idempotency_keys rows older than
 * WORKER_IDEMPOTENCY_RETENTION_MS (24 h).
 */
void wk_pf_idempotency_cleanup(wk_job *job);

/*
 * pf.calculate (queue portfolio, jobs_pf_calc.c): the asynchronous Calculate; calls the
 * portfolio service's Calculate with the payload's identity and stores its JSON as the
 * result.  wk_pf_calc_thread_dispose() closes the thread's channel (wk_thread_dispose()).
 */
void wk_pf_calculate(wk_job *job);
void wk_pf_calc_thread_dispose(void);

/*
 * The calling thread's channel to the portfolio service (PORTFOLIO_SERVICE_ADDR, the first
 * of a comma-separated list), opened on first use on |loop| and closed by
 * wk_pf_calc_thread_dispose(); NULL for a bad address.  Used by pf.calculate and pf.snapshot.
 */
struct fsr_channel *wk_pf_channel(fsr_loop *loop);

/*
 * pf.snapshot (queue portfolio, jobs_pf_snapshot.c): brings every portfolio's stored daily
 * snapshots (pf_snapshots) up to the day before the run date by calling the portfolio
 * service's GetPerformance for each, a few at a time.  Scheduled daily (scheduler.c).
 */
void wk_pf_snapshot(wk_job *job);

#endif /* WK_OPS_H */
