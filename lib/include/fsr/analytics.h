/* SPDX-License-Identifier: MIT */
/*
 * Pure analytics shared by the equity and portfolio services: return series, per-series risk
 * and return metrics, VaR/ES, covariance risk, portfolio return series, TWR, XIRR, Brinson
 * attribution and rebalancing, exactly as the shared ANALYTICS.md defines them.
 *
 * No I/O, no global state, no locks: every function may run on any thread.  Inputs are plain
 * arrays of doubles and of day serials (int32_t days since 1970-01-01, proleptic Gregorian,
 * the same numbering as fsr_days_from_civil()); results come back in caller-owned structs
 * and buffers.  Only fsr_an_cov() and the metric/VaR functions need scratch memory; they take
 * a caller-provided |work| buffer and, when it is NULL, make exactly one malloc() of the
 * documented size and free it before returning (-ENOMEM if that fails).
 *
 * Errors: every int-returning function returns 0 (or a count where stated) on success, or a
 * negative code: one of the FSR_AN_E_* below (all caused by the input, so a service answers
 * INVALID_ARGUMENT; fsr_an_strerror() gives a client-safe sentence and fsr_an_errname() the
 * constant's name) or -ENOMEM.  A failing function leaves its outputs untouched unless its
 * comment says otherwise.
 *
 * Conventions (ANALYTICS.md): A = 252 observations a year; sample (n-1) standard deviations
 * and covariances; daily risk-free rate rf_d = (1 + rf_annual)^(1/252) - 1; VaR and ES are
 * positive loss fractions.  A ratio whose denominator is exactly zero (zero volatility, no
 * drawdown, ...) is NaN.  Numerics: means and sums of squares are two-pass with compensated
 * (Neumaier) summation, so results agree with numpy/scipy to ~1e-16 absolute for returns and
 * VaR and ~1e-14 relative for ratios (the tolerances are 1e-12 and 1e-9); the library
 * is compiled with -ffp-contract=off so results do not depend on FMA availability.
 */
#ifndef FSR_ANALYTICS_H
#define FSR_ANALYTICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------
 * Errors
 */

/* Error codes (negative; the FSR_E_* of fsr/status.h live in -1001..-1099). */
enum {
    FSR_AN_E_ARG = -1101,            /* NULL pointer, zero count, unknown enum value */
    FSR_AN_E_EMPTY = -1102,          /* a series or list with no elements */
    FSR_AN_E_TOO_SHORT = -1103,      /* fewer points than the measure needs (e.g. one price) */
    FSR_AN_E_DATES = -1104,          /* dates not strictly ascending */
    FSR_AN_E_PRICE = -1105,          /* a price that is not finite and > 0 */
    FSR_AN_E_DIVIDEND = -1106,       /* a dividend < 0 or not finite, or ex-dates descending */
    FSR_AN_E_NONFINITE = -1107,      /* a NaN or infinite input value */
    FSR_AN_E_RETURN = -1108,         /* a return below -100% */
    FSR_AN_E_NO_OVERLAP = -1109,     /* aligned series share fewer than two dates */
    FSR_AN_E_WEIGHTS = -1110,        /* weights negative, or not summing as required */
    FSR_AN_E_CONFIDENCE = -1111,     /* a confidence level outside (0, 1) */
    FSR_AN_E_FLOW_DATE = -1112,      /* a flow outside (first, last] valuation date or not on one */
    FSR_AN_E_DENOMINATOR = -1113,    /* a TWR / Modified Dietz denominator <= 0 */
    FSR_AN_E_NO_SIGN_CHANGE = -1114, /* XIRR: the flows are all of one sign */
    FSR_AN_E_NO_ROOT = -1115,        /* XIRR: no rate in (-0.99, 10) solves the equation */
    FSR_AN_E_PERIOD = -1116,         /* a period ending before the series or before it starts */
    FSR_AN_E_VALUE = -1117,          /* a negative or non-finite value, quantity, lot or cash */
    FSR_AN_E_BUFFER = -1118,         /* a caller buffer (ld, cap) is too small */
};

/*
 * A client-safe sentence describing |err| ("the series needs at least two prices", ...), for
 * every FSR_AN_E_* and -ENOMEM; "unknown analytics error" otherwise.  Never NULL, static.
 */
