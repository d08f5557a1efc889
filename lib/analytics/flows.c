/* SPDX-License-Identifier: MIT */
/* Analytics: time-weighted returns (daily, Modified Dietz, sub-period) and XIRR. */
#include "fsr/analytics.h"

#include <float.h>
#include <math.h>

#include "analytics_int.h"

/* ---------------------------------------------------------------------------------------
 * TWR
 */

static double annualize(double twr, double years_num, double years_den)
{
    return pow(1.0 + twr, years_num / years_den) - 1.0;
}

int fsr_an_twr_compute(const int32_t *days, const double *values, size_t n,
                       const int32_t *flow_days, const double *flows, size_t m,
                       fsr_an_flow_timing timing, double *returns, fsr_an_twr *out)
{
    if (!days || !values || !out || (m && (!flow_days || !flows)) || (int)timing < 0 ||
        (int)timing > (int)FSR_AN_FLOW_DIETZ)
        return FSR_AN_E_ARG;
    if (n == 0)
        return FSR_AN_E_EMPTY;
    if (n < 2)
        return FSR_AN_E_TOO_SHORT;
    for (size_t t = 0; t < n; t++) {
        if (!isfinite(values[t]) || values[t] < 0.0)
            return FSR_AN_E_VALUE;
        if (t > 0 && days[t] <= days[t - 1])
            return FSR_AN_E_DATES;
    }
    for (size_t i = 0; i < m; i++) {
        if (!isfinite(flows[i]))
            return FSR_AN_E_NONFINITE;
        if (i > 0 && flow_days[i] < flow_days[i - 1])
            return FSR_AN_E_DATES;
        if (flow_days[i] <= days[0] || flow_days[i] > days[n - 1])
            return FSR_AN_E_FLOW_DATE;
    }
    const int32_t cal = days[n - 1] - days[0];
    double twr = 0.0;

    if (timing == FSR_AN_FLOW_DIETZ) {
        /* (V_end - V_start - sum CF) / (V_start + sum W_i CF_i), W_i = (end - d_i) / (end - start).
         */
        fsr__an_sum cf = { 0 }, wcf = { 0 };
        for (size_t i = 0; i < m; i++) {
            fsr__an_add(&cf, flows[i]);
            fsr__an_add(&wcf, (double)(days[n - 1] - flow_days[i]) / (double)cal * flows[i]);
        }
        double den = values[0] + fsr__an_total(&wcf);
        if (!(den > 0.0))
            return FSR_AN_E_DENOMINATOR;
        twr = (values[n - 1] - values[0] - fsr__an_total(&cf)) / den;
    } else {
        /* First pass: every flow must sit on a valuation date (dates and flows are both
         * sorted, so one merge walk) and no denominator may be <= 0; only then write. */
        for (int pass = 0; pass < 2; pass++) {
            size_t f = 0;
            double g = 1.0;
            for (size_t t = 1; t < n; t++) {
                double in = 0.0, outf = 0.0, net = 0.0;
                for (; f < m && flow_days[f] <= days[t]; f++) {
                    if (flow_days[f] != days[t])
                        return FSR_AN_E_FLOW_DATE;
                    net += flows[f];
                    if (flows[f] > 0.0)
                        in += flows[f];
                    else
                        outf -= flows[f];
                }
                double num, den;
                switch (timing) {
                case FSR_AN_FLOW_START:
                    num = values[t];
                    den = values[t - 1] + net;
                    break;
                case FSR_AN_FLOW_END:
                    num = values[t] - net;
                    den = values[t - 1];
                    break;
                default: /* FSR_AN_FLOW_SPLIT */
                    num = values[t] + outf;
                    den = values[t - 1] + in;
                    break;
                }
                if (!(den > 0.0))
                    return FSR_AN_E_DENOMINATOR;
                double r = num / den - 1.0;
                if (pass == 1 && returns)
                    returns[t - 1] = r;
                g *= 1.0 + r;
            }
            twr = g - 1.0;
        }
    }
    out->twr = twr;
    out->calendar_days = cal;
    out->n_returns = n - 1;
    out->annualized = annualize(twr, 365.0, (double)cal);
    out->annualized_252 = annualize(twr, FSR__AN_A, (double)(n - 1));
    return 0;
}

