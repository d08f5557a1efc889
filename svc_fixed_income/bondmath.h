/* SPDX-License-Identifier: MIT */
/*
 * Fixed-rate bond math: dates, day counts, coupon schedules, accrued interest, price from
 * yield, yield from price, durations, convexity, BPV and the remaining cash flows.  Pure C:
 * no I/O, no global state, no allocation (callers hand in the storage), safe from any thread.
 *
 * Conventions (API.md "Bond conventions"; the numbers are those of QuantLib 1.29's
 * FixedRateBond / ZeroCouponBond with BondFunctions, checked case by case against
 * test/bondref/reference.json, which test/bondref/gen_reference.py generates):
 *
 *  - Everything is per 100 of face.  The redemption is 100 at maturity.
 *  - Schedule: generated backward from the maturity date in steps of 12/frequency months
 *    (DateGeneration::Backward, NullCalendar, Unadjusted, no end-of-month rule).  Each date
 *    is maturity minus k periods, the day clamped to the length of the month (a 31 August
 *    maturity pays on 28/29 February and 31 August).  If the issue date is not on that grid
 *    the first period is a short stub.  A long first period needs an explicit first coupon
 *    date (fi_terms.first_coupon_date), which must be on the grid: the first period then runs
 *    from the issue date to it (QuantLib's Schedule firstDate).  Payment dates are the
 *    schedule dates (no holidays, no adjustment).
 *  - Coupons: amount = 100 * coupon_rate * yearFraction(start, end, refStart, refEnd),
 *    computed as QuantLib does (100 * ((1 + r t) - 1), so 2.5 comes out as 2.499999999999991).
 *    The reference period of a regular coupon is its own period; for an irregular first
 *    coupon it is (first coupon date - one period, first coupon date), QuantLib's notional
 *    period, which ACT/ACT-ICMA uses to split a long stub into notional periods.
 *  - Settlement: a cash flow paid on the settlement date belongs to the seller (QuantLib's
 *    includeSettlementDateFlows = false), so settling on a coupon date leaves that coupon out
 *    and accrued is 0.  No ex-coupon period.  Settlement must be on or after the issue date and
 *    before the maturity date.
 *  - Accrued = 100 * coupon_rate * yearFraction(start of the current period, settlement, its
 *    reference period).
 *  - Yield: compounded at the coupon frequency, with the bond's own day count: a cash flow at
 *    time t (years, by the day count) is discounted by (1 + y/f)^(-f t).  Times are stepwise as
 *    in QuantLib's CashFlows: from settlement to the next coupon the time is
 *    yf(period start, coupon date) - yf(period start, settlement), then each later period adds
 *    its own year fraction.  Zero-coupon bonds (frequency 0) use ANNUAL compounding (f = 1);
 *    their single time is yf(settlement, maturity) with reference period (maturity - 1 year,
 *    maturity), QuantLib's choice for a cash flow that is not a coupon.
 *  - Durations and convexity are QuantLib's for Compounded yields: modified = -P'(y)/P,
 *    Macaulay = (1 + y/f) * modified, convexity = P''(y)/P.  bpv is QuantLib's
 *    basisPointValue, its estimate of the price change for +1bp: -modified * P * 1e-4 +
 *    0.5 * (convexity / 100) * P * 1e-8 (QuantLib's own 1/100 on the convexity term, so not
 *    quite the Taylor change), negative for a long position; P is the dirty price.
 *
 * Day counts (QuantLib classes in brackets):
 *  - ACT/ACT-ICMA [ActualActual(ISMA), the classic implementation without a schedule]: a
 *    period of m months (m = round(12 * refDays / 365)) counts m/12 years; a date range
 *    inside a reference period counts m/12 * days / refDays; longer ranges are split into
 *    notional periods before the reference period (long first coupons, zero-coupon bonds).
 *  - ACT/ACT-ISDA [ActualActual(ISDA)]: days in each calendar year over 365 or 366.
 *  - 30/360 US [Thirty360(USA)]: D1=31 -> 30; D2=31 and D1>=30 -> 30; both last of February
 *    -> D2=30; D1 last of February -> 30.  This is the "30/360 US bond basis" of API.md.
 *    QuantLib's Thirty360(BondBasis) (ISDA "Bond Basis") differs only when a date is the last
 *    day of February; we follow the US rule because the API names the US convention.
 *  - 30E/360 [Thirty360(EurobondBasis)]: D1=31 -> 30, D2=31 -> 30.
 *  - ACT/360 [Actual360], ACT/365F [Actual365Fixed].
 *
 * Dates are day serials: days since 1899-12-30, the QuantLib/Excel serial number (so
 * 2000-01-01 is 36526).  0 means "no date".  Valid dates are 1901-01-01 to 2199-12-31.
 *
 * Errors are negative fi_err values; fi_err_field() names the request field at fault (the
 * API's lowerCamelCase names) so a service can answer INVALID_ARGUMENT naming it.
 */