const char *fsr_an_strerror(int err);

/* The constant's name without the prefix ("TOO_SHORT", "NO_ROOT", ...), or "UNKNOWN". */
const char *fsr_an_errname(int err);

/* True if |err| is one of the FSR_AN_E_* codes (an input error: INVALID_ARGUMENT). */
bool fsr_an_is_error(int err);

/* ---------------------------------------------------------------------------------------
 * Small helpers: dates, the normal distribution, the daily risk-free rate
 */

/* Day serial (days since 1970-01-01) of a proleptic Gregorian date; |month| 1..12. */
int32_t fsr_an_day_from_civil(int year, int month, int day);

/* The calendar date of day serial |day|; each out-param may be NULL. */
void fsr_an_day_to_civil(int32_t day, int *year, int *month, int *mday);

/*
 * Inverse of the standard normal CDF, Phi^-1(|p|), by Wichura's algorithm AS 241 (PPND16,
 * Applied Statistics 37 (1988) 477-484): relative error about 1e-16 over (0, 1).  Returns
 * -INFINITY for 0, +INFINITY for 1 and NaN outside [0, 1].
 */
double fsr_an_norm_ppf(double p);

/* Standard normal density phi(|x|) = exp(-x^2/2) / sqrt(2 pi). */
double fsr_an_norm_pdf(double x);

/* Standard normal CDF Phi(|x|) = erfc(-x / sqrt 2) / 2. */
double fsr_an_norm_cdf(double x);

/* rf_d = (1 + |rf_annual|)^(1/252) - 1, the geometric daily rate (0.02 -> 7.8587e-5). */
double fsr_an_rf_daily(double rf_annual);

/* ---------------------------------------------------------------------------------------
 * Return series from prices
 */

/* Return basis. */
typedef enum fsr_an_basis {
    FSR_AN_TOTAL = 0, /* (P_t + D_t) / P_{t-1} - 1 (primary) */
    FSR_AN_PRICE = 1, /* P_t / P_{t-1} - 1 */
} fsr_an_basis;

/*
 * A dated price series with its cash dividends.  All pointers are borrowed.
 *
 * |days| and |close| hold |n| closes on strictly ascending dates; each close is finite and
 * > 0 and already reflects any dividend going ex on that date (ANALYTICS.md).  The first
 * date is the base date: n prices give n - 1 returns, the return on day t using the close
 * of the previous date of the series.
 *
 * |div_days| and |div_amount| hold |n_div| cash dividends per share by ex-date, in
 * non-decreasing ex-date order (several on one date add up); both may be NULL when |n_div|
 * is 0.  Dividend rule: the dividend D_t of date t is the sum of the dividends whose
 * ex-date is in (date t-1, date t].  So a dividend going ex on a date the series (or an
 * aligned calendar) has no close counts on the next date that has one, the first close
 * that reflects the drop; dividends going ex on or before the base date, or after the last
 * date, are outside the series and ignored.
 */
typedef struct fsr_an_series {
    const int32_t *days;
    const double *close;
    size_t n;
    const int32_t *div_days;
    const double *div_amount;
    size_t n_div;
} fsr_an_series;

/*
 * Checks |s| as described at fsr_an_series.  Returns 0, or FSR_AN_E_ARG (NULL), _EMPTY
 * (n = 0), _TOO_SHORT (n = 1), _DATES, _PRICE or _DIVIDEND.
 */
int fsr_an_series_check(const fsr_an_series *s);

/*
 * Writes the n - 1 returns of |s| on its own calendar into |ret| on |basis|: return t - 1
 * (0-based) is dated s->days[t].  FSR_AN_PRICE ignores the dividends.  Returns 0 or an error
 * of fsr_an_series_check() (FSR_AN_E_ARG also for an unknown |basis| or a NULL |ret|).
 */
int fsr_an_series_returns(const fsr_an_series *s, fsr_an_basis basis, double *ret);

