/* SPDX-License-Identifier: MIT */
/*
 * svc_portfolio/risk_math.c: the O(n T) covariance risk (r_p series, cov(r_i, r_p)) equals
 * ANALYTICS.md covariance_risk as lib/analytics computes it with the full matrix
 * (fsr_an_cov + fsr_an_portfolio_risk); grid alignment; beta; the degenerate cases.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "fsr/analytics.h"

#include "../../svc_portfolio/risk.h"

/* Deterministic pseudo-random returns (an LCG), so the test needs no data file. */
static double rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((double)((*s >> 8) & 0xffff) / 65535.0 - 0.5) * 0.04;
}

static void check_case(size_t k, size_t t, unsigned seed, double cash)
{
    double *ret = malloc(sizeof(double) * k * t);
    double *w = malloc(sizeof(double) * k);
    double *cov = malloc(sizeof(double) * k * k);
    double *rc = malloc(sizeof(double) * k), *mc = malloc(sizeof(double) * k);
    double *rc2 = malloc(sizeof(double) * k), *mc2 = malloc(sizeof(double) * k);
    double *rp = malloc(sizeof(double) * t);
    unsigned s = seed;
    double sum = 0.0;
    for (size_t i = 0; i < k; i++) {
        w[i] = 0.1 + (double)((s = s * 69069u + 1u) >> 24) / 255.0;
        sum += w[i];
        for (size_t j = 0; j < t; j++)
            ret[i * t + j] = rnd(&s) + 0.3 * ret[j] * (i > 0); /* correlated with series 0 */
    }
    for (size_t i = 0; i < k; i++)
        w[i] *= (1.0 - cash) / sum;
    ck_assert_int_eq(fsr_an_cov(ret, k, t, t, cov, NULL, NULL), 0);
    fsr_an_risk ref;
    ck_assert_int_eq(fsr_an_portfolio_risk(cov, k, w, &ref, rc2, mc2), 0);
    pf_risk_out out;
    ck_assert_int_eq(pf_risk_compute(ret, k, t, w, rp, rc, mc, &out), 0);
    ck_assert_double_le(fabs(out.variance_daily - ref.variance_daily), 1e-12 * ref.variance_daily);
    ck_assert_double_le(fabs(out.volatility - ref.volatility), 1e-12 * ref.volatility);
    double total = 0.0;
    for (size_t i = 0; i < k; i++) {
        ck_assert_double_le(fabs(rc[i] - rc2[i]), 1e-12);
        ck_assert_double_le(fabs(mc[i] - mc2[i]), 1e-12 * fabs(mc2[i]) + 1e-15);
        total += rc[i];
    }
    ck_assert_double_le(fabs(total - 1.0), 1e-12);
    free(ret);
    free(w);
    free(cov);
    free(rc);
    free(mc);
    free(rc2);
    free(mc2);
    free(rp);
}

START_TEST(test_pf_risk_equals_covariance_risk)
{
    check_case(2, 5, 1, 0.0);
    check_case(3, 20, 7, 0.1);
    check_case(7, 60, 42, 0.35);
    check_case(25, 252, 9, 0.02);
}
END_TEST

START_TEST(test_pf_risk_grid_compounds_and_carries)
{
    /* Returns dated 2, 3, 5, 9; grid 1, 3, 4, 6: (1,3] = 2 and 3, (3,4] none, (4,6] = 5. */
    int32_t days[] = { 2, 3, 5, 9 };
    double r[] = { 0.01, -0.02, 0.03, 0.5 };
    int32_t grid[] = { 1, 3, 4, 6 };
    double out[3];
    pf_risk_grid_returns(days, r, 4, grid, 3, out);
    ck_assert_double_eq_tol(out[0], 1.01 * 0.98 - 1.0, 1e-15);
    ck_assert_double_eq(out[1], 0.0);
    ck_assert_double_eq_tol(out[2], 0.03, 1e-15);
    /* A return dated on the grid's base date is before the window. */
    int32_t grid2[] = { 2, 3 };
    pf_risk_grid_returns(days, r, 4, grid2, 1, out);
    ck_assert_double_eq_tol(out[0], -0.02, 1e-15);
}
END_TEST

START_TEST(test_pf_risk_degenerate)
{
    double ret[] = { 0.01, 0.01, 0.01, 0.02, -0.01, 0.0 };
    double w[] = { 0.5, 0.0 };
    double rp[3], rc[2], mc[2];
    pf_risk_out out;
    ck_assert_int_eq(pf_risk_compute(ret, 2, 1, w, rp, rc, mc, &out), FSR_AN_E_TOO_SHORT);
    /* Only the constant series is weighted: zero variance, reported, never NaN. */
    ck_assert_int_eq(pf_risk_compute(ret, 2, 3, w, rp, rc, mc, &out), PF_RISK_E_ZERO_VARIANCE);
    ck_assert_double_eq(out.volatility, 0.0);
    double beta;
    ck_assert_int_eq(pf_risk_beta(ret + 3, ret, 3, &beta), PF_RISK_E_ZERO_VARIANCE);
    double x[] = { 0.02, -0.01, 0.03, 0.0 }, b[] = { 0.01, -0.02, 0.02, 0.01 };
    ck_assert_int_eq(pf_risk_beta(x, b, 4, &beta), 0);
    /* numpy: np.cov(x, b)[0, 1] / np.var(b, ddof=1) */
    double mx = 0.01, mb = 0.005, cxb = 0, vb = 0;
    for (int i = 0; i < 4; i++) {
        cxb += (x[i] - mx) * (b[i] - mb);
        vb += (b[i] - mb) * (b[i] - mb);
    }
    ck_assert_double_eq_tol(beta, cxb / vb, 1e-15);
}
END_TEST

static Suite *pf_risk_suite(void)
{
    Suite *s = suite_create("pf_risk");
    TCase *tc = tcase_create("risk_math");
    tcase_add_test(tc, test_pf_risk_equals_covariance_risk);
    tcase_add_test(tc, test_pf_risk_grid_compounds_and_carries);
    tcase_add_test(tc, test_pf_risk_degenerate);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pf_risk_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
