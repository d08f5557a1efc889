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
 * the portfolio modified duration = sleeve modified duration x fixed-income weight.
 *
 * Risk (ANALYTICS.md covariance_risk and VaR/ES, over lookback_days returns):
 *  - Series: the held equities' daily TOTAL returns (equity.v1 BatchQuotes), the held bonds'
 *    (dirty_t + cash_paid_t) / dirty_{t-1} - 1 between consecutive quotes
 *    (fixed_income.v1 BatchPriceHistory), cash 0 -- fetched by risk.c in one call per service,
 *    in parallel, cached in the portfolio Redis.
 *  - Alignment: the grid is the last lookback_days + 1 dates of the union of the held
 *    equities' price dates on or before as_of (the portfolio's equity trading dates; with no
 *    equity held, the union of the bonds' quote dates).  Each instrument's return for grid
 *    interval (g_{k-1}, g_k] compounds its own returns dated in it; none there means its price
 *    is carried forward (return 0).  A bond quoted less often than the equities trade thus
 *    shows its move on the first grid date on or after its next quote.
 *  - Weights are the valuation's (of the total, cash included; cash has zero return), so
 *    r_p = sum w_i r_i.  With sample moments w'Cw = var(r_p) and (Cw)_i = cov(r_i, r_p):
 *    volatility, risk contributions w_i cov(r_i, r_p) / var(r_p) (summing to 1) and marginal
 *    contributions cov(r_i, r_p) / sd(r_p) x sqrt(252) in O(n T), no n x n matrix
 *    (risk_math.c).  Per asset class: sums of weights and contributions.
 *  - VaR/ES of r_p (historical, gaussian, Cornish-Fisher; 0.95 and 0.99, fsr_an_var_compute)
 *    as fractions and money (fraction x total market value).
 *  - equity_beta: the equity sleeve (held equities, weights renormalised to 1) against the
 *    benchmark's EQUITY components (weights renormalised to 1, rebalanced daily), on the
 *    same grid; absent without such components (or when the benchmark does not vary).
 *  - Degenerate: fewer than 2 grid returns, or var(r_p) = 0: `risk` is absent and a
 *    RISK_UNAVAILABLE warning says why (never NaN).  A risk failure never fails the call.
 *  - Concentration: a holding's weight above position_limit (default 0.10), an equity
 *    sector's (Equity.sector) above sector_limit (0.30) or a bond issuer's above
 *    issuer_limit (0.25) gives a CONCENTRATION warning with the value and the limit.
 */
#include "portfolio.h"
#include "risk.h"

#include <ctype.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/analytics.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/redis.h"
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

/* What Calculate carries from the request through the valuation and the series fetch. */
typedef struct calc_op {
    int lookback;
    double position_limit, sector_limit, issuer_limit;
    const pf_valuation *v;
    Portfolio__V1__CalculateResponse *r;
    warnings ws;
    pf_series *s;    /* held instruments first (one per priced holding), then benchmark */
    size_t *holding; /* per series: the holding index, or SIZE_MAX for a benchmark one */
    double *bench_w; /* per series: benchmark equity weight (0 if none) */
    size_t n_series;
    fsr_call *call;
    uint64_t digest; /* of the instruments' generations, read before the fetch */
    bool have_digest;
} calc_op;

static void start_risk(fsr_call *call, calc_op *op);

static void on_calc_valued(fsr_call *call, const pf_valuation *v, void *arg)
{
    calc_op *op = arg;
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
    op->v = v;
    op->r = r;
    op->ws = ws;
    start_risk(call, op);
}

/* ---- risk --------------------------------------------------------------------------- */

static void calc_reply(fsr_call *call, calc_op *op)
{
    op->r->warnings = op->ws.w;
    op->r->n_warnings = op->ws.n;
    portfolio_v1_portfolio_service_calculate_reply(call, op->r);
}

static void risk_unavailable(fsr_call *call, calc_op *op, const char *why)
{
    warn(call, &op->ws, "RISK_UNAVAILABLE", "", fsr_call_printf(call, "no risk figures: %s", why));
}

static void on_series(fsr_call *call, pf_series *s, size_t n, void *arg);
static void risk_cache_get(fsr_call *call, calc_op *op);