/*
 * Aligns |k| series on their common dates and recomputes everything on that calendar.
 *
 * Rule: the aligned calendar is the intersection of the k date sets; every date present in
 * only some of the series is dropped, and returns are recomputed between consecutive
 * common dates (a return spanning a dropped date compounds both days' price moves), with
 * each series' dividends re-attached by the (date t-1, date t] rule of fsr_an_series, so a
 * dividend going ex on a dropped date counts on the next common date.  The first common date
 * is the base date.  This is what pandas' inner join followed by pct_change() on the joined
 * closes gives for price returns.
 *
 * Outputs (each may be NULL except |days| and |n_out|):
 *   days   the m common dates, ascending;
 *   close  k rows of m closes (series j's row starts at close + j * ld);
 *   div    k rows of m dividends by the rule above (column 0, the base date, is 0);
 *   ret    k rows of m - 1 returns on |basis| (return t - 1 is dated days[t]).
 * |ld| is the row stride and the capacity of |days|: at least the length of the shortest
 * series (m never exceeds it).  On success *|n_out| = m >= 2; on failure *|n_out| and the
 * matrices are untouched but |days| may have been written (it is the intersection's scratch).
 *
 * With k = 1 this is the series on its own calendar with its dividends per date.  Returns 0,
 * or FSR_AN_E_ARG (k = 0, NULL |s|, |days| or |n_out|, bad basis), FSR_AN_E_BUFFER (ld
 * shorter than the shortest series), an error of fsr_an_series_check() for any series, or
 * FSR_AN_E_NO_OVERLAP (fewer than two common dates).
 */
int fsr_an_align(const fsr_an_series *s, size_t k, fsr_an_basis basis, int32_t *days, double *close,
                 double *div, double *ret, size_t ld, size_t *n_out);

/*
 * The n - 1 returns of aligned closes |close| (|n| of them, each finite and > 0) with
 * per-date dividends |div| (may be NULL = none; div[0] is ignored) on |basis|.  Returns 0,
 * FSR_AN_E_ARG, _TOO_SHORT (n < 2), _PRICE or _DIVIDEND.
 */
int fsr_an_returns(const double *close, const double *div, size_t n, fsr_an_basis basis,
                   double *ret);

/* ---------------------------------------------------------------------------------------
 * Per-series metrics, VaR and ES
 */

/* The two confidence levels every metrics result carries, in this order. */
#define FSR_AN_VAR_LEVELS 2
#define FSR_AN_VAR_CONF0  0.95
#define FSR_AN_VAR_CONF1  0.99

/*
 * One-day VaR and ES at one confidence level, all POSITIVE loss fractions of the
 * start-of-day value.  p = 1 - confidence, snapped to the nearest multiple of 1e-12 so that
 * 0.95 gives exactly the double nearest 0.05 (the value numpy's percentile(x, 5) uses); the
 * sorted returns are x(0) <= .. <= x(n-1), h = (n-1) p and j = floor(h).
 */
typedef struct fsr_an_var {
    double confidence;              /* as given, e.g. 0.95 */
    double historical;              /* -[x(j) + (h - j)(x(j+1) - x(j))] (type 7) */
    double historical_lower;        /* -x(j) */
    double historical_inverted_cdf; /* -x(ceil(n p) - 1) */
    double cvar_historical;         /* minus the mean of the floor((n-1) p) + 1 worst */
    double gaussian;                /* -(mean + z s), z = Phi^-1(p), s sample stdev */
    double es_gaussian;             /* -mean + s phi(z) / p */
    double cornish_fisher;          /* -(mean + z_cf s), population skewness and kurtosis */
} fsr_an_var;

/*
 * VaR and ES of the |n| returns |r| at |confidence| into *|out|.  |work| holds n doubles
 * (a sorted copy of |r|) or is NULL (one malloc).  Needs n >= 2.  Returns 0, or
 * FSR_AN_E_ARG, _TOO_SHORT, _NONFINITE, _RETURN (a return < -1), _CONFIDENCE or -ENOMEM.
 */
int fsr_an_var_compute(const double *r, size_t n, double confidence, double *work, fsr_an_var *out);

/* "Not applicable" for the index fields of fsr_an_metrics. */
#define FSR_AN_NONE ((size_t)-1)

