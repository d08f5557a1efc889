/* SPDX-License-Identifier: MIT */
/* fsr_app_main: the shared main() of every service (config, migrations, pools, server). */
#include "fsr/app.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "fsr/config.h"
#include "fsr/log.h"
#include "fsr/metrics.h"
#include "jobs_int.h"

typedef struct app {
    const fsr_app_config *cfg;
    char *conninfo;
    fsr_redis_addr redis, shared;
    int pool_size;
} app;

static app the_app;

#ifndef FSR_VERSION
#define FSR_VERSION "unknown"
#endif

/*
 * Postgres pool gauges.  A pool belongs to its loop thread, so each thread copies its own
 * figures into atomics once a second and /metrics (rendered on any thread) sums the copies.
 */
enum {
    POOL_SIZE,
    POOL_CONNECTED,
    POOL_BUSY,
    POOL_WAITING,
    POOL_N
};
static const char *const pool_gauge[POOL_N][2] = {
    { "fsr_pg_pool_size", "Postgres connections configured (all loop threads)." },
    { "fsr_pg_pool_connected", "Postgres connections up." },
    { "fsr_pg_pool_busy", "Postgres connections running a statement or held by a transaction." },
    { "fsr_pg_pool_waiting", "Requests queued for a Postgres connection." },
};

typedef struct app_thread {
    fsr_app_ctx ctx; /* first: handlers see &ctx */
    struct event *tick;
    atomic_int pool[POOL_N];
} app_thread;

static double pool_value(void *arg)
{
    return atomic_load_explicit((atomic_int *)arg, memory_order_relaxed);
}

static void pool_snapshot(evutil_socket_t fd, short what, void *arg)
{
    app_thread *t = arg;
    fsr_pg_stats st;
    fsr_pg_pool_stats(t->ctx.pg, &st);
    const int v[POOL_N] = { st.size, st.connected, st.busy, st.waiting };
    for (int i = 0; i < POOL_N; i++)
        atomic_store_explicit(&t->pool[i], v[i], memory_order_relaxed);
}

static void pool_gauges_start(app_thread *t)
{
    pool_snapshot(-1, 0, t);
    t->tick = event_new(fsr_loop_base(t->ctx.loop), -1, EV_PERSIST, pool_snapshot, t);
    struct timeval tv = { 1, 0 };
    if (t->tick != NULL)
        event_add(t->tick, &tv);
    for (int i = 0; i < POOL_N; i++)
        fsr_metric_gauge_fn(pool_gauge[i][0], pool_gauge[i][1], pool_value, &t->pool[i]);
}

static void pool_gauges_stop(app_thread *t)
{
    for (int i = 0; i < POOL_N; i++)
        fsr_metric_fn_remove(pool_value, &t->pool[i]);
    if (t->tick != NULL)
        event_free(t->tick);
}

static void *thread_init(fsr_loop *loop, void *arg)
{
    app *a = arg;
    app_thread *t = fsr_xcalloc(1, sizeof(*t));
    fsr_app_ctx *ctx = &t->ctx;
    ctx->loop = loop;
    ctx->cfg = a->cfg;
    if (a->conninfo != NULL) {
        fsr_pg_config pc = { .conninfo = a->conninfo,
                             .application_name = a->cfg->name,
                             .size = a->pool_size };
        if (fsr_pg_pool_new(loop, &pc, &ctx->pg) != 0)
            FSR_ERROR("cannot create the Postgres pool");
        else
            pool_gauges_start(t);
    }
    if (a->cfg->default_redis_port != 0 &&
        fsr_redis_new(loop, a->redis.host, a->redis.port, NULL, &ctx->redis) != 0)
        FSR_ERROR("cannot create the Redis client");
    if (a->cfg->shared_redis &&
        fsr_redis_new(loop, a->shared.host, a->shared.port, NULL, &ctx->shared) != 0)
        FSR_ERROR("cannot create the shared Redis client");
    if (a->cfg->thread_init != NULL)
        ctx->user = a->cfg->thread_init(ctx);
    return ctx;
}

