/* SPDX-License-Identifier: MIT */
/*
 * The equities resource over Postgres: CreateEquity, GetEquity, ListEquities, UpdateEquity,
 * and DeleteEquity (which asks the portfolio service whether the equity is held).
 */
#include "equity.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/handler.h"
#include "fsr/app.h"
#include "fsr/client.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/pg.h"
#include "fsr/validate.h"

#include "equity_v1.fsr.h"
#include "portfolio_v1.fsr.h"

/* Longest accepted values, in bytes. */
#define EQ_SYMBOL_MAX   32
#define EQ_EXCHANGE_MAX 16
#define EQ_NAME_MAX     200
#define EQ_SECTOR_MAX   100

/*
 * Timestamps are formatted in SQL as RFC 3339 UTC, so the text does not depend on the
 * session's DateStyle or TimeZone; fsr_pg_timestamp_parse() reads it back exactly.
 */
#define EQ_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* Every query returns these columns, in this order (see eq_from_row()). */
#define EQ_COLS                                                                                    \
    "id, symbol, name, exchange, currency, sector, coalesce(isin, ''), lot_size, " EQ_TS(          \
        "created_at") ", " EQ_TS("updated_at")
enum {
    COL_ID,
    COL_SYMBOL,
    COL_NAME,
    COL_EXCHANGE,
    COL_CURRENCY,
    COL_SECTOR,
    COL_ISIN,
    COL_LOT_SIZE,
    COL_CREATED_AT,
    COL_UPDATED_AT,
    COL_COUNT
};

static const fsr_pg_stmt eq_insert = {
    "eq_insert",
    "INSERT INTO equities (symbol, name, exchange, currency, sector, isin, lot_size)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7::integer) RETURNING " EQ_COLS,
};

static const fsr_pg_stmt eq_select = {
    "eq_select",
    "SELECT " EQ_COLS " FROM equities WHERE id = $1::uuid",
};

/*
 * Keyset paging in ListEquities' documented order (symbol, then exchange; the pair is
 * unique): the cursor is the last row's pair, and one row more than the page is fetched to
 * learn whether another page follows.  NULL parameters switch a filter off.
 */
static const fsr_pg_stmt eq_list = {
    "eq_list",
    "SELECT " EQ_COLS " FROM equities"
    " WHERE ($1::text IS NULL OR symbol = $1::text)"
    " AND ($2::text IS NULL OR sector = $2::text)"
    " AND ($3::text IS NULL OR exchange = $3::text)"
    " AND ($4::text IS NULL OR isin = $4::text)"
    " AND ($5::text IS NULL OR (symbol, exchange) > ($5::text, $6::text))"
    " ORDER BY symbol, exchange LIMIT $7::integer",
};

/* ---- helpers ------------------------------------------------------------------------ */

/* NULL for "", so that an empty filter or optional field becomes SQL NULL. */
static const char *nullif_empty(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* An ASCII upper-case copy of |s| in the call's arena. */
static char *upper_dup(fsr_call *call, const char *s)
{
    char *u = fsr_arena_strdup(fsr_call_arena(call), s);
    for (char *p = u; *p; p++) {
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    }
    return u;
}

/*
 * Copies row |row| of |res| (EQ_COLS) into a new Equity in the call's arena: the result is
 * only valid during the callback.  NULL if the row is not what the query promised.
 */
static Equity__V1__Equity *eq_from_row(fsr_call *call, const fsr_pg_result *res, int row)
{
    if (fsr_pg_result_cols(res) != COL_COUNT)
        return NULL;
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
    if (e->created_at == NULL || e->updated_at == NULL)
        return NULL;
    return e;
}

/* Finishes |call| after a failed statement: the cause goes to the log, never to the client. */
static void fail_db(fsr_call *call, const fsr_pg_result *res, const char *what)
{
    int st = fsr_pg_result_status(res);
    if (st == FSR_E_DB)
        FSR_ERROR("%s: SQLSTATE %s: %s", what, fsr_pg_result_sqlstate(res),
                  fsr_pg_result_message(res));
    fsr_call_fail_err(call, st, what);
}

/* The thread's pool, or NULL after finishing |call| with UNAVAILABLE. */
static fsr_pg_pool *pool_of(fsr_call *call)
{
    fsr_pg_pool *pool = fsr_app_ctx_of(call)->pg;
    if (pool == NULL)
        fsr_call_fail(call, FSR_UNAVAILABLE, "the equity database is unavailable");
    return pool;
}

/* Checks a currency code (create and update); finishes |call| and returns -1 if bad. */
static int check_currency(fsr_call *call, const char *currency)
{
    if (currency[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "currency", "is required");
        return -1;
    }
    if (strlen(currency) != 3 || strspn(currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "currency",
                            "must be 3 upper-case letters (ISO 4217)");
        return -1;
    }
    if (!fsr_currency_valid(currency)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "currency",
                            "is not a known ISO 4217 currency code");
        return -1;
    }
    return 0;
}

