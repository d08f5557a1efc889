/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/analytics: every metric of every series in the numpy/scipy reference
 * (test/analytics_ref/reference.json, from gen_reference.py) at the tolerances of the shared
 * ANALYTICS.md, plus targeted tests of the conventions, edge cases and errors.
 */
#include "fsr/analytics.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ANALYTICS.md "Suggested tolerances". */
#define TOL_RETURN 1e-12 /* returns, values, weights (absolute; money values relative) */
#define TOL_RATIO  1e-9  /* ratios and annualised metrics (relative) */
#define TOL_VAR    1e-12 /* VaR and CVaR (absolute) */
#define TOL_XIRR   1e-9  /* XIRR (absolute) */

static json_t *g_ref; /* loaded once in main(); every forked test inherits it */

/* ---------------------------------------------------------------------------------------
 * Helpers
 */

/* A JSON number, or the strings NaN / Infinity / -Infinity the generator writes. */
static double num(const json_t *v)
{
    if (json_is_number(v))
        return json_number_value(v);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0)
            return NAN;
        if (strcmp(s, "Infinity") == 0)
            return INFINITY;
        if (strcmp(s, "-Infinity") == 0)
            return -INFINITY;
    }
    ck_abort_msg("not a number in the reference");
    return NAN;
}

static double field(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    ck_assert_msg(v != NULL, "reference lacks \"%s\"", key);
    return num(v);
}

static const char *str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_string(v), "reference lacks string \"%s\"", key);
    return json_string_value(v);
}

static int32_t iso_day(const char *s)
{
    int y, m, d;
    ck_assert_msg(sscanf(s, "%d-%d-%d", &y, &m, &d) == 3, "bad date %s", s);
    return fsr_an_day_from_civil(y, m, d);
}

static void day_iso(int32_t day, char buf[16])
{
    int y, m, d;
    fsr_an_day_to_civil(day, &y, &m, &d);
    snprintf(buf, 16, "%04d-%02d-%02d", y, m, d);
}

static bool same_special(double got, double want)
{
    return (isnan(got) && isnan(want)) || (isinf(want) && got == want);
}

#define EXPECT_ABS(ctx, name, got, want, tol)                                                      \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        ck_assert_msg(same_special(g_, w_) || fabs(g_ - w_) <= (tol),                              \
                      "%s %s: got %.17g, want %.17g (diff %.3g > %.0e)", (ctx), (name), g_, w_,    \
                      fabs(g_ - w_), (double)(tol));                                               \
    } while (0)

#define EXPECT_REL(ctx, name, got, want, tol)                                                      \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        ck_assert_msg(same_special(g_, w_) || fabs(g_ - w_) <= (tol)*fabs(w_) + 1e-300,            \
                      "%s %s: got %.17g, want %.17g (rel diff %.3g > %.0e)", (ctx), (name), g_,    \
                      w_, fabs(g_ - w_) / fabs(w_), (double)(tol));                                \
    } while (0)

/* A reference series as arrays owned by the test. */
typedef struct ref_series {
    int32_t *days;
    double *close;
    int32_t *div_days;
    double *div_amount;
    fsr_an_series s;
} ref_series;

