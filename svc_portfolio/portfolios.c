/* SPDX-License-Identifier: MIT */
/* The portfolios resource: CreatePortfolio, GetPortfolio and ListPortfolios over Postgres. */
#include "portfolio.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsr/handler.h"
#include "fsr/app.h"
#include "fsr/json.h"
#include "fsr/log.h"
#include "fsr/pg.h"
#include "fsr/validate.h"

#include "portfolio_v1.fsr.h"

/* Limits of a portfolio. */
#define PF_NAME_MAX    200
#define PF_TARGETS_MAX 1000
#define PF_BENCH_MAX   100
/* Tolerance for weights that must sum to (at most) 1, as doubles from JSON rarely add up. */
#define PF_WEIGHT_EPS 1e-9

/* Timestamps as RFC 3339 UTC, whatever the session's DateStyle and TimeZone. */
#define PF_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/*
 * Every query returns these columns, in this order (see pf_from_row()).  cash travels as
 * text (exact); created_at (microseconds, UTC) doubles as the list cursor.
 */
#define PF_COLS                                                                                    \
    "id, coalesce(client_id::text, ''), name, base_currency, cash::text, targets::text, "          \
    "coalesce(benchmark::text, ''), version, " PF_TS("created_at") ", " PF_TS("updated_at")
enum {
    COL_ID,
    COL_CLIENT_ID,
    COL_NAME,
    COL_BASE_CURRENCY,
    COL_CASH,
    COL_TARGETS,
    COL_BENCHMARK,
    COL_VERSION,
    COL_CREATED_AT,
    COL_UPDATED_AT,
    COL_COUNT
};

static const fsr_pg_stmt pf_insert = {
    "pf_insert",
    "INSERT INTO portfolios (client_id, name, base_currency, cash, targets, benchmark)"
    " VALUES ($1::uuid, $2, $3, $4::numeric, $5::jsonb, $6::jsonb) RETURNING " PF_COLS,
};

/* The audit row of a create; detail repeats what was created (cash as its exact text). */
static const fsr_pg_stmt pf_audit_create = {
    "pf_audit_create",
    "INSERT INTO audit_log (actor, request_id, action, entity, entity_id, detail)"
    " VALUES ($1, $2, 'portfolio.create', 'portfolio', $3, jsonb_build_object('name', $4::text,"
    " 'baseCurrency', $5::text, 'cash', $6::text, 'version', 1))",
};

/* Another client's portfolio is NOT_FOUND, exactly like a missing one (portfolio.proto). */
static const fsr_pg_stmt pf_select = {
    "pf_select",
    "SELECT " PF_COLS " FROM portfolios WHERE id = $1::uuid"
    " AND ($2::uuid IS NULL OR client_id = $2::uuid)",
};

/*
 * Keyset paging in creation order (created_at, then id for rows created in the same
 * microsecond): one row more than the page is fetched to learn whether another page
 * follows.  $1 scopes to the caller, $2 is the request's client_id filter; both apply.
 */
static const fsr_pg_stmt pf_list = {
    "pf_list",
    "SELECT " PF_COLS " FROM portfolios"
    " WHERE ($1::uuid IS NULL OR client_id = $1::uuid)"
    " AND ($2::uuid IS NULL OR client_id = $2::uuid)"
    " AND ($3::timestamptz IS NULL OR (created_at, id) > ($3::timestamptz, $4::uuid))"
    " ORDER BY created_at, id LIMIT $5::integer",
};

/* ---- helpers ------------------------------------------------------------------------ */

/* Merges the stored JSON of one field (targets, benchmark) into |p|; -1 if it is corrupt. */
static int merge_json(fsr_call *call, Portfolio__V1__Portfolio *p, const char *field,
                      const fsr_pg_result *res, int row, int col)
{
    fsr_json_error err;
    const char *json = fsr_pg_result_getvalue(res, row, col);
    size_t len = (size_t)fsr_pg_result_getlength(res, row, col);
    if (fsr_json_merge_pb(&p->base, field, json, len, fsr_arena_pb_allocator(fsr_call_arena(call)),
                          &err) != 0) {
        FSR_ERROR("portfolio %s: stored %s unreadable: %s: %s", p->id, field, err.field,
                  err.message);
        return -1;
    }
    return 0;
}

/*
 * Copies row |row| (PF_COLS) into a new Portfolio in the call's arena: the result is only
 * valid during the callback.  NULL if the row is not what the query promised (or its stored
 * JSON no longer parses).
 */
