/* SPDX-License-Identifier: MIT */
/* fsr-worker --queue equity|fixed_income|portfolio: a service's background job runner. */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "ops.h"

#include "fsr/config.h"

wk_config wk_cfg;

static char wk_dead_default[96];

/*
 * The worker's own settings (the service's PORT, THREADS, LOG_*, <PREFIX>_DB_* and
 * <PREFIX>_REDIS_* are read by fsr_app_main()).  Durations take "250", "250ms", "2s", "5m".
 */
static fsr_config_entry wk_config_table[] = {
    { "visibility_timeout", "WORKER_VISIBILITY_TIMEOUT_MS", FSR_CONFIG_DURATION_MS, "30s", 0,
      &wk_cfg.visibility_ms, 200, 24LL * 3600 * 1000 },
    { "claim_interval", "WORKER_CLAIM_INTERVAL_MS", FSR_CONFIG_DURATION_MS, "5s", 0,
      &wk_cfg.claim_interval_ms, 10, 3600 * 1000 },
    { "backoff_base", "WORKER_BACKOFF_BASE_MS", FSR_CONFIG_DURATION_MS, "1s", 0,
      &wk_cfg.backoff_base_ms, 1, 3600 * 1000 },
    { "backoff_max", "WORKER_BACKOFF_MAX_MS", FSR_CONFIG_DURATION_MS, "5m", 0,
      &wk_cfg.backoff_max_ms, 1, 24LL * 3600 * 1000 },
    { "dead_stream", "WORKER_DEAD_STREAM", FSR_CONFIG_STRING, NULL, 0, &wk_cfg.dead_stream, 0, 0 },
    { "batch", "WORKER_BATCH", FSR_CONFIG_INT, "256", 0, &wk_cfg.batch, 1, 4096 },
    { "prefetch", "WORKER_PREFETCH", FSR_CONFIG_INT, "1024", 0, &wk_cfg.prefetch, 1, 65536 },
    { "block", "WORKER_BLOCK_MS", FSR_CONFIG_DURATION_MS, "2s", 0, &wk_cfg.block_ms, 10, 60000 },
    { "retry_poll", "WORKER_RETRY_POLL_MS", FSR_CONFIG_DURATION_MS, "250ms", 0,
      &wk_cfg.retry_poll_ms, 10, 60000 },
    { "sweep_interval", "WORKER_SWEEP_INTERVAL_MS", FSR_CONFIG_DURATION_MS, "30s", 0,
      &wk_cfg.sweep_interval_ms, 10, 3600 * 1000 },
    { "requeue_after", "WORKER_REQUEUE_AFTER_MS", FSR_CONFIG_DURATION_MS, "10m", 0,
      &wk_cfg.requeue_after_ms, 0, 7LL * 24 * 3600 * 1000 },
    { "stats_interval", "WORKER_STATS_INTERVAL_MS", FSR_CONFIG_DURATION_MS, "2s", 0,
      &wk_cfg.stats_interval_ms, 10, 3600 * 1000 },
    { "grace", "SHUTDOWN_GRACE_MS", FSR_CONFIG_DURATION_MS, "10000", 0, &wk_cfg.grace_ms, 1,
      600000 },
    { "test_jobs", "WORKER_TEST_JOBS", FSR_CONFIG_BOOL, "false", 0, &wk_cfg.test_jobs, 0, 0 },
};

void wk_config_log(void)
{
    fsr_config_log(wk_config_table, FSR_ARRAY_SIZE(wk_config_table));
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fsr-worker --queue equity|fixed_income|portfolio [--help]\n"
            "Runs the background jobs of one service's queue (Redis stream jobs:<queue>,\n"
            "consumer group " WK_GROUP ") on that service's own Postgres and Redis: the same\n"
            "<PREFIX>_DB_* and <PREFIX>_REDIS_* variables as the service (EQUITY, FI,\n"
            "PORTFOLIO).  /health and /metrics are served on WORKER_PORT (default 9101, 9102,\n"
            "9103 by queue; 0 picks a free port, written to PORT_FILE).  THREADS defaults to 1.\n"
            "Queue settings (defaults): WORKER_VISIBILITY_TIMEOUT_MS (30s),\n"
            "WORKER_CLAIM_INTERVAL_MS (5s), WORKER_BACKOFF_BASE_MS (1s), WORKER_BACKOFF_MAX_MS\n"
            "(5m), WORKER_DEAD_STREAM (jobs:<queue>:dead), WORKER_BATCH (256), WORKER_PREFETCH\n"
            "(1024), WORKER_BLOCK_MS (2s), WORKER_RETRY_POLL_MS (250ms),\n"
            "WORKER_SWEEP_INTERVAL_MS (30s), WORKER_REQUEUE_AFTER_MS (10m; 0 = off),\n"
            "WORKER_STATS_INTERVAL_MS (2s), SHUTDOWN_GRACE_MS (10s), WORKER_TEST_JOBS (false).\n"
            "Schedule and upkeep: WORKER_SCHEDULE (built-in daily entries of the queue;\n"
            "\"off\"; or \"[name=]type@HH:MM UTC|every <N>s\", ...), WORKER_SCHEDULE_<NAME>,\n"
            "WORKER_SCHEDULE_TICK_MS (1s), WORKER_SCHEDULE_LOCK_TTL_MS (30s),\n"
            "WORKER_CONSUMER_IDLE_MS (1h; 0 = off), WORKER_CONSUMER_GC_INTERVAL_MS (5m),\n"
            "WORKER_IDEMPOTENCY_RETENTION_MS (24h).  See svc_worker/README.md.\n"
            "See docs/ARCHITECTURE.md (Jobs).\n");
}

