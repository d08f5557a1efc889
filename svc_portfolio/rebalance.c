/* SPDX-License-Identifier: MIT */
/*
 * Rebalance (POST /portfolios/{id}/rebalance): the trades that bring a stored portfolio to
 * its targets, proposed, or executed atomically through the ledger.
 *
 * Inputs come from pf_valuation_load(): current quantities and cash, prices as of |as_of|
 * (an equity's close; a bond's dirty price per 100 of face, i.e. dirty / 100 per unit of
 * face), lot sizes (an equity's lot size; 1 unit of face for a bond) and the targets.  The
 * plan itself is pf_rebalance_core(), the same function as the stateless RebalancePlan:
 * ANALYTICS.md's drift, 5/25 bands and whole lots rounded down, buy-only with new money,
 * sells before buys and cash never below zero.
 *
 * Targets.  An instrument target applies to its instrument (held or not: the valuation
 * prices targeted instruments that are not held, quantity 0).  An asset-class target
 * (EQUITY or FIXED_INCOME) applies to the instruments of that class WITHOUT an instrument
 * target of their own -- targets sum to at most 1 across both kinds, so a class target is
 * the weight of "the rest of the class" -- spread over them pro rata to their current
 * market value, or equally when none of them holds any value yet.  A class target with no
 * such instrument cannot be reached: FAILED_PRECONDITION.  The CASH class target is the
 * residual and is never traded directly.  A holding with no target at all has target 0
 * (FULL sells it).  A portfolio without targets is FAILED_PRECONDITION.
 *
 * Execution (execute = true) needs the current version and fresh prices: a stale version is
 * FAILED_PRECONDITION "version mismatch" (HTTP 412) and a valuation with stale prices is
 * FAILED_PRECONDITION, nothing written either way (the proposal stays available, flagged
 * stale).  The transactions -- a DEPOSIT of cash_to_invest first, then every SELL, then
 * every BUY, dated as_of at the valuation's prices -- go to pf_ledger_apply() as one
 * Postgres transaction, which re-checks the version under its lock, so a concurrent change
 * between valuation and execution is a 412 too.
 */
#include "portfolio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/analytics.h"
#include "fsr/validate.h"

#include "portfolio_v1.fsr.h"

typedef struct rb_ctx {
    const Portfolio__V1__RebalanceRequest *req;
    fsr_caller who;
    fsr_an_rebal_mode mode;
    double band_abs, band_rel;
    double cti; /* cash_to_invest */
    Portfolio__V1__RebalanceResponse *resp;
} rb_ctx;

/* ---- decimals ----------------------------------------------------------------------- */

/* Strips trailing fraction zeros (and a bare '.') of a "%.Nf" rendering in place. */
static void strip_zeros(char *s)
{
    char *dot = strchr(s, '.');
    if (dot == NULL)
        return;
    char *end = s + strlen(s);
    while (end > dot + 1 && end[-1] == '0')
        *--end = '\0';
    if (end == dot + 1)
        *dot = '\0';
}

/*
 * |x| (finite, >= 0) as the ledger's decimal text: the shortest text that reads back as |x|
 * when it has at most FSR_DECIMAL_MAX_FRAC_DIGITS fraction digits (a stored close such as
 * 51.37 comes back exactly), else |x| rounded to that many digits (a computed bond price).
 */
static char *decimal_text(fsr_call *call, double x)
{
    char buf[400];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    const char *dot = strchr(buf, '.');
    if (strchr(buf, 'e') != NULL ||
        (dot != NULL && strlen(dot + 1) > FSR_DECIMAL_MAX_FRAC_DIGITS)) {
        snprintf(buf, sizeof(buf), "%.*f", FSR_DECIMAL_MAX_FRAC_DIGITS, x);
        strip_zeros(buf);
    }
    return fsr_call_printf(call, "%s", strcmp(buf, "-0") == 0 ? "0" : buf);
}

/* A copy of |s| in the call's arena (the messages' strings are not const). */
static char *dup(fsr_call *call, const char *s)
{
    return fsr_arena_strdup(fsr_call_arena(call), s);
}

/* ---- targets ------------------------------------------------------------------------ */

static bool is_bond(const pf_holding *h)
{
    return h->instrument_type == COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND;
}

static Common__V1__AssetClass__Value class_of(const pf_holding *h)
{
    return is_bond(h) ? COMMON__V1__ASSET_CLASS__VALUE__FIXED_INCOME
                      : COMMON__V1__ASSET_CLASS__VALUE__EQUITY;
}

/* Price per unit the plan uses: an equity's close, a bond's dirty price per unit of face. */
static double unit_price(const pf_holding *h, double quoted)
{
    return is_bond(h) ? quoted / 100.0 : quoted;
}

