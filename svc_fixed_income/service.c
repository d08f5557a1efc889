/* SPDX-License-Identifier: MIT */
/* svc_fixed_income's method table: which handler serves which RPC. */
#include "fixed_income.h"

#include "fixed_income_v1.fsr.h"
#include "jobs_v1.fsr.h"

#include "fsr/jobs.h"

/*
 * A NULL handler is answered UNIMPLEMENTED by the runtime: the methods below without one
 * are not written yet, and say so rather than pretend.
 */
static const fixed_income_v1_fixed_income_service_handlers fi_handlers = {
    .create_bond = fi_create_bond,
    .get_bond = fi_get_bond,
    .list_bonds = fi_list_bonds,
    .update_bond = fi_update_bond,
    .delete_bond = fi_delete_bond,
    .upsert_quotes = fi_upsert_quotes,
    .list_quotes = fi_list_quotes,
    .bond_analytics = fi_bond_analytics,
    .get_bond_analytics = fi_get_bond_analytics,
    .batch_analytics = fi_batch_analytics,
    .batch_price_history = fi_batch_price_history,
    .deadline_ms = { .create_bond = 2000,
                     .get_bond = 1000,
                     .list_bonds = 2000,
                     .update_bond = 2000,
                     .delete_bond = 2000,
                     .upsert_quotes = 5000,
                     .list_quotes = 2000,
                     .bond_analytics = 1000,
                     .get_bond_analytics = 1000,
                     .batch_analytics = 5000,
                     .batch_price_history = 10000 },
};

/* GET /jobs/{id}: this service's jobs from its database, others' forwarded (lib/jobs.c). */
static const jobs_v1_job_service_handlers fi_jobs_handlers = {
    .get_job = fsr_jobs_get_job,
    .deadline_ms = { .get_job = 2000 },
};

int fi_register_services(fsr_server *srv)
{
    int rv = fixed_income_v1_fixed_income_service_register(srv, &fi_handlers);
    if (rv == 0)
        rv = jobs_v1_job_service_register(srv, &fi_jobs_handlers);
    return rv;
}
