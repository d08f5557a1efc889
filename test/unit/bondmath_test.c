/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for svc_fixed_income/bondmath.c and daycount.c: every output of every case of
 * the QuantLib reference set (test/bondref/reference.json, path in $FI_BONDREF), plus dates,
 * day counts on textbook examples, schedules with short and long first periods, zero-coupon
 * bonds, input validation and the yield solver's edge cases.
 */
#include "bondmath.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tolerances of the issue: prices and accrued 1e-9 absolute per 100, yields 1e-9, durations,
 * convexity and BPV 1e-9 relative.  Year fractions and cash-flow amounts: 1e-12. */
#define TOL_PRICE 1e-9
#define TOL_YIELD 1e-9
#define TOL_REL   1e-9
#define TOL_YF    1e-12

static fi_period g_periods[FI_MAX_PERIODS];

static int32_t D(const char *s)
{
    int32_t d = fi_date_parse(s);
    ck_assert_msg(d != FI_NO_DATE, "bad test date %s", s);
    return d;
}

static fi_terms terms(double c, int f, int dc, const char *issue, const char *mat,
                      const char *first)
{
    return (fi_terms){ .coupon_rate = c,
                       .frequency = f,
                       .day_count = dc,
                       .issue_date = D(issue),
                       .maturity_date = D(mat),
                       .first_coupon_date = first ? D(first) : FI_NO_DATE };
}

static void init_ok(fi_bond *b, const fi_terms *t)
{
    int rv = fi_bond_init(b, t, g_periods, FI_MAX_PERIODS);
    ck_assert_msg(rv == 0, "fi_bond_init: %d (%s)", rv, fi_strerror(rv));
}

/* ---------------------------------------------------------------------------------------- */
/* The reference set */

static json_t *load_reference(void)
{
    const char *path = getenv("FI_BONDREF");
    if (path == NULL)
        path = "test/bondref/reference.json";
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    ck_assert_msg(root != NULL, "cannot load %s: %s (line %d)", path, err.text, err.line);
    return root;
}

static double num(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_number(v), "missing number %s", key);
    return json_number_value(v);
}

static const char *str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    ck_assert_msg(json_is_string(v), "missing string %s", key);
    return json_string_value(v);
}

static fi_terms terms_from_json(const json_t *t)
{
    fi_terms r = { 0 };
    r.coupon_rate = num(t, "couponRate");
    r.frequency = (int)json_integer_value(json_object_get(t, "frequency"));
    r.day_count = fi_day_count_from_name(str(t, "dayCount"));
    ck_assert_int_ne(r.day_count, 0);
    r.issue_date = D(str(t, "issueDate"));
    r.maturity_date = D(str(t, "maturityDate"));
    json_t *first = json_object_get(t, "firstCouponDate");
    r.first_coupon_date = json_is_string(first) ? D(json_string_value(first)) : FI_NO_DATE;
    return r;
}

/* Largest deviation seen per output, for the summary line. */
typedef struct worst {
    const char *name;
    double dev;
    const char *id;
} worst;

static int g_failures;

static void check_value(worst *w, const char *id, double got, double want, double tol, int rel)
{
    double dev = fabs(got - want);
    if (rel)
        dev /= fmax(fabs(want), 1e-300);
    if (!(dev <= tol)) { /* NaN fails */
        if (g_failures++ < 25)
            fprintf(stderr, "case %s: %s = %.17g, QuantLib %.17g (deviation %.3g > %.3g)\n", id,
                    w->name, got, want, dev, tol);
    }
    if (dev > w->dev || isnan(dev)) {
        w->dev = dev;
        w->id = id;
    }
}

