/* SPDX-License-Identifier: MIT */
/*
 * GetPerformance (GET /portfolios/{id}/performance?from=&to=&riskFreeRate=&model=): the daily
 * valuation series rebuilt from the ledger and the market data, TWR / MWR and the
 * ANALYTICS.md metrics of lib/analytics, calendar-period returns and Brinson attribution by
 * asset class linked with Carino's method.  docs/ARCHITECTURE.md, "Portfolio performance".
 *
 * Calendar: the business days are the weekdays (Monday..Friday) -- independent of the data,
 * so a stored day never changes meaning.  The series' base date is the first weekday on or
 * after `from` (leading days on which the portfolio is empty are skipped: the base is the
 * last empty day before the first flow); each later weekday up to `to` has one return.  A
 * price is the last close (equity) or dirty price (bond, per 100 of face) on or before the
 * day, carried forward over holidays; with none in the fetched window (which starts 14 days
 * before the first day computed) the ledger's last trade price is used.  Equity closes are
 * the equity service's split-adjusted series.
 *
 * Each weekday d has an end-of-day row: holdings and cash from the entries dated <= d, their
 * values, and the flows of the entries dated after the previous weekday up to d (so an entry
 * on a Saturday counts on Monday), at the start of the day: external flow = DEPOSIT -
 * WITHDRAWAL + TRANSFER_IN - TRANSFER_OUT, transfers at market value at the start of the day
 * (the previous weekday's price, else the day's); class flows move money between the
 * equity, fixed-income and cash classes (BUY: amount into the instrument's class and out of
 * cash; SELL the reverse; DIVIDEND / COUPON: income out of the instrument's class into cash;
 * FEE: no flow, a loss of the cash class).  Rows before today are stored in pf_snapshots
 * (sql/007_snapshots.sql) and read back by later requests; missing days are computed and
 * stored with one statement.
 *
 * Daily return r_t = V_t / (V_{t-1} + CF_t) - 1 (fsr_an_twr_compute, START_OF_DAY).
 * Class c: weight (V_c,t-1 + F_c,t) / (V_{t-1} + CF_t), return V_c,t / (V_c,t-1 + F_c,t) - 1
 * (0 when the class starts the day empty), so sum_c w_c r_c = r_t.
 *
 * Benchmark: components' daily total returns on the same weekdays (equity (P_t + D_t) /
 * P_{t-1} - 1, bond (dirty_t + cash paid) / dirty_{t-1} - 1, prices carried forward), mixed
 * daily with the components' weights, the rest in cash at rf_d
 * (fsr_an_portfolio_rebalanced).  Class benchmark returns: the class's components mixed
 * with their weights renormalised; CASH and any class the benchmark does not hold earn rf_d.
 */
#include "portfolio.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsr/app.h"
#include "fsr/json.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/pg.h"
#include "fsr/validate.h"

#include "equity_v1.fsr.h"
#include "fixed_income_v1.fsr.h"

#define PF_PERF_MAX_DAYS   7305 /* 20 years */
#define PF_PERF_PRICE_LEAD 14   /* calendar days of prices fetched before the first day */
#define PF_PERF_TIMEOUT_MS 20000
#define PF_PERF_EQ_POINTS  100000 /* closes per BatchQuotes reply (~25 bytes each) */
#define PF_PERF_FI_POINTS  40000  /* points per BatchPriceHistory reply (~60 bytes each) */
#define PF_PERF_NCLASS     3      /* EQUITY, FIXED_INCOME, CASH */

enum {
    CL_EQ = 0,
    CL_FI = 1,
    CL_CASH = 2
};
static const char *const class_name[PF_PERF_NCLASS] = { "EQUITY", "FIXED_INCOME", "CASH" };

/* A copy of |s| in the call's arena (the generated messages hold char *). */
static char *dup(fsr_call *call, const char *s)
{
    return fsr_call_printf(call, "%s", s);
}

/* ---- statements --------------------------------------------------------------------- */

static const fsr_pg_stmt perf_portfolio_sql = {
    "pf_perf_portfolio",
    "SELECT coalesce(p.benchmark::text, ''), coalesce((SELECT min(t.date) FROM transactions t"
    " WHERE t.portfolio_id = p.id)::text, '') FROM portfolios p WHERE p.id = $1::uuid"
    " AND ($2::uuid IS NULL OR p.client_id = $2::uuid)",
};

static const fsr_pg_stmt perf_snapshots_sql = {
    "pf_perf_snapshots",
    "SELECT date::text, value, cash, equity_value, fi_value, flow, equity_flow, fi_flow,"
    " cash_flow FROM pf_snapshots WHERE portfolio_id = $1::uuid AND date >= $2::date"
    " AND date <= $3::date ORDER BY date",
};

static const fsr_pg_stmt perf_ledger_sql = {
    "pf_perf_ledger",
    "SELECT date::text, type, coalesce(instrument_type, ''), coalesce(instrument_id::text, ''),"
    " coalesce(quantity::text, ''), coalesce(price::text, ''), amount::text, seq::text"
    " FROM transactions WHERE portfolio_id = $1::uuid AND date <= $2::date ORDER BY date, seq",
};

/*
 * Stores computed rows unless the ledger changed since it was read ($3: the highest seq
 * then; a later entry's trigger already deleted the rows it invalidates, and these were
 * computed without it).
 */
static const fsr_pg_stmt perf_store_sql = {
    "pf_perf_store",
    "INSERT INTO pf_snapshots (portfolio_id, date, value, cash, equity_value, fi_value, flow,"
    " equity_flow, fi_flow, cash_flow) SELECT $1::uuid, r.* FROM unnest($2::date[],"
    " $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::float8[],"
    " $10::float8[], $11::float8[]) r WHERE (SELECT coalesce(max(seq), 0) FROM transactions"
    " WHERE portfolio_id = $1::uuid) = $3::bigint ON CONFLICT (portfolio_id, date) DO UPDATE"
    " SET value = EXCLUDED.value, cash = EXCLUDED.cash, equity_value = EXCLUDED.equity_value,"
    " fi_value = EXCLUDED.fi_value, flow = EXCLUDED.flow, equity_flow = EXCLUDED.equity_flow,"
    " fi_flow = EXCLUDED.fi_flow, cash_flow = EXCLUDED.cash_flow, computed_at = now()",
};

static const fsr_pg_stmt perf_store_lock_sql = {
    "pf_perf_store_lock",
    "SELECT 1 FROM portfolios WHERE id = $1::uuid FOR SHARE",
};

static const fsr_pg_stmt perf_invalidate_sql = {
    "pf_perf_invalidate",
    "DELETE FROM pf_snapshots s USING (SELECT DISTINCT portfolio_id FROM transactions"
    " WHERE instrument_id = $1::uuid) t WHERE s.portfolio_id = t.portfolio_id"
    " AND s.date >= coalesce($2::date, '-infinity'::date)",
};

/* ---- state -------------------------------------------------------------------------- */

/* One end-of-day row (pf_snapshots). */
typedef struct snap {
    double value, cash, eqv, fiv, flow, eqf, fif, cashf;
} snap;

