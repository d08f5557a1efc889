/* SPDX-License-Identifier: MIT */
/*
 * Analytics: the stateless EquityAnalyticsService (SeriesAnalytics, Covariance) and the
 * metrics builder GetAnalytics shares with it (eq_metrics_dated()), so that stored and
 * inline series go through exactly the same code.  The numbers come from the pure library
 * (fsr/analytics.h); its input errors become INVALID_ARGUMENT naming the request field.
 */
#include "equity.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fsr/analytics.h"
#include "fsr/validate.h"

#include "equity_v1.fsr.h"

#define EQ_RF_DEFAULT 0.02

/* ---- helpers ------------------------------------------------------------------------ */

/* "YYYY-MM-DD" of day serial |day| in the call's arena. */
static char *day_text(fsr_call *call, int32_t day)
{
    int y, m, d;
    fsr_an_day_to_civil(day, &y, &m, &d);
    return fsr_call_printf(call, "%04d-%02d-%02d", y, m, d);
}

int eq_day_parse(const char *s, int32_t *day)
{
    int y, m, d;
    if (fsr_date_parse(s, &y, &m, &d) != 0)
        return -1;
    *day = fsr_an_day_from_civil(y, m, d);
    return 0;
}

/* Finishes |call| with INVALID_ARGUMENT naming |field| for library error |err|. */
static void fail_an(fsr_call *call, const char *field, int err)
{
    if (fsr_an_is_error(err))
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "%s", fsr_an_strerror(err));
    else
        fsr_call_fail_err(call, err, "analytics");
}

int eq_basis_resolve(fsr_call *call, int basis, fsr_an_basis *out)
{
    switch (basis) {
    case COMMON__V1__BASIS__VALUE__BASIS_UNSPECIFIED:
    case COMMON__V1__BASIS__VALUE__TOTAL:
        *out = FSR_AN_TOTAL;
        return 0;
    case COMMON__V1__BASIS__VALUE__PRICE:
        *out = FSR_AN_PRICE;
        return 0;
    default:
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "basis", "must be TOTAL or PRICE");
        return -1;
    }
}

int eq_rf_resolve(fsr_call *call, const Google__Protobuf__DoubleValue *v, double *out)
{
    double rf = v != NULL ? v->value : EQ_RF_DEFAULT;
    if (!isfinite(rf) || rf <= -1.0 || rf > 1.0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "riskFreeRate",
                            "must be a fraction above -1 and at most 1");
        return -1;
    }
    *out = rf;
    return 0;
}

/*
 * Reads |n| price points into a series in the call's arena; on a bad date finishes |call|
 * naming "<field>[i].date" and returns -1.
 */
static int series_from_points(fsr_call *call, const char *field, Common__V1__PricePoint **pts,
                              size_t n, const char *div_field, Common__V1__DividendPoint **divs,
                              size_t n_div, fsr_an_series *s)
{
    int32_t *days = fsr_call_alloc(call, sizeof(*days) * (n + 1));
    double *close = fsr_call_alloc(call, sizeof(*close) * (n + 1));
    for (size_t i = 0; i < n; i++) {
        if (eq_day_parse(pts[i]->date, &days[i]) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT,
                                fsr_call_printf(call, "%s[%zu].date", field, i),
                                "must be a date \"YYYY-MM-DD\"");
            return -1;
        }
        close[i] = pts[i]->close;
    }
    int32_t *ddays = fsr_call_alloc(call, sizeof(*ddays) * (n_div + 1));
    double *amount = fsr_call_alloc(call, sizeof(*amount) * (n_div + 1));
    for (size_t i = 0; i < n_div; i++) {
        if (eq_day_parse(divs[i]->ex_date, &ddays[i]) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT,
                                fsr_call_printf(call, "%s[%zu].exDate", div_field, i),
                                "must be a date \"YYYY-MM-DD\"");
            return -1;
        }
        amount[i] = divs[i]->amount;
    }
    s->days = days;
    s->close = close;
    s->n = n;
    s->div_days = ddays;
    s->div_amount = amount;
    s->n_div = n_div;
    return 0;
}

/* Checks |s|; on error finishes |call| naming |f_prices| or |f_div|. */
static int check_series(fsr_call *call, const fsr_an_series *s, const char *f_prices,
                        const char *f_div)
{
    int rv = fsr_an_series_check(s);
    if (rv == 0)
        return 0;
    fail_an(call, rv == FSR_AN_E_DIVIDEND ? f_div : f_prices, rv);
    return -1;
}

