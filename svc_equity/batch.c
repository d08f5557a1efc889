/* SPDX-License-Identifier: MIT */
/*
 * BatchQuotes (gRPC only, for svc_portfolio): the quote of many equities as of a date and,
 * optionally, each one's price, dividend and return series over a window, in ONE SQL
 * statement whatever the number of ids.
 *
 * The statement returns tagged rows: 'e' one per existing equity with its quote (the last
 * bar on or before as_of, found with a backward scan of the price_bars primary key, and
 * the bar before it), 'p' the window's closes, 'd' the window's dividends and 's' every
 * split of an equity with a window.  Rows are matched back to the request by id through a
 * small hash table, so the items come out in request order, repeated ids included, and an
 * id with no 'e' row is a per-item NOT_FOUND.
 *
 * The series are split-adjusted to today's shares by eq_split_adjust() (market.c), the very
 * code GetAnalytics uses, and the returns come from fsr_an_series_returns() on the
 * request's basis: a window here and GetAnalytics over the same dates see the same series.
 * The quote itself is as traded (not adjusted), like GetQuote's.
 */
#include "equity.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/app.h"
#include "fsr/handler.h"
#include "fsr/log.h"
#include "fsr/pg.h"
#include "fsr/validate.h"

#include "equity_v1.fsr.h"

/* Most ids per call, and the longest lookback (10 years of trading days). */
#define EQ_BATCH_MAX      5000
#define EQ_BATCH_LOOKBACK 2520
#define EQ_TS_UTC(col)    "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define EQ_NULLS_4        "NULL::text, NULL::text, NULL::text, NULL::text"
#define EQ_NULLS_12       EQ_NULLS_4 ", " EQ_NULLS_4 ", " EQ_NULLS_4

/*
 * $1 the well-formed ids, $2 as_of (NULL: no bound), $3 window start (NULL: lookback),
 * $4 lookback days, $5 whether a window is wanted, $6 whether its dividends are.  Columns:
 * tag, equity id, then per tag: 'e' symbol, name, exchange, currency, sector, isin,
 * lot_size, created_at, updated_at, quote date, close, previous close, change, quote
 * updated_at; 'p' date, close; 'd' ex-date, amount; 's' ex-date, ratio.  The window CTE is
 * referenced twice, so Postgres computes it once.
 */
#define EQ_BATCH_WINDOW                                                                            \
    " w AS (SELECT e.id, b.date, b.close FROM e CROSS JOIN LATERAL (SELECT date, close"            \
    " FROM price_bars WHERE equity_id = e.id AND ($2::date IS NULL OR date <= $2::date)"           \
    " AND date >= $3::date) b WHERE $5::bool AND $3::date IS NOT NULL"                             \
    " UNION ALL SELECT e.id, b.date, b.close FROM e CROSS JOIN LATERAL (SELECT date, close"        \
    " FROM price_bars WHERE equity_id = e.id AND ($2::date IS NULL OR date <= $2::date)"           \
    " ORDER BY date DESC LIMIT $4::integer + 1) b"                                                 \
    " WHERE $5::bool AND $3::date IS NULL AND $4::integer > 0)"
#define EQ_BATCH_QUOTE                                                                             \
    " LEFT JOIN LATERAL (SELECT date, close, updated_at FROM price_bars WHERE equity_id = e.id"    \
    " AND ($2::date IS NULL OR date <= $2::date) ORDER BY date DESC LIMIT 1) q ON true"            \
    " LEFT JOIN LATERAL (SELECT close FROM price_bars WHERE equity_id = e.id AND date < q.date"    \
    " ORDER BY date DESC LIMIT 1) p ON true"

#define EQ_E_CREATED EQ_TS_UTC("e.created_at")
#define EQ_E_UPDATED EQ_TS_UTC("e.updated_at")
#define EQ_Q_UPDATED EQ_TS_UTC("q.updated_at")
#define EQ_BATCH_E_COLS                                                                            \
    "'e', e.id::text, e.symbol, e.name, e.exchange, e.currency::text, e.sector,"                   \
    " coalesce(e.isin::text, ''), e.lot_size::text, " EQ_E_CREATED ", " EQ_E_UPDATED               \
    ", q.date::text, q.close::text, p.close::text,"                                                \
    " coalesce((q.close / p.close - 1)::float8, 0)::text, " EQ_Q_UPDATED

