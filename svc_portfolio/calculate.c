/* SPDX-License-Identifier: MIT */
/*
 * Calculate (POST /portfolios/{id}/calculate) and ListConstituents (GET
 * /portfolios/{id}/constituents): both are views of one pf_valuation_load().
 *
 * Calculate follows ANALYTICS.md "Mixed equity + bond valuation": bonds at their dirty
 * market value (face / 100 x dirty price), class values and weights of the total (cash
 * included), the fixed-income sleeve's dirty-MV-weighted durations, DV01 = modified x dirty
 * MV x 1e-4 (positive for a long position), the cash-flow yield (the IRR of every remaining
 * bond cash flow against the total dirty MV, days/365 from as_of, through fsr_an_xirr) and
 * the portfolio modified duration = sleeve modified duration x fixed-income weight.  Risk
 * figures are not computed yet (`risk` stays absent).
 */
#include "portfolio.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/analytics.h"
#include "fsr/log.h"
#include "fsr/validate.h"

#include "portfolio_v1.fsr.h"

#define PF_LOOKBACK_MAX 2520

/* ---- shared helpers ----------------------------------------------------------------- */

static bool is_bond(const pf_holding *h)
{
    return h->instrument_type == COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND;
}

static Common__V1__AssetClass__Value class_of(const pf_holding *h)
{
    return is_bond(h) ? COMMON__V1__ASSET_CLASS__VALUE__FIXED_INCOME
                      : COMMON__V1__ASSET_CLASS__VALUE__EQUITY;
}

/*
 * protobuf-c messages hold char *; the valuation's strings are const only because nothing
 * writes them, and a reply message is only read (packed).  Converts without a cast-qual.
 */
static char *str(const char *s)
{
    char *r;
    memcpy(&r, &s, sizeof(r));
    return r;
}

static Google__Protobuf__DoubleValue *double_value(fsr_call *call, bool has, double v)
{
    if (!has)
        return NULL;
    Google__Protobuf__DoubleValue *d = fsr_call_alloc(call, sizeof(*d));
    google__protobuf__double_value__init(d);
    d->value = v;
    return d;
}

/*
 * True when a price dated |date| is older than the latest trading day on or before |as_of|
 * (day serials).  Without a holiday calendar the trading days are the weekdays, so a
 * Friday price is current on the weekend and a holiday shows as stale.
 */
