/* SPDX-License-Identifier: MIT */
/* Analytics: error names, calendar dates, the normal distribution, sums and sorting. */
#include "fsr/analytics.h"

#include <errno.h>
#include <math.h>

#include "analytics_int.h"

/* ---------------------------------------------------------------------------------------
 * Errors
 */

static const struct {
    int code;
    const char *name;
    const char *text;
} an_errors[] = {
    { FSR_AN_E_ARG, "ARG", "invalid argument" },
    { FSR_AN_E_EMPTY, "EMPTY", "the series is empty" },
    { FSR_AN_E_TOO_SHORT, "TOO_SHORT",
      "not enough data: at least two prices (or two returns, or two cash flows) are needed" },
    { FSR_AN_E_DATES, "DATES", "dates must be strictly ascending" },
    { FSR_AN_E_PRICE, "PRICE", "prices must be finite and greater than zero" },
    { FSR_AN_E_DIVIDEND, "DIVIDEND",
      "dividends must be finite, not negative, and in ascending ex-date order" },
    { FSR_AN_E_NONFINITE, "NONFINITE", "values must be finite numbers" },
    { FSR_AN_E_RETURN, "RETURN", "a return is below -100%" },
    { FSR_AN_E_NO_OVERLAP, "NO_OVERLAP", "the series have fewer than two dates in common" },
    { FSR_AN_E_WEIGHTS, "WEIGHTS",
      "weights must not be negative and must sum to 1 (at most 1 where cash takes the rest)" },
    { FSR_AN_E_CONFIDENCE, "CONFIDENCE", "confidence must be between 0 and 1" },
    { FSR_AN_E_FLOW_DATE, "FLOW_DATE",
      "each flow must be dated after the first valuation date, no later than the last, and "
      "on a valuation date" },
    { FSR_AN_E_DENOMINATOR, "DENOMINATOR",
      "a period starts with a value of zero or less (after flows), so its return is undefined" },
    { FSR_AN_E_NO_SIGN_CHANGE, "NO_SIGN_CHANGE",
      "the cash flows must include money in (negative) and money out (positive)" },
    { FSR_AN_E_NO_ROOT, "NO_ROOT", "no rate between -99% and 1000% solves the cash flows" },
    { FSR_AN_E_PERIOD, "PERIOD", "the period ends before the series starts or before it begins" },
    { FSR_AN_E_VALUE, "VALUE",
      "quantities, values and cash must be finite; quantities not negative, prices and lots "
      "greater than zero, and the total value positive" },
    { FSR_AN_E_BUFFER, "BUFFER", "output buffer too small" },
    { -ENOMEM, "NOMEM", "out of memory" },
};

const char *fsr_an_strerror(int err)
{
    for (size_t i = 0; i < sizeof(an_errors) / sizeof(an_errors[0]); i++)
        if (an_errors[i].code == err)
            return an_errors[i].text;
    return "unknown analytics error";
}

const char *fsr_an_errname(int err)
{
    for (size_t i = 0; i < sizeof(an_errors) / sizeof(an_errors[0]); i++)
        if (an_errors[i].code == err)
            return an_errors[i].name;
    return "UNKNOWN";
}

bool fsr_an_is_error(int err)
{
    return err <= FSR_AN_E_ARG && err >= FSR_AN_E_BUFFER;
}

/* ---------------------------------------------------------------------------------------
 * Calendar dates: Howard Hinnant's days_from_civil / civil_from_days (public domain), which
 * shift the year to start in March so the leap day is the year's last.
 */

int32_t fsr_an_day_from_civil(int year, int month, int day)
{
    int y = year - (month <= 2);
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;                                            /* [0, 399] */
    int doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1; /* [0, 365] */
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;                    /* [0, 146096] */
    return (int32_t)(era * 146097 + doe - 719468);
}

void fsr_an_day_to_civil(int32_t day, int *year, int *month, int *mday)
{
    int z = day + 719468;
    int era = (z >= 0 ? z : z - 146096) / 146097;
    int doe = z - era * 146097;                                      /* [0, 146096] */
    int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    int d = doy - (153 * mp + 2) / 5 + 1;
    int m = mp < 10 ? mp + 3 : mp - 9;
    if (year)
        *year = yoe + era * 400 + (m <= 2);
    if (month)
        *month = m;
    if (mday)
        *mday = d;
}

/* ---------------------------------------------------------------------------------------
 * The normal distribution
 */

/*
 * Wichura, "Algorithm AS 241: The percentage points of the normal distribution", Applied
 * Statistics 37 (1988) 477-484, PPND16: rational approximations in three regions, accurate
 * to about 1e-16 relative.  The coefficients are the published ones (also those of R's
 * qnorm()); below, a0..a7 are a region's numerator and b0..b7 its denominator.  Measured
 * against a long-double Newton refinement, the largest relative error over p in
 * [1e-300, 1 - 1e-16] is 8.9e-16 (the unit test asserts < 1e-15 on a grid); scipy's ndtri
 * agrees to within a few ulps.
 */
