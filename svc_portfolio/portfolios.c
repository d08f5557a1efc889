/* SPDX-License-Identifier: MIT */
/*
 * The portfolios resource: CreatePortfolio, GetPortfolio, ListPortfolios, UpdatePortfolio and
 * DeletePortfolio over Postgres, and the helpers every portfolio write shares (error
 * mapping of the PF SQLSTATEs, If-Match).  The writes themselves are PL/pgSQL functions
 * (sql/005_portfolio_writes.sql: why there), run through pf_write_run() (idempotency.c).
 */
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
#include "google/protobuf/empty.pb-c.h"

/* Limits of a portfolio. */
#define PF_NAME_MAX    200
#define PF_TARGETS_MAX 1000
#define PF_BENCH_MAX   100
/* Tolerance for weights that must sum to (at most) 1, as doubles from JSON rarely add up. */
#define PF_WEIGHT_EPS 1e-9

/* Every query returns PF_PORTFOLIO_COLS (portfolio.h), in this order. */
#define PF_COLS PF_PORTFOLIO_COLS
enum {
    COL_ID,
    COL_CLIENT_ID,
    COL_NAME,
    COL_BASE_CURRENCY,
    COL_CASH,
    COL_TARGETS,
    COL_BENCHMARK,
    COL_VERSION,
    COL_ALLOW_NEGATIVE,
    COL_CREATED_AT,
    COL_UPDATED_AT,
    COL_COUNT
};

/*
 * The row, the opening DEPOSIT (non-zero cash: cash is derivable from the ledger) and the
 * audit row, in one statement (sql/005_portfolio_writes.sql).
 */
static const fsr_pg_stmt pf_create = {
    "pf_create",
    "SELECT " PF_COLS " FROM pf_portfolio_create($1::uuid, $2, $3, $4, $5::jsonb, $6::jsonb,"
    " $7::boolean, $8, $9)",
};

static const fsr_pg_stmt pf_update = {
    "pf_update",
    "SELECT " PF_COLS " FROM pf_portfolio_update($1::uuid, $2::uuid, $3::integer, $4, $5, $6,"
    " $7::jsonb, $8::jsonb, $9::boolean, $10::boolean)",
};

static const fsr_pg_stmt pf_delete = {
    "pf_delete",
    "SELECT pf_portfolio_delete($1::uuid, $2::uuid, $3::integer, $4, $5)",
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

Portfolio__V1__Portfolio *pf_portfolio_from_row(fsr_call *call, const fsr_pg_result *res, int row)
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
    p->allow_negative = strcmp(fsr_pg_result_getvalue(res, row, COL_ALLOW_NEGATIVE), "t") == 0;
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

/* The PF SQLSTATEs of sql/005_portfolio_writes.sql and the codes they stand for. */
static const struct {
    char sqlstate[6];
    fsr_code code;
} pf_states[] = {
    { "PF404", FSR_NOT_FOUND },           { "PF409", FSR_ALREADY_EXISTS },
    { "PF412", FSR_FAILED_PRECONDITION }, { "PF400", FSR_FAILED_PRECONDITION },
    { "PF422", FSR_INVALID_ARGUMENT },    { "PF499", FSR_ABORTED },
};

/*
 * The message a PF function raised, out of libpq's one-line error text, e.g.
 * "ERROR:  version mismatch: ...  CONTEXT:  PL/pgSQL function ...".  The severity word and
 * "CONTEXT" may be translated (lc_messages), so the cut is made at the ":  " separators
 * (two spaces, which our messages never contain) rather than at the English words.
 */
static char *raised_message(fsr_call *call, const char *text)
{
    const char *start = strstr(text, ":  ");
    start = start != NULL ? start + 3 : text;
    const char *end = strstr(start, ":  ");
    if (end != NULL) {
        while (end > start && end[-1] != ' ') /* back over the next label ("CONTEXT") */
            end--;
        while (end > start && end[-1] == ' ')
            end--;
    } else {
        end = start + strlen(start);
    }
    return fsr_arena_strndup(fsr_call_arena(call), start, (size_t)(end - start));
}

void pf_fail_db(fsr_call *call, const fsr_pg_result *res, const char *what)
{
    int st = fsr_pg_result_status(res);
    const char *state = fsr_pg_result_sqlstate(res);
    if (st == FSR_E_DB) {
        for (size_t i = 0; i < FSR_ARRAY_SIZE(pf_states); i++) {
            if (strcmp(state, pf_states[i].sqlstate) != 0)
                continue;
            char *msg = raised_message(call, fsr_pg_result_message(res));
            char *sep = strstr(msg, ": ");
            if (pf_states[i].code == FSR_INVALID_ARGUMENT && sep != NULL) {
                *sep = '\0';
                fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, msg, "%s", sep + 2);
            } else {
                fsr_call_fail(call, pf_states[i].code, "%s", msg);
            }
            return;
        }
        FSR_ERROR("%s: SQLSTATE %s: %s", what, state, fsr_pg_result_message(res));
    }
    fsr_call_fail_err(call, st, what);
}