static bool price_is_old(const char *date, int32_t as_of)
{
    int y, m, d;
    if (fsr_date_parse(date, &y, &m, &d) != 0)
        return false;
    int32_t day = (int32_t)fsr_days_from_civil(y, m, d);
    int wd = (int)(((as_of % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday; 0 = Sunday */
    int32_t last = as_of - (wd == 6 ? 1 : wd == 0 ? 2 : 0);
    return day < last;
}

typedef struct warnings {
    Portfolio__V1__Warning **w;
    size_t n, cap;
} warnings;

static Portfolio__V1__Warning *warn(fsr_call *call, warnings *ws, const char *code,
                                    const char *constituent_id, const char *msg)
{
    if (ws->n == ws->cap) {
        size_t cap = ws->cap != 0 ? ws->cap * 2 : 8;
        Portfolio__V1__Warning **w = fsr_call_alloc(call, sizeof(*w) * cap);
        if (ws->n > 0)
            memcpy(w, ws->w, sizeof(*w) * ws->n);
        ws->w = w;
        ws->cap = cap;
    }
    Portfolio__V1__Warning *w = fsr_call_alloc(call, sizeof(*w));
    portfolio__v1__warning__init(w);
    w->code = str(code);
    w->constituent_id = fsr_call_printf(call, "%s", constituent_id);
    w->message = fsr_call_printf(call, "%s", msg);
    ws->w[ws->n++] = w;
    return w;
}

/* ---- cash-flow yield ---------------------------------------------------------------- */

/* Longest span of payment dates summed in a day-indexed array (else sorted): 300 years. */
#define PF_FLOW_SPAN_MAX (300 * 366)

typedef struct dated_flow {
    int32_t day;
    double amount;
} dated_flow;

static int cmp_flow(const void *a, const void *b)
{
    int32_t x = ((const dated_flow *)a)->day, y = ((const dated_flow *)b)->day;
    return (x > y) - (x < y);
}

/*
 * The annual effective IRR of every remaining cash flow of the priced bonds (per 100 of
 * face, scaled by face / 100) against their total dirty market value |mv| paid on as_of.
 * Flows are summed per date first, so the NPV the solver evaluates costs one power per
 * distinct payment date, not per bond and date.  The dates of a portfolio span decades at
 * most: the sums go into an array indexed by day (linear; sorting 15,000 flows of 500 bonds
 * cost more than the solver), with a sort as the fallback for absurd spans.  Returns 0 or
 * an FSR_AN_E_* code.
 */
static int cashflow_yield(fsr_call *call, const pf_valuation *v, double mv, double *out)
{
    size_t n = 1;
    int32_t lo = v->as_of_day;
    int32_t hi = lo;
    for (size_t i = 0; i < v->n_holdings; i++) {
        const pf_holding *h = &v->holdings[i];
        if (!is_bond(h) || !h->priced)
            continue;
        n += h->n_cf;
        for (size_t j = 0; j < h->n_cf; j++) {
            lo = h->cf_days[j] < lo ? h->cf_days[j] : lo;
            hi = h->cf_days[j] > hi ? h->cf_days[j] : hi;
        }
    }
    int32_t *days;
    double *amounts;
    size_t m = 0;
    if ((int64_t)hi - lo < PF_FLOW_SPAN_MAX) {
        size_t span = (size_t)(hi - lo) + 1;
        double *sum = fsr_call_alloc(call, sizeof(*sum) * span);
        bool *used = fsr_call_alloc(call, sizeof(*used) * span);
        sum[v->as_of_day - lo] = -mv;
        used[v->as_of_day - lo] = true;
        for (size_t i = 0; i < v->n_holdings; i++) {
            const pf_holding *h = &v->holdings[i];
            if (!is_bond(h) || !h->priced)
                continue;
            for (size_t j = 0; j < h->n_cf; j++) {
                sum[h->cf_days[j] - lo] += h->quantity / 100.0 * h->cf_amounts[j];
                used[h->cf_days[j] - lo] = true;
            }
        }
        days = fsr_call_alloc(call, sizeof(*days) * n);
        amounts = fsr_call_alloc(call, sizeof(*amounts) * n);
        for (size_t d = 0; d < span; d++) {
            if (used[d]) {
                days[m] = lo + (int32_t)d;
                amounts[m++] = sum[d];
            }
        }
        return fsr_an_xirr(days, amounts, m, out);
    }
    dated_flow *f = fsr_call_alloc(call, sizeof(*f) * n);
    f[0] = (dated_flow){ v->as_of_day, -mv };
    size_t k = 1;
    for (size_t i = 0; i < v->n_holdings; i++) {
        const pf_holding *h = &v->holdings[i];
        if (!is_bond(h) || !h->priced)
            continue;
        for (size_t j = 0; j < h->n_cf; j++)
            f[k++] = (dated_flow){ h->cf_days[j], h->quantity / 100.0 * h->cf_amounts[j] };
    }
    qsort(f, k, sizeof(*f), cmp_flow);
    days = fsr_call_alloc(call, sizeof(*days) * k);
    amounts = fsr_call_alloc(call, sizeof(*amounts) * k);
    for (size_t i = 0; i < k; i++) {
        if (m > 0 && days[m - 1] == f[i].day) {
            amounts[m - 1] += f[i].amount;
        } else {
            days[m] = f[i].day;
            amounts[m++] = f[i].amount;
        }
    }
    return fsr_an_xirr(days, amounts, m, out);
}

/* ---- Calculate ---------------------------------------------------------------------- */

static Portfolio__V1__AssetClassValue *class_value(fsr_call *call, Common__V1__AssetClass__Value c,
                                                   double mv, double total)
{
    Portfolio__V1__AssetClassValue *a = fsr_call_alloc(call, sizeof(*a));
    portfolio__v1__asset_class_value__init(a);
    a->asset_class = c;
    a->market_value = mv;
    a->weight = total != 0.0 ? mv / total : 0.0;
    return a;
}

static void on_calc_valued(fsr_call *call, const pf_valuation *v, void *arg)
{
    (void)arg;
    if (v == NULL)
        return; /* the call is finished */
    const Portfolio__V1__Portfolio *p = v->portfolio;
    Portfolio__V1__CalculateResponse *r = fsr_call_alloc(call, sizeof(*r));
    portfolio__v1__calculate_response__init(r);
    r->as_of = str(v->as_of);
    r->portfolio_id = p->id;
    r->base_currency = p->base_currency;
    r->version = p->version;
    r->total_market_value = v->total_market_value;
    r->cash = v->cash;
    r->stale = v->stale;
    r->stale_age_seconds = v->stale ? v->stale_age_s : 0.0;

    warnings ws = { NULL, 0, 0 };
    if (v->stale) {
        Portfolio__V1__Warning *w =
            warn(call, &ws, "STALE_CACHE", "",
                 fsr_call_printf(call,
                                 "a pricing service is unavailable: some prices come from a "
                                 "cache %.0f seconds old",
                                 v->stale_age_s));
        w->value = v->stale_age_s;
    }

    r->constituents = fsr_call_alloc(call, sizeof(*r->constituents) * (v->n_holdings + 1));
    Portfolio__V1__ConstituentValue *cv = fsr_call_alloc(call, sizeof(*cv) * (v->n_holdings + 1));
    double eq_mv = 0.0, fi_mv = 0.0, accrued = 0.0, mod = 0.0, mac = 0.0, ytm = 0.0;
    size_t n_bonds = 0;
    for (size_t i = 0; i < v->n_holdings; i++) {
        const pf_holding *h = &v->holdings[i];
        if (h->constituent_id[0] == '\0')
            continue; /* a target not held: Rebalance's concern */
        Portfolio__V1__ConstituentValue *c = &cv[r->n_constituents];
        portfolio__v1__constituent_value__init(c);
        r->constituents[r->n_constituents++] = c;
        c->constituent_id = str(h->constituent_id);
        c->instrument_type = h->instrument_type;
        c->instrument_id = str(h->instrument_id);
        c->quantity = str(h->quantity_text);
        c->asset_class = class_of(h);
        c->symbol = str(h->symbol);
        c->target_weight = double_value(call, h->has_target, h->target_weight);
        c->price_date = str(h->price_date);
        if (!h->priced) {
            warn(call, &ws, "NO_PRICE", h->constituent_id,
                 fsr_call_printf(call, "%s %s: %s", is_bond(h) ? "bond" : "equity",
                                 h->instrument_id, h->no_price_reason));
            continue;
        }
        c->price = h->price;
        c->market_value = h->market_value;
        c->weight = h->weight;
        if (price_is_old(h->price_date, v->as_of_day)) {
            r->stale = true;
            warn(call, &ws, "STALE_PRICE", h->constituent_id,
                 fsr_call_printf(call, "the latest price on or before %s is of %s", v->as_of,
                                 h->price_date));
        }
        if (h->currency[0] != '\0' && strcmp(h->currency, p->base_currency) != 0)
            warn(call, &ws, "CURRENCY", h->constituent_id,
                 fsr_call_printf(call, "priced in %s, not converted to %s", h->currency,
                                 p->base_currency));
        if (!is_bond(h)) {
            eq_mv += h->market_value;
            continue;
        }
        c->accrued_amount = h->accrued_amount;
        c->modified_duration = h->modified_duration;
        c->yield = h->yield;
        n_bonds++;
        fi_mv += h->market_value;
        accrued += h->accrued_amount;
        mod += h->market_value * h->modified_duration;
        mac += h->market_value * h->macaulay_duration;
        ytm += h->market_value * h->yield;
    }

    double total = v->total_market_value;
    r->n_asset_classes = 3;
    r->asset_classes = fsr_call_alloc(call, sizeof(*r->asset_classes) * 3);
    r->asset_classes[0] = class_value(call, COMMON__V1__ASSET_CLASS__VALUE__EQUITY, eq_mv, total);
    r->asset_classes[1] =
        class_value(call, COMMON__V1__ASSET_CLASS__VALUE__FIXED_INCOME, fi_mv, total);
    r->asset_classes[2] = class_value(call, COMMON__V1__ASSET_CLASS__VALUE__CASH, v->cash, total);

    if (n_bonds > 0) {
        Portfolio__V1__FixedIncomeSleeve *s = fsr_call_alloc(call, sizeof(*s));
        portfolio__v1__fixed_income_sleeve__init(s);
        s->market_value_dirty = fi_mv;
        s->accrued_amount = accrued;
        if (fi_mv != 0.0) {
            s->modified_duration = mod / fi_mv;
            s->macaulay_duration = mac / fi_mv;
            s->mv_weighted_ytm_approximation = ytm / fi_mv;
        }
        s->dv01 = mod * 1e-4;
        int rv = fi_mv > 0.0 ? cashflow_yield(call, v, fi_mv, &s->cashflow_yield) : FSR_AN_E_VALUE;
        if (rv != 0)
            warn(call, &ws, "CASHFLOW_YIELD", "",
                 fsr_call_printf(call, "no cash-flow yield: %s", fsr_an_strerror(rv)));
        r->fixed_income = s;
        r->portfolio_modified_duration = total != 0.0 ? s->modified_duration * fi_mv / total : 0;
    }
    r->warnings = ws.w;
    r->n_warnings = ws.n;
    portfolio_v1_portfolio_service_calculate_reply(call, r);
}

void pf_calculate(fsr_call *call, const Portfolio__V1__CalculateRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0 || fsr_check_uuid(call, "id", req->id) != 0)
        return;
    if (req->as_of[0] != '\0' && fsr_date_parse(req->as_of, NULL, NULL, NULL) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "asOf", "must be a date \"YYYY-MM-DD\"");
        return;
    }
    if (req->lookback_days != NULL &&
        (req->lookback_days->value < 2 || req->lookback_days->value > PF_LOOKBACK_MAX)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "lookbackDays", "must be in 2..%d",
                            PF_LOOKBACK_MAX);
        return;
    }
    if (req->async) {
        fsr_call_fail(call, FSR_FAILED_PRECONDITION, "async calculate is not available yet");
        return;
    }
    pf_valuation_load(call, &who, req->id, req->as_of, on_calc_valued, NULL);
}

