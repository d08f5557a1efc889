/* SPDX-License-Identifier: MIT */
/*
 * Market data: daily bars (UpsertPrices, ListPrices), dividends and splits (Add/List),
 * quotes (GetQuote, cached in the service's Redis) and GetAnalytics on the stored data.
 *
 * Prices travel as decimal strings and are stored as NUMERIC without passing through a
 * double.  A price write invalidates the cached quote (eq_quote_invalidate(): the generation
 * scheme of equity.h) before the call is answered and then publishes price.updated
 * {"id","from","to"} on the shared Redis; a Redis failure is only logged (the cache has a
 * TTL, events are best effort).
 */
#include "equity.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/handler.h"
#include "fsr/app.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/pg.h"
#include "fsr/validate.h"

#include "equity_v1.fsr.h"

#define EQ_QUOTE_TTL_S  60
#define EQ_BARS_MAX     100000
#define EQ_UPDATED_CHAN "price.updated"
#define EQ_TS(col)      "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* ---- statements --------------------------------------------------------------------- */

/*
 * The whole batch in one statement (so one transaction): the bars arrive as parallel
 * arrays and are upserted by (equity_id, date).  Returns the rows written and the equity's
 * latest bar date afterwards (the CTE's snapshot does not see its own rows: hence UNION).
 * An unknown equity is a foreign-key violation.
 */
static const fsr_pg_stmt eq_upsert_bars = {
    "eq_upsert_bars",
    "WITH up AS (INSERT INTO price_bars AS p (equity_id, date, open, high, low, close, volume)"
    " SELECT $1::uuid, d, o, h, l, c, v FROM unnest($2::date[], $3::numeric[], $4::numeric[],"
    " $5::numeric[], $6::numeric[], $7::bigint[]) AS t(d, o, h, l, c, v)"
    " ON CONFLICT (equity_id, date) DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high,"
    " low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume, updated_at = now()"
    " RETURNING p.date)"
    " SELECT (SELECT count(*) FROM up), (SELECT max(x)::text FROM (SELECT date AS x FROM up"
    " UNION ALL SELECT max(date) FROM price_bars WHERE equity_id = $1::uuid) m)",
};

/* Zero rows: no such equity; one row with NULL date: no bar in the range. */
static const fsr_pg_stmt eq_list_bars = {
    "eq_list_bars",
    "SELECT b.date::text, b.open::text, b.high::text, b.low::text, b.close::text,"
    " b.volume::text FROM equities e LEFT JOIN price_bars b ON b.equity_id = e.id"
    " AND ($2::date IS NULL OR b.date >= $2::date) AND ($3::date IS NULL OR b.date <= $3::date)"
    " WHERE e.id = $1::uuid ORDER BY b.date",
};

#define EQ_DIV_COLS                                                                                \
    "d.id, d.equity_id, d.ex_date::text, coalesce(d.pay_date::text, ''), d.amount::text, " EQ_TS(  \
        "d.created_at")
#define EQ_SPLIT_COLS "s.id, s.equity_id, s.ex_date::text, s.ratio::text, " EQ_TS("s.created_at")

static const fsr_pg_stmt eq_add_dividend_sql = {
    "eq_add_dividend",
    "INSERT INTO dividends AS d (equity_id, ex_date, pay_date, amount)"
    " VALUES ($1::uuid, $2::date, $3::date, $4::numeric) RETURNING " EQ_DIV_COLS,
};

static const fsr_pg_stmt eq_list_dividends_sql = {
    "eq_list_dividends",
    "SELECT " EQ_DIV_COLS " FROM equities e LEFT JOIN dividends d ON d.equity_id = e.id"
    " AND ($2::date IS NULL OR d.ex_date >= $2::date) AND ($3::date IS NULL OR d.ex_date <= "
    "$3::date) WHERE e.id = $1::uuid ORDER BY d.ex_date",
};

static const fsr_pg_stmt eq_add_split_sql = {
    "eq_add_split",
    "INSERT INTO splits AS s (equity_id, ex_date, ratio)"
    " VALUES ($1::uuid, $2::date, $3::numeric) RETURNING " EQ_SPLIT_COLS,
};

static const fsr_pg_stmt eq_list_splits_sql = {
    "eq_list_splits",
    "SELECT " EQ_SPLIT_COLS " FROM equities e LEFT JOIN splits s ON s.equity_id = e.id"
    " AND ($2::date IS NULL OR s.ex_date >= $2::date) AND ($3::date IS NULL OR s.ex_date <= "
    "$3::date) WHERE e.id = $1::uuid ORDER BY s.ex_date",
};

