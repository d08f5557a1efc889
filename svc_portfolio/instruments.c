/* SPDX-License-Identifier: MIT */
/*
 * Does an instrument exist?  One RPC to the service that owns it (GetEquity or GetBond),
 * before a write that would make it a holding; never inside the write's transaction, so a
 * slow or stopped service holds no database connection or lock.
 */
#include "portfolio.h"

#include <string.h>

#include "fsr/log.h"
#include "fsr/metadata.h"

#include "equity_v1.fsr.h"
#include "fixed_income_v1.fsr.h"

/*
 * The check's own deadline: capped by the caller's (the parent call), and short enough that
 * a hung service answers as unavailable instead of eating the whole request budget.
 */
#define PF_CHECK_TIMEOUT_MS 3000

/*
 * UNAVAILABLE naming the service, with the trailer that tells the gateway this service is up
 * and its message is the answer (fsr/metadata.h).
 */
static void fail_unavailable(fsr_call *call, const char *service)
{
    const char *dep = strcmp(service, "equity") == 0 ? "equity" : "fixed_income";
    fsr_call_fail_dependency(call, dep, "%s service unavailable", service);
}

typedef struct check_op {
    fsr_call *call;
    const char *id;
    pf_instrument_cb cb;
    void *arg;
} check_op;

/*
 * The owner's NOT_FOUND is the instrument's; anything else (refused connection, timeout,
 * the service's own trouble) means the service cannot vouch for it now.  Its message is
 * logged, not passed on: transport errors may name hosts.
 */
static void check_failed(check_op *op, const fsr_result *res, const char *kind, const char *service)
{
    if (res->status.code == FSR_NOT_FOUND) {
        fsr_call_fail(op->call, FSR_NOT_FOUND, "%s %s not found", kind, op->id);
        return;
    }
    FSR_WARN("%s check of %s: %s %s", kind, op->id, fsr_code_name(res->status.code),
             res->status.message != NULL ? res->status.message : "");
    fail_unavailable(op->call, service);
}

static void on_equity(const fsr_result *res, const Equity__V1__Equity *e, void *arg)
{
    check_op *op = arg;
    if (res->status.code != FSR_OK || e == NULL) {
        check_failed(op, res, "equity", "equity");
        return;
    }
    op->cb(op->call, fsr_arena_strdup(fsr_call_arena(op->call), e->symbol), op->arg);
}

static void on_bond(const fsr_result *res, const FixedIncome__V1__Bond *b, void *arg)
{
    check_op *op = arg;
    if (res->status.code != FSR_OK || b == NULL) {
        check_failed(op, res, "bond", "fixed income");
        return;
    }
    const char *symbol = b->isin[0] != '\0' ? b->isin : b->name;
    op->cb(op->call, fsr_arena_strdup(fsr_call_arena(op->call), symbol), op->arg);
}

void pf_instrument_check(fsr_call *call, Common__V1__InstrumentType__Value type, const char *id,
                         pf_instrument_cb cb, void *arg)
{
    bool equity = type == COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY;
    const char *service = equity ? "equity" : "fixed income";
    fsr_channel *ch = equity ? pf_equity_channel(call) : pf_fi_channel(call);
    if (ch == NULL) {
        fail_unavailable(call, service);
        return;
    }
    check_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = id;
    op->cb = cb;
    op->arg = arg;
    fsr_call_opts opts = { .timeout_ms = PF_CHECK_TIMEOUT_MS, .parent = call, .idempotent = true };
    int rv;
    if (equity) {
        Equity__V1__GetEquityRequest *req = fsr_call_alloc(call, sizeof(*req));
        equity__v1__get_equity_request__init(req);
        req->id = fsr_arena_strdup(fsr_call_arena(call), id);
        rv = equity_v1_equity_service_get_equity(ch, req, &opts, on_equity, op);
    } else {
        FixedIncome__V1__GetBondRequest *req = fsr_call_alloc(call, sizeof(*req));
        fixed_income__v1__get_bond_request__init(req);
        req->id = fsr_arena_strdup(fsr_call_arena(call), id);
        rv = fixed_income_v1_fixed_income_service_get_bond(ch, req, &opts, on_bond, op);
    }
    if (rv != 0) {
        FSR_WARN("%s check of %s: %d", service, id, rv);
        fail_unavailable(call, service);
    }
}
