/* SPDX-License-Identifier: MIT */
/*
 * GetCovariance: covariance and correlation of stored equities' daily returns.  Each
 * equity's series is loaded exactly as GetAnalytics loads it (eq_series_load(): closes and
 * dividends, split-adjusted), the k loads run concurrently on the thread's pool, and the
 * numbers come from the code the stateless Covariance uses (eq_covariance_dated(): aligned on
 * the dates every equity has, then lib/analytics' fsr_an_cov and fsr_an_portfolio_risk).
 */
#include "equity.h"

#include <errno.h>
#include <string.h>

#include "fsr/app.h"
#include "fsr/handler.h"
#include "fsr/validate.h"

#include "equity_v1.fsr.h"

#define EQ_COV_MAX_IDS      100
#define EQ_COV_LOOKBACK     252
#define EQ_COV_LOOKBACK_MAX 25200 /* a century of trading days */

typedef struct cov_op {
    fsr_call *call;
    const Equity__V1__GetCovarianceRequest *req;
    fsr_an_basis basis;
    size_t last; /* returns to keep (lookback), 0: all in from..to */
    fsr_an_series *s;
    int *status; /* per id: 0 loaded, -ENOENT, or a statement's status */
    size_t pending;
} cov_op;

/* Every load has answered: report the first failure in ids order, or compute. */
static void cov_finish(cov_op *op)
{
    fsr_call *call = op->call;
    const Equity__V1__GetCovarianceRequest *req = op->req;
    size_t k = req->n_ids;
    for (size_t i = 0; i < k; i++) {
        if (op->status[i] == -ENOENT) {
            fsr_call_fail_field(call, FSR_NOT_FOUND, fsr_call_printf(call, "ids[%zu]", i),
                                "equity %s not found", req->ids[i]);
            return;
        }
        if (op->status[i] != 0) {
            fsr_call_fail_err(call, op->status[i], "get covariance");
            return;
        }
    }
    for (size_t i = 0; i < k; i++) {
        if (op->s[i].n < 2) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, fsr_call_printf(call, "ids[%zu]", i),
                                "equity %s has %zu price%s in the window; at least two are "
                                "needed",
                                req->ids[i], op->s[i].n, op->s[i].n == 1 ? "" : "s");
            return;
        }
    }
    Common__V1__CovarianceResult *o = eq_covariance_dated(
        call, op->s, k, op->basis, op->last, req->weights, req->n_weights, "ids", "weights");
    if (o == NULL)
        return;
    for (size_t i = 0; i < k; i++)
        o->ids[i] = req->ids[i];
    equity_v1_equity_service_get_covariance_reply(call, o);
}

typedef struct cov_item {
    cov_op *op;
    size_t i;
} cov_item;

static void on_loaded(fsr_call *call, int status, void *arg)
{
    (void)call;
    cov_item *it = arg;
    cov_op *op = it->op;
    op->status[it->i] = status;
    /* The call stays unfinished until every load answered: their callbacks use its arena. */
    if (--op->pending == 0)
        cov_finish(op);
}

void eq_get_covariance(fsr_call *call, const Equity__V1__GetCovarianceRequest *req)
{
    size_t k = req->n_ids;
    if (k < 2) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "ids", "needs at least two equities");
        return;
    }
    if (k > EQ_COV_MAX_IDS) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "ids", "must hold at most %d equities",
                            EQ_COV_MAX_IDS);
        return;
    }
    for (size_t i = 0; i < k; i++) {
        if (fsr_check_uuid(call, fsr_call_printf(call, "ids[%zu]", i), req->ids[i]) != 0)
            return;
    }
    const char *from = NULL, *to = NULL;
    if (req->from[0] != '\0') {
        if (fsr_date_parse(req->from, NULL, NULL, NULL) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "from",
                                "must be a date \"YYYY-MM-DD\"");
            return;
        }
        from = req->from;
    }
    if (req->to[0] != '\0') {
        if (fsr_date_parse(req->to, NULL, NULL, NULL) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "to", "must be a date \"YYYY-MM-DD\"");
            return;
        }
        to = req->to;
    }
    if (from != NULL && to != NULL && strcmp(from, to) > 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "to", "must not be before from");
        return;
    }
    if (req->lookback_days < 0 || req->lookback_days > EQ_COV_LOOKBACK_MAX) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "lookbackDays",
                            "must be between 0 and %d (0 means %d)", EQ_COV_LOOKBACK_MAX,
                            EQ_COV_LOOKBACK);
        return;
    }
    if (req->n_weights > 0 && req->n_weights != k) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "weights", "must hold one weight per id");
        return;
    }
    cov_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->req = req;
    if (eq_basis_resolve(call, req->basis, &op->basis) != 0)
        return;
    /* Without from: the last lookbackDays returns up to to (every bar up to it is loaded). */
    if (from == NULL)
        op->last = req->lookback_days > 0 ? (size_t)req->lookback_days : EQ_COV_LOOKBACK;
    op->s = fsr_call_alloc(call, sizeof(*op->s) * k);
    op->status = fsr_call_alloc(call, sizeof(*op->status) * k);
    for (size_t i = 0; i < k; i++) {
        cov_item *it = fsr_call_alloc(call, sizeof(*it));
        it->op = op;
        it->i = i;
        op->pending++;
        int rv = eq_series_load(call, req->ids[i], from, to, &op->s[i], on_loaded, it);
        if (rv != 0) {
            /* Loads already started still answer; finish once they have. */
            op->status[i] = rv;
            if (--op->pending == 0)
                cov_finish(op);
            return;
        }
    }
}