/*
 * Every per-series metric of ANALYTICS.md.  Positions refer to the wealth index, which has
 * n + 1 points: position 0 is the base date (wealth 1) and position t follows return
 * r[t - 1], so with a dated series position t is the date days[t].
 */
typedef struct fsr_an_metrics {
    size_t n;                       /* number of returns */
    double mean;                    /* mean daily return */
    double stdev;                   /* sample stdev of the daily returns */
    double total_return;            /* prod(1 + r) - 1 */
    double annualized_return;       /* prod(1 + r)^(252/n) - 1 */
    double annualized_return_arith; /* mean(r) x 252 */
    double annualized_volatility;   /* stdev(r) x sqrt(252) */
    double sharpe;                  /* mean(r - rf_d) / stdev(r - rf_d) x sqrt(252) */
    double downside_deviation;      /* sqrt(sum min(r - rf_d, 0)^2 / n) x sqrt(252) */
    double sortino;                 /* mean(r - rf_d) x 252 / downside_deviation */
    /*
     * Maximum drawdown, a positive fraction: max over t of 1 - W_t / max(W_0..W_t), with
     * W_0 = 1.  The trough is the first position where it is reached; the peak is the last
     * position at or before the trough where the wealth equals its running maximum; the
     * recovery is the first position after the trough whose wealth is >= the peak's.  With
     * no drawdown at all (max_drawdown 0) all three are FSR_AN_NONE; recovery is
     * FSR_AN_NONE too when the series never gets back to the peak.
     */
    double max_drawdown;
    size_t max_drawdown_peak;
    size_t max_drawdown_trough;
    size_t max_drawdown_recovery;
    double calmar;          /* annualized_return / max_drawdown */
    double skewness;        /* m3 / m2^1.5 (population moments) */
    double excess_kurtosis; /* m4 / m2^2 - 3 */
    /* Benchmark-relative metrics: set when a benchmark was given, else 0. */
    bool has_benchmark;
    double beta;              /* cov(r, b) / var(b) */
    double alpha_daily;       /* mean(r - rf_d) - beta x mean(b - rf_d) */
    double alpha_annualized;  /* (1 + alpha_daily)^252 - 1 */
    double correlation;       /* Pearson correlation of r and b */
    double tracking_error;    /* stdev(r - b) x sqrt(252) */
    double information_ratio; /* mean(r - b) x 252 / tracking_error */
    /* VaR / ES at FSR_AN_VAR_CONF0 (0.95) and FSR_AN_VAR_CONF1 (0.99). */
    fsr_an_var var[FSR_AN_VAR_LEVELS];
} fsr_an_metrics;

/*
 * Computes every metric of the |n| daily returns |r| into *|out|; with a benchmark |b|
 * (n returns on the same dates, e.g. from fsr_an_align(); may be NULL) also the relative
 * ones.  |rf_annual| is the annual risk-free rate (0.02 by convention), > -1.  |work| holds
 * n doubles or is NULL (one malloc).  Needs n >= 2 (sample statistics).
 *
 * Returns 0, or FSR_AN_E_ARG (NULL |r| or |out|, bad |rf_annual|), _TOO_SHORT (n < 2),
 * _NONFINITE, _RETURN (a return < -1, which no long position can have) or -ENOMEM.
 */
int fsr_an_metrics_compute(const double *r, const double *b, size_t n, double rf_annual,
                           double *work, fsr_an_metrics *out);

/* ---------------------------------------------------------------------------------------
 * Period returns
 */

/* A compounded return over a window of a dated return series. */
typedef struct fsr_an_period {
    int32_t start_close; /* the trading date whose close starts the window (exclusive) */
    int32_t end_close;   /* the trading date whose close ends the window (inclusive) */
    size_t start_index;  /* their positions in the dates (0 = base date) */
    size_t end_index;
    double total_return; /* prod(1 + r) over the returns dated in (start_close, end_close] */
} fsr_an_period;

/*
 * The compounded return from the close of |start_close| (exclusive) to the close of
 * |end_close| (inclusive).  |days| holds the n + 1 dates of the series (base date first,
 * strictly ascending) and |r| its n returns (r[t - 1] dated days[t]).  Each bound resolves
 * to the last date of the series on or before it; a |start_close| before the base date
 * resolves to the base date (the window starts with the series).  A window with no return
 * in it has total_return 0.
 *
 * Returns 0, or FSR_AN_E_ARG, _EMPTY (n = 0), _DATES, or FSR_AN_E_PERIOD (|end_close|
 * before the base date or before |start_close|).
 */