static void thread_dispose(void *p, void *arg)
{
    app *a = arg;
    fsr_app_ctx *ctx = p;
    if (ctx == NULL)
        return;
    if (a->cfg->thread_dispose != NULL)
        a->cfg->thread_dispose(ctx);
    fsr__jobs_thread_dispose(); /* GetJob's forwarding channels, while the loop exists */
    if (ctx->pg != NULL)
        pool_gauges_stop((app_thread *)ctx);
    fsr_redis_free(ctx->shared);
    fsr_redis_free(ctx->redis);
    fsr_pg_pool_free(ctx->pg);
    free(ctx);
}

/* Ready when the database answers (Redis is a cache: its loss degrades, never fails). */
static int ready(void *p)
{
    fsr_app_ctx *ctx = p;
    if (ctx == NULL)
        return 0;
    if (ctx->pg != NULL) {
        fsr_pg_stats st;
        fsr_pg_pool_stats(ctx->pg, &st);
        if (st.connected == 0)
            return 0;
    }
    if (ctx->cfg->ready != NULL)
        return ctx->cfg->ready(ctx);
    return 1;
}

/* Applies migrations, waiting up to |wait_ms| for the database to come up. */
static int migrate(const app *a, uint32_t wait_ms)
{
    char err[512];
    int64_t deadline = fsr_now_us() + (int64_t)wait_ms * 1000;
    for (int attempt = 1;; attempt++) {
        int rv =
            fsr_migrate(a->conninfo, a->cfg->migrations, a->cfg->n_migrations, err, sizeof(err));
        if (rv == 0)
            return 0;
        /* A changed or broken migration will not fix itself: only retry connection trouble. */
        if (rv != FSR_E_CLOSED && rv != FSR_E_TIMEOUT) {
            FSR_ERROR("migrations failed: %s", err);
            return rv;
        }
        if (fsr_now_us() >= deadline) {
            FSR_ERROR("migrations failed after %d attempts: %s", attempt, err);
            return rv;
        }
        FSR_WARN("database not reachable yet (%s); retrying", err);
        usleep(500 * 1000);
    }
}

static void usage(const fsr_app_config *cfg)
{
    printf("usage: fsr-%s [--migrate-only]\n"
           "Configuration comes from the environment: PORT (default %d), PORT_FILE, THREADS,\n"
           "LOG_LEVEL, LOG_DIR, %s_DB_HOST/PORT/NAME/USER/PASSWORD, %s_REDIS_HOST/PORT,\n"
           "SHARED_REDIS_HOST/PORT.  See README.md.\n",
           cfg->name, cfg->default_port, cfg->env_prefix, cfg->env_prefix);
}