static void load_series(const char *name, ref_series *out)
{
    const json_t *o = json_object_get(json_object_get(g_ref, "series"), name);
    ck_assert_msg(o != NULL, "no series %s", name);
    const json_t *dates = json_object_get(o, "dates"), *close = json_object_get(o, "close");
    const json_t *divs = json_object_get(o, "dividends");
    size_t n = json_array_size(dates), nd = json_array_size(divs);
    ck_assert_uint_eq(n, json_array_size(close));
    out->days = malloc(n * sizeof(int32_t));
    out->close = malloc(n * sizeof(double));
    out->div_days = malloc((nd + 1) * sizeof(int32_t));
    out->div_amount = malloc((nd + 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        out->days[i] = iso_day(json_string_value(json_array_get(dates, i)));
        out->close[i] = num(json_array_get(close, i));
    }
    for (size_t i = 0; i < nd; i++) {
        out->div_days[i] = iso_day(str(json_array_get(divs, i), "ex_date"));
        out->div_amount[i] = field(json_array_get(divs, i), "amount");
    }
    out->s = (fsr_an_series){ out->days, out->close, n, out->div_days, out->div_amount, nd };
}

static void free_series(ref_series *r)
{
    free(r->days);
    free(r->close);
    free(r->div_days);
    free(r->div_amount);
}

static fsr_an_basis basis_of(const char *s)
{
    return strcmp(s, "PRICE") == 0 ? FSR_AN_PRICE : FSR_AN_TOTAL;
}

/* Compares a wealth-index position with the reference's {"index", "date"} or null. */
static void expect_position(const char *ctx, const char *name, size_t got, const json_t *want,
                            const int32_t *days)
{
    if (json_is_null(want)) {
        ck_assert_msg(got == FSR_AN_NONE, "%s %s: got position %zu, want none", ctx, name, got);
        return;
    }
    size_t wi = (size_t)json_integer_value(json_object_get(want, "index"));
    ck_assert_msg(got == wi, "%s %s: got position %zu, want %zu", ctx, name, got, wi);
    char buf[16];
    day_iso(days[got], buf);
    ck_assert_str_eq(buf, str(want, "date"));
}

static void expect_var(const char *ctx, const fsr_an_var *v, const json_t *want)
{
    EXPECT_ABS(ctx, "confidence", v->confidence, field(want, "confidence"), 0);
    EXPECT_ABS(ctx, "historical", v->historical, field(want, "historical"), TOL_VAR);
    EXPECT_ABS(ctx, "historical_lower", v->historical_lower, field(want, "historical_lower"),
               TOL_VAR);
    EXPECT_ABS(ctx, "historical_inverted_cdf", v->historical_inverted_cdf,
               field(want, "historical_inverted_cdf"), TOL_VAR);
    EXPECT_ABS(ctx, "cvar_historical", v->cvar_historical, field(want, "cvar_historical"), TOL_VAR);
    EXPECT_ABS(ctx, "gaussian", v->gaussian, field(want, "gaussian"), TOL_VAR);
    EXPECT_ABS(ctx, "es_gaussian", v->es_gaussian, field(want, "es_gaussian"), TOL_VAR);
    EXPECT_ABS(ctx, "cornish_fisher", v->cornish_fisher, field(want, "cornish_fisher"), TOL_VAR);
}

/* Every metric of |m| against the reference's "metrics" object. */
static void expect_metrics(const char *ctx, const fsr_an_metrics *m, const json_t *want,
                           const int32_t *days)
{
    ck_assert_uint_eq(m->n, (size_t)json_integer_value(json_object_get(want, "n")));
    EXPECT_ABS(ctx, "mean", m->mean, field(want, "mean"), TOL_RETURN);
    EXPECT_ABS(ctx, "stdev", m->stdev, field(want, "stdev"), TOL_RETURN);
    EXPECT_REL(ctx, "stdev(rel)", m->stdev, field(want, "stdev"), TOL_RATIO);
    EXPECT_ABS(ctx, "total_return", m->total_return, field(want, "total_return"), TOL_RETURN);
    EXPECT_REL(ctx, "annualized_return", m->annualized_return, field(want, "annualized_return"),
               TOL_RATIO);
    EXPECT_REL(ctx, "annualized_return_arith", m->annualized_return_arith,
               field(want, "annualized_return_arith"), TOL_RATIO);
    EXPECT_REL(ctx, "annualized_volatility", m->annualized_volatility,
               field(want, "annualized_volatility"), TOL_RATIO);
    EXPECT_REL(ctx, "sharpe", m->sharpe, field(want, "sharpe"), TOL_RATIO);
    EXPECT_REL(ctx, "downside_deviation", m->downside_deviation, field(want, "downside_deviation"),
               TOL_RATIO);
    EXPECT_REL(ctx, "sortino", m->sortino, field(want, "sortino"), TOL_RATIO);
    EXPECT_ABS(ctx, "max_drawdown", m->max_drawdown, field(want, "max_drawdown"), TOL_RETURN);
    expect_position(ctx, "max_drawdown_peak", m->max_drawdown_peak,
                    json_object_get(want, "max_drawdown_peak"), days);
    expect_position(ctx, "max_drawdown_trough", m->max_drawdown_trough,
                    json_object_get(want, "max_drawdown_trough"), days);
    expect_position(ctx, "max_drawdown_recovery", m->max_drawdown_recovery,
                    json_object_get(want, "max_drawdown_recovery"), days);
    EXPECT_REL(ctx, "calmar", m->calmar, field(want, "calmar"), TOL_RATIO);
    EXPECT_REL(ctx, "skewness", m->skewness, field(want, "skewness"), TOL_RATIO);
    EXPECT_REL(ctx, "excess_kurtosis", m->excess_kurtosis, field(want, "excess_kurtosis"),
               TOL_RATIO);
    bool bench = json_object_get(want, "beta") != NULL;
    ck_assert_int_eq(m->has_benchmark, bench);
    if (bench) {
        EXPECT_REL(ctx, "beta", m->beta, field(want, "beta"), TOL_RATIO);
        EXPECT_ABS(ctx, "alpha_daily", m->alpha_daily, field(want, "alpha_daily"), TOL_RETURN);
        EXPECT_REL(ctx, "alpha_daily(rel)", m->alpha_daily, field(want, "alpha_daily"), TOL_RATIO);
        EXPECT_REL(ctx, "alpha_annualized", m->alpha_annualized, field(want, "alpha_annualized"),
                   TOL_RATIO);
        EXPECT_REL(ctx, "correlation", m->correlation, field(want, "correlation"), TOL_RATIO);
        EXPECT_REL(ctx, "tracking_error", m->tracking_error, field(want, "tracking_error"),
                   TOL_RATIO);
        EXPECT_REL(ctx, "information_ratio", m->information_ratio, field(want, "information_ratio"),
                   TOL_RATIO);
    }
    const json_t *vars = json_object_get(want, "var");
    ck_assert_uint_eq(json_array_size(vars), FSR_AN_VAR_LEVELS);
    for (size_t i = 0; i < FSR_AN_VAR_LEVELS; i++) {
        char c[128];
        snprintf(c, sizeof c, "%s var[%zu]", ctx, i);
        expect_var(c, &m->var[i], json_array_get(vars, i));
    }
}

static void expect_days(const char *ctx, const int32_t *days, size_t n, const json_t *want)
{
    char a[16], b[16];
    day_iso(days[0], a);
    day_iso(days[n - 1], b);
    ck_assert_msg(n == (size_t)json_integer_value(json_object_get(want, "count")),
                  "%s: %zu dates, want %lld", ctx, n,
                  (long long)json_integer_value(json_object_get(want, "count")));
    ck_assert_str_eq(a, str(want, "first"));
    ck_assert_str_eq(b, str(want, "last"));
}

/* ---------------------------------------------------------------------------------------
 * The reference: per-series results
 */

START_TEST(test_analytics_reference_series)
{
    const json_t *res = json_array_get(json_object_get(g_ref, "results"), (size_t)_i);
    ck_assert_ptr_nonnull(res);
    const char *sid = str(res, "series");
    const json_t *bj = json_object_get(res, "benchmark");
    const char *bid = json_is_string(bj) ? json_string_value(bj) : NULL;
    fsr_an_basis basis = basis_of(str(res, "basis"));
    char ctx[64];
    snprintf(ctx, sizeof ctx, "%s/%s/%s", sid, bid ? bid : "-", str(res, "basis"));

    ref_series s[2];
    load_series(sid, &s[0]);
    if (bid)
        load_series(bid, &s[1]);
    fsr_an_series in[2] = { s[0].s, bid ? s[1].s : s[0].s };
    size_t k = bid ? 2 : 1, ld = in[0].n, n_days = 0;
    int32_t *days = malloc(ld * sizeof(int32_t));
    double *close = malloc(k * ld * sizeof(double)), *div = malloc(k * ld * sizeof(double));
    double *ret = malloc(k * ld * sizeof(double)), *work = malloc(ld * sizeof(double));
    ck_assert_int_eq(fsr_an_align(in, k, basis, days, close, div, ret, ld, &n_days), 0);
    expect_days(ctx, days, n_days, json_object_get(res, "dates"));
    size_t n = n_days - 1;

    if (!bid) {
        /* On its own calendar: fsr_an_series_returns() gives the same returns bit for bit. */
        double *own = malloc(n * sizeof(double));
        ck_assert_int_eq(fsr_an_series_returns(&in[0], basis, own), 0);
        ck_assert_uint_eq(n_days, in[0].n);
        ck_assert(memcmp(own, ret, n * sizeof(double)) == 0);
        free(own);
    }
    /* fsr_an_returns() on the aligned closes and dividends: bit for bit too. */
    double *again = malloc(n * sizeof(double));
    ck_assert_int_eq(fsr_an_returns(close, div, n_days, basis, again), 0);
    ck_assert(memcmp(again, ret, n * sizeof(double)) == 0);
    free(again);

    const json_t *want_ret = json_object_get(res, "returns");
    if (want_ret) {
        ck_assert_uint_eq(json_array_size(want_ret), n);
        for (size_t t = 0; t < n; t++) {
            char c[128];
            snprintf(c, sizeof c, "%s return[%zu]", ctx, t);
            EXPECT_ABS(c, "", ret[t], num(json_array_get(want_ret, t)), TOL_RETURN);
        }
        /* Dividends per aligned date: the (date t-1, date t] rule. */
        const json_t *dpd = json_object_get(res, "dividends_per_date");
        size_t seen = 0;
        for (size_t t = 0; t < n_days; t++) {
            if (div[t] == 0.0)
                continue;
            const json_t *d = json_array_get(dpd, seen++);
            ck_assert_ptr_nonnull(d);
            char buf[16];
            day_iso(days[t], buf);
            ck_assert_str_eq(buf, str(d, "date"));
            EXPECT_ABS(ctx, "dividend", div[t], field(d, "amount"), TOL_RETURN);
        }
        ck_assert_uint_eq(seen, json_array_size(dpd));
    }

    fsr_an_metrics m;
    double rf = field(g_ref, "rf_annual");
    ck_assert_int_eq(fsr_an_metrics_compute(ret, bid ? ret + ld : NULL, n, rf, work, &m), 0);
    expect_metrics(ctx, &m, json_object_get(res, "metrics"), days);
    /* work == NULL (one internal allocation) gives the same numbers. */
    fsr_an_metrics m2;
    ck_assert_int_eq(fsr_an_metrics_compute(ret, bid ? ret + ld : NULL, n, rf, NULL, &m2), 0);
    ck_assert(memcmp(&m, &m2, sizeof m) == 0);
    /* fsr_an_var_compute() agrees with the metrics' VaR. */
    for (size_t i = 0; i < FSR_AN_VAR_LEVELS; i++) {
        fsr_an_var v;
        ck_assert_int_eq(fsr_an_var_compute(ret, n, m.var[i].confidence, NULL, &v), 0);
        ck_assert(memcmp(&v, &m.var[i], sizeof v) == 0);
    }

    /* Period returns: calendar years first, then the named windows. */
    const json_t *periods = json_object_get(res, "period_returns");
    fsr_an_period years[16];
    int ny = fsr_an_year_returns(days, ret, n, years, 16);
    ck_assert_int_gt(ny, 0);
    size_t pi = 0;
    for (; pi < json_array_size(periods); pi++) {
        const json_t *p = json_array_get(periods, pi);
        char c[128], a[16], b[16];
        snprintf(c, sizeof c, "%s period %s", ctx, str(p, "label"));
        fsr_an_period got;
        if (json_object_get(p, "start") == NULL) {
            ck_assert_int_lt((int)pi, ny);
            got = years[pi];
            int y;
            fsr_an_day_to_civil(got.end_close, &y, NULL, NULL);
            ck_assert_int_eq(y, atoi(str(p, "label")));
        } else {
            const json_t *st = json_object_get(p, "start"), *en = json_object_get(p, "end");
            int32_t sd = json_is_null(st) ? days[0] : iso_day(json_string_value(st));
            int32_t ed = json_is_null(en) ? days[n] : iso_day(json_string_value(en));
            ck_assert_int_eq(fsr_an_period_return(days, ret, n, sd, ed, &got), 0);
        }
        day_iso(got.start_close, a);
        day_iso(got.end_close, b);
        ck_assert_str_eq(a, str(p, "start_close"));
        ck_assert_str_eq(b, str(p, "end_close"));
        EXPECT_ABS(c, "total_return", got.total_return, field(p, "total_return"), TOL_RETURN);
    }
    ck_assert_uint_ge(pi, (size_t)ny);

    free(days);
    free(close);
    free(div);
    free(ret);
    free(work);
    free_series(&s[0]);
    if (bid)
        free_series(&s[1]);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * The reference: portfolio (covariance risk, daily rebalanced, buy and hold)
 */

START_TEST(test_analytics_reference_portfolio)
{
    const json_t *pf = json_object_get(g_ref, "portfolio");
    const json_t *members = json_object_get(pf, "members");
    const size_t k = json_array_size(members);
    ck_assert_uint_eq(k, 5);
    ref_series s[6];
    fsr_an_series in[6];
    for (size_t i = 0; i < k; i++) {
        load_series(json_string_value(json_array_get(members, i)), &s[i]);
        in[i] = s[i].s;
    }
    load_series("BMK", &s[5]);
    in[5] = s[5].s;
    size_t ld = 2000, nd;
    int32_t *days = malloc(ld * sizeof(int32_t));
    double *close = malloc(6 * ld * sizeof(double)), *div = malloc(6 * ld * sizeof(double));
    double *ret = malloc(6 * ld * sizeof(double));
    ck_assert_int_eq(fsr_an_align(in, 6, FSR_AN_TOTAL, days, close, div, ret, ld, &nd), 0);
    expect_days("portfolio", days, nd, json_object_get(pf, "dates"));
    size_t n = nd - 1;

    double w[5];
    for (size_t i = 0; i < k; i++)
        w[i] = num(json_array_get(json_object_get(pf, "weights"), i));

    /* Covariance and correlation. */
    double cov[25], corr[25];
    double *work = malloc(fsr_an_cov_work_size(k, n) * sizeof(double));
    ck_assert_int_eq(fsr_an_cov(ret, k, n, ld, cov, corr, work), 0);
    for (size_t i = 0; i < k; i++) {
        const json_t *crow = json_array_get(json_object_get(pf, "covariance"), i);
        const json_t *rrow = json_array_get(json_object_get(pf, "correlation"), i);
        for (size_t j = 0; j < k; j++) {
            char c[48];
            snprintf(c, sizeof c, "cov[%zu][%zu]", i, j);
            EXPECT_REL(c, "", cov[i * k + j], num(json_array_get(crow, j)), TOL_RATIO);
            EXPECT_ABS(c, "", cov[i * k + j], num(json_array_get(crow, j)), TOL_RETURN);
            snprintf(c, sizeof c, "corr[%zu][%zu]", i, j);
            EXPECT_REL(c, "", corr[i * k + j], num(json_array_get(rrow, j)), TOL_RATIO);
        }
        EXPECT_REL("volatilities", "", sqrt(cov[i * k + i] * 252),
                   num(json_array_get(json_object_get(pf, "volatilities"), i)), TOL_RATIO);
    }
    fsr_an_risk risk;
    double rc[5], mc[5];
    ck_assert_int_eq(fsr_an_portfolio_risk(cov, k, w, &risk, rc, mc), 0);
    EXPECT_REL("portfolio", "volatility", risk.volatility, field(pf, "portfolio_volatility"),
               TOL_RATIO);
    EXPECT_ABS("portfolio", "cash_weight", risk.cash_weight, 0.10, TOL_RETURN);
    double rc_sum = 0;
    for (size_t i = 0; i < k; i++) {
        EXPECT_ABS("risk_contributions", "", rc[i],
                   num(json_array_get(json_object_get(pf, "risk_contributions"), i)), TOL_RETURN);
        EXPECT_REL("marginal_contributions", "", mc[i],
                   num(json_array_get(json_object_get(pf, "marginal_contributions"), i)),
                   TOL_RATIO);
        rc_sum += rc[i];
    }
    EXPECT_ABS("risk_contributions", "sum", rc_sum, 1.0, 1e-14);

    /* daily_rebalanced: returns and every metric vs the benchmark (row 5). */
    double rf = field(g_ref, "rf_annual");
    const json_t *dr = json_object_get(pf, "daily_rebalanced");
    double *pr = malloc(n * sizeof(double));
    ck_assert_int_eq(fsr_an_portfolio_rebalanced(ret, k, n, ld, w, rf, pr), 0);
    for (size_t t = 0; t < n; t++)
        EXPECT_ABS("daily_rebalanced", "return", pr[t],
                   num(json_array_get(json_object_get(dr, "returns"), t)), TOL_RETURN);
    fsr_an_metrics m;
    ck_assert_int_eq(fsr_an_metrics_compute(pr, ret + 5 * ld, n, rf, NULL, &m), 0);
    expect_metrics("daily_rebalanced", &m, json_object_get(dr, "metrics"), days);
    /* The covariance volatility is the volatility of the daily-rebalanced series. */
    EXPECT_REL("daily_rebalanced", "vol = sigma_p", m.annualized_volatility, risk.volatility,
               1e-12);

    /* buy_and_hold: shares, cash, values, returns and metrics. */
    const json_t *bh = json_object_get(pf, "buy_and_hold");
    double shares[5], *values = malloc(nd * sizeof(double)), *br = malloc(n * sizeof(double));
    fsr_an_buy_and_hold sum;
    ck_assert_int_eq(fsr_an_portfolio_buy_and_hold(close, div, k, nd, ld, w, field(pf, "v0"), rf,
                                                   shares, values, br, &sum),
                     0);
    for (size_t i = 0; i < k; i++)
        EXPECT_ABS("buy_and_hold", "shares", shares[i],
                   num(json_array_get(json_object_get(bh, "shares"), i)), 0);
    EXPECT_REL("buy_and_hold", "initial_cash", sum.initial_cash, field(bh, "initial_cash"),
               TOL_RETURN);
    EXPECT_REL("buy_and_hold", "final_cash", sum.final_cash, field(bh, "final_cash"), TOL_RETURN);
    for (size_t t = 0; t < nd; t++)
        EXPECT_REL("buy_and_hold", "value", values[t],
                   num(json_array_get(json_object_get(bh, "values"), t)), TOL_RETURN);
    EXPECT_ABS("buy_and_hold", "final_value", sum.final_value, values[nd - 1], 0);
    for (size_t t = 0; t < n; t++)
        EXPECT_ABS("buy_and_hold", "return", br[t],
                   num(json_array_get(json_object_get(bh, "returns"), t)), TOL_RETURN);
    ck_assert_int_eq(fsr_an_metrics_compute(br, ret + 5 * ld, n, rf, NULL, &m), 0);
    expect_metrics("buy_and_hold", &m, json_object_get(bh, "metrics"), days);
    /* Money VaR = fraction x final value. */
    for (size_t i = 0; i < FSR_AN_VAR_LEVELS; i++) {
        const json_t *mv = json_array_get(json_object_get(bh, "money_var"), i);
        EXPECT_REL("money_var", "historical", m.var[i].historical * sum.final_value,
                   field(mv, "historical"), TOL_RETURN);
        EXPECT_REL("money_var", "cvar_historical", m.var[i].cvar_historical * sum.final_value,
                   field(mv, "cvar_historical"), TOL_RETURN);
    }

    free(pr);
    free(values);
    free(br);
    free(work);
    free(days);
    free(close);
    free(div);
    free(ret);
    for (size_t i = 0; i < 6; i++)
        free_series(&s[i]);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * The reference: TWR, XIRR, attribution, rebalancing, inverse normal, dates
 */

static const struct {
    const char *name;
    fsr_an_flow_timing timing;
} twr_timings[] = {
    { "START_OF_DAY", FSR_AN_FLOW_START },
    { "END_OF_DAY", FSR_AN_FLOW_END },
    { "SPLIT", FSR_AN_FLOW_SPLIT },
    { "MODIFIED_DIETZ", FSR_AN_FLOW_DIETZ },
};

START_TEST(test_analytics_reference_twr)
{
    const json_t *cases = json_object_get(g_ref, "twr");
    ck_assert_uint_ge(json_array_size(cases), 2);
    for (size_t c = 0; c < json_array_size(cases); c++) {
        const json_t *tc = json_array_get(cases, c);
        const json_t *vals = json_object_get(tc, "values"), *fl = json_object_get(tc, "flows");
        size_t n = json_array_size(vals), m = json_array_size(fl);
        int32_t *days = malloc(n * sizeof(int32_t)), *fd = malloc((m + 1) * sizeof(int32_t));
        double *v = malloc(n * sizeof(double)), *f = malloc((m + 1) * sizeof(double));
        double *r = malloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            days[i] = iso_day(str(json_array_get(vals, i), "date"));
            v[i] = field(json_array_get(vals, i), "value");
        }
        for (size_t i = 0; i < m; i++) {
            fd[i] = iso_day(str(json_array_get(fl, i), "date"));
            f[i] = field(json_array_get(fl, i), "amount");
        }
        for (size_t t = 0; t < sizeof(twr_timings) / sizeof(twr_timings[0]); t++) {
            char ctx[64];
            snprintf(ctx, sizeof ctx, "twr %s %s", str(tc, "name"), twr_timings[t].name);
            const json_t *want =
                json_object_get(json_object_get(tc, "results"), twr_timings[t].name);
            fsr_an_twr out;
            ck_assert_int_eq(
                fsr_an_twr_compute(days, v, n, fd, f, m, twr_timings[t].timing, r, &out), 0);
            EXPECT_ABS(ctx, "twr", out.twr, field(want, "twr"), TOL_RETURN);
            EXPECT_REL(ctx, "annualized_twr", out.annualized, field(want, "annualized_twr"),
                       TOL_RATIO);
            EXPECT_REL(ctx, "annualized_twr_252", out.annualized_252,
                       field(want, "annualized_twr_252"), TOL_RATIO);
            ck_assert_int_eq(out.calendar_days, days[n - 1] - days[0]);
            const json_t *dr = json_object_get(want, "daily_returns");
            if (dr) {
                ck_assert_uint_eq(json_array_size(dr), n - 1);
                for (size_t i = 0; i + 1 < n; i++)
                    EXPECT_ABS(ctx, "daily return", r[i], num(json_array_get(dr, i)), TOL_RETURN);
            }
        }
        free(days);
        free(fd);
        free(v);
        free(f);
        free(r);
    }

    const json_t *sp = json_object_get(g_ref, "twr_subperiod");
    double before[8], flow[8], twr;
    size_t k = json_array_size(json_object_get(sp, "flow"));
    for (size_t i = 0; i <= k; i++)
        before[i] = num(json_array_get(json_object_get(sp, "before"), i));
    for (size_t i = 0; i < k; i++)
        flow[i] = num(json_array_get(json_object_get(sp, "flow"), i));
    ck_assert_int_eq(fsr_an_twr_subperiods(before, flow, k, &twr), 0);
    EXPECT_ABS("twr_subperiod", "twr", twr, field(sp, "twr"), TOL_RETURN);
}
END_TEST

START_TEST(test_analytics_reference_xirr)
{
    const json_t *cases = json_object_get(g_ref, "xirr");
    ck_assert_uint_ge(json_array_size(cases), 6);
    for (size_t c = 0; c < json_array_size(cases); c++) {
        const json_t *tc = json_array_get(cases, c);
        const json_t *fl = json_object_get(tc, "flows");
        size_t n = json_array_size(fl);
        int32_t d[64];
        double f[64], rate = -42.0;
        ck_assert_uint_le(n, 64);
        for (size_t i = 0; i < n; i++) {
            d[i] = iso_day(str(json_array_get(fl, i), "date"));
            f[i] = field(json_array_get(fl, i), "amount");
        }
        int rv = fsr_an_xirr(d, f, n, &rate);
        const json_t *err = json_object_get(tc, "error");
        if (err) {
            ck_assert_msg(rv < 0, "xirr %s: want %s, got rate %.17g", str(tc, "name"),
                          json_string_value(err), rate);
            ck_assert_str_eq(fsr_an_errname(rv), json_string_value(err));
            ck_assert(rate == -42.0); /* untouched on failure */
        } else {
            ck_assert_msg(rv == 0, "xirr %s: %s", str(tc, "name"), fsr_an_strerror(rv));
            EXPECT_ABS(str(tc, "name"), "rate", rate, field(tc, "rate"), TOL_XIRR);
        }
    }
}
END_TEST

START_TEST(test_analytics_reference_attribution)
{
    const json_t *cases = json_object_get(g_ref, "attribution");
    for (size_t c = 0; c < json_array_size(cases); c++) {
        const json_t *tc = json_array_get(cases, c);
        const json_t *cl = json_object_get(tc, "classes");
        size_t k = json_array_size(cl);
        double wp[8], wb[8], rp[8], rb[8];
        for (size_t i = 0; i < k; i++) {
            const json_t *x = json_array_get(cl, i);
            wp[i] = field(x, "portfolio_weight");
            wb[i] = field(x, "benchmark_weight");
            rp[i] = field(x, "portfolio_return");
            rb[i] = field(x, "benchmark_return");
        }
        fsr_an_attr_model model =
            strcmp(str(tc, "model"), "BHB") == 0 ? FSR_AN_BHB : FSR_AN_BRINSON_FACHLER;
        fsr_an_attr_class out[8];
        fsr_an_attr_total tot;
        ck_assert_int_eq(fsr_an_attribution(wp, wb, rp, rb, k, model, out, &tot), 0);
        const char *ctx = str(tc, "name");
        for (size_t i = 0; i < k; i++) {
            const json_t *x = json_array_get(cl, i);
            EXPECT_ABS(ctx, "allocation", out[i].allocation, field(x, "allocation"), TOL_RETURN);
            EXPECT_ABS(ctx, "selection", out[i].selection, field(x, "selection"), TOL_RETURN);
            EXPECT_ABS(ctx, "interaction", out[i].interaction, field(x, "interaction"), TOL_RETURN);
            EXPECT_ABS(ctx, "selection_with_interaction", out[i].selection_with_interaction,
                       field(x, "selection_with_interaction"), TOL_RETURN);
        }
        EXPECT_ABS(ctx, "portfolio_return", tot.portfolio_return, field(tc, "portfolio_return"),
                   TOL_RETURN);
        EXPECT_ABS(ctx, "benchmark_return", tot.benchmark_return, field(tc, "benchmark_return"),
                   TOL_RETURN);
        EXPECT_ABS(ctx, "active_return", tot.active_return, field(tc, "active_return"), TOL_RETURN);
        EXPECT_ABS(ctx, "total_allocation", tot.allocation, field(tc, "total_allocation"),
                   TOL_RETURN);
        EXPECT_ABS(ctx, "total_selection", tot.selection, field(tc, "total_selection"), TOL_RETURN);
        EXPECT_ABS(ctx, "total_interaction", tot.interaction, field(tc, "total_interaction"),
                   TOL_RETURN);
        /* The check of ANALYTICS.md: the effects add up to the active return. */
        EXPECT_ABS(ctx, "sum of effects", tot.allocation + tot.selection + tot.interaction,
                   tot.active_return, 1e-15);
    }
}
END_TEST

START_TEST(test_analytics_reference_rebalance)
{
    const json_t *cases = json_object_get(g_ref, "rebalance");
    for (size_t c = 0; c < json_array_size(cases); c++) {
        const json_t *tc = json_array_get(cases, c);
        const json_t *ps = json_object_get(tc, "positions");
        size_t k = json_array_size(ps);
        fsr_an_rebal_position pos[8];
        for (size_t i = 0; i < k; i++) {
            const json_t *p = json_array_get(ps, i);
            pos[i] = (fsr_an_rebal_position){ field(p, "quantity"), field(p, "price"),
                                              field(p, "lot"), field(p, "target") };
        }
        fsr_an_rebal_result res[8];
        fsr_an_rebal_total tot;
        fsr_an_rebal_mode mode =
            strcmp(str(tc, "mode"), "BAND") == 0 ? FSR_AN_REBAL_BAND : FSR_AN_REBAL_FULL;
        ck_assert_int_eq(fsr_an_rebalance(pos, k, field(tc, "cash"), field(tc, "cash_to_invest"),
                                          mode, field(tc, "band_abs"), field(tc, "band_rel"), res,
                                          &tot),
                         0);
        const char *ctx = str(tc, "name");
        EXPECT_REL(ctx, "total_value", tot.total_value, field(tc, "total_value"), TOL_RETURN);
        EXPECT_REL(ctx, "post_trade_cash", tot.post_trade_cash, field(tc, "post_trade_cash"),
                   TOL_RETURN);
        EXPECT_ABS(ctx, "post_cash_weight", tot.post_cash_weight, field(tc, "post_cash_weight"),
                   TOL_RETURN);
        size_t breaches = 0;
        double wsum = tot.post_cash_weight;
        for (size_t i = 0; i < k; i++) {
            const json_t *p = json_array_get(ps, i);
            EXPECT_ABS(ctx, "current_weight", res[i].current_weight, field(p, "current_weight"),
                       TOL_RETURN);
            EXPECT_ABS(ctx, "drift_abs", res[i].drift_abs, field(p, "drift_abs"), TOL_RETURN);
            EXPECT_ABS(ctx, "drift_rel", res[i].drift_rel, field(p, "drift_rel"), TOL_RETURN);
            ck_assert_int_eq(res[i].breach, json_is_true(json_object_get(p, "breach")));
            EXPECT_ABS(ctx, "target_quantity", res[i].target_quantity, field(p, "target_quantity"),
                       0);
            EXPECT_ABS(ctx, "trade", res[i].trade, field(p, "trade"), 0);
            EXPECT_REL(ctx, "notional", res[i].notional, field(p, "notional"), TOL_RETURN);
            EXPECT_ABS(ctx, "post_weight", res[i].post_weight, field(p, "post_weight"), TOL_RETURN);
            breaches += res[i].breach;
            wsum += res[i].post_weight;
        }
        ck_assert_uint_eq(tot.breaches, breaches);
        EXPECT_ABS(ctx, "weights sum", wsum, 1.0, 1e-12);
    }
}
END_TEST

START_TEST(test_analytics_reference_norm_ppf)
{
    const json_t *cases = json_object_get(g_ref, "norm_ppf");
    ck_assert_uint_ge(json_array_size(cases), 10);
    double worst = 0;
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *c = json_array_get(cases, i);
        double p = field(c, "p"), z = field(c, "z"), got = fsr_an_norm_ppf(p);
        char ctx[48];
        snprintf(ctx, sizeof ctx, "norm_ppf(%.17g)", p);
        if (z == 0.0) {
            ck_assert(got == 0.0);
            continue;
        }
        /* Within 1e-15 relative of scipy's ndtri over the whole range. */
        EXPECT_REL(ctx, "", got, z, 1e-15);
        worst = fmax(worst, fabs(got - z) / fabs(z));
        /* Round trip through erfc: Phi(Phi^-1(p)) = p (relative error grows like z^2 dz/z
         * in the far tail). */
        EXPECT_REL(ctx, "cdf", fsr_an_norm_cdf(got), p, 1e-12);
    }
    ck_assert(isinf(fsr_an_norm_ppf(0.0)) && fsr_an_norm_ppf(0.0) < 0);
    ck_assert(isinf(fsr_an_norm_ppf(1.0)) && fsr_an_norm_ppf(1.0) > 0);
    ck_assert(isnan(fsr_an_norm_ppf(-0.1)) && isnan(fsr_an_norm_ppf(1.5)));
    ck_assert(isnan(fsr_an_norm_ppf(NAN)));
    /* Exactly odd where 1 - p is exact (0.95 is not: 1 - 0.95 = 0.050000000000000044). */
    ck_assert(fsr_an_norm_ppf(0.25) == -fsr_an_norm_ppf(0.75));
    ck_assert(fsr_an_norm_ppf(0.0625) == -fsr_an_norm_ppf(0.9375));
    ck_assert(worst < 1e-15);
    EXPECT_ABS("norm_pdf", "0", fsr_an_norm_pdf(0.0), 0.3989422804014327, 1e-17);
}
END_TEST

/*
 * AS 241 against Phi^-1 refined in long double (three Halley steps on erfcl) over p from
 * 1e-300 to 1 - 1e-16, both tails: the inverse is accurate to 1e-15 relative everywhere.
 */
START_TEST(test_analytics_norm_ppf_accuracy)
{
    double worst = 0;
    for (int i = 0; i <= 20000; i++) {
        double p = exp(-690.0 + 689.3 * i / 20000.0);
        for (int side = 0; side < 2; side++) {
            double pp = side ? 1.0 - p : p;
            if (!(pp > 0.0 && pp < 1.0) || pp == 0.5)
                continue;
            double z = fsr_an_norm_ppf(pp);
            long double x = z;
            for (int k = 0; k < 3; k++) {
                long double cdf = 0.5L * erfcl(-x / sqrtl(2.0L));
                long double pdf = expl(-0.5L * x * x) / sqrtl(2.0L * 3.141592653589793238462643L);
                long double t = (cdf - (long double)pp) / pdf;
                x = x - t / (1.0L + x * t / 2.0L);
            }
            double e = (double)fabsl((z - x) / x);
            worst = fmax(worst, e);
            ck_assert_msg(e < 1e-15, "ppf(%.17g) = %.17g, refined %.20Lg (rel %.3g)", pp, z, x, e);
        }
    }
    ck_assert(worst > 0); /* the comparison did run */
}
END_TEST

START_TEST(test_analytics_reference_civil)
{
    const json_t *cases = json_object_get(g_ref, "civil");
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *c = json_array_get(cases, i);
        int32_t want = (int32_t)json_integer_value(json_object_get(c, "day"));
        ck_assert_int_eq(iso_day(str(c, "date")), want);
        char buf[16];
        day_iso(want, buf);
        ck_assert_str_eq(buf, str(c, "date"));
    }
    /* Every day of 1899..2101 round-trips and consecutive serials are consecutive days. */
    int32_t d0 = fsr_an_day_from_civil(1899, 1, 1), d1 = fsr_an_day_from_civil(2101, 12, 31);
    for (int32_t d = d0; d <= d1; d++) {
        int y, m, md;
        fsr_an_day_to_civil(d, &y, &m, &md);
        ck_assert_int_eq(fsr_an_day_from_civil(y, m, md), d);
    }
    ck_assert_int_eq(d1 - d0 + 1, 203 * 365 + 49); /* 49 leap years in 1899..2101 */
    ck_assert_double_eq(fsr_an_rf_daily(0.02), field(g_ref, "rf_daily"));
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Targeted tests
 */

#define D(y, m, d) fsr_an_day_from_civil(y, m, d)

/* The series rules by hand: returns, the dividend attached to the next close, dividends
 * on the base date or after the end ignored, several on one date added. */
START_TEST(test_analytics_series_dividend_rule)
{
    int32_t days[] = { D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 5), D(2024, 1, 8) };
    double close[] = { 100.0, 99.0, 101.0, 100.5 };
    /* Ex on the base date (ignored), on Jan 4 (no close: counts on Jan 5), twice on Jan 8,
     * after the end (ignored). */
    int32_t dd[] = { D(2024, 1, 2), D(2024, 1, 4), D(2024, 1, 8), D(2024, 1, 8), D(2024, 1, 9) };
    double da[] = { 5.0, 1.0, 0.25, 0.5, 7.0 };
    fsr_an_series s = { days, close, 4, dd, da, 5 };
    double r[3], p[3];
    ck_assert_int_eq(fsr_an_series_returns(&s, FSR_AN_TOTAL, r), 0);
    ck_assert_int_eq(fsr_an_series_returns(&s, FSR_AN_PRICE, p), 0);
    ck_assert_double_eq(r[0], 99.0 / 100.0 - 1.0);
    ck_assert_double_eq(r[1], (101.0 + 1.0) / 99.0 - 1.0);
    ck_assert_double_eq(r[2], (100.5 + 0.75) / 101.0 - 1.0);
    ck_assert_double_eq(p[1], 101.0 / 99.0 - 1.0);
    ck_assert_double_eq(p[2], 100.5 / 101.0 - 1.0);
    /* The same series through fsr_an_align (k = 1): dividends per date, closes. */
    int32_t od[4];
    double oc[4], odiv[4], oret[4];
    size_t m;
    ck_assert_int_eq(fsr_an_align(&s, 1, FSR_AN_TOTAL, od, oc, odiv, oret, 4, &m), 0);
    ck_assert_uint_eq(m, 4);
    ck_assert_double_eq(odiv[0], 0.0);
    ck_assert_double_eq(odiv[1], 0.0);
    ck_assert_double_eq(odiv[2], 1.0);
    ck_assert_double_eq(odiv[3], 0.75);
    ck_assert(memcmp(oret, r, sizeof r) == 0);
}
END_TEST