int fsr_an_period_return(const int32_t *days, const double *r, size_t n, int32_t start_close,
                         int32_t end_close, fsr_an_period *out);

/*
 * Calendar-year returns: for each year Y from the year of days[1] to that of days[n], the
 * window from the last close on or before Y-1-12-31 (or the base date) to the last close
 * in Y, i.e. the returns dated in Y linked.  Years with no returns in them are skipped.
 * Writes up to |cap| results into |out| (may be NULL when |cap| is 0), the year being
 * the one of each end_close.  Returns the number of years (which may exceed |cap|: call
 * again with a larger buffer), or an error as fsr_an_period_return().
 */
int fsr_an_year_returns(const int32_t *days, const double *r, size_t n, fsr_an_period *out,
                        size_t cap);

/* ---------------------------------------------------------------------------------------
 * Covariance risk
 */

/* Doubles of scratch fsr_an_cov() needs for |k| series of |n| returns. */
size_t fsr_an_cov_work_size(size_t k, size_t n);

/*
 * Sample covariance (divide by n - 1) of |k| aligned series of |n| daily returns: series j
 * is x[j * ld .. j * ld + n - 1] (ld >= n), as fsr_an_align() writes them.  Writes the
 * k x k row-major matrix into |cov| and, if |corr| is not NULL, the correlation matrix
 * (NaN in the row and column of a series with zero variance, 1 on the rest of the
 * diagonal).  |work| holds fsr_an_cov_work_size(k, n) doubles or is NULL (one malloc).
 *
 * Returns 0, or FSR_AN_E_ARG (k = 0, NULL), _BUFFER (ld < n), _TOO_SHORT (n < 2),
 * _NONFINITE or -ENOMEM.
 */
int fsr_an_cov(const double *x, size_t k, size_t n, size_t ld, double *cov, double *corr,
               double *work);

/* Portfolio volatility from a covariance matrix. */
typedef struct fsr_an_risk {
    double variance_daily; /* w' C w */
    double volatility;     /* sqrt(w' C w) x sqrt(252) */
    double cash_weight;    /* 1 - sum(w): cash, zero variance */
} fsr_an_risk;

/*
 * Covariance risk (ANALYTICS.md covariance_risk) of weights |w| (k fractions of the whole
 * portfolio, each >= 0, summing to at most 1; the remainder is cash with zero variance)
 * over the k x k covariance |cov| of daily returns.  Fills *|out| and, when not NULL,
 * |risk_contrib| (k: w_i (C w)_i / (w' C w), summing to 1) and |marginal| (k:
 * (C w)_i / sqrt(w' C w) x sqrt(252)); both are NaN when w' C w is 0.
 *
 * Returns 0, or FSR_AN_E_ARG, _NONFINITE or _WEIGHTS (a negative weight, or a sum above
 * 1 + 1e-9).
 */
int fsr_an_portfolio_risk(const double *cov, size_t k, const double *w, fsr_an_risk *out,
                          double *risk_contrib, double *marginal);

/* ---------------------------------------------------------------------------------------
 * Portfolio return series
 */

/*
 * daily_rebalanced: R_t = sum_i w_i r_i,t + w_cash rf_d for t = 0 .. n-1, weights reset
 * every day; w_cash = 1 - sum(w).  |ret| holds k aligned rows of n returns with stride |ld|
 * (total-return basis by convention), |w| k weights (>= 0, sum <= 1 + 1e-9).  Writes n
 * returns into |out|.  Returns 0, or FSR_AN_E_ARG, _BUFFER, _TOO_SHORT (n = 0 is _EMPTY),
 * _NONFINITE or _WEIGHTS.
 */
int fsr_an_portfolio_rebalanced(const double *ret, size_t k, size_t n, size_t ld, const double *w,
                                double rf_annual, double *out);

