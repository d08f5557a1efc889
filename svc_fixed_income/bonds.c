/* SPDX-License-Identifier: MIT */
/*
 * The bonds resource: CreateBond, GetBond, ListBonds, UpdateBond and DeleteBond over Postgres.
 *
 * The pricing terms are checked by bondmath (fi_terms_periods(): dates in range, at most 100
 * years, the first coupon date on the schedule) on the row as it will be stored: the
 * request itself on create, the merged row inside the update's transaction on update.
 * DeleteBond asks the portfolio service first whether the bond is held.  Updates and
 * deletes invalidate the bond cache (cache.c) before they answer.
 */
#include "fixed_income.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/handler.h"
#include "fsr/app.h"
#include "fsr/log.h"
#include "fsr/metadata.h"
#include "fsr/pg.h"
#include "fsr/validate.h"

#include "bondmath.h"
#include "fixed_income_v1.fsr.h"
#include "portfolio_v1.fsr.h"

/* Longest accepted values, in bytes. */
#define FI_NAME_MAX   200
#define FI_ISSUER_MAX 200

static const fsr_pg_stmt fi_insert = {
    "fi_insert",
    "INSERT INTO bonds (isin, name, issuer, currency, face, coupon_rate, frequency, day_count,"
    " issue_date, maturity_date, first_coupon_date)"
    " VALUES ($1, $2, $3, $4, $5::numeric, $6::float8, $7::integer, $8, $9::date, $10::date,"
    " $11::date)"
    " RETURNING " FI_COLS,
};

static const fsr_pg_stmt fi_select = {
    "fi_select",
    "SELECT " FI_COLS " FROM bonds WHERE id = $1::uuid",
};

/*
 * Keyset paging in ListBonds' documented order (maturity date, then id): the cursor is the
 * last row's pair, and one row more than the page is fetched to learn whether another page
 * follows.  NULL parameters switch a filter off.
 */
static const fsr_pg_stmt fi_list = {
    "fi_list",
    "SELECT " FI_COLS " FROM bonds"
    " WHERE ($1::text IS NULL OR issuer = $1::text)"
    " AND ($2::date IS NULL OR maturity_date >= $2::date)"
    " AND ($3::date IS NULL OR maturity_date <= $3::date)"
    " AND ($4::text IS NULL OR currency = $4::text)"
    " AND ($5::text IS NULL OR isin = $5::text)"
    " AND ($6::date IS NULL OR (maturity_date, id) > ($6::date, $7::uuid))"
    " ORDER BY maturity_date, id LIMIT $8::integer",
};

/* ---- helpers ------------------------------------------------------------------------ */

static const char *nullif_empty(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

static char *upper_dup(fsr_call *call, const char *s)
{
    char *u = fsr_arena_strdup(fsr_call_arena(call), s);
    for (char *p = u; *p; p++) {
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    }
    return u;
}

/* Checks an optional "YYYY-MM-DD" field; on failure finishes |call| and returns -1. */
static int check_date(fsr_call *call, const char *field, const char *v, bool required)
{
    if (v[0] == '\0') {
        if (!required)
            return 0;
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "is required");
        return -1;
    }
    if (fsr_date_parse(v, NULL, NULL, NULL) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field,
                            "must be a calendar date \"YYYY-MM-DD\"");
        return -1;
    }
    return 0;
}

/*
 * Checks pricing terms |t| with bondmath; on failure finishes |call| with INVALID_ARGUMENT
 * naming the field at fault and returns -1.
 */
static int check_terms(fsr_call *call, const fi_terms *t)
{
    int n = fi_terms_periods(t);
    if (n >= 0)
        return 0;
    const char *field = fi_err_field(n);
    fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field != NULL ? field : "issueDate", "%s",
                        fi_strerror(n));
    return -1;
}