static Common__V1__VarEstimate *var_msg(fsr_call *call, const fsr_an_var *v)
{
    Common__V1__VarEstimate *e = fsr_call_alloc(call, sizeof(*e));
    common__v1__var_estimate__init(e);
    e->confidence = v->confidence;
    e->historical = v->historical;
    e->cvar_historical = v->cvar_historical;
    e->gaussian = v->gaussian;
    e->es_gaussian = v->es_gaussian;
    e->cornish_fisher = v->cornish_fisher;
    e->historical_lower = v->historical_lower;
    e->historical_inverted_cdf = v->historical_inverted_cdf;
    return e;
}

/* The metrics message of |m|; |days| (n + 1 dates) may be NULL for undated returns. */
static Common__V1__SeriesMetrics *metrics_msg(fsr_call *call, const fsr_an_metrics *m,
                                              const int32_t *days, fsr_an_basis basis, double rf)
{
    Common__V1__SeriesMetrics *o = fsr_call_alloc(call, sizeof(*o));
    common__v1__series_metrics__init(o);
    if (days != NULL) {
        o->start_date = day_text(call, days[0]);
        o->end_date = day_text(call, days[m->n]);
        if (m->max_drawdown_peak != FSR_AN_NONE)
            o->max_drawdown_peak_date = day_text(call, days[m->max_drawdown_peak]);
        if (m->max_drawdown_trough != FSR_AN_NONE)
            o->max_drawdown_trough_date = day_text(call, days[m->max_drawdown_trough]);
        if (m->max_drawdown_recovery != FSR_AN_NONE)
            o->max_drawdown_recovery_date = day_text(call, days[m->max_drawdown_recovery]);
    }
    o->observations = (int32_t)m->n;
    o->basis =
        basis == FSR_AN_PRICE ? COMMON__V1__BASIS__VALUE__PRICE : COMMON__V1__BASIS__VALUE__TOTAL;
    o->risk_free_rate = rf;
    o->total_return = m->total_return;
    o->annualized_return = m->annualized_return;
    o->annualized_return_arith = m->annualized_return_arith;
    o->annualized_volatility = m->annualized_volatility;
    o->sharpe = m->sharpe;
    o->downside_deviation = m->downside_deviation;
    o->sortino = m->sortino;
    o->max_drawdown = m->max_drawdown;
    o->calmar = m->calmar;
    o->skewness = m->skewness;
    o->excess_kurtosis = m->excess_kurtosis;
    o->has_benchmark = m->has_benchmark;
    if (m->has_benchmark) {
        o->beta = m->beta;
        o->alpha_daily = m->alpha_daily;
        o->alpha_annualized = m->alpha_annualized;
        o->correlation = m->correlation;
        o->tracking_error = m->tracking_error;
        o->information_ratio = m->information_ratio;
    }
    o->var = fsr_call_alloc(call, sizeof(*o->var) * FSR_AN_VAR_LEVELS);
    for (size_t i = 0; i < FSR_AN_VAR_LEVELS; i++)
        o->var[i] = var_msg(call, &m->var[i]);
    o->n_var = FSR_AN_VAR_LEVELS;
    return o;
}

static Common__V1__PeriodReturn *period_msg(fsr_call *call, const char *label,
                                            const fsr_an_period *p)
{
    Common__V1__PeriodReturn *pr = fsr_call_alloc(call, sizeof(*pr));
    common__v1__period_return__init(pr);
    pr->label = fsr_arena_strdup(fsr_call_arena(call), label);
    pr->start_close = day_text(call, p->start_close);
    pr->end_close = day_text(call, p->end_close);
    pr->total_return = p->total_return;
    return pr;
}