#ifndef FI_BONDMATH_H
#define FI_BONDMATH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */

typedef enum fi_err {
    FI_OK = 0,
    FI_E_COUPON_RATE = -1,       /* couponRate: not finite or outside [0, 1); or not 0 when
                                    frequency is 0 */
    FI_E_FREQUENCY = -2,         /* frequency: not 0, 1, 2, 4 or 12 */
    FI_E_DAY_COUNT = -3,         /* dayCount: not one of fi_day_count */
    FI_E_ISSUE_DATE = -4,        /* issueDate: not a valid date in range */
    FI_E_MATURITY_DATE = -5,     /* maturityDate: invalid, not after issueDate, or more than
                                    FI_MAX_YEARS years after it */
    FI_E_FIRST_COUPON_DATE = -6, /* firstCouponDate: not after issueDate, after maturityDate,
                                    not on the backward schedule grid, or given for a
                                    zero-coupon bond */
    FI_E_SETTLEMENT_DATE = -7,   /* settlementDate: invalid, before issueDate, or on/after
                                    maturityDate (nothing left to price) */
    FI_E_YIELD = -8,             /* yield: not finite, or 1 + yield/f <= 0 */
    FI_E_CLEAN_PRICE = -9,       /* cleanPrice: not finite */
    FI_E_NO_YIELD = -10,         /* cleanPrice: no yield in [FI_YIELD_MIN_FACTOR * f,
                                    FI_YIELD_MAX] reproduces it (e.g. dirty price <= 0, or
                                    above the price at the lowest yield) */
    FI_E_CAPACITY = -11,         /* the caller's period buffer is too small */
    FI_E_YIELD_UNDEFINED = -12,  /* settlementDate: every remaining cash flow is at time 0
                                    under the day count (e.g. 30/360 from the 30th to a 31st
                                    maturity), so the price does not depend on the yield */
} fi_err;

/* A static English description of |err| (any int; unknown codes get a generic text). */
const char *fi_strerror(int err);

/*
 * The API field (lowerCamelCase) that |err| blames: "couponRate", "frequency", "dayCount",
 * "issueDate", "maturityDate", "firstCouponDate", "settlementDate" (also for
 * FI_E_YIELD_UNDEFINED), "yield", "cleanPrice" (also for FI_E_NO_YIELD); NULL for FI_OK,
 * FI_E_CAPACITY and unknown codes.
 */
const char *fi_err_field(int err);

/* ---------------------------------------------------------------------------------------- */
/* Dates                                                                                     */

#define FI_NO_DATE   0
#define FI_DATE_MIN  367    /* 1901-01-01 */
#define FI_DATE_MAX  109574 /* 2199-12-31 */
#define FI_DATE_1970 25569  /* 1970-01-01 */

/*
 * The serial of the proleptic Gregorian date |y|-|m|-|d|, or FI_NO_DATE if it is not a real
 * calendar day or lies outside FI_DATE_MIN..FI_DATE_MAX.
 */
int32_t fi_date_from_ymd(int y, int m, int d);

/* Splits serial |date| into year, month (1..12) and day (1..31); any out-param may be NULL. */
void fi_date_to_ymd(int32_t date, int *y, int *m, int *d);

/*
 * Parses exactly "YYYY-MM-DD" (10 characters, digits and dashes, a real day in range) from
 * |s| (NUL-terminated).  Returns the serial, or FI_NO_DATE for anything else (NULL, spaces,
 * "2021-2-3", "2021-02-30", trailing text).
 */
int32_t fi_date_parse(const char *s);

