/* SPDX-License-Identifier: MIT */
/* fsr-gateway: the REST/JSON front door (port 8000) in front of the three gRPC services. */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/config.h"
#include "fsr/log.h"

int main(int argc, char **argv)
{
    /* Everything else (PORT, THREADS, LOG_*, MAX_MESSAGE_SIZE...) is read by fsr_app_main. */
    static char *addr[GW_UP_COUNT];
    static int timeout_ms, max_timeout_ms;
    static long long max_upstream;
    static const fsr_config_entry table[] = {
        { "equity_service_addr", "EQUITY_SERVICE_ADDR", FSR_CONFIG_STRING, "localhost:8001", 0,
          &addr[GW_UP_EQUITY], 0, 0 },
        { "fi_service_addr", "FI_SERVICE_ADDR", FSR_CONFIG_STRING, "localhost:8002", 0,
          &addr[GW_UP_FI], 0, 0 },
        { "portfolio_service_addr", "PORTFOLIO_SERVICE_ADDR", FSR_CONFIG_STRING, "localhost:8003",
          0, &addr[GW_UP_PORTFOLIO], 0, 0 },
        { "upstream_timeout", "UPSTREAM_TIMEOUT_MS", FSR_CONFIG_DURATION_MS, "10000", 0,
          &timeout_ms, 1, 600000 },
        { "upstream_max_timeout", "UPSTREAM_MAX_TIMEOUT_MS", FSR_CONFIG_DURATION_MS, "60000", 0,
          &max_timeout_ms, 1, 600000 },
        { "upstream_max_message_size", "UPSTREAM_MAX_MESSAGE_SIZE", FSR_CONFIG_SIZE, "16M", 0,
          &max_upstream, 1024, 256LL << 20 },
    };
    bool help = false;
    for (int i = 1; i < argc; i++)
        help = help || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
    if (!help) {
        /* Early records carry the right service name; fsr_app_main() sets up the rest. */
        fsr_log_init("gateway", getenv("LOG_LEVEL"), NULL);
        char err[512];
        if (fsr_config_load(table, FSR_ARRAY_SIZE(table), err, sizeof(err)) != 0) {
            fprintf(stderr, "fsr-gateway: configuration: %s\n", err);
            return 2;
        }
        /* Each is "host:port", or several separated by commas: replicas, balanced. */
        for (int i = 0; i < GW_UP_COUNT; i++) {
            char aerr[300];
            if (gw_addr_list_check(addr[i], aerr, sizeof(aerr)) != 0) {
                fprintf(stderr, "fsr-gateway: configuration: %s: %s\n", table[i].env, aerr);
                return 2;
            }
        }
    }

    gw_config gc = {
        .default_timeout_ms = timeout_ms,
        .max_timeout_ms = max_timeout_ms,
        .max_upstream_message = (size_t)max_upstream,
    };
    for (int i = 0; i < GW_UP_COUNT; i++)
        gc.upstream_addr[i] = addr[i];
    if (!help && gw_init(&gc, fsr_routes, fsr_n_routes) != 0) {
        fprintf(stderr, "fsr-gateway: the route table does not compile\n");
        return 1;
    }
    if (!help)
        fsr_config_log(table, FSR_ARRAY_SIZE(table));

    static const fsr_app_config app = {
        .name = "gateway",
        .env_prefix = "GATEWAY",
        .default_port = 8000,
        .default_db_port = 0,    /* no database */
        .default_redis_port = 0, /* no own Redis */
        .shared_redis = true,    /* SHARED_REDIS_*: "key.revoked" (revoked API keys) */
        .thread_init = gw_thread_init,
        .thread_dispose = gw_thread_dispose,
        .http_handler = gw_handle,
    };
    int rv = fsr_app_main(&app, argc, argv);
    gw_shutdown();
    return rv;
}