int fsr_an_twr_subperiods(const double *before, const double *flow, size_t k, double *twr)
{
    if (!before || !twr || (k && !flow))
        return FSR_AN_E_ARG;
    if (k == 0)
        return FSR_AN_E_TOO_SHORT;
    double g = 1.0;
    for (size_t i = 0; i <= k; i++) {
        if (!isfinite(before[i]) || (i < k && !isfinite(flow[i])))
            return FSR_AN_E_NONFINITE;
        if (i > 0) {
            double den = before[i - 1] + flow[i - 1];
            if (!(den > 0.0))
                return FSR_AN_E_DENOMINATOR;
            g *= before[i] / den;
        }
    }
    *twr = g - 1.0;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * XIRR
 */

#define XIRR_LO   -0.99
#define XIRR_HI   10.0
#define XIRR_GRID 400

typedef struct xirr_ctx {
    const int32_t *days;
    const double *flows;
    size_t n;
    int32_t d0;
} xirr_ctx;

/* Net present value at |rate|: sum CF_i (1 + r)^-((d_i - d0) / 365). */
static double npv(const xirr_ctx *x, double rate)
{
    double l = log1p(rate);
    fsr__an_sum s = { 0 };
    for (size_t i = 0; i < x->n; i++)
        fsr__an_add(&s, x->flows[i] * exp(-(double)(x->days[i] - x->d0) / 365.0 * l));
    return fsr__an_total(&s);
}

/*
 * Brent's method (R. P. Brent, Algorithms for Minimization without Derivatives, 1973,
 * ch. 4, procedure "zero"): inverse quadratic interpolation or secant steps, falling back
 * to bisection whenever they would not shrink the bracket fast enough, so it converges
 * whenever [a, b] brackets a sign change.  Tolerance 2 eps |b| + 1e-15.
 */
static double brent(const xirr_ctx *x, double a, double b, double fa, double fb)
{
    double c = a, fc = fa, d = b - a, e = d;
    for (int iter = 0; iter < 200; iter++) {
        if ((fb > 0 && fc > 0) || (fb < 0 && fc < 0)) {
            c = a;
            fc = fa;
            d = e = b - a;
        }
        if (fabs(fc) < fabs(fb)) {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        double tol = 2.0 * DBL_EPSILON * fabs(b) + 0.5e-15;
        double mid = 0.5 * (c - b);
        if (fabs(mid) <= tol || fb == 0.0)
            return b;
        if (fabs(e) >= tol && fabs(fa) > fabs(fb)) {
            double s = fb / fa, p, q;
            if (a == c) {
                p = 2.0 * mid * s;
                q = 1.0 - s;
            } else {
                double qq = fa / fc, r = fb / fc;
                p = s * (2.0 * mid * qq * (qq - r) - (b - a) * (r - 1.0));
                q = (qq - 1.0) * (r - 1.0) * (s - 1.0);
            }
            if (p > 0)
                q = -q;
            else
                p = -p;
            if (2.0 * p < fmin(3.0 * mid * q - fabs(tol * q), fabs(e * q))) {
                e = d;
                d = p / q;
            } else {
                d = mid;
                e = d;
            }
        } else {
            d = mid;
            e = d;
        }
        a = b;
        fa = fb;
        b += fabs(d) > tol ? d : (mid > 0 ? tol : -tol);
        fb = npv(x, b);
    }
    return b;
}

int fsr_an_xirr(const int32_t *days, const double *flows, size_t n, double *rate)
{
    if (!days || !flows || !rate)
        return FSR_AN_E_ARG;
    if (n < 2)
        return FSR_AN_E_TOO_SHORT;
    bool pos = false, neg = false;
    int32_t d0 = days[0];
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(flows[i]))
            return FSR_AN_E_NONFINITE;
        pos |= flows[i] > 0.0;
        neg |= flows[i] < 0.0;
        if (days[i] < d0)
            d0 = days[i];
    }
    if (!pos || !neg)
        return FSR_AN_E_NO_SIGN_CHANGE;
    xirr_ctx x = { days, flows, n, d0 };

    /*
     * Bracket: the grid's rates are evenly spaced in log(1 + r) between the ends of the
     * search interval (NPV is smooth in that variable, and the spacing is finer near -99%
     * where it changes fastest).  An interval between neighbouring grid rates brackets a
     * root when the NPV is finite at both ends and does not keep its sign.  Intervals are
     * visited in order of their distance from r = 0, walking outwards on both sides from
     * the one that contains 0 (the nearer side first, the lower one on a tie), so the first
     * bracket found is the nearest and usually only a handful of NPVs are evaluated;
     * NPVs are cached because neighbouring intervals share an end.  Non-finite NPVs
     * (overflow near -99% over long horizons) make an interval a non-bracket.
     */
    const double l0 = log1p(XIRR_LO), l1 = log1p(XIRR_HI);
    double grid_r[XIRR_GRID + 1], grid_f[XIRR_GRID + 1];
    bool have[XIRR_GRID + 1] = { false };
    for (int g = 0; g <= XIRR_GRID; g++)
        grid_r[g] = g == 0           ? XIRR_LO
                    : g == XIRR_GRID ? XIRR_HI
                                     : expm1(l0 + (l1 - l0) * (double)g / (double)XIRR_GRID);
    /* gz: the interval [gz, gz + 1] with r(gz) <= 0 < r(gz + 1). */
    int gz = 0;
    while (gz + 1 < XIRR_GRID && grid_r[gz + 1] <= 0.0)
        gz++;
    int left = gz - 1, right = gz; /* next interval to visit on each side */
    while (left >= 0 || right < XIRR_GRID) {
        /* Distance of interval i from 0: r(i + 1) < 0 on the left, r(i) > 0 on the right. */
        double dl = left >= 0 ? -grid_r[left + 1] : INFINITY;
        double dr = right < XIRR_GRID ? fmax(grid_r[right], 0.0) : INFINITY;
        int i = dl <= dr ? left-- : right++;
        for (int g = i; g <= i + 1; g++)
            if (!have[g]) {
                grid_f[g] = npv(&x, grid_r[g]);
                have[g] = true;
            }
        double fa = grid_f[i], fb = grid_f[i + 1];
        if (!isfinite(fa) || !isfinite(fb) || (fa < 0.0 && fb < 0.0) || (fa > 0.0 && fb > 0.0))
            continue;
        if (fa == 0.0)
            *rate = grid_r[i];
        else if (fb == 0.0)
            *rate = grid_r[i + 1];
        else
            *rate = brent(&x, grid_r[i], grid_r[i + 1], fa, fb);
        return 0;
    }
    return FSR_AN_E_NO_ROOT;
}