/* The latest bar and the one before it; zero rows: no such equity. */
static const fsr_pg_stmt eq_quote = {
    "eq_quote",
    "SELECT e.id, e.symbol, e.currency, b.date::text, b.close::text,"
    " coalesce(p.close::text, ''), coalesce((b.close / p.close - 1)::float8, 0)::text,"
    " " EQ_TS("b.updated_at") " FROM equities e"
                              " LEFT JOIN LATERAL (SELECT date, close, updated_at FROM price_bars "
                              "WHERE equity_id = e.id"
                              " ORDER BY date DESC LIMIT 1) b ON true"
                              " LEFT JOIN LATERAL (SELECT close FROM price_bars WHERE equity_id = "
                              "e.id AND date < b.date"
                              " ORDER BY date DESC LIMIT 1) p ON true WHERE e.id = $1::uuid",
};

/*
 * Everything GetAnalytics needs of one equity, tagged: 'd' dividends up to |to|, 'e' the
 * equity itself (absent: not found), 'p' closes in from..to, 's' every split.  Ordered by
 * tag, then date (ISO dates sort as text).
 */
static const fsr_pg_stmt eq_series_data = {
    "eq_series_data",
    "SELECT 'd', ex_date::text, amount::text FROM dividends WHERE equity_id = $1::uuid"
    " AND ($3::date IS NULL OR ex_date <= $3::date)"
    " UNION ALL SELECT 'e', '', '' FROM equities WHERE id = $1::uuid"
    " UNION ALL SELECT 'p', date::text, close::text FROM price_bars WHERE equity_id = $1::uuid"
    " AND ($2::date IS NULL OR date >= $2::date) AND ($3::date IS NULL OR date <= $3::date)"
    " UNION ALL SELECT 's', ex_date::text, ratio::text FROM splits WHERE equity_id = $1::uuid"
    " ORDER BY 1, 2",
};

/* ---- helpers ------------------------------------------------------------------------ */

static void fail_db(fsr_call *call, const fsr_pg_result *res, const char *what)
{
    int st = fsr_pg_result_status(res);
    if (st == FSR_E_DB)
        FSR_ERROR("%s: SQLSTATE %s: %s", what, fsr_pg_result_sqlstate(res),
                  fsr_pg_result_message(res));
    fsr_call_fail_err(call, st, what);
}

static fsr_pg_pool *pool_of(fsr_call *call)
{
    fsr_pg_pool *pool = fsr_app_ctx_of(call)->pg;
    if (pool == NULL)
        fsr_call_fail(call, FSR_UNAVAILABLE, "the equity database is unavailable");
    return pool;
}

/* Checks the equity id field |field|; finishes |call| and returns -1 if bad. */
static int check_id(fsr_call *call, const char *field, const char *id)
{
    if (id[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "is required");
        return -1;
    }
    if (!fsr_uuid_valid(id)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "must be a UUID");
        return -1;
    }
    return 0;
}

/* An optional date: NULL for "", else |s|; -1 (call finished) if not a date. */
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

static int check_range(fsr_call *call, const char *from_s, const char *to_s, const char **from,
                       const char **to)
{
    if (opt_date(call, "from", from_s, from) != 0 || opt_date(call, "to", to_s, to) != 0)
        return -1;
    if (*from != NULL && *to != NULL && strcmp(*from, *to) > 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "to", "must not be before from");
        return -1;
    }
    return 0;
}

/* A strictly positive decimal; -1 (call finished, naming |field|) otherwise. */
static int check_positive(fsr_call *call, const char *field, const char *v)
{
    const char *why = NULL;
    int sign = 0;
    if (v[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "is required");
        return -1;
    }
    if (fsr_decimal_check(v, &sign, &why) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "%s", why);
        return -1;
    }
    if (sign <= 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "must be > 0");
        return -1;
    }
    return 0;
}

/* A growable string for the array literals of the bulk upsert. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 2 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 256;
        while (b->len + n + 2 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* ---- UpsertPrices ------------------------------------------------------------------- */

typedef struct upsert_op {
    fsr_call *call;
    const char *id;
    const char *from, *to; /* the request's date range */
    Equity__V1__UpsertPricesResponse *resp;
} upsert_op;

static void on_publish(const redisReply *reply, int status, void *arg)
{
    (void)reply;
    if (status != 0)
        FSR_WARN("publish %s for equity %s failed: %s", EQ_UPDATED_CHAN, (const char *)arg,
                 fsr_strerror(status));
    free(arg);
}

/* Publishes price.updated on the shared Redis (best effort: failures are logged). */
static void publish_updated(fsr_call *call, const char *id, const char *from, const char *to)
{
    fsr_redis *shared = fsr_app_ctx_of(call)->shared;
    if (shared == NULL) {
        FSR_WARN("no shared Redis: %s for equity %s not published", EQ_UPDATED_CHAN, id);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "{\"id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\"}", id, from, to);
    char *tag = strdup(id);
    int rv = fsr_redis_command(shared, on_publish, tag, "PUBLISH %s %s", EQ_UPDATED_CHAN, msg);
    if (rv != 0) {
        FSR_WARN("publish %s for equity %s failed: %s", EQ_UPDATED_CHAN, id, fsr_strerror(rv));
        free(tag);
    }
}