/* Alignment: intersection, returns recomputed across dropped dates, a dividend on a dropped
 * date moving to the next common date. */
START_TEST(test_analytics_align_intersection)
{
    int32_t ad[] = { D(2024, 7, 1), D(2024, 7, 2), D(2024, 7, 3), D(2024, 7, 4), D(2024, 7, 5) };
    double ac[] = { 10.0, 11.0, 12.0, 13.0, 14.0 };
    int32_t add[] = { D(2024, 7, 4) };
    double ada[] = { 0.5 };
    int32_t bd[] = { D(2024, 6, 28), D(2024, 7, 1), D(2024, 7, 3), D(2024, 7, 5), D(2024, 7, 8) };
    double bc[] = { 99.0, 100.0, 102.0, 101.0, 105.0 };
    fsr_an_series s[2] = { { ad, ac, 5, add, ada, 1 }, { bd, bc, 5, NULL, NULL, 0 } };
    int32_t days[5];
    double close[10], div[10], ret[10];
    size_t m = 0;
    ck_assert_int_eq(fsr_an_align(s, 2, FSR_AN_TOTAL, days, close, div, ret, 5, &m), 0);
    ck_assert_uint_eq(m, 3);
    ck_assert_int_eq(days[0], D(2024, 7, 1));
    ck_assert_int_eq(days[1], D(2024, 7, 3));
    ck_assert_int_eq(days[2], D(2024, 7, 5));
    ck_assert_double_eq(close[0], 10.0);
    ck_assert_double_eq(close[2], 14.0);
    ck_assert_double_eq(close[5 + 1], 102.0);
    ck_assert_double_eq(div[2], 0.5); /* ex on Jul 4, not a common date: counts on Jul 5 */
    ck_assert_double_eq(ret[0], 12.0 / 10.0 - 1.0);
    ck_assert_double_eq(ret[1], (14.0 + 0.5) / 12.0 - 1.0);
    ck_assert_double_eq(ret[5 + 0], 102.0 / 100.0 - 1.0);
    ck_assert_double_eq(ret[5 + 1], 101.0 / 102.0 - 1.0);
    /* Only days and the count are required outputs. */
    ck_assert_int_eq(fsr_an_align(s, 2, FSR_AN_PRICE, days, NULL, NULL, NULL, 5, &m), 0);
    ck_assert_uint_eq(m, 3);
    /* ld shorter than the shortest series. */
    ck_assert_int_eq(fsr_an_align(s, 2, FSR_AN_PRICE, days, NULL, NULL, NULL, 4, &m),
                     FSR_AN_E_BUFFER);
    /* One common date only. */
    int32_t cd[] = { D(2024, 7, 5), D(2024, 7, 9) };
    double cc[] = { 1.0, 2.0 };
    fsr_an_series s3[2] = { s[0], { cd, cc, 2, NULL, NULL, 0 } };
    m = 77;
    ck_assert_int_eq(fsr_an_align(s3, 2, FSR_AN_TOTAL, days, NULL, NULL, NULL, 5, &m),
                     FSR_AN_E_NO_OVERLAP);
    ck_assert_uint_eq(m, 77);
}
END_TEST