static Portfolio__V1__Portfolio *pf_from_row(fsr_call *call, const fsr_pg_result *res, int row)
{
    if (fsr_pg_result_cols(res) != COL_COUNT)
        return NULL;
    Portfolio__V1__Portfolio *p = fsr_call_alloc(call, sizeof(*p));
    portfolio__v1__portfolio__init(p);
    p->id = fsr_pg_col_dup(call, res, row, COL_ID);
    p->client_id = fsr_pg_col_dup(call, res, row, COL_CLIENT_ID);
    p->name = fsr_pg_col_dup(call, res, row, COL_NAME);
    p->base_currency = fsr_pg_col_dup(call, res, row, COL_BASE_CURRENCY);
    p->cash = fsr_pg_col_dup(call, res, row, COL_CASH);
    p->version = (int32_t)strtol(fsr_pg_result_getvalue(res, row, COL_VERSION), NULL, 10);
    p->created_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, COL_CREATED_AT));
    p->updated_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, COL_UPDATED_AT));
    if (p->created_at == NULL || p->updated_at == NULL)
        return NULL;
    if (merge_json(call, p, "targets", res, row, COL_TARGETS) != 0)
        return NULL;
    if (!fsr_pg_result_isnull(res, row, COL_BENCHMARK) &&
        fsr_pg_result_getlength(res, row, COL_BENCHMARK) > 0 &&
        merge_json(call, p, "benchmark", res, row, COL_BENCHMARK) != 0)
        return NULL;
    return p;
}

static void fail_db(fsr_call *call, const fsr_pg_result *res, const char *what)
{
    int st = fsr_pg_result_status(res);
    if (st == FSR_E_DB)
        FSR_ERROR("%s: SQLSTATE %s: %s", what, fsr_pg_result_sqlstate(res),
                  fsr_pg_result_message(res));
    fsr_call_fail_err(call, st, what);
}

static void fail_shape(fsr_call *call, const char *what)
{
    FSR_ERROR("%s: unexpected result shape", what);
    fsr_call_fail(call, FSR_INTERNAL, "internal error");
}

static fsr_pg_pool *pool_of(fsr_call *call)
{
    fsr_pg_pool *pool = fsr_app_ctx_of(call)->pg;
    if (pool == NULL)
        fsr_call_fail(call, FSR_UNAVAILABLE, "the portfolio database is unavailable");
    return pool;
}

/* A malloc()ed JSON text moved into the call's arena (NULL stays NULL). */
static const char *json_to_arena(fsr_call *call, char *json)
{
    if (json == NULL)
        return NULL;
    const char *copy = fsr_arena_strdup(fsr_call_arena(call), json);
    free(json);
    return copy;
}

/* ---- validation of targets and benchmark ------------------------------------------- */

#define FAIL_AT(call, fmt_field, idx, ...)                                                         \
    fsr_call_fail_field((call), FSR_INVALID_ARGUMENT, fsr_call_printf((call), fmt_field, (idx)),   \
                        __VA_ARGS__)

static bool weight_ok(double w)
{
    return w >= 0.0 && w <= 1.0; /* false for NaN */
}

/* The asset class an instrument type belongs to. */
static Common__V1__AssetClass__Value class_of(Common__V1__InstrumentType__Value t)
{
    return t == COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY
               ? COMMON__V1__ASSET_CLASS__VALUE__EQUITY
               : COMMON__V1__ASSET_CLASS__VALUE__FIXED_INCOME;
}

static bool is_instrument(Common__V1__InstrumentType__Value t)
{
    return t == COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY ||
           t == COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND;
}

static bool is_class(Common__V1__AssetClass__Value c)
{
    return c == COMMON__V1__ASSET_CLASS__VALUE__EQUITY ||
           c == COMMON__V1__ASSET_CLASS__VALUE__FIXED_INCOME ||
           c == COMMON__V1__ASSET_CLASS__VALUE__CASH;
}

/*
 * Instrument targets name an EQUITY or BOND by UUID (asset class derived, or matching);
 * asset-class targets name only a class.  Each weight is in [0, 1], nothing is targeted
 * twice and the weights sum to at most 1 (the rest is cash).  Returns -1 after failing.
 */