static void on_quote_invalidated(const redisReply *reply, int status, void *arg)
{
    (void)reply;
    upsert_op *op = arg;
    if (status != 0)
        FSR_WARN("invalidate quote of equity %s: %s", op->id, fsr_strerror(status));
    /* The event goes out after the invalidation: a consumer that reacts with GetQuote reads
     * the new close. */
    publish_updated(op->call, op->id, op->from, op->to);
    equity_v1_equity_service_upsert_prices_reply(op->call, op->resp);
}

static void on_upserted(const fsr_pg_result *res, void *arg)
{
    upsert_op *op = arg;
    int st = fsr_pg_result_status(res);
    if (st == FSR_E_CHECK) {
        fsr_call_fail_field(op->call, FSR_NOT_FOUND, "id", "equity %s not found", op->id);
        return;
    }
    if (st != 0) {
        fail_db(op->call, res, "upsert prices");
        return;
    }
    if (fsr_pg_result_rows(res) != 1 || fsr_pg_result_cols(res) != 2) {
        FSR_ERROR("upsert prices: unexpected result shape");
        fsr_call_fail(op->call, FSR_INTERNAL, "internal error");
        return;
    }
    op->resp = fsr_call_alloc(op->call, sizeof(*op->resp));
    equity__v1__upsert_prices_response__init(op->resp);
    op->resp->upserted = (int32_t)strtol(fsr_pg_result_getvalue(res, 0, 0), NULL, 10);
    op->resp->latest_date = fsr_pg_col_dup(op->call, res, 0, 1);
    FSR_INFO("equity %s: %d bars upserted (%s..%s)", op->id, op->resp->upserted, op->from, op->to);
    /* Answer once the cached quote is gone, so a following GetQuote sees the new close. */
    int rv = eq_quote_invalidate(fsr_app_ctx_of(op->call), op->id, on_quote_invalidated, op);
    if (rv != 0) {
        FSR_WARN("invalidate quote of equity %s: %s", op->id, fsr_strerror(rv));
        publish_updated(op->call, op->id, op->from, op->to);
        equity_v1_equity_service_upsert_prices_reply(op->call, op->resp);
    }
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Validates bar |i|; finishes |call| naming the field and returns -1 if bad. */
static int check_bar(fsr_call *call, size_t i, const Equity__V1__PriceBar *b, int32_t *day)
{
#define F(name) fsr_call_printf(call, "bars[%zu]." name, i)
    if (eq_day_parse(b->date, day) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, F("date"), "must be a date \"YYYY-MM-DD\"");
        return -1;
    }
    if (check_positive(call, F("open"), b->open) != 0 ||
        check_positive(call, F("high"), b->high) != 0 ||
        check_positive(call, F("low"), b->low) != 0 ||
        check_positive(call, F("close"), b->close) != 0)
        return -1;
    if (fsr_decimal_cmp(b->high, b->low) < 0 || fsr_decimal_cmp(b->high, b->open) < 0 ||
        fsr_decimal_cmp(b->high, b->close) < 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, F("high"),
                            "must be >= open, close and low");
        return -1;
    }
    if (fsr_decimal_cmp(b->low, b->open) > 0 || fsr_decimal_cmp(b->low, b->close) > 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, F("low"),
                            "must be <= open, close and high");
        return -1;
    }
    if (b->volume < 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, F("volume"), "must be >= 0");
        return -1;
    }
    return 0;
#undef F
}