void pf_fail_shape(fsr_call *call, const char *what)
{
    FSR_ERROR("%s: unexpected result shape", what);
    fsr_call_fail(call, FSR_INTERNAL, "internal error");
}

fsr_pg_pool *pf_pool(fsr_call *call)
{
    fsr_pg_pool *pool = fsr_app_ctx_of(call)->pg;
    if (pool == NULL)
        fsr_call_fail(call, FSR_UNAVAILABLE, "the portfolio database is unavailable");
    return pool;
}

/*
 * If-Match carries an entity tag; ours is the version.  Accepted: 3, "3" and the weak W/"3"
 * (the versions are exact either way), surrounded by blanks.  Returns the version, or -1.
 */
static int32_t parse_if_match(const char *v, size_t len)
{
    const char *p = v, *end = v + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
        p += 2;
    if (end - p >= 2 && *p == '"' && end[-1] == '"') {
        p++;
        end--;
    }
    if (p == end || end - p > 9)
        return -1;
    int32_t n = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        n = n * 10 + (*p - '0');
    }
    return n >= 1 ? n : -1;
}

int pf_version_resolve(fsr_call *call, int32_t body_version, bool required, int32_t *out)
{
    if (body_version < 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "version", "must be >= 1");
        return -1;
    }
    size_t len = 0;
    const char *im = fsr_call_metadata(call, "if-match", &len);
    int32_t header = 0;
    if (im != NULL) {
        header = parse_if_match(im, len);
        if (header < 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "If-Match",
                                "must be the portfolio's version, like \"3\"");
            return -1;
        }
    }
    if (body_version != 0 && header != 0 && body_version != header) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "version", "is %d but If-Match says %d",
                            body_version, header);
        return -1;
    }
    int32_t v = body_version != 0 ? body_version : header;
    if (required && v == 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "version",
                            "is required: the portfolio's current version (or If-Match)");
        return -1;
    }
    *out = v;
    return 0;
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
static int check_targets(fsr_call *call, Portfolio__V1__Target *const *targets, size_t n_targets)
{
    if (n_targets > PF_TARGETS_MAX) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "targets", "at most %d targets allowed",
                            PF_TARGETS_MAX);
        return -1;
    }
    double sum = 0.0;
    for (size_t i = 0; i < n_targets; i++) {
        const Portfolio__V1__Target *t = targets[i];
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
            const Portfolio__V1__Target *u = targets[j];
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

/* Name: required on create, optional (but then not empty) on update. */
static int check_name(fsr_call *call, const char *name)
{
    const char *why = NULL;
    if (name[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "name", "is required");
        return -1;
    }
    if (fsr_text_check(name, PF_NAME_MAX, true, &why) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "name", "%s", why);
        return -1;
    }
    return 0;
}

/* The targets (field "targets" of |msg|) as their stored proto3 JSON, in the arena. */
static const char *targets_json(fsr_call *call, const ProtobufCMessage *msg)
{
    char *json = NULL;
    fsr_json_error jerr;
    if (fsr_pb_field_to_json(msg, "targets", NULL, &json, NULL, &jerr) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "targets", "%s", jerr.message);
        return NULL;
    }
    return json_to_arena(call, json);
}

static const char *benchmark_json(fsr_call *call, const Portfolio__V1__Benchmark *b)
{
    char *json = NULL;
    fsr_json_error jerr;
    if (fsr_pb_to_json(&b->base, NULL, &json, NULL, &jerr) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "benchmark", "%s", jerr.message);
        return NULL;
    }
    return json_to_arena(call, json);
}

static ProtobufCMessage *build_portfolio(fsr_call *call, const fsr_pg_result *res, void *arg)
{
    (void)arg;
    Portfolio__V1__Portfolio *p =
        fsr_pg_result_rows(res) == 1 ? pf_portfolio_from_row(call, res, 0) : NULL;
    return p != NULL ? &p->base : NULL;
}

typedef struct create_op {
    const char *values[9];
} create_op;

static void run_create(fsr_call *call, pf_idem *idem, void *arg)
{
    create_op *op = arg;
    pf_write w = {
        .stmt = &pf_create,
        .nparams = 9,
        .values = op->values,
        .build = build_portfolio,
        .what = "create portfolio",
    };
    pf_write_run(call, idem, &w);
}

void pf_create_portfolio(fsr_call *call, const Portfolio__V1__CreatePortfolioRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0)
        return;

    const char *why = NULL;
    if (check_name(call, req->name) != 0)
        return;
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
    if (check_targets(call, req->targets, req->n_targets) != 0)
        return;
    if (req->benchmark != NULL && check_benchmark(call, req->benchmark) != 0)
        return;

    /* Targets and benchmark are stored as their proto3 JSON. */
    const char *targets = targets_json(call, &req->base);
    if (targets == NULL)
        return;
    const char *bench = NULL;
    if (req->benchmark != NULL && (bench = benchmark_json(call, req->benchmark)) == NULL)
        return;

    create_op *op = fsr_call_alloc(call, sizeof(*op));
    const char *values[9] = {
        who.client_id,
        req->name,
        ccy,
        cash,
        targets,
        bench,
        req->allow_negative ? "true" : "false",
        who.client_id,
        fsr_call_request_id(call),
    };
    memcpy(op->values, values, sizeof(values));
    pf_idem_begin(call, &who, &req->base, &portfolio__v1__portfolio__descriptor, run_create, op);
}

