/* SPDX-License-Identifier: MIT */
/* fsr-portfolio: clients, portfolios, valuation and performance (gRPC on :8003). */
#include "fsr/app.h"
#include "fsr/migrate.h"

#include "portfolio.h"

FSR_MIGRATIONS_DECLARE(pf_migrations);

int main(int argc, char **argv)
{
    /*
     * Everything else (PORT, PORT_FILE, THREADS, LOG_*, PORTFOLIO_DB_*, PORTFOLIO_REDIS_*,
     * SHARED_REDIS_*) is read from the environment by fsr_app_main().
     */
    static const fsr_app_config cfg = {
        .name = "portfolio",
        .env_prefix = "PORTFOLIO",
        .default_port = 8003,
        .default_db_port = 5434,
        .default_db = "portfolio",
        .default_redis_port = 6382,
        .shared_redis = true,
        .migrations = pf_migrations,
        .register_services = pf_register_services,
        .thread_init = pf_thread_init,
        .thread_dispose = pf_thread_dispose,
    };
    fsr_app_config c = cfg;
    c.n_migrations = pf_migrations_count;
    return fsr_app_main(&c, argc, argv);
}