START_TEST(test_bondmath_reference_cases)
{
    json_t *root = load_reference();
    json_t *cases = json_object_get(root, "cases");
    ck_assert(json_is_array(cases));
    size_t ncases = json_array_size(cases);
    ck_assert_uint_ge(ncases, 300);

    enum {
        ACC,
        CLEAN,
        DIRTY,
        MAC,
        MOD,
        CONV,
        BPV,
        CF,
        YLD,
        NW
    };
    worst w[NW] = { { "accrued", 0, "" },
                    { "cleanPrice", 0, "" },
                    { "dirtyPrice", 0, "" },
                    { "macaulayDuration", 0, "" },
                    { "modifiedDuration", 0, "" },
                    { "convexity", 0, "" },
                    { "bpv", 0, "" },
                    { "cashflow amount", 0, "" },
                    { "yieldFromPrice", 0, "" } };
    /* coverage of the set: every day count x frequency, stubs, zero coupons, yields */
    int seen_dc_f[7][13] = { { 0 } };
    int n_short = 0, n_long = 0, n_neg = 0, n_high = 0, n_on_coupon = 0, n_next_to = 0;
    int n_undefined = 0;
    size_t nflows = 0;

    g_failures = 0;
    for (size_t i = 0; i < ncases; i++) {
        json_t *c = json_array_get(cases, i);
        const char *id = str(c, "id");
        fi_terms t = terms_from_json(json_object_get(c, "terms"));
        int32_t settle = D(str(c, "settlementDate"));
        double y = num(c, "yield");
        seen_dc_f[t.day_count][t.frequency]++;
        json_t *tags = json_object_get(c, "tags");
        for (size_t j = 0; j < json_array_size(tags); j++) {
            const char *tag = json_string_value(json_array_get(tags, j));
            n_short += strcmp(tag, "short") == 0;
            n_long += strncmp(tag, "long", 4) == 0;
            n_on_coupon += strcmp(tag, "settle:on_coupon") == 0;
            n_next_to +=
                strcmp(tag, "settle:before_coupon") == 0 || strcmp(tag, "settle:after_coupon") == 0;
        }
        n_neg += y < 0;
        n_high += y > 0.5;

        fi_bond b;
        int rv = fi_bond_init(&b, &t, g_periods, FI_MAX_PERIODS);
        ck_assert_msg(rv == 0, "case %s: fi_bond_init %d", id, rv);
        fi_analytics a;
        rv = fi_bond_price(&b, settle, y, &a);
        ck_assert_msg(rv == 0, "case %s: fi_bond_price %d", id, rv);

        check_value(&w[ACC], id, a.accrued, num(c, "accrued"), TOL_PRICE, 0);
        check_value(&w[CLEAN], id, a.clean_price, num(c, "cleanPrice"), TOL_PRICE, 0);
        check_value(&w[DIRTY], id, a.dirty_price, num(c, "dirtyPrice"), TOL_PRICE, 0);
        check_value(&w[MAC], id, a.macaulay_duration, num(c, "macaulayDuration"), TOL_REL, 1);
        check_value(&w[MOD], id, a.modified_duration, num(c, "modifiedDuration"), TOL_REL, 1);
        check_value(&w[CONV], id, a.convexity, num(c, "convexity"), TOL_REL, 1);
        check_value(&w[BPV], id, a.bpv, num(c, "bpv"), TOL_REL, 1);
        ck_assert_double_eq(a.yield, y);

        double acc2;
        ck_assert_int_eq(fi_bond_accrued(&b, settle, &acc2), 0);
        ck_assert_double_eq(acc2, a.accrued);

        /* cash flows: same dates, amounts and order (coupons, then the redemption) */
        json_t *cfs = json_object_get(c, "cashflows");
        static fi_cashflow flows[FI_MAX_PERIODS + 1];
        int n = fi_bond_cashflows(&b, settle, flows, FI_MAX_PERIODS + 1);
        ck_assert_msg(n == (int)json_array_size(cfs), "case %s: %d cash flows, QuantLib %zu", id, n,
                      json_array_size(cfs));
        for (int j = 0; j < n; j++) {
            json_t *cf = json_array_get(cfs, (size_t)j);
            int32_t want_date = D(json_string_value(json_array_get(cf, 0)));
            ck_assert_msg(flows[j].date == want_date, "case %s: cash flow %d date", id, j);
            ck_assert_int_eq(flows[j].kind, j == n - 1 ? FI_CF_REDEMPTION : FI_CF_COUPON);
            check_value(&w[CF], id, flows[j].amount, json_number_value(json_array_get(cf, 1)),
                        TOL_YF, 0);
        }
        nflows += (size_t)n;

        /* yield from the quoted clean price (null: no time left, any yield fits) */
        double yq;
        rv = fi_bond_yield(&b, settle, num(c, "quotedCleanPrice"), &yq);
        if (json_is_null(json_object_get(c, "yieldFromPrice"))) {
            ck_assert_msg(rv == FI_E_YIELD_UNDEFINED, "case %s: fi_bond_yield %d", id, rv);
            n_undefined++;
            continue;
        }
        ck_assert_msg(rv == 0, "case %s: fi_bond_yield %d (%s)", id, rv, fi_strerror(rv));
        check_value(&w[YLD], id, yq, num(c, "yieldFromPrice"), TOL_YIELD, 0);
    }
    for (int i = 0; i < NW; i++)
        fprintf(stderr, "bondref: %-17s max deviation %.3g (case %s)\n", w[i].name, w[i].dev,
                w[i].id);
    fprintf(stderr,
            "bondref: %zu cases, %zu cash flows, %d without a yield, %d outside tolerance\n",
            ncases, nflows, n_undefined, g_failures);
    ck_assert_int_eq(g_failures, 0);

    for (int dc = FI_DC_ACT_ACT_ICMA; dc <= FI_DC_ACT_365_FIXED; dc++) {
        const int fs[] = { 0, 1, 2, 4, 12 };
        for (size_t j = 0; j < 5; j++)
            ck_assert_msg(seen_dc_f[dc][fs[j]] >= 3, "too few %s f=%d cases", fi_day_count_name(dc),
                          fs[j]);
    }
    ck_assert_int_ge(n_short, 20);
    ck_assert_int_ge(n_long, 20);
    ck_assert_int_ge(n_neg, 20);
    ck_assert_int_ge(n_high, 20);
    ck_assert_int_ge(n_on_coupon, 20);
    ck_assert_int_ge(n_next_to, 20);
    json_decref(root);
}
END_TEST

START_TEST(test_bondmath_reference_schedules)
{
    json_t *root = load_reference();
    json_t *cases = json_object_get(root, "cases");
    json_t *scheds = json_object_get(root, "schedules");
    ck_assert_uint_ge(json_array_size(scheds), 50);
    for (size_t i = 0; i < json_array_size(scheds); i++) {
        json_t *s = json_array_get(scheds, i);
        const char *id = str(s, "id");
        json_t *c = NULL;
        for (size_t j = 0; j < json_array_size(cases) && c == NULL; j++)
            if (strcmp(str(json_array_get(cases, j), "id"), id) == 0)
                c = json_array_get(cases, j);
        ck_assert_msg(c != NULL, "schedule %s has no case", id);
        fi_terms t = terms_from_json(json_object_get(c, "terms"));
        fi_bond b;
        init_ok(&b, &t);
        json_t *dates = json_object_get(s, "dates");
        ck_assert_int_eq(fi_terms_periods(&t), (int)json_array_size(dates) - 1);
        ck_assert_int_eq(b.n, (int)json_array_size(dates) - 1);
        ck_assert_int_eq(b.periods[0].start, D(json_string_value(json_array_get(dates, 0))));
        for (int k = 0; k < b.n; k++) {
            int32_t want = D(json_string_value(json_array_get(dates, (size_t)k + 1)));
            ck_assert_msg(b.periods[k].end == want, "schedule %s: date %d", id, k + 1);
            if (k > 0)
                ck_assert_int_eq(b.periods[k].start, b.periods[k - 1].end);
        }
    }
    json_decref(root);
}
END_TEST

