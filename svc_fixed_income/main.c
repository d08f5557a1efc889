/* SPDX-License-Identifier: MIT */
/* fsr-fixed-income: bonds, their quotes and bond analytics (gRPC on :8002). */
#include "fsr/app.h"
#include "fsr/migrate.h"

#include "fixed_income.h"

FSR_MIGRATIONS_DECLARE(fi_migrations);

int main(int argc, char **argv)
{
    /*
     * Everything else (PORT, PORT_FILE, THREADS, LOG_*, FI_DB_*, FI_REDIS_*,
     * SHARED_REDIS_*) is read from
     * the environment by fsr_app_main().
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
    };
    fsr_app_config c = cfg;
    c.n_migrations = fi_migrations_count;
    return fsr_app_main(&c, argc, argv);
}
