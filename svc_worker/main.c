/* SPDX-License-Identifier: MIT */
/* fsr-worker --queue equity|fixed_income|portfolio: a service's background job runner. */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fsr-worker --queue equity|fixed_income|portfolio [--help]\n"
            "Runs the background jobs of one service's queue (Redis stream jobs:<queue>,\n"
            "consumer group " WK_GROUP ") on that service's own Postgres and Redis: the same\n"
            "<PREFIX>_DB_* and <PREFIX>_REDIS_* variables as the service (EQUITY, FI,\n"
            "PORTFOLIO).  /health and /metrics are served on WORKER_PORT (default 9101, 9102,\n"
            "9103 by queue; 0 picks a free port, written to PORT_FILE).  THREADS defaults to 1.\n");
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
    wk_queue_select(q);

    /*
     * fsr_app_main() reads PORT: the worker's own port is WORKER_PORT, so that a PORT meant
     * for the service next to it never applies here.  Unset, the queue's default is used.
     */
    const char *wport = getenv("WORKER_PORT");
    if (wport != NULL && wport[0] != '\0')
        setenv("PORT", wport, 1);
    else
        unsetenv("PORT");
    /* One loop thread is plenty for health and metrics until the job engine lands. */
    setenv("THREADS", "1", 0);

    fsr_app_config cfg = {
        .name = q->app_name,
        .env_prefix = q->env_prefix,
        .default_port = q->default_port,
        .default_db_port = q->default_db_port,
        .default_db = q->default_db,
        .default_redis_port = q->default_redis_port,
        .shared_redis = false,
        /* The service owns and migrates its schema; the worker only connects. */
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
