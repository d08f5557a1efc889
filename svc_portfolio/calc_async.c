/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous Calculate and job ownership.
 *
 * POST /portfolios/{id}/calculate with "async": true checks that the caller sees the
 * portfolio (another client's is NOT_FOUND, as for the synchronous call), then enqueues a
 * job of type "pf.calculate" on the portfolio queue and answers at once with the QUEUED job
 * (CalculateResponse.job, plus portfolioId).  The payload is a small JSON object:
 *
 *   {"portfolio_id": "...", "as_of": "YYYY-MM-DD" or "", "lookback_days": N (0: default),
 *    "client_id": "..." (absent for an internal caller), "role": "client|data|admin|"}
 *
 * The portfolio worker (svc_worker/jobs_pf_calc.c) calls this service's Calculate over gRPC
 * with async false and the recorded identity as x-client-id / x-client-role metadata, and
 * stores the response's JSON as the job's result.
 *
 * GetJob ownership (pf_get_job): a pf.calculate job is visible to admin and internal callers
 * and to the client whose id its payload records (NOT_FOUND for anyone else: its result is a
 * portfolio's valuation).  A caller of role `client` sees no other job (scheduled jobs,
 * another service's imports: NOT_FOUND); `data` callers see those as before.
 */
#include "portfolio.h"

#include <stdio.h>
#include <string.h>

#include "fsr/app.h"
#include "fsr/handler.h"
#include "fsr/jobs.h"
#include "fsr/log.h"
#include "fsr/validate.h"

#include "portfolio_v1.fsr.h"

#define PF_CALC_JOB_TYPE "pf.calculate"

static const fsr_pg_stmt st_visible = {
    "pf_calc_async_visible",
    "SELECT 1 FROM portfolios WHERE id = $1::uuid AND ($2 = '' OR client_id = $2::uuid)",
};

static const fsr_pg_stmt st_job_owner = {
    "pf_job_owner",
    "SELECT type = '" PF_CALC_JOB_TYPE "', coalesce(CASE WHEN type = '" PF_CALC_JOB_TYPE "'"
    " THEN convert_from(payload, 'UTF8')::jsonb ->> 'client_id' END, '')"
    " FROM jobs WHERE id = $1::uuid",
};

typedef struct calc_async_op {
    fsr_call *call;
    char id[40];
    char payload[FSR_JOB_PAYLOAD_MAX + 1];
    size_t payload_len;
} calc_async_op;

static const char *role_name(fsr_role r)
{
    switch (r) {
    case FSR_ROLE_CLIENT:
        return "client";
    case FSR_ROLE_DATA:
        return "data";
    case FSR_ROLE_ADMIN:
        return "admin";
    case FSR_ROLE_INTERNAL:
        break;
    }
    return "";
}

static void on_enqueued(const fsr_job_info *info, int status, void *arg)
{
    calc_async_op *op = arg;
    fsr_call *call = op->call;
    if (status != 0 || info == NULL) {
        fsr_call_fail_err(call, status != 0 ? status : FSR_E_DB, "Calculate: enqueue");
        return;
    }
    Portfolio__V1__CalculateResponse *r = fsr_call_alloc(call, sizeof(*r));
    portfolio__v1__calculate_response__init(r);
    r->portfolio_id = op->id;
    r->job = fsr_job_info_to_pb(fsr_call_arena(call), info);
    portfolio_v1_portfolio_service_calculate_reply(call, r);
}

static void on_visible(const fsr_pg_result *res, void *arg)
{
    calc_async_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        pf_fail_db(call, res, "Calculate");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_finish(call, FSR_NOT_FOUND, "portfolio not found");
        return;
    }
    fsr_app_ctx *ctx = fsr_app_ctx_of(call);
    fsr_pg_pool *pool = pf_pool(call);
    if (pool == NULL)
        return;
    fsr_job_spec spec = {
        .type = PF_CALC_JOB_TYPE,
        .payload = op->payload,
        .payload_len = op->payload_len,
        .max_attempts = 3,
        .request_id = fsr_call_request_id(call),
    };
    int rv = fsr_job_enqueue(pool, ctx != NULL ? ctx->redis : NULL, FSR_JOB_QUEUE_PORTFOLIO, &spec,
                             on_enqueued, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "Calculate: enqueue");
}

void pf_calculate_async(fsr_call *call, const fsr_caller *who,
                        const Portfolio__V1__CalculateRequest *req)
{
    calc_async_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    snprintf(op->id, sizeof(op->id), "%s", req->id); /* a checked UUID */
    /* Ids are UUIDs and as_of a checked date: nothing needs escaping. */
    int n = snprintf(op->payload, sizeof(op->payload),
                     "{\"portfolio_id\":\"%s\",\"as_of\":\"%s\",\"lookback_days\":%d", req->id,
                     req->as_of, req->lookback_days != NULL ? (int)req->lookback_days->value : 0);
    if (n > 0 && (size_t)n < sizeof(op->payload) && who->client_id != NULL)
        n += snprintf(op->payload + n, sizeof(op->payload) - (size_t)n, ",\"client_id\":\"%s\"",
                      who->client_id);
    if (n > 0 && (size_t)n < sizeof(op->payload))
        n += snprintf(op->payload + n, sizeof(op->payload) - (size_t)n, ",\"role\":\"%s\"}",
                      role_name(who->role));
    if (n <= 0 || (size_t)n >= sizeof(op->payload) || (size_t)n > FSR_JOB_PAYLOAD_MAX) {
        fsr_call_finish(call, FSR_INTERNAL, "internal error");
        return;
    }
    op->payload_len = (size_t)n;
    fsr_pg_pool *pool = pf_pool(call);
    if (pool == NULL)
        return;
    const char *scope = fsr_caller_scope(who);
    const char *v[] = { req->id, scope != NULL ? scope : "" };
    int rv = fsr_pg_query(pool, &st_visible, 2, v, on_visible, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "Calculate");
}

/* ---- GetJob with ownership ------------------------------------------------------------ */

typedef struct job_owner_op {
    fsr_call *call;
    const Jobs__V1__GetJobRequest *req;
    fsr_caller who;
} job_owner_op;

static void on_job_owner(const fsr_pg_result *res, void *arg)
{
    job_owner_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        pf_fail_db(op->call, res, "GetJob");
        return;
    }
    if (fsr_pg_result_rows(res) != 1) {
        fsr_call_finish(op->call, FSR_NOT_FOUND, "job not found");
        return;
    }
    bool calc = strcmp(fsr_pg_result_getvalue(res, 0, 0), "t") == 0;
    const char *owner = fsr_pg_result_getvalue(res, 0, 1);
    /* A calculation: its owner only.  Anything else: not a client's. */
    bool visible = calc ? op->who.client_id != NULL && strcmp(owner, op->who.client_id) == 0
                        : op->who.role != FSR_ROLE_CLIENT;
    if (!visible) {
        fsr_call_finish(op->call, FSR_NOT_FOUND, "job not found");
        return;
    }
    fsr_jobs_get_job(op->call, op->req);
}

void pf_get_job(fsr_call *call, const Jobs__V1__GetJobRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0)
        return;
    const char *id = req->id != NULL ? req->id : "";
    fsr_job_queue q;
    if (fsr_caller_scope(&who) == NULL || id[0] == '\0' || !fsr_uuid_valid(id) ||
        fsr_job_id_queue(id, &q) != 0) {
        fsr_jobs_get_job(call, req); /* unscoped; or its INVALID_ARGUMENT / NOT_FOUND */
        return;
    }
    if (q != FSR_JOB_QUEUE_PORTFOLIO) {
        /* Another service's job (an import): never a client's; a data caller's as before. */
        if (who.role == FSR_ROLE_CLIENT)
            fsr_call_finish(call, FSR_NOT_FOUND, "job not found");
        else
            fsr_jobs_get_job(call, req);
        return;
    }
    fsr_pg_pool *pool = pf_pool(call);
    if (pool == NULL)
        return;
    job_owner_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->req = req;
    op->who = who;
    const char *v[] = { id };
    int rv = fsr_pg_query(pool, &st_job_owner, 1, v, on_job_owner, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "GetJob");
}