/* Summary of a buy-and-hold simulation. */
typedef struct fsr_an_buy_and_hold {
    double initial_cash; /* V0 - sum shares_i P_i,0 */
    double final_cash;   /* after interest and dividends */
    double final_value;  /* V_{n-1} */
} fsr_an_buy_and_hold;

/*
 * buy_and_hold over |n| aligned dates: |close| and |div| are k rows of n closes and per-date
 * dividends per share with stride |ld| (fsr_an_align()'s output; |div| may be NULL).  On
 * the base date each equity gets floor(w_i V0 / P_i,0) whole shares and the rest of |v0| is
 * cash.  Nothing is traded afterwards.  Each later date t, in this order: cash grows by
 * rf_d (cash_t = cash_{t-1} (1 + rf_d)), then the day's dividends (shares_i x D_i,t) are
 * paid into cash; V_t = sum shares_i P_i,t + cash_t and R_t = V_t / V_{t-1} - 1.
 *
 * Outputs, each may be NULL: |shares| (k), |values| (n, values[0] = v0), |ret| (n - 1),
 * *|summary|.  Returns 0, or FSR_AN_E_ARG, _BUFFER, _TOO_SHORT (n < 2), _PRICE, _DIVIDEND,
 * _VALUE (v0 not finite and > 0) or _WEIGHTS (negative, or summing above 1 + 1e-9).
 */
int fsr_an_portfolio_buy_and_hold(const double *close, const double *div, size_t k, size_t n,
                                  size_t ld, const double *w, double v0, double rf_annual,
                                  double *shares, double *values, double *ret,
                                  fsr_an_buy_and_hold *summary);

/* ---------------------------------------------------------------------------------------
 * Time- and money-weighted returns
 */

/* When an external flow enters the daily return. */
typedef enum fsr_an_flow_timing {
    FSR_AN_FLOW_START = 0, /* r_t = V_t / (V_{t-1} + CF_t) - 1 (primary) */
    FSR_AN_FLOW_END = 1,   /* r_t = (V_t - CF_t) / V_{t-1} - 1 */
    FSR_AN_FLOW_SPLIT = 2, /* r_t = (V_t + OUT_t) / (V_{t-1} + IN_t) - 1 */
    FSR_AN_FLOW_DIETZ = 3, /* Modified Dietz over the whole period, no daily returns */
} fsr_an_flow_timing;

/* Result of fsr_an_twr_compute(). */
typedef struct fsr_an_twr {
    double twr;            /* prod(1 + r_t) - 1, or the Modified Dietz return */
    double annualized;     /* (1 + twr)^(365 / calendar_days) - 1 */
    double annualized_252; /* (1 + twr)^(252 / n_returns) - 1 */
    int32_t calendar_days; /* last date - first date */
    size_t n_returns;      /* number of valuation dates - 1 */
} fsr_an_twr;

/*
 * Time-weighted return of |n| end-of-day values |values| (finite, >= 0) on strictly
 * ascending |days|, with |m| external flows |flows| (positive deposits, negative
 * withdrawals) dated |flow_days| in non-decreasing order.  The first value is the base: a
 * flow must be dated after it and no later than the last date, and, except for
 * FSR_AN_FLOW_DIETZ, on a valuation date (flows sharing a date add up; SPLIT sums the
 * positive ones into IN_t and the negative ones into OUT_t = -sum).
 *
 * FSR_AN_FLOW_DIETZ: (V_end - V_start - sum CF) / (V_start + sum W_i CF_i), with
 * W_i = (end - flow date) / (end - start) in calendar days; |returns| is not written.
 * Otherwise the n - 1 daily returns (return t - 1 dated days[t]) go into |returns| (may be
 * NULL) and TWR links them.
 *
 * Returns 0, or FSR_AN_E_ARG, _EMPTY (n = 0), _TOO_SHORT (n = 1), _DATES (values or
 * flows out of order), _VALUE (a value negative or not finite), _NONFINITE (a flow),
 * _FLOW_DATE, or _DENOMINATOR (a daily or Dietz denominator <= 0).
 */
int fsr_an_twr_compute(const int32_t *days, const double *values, size_t n,
                       const int32_t *flow_days, const double *flows, size_t m,
                       fsr_an_flow_timing timing, double *returns, fsr_an_twr *out);