static const fsr_pg_stmt eq_batch_sql = {
    "eq_batch_quotes",
    "WITH e AS (SELECT * FROM equities WHERE id = ANY ($1::uuid[]))," EQ_BATCH_WINDOW
    " SELECT " EQ_BATCH_E_COLS " FROM e" EQ_BATCH_QUOTE
    " UNION ALL SELECT 'p', w.id::text, w.date::text, w.close::text, " EQ_NULLS_12 " FROM w"
    " UNION ALL SELECT 'd', d.equity_id::text, d.ex_date::text, d.amount::text, " EQ_NULLS_12
    " FROM dividends d JOIN (SELECT id, min(date) AS lo FROM w GROUP BY id) m"
    " ON d.equity_id = m.id WHERE $6::bool AND d.ex_date >= m.lo"
    " AND ($2::date IS NULL OR d.ex_date <= $2::date)"
    " UNION ALL SELECT 's', s.equity_id::text, s.ex_date::text, s.ratio::text, " EQ_NULLS_12
    " FROM splits s WHERE $5::bool AND s.equity_id IN (SELECT id FROM w)"
    " ORDER BY 1, 2, 3",
};

enum {
    COL_TAG,
    COL_ID,
    /* 'e' rows */
    COL_SYMBOL,
    COL_NAME,
    COL_EXCHANGE,
    COL_CURRENCY,
    COL_SECTOR,
    COL_ISIN,
    COL_LOT_SIZE,
    COL_CREATED_AT,
    COL_UPDATED_AT,
    COL_Q_DATE,
    COL_Q_CLOSE,
    COL_Q_PREV,
    COL_Q_CHANGE,
    COL_Q_UPDATED_AT,
    COL_COUNT,
    /* 'p', 'd' and 's' rows: a date and a number */
    COL_DATE = COL_SYMBOL,
    COL_VALUE = COL_NAME,
};

/* One distinct equity of the request and the rows found for it. */
typedef struct eq_slot {
    char key[37]; /* lower-case id */
    int e_row;    /* its 'e' row, -1 if none (not found) */
    size_t np, nd, ns;
    /* The series, filled in row order (the statement sorts by date). */
    int32_t *pd, *dd, *sd;
    double *pc, *da, *sr;
    char **p_date, **d_date;
} eq_slot;

/* Open addressing over the distinct ids; capacity a power of two above twice their number. */
typedef struct eq_map {
    eq_slot **tab;
    size_t mask;
} eq_map;

static uint32_t hash36(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 36; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static eq_slot *map_find(const eq_map *m, const char *key)
{
    for (size_t i = hash36(key) & m->mask;; i = (i + 1) & m->mask) {
        if (m->tab[i] == NULL || memcmp(m->tab[i]->key, key, 36) == 0)
            return m->tab[i];
    }
}

typedef struct batch_op {
    fsr_call *call;
    const Equity__V1__BatchQuotesRequest *req;
    fsr_an_basis basis;
    bool window;
    eq_map map;
    eq_slot **slot_of; /* per request item: its slot, NULL for a malformed id */
} batch_op;

static void fail_db(fsr_call *call, const fsr_pg_result *res, const char *what)
{
    int st = fsr_pg_result_status(res);
    if (st == FSR_E_DB)
        FSR_ERROR("%s: SQLSTATE %s: %s", what, fsr_pg_result_sqlstate(res),
                  fsr_pg_result_message(res));
    fsr_call_fail_err(call, st, what);
}

static Equity__V1__Equity *equity_from_row(fsr_call *call, const fsr_pg_result *res, int row)
{
    Equity__V1__Equity *e = fsr_call_alloc(call, sizeof(*e));
    equity__v1__equity__init(e);
    e->id = fsr_pg_col_dup(call, res, row, COL_ID);
    e->symbol = fsr_pg_col_dup(call, res, row, COL_SYMBOL);
    e->name = fsr_pg_col_dup(call, res, row, COL_NAME);
    e->exchange = fsr_pg_col_dup(call, res, row, COL_EXCHANGE);
    e->currency = fsr_pg_col_dup(call, res, row, COL_CURRENCY);
    e->sector = fsr_pg_col_dup(call, res, row, COL_SECTOR);
    e->isin = fsr_pg_col_dup(call, res, row, COL_ISIN);
    e->lot_size = (int32_t)strtol(fsr_pg_result_getvalue(res, row, COL_LOT_SIZE), NULL, 10);
    e->created_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, COL_CREATED_AT));
    e->updated_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, COL_UPDATED_AT));
    return e;
}