/* Copies row |row| (FI_COLS) into a new Bond in the call's arena; NULL if malformed. */
FixedIncome__V1__Bond *fi_from_row(fsr_call *call, const fsr_pg_result *res, int row)
{
    if (fsr_pg_result_cols(res) < COL_COUNT)
        return NULL;
    FixedIncome__V1__Bond *b = fsr_call_alloc(call, sizeof(*b));
    fixed_income__v1__bond__init(b);
    b->id = fsr_pg_col_dup(call, res, row, COL_ID);
    b->isin = fsr_pg_col_dup(call, res, row, COL_ISIN);
    b->name = fsr_pg_col_dup(call, res, row, COL_NAME);
    b->issuer = fsr_pg_col_dup(call, res, row, COL_ISSUER);
    b->currency = fsr_pg_col_dup(call, res, row, COL_CURRENCY);
    b->face = fsr_pg_col_dup(call, res, row, COL_FACE);
    b->coupon_rate = strtod(fsr_pg_result_getvalue(res, row, COL_COUPON_RATE), NULL);
    b->frequency = (int32_t)strtol(fsr_pg_result_getvalue(res, row, COL_FREQUENCY), NULL, 10);
    const ProtobufCEnumValue *dc = protobuf_c_enum_descriptor_get_value_by_name(
        &common__v1__day_count__value__descriptor, fsr_pg_result_getvalue(res, row, COL_DAY_COUNT));
    if (dc == NULL)
        return NULL;
    b->day_count = (Common__V1__DayCount__Value)dc->value;
    b->issue_date = fsr_pg_col_dup(call, res, row, COL_ISSUE_DATE);
    b->maturity_date = fsr_pg_col_dup(call, res, row, COL_MATURITY_DATE);
    b->created_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, COL_CREATED_AT));
    b->updated_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, COL_UPDATED_AT));
    b->first_coupon_date = fsr_pg_col_dup(call, res, row, COL_FIRST_COUPON_DATE);
    if (b->created_at == NULL || b->updated_at == NULL)
        return NULL;
    return b;
}

void fi_fail_db(fsr_call *call, const fsr_pg_result *res, const char *what)
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

fsr_pg_pool *fi_pool_of(fsr_call *call)
{
    fsr_pg_pool *pool = fsr_app_ctx_of(call)->pg;
    if (pool == NULL)
        fsr_call_fail(call, FSR_UNAVAILABLE, "the fixed income database is unavailable");
    return pool;
}

/* ---- CreateBond --------------------------------------------------------------------- */

typedef struct create_op {
    fsr_call *call;
    const char *isin; /* NULL when none */
} create_op;

static void on_created(const fsr_pg_result *res, void *arg)
{
    create_op *op = arg;
    int st = fsr_pg_result_status(res);
    if (st == FSR_E_UNIQUE && op->isin != NULL) {
        fsr_call_fail(op->call, FSR_ALREADY_EXISTS, "a bond with ISIN %s already exists", op->isin);
        return;
    }
    if (st != 0) {
        fi_fail_db(op->call, res, "create bond");
        return;
    }
    FixedIncome__V1__Bond *b = fsr_pg_result_rows(res) == 1 ? fi_from_row(op->call, res, 0) : NULL;
    if (b == NULL) {
        fail_shape(op->call, "create bond");
        return;
    }
    FSR_INFO("bond %s created", b->id);
    fixed_income_v1_fixed_income_service_create_bond_reply(op->call, b);
}