/* Checks a non-empty ISIN (create and update): its upper-case copy, or NULL (|call| failed). */
static const char *check_isin(fsr_call *call, const char *isin)
{
    char *u = upper_dup(call, isin);
    if (!fsr_isin_shaped(u)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "isin",
                            "must be 12 characters: a 2-letter country code, 9 letters or "
                            "digits and a check digit");
        return NULL;
    }
    if (!fsr_isin_valid(u)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "isin", "has a wrong check digit");
        return NULL;
    }
    return u;
}

/* ---- CreateEquity ------------------------------------------------------------------- */

typedef struct create_op {
    fsr_call *call;
    const char *symbol;
    const char *exchange;
    const char *isin; /* NULL when none */
} create_op;

static void on_created(const fsr_pg_result *res, void *arg)
{
    create_op *op = arg;
    int st = fsr_pg_result_status(res);
    if (st == FSR_E_UNIQUE) {
        /* Two unique keys: tell the client which one it hit. */
        if (op->isin != NULL && strstr(fsr_pg_result_message(res), "equities_isin_key") != NULL)
            fsr_call_fail(op->call, FSR_ALREADY_EXISTS, "an equity with ISIN %s already exists",
                          op->isin);
        else
            fsr_call_fail(op->call, FSR_ALREADY_EXISTS, "equity %s already exists on exchange %s",
                          op->symbol, op->exchange);
        return;
    }
    if (st != 0) {
        fail_db(op->call, res, "create equity");
        return;
    }
    Equity__V1__Equity *e = fsr_pg_result_rows(res) == 1 ? eq_from_row(op->call, res, 0) : NULL;
    if (e == NULL) {
        FSR_ERROR("create equity: unexpected result shape");
        fsr_call_fail(op->call, FSR_INTERNAL, "internal error");
        return;
    }
    FSR_INFO("equity %s created (%s on %s)", e->id, e->symbol, e->exchange);
    equity_v1_equity_service_create_equity_reply(op->call, e);
}

void eq_create_equity(fsr_call *call, const Equity__V1__CreateEquityRequest *req)
{
    if (fsr_check_text(call, "symbol", req->symbol, true, EQ_SYMBOL_MAX, false) != 0 ||
        fsr_check_text(call, "name", req->name, true, EQ_NAME_MAX, true) != 0 ||
        fsr_check_text(call, "exchange", req->exchange, true, EQ_EXCHANGE_MAX, false) != 0)
        return;

    const char *currency = req->currency;
    if (check_currency(call, currency) != 0)
        return;
    if (fsr_check_text(call, "sector", req->sector, true, EQ_SECTOR_MAX, true) != 0)
        return;

    const char *isin = NULL;
    if (req->isin[0] != '\0' && (isin = check_isin(call, req->isin)) == NULL)
        return;
    if (req->lot_size < 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "lotSize", "must be >= 0 (0 means 1)");
        return;
    }

    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    create_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->symbol = upper_dup(call, req->symbol);
    op->exchange = req->exchange;
    op->isin = isin;
    const char *lot = fsr_call_printf(call, "%d", req->lot_size == 0 ? 1 : req->lot_size);
    const char *values[7] = {
        op->symbol, req->name, req->exchange, currency, req->sector, isin, lot
    };
    int rv = fsr_pg_query(pool, &eq_insert, 7, values, on_created, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "create equity");
}

