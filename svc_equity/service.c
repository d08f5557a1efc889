/* SPDX-License-Identifier: MIT */
/* svc_equity's method tables: which handler serves which RPC. */
#include "equity.h"

#include "equity_v1.fsr.h"
#include "jobs_v1.fsr.h"

#include "fsr/jobs.h"

/*
 * A NULL handler is answered UNIMPLEMENTED by the runtime: the methods below without one
 * are not written yet, and say so rather than pretend.
 */
static const equity_v1_equity_service_handlers eq_handlers = {
    .create_equity = eq_create_equity,
    .get_equity = eq_get_equity,
    .list_equities = eq_list_equities,
    .update_equity = eq_update_equity,
    .delete_equity = eq_delete_equity,
    .upsert_prices = eq_upsert_prices,
    .list_prices = eq_list_prices,
    .add_dividend = eq_add_dividend,
    .list_dividends = eq_list_dividends,
    .add_split = eq_add_split,
    .list_splits = eq_list_splits,
    .get_quote = eq_get_quote,
    .get_analytics = eq_get_analytics,
    .get_covariance = eq_get_covariance,
    .import_prices = eq_import_prices,
    .batch_quotes = eq_batch_quotes,
    .watch_quotes = eq_watch_quotes,
    .deadline_ms = { .create_equity = 2000,
                     .get_equity = 1000,
                     .list_equities = 2000,
                     .upsert_prices = 30000,
                     .list_prices = 10000,
                     .get_quote = 1000,
                     .get_analytics = 10000,
                     .update_equity = 2000,
                     .delete_equity = 5000,
                     .get_covariance = 10000,
                     .import_prices = 30000,
                     .batch_quotes = 10000 },
};

/* The stateless analytics service (analytics.c). */
static const equity_v1_equity_analytics_service_handlers eq_analytics_handlers = {
    .series_analytics = eq_series_analytics,
    .covariance = eq_covariance,
    .deadline_ms = { .series_analytics = 5000, .covariance = 5000 },
};

/* GET /jobs/{id}: this service's jobs from its database, others' forwarded (lib/jobs.c). */
static const jobs_v1_job_service_handlers eq_jobs_handlers = {
    .get_job = fsr_jobs_get_job,
    .deadline_ms = { .get_job = 2000 },
};

int eq_register_services(fsr_server *srv)
{
    int rv = equity_v1_equity_service_register(srv, &eq_handlers);
    if (rv == 0)
        rv = jobs_v1_job_service_register(srv, &eq_jobs_handlers);
    if (rv != 0)
        return rv;
    return equity_v1_equity_analytics_service_register(srv, &eq_analytics_handlers);
}