START_TEST(test_analytics_series_errors)
{
    int32_t days[] = { 10, 11, 12 };
    double close[] = { 1.0, 2.0, 3.0 };
    double r[3];
    fsr_an_series s = { days, close, 0, NULL, NULL, 0 };
    ck_assert_int_eq(fsr_an_series_returns(&s, FSR_AN_TOTAL, r), FSR_AN_E_EMPTY);
    s.n = 1;
    ck_assert_int_eq(fsr_an_series_returns(&s, FSR_AN_TOTAL, r), FSR_AN_E_TOO_SHORT);
    s.n = 3;
    ck_assert_int_eq(fsr_an_series_returns(&s, FSR_AN_TOTAL, NULL), FSR_AN_E_ARG);
    ck_assert_int_eq(fsr_an_series_returns(&s, (fsr_an_basis)7, r), FSR_AN_E_ARG);
    ck_assert_int_eq(fsr_an_series_returns(NULL, FSR_AN_TOTAL, r), FSR_AN_E_ARG);
    int32_t bad_days[] = { 10, 12, 12 };
    fsr_an_series s2 = { bad_days, close, 3, NULL, NULL, 0 };
    ck_assert_int_eq(fsr_an_series_returns(&s2, FSR_AN_TOTAL, r), FSR_AN_E_DATES);
    double zero[] = { 1.0, 0.0, 3.0 }, neg[] = { 1.0, -2.0, 3.0 }, nan_[] = { 1.0, NAN, 3.0 };
    double inf_[] = { 1.0, INFINITY, 3.0 };
    double *bad[] = { zero, neg, nan_, inf_ };
    for (size_t i = 0; i < 4; i++) {
        fsr_an_series s3 = { days, bad[i], 3, NULL, NULL, 0 };
        ck_assert_int_eq(fsr_an_series_returns(&s3, FSR_AN_TOTAL, r), FSR_AN_E_PRICE);
    }
    int32_t dd[] = { 12, 11 };
    double da[] = { 0.1, 0.1 }, dneg[] = { 0.1, -0.1 };
    fsr_an_series s4 = { days, close, 3, dd, da, 2 };
    ck_assert_int_eq(fsr_an_series_check(&s4), FSR_AN_E_DIVIDEND);
    int32_t dd2[] = { 11, 12 };
    fsr_an_series s5 = { days, close, 3, dd2, dneg, 2 };
    ck_assert_int_eq(fsr_an_series_check(&s5), FSR_AN_E_DIVIDEND);
    fsr_an_series s6 = { days, close, 3, NULL, NULL, 2 };
    ck_assert_int_eq(fsr_an_series_check(&s6), FSR_AN_E_ARG);
    ck_assert_int_eq(fsr_an_returns(close, NULL, 1, FSR_AN_TOTAL, r), FSR_AN_E_TOO_SHORT);
    ck_assert_int_eq(fsr_an_returns(zero, NULL, 3, FSR_AN_TOTAL, r), FSR_AN_E_PRICE);
    ck_assert_int_eq(fsr_an_returns(close, dneg, 2, FSR_AN_TOTAL, r), FSR_AN_E_DIVIDEND);
    size_t m;
    int32_t od[3];
    ck_assert_int_eq(fsr_an_align(&s, 0, FSR_AN_TOTAL, od, NULL, NULL, NULL, 3, &m), FSR_AN_E_ARG);
}
END_TEST