START_TEST(test_bondmath_reference_day_counts)
{
    json_t *root = load_reference();
    json_t *dcs = json_object_get(root, "dayCounts");
    ck_assert_uint_ge(json_array_size(dcs), 300);
    int per_dc[7] = { 0 };
    for (size_t i = 0; i < json_array_size(dcs); i++) {
        json_t *e = json_array_get(dcs, i);
        int dc = fi_day_count_from_name(str(e, "dayCount"));
        ck_assert_int_ne(dc, 0);
        per_dc[dc]++;
        json_t *rs = json_object_get(e, "refStart"), *re = json_object_get(e, "refEnd");
        double got = fi_year_fraction(dc, D(str(e, "d1")), D(str(e, "d2")),
                                      json_is_string(rs) ? D(json_string_value(rs)) : FI_NO_DATE,
                                      json_is_string(re) ? D(json_string_value(re)) : FI_NO_DATE);
        double want = num(e, "yearFraction");
        ck_assert_msg(fabs(got - want) <= TOL_YF, "%s %s..%s: %.17g, QuantLib %.17g",
                      str(e, "dayCount"), str(e, "d1"), str(e, "d2"), got, want);
    }
    for (int dc = FI_DC_ACT_ACT_ICMA; dc <= FI_DC_ACT_365_FIXED; dc++)
        ck_assert_int_ge(per_dc[dc], 30);
    json_decref(root);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* Dates */

START_TEST(test_bondmath_dates)
{
    ck_assert_int_eq(fi_date_parse("1899-12-30"), FI_NO_DATE); /* out of range */
    ck_assert_int_eq(fi_date_parse("1901-01-01"), FI_DATE_MIN);
    ck_assert_int_eq(fi_date_parse("2199-12-31"), FI_DATE_MAX);
    ck_assert_int_eq(fi_date_parse("1970-01-01"), FI_DATE_1970);
    ck_assert_int_eq(fi_date_parse("2000-01-01"), 36526); /* Excel/QuantLib serial */
    ck_assert_int_eq(fi_date_parse("2030-06-15"), 47649);
    ck_assert_int_eq(fi_date_parse("2024-02-29"), fi_date_parse("2024-02-28") + 1);
    ck_assert_int_eq(fi_date_parse("2024-03-01"), fi_date_parse("2024-02-29") + 1);
    ck_assert_int_eq(fi_date_parse("2000-02-29"), fi_date_from_ymd(2000, 2, 29));

    const char *bad[] = { NULL,         "",           "2023-02-29",  "1900-02-29",
                          "2021-13-01", "2021-00-10", "2021-04-31",  "2021-1-01",
                          "2021-01-1",  "2021/01/01", "2021-01-01 ", " 2021-01-01",
                          "20210101",   "2021-01-0a", "2200-01-01",  "1900-12-31",
                          "+021-01-01" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(fi_date_parse(bad[i]) == FI_NO_DATE, "%s accepted", bad[i] ? bad[i] : "NULL");
    ck_assert_int_eq(fi_date_from_ymd(2021, 2, 29), FI_NO_DATE);
    ck_assert_int_eq(fi_date_from_ymd(2100, 2, 29), FI_NO_DATE); /* not a leap year */

    /* every day of the range round-trips through format and parse */
    char buf[11];
    int py = 0, pm = 0, pd = 0;
    for (int32_t d = FI_DATE_MIN; d <= FI_DATE_MAX; d++) {
        int y, m, dd;
        fi_date_to_ymd(d, &y, &m, &dd);
        if (d > FI_DATE_MIN)
            ck_assert(y > py || (y == py && (m > pm || (m == pm && dd == pd + 1))));
        py = y, pm = m, pd = dd;
        ck_assert_int_eq(fi_date_parse(fi_date_format(d, buf)), d);
    }
    ck_assert_str_eq(fi_date_format(47649, buf), "2030-06-15");

    /* month arithmetic clamps the day, from the original date each time */
    ck_assert_int_eq(fi_date_add_months(D("2021-08-31"), -6), D("2021-02-28"));
    ck_assert_int_eq(fi_date_add_months(D("2021-08-31"), -18), D("2020-02-29"));
    ck_assert_int_eq(fi_date_add_months(D("2020-02-29"), 12), D("2021-02-28"));
    ck_assert_int_eq(fi_date_add_months(D("2021-01-31"), 1), D("2021-02-28"));
    ck_assert_int_eq(fi_date_add_months(D("2021-12-15"), 1), D("2022-01-15"));
    ck_assert_int_eq(fi_date_add_months(D("2022-01-15"), -1), D("2021-12-15"));
    ck_assert_int_eq(fi_date_add_months(D("2021-05-31"), -3), D("2021-02-28"));
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* Day counts on known examples (ISDA's "EMU and market conventions" examples and hand counts;
 * the same values come out of QuantLib 1.29) */

START_TEST(test_bondmath_day_counts_known)
{
    const int icma = FI_DC_ACT_ACT_ICMA, isda = FI_DC_ACT_ACT_ISDA;
    /* regular semiannual period across a year end */
    ck_assert_double_eq_tol(
        fi_year_fraction(icma, D("2003-11-01"), D("2004-05-01"), D("2003-11-01"), D("2004-05-01")),
        0.5, 1e-15);
    ck_assert_double_eq_tol(fi_year_fraction(isda, D("2003-11-01"), D("2004-05-01"), 0, 0),
                            61.0 / 365 + 121.0 / 366, 1e-15);
    /* short first period, annual coupons on 1 July */
    ck_assert_double_eq_tol(
        fi_year_fraction(icma, D("1999-02-01"), D("1999-07-01"), D("1998-07-01"), D("1999-07-01")),
        150.0 / 365, 1e-15);
    ck_assert_double_eq_tol(fi_year_fraction(isda, D("1999-02-01"), D("1999-07-01"), 0, 0),
                            150.0 / 365, 1e-15);
    /* long first period, annual */
    ck_assert_double_eq_tol(
        fi_year_fraction(icma, D("2002-08-15"), D("2003-07-15"), D("2002-07-15"), D("2003-07-15")),
        334.0 / 365, 1e-15);
    ck_assert_double_eq_tol(fi_year_fraction(isda, D("2002-08-15"), D("2003-07-15"), 0, 0),
                            138.0 / 365 + 196.0 / 365, 1e-15);
    /* short first period, semiannual: 152 days of a 183-day notional period */
    ck_assert_double_eq_tol(
        fi_year_fraction(icma, D("2000-01-30"), D("2000-06-30"), D("1999-12-30"), D("2000-06-30")),
        152.0 / (183 * 2), 1e-15);
    ck_assert_double_eq_tol(fi_year_fraction(isda, D("2000-01-30"), D("2000-06-30"), 0, 0),
                            152.0 / 366, 1e-15);
    /* long first semiannual coupon: 152 of 183 days of the notional period before the
     * reference period, then the whole reference period */
    ck_assert_double_eq_tol(
        fi_year_fraction(icma, D("2020-01-15"), D("2020-12-15"), D("2020-06-15"), D("2020-12-15")),
        0.5 * 152 / 183 + 0.5, 1e-15);
    /* past the reference end: whole periods, then the remainder */
    ck_assert_double_eq_tol(
        fi_year_fraction(icma, D("2020-06-15"), D("2022-03-15"), D("2020-06-15"), D("2020-12-15")),
        0.5 * 3 + 0.5 * 90 / 182, 1e-15);
    ck_assert_double_eq(fi_year_fraction(icma, D("2020-06-15"), D("2020-06-15"), 0, 0), 0.0);
    ck_assert_double_eq_tol(
        fi_year_fraction(icma, D("2020-12-15"), D("2020-06-15"), D("2020-06-15"), D("2020-12-15")),
        -0.5, 1e-15);
    ck_assert(isnan(fi_year_fraction(icma, D("2020-01-01"), D("2020-02-01"), D("2020-03-01"),
                                     D("2020-01-01"))));

    /* 30/360 US: 31st and end-of-February rules in QuantLib's order */
    const int us = FI_DC_THIRTY_360_US, eu = FI_DC_THIRTY_E_360;
    ck_assert_double_eq(fi_year_fraction(us, D("2021-02-28"), D("2021-03-31"), 0, 0), 31 / 360.0);
    ck_assert_double_eq(fi_year_fraction(us, D("2020-02-29"), D("2021-02-28"), 0, 0), 1.0);
    ck_assert_double_eq(fi_year_fraction(us, D("2021-01-31"), D("2021-03-31"), 0, 0), 60 / 360.0);
    ck_assert_double_eq(fi_year_fraction(us, D("2021-04-15"), D("2021-05-31"), 0, 0), 46 / 360.0);
    ck_assert_double_eq(fi_year_fraction(us, D("2021-02-28"), D("2021-08-30"), 0, 0), 0.5);
    ck_assert_double_eq(fi_year_fraction(us, D("2021-02-15"), D("2021-08-15"), 0, 0), 0.5);
    /* 30E/360: both 31sts become 30ths, February untouched */
    ck_assert_double_eq(fi_year_fraction(eu, D("2021-02-28"), D("2021-03-31"), 0, 0), 32 / 360.0);
    ck_assert_double_eq(fi_year_fraction(eu, D("2020-02-29"), D("2021-02-28"), 0, 0), 359 / 360.0);
    ck_assert_double_eq(fi_year_fraction(eu, D("2021-04-15"), D("2021-05-31"), 0, 0), 45 / 360.0);
    ck_assert_double_eq(fi_year_fraction(eu, D("2021-02-28"), D("2021-08-30"), 0, 0), 182 / 360.0);
    /* actual/fixed */
    ck_assert_double_eq(fi_year_fraction(FI_DC_ACT_360, D("2021-01-01"), D("2021-07-01"), 0, 0),
                        181 / 360.0);
    ck_assert_double_eq(
        fi_year_fraction(FI_DC_ACT_365_FIXED, D("2020-01-01"), D("2021-01-01"), 0, 0), 366 / 365.0);
    ck_assert(isnan(fi_year_fraction(9, D("2021-01-01"), D("2021-07-01"), 0, 0)));

    /* names */
    for (int dc = FI_DC_ACT_ACT_ICMA; dc <= FI_DC_ACT_365_FIXED; dc++)
        ck_assert_int_eq(fi_day_count_from_name(fi_day_count_name(dc)), dc);
    ck_assert_str_eq(fi_day_count_name(FI_DC_THIRTY_360_US), "THIRTY_360_US");
    ck_assert_ptr_null(fi_day_count_name(0));
    ck_assert_int_eq(fi_day_count_from_name("act_360"), 0);
    ck_assert_int_eq(fi_day_count_from_name(NULL), 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* Schedules */

START_TEST(test_bondmath_schedule_regular)
{
    fi_bond b;
    fi_terms t = terms(0.05, 2, FI_DC_ACT_ACT_ICMA, "2020-06-15", "2030-06-15", NULL);
    init_ok(&b, &t);
    ck_assert_int_eq(b.n, 20);
    ck_assert_int_eq(b.periods[0].start, D("2020-06-15"));
    ck_assert_int_eq(b.periods[0].end, D("2020-12-15"));
    ck_assert_int_eq(b.ref_start0, D("2020-06-15"));
    ck_assert_int_eq(b.periods[19].end, D("2030-06-15"));
    for (int i = 0; i < b.n; i++) {
        ck_assert_double_eq(b.periods[i].tau, 0.5);
        ck_assert_double_eq(b.periods[i].amount, 100.0 * ((1.0 + 0.05 * 0.5) - 1.0));
    }
    ck_assert_double_eq_tol(b.periods[0].amount, 2.5, 1e-13);
}
END_TEST

START_TEST(test_bondmath_schedule_short_first)
{
    fi_bond b;
    fi_terms t = terms(0.05, 2, FI_DC_ACT_ACT_ICMA, "2020-01-15", "2030-06-15", NULL);
    init_ok(&b, &t);
    ck_assert_int_eq(b.n, 21);
    ck_assert_int_eq(b.periods[0].start, D("2020-01-15"));
    ck_assert_int_eq(b.periods[0].end, D("2020-06-15"));
    ck_assert_int_eq(b.ref_start0, D("2019-12-15")); /* notional period */
    /* 152 of 183 days of the notional half year */
    ck_assert_double_eq_tol(b.periods[0].amount, 5.0 * 0.5 * 152 / 183, 1e-12);
    ck_assert_int_eq(b.periods[1].start, D("2020-06-15"));
    ck_assert_int_eq(b.periods[1].end, D("2020-12-15"));
}
END_TEST

START_TEST(test_bondmath_schedule_long_first)
{
    fi_bond b;
    fi_terms t = terms(0.05, 2, FI_DC_ACT_ACT_ICMA, "2020-01-15", "2030-06-15", "2020-12-15");
    init_ok(&b, &t);
    ck_assert_int_eq(b.n, 20);
    ck_assert_int_eq(b.periods[0].start, D("2020-01-15"));
    ck_assert_int_eq(b.periods[0].end, D("2020-12-15"));
    ck_assert_int_eq(b.ref_start0, D("2020-06-15"));
    ck_assert_double_eq_tol(b.periods[0].amount, 5.0 * (0.5 * 152 / 183 + 0.5), 1e-12);
    ck_assert_double_eq_tol(b.periods[0].amount, 4.5765027322404395, 1e-12); /* QuantLib */
    ck_assert_int_eq(b.periods[1].start, D("2020-12-15"));

    /* accrued in the long stub: first the notional period before the reference one */
    double acc;
    ck_assert_int_eq(fi_bond_accrued(&b, D("2020-03-15"), &acc), 0);
    ck_assert_double_eq_tol(acc, 5.0 * 0.5 * 60 / 183, 1e-12);
    ck_assert_int_eq(fi_bond_accrued(&b, D("2020-09-15"), &acc), 0);
    ck_assert_double_eq_tol(acc, 5.0 * (0.5 * 152 / 183 + 0.5 * 92 / 183), 1e-12);

    /* the first coupon date must be on the grid, after the issue, not after maturity */
    fi_terms bad = terms(0.05, 2, FI_DC_ACT_ACT_ICMA, "2020-01-15", "2030-06-15", "2020-12-16");
    ck_assert_int_eq(fi_bond_init(&b, &bad, g_periods, FI_MAX_PERIODS), FI_E_FIRST_COUPON_DATE);
    bad.first_coupon_date = D("2019-12-15");
    ck_assert_int_eq(fi_terms_periods(&bad), FI_E_FIRST_COUPON_DATE);
    bad.first_coupon_date = D("2020-01-15");
    ck_assert_int_eq(fi_terms_periods(&bad), FI_E_FIRST_COUPON_DATE);
    bad.first_coupon_date = D("2030-12-15");
    ck_assert_int_eq(fi_terms_periods(&bad), FI_E_FIRST_COUPON_DATE);
    /* ... and may be the maturity itself: one long period */
    bad.first_coupon_date = D("2030-06-15");
    ck_assert_int_eq(fi_terms_periods(&bad), 1);
}
END_TEST

START_TEST(test_bondmath_schedule_end_of_month)
{
    fi_bond b;
    fi_terms t = terms(0.04, 2, FI_DC_THIRTY_360_US, "2021-08-31", "2031-08-31", NULL);
    init_ok(&b, &t);
    ck_assert_int_eq(b.n, 20);
    ck_assert_int_eq(b.periods[0].end, D("2022-02-28"));
    ck_assert_int_eq(b.periods[1].end, D("2022-08-31"));
    ck_assert_int_eq(b.periods[4].end, D("2024-02-29"));
    ck_assert_int_eq(b.periods[5].end, D("2024-08-31"));
    /* 30/360 US: 31 Aug -> 28 Feb is 178 days; 28 Feb -> 31 Aug is 181 (Feb rule on D1,
     * D2=31 kept since D1 was 28 when checked) */
    ck_assert_double_eq(b.periods[0].tau, 178 / 360.0);
    ck_assert_double_eq(b.periods[1].tau, 181 / 360.0);

    t = terms(0.04, 12, FI_DC_ACT_360, "2024-01-31", "2025-01-31", NULL);
    init_ok(&b, &t);
    ck_assert_int_eq(b.n, 12);
    const char *ends[] = { "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31" };
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(b.periods[i].end, D(ends[i]));
}
END_TEST

START_TEST(test_bondmath_schedule_capacity)
{
    fi_bond b;
    fi_terms t = terms(0.05, 12, FI_DC_ACT_360, "2000-01-15", "2100-01-15", NULL);
    ck_assert_int_eq(fi_terms_periods(&t), 1200);
    fi_period small[10];
    ck_assert_int_eq(fi_bond_init(&b, &t, small, 10), FI_E_CAPACITY);
    init_ok(&b, &t);
    t.issue_date = D("2000-01-14"); /* one day more than 100 years */
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_MATURITY_DATE);
    t = terms(0.05, 12, FI_DC_ACT_360, "2000-01-20", "2100-01-15", NULL);
    ck_assert_int_eq(fi_terms_periods(&t), 1200); /* 1199 months and a stub */
    ck_assert_int_le(fi_terms_periods(&t), FI_MAX_PERIODS);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* Validation */

START_TEST(test_bondmath_validation)
{
    fi_terms ok = terms(0.05, 2, FI_DC_ACT_ACT_ICMA, "2020-01-15", "2030-06-15", NULL);
    ck_assert_int_eq(fi_terms_periods(&ok), 21);

    fi_terms t;
    t = ok, t.coupon_rate = -0.01;
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_COUPON_RATE);
    t = ok, t.coupon_rate = 1.0;
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_COUPON_RATE);
    t = ok, t.coupon_rate = NAN;
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_COUPON_RATE);
    t = ok, t.frequency = 3;
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_FREQUENCY);
    t = ok, t.frequency = -2;
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_FREQUENCY);
    t = ok, t.frequency = 0; /* zero coupon with a coupon rate */
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_COUPON_RATE);
    t = ok, t.day_count = 0;
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_DAY_COUNT);
    t = ok, t.day_count = 7;
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_DAY_COUNT);
    t = ok, t.issue_date = FI_NO_DATE;
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_ISSUE_DATE);
    t = ok, t.issue_date = FI_DATE_MAX + 1;
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_ISSUE_DATE);
    t = ok, t.maturity_date = t.issue_date;
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_MATURITY_DATE);
    t = ok, t.maturity_date = FI_DATE_MAX + 1;
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_MATURITY_DATE);
    t = ok, t.frequency = 0, t.coupon_rate = 0, t.first_coupon_date = D("2021-06-15");
    ck_assert_int_eq(fi_terms_periods(&t), FI_E_FIRST_COUPON_DATE);

    /* the error names the API field */
    ck_assert_str_eq(fi_err_field(FI_E_COUPON_RATE), "couponRate");
    ck_assert_str_eq(fi_err_field(FI_E_FREQUENCY), "frequency");
    ck_assert_str_eq(fi_err_field(FI_E_DAY_COUNT), "dayCount");
    ck_assert_str_eq(fi_err_field(FI_E_ISSUE_DATE), "issueDate");
    ck_assert_str_eq(fi_err_field(FI_E_MATURITY_DATE), "maturityDate");
    ck_assert_str_eq(fi_err_field(FI_E_FIRST_COUPON_DATE), "firstCouponDate");
    ck_assert_str_eq(fi_err_field(FI_E_SETTLEMENT_DATE), "settlementDate");
    ck_assert_str_eq(fi_err_field(FI_E_YIELD), "yield");
    ck_assert_str_eq(fi_err_field(FI_E_CLEAN_PRICE), "cleanPrice");
    ck_assert_str_eq(fi_err_field(FI_E_NO_YIELD), "cleanPrice");
    ck_assert_ptr_null(fi_err_field(FI_OK));
    ck_assert_ptr_null(fi_err_field(FI_E_CAPACITY));
    for (int e = 0; e >= FI_E_CAPACITY; e--)
        ck_assert(fi_strerror(e) != NULL && strlen(fi_strerror(e)) > 5);
    ck_assert_str_eq(fi_strerror(-99), "unknown bond math error");

    /* settlement must be in [issue, maturity) */
    fi_bond b;
    init_ok(&b, &ok);
    fi_analytics a;
    double y, acc;
    fi_cashflow cf[4];
    ck_assert_int_eq(fi_bond_price(&b, D("2020-01-14"), 0.05, &a), FI_E_SETTLEMENT_DATE);
    ck_assert_int_eq(fi_bond_price(&b, D("2030-06-15"), 0.05, &a), FI_E_SETTLEMENT_DATE);
    ck_assert_int_eq(fi_bond_yield(&b, D("2031-01-01"), 100, &y), FI_E_SETTLEMENT_DATE);
    ck_assert_int_eq(fi_bond_accrued(&b, FI_NO_DATE, &acc), FI_E_SETTLEMENT_DATE);
    ck_assert_int_eq(fi_bond_cashflows(&b, D("2030-06-16"), cf, 4), FI_E_SETTLEMENT_DATE);
    ck_assert_int_eq(fi_bond_price(&b, D("2020-01-15"), 0.05, &a), 0);
    ck_assert_int_eq(fi_bond_price(&b, D("2030-06-14"), 0.05, &a), 0);
    /* yields at or below -frequency, or not finite, are refused */
    ck_assert_int_eq(fi_bond_price(&b, D("2021-01-01"), -2.0, &a), FI_E_YIELD);
    ck_assert_int_eq(fi_bond_price(&b, D("2021-01-01"), -3.0, &a), FI_E_YIELD);
    ck_assert_int_eq(fi_bond_price(&b, D("2021-01-01"), NAN, &a), FI_E_YIELD);
    ck_assert_int_eq(fi_bond_price(&b, D("2021-01-01"), INFINITY, &a), FI_E_YIELD);
    ck_assert_int_eq(fi_bond_price(&b, D("2021-01-01"), -1.99, &a), 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* Prices, zero coupons, cash flows */

START_TEST(test_bondmath_zero_coupon)
{
    fi_bond b;
    fi_terms t = terms(0.0, 0, FI_DC_ACT_365_FIXED, "2020-01-01", "2030-01-01", NULL);
    init_ok(&b, &t);
    ck_assert_int_eq(b.n, 0);
    ck_assert_int_eq(b.comp_freq, 1);
    int32_t s = D("2022-07-01");
    double tt = (double)(D("2030-01-01") - s) / 365.0;
    fi_analytics a;
    ck_assert_int_eq(fi_bond_price(&b, s, 0.04, &a), 0);
    ck_assert_double_eq(a.accrued, 0.0);
    ck_assert_double_eq_tol(a.dirty_price, 100.0 * pow(1.04, -tt), 1e-12);
    ck_assert_double_eq(a.clean_price, a.dirty_price);
    ck_assert_double_eq_tol(a.macaulay_duration, tt, 1e-12); /* annual compounding */
    ck_assert_double_eq_tol(a.modified_duration, tt / 1.04, 1e-12);
    ck_assert_double_eq_tol(a.convexity, tt * (tt + 1) / (1.04 * 1.04), 1e-12);

    fi_cashflow cf[2];
    ck_assert_int_eq(fi_bond_cashflows(&b, s, cf, 2), 1);
    ck_assert_int_eq(cf[0].date, D("2030-01-01"));
    ck_assert_int_eq(cf[0].kind, FI_CF_REDEMPTION);
    ck_assert_double_eq(cf[0].amount, 100.0);

    double y;
    ck_assert_int_eq(fi_bond_yield(&b, s, a.clean_price, &y), 0);
    ck_assert_double_eq_tol(y, 0.04, 1e-13);
    ck_assert_int_eq(fi_bond_yield(&b, s, 120.0, &y), 0); /* above par: negative yield */
    ck_assert(y < 0);
    ck_assert_double_eq_tol(100.0 * pow(1.0 + y, -tt), 120.0, 1e-10);
}
END_TEST

/* Central differences confirm the analytic derivatives (an independent check of the
 * duration and convexity formulas). */
START_TEST(test_bondmath_derivatives)
{
    const int dcs[] = { FI_DC_ACT_ACT_ICMA, FI_DC_ACT_ACT_ISDA, FI_DC_THIRTY_360_US,
                        FI_DC_THIRTY_E_360, FI_DC_ACT_360,      FI_DC_ACT_365_FIXED };
    const int fs[] = { 1, 2, 4, 12 };
    for (size_t i = 0; i < 6; i++)
        for (size_t j = 0; j < 4; j++) {
            fi_bond b;
            fi_terms t = terms(0.045, fs[j], dcs[i], "2019-03-10", "2044-11-30", NULL);
            init_ok(&b, &t);
            int32_t s = D("2023-05-17");
            double y = 0.037, h = 1e-5, h2 = 1e-4;
            fi_analytics a, up, dn, up2, dn2;
            ck_assert_int_eq(fi_bond_price(&b, s, y, &a), 0);
            ck_assert_int_eq(fi_bond_price(&b, s, y + h, &up), 0);
            ck_assert_int_eq(fi_bond_price(&b, s, y - h, &dn), 0);
            ck_assert_int_eq(fi_bond_price(&b, s, y + h2, &up2), 0);
            ck_assert_int_eq(fi_bond_price(&b, s, y - h2, &dn2), 0);
            double d1 = -(up.dirty_price - dn.dirty_price) / (2 * h) / a.dirty_price;
            double d2 =
                (up2.dirty_price - 2 * a.dirty_price + dn2.dirty_price) / (h2 * h2) / a.dirty_price;
            ck_assert_double_eq_tol(a.modified_duration / d1, 1.0, 1e-8);
            ck_assert_double_eq_tol(a.convexity / d2, 1.0, 1e-5);
            ck_assert_double_eq_tol(a.macaulay_duration, a.modified_duration * (1 + y / fs[j]),
                                    1e-12);
            /* bpv: QuantLib's formula, whose convexity term is scaled by 1/100, so it is not
             * the second-order Taylor change -D P dy + C P dy^2 / 2 (checked separately) */
            ck_assert(a.bpv < 0);
            double p = a.dirty_price;
            ck_assert_double_eq_tol(
                a.bpv, -a.modified_duration * p * 1e-4 + 0.5 * (a.convexity / 100) * p * 1e-8,
                1e-15);
            fi_analytics bp;
            fi_bond_price(&b, s, y + 1e-4, &bp);
            ck_assert_double_eq_tol(bp.dirty_price - p,
                                    -a.modified_duration * p * 1e-4 + 0.5 * a.convexity * p * 1e-8,
                                    1e-6); /* the third-order term is ~1e-7 */
            ck_assert_double_eq_tol(a.clean_price + a.accrued, a.dirty_price, 1e-12);
        }
}
END_TEST

START_TEST(test_bondmath_settlement_on_coupon_date)
{
    fi_bond b;
    fi_terms t = terms(0.06, 2, FI_DC_THIRTY_360_US, "2020-03-15", "2025-03-15", NULL);
    init_ok(&b, &t);
    fi_cashflow cf[12];
    /* on a coupon date: that coupon is the seller's, accrued is 0 */
    int32_t on = D("2022-09-15");
    ck_assert_int_eq(fi_bond_cashflows(&b, on, cf, 12), 6);
    ck_assert_int_eq(cf[0].date, D("2023-03-15"));
    double acc;
    fi_bond_accrued(&b, on, &acc);
    ck_assert_double_eq(acc, 0.0);
    /* the day before: the coupon is still to come, a full period but one day accrued */
    ck_assert_int_eq(fi_bond_cashflows(&b, on - 1, cf, 12), 7);
    ck_assert_int_eq(cf[0].date, on);
    fi_bond_accrued(&b, on - 1, &acc);
    ck_assert_double_eq_tol(acc, 6.0 * 179 / 360, 1e-12);
    /* the day after: one day of the next period */
    fi_bond_accrued(&b, on + 1, &acc);
    ck_assert_double_eq_tol(acc, 6.0 * 1 / 360, 1e-12);
    /* the last coupon and the redemption are separate flows on the maturity date */
    int n = fi_bond_cashflows(&b, D("2025-01-01"), cf, 12);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(cf[0].date, cf[1].date);
    ck_assert_int_eq(cf[0].kind, FI_CF_COUPON);
    ck_assert_double_eq_tol(cf[0].amount, 3.0, 1e-12);
    ck_assert_int_eq(cf[1].kind, FI_CF_REDEMPTION);
    /* sizing call and a short buffer never write past |cap| */
    ck_assert_int_eq(fi_bond_cashflows(&b, D("2020-03-15"), NULL, 0), 11);
    fi_cashflow guard[3] = { { 0 } };
    guard[2].amount = -7;
    ck_assert_int_eq(fi_bond_cashflows(&b, D("2020-03-15"), guard, 2), 11);
    ck_assert_double_eq(guard[2].amount, -7);
    ck_assert_int_eq(guard[1].date, D("2021-03-15"));

    /* 30/360 from the 30th to a 31st maturity is 0 days: nothing left to discount, the
     * price is the same at every yield and no yield can be implied from it */
    t = terms(0.05, 1, FI_DC_THIRTY_360_US, "2010-07-31", "2014-07-31", NULL);
    init_ok(&b, &t);
    fi_analytics a1, a2;
    ck_assert_int_eq(fi_bond_price(&b, D("2014-07-30"), 0.01, &a1), 0);
    ck_assert_int_eq(fi_bond_price(&b, D("2014-07-30"), 0.50, &a2), 0);
    ck_assert_double_eq(a1.dirty_price, a2.dirty_price);
    ck_assert_double_eq(a1.modified_duration, 0.0);
    double y;
    ck_assert_int_eq(fi_bond_yield(&b, D("2014-07-30"), a1.clean_price, &y), FI_E_YIELD_UNDEFINED);
    ck_assert_str_eq(fi_err_field(FI_E_YIELD_UNDEFINED), "settlementDate");
    ck_assert_int_eq(fi_bond_yield(&b, D("2014-07-29"), a1.clean_price, &y), 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* The yield solver */

START_TEST(test_bondmath_yield_round_trip)
{
    const double ys[] = { -0.05, -0.02, -0.001, 0.0, 1e-6, 0.03, 0.08, 0.25, 0.9, 2.5, 6.0 };
    const int fs[] = { 0, 1, 2, 4, 12 };
    for (size_t j = 0; j < 5; j++) {
        fi_bond b;
        fi_terms t =
            terms(fs[j] ? 0.055 : 0.0, fs[j], FI_DC_ACT_ACT_ICMA, "2015-02-27", "2045-08-31", NULL);
        init_ok(&b, &t);
        int32_t s = D("2024-04-30");
        for (size_t i = 0; i < sizeof(ys) / sizeof(ys[0]); i++) {
            fi_analytics a, back;
            ck_assert_int_eq(fi_bond_price(&b, s, ys[i], &a), 0);
            double y;
            int rv = fi_bond_yield(&b, s, a.clean_price, &y);
            ck_assert_msg(rv == 0, "f=%d y=%g: %d", fs[j], ys[i], rv);
            ck_assert_msg(fabs(y - ys[i]) < 1e-12, "f=%d y=%g solved %.17g", fs[j], ys[i], y);
            ck_assert_int_eq(fi_bond_price_from_clean(&b, s, a.clean_price, &back), 0);
            ck_assert_double_eq(back.yield, y);
            ck_assert_double_eq_tol(back.clean_price, a.clean_price,
                                    1e-10 * fmax(1, a.clean_price));
        }
    }
}
END_TEST

START_TEST(test_bondmath_yield_no_solution)
{
    fi_bond b;
    fi_terms t = terms(0.05, 2, FI_DC_ACT_ACT_ICMA, "2020-01-15", "2030-06-15", NULL);
    init_ok(&b, &t);
    int32_t s = D("2021-03-01");
    double acc, y = 12345.0;
    fi_bond_accrued(&b, s, &acc);
    /* dirty price <= 0: every cash flow is positive */
    ck_assert_int_eq(fi_bond_yield(&b, s, -acc, &y), FI_E_NO_YIELD);
    ck_assert_int_eq(fi_bond_yield(&b, s, -50.0, &y), FI_E_NO_YIELD);
    /* so cheap that the yield would exceed 1000% */
    ck_assert_int_eq(fi_bond_yield(&b, s, 1e-9, &y), FI_E_NO_YIELD);
    /* dearer than at the lowest yield of the range (1 + y/2 = 0.01) */
    ck_assert_int_eq(fi_bond_yield(&b, s, 1e300, &y), FI_E_NO_YIELD);
    ck_assert_double_eq(y, 12345.0); /* untouched */
    /* not a number */
    ck_assert_int_eq(fi_bond_yield(&b, s, NAN, &y), FI_E_CLEAN_PRICE);
    ck_assert_int_eq(fi_bond_yield(&b, s, INFINITY, &y), FI_E_CLEAN_PRICE);
    fi_analytics a;
    ck_assert_int_eq(fi_bond_price_from_clean(&b, s, -200.0, &a), FI_E_NO_YIELD);
    /* a negative clean price with a positive dirty price is solvable (high yield, big
     * coupon, mid-period) */
    fi_terms big = terms(0.9, 1, FI_DC_ACT_365_FIXED, "2020-01-15", "2022-01-15", NULL);
    init_ok(&b, &big);
    fi_analytics hi;
    ck_assert_int_eq(fi_bond_price(&b, D("2020-07-15"), 9.0, &hi), 0);
    ck_assert(hi.clean_price < 0 && hi.dirty_price > 0);
    ck_assert_int_eq(fi_bond_yield(&b, D("2020-07-15"), hi.clean_price, &y), 0);
    ck_assert_double_eq_tol(y, 9.0, 1e-12);

    /* a zero-coupon bond with no room below -99%: price far above 100 * 0.01^-t */
    fi_terms z = terms(0.0, 0, FI_DC_ACT_360, "2020-01-01", "2021-01-01", NULL);
    init_ok(&b, &z);
    ck_assert_int_eq(fi_bond_yield(&b, D("2020-01-01"), 1e6, &y), FI_E_NO_YIELD);
    ck_assert_int_eq(fi_bond_yield(&b, D("2020-01-01"), 5000.0, &y), 0);
    ck_assert(y < -0.9 && y > -0.99);
}
END_TEST

START_TEST(test_bondmath_yield_extremes)
{
    /* 100 years monthly near the bottom of the range: discount factors overflow to inf
     * there, and a zero coupon rate makes 0 * inf; the solver must still bracket */
    fi_bond b;
    fi_terms t = terms(0.0, 12, FI_DC_ACT_365_FIXED, "2000-01-15", "2100-01-15", NULL);
    init_ok(&b, &t);
    int32_t s = D("2000-01-15");
    double y;
    fi_analytics a;
    /* 1e200 is reachable (about -379%: 1 + y/12 = 0.68): bisection passes through yields
     * where the coupons' discount factors are inf and their zero amounts give NaN */
    ck_assert_int_eq(fi_bond_yield(&b, s, 1e200, &y), 0);
    ck_assert(y < -3.0 && y > -4.5);
    ck_assert_int_eq(fi_bond_price(&b, s, y, &a), 0);
    ck_assert_double_eq_tol(a.clean_price / 1e200, 1.0, 1e-9);
    ck_assert_int_eq(fi_bond_price(&b, s, -0.05, &a), 0);
    ck_assert_int_eq(fi_bond_yield(&b, s, a.clean_price, &y), 0);
    ck_assert_double_eq_tol(y, -0.05, 1e-12);
    ck_assert_int_eq(fi_bond_price(&b, s, 8.0, &a), 0);
    ck_assert_int_eq(fi_bond_yield(&b, s, a.clean_price, &y), 0);
    ck_assert_double_eq_tol(y, 8.0, 1e-12);
    /* price underflow at absurd yields: durations fall back to 0 like QuantLib's */
    ck_assert_int_eq(fi_bond_price(&b, s, 1e6, &a), 0);
    ck_assert_double_eq(a.dirty_price, 0.0);
    ck_assert_double_eq(a.modified_duration, 0.0);
    ck_assert(isfinite(a.bpv));
}
END_TEST

static Suite *bondmath_suite(void)
{
    Suite *s = suite_create("bondmath");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bondmath_reference_cases);
    tcase_add_test(tc, test_bondmath_reference_schedules);
    tcase_add_test(tc, test_bondmath_reference_day_counts);
    suite_add_tcase(s, tc);

    tc = tcase_create("dates");
    tcase_add_test(tc, test_bondmath_dates);
    tcase_add_test(tc, test_bondmath_day_counts_known);
    suite_add_tcase(s, tc);

    tc = tcase_create("schedule");
    tcase_add_test(tc, test_bondmath_schedule_regular);
    tcase_add_test(tc, test_bondmath_schedule_short_first);
    tcase_add_test(tc, test_bondmath_schedule_long_first);
    tcase_add_test(tc, test_bondmath_schedule_end_of_month);
    tcase_add_test(tc, test_bondmath_schedule_capacity);
    tcase_add_test(tc, test_bondmath_validation);
    suite_add_tcase(s, tc);

    tc = tcase_create("pricing");
    tcase_add_test(tc, test_bondmath_zero_coupon);
    tcase_add_test(tc, test_bondmath_derivatives);
    tcase_add_test(tc, test_bondmath_settlement_on_coupon_date);
    suite_add_tcase(s, tc);

    tc = tcase_create("yield");
    tcase_add_test(tc, test_bondmath_yield_round_trip);
    tcase_add_test(tc, test_bondmath_yield_no_solution);
    tcase_add_test(tc, test_bondmath_yield_extremes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(bondmath_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