/* Lower-cased copy of |id| (benchmark ids are stored as given). */
static char *lower_id(fsr_call *call, const char *id)
{
    char *d = fsr_call_printf(call, "%s", id);
    for (char *p = d; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static void start_risk(fsr_call *call, calc_op *op)
{
    const pf_valuation *v = op->v;
    const Portfolio__V1__Benchmark *bm = v->portfolio->benchmark;
    size_t nb = bm != NULL ? bm->n_components : 0;
    op->s = fsr_call_alloc(call, sizeof(*op->s) * (v->n_holdings + nb + 1));
    op->holding = fsr_call_alloc(call, sizeof(*op->holding) * (v->n_holdings + nb + 1));
    op->bench_w = fsr_call_alloc(call, sizeof(*op->bench_w) * (v->n_holdings + nb + 1));
    size_t n = 0;
    for (size_t i = 0; i < v->n_holdings; i++) {
        const pf_holding *h = &v->holdings[i];
        if (h->constituent_id[0] == '\0' || !h->priced)
            continue;
        memset(&op->s[n], 0, sizeof(op->s[n]));
        op->s[n].type = h->instrument_type;
        op->s[n].id = lower_id(call, h->instrument_id);
        op->holding[n++] = i;
    }
    size_t held = n;
    for (size_t j = 0; j < nb; j++) {
        const Portfolio__V1__BenchmarkComponent *c = bm->components[j];
        if (c->instrument_type != COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY ||
            !fsr_uuid_valid(c->instrument_id) || !(c->weight > 0.0))
            continue;
        char *id = lower_id(call, c->instrument_id);
        size_t k;
        for (k = 0; k < n; k++)
            if (op->s[k].type == COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY &&
                strcmp(op->s[k].id, id) == 0)
                break;
        if (k == n) {
            memset(&op->s[n], 0, sizeof(op->s[n]));
            op->s[n].type = COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY;
            op->s[n].id = id;
            op->holding[n++] = SIZE_MAX;
        }
        op->bench_w[k] += c->weight;
    }
    op->n_series = n;
    if (op->lookback == 0) {
        calc_reply(call, op); /* lookbackDays 0: valuation only, no risk */
        return;
    }
    if (held == 0) {
        risk_unavailable(call, op, "no priced holding");
        calc_reply(call, op);
        return;
    }
    risk_cache_get(call, op);
}

/* Adds a weight to a named group (sector or issuer); linear: portfolios have few groups. */
typedef struct group {
    const char *name;
    double w;
} group;

static void group_add(group *g, size_t *n, const char *name, double w)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(g[i].name, name) == 0) {
            g[i].w += w;
            return;
        }
    }
    g[(*n)++] = (group){ name, w };
}

static void concentration(fsr_call *call, calc_op *op, const pf_series *s)
{
    const pf_valuation *v = op->v;
    for (size_t i = 0; i < v->n_holdings; i++) {
        const pf_holding *h = &v->holdings[i];
        if (h->constituent_id[0] == '\0' || !h->priced || !(h->weight > op->position_limit))
            continue;
        Portfolio__V1__Warning *w =
            warn(call, &op->ws, "CONCENTRATION", h->constituent_id,
                 fsr_call_printf(call, "position %s: weight %.6g above the limit %.6g",
                                 h->symbol[0] != '\0' ? h->symbol : h->instrument_id, h->weight,
                                 op->position_limit));
        w->value = h->weight;
        w->limit = op->position_limit;
    }
    group *g[2];
    size_t ng[2] = { 0, 0 };
    g[0] = fsr_call_alloc(call, sizeof(group) * (op->n_series + 1));
    g[1] = fsr_call_alloc(call, sizeof(group) * (op->n_series + 1));
    for (size_t k = 0; k < op->n_series; k++) {
        if (op->holding[k] == SIZE_MAX || s[k].group == NULL || s[k].group[0] == '\0')
            continue;
        int b = s[k].type == COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND;
        group_add(g[b], &ng[b], s[k].group, v->holdings[op->holding[k]].weight);
    }
    for (int b = 0; b < 2; b++) {
        double limit = b ? op->issuer_limit : op->sector_limit;
        for (size_t i = 0; i < ng[b]; i++) {
            if (!(g[b][i].w > limit))
                continue;
            Portfolio__V1__Warning *w =
                warn(call, &op->ws, "CONCENTRATION", "",
                     fsr_call_printf(call, "%s %s: weight %.6g above the limit %.6g",
                                     b ? "issuer" : "sector", g[b][i].name, g[b][i].w, limit));
            w->value = g[b][i].w;
            w->limit = limit;
        }
    }
}