/* Drawdown by hand: ties, the peak as the last date at the running maximum, recovery. */
START_TEST(test_analytics_drawdown_positions)
{
    /* Wealth: 1, 1.1, 1.1, 0.99, 0.891, 1.0395, 1.1 (recovers), 1.21 */
    double r[] = { 0.1, 0.0, -0.1, -0.1, 1.0395 / 0.891 - 1, 1.1 / 1.0395 - 1, 0.1 };
    fsr_an_metrics m;
    ck_assert_int_eq(fsr_an_metrics_compute(r, NULL, 7, 0.02, NULL, &m), 0);
    ck_assert_uint_eq(m.max_drawdown_peak, 2); /* last of the two positions at 1.1 */
    ck_assert_uint_eq(m.max_drawdown_trough, 4);
    ck_assert_double_eq_tol(m.max_drawdown, 1 - 0.891 / 1.1, 1e-15);
    /* Position 6 equals 1.1 up to rounding; the recovery is the first position >= peak. */
    double w = 1;
    size_t rec = FSR_AN_NONE;
    double pk = (1.0 * (1 + r[0])) * (1 + r[1]);
    for (size_t t = 1; t <= 7; t++) {
        w *= 1 + r[t - 1];
        if (t > 4 && w >= pk && rec == FSR_AN_NONE)
            rec = t;
    }
    ck_assert_uint_eq(m.max_drawdown_recovery, rec);
    ck_assert(rec == 6 || rec == 7);

    /* A loss from the first day: the peak is the base date (wealth 1). */
    double down[] = { -0.05, -0.05, 0.01 };
    ck_assert_int_eq(fsr_an_metrics_compute(down, NULL, 3, 0.02, NULL, &m), 0);
    ck_assert_uint_eq(m.max_drawdown_peak, 0);
    ck_assert_uint_eq(m.max_drawdown_trough, 2);
    ck_assert_uint_eq(m.max_drawdown_recovery, FSR_AN_NONE);
    ck_assert_double_eq_tol(m.max_drawdown, 1 - 0.95 * 0.95, 1e-15);

    /* Only gains: no drawdown, Calmar NaN, no positions. */
    double up[] = { 0.01, 0.02, 0.005 };
    ck_assert_int_eq(fsr_an_metrics_compute(up, NULL, 3, 0.02, NULL, &m), 0);
    ck_assert_double_eq(m.max_drawdown, 0.0);
    ck_assert_uint_eq(m.max_drawdown_peak, FSR_AN_NONE);
    ck_assert_uint_eq(m.max_drawdown_trough, FSR_AN_NONE);
    ck_assert_uint_eq(m.max_drawdown_recovery, FSR_AN_NONE);
    ck_assert(isnan(m.calmar));
    /* No day below MAR: downside deviation 0 and Sortino NaN. */
    ck_assert_double_eq(m.downside_deviation, 0.0);
    ck_assert(isnan(m.sortino));

    /* A second, deeper drawdown after a recovery replaces the first and resets recovery. */
    double two[] = { -0.1, 0.2, -0.3, 0.05 };
    ck_assert_int_eq(fsr_an_metrics_compute(two, NULL, 4, 0.02, NULL, &m), 0);
    ck_assert_uint_eq(m.max_drawdown_peak, 2);
    ck_assert_uint_eq(m.max_drawdown_trough, 3);
    ck_assert_uint_eq(m.max_drawdown_recovery, FSR_AN_NONE);
}
END_TEST

/* Constant returns: zero variance makes every ratio over it NaN, never inf. */
START_TEST(test_analytics_zero_variance)
{
    double r[] = { 0.001, 0.001, 0.001, 0.001 }, b[] = { 0.002, 0.002, 0.002, 0.002 };
    fsr_an_metrics m;
    ck_assert_int_eq(fsr_an_metrics_compute(r, b, 4, 0.02, NULL, &m), 0);
    ck_assert_double_eq(m.stdev, 0.0);
    ck_assert(isnan(m.sharpe));
    ck_assert(isnan(m.skewness));
    ck_assert(isnan(m.excess_kurtosis));
    ck_assert(isnan(m.beta));
    ck_assert(isnan(m.alpha_daily));
    ck_assert(isnan(m.correlation));
    ck_assert(isnan(m.information_ratio));
    ck_assert_double_eq(m.tracking_error, 0.0);
    ck_assert_double_eq(m.var[0].historical, -0.001);
    ck_assert_double_eq_tol(m.total_return, pow(1.001, 4) - 1, 1e-16);
}
END_TEST

/* Sharpe's conventions: excess over the geometric daily rate, not rf/252; n - 1 stdev. */
START_TEST(test_analytics_sharpe_conventions)
{
    double r[] = { 0.01, -0.004, 0.003, 0.007, -0.012, 0.0025 };
    fsr_an_metrics m;
    ck_assert_int_eq(fsr_an_metrics_compute(r, NULL, 6, 0.02, NULL, &m), 0);
    double rf = pow(1.02, 1.0 / 252) - 1, mean = 0, ss = 0;
    for (int i = 0; i < 6; i++)
        mean += (r[i] - rf) / 6;
    for (int i = 0; i < 6; i++)
        ss += (r[i] - rf - mean) * (r[i] - rf - mean);
    double want = mean / sqrt(ss / 5) * sqrt(252);
    ck_assert_double_eq_tol(m.sharpe, want, 1e-12 * fabs(want));
    double alt = (mean + rf - 0.02 / 252) / sqrt(ss / 5) * sqrt(252); /* rf/252 variant */
    ck_assert(fabs(m.sharpe - alt) > 1e-6 * fabs(alt));
    /* rf = 0 changes it; other rates are honoured. */
    fsr_an_metrics m0;
    ck_assert_int_eq(fsr_an_metrics_compute(r, NULL, 6, 0.0, NULL, &m0), 0);
    ck_assert(m0.sharpe > m.sharpe);
    ck_assert_double_eq(fsr_an_rf_daily(0.0), 0.0);
}
END_TEST

/* VaR order statistics at the edges of the quantile rules: n = 20 (n p = 1 exactly) and
 * n = 21 ((n-1) p = 1 exactly) at 95%. */
START_TEST(test_analytics_var_quantile_rules)
{
    double r[21];
    for (int i = 0; i < 21; i++)
        r[i] = (i * 8 % 21 - 10) / 100.0; /* a permutation of -0.10 .. 0.10 */
    fsr_an_var v;
    /* n = 20: sorted x = -0.10, -0.09, ... (one value of the permutation left out). */
    double x[20];
    memcpy(x, r, sizeof x);
    ck_assert_int_eq(fsr_an_var_compute(x, 20, 0.95, NULL, &v), 0);
    double s[20];
    memcpy(s, x, sizeof s);
    for (int i = 0; i < 20; i++)
        for (int j = i + 1; j < 20; j++)
            if (s[j] < s[i]) {
                double t = s[i];
                s[i] = s[j];
                s[j] = t;
            }
    /* h = 19 x 0.05 = 0.95, j = 0 */
    ck_assert_double_eq_tol(v.historical, -(s[0] + 0.95 * (s[1] - s[0])), 1e-16);
    ck_assert_double_eq(v.historical_lower, -s[0]);
    /* ceil(20 x 0.05) - 1 = 0: with p = 1 - 0.95 unsnapped (0.050000000000000044) it
     * would be ceil(1.0000000000000009) - 1 = 1. */
    ck_assert_double_eq(v.historical_inverted_cdf, -s[0]);
    ck_assert_double_eq(v.cvar_historical, -s[0]); /* k = floor(0.95) + 1 = 1 */
    /* n = 21: h = 20 x 0.05 = 1 exactly: j = 1, no interpolation, k = 2. */
    ck_assert_int_eq(fsr_an_var_compute(r, 21, 0.95, NULL, &v), 0);
    ck_assert_double_eq_tol(v.historical, 0.09, 1e-16);
    ck_assert_double_eq_tol(v.historical_lower, 0.09, 1e-16);
    ck_assert_double_eq_tol(v.historical_inverted_cdf, 0.09, 1e-16); /* ceil(1.05) - 1 = 1 */
    ck_assert_double_eq_tol(v.cvar_historical, 0.095, 1e-16);
    /* Gaussian and Cornish-Fisher on a symmetric sample: S = 0, so z_cf = z + (z^3-3z)K/24. */
    double z = fsr_an_norm_ppf(0.05);
    ck_assert_double_eq_tol(z, -1.6448536269514722, 1e-15);
    double mean = 0, ss = 0;
    for (int i = 0; i < 21; i++)
        mean += r[i] / 21;
    for (int i = 0; i < 21; i++)
        ss += (r[i] - mean) * (r[i] - mean);
    double sd = sqrt(ss / 20), m2 = ss / 21, m4 = 0;
    for (int i = 0; i < 21; i++)
        m4 += pow(r[i] - mean, 4) / 21;
    double K = m4 / (m2 * m2) - 3;
    ck_assert_double_eq_tol(v.gaussian, -(mean + z * sd), 1e-15);
    ck_assert_double_eq_tol(v.es_gaussian, -mean + sd * fsr_an_norm_pdf(z) / 0.05, 1e-15);
    ck_assert_double_eq_tol(v.cornish_fisher, -(mean + (z + (z * z * z - 3 * z) * K / 24) * sd),
                            1e-15);
    /* Errors. */
    ck_assert_int_eq(fsr_an_var_compute(r, 21, 1.0, NULL, &v), FSR_AN_E_CONFIDENCE);
    ck_assert_int_eq(fsr_an_var_compute(r, 21, 0.0, NULL, &v), FSR_AN_E_CONFIDENCE);
    ck_assert_int_eq(fsr_an_var_compute(r, 21, NAN, NULL, &v), FSR_AN_E_CONFIDENCE);
    ck_assert_int_eq(fsr_an_var_compute(r, 1, 0.95, NULL, &v), FSR_AN_E_TOO_SHORT);
}
END_TEST