void fi_create_bond(fsr_call *call, const FixedIncome__V1__CreateBondRequest *req)
{
    const char *isin = NULL;
    if (req->isin[0] != '\0') {
        char *u = upper_dup(call, req->isin);
        if (!fsr_isin_shaped(u)) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "isin",
                                "must be 12 characters: a 2-letter country code, 9 letters or "
                                "digits and a check digit");
            return;
        }
        if (!fsr_isin_valid(u)) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "isin", "has a wrong check digit");
            return;
        }
        isin = u;
    }
    if (isin == NULL && req->name[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "name", "is required when isin is empty");
        return;
    }
    if (fsr_check_text(call, "name", req->name, false, FI_NAME_MAX, true) != 0 ||
        fsr_check_text(call, "issuer", req->issuer, true, FI_ISSUER_MAX, true) != 0)
        return;

    if (req->currency[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "currency", "is required");
        return;
    }
    if (!fsr_currency_valid(req->currency)) {
        bool shaped =
            strlen(req->currency) == 3 && strspn(req->currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3;
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "currency", "%s",
                            shaped ? "is not a known ISO 4217 currency code"
                                   : "must be 3 upper-case letters (ISO 4217)");
        return;
    }

    /* face: a decimal string > 0, stored as NUMERIC from the text itself. */
    const char *face = req->face[0] != '\0' ? req->face : "100";
    int sign = 0;
    const char *why = NULL;
    if (fsr_decimal_check(face, &sign, &why) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "face", "%s", why);
        return;
    }
    if (sign <= 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "face", "must be > 0");
        return;
    }

    /* The comparisons are written so that NaN fails them. */
    if (!(req->coupon_rate >= 0.0 && req->coupon_rate < 1.0)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "couponRate",
                            "must be a fraction in [0, 1) (0.05 is 5%%)");
        return;
    }
    int f = req->frequency;
    if (f != 0 && f != 1 && f != 2 && f != 4 && f != 12) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "frequency", "must be 0, 1, 2, 4 or 12");
        return;
    }
    if (f == 0 && req->coupon_rate != 0.0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "couponRate",
                            "must be 0 for a zero-coupon bond (frequency 0)");
        return;
    }
    /* Absent (UNSPECIFIED) means THIRTY_360_US, as fixed_income.proto documents. */
    int dcv = req->day_count == COMMON__V1__DAY_COUNT__VALUE__DAY_COUNT_UNSPECIFIED
                  ? COMMON__V1__DAY_COUNT__VALUE__THIRTY_360_US
                  : (int)req->day_count;
    const ProtobufCEnumValue *dc =
        protobuf_c_enum_descriptor_get_value(&common__v1__day_count__value__descriptor, dcv);
    if (dc == NULL || dcv == COMMON__V1__DAY_COUNT__VALUE__DAY_COUNT_UNSPECIFIED) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "dayCount",
                            "must be one of ACT_ACT_ICMA, ACT_ACT_ISDA, THIRTY_360_US, "
                            "THIRTY_E_360, ACT_360, ACT_365_FIXED");
        return;
    }
    if (check_date(call, "issueDate", req->issue_date, true) != 0 ||
        check_date(call, "maturityDate", req->maturity_date, true) != 0)
        return;
    /* Valid "YYYY-MM-DD" dates compare chronologically as strings. */
    if (strcmp(req->issue_date, req->maturity_date) >= 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "maturityDate", "must be after issueDate");
        return;
    }
    if (check_date(call, "firstCouponDate", req->first_coupon_date, false) != 0)
        return;
    if (req->first_coupon_date[0] != '\0' && fi_date_parse(req->first_coupon_date) == FI_NO_DATE) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "firstCouponDate",
                            "must be a date from 1901-01-01 to 2199-12-31");
        return;
    }
    /* What only bondmath knows: the range it prices, and the first coupon on the schedule. */
    fi_terms t = {
        .coupon_rate = req->coupon_rate,
        .frequency = f,
        .day_count = dcv,
        .issue_date = fi_date_parse(req->issue_date),
        .maturity_date = fi_date_parse(req->maturity_date),
        .first_coupon_date = fi_date_parse(req->first_coupon_date),
    };
    if (check_terms(call, &t) != 0)
        return;

    fsr_pg_pool *pool = fi_pool_of(call);
    if (pool == NULL)
        return;
    create_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->isin = isin;
    const char *values[11] = {
        isin,
        req->name,
        req->issuer,
        req->currency,
        face,
        fsr_call_printf(call, "%.17g", req->coupon_rate), /* exact for a double */
        fsr_call_printf(call, "%d", f),
        dc->name,
        req->issue_date,
        req->maturity_date,
        nullif_empty(req->first_coupon_date),
    };
    int rv = fsr_pg_query(pool, &fi_insert, 11, values, on_created, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "create bond");
}

