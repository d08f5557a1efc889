/* SPDX-License-Identifier: MIT */
/* fsr-equity: equity reference and market data (gRPC on :8001). */
#include "fsr/app.h"
#include "fsr/handler.h"
#include "fsr/migrate.h"

#include "equity.h"

FSR_MIGRATIONS_DECLARE(eq_migrations);

/*
 * Defense in depth behind the gateway: a caller with role "client" only reads (methods
 * marked NO_SIDE_EFFECTS) and runs the stateless analytics; internal callers, "data" and
 * "admin" may write.
 */
static fsr_code eq_authorize(const fsr_call *call, const char **message)
{
    static const char *const open[] = { "SeriesAnalytics", "Covariance" };
    return fsr_authorize_client_reads(call, open, FSR_ARRAY_SIZE(open), message);
}

int main(int argc, char **argv)
{
    /*
     * Everything else (PORT, PORT_FILE, THREADS, LOG_*, EQUITY_DB_*, EQUITY_REDIS_*,
     * SHARED_REDIS_*) is read from the environment by fsr_app_main().
     */
    static const fsr_app_config cfg = {
        .name = "equity",
        .env_prefix = "EQUITY",
        .default_port = 8001,
        .default_db_port = 5432,
        .default_db = "equity",
        .default_redis_port = 6379,
        .shared_redis = true,
        .migrations = eq_migrations,
        .register_services = eq_register_services,
        .thread_dispose = eq_thread_dispose, /* portfolio channel, WatchQuotes state */
        .authorize = eq_authorize,
    };
    fsr_app_config c = cfg;
    c.n_migrations = eq_migrations_count;
    return fsr_app_main(&c, argc, argv);
}
