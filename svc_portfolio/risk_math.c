/* SPDX-License-Identifier: MIT */
/*
 * Portfolio risk without a covariance matrix (risk.h): everything ANALYTICS.md's
 * covariance_risk derives from C only ever needs C w, and with sample covariances
 *
 *   w' C w  = var(r_p)          (C w)_i = cov(r_i, r_p),   r_p,t = sum_i w_i r_i,t
 *
 * (covariance is bilinear), so one pass builds r_p and a second the k covariances with it:
 * O(k T) time and no k x k memory, where fsr_an_cov() + fsr_an_portfolio_risk() cost
 * O(k^2 T).  test/unit/pf_risk_test.c checks both agree on small cases.
 */
#include "risk.h"

#include <math.h>
#include <stddef.h>

#include "fsr/analytics.h"

int pf_risk_grid_returns(const int32_t *days, const double *r, size_t n, const int32_t *grid,
                         size_t t, double *out)
{
    size_t j = 0;
    /* Returns dated on or before the grid's base date are before the window. */
    while (j < n && days[j] <= grid[0])
        j++;
    for (size_t k = 1; k <= t; k++) {
        double g = 1.0;
        bool any = false;
        while (j < n && days[j] <= grid[k]) {
            g *= 1.0 + r[j++];
            any = true;
        }
        out[k - 1] = any ? g - 1.0 : 0.0;
    }
    return 0;
}

int pf_risk_compute(const double *ret, size_t k, size_t t, const double *w, double *rp,
                    double *contrib, double *marginal, pf_risk_out *out)
{
    if (t < 2)
        return FSR_AN_E_TOO_SHORT;
    for (size_t s = 0; s < t; s++)
        rp[s] = 0.0;
    for (size_t i = 0; i < k; i++) {
        const double *ri = ret + i * t;
        for (size_t s = 0; s < t; s++)
            rp[s] += w[i] * ri[s];
    }
    double mp = 0.0;
    for (size_t s = 0; s < t; s++)
        mp += rp[s];
    mp /= (double)t;
    double var = 0.0;
    for (size_t s = 0; s < t; s++)
        var += (rp[s] - mp) * (rp[s] - mp);
    var /= (double)(t - 1);
    if (!isfinite(var))
        return FSR_AN_E_NONFINITE;
    out->variance_daily = var;
    out->volatility = sqrt(var) * sqrt(252.0);
    out->mean_daily = mp;
    if (!(var > 0.0))
        return PF_RISK_E_ZERO_VARIANCE;
    double sd = sqrt(var);
    for (size_t i = 0; i < k; i++) {
        const double *ri = ret + i * t;
        double mi = 0.0;
        for (size_t s = 0; s < t; s++)
            mi += ri[s];
        mi /= (double)t;
        double c = 0.0;
        for (size_t s = 0; s < t; s++)
            c += (ri[s] - mi) * (rp[s] - mp);
        c /= (double)(t - 1);
        contrib[i] = w[i] * c / var;
        marginal[i] = c / sd * sqrt(252.0);
    }
    return 0;
}

int pf_risk_beta(const double *x, const double *b, size_t t, double *beta)
{
    if (t < 2)
        return FSR_AN_E_TOO_SHORT;
    double mx = 0.0, mb = 0.0;
    for (size_t s = 0; s < t; s++) {
        mx += x[s];
        mb += b[s];
    }
    mx /= (double)t;
    mb /= (double)t;
    double cxb = 0.0, vb = 0.0;
    for (size_t s = 0; s < t; s++) {
        cxb += (x[s] - mx) * (b[s] - mb);
        vb += (b[s] - mb) * (b[s] - mb);
    }
    if (!(vb > 0.0) || !isfinite(cxb))
        return PF_RISK_E_ZERO_VARIANCE;
    *beta = cxb / vb; /* the (n - 1)s cancel */
    return 0;
}