static const char *class_name(Common__V1__AssetClass__Value c)
{
    return c == COMMON__V1__ASSET_CLASS__VALUE__FIXED_INCOME ? "FIXED_INCOME" : "EQUITY";
}

/*
 * Fills |target| (one per holding) from the instrument targets and the asset-class targets
 * (see the file comment), |quoted| holding each holding's price as it will be traded.
 * Returns 0, or -1 after failing |call|.
 */
static int effective_targets(fsr_call *call, const pf_valuation *v, const double *quoted,
                             double *target)
{
    const Portfolio__V1__Portfolio *p = v->portfolio;
    if (p->n_targets == 0) {
        fsr_call_fail(call, FSR_FAILED_PRECONDITION,
                      "portfolio %s has no targets to rebalance to: set instrument or "
                      "asset-class targets (PATCH /portfolios/{id})",
                      p->id);
        return -1;
    }
    for (size_t i = 0; i < v->n_holdings; i++)
        target[i] = v->holdings[i].has_target ? v->holdings[i].target_weight : 0.0;

    for (size_t k = 0; k < p->n_targets; k++) {
        const Portfolio__V1__Target *t = p->targets[k];
        Common__V1__AssetClass__Value cls = t->asset_class;
        if (t->instrument_type != COMMON__V1__INSTRUMENT_TYPE__VALUE__INSTRUMENT_TYPE_UNSPECIFIED ||
            (cls != COMMON__V1__ASSET_CLASS__VALUE__EQUITY &&
             cls != COMMON__V1__ASSET_CLASS__VALUE__FIXED_INCOME) ||
            !(t->weight > 0.0))
            continue; /* instrument targets are in the holdings; CASH is the residual */
        double value = 0.0;
        size_t members = 0;
        for (size_t i = 0; i < v->n_holdings; i++) {
            const pf_holding *h = &v->holdings[i];
            if (class_of(h) != cls || h->has_target || !h->priced || !(quoted[i] > 0.0))
                continue;
            members++;
            if (h->quantity > 0.0)
                value += h->quantity * unit_price(h, quoted[i]);
        }
        if (members == 0) {
            fsr_call_fail(call, FSR_FAILED_PRECONDITION,
                          "the %s target (%.6g) has no priced instrument of that class without "
                          "an instrument target to hold it: add a constituent of the class",
                          class_name(cls), t->weight);
            return -1;
        }
        for (size_t i = 0; i < v->n_holdings; i++) {
            const pf_holding *h = &v->holdings[i];
            if (class_of(h) != cls || h->has_target || !h->priced || !(quoted[i] > 0.0))
                continue;
            double share =
                value > 0.0
                    ? (h->quantity > 0.0 ? h->quantity * unit_price(h, quoted[i]) / value : 0.0)
                    : 1.0 / (double)members;
            target[i] += t->weight * share;
        }
    }
    return 0;
}

/* ---- execution ---------------------------------------------------------------------- */

static void on_applied(fsr_call *call, Portfolio__V1__Transaction **written, size_t n,
                       int32_t new_version, void *arg)
{
    rb_ctx *ctx = arg;
    ctx->resp->executed = true;
    ctx->resp->transactions = written;
    ctx->resp->n_transactions = n;
    ctx->resp->version = new_version;
    portfolio_v1_portfolio_service_rebalance_reply(call, ctx->resp);
}

static Portfolio__V1__AddTransactionRequest *tx_new(fsr_call *call, const pf_valuation *v,
                                                    Portfolio__V1__Transaction__Type type)
{
    Portfolio__V1__AddTransactionRequest *t = fsr_call_alloc(call, sizeof(*t));
    portfolio__v1__add_transaction_request__init(t);
    t->id = v->portfolio->id;
    t->type = type;
    t->date = dup(call, v->as_of);
    t->note = "rebalance";
    return t;
}

/*
 * Writes the plan: DEPOSIT of cash_to_invest, then the SELLs, then the BUYs (a sell's cash
 * is there before any buy spends it), at the prices of the proposal.  A sell down to a
 * target quantity of 0 sells the stored quantity text itself, so the holding ends exactly
 * at 0 whatever the double rounding.
 */
