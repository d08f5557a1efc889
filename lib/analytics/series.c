/* SPDX-License-Identifier: MIT */
/* Analytics: return series from dated prices and dividends, and alignment on common dates. */
#include "fsr/analytics.h"

#include <math.h>

#include "analytics_int.h"

int fsr_an_series_check(const fsr_an_series *s)
{
    if (!s)
        return FSR_AN_E_ARG;
    if (s->n == 0)
        return FSR_AN_E_EMPTY;
    if (!s->days || !s->close || (s->n_div && (!s->div_days || !s->div_amount)))
        return FSR_AN_E_ARG;
    if (s->n < 2)
        return FSR_AN_E_TOO_SHORT;
    for (size_t i = 0; i < s->n; i++) {
        /* !(x > 0) also catches NaN. */
        if (!(s->close[i] > 0.0) || !isfinite(s->close[i]))
            return FSR_AN_E_PRICE;
        if (i > 0 && s->days[i] <= s->days[i - 1])
            return FSR_AN_E_DATES;
    }
    for (size_t i = 0; i < s->n_div; i++) {
        if (!(s->div_amount[i] >= 0.0) || !isfinite(s->div_amount[i]))
            return FSR_AN_E_DIVIDEND;
        if (i > 0 && s->div_days[i] < s->div_days[i - 1])
            return FSR_AN_E_DIVIDEND;
    }
    return 0;
}

/*
 * Walks series |s| along the calendar |cd| (m dates, a subset of s->days, ascending) and
 * writes whichever of |close|, |div| and |ret| is not NULL.  One pass over the series'
 * dates and one over its dividends: the dividend cursor first skips every ex-date on or
 * before the base date, then collects those in (cd[t-1], cd[t]] for each t; the ones
 * after the last date are never reached.
 */
static void walk_series(const fsr_an_series *s, const int32_t *cd, size_t m, fsr_an_basis basis,
                        double *close, double *div, double *ret)
{
    size_t i = 0, dv = 0;
    double prev = 0.0;
    for (size_t t = 0; t < m; t++) {
        while (s->days[i] < cd[t])
            i++;
        double c = s->close[i];
        double d = 0.0;
        while (dv < s->n_div && s->div_days[dv] <= cd[t]) {
            if (t > 0)
                d += s->div_amount[dv];
            dv++;
        }
        if (close)
            close[t] = c;
        if (div)
            div[t] = d;
        if (ret && t > 0) {
            /* The same operations, in the same order, as fsr_an_returns(). */
            ret[t - 1] = basis == FSR_AN_PRICE ? c / prev - 1.0 : (c + d) / prev - 1.0;
        }
        prev = c;
    }
}

int fsr_an_series_returns(const fsr_an_series *s, fsr_an_basis basis, double *ret)
{
    int rv = fsr_an_series_check(s);
    if (rv != 0)
        return rv;
    if (!ret || (basis != FSR_AN_TOTAL && basis != FSR_AN_PRICE))
        return FSR_AN_E_ARG;
    walk_series(s, s->days, s->n, basis, NULL, NULL, ret);
    return 0;
}

int fsr_an_align(const fsr_an_series *s, size_t k, fsr_an_basis basis, int32_t *days, double *close,
                 double *div, double *ret, size_t ld, size_t *n_out)
{
    if (!s || k == 0 || !days || !n_out || (basis != FSR_AN_TOTAL && basis != FSR_AN_PRICE))
        return FSR_AN_E_ARG;
    size_t shortest = 0;
    for (size_t j = 0; j < k; j++) {
        int rv = fsr_an_series_check(&s[j]);
        if (rv != 0)
            return rv;
        if (s[j].n < s[shortest].n)
            shortest = j;
    }
    if (ld < s[shortest].n)
        return FSR_AN_E_BUFFER;

    /*
     * The intersection: start from the shortest series' dates and filter them in place
     * against every other series with a merge walk, O(sum of lengths), no scratch memory.
     */
    size_t m = s[shortest].n;
    for (size_t t = 0; t < m; t++)
        days[t] = s[shortest].days[t];
    for (size_t j = 0; j < k && m > 0; j++) {
        if (j == shortest)
            continue;
        const int32_t *dj = s[j].days;
        size_t nj = s[j].n, i = 0, w = 0;
        for (size_t t = 0; t < m && i < nj; t++) {
            while (i < nj && dj[i] < days[t])
                i++;
            if (i < nj && dj[i] == days[t])
                days[w++] = days[t];
        }
        m = w;
    }
    if (m < 2)
        return FSR_AN_E_NO_OVERLAP;

    for (size_t j = 0; j < k; j++)
        walk_series(&s[j], days, m, basis, close ? close + j * ld : NULL, div ? div + j * ld : NULL,
                    ret ? ret + j * ld : NULL);
    *n_out = m;
    return 0;
}

int fsr_an_returns(const double *close, const double *div, size_t n, fsr_an_basis basis,
                   double *ret)
{
    if (!close || !ret || (basis != FSR_AN_TOTAL && basis != FSR_AN_PRICE))
        return FSR_AN_E_ARG;
    if (n < 2)
        return FSR_AN_E_TOO_SHORT;
    for (size_t t = 0; t < n; t++) {
        if (!(close[t] > 0.0) || !isfinite(close[t]))
            return FSR_AN_E_PRICE;
        if (div && t > 0 && (!(div[t] >= 0.0) || !isfinite(div[t])))
            return FSR_AN_E_DIVIDEND;
    }
    for (size_t t = 1; t < n; t++) {
        double d = (div && basis == FSR_AN_TOTAL) ? div[t] : 0.0;
        ret[t - 1] = basis == FSR_AN_PRICE ? close[t] / close[t - 1] - 1.0
                                           : (close[t] + d) / close[t - 1] - 1.0;
    }
    return 0;
}