/* ---- GetBond ------------------------------------------------------------------------ */

typedef struct get_op {
    fsr_call *call;
    const char *id;
} get_op;

static void on_got(const fsr_pg_result *res, void *arg)
{
    get_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fi_fail_db(op->call, res, "get bond");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail(op->call, FSR_NOT_FOUND, "bond %s not found", op->id);
        return;
    }
    FixedIncome__V1__Bond *b = fi_from_row(op->call, res, 0);
    if (b == NULL) {
        fail_shape(op->call, "get bond");
        return;
    }
    fixed_income_v1_fixed_income_service_get_bond_reply(op->call, b);
}

void fi_get_bond(fsr_call *call, const FixedIncome__V1__GetBondRequest *req)
{
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    fsr_pg_pool *pool = fi_pool_of(call);
    if (pool == NULL)
        return;
    get_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    const char *values[1] = { req->id };
    int rv = fsr_pg_query(pool, &fi_select, 1, values, on_got, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "get bond");
}

/* ---- ListBonds ---------------------------------------------------------------------- */

typedef struct list_op {
    fsr_call *call;
    int page_size;
} list_op;

static void on_listed(const fsr_pg_result *res, void *arg)
{
    list_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fi_fail_db(call, res, "list bonds");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    bool more = rows > op->page_size;
    if (more)
        rows = op->page_size;

    FixedIncome__V1__ListBondsResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    fixed_income__v1__list_bonds_response__init(resp);
    resp->bonds = fsr_call_alloc(call, sizeof(*resp->bonds) * (size_t)(rows > 0 ? rows : 1));
    for (int i = 0; i < rows; i++) {
        FixedIncome__V1__Bond *b = fi_from_row(call, res, i);
        if (b == NULL) {
            fail_shape(call, "list bonds");
            return;
        }
        resp->bonds[i] = b;
    }
    resp->n_bonds = (size_t)rows;
    if (more) {
        const FixedIncome__V1__Bond *last = resp->bonds[rows - 1];
        const char *cursor[2] = { last->maturity_date, last->id };
        resp->next_page_token = fsr_page_token_encode(fsr_call_arena(call), cursor, 2);
        if (resp->next_page_token == NULL) {
            fail_shape(call, "list bonds");
            return;
        }
    }
    fixed_income_v1_fixed_income_service_list_bonds_reply(call, resp);
}

void fi_list_bonds(fsr_call *call, const FixedIncome__V1__ListBondsRequest *req)
{
    int page_size;
    if (fsr_page_size_resolve(req->page_size, &page_size) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "pageSize", "must be between 0 and %d",
                            FSR_PAGE_SIZE_MAX);
        return;
    }
    if (fsr_check_text(call, "issuer", req->issuer, false, FI_ISSUER_MAX, true) != 0 ||
        check_date(call, "maturityFrom", req->maturity_from, false) != 0 ||
        check_date(call, "maturityTo", req->maturity_to, false) != 0 ||
        fsr_check_text(call, "currency", req->currency, false, 3, false) != 0 ||
        fsr_check_text(call, "isin", req->isin, false, 12, false) != 0)
        return;
    if (req->maturity_from[0] != '\0' && req->maturity_to[0] != '\0' &&
        strcmp(req->maturity_from, req->maturity_to) > 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "maturityTo",
                            "must not be before maturityFrom");
        return;
    }

    /* The cursor: (maturity_date, id) of the previous page's last row. */
    char *cursor[2] = { NULL, NULL };
    if (req->page_token[0] != '\0') {
        if (fsr_page_token_decode(fsr_call_arena(call), req->page_token, cursor, 2) != 0 ||
            fsr_date_parse(cursor[0], NULL, NULL, NULL) != 0 || !fsr_uuid_valid(cursor[1])) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "pageToken",
                                "is not a token from a previous ListBonds response");
            return;
        }
    }

    fsr_pg_pool *pool = fi_pool_of(call);
    if (pool == NULL)
        return;
    list_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->page_size = page_size;
    const char *values[8] = {
        nullif_empty(req->issuer),
        nullif_empty(req->maturity_from),
        nullif_empty(req->maturity_to),
        nullif_empty(req->currency),
        req->isin[0] != '\0' ? upper_dup(call, req->isin) : NULL,
        cursor[0],
        cursor[1],
        fsr_call_printf(call, "%d", page_size + 1),
    };
    int rv = fsr_pg_query(pool, &fi_list, 8, values, on_listed, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "list bonds");
}