/* ---- GetEquity ---------------------------------------------------------------------- */

typedef struct get_op {
    fsr_call *call;
    const char *id;
} get_op;

static void on_got(const fsr_pg_result *res, void *arg)
{
    get_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(op->call, res, "get equity");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail(op->call, FSR_NOT_FOUND, "equity %s not found", op->id);
        return;
    }
    Equity__V1__Equity *e = eq_from_row(op->call, res, 0);
    if (e == NULL) {
        FSR_ERROR("get equity: unexpected result shape");
        fsr_call_fail(op->call, FSR_INTERNAL, "internal error");
        return;
    }
    equity_v1_equity_service_get_equity_reply(op->call, e);
}

void eq_get_equity(fsr_call *call, const Equity__V1__GetEquityRequest *req)
{
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    get_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    const char *values[1] = { req->id };
    int rv = fsr_pg_query(pool, &eq_select, 1, values, on_got, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "get equity");
}

/* ---- ListEquities ------------------------------------------------------------------- */

typedef struct list_op {
    fsr_call *call;
    int page_size;
} list_op;

static void on_listed(const fsr_pg_result *res, void *arg)
{
    list_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(call, res, "list equities");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    bool more = rows > op->page_size;
    if (more)
        rows = op->page_size;

    Equity__V1__ListEquitiesResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    equity__v1__list_equities_response__init(resp);
    resp->equities = fsr_call_alloc(call, sizeof(*resp->equities) * (size_t)(rows > 0 ? rows : 1));
    for (int i = 0; i < rows; i++) {
        Equity__V1__Equity *e = eq_from_row(call, res, i);
        if (e == NULL) {
            FSR_ERROR("list equities: unexpected result shape");
            fsr_call_fail(call, FSR_INTERNAL, "internal error");
            return;
        }
        resp->equities[i] = e;
    }
    resp->n_equities = (size_t)rows;
    if (more) {
        const Equity__V1__Equity *last = resp->equities[rows - 1];
        const char *cursor[2] = { last->symbol, last->exchange };
        char *tok = fsr_page_token_encode(fsr_call_arena(call), cursor, 2);
        if (tok == NULL) {
            FSR_ERROR("list equities: cannot encode the page cursor");
            fsr_call_fail(call, FSR_INTERNAL, "internal error");
            return;
        }
        resp->next_page_token = tok;
    }
    equity_v1_equity_service_list_equities_reply(call, resp);
}

void eq_list_equities(fsr_call *call, const Equity__V1__ListEquitiesRequest *req)
{
    int page_size;
    if (fsr_page_size_resolve(req->page_size, &page_size) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "pageSize", "must be between 0 and %d",
                            FSR_PAGE_SIZE_MAX);
        return;
    }
    if (fsr_check_text(call, "symbol", req->symbol, false, EQ_SYMBOL_MAX, false) != 0 ||
        fsr_check_text(call, "sector", req->sector, false, EQ_SECTOR_MAX, true) != 0 ||
        fsr_check_text(call, "exchange", req->exchange, false, EQ_EXCHANGE_MAX, false) != 0 ||
        fsr_check_text(call, "isin", req->isin, false, 12, false) != 0)
        return;

    /* The cursor: (symbol, exchange) of the previous page's last row. */
    char *cursor[2] = { NULL, NULL };
    if (req->page_token[0] != '\0') {
        if (fsr_page_token_decode(fsr_call_arena(call), req->page_token, cursor, 2) != 0 ||
            fsr_text_check(cursor[0], EQ_SYMBOL_MAX, false, NULL) != 0 ||
            fsr_text_check(cursor[1], EQ_EXCHANGE_MAX, false, NULL) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "pageToken",
                                "is not a token from a previous ListEquities response");
            return;
        }
    }

    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    list_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->page_size = page_size;
    const char *symbol = req->symbol[0] != '\0' ? upper_dup(call, req->symbol) : NULL;
    const char *isin = req->isin[0] != '\0' ? upper_dup(call, req->isin) : NULL;
    const char *values[7] = {
        symbol,
        nullif_empty(req->sector),
        nullif_empty(req->exchange),
        isin,
        cursor[0],
        cursor[1],
        fsr_call_printf(call, "%d", page_size + 1),
    };
    int rv = fsr_pg_query(pool, &eq_list, 7, values, on_listed, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "list equities");
}