/* ---- ListConstituents --------------------------------------------------------------- */

static void on_list_valued(fsr_call *call, const pf_valuation *v, void *arg)
{
    (void)arg;
    if (v == NULL)
        return;
    Portfolio__V1__ListConstituentsResponse *r = fsr_call_alloc(call, sizeof(*r));
    portfolio__v1__list_constituents_response__init(r);
    r->total_market_value = v->total_market_value;
    r->stale = v->stale;
    r->stale_age_seconds = v->stale ? v->stale_age_s : 0.0;
    r->as_of = str(v->as_of);
    r->constituents = fsr_call_alloc(call, sizeof(*r->constituents) * (v->n_holdings + 1));
    Portfolio__V1__Constituent *cs = fsr_call_alloc(call, sizeof(*cs) * (v->n_holdings + 1));
    for (size_t i = 0; i < v->n_holdings; i++) {
        const pf_holding *h = &v->holdings[i];
        if (h->constituent_id[0] == '\0')
            continue;
        Portfolio__V1__Constituent *c = &cs[r->n_constituents];
        portfolio__v1__constituent__init(c);
        r->constituents[r->n_constituents++] = c;
        c->constituent_id = str(h->constituent_id);
        c->portfolio_id = v->portfolio->id;
        c->instrument_type = h->instrument_type;
        c->instrument_id = str(h->instrument_id);
        c->asset_class = class_of(h);
        c->quantity = str(h->quantity_text);
        c->target_weight = double_value(call, h->has_target, h->target_weight);
        c->symbol = str(h->symbol);
        c->created_at = fsr_timestamp_from_pg(call, h->created_at);
        if (!h->priced) {
            r->stale = true; /* a missing price: the total is incomplete */
            continue;
        }
        c->last_price = h->price;
        c->price_date = str(h->price_date);
        c->market_value = h->market_value;
        c->weight = h->weight;
        if (price_is_old(h->price_date, v->as_of_day))
            r->stale = true;
    }
    portfolio_v1_portfolio_service_list_constituents_reply(call, r);
}

void pf_list_constituents(fsr_call *call, const Portfolio__V1__ListConstituentsRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0)
        return;
    pf_valuation_load(call, &who, req->id, NULL, on_list_valued, NULL);
}
