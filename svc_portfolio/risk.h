/* SPDX-License-Identifier: MIT */
/*
 * svc_portfolio's risk (risk.c, risk_math.c): the return series of a valuation's holdings
 * over a lookback window and the risk figures of Calculate.  risk_math.c is pure (no I/O),
 * so test/unit/pf_risk_test.c links it alone.
 */
#ifndef PF_RISK_H
#define PF_RISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* pf_risk_compute()/pf_risk_beta(): the variance is zero (no risk to apportion). */
#define PF_RISK_E_ZERO_VARIANCE (-1201)

/* Portfolio-level results of pf_risk_compute(). */
typedef struct pf_risk_out {
    double variance_daily; /* var(r_p) = w' C w, sample (n - 1) */
    double volatility;     /* sqrt(w' C w) x sqrt(252) */
    double mean_daily;     /* mean(r_p) */
} pf_risk_out;

/*
 * Aligns one dated return series to a grid: |days|/|r| are |n| returns dated by their end
 * date (ascending day serials), |grid| holds |t| + 1 ascending dates.  out[k - 1] is the
 * return compounded over the returns dated in (grid[k - 1], grid[k]] (0 when there is none:
 * the price is carried forward).  Returns 0.
 */
int pf_risk_grid_returns(const int32_t *days, const double *r, size_t n, const int32_t *grid,
                         size_t t, double *out);

/*
 * Covariance risk of |k| holdings with weights |w| (fractions of the whole portfolio; the
 * rest is cash with zero return) over |t| aligned daily returns |ret| (row i is
 * ret[i * t .. i * t + t - 1]), in O(k t) without a covariance matrix: writes the portfolio
 * return series into |rp| (t), and into |contrib|/|marginal| (k) the risk contributions
 * w_i cov(r_i, r_p) / var(r_p) (summing to 1) and the marginal contributions
 * cov(r_i, r_p) / sd(r_p) x sqrt(252), and fills *|out|.  Equal to ANALYTICS.md
 * covariance_risk (fsr_an_cov() + fsr_an_portfolio_risk()).
 *
 * Returns 0; FSR_AN_E_TOO_SHORT (t < 2); FSR_AN_E_NONFINITE; or PF_RISK_E_ZERO_VARIANCE
 * (|rp| and *|out| are then filled, |contrib|/|marginal| are not).
 */
int pf_risk_compute(const double *ret, size_t k, size_t t, const double *w, double *rp,
                    double *contrib, double *marginal, pf_risk_out *out);

/*
 * Beta cov(x, b) / var(b) of the |t| returns |x| against |b|.  Returns 0,
 * FSR_AN_E_TOO_SHORT or PF_RISK_E_ZERO_VARIANCE (var(b) = 0).
 */
int pf_risk_beta(const double *x, const double *b, size_t t, double *beta);

/* ---- risk.c: the series fetch (needs the runtime) ------------------------------------ */

#include "fsr/server.h"

#include "common/v1/common.pb-c.h"

/* One instrument's return series: the caller sets |type| and |id|, pf_series_fetch() the rest. */
typedef struct pf_series {
    Common__V1__InstrumentType__Value type; /* EQUITY or BOND */
    char *id;                               /* lower-case UUID */
    bool ok;                                /* got a series (possibly empty) */
    const char *error;                      /* !ok: why (client-safe) */
    const char *group;                      /* equity sector / bond issuer ("" if unknown) */
    int32_t *days;                          /* n return dates (days since 1970-01-01) ... */
    double *r;                              /* ... and the total returns dated there */
    size_t n;
    int32_t *price_days; /* the price (point) dates, ascending */
    size_t n_price_days;
    bool unavailable; /* its service failed and nothing was cached */
    bool stale;       /* from a cache entry its service could not refresh */
    double age_s;     /* then: its age */
} pf_series;

/* Called once with the filled series (|s| as given), never from inside pf_series_fetch(). */
typedef void (*pf_series_cb)(fsr_call *call, pf_series *s, size_t n, void *arg);

/*
 * The total-return series of the |n| instruments |s| over the |lookback| returns up to
 * |as_of|: equities from one equity.v1 BatchQuotes (lookback, TOTAL, prices and returns),
 * bonds from one fixed_income.v1 BatchPriceHistory ((dirty_t + cash_paid_t) / dirty_{t-1}
 * - 1, from as_of - (lookback x 7/5 + 31) days), in parallel, behind the portfolio Redis
 * cache.  A failed service leaves its instruments with |error| set; |cb| always runs.
 */
void pf_series_fetch(fsr_call *call, const char *as_of, int lookback, pf_series *s, size_t n,
                     pf_series_cb cb, void *arg);

/* Day serial (since 1970-01-01) of "YYYY-MM-DD", INT32_MIN if it does not parse. */
int32_t pf_day_of(const char *date);
/* "YYYY-MM-DD" of |day| in the call's arena. */
char *pf_date_text(fsr_call *call, int32_t day);

#endif /* PF_RISK_H */