static void execute(fsr_call *call, rb_ctx *ctx, const pf_valuation *v, const size_t *idx,
                    const double *quoted, const fsr_an_rebal_result *res, size_t k)
{
    const Portfolio__V1__RebalanceRequest *req = ctx->req;
    if (req->version != v->portfolio->version) {
        fsr_call_fail(call, FSR_FAILED_PRECONDITION,
                      "version mismatch: portfolio %s is at version %d, not %d", v->portfolio->id,
                      v->portfolio->version, req->version);
        return;
    }
    if (v->stale) {
        fsr_call_fail(call, FSR_FAILED_PRECONDITION,
                      "prices are stale (a price came from a cache its service could not "
                      "refresh, %.0f s old): not executing; the proposal (execute false) is "
                      "flagged stale",
                      v->stale_age_s);
        return;
    }
    Portfolio__V1__AddTransactionRequest **txs = fsr_call_alloc(call, sizeof(*txs) * (2 * k + 2));
    size_t n = 0;
    if (ctx->cti > 0.0) {
        Portfolio__V1__AddTransactionRequest *t =
            tx_new(call, v, PORTFOLIO__V1__TRANSACTION__TYPE__DEPOSIT);
        t->amount = req->cash_to_invest;
        txs[n++] = t;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t j = 0; j < k; j++) {
            const fsr_an_rebal_result *r = &res[j];
            const pf_holding *h = &v->holdings[idx[j]];
            bool sell = r->trade < 0.0;
            if (r->trade == 0.0 || sell != (pass == 0))
                continue;
            const char *qty = sell && r->target_quantity == 0.0
                                  ? h->quantity_text
                                  : decimal_text(call, fabs(r->trade));
            int sign = 0;
            if (fsr_decimal_check(qty, &sign, NULL) != 0 || sign <= 0)
                continue; /* rounds to nothing at the ledger's scale */
            Portfolio__V1__AddTransactionRequest *t =
                tx_new(call, v,
                       sell ? PORTFOLIO__V1__TRANSACTION__TYPE__SELL
                            : PORTFOLIO__V1__TRANSACTION__TYPE__BUY);
            t->instrument_type = h->instrument_type;
            t->instrument_id = dup(call, h->instrument_id);
            t->quantity = dup(call, qty);
            t->price = decimal_text(call, quoted[idx[j]]);
            txs[n++] = t;
        }
    }
    if (n == 0) {
        /* Already on target: nothing to write, the version stays. */
        ctx->resp->executed = true;
        portfolio_v1_portfolio_service_rebalance_reply(call, ctx->resp);
        return;
    }
    pf_ledger_apply(call, &ctx->who, v->portfolio->id, req->version,
                    (const Portfolio__V1__AddTransactionRequest *const *)txs, n, on_applied, ctx);
}

/* ---- the plan ----------------------------------------------------------------------- */

static void fail_unpriced(fsr_call *call, const pf_valuation *v, const pf_holding *h)
{
    fsr_call_fail(call, FSR_FAILED_PRECONDITION,
                  "%s %s has no usable price as of %s (%s): cannot value or trade it",
                  is_bond(h) ? "bond" : "equity", h->instrument_id, v->as_of,
                  h->no_price_reason != NULL && h->no_price_reason[0] != '\0' ? h->no_price_reason
                                                                              : "no price");
}

