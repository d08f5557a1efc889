/* SPDX-License-Identifier: MIT */
/*
 * svc_worker internals: the queues, the configuration, the job handler contract and table,
 * and the engine's thread hooks.  See docs/ARCHITECTURE.md ("Jobs") for the whole design.
 */
#ifndef WK_WORKER_H
#define WK_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsr/app.h"
#include "fsr/jobs.h"
#include "fsr/pg.h"

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
    fsr_job_queue id;
} wk_queue;

/* The consumer group every worker of a queue reads through. */
#define WK_GROUP "workers"

/* queue.c: the queue a name (or alias, "fi") stands for, or NULL. */
const wk_queue *wk_queue_find(const char *name);

/*
 * The worker's settings, read once by main() from the environment before any thread
 * starts and read-only afterwards (main.c documents each variable).
 */
typedef struct wk_config {
    const wk_queue *queue;
    uint32_t visibility_ms;     /* WORKER_VISIBILITY_TIMEOUT_MS: pending this long = reclaimable */
    uint32_t claim_interval_ms; /* WORKER_CLAIM_INTERVAL_MS: XAUTOCLAIM period */
    uint32_t backoff_base_ms;   /* WORKER_BACKOFF_BASE_MS: first retry delay */
    uint32_t backoff_max_ms;    /* WORKER_BACKOFF_MAX_MS: retry delay cap */
    const char *dead_stream;    /* WORKER_DEAD_STREAM: default jobs:<queue>:dead */
    char delayed_key[96];       /* jobs:<queue>:delayed (sorted set of retries) */
    int batch;                  /* WORKER_BATCH: entries per XREADGROUP/XAUTOCLAIM */
    int prefetch;               /* WORKER_PREFETCH: most jobs in flight per thread */
    uint32_t block_ms;          /* WORKER_BLOCK_MS: XREADGROUP BLOCK */
    uint32_t retry_poll_ms;     /* WORKER_RETRY_POLL_MS: due retries moved this often */
    uint32_t sweep_interval_ms; /* WORKER_SWEEP_INTERVAL_MS: requeue sweep period */
    uint32_t requeue_after_ms;  /* WORKER_REQUEUE_AFTER_MS: unstarted this long = re-publish */
    uint32_t stats_interval_ms; /* WORKER_STATS_INTERVAL_MS: queue gauges refresh */
    uint32_t grace_ms;          /* SHUTDOWN_GRACE_MS: SIGTERM waits this long for jobs */
    bool test_jobs;             /* WORKER_TEST_JOBS: register the test.* job types */
} wk_config;

extern wk_config wk_cfg;

/* ---- the handler contract --------------------------------------------------------------- */

/*
 * One attempt of one job, owned by the engine.  A handler receives it, does the job's
 * effects through wk_job_query()/wk_job_exec() -- statements that run inside the same
 * Postgres transaction that then marks the job SUCCEEDED (or FAILED) and records the
 * attempt -- and finishes with exactly one wk_job_succeed() or wk_job_fail(), now or from a
 * callback.  The engine commits that transaction, and only then acknowledges the stream
 * entry: effects and state commit together or not at all, so an attempt that dies midway
 * leaves no trace and its retry starts clean.  A job whose row is already SUCCEEDED (a
 * redelivery) is acknowledged without running.
 *
 * Handlers run on the loop (never block), one job at a time per transaction.  Their
 * statements must be idempotent per job id where they touch state outside this database.
 */
typedef struct wk_job wk_job;

typedef void (*wk_handler)(wk_job *job);

enum {
    /*
     * Cheap and short: may share one transaction with the other jobs of its batch (one
     * savepoint each), which is what makes thousands of jobs per second possible.  Without
     * it a job gets a transaction (and a pool connection) of its own.
     */
    WK_T_BATCH = 1 << 0,
    /* Test-only: registered only when WORKER_TEST_JOBS=1. */
    WK_T_TEST = 1 << 1,
};

