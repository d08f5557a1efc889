/* SPDX-License-Identifier: MIT */
/* Multi-period linking of single-period attribution effects (Carino): fsr/analytics.h. */
#include "fsr/analytics.h"

#include <math.h>

/* ln(1 + a) - ln(1 + b), divided by a - b; 1 / (1 + b) when they are equal. */
static double carino_k(double a, double b)
{
    double d = a - b;
    double x = d / (1.0 + b);
    if (x == 0.0)
        return 1.0 / (1.0 + b);
    return log1p(x) / d;
}

int fsr_an_carino_factors(const double *rp, const double *rb, size_t n, double *factors,
                          double *total_rp, double *total_rb)
{
    if (rp == NULL || rb == NULL || factors == NULL)
        return FSR_AN_E_ARG;
    if (n == 0)
        return FSR_AN_E_EMPTY;
    double gp = 1.0, gb = 1.0;
    for (size_t t = 0; t < n; t++) {
        if (!isfinite(rp[t]) || !isfinite(rb[t]))
            return FSR_AN_E_NONFINITE;
        if (rp[t] <= -1.0 || rb[t] <= -1.0)
            return FSR_AN_E_RETURN;
        gp *= 1.0 + rp[t];
        gb *= 1.0 + rb[t];
    }
    double R = gp - 1.0, B = gb - 1.0;
    if (!isfinite(R) || !isfinite(B) || gp <= 0.0 || gb <= 0.0)
        return FSR_AN_E_NONFINITE;
    double k = carino_k(R, B);
    for (size_t t = 0; t < n; t++)
        factors[t] = carino_k(rp[t], rb[t]) / k;
    if (total_rp != NULL)
        *total_rp = R;
    if (total_rb != NULL)
        *total_rb = B;
    return 0;
}