/* ---- UpdateBond --------------------------------------------------------------------- */

/*
 * One statement: NULL parameters keep the column (isin and first_coupon_date: "" clears
 * it).  The table's CHECK constraints judge the merged row (issue < maturity, zero coupon,
 * isin or name, first coupon in range); bondmath then judges its pricing terms before the
 * transaction commits.
 */
static const fsr_pg_stmt fi_update = {
    "fi_update",
    "UPDATE bonds SET isin = CASE WHEN $2::text IS NULL THEN isin ELSE nullif($2::text, '') END,"
    " name = coalesce($3::text, name), issuer = coalesce($4::text, issuer),"
    " currency = coalesce($5::text, currency), face = coalesce($6::numeric, face),"
    " coupon_rate = coalesce($7::float8, coupon_rate),"
    " frequency = coalesce($8::integer, frequency), day_count = coalesce($9::text, day_count),"
    " issue_date = coalesce($10::date, issue_date),"
    " maturity_date = coalesce($11::date, maturity_date),"
    " first_coupon_date = CASE WHEN $12::text IS NULL THEN first_coupon_date"
    " ELSE nullif($12::text, '')::date END, updated_at = now()"
    " WHERE id = $1::uuid RETURNING " FI_COLS,
};

static const fsr_pg_stmt fi_delete = {
    "fi_delete",
    "DELETE FROM bonds WHERE id = $1::uuid RETURNING id",
};

#define FI_UPDATE_PARAMS 12

typedef struct update_op {
    fsr_call *call;
    const char *v[FI_UPDATE_PARAMS]; /* the statement's parameters */
    fsr_pg_conn *conn;               /* the transaction */
    FixedIncome__V1__Bond *bond;     /* the merged row, once updated */
    bool issue_only;                 /* issueDate given, maturityDate not */
} update_op;

static void on_update_invalidated(const redisReply *reply, int status, void *arg)
{
    (void)reply;
    update_op *op = arg;
    if (status != 0)
        FSR_WARN("invalidate cache of bond %s: %s", op->bond->id, fsr_strerror(status));
    fixed_income_v1_fixed_income_service_update_bond_reply(op->call, op->bond);
}

static void on_update_committed(const fsr_pg_result *res, void *arg)
{
    update_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fi_fail_db(op->call, res, "update bond");
        return;
    }
    FixedIncome__V1__Bond *b = op->bond;
    FSR_INFO("bond %s updated", b->id);
    fi_publish_updated(op->call, b->id, NULL, NULL);
    /* Answer once the cached terms are gone, so a following read sees the new ones. */
    int rv = fi_cache_invalidate(op->call, b->id, on_update_invalidated, op);
    if (rv != 0) {
        if (rv != FSR_E_CLOSED)
            FSR_WARN("invalidate cache of bond %s: %s", b->id, fsr_strerror(rv));
        fixed_income_v1_fixed_income_service_update_bond_reply(op->call, b);
    }
}