/* A row of the handler table: later issues add a job type in one line. */
typedef struct wk_job_type {
    const char *name;    /* the envelope's type, e.g. "equity.import_prices" */
    wk_handler run;      /* the handler */
    int max_attempts;    /* attempts before DEAD (1..FSR_JOB_ATTEMPTS_MAX) */
    uint32_t timeout_ms; /* an attempt running longer fails (clamped to the lease, V/2) */
    unsigned flags;      /* WK_T_* */
} wk_job_type;

/* handlers.c: the table, and the row used for types not in it (fails every attempt). */
extern const wk_job_type wk_job_types[];
extern const size_t wk_job_types_count;
extern const wk_job_type wk_unknown_job_type;

/* eq_import.c: equity.import_prices, the CSV import of svc_equity's ImportPrices. */
void wk_eq_import_prices(wk_job *job);

/* The table row for |name| (WK_T_TEST rows only with WORKER_TEST_JOBS), or NULL. */
const wk_job_type *wk_job_type_find(const char *name);

/* The job's id (UUID text), type name, payload (*|len| bytes) and attempt number (1..). */
const char *wk_job_id(const wk_job *job);
const char *wk_job_type_name(const wk_job *job);
const uint8_t *wk_job_payload(const wk_job *job, size_t *len);
int wk_job_attempt(const wk_job *job);
int wk_job_max_attempts(const wk_job *job);

/* The consumer name of the worker thread running it ("<host>-<pid>-<thread>"). */
const char *wk_job_worker(const wk_job *job);

/* The thread's context (loop, Redis, shared Redis) for effects outside the transaction. */
fsr_app_ctx *wk_job_ctx(const wk_job *job);

/* Zeroed memory that lives as long as the job (freed by the engine). */
void *wk_job_alloc(wk_job *job, size_t n);

/*
 * Runs a statement inside the job's transaction (after a SAVEPOINT the engine issues
 * before the job's first statement, so that a failed job's effects are rolled back alone).
 * Same contract as fsr_pg_conn_query() / fsr_pg_conn_exec(); FSR_E_CANCELLED once the job
 * has finished or timed out.
 */
int wk_job_query(wk_job *job, const fsr_pg_stmt *stmt, int nparams, const char *const *values,
                 fsr_pg_cb cb, void *arg);
int wk_job_exec(wk_job *job, const char *sql, int nparams, const char *const *values, fsr_pg_cb cb,
                void *arg);

/*
 * Finishes the attempt.  |result_json| (may be NULL) must be a JSON object: it becomes the
 * job's result (GetJob's "result"); anything else fails the attempt instead.  |error| is
 * shown to clients by GetJob, so it must be client-safe (no SQL, hosts or account data).
 * Only the first call counts; after a timeout the call is ignored (but still required, so
 * the engine knows the handler let go of the job).
 */
void wk_job_succeed(wk_job *job, const char *result_json);
void wk_job_fail(wk_job *job, const char *error);

/*
 * Registers |cb| to run once, on the loop, right after the transaction holding the job's
 * effects and its SUCCEEDED state committed: for effects outside the database that must not
 * be seen before the data is (cache invalidation, events).  It never runs when the attempt
 * fails, times out or its transaction rolls back, and it is best effort: if the process dies
 * between the COMMIT and the hook, the hook is lost (keep such effects harmless to miss, e.g.
 * caches with a TTL).  |cb| must not call wk_job_query()/_succeed()/_fail(); the job and its
 * wk_job_alloc() memory are valid during the call only.  A second registration replaces the
 * first.  Call it before wk_job_succeed().
 */
typedef void (*wk_job_commit_cb)(wk_job *job, void *arg);
void wk_job_on_commit(wk_job *job, wk_job_commit_cb cb, void *arg);

/* ---- engine hooks (engine.c) ------------------------------------------------------------ */

/* fsr_app_config hooks: per-thread engine start, drain-and-stop, readiness. */
void *wk_thread_init(fsr_app_ctx *ctx);
void wk_thread_dispose(fsr_app_ctx *ctx);
int wk_ready(fsr_app_ctx *ctx);

#endif /* WK_WORKER_H */