/* ---- UpdateEquity ------------------------------------------------------------------- */

/*
 * One statement: NULL parameters keep the column; isin "" clears it.  The unique keys
 * (exchange, symbol) and isin judge the merged row.
 */
static const fsr_pg_stmt eq_update = {
    "eq_update",
    "UPDATE equities SET symbol = coalesce($2::text, symbol), name = coalesce($3::text, name),"
    " exchange = coalesce($4::text, exchange), currency = coalesce($5::text, currency),"
    " sector = coalesce($6::text, sector),"
    " isin = CASE WHEN $7::text IS NULL THEN isin ELSE nullif($7::text, '') END,"
    " lot_size = coalesce($8::integer, lot_size), updated_at = now()"
    " WHERE id = $1::uuid RETURNING " EQ_COLS,
};

typedef struct update_op {
    fsr_call *call;
    const char *id;
    const char *symbol, *exchange, *isin; /* as requested; NULL when unchanged */
    Equity__V1__Equity *e;
} update_op;

/*
 * Publishes equity.updated {"id"} on the shared Redis after an update (symbol, lot size,
 * currency...): the portfolio service drops its cached market data of the equity.  Fire and
 * forget; a lost event costs at most the cache's freshness window (market_cache.c).
 */
static void publish_equity_updated(fsr_call *call, const char *id)
{
    fsr_redis *shared = fsr_app_ctx_of(call)->shared;
    if (shared == NULL ||
        fsr_redis_command(shared, NULL, NULL, "PUBLISH equity.updated {\"id\":\"%s\"}", id) != 0)
        FSR_WARN("equity.updated for equity %s not published", id);
}

static void on_update_invalidated(const redisReply *reply, int status, void *arg)
{
    (void)reply;
    update_op *op = arg;
    if (status != 0)
        FSR_WARN("invalidate quote of equity %s: %s", op->id, fsr_strerror(status));
    publish_equity_updated(op->call, op->e->id);
    equity_v1_equity_service_update_equity_reply(op->call, op->e);
}

static void on_updated(const fsr_pg_result *res, void *arg)
{
    update_op *op = arg;
    fsr_call *call = op->call;
    int st = fsr_pg_result_status(res);
    if (st == FSR_E_UNIQUE) {
        if (strstr(fsr_pg_result_message(res), "equities_isin_key") != NULL)
            fsr_call_fail(call, FSR_ALREADY_EXISTS, "an equity with ISIN %s already exists",
                          op->isin != NULL ? op->isin : "");
        else if (op->symbol != NULL && op->exchange != NULL)
            fsr_call_fail(call, FSR_ALREADY_EXISTS, "equity %s already exists on exchange %s",
                          op->symbol, op->exchange);
        else
            fsr_call_fail(call, FSR_ALREADY_EXISTS,
                          "another equity has this symbol on this exchange");
        return;
    }
    if (st != 0) {
        fail_db(call, res, "update equity");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail_field(call, FSR_NOT_FOUND, "id", "equity %s not found", op->id);
        return;
    }
    op->e = eq_from_row(call, res, 0);
    if (op->e == NULL) {
        FSR_ERROR("update equity: unexpected result shape");
        fsr_call_fail(call, FSR_INTERNAL, "internal error");
        return;
    }
    FSR_INFO("equity %s updated (%s on %s)", op->e->id, op->e->symbol, op->e->exchange);
    /* A cached quote carries the symbol and currency: drop it before answering. */
    int rv = eq_quote_invalidate(fsr_app_ctx_of(call), op->id, on_update_invalidated, op);
    if (rv != 0) {
        FSR_WARN("invalidate quote of equity %s: %s", op->id, fsr_strerror(rv));
        publish_equity_updated(call, op->e->id);
        equity_v1_equity_service_update_equity_reply(call, op->e);
    }
}

