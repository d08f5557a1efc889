/* SPDX-License-Identifier: MIT */
/*
 * In-process timings of lib/analytics (docs/PERFORMANCE.md, "Analytics"):
 *
 *   analytics_bench [ROUNDS]
 *
 * 1. Every per-series metric of ten years of one daily series against a benchmark: both
 *    price series (2,520 returns, quarterly dividends, the benchmark missing some dates) are
 *    aligned, total returns built, every metric and VaR/ES computed, and the calendar-year
 *    plus four window period returns linked -- what GET /equities/{id}/analytics does after
 *    loading the prices.  Target (the issue): under 1 ms.
 * 2. A 100 x 100 sample covariance and correlation matrix over three years (756 returns),
 *    plus the portfolio volatility and risk contributions of 100 weights; and the same with
 *    the 100 price series aligned first.
 * 3. Smaller things for scale: TWR over ten years of values with monthly flows, XIRR of 121
 *    monthly flows.
 *
 * Each case runs ROUNDS times (default 2000 / 200) after a warm-up; the median and the best
 * time per run are printed.  Exit status 1 if the median of case 1 misses 1 ms.
 */
#include "fsr/analytics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static double uniform(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(void)
{
    return sqrt(-2.0 * log(uniform())) * cos(2.0 * M_PI * uniform());
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct timing {
    double median_us;
    double best_us;
} timing;

static timing summarize(double *t, int n)
{
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    return (timing){ t[n / 2], t[0] };
}

/* Weekdays from |start| on, |n| of them (a 252-day year is close enough for timing). */
static void weekdays(int32_t start, size_t n, int32_t *out)
{
    int32_t d = start;
    for (size_t i = 0; i < n; i++) {
        /* 1970-01-01 was a Thursday: weekday = (d + 3) % 7, Monday = 0. */
        while ((d + 3) % 7 >= 5)
            d++;
        out[i] = d++;
    }
}

static void price_path(double p0, double vol, size_t n, double *out)
{
    double p = p0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            p *= 1.0 + 0.0003 + vol * normal();
        out[i] = round(p * 100.0) / 100.0;
    }
}

static volatile double sink; /* keeps results alive */

