/* SPDX-License-Identifier: MIT */
/* fsr_an_carino_factors() (fsr/analytics.h): Carino linking of daily attribution effects. */
#include "fsr/analytics.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>

/* Linked BF effects of a 3-day, 2-class example sum to the cumulative active return. */
START_TEST(test_carino_sums_to_active)
{
    const double wp[3][2] = { { 0.7, 0.3 }, { 0.65, 0.35 }, { 0.8, 0.2 } };
    const double wb[3][2] = { { 0.6, 0.4 }, { 0.6, 0.4 }, { 0.6, 0.4 } };
    const double rpc[3][2] = { { 0.012, -0.003 }, { -0.021, 0.004 }, { 0.0075, 0.001 } };
    const double rbc[3][2] = { { 0.010, -0.001 }, { -0.018, 0.002 }, { 0.0060, 0.0005 } };
    double rp[3], rb[3], eff[3];
    for (int t = 0; t < 3; t++) {
        fsr_an_attr_total tot;
        ck_assert_int_eq(
            fsr_an_attribution(wp[t], wb[t], rpc[t], rbc[t], 2, FSR_AN_BRINSON_FACHLER, NULL, &tot),
            0);
        rp[t] = tot.portfolio_return;
        rb[t] = tot.benchmark_return;
        eff[t] = tot.allocation + tot.selection + tot.interaction;
    }
    double f[3], R, B;
    ck_assert_int_eq(fsr_an_carino_factors(rp, rb, 3, f, &R, &B), 0);
    ck_assert_double_eq_tol(R, (1 + rp[0]) * (1 + rp[1]) * (1 + rp[2]) - 1, 1e-15);
    ck_assert_double_eq_tol(B, (1 + rb[0]) * (1 + rb[1]) * (1 + rb[2]) - 1, 1e-15);
    double linked = 0;
    for (int t = 0; t < 3; t++) {
        double kt = (log(1 + rp[t]) - log(1 + rb[t])) / (rp[t] - rb[t]);
        double k = (log(1 + R) - log(1 + B)) / (R - B);
        ck_assert_double_eq_tol(f[t], kt / k, 1e-12);
        linked += f[t] * eff[t];
    }
    ck_assert_double_eq_tol(linked, R - B, 1e-15);
}
END_TEST

/* Equal returns use 1 / (1 + r); a day with equal returns contributes nothing. */
START_TEST(test_carino_equal_returns)
{
    const double rp[2] = { 0.01, 0.02 }, rb[2] = { 0.01, 0.02 };
    double f[2], R, B;
    ck_assert_int_eq(fsr_an_carino_factors(rp, rb, 2, f, &R, &B), 0);
    ck_assert_double_eq(R, B);
    /* k = 1 / (1 + R), k_t = 1 / (1 + r_t) */
    ck_assert_double_eq_tol(f[0], (1 + R) / 1.01, 1e-14);
    ck_assert_double_eq_tol(f[1], (1 + R) / 1.02, 1e-14);
    for (int t = 0; t < 2; t++)
        ck_assert(isfinite(f[t]));
}
END_TEST

START_TEST(test_carino_errors)
{
    double r[2] = { 0.01, -1.0 }, b[2] = { 0, 0 }, f[2];
    ck_assert_int_eq(fsr_an_carino_factors(NULL, b, 2, f, NULL, NULL), FSR_AN_E_ARG);
    ck_assert_int_eq(fsr_an_carino_factors(r, b, 0, f, NULL, NULL), FSR_AN_E_EMPTY);
    ck_assert_int_eq(fsr_an_carino_factors(r, b, 2, f, NULL, NULL), FSR_AN_E_RETURN);
    r[1] = NAN;
    ck_assert_int_eq(fsr_an_carino_factors(r, b, 2, f, NULL, NULL), FSR_AN_E_NONFINITE);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("analytics_link");
    TCase *tc = tcase_create("carino");
    tcase_add_test(tc, test_carino_sums_to_active);
    tcase_add_test(tc, test_carino_equal_returns);
    tcase_add_test(tc, test_carino_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