/* An instrument with its fetched prices (carried forward by day). */
typedef struct inst {
    bool bond;
    char id[37];
    int32_t *pday; /* price dates, ascending */
    double *px;    /* close, or dirty per 100 */
    double *inc;   /* per-point income: bond cash_paid (else 0) */
    size_t np;
    int32_t *dday; /* equity dividends by ex-date */
    double *damt;
    size_t nd;
    bool fetched;
    /* ledger replay */
    double qty;
    double last_trade; /* last BUY/SELL/transfer price, 0 if none */
    size_t cur;        /* carry-forward cursor */
} inst;

typedef struct ptx {
    int32_t day;
    char type[16];
    int inst; /* index, or -1 */
    double qty, price, amount;
} ptx;

typedef struct bcomp {
    int cls;
    int inst; /* index in the instruments, or -1 for cash */
    double w;
} bcomp;

typedef struct perf_op {
    fsr_call *call;
    const char *id;
    double rf;
    fsr_an_attr_model model;
    int32_t from, to, inception, today;
    const Portfolio__V1__Benchmark *bench;
    /* weekdays base..to */
    int32_t *days;
    size_t n;
    snap *rows;
    bool *have;
    size_t first_missing; /* n when every row is stored or computable from storage */
    /* ledger */
    ptx *tx;
    size_t ntx;
    const char *max_seq;
    /* instruments: the ledger's, then the benchmark's */
    inst *ins;
    size_t nins, cap_ins;
    bcomp *bc;
    size_t nbc;
    int pending;
    bool failed;
    fsr_pg_conn *store_conn;
    const char *const *store_values;
    const char *fail_msg;
} perf_op;

/* ---- dates -------------------------------------------------------------------------- */

static int32_t day_of(const char *s)
{
    int y, m, d;
    if (s == NULL || s[0] == '\0' || fsr_date_parse(s, &y, &m, &d) != 0)
        return INT32_MIN;
    return fsr_an_day_from_civil(y, m, d);
}

static char *date_str(fsr_call *call, int32_t day)
{
    int y, m, d;
    fsr_an_day_to_civil(day, &y, &m, &d);
    return fsr_call_printf(call, "%04d-%02d-%02d", y, m, d);
}

/* 1970-01-01 was a Thursday: 0 = Sunday .. 6 = Saturday. */
static int dow(int32_t day)
{
    int r = (int)((day + 4) % 7);
    return r < 0 ? r + 7 : r;
}

static bool weekday(int32_t day)
{
    int w = dow(day);
    return w >= 1 && w <= 5;
}

static int32_t prev_weekday(int32_t day)
{
    do
        day--;
    while (!weekday(day));
    return day;
}

/* ---- instruments -------------------------------------------------------------------- */

static int inst_find(perf_op *op, bool bond, const char *id, bool add)
{
    char key[37];
    size_t len = strlen(id);
    if (len != 36)
        return -1;
    for (int k = 0; k < 36; k++)
        key[k] = (char)tolower((unsigned char)id[k]);
    key[36] = '\0';
    for (size_t i = 0; i < op->nins; i++)
        if (op->ins[i].bond == bond && memcmp(op->ins[i].id, key, 37) == 0)
            return (int)i;
    if (!add)
        return -1;
    if (op->nins == op->cap_ins) {
        size_t cap = op->cap_ins ? op->cap_ins * 2 : 16;
        inst *n = fsr_call_alloc(op->call, sizeof(*n) * cap);
        if (op->nins > 0)
            memcpy(n, op->ins, sizeof(*n) * op->nins);
        op->ins = n;
        op->cap_ins = cap;
    }
    inst *it = &op->ins[op->nins];
    memset(it, 0, sizeof(*it));
    it->bond = bond;
    memcpy(it->id, key, 37);
    return (int)op->nins++;
}

/* Last price on or before |day| (cursor moves forward only); 0 and *|ok| false if none. */
static double price_on(inst *it, int32_t day, bool *ok)
{
    while (it->cur < it->np && it->pday[it->cur] <= day)
        it->cur++;
    if (it->cur == 0) {
        *ok = false;
        return 0;
    }
    *ok = true;
    return it->px[it->cur - 1];
}

/* Same without moving the cursor (binary search). */
static double price_at(const inst *it, int32_t day, bool *ok)
{
    size_t lo = 0, hi = it->np;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (it->pday[mid] <= day)
            lo = mid + 1;
        else
            hi = mid;
    }
    *ok = lo > 0;
    return lo > 0 ? it->px[lo - 1] : 0;
}

static double value_of(const inst *it, double qty, double px)
{
    return it->bond ? qty / 100.0 * px : qty * px;
}

/* ---- finishing ---------------------------------------------------------------------- */

static void op_fail(perf_op *op, fsr_code code, const char *msg)
{
    if (!op->failed) {
        op->failed = true;
        fsr_call_fail(op->call, code, "%s", msg);
    }
}

/* INVALID_ARGUMENT naming |field| (the message is "<field>: <msg>"). */
static void op_fail_field(perf_op *op, const char *field, const char *msg)
{
    if (!op->failed) {
        op->failed = true;
        fsr_call_fail_field(op->call, FSR_INVALID_ARGUMENT, field, "%s", msg);
    }
}

static Google__Protobuf__DoubleValue *dv(fsr_call *call, double v)
{
    Google__Protobuf__DoubleValue *w = fsr_call_alloc(call, sizeof(*w));
    google__protobuf__double_value__init(w);
    w->value = v;
    return w;
}

typedef struct undef_list {
    const char **names;
    size_t n;
} undef_list;

/* |v| if finite, else 0 with |name| listed as undefined. */
static double fin(undef_list *u, const char *name, double v)
{
    if (isfinite(v))
        return v;
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->names[i], name) == 0)
            return 0;
    u->names[u->n++] = name;
    return 0;
}

/* ---- benchmark ---------------------------------------------------------------------- */

/*
 * Daily total returns (n - 1) of instrument |it| on op->days: prices carried forward (and
 * back before the first one: return 0), income by the (day t-1, day t] rule.  -1 if it has
 * no price at all.
 */
static int inst_returns(perf_op *op, const inst *it, double *ret)
{
    if (it->np == 0)
        return -1;
    size_t n = op->n;
    double *close = fsr_call_alloc(op->call, sizeof(double) * n);
    double *div = fsr_call_alloc(op->call, sizeof(double) * n);
    size_t p = 0, d = 0;
    for (size_t t = 0; t < n; t++) {
        int32_t day = op->days[t];
        double inc = 0;
        while (p < it->np && it->pday[p] <= day) {
            if (t > 0 && it->pday[p] > op->days[t - 1])
                inc += it->inc[p];
            p++;
        }
        while (d < it->nd && it->dday[d] <= day) {
            if (t > 0 && it->dday[d] > op->days[t - 1])
                inc += it->damt[d];
            d++;
        }
        close[t] = p > 0 ? it->px[p - 1] : it->px[0];
        div[t] = p > 0 ? inc : 0;
    }
    return fsr_an_returns(close, div, n, FSR_AN_TOTAL, ret) == 0 ? 0 : -1;
}