START_TEST(test_analytics_metrics_errors)
{
    double r[] = { 0.01, -0.02, 0.03 }, bad[] = { 0.01, NAN, 0.03 }, loss[] = { 0.01, -1.5, 0 };
    double ruin[] = { 0.01, -1.0, 0.0 };
    fsr_an_metrics m;
    memset(&m, 0x5a, sizeof m);
    fsr_an_metrics before = m;
    ck_assert_int_eq(fsr_an_metrics_compute(r, NULL, 1, 0.02, NULL, &m), FSR_AN_E_TOO_SHORT);
    ck_assert_int_eq(fsr_an_metrics_compute(r, NULL, 0, 0.02, NULL, &m), FSR_AN_E_TOO_SHORT);
    ck_assert_int_eq(fsr_an_metrics_compute(bad, NULL, 3, 0.02, NULL, &m), FSR_AN_E_NONFINITE);
    ck_assert_int_eq(fsr_an_metrics_compute(r, bad, 3, 0.02, NULL, &m), FSR_AN_E_NONFINITE);
    ck_assert_int_eq(fsr_an_metrics_compute(loss, NULL, 3, 0.02, NULL, &m), FSR_AN_E_RETURN);
    ck_assert_int_eq(fsr_an_metrics_compute(r, NULL, 3, -1.0, NULL, &m), FSR_AN_E_ARG);
    ck_assert_int_eq(fsr_an_metrics_compute(r, NULL, 3, NAN, NULL, &m), FSR_AN_E_ARG);
    ck_assert_int_eq(fsr_an_metrics_compute(NULL, NULL, 3, 0.02, NULL, &m), FSR_AN_E_ARG);
    ck_assert(memcmp(&m, &before, sizeof m) == 0); /* untouched on failure */
    /* A return of exactly -100% is allowed: wealth 0, drawdown 1. */
    ck_assert_int_eq(fsr_an_metrics_compute(ruin, NULL, 3, 0.02, NULL, &m), 0);
    ck_assert_double_eq(m.max_drawdown, 1.0);
    ck_assert_double_eq(m.total_return, -1.0);
}
END_TEST

START_TEST(test_analytics_periods)
{
    int32_t days[] = { D(2022, 12, 30), D(2023, 1, 3), D(2023, 6, 30),
                       D(2023, 12, 29), D(2024, 1, 2), D(2024, 3, 28) };
    double r[] = { 0.1, -0.05, 0.02, 0.03, -0.01 };
    fsr_an_period p;
    /* Start before the base date: the base date; end on a holiday: the last close before. */
    ck_assert_int_eq(fsr_an_period_return(days, r, 5, D(2020, 1, 1), D(2023, 12, 31), &p), 0);
    ck_assert_int_eq(p.start_close, days[0]);
    ck_assert_int_eq(p.end_close, days[3]);
    ck_assert_double_eq_tol(p.total_return, 1.1 * 0.95 * 1.02 - 1, 1e-15);
    /* A window with no return in it. */
    ck_assert_int_eq(fsr_an_period_return(days, r, 5, D(2023, 7, 1), D(2023, 7, 31), &p), 0);
    ck_assert_double_eq(p.total_return, 0.0);
    ck_assert_uint_eq(p.start_index, 2);
    ck_assert_uint_eq(p.end_index, 2);
    ck_assert_int_eq(fsr_an_period_return(days, r, 5, D(2020, 1, 1), D(2022, 12, 29), &p),
                     FSR_AN_E_PERIOD);
    ck_assert_int_eq(fsr_an_period_return(days, r, 5, D(2024, 1, 1), D(2023, 1, 1), &p),
                     FSR_AN_E_PERIOD);
    /* Calendar years 2023 and 2024 (2022 has no return); a too-small buffer still counts. */
    fsr_an_period y[3];
    ck_assert_int_eq(fsr_an_year_returns(days, r, 5, NULL, 0), 2);
    ck_assert_int_eq(fsr_an_year_returns(days, r, 5, y, 1), 2);
    ck_assert_int_eq(fsr_an_year_returns(days, r, 5, y, 3), 2);
    ck_assert_int_eq(y[0].start_close, days[0]);
    ck_assert_int_eq(y[0].end_close, days[3]);
    ck_assert_double_eq_tol(y[0].total_return, 1.1 * 0.95 * 1.02 - 1, 1e-15);
    ck_assert_int_eq(y[1].start_close, days[3]);
    ck_assert_int_eq(y[1].end_close, days[5]);
    ck_assert_double_eq_tol(y[1].total_return, 1.03 * 0.99 - 1, 1e-15);
    int32_t bad[] = { 1, 3, 2 };
    ck_assert_int_eq(fsr_an_year_returns(bad, r, 2, y, 3), FSR_AN_E_DATES);
    ck_assert_int_eq(fsr_an_year_returns(days, r, 0, y, 3), FSR_AN_E_EMPTY);
}
END_TEST

START_TEST(test_analytics_covariance_edges)
{
    /* Three series, stride 5 > n = 4; the third is constant. */
    double x[15] = { 0.01, -0.02, 0.03, 0.0,  99, /* padding must be ignored */
                     0.02, -0.01, 0.01, 0.01, 99, 0.005, 0.005, 0.005, 0.005, 99 };
    double cov[9], corr[9], cov2[9], work[12];
    ck_assert_int_eq(fsr_an_cov(x, 3, 4, 5, cov, corr, work), 0);
    ck_assert_int_eq(fsr_an_cov(x, 3, 4, 5, cov2, NULL, NULL), 0);
    ck_assert(memcmp(cov, cov2, sizeof cov) == 0);
    double m0 = 0.005, m1 = 0.0075;
    double c01 = ((0.01 - m0) * (0.02 - m1) + (-0.02 - m0) * (-0.01 - m1) +
                  (0.03 - m0) * (0.01 - m1) + (0.0 - m0) * (0.01 - m1)) /
                 3;
    ck_assert_double_eq_tol(cov[1], c01, 1e-18);
    ck_assert_double_eq(cov[1], cov[3]);
    ck_assert_double_eq(cov[8], 0.0);
    ck_assert_double_eq(corr[0], 1.0);
    ck_assert(isnan(corr[2]) && isnan(corr[6]) && isnan(corr[8]));
    ck_assert_double_eq_tol(corr[1], c01 / sqrt(cov[0] * cov[4]), 1e-15);
    ck_assert_int_eq(fsr_an_cov(x, 3, 4, 3, cov, corr, NULL), FSR_AN_E_BUFFER);
    ck_assert_int_eq(fsr_an_cov(x, 3, 1, 5, cov, corr, NULL), FSR_AN_E_TOO_SHORT);
    ck_assert_int_eq(fsr_an_cov(x, 0, 4, 5, cov, corr, NULL), FSR_AN_E_ARG);
    x[2] = NAN;
    ck_assert_int_eq(fsr_an_cov(x, 3, 4, 5, cov, corr, NULL), FSR_AN_E_NONFINITE);

    /* Covariance risk: contributions sum to 1; all-cash is NaN contributions, zero vol. */
    double c[4] = { 0.0004, 0.0001, 0.0001, 0.0009 }, w[2] = { 0.6, 0.3 }, rc[2], mc[2];
    fsr_an_risk risk;
    ck_assert_int_eq(fsr_an_portfolio_risk(c, 2, w, &risk, rc, mc), 0);
    double v = 0.36 * 0.0004 + 2 * 0.18 * 0.0001 + 0.09 * 0.0009;
    ck_assert_double_eq_tol(risk.variance_daily, v, 1e-18);
    ck_assert_double_eq_tol(risk.volatility, sqrt(v * 252), 1e-15);
    ck_assert_double_eq_tol(rc[0] + rc[1], 1.0, 1e-15);
    ck_assert_double_eq_tol(rc[0], 0.6 * (0.6 * 0.0004 + 0.3 * 0.0001) / v, 1e-15);
    ck_assert_double_eq_tol(mc[1], (0.6 * 0.0001 + 0.3 * 0.0009) / sqrt(v) * sqrt(252), 1e-14);
    ck_assert_double_eq_tol(risk.cash_weight, 0.1, 1e-15);
    double none[2] = { 0, 0 };
    ck_assert_int_eq(fsr_an_portfolio_risk(c, 2, none, &risk, rc, mc), 0);
    ck_assert_double_eq(risk.volatility, 0.0);
    ck_assert(isnan(rc[0]) && isnan(mc[1]));
    double over[2] = { 0.7, 0.4 }, neg[2] = { 1.1, -0.1 };
    ck_assert_int_eq(fsr_an_portfolio_risk(c, 2, over, &risk, rc, mc), FSR_AN_E_WEIGHTS);
    ck_assert_int_eq(fsr_an_portfolio_risk(c, 2, neg, &risk, rc, mc), FSR_AN_E_WEIGHTS);
}
END_TEST

/* buy_and_hold by hand: whole shares, dividends into cash, interest on cash. */
START_TEST(test_analytics_buy_and_hold_by_hand)
{
    /* Two assets, three dates, stride 3. */
    double close[6] = { 30.0, 31.0, 29.0, 70.0, 69.0, 72.0 };
    double div[6] = { 0, 0, 0.5, 0, 1.0, 0 };
    double w[2] = { 0.5, 0.4 }, shares[2], values[3], ret[2];
    fsr_an_buy_and_hold sum;
    ck_assert_int_eq(fsr_an_portfolio_buy_and_hold(close, div, 2, 3, 3, w, 10000.0, 0.02, shares,
                                                   values, ret, &sum),
                     0);
    ck_assert_double_eq(shares[0], 166.0); /* floor(5000 / 30) */
    ck_assert_double_eq(shares[1], 57.0);  /* floor(4000 / 70) */
    double cash = 10000.0 - 166 * 30.0 - 57 * 70.0, g = 1 + fsr_an_rf_daily(0.02);
    ck_assert_double_eq(sum.initial_cash, cash);
    cash = cash * g + 57 * 1.0;
    ck_assert_double_eq_tol(values[1], 166 * 31.0 + 57 * 69.0 + cash, 1e-9);
    cash = cash * g + 166 * 0.5;
    ck_assert_double_eq_tol(values[2], 166 * 29.0 + 57 * 72.0 + cash, 1e-9);
    ck_assert_double_eq_tol(sum.final_cash, cash, 1e-9);
    ck_assert_double_eq_tol(ret[0], values[1] / 10000.0 - 1, 1e-15);
    ck_assert_double_eq(values[0], 10000.0);
    /* daily_rebalanced on the same returns by hand. */
    double rr[6] = { 0.01, -0.02, 0, 0.03, 0.0, 0 }, out[2];
    ck_assert_int_eq(fsr_an_portfolio_rebalanced(rr, 2, 2, 3, w, 0.02, out), 0);
    ck_assert_double_eq_tol(out[0], 0.5 * 0.01 + 0.4 * 0.03 + 0.1 * fsr_an_rf_daily(0.02), 1e-17);
    /* Errors. */
    ck_assert_int_eq(
        fsr_an_portfolio_buy_and_hold(close, div, 2, 3, 3, w, 0.0, 0.02, NULL, NULL, NULL, NULL),
        FSR_AN_E_VALUE);
    double heavy[2] = { 0.8, 0.3 };
    ck_assert_int_eq(fsr_an_portfolio_buy_and_hold(close, div, 2, 3, 3, heavy, 1e4, 0.02, NULL,
                                                   NULL, NULL, NULL),
                     FSR_AN_E_WEIGHTS);
    ck_assert_int_eq(fsr_an_portfolio_rebalanced(rr, 2, 2, 3, heavy, 0.02, out), FSR_AN_E_WEIGHTS);
    ck_assert_int_eq(fsr_an_portfolio_rebalanced(rr, 2, 0, 3, w, 0.02, out), FSR_AN_E_EMPTY);
    close[4] = 0;
    ck_assert_int_eq(
        fsr_an_portfolio_buy_and_hold(close, div, 2, 3, 3, w, 1e4, 0.02, NULL, NULL, NULL, NULL),
        FSR_AN_E_PRICE);
}
END_TEST

