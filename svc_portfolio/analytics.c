/* SPDX-License-Identifier: MIT */
/*
 * The stateless PortfolioAnalyticsService (Twr, Xirr, Attribution, RebalancePlan) and the
 * rebalancing rule Rebalance shares with RebalancePlan (pf_rebalance_core()).  The numbers
 * come from the pure library (fsr/analytics.h); this file validates every input first, so a
 * bad request is INVALID_ARGUMENT naming the offending field, and checks every output, so a
 * reply never carries NaN or an infinity (proto3 JSON would print them as strings).
 */
#include "portfolio.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/analytics.h"
#include "fsr/validate.h"

#include "portfolio_v1.fsr.h"

/* Request size limits (the gateway's message size limit comes first in practice). */
#define PF_AN_MAX_POINTS    100000 /* values, flows */
#define PF_AN_MAX_CLASSES   1000
#define PF_AN_MAX_POSITIONS 10000
#define PF_AN_NAME_MAX      200
/* Weights that must sum to 1 (attribution) or at most 1 (targets), as fsr/analytics.h. */
#define PF_AN_WEIGHT_EPS 1e-9

#define FAIL_FIELD(call, field, ...)                                                               \
    fsr_call_fail_field((call), FSR_INVALID_ARGUMENT, field, __VA_ARGS__)
/* Fails naming a field whose name is formatted with one index, e.g. "values[3].date". */
#define FAIL_AT(call, fmt_field, idx, ...)                                                         \
    fsr_call_fail_field((call), FSR_INVALID_ARGUMENT, fsr_call_printf((call), fmt_field, (idx)),   \
                        __VA_ARGS__)

static const char DATE_WHY[] = "must be a date \"YYYY-MM-DD\"";
static const char FINITE_WHY[] = "must be a finite number";

/* ---- helpers ------------------------------------------------------------------------ */

static int day_parse(const char *s, int32_t *day)
{
    int y, m, d;
    if (s == NULL || fsr_date_parse(s, &y, &m, &d) != 0)
        return -1;
    *day = fsr_an_day_from_civil(y, m, d);
    return 0;
}

static char *day_text(fsr_call *call, int32_t day)
{
    int y, m, d;
    fsr_an_day_to_civil(day, &y, &m, &d);
    return fsr_call_printf(call, "%04d-%02d-%02d", y, m, d);
}

/* Neumaier-compensated sum, so totals do not depend on the order of the terms. */
typedef struct pf_sum {
    double s, c;
} pf_sum;

static void sum_add(pf_sum *a, double x)
{
    double t = a->s + x;
    if (fabs(a->s) >= fabs(x))
        a->c += (a->s - t) + x;
    else
        a->c += (x - t) + a->s;
    a->s = t;
}

static double sum_total(const pf_sum *a)
{
    return a->s + a->c;
}

/* A name with its position in the request, to find repeats by sorting (O(k log k)). */
typedef struct pf_named {
    const char *name;
    size_t index;
} pf_named;