/*
 * Benchmark total (|rb|) and class (|rbc|, 3 rows) daily returns over op->days (n - 1 each).
 * Returns 0, or -1 after failing the call.
 */
static int bench_returns(perf_op *op, double *rb, double *rbc, double *wbc)
{
    size_t n = op->n, nr = n - 1;
    double rfd = fsr_an_rf_daily(op->rf);
    size_t k = 0;
    double *rows = fsr_call_alloc(op->call, sizeof(double) * nr * (op->nbc + 1));
    double *w = fsr_call_alloc(op->call, sizeof(double) * (op->nbc + 1));
    int *cls = fsr_call_alloc(op->call, sizeof(int) * (op->nbc + 1));
    for (int c = 0; c < PF_PERF_NCLASS; c++)
        wbc[c] = 0;
    for (size_t i = 0; i < op->nbc; i++) {
        const bcomp *b = &op->bc[i];
        wbc[b->cls] += b->w;
        if (b->inst < 0)
            continue;
        const inst *it = &op->ins[b->inst];
        if (inst_returns(op, it, rows + k * nr) != 0) {
            op_fail(op, FSR_FAILED_PRECONDITION,
                    fsr_call_printf(op->call, "benchmark %s %s has no price in the period",
                                    it->bond ? "bond" : "equity", it->id));
            return -1;
        }
        w[k] = b->w;
        cls[k] = b->cls;
        k++;
    }
    double tot = wbc[0] + wbc[1] + wbc[2];
    if (fabs(tot - 1.0) > 1e-9) {
        op_fail(op, FSR_FAILED_PRECONDITION, "the benchmark's weights do not sum to 1");
        return -1;
    }
    int rv;
    if (k == 0) {
        for (size_t t = 0; t < nr; t++)
            rb[t] = rfd;
        rv = 0;
    } else {
        rv = fsr_an_portfolio_rebalanced(rows, k, nr, nr, w, op->rf, rb);
    }
    for (int c = 0; c < PF_PERF_NCLASS && rv == 0; c++) {
        double *out = rbc + (size_t)c * nr;
        if (c == CL_CASH || wbc[c] <= 0) {
            for (size_t t = 0; t < nr; t++)
                out[t] = rfd;
            continue;
        }
        /* the class's rows, weights renormalised to 1 */
        double *cr = fsr_call_alloc(op->call, sizeof(double) * nr * k);
        double *cw = fsr_call_alloc(op->call, sizeof(double) * k);
        size_t m = 0;
        for (size_t j = 0; j < k; j++) {
            if (cls[j] != c)
                continue;
            memcpy(cr + m * nr, rows + j * nr, sizeof(double) * nr);
            cw[m++] = w[j] / wbc[c];
        }
        double s = 0;
        for (size_t j = 0; j < m; j++)
            s += cw[j];
        if (s > 1.0) /* rounding: keep the weights within the library's 1 + 1e-9 */
            for (size_t j = 0; j < m; j++)
                cw[j] /= s;
        rv = m == 0 ? 0 : fsr_an_portfolio_rebalanced(cr, m, nr, nr, cw, op->rf, out);
        if (m == 0)
            for (size_t t = 0; t < nr; t++)
                out[t] = rfd;
    }
    if (rv != 0) {
        op_fail(op, FSR_FAILED_PRECONDITION,
                fsr_call_printf(op->call, "benchmark: %s", fsr_an_strerror(rv)));
        return -1;
    }
    return 0;
}

/* ---- the response ------------------------------------------------------------------- */

static void add_period(perf_op *op, Portfolio__V1__PerformanceResponse *r, const char *name,
                       int32_t start, const int32_t *dd, const double *ret, size_t nr)
{
    Portfolio__V1__PeriodReturn *p = fsr_call_alloc(op->call, sizeof(*p));
    portfolio__v1__period_return__init(p);
    p->period = dup(op->call, name);
    p->from = date_str(op->call, start);
    p->to = date_str(op->call, dd[nr]);
    fsr_an_period per;
    if (start >= dd[0] && start <= dd[nr] &&
        fsr_an_period_return(dd, ret, nr, start, dd[nr], &per) == 0 && isfinite(per.total_return))
        p->twr = dv(op->call, per.total_return);
    r->period_returns[r->n_period_returns++] = p;
}

