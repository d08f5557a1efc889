/* SPDX-License-Identifier: MIT */
/* Fixed-rate bonds: schedule, accrued, price/yield, durations, convexity, BPV, cash flows. */
#include "bondmath.h"

#include <math.h>

/* ---------------------------------------------------------------------------------------- */
/* Terms and schedule */

static int valid_date(int32_t d)
{
    return d >= FI_DATE_MIN && d <= FI_DATE_MAX;
}

/*
 * The backward grid: maturity minus k periods of |months|, each computed from the maturity
 * itself (not from the previous grid date), so a 31st keeps coming back after short months.
 */
typedef struct grid {
    int y, m, d; /* maturity */
    int months;  /* 12 / frequency */
} grid;

static int32_t grid_date(const grid *g, int k)
{
    static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int total = g->y * 12 + (g->m - 1) - k * g->months;
    int y = total / 12, m = total % 12 + 1;
    int days = dim[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    return fi_date_from_ymd(y, m, g->d < days ? g->d : days);
}

/*
 * Validates |t|; on success sets *|k_last| to K, the number of grid dates (k >= 1) on or after
 * the exit date (the first coupon date if given, else the issue date), and *|irregular| when
 * the issue date is not itself the last of them, which adds a first (stub) period.  Returns
 * the number of periods or a negative fi_err.
 */
static int check_terms(const fi_terms *t, grid *g, int *k_last, int *irregular)
{
    if (!(t->coupon_rate >= 0.0 && t->coupon_rate < 1.0)) /* NaN fails too */
        return FI_E_COUPON_RATE;
    int f = t->frequency;
    if (f != 0 && f != 1 && f != 2 && f != 4 && f != 12)
        return FI_E_FREQUENCY;
    if (f == 0 && t->coupon_rate != 0.0)
        return FI_E_COUPON_RATE;
    if (fi_day_count_name(t->day_count) == NULL)
        return FI_E_DAY_COUNT;
    if (!valid_date(t->issue_date))
        return FI_E_ISSUE_DATE;
    if (!valid_date(t->maturity_date) || t->maturity_date <= t->issue_date ||
        t->maturity_date > fi_date_add_months(t->issue_date, 12 * FI_MAX_YEARS))
        return FI_E_MATURITY_DATE;
    if (f == 0) {
        if (t->first_coupon_date != FI_NO_DATE)
            return FI_E_FIRST_COUPON_DATE;
        *k_last = 0;
        *irregular = 0;
        return 0;
    }
    int32_t first = t->first_coupon_date;
    if (first != FI_NO_DATE &&
        (!valid_date(first) || first <= t->issue_date || first > t->maturity_date))
        return FI_E_FIRST_COUPON_DATE;

    fi_date_to_ymd(t->maturity_date, &g->y, &g->m, &g->d);
    g->months = 12 / f;
    int32_t exit = first != FI_NO_DATE ? first : t->issue_date;
    int k = 0;
    int32_t last = t->maturity_date; /* grid date k */
    for (;;) {
        int32_t next = grid_date(g, k + 1);
        if (next < exit) /* also FI_NO_DATE (before 1901), which is < any valid exit */
            break;
        last = next;
        k++;
    }
    /* With a first coupon date, QuantLib would insert an off-grid date as an extra irregular
     * period in the middle; we accept only grid dates, so the stub is the first period. */
    if (first != FI_NO_DATE && last != first)
        return FI_E_FIRST_COUPON_DATE;
    *k_last = k;
    *irregular = last != t->issue_date;
    return k + *irregular;
}

int fi_terms_periods(const fi_terms *t)
{
    grid g;
    int k, irr;
    return check_terms(t, &g, &k, &irr);
}

int fi_bond_init(fi_bond *b, const fi_terms *t, fi_period *periods, size_t cap)
{
    grid g;
    int k_last, irregular;
    int n = check_terms(t, &g, &k_last, &irregular);
    if (n < 0)
        return n;
    if ((size_t)n > cap)
        return FI_E_CAPACITY;

    b->terms = *t;
    b->comp_freq = t->frequency ? t->frequency : 1;
    b->n = n;
    b->periods = periods;
    b->ref_start0 = t->issue_date;
    b->zero_ref_start = fi_date_add_months(t->maturity_date, -12);
    b->_ntaus = 0;
    if (n == 0)
        return 0;

    /* Schedule date D(n-k) is grid date k (k = 0 is the maturity); D(0) is the issue date
     * when the first period is a stub. */
    for (int k = 0; k <= k_last; k++) {
        int32_t d = k == 0 ? t->maturity_date : grid_date(&g, k);
        if (n - k - 1 >= 0)
            periods[n - k - 1].end = d;
        if (k >= 1)
            periods[n - k].start = d;
    }
    if (irregular) {
        periods[0].start = t->issue_date;
        /* QuantLib's notional reference period for an irregular first coupon: one regular
         * period ending on the first coupon date (FixedRateLeg). */
        b->ref_start0 = fi_date_add_months(periods[0].end, -g.months);
    }

    for (int i = 0; i < n; i++) {
        fi_period *p = &periods[i];
        int32_t rs = i == 0 ? b->ref_start0 : p->start;
        p->tau = fi_year_fraction(t->day_count, p->start, p->end, rs, p->end);
        /* FixedRateCoupon::amount(): nominal * (compoundFactor - 1) with Simple compounding,
         * i.e. 100 * ((1 + r t) - 1); kept in this form to match QuantLib to the last bit. */
        p->amount = 100.0 * ((1.0 + t->coupon_rate * p->tau) - 1.0);
        p->_pad = 0;
        /* Most bonds have one to four distinct period lengths: cache them so pricing needs
         * one exp() per distinct length instead of one per period. */
        p->_tau_ix = -1;
        for (int j = 0; j < b->_ntaus; j++)
            if (b->_taus[j] == p->tau) {
                p->_tau_ix = j;
                break;
            }
        if (p->_tau_ix < 0 && b->_ntaus < FI_TAU_TABLE) {
            b->_taus[b->_ntaus] = p->tau;
            p->_tau_ix = b->_ntaus++;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Pricing */

/* Where a settlement date falls: the first live period and the first discounting step. */
typedef struct position {
    int k;          /* first period paid after settlement (0, unused, for zero-coupon) */
    double accrued; /* per 100 */
    double t1;      /* years from settlement to the first remaining payment */
} position;

static int locate(const fi_bond *b, int32_t settle, position *pos)
{
    const fi_terms *t = &b->terms;
    if (settle < t->issue_date || settle >= t->maturity_date)
        return FI_E_SETTLEMENT_DATE;
    if (b->n == 0) {
        /* A redemption is not a coupon: QuantLib gives it the reference period (maturity -
         * 1 year, maturity) when no earlier flow is left (getStepwiseDiscountTime). */
        pos->k = 0;
        pos->accrued = 0.0;
        pos->t1 = fi_year_fraction(t->day_count, settle, t->maturity_date, b->zero_ref_start,
                                   t->maturity_date);
        return 0;
    }
    /* The first period ending strictly after settlement: a coupon paid on the settlement
     * date has occurred (includeSettlementDateFlows = false). */
    const fi_period *ps = b->periods;
    int lo = 0, hi = b->n - 1; /* ps[n-1].end is the maturity, > settle */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ps[mid].end > settle)
            hi = mid;
        else
            lo = mid + 1;
    }
    const fi_period *p = &ps[lo];
    pos->k = lo;
    if (settle > p->start) {
        int32_t rs = lo == 0 ? b->ref_start0 : p->start;
        double a = fi_year_fraction(t->day_count, p->start, settle, rs, p->end);
        pos->accrued = 100.0 * ((1.0 + t->coupon_rate * a) - 1.0);
        /* QuantLib's stepwise time for a coupon already running: the coupon's year fraction
         * minus the accrued part, both with the coupon's reference period. */
        pos->t1 = p->tau - a;
    } else {
        pos->accrued = 0.0;
        pos->t1 = p->tau;
    }
    return 0;
}

/*
 * Sums over the remaining cash flows c at times t with discount factors B = exp(-f t u),
 * where u = log(1 + y/f): |s[0]| = sum c B (the dirty price), |s[1]| = sum c t B, and if
 * |second|, |s[2]| = sum c B t (f t + 1).  Discount factors are built as a running product
 * over the periods, as QuantLib's CashFlows::npv does, so only distinct period lengths cost
 * an exp().
 */
static void sums(const fi_bond *b, const position *pos, double u, int second, double s[3])
{
    const double nf = (double)b->comp_freq;
    const double g = -nf * u; /* B(t) = exp(g t) */
    double t = pos->t1;
    double disc = exp(g * t);
    double p0 = 0.0, p1 = 0.0, p2 = 0.0;

    if (b->n > 0) {
        double v[FI_TAU_TABLE];
        for (int j = 0; j < b->_ntaus; j++)
            v[j] = exp(g * b->_taus[j]);
        const fi_period *ps = b->periods;
        int k = pos->k;
        double c = ps[k].amount;
        p0 = c * disc;
        p1 = c * t * disc;
        if (second)
            p2 = c * disc * t * (nf * t + 1.0);
        for (int i = k + 1; i < b->n; i++) {
            const fi_period *p = &ps[i];
            t += p->tau;
            /* _tau_ix < _ntaus by construction, so v[] is set where read */
            // cppcheck-suppress uninitvar
            disc *= p->_tau_ix >= 0 ? v[p->_tau_ix] : exp(g * p->tau);
            c = p->amount;
            p0 += c * disc;
            p1 += c * t * disc;
            if (second)
                p2 += c * disc * t * (nf * t + 1.0);
        }
    }
    /* The redemption, paid with the last coupon (step time 0 after it). */
    p0 += 100.0 * disc;
    p1 += 100.0 * t * disc;
    if (second)
        p2 += 100.0 * disc * t * (nf * t + 1.0);
    s[0] = p0;
    s[1] = p1;
    s[2] = p2;
}

static int yield_ok(const fi_bond *b, double y)
{
    return isfinite(y) && 1.0 + y / (double)b->comp_freq > 0.0;
}

static void fill(const fi_bond *b, const position *pos, double y, fi_analytics *out)
{
    double s[3];
    const double nf = (double)b->comp_freq;
    const double base = 1.0 + y / nf; /* rounded as QuantLib's (1 + r/f) before pow() */
    sums(b, pos, log(base), 1, s);
    const double price = s[0];

    out->yield = y;
    out->accrued = pos->accrued;
    out->dirty_price = price;
    out->clean_price = price - pos->accrued;
    if (price > 0.0) {
        out->modified_duration = s[1] / base / price;
        out->convexity = s[2] / (nf * base * base) / price;
    } else {
        /* every discount factor underflowed: QuantLib answers 0 when the NPV is 0 */
        out->modified_duration = 0.0;
        out->convexity = 0.0;
    }
    out->macaulay_duration = base * out->modified_duration;

    /* CashFlows::basisPointValue, including its convexity/100 scaling. */
    const double shift = 0.0001;
    double delta = -out->modified_duration * price;
    double gamma = (out->convexity / 100.0) * price;
    delta *= shift;
    gamma *= shift * shift;
    out->bpv = delta + 0.5 * gamma;
}

int fi_bond_price(const fi_bond *b, int32_t settle, double yield, fi_analytics *out)
{
    position pos;
    int rv = locate(b, settle, &pos);
    if (rv != 0)
        return rv;
    if (!yield_ok(b, yield))
        return FI_E_YIELD;
    fill(b, &pos, yield, out);
    return 0;
}

int fi_bond_accrued(const fi_bond *b, int32_t settle, double *accrued)
{
    position pos;
    int rv = locate(b, settle, &pos);
    if (rv != 0)
        return rv;
    *accrued = pos.accrued;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Yield from price */

#define MAX_ITERATIONS 200

/*
 * Solves for u = log(1 + y/f).  The dirty price is P(u) = sum c exp(-f t u), a sum of
 * exponentials, so h(u) = log P(u) - log(target) is decreasing and convex (log-sum-exp): the
 * root is unique, and a Newton step from its left never overshoots it.  h is also nearly
 * linear (exactly, for a zero-coupon bond, which converges in one step), where Newton on P(y)
 * itself crawls at high yields: each step there moves by only about 1/(f t).  Newton is kept
 * inside a bracket [lo, hi] that every evaluation narrows; a step that leaves it (or is NaN,
 * near the bottom of the range where the discount factors overflow) is replaced by
 * bisection.  Done when a Newton step moves y by less than the tolerance (convergence is
 * quadratic, so the new iterate is far more accurate than that).  If the bracket collapses
 * on an end of the range never passed by the root, the root is outside it: FI_E_NO_YIELD.
 */
static int solve(const fi_bond *b, const position *pos, double target, double guess, double *y)
{
    const double nf = (double)b->comp_freq;
    const double umin = log(1.0 + FI_YIELD_MIN_FACTOR), umax = log(1.0 + FI_YIELD_MAX / nf);
    const double ltarget = log(target);
    double lo = umin, hi = umax;
    int lo_moved = 0, hi_moved = 0;
    double u = guess > FI_YIELD_MIN_FACTOR * nf ? log(1.0 + guess / nf) : NAN;
    if (!(u > lo && u < hi))
        u = log(1.0 + 0.05 / nf);

    for (int it = 0; it < MAX_ITERATIONS; it++) {
        double s[3];
        sums(b, pos, u, 0, s);
        double p = isnan(s[0]) ? INFINITY : s[0]; /* 0 * inf from overflowed discounts */
        double h = log(p) - ltarget;
        if (h == 0.0) {
            *y = nf * expm1(u);
            return 0;
        }
        if (h > 0.0) {
            lo = u;
            lo_moved = 1;
        } else {
            hi = u;
            hi_moved = 1;
        }
        /* h'(u) = -f sum(c t B) / P */
        double step = h * p / (nf * s[1]);
        double nu = u + step;
        if (isfinite(nu) && fabs(nf * exp(u) * step) < FI_YIELD_TOLERANCE && nu >= umin &&
            nu <= umax) {
            *y = nf * expm1(nu);
            return 0;
        }
        if (!(nu > lo && nu < hi))
            nu = 0.5 * (lo + hi);
        if (nf * (exp(hi) - exp(lo)) < FI_YIELD_TOLERANCE) {
            if (!lo_moved || !hi_moved)
                return FI_E_NO_YIELD;
            *y = nf * expm1(0.5 * (lo + hi));
            return 0;
        }
        u = nu;
    }
    return FI_E_NO_YIELD;
}

int fi_bond_yield(const fi_bond *b, int32_t settle, double clean, double *yield)
{
    position pos;
    int rv = locate(b, settle, &pos);
    if (rv != 0)
        return rv;
    if (!isfinite(clean))
        return FI_E_CLEAN_PRICE;
    /* Times never decrease along the schedule, so a zero first step with nothing after it
     * means every remaining flow is at t = 0: P(y) is constant. */
    if (pos.t1 <= 0.0 && pos.k >= b->n - 1)
        return FI_E_YIELD_UNDEFINED;
    double target = clean + pos.accrued;
    if (!(target > 0.0))
        return FI_E_NO_YIELD; /* every cash flow is positive: no yield gives a price <= 0 */

    /* A starting point near the root saves iterations: the exact yield of a zero-coupon
     * bond, or the textbook approximation (coupon + pull to par) / average price. */
    const fi_terms *t = &b->terms;
    double years = (double)(t->maturity_date - settle) / 365.25;
    double guess;
    if (b->n == 0)
        guess = pow(100.0 / target, 1.0 / years) - 1.0;
    else
        guess = (t->coupon_rate + (100.0 - clean) / (100.0 * years)) / ((100.0 + clean) / 200.0);
    return solve(b, &pos, target, guess, yield);
}

int fi_bond_price_from_clean(const fi_bond *b, int32_t settle, double clean, fi_analytics *out)
{
    double y;
    int rv = fi_bond_yield(b, settle, clean, &y);
    if (rv != 0)
        return rv;
    position pos;
    locate(b, settle, &pos); /* cannot fail: fi_bond_yield() checked settle */
    fill(b, &pos, y, out);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Cash flows */

int fi_bond_cashflows(const fi_bond *b, int32_t settle, fi_cashflow *out, size_t cap)
{
    position pos;
    int rv = locate(b, settle, &pos);
    if (rv != 0)
        return rv;
    size_t n = 0;
    for (int i = pos.k; i < b->n; i++, n++)
        if (n < cap)
            out[n] = (fi_cashflow){ .date = b->periods[i].end,
                                    .kind = FI_CF_COUPON,
                                    .amount = b->periods[i].amount };
    if (n < cap)
        out[n] = (fi_cashflow){ .date = b->terms.maturity_date,
                                .kind = FI_CF_REDEMPTION,
                                .amount = 100.0 };
    n++;
    return (int)n;
}