static int cmp_day(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/*
 * The grid: the last lookback + 1 distinct price dates on or before as_of of the held
 * series of |type|.  Returns the number of dates written to |grid| (cap lookback + 1).
 */
static size_t build_grid(fsr_call *call, const calc_op *op, const pf_series *s, int type,
                         int32_t *grid)
{
    size_t total = 0;
    for (size_t k = 0; k < op->n_series; k++)
        if (op->holding[k] != SIZE_MAX && s[k].ok && (int)s[k].type == type)
            total += s[k].n_price_days;
    if (total == 0)
        return 0;
    int32_t *all = fsr_call_alloc(call, sizeof(*all) * total);
    size_t m = 0;
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (size_t k = 0; k < op->n_series; k++)
        if (op->holding[k] != SIZE_MAX && s[k].ok && (int)s[k].type == type)
            for (size_t j = 0; j < s[k].n_price_days; j++) {
                int32_t d = s[k].price_days[j];
                if (d > op->v->as_of_day || d == INT32_MIN)
                    continue;
                all[m++] = d;
                lo = d < lo ? d : lo;
                hi = d > hi ? d : hi;
            }
    size_t u = 0;
    if (m > 0 && (int64_t)hi - lo < 40000) {
        /* A day-indexed set: linear, where sorting 250,000 dates was a visible cost. */
        size_t span = (size_t)(hi - lo) + 1;
        bool *seen = fsr_call_alloc(call, span);
        memset(seen, 0, span);
        for (size_t j = 0; j < m; j++)
            seen[all[j] - lo] = true;
        for (size_t d = 0; d < span; d++)
            if (seen[d])
                all[u++] = lo + (int32_t)d;
    } else {
        qsort(all, m, sizeof(*all), cmp_day);
        for (size_t j = 0; j < m; j++)
            if (u == 0 || all[u - 1] != all[j])
                all[u++] = all[j];
    }
    size_t want = (size_t)op->lookback + 1;
    size_t first = u > want ? u - want : 0;
    memcpy(grid, all + first, sizeof(*grid) * (u - first));
    return u - first;
}

static Common__V1__VarEstimate *var_estimate(fsr_call *call, const fsr_an_var *a, double value)
{
    Common__V1__VarEstimate *e = fsr_call_alloc(call, sizeof(*e));
    common__v1__var_estimate__init(e);
    e->confidence = a->confidence;
    e->historical = a->historical;
    e->cvar_historical = a->cvar_historical;
    e->gaussian = a->gaussian;
    e->es_gaussian = a->es_gaussian;
    e->cornish_fisher = a->cornish_fisher;
    e->historical_lower = a->historical_lower;
    e->historical_inverted_cdf = a->historical_inverted_cdf;
    e->historical_money = a->historical * value;
    e->cvar_historical_money = a->cvar_historical * value;
    e->gaussian_money = a->gaussian * value;
    e->es_gaussian_money = a->es_gaussian * value;
    e->cornish_fisher_money = a->cornish_fisher * value;
    return e;
}

static void compute_risk(fsr_call *call, calc_op *op, pf_series *s)
{
    const pf_valuation *v = op->v;
    size_t L = (size_t)op->lookback;
    int32_t *grid = fsr_call_alloc(call, sizeof(*grid) * (L + 1));
    size_t ng = build_grid(call, op, s, COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY, grid);
    if (ng == 0)
        ng = build_grid(call, op, s, COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND, grid);
    if (ng < 3) {
        risk_unavailable(
            call, op,
            fsr_call_printf(call, "fewer than 2 aligned daily returns (%zu)", ng > 0 ? ng - 1 : 0));
        return;
    }
    size_t T = ng - 1;
    size_t k = op->n_series;
    double *ret = fsr_call_alloc(call, sizeof(*ret) * k * T);
    double *w = fsr_call_alloc(call, sizeof(*w) * k);
    for (size_t i = 0; i < k; i++) {
        w[i] = op->holding[i] != SIZE_MAX ? v->holdings[op->holding[i]].weight : 0.0;
        if (s[i].ok)
            pf_risk_grid_returns(s[i].days, s[i].r, s[i].n, grid, T, ret + i * T);
        else
            memset(ret + i * T, 0, sizeof(*ret) * T);
        if (op->holding[i] != SIZE_MAX && !s[i].ok)
            warn(call, &op->ws, "NO_HISTORY", v->holdings[op->holding[i]].constituent_id,
                 fsr_call_printf(call, "no return history (%s): counted as zero returns",
                                 s[i].error != NULL ? s[i].error : "unknown"));
        if (s[i].stale)
            op->r->stale = true;
    }
    double *rp = fsr_call_alloc(call, sizeof(*rp) * T);
    double *contrib = fsr_call_alloc(call, sizeof(*contrib) * k);
    double *marginal = fsr_call_alloc(call, sizeof(*marginal) * k);
    pf_risk_out out;
    int rv = pf_risk_compute(ret, k, T, w, rp, contrib, marginal, &out);
    if (rv == PF_RISK_E_ZERO_VARIANCE) {
        risk_unavailable(call, op, "the portfolio's returns do not vary over the window");
        return;
    }
    fsr_an_var var[2];
    if (rv == 0)
        rv = fsr_an_var_compute(rp, T, FSR_AN_VAR_CONF0, NULL, &var[0]);
    if (rv == 0)
        rv = fsr_an_var_compute(rp, T, FSR_AN_VAR_CONF1, NULL, &var[1]);
    if (rv != 0) {
        risk_unavailable(call, op, fsr_an_strerror(rv));
        return;
    }
    Portfolio__V1__PortfolioRisk *pr = fsr_call_alloc(call, sizeof(*pr));
    portfolio__v1__portfolio_risk__init(pr);
    pr->observations = (int32_t)T;
    pr->start_date = pf_date_text(call, grid[0]);
    pr->end_date = pf_date_text(call, grid[T]);
    pr->volatility = out.volatility;
    pr->contributions = fsr_call_alloc(call, sizeof(*pr->contributions) * (k + 1));
    Portfolio__V1__RiskContribution *rc = fsr_call_alloc(call, sizeof(*rc) * (k + 1));
    double cls_w[2] = { 0, 0 }, cls_c[2] = { 0, 0 };
    for (size_t i = 0; i < k; i++) {
        if (op->holding[i] == SIZE_MAX)
            continue;
        const pf_holding *h = &v->holdings[op->holding[i]];
        Portfolio__V1__RiskContribution *c = &rc[pr->n_contributions];
        portfolio__v1__risk_contribution__init(c);
        c->constituent_id = str(h->constituent_id);
        c->instrument_id = str(h->instrument_id);
        c->weight = w[i];
        c->risk_contribution = contrib[i];
        c->marginal_contribution = marginal[i];
        pr->contributions[pr->n_contributions++] = c;
        int b = is_bond(h);
        cls_w[b] += w[i];
        cls_c[b] += contrib[i];
    }
    pr->n_var = 2;
    pr->var = fsr_call_alloc(call, sizeof(*pr->var) * 2);
    for (int j = 0; j < 2; j++)
        pr->var[j] = var_estimate(call, &var[j], v->total_market_value);
    static const Common__V1__AssetClass__Value classes[3] = {
        COMMON__V1__ASSET_CLASS__VALUE__EQUITY, COMMON__V1__ASSET_CLASS__VALUE__FIXED_INCOME,
        COMMON__V1__ASSET_CLASS__VALUE__CASH
    };
    pr->n_asset_classes = 3;
    pr->asset_classes = fsr_call_alloc(call, sizeof(*pr->asset_classes) * 3);
    for (int j = 0; j < 3; j++) {
        Portfolio__V1__AssetClassRisk *a = fsr_call_alloc(call, sizeof(*a));
        portfolio__v1__asset_class_risk__init(a);
        a->asset_class = classes[j];
        a->weight = j < 2 ? cls_w[j]
                          : (v->total_market_value != 0.0 ? v->cash / v->total_market_value : 0.0);
        a->risk_contribution = j < 2 ? cls_c[j] : 0.0;
        pr->asset_classes[j] = a;
    }

    /* Equity-sleeve beta vs the benchmark's equity components, both renormalised. */
    double sw = 0.0, bw = 0.0;
    for (size_t i = 0; i < k; i++) {
        if (op->holding[i] != SIZE_MAX && s[i].type == COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY)
            sw += w[i];
        bw += op->bench_w[i];
    }
    if (sw > 0.0 && bw > 0.0) {
        double *x = fsr_call_alloc(call, sizeof(*x) * T);
        double *b = fsr_call_alloc(call, sizeof(*b) * T);
        memset(x, 0, sizeof(*x) * T);
        memset(b, 0, sizeof(*b) * T);
        for (size_t i = 0; i < k; i++) {
            double we = op->holding[i] != SIZE_MAX &&
                                s[i].type == COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY
                            ? w[i] / sw
                            : 0.0;
            double wb = op->bench_w[i] / bw;
            for (size_t t = 0; t < T; t++) {
                x[t] += we * ret[i * T + t];
                b[t] += wb * ret[i * T + t];
            }
        }
        double beta;
        if (pf_risk_beta(x, b, T, &beta) == 0)
            pr->equity_beta = double_value(call, true, beta);
        else
            warn(call, &op->ws, "BETA_UNAVAILABLE", "",
                 "no equity beta: the benchmark's equity returns do not vary");
    }
    op->r->risk = pr;
}

/*
 * The risk result cache.  Series come per instrument from risk.c's cache, but reading
 * 1,000 windows of 252 days (some 10 MB) on every warm Calculate costs more than the
 * valuation itself, so the result -- the risk message and the warnings the risk step adds
 * -- is also kept per portfolio under
 *
 *   pf:rk:<id>:<version>:<as_of>:<lookback>:<limits>  {magic, digest, fetched-at, packed}
 *
 * valid while the digest (FNV-1a) of the generations pf:g:<T>:<id> of every instrument it
 * used is unchanged and it is less than PF_RK_FRESH_S old.  The generations are read
 * (with the entry, one MGET) before the series are fetched, so an event during the fetch
 * changes the digest the next reader computes: a stale result never looks current.  The
 * version covers holdings, cash and the benchmark; the generations cover every price.
 * Results made from stale series are not kept.
 */
#define PF_RK_MAGIC   "PFR1"
#define PF_RK_HDR     (4 + 8 + 8)
#define PF_RK_FRESH_S 900
#define PF_RK_KEEP_S  3600

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static char *risk_key(fsr_call *call, const calc_op *op)
{
    return fsr_call_printf(call, "pf:rk:%s:%d:%s:%d:%.17g:%.17g:%.17g", op->v->portfolio->id,
                           op->v->portfolio->version, op->v->as_of, op->lookback,
                           op->position_limit, op->sector_limit, op->issuer_limit);
}

static void on_series(fsr_call *call, pf_series *s, size_t n, void *arg)
{
    (void)n;
    calc_op *op = arg;
    size_t first = op->ws.n;
    concentration(call, op, s);
    compute_risk(call, op, s);
    bool stale = false;
    for (size_t k = 0; k < op->n_series; k++)
        stale = stale || s[k].stale || s[k].unavailable;
    fsr_redis *rd = fsr_app_ctx_of(call)->redis;
    if (!stale && op->have_digest && rd != NULL) {
        Portfolio__V1__CalculateResponse keep;
        portfolio__v1__calculate_response__init(&keep);
        keep.risk = op->r->risk;
        keep.warnings = op->ws.w + first;
        keep.n_warnings = op->ws.n - first;
        size_t len = portfolio__v1__calculate_response__get_packed_size(&keep);
        uint8_t *buf = fsr_call_alloc(call, PF_RK_HDR + len + 1);
        memcpy(buf, PF_RK_MAGIC, 4);
        put64(buf + 4, op->digest);
        put64(buf + 12, (uint64_t)(fsr_wall_us() / 1000));
        portfolio__v1__calculate_response__pack(&keep, buf + PF_RK_HDR);
        int rv = fsr_redis_command(rd, NULL, NULL, "SET %s %b EX %d", risk_key(call, op), buf,
                                   PF_RK_HDR + len, PF_RK_KEEP_S);
        if (rv != 0)
            FSR_WARN("risk cache write: %s", fsr_strerror(rv));
    }
    calc_reply(call, op);
}

static void on_risk_cached(const redisReply *reply, int status, void *arg)
{
    calc_op *op = arg;
    fsr_call *call = op->call;
    size_t n = op->n_series;
    if (status == 0 && reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements == n + 1) {
        uint64_t h = 1469598103934665603ULL; /* FNV-1a over "gen;" of each instrument */
        for (size_t k = 0; k < n; k++) {
            const redisReply *g = reply->element[k + 1];
            const char *t = g->type == REDIS_REPLY_STRING ? g->str : "0";
            size_t len = g->type == REDIS_REPLY_STRING ? g->len : 1;
            for (size_t j = 0; j <= len; j++) {
                h ^= j < len ? (unsigned char)t[j] : ';';
                h *= 1099511628211ULL;
            }
        }
        op->digest = h;
        op->have_digest = true;
        const redisReply *e = reply->element[0];
        const uint8_t *p = (const uint8_t *)e->str;
        int64_t now_ms = fsr_wall_us() / 1000;
        if (e->type == REDIS_REPLY_STRING && e->len >= PF_RK_HDR &&
            memcmp(p, PF_RK_MAGIC, 4) == 0 && get64(p + 4) == h &&
            now_ms - (int64_t)get64(p + 12) < PF_RK_FRESH_S * 1000LL &&
            now_ms >= (int64_t)get64(p + 12)) {
            Portfolio__V1__CalculateResponse *kept = portfolio__v1__calculate_response__unpack(
                fsr_arena_pb_allocator(fsr_call_arena(call)), e->len - PF_RK_HDR, p + PF_RK_HDR);
            if (kept != NULL) {
                op->r->risk = kept->risk;
                for (size_t j = 0; j < kept->n_warnings; j++) {
                    const Portfolio__V1__Warning *w0 = kept->warnings[j];
                    Portfolio__V1__Warning *w1 =
                        warn(call, &op->ws, w0->code, w0->constituent_id, w0->message);
                    w1->value = w0->value;
                    w1->limit = w0->limit;
                }
                calc_reply(call, op);
                return;
            }
        }
    } else if (status != 0) {
        FSR_WARN("risk cache read failed: %s", fsr_strerror(status));
    }
    pf_series_fetch(call, op->v->as_of, op->lookback, op->s, n, on_series, op);
}

static void risk_cache_get(fsr_call *call, calc_op *op)
{
    size_t n = op->n_series;
    const char **argv = fsr_call_alloc(call, sizeof(*argv) * (n + 2));
    argv[0] = "MGET";
    argv[1] = risk_key(call, op);
    for (size_t k = 0; k < n; k++)
        argv[k + 2] = fsr_call_printf(
            call, "pf:g:%c:%s",
            op->s[k].type == COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND ? 'B' : 'E', op->s[k].id);
    fsr_redis *rd = fsr_app_ctx_of(call)->redis;
    op->call = call;
    if (rd == NULL || fsr_redis_command_argv(rd, on_risk_cached, op, (int)n + 2, argv, NULL) != 0)
        pf_series_fetch(call, op->v->as_of, op->lookback, op->s, n, on_series, op);
}

/* A concentration limit: absent -> |def|; else finite and > 0, or INVALID_ARGUMENT. */
static int limit_of(fsr_call *call, const Google__Protobuf__DoubleValue *d, double def,
                    const char *field, double *out)
{
    *out = d != NULL ? d->value : def;
    if (!isfinite(*out) || !(*out > 0.0)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "must be a fraction > 0");
        return -1;
    }
    return 0;
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
    if (req->lookback_days != NULL && req->lookback_days->value != 0 &&
        (req->lookback_days->value < 2 || req->lookback_days->value > PF_LOOKBACK_MAX)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "lookbackDays",
                            "must be 0 (no risk) or in 2..%d", PF_LOOKBACK_MAX);
        return;
    }
    if (req->async) {
        pf_calculate_async(call, &who, req); /* calc_async.c: a QUEUED pf.calculate job */
        return;
    }
    calc_op *op = fsr_call_alloc(call, sizeof(*op));
    memset(op, 0, sizeof(*op));
    op->lookback = req->lookback_days != NULL ? req->lookback_days->value : 252;
    if (limit_of(call, req->position_limit, 0.10, "positionLimit", &op->position_limit) != 0 ||
        limit_of(call, req->sector_limit, 0.30, "sectorLimit", &op->sector_limit) != 0 ||
        limit_of(call, req->issuer_limit, 0.25, "issuerLimit", &op->issuer_limit) != 0)
        return;
    pf_valuation_load(call, &who, req->id, req->as_of, on_calc_valued, op);
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