static void respond(perf_op *op)
{
    fsr_call *call = op->call;
    size_t n = op->n;
    /* Skip leading empty days: the base is the last day before the portfolio holds value. */
    size_t s = 0;
    while (s < n && op->rows[s].value == 0 && !(s + 1 < n && op->rows[s + 1].flow != 0))
        s++;
    if (s >= n - 1) {
        op_fail_field(op, "from",
                      "the portfolio holds nothing on two business days between from and to");
        return;
    }
    size_t nv = n - s, nr = nv - 1;
    const int32_t *dd = op->days + s;
    double *values = fsr_call_alloc(call, sizeof(double) * nv);
    int32_t *fday = fsr_call_alloc(call, sizeof(int32_t) * nv);
    double *famt = fsr_call_alloc(call, sizeof(double) * nv);
    size_t m = 0;
    for (size_t t = 0; t < nv; t++) {
        values[t] = op->rows[s + t].value;
        if (t > 0 && op->rows[s + t].flow != 0) {
            fday[m] = dd[t];
            famt[m++] = op->rows[s + t].flow;
        }
    }
    double *ret = fsr_call_alloc(call, sizeof(double) * nr);
    fsr_an_twr twr;
    int rv = fsr_an_twr_compute(dd, values, nv, fday, famt, m, FSR_AN_FLOW_START, ret, &twr);
    if (rv != 0) {
        op_fail_field(op, "from",
                      fsr_call_printf(call,
                                      "the period's valuations give no time-weighted "
                                      "return: %s",
                                      fsr_an_strerror(rv)));
        return;
    }

    Portfolio__V1__PerformanceResponse *r = fsr_call_alloc(call, sizeof(*r));
    portfolio__v1__performance_response__init(r);
    undef_list u = { fsr_call_alloc(call, sizeof(char *) * 32), 0 };
    r->from = date_str(call, dd[0]);
    r->to = date_str(call, dd[nr]);
    r->twr = fin(&u, "twr", twr.twr);
    r->annualized_twr = fin(&u, "annualizedTwr", twr.annualized);
    r->start_value = values[0];
    r->end_value = values[nr];

    /* Series and flows. */
    r->values = fsr_call_alloc(call, sizeof(*r->values) * nv);
    r->daily_returns = fsr_call_alloc(call, sizeof(*r->daily_returns) * nr);
    for (size_t t = 0; t < nv; t++) {
        Common__V1__DatedValue *v = fsr_call_alloc(call, sizeof(*v) * (t > 0 ? 2 : 1));
        common__v1__dated_value__init(v);
        v->date = date_str(call, dd[t]);
        v->value = values[t];
        r->values[r->n_values++] = v;
        if (t > 0) {
            common__v1__dated_value__init(v + 1);
            v[1].date = v->date;
            v[1].value = ret[t - 1];
            r->daily_returns[r->n_daily_returns++] = v + 1;
        }
    }
    r->flows = fsr_call_alloc(call, sizeof(*r->flows) * (m + 1));
    for (size_t i = 0; i < m; i++) {
        Common__V1__CashFlow *f = fsr_call_alloc(call, sizeof(*f));
        common__v1__cash_flow__init(f);
        f->date = date_str(call, fday[i]);
        f->amount = famt[i];
        r->flows[r->n_flows++] = f;
    }

    /* MWR: money in negative, the end value positive. */
    {
        int32_t *xd = fsr_call_alloc(call, sizeof(int32_t) * (m + 2));
        double *xa = fsr_call_alloc(call, sizeof(double) * (m + 2));
        size_t k = 0;
        if (values[0] != 0) {
            xd[k] = dd[0];
            xa[k++] = -values[0];
        }
        for (size_t i = 0; i < m; i++) {
            xd[k] = fday[i];
            xa[k++] = -famt[i];
        }
        xd[k] = dd[nr];
        xa[k++] = values[nr];
        double rate;
        if (fsr_an_xirr(xd, xa, k, &rate) == 0 && isfinite(rate))
            r->mwr = dv(call, rate);
    }

    /* Benchmark. */
    double *rb = NULL, *rbc = NULL, wbc[PF_PERF_NCLASS] = { 0 };
    if (op->bench != NULL) {
        double *rb_all = fsr_call_alloc(call, sizeof(double) * (n - 1));
        double *rbc_all = fsr_call_alloc(call, sizeof(double) * (n - 1) * PF_PERF_NCLASS);
        if (bench_returns(op, rb_all, rbc_all, wbc) != 0)
            return;
        rb = rb_all + s; /* the returns dated dd[1..nr] */
        rbc = fsr_call_alloc(call, sizeof(double) * nr * PF_PERF_NCLASS);
        for (int c = 0; c < PF_PERF_NCLASS; c++)
            memcpy(rbc + (size_t)c * nr, rbc_all + (size_t)c * (n - 1) + s, sizeof(double) * nr);
        double g = 1;
        for (size_t t = 0; t < nr; t++)
            g *= 1 + rb[t];
        r->benchmark_return = dv(call, g - 1);
    }

    /* Metrics (n >= 2 returns). */
    if (nr >= 2) {
        fsr_an_metrics mt;
        rv = fsr_an_metrics_compute(ret, rb, nr, op->rf, NULL, &mt);
        if (rv != 0) {
            op_fail_field(op, "from", fsr_an_strerror(rv));
            return;
        }
        r->annualized_return = fin(&u, "annualizedReturn", mt.annualized_return);
        r->annualized_volatility = fin(&u, "annualizedVolatility", mt.annualized_volatility);
        if (mt.stdev == 0)
            fin(&u, "annualizedVolatility", NAN); /* listed: a flat series */
        r->sharpe = fin(&u, "sharpe", mt.sharpe);
        r->sortino = fin(&u, "sortino", mt.sortino);
        r->max_drawdown = fin(&u, "maxDrawdown", mt.max_drawdown);
        if (mt.max_drawdown_peak != FSR_AN_NONE)
            r->max_drawdown_peak_date = date_str(call, dd[mt.max_drawdown_peak]);
        if (mt.max_drawdown_trough != FSR_AN_NONE)
            r->max_drawdown_trough_date = date_str(call, dd[mt.max_drawdown_trough]);
        if (mt.max_drawdown_recovery != FSR_AN_NONE)
            r->max_drawdown_recovery_date = date_str(call, dd[mt.max_drawdown_recovery]);
        r->calmar = fin(&u, "calmar", mt.calmar);
        if (rb != NULL) {
            if (isfinite(mt.beta))
                r->beta = dv(call, mt.beta);
            else
                fin(&u, "beta", NAN);
            if (isfinite(mt.tracking_error))
                r->tracking_error = dv(call, mt.tracking_error);
            else
                fin(&u, "trackingError", NAN);
            if (isfinite(mt.information_ratio))
                r->information_ratio = dv(call, mt.information_ratio);
            else
                fin(&u, "informationRatio", NAN);
        }
    } else {
        static const char *const all[] = { "annualizedReturn", "annualizedVolatility", "sharpe",
                                           "sortino",          "maxDrawdown",          "calmar" };
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            fin(&u, all[i], NAN);
        if (rb != NULL) {
            fin(&u, "beta", NAN);
            fin(&u, "trackingError", NAN);
            fin(&u, "informationRatio", NAN);
        }
    }

    /* Calendar periods ending at `to`. */
    {
        int y, mo, d;
        fsr_an_day_to_civil(dd[nr], &y, &mo, &d);
        int qm = (mo - 1) / 3 * 3 + 1; /* first month of the quarter */
        int32_t inc = op->inception != INT32_MIN ? op->inception : dd[0];
        int ly = y - 1, lm = mo, ld = d;
        if (lm == 2 && ld == 29)
            ld = 28;
        r->period_returns = fsr_call_alloc(call, sizeof(*r->period_returns) * 5);
        add_period(op, r, "MTD", fsr_an_day_from_civil(y, mo, 1) - 1, dd, ret, nr);
        add_period(op, r, "QTD", fsr_an_day_from_civil(y, qm, 1) - 1, dd, ret, nr);
        add_period(op, r, "YTD", fsr_an_day_from_civil(y, 1, 1) - 1, dd, ret, nr);
        add_period(op, r, "1Y", fsr_an_day_from_civil(ly, lm, ld), dd, ret, nr);
        add_period(op, r, "SINCE_INCEPTION", inc, dd, ret, nr);
    }

    /* Attribution: daily Brinson by class, linked with Carino. */
    if (rb != NULL) {
        double *drp = fsr_call_alloc(call, sizeof(double) * nr);
        double *drb = fsr_call_alloc(call, sizeof(double) * nr);
        fsr_an_attr_class *eff = fsr_call_alloc(call, sizeof(*eff) * nr * PF_PERF_NCLASS);
        bool ok = true;
        for (size_t t = 0; t < nr && ok; t++) {
            const snap *a = &op->rows[s + t], *b = &op->rows[s + t + 1];
            double den = a->value + b->flow;
            double dc[PF_PERF_NCLASS] = { a->eqv + b->eqf, a->fiv + b->fif, a->cash + b->cashf };
            double vc[PF_PERF_NCLASS] = { b->eqv, b->fiv, b->cash };
            double wp[PF_PERF_NCLASS], rp[PF_PERF_NCLASS], rbt[PF_PERF_NCLASS];
            for (int c = 0; c < PF_PERF_NCLASS; c++) {
                wp[c] = dc[c] / den;
                rp[c] = dc[c] != 0 ? vc[c] / dc[c] - 1 : 0;
                rbt[c] = rbc[(size_t)c * nr + t];
            }
            fsr_an_attr_total tot;
            ok = fsr_an_attribution(wp, wbc, rp, rbt, PF_PERF_NCLASS, op->model,
                                    eff + t * PF_PERF_NCLASS, &tot) == 0;
            drp[t] = tot.portfolio_return;
            drb[t] = tot.benchmark_return;
        }
        double *f = fsr_call_alloc(call, sizeof(double) * nr), R = 0, B = 0;
        if (ok && fsr_an_carino_factors(drp, drb, nr, f, &R, &B) == 0) {
            Portfolio__V1__AttributionResponse *at = fsr_call_alloc(call, sizeof(*at));
            portfolio__v1__attribution_response__init(at);
            at->model = op->model == FSR_AN_BHB
                            ? COMMON__V1__ATTRIBUTION_MODEL__VALUE__BHB
                            : COMMON__V1__ATTRIBUTION_MODEL__VALUE__BRINSON_FACHLER;
            at->portfolio_return = R;
            at->benchmark_return = B;
            at->active_return = R - B;
            at->classes = fsr_call_alloc(call, sizeof(*at->classes) * PF_PERF_NCLASS);
            for (int c = 0; c < PF_PERF_NCLASS; c++) {
                Portfolio__V1__AttributionClassResult *cr = fsr_call_alloc(call, sizeof(*cr));
                portfolio__v1__attribution_class_result__init(cr);
                cr->name = dup(call, class_name[c]);
                for (size_t t = 0; t < nr; t++) {
                    const fsr_an_attr_class *e = &eff[t * PF_PERF_NCLASS + (size_t)c];
                    cr->allocation += f[t] * e->allocation;
                    cr->selection += f[t] * e->selection;
                    cr->interaction += f[t] * e->interaction;
                }
                at->total_allocation += cr->allocation;
                at->total_selection += cr->selection;
                at->total_interaction += cr->interaction;
                at->classes[at->n_classes++] = cr;
            }
            if (isfinite(at->total_allocation) && isfinite(at->total_selection) &&
                isfinite(at->total_interaction))
                r->attribution = at;
        }
        if (r->attribution == NULL)
            fin(&u, "attribution", NAN);
    }
    r->undefined_metrics = fsr_call_alloc(call, sizeof(char *) * (u.n + 1));
    for (size_t i = 0; i < u.n; i++)
        r->undefined_metrics[r->n_undefined_metrics++] = dup(call, u.names[i]);
    fsr_call_reply(call, &r->base);
}

