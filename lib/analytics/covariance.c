/* SPDX-License-Identifier: MIT */
/* Analytics: sample covariance and correlation matrices, and covariance risk of weights. */
#include "fsr/analytics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "analytics_int.h"

size_t fsr_an_cov_work_size(size_t k, size_t n)
{
    return k * n;
}

/*
 * Dot products of the centred row |a| with rows b0..b3.  Four rows at once reuse each load
 * of |a| and give the CPU eight independent addition chains (two per row, even and odd
 * terms); without -ffast-math the compiler may not reassociate a single chain itself.
 * On centred data plain sums are as accurate as numpy's BLAS dot.
 */
static void dot4(const double *a, const double *b0, const double *b1, const double *b2,
                 const double *b3, size_t n, double out[4])
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0, t0 = 0, t1 = 0, t2 = 0, t3 = 0;
    size_t t = 0;
    for (; t + 1 < n; t += 2) {
        double x = a[t], y = a[t + 1];
        s0 += x * b0[t];
        t0 += y * b0[t + 1];
        s1 += x * b1[t];
        t1 += y * b1[t + 1];
        s2 += x * b2[t];
        t2 += y * b2[t + 1];
        s3 += x * b3[t];
        t3 += y * b3[t + 1];
    }
    if (t < n) {
        s0 += a[t] * b0[t];
        s1 += a[t] * b1[t];
        s2 += a[t] * b2[t];
        s3 += a[t] * b3[t];
    }
    out[0] = s0 + t0;
    out[1] = s1 + t1;
    out[2] = s2 + t2;
    out[3] = s3 + t3;
}

static double dot1(const double *a, const double *b, size_t n)
{
    double s = 0, u = 0;
    size_t t = 0;
    for (; t + 1 < n; t += 2) {
        s += a[t] * b[t];
        u += a[t + 1] * b[t + 1];
    }
    if (t < n)
        s += a[t] * b[t];
    return s + u;
}

int fsr_an_cov(const double *x, size_t k, size_t n, size_t ld, double *cov, double *corr,
               double *work)
{
    if (!x || !cov || k == 0)
        return FSR_AN_E_ARG;
    if (ld < n)
        return FSR_AN_E_BUFFER;
    if (n < 2)
        return FSR_AN_E_TOO_SHORT;
    for (size_t j = 0; j < k; j++)
        for (size_t t = 0; t < n; t++)
            if (!isfinite(x[j * ld + t]))
                return FSR_AN_E_NONFINITE;
    double *c = work ? work : malloc(fsr_an_cov_work_size(k, n) * sizeof(double));
    if (!c)
        return -ENOMEM;

    /* Two-pass: compensated means, then products of the centred rows. */
    for (size_t j = 0; j < k; j++) {
        const double *row = x + j * ld;
        double mean = fsr__an_sum_array(row, n) / (double)n;
        for (size_t t = 0; t < n; t++)
            c[j * n + t] = row[t] - mean;
    }
    const double denom = (double)(n - 1);
    for (size_t i = 0; i < k; i++) {
        const double *a = c + i * n;
        size_t j = i;
        for (; j + 4 <= k; j += 4) {
            double d[4];
            dot4(a, c + j * n, c + (j + 1) * n, c + (j + 2) * n, c + (j + 3) * n, n, d);
            for (size_t q = 0; q < 4; q++)
                cov[i * k + j + q] = cov[(j + q) * k + i] = d[q] / denom;
        }
        for (; j < k; j++)
            cov[i * k + j] = cov[j * k + i] = dot1(a, c + j * n, n) / denom;
    }

    if (corr) {
        /* numpy's corrcoef: (c_ij / sd_i) / sd_j, clipped to [-1, 1]. */
        for (size_t i = 0; i < k; i++) {
            double si = sqrt(cov[i * k + i]);
            for (size_t j = 0; j < k; j++) {
                double sj = sqrt(cov[j * k + j]);
                double v;
                if (si == 0.0 || sj == 0.0)
                    v = NAN;
                else if (i == j)
                    v = 1.0;
                else
                    v = fmax(-1.0, fmin(1.0, cov[i * k + j] / si / sj));
                corr[i * k + j] = v;
            }
        }
    }
    if (!work)
        free(c);
    return 0;
}

int fsr_an_portfolio_risk(const double *cov, size_t k, const double *w, fsr_an_risk *out,
                          double *risk_contrib, double *marginal)
{
    if (!cov || !w || !out || k == 0)
        return FSR_AN_E_ARG;
    fsr__an_sum ws = { 0 };
    for (size_t i = 0; i < k; i++) {
        if (!isfinite(w[i]))
            return FSR_AN_E_NONFINITE;
        if (w[i] < 0.0)
            return FSR_AN_E_WEIGHTS;
        fsr__an_add(&ws, w[i]);
        for (size_t j = 0; j < k; j++)
            if (!isfinite(cov[i * k + j]))
                return FSR_AN_E_NONFINITE;
    }
    double wsum = fsr__an_total(&ws);
    if (wsum > 1.0 + 1e-9)
        return FSR_AN_E_WEIGHTS;

    /* w' C w = sum_i w_i (C w)_i; (C w)_i is recomputed below rather than stored, so the
     * function needs no scratch memory (k^2 extra multiplications). */
    fsr__an_sum var = { 0 };
    for (size_t i = 0; i < k; i++) {
        fsr__an_sum cw = { 0 };
        for (size_t j = 0; j < k; j++)
            fsr__an_add(&cw, cov[i * k + j] * w[j]);
        fsr__an_add(&var, w[i] * fsr__an_total(&cw));
    }
    double v = fsr__an_total(&var);
    double sd = sqrt(v);
    for (size_t i = 0; i < k && (risk_contrib || marginal); i++) {
        fsr__an_sum cw = { 0 };
        for (size_t j = 0; j < k; j++)
            fsr__an_add(&cw, cov[i * k + j] * w[j]);
        double cwi = fsr__an_total(&cw);
        if (risk_contrib)
            risk_contrib[i] = v == 0.0 ? NAN : w[i] * cwi / v;
        if (marginal)
            marginal[i] = v == 0.0 ? NAN : cwi / sd * sqrt(FSR__AN_A);
    }
    out->variance_daily = v;
    out->volatility = sd * sqrt(FSR__AN_A);
    out->cash_weight = 1.0 - wsum;
    return 0;
}