/* Rolls the update back (fire and forget: the server discards it either way). */
static void update_abort(update_op *op)
{
    (void)fsr_pg_tx_rollback(op->conn, NULL, NULL);
    op->conn = NULL;
}

static void on_updated(const fsr_pg_result *res, void *arg)
{
    update_op *op = arg;
    fsr_call *call = op->call;
    int st = fsr_pg_result_status(res);
    if (st != 0)
        update_abort(op);
    if (st == FSR_E_UNIQUE) {
        fsr_call_fail(call, FSR_ALREADY_EXISTS, "a bond with ISIN %s already exists",
                      op->v[1] != NULL ? op->v[1] : "");
        return;
    }
    if (st == FSR_E_CHECK) {
        const char *m = fsr_pg_result_message(res);
        if (strstr(m, "bonds_dates") != NULL)
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT,
                                op->issue_only ? "issueDate" : "maturityDate",
                                "maturityDate must be after issueDate");
        else if (strstr(m, "bonds_zero_coupon") != NULL)
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "couponRate",
                                "must be 0 for a zero-coupon bond (frequency 0)");
        else if (strstr(m, "bonds_isin_or_name") != NULL)
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "name",
                                "is required when isin is empty");
        else if (strstr(m, "bonds_first_coupon") != NULL)
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "firstCouponDate",
                                "must be after issueDate and on or before maturityDate, and only "
                                "for a coupon bond (frequency > 0)");
        else
            fi_fail_db(call, res, "update bond");
        return;
    }
    if (st != 0) {
        fi_fail_db(call, res, "update bond");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        update_abort(op);
        fsr_call_fail_field(call, FSR_NOT_FOUND, "id", "bond %s not found", op->v[0]);
        return;
    }
    FixedIncome__V1__Bond *b = fi_from_row(call, res, 0);
    if (b == NULL) {
        update_abort(op);
        fail_shape(call, "update bond");
        return;
    }
    /* The merged row's pricing terms, as create checks them. */
    fi_terms t = {
        .coupon_rate = b->coupon_rate,
        .frequency = b->frequency,
        .day_count = (int)b->day_count, /* fi_day_count has the proto's numbers */
        .issue_date = fi_date_parse(b->issue_date),
        .maturity_date = fi_date_parse(b->maturity_date),
        .first_coupon_date = fi_date_parse(b->first_coupon_date),
    };
    if (check_terms(call, &t) != 0) {
        update_abort(op);
        return;
    }
    op->bond = b;
    fsr_pg_conn *conn = op->conn;
    op->conn = NULL;
    int rv = fsr_pg_tx_commit(conn, on_update_committed, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "update bond");
}

static void on_update_tx(fsr_pg_conn *conn, int status, void *arg)
{
    update_op *op = arg;
    if (status != 0) {
        fsr_call_fail_err(op->call, status, "update bond");
        return;
    }
    op->conn = conn;
    int rv = fsr_pg_conn_query(conn, &fi_update, FI_UPDATE_PARAMS, op->v, on_updated, op);
    if (rv != 0) {
        update_abort(op);
        fsr_call_fail_err(op->call, rv, "update bond");
    }
}