START_TEST(test_analytics_twr_rules)
{
    int32_t d[] = { D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 4) };
    double v[] = { 1000.0, 1600.0, 1500.0 };
    /* Deposit 500 and withdrawal 100 on Jan 3; withdrawal 200 on Jan 4. */
    int32_t fd[] = { D(2024, 1, 3), D(2024, 1, 3), D(2024, 1, 4) };
    double f[] = { 500.0, -100.0, -200.0 }, r[2];
    fsr_an_twr out;
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 3, fd, f, 3, FSR_AN_FLOW_START, r, &out), 0);
    ck_assert_double_eq(r[0], 1600.0 / 1400.0 - 1);
    ck_assert_double_eq(r[1], 1500.0 / 1400.0 - 1);
    ck_assert_double_eq_tol(out.twr, (1600.0 / 1400.0) * (1500.0 / 1400.0) - 1, 1e-15);
    ck_assert_int_eq(out.calendar_days, 2);
    ck_assert_double_eq_tol(out.annualized, pow(1 + out.twr, 365.0 / 2) - 1, 1e-9);
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 3, fd, f, 3, FSR_AN_FLOW_END, r, &out), 0);
    ck_assert_double_eq(r[0], (1600.0 - 400.0) / 1000.0 - 1);
    ck_assert_double_eq(r[1], (1500.0 + 200.0) / 1600.0 - 1);
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 3, fd, f, 3, FSR_AN_FLOW_SPLIT, r, &out), 0);
    ck_assert_double_eq(r[0], (1600.0 + 100.0) / (1000.0 + 500.0) - 1);
    ck_assert_double_eq(r[1], (1500.0 + 200.0) / 1600.0 - 1);
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 3, fd, f, 3, FSR_AN_FLOW_DIETZ, r, &out), 0);
    ck_assert_double_eq_tol(out.twr, (1500.0 - 1000.0 - 200.0) / (1000.0 + 0.5 * 400.0), 1e-15);
    /* No flows: all daily timings agree. */
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 3, NULL, NULL, 0, FSR_AN_FLOW_SPLIT, NULL, &out), 0);
    ck_assert_double_eq_tol(out.twr, 0.5, 1e-15);
    /* Errors. */
    int32_t on_base[] = { D(2024, 1, 2) }, off[] = { D(2024, 1, 5) };
    int32_t between[] = { D(2024, 1, 3) + 0 }, unsorted[] = { D(2024, 1, 4), D(2024, 1, 3) };
    double one[] = { 100.0 }, two[] = { 1.0, 1.0 };
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 3, on_base, one, 1, FSR_AN_FLOW_START, r, &out),
                     FSR_AN_E_FLOW_DATE);
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 3, off, one, 1, FSR_AN_FLOW_START, r, &out),
                     FSR_AN_E_FLOW_DATE);
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 3, unsorted, two, 2, FSR_AN_FLOW_START, r, &out),
                     FSR_AN_E_DATES);
    (void)between;
    int32_t gap[] = { D(2024, 1, 2), D(2024, 1, 4), D(2024, 1, 6) };
    int32_t mid[] = { D(2024, 1, 3) };
    ck_assert_int_eq(fsr_an_twr_compute(gap, v, 3, mid, one, 1, FSR_AN_FLOW_START, r, &out),
                     FSR_AN_E_FLOW_DATE);
    /* Modified Dietz takes a flow between valuation dates. */
    ck_assert_int_eq(fsr_an_twr_compute(gap, v, 3, mid, one, 1, FSR_AN_FLOW_DIETZ, r, &out), 0);
    ck_assert_double_eq_tol(out.twr, (1500.0 - 1000.0 - 100.0) / (1000.0 + 0.75 * 100.0), 1e-15);
    /* Withdrawing everything at the start of a day leaves nothing to earn a return on. */
    double all[] = { -1000.0 };
    int32_t d1[] = { D(2024, 1, 3) };
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 3, d1, all, 1, FSR_AN_FLOW_START, r, &out),
                     FSR_AN_E_DENOMINATOR);
    double vz[] = { 0.0, 10.0, 11.0 };
    ck_assert_int_eq(fsr_an_twr_compute(d, vz, 3, NULL, NULL, 0, FSR_AN_FLOW_END, r, &out),
                     FSR_AN_E_DENOMINATOR);
    double vn[] = { 10.0, -1.0, 11.0 };
    ck_assert_int_eq(fsr_an_twr_compute(d, vn, 3, NULL, NULL, 0, FSR_AN_FLOW_END, r, &out),
                     FSR_AN_E_VALUE);
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 1, NULL, NULL, 0, FSR_AN_FLOW_END, r, &out),
                     FSR_AN_E_TOO_SHORT);
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 0, NULL, NULL, 0, FSR_AN_FLOW_END, r, &out),
                     FSR_AN_E_EMPTY);
    ck_assert_int_eq(fsr_an_twr_compute(d, v, 3, NULL, NULL, 0, (fsr_an_flow_timing)9, r, &out),
                     FSR_AN_E_ARG);
    /* Sub-periods. */
    double before[] = { 100.0, 110.0, 60.0 }, fl[] = { 10.0, -60.0 }, twr;
    ck_assert_int_eq(fsr_an_twr_subperiods(before, fl, 2, &twr), 0);
    ck_assert_double_eq_tol(twr, 110.0 / 110.0 * 60.0 / 50.0 - 1, 1e-15);
    double fl2[] = { 10.0, -110.0 };
    ck_assert_int_eq(fsr_an_twr_subperiods(before, fl2, 2, &twr), FSR_AN_E_DENOMINATOR);
    ck_assert_int_eq(fsr_an_twr_subperiods(before, fl, 0, &twr), FSR_AN_E_TOO_SHORT);
}
END_TEST

START_TEST(test_analytics_xirr_cases)
{
    /* Microsoft's documented example: 0.373362535, rounded to 9 decimals (the exact root
     * is 0.37336253352 and Excel itself stops at 1e-8). */
    int32_t d[] = { D(2008, 1, 1), D(2008, 3, 1), D(2008, 10, 30), D(2009, 2, 15), D(2009, 4, 1) };
    double f[] = { -10000, 2750, 4250, 3250, 2750 }, rate;
    ck_assert_int_eq(fsr_an_xirr(d, f, 5, &rate), 0);
    ck_assert_double_eq_tol(rate, 0.373362535, 2e-9);
    /* One year, +10%: exactly 0.1 up to the solver's tolerance. */
    int32_t y[] = { D(2023, 1, 1), D(2024, 1, 1) };
    double g[] = { -100.0, 110.0 };
    ck_assert_int_eq(fsr_an_xirr(y, g, 2, &rate), 0);
    ck_assert_double_eq_tol(rate, 0.1, 1e-14);
    /* Zero rate exactly: the bracket of width zero at a grid point or the solver. */
    double z[] = { -100.0, 100.0 };
    ck_assert_int_eq(fsr_an_xirr(y, z, 2, &rate), 0);
    ck_assert_double_eq_tol(rate, 0.0, 1e-15);
    /* Two roots (flows -100, +230, -132 a year apart: 1/(1+r) = 1/1.1 or 1/1.2): the one
     * nearer 0 is reported. */
    int32_t t3[] = { D(2021, 1, 1), D(2022, 1, 1), D(2023, 1, 1) };
    double f3[] = { -100.0, 230.0, -132.0 };
    ck_assert_int_eq(fsr_an_xirr(t3, f3, 3, &rate), 0);
    ck_assert_double_eq_tol(rate, 0.1, 1e-12);
    /* 200 years: the NPV overflows near -99% (100^200), those grid points are skipped. */
    int32_t longd[] = { D(1900, 1, 1), D(2100, 1, 1) };
    double longf[] = { -100.0, 150.0 };
    ck_assert_int_eq(fsr_an_xirr(longd, longf, 2, &rate), 0);
    ck_assert_double_eq_tol(rate, pow(1.5, 365.0 / (longd[1] - longd[0])) - 1, 1e-15);
    /* Flows in any order, several on one date. */
    int32_t od[] = { D(2024, 1, 1), D(2023, 1, 1), D(2023, 1, 1) };
    double of[] = { 110.0, -60.0, -40.0 };
    ck_assert_int_eq(fsr_an_xirr(od, of, 3, &rate), 0);
    ck_assert_double_eq_tol(rate, 0.1, 1e-14);
    /* Errors. */
    ck_assert_int_eq(fsr_an_xirr(y, g, 1, &rate), FSR_AN_E_TOO_SHORT);
    double pos[] = { 100.0, 110.0 }, zero[] = { 0.0, 0.0 }, nan_[] = { -1.0, NAN };
    ck_assert_int_eq(fsr_an_xirr(y, pos, 2, &rate), FSR_AN_E_NO_SIGN_CHANGE);
    ck_assert_int_eq(fsr_an_xirr(y, zero, 2, &rate), FSR_AN_E_NO_SIGN_CHANGE);
    ck_assert_int_eq(fsr_an_xirr(y, nan_, 2, &rate), FSR_AN_E_NONFINITE);
    /* Same date: the NPV does not depend on the rate. */
    int32_t same[] = { D(2023, 1, 1), D(2023, 1, 1) };
    ck_assert_int_eq(fsr_an_xirr(same, g, 2, &rate), FSR_AN_E_NO_ROOT);
    ck_assert_str_eq(fsr_an_errname(FSR_AN_E_NO_ROOT), "NO_ROOT");
}
END_TEST

/* BF_SIMPLE, the worked example of ANALYTICS.md, to the published figures. */
START_TEST(test_analytics_bf_simple)
{
    double wp[] = { 0.70, 0.30 }, wb[] = { 0.60, 0.40 }, rp[] = { 0.125, 0.031 };
    double rb[] = { 0.100, 0.035 };
    fsr_an_attr_class c[2];
    fsr_an_attr_total t;
    ck_assert_int_eq(fsr_an_attribution(wp, wb, rp, rb, 2, FSR_AN_BRINSON_FACHLER, c, &t), 0);
    ck_assert_double_eq_tol(t.portfolio_return, 0.0968, 1e-15);
    ck_assert_double_eq_tol(t.benchmark_return, 0.0740, 1e-15);
    ck_assert_double_eq_tol(t.active_return, 0.0228, 1e-15);
    ck_assert_double_eq_tol(c[0].allocation, 0.0026, 1e-15);
    ck_assert_double_eq_tol(c[1].allocation, 0.0039, 1e-15);
    ck_assert_double_eq_tol(c[0].selection, 0.0150, 1e-15);
    ck_assert_double_eq_tol(c[1].selection, -0.0016, 1e-15);
    ck_assert_double_eq_tol(c[0].interaction, 0.0025, 1e-15);
    ck_assert_double_eq_tol(c[1].interaction, 0.0004, 1e-15);
    ck_assert_double_eq_tol(t.allocation + t.selection + t.interaction, 0.0228, 1e-15);
    /* BHB: same totals and selection/interaction, different per-class allocation. */
    fsr_an_attr_class h[2];
    fsr_an_attr_total ht;
    ck_assert_int_eq(fsr_an_attribution(wp, wb, rp, rb, 2, FSR_AN_BHB, h, &ht), 0);
    ck_assert_double_eq_tol(h[0].allocation, 0.1 * 0.100, 1e-15);
    ck_assert_double_eq_tol(h[1].allocation, -0.1 * 0.035, 1e-15);
    ck_assert_double_eq_tol(ht.allocation, t.allocation, 1e-15);
    ck_assert_double_eq(h[0].selection, c[0].selection);
    /* Weights that do not sum to 1 are refused. */
    double wbad[] = { 0.7, 0.2 };
    ck_assert_int_eq(fsr_an_attribution(wbad, wb, rp, rb, 2, FSR_AN_BHB, h, &ht), FSR_AN_E_WEIGHTS);
    ck_assert_int_eq(fsr_an_attribution(wp, wb, rp, rb, 0, FSR_AN_BHB, h, &ht), FSR_AN_E_ARG);
    ck_assert_int_eq(fsr_an_attribution(wp, wb, rp, rb, 2, (fsr_an_attr_model)5, h, &ht),
                     FSR_AN_E_ARG);
}
END_TEST