/* Calendar years, MAX and the requested |periods| into o->period_returns; -1 on failure. */
static int add_periods(fsr_call *call, Common__V1__SeriesMetrics *o, const int32_t *days,
                       const double *r, size_t n, Common__V1__Period **periods, size_t n_periods)
{
    int years = fsr_an_year_returns(days, r, n, NULL, 0);
    if (years < 0) {
        fail_an(call, "prices", years);
        return -1;
    }
    fsr_an_period *yr = fsr_call_alloc(call, sizeof(*yr) * ((size_t)years + 1));
    years = fsr_an_year_returns(days, r, n, yr, (size_t)years);
    if (years < 0) {
        fail_an(call, "prices", years);
        return -1;
    }
    size_t cap = (size_t)years + 1 + n_periods;
    o->period_returns = fsr_call_alloc(call, sizeof(*o->period_returns) * cap);
    size_t k = 0;
    for (int i = 0; i < years; i++) {
        int y;
        fsr_an_day_to_civil(yr[i].end_close, &y, NULL, NULL);
        o->period_returns[k++] = period_msg(call, fsr_call_printf(call, "%04d", y), &yr[i]);
    }
    fsr_an_period p;
    int rv = fsr_an_period_return(days, r, n, days[0], days[n], &p);
    if (rv != 0) {
        fail_an(call, "prices", rv);
        return -1;
    }
    o->period_returns[k++] = period_msg(call, "MAX", &p);
    for (size_t i = 0; i < n_periods; i++) {
        int32_t a, b;
        if (eq_day_parse(periods[i]->start_close, &a) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT,
                                fsr_call_printf(call, "periods[%zu].startClose", i),
                                "must be a date \"YYYY-MM-DD\"");
            return -1;
        }
        if (eq_day_parse(periods[i]->end_close, &b) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT,
                                fsr_call_printf(call, "periods[%zu].endClose", i),
                                "must be a date \"YYYY-MM-DD\"");
            return -1;
        }
        rv = fsr_an_period_return(days, r, n, a, b, &p);
        if (rv != 0) {
            fail_an(call, fsr_call_printf(call, "periods[%zu]", i), rv);
            return -1;
        }
        o->period_returns[k++] = period_msg(call, periods[i]->label, &p);
    }
    o->n_period_returns = k;
    return 0;
}

Common__V1__SeriesMetrics *eq_metrics_dated(fsr_call *call, const fsr_an_series *s,
                                            const fsr_an_series *bench, fsr_an_basis basis,
                                            double rf, Common__V1__Period **periods,
                                            size_t n_periods, const eq_an_fields *f)
{
    if (check_series(call, s, f->prices, f->dividends) != 0)
        return NULL;
    if (bench != NULL && check_series(call, bench, f->bench_prices, f->bench_dividends) != 0)
        return NULL;
    fsr_an_series both[2] = { *s };
    size_t k = 1, ld = s->n;
    if (bench != NULL) {
        both[1] = *bench;
        k = 2;
        if (bench->n < ld)
            ld = bench->n;
    }
    int32_t *days = fsr_call_alloc(call, sizeof(*days) * ld);
    double *ret = fsr_call_alloc(call, sizeof(*ret) * ld * k);
    size_t m = 0;
    int rv = fsr_an_align(both, k, basis, days, NULL, NULL, ret, ld, &m);
    if (rv != 0) {
        fail_an(call, rv == FSR_AN_E_NO_OVERLAP ? f->overlap : f->prices, rv);
        return NULL;
    }
    fsr_an_metrics met;
    rv = fsr_an_metrics_compute(ret, bench != NULL ? ret + ld : NULL, m - 1, rf, NULL, &met);
    if (rv != 0) {
        fail_an(call, f->prices, rv);
        return NULL;
    }
    Common__V1__SeriesMetrics *o = metrics_msg(call, &met, days, basis, rf);
    if (add_periods(call, o, days, ret, m - 1, periods, n_periods) != 0)
        return NULL;
    return o;
}

/* ---- SeriesAnalytics ---------------------------------------------------------------- */

