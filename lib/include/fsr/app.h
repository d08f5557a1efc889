/* SPDX-License-Identifier: MIT */
/*
 * The common main() of a service: configuration from the environment, logging, migrations,
 * per-thread Postgres pool and Redis connections, readiness, metrics, and the gRPC server.
 * Each service supplies only its name, defaults, migrations and service registrations.
 */
#ifndef FSR_APP_H
#define FSR_APP_H

#include <stdbool.h>

#include "fsr/loop.h"
#include "fsr/migrate.h"
#include "fsr/pg.h"
#include "fsr/redis.h"
#include "fsr/server.h"

/* Per loop thread: what handlers reach through fsr_call_ctx(call). */
typedef struct fsr_app_ctx {
    fsr_loop *loop;
    fsr_pg_pool *pg;   /* the service's own database (NULL if it has none) */
    fsr_redis *redis;  /* the service's own Redis (cache) */
    fsr_redis *shared; /* the shared Redis (events) */
    void *user;        /* the service's own per-thread state (thread_init's result) */
    const struct fsr_app_config *cfg;
} fsr_app_ctx;

typedef struct fsr_app_config {
    const char *name;       /* "equity": logs, metrics, pg application_name */
    const char *env_prefix; /* "EQUITY": <prefix>_DB_*, <prefix>_REDIS_* */
    int default_port;       /* 8001 */
    int default_db_port;    /* 5432; 0 = the service has no database */
    const char *default_db; /* "equity" */
    int default_redis_port; /* 6379; 0 = no own Redis */
    bool shared_redis;      /* connect to SHARED_REDIS_* too */
    const fsr_migration *migrations;
    size_t n_migrations;
    /* Registers the service's gRPC services (generated *_register calls). */
    int (*register_services)(fsr_server *srv);
    /* Optional per-thread state and plain-HTTP handler (the gateway's REST routes). */
    void *(*thread_init)(fsr_app_ctx *ctx);
    void (*thread_dispose)(fsr_app_ctx *ctx);
    fsr_http_handler http_handler;
    /* Optional readiness in addition to the database (e.g. upstreams). */
    int (*ready)(fsr_app_ctx *ctx);
    /* Optional authorization of every gRPC call before dispatch (fsr_server_config's
     * authorize; e.g. fsr_authorize_client_reads() in a wrapper). */
    fsr_code (*authorize)(const fsr_call *call, const char **message);
} fsr_app_config;

/*
 * Runs the service: returns the process exit status.  Flags: --migrate-only (apply
 * migrations and exit), --help.  Exits non-zero before opening any socket when the
 * configuration is invalid or migrations fail.
 */
int fsr_app_main(const fsr_app_config *cfg, int argc, char **argv);

/* The context of the thread serving |call|. */
static inline fsr_app_ctx *fsr_app_ctx_of(fsr_call *call)
{
    return (fsr_app_ctx *)fsr_call_ctx(call);
}

#endif /* FSR_APP_H */