START_TEST(test_analytics_rebalance_rules)
{
    /* V = 100 x 50 + 10 x 200 + 3000 = 10000; targets 40% / 40%. */
    fsr_an_rebal_position p[] = { { 100, 50.0, 1, 0.40 }, { 10, 200.0, 5, 0.40 } };
    fsr_an_rebal_result r[2];
    fsr_an_rebal_total t;
    ck_assert_int_eq(fsr_an_rebalance(p, 2, 3000.0, 0.0, FSR_AN_REBAL_FULL, FSR_AN_BAND_ABS,
                                      FSR_AN_BAND_REL, r, &t),
                     0);
    ck_assert_double_eq(t.total_value, 10000.0);
    ck_assert_double_eq(r[0].current_weight, 0.5);
    ck_assert_double_eq_tol(r[0].drift_abs, 0.1, 1e-15);
    ck_assert_double_eq_tol(r[0].drift_rel, 0.25, 1e-15);
    ck_assert(r[0].breach); /* 10 points > 5 */
    ck_assert_double_eq(r[0].target_quantity, 80.0);
    ck_assert_double_eq(r[0].trade, -20.0);
    ck_assert_double_eq(r[1].target_quantity, 20.0); /* floor(4000 / 1000) x 5 */
    ck_assert_double_eq(r[1].trade, 10.0);
    ck_assert_double_eq(r[1].notional, 2000.0);
    ck_assert_double_eq(t.post_trade_cash, 3000.0 + 1000.0 - 2000.0);
    ck_assert_uint_eq(t.breaches, 2); /* 20% -> 40%: -20 points */
    /* Whole lots round down: 4100 / 1000 x 5 -> floor(0.82) = 0 lots... of 5 at 200. */
    fsr_an_rebal_position q[] = { { 0, 200.0, 25, 0.41 } };
    ck_assert_int_eq(fsr_an_rebalance(q, 1, 10000.0, 0.0, FSR_AN_REBAL_FULL, 0.05, 0.25, r, &t), 0);
    ck_assert_double_eq(r[0].target_quantity, 0.0); /* floor(4100 / 5000) lots */
    ck_assert(r[0].breach);
    ck_assert(isinf(r[0].drift_rel) == 0 && r[0].drift_rel == -1.0);
    /* Target 0 with a holding: infinite relative drift, a breach; FULL sells it all. */
    fsr_an_rebal_position z[] = { { 10, 10.0, 1, 0.0 }, { 0, 10.0, 1, 0.0 } };
    ck_assert_int_eq(fsr_an_rebalance(z, 2, 900.0, 0.0, FSR_AN_REBAL_BAND, 0.5, 0.5, r, &t), 0);
    ck_assert(isinf(r[0].drift_rel) && r[0].drift_rel > 0);
    ck_assert(r[0].breach);
    ck_assert_double_eq(r[0].trade, -10.0);
    ck_assert(isnan(r[1].drift_rel));
    ck_assert(!r[1].breach);
    ck_assert_double_eq(t.post_trade_cash, 1000.0);
    /* cash_to_invest counts in V before the weights are measured. */
    fsr_an_rebal_position c[] = { { 10, 100.0, 1, 0.5 } };
    ck_assert_int_eq(fsr_an_rebalance(c, 1, 0.0, 1000.0, FSR_AN_REBAL_FULL, 0.05, 0.25, r, &t), 0);
    ck_assert_double_eq(r[0].current_weight, 0.5);
    ck_assert(!r[0].breach);
    ck_assert_double_eq(r[0].trade, 0.0);
    /* Errors. */
    fsr_an_rebal_position bad[] = { { -1, 10.0, 1, 0.1 } }, lot0[] = { { 1, 10.0, 0, 0.1 } };
    fsr_an_rebal_position heavy[] = { { 1, 10.0, 1, 0.7 }, { 1, 10.0, 1, 0.4 } };
    ck_assert_int_eq(fsr_an_rebalance(bad, 1, 100, 0, FSR_AN_REBAL_FULL, 0.05, 0.25, r, &t),
                     FSR_AN_E_VALUE);
    ck_assert_int_eq(fsr_an_rebalance(lot0, 1, 100, 0, FSR_AN_REBAL_FULL, 0.05, 0.25, r, &t),
                     FSR_AN_E_VALUE);
    ck_assert_int_eq(fsr_an_rebalance(heavy, 2, 100, 0, FSR_AN_REBAL_FULL, 0.05, 0.25, r, &t),
                     FSR_AN_E_WEIGHTS);
    ck_assert_int_eq(fsr_an_rebalance(c, 1, -1000.0, 0, FSR_AN_REBAL_FULL, 0.05, 0.25, r, &t),
                     FSR_AN_E_VALUE);
    ck_assert_int_eq(fsr_an_rebalance(c, 1, 0, 0, (fsr_an_rebal_mode)3, 0.05, 0.25, r, &t),
                     FSR_AN_E_ARG);
    /* No positions: all cash. */
    ck_assert_int_eq(fsr_an_rebalance(NULL, 0, 500.0, 0, FSR_AN_REBAL_FULL, 0.05, 0.25, NULL, &t),
                     0);
    ck_assert_double_eq(t.post_cash_weight, 1.0);
}
END_TEST

/* The internal sort (VaR) against a plain selection sort on awkward inputs. */
START_TEST(test_analytics_sort_order_statistics)
{
    /* VaR through fsr_an_var_compute exposes x(j): check many sizes with duplicates. */
    unsigned seed = 12345;
    for (size_t n = 2; n < 400; n += 7) {
        double *r = malloc(n * sizeof(double)), *s = malloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            r[i] = (double)((seed >> 16) % 50) / 1000.0 - 0.025; /* many ties */
            if (n % 3 == 0)
                r[i] = (double)i / 1000.0; /* already sorted */
            if (n % 5 == 0)
                r[i] = -(double)i / 1000.0; /* reversed */
        }
        memcpy(s, r, n * sizeof(double));
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (s[j] < s[i]) {
                    double t = s[i];
                    s[i] = s[j];
                    s[j] = t;
                }
        fsr_an_var v;
        double *work = malloc(n * sizeof(double));
        ck_assert_int_eq(fsr_an_var_compute(r, n, 0.99, work, &v), 0);
        for (size_t i = 0; i < n; i++)
            ck_assert_double_eq(work[i], s[i]); /* the work buffer holds the sorted copy */
        free(work);
        free(r);
        free(s);
    }
}
END_TEST

START_TEST(test_analytics_error_names)
{
    int codes[] = { FSR_AN_E_ARG,         FSR_AN_E_EMPTY,          FSR_AN_E_TOO_SHORT,
                    FSR_AN_E_DATES,       FSR_AN_E_PRICE,          FSR_AN_E_DIVIDEND,
                    FSR_AN_E_NONFINITE,   FSR_AN_E_RETURN,         FSR_AN_E_NO_OVERLAP,
                    FSR_AN_E_WEIGHTS,     FSR_AN_E_CONFIDENCE,     FSR_AN_E_FLOW_DATE,
                    FSR_AN_E_DENOMINATOR, FSR_AN_E_NO_SIGN_CHANGE, FSR_AN_E_NO_ROOT,
                    FSR_AN_E_PERIOD,      FSR_AN_E_VALUE,          FSR_AN_E_BUFFER };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        ck_assert(fsr_an_is_error(codes[i]));
        ck_assert_str_ne(fsr_an_errname(codes[i]), "UNKNOWN");
        ck_assert_str_ne(fsr_an_strerror(codes[i]), "unknown analytics error");
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(fsr_an_errname(codes[i]), fsr_an_errname(codes[j]));
    }
    ck_assert(!fsr_an_is_error(0));
    ck_assert(!fsr_an_is_error(-ENOMEM));
    ck_assert(!fsr_an_is_error(-1001));
    ck_assert_str_eq(fsr_an_errname(-ENOMEM), "NOMEM");
    ck_assert_str_eq(fsr_an_errname(-1), "UNKNOWN");
    ck_assert_str_eq(fsr_an_errname(FSR_AN_E_TOO_SHORT), "TOO_SHORT");
    ck_assert_str_eq(fsr_an_strerror(12345), "unknown analytics error");
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Suite
 */

static Suite *analytics_suite(void)
{
    Suite *s = suite_create("analytics");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_analytics_reference_series, 0,
                        (int)json_array_size(json_object_get(g_ref, "results")));
    tcase_add_test(tc, test_analytics_reference_portfolio);
    tcase_add_test(tc, test_analytics_reference_twr);
    tcase_add_test(tc, test_analytics_reference_xirr);
    tcase_add_test(tc, test_analytics_reference_attribution);
    tcase_add_test(tc, test_analytics_reference_rebalance);
    tcase_add_test(tc, test_analytics_reference_norm_ppf);
    tcase_add_test(tc, test_analytics_reference_civil);
    suite_add_tcase(s, tc);

    struct {
        const char *name;
        const TTest *fn;
    } units[] = {
        { "norm_ppf_accuracy", test_analytics_norm_ppf_accuracy },
        { "series_dividend_rule", test_analytics_series_dividend_rule },
        { "align_intersection", test_analytics_align_intersection },
        { "series_errors", test_analytics_series_errors },
        { "drawdown_positions", test_analytics_drawdown_positions },
        { "zero_variance", test_analytics_zero_variance },
        { "sharpe_conventions", test_analytics_sharpe_conventions },
        { "var_quantile_rules", test_analytics_var_quantile_rules },
        { "metrics_errors", test_analytics_metrics_errors },
        { "periods", test_analytics_periods },
        { "covariance_edges", test_analytics_covariance_edges },
        { "buy_and_hold_by_hand", test_analytics_buy_and_hold_by_hand },
        { "twr_rules", test_analytics_twr_rules },
        { "xirr_cases", test_analytics_xirr_cases },
        { "bf_simple", test_analytics_bf_simple },
        { "rebalance_rules", test_analytics_rebalance_rules },
        { "sort_order_statistics", test_analytics_sort_order_statistics },
        { "error_names", test_analytics_error_names },
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        TCase *u = tcase_create(units[i].name);
        tcase_add_test(u, units[i].fn);
        suite_add_tcase(s, u);
    }
    return s;
}

int main(void)
{
    const char *path = getenv("FSR_ANALYTICS_REF");
    if (!path)
        path = "test/analytics_ref/reference.json";
    json_error_t err;
    g_ref = json_load_file(path, 0, &err);
    if (!g_ref) {
        fprintf(stderr, "analytics_test: cannot load %s: %s (line %d)\n", path, err.text, err.line);
        return 1;
    }
    SRunner *sr = srunner_create(analytics_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    json_decref(g_ref);
    return failed == 0 ? 0 : 1;
}