void eq_series_analytics(fsr_call *call, const Equity__V1__SeriesAnalyticsRequest *req)
{
    fsr_an_basis basis;
    double rf;
    if (eq_basis_resolve(call, req->basis, &basis) != 0 ||
        eq_rf_resolve(call, req->risk_free_rate, &rf) != 0)
        return;
    const Equity__V1__SeriesInput *b = req->benchmark;

    if (req->n_prices > 0) {
        if (req->n_returns > 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "returns",
                                "give either prices or returns, not both");
            return;
        }
        fsr_an_series s, bs;
        if (series_from_points(call, "prices", req->prices, req->n_prices, "dividends",
                               req->dividends, req->n_dividends, &s) != 0)
            return;
        bool has_b = b != NULL && (b->n_prices > 0 || b->n_returns > 0);
        if (has_b) {
            if (b->n_prices == 0) {
                fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "benchmark.prices",
                                    "is required (dated) when the series is given as prices");
                return;
            }
            if (series_from_points(call, "benchmark.prices", b->prices, b->n_prices,
                                   "benchmark.dividends", b->dividends, b->n_dividends, &bs) != 0)
                return;
        }
        static const eq_an_fields fields = { "prices", "dividends", "benchmark.prices",
                                             "benchmark.dividends", "benchmark.prices" };
        Common__V1__SeriesMetrics *o = eq_metrics_dated(call, &s, has_b ? &bs : NULL, basis, rf,
                                                        req->periods, req->n_periods, &fields);
        if (o != NULL)
            equity_v1_equity_analytics_service_series_analytics_reply(call, o);
        return;
    }

    /* Plain, undated returns. */
    if (req->n_returns == 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "prices", "give prices or returns");
        return;
    }
    if (req->n_dividends > 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "dividends",
                            "need dated prices, not returns");
        return;
    }
    if (req->n_periods > 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "periods",
                            "need dated prices, not returns");
        return;
    }
    const double *bret = NULL;
    if (b != NULL && (b->n_prices > 0 || b->n_returns > 0)) {
        if (b->n_returns != req->n_returns) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "benchmark.returns",
                                "must hold as many returns as returns (aligned by position)");
            return;
        }
        bret = b->returns;
    }
    fsr_an_metrics met;
    int rv = fsr_an_metrics_compute(req->returns, bret, req->n_returns, rf, NULL, &met);
    if (rv != 0) {
        fail_an(call, "returns", rv);
        return;
    }
    equity_v1_equity_analytics_service_series_analytics_reply(
        call, metrics_msg(call, &met, NULL, basis, rf));
}

/* ---- Covariance --------------------------------------------------------------------- */

static Common__V1__MatrixRow **matrix_msg(fsr_call *call, const double *x, size_t k)
{
    Common__V1__MatrixRow **rows = fsr_call_alloc(call, sizeof(*rows) * k);
    for (size_t i = 0; i < k; i++) {
        rows[i] = fsr_call_alloc(call, sizeof(*rows[i]));
        common__v1__matrix_row__init(rows[i]);
        rows[i]->values = fsr_call_alloc(call, sizeof(double) * k);
        memcpy(rows[i]->values, x + i * k, sizeof(double) * k);
        rows[i]->n_values = k;
    }
    return rows;
}

/*
 * The covariance result of |k| aligned series of |n| returns (series j at x + j * ld), with
 * the portfolio risk of |weights| when |n_weights| > 0 (the caller checked n_weights == k).
 * The ids are left for the caller to fill (o->ids has room for k).  On an input error
 * finishes |call| naming |f_series| or |f_weights| and returns NULL.
 */
static Common__V1__CovarianceResult *cov_result(fsr_call *call, const double *x, size_t k, size_t n,
                                                size_t ld, double *weights, size_t n_weights,
                                                const char *f_series, const char *f_weights)
{
    Common__V1__CovarianceResult *o = fsr_call_alloc(call, sizeof(*o));
    common__v1__covariance_result__init(o);
    o->ids = fsr_call_alloc(call, sizeof(*o->ids) * k);
    o->n_ids = k;
    double *cov = fsr_call_alloc(call, sizeof(double) * k * k);
    double *corr = fsr_call_alloc(call, sizeof(double) * k * k);
    int rv = fsr_an_cov(x, k, n, ld, cov, corr, NULL);
    if (rv != 0) {
        fail_an(call, f_series, rv);
        return NULL;
    }
    o->observations = (int32_t)n;
    o->covariance = matrix_msg(call, cov, k);
    o->n_covariance = k;
    o->correlation = matrix_msg(call, corr, k);
    o->n_correlation = k;
    o->volatilities = fsr_call_alloc(call, sizeof(double) * k);
    o->n_volatilities = k;
    for (size_t i = 0; i < k; i++)
        o->volatilities[i] = sqrt(cov[i * k + i] * 252.0);
    if (n_weights > 0) {
        fsr_an_risk risk;
        double *rc = fsr_call_alloc(call, sizeof(double) * k);
        double *mc = fsr_call_alloc(call, sizeof(double) * k);
        rv = fsr_an_portfolio_risk(cov, k, weights, &risk, rc, mc);
        if (rv != 0) {
            fail_an(call, f_weights, rv);
            return NULL;
        }
        o->portfolio_volatility = risk.volatility;
        o->risk_contributions = rc;
        o->n_risk_contributions = k;
        o->marginal_contributions = mc;
        o->n_marginal_contributions = k;
        o->weights = weights;
        o->n_weights = k;
    }
    return o;
}