/* 1. Ten years of one series against a benchmark. */
static int bench_series(int rounds)
{
    const size_t n = 2521; /* ten 252-day years of returns */
    int32_t *days = malloc(n * sizeof(int32_t)), *bdays = malloc(n * sizeof(int32_t));
    double *close = malloc(n * sizeof(double)), *bclose = malloc(n * sizeof(double));
    weekdays(fsr_an_day_from_civil(2015, 1, 2), n, days);
    price_path(50.0, 0.015, n, close);
    /* The benchmark lacks every 50th date of the security and has its own path. */
    size_t nb = 0;
    double tmp[2521];
    price_path(2000.0, 0.01, n, tmp);
    for (size_t i = 0; i < n; i++)
        if (i % 50 != 25) {
            bdays[nb] = days[i];
            bclose[nb++] = tmp[i];
        }
    int32_t divd[40];
    double diva[40];
    for (int q = 0; q < 40; q++) {
        divd[q] = days[30 + 63 * q];
        diva[q] = 0.25 + 0.005 * q;
    }
    fsr_an_series s[2] = { { days, close, n, divd, diva, 40 },
                           { bdays, bclose, nb, NULL, NULL, 0 } };

    size_t ld = nb;
    int32_t *cd = malloc(ld * sizeof(int32_t));
    double *ret = malloc(2 * ld * sizeof(double)), *work = malloc(ld * sizeof(double));
    int32_t y2023 = fsr_an_day_from_civil(2023, 12, 31);
    double *t = malloc((size_t)rounds * sizeof(double));
    size_t m = 0;
    for (int r = -rounds / 10; r < rounds; r++) {
        double t0 = now_us();
        fsr_an_metrics met;
        fsr_an_period years[16], p[4];
        if (fsr_an_align(s, 2, FSR_AN_TOTAL, cd, NULL, NULL, ret, ld, &m) != 0 ||
            fsr_an_metrics_compute(ret, ret + ld, m - 1, 0.02, work, &met) != 0 ||
            fsr_an_year_returns(cd, ret, m - 1, years, 16) < 10 ||
            fsr_an_period_return(cd, ret, m - 1, y2023 - 92, y2023, &p[0]) != 0 ||
            fsr_an_period_return(cd, ret, m - 1, y2023 - 184, y2023, &p[1]) != 0 ||
            fsr_an_period_return(cd, ret, m - 1, y2023 - 365, y2023, &p[2]) != 0 ||
            fsr_an_period_return(cd, ret, m - 1, cd[0], cd[m - 1], &p[3]) != 0) {
            fprintf(stderr, "analytics_bench: series case failed\n");
            return 2;
        }
        sink = met.sharpe + met.var[1].cornish_fisher + years[3].total_return + p[2].total_return;
        if (r >= 0)
            t[r] = now_us() - t0;
    }
    timing a = summarize(t, rounds);

    /* The same without the alignment: metrics + VaR alone on the aligned returns. */
    for (int r = 0; r < rounds; r++) {
        double t0 = now_us();
        fsr_an_metrics met;
        fsr_an_metrics_compute(ret, ret + ld, m - 1, 0.02, work, &met);
        sink = met.sortino;
        t[r] = now_us() - t0;
    }
    timing b = summarize(t, rounds);
    /* And with work == NULL (one malloc per call). */
    for (int r = 0; r < rounds; r++) {
        double t0 = now_us();
        fsr_an_metrics met;
        fsr_an_metrics_compute(ret, ret + ld, m - 1, 0.02, NULL, &met);
        sink = met.sortino;
        t[r] = now_us() - t0;
    }
    timing c = summarize(t, rounds);

    printf("10-year series vs benchmark: %zu + %zu prices, %zu aligned returns, 40 dividends\n", n,
           nb, m - 1);
    printf("  align + total returns + all metrics + VaR/ES + 10 years + 4 periods: "
           "median %8.1f us, best %8.1f us\n",
           a.median_us, a.best_us);
    printf("  all metrics + VaR/ES only (caller work buffer):                      "
           "median %8.1f us, best %8.1f us\n",
           b.median_us, b.best_us);
    printf("  all metrics + VaR/ES only (work = NULL, one malloc):                 "
           "median %8.1f us, best %8.1f us\n",
           c.median_us, c.best_us);
    int fail = a.median_us >= 1000.0;
    printf("  target < 1 ms in-process: %s\n", fail ? "MISSED" : "met");
    free(days);
    free(bdays);
    free(close);
    free(bclose);
    free(cd);
    free(ret);
    free(work);
    free(t);
    return fail;
}