static Equity__V1__Quote *quote_from_row(fsr_call *call, const fsr_pg_result *res, int row,
                                         const Equity__V1__Equity *e)
{
    if (fsr_pg_result_isnull(res, row, COL_Q_DATE))
        return NULL; /* no bar on or before as_of */
    Equity__V1__Quote *q = fsr_call_alloc(call, sizeof(*q));
    equity__v1__quote__init(q);
    q->equity_id = e->id;
    q->symbol = e->symbol;
    q->currency = e->currency;
    q->date = fsr_pg_col_dup(call, res, row, COL_Q_DATE);
    q->close = fsr_pg_col_dup(call, res, row, COL_Q_CLOSE);
    q->previous_close = fsr_pg_col_dup(call, res, row, COL_Q_PREV);
    q->change = strtod(fsr_pg_result_getvalue(res, row, COL_Q_CHANGE), NULL);
    q->updated_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, COL_Q_UPDATED_AT));
    return q;
}

/* The window series of |s| into |it| (prices, dividends and returns as requested). */
static void window_to_item(batch_op *op, eq_slot *s, Equity__V1__EquityMarketData *it)
{
    fsr_call *call = op->call;
    const Equity__V1__BatchQuotesRequest *req = op->req;
    if (req->include_prices && s->np > 0) {
        Common__V1__PricePoint *pts = fsr_call_alloc(call, sizeof(*pts) * s->np);
        it->prices = fsr_call_alloc(call, sizeof(*it->prices) * s->np);
        for (size_t i = 0; i < s->np; i++) {
            common__v1__price_point__init(&pts[i]);
            pts[i].date = s->p_date[i];
            pts[i].close = s->pc[i];
            it->prices[i] = &pts[i];
        }
        it->n_prices = s->np;
    }
    if (req->include_dividends && s->nd > 0) {
        Common__V1__DividendPoint *pts = fsr_call_alloc(call, sizeof(*pts) * s->nd);
        it->dividends = fsr_call_alloc(call, sizeof(*it->dividends) * s->nd);
        for (size_t i = 0; i < s->nd; i++) {
            common__v1__dividend_point__init(&pts[i]);
            pts[i].ex_date = s->d_date[i];
            pts[i].amount = s->da[i];
            it->dividends[i] = &pts[i];
        }
        it->n_dividends = s->nd;
    }
    if (req->include_returns && s->np >= 2) {
        fsr_an_series ser = { s->pd, s->pc, s->np, s->dd, s->da, s->nd };
        double *ret = fsr_call_alloc(call, sizeof(*ret) * s->np);
        int rv = fsr_an_series_returns(&ser, op->basis, ret);
        if (rv != 0) {
            /* Stored data always passes (closes > 0, dates unique); say so if it ever does not. */
            FSR_ERROR("batch quotes: returns of equity %s: %s", s->key, fsr_an_strerror(rv));
            it->error_code = FSR_INTERNAL;
            it->error = "internal error";
            return;
        }
        Common__V1__DatedValue *v = fsr_call_alloc(call, sizeof(*v) * (s->np - 1));
        it->returns = fsr_call_alloc(call, sizeof(*it->returns) * (s->np - 1));
        for (size_t i = 0; i + 1 < s->np; i++) {
            common__v1__dated_value__init(&v[i]);
            v[i].date = s->p_date[i + 1];
            v[i].value = ret[i];
            it->returns[i] = &v[i];
        }
        it->n_returns = s->np - 1;
    }
}

/* The slot of row |row| (lower-case id text from Postgres), or NULL. */
static eq_slot *slot_of_row(const batch_op *op, const fsr_pg_result *res, int row)
{
    const char *id = fsr_pg_result_getvalue(res, row, COL_ID);
    if (id == NULL || strlen(id) != 36)
        return NULL;
    return map_find(&op->map, id);
}