void eq_upsert_prices(fsr_call *call, const Equity__V1__UpsertPricesRequest *req)
{
    if (check_id(call, "id", req->id) != 0)
        return;
    size_t n = req->n_bars;
    if (n == 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "bars", "must hold at least one bar");
        return;
    }
    if (n > EQ_BARS_MAX) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "bars", "must hold at most %d bars",
                            EQ_BARS_MAX);
        return;
    }
    /* Every bar is checked before anything is written. */
    int32_t *days = fsr_call_alloc(call, sizeof(*days) * n);
    size_t lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (check_bar(call, i, req->bars[i], &days[i]) != 0)
            return;
        if (days[i] < days[lo])
            lo = i;
        if (days[i] > days[hi])
            hi = i;
    }
    int32_t *sorted = fsr_call_alloc(call, sizeof(*sorted) * n);
    memcpy(sorted, days, sizeof(*sorted) * n);
    qsort(sorted, n, sizeof(*sorted), cmp_i32);
    for (size_t i = 1; i < n; i++) {
        if (sorted[i] == sorted[i - 1]) {
            size_t j = 0;
            while (days[j] != sorted[i])
                j++;
            while (++j < n && days[j] != sorted[i]) {
            }
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT,
                                fsr_call_printf(call, "bars[%zu].date", j),
                                "repeats the date of an earlier bar");
            return;
        }
    }
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;

    sbuf a[6];
    memset(a, 0, sizeof(a));
    for (int k = 0; k < 6; k++)
        sb_str(&a[k], "{");
    for (size_t i = 0; i < n; i++) {
        const Equity__V1__PriceBar *b = req->bars[i];
        const char *sep = i > 0 ? "," : "";
        char vol[24];
        snprintf(vol, sizeof(vol), "%lld", (long long)b->volume);
        const char *v[6] = { b->date, b->open, b->high, b->low, b->close, vol };
        for (int k = 0; k < 6; k++) {
            sb_str(&a[k], sep);
            sb_str(&a[k], v[k]);
        }
    }
    bool oom = false;
    for (int k = 0; k < 6; k++) {
        sb_str(&a[k], "}");
        oom = oom || a[k].oom;
    }
    int rv = -ENOMEM;
    if (!oom) {
        upsert_op *op = fsr_call_alloc(call, sizeof(*op));
        op->call = call;
        op->id = req->id;
        op->from = req->bars[lo]->date;
        op->to = req->bars[hi]->date;
        const char *values[7] = { req->id, a[0].p, a[1].p, a[2].p, a[3].p, a[4].p, a[5].p };
        rv = fsr_pg_query(pool, &eq_upsert_bars, 7, values, on_upserted, op);
    }
    for (int k = 0; k < 6; k++)
        free(a[k].p);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "upsert prices");
}

/* ---- ListPrices --------------------------------------------------------------------- */

typedef struct list_op {
    fsr_call *call;
    const char *id;
} list_op;

static void on_bars(const fsr_pg_result *res, void *arg)
{
    list_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(call, res, "list prices");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    if (rows == 0) {
        fsr_call_fail_field(call, FSR_NOT_FOUND, "id", "equity %s not found", op->id);
        return;
    }
    if (fsr_pg_result_isnull(res, 0, 0))
        rows = 0;
    Equity__V1__ListPricesResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    equity__v1__list_prices_response__init(resp);
    resp->bars = fsr_call_alloc(call, sizeof(*resp->bars) * (size_t)(rows > 0 ? rows : 1));
    Equity__V1__PriceBar *bars =
        fsr_call_alloc(call, sizeof(*bars) * (size_t)(rows > 0 ? rows : 1));
    for (int i = 0; i < rows; i++) {
        Equity__V1__PriceBar *b = &bars[i];
        equity__v1__price_bar__init(b);
        b->date = fsr_pg_col_dup(call, res, i, 0);
        b->open = fsr_pg_col_dup(call, res, i, 1);
        b->high = fsr_pg_col_dup(call, res, i, 2);
        b->low = fsr_pg_col_dup(call, res, i, 3);
        b->close = fsr_pg_col_dup(call, res, i, 4);
        b->volume = strtoll(fsr_pg_result_getvalue(res, i, 5), NULL, 10);
        resp->bars[i] = b;
    }
    resp->n_bars = (size_t)rows;
    equity_v1_equity_service_list_prices_reply(call, resp);
}

/* Runs a by-equity list statement with a from..to range. */
static void list_range(fsr_call *call, const char *id, const char *from_s, const char *to_s,
                       const fsr_pg_stmt *stmt, fsr_pg_cb cb, const char *what)
{
    const char *from, *to;
    if (check_id(call, "id", id) != 0 || check_range(call, from_s, to_s, &from, &to) != 0)
        return;
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    list_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = id;
    const char *values[3] = { id, from, to };
    int rv = fsr_pg_query(pool, stmt, 3, values, cb, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, what);
}

void eq_list_prices(fsr_call *call, const Equity__V1__ListPricesRequest *req)
{
    list_range(call, req->id, req->from, req->to, &eq_list_bars, on_bars, "list prices");
}

/* ---- Dividends and splits ----------------------------------------------------------- */

static Equity__V1__Dividend *dividend_from_row(fsr_call *call, const fsr_pg_result *res, int row)
{
    Equity__V1__Dividend *d = fsr_call_alloc(call, sizeof(*d));
    equity__v1__dividend__init(d);
    d->id = fsr_pg_col_dup(call, res, row, 0);
    d->equity_id = fsr_pg_col_dup(call, res, row, 1);
    d->ex_date = fsr_pg_col_dup(call, res, row, 2);
    d->pay_date = fsr_pg_col_dup(call, res, row, 3);
    d->amount = fsr_pg_col_dup(call, res, row, 4);
    d->created_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, 5));
    return d;
}

static Equity__V1__Split *split_from_row(fsr_call *call, const fsr_pg_result *res, int row)
{
    Equity__V1__Split *s = fsr_call_alloc(call, sizeof(*s));
    equity__v1__split__init(s);
    s->id = fsr_pg_col_dup(call, res, row, 0);
    s->equity_id = fsr_pg_col_dup(call, res, row, 1);
    s->ex_date = fsr_pg_col_dup(call, res, row, 2);
    s->ratio = fsr_pg_col_dup(call, res, row, 3);
    s->created_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, 4));
    return s;
}