static void on_valued(fsr_call *call, const pf_valuation *v, void *arg)
{
    rb_ctx *ctx = arg;
    if (v == NULL)
        return; /* the call is finished */
    const size_t nh = v->n_holdings;

    /*
     * The price each holding trades at, already at the ledger's decimal scale, so that the
     * proposal's notionals are what execution books.
     */
    double *quoted = fsr_call_alloc(call, sizeof(*quoted) * (nh + 1));
    for (size_t i = 0; i < nh; i++) {
        const pf_holding *h = &v->holdings[i];
        if (h->quantity < 0.0) {
            fsr_call_fail(call, FSR_FAILED_PRECONDITION,
                          "holding %s (%s %s) is short (quantity %s): rebalancing short "
                          "positions is not supported",
                          h->constituent_id, is_bond(h) ? "BOND" : "EQUITY", h->instrument_id,
                          h->quantity_text);
            return;
        }
        if (h->priced && isfinite(h->price) && h->price > 0.0)
            quoted[i] = strtod(decimal_text(call, h->price), NULL);
        else if (h->quantity != 0.0) {
            fail_unpriced(call, v, h);
            return;
        }
    }
    double *target = fsr_call_alloc(call, sizeof(*target) * (nh + 1));
    if (effective_targets(call, v, quoted, target) != 0)
        return;

    /* Positions: every holding that is priced, held or targeted. */
    fsr_an_rebal_position *pos = fsr_call_alloc(call, sizeof(*pos) * (nh + 1));
    size_t *idx = fsr_call_alloc(call, sizeof(*idx) * (nh + 1));
    size_t k = 0;
    for (size_t i = 0; i < nh; i++) {
        const pf_holding *h = &v->holdings[i];
        if (!(quoted[i] > 0.0)) {
            if (target[i] == 0.0)
                continue; /* nothing held, nothing wanted: no price needed */
            fail_unpriced(call, v, h);
            return;
        }
        double lot = isfinite(h->lot_size) && h->lot_size > 0.0 ? h->lot_size : 1.0;
        pos[k] = (fsr_an_rebal_position){ .quantity = h->quantity,
                                          .price = unit_price(h, quoted[i]),
                                          .lot = lot,
                                          .target = target[i] };
        idx[k++] = i;
    }
    fsr_an_rebal_result *res = fsr_call_alloc(call, sizeof(*res) * (k + 1));
    fsr_an_rebal_total tot;
    int rv = pf_rebalance_core(pos, k, v->cash, ctx->cti, ctx->mode, ctx->band_abs, ctx->band_rel,
                               res, &tot, NULL);
    if (rv == FSR_AN_E_VALUE) {
        fsr_call_fail(call, FSR_FAILED_PRECONDITION,
                      "portfolio %s has no value to rebalance (holdings + cash + cashToInvest "
                      "is not above 0)",
                      v->portfolio->id);
        return;
    }
    if (rv == FSR_AN_E_WEIGHTS) {
        fsr_call_fail(call, FSR_FAILED_PRECONDITION, "the portfolio's targets sum to more than 1");
        return;
    }
    if (rv != 0 || !pf_rebalance_finite(res, k, &tot)) {
        fsr_call_fail(call, FSR_FAILED_PRECONDITION, "the portfolio's values overflow the plan");
        return;
    }

    Portfolio__V1__RebalanceResponse *o = fsr_call_alloc(call, sizeof(*o));
    portfolio__v1__rebalance_response__init(o);
    ctx->resp = o;
    o->total_value = tot.total_value;
    o->post_trade_cash = tot.post_trade_cash;
    o->version = v->portfolio->version;
    o->stale = v->stale;
    o->as_of = dup(call, v->as_of);
    Portfolio__V1__RebalanceTrade *items = fsr_call_alloc(call, sizeof(*items) * (k + 1));
    Portfolio__V1__RebalanceResponse__PostTradeWeightsEntry *w =
        fsr_call_alloc(call, sizeof(*w) * (k + 1));
    o->trades = fsr_call_alloc(call, sizeof(*o->trades) * (k + 1));
    o->post_trade_weights = fsr_call_alloc(call, sizeof(*o->post_trade_weights) * (k + 1));
    for (size_t j = 0; j < k; j++) {
        const pf_holding *h = &v->holdings[idx[j]];
        const fsr_an_rebal_result *r = &res[j];
        Portfolio__V1__RebalanceTrade *it = &items[j];
        portfolio__v1__rebalance_trade__init(it);
        it->constituent_id = dup(call, h->constituent_id);
        it->instrument_type = h->instrument_type;
        it->instrument_id = dup(call, h->instrument_id);
        it->quantity = h->quantity;
        it->price = quoted[idx[j]];
        it->lot_size = pos[j].lot;
        it->target = pos[j].target;
        it->current_weight = r->current_weight;
        it->drift_abs = r->drift_abs;
        it->drift_rel = pf_drift_rel_json(r->drift_rel);
        it->breach = r->breach;
        it->target_quantity = r->target_quantity;
        it->trade = r->trade;
        it->notional = r->notional;
        o->trades[j] = it;
        portfolio__v1__rebalance_response__post_trade_weights_entry__init(&w[j]);
        w[j].key = it->instrument_id;
        w[j].value = r->post_weight;
        o->post_trade_weights[j] = &w[j];
    }
    o->n_trades = k;
    o->n_post_trade_weights = k;

    if (!ctx->req->execute) {
        portfolio_v1_portfolio_service_rebalance_reply(call, o);
        return;
    }
    execute(call, ctx, v, idx, quoted, res, k);
}

void pf_rebalance(fsr_call *call, const Portfolio__V1__RebalanceRequest *req)
{
    rb_ctx *ctx = fsr_call_alloc(call, sizeof(*ctx));
    ctx->req = req;
    if (fsr_caller_of(call, &ctx->who) != 0)
        return;
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    if (pf_rebalance_mode_resolve(call, req->mode, &ctx->mode) != 0 ||
        pf_rebalance_bands_resolve(call, req->band_abs, req->band_rel, &ctx->band_abs,
                                   &ctx->band_rel) != 0)
        return;
    if (req->cash_to_invest[0] != '\0') {
        int sign = 0;
        const char *why = NULL;
        if (fsr_decimal_check(req->cash_to_invest, &sign, &why) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "cashToInvest", "%s", why);
            return;
        }
        if (sign < 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "cashToInvest", "must be >= 0");
            return;
        }
        ctx->cti = strtod(req->cash_to_invest, NULL);
    }
    if (req->as_of[0] != '\0' && fsr_date_parse(req->as_of, NULL, NULL, NULL) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "asOf", "must be a date \"YYYY-MM-DD\"");
        return;
    }
    if (req->version < 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "version", "must be >= 1");
        return;
    }
    if (req->execute && req->version == 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "version",
                            "is required with execute (the portfolio's current version)");
        return;
    }
    pf_valuation_load(call, &ctx->who, req->id, req->as_of, on_valued, ctx);
}