/*
 * True sub-period TWR when the portfolio is valued just before each flow: |before| holds
 * the k + 1 valuations just before flows 0..k (before[0] is the start value, before[k]
 * the end value) and |flow| the k flows that follow before[0..k-1].  Writes
 * prod_{i=1..k} before[i] / (before[i-1] + flow[i-1]) - 1 into *|twr|.  Returns 0, or
 * FSR_AN_E_ARG, _TOO_SHORT (k = 0), _NONFINITE or _DENOMINATOR.
 */
int fsr_an_twr_subperiods(const double *before, const double *flow, size_t k, double *twr);

/*
 * XIRR (money-weighted return): the annual rate r with sum CF_i / (1 + r)^((d_i - d_0)/365)
 * = 0, d_0 the earliest date, actual days (Excel XIRR, Portfolio Performance's IRR).  Money
 * put in is negative, withdrawals and the final value positive; the |n| flows may be in
 * any order.
 *
 * Solver: the grid of 401 rates evenly spaced in log(1 + r) over [-0.99, 10] splits the
 * range into intervals; an interval whose ends have finite net present values of opposite
 * sign (or a zero) brackets a root, which Brent's method then refines to ~1e-15.  Intervals
 * are tried in order of their distance from 0, so when several brackets exist (flows that
 * change sign more than once can have several roots) the one nearest 0 wins, and usually
 * only a few present values are computed.
 *
 * Returns 0 and sets *|rate|, or FSR_AN_E_ARG, _TOO_SHORT (n < 2), _NONFINITE,
 * _NO_SIGN_CHANGE (no positive or no negative flow: no rate can work) or _NO_ROOT (no
 * root in (-0.99, 10)).
 */
int fsr_an_xirr(const int32_t *days, const double *flows, size_t n, double *rate);

/* ---------------------------------------------------------------------------------------
 * Brinson attribution (single period)
 */

/* Attribution model. */
typedef enum fsr_an_attr_model {
    FSR_AN_BRINSON_FACHLER = 0, /* allocation_i = (wp_i - wb_i)(Rb_i - Rb) (primary) */
    FSR_AN_BHB = 1,             /* allocation_i = (wp_i - wb_i) Rb_i */
} fsr_an_attr_model;

/* One class's effects. */
typedef struct fsr_an_attr_class {
    double allocation;
    double selection;                  /* wb_i (Rp_i - Rb_i) */
    double interaction;                /* (wp_i - wb_i)(Rp_i - Rb_i) */
    double selection_with_interaction; /* top-down variant: wp_i (Rp_i - Rb_i) */
} fsr_an_attr_class;

/* Totals; allocation + selection + interaction = active_return. */
typedef struct fsr_an_attr_total {
    double portfolio_return; /* Rp = sum wp_i Rp_i */
    double benchmark_return; /* Rb = sum wb_i Rb_i */
    double active_return;    /* Rp - Rb */
    double allocation;
    double selection;
    double interaction;
} fsr_an_attr_total;

/*
 * Brinson attribution over |k| classes: portfolio and benchmark weights |wp|, |wb| (each set
 * sums to 1 within 1e-9; a class the benchmark does not hold, e.g. cash, has wb_i = 0 and
 * still an explicit Rb_i) and class returns |rp|, |rb|.  Writes k results into |classes|
 * (may be NULL) and the totals into *|total|.  Sums are compensated.
 *
 * Returns 0, or FSR_AN_E_ARG (NULL, k = 0, unknown model), _NONFINITE or _WEIGHTS.
 */
int fsr_an_attribution(const double *wp, const double *wb, const double *rp, const double *rb,
                       size_t k, fsr_an_attr_model model, fsr_an_attr_class *classes,
                       fsr_an_attr_total *total);

