/* SPDX-License-Identifier: MIT */
/* Analytics: portfolio return series, daily rebalanced and buy-and-hold. */
#include "fsr/analytics.h"

#include <math.h>

#include "analytics_int.h"

/* Weights: finite, >= 0, summing to at most 1 (+1e-9 for rounding); *|cash| = 1 - sum. */
static int check_weights(const double *w, size_t k, double *cash)
{
    fsr__an_sum s = { 0 };
    for (size_t i = 0; i < k; i++) {
        if (!isfinite(w[i]))
            return FSR_AN_E_NONFINITE;
        if (w[i] < 0.0)
            return FSR_AN_E_WEIGHTS;
        fsr__an_add(&s, w[i]);
    }
    double sum = fsr__an_total(&s);
    if (sum > 1.0 + 1e-9)
        return FSR_AN_E_WEIGHTS;
    *cash = 1.0 - sum;
    return 0;
}

int fsr_an_portfolio_rebalanced(const double *ret, size_t k, size_t n, size_t ld, const double *w,
                                double rf_annual, double *out)
{
    if (!ret || !w || !out || k == 0 || !isfinite(rf_annual) || !(rf_annual > -1.0))
        return FSR_AN_E_ARG;
    if (n == 0)
        return FSR_AN_E_EMPTY;
    if (ld < n)
        return FSR_AN_E_BUFFER;
    double cash;
    int rv = check_weights(w, k, &cash);
    if (rv != 0)
        return rv;
    for (size_t i = 0; i < k; i++)
        for (size_t t = 0; t < n; t++)
            if (!isfinite(ret[i * ld + t]))
                return FSR_AN_E_NONFINITE;
    const double cash_return = cash * fsr_an_rf_daily(rf_annual);
    for (size_t t = 0; t < n; t++) {
        fsr__an_sum s = { 0 };
        for (size_t i = 0; i < k; i++)
            fsr__an_add(&s, w[i] * ret[i * ld + t]);
        out[t] = fsr__an_total(&s) + cash_return;
    }
    return 0;
}

int fsr_an_portfolio_buy_and_hold(const double *close, const double *div, size_t k, size_t n,
                                  size_t ld, const double *w, double v0, double rf_annual,
                                  double *shares, double *values, double *ret,
                                  fsr_an_buy_and_hold *summary)
{
    if (!close || !w || k == 0 || !isfinite(rf_annual) || !(rf_annual > -1.0))
        return FSR_AN_E_ARG;
    if (ld < n)
        return FSR_AN_E_BUFFER;
    if (n < 2)
        return FSR_AN_E_TOO_SHORT;
    if (!isfinite(v0) || !(v0 > 0.0))
        return FSR_AN_E_VALUE;
    double cash_w;
    int rv = check_weights(w, k, &cash_w);
    if (rv != 0)
        return rv;
    for (size_t i = 0; i < k; i++)
        for (size_t t = 0; t < n; t++) {
            if (!(close[i * ld + t] > 0.0) || !isfinite(close[i * ld + t]))
                return FSR_AN_E_PRICE;
            if (div && (!(div[i * ld + t] >= 0.0) || !isfinite(div[i * ld + t])))
                return FSR_AN_E_DIVIDEND;
        }

    /*
     * Whole shares, floor(w_i V0 / P_i,0), evaluated as (w_i x V0) / P_i,0 like the
     * formula reads.  The share counts are re-derived from |w| rather than kept in a
     * buffer so that |shares| may be NULL.  Cash starts as V0 minus what they cost.
     */
    fsr__an_sum spent = { 0 };
    for (size_t i = 0; i < k; i++)
        fsr__an_add(&spent, floor(w[i] * v0 / close[i * ld]) * close[i * ld]);
    const double initial_cash = v0 - fsr__an_total(&spent);
    if (shares)
        for (size_t i = 0; i < k; i++)
            shares[i] = floor(w[i] * v0 / close[i * ld]);
    if (values)
        values[0] = v0;

    const double growth = 1.0 + fsr_an_rf_daily(rf_annual);
    double cash = initial_cash, prev = v0;
    for (size_t t = 1; t < n; t++) {
        /* Interest on yesterday's cash first; the ex-date's dividends then join the cash
         * and earn interest from the next day. */
        fsr__an_sum dv = { 0 }, hv = { 0 };
        for (size_t i = 0; i < k; i++) {
            double q = floor(w[i] * v0 / close[i * ld]);
            if (div)
                fsr__an_add(&dv, q * div[i * ld + t]);
            fsr__an_add(&hv, q * close[i * ld + t]);
        }
        cash = cash * growth + fsr__an_total(&dv);
        double v = fsr__an_total(&hv) + cash;
        if (values)
            values[t] = v;
        if (ret)
            ret[t - 1] = v / prev - 1.0;
        prev = v;
    }
    if (summary) {
        summary->initial_cash = initial_cash;
        summary->final_cash = cash;
        summary->final_value = prev;
    }
    return 0;
}