static int named_cmp(const void *a, const void *b)
{
    const pf_named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Whether two of the |k| |names| are equal: then *|dup| is the lowest position that
 * repeats an earlier name and *|orig| the first position holding that name.
 */
static bool find_repeat(fsr_call *call, const char *const *names, size_t k, size_t *dup,
                        size_t *orig)
{
    pf_named *v = fsr_call_alloc(call, sizeof(*v) * (k + 1));
    for (size_t i = 0; i < k; i++)
        v[i] = (pf_named){ names[i], i };
    qsort(v, k, sizeof(*v), named_cmp);
    /* In each run of equal names (ascending positions) the first holds the name and the
     * second is the lowest position repeating it; the lowest such over all runs wins. */
    bool found = false;
    for (size_t i = 1; i < k; i++) {
        if (strcmp(v[i].name, v[i - 1].name) != 0 ||
            (i >= 2 && strcmp(v[i - 1].name, v[i - 2].name) == 0) || (found && v[i].index >= *dup))
            continue;
        *dup = v[i].index;
        *orig = v[i - 1].index;
        found = true;
    }
    return found;
}

/* Finishes |call| with INVALID_ARGUMENT naming |field| for library error |err|. */
static void fail_an(fsr_call *call, const char *field, int err)
{
    if (fsr_an_is_error(err))
        FAIL_FIELD(call, field, "%s", fsr_an_strerror(err));
    else
        fsr_call_fail_err(call, err, "analytics");
}

/* ---- Twr ---------------------------------------------------------------------------- */

/* A flow with its position in the request, for a stable sort by date. */
typedef struct pf_flow {
    int32_t day;
    double amount;
    size_t index;
} pf_flow;

static int flow_cmp(const void *a, const void *b)
{
    const pf_flow *x = a, *y = b;
    if (x->day != y->day)
        return x->day < y->day ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int day_cmp(const void *key, const void *elem)
{
    int32_t k = *(const int32_t *)key, e = *(const int32_t *)elem;
    return k < e ? -1 : k > e;
}

static int timing_resolve(fsr_call *call, int v, fsr_an_flow_timing *out)
{
    switch (v) {
    case COMMON__V1__FLOW_TIMING__VALUE__FLOW_TIMING_UNSPECIFIED:
    case COMMON__V1__FLOW_TIMING__VALUE__START_OF_DAY:
        *out = FSR_AN_FLOW_START;
        return 0;
    case COMMON__V1__FLOW_TIMING__VALUE__END_OF_DAY:
        *out = FSR_AN_FLOW_END;
        return 0;
    case COMMON__V1__FLOW_TIMING__VALUE__SPLIT:
        *out = FSR_AN_FLOW_SPLIT;
        return 0;
    case COMMON__V1__FLOW_TIMING__VALUE__MODIFIED_DIETZ:
        *out = FSR_AN_FLOW_DIETZ;
        return 0;
    default:
        FAIL_FIELD(call, "flowTiming", "must be START_OF_DAY, END_OF_DAY, SPLIT or MODIFIED_DIETZ");
        return -1;
    }
}

/*
 * A daily denominator <= 0: finds the first date it happens on (the library only says that
 * it did) and names what makes it so.  |f| holds the flows sorted by date.
 */
static void fail_denominator(fsr_call *call, fsr_an_flow_timing timing, const int32_t *days,
                             const double *vals, size_t n, const pf_flow *f, size_t m)
{
    if (timing == FSR_AN_FLOW_DIETZ) {
        FAIL_FIELD(call, "flows",
                   "the start value plus the time-weighted flows is <= 0, so Modified Dietz has "
                   "no base to measure a return on");
        return;
    }
    size_t j = 0;
    for (size_t t = 1; t < n; t++) {
        double in = 0.0, net = 0.0;
        for (; j < m && f[j].day == days[t]; j++) {
            net += f[j].amount;
            if (f[j].amount > 0.0)
                in += f[j].amount;
        }
        double den = timing == FSR_AN_FLOW_START ? vals[t - 1] + net
                     : timing == FSR_AN_FLOW_END ? vals[t - 1]
                                                 : vals[t - 1] + in;
        if (den > 0.0)
            continue;
        if (timing == FSR_AN_FLOW_START && vals[t - 1] > 0.0)
            FAIL_FIELD(call, "flows",
                       "the flows on %s take out everything (values[%zu].value plus the day's "
                       "flows is <= 0): that day's return has no base",
                       day_text(call, days[t]), t - 1);
        else
            FAIL_AT(call, "values[%zu].value", t - 1,
                    "is 0 with nothing flowing in on the next date (%s): that return has no "
                    "base (only the last value may be 0)",
                    day_text(call, days[t]));
        return;
    }
    FAIL_FIELD(call, "values", "%s", fsr_an_strerror(FSR_AN_E_DENOMINATOR));
}

void pf_twr(fsr_call *call, const Portfolio__V1__TwrRequest *req)
{
    fsr_an_flow_timing timing;
    if (timing_resolve(call, req->flow_timing, &timing) != 0)
        return;
    const size_t n = req->n_values, m = req->n_flows;
    if (n < 2) {
        FAIL_FIELD(call, "values",
                   "needs at least two dated values (the first is the base, on which no return "
                   "is earned)");
        return;
    }
    if (n > PF_AN_MAX_POINTS) {
        FAIL_FIELD(call, "values", "at most %d values", PF_AN_MAX_POINTS);
        return;
    }
    if (m > PF_AN_MAX_POINTS) {
        FAIL_FIELD(call, "flows", "at most %d flows", PF_AN_MAX_POINTS);
        return;
    }
    int32_t *days = fsr_call_alloc(call, sizeof(*days) * n);
    double *vals = fsr_call_alloc(call, sizeof(*vals) * n);
    for (size_t i = 0; i < n; i++) {
        const Common__V1__DatedValue *dv = req->values[i];
        if (day_parse(dv->date, &days[i]) != 0) {
            FAIL_AT(call, "values[%zu].date", i, "%s", DATE_WHY);
            return;
        }
        if (i > 0 && days[i] <= days[i - 1]) {
            FAIL_AT(call, "values[%zu].date", i,
                    "must be after values[%zu].date (ascending, one value a date)", i - 1);
            return;
        }
        if (!isfinite(dv->value)) {
            FAIL_AT(call, "values[%zu].value", i, "%s", FINITE_WHY);
            return;
        }
        if (dv->value < 0.0) {
            FAIL_AT(call, "values[%zu].value", i, "must be >= 0");
            return;
        }
        vals[i] = dv->value;
    }
    pf_flow *f = fsr_call_alloc(call, sizeof(*f) * (m + 1));
    for (size_t i = 0; i < m; i++) {
        const Common__V1__CashFlow *cf = req->flows[i];
        if (day_parse(cf->date, &f[i].day) != 0) {
            FAIL_AT(call, "flows[%zu].date", i, "%s", DATE_WHY);
            return;
        }
        if (!isfinite(cf->amount)) {
            FAIL_AT(call, "flows[%zu].amount", i, "%s", FINITE_WHY);
            return;
        }
        /* The base value is measured after every flow up to its date. */
        if (f[i].day <= days[0]) {
            FAIL_AT(call, "flows[%zu].date", i,
                    "must be after the first valuation date %s (values[0] is the base, which "
                    "already includes earlier flows)",
                    req->values[0]->date);
            return;
        }
        if (f[i].day > days[n - 1]) {
            FAIL_AT(call, "flows[%zu].date", i, "must be on or before the last valuation date %s",
                    req->values[n - 1]->date);
            return;
        }
        if (timing != FSR_AN_FLOW_DIETZ &&
            bsearch(&f[i].day, days, n, sizeof(*days), day_cmp) == NULL) {
            FAIL_AT(call, "flows[%zu].date", i,
                    "must be a valuation date (one of values[].date): a daily return needs the "
                    "value on the day of each flow (MODIFIED_DIETZ takes flows on any date)");
            return;
        }
        f[i].amount = cf->amount;
        f[i].index = i;
    }
    qsort(f, m, sizeof(*f), flow_cmp);
    int32_t *fdays = fsr_call_alloc(call, sizeof(*fdays) * (m + 1));
    double *famt = fsr_call_alloc(call, sizeof(*famt) * (m + 1));
    for (size_t i = 0; i < m; i++) {
        fdays[i] = f[i].day;
        famt[i] = f[i].amount;
    }

    double *ret = fsr_call_alloc(call, sizeof(*ret) * n);
    fsr_an_twr out;
    int rv = fsr_an_twr_compute(days, vals, n, fdays, famt, m, timing, ret, &out);
    if (rv == FSR_AN_E_DENOMINATOR) {
        fail_denominator(call, timing, days, vals, n, f, m);
        return;
    }
    if (rv != 0) {
        fail_an(call, "values", rv);
        return;
    }

    /* Never a NaN or an infinity in the reply: say why there is no number instead. */
    bool finite = isfinite(out.twr);
    for (size_t t = 0; finite && timing != FSR_AN_FLOW_DIETZ && t + 1 < n; t++)
        finite = isfinite(ret[t]);
    if (!finite) {
        FAIL_FIELD(call, "values",
                   "the returns overflow a double (values too far apart for a ratio)");
        return;
    }
    /* Only END_OF_DAY can give a daily return below -100%: a value below the day's own
     * deposits, i.e. more than everything lost. */
    for (size_t t = 0; timing == FSR_AN_FLOW_END && t + 1 < n; t++)
        if (ret[t] < -1.0) {
            FAIL_AT(call, "values[%zu].value", t + 1,
                    "is below that day's flows: with END_OF_DAY the return would be below "
                    "-100%%");
            return;
        }
    if (out.twr < -1.0) {
        FAIL_FIELD(call, "flows",
                   "the Modified Dietz return is %.6g, below -100%%, which has no annualized "
                   "equivalent (the flows dwarf the values: use a daily flowTiming)",
                   out.twr);
        return;
    }
    if (!isfinite(out.annualized) || !isfinite(out.annualized_252)) {
        FAIL_FIELD(call, "values",
                   "the annualized return of %.6g over %d calendar days overflows a double",
                   out.twr, (int)out.calendar_days);
        return;
    }

    Portfolio__V1__TwrResponse *o = fsr_call_alloc(call, sizeof(*o));
    portfolio__v1__twr_response__init(o);
    o->twr = out.twr;
    o->annualized_twr = out.annualized;
    o->annualized_twr_252 = out.annualized_252;
    if (timing != FSR_AN_FLOW_DIETZ) {
        Common__V1__DatedValue *items = fsr_call_alloc(call, sizeof(*items) * (n - 1));
        o->daily_returns = fsr_call_alloc(call, sizeof(*o->daily_returns) * (n - 1));
        for (size_t t = 1; t < n; t++) {
            common__v1__dated_value__init(&items[t - 1]);
            items[t - 1].date = req->values[t]->date;
            items[t - 1].value = ret[t - 1];
            o->daily_returns[t - 1] = &items[t - 1];
        }
        o->n_daily_returns = n - 1;
    }
    portfolio_v1_portfolio_analytics_service_twr_reply(call, o);
}

/* ---- Xirr --------------------------------------------------------------------------- */

void pf_xirr(fsr_call *call, const Portfolio__V1__XirrRequest *req)
{
    const size_t n = req->n_flows;
    if (n < 2) {
        FAIL_FIELD(call, "flows",
                   "needs at least two dated flows (money in negative, withdrawals and the "
                   "final value positive)");
        return;
    }
    if (n > PF_AN_MAX_POINTS) {
        FAIL_FIELD(call, "flows", "at most %d flows", PF_AN_MAX_POINTS);
        return;
    }
    int32_t *days = fsr_call_alloc(call, sizeof(*days) * n);
    double *amt = fsr_call_alloc(call, sizeof(*amt) * n);
    for (size_t i = 0; i < n; i++) {
        if (day_parse(req->flows[i]->date, &days[i]) != 0) {
            FAIL_AT(call, "flows[%zu].date", i, "%s", DATE_WHY);
            return;
        }
        amt[i] = req->flows[i]->amount;
        if (!isfinite(amt[i])) {
            FAIL_AT(call, "flows[%zu].amount", i, "%s", FINITE_WHY);
            return;
        }
    }
    double rate;
    int rv = fsr_an_xirr(days, amt, n, &rate);
    if (rv == FSR_AN_E_NO_SIGN_CHANGE) {
        FAIL_FIELD(call, "flows",
                   "the flows do not change sign, so no rate balances them: money put in must "
                   "be negative and money taken out (withdrawals, the final value) positive");
        return;
    }
    if (rv == FSR_AN_E_NO_ROOT) {
        FAIL_FIELD(call, "flows",
                   "no rate in (-99%%, 1000%%) a year makes the flows' net present value zero "
                   "(XIRR has no root there)");
        return;
    }
    if (rv != 0) {
        fail_an(call, "flows", rv);
        return;
    }
    Portfolio__V1__XirrResponse *o = fsr_call_alloc(call, sizeof(*o));
    portfolio__v1__xirr_response__init(o);
    o->rate = rate;
    portfolio_v1_portfolio_analytics_service_xirr_reply(call, o);
}

/* ---- Attribution -------------------------------------------------------------------- */

void pf_attribution(fsr_call *call, const Portfolio__V1__AttributionRequest *req)
{
    fsr_an_attr_model model;
    switch (req->model) {
    case COMMON__V1__ATTRIBUTION_MODEL__VALUE__ATTRIBUTION_MODEL_UNSPECIFIED:
    case COMMON__V1__ATTRIBUTION_MODEL__VALUE__BRINSON_FACHLER:
        model = FSR_AN_BRINSON_FACHLER;
        break;
    case COMMON__V1__ATTRIBUTION_MODEL__VALUE__BHB:
        model = FSR_AN_BHB;
        break;
    default:
        FAIL_FIELD(call, "model", "must be BRINSON_FACHLER or BHB");
        return;
    }
    const size_t k = req->n_classes;
    if (k == 0) {
        FAIL_FIELD(call, "classes", "needs at least one class");
        return;
    }
    if (k > PF_AN_MAX_CLASSES) {
        FAIL_FIELD(call, "classes", "at most %d classes", PF_AN_MAX_CLASSES);
        return;
    }
    double *wp = fsr_call_alloc(call, sizeof(double) * k);
    double *wb = fsr_call_alloc(call, sizeof(double) * k);
    double *rp = fsr_call_alloc(call, sizeof(double) * k);
    double *rb = fsr_call_alloc(call, sizeof(double) * k);
    pf_sum swp = { 0 }, swb = { 0 };
    for (size_t i = 0; i < k; i++) {
        const Portfolio__V1__AttributionClassInput *c = req->classes[i];
        if (fsr_check_text(call, fsr_call_printf(call, "classes[%zu].name", i), c->name, true,
                           PF_AN_NAME_MAX, true) != 0)
            return;
        /* Weights may be negative (a short or an overdraft); returns cannot lose more than
         * everything. */
        const struct {
            const char *name;
            double v;
            double *dst;
            bool is_return;
        } f[] = { { "portfolioWeight", c->portfolio_weight, &wp[i], false },
                  { "benchmarkWeight", c->benchmark_weight, &wb[i], false },
                  { "portfolioReturn", c->portfolio_return, &rp[i], true },
                  { "benchmarkReturn", c->benchmark_return, &rb[i], true } };
        for (size_t q = 0; q < sizeof(f) / sizeof(f[0]); q++) {
            if (!isfinite(f[q].v)) {
                fsr_call_fail_field(call, FSR_INVALID_ARGUMENT,
                                    fsr_call_printf(call, "classes[%zu].%s", i, f[q].name), "%s",
                                    FINITE_WHY);
                return;
            }
            if (f[q].is_return && f[q].v < -1.0) {
                fsr_call_fail_field(call, FSR_INVALID_ARGUMENT,
                                    fsr_call_printf(call, "classes[%zu].%s", i, f[q].name),
                                    "must be >= -1 (a return below -100%% is impossible)");
                return;
            }
            *f[q].dst = f[q].v;
        }
        sum_add(&swp, wp[i]);
        sum_add(&swb, wb[i]);
    }
    const char **names = fsr_call_alloc(call, sizeof(*names) * k);
    for (size_t i = 0; i < k; i++)
        names[i] = req->classes[i]->name;
    size_t dup, orig;
    if (find_repeat(call, names, k, &dup, &orig)) {
        FAIL_AT(call, "classes[%zu].name", dup, "repeats classes[%zu].name", orig);
        return;
    }
    if (fabs(sum_total(&swp) - 1.0) > PF_AN_WEIGHT_EPS) {
        FAIL_FIELD(call, "classes",
                   "the portfolio weights (portfolioWeight) must sum to 1; they sum to %.12g",
                   sum_total(&swp));
        return;
    }
    if (fabs(sum_total(&swb) - 1.0) > PF_AN_WEIGHT_EPS) {
        FAIL_FIELD(call, "classes",
                   "the benchmark weights (benchmarkWeight) must sum to 1 (0 for a class the "
                   "benchmark does not hold); they sum to %.12g",
                   sum_total(&swb));
        return;
    }
    fsr_an_attr_class *cls = fsr_call_alloc(call, sizeof(*cls) * k);
    fsr_an_attr_total tot;
    int rv = fsr_an_attribution(wp, wb, rp, rb, k, model, cls, &tot);
    if (rv != 0) {
        fail_an(call, "classes", rv);
        return;
    }
    bool finite = isfinite(tot.portfolio_return) && isfinite(tot.benchmark_return) &&
                  isfinite(tot.active_return) && isfinite(tot.allocation) &&
                  isfinite(tot.selection) && isfinite(tot.interaction);
    for (size_t i = 0; finite && i < k; i++)
        finite = isfinite(cls[i].allocation) && isfinite(cls[i].selection) &&
                 isfinite(cls[i].interaction);
    if (!finite) {
        FAIL_FIELD(call, "classes", "the weights are too large: the effects overflow a double");
        return;
    }

    Portfolio__V1__AttributionResponse *o = fsr_call_alloc(call, sizeof(*o));
    portfolio__v1__attribution_response__init(o);
    o->model = model == FSR_AN_BHB ? COMMON__V1__ATTRIBUTION_MODEL__VALUE__BHB
                                   : COMMON__V1__ATTRIBUTION_MODEL__VALUE__BRINSON_FACHLER;
    o->portfolio_return = tot.portfolio_return;
    o->benchmark_return = tot.benchmark_return;
    o->active_return = tot.active_return;
    o->total_allocation = tot.allocation;
    o->total_selection = tot.selection;
    o->total_interaction = tot.interaction;
    Portfolio__V1__AttributionClassResult *items = fsr_call_alloc(call, sizeof(*items) * k);
    o->classes = fsr_call_alloc(call, sizeof(*o->classes) * k);
    for (size_t i = 0; i < k; i++) {
        portfolio__v1__attribution_class_result__init(&items[i]);
        items[i].name = req->classes[i]->name;
        items[i].allocation = cls[i].allocation;
        items[i].selection = cls[i].selection;
        items[i].interaction = cls[i].interaction;
        o->classes[i] = &items[i];
    }
    o->n_classes = k;
    portfolio_v1_portfolio_analytics_service_attribution_reply(call, o);
}

/* ---- the rebalancing rule ----------------------------------------------------------- */

/* Post-trade cash of |res| (cash + cash_to_invest - sum of notionals), compensated. */
static double post_cash(const fsr_an_rebal_result *res, size_t k, double cash, double cti)
{
    pf_sum s = { 0 };
    sum_add(&s, cash);
    sum_add(&s, cti);
    for (size_t i = 0; i < k; i++)
        sum_add(&s, -res[i].notional);
    return sum_total(&s);
}

static void set_trade(const fsr_an_rebal_position *p, fsr_an_rebal_result *r, double trade,
                      double V)
{
    r->trade = trade;
    r->notional = trade * p->price;
    r->post_quantity = p->quantity + trade;
    r->post_weight = r->post_quantity * p->price / V;
}

int pf_rebalance_core(const fsr_an_rebal_position *pos, size_t k, double cash,
                      double cash_to_invest, fsr_an_rebal_mode mode, double band_abs,
                      double band_rel, fsr_an_rebal_result *res, fsr_an_rebal_total *total,
                      double *buy_scale)
{
    int rv = fsr_an_rebalance(pos, k, cash, cash_to_invest, mode, band_abs, band_rel, res, total);
    if (rv != 0)
        return rv;
    const double V = total->total_value;
    double scale = 1.0;

    /* New money is invested by buying only: nothing is sold to fund the targets. */
    if (cash_to_invest > 0.0)
        for (size_t i = 0; i < k; i++)
            if (res[i].trade < 0.0)
                set_trade(&pos[i], &res[i], 0.0, V);

    /*
     * Cash never goes negative.  FULL with targets summing to at most 1 fits by construction
     * (every target quantity is rounded down); BAND (unbreached positions keep their excess)
     * and buy-only (overweight positions keep theirs) may not.  Sells come first, so what
     * the buys may spend is the cash, the new money and the sells' proceeds; every buy is
     * scaled by available / cost and rounded down to whole lots, which keeps the total at or
     * under what is available.  Rounding of the doubles themselves could still leave a few
     * ulps below zero: then buys lose one lot at a time, from the last position backwards.
     */
    double pc = post_cash(res, k, cash, cash_to_invest);
    if (pc < 0.0) {
        pf_sum cost = { 0 };
        for (size_t i = 0; i < k; i++)
            if (res[i].trade > 0.0)
                sum_add(&cost, res[i].notional);
        double buys = sum_total(&cost);
        if (buys > 0.0) {
            double avail = pc + buys;
            scale = avail > 0.0 ? avail / buys : 0.0;
            for (size_t i = 0; i < k; i++)
                if (res[i].trade > 0.0)
                    set_trade(&pos[i], &res[i],
                              floor(scale * res[i].trade / pos[i].lot) * pos[i].lot, V);
            pc = post_cash(res, k, cash, cash_to_invest);
        }
        for (size_t i = k; pc < 0.0 && i-- > 0;) {
            while (pc < 0.0 && res[i].trade > 0.0) {
                double t = res[i].trade > pos[i].lot ? res[i].trade - pos[i].lot : 0.0;
                set_trade(&pos[i], &res[i], t, V);
                pc = post_cash(res, k, cash, cash_to_invest);
            }
        }
    }
    total->post_trade_cash = pc;
    total->post_cash_weight = pc / V;
    if (buy_scale != NULL)
        *buy_scale = scale;
    return 0;
}

bool pf_rebalance_finite(const fsr_an_rebal_result *res, size_t k, const fsr_an_rebal_total *t)
{
    if (!isfinite(t->total_value) || !isfinite(t->post_trade_cash))
        return false;
    for (size_t i = 0; i < k; i++) {
        const fsr_an_rebal_result *r = &res[i];
        if (!isfinite(r->current_weight) || !isfinite(r->drift_abs) ||
            !isfinite(r->target_quantity) || !isfinite(r->trade) || !isfinite(r->notional) ||
            !isfinite(r->post_weight))
            return false;
    }
    return true;
}

double pf_drift_rel_json(double drift_rel)
{
    return isfinite(drift_rel) ? drift_rel : 0.0;
}

int pf_rebalance_mode_resolve(fsr_call *call, int mode, fsr_an_rebal_mode *out)
{
    switch (mode) {
    case COMMON__V1__REBALANCE_MODE__VALUE__REBALANCE_MODE_UNSPECIFIED:
    case COMMON__V1__REBALANCE_MODE__VALUE__FULL:
        *out = FSR_AN_REBAL_FULL;
        return 0;
    case COMMON__V1__REBALANCE_MODE__VALUE__BAND:
        *out = FSR_AN_REBAL_BAND;
        return 0;
    default:
        FAIL_FIELD(call, "mode", "must be FULL or BAND");
        return -1;
    }
}

int pf_rebalance_bands_resolve(fsr_call *call, const Google__Protobuf__DoubleValue *abs_v,
                               const Google__Protobuf__DoubleValue *rel_v, double *band_abs,
                               double *band_rel)
{
    double a = abs_v != NULL ? abs_v->value : FSR_AN_BAND_ABS;
    double r = rel_v != NULL ? rel_v->value : FSR_AN_BAND_REL;
    if (!isfinite(a) || a < 0.0) {
        FAIL_FIELD(call, "bandAbs", "must be a fraction >= 0 (default 0.05, 5 points)");
        return -1;
    }
    if (!isfinite(r) || r < 0.0) {
        FAIL_FIELD(call, "bandRel", "must be a fraction >= 0 (default 0.25 of the target)");
        return -1;
    }
    *band_abs = a;
    *band_rel = r;
    return 0;
}

/* ---- RebalancePlan ------------------------------------------------------------------ */

void pf_rebalance_plan(fsr_call *call, const Portfolio__V1__RebalancePlanRequest *req)
{
    fsr_an_rebal_mode mode;
    double band_abs, band_rel;
    if (pf_rebalance_mode_resolve(call, req->mode, &mode) != 0 ||
        pf_rebalance_bands_resolve(call, req->band_abs, req->band_rel, &band_abs, &band_rel) != 0)
        return;
    if (!isfinite(req->cash) || req->cash < 0.0) {
        FAIL_FIELD(call, "cash", "must be a finite number >= 0");
        return;
    }
    if (!isfinite(req->cash_to_invest) || req->cash_to_invest < 0.0) {
        FAIL_FIELD(call, "cashToInvest", "must be a finite number >= 0");
        return;
    }
    const size_t k = req->n_positions;
    if (k > PF_AN_MAX_POSITIONS) {
        FAIL_FIELD(call, "positions", "at most %d positions", PF_AN_MAX_POSITIONS);
        return;
    }
    fsr_an_rebal_position *pos = fsr_call_alloc(call, sizeof(*pos) * (k + 1));
    pf_sum targets = { 0 };
    for (size_t i = 0; i < k; i++) {
        const Portfolio__V1__RebalancePosition *p = req->positions[i];
        if (fsr_check_text(call, fsr_call_printf(call, "positions[%zu].id", i), p->id, true,
                           PF_AN_NAME_MAX, true) != 0)
            return;
        if (!isfinite(p->quantity) || p->quantity < 0.0) {
            FAIL_AT(call, "positions[%zu].quantity", i, "must be a finite number >= 0");
            return;
        }
        if (!isfinite(p->price) || !(p->price > 0.0)) {
            FAIL_AT(call, "positions[%zu].price", i, "must be a finite number > 0");
            return;
        }
        if (!isfinite(p->lot_size) || p->lot_size < 0.0) {
            FAIL_AT(call, "positions[%zu].lotSize", i, "must be a finite number > 0 (0: 1)");
            return;
        }
        if (!isfinite(p->target) || p->target < 0.0 || p->target > 1.0) {
            FAIL_AT(call, "positions[%zu].target", i, "must be a fraction in [0, 1]");
            return;
        }
        pos[i] = (fsr_an_rebal_position){ .quantity = p->quantity,
                                          .price = p->price,
                                          .lot = p->lot_size > 0.0 ? p->lot_size : 1.0,
                                          .target = p->target };
        sum_add(&targets, p->target);
    }
    /* post_trade_weights is keyed by id. */
    const char **ids = fsr_call_alloc(call, sizeof(*ids) * (k + 1));
    for (size_t i = 0; i < k; i++)
        ids[i] = req->positions[i]->id;
    size_t dup, orig;
    if (find_repeat(call, ids, k, &dup, &orig)) {
        FAIL_AT(call, "positions[%zu].id", dup, "repeats positions[%zu].id", orig);
        return;
    }
    if (sum_total(&targets) > 1.0 + PF_AN_WEIGHT_EPS) {
        FAIL_FIELD(call, "positions",
                   "the targets must sum to at most 1 (the rest is cash); they sum to %.12g",
                   sum_total(&targets));
        return;
    }
    fsr_an_rebal_result *res = fsr_call_alloc(call, sizeof(*res) * (k + 1));
    fsr_an_rebal_total tot;
    int rv = pf_rebalance_core(pos, k, req->cash, req->cash_to_invest, mode, band_abs, band_rel,
                               res, &tot, NULL);
    if (rv == FSR_AN_E_VALUE) {
        /* Everything was checked above except the total. */
        FAIL_FIELD(call, "positions",
                   "the positions, cash and cashToInvest must have a total value > 0");
        return;
    }
    if (rv != 0) {
        fail_an(call, "positions", rv);
        return;
    }
    if (!pf_rebalance_finite(res, k, &tot)) {
        FAIL_FIELD(call, "positions", "the values are too large: the plan overflows a double");
        return;
    }

    Portfolio__V1__RebalancePlanResponse *o = fsr_call_alloc(call, sizeof(*o));
    portfolio__v1__rebalance_plan_response__init(o);
    o->total_value = tot.total_value;
    o->post_trade_cash = tot.post_trade_cash;
    Portfolio__V1__RebalancePositionResult *items = fsr_call_alloc(call, sizeof(*items) * (k + 1));
    Portfolio__V1__RebalancePlanResponse__PostTradeWeightsEntry *w =
        fsr_call_alloc(call, sizeof(*w) * (k + 1));
    o->positions = fsr_call_alloc(call, sizeof(*o->positions) * (k + 1));
    o->post_trade_weights = fsr_call_alloc(call, sizeof(*o->post_trade_weights) * (k + 1));
    for (size_t i = 0; i < k; i++) {
        const fsr_an_rebal_result *r = &res[i];
        Portfolio__V1__RebalancePositionResult *it = &items[i];
        portfolio__v1__rebalance_position_result__init(it);
        it->id = req->positions[i]->id;
        it->current_weight = r->current_weight;
        it->drift_abs = r->drift_abs;
        it->drift_rel = pf_drift_rel_json(r->drift_rel);
        it->breach = r->breach;
        it->target_quantity = r->target_quantity;
        it->trade = r->trade;
        it->notional = r->notional;
        o->positions[i] = it;
        portfolio__v1__rebalance_plan_response__post_trade_weights_entry__init(&w[i]);
        w[i].key = req->positions[i]->id;
        w[i].value = r->post_weight;
        o->post_trade_weights[i] = &w[i];
    }
    o->n_positions = k;
    o->n_post_trade_weights = k;
    portfolio_v1_portfolio_analytics_service_rebalance_plan_reply(call, o);
}