void fi_update_bond(fsr_call *call, const FixedIncome__V1__UpdateBondRequest *req)
{
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    update_op *op = fsr_call_alloc(call, sizeof(*op));
    memset(op, 0, sizeof(*op));
    const char **v = op->v;
    v[0] = req->id;
    if (req->isin != NULL) {
        const char *isin = "";
        if (req->isin->value[0] != '\0') {
            char *u = upper_dup(call, req->isin->value);
            if (!fsr_isin_shaped(u)) {
                fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "isin",
                                    "must be 12 characters: a 2-letter country code, 9 letters "
                                    "or digits and a check digit");
                return;
            }
            if (!fsr_isin_valid(u)) {
                fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "isin", "has a wrong check digit");
                return;
            }
            isin = u;
        }
        v[1] = isin;
    }
    if (req->name != NULL) {
        if (fsr_check_text(call, "name", req->name->value, false, FI_NAME_MAX, true) != 0)
            return;
        v[2] = req->name->value;
    }
    if (req->issuer != NULL) {
        if (fsr_check_text(call, "issuer", req->issuer->value, true, FI_ISSUER_MAX, true) != 0)
            return;
        v[3] = req->issuer->value;
    }
    if (req->currency != NULL) {
        const char *c = req->currency->value;
        if (c[0] == '\0') {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "currency", "must not be empty");
            return;
        }
        if (!fsr_currency_valid(c)) {
            bool shaped = strlen(c) == 3 && strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3;
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "currency", "%s",
                                shaped ? "is not a known ISO 4217 currency code"
                                       : "must be 3 upper-case letters (ISO 4217)");
            return;
        }
        v[4] = c;
    }
    if (req->face != NULL) {
        int sign = 0;
        const char *why = NULL;
        if (fsr_decimal_check(req->face->value, &sign, &why) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "face", "%s", why);
            return;
        }
        if (sign <= 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "face", "must be > 0");
            return;
        }
        v[5] = req->face->value;
    }
    if (req->coupon_rate != NULL) {
        double r = req->coupon_rate->value;
        if (!(r >= 0.0 && r < 1.0)) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "couponRate",
                                "must be a fraction in [0, 1) (0.05 is 5%%)");
            return;
        }
        v[6] = fsr_call_printf(call, "%.17g", r);
    }
    if (req->frequency != NULL) {
        int f = req->frequency->value;
        if (f != 0 && f != 1 && f != 2 && f != 4 && f != 12) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "frequency",
                                "must be 0, 1, 2, 4 or 12");
            return;
        }
        v[7] = fsr_call_printf(call, "%d", f);
    }
    if (req->day_count != COMMON__V1__DAY_COUNT__VALUE__DAY_COUNT_UNSPECIFIED) {
        const ProtobufCEnumValue *dc = protobuf_c_enum_descriptor_get_value(
            &common__v1__day_count__value__descriptor, (int)req->day_count);
        if (dc == NULL) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "dayCount",
                                "must be one of ACT_ACT_ICMA, ACT_ACT_ISDA, THIRTY_360_US, "
                                "THIRTY_E_360, ACT_360, ACT_365_FIXED");
            return;
        }
        v[8] = dc->name;
    }
    if (req->issue_date != NULL) {
        if (check_date(call, "issueDate", req->issue_date->value, true) != 0)
            return;
        v[9] = req->issue_date->value;
    }
    if (req->maturity_date != NULL) {
        if (check_date(call, "maturityDate", req->maturity_date->value, true) != 0)
            return;
        v[10] = req->maturity_date->value;
    }
    if (v[9] != NULL && v[10] != NULL && strcmp(v[9], v[10]) >= 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "maturityDate", "must be after issueDate");
        return;
    }
    if (req->first_coupon_date != NULL) {
        /* "" clears it */
        if (check_date(call, "firstCouponDate", req->first_coupon_date->value, false) != 0)
            return;
        v[11] = req->first_coupon_date->value;
    }
    fsr_pg_pool *pool = fi_pool_of(call);
    if (pool == NULL)
        return;
    op->call = call;
    op->issue_only = v[9] != NULL && v[10] == NULL;
    /*
     * A transaction, so the merged row can be checked (bondmath needs the whole schedule)
     * before it is committed.
     */
    int rv = fsr_pg_tx_begin(pool, on_update_tx, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "update bond");
}

/* ---- DeleteBond --------------------------------------------------------------------- */

/*
 * First CountHolders on the portfolio service, then the DELETE.  A constituent added in
 * between (the portfolio service checks the bond exists when one is added) is the one race
 * two databases leave open; its window is one round trip.
 */
