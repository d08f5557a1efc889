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
    .update_portfolio = NULL,
    .delete_portfolio = NULL,
    .list_constituents = NULL,
    .add_constituent = NULL,
    .remove_constituent = NULL,
    .add_transaction = NULL,
    .list_transactions = NULL,
    .calculate = NULL,
    .rebalance = NULL,
    .get_performance = NULL,
    .deadline_ms = { .create_portfolio = 2000, .get_portfolio = 1000, .list_portfolios = 2000 },
};

/* Clients and keys (the tables exist; the methods come with authentication). */
static const portfolio_v1_client_service_handlers pf_client_handlers = {
    .create_client = NULL,
    .list_clients = NULL,
    .get_client = NULL,
    .create_key = NULL,
    .revoke_key = NULL,
    .authenticate = NULL,
};

/* The stateless flow-based analytics. */
static const portfolio_v1_portfolio_analytics_service_handlers pf_analytics_handlers = {
    .twr = NULL,
    .xirr = NULL,
    .attribution = NULL,
    .rebalance_plan = NULL,
};

/* For the equity and fixed-income services: is an instrument held (delete refusal). */
static const portfolio_v1_holdings_service_handlers pf_holdings_handlers = {
    .count_holders = NULL,
};

/* GET /jobs/{id}: this service's jobs from its database, others' forwarded (lib/jobs.c). */
static const jobs_v1_job_service_handlers pf_jobs_handlers = {
    .get_job = fsr_jobs_get_job,
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