/*
 * Writes "YYYY-MM-DD" and a NUL to |buf| (at least 11 bytes).  Returns |buf|.  |date| must
 * be in FI_DATE_MIN..FI_DATE_MAX (others are clamped into range).
 */
char *fi_date_format(int32_t date, char buf[11]);

/*
 * |date| moved by |n| calendar months (negative: back), the day clamped to the length of
 * the target month (QuantLib's Date + n*Months): 2021-08-31 - 6 months is 2021-02-28.
 */
int32_t fi_date_add_months(int32_t date, int n);

/* ---------------------------------------------------------------------------------------- */
/* Day counts                                                                                */

/* Same numbers as common.v1.DayCount.Value in proto/common/v1. */
typedef enum fi_day_count {
    FI_DC_ACT_ACT_ICMA = 1,
    FI_DC_ACT_ACT_ISDA = 2,
    FI_DC_THIRTY_360_US = 3,
    FI_DC_THIRTY_E_360 = 4,
    FI_DC_ACT_360 = 5,
    FI_DC_ACT_365_FIXED = 6,
} fi_day_count;

/* The API name ("ACT_ACT_ICMA", ...) of |dc|, or NULL if |dc| is not a fi_day_count. */
const char *fi_day_count_name(int dc);

/* The fi_day_count named |name| (exactly the API spelling), or 0 if there is none. */
int fi_day_count_from_name(const char *name);

/*
 * The year fraction from |d1| to |d2| under |dc|.  |ref_start|/|ref_end| are the reference
 * (coupon) period, used only by ACT/ACT-ICMA; FI_NO_DATE for either means "(d1, d2)".  d1 >
 * d2 gives the negative of the swapped fraction.  Returns NaN for an unknown |dc| or a
 * reference period QuantLib rejects (ref_end <= ref_start, ref_end <= d1, or an ICMA range
 * that starts before the reference period and ends after it).
 */
double fi_year_fraction(int dc, int32_t d1, int32_t d2, int32_t ref_start, int32_t ref_end);

/* ---------------------------------------------------------------------------------------- */
/* Bonds                                                                                     */

/* Longest bond accepted, in years from issue to maturity. */
#define FI_MAX_YEARS 100
/*
 * Most coupon periods any valid bond has: 100 years of monthly coupons plus a stub.  A
 * buffer of this many fi_period fits every bond (about 38 KB); fi_terms_periods() gives the
 * exact number for one bond.
 */
#define FI_MAX_PERIODS (12 * FI_MAX_YEARS + 2)

/* The yield solver's range: 1 + y/f in [0.01, 1 + FI_YIELD_MAX/f]. */
#define FI_YIELD_MIN_FACTOR (-0.99) /* y >= -0.99 * f */
#define FI_YIELD_MAX        10.0    /* 1000% */
/* The yield solver stops when successive iterates differ by less than this. */
#define FI_YIELD_TOLERANCE 1e-12

/* What a bond is, as the API's create request gives it (face does not matter: per 100). */
typedef struct fi_terms {
    double coupon_rate; /* annual rate as a fraction (0.05 = 5%); 0 when frequency is 0 */
    int frequency;      /* coupons a year: 1, 2, 4, 12; 0 = zero-coupon bond */
    int day_count;      /* fi_day_count */
    int32_t issue_date;
    int32_t maturity_date;
    int32_t first_coupon_date; /* optional (FI_NO_DATE): see the schedule rule above */
} fi_terms;

/* One coupon period, precomputed by fi_bond_init().  Read-only for callers. */
typedef struct fi_period {
    int32_t start;   /* accrual start (the issue date or the previous coupon date) */
    int32_t end;     /* accrual end = payment date */
    int32_t _tau_ix; /* index into fi_bond._taus, or -1 */
    int32_t _pad;
    double amount; /* coupon per 100 */
    double tau;    /* yf(start, end, reference period): the discounting step of the period */
} fi_period;

#define FI_TAU_TABLE 16

/*
 * A bond ready to price: the terms and the schedule.  Initialise with fi_bond_init(); it
 * borrows the |periods| buffer given there, which must outlive it.  Nothing to dispose.  A
 * fi_bond is never written after init, so any number of threads may price it at once.
 */