typedef struct add_op {
    fsr_call *call;
    const char *id;
    const char *ex_date;
    bool split;
} add_op;

static void on_added(const fsr_pg_result *res, void *arg)
{
    add_op *op = arg;
    const char *kind = op->split ? "split" : "dividend";
    int st = fsr_pg_result_status(res);
    if (st == FSR_E_CHECK) {
        fsr_call_fail_field(op->call, FSR_NOT_FOUND, "id", "equity %s not found", op->id);
        return;
    }
    if (st == FSR_E_UNIQUE) {
        fsr_call_fail(op->call, FSR_ALREADY_EXISTS, "a %s of equity %s with ex-date %s exists",
                      kind, op->id, op->ex_date);
        return;
    }
    if (st != 0 || fsr_pg_result_rows(res) != 1) {
        fail_db(op->call, res, op->split ? "add split" : "add dividend");
        return;
    }
    if (op->split)
        equity_v1_equity_service_add_split_reply(op->call, split_from_row(op->call, res, 0));
    else
        equity_v1_equity_service_add_dividend_reply(op->call, dividend_from_row(op->call, res, 0));
}

static void add_action(fsr_call *call, const char *id, const char *ex_date, bool split,
                       const fsr_pg_stmt *stmt, int nvalues, const char *const *values)
{
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    add_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = id;
    op->ex_date = ex_date;
    op->split = split;
    int rv = fsr_pg_query(pool, stmt, nvalues, values, on_added, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, split ? "add split" : "add dividend");
}

void eq_add_dividend(fsr_call *call, const Equity__V1__AddDividendRequest *req)
{
    const char *pay = NULL;
    if (check_id(call, "id", req->id) != 0)
        return;
    if (fsr_date_parse(req->ex_date, NULL, NULL, NULL) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "exDate", "must be a date \"YYYY-MM-DD\"");
        return;
    }
    if (opt_date(call, "payDate", req->pay_date, &pay) != 0)
        return;
    if (pay != NULL && strcmp(pay, req->ex_date) < 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "payDate", "must not be before exDate");
        return;
    }
    if (check_positive(call, "amount", req->amount) != 0)
        return;
    const char *values[4] = { req->id, req->ex_date, pay, req->amount };
    add_action(call, req->id, req->ex_date, false, &eq_add_dividend_sql, 4, values);
}

void eq_add_split(fsr_call *call, const Equity__V1__AddSplitRequest *req)
{
    if (check_id(call, "id", req->id) != 0)
        return;
    if (fsr_date_parse(req->ex_date, NULL, NULL, NULL) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "exDate", "must be a date \"YYYY-MM-DD\"");
        return;
    }
    if (check_positive(call, "ratio", req->ratio) != 0)
        return;
    const char *values[3] = { req->id, req->ex_date, req->ratio };
    add_action(call, req->id, req->ex_date, true, &eq_add_split_sql, 3, values);
}

static void on_dividends(const fsr_pg_result *res, void *arg)
{
    list_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(call, res, "list dividends");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    if (rows == 0) {
        fsr_call_fail_field(call, FSR_NOT_FOUND, "id", "equity %s not found", op->id);
        return;
    }
    if (fsr_pg_result_isnull(res, 0, 0))
        rows = 0;
    Equity__V1__ListDividendsResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    equity__v1__list_dividends_response__init(resp);
    resp->dividends = fsr_call_alloc(call, sizeof(*resp->dividends) * (size_t)(rows + 1));
    for (int i = 0; i < rows; i++)
        resp->dividends[i] = dividend_from_row(call, res, i);
    resp->n_dividends = (size_t)rows;
    equity_v1_equity_service_list_dividends_reply(call, resp);
}

static void on_splits(const fsr_pg_result *res, void *arg)
{
    list_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(call, res, "list splits");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    if (rows == 0) {
        fsr_call_fail_field(call, FSR_NOT_FOUND, "id", "equity %s not found", op->id);
        return;
    }
    if (fsr_pg_result_isnull(res, 0, 0))
        rows = 0;
    Equity__V1__ListSplitsResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    equity__v1__list_splits_response__init(resp);
    resp->splits = fsr_call_alloc(call, sizeof(*resp->splits) * (size_t)(rows + 1));
    for (int i = 0; i < rows; i++)
        resp->splits[i] = split_from_row(call, res, i);
    resp->n_splits = (size_t)rows;
    equity_v1_equity_service_list_splits_reply(call, resp);
}

void eq_list_dividends(fsr_call *call, const Equity__V1__ListDividendsRequest *req)
{
    list_range(call, req->id, req->from, req->to, &eq_list_dividends_sql, on_dividends,
               "list dividends");
}