void eq_update_equity(fsr_call *call, const Equity__V1__UpdateEquityRequest *req)
{
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    /* v[0] id, then symbol, name, exchange, currency, sector, isin, lot size (NULL: keep). */
    const char *v[8] = { req->id };
    if (req->symbol != NULL) {
        if (fsr_check_text(call, "symbol", req->symbol->value, true, EQ_SYMBOL_MAX, false) != 0)
            return;
        v[1] = upper_dup(call, req->symbol->value);
    }
    if (req->name != NULL) {
        if (fsr_check_text(call, "name", req->name->value, true, EQ_NAME_MAX, true) != 0)
            return;
        v[2] = req->name->value;
    }
    if (req->exchange != NULL) {
        if (fsr_check_text(call, "exchange", req->exchange->value, true, EQ_EXCHANGE_MAX, false) !=
            0)
            return;
        v[3] = req->exchange->value;
    }
    if (req->currency != NULL) {
        if (check_currency(call, req->currency->value) != 0)
            return;
        v[4] = req->currency->value;
    }
    if (req->sector != NULL) {
        if (fsr_check_text(call, "sector", req->sector->value, true, EQ_SECTOR_MAX, true) != 0)
            return;
        v[5] = req->sector->value;
    }
    if (req->isin != NULL) {
        v[6] = "";
        if (req->isin->value[0] != '\0' && (v[6] = check_isin(call, req->isin->value)) == NULL)
            return;
    }
    if (req->lot_size != NULL) {
        if (req->lot_size->value < 1) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "lotSize", "must be >= 1");
            return;
        }
        v[7] = fsr_call_printf(call, "%d", req->lot_size->value);
    }
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    update_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    op->symbol = v[1];
    op->exchange = v[3];
    op->isin = v[6];
    int rv = fsr_pg_query(pool, &eq_update, 8, v, on_updated, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "update equity");
}

/* ---- DeleteEquity ------------------------------------------------------------------- */

/*
 * The equity must not be held in any portfolio, which only the portfolio service knows:
 * DeleteEquity asks portfolio.v1.HoldingsService/CountHolders first and deletes only on an
 * answer of 0.  If the portfolio service cannot answer, nothing is deleted (UNAVAILABLE):
 * refusing is safe, deleting a held instrument is not.  The check and the delete are not
 * atomic across the two databases: a constituent added between them would outlive the
 * equity (the portfolio service looks equities up when it adds one, so the window is the
 * length of this call).  The delete cascades to prices, dividends and splits (foreign keys
 * ON DELETE CASCADE) in one statement, then the cached quote is invalidated.
 */
static const fsr_pg_stmt eq_exists = {
    "eq_exists",
    "SELECT 1 FROM equities WHERE id = $1::uuid",
};

static const fsr_pg_stmt eq_delete = {
    "eq_delete",
    "DELETE FROM equities WHERE id = $1::uuid RETURNING id",
};

#define EQ_PORTFOLIO_TIMEOUT_MS 2000

/*
 * Per loop thread: the channel to the portfolio service (PORTFOLIO_SERVICE_ADDR, default
 * localhost:8003; of a comma-separated list the first), opened on first use, freed by
 * eq_thread_dispose().  The same shape as lib/jobs.c's owner channels.
 */
typedef struct eq_tls {
    fsr_loop *loop;
    fsr_channel *portfolio;
} eq_tls;

static __thread eq_tls *eq_thread;

void eq_thread_dispose(fsr_app_ctx *ctx)
{
    (void)ctx;
    eq_watch_thread_dispose();
    eq_tls *t = eq_thread;
    if (t == NULL)
        return;
    eq_thread = NULL;
    fsr_channel_free(t->portfolio);
    free(t);
}

static fsr_channel *portfolio_channel(fsr_loop *loop)
{
    if (eq_thread == NULL) {
        eq_thread = fsr_xcalloc(1, sizeof(*eq_thread));
        eq_thread->loop = loop;
    }
    if (eq_thread->loop != loop) /* one loop per thread: never true in a service */
        return NULL;
    if (eq_thread->portfolio == NULL) {
        const char *list = getenv("PORTFOLIO_SERVICE_ADDR");
        if (list == NULL || list[0] == '\0')
            list = "localhost:8003";
        while (*list == ' ')
            list++;
        char target[256];
        snprintf(target, sizeof(target), "%.*s", (int)strcspn(list, ", "), list);
        if (fsr_channel_new(loop, target, NULL, &eq_thread->portfolio) != 0) {
            FSR_ERROR("DeleteEquity: bad PORTFOLIO_SERVICE_ADDR '%s'", target);
            return NULL;
        }
    }
    return eq_thread->portfolio;
}