static int check_targets(fsr_call *call, const Portfolio__V1__CreatePortfolioRequest *req)
{
    if (req->n_targets > PF_TARGETS_MAX) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "targets", "at most %d targets allowed",
                            PF_TARGETS_MAX);
        return -1;
    }
    double sum = 0.0;
    for (size_t i = 0; i < req->n_targets; i++) {
        const Portfolio__V1__Target *t = req->targets[i];
        if (!weight_ok(t->weight)) {
            FAIL_AT(call, "targets[%zu].weight", i, "must be in [0, 1]");
            return -1;
        }
        sum += t->weight;
        if (t->instrument_type != COMMON__V1__INSTRUMENT_TYPE__VALUE__INSTRUMENT_TYPE_UNSPECIFIED) {
            if (!is_instrument(t->instrument_type)) {
                FAIL_AT(call, "targets[%zu].instrumentType", i, "must be EQUITY or BOND");
                return -1;
            }
            if (!fsr_uuid_valid(t->instrument_id)) {
                FAIL_AT(call, "targets[%zu].instrumentId", i, "must be a UUID");
                return -1;
            }
            if (t->asset_class != COMMON__V1__ASSET_CLASS__VALUE__ASSET_CLASS_UNSPECIFIED &&
                t->asset_class != class_of(t->instrument_type)) {
                FAIL_AT(call, "targets[%zu].assetClass", i,
                        "must match instrumentType (EQUITY: EQUITY, BOND: FIXED_INCOME)");
                return -1;
            }
        } else {
            if (t->instrument_id[0] != '\0') {
                FAIL_AT(call, "targets[%zu].instrumentType", i,
                        "is required with instrumentId (EQUITY or BOND)");
                return -1;
            }
            if (!is_class(t->asset_class)) {
                FAIL_AT(call, "targets[%zu].assetClass", i,
                        "must be EQUITY, FIXED_INCOME or CASH for an asset-class target");
                return -1;
            }
        }
        for (size_t j = 0; j < i; j++) {
            const Portfolio__V1__Target *u = req->targets[j];
            bool same =
                is_instrument(t->instrument_type)
                    ? u->instrument_type == t->instrument_type &&
                          strcasecmp(u->instrument_id, t->instrument_id) == 0
                    : !is_instrument(u->instrument_type) && u->asset_class == t->asset_class;
            if (same) {
                FAIL_AT(call, "targets[%zu]", i, "targets the same as targets[%zu]", j);
                return -1;
            }
        }
    }
    if (sum > 1.0 + PF_WEIGHT_EPS) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "targets",
                            "weights must sum to at most 1 (the rest is cash)");
        return -1;
    }
    return 0;
}

/*
 * A benchmark has 1..PF_BENCH_MAX components: instruments (EQUITY or BOND by UUID) or cash
 * (no type, no id, class CASH or absent), weights in [0, 1] summing to 1.
 */
static int check_benchmark(fsr_call *call, const Portfolio__V1__Benchmark *b)
{
    if (b->n_components == 0 || b->n_components > PF_BENCH_MAX) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "benchmark.components",
                            "must have 1 to %d components", PF_BENCH_MAX);
        return -1;
    }
    double sum = 0.0;
    for (size_t i = 0; i < b->n_components; i++) {
        const Portfolio__V1__BenchmarkComponent *c = b->components[i];
        if (!weight_ok(c->weight)) {
            FAIL_AT(call, "benchmark.components[%zu].weight", i, "must be in [0, 1]");
            return -1;
        }
        sum += c->weight;
        if (c->instrument_type != COMMON__V1__INSTRUMENT_TYPE__VALUE__INSTRUMENT_TYPE_UNSPECIFIED) {
            if (!is_instrument(c->instrument_type)) {
                FAIL_AT(call, "benchmark.components[%zu].instrumentType", i,
                        "must be EQUITY or BOND (absent for cash)");
                return -1;
            }
            if (!fsr_uuid_valid(c->instrument_id)) {
                FAIL_AT(call, "benchmark.components[%zu].instrumentId", i, "must be a UUID");
                return -1;
            }
            if (c->asset_class != COMMON__V1__ASSET_CLASS__VALUE__ASSET_CLASS_UNSPECIFIED &&
                !is_class(c->asset_class)) {
                FAIL_AT(call, "benchmark.components[%zu].assetClass", i,
                        "must be EQUITY, FIXED_INCOME or CASH");
                return -1;
            }
        } else {
            if (c->instrument_id[0] != '\0') {
                FAIL_AT(call, "benchmark.components[%zu].instrumentType", i,
                        "is required with instrumentId (EQUITY or BOND)");
                return -1;
            }
            if (c->asset_class != COMMON__V1__ASSET_CLASS__VALUE__ASSET_CLASS_UNSPECIFIED &&
                c->asset_class != COMMON__V1__ASSET_CLASS__VALUE__CASH) {
                FAIL_AT(call, "benchmark.components[%zu].assetClass", i,
                        "must be CASH (or absent) for a cash component");
                return -1;
            }
        }
    }
    if (fabs(sum - 1.0) > PF_WEIGHT_EPS) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "benchmark.components",
                            "weights must sum to 1");
        return -1;
    }
    return 0;
}

