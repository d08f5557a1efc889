/* SPDX-License-Identifier: MIT */
/* Analytics: per-series return and risk metrics, VaR / ES, and period returns. */
#include "fsr/analytics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analytics_int.h"

/* Checks returns: finite and >= -1 (a wealth index that can hit zero but never go below). */
static int check_returns(const double *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(r[i]))
            return FSR_AN_E_NONFINITE;
        if (r[i] < -1.0)
            return FSR_AN_E_RETURN;
    }
    return 0;
}

/* x / y, or NaN when y is exactly 0 (the documented "ratio dividing by zero"). */
static double ratio(double x, double y)
{
    return y == 0.0 ? NAN : x / y;
}

/*
 * p = 1 - confidence, snapped to the nearest multiple of 1e-12: 1 - 0.95 is
 * 0.050000000000000044 in binary, and the discrete rules (floor((n-1)p), ceil(np)) must see
 * 0.05 as the decimal it names, or an exact integer such as 20 x 0.05 = 1 would round the
 * wrong way.  The snapped value is the double nearest 0.05, exactly what numpy uses for
 * percentile(x, 5) and quantile(x, 0.05).
 */
static double tail_probability(double confidence)
{
    return round((1.0 - confidence) * 1e12) / 1e12;
}

void fsr__an_var_sorted(const double *x, size_t n, double mean, double sd, double skew,
                        double exkurt, double confidence, fsr_an_var *out)
{
    double p = tail_probability(confidence);
    double h = (double)(n - 1) * p;
    size_t j = (size_t)floor(h);
    if (j > n - 1)
        j = n - 1;
    double frac = h - (double)j;
    double q = j + 1 < n ? x[j] + frac * (x[j + 1] - x[j]) : x[j];

    double np = ceil((double)n * p);
    size_t inv = np < 1.0 ? 0 : (size_t)np - 1;
    if (inv > n - 1)
        inv = n - 1;

    /* The k = floor((n-1)p) + 1 worst returns: x(0) .. x(j). */
    size_t k = j + 1;
    double worst = fsr__an_sum_array(x, k) / (double)k;

    double z = fsr_an_norm_ppf(p);
    double z2 = z * z, z3 = z2 * z;
    double zcf = z + (z2 - 1.0) * skew / 6.0 + (z3 - 3.0 * z) * exkurt / 24.0 -
                 (2.0 * z3 - 5.0 * z) * skew * skew / 36.0;

    out->confidence = confidence;
    out->historical = -q;
    out->historical_lower = -x[j];
    out->historical_inverted_cdf = -x[inv];
    out->cvar_historical = -worst;
    out->gaussian = -(mean + z * sd);
    out->es_gaussian = -mean + sd * fsr_an_norm_pdf(z) / p;
    out->cornish_fisher = -(mean + zcf * sd);
}

/* Sample moments of one series: mean, stdev (n-1) and population skewness / kurtosis. */
typedef struct moments {
    double mean;
    double sd;
    double skew;
    double exkurt;
} moments;

/*
 * Two-pass moments with compensated sums: the mean first, then the central sums of
 * powers.  (A one-pass formula loses about log10(mean^2 / var) digits to cancellation.)
 * |shift| is subtracted from every value first (the risk-free rate for excess returns), as
 * numpy evaluates r - rf_d before its mean.
 */
static moments compute_moments(const double *x, size_t n, double shift, bool higher)
{
    fsr__an_sum s = { 0 };
    for (size_t i = 0; i < n; i++)
        fsr__an_add(&s, x[i] - shift);
    moments m = { .mean = fsr__an_total(&s) / (double)n };
    fsr__an_sum s2 = { 0 }, s3 = { 0 }, s4 = { 0 };
    for (size_t i = 0; i < n; i++) {
        double d = (x[i] - shift) - m.mean;
        double d2 = d * d;
        fsr__an_add(&s2, d2);
        if (higher) {
            fsr__an_add(&s3, d2 * d);
            fsr__an_add(&s4, d2 * d2);
        }
    }
    double m2 = fsr__an_total(&s2);
    m.sd = sqrt(m2 / (double)(n - 1));
    if (higher) {
        double pm2 = m2 / (double)n;
        m.skew = ratio(fsr__an_total(&s3) / (double)n, pow(pm2, 1.5));
        m.exkurt = ratio(fsr__an_total(&s4) / (double)n, pm2 * pm2) - 3.0;
    }
    return m;
}