static void fail_no_portfolio(fsr_call *call)
{
    fsr_call_fail_dependency(call, "portfolio",
                             "portfolio service unavailable, cannot check holdings");
}

typedef struct delete_op {
    fsr_call *call;
    const char *id;
} delete_op;

static void on_delete_invalidated(const redisReply *reply, int status, void *arg)
{
    (void)reply;
    delete_op *op = arg;
    if (status != 0)
        FSR_WARN("invalidate quote of equity %s: %s", op->id, fsr_strerror(status));
    Google__Protobuf__Empty *e = fsr_call_alloc(op->call, sizeof(*e));
    google__protobuf__empty__init(e);
    equity_v1_equity_service_delete_equity_reply(op->call, e);
}

static void on_deleted(const fsr_pg_result *res, void *arg)
{
    delete_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(op->call, res, "delete equity");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail_field(op->call, FSR_NOT_FOUND, "id", "equity %s not found", op->id);
        return;
    }
    FSR_INFO("equity %s deleted with its prices, dividends and splits", op->id);
    int rv = eq_quote_invalidate(fsr_app_ctx_of(op->call), op->id, on_delete_invalidated, op);
    if (rv != 0) {
        FSR_WARN("invalidate quote of equity %s: %s", op->id, fsr_strerror(rv));
        on_delete_invalidated(NULL, 0, op);
    }
}

static void on_holders(const fsr_result *res, const Portfolio__V1__CountHoldersResponse *resp,
                       void *arg)
{
    delete_op *op = arg;
    fsr_call *call = op->call;
    if (res->status.code != FSR_OK || resp == NULL) {
        /* Whatever the reason (down, UNIMPLEMENTED, deadline), the holdings are unknown. */
        FSR_WARN("DeleteEquity %s: CountHolders answered %s: %s", op->id,
                 fsr_code_name(res->status.code),
                 res->status.message != NULL ? res->status.message : "");
        fail_no_portfolio(call);
        return;
    }
    if (resp->portfolios > 0) {
        fsr_call_fail(call, FSR_FAILED_PRECONDITION,
                      "equity %s is held in %lld portfolio%s; remove it from them first", op->id,
                      (long long)resp->portfolios, resp->portfolios == 1 ? "" : "s");
        return;
    }
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    const char *values[1] = { op->id };
    int rv = fsr_pg_query(pool, &eq_delete, 1, values, on_deleted, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "delete equity");
}

static void on_delete_exists(const fsr_pg_result *res, void *arg)
{
    delete_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(call, res, "delete equity");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail_field(call, FSR_NOT_FOUND, "id", "equity %s not found", op->id);
        return;
    }
    fsr_channel *ch = portfolio_channel(fsr_app_ctx_of(call)->loop);
    if (ch == NULL) {
        fail_no_portfolio(call);
        return;
    }
    Portfolio__V1__CountHoldersRequest *req = fsr_call_alloc(call, sizeof(*req));
    portfolio__v1__count_holders_request__init(req);
    req->instrument_type = COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY;
    req->instrument_id = fsr_arena_strdup(fsr_call_arena(call), op->id);
    fsr_call_opts opts = {
        .timeout_ms = EQ_PORTFOLIO_TIMEOUT_MS, /* capped by our caller's deadline */
        .parent = call,
    };
    int rv = portfolio_v1_holdings_service_count_holders(ch, req, &opts, on_holders, op);
    if (rv != 0) {
        FSR_WARN("DeleteEquity %s: cannot call CountHolders: %s", op->id, fsr_strerror(rv));
        fail_no_portfolio(call);
    }
}

void eq_delete_equity(fsr_call *call, const Equity__V1__DeleteEquityRequest *req)
{
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    delete_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    const char *values[1] = { req->id };
    int rv = fsr_pg_query(pool, &eq_exists, 1, values, on_delete_exists, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "delete equity");
}