/* ---- UpdatePortfolio ---------------------------------------------------------------- */

/*
 * Only the fields given change: name, targets (replaced when non-empty; clear_targets
 * empties them), benchmark (replaced when set; clear_benchmark removes it), allow_negative.
 * The version is required and checked under the row lock by pf_portfolio_update().
 */
void pf_update_portfolio(fsr_call *call, const Portfolio__V1__UpdatePortfolioRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0)
        return;
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    int32_t version = 0;
    if (pf_version_resolve(call, req->version, true, &version) != 0)
        return;
    if (req->name != NULL && check_name(call, req->name->value) != 0)
        return;
    if (req->clear_targets && req->n_targets > 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "targets",
                            "must be empty with clearTargets");
        return;
    }
    if (req->clear_benchmark && req->benchmark != NULL) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "benchmark",
                            "must be absent with clearBenchmark");
        return;
    }
    if (check_targets(call, req->targets, req->n_targets) != 0)
        return;
    if (req->benchmark != NULL && check_benchmark(call, req->benchmark) != 0)
        return;
    if (req->name == NULL && req->n_targets == 0 && !req->clear_targets && req->benchmark == NULL &&
        !req->clear_benchmark && req->allow_negative == NULL) {
        fsr_call_fail(call, FSR_INVALID_ARGUMENT,
                      "nothing to update: give name, targets, clearTargets, benchmark, "
                      "clearBenchmark or allowNegative");
        return;
    }
    const char *targets = NULL;
    if (req->n_targets > 0 && (targets = targets_json(call, &req->base)) == NULL)
        return;
    if (req->clear_targets)
        targets = "[]";
    const char *bench = NULL;
    if (req->benchmark != NULL && (bench = benchmark_json(call, req->benchmark)) == NULL)
        return;

    const char **values = fsr_call_alloc(call, sizeof(*values) * 10);
    values[0] = req->id;
    values[1] = fsr_caller_scope(&who);
    values[2] = fsr_call_printf(call, "%d", version);
    values[3] = who.client_id;
    values[4] = fsr_call_request_id(call);
    values[5] = req->name != NULL ? req->name->value : NULL;
    values[6] = targets;
    values[7] = bench;
    values[8] = req->clear_benchmark ? "true" : "false";
    values[9] = req->allow_negative == NULL ? NULL : req->allow_negative->value ? "true" : "false";
    pf_write w = {
        .stmt = &pf_update,
        .nparams = 10,
        .values = values,
        .build = build_portfolio,
        .what = "update portfolio",
    };
    pf_write_run(call, NULL, &w);
}

/* ---- DeletePortfolio ---------------------------------------------------------------- */

static ProtobufCMessage *build_empty(fsr_call *call, const fsr_pg_result *res, void *arg)
{
    (void)arg;
    if (fsr_pg_result_rows(res) != 1)
        return NULL;
    Google__Protobuf__Empty *e = fsr_call_alloc(call, sizeof(*e));
    google__protobuf__empty__init(e);
    return &e->base;
}

void pf_delete_portfolio(fsr_call *call, const Portfolio__V1__DeletePortfolioRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0)
        return;
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    int32_t version = 0;
    if (pf_version_resolve(call, req->version, true, &version) != 0)
        return;
    const char **values = fsr_call_alloc(call, sizeof(*values) * 5);
    values[0] = req->id;
    values[1] = fsr_caller_scope(&who);
    values[2] = fsr_call_printf(call, "%d", version);
    values[3] = who.client_id;
    values[4] = fsr_call_request_id(call);
    pf_write w = {
        .stmt = &pf_delete,
        .nparams = 5,
        .values = values,
        .build = build_empty,
        .what = "delete portfolio",
    };
    pf_write_run(call, NULL, &w);
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
        pf_fail_db(op->call, res, "get portfolio");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail(op->call, FSR_NOT_FOUND, "portfolio %s not found", op->id);
        return;
    }
    Portfolio__V1__Portfolio *p = pf_portfolio_from_row(op->call, res, 0);
    if (p == NULL) {
        pf_fail_shape(op->call, "get portfolio");
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
    fsr_pg_pool *pool = pf_pool(call);
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
        pf_fail_db(call, res, "list portfolios");
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
        Portfolio__V1__Portfolio *p = pf_portfolio_from_row(call, res, i);
        if (p == NULL) {
            pf_fail_shape(call, "list portfolios");
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
            pf_fail_shape(call, "list portfolios");
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

    fsr_pg_pool *pool = pf_pool(call);
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