int fsr_an_var_compute(const double *r, size_t n, double confidence, double *work, fsr_an_var *out)
{
    if (!r || !out)
        return FSR_AN_E_ARG;
    if (n < 2)
        return FSR_AN_E_TOO_SHORT;
    int rv = check_returns(r, n);
    if (rv != 0)
        return rv;
    if (!(confidence > 0.0 && confidence < 1.0))
        return FSR_AN_E_CONFIDENCE;
    double *x = work ? work : malloc(n * sizeof(double));
    if (!x)
        return -ENOMEM;
    memcpy(x, r, n * sizeof(double));
    fsr__an_sort(x, n);
    moments m = compute_moments(r, n, 0.0, true);
    fsr__an_var_sorted(x, n, m.mean, m.sd, m.skew, m.exkurt, confidence, out);
    if (!work)
        free(x);
    return 0;
}

int fsr_an_metrics_compute(const double *r, const double *b, size_t n, double rf_annual,
                           double *work, fsr_an_metrics *out)
{
    if (!r || !out || !isfinite(rf_annual) || !(rf_annual > -1.0))
        return FSR_AN_E_ARG;
    if (n < 2)
        return FSR_AN_E_TOO_SHORT;
    int rv = check_returns(r, n);
    if (rv == 0 && b)
        rv = check_returns(b, n);
    if (rv != 0)
        return rv;
    double *x = work ? work : malloc(n * sizeof(double));
    if (!x)
        return -ENOMEM;

    const double rf = fsr_an_rf_daily(rf_annual);
    const double sqrt_a = sqrt(FSR__AN_A);
    fsr_an_metrics m = { .n = n };

    moments mr = compute_moments(r, n, 0.0, true);
    moments ex = compute_moments(r, n, rf, false);
    m.mean = mr.mean;
    m.stdev = mr.sd;
    m.skewness = mr.skew;
    m.excess_kurtosis = mr.exkurt;

    /*
     * Wealth index W_0 = 1, W_t = W_{t-1} (1 + r_t), built by the same sequential products
     * as numpy's cumprod, so the drawdown positions (exact comparisons) agree with it.  The
     * peak is the last position at the running maximum; a deeper trough resets the
     * recovery, which is then the first later position back at that trough's peak.
     */
    double w = 1.0, peak = 1.0, mdd = 0.0, dd_peak_w = 1.0;
    size_t peak_i = 0;
    m.max_drawdown_peak = m.max_drawdown_trough = m.max_drawdown_recovery = FSR_AN_NONE;
    fsr__an_sum down = { 0 };
    for (size_t t = 1; t <= n; t++) {
        w *= 1.0 + r[t - 1];
        if (w >= peak) {
            peak = w;
            peak_i = t;
        }
        /* As numpy writes it, -(w / peak - 1): the same rounding, so the same trough. */
        double dd = -(w / peak - 1.0);
        if (dd > mdd) {
            mdd = dd;
            m.max_drawdown_trough = t;
            m.max_drawdown_peak = peak_i;
            m.max_drawdown_recovery = FSR_AN_NONE;
            dd_peak_w = peak;
        } else if (m.max_drawdown_trough != FSR_AN_NONE && m.max_drawdown_recovery == FSR_AN_NONE &&
                   w >= dd_peak_w) {
            m.max_drawdown_recovery = t;
        }
        double e = r[t - 1] - rf;
        if (e < 0.0)
            fsr__an_add(&down, e * e);
    }
    m.max_drawdown = mdd;
    m.total_return = w - 1.0;
    m.annualized_return = pow(w, FSR__AN_A / (double)n) - 1.0;
    m.annualized_return_arith = mr.mean * FSR__AN_A;
    m.annualized_volatility = mr.sd * sqrt_a;
    m.sharpe = ratio(ex.mean, ex.sd) * sqrt_a;
    m.downside_deviation = sqrt(fsr__an_total(&down) / (double)n) * sqrt_a;
    m.sortino = ratio(ex.mean * FSR__AN_A, m.downside_deviation);
    m.calmar = ratio(m.annualized_return, m.max_drawdown);

    if (b) {
        moments mb = compute_moments(b, n, 0.0, false);
        moments exb = compute_moments(b, n, rf, false);
        fsr__an_sum cov = { 0 }, act = { 0 };
        for (size_t t = 0; t < n; t++) {
            fsr__an_add(&cov, (r[t] - mr.mean) * (b[t] - mb.mean));
            fsr__an_add(&act, r[t] - b[t]);
        }
        double c = fsr__an_total(&cov) / (double)(n - 1);
        double act_mean = fsr__an_total(&act) / (double)n;
        fsr__an_sum act2 = { 0 };
        for (size_t t = 0; t < n; t++) {
            double d = (r[t] - b[t]) - act_mean;
            fsr__an_add(&act2, d * d);
        }
        double act_sd = sqrt(fsr__an_total(&act2) / (double)(n - 1));
        m.has_benchmark = true;
        m.beta = ratio(c, mb.sd * mb.sd);
        m.alpha_daily = ex.mean - m.beta * exb.mean;
        m.alpha_annualized = pow(1.0 + m.alpha_daily, FSR__AN_A) - 1.0;
        m.correlation = ratio(c, mr.sd * mb.sd);
        m.tracking_error = act_sd * sqrt_a;
        m.information_ratio = ratio(act_mean * FSR__AN_A, m.tracking_error);
    }

    memcpy(x, r, n * sizeof(double));
    fsr__an_sort(x, n);
    static const double levels[FSR_AN_VAR_LEVELS] = { FSR_AN_VAR_CONF0, FSR_AN_VAR_CONF1 };
    for (size_t i = 0; i < FSR_AN_VAR_LEVELS; i++)
        fsr__an_var_sorted(x, n, mr.mean, mr.sd, mr.skew, mr.exkurt, levels[i], &m.var[i]);
    if (!work)
        free(x);
    *out = m;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Period returns
 */

/* Checks a dated return series: n + 1 strictly ascending dates. */
static int check_dated(const int32_t *days, const double *r, size_t n)
{
    if (!days || !r)
        return FSR_AN_E_ARG;
    if (n == 0)
        return FSR_AN_E_EMPTY;
    for (size_t t = 1; t <= n; t++)
        if (days[t] <= days[t - 1])
            return FSR_AN_E_DATES;
    return 0;
}

/* Position of the last date <= |d| among days[0..n], or FSR_AN_NONE if d < days[0]. */
static size_t last_on_or_before(const int32_t *days, size_t n, int32_t d)
{
    if (d < days[0])
        return FSR_AN_NONE;
    size_t lo = 0, hi = n; /* invariant: days[lo] <= d, answer in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (days[mid] <= d)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static void link(const int32_t *days, const double *r, size_t s, size_t e, fsr_an_period *out)
{
    double g = 1.0;
    for (size_t t = s + 1; t <= e; t++)
        g *= 1.0 + r[t - 1];
    out->start_index = s;
    out->end_index = e;
    out->start_close = days[s];
    out->end_close = days[e];
    out->total_return = g - 1.0;
}

int fsr_an_period_return(const int32_t *days, const double *r, size_t n, int32_t start_close,
                         int32_t end_close, fsr_an_period *out)
{
    int rv = check_dated(days, r, n);
    if (rv != 0)
        return rv;
    if (!out)
        return FSR_AN_E_ARG;
    if (end_close < days[0] || end_close < start_close)
        return FSR_AN_E_PERIOD;
    size_t s = last_on_or_before(days, n, start_close);
    size_t e = last_on_or_before(days, n, end_close);
    link(days, r, s == FSR_AN_NONE ? 0 : s, e, out);
    return 0;
}

int fsr_an_year_returns(const int32_t *days, const double *r, size_t n, fsr_an_period *out,
                        size_t cap)
{
    int rv = check_dated(days, r, n);
    if (rv != 0)
        return rv;
    if (cap && !out)
        return FSR_AN_E_ARG;
    size_t count = 0, first = 1;
    int year;
    fsr_an_day_to_civil(days[1], &year, NULL, NULL);
    for (size_t t = 2; t <= n + 1; t++) {
        int y = year;
        if (t <= n)
            fsr_an_day_to_civil(days[t], &y, NULL, NULL);
        if (t <= n && y == year)
            continue;
        /* Returns first..t-1 are dated in |year|: the window is (first - 1, t - 1]. */
        if (count < cap)
            link(days, r, first - 1, t - 1, &out[count]);
        count++;
        first = t;
        year = y;
    }
    return count > (size_t)0x7fffffff ? FSR_AN_E_BUFFER : (int)count;
}