/* ---- computing rows ----------------------------------------------------------------- */

static void respond(perf_op *op);

/*
 * Storing: BEGIN; the portfolio row FOR SHARE (a ledger write holds it FOR UPDATE, pf_lock,
 * until it commits, so the two serialise); the INSERT, whose own snapshot is taken after the
 * lock and so sees any entry committed meanwhile (its max(seq) guard then stores nothing);
 * COMMIT.  The reply waits for it: a failure is only logged.
 */
static void store_finish(perf_op *op, const char *what, int st)
{
    if (st != 0)
        FSR_WARN("performance snapshots of %s not stored (%s): %s", op->id, what, fsr_strerror(st));
    respond(op);
}

static void on_store_commit(const fsr_pg_result *res, void *arg)
{
    store_finish(arg, "commit", fsr_pg_result_status(res));
}

static void on_store_rollback(const fsr_pg_result *res, void *arg)
{
    (void)res;
    store_finish(arg, "insert", FSR_E_DB);
}

static void on_store_lock(const fsr_pg_result *res, void *arg)
{
    (void)res;
    (void)arg; /* a failure aborts the transaction: the INSERT's callback sees it */
}

static void on_store_insert(const fsr_pg_result *res, void *arg)
{
    perf_op *op = arg;
    fsr_pg_conn *conn = op->store_conn;
    int st = fsr_pg_result_status(res);
    if (st != 0) {
        FSR_WARN("performance snapshots of %s: %s", op->id,
                 fsr_pg_result_message(res) ? fsr_pg_result_message(res) : fsr_strerror(st));
        if (fsr_pg_tx_rollback(conn, on_store_rollback, op) != 0)
            store_finish(op, "rollback", FSR_E_CLOSED);
        return;
    }
    if (fsr_pg_tx_commit(conn, on_store_commit, op) != 0)
        store_finish(op, "commit", FSR_E_CLOSED);
}

static void on_store_begin(fsr_pg_conn *conn, int status, void *arg)
{
    perf_op *op = arg;
    if (status != 0 || conn == NULL) {
        store_finish(op, "begin", status != 0 ? status : FSR_E_CLOSED);
        return;
    }
    op->store_conn = conn;
    const char *lock[1] = { op->id };
    if (fsr_pg_conn_query(conn, &perf_store_lock_sql, 1, lock, on_store_lock, op) != 0 ||
        fsr_pg_conn_query(conn, &perf_store_sql, 11, op->store_values, on_store_insert, op) != 0) {
        if (fsr_pg_tx_rollback(conn, on_store_rollback, op) != 0)
            store_finish(op, "begin", FSR_E_CLOSED);
    }
}

/*
 * Writes the rows first_missing.. dated before today, then replies; replies at once when
 * there is nothing to store.
 */
static void store_rows(perf_op *op)
{
    size_t lo = op->first_missing, hi = lo;
    while (hi < op->n && op->days[hi] < op->today)
        hi++;
    if (hi == lo) {
        respond(op);
        return;
    }
    size_t cnt = hi - lo;
    char *arr[9];
    for (int k = 0; k < 9; k++) {
        size_t cap = cnt * (k == 0 ? 12 : 28) + 3;
        arr[k] = fsr_call_alloc(op->call, cap);
        size_t len = 0;
        arr[k][len++] = '{';
        for (size_t i = lo; i < hi; i++) {
            const snap *sn = &op->rows[i];
            double v[8] = { sn->value, sn->cash, sn->eqv, sn->fiv,
                            sn->flow,  sn->eqf,  sn->fif, sn->cashf };
            if (i > lo)
                arr[k][len++] = ',';
            if (k == 0)
                len += (size_t)snprintf(arr[k] + len, cap - len, "%s",
                                        date_str(op->call, op->days[i]));
            else
                len += (size_t)snprintf(arr[k] + len, cap - len, "%.17g", v[k - 1]);
        }
        arr[k][len++] = '}';
        arr[k][len] = '\0';
    }
    const char **values = fsr_call_alloc(op->call, sizeof(char *) * 11);
    const char *v11[11] = { op->id, arr[0], op->max_seq, arr[1], arr[2], arr[3],
                            arr[4], arr[5], arr[6],      arr[7], arr[8] };
    memcpy(values, v11, sizeof(v11));
    op->store_values = values;
    fsr_pg_pool *pool = fsr_app_ctx_of(op->call)->pg;
    if (pool == NULL || fsr_pg_tx_begin(pool, on_store_begin, op) != 0)
        store_finish(op, "begin", FSR_E_CLOSED);
}

