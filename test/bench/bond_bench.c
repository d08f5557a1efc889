/* SPDX-License-Identifier: MIT */
/*
 * In-process throughput of the bond math (svc_fixed_income/bondmath.h) on a mixed set of
 * bonds, optionally side by side with QuantLib-Python doing the same work on the same set
 * (test/bench/bond_bench_ql.py, run from here so both are measured in one run).
 *
 *   bond_bench                          fi_math only
 *   bond_bench --ql bond_bench_ql.py    also QuantLib-Python, ratios, and the pass criteria
 *   options: --n N (bonds, default 10000)  --python PATH (default /usr/bin/python3)
 *            --ql-repeat R (QuantLib passes, best counts; default 3)
 *
 * Measured (wall clock, CLOCK_MONOTONIC, best of several passes over the whole set):
 *   price:  fi_bond_price() per bond: accrued, clean, dirty, Macaulay and modified duration,
 *           convexity, BPV from a yield.  QuantLib: BondFunctions.cleanPrice, duration
 *           (Modified) and convexity.
 *   yield:  fi_bond_yield() per bond from its clean price.  QuantLib: BondFunctions.bondYield
 *           (accuracy 1e-12).
 *   30y:    one 30-year semiannual ACT/ACT-ICMA bond (60 periods left), fi_bond_price() in a
 *           loop: ns per call.
 * Bond construction (schedules) is timed separately and excluded from both.
 *
 * Exit status with --ql: 0 when both throughput ratios are >= 100, the 30-year bond prices in
 * under 2 us and the two sides' checksums (sums of clean prices, durations, convexities and
 * solved yields over the set) agree to 1e-9 relative -- proof that they priced the same bonds
 * the same way.  Without --ql only the 2 us criterion applies.
 */
#include "bondmath.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * The bond set, generated identically by bond_bench_ql.py: splitmix64 seeded with 42, draws
 * rnd(n) = next() % n, per bond in this order:
 *   day count   1 + rnd(6)                        (fi_day_count numbering)
 *   frequency   {0, 1, 2, 2, 2, 4, 12}[rnd(7)]
 *   coupon      rnd(1201) / 10000.0, 0 for zero-coupon bonds (the draw is always made)
 *   maturity    settlement + 365 + rnd(29 * 365 + 1) days   (1 to 30 years)
 *   issue       settlement - rnd(3651) days                  (up to 10 years back)
 *   yield       (rnd(1101) - 100) / 10000.0                  (-1% to 10%)
 * with settlement 2024-06-14.  Issue dates are arbitrary, so most schedules have a short
 * first period; settlement falls anywhere in a period, sometimes on a coupon date.
 */
static uint64_t rng_state;

static uint64_t splitmix64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int rnd(int n)
{
    return (int)(splitmix64() % (uint64_t)n);
}

typedef struct bench_bond {
    fi_bond bond;
    double yield;
    double clean; /* at |yield|: the input of the yield benchmark */
} bench_bond;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps results observable so the compiler cannot drop the work. */
static volatile double g_sink;

typedef struct checksums {
    double clean, modified, convexity, yield;
} checksums;

static int run_ql(const char *python, const char *script, int n, int repeat, json_t **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' '%s' --n %d --repeat %d", python, script, n, repeat);
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        perror("popen");
        return -1;
    }
    json_error_t err;
    *out = json_loadf(p, 0, &err);
    int st = pclose(p);
    if (*out == NULL || st != 0) {
        fprintf(stderr, "bond_bench: %s failed (status %d): %s\n", script, st,
                *out ? "" : err.text);
        return -1;
    }
    return 0;
}

static double jnum(const json_t *o, const char *path1, const char *path2)
{
    const json_t *v = json_object_get(o, path1);
    if (path2)
        v = json_object_get(v, path2);
    return json_number_value(v);
}

static int close_rel(double a, double b, double tol)
{
    return fabs(a - b) <= tol * fmax(fabs(a), fabs(b));
}

/*
 * ns per fi_bond_price() and per fi_bond_yield() for a 30-year bond (issued a month before
 * settlement, 4.5% coupon) of every day count and frequency: where the time goes.
 */