static const double ppf_a_central[8] = {
    3.387132872796366608,  133.14166789178437745, 1971.5909503065514427, 13731.693765509461125,
    45921.953931549871457, 67265.770927008700853, 33430.575583588128105, 2509.0809287301226727,
};
static const double ppf_b_central[8] = {
    1.0,
    42.313330701600911252,
    687.1870074920579083,
    5394.1960214247511077,
    21213.794301586595867,
    39307.89580009271061,
    28729.085735721942674,
    5226.495278852545925,
};
static const double ppf_a_inner[8] = {
    1.42343711074968357734,   4.6303378461565452959,    5.7694972214606914055,
    3.64784832476320460504,   1.27045825245236838258,   0.24178072517745061177,
    0.0227238449892691845833, 7.7454501427834140764e-4,
};
static const double ppf_b_inner[8] = {
    1.0,
    2.05319162663775882187,
    1.6763848301838038494,
    0.68976733498510000455,
    0.14810397642748007459,
    0.0151986665636164571966,
    5.475938084995344946e-4,
    1.05075007164441684324e-9,
};
static const double ppf_a_tail[8] = {
    6.6579046435011037772,     5.4637849111641143699,     1.7848265399172913358,
    0.29656057182850489123,    0.026532189526576123093,   0.0012426609473880784386,
    2.71155556874348757815e-5, 2.01033439929228813265e-7,
};
static const double ppf_b_tail[8] = {
    1.0,
    0.59983220655588793769,
    0.13692988092273580531,
    0.0148753612908506148525,
    7.868691311456132591e-4,
    1.8463183175100546818e-5,
    1.4215117583164458887e-7,
    2.04426310338993978564e-15,
};

/* c0 + c1 r + ... + c7 r^7 by Horner's rule, highest degree first (as AS 241 nests it). */
static double poly7(const double c[8], double r)
{
    double v = c[7];
    for (int i = 6; i >= 0; i--)
        v = v * r + c[i];
    return v;
}

double fsr_an_norm_ppf(double p)
{
    if (isnan(p) || p < 0.0 || p > 1.0)
        return NAN;
    if (p == 0.0)
        return -INFINITY;
    if (p == 1.0)
        return INFINITY;
    double q = p - 0.5;
    if (fabs(q) <= 0.425) {
        /* 0.075 <= p <= 0.925 */
        double r = 0.180625 - q * q;
        return q * poly7(ppf_a_central, r) / poly7(ppf_b_central, r);
    }
    /* r = sqrt(-log(min(p, 1 - p))); 1 - p is exact for p > 0.5 (Sterbenz). */
    double r = sqrt(-log(q < 0 ? p : 1.0 - p));
    double val;
    if (r <= 5.0) {
        /* min(p, 1 - p) >= exp(-25), about 1.39e-11 */
        r -= 1.6;
        val = poly7(ppf_a_inner, r) / poly7(ppf_b_inner, r);
    } else {
        r -= 5.0;
        val = poly7(ppf_a_tail, r) / poly7(ppf_b_tail, r);
    }
    return q < 0.0 ? -val : val;
}

double fsr_an_norm_pdf(double x)
{
    /* 1 / sqrt(2 pi) */
    return 0.398942280401432677939946059934 * exp(-0.5 * x * x);
}

double fsr_an_norm_cdf(double x)
{
    return 0.5 * erfc(-x * 0.707106781186547524400844362105);
}

double fsr_an_rf_daily(double rf_annual)
{
    /* Written as numpy users write it, (1 + rf) ** (1 / 252) - 1, so both round alike. */
    return pow(1.0 + rf_annual, 1.0 / 252.0) - 1.0;
}

/* ---------------------------------------------------------------------------------------
 * Sums and sorting
 */

double fsr__an_sum_array(const double *x, size_t n)
{
    fsr__an_sum s = { 0 };
    for (size_t i = 0; i < n; i++)
        fsr__an_add(&s, x[i]);
    return fsr__an_total(&s);
}

static void insertion_sort(double *x, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        double v = x[i];
        size_t j = i;
        for (; j > 0 && x[j - 1] > v; j--)
            x[j] = x[j - 1];
        x[j] = v;
    }
}

/*
 * Quicksort on doubles with a median-of-three pivot, insertion sort below 24 elements, and
 * recursion only into the smaller side (so the stack stays O(log n)); there is no comparator
 * call per element as with qsort(), which makes the VaR sort of ten years of returns ~4x
 * cheaper.  Inputs are finite (checked by the callers), so < is a total order.
 */
void fsr__an_sort(double *x, size_t n)
{
    while (n > 24) {
        size_t mid = n / 2;
        double a = x[0], b = x[mid], c = x[n - 1];
        double pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = 0, j = n - 1;
        for (;;) {
            while (x[i] < pivot)
                i++;
            while (x[j] > pivot)
                j--;
            if (i >= j)
                break;
            double t = x[i];
            x[i] = x[j];
            x[j] = t;
            i++;
            j--;
        }
        /* Hoare partition: x[0..j] <= pivot <= x[j+1..n-1]. */
        size_t left = j + 1;
        if (left < n - left) {
            fsr__an_sort(x, left);
            x += left;
            n -= left;
        } else {
            fsr__an_sort(x + left, n - left);
            n = left;
        }
    }
    insertion_sort(x, n);
}