static void on_batch_rows(const fsr_pg_result *res, void *arg)
{
    batch_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(call, res, "batch quotes");
        return;
    }
    if (fsr_pg_result_cols(res) != COL_COUNT) {
        FSR_ERROR("batch quotes: unexpected result shape");
        fsr_call_fail(call, FSR_INTERNAL, "internal error");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    /* Pass 1: count each slot's rows; pass 2: fill its arrays (rows are sorted by date). */
    for (int r = 0; r < rows; r++) {
        eq_slot *s = slot_of_row(op, res, r);
        if (s == NULL)
            continue;
        switch (fsr_pg_result_getvalue(res, r, COL_TAG)[0]) {
        case 'e':
            s->e_row = r;
            break;
        case 'p':
            s->np++;
            break;
        case 'd':
            s->nd++;
            break;
        case 's':
            s->ns++;
            break;
        }
    }
    for (size_t i = 0; i <= op->map.mask; i++) {
        eq_slot *s = op->map.tab[i];
        if (s == NULL || (s->np == 0 && s->nd == 0 && s->ns == 0))
            continue;
        s->pd = fsr_call_alloc(call, sizeof(*s->pd) * (s->np + 1));
        s->pc = fsr_call_alloc(call, sizeof(*s->pc) * (s->np + 1));
        s->p_date = fsr_call_alloc(call, sizeof(*s->p_date) * (s->np + 1));
        s->dd = fsr_call_alloc(call, sizeof(*s->dd) * (s->nd + 1));
        s->da = fsr_call_alloc(call, sizeof(*s->da) * (s->nd + 1));
        s->d_date = fsr_call_alloc(call, sizeof(*s->d_date) * (s->nd + 1));
        s->sd = fsr_call_alloc(call, sizeof(*s->sd) * (s->ns + 1));
        s->sr = fsr_call_alloc(call, sizeof(*s->sr) * (s->ns + 1));
        s->np = s->nd = s->ns = 0;
    }
    for (int r = 0; r < rows; r++) {
        char tag = fsr_pg_result_getvalue(res, r, COL_TAG)[0];
        eq_slot *s = tag != 'e' ? slot_of_row(op, res, r) : NULL;
        int32_t day;
        if (s == NULL || eq_day_parse(fsr_pg_result_getvalue(res, r, COL_DATE), &day) != 0)
            continue;
        double v = strtod(fsr_pg_result_getvalue(res, r, COL_VALUE), NULL);
        if (tag == 'p') {
            s->p_date[s->np] = fsr_pg_col_dup(call, res, r, COL_DATE);
            s->pd[s->np] = day;
            s->pc[s->np++] = v;
        } else if (tag == 'd') {
            s->d_date[s->nd] = fsr_pg_col_dup(call, res, r, COL_DATE);
            s->dd[s->nd] = day;
            s->da[s->nd++] = v;
        } else if (tag == 's') {
            s->sd[s->ns] = day;
            s->sr[s->ns++] = v;
        }
    }
    for (size_t i = 0; i <= op->map.mask; i++) {
        eq_slot *s = op->map.tab[i];
        if (s != NULL && s->ns > 0)
            eq_split_adjust(s->pd, s->pc, s->np, s->dd, s->da, s->nd, s->sd, s->sr, s->ns);
    }

    size_t n = op->req->n_ids;
    Equity__V1__BatchQuotesResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    equity__v1__batch_quotes_response__init(resp);
    Equity__V1__EquityMarketData *items = fsr_call_alloc(call, sizeof(*items) * (n + 1));
    resp->items = fsr_call_alloc(call, sizeof(*resp->items) * (n + 1));
    resp->n_items = n;
    for (size_t i = 0; i < n; i++) {
        Equity__V1__EquityMarketData *it = &items[i];
        equity__v1__equity_market_data__init(it);
        resp->items[i] = it;
        it->id = op->req->ids[i];
        eq_slot *s = op->slot_of[i];
        if (s == NULL) {
            it->error_code = FSR_INVALID_ARGUMENT;
            it->error = fsr_call_printf(call, "ids[%zu]: must be a UUID", i);
            continue;
        }
        if (s->e_row < 0) {
            it->error_code = FSR_NOT_FOUND;
            it->error = fsr_call_printf(call, "equity %s not found", it->id);
            continue;
        }
        it->equity = equity_from_row(call, res, s->e_row);
        it->quote = quote_from_row(call, res, s->e_row, it->equity);
        if (op->window)
            window_to_item(op, s, it);
    }
    equity_v1_equity_service_batch_quotes_reply(call, resp);
}