/* Replays the ledger and values every day from first_missing on. */
static void compute_rows(perf_op *op)
{
    size_t ti = 0;
    double cash = 0;
    for (size_t i = 0; i < op->nins; i++) {
        op->ins[i].qty = 0;
        op->ins[i].cur = 0;
        op->ins[i].last_trade = 0;
    }
    for (size_t i = 0; i < op->n; i++) {
        int32_t day = op->days[i], prev = prev_weekday(day);
        bool want = i >= op->first_missing;
        snap sn = { 0 };
        /* Entries on or before the previous weekday were applied by the previous row
         * (or, for the first row, are applied here without counting as flows). */
        for (; ti < op->ntx && op->tx[ti].day <= day; ti++) {
            const ptx *x = &op->tx[ti];
            bool flowday = i > 0 || x->day > prev;
            inst *it = x->inst >= 0 ? &op->ins[x->inst] : NULL;
            int cls = it != NULL && it->bond ? CL_FI : CL_EQ;
            double *cf = cls == CL_FI ? &sn.fif : &sn.eqf;
            const char *ty = x->type;
            if (strcmp(ty, "DEPOSIT") == 0) {
                cash += x->amount;
                if (flowday) {
                    sn.flow += x->amount;
                    sn.cashf += x->amount;
                }
            } else if (strcmp(ty, "WITHDRAWAL") == 0) {
                cash -= x->amount;
                if (flowday) {
                    sn.flow -= x->amount;
                    sn.cashf -= x->amount;
                }
            } else if (strcmp(ty, "FEE") == 0) {
                cash -= x->amount;
            } else if (strcmp(ty, "BUY") == 0 || strcmp(ty, "SELL") == 0) {
                double sg = ty[0] == 'B' ? 1 : -1;
                cash -= sg * x->amount;
                if (it != NULL) {
                    it->qty += sg * x->qty;
                    it->last_trade = x->price;
                }
                if (flowday) {
                    *cf += sg * x->amount;
                    sn.cashf -= sg * x->amount;
                }
            } else if (strcmp(ty, "DIVIDEND") == 0 || strcmp(ty, "COUPON") == 0) {
                cash += x->amount;
                if (flowday) {
                    *cf -= x->amount;
                    sn.cashf += x->amount;
                }
            } else if (strcmp(ty, "TRANSFER_IN") == 0 || strcmp(ty, "TRANSFER_OUT") == 0) {
                double sg = ty[9] == 'I' ? 1 : -1;
                if (it != NULL) {
                    it->qty += sg * x->qty;
                    if (x->price > 0)
                        it->last_trade = x->price;
                    if (flowday) {
                        bool ok;
                        double px = price_at(it, prev, &ok);
                        if (!ok)
                            px = price_at(it, day, &ok);
                        if (!ok)
                            px = it->last_trade;
                        double mv = sg * value_of(it, x->qty, px);
                        sn.flow += mv;
                        *cf += mv;
                    }
                }
            }
        }
        if (!want)
            continue;
        sn.cash = cash;
        for (size_t k = 0; k < op->nins; k++) {
            inst *it = &op->ins[k];
            bool ok;
            double px = price_on(it, day, &ok);
            if (it->qty == 0)
                continue;
            if (!ok)
                px = it->last_trade;
            double mv = value_of(it, it->qty, px);
            if (it->bond)
                sn.fiv += mv;
            else
                sn.eqv += mv;
        }
        sn.value = sn.eqv + sn.fiv + sn.cash;
        op->rows[i] = sn;
    }
}

/* ---- market data -------------------------------------------------------------------- */

static void fetch_done(perf_op *op)
{
    if (--op->pending > 0)
        return;
    if (op->failed)
        return;
    if (op->first_missing < op->n) {
        compute_rows(op);
        store_rows(op); /* then respond() */
        return;
    }
    respond(op);
}

static void on_quotes(const fsr_result *res, const Equity__V1__BatchQuotesResponse *resp, void *arg)
{
    perf_op *op = arg;
    if (res->status.code != FSR_OK || resp == NULL) {
        FSR_WARN("performance: BatchQuotes failed: %s", fsr_code_name(res->status.code));
        op_fail(op, FSR_UNAVAILABLE, "equity service unavailable");
    } else {
        for (size_t i = 0; i < resp->n_items; i++) {
            const Equity__V1__EquityMarketData *d = resp->items[i];
            int k = inst_find(op, false, d->id, false);
            if (k < 0)
                continue;
            inst *it = &op->ins[k];
            it->fetched = true;
            it->pday = fsr_call_alloc(op->call, sizeof(int32_t) * (d->n_prices + 1));
            it->px = fsr_call_alloc(op->call, sizeof(double) * (d->n_prices + 1));
            it->inc = fsr_call_alloc(op->call, sizeof(double) * (d->n_prices + 1));
            for (size_t j = 0; j < d->n_prices; j++) {
                int32_t dy = day_of(d->prices[j]->date);
                if (dy == INT32_MIN || !(d->prices[j]->close > 0))
                    continue;
                it->pday[it->np] = dy;
                it->px[it->np] = d->prices[j]->close;
                it->inc[it->np++] = 0;
            }
            it->dday = fsr_call_alloc(op->call, sizeof(int32_t) * (d->n_dividends + 1));
            it->damt = fsr_call_alloc(op->call, sizeof(double) * (d->n_dividends + 1));
            for (size_t j = 0; j < d->n_dividends; j++) {
                int32_t dy = day_of(d->dividends[j]->ex_date);
                if (dy == INT32_MIN)
                    continue;
                it->dday[it->nd] = dy;
                it->damt[it->nd++] = d->dividends[j]->amount;
            }
        }
    }
    fetch_done(op);
}

static void on_history(const fsr_result *res,
                       const FixedIncome__V1__BatchPriceHistoryResponse *resp, void *arg)
{
    perf_op *op = arg;
    if (res->status.code != FSR_OK || resp == NULL) {
        FSR_WARN("performance: BatchPriceHistory failed: %s", fsr_code_name(res->status.code));
        op_fail(op, FSR_UNAVAILABLE, "fixed income service unavailable");
    } else {
        for (size_t i = 0; i < resp->n_items; i++) {
            const FixedIncome__V1__BondPriceHistory *h = resp->items[i];
            int k = inst_find(op, true, h->bond_id, false);
            if (k < 0)
                continue;
            inst *it = &op->ins[k];
            it->fetched = true;
            it->pday = fsr_call_alloc(op->call, sizeof(int32_t) * (h->n_points + 1));
            it->px = fsr_call_alloc(op->call, sizeof(double) * (h->n_points + 1));
            it->inc = fsr_call_alloc(op->call, sizeof(double) * (h->n_points + 1));
            for (size_t j = 0; j < h->n_points; j++) {
                int32_t dy = day_of(h->points[j]->date);
                if (dy == INT32_MIN || !(h->points[j]->dirty_price > 0))
                    continue;
                it->pday[it->np] = dy;
                it->px[it->np] = h->points[j]->dirty_price;
                it->inc[it->np++] = h->points[j]->cash_paid;
            }
        }
    }
    fetch_done(op);
}