/*
 * Carino's logarithmic linking of daily attribution effects over |n| days with portfolio
 * returns |rp| and benchmark returns |rb| (each > -1): writes the n scale factors
 * factors[t] = k_t / k into |factors|, where k_t = ln((1 + rp_t) / (1 + rb_t)) / (rp_t - rb_t)
 * (1 / (1 + rb_t) when they are equal) and k is the same of the cumulative returns
 * R = prod(1 + rp_t) - 1 and B = prod(1 + rb_t) - 1 (written to *|total_rp| and
 * *|total_rb|, each may be NULL).  The linked effect is sum_t factors[t] x effect_t; since
 * the daily effects sum to rp_t - rb_t, the linked ones sum to R - B.  The logarithms are
 * taken as log1p((a - b) / (1 + b)), accurate when a and b are close.
 *
 * Returns 0, or FSR_AN_E_ARG (NULL), _EMPTY (n = 0), _NONFINITE or _RETURN (a return <= -1).
 */
int fsr_an_carino_factors(const double *rp, const double *rb, size_t n, double *factors,
                          double *total_rp, double *total_rb);

/* ---------------------------------------------------------------------------------------
 * Rebalancing
 */

/* Which assets a rebalance trades. */
typedef enum fsr_an_rebal_mode {
    FSR_AN_REBAL_FULL = 0, /* every asset */
    FSR_AN_REBAL_BAND = 1, /* only the assets whose drift breaches a band */
} fsr_an_rebal_mode;

/* The default bands ("5/25"), as Portfolio Performance colours its rebalancing view. */
#define FSR_AN_BAND_ABS 0.05
#define FSR_AN_BAND_REL 0.25

/* One position's input. */
typedef struct fsr_an_rebal_position {
    double quantity; /* current quantity, >= 0 */
    double price;    /* price per unit, > 0 */
    double lot;      /* lot size, > 0 (1 for single shares) */
    double target;   /* target weight, >= 0, fraction of the total value (cash included) */
} fsr_an_rebal_position;

/* One position's drift and trade. */
typedef struct fsr_an_rebal_result {
    double current_weight;  /* quantity x price / V */
    double drift_abs;       /* current_weight - target */
    double drift_rel;       /* drift_abs / target: +-INFINITY for target 0 with a holding,
                             * NaN for target 0 and no holding */
    bool breach;            /* |drift_abs| > band_abs or |drift_rel| > band_rel */
    double target_quantity; /* floor(target x V / (price x lot)) x lot */
    double trade;           /* target_quantity - quantity if traded, else 0; > 0 buys */
    double notional;        /* trade x price, > 0 spends cash */
    double post_quantity;   /* quantity + trade */
    double post_weight;     /* post_quantity x price / V */
} fsr_an_rebal_result;

/* Totals of a rebalance. */
typedef struct fsr_an_rebal_total {
    double total_value;      /* V = sum quantity x price + cash + cash_to_invest */
    double post_trade_cash;  /* cash + cash_to_invest - sum notional */
    double post_cash_weight; /* post_trade_cash / V = 1 - sum post_weight */
    size_t breaches;         /* number of positions in breach */
} fsr_an_rebal_total;

/*
 * Rebalancing plan (ANALYTICS.md): drift of |k| positions against their targets, the 5/25
 * breach rule with bands |band_abs| and |band_rel| (fractions; FSR_AN_BAND_ABS and
 * FSR_AN_BAND_REL by default), target quantities rounded down to whole lots, trades, and
 * post-trade cash and weights.  No fees; cash is the residual and is never traded.  The
 * total value V includes |cash| and |cash_to_invest|, so current weights are measured
 * after the new cash arrives.  Because of the floor, FULL never spends more cash than
 * there is when the targets sum to at most 1; BAND trades breached positions to their
 * full targets and leaves the others, so post-trade cash can be negative when unbreached
 * positions sit above their targets (the caller decides; nothing is scaled).
 *
 * Writes k results into |res| and the totals into *|total|.  Returns 0, or FSR_AN_E_ARG
 * (NULL, unknown mode), _VALUE (a quantity < 0, price or lot <= 0, target < 0, a
 * non-finite input, bands < 0, or V <= 0) or _WEIGHTS (targets summing above 1 + 1e-9).
 */
int fsr_an_rebalance(const fsr_an_rebal_position *pos, size_t k, double cash, double cash_to_invest,
                     fsr_an_rebal_mode mode, double band_abs, double band_rel,
                     fsr_an_rebal_result *res, fsr_an_rebal_total *total);

#endif /* FSR_ANALYTICS_H */