/* 2. 100 x 100 covariance over three years. */
static void bench_covariance(int rounds)
{
    const size_t k = 100, n = 757; /* 756 returns */
    int32_t *days = malloc(n * sizeof(int32_t));
    weekdays(fsr_an_day_from_civil(2021, 1, 4), n, days);
    double *close = malloc(k * n * sizeof(double)), *ret = malloc(k * n * sizeof(double));
    fsr_an_series *s = malloc(k * sizeof(fsr_an_series));
    for (size_t j = 0; j < k; j++) {
        price_path(20.0 + (double)j, 0.01 + 0.0002 * (double)j, n, close + j * n);
        s[j] = (fsr_an_series){ days, close + j * n, n, NULL, NULL, 0 };
    }
    int32_t *cd = malloc(n * sizeof(int32_t));
    size_t m = 0;
    fsr_an_align(s, k, FSR_AN_TOTAL, cd, NULL, NULL, ret, n, &m);
    double *cov = malloc(k * k * sizeof(double)), *corr = malloc(k * k * sizeof(double));
    double *work = malloc(fsr_an_cov_work_size(k, m - 1) * sizeof(double));
    double w[100], rc[100], mc[100];
    for (size_t j = 0; j < k; j++)
        w[j] = 0.0095;
    double *t = malloc((size_t)rounds * sizeof(double));

    for (int r = -rounds / 10; r < rounds; r++) {
        double t0 = now_us();
        fsr_an_cov(ret, k, m - 1, n, cov, NULL, work);
        sink = cov[k + 2];
        if (r >= 0)
            t[r] = now_us() - t0;
    }
    timing a = summarize(t, rounds);
    for (int r = 0; r < rounds; r++) {
        double t0 = now_us();
        fsr_an_cov(ret, k, m - 1, n, cov, corr, work);
        fsr_an_risk risk;
        fsr_an_portfolio_risk(cov, k, w, &risk, rc, mc);
        sink = corr[k + 2] + risk.volatility + rc[5];
        t[r] = now_us() - t0;
    }
    timing b = summarize(t, rounds);
    for (int r = 0; r < rounds; r++) {
        double t0 = now_us();
        fsr_an_align(s, k, FSR_AN_TOTAL, cd, NULL, NULL, ret, n, &m);
        fsr_an_cov(ret, k, m - 1, n, cov, corr, NULL);
        fsr_an_risk risk;
        fsr_an_portfolio_risk(cov, k, w, &risk, rc, mc);
        sink = risk.volatility;
        t[r] = now_us() - t0;
    }
    timing c = summarize(t, rounds);
    printf("100 x 100 covariance, %zu returns (3 years):\n", m - 1);
    printf("  covariance matrix:                                          "
           "median %8.1f us, best %8.1f us\n",
           a.median_us, a.best_us);
    printf("  covariance + correlation + volatility/risk contributions:   "
           "median %8.1f us, best %8.1f us\n",
           b.median_us, b.best_us);
    printf("  align 100 price series + all of the above (work = NULL):    "
           "median %8.1f us, best %8.1f us\n",
           c.median_us, c.best_us);
    free(days);
    free(close);
    free(ret);
    free(s);
    free(cd);
    free(cov);
    free(corr);
    free(work);
    free(t);
}

/* 3. TWR and XIRR for scale. */
static void bench_flows(int rounds)
{
    const size_t n = 2521;
    int32_t *days = malloc(n * sizeof(int32_t)), fd[121];
    double *v = malloc(n * sizeof(double)), *r = malloc(n * sizeof(double)), f[121];
    weekdays(fsr_an_day_from_civil(2015, 1, 2), n, days);
    price_path(100000.0, 0.008, n, v);
    for (size_t i = 0; i < 120; i++) {
        fd[i] = days[1 + 21 * i];
        f[i] = 1000.0;
    }
    double *t = malloc((size_t)rounds * sizeof(double));
    for (int k = -rounds / 10; k < rounds; k++) {
        double t0 = now_us();
        fsr_an_twr out;
        fsr_an_twr_compute(days, v, n, fd, f, 120, FSR_AN_FLOW_START, r, &out);
        sink = out.annualized;
        if (k >= 0)
            t[k] = now_us() - t0;
    }
    timing a = summarize(t, rounds);
    /* XIRR: the 120 deposits (negative) and the final value. */
    for (size_t i = 0; i < 120; i++)
        f[i] = -1000.0;
    fd[120] = days[n - 1];
    f[120] = 190000.0;
    double rate = 0;
    for (int k = 0; k < rounds; k++) {
        double t0 = now_us();
        fsr_an_xirr(fd, f, 121, &rate);
        sink = rate;
        t[k] = now_us() - t0;
    }
    timing b = summarize(t, rounds);
    printf("flows:\n");
    printf("  TWR, 2,520 daily returns, 120 flows (start of day):         "
           "median %8.1f us, best %8.1f us\n",
           a.median_us, a.best_us);
    printf("  XIRR, 121 flows over 10 years (rate %.6f):                "
           "median %8.1f us, best %8.1f us\n",
           rate, b.median_us, b.best_us);
    free(days);
    free(v);
    free(r);
    free(t);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 2000;
    if (rounds < 10)
        rounds = 10;
    int rv = bench_series(rounds);
    bench_covariance(rounds / 10 < 10 ? 10 : rounds / 10);
    bench_flows(rounds);
    return rv;
}