/*
 * Fetches the prices of the instruments needed: the ledger's when rows are missing, the
 * benchmark's always; one BatchQuotes and one BatchPriceHistory call, in parallel.
 */
static void fetch_market(perf_op *op)
{
    fsr_call *call = op->call;
    bool need_ledger = op->first_missing < op->n;
    int32_t lo = op->days[need_ledger ? op->first_missing : 0] - PF_PERF_PRICE_LEAD;
    if (op->bench != NULL)
        lo = op->days[0] - PF_PERF_PRICE_LEAD;
    const char *from = date_str(call, lo), *to = date_str(call, op->to);
    char **eq = fsr_call_alloc(call, sizeof(char *) * (op->nins + 1));
    char **fi = fsr_call_alloc(call, sizeof(char *) * (op->nins + 1));
    size_t neq = 0, nfi = 0;
    bool *bench_inst = fsr_call_alloc(call, sizeof(bool) * (op->nins + 1));
    for (size_t i = 0; i < op->nbc; i++)
        if (op->bc[i].inst >= 0)
            bench_inst[op->bc[i].inst] = true;
    for (size_t i = 0; i < op->nins; i++) {
        if (!need_ledger && !bench_inst[i])
            continue;
        if (op->ins[i].bond)
            fi[nfi++] = op->ins[i].id;
        else
            eq[neq++] = op->ins[i].id;
    }
    fsr_call_opts opts = { .timeout_ms = PF_PERF_TIMEOUT_MS, .parent = call, .idempotent = true };
    /*
     * The replies must fit the services' 4 MiB message limit: ids are split so that a call
     * carries at most PF_PERF_EQ_POINTS closes or PF_PERF_FI_POINTS bond points (one call
     * each up to ~75 equities or ~30 bonds over 5 years; the calls run in parallel).
     */
    size_t pts = (size_t)(op->to - lo) * 5 / 7 + 3;
    size_t eq_chunk = PF_PERF_EQ_POINTS / pts, fi_chunk = PF_PERF_FI_POINTS / pts;
    eq_chunk = eq_chunk < 1 ? 1 : eq_chunk;
    fi_chunk = fi_chunk < 1 ? 1 : fi_chunk;
    op->pending = 1; /* held until every call is out */
    for (size_t at = 0; at < neq && !op->failed; at += eq_chunk) {
        fsr_channel *ch = pf_equity_channel(call);
        Equity__V1__BatchQuotesRequest *req = fsr_call_alloc(call, sizeof(*req));
        equity__v1__batch_quotes_request__init(req);
        req->ids = eq + at;
        req->n_ids = neq - at < eq_chunk ? neq - at : eq_chunk;
        req->as_of = dup(call, to);
        req->from = dup(call, from);
        req->include_prices = true;
        req->include_dividends = true;
        if (ch == NULL || equity_v1_equity_service_batch_quotes(ch, req, &opts, on_quotes, op) != 0)
            op_fail(op, FSR_UNAVAILABLE, "equity service unavailable");
        else
            op->pending++;
    }
    for (size_t at = 0; at < nfi && !op->failed; at += fi_chunk) {
        fsr_channel *ch = pf_fi_channel(call);
        FixedIncome__V1__BatchPriceHistoryRequest *req = fsr_call_alloc(call, sizeof(*req));
        fixed_income__v1__batch_price_history_request__init(req);
        req->bond_ids = fi + at;
        req->n_bond_ids = nfi - at < fi_chunk ? nfi - at : fi_chunk;
        req->from = dup(call, from);
        req->to = dup(call, to);
        if (ch == NULL || fixed_income_v1_fixed_income_service_batch_price_history(
                              ch, req, &opts, on_history, op) != 0)
            op_fail(op, FSR_UNAVAILABLE, "fixed income service unavailable");
        else
            op->pending++;
    }
    fetch_done(op);
}

/* ---- the ledger and the snapshots ---------------------------------------------------- */

static void on_ledger(const fsr_pg_result *res, void *arg)
{
    perf_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        pf_fail_db(op->call, res, "performance ledger");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    op->tx = fsr_call_alloc(op->call, sizeof(ptx) * ((size_t)rows + 1));
    long long max_seq = 0; /* the rows come by (date, seq): a back-dated entry is not last */
    for (int i = 0; i < rows; i++) {
        ptx *x = &op->tx[op->ntx];
        x->day = day_of(fsr_pg_result_getvalue(res, i, 0));
        snprintf(x->type, sizeof(x->type), "%s", fsr_pg_result_getvalue(res, i, 1));
        const char *ity = fsr_pg_result_getvalue(res, i, 2);
        const char *iid = fsr_pg_result_getvalue(res, i, 3);
        x->inst = iid[0] != '\0' ? inst_find(op, strcmp(ity, "BOND") == 0, iid, true) : -1;
        x->qty = strtod(fsr_pg_result_getvalue(res, i, 4), NULL);
        x->price = strtod(fsr_pg_result_getvalue(res, i, 5), NULL);
        x->amount = strtod(fsr_pg_result_getvalue(res, i, 6), NULL);
        long long seq = strtoll(fsr_pg_result_getvalue(res, i, 7), NULL, 10);
        if (seq > max_seq)
            max_seq = seq;
        op->ntx++;
    }
    op->max_seq = fsr_call_printf(op->call, "%lld", max_seq);
    fetch_market(op);
}

static void on_snapshots(const fsr_pg_result *res, void *arg)
{
    perf_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        pf_fail_db(op->call, res, "performance snapshots");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    size_t i = 0;
    for (int k = 0; k < rows; k++) {
        int32_t dy = day_of(fsr_pg_result_getvalue(res, k, 0));
        while (i < op->n && op->days[i] < dy)
            i++;
        if (i >= op->n || op->days[i] != dy)
            continue;
        snap *sn = &op->rows[i];
        double *f[8] = { &sn->value, &sn->cash, &sn->eqv, &sn->fiv,
                         &sn->flow,  &sn->eqf,  &sn->fif, &sn->cashf };
        for (int c = 0; c < 8; c++)
            *f[c] = strtod(fsr_pg_result_getvalue(res, k, c + 1), NULL);
        op->have[i] = true;
    }
    op->first_missing = op->n;
    for (size_t k = 0; k < op->n; k++) {
        if (!op->have[k]) {
            op->first_missing = k;
            break;
        }
    }
    if (op->first_missing == op->n) {
        fetch_market(op); /* the benchmark's prices only (or nothing) */
        return;
    }
    const char *values[2] = { op->id, date_str(op->call, op->to) };
    int rv = fsr_pg_query(fsr_app_ctx_of(op->call)->pg, &perf_ledger_sql, 2, values, on_ledger, op);
    if (rv != 0)
        fsr_call_fail_err(op->call, rv, "performance ledger");
}