static void print_grid(int32_t settle)
{
    static const int fs[5] = { 0, 1, 2, 4, 12 };
    static fi_period ps[FI_MAX_PERIODS];
    printf("  30-year bonds, ns per price / per yield:\n  %-14s", "");
    for (int j = 0; j < 5; j++)
        printf("   f=%-2d        ", fs[j]);
    printf("\n");
    for (int dc = FI_DC_ACT_ACT_ICMA; dc <= FI_DC_ACT_365_FIXED; dc++) {
        printf("  %-14s", fi_day_count_name(dc));
        for (int j = 0; j < 5; j++) {
            fi_terms t = { .coupon_rate = fs[j] ? 0.045 : 0.0,
                           .frequency = fs[j],
                           .day_count = dc,
                           .issue_date = fi_date_parse("2024-05-15"),
                           .maturity_date = fi_date_parse("2054-05-15") };
            fi_bond b;
            if (fi_bond_init(&b, &t, ps, FI_MAX_PERIODS) != 0)
                return;
            const int iters = 100000, yiters = 20000;
            double best_p = 1e30, best_y = 1e30, acc = 0;
            fi_analytics a = { 0 };
            for (int rep = 0; rep < 3; rep++) {
                double t0 = now_s();
                for (int i = 0; i < iters; i++) {
                    fi_bond_price(&b, settle, 0.04 + (i & 1023) * 1e-7, &a);
                    acc += a.dirty_price;
                }
                double t1 = now_s();
                for (int i = 0; i < yiters; i++) {
                    double y = 0;
                    fi_bond_yield(&b, settle, a.clean_price + (i & 15) * 0.01, &y);
                    acc += y;
                }
                double t2 = now_s();
                best_p = fmin(best_p, (t1 - t0) / iters);
                best_y = fmin(best_y, (t2 - t1) / yiters);
            }
            g_sink = acc;
            printf("  %5.0f / %-5.0f ", best_p * 1e9, best_y * 1e9);
        }
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    int n = 10000, ql_repeat = 3;
    const char *ql_script = NULL, *python = "/usr/bin/python3";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ql") == 0 && i + 1 < argc)
            ql_script = argv[++i];
        else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc)
            python = argv[++i];
        else if (strcmp(argv[i], "--ql-repeat") == 0 && i + 1 < argc)
            ql_repeat = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--n N] [--ql bond_bench_ql.py] [--python PATH] "
                    "[--ql-repeat R]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n <= 0)
        return 2;

    /* Build the set (timed: schedule construction, excluded from the per-bond figures). */
    const int32_t settle = fi_date_parse("2024-06-14");
    static const int freqs[7] = { 0, 1, 2, 2, 2, 4, 12 };
    bench_bond *bs = calloc((size_t)n, sizeof(*bs));
    fi_terms *ts = calloc((size_t)n, sizeof(*ts));
    fi_period **bufs = calloc((size_t)n, sizeof(*bufs));
    int *caps = calloc((size_t)n, sizeof(*caps));
    if (bs == NULL || ts == NULL || bufs == NULL || caps == NULL)
        return 1;
    rng_state = 42;
    int nperiods = 0;
    for (int i = 0; i < n; i++) {
        fi_terms *t = &ts[i];
        t->day_count = 1 + rnd(6);
        t->frequency = freqs[rnd(7)];
        double c = rnd(1201) / 10000.0;
        t->coupon_rate = t->frequency ? c : 0.0;
        t->maturity_date = settle + 365 + rnd(29 * 365 + 1);
        t->issue_date = settle - rnd(3651);
        t->first_coupon_date = FI_NO_DATE;
        bs[i].yield = (rnd(1101) - 100) / 10000.0;
        int np = fi_terms_periods(t);
        if (np < 0) {
            fprintf(stderr, "bond %d: %s\n", i, fi_strerror(np));
            return 1;
        }
        caps[i] = np;
        bufs[i] = malloc(sizeof(fi_period) * (size_t)(np > 0 ? np : 1));
        nperiods += np;
    }
    double init_best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        for (int i = 0; i < n; i++)
            if (fi_bond_init(&bs[i].bond, &ts[i], bufs[i], (size_t)caps[i]) != 0)
                return 1;
        init_best = fmin(init_best, now_s() - t0);
    }

    /* Price pass: also the checksums and the clean prices the yield pass starts from. */
    checksums ours = { 0 };
    for (int i = 0; i < n; i++) {
        fi_analytics a;
        if (fi_bond_price(&bs[i].bond, settle, bs[i].yield, &a) != 0)
            return 1;
        bs[i].clean = a.clean_price;
        ours.clean += a.clean_price;
        ours.modified += a.modified_duration;
        ours.convexity += a.convexity;
    }
    double price_best = 1e30;
    for (int rep = 0; rep < 30; rep++) {
        double acc = 0, t0 = now_s();
        for (int i = 0; i < n; i++) {
            fi_analytics a;
            fi_bond_price(&bs[i].bond, settle, bs[i].yield, &a);
            acc += a.dirty_price + a.convexity;
        }
        price_best = fmin(price_best, now_s() - t0);
        g_sink = acc;
    }

    double yield_best = 1e30, max_dy = 0;
    for (int rep = 0; rep < 10; rep++) {
        double acc = 0, t0 = now_s();
        for (int i = 0; i < n; i++) {
            double y;
            if (fi_bond_yield(&bs[i].bond, settle, bs[i].clean, &y) != 0) {
                fprintf(stderr, "bond %d: no yield\n", i);
                return 1;
            }
            acc += y;
            if (rep == 0)
                max_dy = fmax(max_dy, fabs(y - bs[i].yield));
        }
        yield_best = fmin(yield_best, now_s() - t0);
        ours.yield = acc;
    }

    /* One 30-year semiannual bond, priced over and over. */
    fi_terms t30 = { .coupon_rate = 0.045,
                     .frequency = 2,
                     .day_count = FI_DC_ACT_ACT_ICMA,
                     .issue_date = fi_date_parse("2024-05-15"),
                     .maturity_date = fi_date_parse("2054-05-15"),
                     .first_coupon_date = FI_NO_DATE };
    static fi_period p30[FI_MAX_PERIODS];
    fi_bond b30;
    if (fi_bond_init(&b30, &t30, p30, FI_MAX_PERIODS) != 0)
        return 1;
    const int iters = 2000000;
    double one_best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double acc = 0, t0 = now_s();
        for (int i = 0; i < iters; i++) {
            fi_analytics a;
            fi_bond_price(&b30, settle, 0.04 + (i & 1023) * 1e-7, &a);
            acc += a.dirty_price + a.modified_duration + a.convexity;
        }
        one_best = fmin(one_best, now_s() - t0);
        g_sink = acc;
    }
    double ns30 = one_best / iters * 1e9;

    double price_ns = price_best / n * 1e9, yield_ns = yield_best / n * 1e9;
    printf("bond_bench: %d bonds (%d coupon periods), settlement 2024-06-14\n", n, nperiods);
    printf("  fi_math build (fi_bond_init)     %10.1f ns/bond\n", init_best / n * 1e9);
    printf("  fi_math price+duration+convexity %10.1f ns/bond  %12.0f bonds/s\n", price_ns,
           n / price_best);
    printf("  fi_math yield from clean price   %10.1f ns/bond  %12.0f bonds/s  (max |y - "
           "y0| %.2g)\n",
           yield_ns, n / yield_best, max_dy);
    printf("  30y semiannual ACT/ACT-ICMA price+duration+convexity: %.1f ns/call\n", ns30);

    print_grid(settle);

    int ok = ns30 < 2000.0;
    if (!ok)
        printf("FAIL: 30-year bond takes %.1f ns >= 2 us\n", ns30);
    for (int i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(caps);
    free(ts);
    free(bs);
    if (ql_script == NULL)
        return ok ? 0 : 1;

    json_t *ql;
    if (run_ql(python, ql_script, n, ql_repeat, &ql) != 0)
        return 1;
    double ql_price = jnum(ql, "price_s", NULL), ql_yield = jnum(ql, "yield_s", NULL);
    double ql_init = jnum(ql, "init_s", NULL);
    double rp = ql_price / price_best, ry = ql_yield / yield_best;
    printf("QuantLib-Python %s (same %d bonds, same machine, this run):\n",
           json_string_value(json_object_get(ql, "quantlib")), n);
    printf("  QuantLib build (FixedRateBond)   %10.1f ns/bond\n", ql_init / n * 1e9);
    printf("  QuantLib price+duration+convexity %9.1f ns/bond  %12.0f bonds/s   fi_math x%.0f\n",
           ql_price / n * 1e9, n / ql_price, rp);
    printf("  QuantLib yield from clean price  %10.1f ns/bond  %12.0f bonds/s   fi_math x%.0f\n",
           ql_yield / n * 1e9, n / ql_yield, ry);

    const double tol = 1e-9;
    int same = close_rel(ours.clean, jnum(ql, "checksums", "clean"), tol) &&
               close_rel(ours.modified, jnum(ql, "checksums", "modified"), tol) &&
               close_rel(ours.convexity, jnum(ql, "checksums", "convexity"), tol) &&
               close_rel(ours.yield, jnum(ql, "checksums", "yield"), tol);
    printf("  checksums (sum over the set)  clean %.12g / %.12g  modified %.12g / %.12g\n"
           "                                convexity %.12g / %.12g  yield %.12g / %.12g  %s\n",
           ours.clean, jnum(ql, "checksums", "clean"), ours.modified,
           jnum(ql, "checksums", "modified"), ours.convexity, jnum(ql, "checksums", "convexity"),
           ours.yield, jnum(ql, "checksums", "yield"), same ? "match" : "MISMATCH");
    if (!same)
        ok = 0;
    if (rp < 100 || ry < 100) {
        printf("FAIL: throughput ratio below 100x (price x%.0f, yield x%.0f)\n", rp, ry);
        ok = 0;
    }
    printf("%s\n", ok ? "PASS" : "FAIL");
    json_decref(ql);
    return ok ? 0 : 1;
}
