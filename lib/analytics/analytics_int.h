/* SPDX-License-Identifier: MIT */
/* Internal helpers of the analytics library: compensated sums and sorting.  Never included
 * outside lib/analytics/. */
#ifndef FSR_ANALYTICS_INT_H
#define FSR_ANALYTICS_INT_H

#include <math.h>
#include <stddef.h>

#define FSR__AN_A 252.0 /* return observations per year */

/*
 * Neumaier's improved Kahan summation: |s| carries the running sum and |c| the rounding
 * error lost so far, so the total s + c is exact to about one rounding of the result
 * regardless of n.  This keeps means and sums of squares within ~1e-16 relative of
 * numpy's pairwise sums, which is what the 1e-12 / 1e-9 reference tolerances need.  The
 * library is compiled with -ffp-contract=off and without -ffast-math, which this relies on.
 */
typedef struct fsr__an_sum {
    double s;
    double c;
} fsr__an_sum;

static inline void fsr__an_add(fsr__an_sum *a, double x)
{
    double t = a->s + x;
    if (fabs(a->s) >= fabs(x))
        a->c += (a->s - t) + x;
    else
        a->c += (x - t) + a->s;
    a->s = t;
}

static inline double fsr__an_total(const fsr__an_sum *a)
{
    return a->s + a->c;
}

/* Compensated sum of |x|[0..n-1]. */
double fsr__an_sum_array(const double *x, size_t n);

/* Sorts |x|[0..n-1] ascending in place (finite values only). */
void fsr__an_sort(double *x, size_t n);

/* VaR / ES from the returns sorted ascending, with their sample mean and stdev and
 * population skewness and excess kurtosis. */
struct fsr_an_var;
void fsr__an_var_sorted(const double *x, size_t n, double mean, double sd, double skew,
                        double exkurt, double confidence, struct fsr_an_var *out);

#endif /* FSR_ANALYTICS_INT_H */