static int bench_class(const Portfolio__V1__BenchmarkComponent *c)
{
    switch (c->asset_class) {
    case COMMON__V1__ASSET_CLASS__VALUE__EQUITY:
        return CL_EQ;
    case COMMON__V1__ASSET_CLASS__VALUE__FIXED_INCOME:
        return CL_FI;
    case COMMON__V1__ASSET_CLASS__VALUE__CASH:
        return CL_CASH;
    default:
        break;
    }
    if (c->instrument_type == COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND)
        return CL_FI;
    if (c->instrument_type == COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY)
        return CL_EQ;
    return CL_CASH;
}

static void on_portfolio(const fsr_pg_result *res, void *arg)
{
    perf_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        pf_fail_db(call, res, "performance");
        return;
    }
    if (fsr_pg_result_rows(res) != 1) {
        fsr_call_fail(call, FSR_NOT_FOUND, "portfolio %s not found", op->id);
        return;
    }
    const char *bj = fsr_pg_result_getvalue(res, 0, 0);
    op->inception = day_of(fsr_pg_result_getvalue(res, 0, 1));
    if (bj[0] != '\0') {
        Portfolio__V1__Portfolio *p = fsr_call_alloc(call, sizeof(*p));
        portfolio__v1__portfolio__init(p);
        fsr_json_error err;
        if (fsr_json_merge_pb(&p->base, "benchmark", bj, strlen(bj),
                              fsr_arena_pb_allocator(fsr_call_arena(call)), &err) != 0) {
            FSR_ERROR("portfolio %s: stored benchmark unreadable", op->id);
            fsr_call_fail(call, FSR_INTERNAL, "stored benchmark unreadable");
            return;
        }
        if (p->benchmark != NULL && p->benchmark->n_components > 0)
            op->bench = p->benchmark;
    }
    if (op->from == INT32_MIN) {
        if (op->inception == INT32_MIN) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "from",
                                "the portfolio has no transactions: give from and to");
            return;
        }
        op->from = op->inception;
    }
    if (op->from >= op->to) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "from", "must be before to (%s)",
                            date_str(call, op->to));
        return;
    }
    /* weekdays: the base (first on or after from) and every later one up to to */
    size_t cap = (size_t)(op->to - op->from) + 1;
    op->days = fsr_call_alloc(call, sizeof(int32_t) * cap);
    for (int32_t d = op->from; d <= op->to; d++)
        if (weekday(d))
            op->days[op->n++] = d;
    if (op->n < 2) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "to",
                            "from..to must hold at least two business days (Monday to Friday)");
        return;
    }
    op->rows = fsr_call_alloc(call, sizeof(snap) * op->n);
    op->have = fsr_call_alloc(call, sizeof(bool) * op->n);
    if (op->bench != NULL) {
        op->bc = fsr_call_alloc(call, sizeof(bcomp) * op->bench->n_components);
        for (size_t i = 0; i < op->bench->n_components; i++) {
            const Portfolio__V1__BenchmarkComponent *c = op->bench->components[i];
            bcomp *b = &op->bc[op->nbc++];
            b->cls = bench_class(c);
            b->w = c->weight;
            b->inst = -1;
            if (c->instrument_id != NULL && c->instrument_id[0] != '\0' &&
                c->instrument_type !=
                    COMMON__V1__INSTRUMENT_TYPE__VALUE__INSTRUMENT_TYPE_UNSPECIFIED)
                b->inst =
                    inst_find(op, c->instrument_type == COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND,
                              c->instrument_id, true);
        }
    }
    const char *values[3] = { op->id, date_str(call, op->days[0]), date_str(call, op->to) };
    int rv =
        fsr_pg_query(fsr_app_ctx_of(call)->pg, &perf_snapshots_sql, 3, values, on_snapshots, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "performance snapshots");
}

void pf_get_performance(fsr_call *call, const Portfolio__V1__GetPerformanceRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0 || fsr_check_uuid(call, "id", req->id) != 0)
        return;
    perf_op *op = fsr_call_alloc(call, sizeof(*op));
    memset(op, 0, sizeof(*op));
    op->call = call;
    op->id = req->id;
    op->inception = INT32_MIN;
    op->today = (int32_t)(time(NULL) / 86400);
    op->from = INT32_MIN;
    if (req->from != NULL && req->from[0] != '\0') {
        op->from = day_of(req->from);
        if (op->from == INT32_MIN) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "from",
                                "must be a date \"YYYY-MM-DD\"");
            return;
        }
    }
    op->to = op->today;
    if (req->to != NULL && req->to[0] != '\0') {
        op->to = day_of(req->to);
        if (op->to == INT32_MIN) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "to", "must be a date \"YYYY-MM-DD\"");
            return;
        }
    }
    if (op->from != INT32_MIN && op->to - op->from > PF_PERF_MAX_DAYS) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "to", "at most 20 years after from");
        return;
    }
    op->rf = 0.02;
    if (req->risk_free_rate != NULL) {
        op->rf = req->risk_free_rate->value;
        if (!isfinite(op->rf) || op->rf <= -1 || op->rf > 1) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "riskFreeRate",
                                "must be a fraction in (-1, 1]");
            return;
        }
    }
    switch (req->model) {
    case COMMON__V1__ATTRIBUTION_MODEL__VALUE__ATTRIBUTION_MODEL_UNSPECIFIED:
    case COMMON__V1__ATTRIBUTION_MODEL__VALUE__BRINSON_FACHLER:
        op->model = FSR_AN_BRINSON_FACHLER;
        break;
    case COMMON__V1__ATTRIBUTION_MODEL__VALUE__BHB:
        op->model = FSR_AN_BHB;
        break;
    default:
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "model", "must be BRINSON_FACHLER or BHB");
        return;
    }
    fsr_pg_pool *pool = pf_pool(call);
    if (pool == NULL)
        return;
    const char *values[2] = { op->id, fsr_caller_scope(&who) };
    int rv = fsr_pg_query(pool, &perf_portfolio_sql, 2, values, on_portfolio, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "performance");
}

/* ---- invalidation by price events ---------------------------------------------------- */

static void on_invalidated(const fsr_pg_result *res, void *arg)
{
    char *id = arg;
    int st = fsr_pg_result_status(res);
    if (st != 0)
        FSR_WARN("performance snapshots of instrument %s not invalidated: %s", id,
                 fsr_strerror(st));
    free(id);
}

void pf_snapshot_on_price_event(fsr_app_ctx *ctx, const char *id, const char *msg)
{
    if (ctx == NULL || ctx->pg == NULL) {
        FSR_WARN("price event for %s: no database, performance snapshots not invalidated", id);
        return;
    }
    char from[11] = "";
    const char *p = strstr(msg, "\"from\":\"");
    if (p != NULL && strlen(p + 8) >= 10) {
        memcpy(from, p + 8, 10);
        from[10] = '\0';
        if (day_of(from) == INT32_MIN)
            from[0] = '\0';
    }
    const char *values[2] = { id, from[0] != '\0' ? from : NULL };
    char *tag = fsr_xstrdup(id);
    if (fsr_pg_query(ctx->pg, &perf_invalidate_sql, 2, values, on_invalidated, tag) != 0) {
        FSR_WARN("price event for %s: performance snapshots not invalidated", id);
        free(tag);
    }
}
