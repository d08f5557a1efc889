/* SPDX-License-Identifier: MIT */
/* fsr-fixed-income: bonds, their quotes and bond analytics (gRPC on :8002). */
#include "fsr/app.h"
#include "fsr/handler.h"
#include "fsr/log.h"
#include "fsr/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixed_income.h"

FSR_MIGRATIONS_DECLARE(fi_migrations);

/*
 * Defense in depth behind the gateway: a caller with role "client" only reads (methods
 * marked NO_SIDE_EFFECTS) and runs the stateless bond analytics; internal callers, "data"
 * and "admin" may write.
 */
static fsr_code fi_authorize(const fsr_call *call, const char **message)
{
    static const char *const open[] = { "BondAnalytics", "BatchAnalytics" };
    return fsr_authorize_client_reads(call, open, FSR_ARRAY_SIZE(open), message);
}

/*
 * Per loop thread: the channel to the portfolio service (DeleteBond's CountHolders).  It
 * connects lazily, on the first delete, and reconnects by itself.  PORTFOLIO_SERVICE_ADDR
 * may list replicas ("h1:p,h2:p", as the gateway accepts): the first is used.
 */
static void *fi_thread_init(fsr_app_ctx *ctx)
{
    fi_thread *th = fsr_xcalloc(1, sizeof(*th));
    const char *list = getenv("PORTFOLIO_SERVICE_ADDR");
    if (list == NULL || list[0] == '\0')
        list = "localhost:8003";
    while (*list == ' ')
        list++;
    char target[256];
    snprintf(target, sizeof(target), "%.*s", (int)strcspn(list, ", "), list);
    if (fsr_channel_new(ctx->loop, target, NULL, &th->portfolio) != 0) {
        FSR_ERROR("bad PORTFOLIO_SERVICE_ADDR '%s': DeleteBond will answer UNAVAILABLE", target);
        th->portfolio = NULL;
    }
    return th;
}

static void fi_thread_dispose(fsr_app_ctx *ctx)
{
    fi_thread *th = ctx->user;
    if (th == NULL)
        return;
    fsr_channel_free(th->portfolio);
    free(th);
    ctx->user = NULL;
}

int main(int argc, char **argv)
{
    /*
     * Everything else (PORT, PORT_FILE, THREADS, LOG_*, FI_DB_*, FI_REDIS_*,
     * SHARED_REDIS_*, PORTFOLIO_SERVICE_ADDR) is read from the environment by
     * fsr_app_main() and the thread init above.
     */
    static const fsr_app_config cfg = {
        .name = "fixed-income",
        .env_prefix = "FI",
        .default_port = 8002,
        .default_db_port = 5433,
        .default_db = "fixed_income",
        .default_redis_port = 6380,
        .shared_redis = true,
        .migrations = fi_migrations,
        .register_services = fi_register_services,
        .authorize = fi_authorize,
        .thread_init = fi_thread_init,
        .thread_dispose = fi_thread_dispose,
    };
    fsr_app_config c = cfg;
    c.n_migrations = fi_migrations_count;
    return fsr_app_main(&c, argc, argv);
}