void eq_list_splits(fsr_call *call, const Equity__V1__ListSplitsRequest *req)
{
    list_range(call, req->id, req->from, req->to, &eq_list_splits_sql, on_splits, "list splits");
}

/* ---- GetQuote ----------------------------------------------------------------------- */

/*
 * The quote cache's two scripts (keys in equity.h).  Setting: KEYS[1] the generation,
 * KEYS[2] the quote; ARGV[1] the generation GetQuote read before it queried Postgres ("" if
 * none existed), ARGV[2] the packed quote, ARGV[3] its TTL.  It caches only when no write
 * bumped the generation in between, atomically (a script runs alone).  Invalidating: the
 * generation is bumped first, then the quote deleted, so a reader that queried Postgres
 * before the write committed either set its quote before the bump (and the DEL removes it)
 * or finds the generation changed (and sets nothing).  The generation keeps a day's TTL
 * (renewed by every write): a reader holds its value for at most its deadline.
 */
static const char eq_quote_set_lua[] =
    "if (redis.call('GET', KEYS[1]) or '') == ARGV[1] then"
    " redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) return 1 end return 0";
static const char eq_quote_invalidate_lua[] =
    "redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], ARGV[1])"
    " return redis.call('DEL', KEYS[2])";

int eq_quote_invalidate(fsr_app_ctx *ctx, const char *id, fsr_redis_cb cb, void *arg)
{
    if (ctx->redis == NULL)
        return FSR_E_CLOSED;
    return fsr_redis_command(ctx->redis, cb, arg,
                             "EVAL %s 2 " EQ_QUOTE_GEN_PREFIX "%s " EQ_QUOTE_KEY_PREFIX "%s %d",
                             eq_quote_invalidate_lua, id, id, EQ_QUOTE_GEN_TTL_S);
}

static void cache_quote(fsr_redis *cache, const char *id, const char *gen, const uint8_t *buf,
                        size_t len)
{
    int rv = fsr_redis_command(
        cache, NULL, NULL, "EVAL %s 2 " EQ_QUOTE_GEN_PREFIX "%s " EQ_QUOTE_KEY_PREFIX "%s %s %b %d",
        eq_quote_set_lua, id, id, gen, buf, len, EQ_QUOTE_TTL_S);
    if (rv != 0)
        FSR_WARN("cache quote of equity %s: %s", id, fsr_strerror(rv));
}

/*
 * Test hook: EQ_TEST_QUOTE_CACHE_DELAY_MS > 0 sends the cache write that long after the
 * answer, which widens the window between GetQuote's read of Postgres and its cache write so
 * that a test can put a price write inside it (test/integration/equity_test.c,
 * test_quote_cache_race).  Never set in production.
 */
typedef struct delayed_cache {
    fsr_redis *cache;
    char id[40];
    char gen[32];
    size_t len;
    uint8_t buf[];
} delayed_cache;

static void on_cache_delay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    delayed_cache *d = arg;
    cache_quote(d->cache, d->id, d->gen, d->buf, d->len);
    free(d);
}

static int cache_delay_ms(void)
{
    const char *v = getenv("EQ_TEST_QUOTE_CACHE_DELAY_MS");
    return v != NULL ? atoi(v) : 0;
}

typedef struct quote_op {
    fsr_call *call;
    const char *id;
    const char *gen; /* the generation read with the cache miss ("": none); NULL: unknown */
} quote_op;

static void on_quote_row(const fsr_pg_result *res, void *arg)
{
    quote_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(call, res, "get quote");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail_field(call, FSR_NOT_FOUND, "id", "equity %s not found", op->id);
        return;
    }
    if (fsr_pg_result_isnull(res, 0, 3)) {
        fsr_call_fail(call, FSR_NOT_FOUND, "equity %s has no price", op->id);
        return;
    }
    Equity__V1__Quote *q = fsr_call_alloc(call, sizeof(*q));
    equity__v1__quote__init(q);
    q->equity_id = fsr_pg_col_dup(call, res, 0, 0);
    q->symbol = fsr_pg_col_dup(call, res, 0, 1);
    q->currency = fsr_pg_col_dup(call, res, 0, 2);
    q->date = fsr_pg_col_dup(call, res, 0, 3);
    q->close = fsr_pg_col_dup(call, res, 0, 4);
    q->previous_close = fsr_pg_col_dup(call, res, 0, 5);
    q->change = strtod(fsr_pg_result_getvalue(res, 0, 6), NULL);
    q->updated_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, 0, 7));
    /* Without the generation (the cache read failed) the answer is not cached at all. */
    fsr_redis *cache = fsr_app_ctx_of(call)->redis;
    if (cache != NULL && op->gen != NULL) {
        size_t len = equity__v1__quote__get_packed_size(q);
        int delay = cache_delay_ms();
        if (delay > 0 && strlen(op->id) < sizeof(((delayed_cache *)0)->id) &&
            strlen(op->gen) < sizeof(((delayed_cache *)0)->gen)) {
            delayed_cache *d = fsr_xcalloc(1, sizeof(*d) + len + 1);
            d->cache = cache;
            snprintf(d->id, sizeof(d->id), "%s", op->id);
            snprintf(d->gen, sizeof(d->gen), "%s", op->gen);
            d->len = equity__v1__quote__pack(q, d->buf);
            struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
            if (event_base_once(fsr_loop_base(fsr_app_ctx_of(call)->loop), -1, EV_TIMEOUT,
                                on_cache_delay, d, &tv) != 0)
                free(d);
        } else {
            uint8_t *buf = fsr_call_alloc(call, len + 1);
            equity__v1__quote__pack(q, buf);
            cache_quote(cache, op->id, op->gen, buf, len);
        }
    }
    equity_v1_equity_service_get_quote_reply(call, q);
}