int main(int argc, char **argv)
{
    /* Take --queue out; fsr_app_main() parses what remains (--help, --migrate-only). */
    const char *queue = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    if (rest == NULL)
        return 1;
    int n = 0;
    rest[n++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--queue") == 0 && i + 1 < argc) {
            queue = argv[++i];
        } else if (strncmp(argv[i], "--queue=", 8) == 0) {
            queue = argv[i] + 8;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            free(rest);
            return 0;
        } else {
            rest[n++] = argv[i];
        }
    }
    const wk_queue *q = wk_queue_find(queue);
    if (q == NULL) {
        fprintf(stderr,
                queue == NULL ? "fsr-worker: --queue is required\n"
                              : "fsr-worker: unknown queue '%s'\n",
                queue);
        usage(stderr);
        free(rest);
        return 2;
    }

    char err[512];
    if (fsr_config_load(wk_config_table, FSR_ARRAY_SIZE(wk_config_table), err, sizeof(err)) != 0) {
        fprintf(stderr, "fsr-worker: configuration: %s\n", err);
        free(rest);
        return 2;
    }
    wk_cfg.queue = q;
    /* The schedule and the other operations' settings (scheduler.c; needs the queue). */
    if (wk_ops_config_load(err, sizeof(err)) != 0) {
        fprintf(stderr, "fsr-worker: configuration: %s\n", err);
        free(rest);
        return 2;
    }
    if (wk_cfg.dead_stream == NULL || wk_cfg.dead_stream[0] == '\0') {
        snprintf(wk_dead_default, sizeof(wk_dead_default), "%s:dead", q->stream);
        wk_cfg.dead_stream = wk_dead_default;
    }
    snprintf(wk_cfg.delayed_key, sizeof(wk_cfg.delayed_key), "%s:delayed", q->stream);
    if (wk_cfg.prefetch < wk_cfg.batch)
        wk_cfg.prefetch = wk_cfg.batch;
    if (wk_cfg.backoff_max_ms < wk_cfg.backoff_base_ms)
        wk_cfg.backoff_max_ms = wk_cfg.backoff_base_ms;

    /*
     * fsr_app_main() reads PORT: the worker's own port is WORKER_PORT, so that a PORT meant
     * for the service next to it never applies here.  Unset, the queue's default is used.
     */
    const char *wport = getenv("WORKER_PORT");
    if (wport != NULL && wport[0] != '\0')
        setenv("PORT", wport, 1);
    else
        unsetenv("PORT");
    /* One loop thread runs one consumer; more threads are more consumers. */
    setenv("THREADS", "1", 0);

    fsr_app_config cfg = {
        .name = q->app_name,
        .env_prefix = q->env_prefix,
        .default_port = q->default_port,
        .default_db_port = q->default_db_port,
        .default_db = q->default_db,
        .default_redis_port = q->default_redis_port,
        /* Equity jobs publish price.updated (eq_import.c) on the shared Redis. */
        .shared_redis = q->id == FSR_JOB_QUEUE_EQUITY,
        /* The service owns and migrates its schema (jobs included); the worker connects. */
        .migrations = NULL,
        .n_migrations = 0,
        .register_services = NULL, /* no gRPC services beyond grpc.health.v1 */
        .thread_init = wk_thread_init,
        .thread_dispose = wk_thread_dispose,
        .ready = wk_ready,
    };
    int rv = fsr_app_main(&cfg, n, rest);
    free(rest);
    return rv;
}