/* An optional date field: NULL for "", else |s|; -1 (call finished) if not a date. */
static int opt_date(fsr_call *call, const char *field, const char *s, const char **out)
{
    *out = NULL;
    if (s[0] == '\0')
        return 0;
    if (fsr_date_parse(s, NULL, NULL, NULL) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "must be a date \"YYYY-MM-DD\"");
        return -1;
    }
    *out = s;
    return 0;
}

void eq_batch_quotes(fsr_call *call, const Equity__V1__BatchQuotesRequest *req)
{
    size_t n = req->n_ids;
    if (n > EQ_BATCH_MAX) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "ids", "at most %d ids per call",
                            EQ_BATCH_MAX);
        return;
    }
    batch_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->req = req;
    const char *as_of, *from;
    if (opt_date(call, "asOf", req->as_of, &as_of) != 0 ||
        opt_date(call, "from", req->from, &from) != 0 ||
        eq_basis_resolve(call, req->basis, &op->basis) != 0)
        return;
    if (from != NULL && as_of != NULL && strcmp(from, as_of) > 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "from", "must not be after asOf");
        return;
    }
    if (req->lookback_days < 0 || req->lookback_days > EQ_BATCH_LOOKBACK) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "lookbackDays", "must be in 0..%d",
                            EQ_BATCH_LOOKBACK);
        return;
    }
    bool wanted = req->include_prices || req->include_dividends || req->include_returns;
    op->window = wanted && (from != NULL || req->lookback_days > 0);
    /* Total-basis returns need the dividends even when they are not returned. */
    bool divs = op->window &&
                (req->include_dividends || (req->include_returns && op->basis == FSR_AN_TOTAL));

    /* Distinct well-formed ids, lower-cased, into the map and the "{id,...}" array. */
    size_t cap = 16;
    while (cap < 2 * n + 2)
        cap <<= 1;
    op->map.tab = fsr_call_alloc(call, sizeof(*op->map.tab) * cap);
    op->map.mask = cap - 1;
    op->slot_of = fsr_call_alloc(call, sizeof(*op->slot_of) * (n + 1));
    char *arr = fsr_call_alloc(call, 3 + n * 37);
    size_t len = 0;
    arr[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        const char *id = req->ids[i];
        if (!fsr_uuid_valid(id))
            continue;
        char key[37];
        for (int k = 0; k < 36; k++)
            key[k] = (char)tolower((unsigned char)id[k]);
        key[36] = '\0';
        size_t h = hash36(key) & op->map.mask;
        while (op->map.tab[h] != NULL && memcmp(op->map.tab[h]->key, key, 36) != 0)
            h = (h + 1) & op->map.mask;
        if (op->map.tab[h] == NULL) {
            eq_slot *s = fsr_call_alloc(call, sizeof(*s));
            memcpy(s->key, key, sizeof(key));
            s->e_row = -1;
            op->map.tab[h] = s;
            if (len > 1)
                arr[len++] = ',';
            memcpy(arr + len, key, 36);
            len += 36;
        }
        op->slot_of[i] = op->map.tab[h];
    }
    arr[len++] = '}';
    arr[len] = '\0';

    fsr_pg_pool *pool = fsr_app_ctx_of(call)->pg;
    if (pool == NULL) {
        fsr_call_fail(call, FSR_UNAVAILABLE, "the equity database is unavailable");
        return;
    }
    const char *values[6] = {
        arr,
        as_of,
        from,
        fsr_call_printf(call, "%d", req->lookback_days),
        op->window ? "true" : "false",
        divs ? "true" : "false",
    };
    int rv = fsr_pg_query(pool, &eq_batch_sql, 6, values, on_batch_rows, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "batch quotes");
}