static void quote_from_db(quote_op *op)
{
    fsr_pg_pool *pool = pool_of(op->call);
    if (pool == NULL)
        return;
    const char *values[1] = { op->id };
    int rv = fsr_pg_query(pool, &eq_quote, 1, values, on_quote_row, op);
    if (rv != 0)
        fsr_call_fail_err(op->call, rv, "get quote");
}

/* The reply of MGET quote generation. */
static void on_quote_cached(const redisReply *reply, int status, void *arg)
{
    quote_op *op = arg;
    if (status == 0 && reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        const redisReply *qr = reply->element[0], *gr = reply->element[1];
        if (qr->type == REDIS_REPLY_STRING) {
            Equity__V1__Quote *q =
                equity__v1__quote__unpack(NULL, (size_t)qr->len, (const uint8_t *)qr->str);
            if (q != NULL) {
                equity_v1_equity_service_get_quote_reply(op->call, q);
                equity__v1__quote__free_unpacked(q, NULL);
                return;
            }
            FSR_WARN("cached quote of equity %s does not decode; reading the database", op->id);
        }
        op->gen = gr->type == REDIS_REPLY_STRING ? fsr_call_printf(op->call, "%s", gr->str) : "";
    } else if (status != 0) {
        FSR_WARN("quote cache of equity %s: %s; reading the database", op->id,
                 fsr_strerror(status));
    }
    quote_from_db(op);
}

void eq_get_quote(fsr_call *call, const Equity__V1__GetQuoteRequest *req)
{
    if (check_id(call, "id", req->id) != 0)
        return;
    quote_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    fsr_redis *cache = fsr_app_ctx_of(call)->redis;
    int rv = cache != NULL
                 ? fsr_redis_command(cache, on_quote_cached, op,
                                     "MGET " EQ_QUOTE_KEY_PREFIX "%s " EQ_QUOTE_GEN_PREFIX "%s",
                                     req->id, req->id)
                 : FSR_E_CLOSED;
    if (rv != 0)
        quote_from_db(op);
}

/* ---- GetAnalytics ------------------------------------------------------------------- */

typedef struct an_op {
    fsr_call *call;
    const char *id, *bench_id;
    const char *from, *to;
    fsr_an_basis basis;
    double rf;
    fsr_an_series s[2];
    int loaded;
} an_op;

void eq_split_adjust(const int32_t *pd, double *pc, size_t np, const int32_t *dd, double *da,
                     size_t nd, const int32_t *sd, const double *sr, size_t ns)
{
    for (size_t k = 0; k < ns; k++) {
        for (size_t i = 0; i < np && pd[i] < sd[k]; i++)
            pc[i] /= sr[k];
        for (size_t i = 0; i < nd && dd[i] < sd[k]; i++)
            da[i] /= sr[k];
    }
}

/*
 * Reads eq_series_data's rows into |s|, split-adjusted: a close (and a dividend per share)
 * dated before a split's ex-date is divided by the split's ratio, so the whole series is in
 * today's shares.  Returns 0, or -1 if the equity does not exist.
 */