typedef struct delete_op {
    fsr_call *call;
    const char *id;
} delete_op;

/*
 * UNAVAILABLE because the portfolio service could not answer, with the trailer that tells
 * the gateway this service is up and the message is the answer (fsr/metadata.h).
 */
static void fail_no_portfolio(fsr_call *call, const char *id)
{
    fsr_call_fail_dependency(call, "portfolio",
                             "portfolio service unavailable: cannot tell whether a portfolio "
                             "holds bond %s, so nothing was deleted",
                             id);
}

static void on_delete_invalidated(const redisReply *reply, int status, void *arg)
{
    (void)reply;
    delete_op *op = arg;
    if (status != 0)
        FSR_WARN("invalidate cache of bond %s: %s", op->id, fsr_strerror(status));
    Google__Protobuf__Empty *e = fsr_call_alloc(op->call, sizeof(*e));
    google__protobuf__empty__init(e);
    fixed_income_v1_fixed_income_service_delete_bond_reply(op->call, e);
}

static void on_deleted(const fsr_pg_result *res, void *arg)
{
    delete_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fi_fail_db(op->call, res, "delete bond");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail_field(op->call, FSR_NOT_FOUND, "id", "bond %s not found", op->id);
        return;
    }
    FSR_INFO("bond %s deleted", op->id);
    int rv = fi_cache_invalidate(op->call, op->id, on_delete_invalidated, op);
    if (rv != 0) {
        if (rv != FSR_E_CLOSED)
            FSR_WARN("invalidate cache of bond %s: %s", op->id, fsr_strerror(rv));
        on_delete_invalidated(NULL, 0, op);
    }
}

static void on_holders(const fsr_result *res, const Portfolio__V1__CountHoldersResponse *resp,
                       void *arg)
{
    delete_op *op = arg;
    fsr_call *call = op->call;
    if (res->status.code != FSR_OK || resp == NULL) {
        /* Nothing is deleted unless the portfolio service says nobody holds the bond. */
        FSR_WARN("delete bond %s: CountHolders answered %s: %s", op->id,
                 fsr_code_name(res->status.code),
                 res->status.message != NULL ? res->status.message : "");
        fail_no_portfolio(call, op->id);
        return;
    }
    if (resp->portfolios > 0) {
        fsr_call_fail(call, FSR_FAILED_PRECONDITION,
                      "bond %s is held in %lld portfolio%s: remove it from them first", op->id,
                      (long long)resp->portfolios, resp->portfolios == 1 ? "" : "s");
        return;
    }
    fsr_pg_pool *pool = fi_pool_of(call);
    if (pool == NULL)
        return;
    const char *values[1] = { op->id };
    int rv = fsr_pg_query(pool, &fi_delete, 1, values, on_deleted, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "delete bond");
}

void fi_delete_bond(fsr_call *call, const FixedIncome__V1__DeleteBondRequest *req)
{
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    const fi_thread *th = fsr_app_ctx_of(call)->user;
    if (th == NULL || th->portfolio == NULL) {
        fail_no_portfolio(call, req->id);
        return;
    }
    delete_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    Portfolio__V1__CountHoldersRequest *creq = fsr_call_alloc(call, sizeof(*creq));
    portfolio__v1__count_holders_request__init(creq);
    creq->instrument_type = COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND;
    creq->instrument_id = fsr_call_printf(call, "%s", req->id);
    fsr_call_opts opts = {
        .timeout_ms = 1500, /* capped by the caller's own deadline */
        .parent = call,
        .idempotent = true,
    };
    int rv =
        portfolio_v1_holdings_service_count_holders(th->portfolio, creq, &opts, on_holders, op);
    if (rv != 0) {
        FSR_WARN("delete bond %s: CountHolders not sent: %s", req->id, fsr_strerror(rv));
        fail_no_portfolio(call, req->id);
    }
}