int fsr_app_main(const fsr_app_config *cfg, int argc, char **argv)
{
    bool migrate_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--migrate-only") == 0) {
            migrate_only = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(cfg);
            return 0;
        } else {
            fprintf(stderr, "unknown argument: %s\n", argv[i]);
            usage(cfg);
            return 2;
        }
    }

    const char *port_file = NULL, *log_level = NULL, *log_dir = NULL;
    int port = 0, threads = 0, pool_size = 0;
    uint32_t db_wait_ms = 0, grace_ms = 0, header_ms = 0; /* DURATION_MS stores uint32_t */
    size_t max_msg = 0;                                   /* FSR_CONFIG_SIZE stores size_t */
    char def_port[16];
    snprintf(def_port, sizeof(def_port), "%d", cfg->default_port);
    fsr_config_entry table[] = {
        { "port", "PORT", FSR_CONFIG_INT, def_port, 0, &port, 0, 65535 },
        { "port_file", "PORT_FILE", FSR_CONFIG_STRING, NULL, 0, &port_file, 0, 0 },
        { "threads", "THREADS", FSR_CONFIG_INT, "0", 0, &threads, 0, 64 },
        { "log_level", "LOG_LEVEL", FSR_CONFIG_STRING, "info", 0, &log_level, 0, 0 },
        { "log_dir", "LOG_DIR", FSR_CONFIG_STRING, NULL, 0, &log_dir, 0, 0 },
        { "pg_pool_size", "PG_POOL_SIZE", FSR_CONFIG_INT, "4", 0, &pool_size, 1, 64 },
        { "db_wait", "DB_WAIT_MS", FSR_CONFIG_DURATION_MS, "30000", 0, &db_wait_ms, 0, 600000 },
        { "grace", "SHUTDOWN_GRACE_MS", FSR_CONFIG_DURATION_MS, "10000", 0, &grace_ms, 1, 600000 },
        { "header_timeout", "HEADER_TIMEOUT_MS", FSR_CONFIG_DURATION_MS, "10000", 0, &header_ms,
          100, 600000 },
        { "max_message_size", "MAX_MESSAGE_SIZE", FSR_CONFIG_SIZE, "4M", 0, &max_msg, 1024,
          64LL << 20 },
    };
    char err[512];
    int rv = fsr_config_load(table, FSR_ARRAY_SIZE(table), err, sizeof(err));
    fsr_log_init(cfg->name, log_level, log_dir);
    if (rv != 0) {
        FSR_ERROR("configuration: %s", err);
        return 2;
    }
    app *a = &the_app;
    a->cfg = cfg;
    a->pool_size = pool_size;
    if (cfg->default_db_port != 0 &&
        fsr_config_pg_conninfo(cfg->env_prefix, cfg->default_db_port, cfg->default_db, &a->conninfo,
                               err, sizeof(err)) != 0) {
        FSR_ERROR("configuration: %s", err);
        return 2;
    }
    if (cfg->default_redis_port != 0 &&
        fsr_config_redis_addr(cfg->env_prefix, cfg->default_redis_port, &a->redis, err,
                              sizeof(err)) != 0) {
        FSR_ERROR("configuration: %s", err);
        return 2;
    }
    if (cfg->shared_redis &&
        fsr_config_redis_addr("SHARED", 6381, &a->shared, err, sizeof(err)) != 0) {
        FSR_ERROR("configuration: %s", err);
        return 2;
    }
    fsr_config_log(table, FSR_ARRAY_SIZE(table));

    if (a->conninfo != NULL && cfg->n_migrations > 0) {
        if (migrate(a, db_wait_ms) != 0)
            return 1;
        FSR_INFO("database schema up to date (%zu migrations)", cfg->n_migrations);
    }
    if (migrate_only)
        return 0;

    fsr_metrics_register_process();
    static const char *const bi_labels[] = { "service", "version" };
    fsr_gauge_set(
        fsr_metric_labels(fsr_metric_gauge("fsr_build_info",
                                           "Always 1: the service and its version.", bi_labels, 2),
                          (const char *const[]){ cfg->name, FSR_VERSION }),
        1);
    fsr_server_config sc = {
        .name = cfg->name,
        .port = port,
        .port_file = port_file,
        .threads = threads,
        .max_message_size = max_msg,
        .grace_ms = grace_ms,
        .header_timeout_ms = header_ms,
        .thread_init = thread_init,
        .thread_dispose = thread_dispose,
        .thread_arg = a,
        .ready = ready,
        .http_handler = cfg->http_handler,
        .authorize = cfg->authorize,
    };
    fsr_server *srv;
    if (fsr_server_new(&sc, &srv) != 0)
        return 1;
    if (cfg->register_services != NULL && cfg->register_services(srv) != 0) {
        FSR_ERROR("service registration failed");
        fsr_server_free(srv);
        return 1;
    }
    rv = fsr_server_run(srv);
    fsr_server_free(srv);
    free(a->conninfo);
    return rv == 0 ? 0 : 1;
}