static int series_from_rows(fsr_call *call, const fsr_pg_result *res, fsr_an_series *s)
{
    int rows = fsr_pg_result_rows(res);
    size_t np = 0, nd = 0, ns = 0;
    bool found = false;
    for (int i = 0; i < rows; i++) {
        char t = fsr_pg_result_getvalue(res, i, 0)[0];
        np += t == 'p';
        nd += t == 'd';
        ns += t == 's';
        found = found || t == 'e';
    }
    if (!found)
        return -1;
    int32_t *pd = fsr_call_alloc(call, sizeof(int32_t) * (np + 1));
    double *pc = fsr_call_alloc(call, sizeof(double) * (np + 1));
    int32_t *dd = fsr_call_alloc(call, sizeof(int32_t) * (nd + 1));
    double *da = fsr_call_alloc(call, sizeof(double) * (nd + 1));
    int32_t *sd = fsr_call_alloc(call, sizeof(int32_t) * (ns + 1));
    double *sr = fsr_call_alloc(call, sizeof(double) * (ns + 1));
    size_t ip = 0, id = 0, is = 0;
    for (int i = 0; i < rows; i++) {
        char t = fsr_pg_result_getvalue(res, i, 0)[0];
        int32_t day = 0;
        if (t == 'e' || eq_day_parse(fsr_pg_result_getvalue(res, i, 1), &day) != 0)
            continue;
        double v = strtod(fsr_pg_result_getvalue(res, i, 2), NULL);
        if (t == 'p') {
            pd[ip] = day;
            pc[ip++] = v;
        } else if (t == 'd') {
            dd[id] = day;
            da[id++] = v;
        } else if (t == 's') {
            sd[is] = day;
            sr[is++] = v;
        }
    }
    eq_split_adjust(pd, pc, ip, dd, da, id, sd, sr, is);
    s->days = pd;
    s->close = pc;
    s->n = ip;
    s->div_days = dd;
    s->div_amount = da;
    s->n_div = id;
    return 0;
}

static void an_compute(an_op *op)
{
    fsr_call *call = op->call;
    if (op->s[0].n < 2) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, op->from != NULL ? "from" : "to",
                            "the range holds %zu price%s of equity %s; at least two are needed",
                            op->s[0].n, op->s[0].n == 1 ? "" : "s", op->id);
        return;
    }
    static const eq_an_fields fields = { "from", "from", "benchmarkId", "benchmarkId",
                                         "benchmarkId" };
    Common__V1__SeriesMetrics *o =
        eq_metrics_dated(call, &op->s[0], op->bench_id != NULL ? &op->s[1] : NULL, op->basis,
                         op->rf, NULL, 0, &fields);
    if (o != NULL)
        equity_v1_equity_service_get_analytics_reply(call, o);
}

static void on_series_data(const fsr_pg_result *res, void *arg);

static int an_load(an_op *op, const char *id)
{
    fsr_pg_pool *pool = pool_of(op->call);
    if (pool == NULL)
        return 0;
    const char *values[3] = { id, op->from, op->to };
    int rv = fsr_pg_query(pool, &eq_series_data, 3, values, on_series_data, op);
    if (rv != 0)
        fsr_call_fail_err(op->call, rv, "get analytics");
    return rv;
}

static void on_series_data(const fsr_pg_result *res, void *arg)
{
    an_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(op->call, res, "get analytics");
        return;
    }
    int which = op->loaded++;
    if (series_from_rows(op->call, res, &op->s[which]) != 0) {
        if (which == 0)
            fsr_call_fail_field(op->call, FSR_NOT_FOUND, "id", "equity %s not found", op->id);
        else
            fsr_call_fail_field(op->call, FSR_NOT_FOUND, "benchmarkId", "equity %s not found",
                                op->bench_id);
        return;
    }
    if (which == 0 && op->bench_id != NULL) {
        an_load(op, op->bench_id);
        return;
    }
    an_compute(op);
}

void eq_get_analytics(fsr_call *call, const Equity__V1__GetAnalyticsRequest *req)
{
    an_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    if (check_id(call, "id", req->id) != 0 ||
        check_range(call, req->from, req->to, &op->from, &op->to) != 0 ||
        eq_basis_resolve(call, req->basis, &op->basis) != 0 ||
        eq_rf_resolve(call, req->risk_free_rate, &op->rf) != 0)
        return;
    if (req->benchmark_id[0] != '\0') {
        if (check_id(call, "benchmarkId", req->benchmark_id) != 0)
            return;
        op->bench_id = req->benchmark_id;
    }
    an_load(op, req->id);
}

/* ---- stored series for other features (GetCovariance) --------------------------------- */

typedef struct load_op {
    fsr_call *call;
    fsr_an_series *out;
    eq_series_cb cb;
    void *arg;
} load_op;

static void on_series_loaded(const fsr_pg_result *res, void *arg)
{
    load_op *op = arg;
    int st = fsr_pg_result_status(res);
    if (st != 0) {
        if (st == FSR_E_DB)
            FSR_ERROR("load series: SQLSTATE %s: %s", fsr_pg_result_sqlstate(res),
                      fsr_pg_result_message(res));
        op->cb(op->call, st, op->arg);
        return;
    }
    op->cb(op->call, series_from_rows(op->call, res, op->out) == 0 ? 0 : -ENOENT, op->arg);
}

int eq_series_load(fsr_call *call, const char *id, const char *from, const char *to,
                   fsr_an_series *out, eq_series_cb cb, void *arg)
{
    fsr_pg_pool *pool = fsr_app_ctx_of(call)->pg;
    if (pool == NULL)
        return FSR_E_CLOSED;
    load_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->out = out;
    op->cb = cb;
    op->arg = arg;
    const char *values[3] = { id, from, to };
    return fsr_pg_query(pool, &eq_series_data, 3, values, on_series_loaded, op);
}