typedef struct fi_bond {
    fi_terms terms;
    int comp_freq;              /* compounding frequency: terms.frequency, or 1 for zero-coupon */
    int n;                      /* number of coupon periods (0 for zero-coupon) */
    fi_period *periods;         /* n periods, ascending */
    int32_t ref_start0;         /* reference period start of periods[0] */
    int32_t zero_ref_start;     /* zero-coupon: maturity - 1 year */
    int _ntaus;                 /* distinct period year fractions ... */
    double _taus[FI_TAU_TABLE]; /* ... cached so one exp() serves every period that has it */
} fi_bond;

/* Results per 100 of face. */
typedef struct fi_analytics {
    double yield; /* the yield priced at (given or solved) */
    double accrued;
    double clean_price;
    double dirty_price;
    double macaulay_duration; /* years */
    double modified_duration; /* years */
    double convexity;
    double bpv; /* price change for +1bp (negative for a long position) */
} fi_analytics;

typedef enum fi_cashflow_kind {
    FI_CF_COUPON = 1,
    FI_CF_REDEMPTION = 2,
} fi_cashflow_kind;

typedef struct fi_cashflow {
    int32_t date;
    int kind; /* fi_cashflow_kind */
    double amount;
} fi_cashflow;

/*
 * Checks |t| and returns the number of coupon periods its schedule has (0 for a zero-coupon
 * bond), or one of the negative codes: FI_E_COUPON_RATE, FI_E_FREQUENCY, FI_E_DAY_COUNT,
 * FI_E_ISSUE_DATE, FI_E_MATURITY_DATE, FI_E_FIRST_COUPON_DATE.  The first failing field, in
 * that order, is reported.
 */
int fi_terms_periods(const fi_terms *t);

/*
 * Validates |t| (as fi_terms_periods()) and builds the schedule, coupon amounts and period
 * year fractions into |periods| (|cap| entries; FI_MAX_PERIODS always suffice).  |b| borrows
 * |periods|.  Returns 0, one of fi_terms_periods()'s codes, or FI_E_CAPACITY.  On error |b|
 * is unusable.  This is the only place schedules are built: pricing only reads.
 */
int fi_bond_init(fi_bond *b, const fi_terms *t, fi_period *periods, size_t cap);

/*
 * Prices |b| for settlement on |settle| at |yield|: fills every field of |out|.  One pass
 * over the remaining periods, no allocation.  Returns 0, FI_E_SETTLEMENT_DATE or FI_E_YIELD
 * (|out| untouched on error).
 */
int fi_bond_price(const fi_bond *b, int32_t settle, double yield, fi_analytics *out);

/* Accrued interest per 100 on |settle|.  Returns 0 or FI_E_SETTLEMENT_DATE. */
int fi_bond_accrued(const fi_bond *b, int32_t settle, double *accrued);

/*
 * The yield (same compounding as fi_bond_price()) at which |b|'s clean price on |settle| is
 * |clean|.  Bracketed safeguarded Newton on the dirty price (decreasing and convex in the
 * yield, so the root is unique), iterated until steps are below FI_YIELD_TOLERANCE.  Returns 0
 * and sets *|yield|, or FI_E_SETTLEMENT_DATE, FI_E_CLEAN_PRICE (not finite), FI_E_NO_YIELD
 * (no yield in the solver's range reproduces the price) or FI_E_YIELD_UNDEFINED (no time left
 * to maturity: any yield or none gives the price; QuantLib returns its initial guess, 5%,
 * there); *|yield| is untouched on error.
 */
int fi_bond_yield(const fi_bond *b, int32_t settle, double clean, double *yield);

/*
 * fi_bond_yield() then fi_bond_price() at the solved yield: all analytics from a clean
 * price.  Same error codes as fi_bond_yield().
 */
int fi_bond_price_from_clean(const fi_bond *b, int32_t settle, double clean, fi_analytics *out);

/*
 * The cash flows still to be paid after |settle| (paid strictly after it), in date order:
 * each coupon, then the redemption of 100 at maturity as its own entry (after the last
 * coupon, as QuantLib lists them).  Writes at most |cap| entries to |out| (|out| may be NULL
 * when |cap| is 0) and returns how many there are in total (call with cap 0 to size a
 * buffer), or FI_E_SETTLEMENT_DATE.
 */
int fi_bond_cashflows(const fi_bond *b, int32_t settle, fi_cashflow *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* FI_BONDMATH_H */