/* ---- CreatePortfolio ---------------------------------------------------------------- */

/*
 * The portfolio row and its audit row are written in one transaction: BEGIN, INSERT
 * portfolio, INSERT audit_log, COMMIT, each step in the previous one's callback.  Any
 * failure rolls back, so neither row exists without the other.
 */
typedef struct create_op {
    fsr_call *call;
    fsr_pg_conn *conn; /* pinned between BEGIN and COMMIT/ROLLBACK */
    const char *caller;
    const char *values[6];
    Portfolio__V1__Portfolio *p;
} create_op;

static void create_abort(create_op *op)
{
    fsr_pg_tx_rollback(op->conn, NULL, NULL);
    op->conn = NULL;
}

static void on_create_committed(const fsr_pg_result *res, void *arg)
{
    create_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(op->call, res, "create portfolio: commit");
        return;
    }
    FSR_INFO("portfolio %s created", op->p->id);
    portfolio_v1_portfolio_service_create_portfolio_reply(op->call, op->p);
}

static void on_create_audited(const fsr_pg_result *res, void *arg)
{
    create_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        create_abort(op);
        fail_db(op->call, res, "create portfolio: audit");
        return;
    }
    fsr_pg_conn *conn = op->conn;
    op->conn = NULL;
    int rv = fsr_pg_tx_commit(conn, on_create_committed, op);
    if (rv != 0)
        fsr_call_fail_err(op->call, rv, "create portfolio: commit");
}

static void on_create_inserted(const fsr_pg_result *res, void *arg)
{
    create_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        create_abort(op);
        fail_db(op->call, res, "create portfolio");
        return;
    }
    op->p = fsr_pg_result_rows(res) == 1 ? pf_from_row(op->call, res, 0) : NULL;
    if (op->p == NULL) {
        create_abort(op);
        fail_shape(op->call, "create portfolio");
        return;
    }
    const char *audit[6] = {
        op->caller,  fsr_call_request_id(op->call), op->p->id,
        op->p->name, op->p->base_currency,          op->p->cash,
    };
    int rv = fsr_pg_conn_query(op->conn, &pf_audit_create, 6, audit, on_create_audited, op);
    if (rv != 0) {
        create_abort(op);
        fsr_call_fail_err(op->call, rv, "create portfolio: audit");
    }
}

static void on_create_begun(fsr_pg_conn *conn, int status, void *arg)
{
    create_op *op = arg;
    if (status != 0) {
        fsr_call_fail_err(op->call, status, "create portfolio: begin");
        return;
    }
    op->conn = conn;
    int rv = fsr_pg_conn_query(conn, &pf_insert, 6, op->values, on_create_inserted, op);
    if (rv != 0) {
        create_abort(op);
        fsr_call_fail_err(op->call, rv, "create portfolio");
    }
}

void pf_create_portfolio(fsr_call *call, const Portfolio__V1__CreatePortfolioRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0)
        return;

    const char *why = NULL;
    if (req->name[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "name", "is required");
        return;
    }
    if (fsr_text_check(req->name, PF_NAME_MAX, true, &why) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "name", "%s", why);
        return;
    }
    const char *ccy = req->base_currency;
    if (ccy[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "baseCurrency", "is required");
        return;
    }
    if (!fsr_currency_valid(ccy)) {
        bool shaped = strlen(ccy) == 3 && strspn(ccy, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3;
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "baseCurrency", "%s",
                            shaped ? "is not a known ISO 4217 currency code"
                                   : "must be 3 upper-case letters (ISO 4217)");
        return;
    }
    const char *cash = req->cash[0] != '\0' ? req->cash : "0";
    int sign = 0;
    if (fsr_decimal_check(cash, &sign, &why) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "cash", "%s", why);
        return;
    }
    if (sign < 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "cash", "must be >= 0");
        return;
    }
    if (check_targets(call, req) != 0)
        return;
    if (req->benchmark != NULL && check_benchmark(call, req->benchmark) != 0)
        return;

    /* Targets and benchmark are stored as their proto3 JSON. */
    char *json = NULL;
    fsr_json_error jerr;
    if (fsr_pb_field_to_json(&req->base, "targets", NULL, &json, NULL, &jerr) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "targets", "%s", jerr.message);
        return;
    }
    const char *targets_json = json_to_arena(call, json);
    const char *bench_json = NULL;
    if (req->benchmark != NULL) {
        json = NULL;
        if (fsr_pb_to_json(&req->benchmark->base, NULL, &json, NULL, &jerr) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "benchmark", "%s", jerr.message);
            return;
        }
        bench_json = json_to_arena(call, json);
    }

    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    create_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->caller = who.client_id;
    op->values[0] = who.client_id;
    op->values[1] = req->name;
    op->values[2] = ccy;
    op->values[3] = cash;
    op->values[4] = targets_json;
    op->values[5] = bench_json;
    int rv = fsr_pg_tx_begin(pool, on_create_begun, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "create portfolio: begin");
}