Common__V1__CovarianceResult *eq_covariance_dated(fsr_call *call, const fsr_an_series *s, size_t k,
                                                  fsr_an_basis basis, size_t last, double *weights,
                                                  size_t n_weights, const char *f_series,
                                                  const char *f_weights)
{
    size_t ld = SIZE_MAX;
    for (size_t i = 0; i < k; i++) {
        if (s[i].n < ld)
            ld = s[i].n;
    }
    if (ld < 2)
        ld = 2; /* fsr_an_align() then reports the short series */
    int32_t *days = fsr_call_alloc(call, sizeof(*days) * ld);
    double *ret = fsr_call_alloc(call, sizeof(*ret) * ld * k);
    size_t m = 0;
    int rv = fsr_an_align(s, k, basis, days, NULL, NULL, ret, ld, &m);
    if (rv != 0) {
        fail_an(call, f_series, rv);
        return NULL;
    }
    /* The last |last| returns: return t - 1 is dated days[t], so the window starts one before. */
    size_t n = m - 1, skip = last > 0 && last < n ? n - last : 0;
    Common__V1__CovarianceResult *o =
        cov_result(call, ret + skip, k, n - skip, ld, weights, n_weights, f_series, f_weights);
    if (o == NULL)
        return NULL;
    o->start_date = day_text(call, days[skip]);
    o->end_date = day_text(call, days[m - 1]);
    return o;
}

void eq_covariance(fsr_call *call, const Equity__V1__CovarianceRequest *req)
{
    fsr_an_basis basis;
    if (eq_basis_resolve(call, req->basis, &basis) != 0)
        return;
    size_t k = req->n_series;
    if (k < 2) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "series", "needs at least two series");
        return;
    }
    if (req->n_weights > 0 && req->n_weights != k) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "weights",
                            "must hold one weight per series");
        return;
    }
    Common__V1__CovarianceResult *o;
    if (req->series[0]->n_prices > 0) {
        fsr_an_series *s = fsr_call_alloc(call, sizeof(*s) * k);
        for (size_t i = 0; i < k; i++) {
            const Equity__V1__NamedSeries *ns = req->series[i];
            const char *fp = fsr_call_printf(call, "series[%zu].prices", i);
            const char *fd = fsr_call_printf(call, "series[%zu].dividends", i);
            if (ns->n_prices == 0) {
                fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, fp,
                                    "is required: every series must be dated when the first is");
                return;
            }
            if (series_from_points(call, fp, ns->prices, ns->n_prices, fd, ns->dividends,
                                   ns->n_dividends, &s[i]) != 0 ||
                check_series(call, &s[i], fp, fd) != 0)
                return;
        }
        o = eq_covariance_dated(call, s, k, basis, 0, req->weights, req->n_weights, "series",
                                "weights");
    } else {
        size_t n = req->series[0]->n_returns;
        double *buf = fsr_call_alloc(call, sizeof(*buf) * (n * k + 1));
        for (size_t i = 0; i < k; i++) {
            const Equity__V1__NamedSeries *ns = req->series[i];
            if (ns->n_prices > 0 || ns->n_returns != n) {
                fsr_call_fail_field(call, FSR_INVALID_ARGUMENT,
                                    fsr_call_printf(call, "series[%zu].returns", i),
                                    "every series must give as many returns as the first, "
                                    "and no prices");
                return;
            }
            memcpy(buf + i * n, ns->returns, sizeof(double) * n);
        }
        o = cov_result(call, buf, k, n, n, req->weights, req->n_weights, "series", "weights");
    }
    if (o == NULL)
        return;
    for (size_t i = 0; i < k; i++)
        o->ids[i] = req->series[i]->id;
    equity_v1_equity_analytics_service_covariance_reply(call, o);
}
