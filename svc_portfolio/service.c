/* SPDX-License-Identifier: MIT */
/* svc_portfolio's method tables: which handler serves which RPC. */
#include "portfolio.h"

#include "portfolio_v1.fsr.h"
#include "jobs_v1.fsr.h"

#include "fsr/jobs.h"

/*
 * A NULL handler is answered UNIMPLEMENTED by the runtime: the methods below without one
 * are not written yet, and say so rather than pretend.
 */
static const portfolio_v1_portfolio_service_handlers pf_handlers = {
    .create_portfolio = pf_create_portfolio,
    .get_portfolio = pf_get_portfolio,
    .list_portfolios = pf_list_portfolios,
    .update_portfolio = pf_update_portfolio,
    .delete_portfolio = pf_delete_portfolio,
    .list_constituents = pf_list_constituents,
    .add_constituent = pf_add_constituent,
    .remove_constituent = pf_remove_constituent,
    .add_transaction = pf_add_transaction,
    .list_transactions = pf_list_transactions,
    .calculate = pf_calculate,
    .rebalance = pf_rebalance,
    .get_performance = pf_get_performance,
    .deadline_ms = { .create_portfolio = 2000,
                     .get_portfolio = 1000,
                     .list_portfolios = 2000,
                     .list_constituents = 10000,
                     .calculate = 10000,
                     /* ledger.c, constituents.c: an instrument check by RPC, then one write */
                     .update_portfolio = 2000,
                     .delete_portfolio = 2000,
                     .add_constituent = 5000,
                     .remove_constituent = 2000,
                     .add_transaction = 5000,
                     .list_transactions = 2000,
                     /* rebalance.c: a valuation, then one ledger write */
                     .rebalance = 10000,
                     /* performance.c: snapshots, or the ledger replayed over market data */
                     .get_performance = 30000 },
};

/* Clients and keys (admin only) and Authenticate, the gateway's key lookup (clients.c). */
static const portfolio_v1_client_service_handlers pf_client_handlers = {
    .create_client = pf_create_client,
    .list_clients = pf_list_clients,
    .get_client = pf_get_client,
    .create_key = pf_create_key,
    .revoke_key = pf_revoke_key,
    .authenticate = pf_authenticate,
    .deadline_ms = { .create_client = 2000,
                     .list_clients = 2000,
                     .get_client = 1000,
                     .create_key = 2000,
                     .revoke_key = 2000,
                     .authenticate = 1000 },
};

/* The stateless flow-based analytics. */
static const portfolio_v1_portfolio_analytics_service_handlers pf_analytics_handlers = {
    .twr = pf_twr,
    .xirr = pf_xirr,
    .attribution = pf_attribution,
    .rebalance_plan = pf_rebalance_plan,
    .deadline_ms = { .twr = 5000, .xirr = 5000, .attribution = 2000, .rebalance_plan = 2000 },
};

/* For the equity and fixed-income services: is an instrument held (delete refusal). */
static const portfolio_v1_holdings_service_handlers pf_holdings_handlers = {
    .count_holders = pf_count_holders,
    .deadline_ms = { .count_holders = 2000 },
};

/* GET /jobs/{id}: this service's jobs from its database, others' forwarded (lib/jobs.c). */
static const jobs_v1_job_service_handlers pf_jobs_handlers = {
    .get_job = pf_get_job, /* ownership for clients, then fsr_jobs_get_job (calc_async.c) */
    .deadline_ms = { .get_job = 2000 },
};

int pf_register_services(fsr_server *srv)
{
    int rv = portfolio_v1_portfolio_service_register(srv, &pf_handlers);
    if (rv == 0)
        rv = portfolio_v1_client_service_register(srv, &pf_client_handlers);
    if (rv == 0)
        rv = portfolio_v1_portfolio_analytics_service_register(srv, &pf_analytics_handlers);
    if (rv == 0)
        rv = portfolio_v1_holdings_service_register(srv, &pf_holdings_handlers);
    if (rv == 0)
        rv = jobs_v1_job_service_register(srv, &pf_jobs_handlers);
    return rv;
}