/* ---- GetPortfolio ------------------------------------------------------------------- */

typedef struct get_op {
    fsr_call *call;
    const char *id;
} get_op;

static void on_got(const fsr_pg_result *res, void *arg)
{
    get_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(op->call, res, "get portfolio");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail(op->call, FSR_NOT_FOUND, "portfolio %s not found", op->id);
        return;
    }
    Portfolio__V1__Portfolio *p = pf_from_row(op->call, res, 0);
    if (p == NULL) {
        fail_shape(op->call, "get portfolio");
        return;
    }
    portfolio_v1_portfolio_service_get_portfolio_reply(op->call, p);
}

void pf_get_portfolio(fsr_call *call, const Portfolio__V1__GetPortfolioRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0)
        return;
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    get_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    const char *values[2] = { req->id, fsr_caller_scope(&who) };
    int rv = fsr_pg_query(pool, &pf_select, 2, values, on_got, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "get portfolio");
}

/* ---- ListPortfolios ----------------------------------------------------------------- */

typedef struct list_op {
    fsr_call *call;
    int page_size;
} list_op;

static void on_listed(const fsr_pg_result *res, void *arg)
{
    list_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(call, res, "list portfolios");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    bool more = rows > op->page_size;
    if (more)
        rows = op->page_size;

    Portfolio__V1__ListPortfoliosResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    portfolio__v1__list_portfolios_response__init(resp);
    resp->portfolios =
        fsr_call_alloc(call, sizeof(*resp->portfolios) * (size_t)(rows > 0 ? rows : 1));
    for (int i = 0; i < rows; i++) {
        Portfolio__V1__Portfolio *p = pf_from_row(call, res, i);
        if (p == NULL) {
            fail_shape(call, "list portfolios");
            return;
        }
        resp->portfolios[i] = p;
    }
    resp->n_portfolios = (size_t)rows;
    if (more) {
        /* The cursor: the last row's created_at (exact, microseconds UTC) and id. */
        const char *cursor[2] = {
            fsr_pg_result_getvalue(res, rows - 1, COL_CREATED_AT),
            resp->portfolios[rows - 1]->id,
        };
        resp->next_page_token = fsr_page_token_encode(fsr_call_arena(call), cursor, 2);
        if (resp->next_page_token == NULL) {
            fail_shape(call, "list portfolios");
            return;
        }
    }
    portfolio_v1_portfolio_service_list_portfolios_reply(call, resp);
}

void pf_list_portfolios(fsr_call *call, const Portfolio__V1__ListPortfoliosRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0)
        return;
    int page_size;
    if (fsr_page_size_resolve(req->page_size, &page_size) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "pageSize", "must be between 0 and %d",
                            FSR_PAGE_SIZE_MAX);
        return;
    }
    if (req->client_id[0] != '\0' && !fsr_uuid_valid(req->client_id)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "clientId", "must be a UUID");
        return;
    }
    char *cursor[2] = { NULL, NULL };
    if (req->page_token[0] != '\0') {
        int64_t s;
        int32_t ns;
        if (fsr_page_token_decode(fsr_call_arena(call), req->page_token, cursor, 2) != 0 ||
            fsr_pg_timestamp_parse(cursor[0], &s, &ns) != 0 || !fsr_uuid_valid(cursor[1])) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "pageToken",
                                "is not a token from a previous ListPortfolios response");
            return;
        }
    }

    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    list_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->page_size = page_size;
    const char *values[5] = {
        fsr_caller_scope(&who),
        req->client_id[0] != '\0' ? req->client_id : NULL,
        cursor[0],
        cursor[1],
        fsr_call_printf(call, "%d", page_size + 1),
    };
    int rv = fsr_pg_query(pool, &pf_list, 5, values, on_listed, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "list portfolios");
}
