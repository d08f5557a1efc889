/* SPDX-License-Identifier: MIT */
/*
 * Daily bond quotes: UpsertQuotes and ListQuotes over Postgres.
 *
 * A clean price travels as a decimal string and is stored as NUMERIC from that text; a yield
 * is a decimal string stored as a double (an analytics input).  After the commit a write
 * invalidates the cached bond (fi_cache_invalidate(): bumps fi:qgen:<id>, deletes
 * fi:quote:<id>) before the call is answered, and publishes bond.updated {"id","from","to"}
 * on the shared Redis; a Redis failure is only logged (the cache has a TTL, events are best
 * effort).
 */
#include "fixed_income.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/app.h"
#include "fsr/handler.h"
#include "fsr/log.h"
#include "fsr/pg.h"
#include "fsr/validate.h"

#include "fixed_income_v1.fsr.h"

#define FI_QUOTES_MAX   100000
#define FI_UPDATED_CHAN "bond.updated"

/*
 * The whole batch in one statement (so one transaction): the quotes arrive as parallel
 * arrays (NULL where a quote has the other kind of value) and are upserted by (bond_id,
 * date).  Returns the rows written and the bond's latest quote date afterwards (the CTE's
 * snapshot does not see its own rows: hence UNION).  An unknown bond is a foreign-key
 * violation.
 */
static const fsr_pg_stmt fi_upsert_quotes_sql = {
    "fi_upsert_quotes",
    "WITH up AS (INSERT INTO bond_quotes AS q (bond_id, date, clean_price, yield)"
    " SELECT $1::uuid, d, p, y FROM unnest($2::date[], $3::numeric[], $4::float8[])"
    " AS t(d, p, y)"
    " ON CONFLICT (bond_id, date) DO UPDATE SET clean_price = EXCLUDED.clean_price,"
    " yield = EXCLUDED.yield, updated_at = now() RETURNING q.date)"
    " SELECT (SELECT count(*) FROM up), (SELECT max(x)::text FROM (SELECT date AS x FROM up"
    " UNION ALL SELECT max(date) FROM bond_quotes WHERE bond_id = $1::uuid) m)",
};

/* Zero rows: no such bond; one row with a NULL date: no quote in the range. */
static const fsr_pg_stmt fi_list_quotes_sql = {
    "fi_list_quotes",
    "SELECT " FI_DATE("q.date") ", q.clean_price::text, q.yield::text"
                                " FROM bonds b LEFT JOIN bond_quotes q ON q.bond_id = b.id"
                                " AND ($2::date IS NULL OR q.date >= $2::date)"
                                " AND ($3::date IS NULL OR q.date <= $3::date)"
                                " WHERE b.id = $1::uuid ORDER BY q.date",
};

static int check_id(fsr_call *call, const char *id)
{
    if (id[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "id", "is required");
        return -1;
    }
    if (!fsr_uuid_valid(id)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "id", "must be a UUID");
        return -1;
    }
    return 0;
}

/* ---- UpsertQuotes ------------------------------------------------------------------- */

typedef struct upsert_op {
    fsr_call *call;
    const char *id;
    const char *from, *to; /* the request's date range */
    FixedIncome__V1__UpsertQuotesResponse *resp;
} upsert_op;

static void on_publish(const redisReply *reply, int status, void *arg)
{
    (void)reply;
    if (status != 0)
        FSR_WARN("publish %s for bond %s failed: %s", FI_UPDATED_CHAN, (const char *)arg,
                 fsr_strerror(status));
    free(arg);
}

void fi_publish_updated(fsr_call *call, const char *id, const char *from, const char *to)
{
    fsr_redis *shared = fsr_app_ctx_of(call)->shared;
    if (shared == NULL) {
        FSR_WARN("no shared Redis: %s for bond %s not published", FI_UPDATED_CHAN, id);
        return;
    }
    char msg[160];
    if (from != NULL)
        snprintf(msg, sizeof(msg), "{\"id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\"}", id, from, to);
    else
        snprintf(msg, sizeof(msg), "{\"id\":\"%s\"}", id);
    char *tag = strdup(id);
    if (tag == NULL)
        return;
    int rv = fsr_redis_command(shared, on_publish, tag, "PUBLISH %s %s", FI_UPDATED_CHAN, msg);
    if (rv != 0) {
        FSR_WARN("publish %s for bond %s failed: %s", FI_UPDATED_CHAN, id, fsr_strerror(rv));
        free(tag);
    }
}

static void on_quote_invalidated(const redisReply *reply, int status, void *arg)
{
    (void)reply;
    upsert_op *op = arg;
    if (status != 0)
        FSR_WARN("invalidate quote of bond %s: %s", op->id, fsr_strerror(status));
    fixed_income_v1_fixed_income_service_upsert_quotes_reply(op->call, op->resp);
}

static void on_upserted(const fsr_pg_result *res, void *arg)
{
    upsert_op *op = arg;
    int st = fsr_pg_result_status(res);
    if (st == FSR_E_CHECK) {
        fsr_call_fail_field(op->call, FSR_NOT_FOUND, "id", "bond %s not found", op->id);
        return;
    }
    if (st != 0) {
        fi_fail_db(op->call, res, "upsert quotes");
        return;
    }
    if (fsr_pg_result_rows(res) != 1 || fsr_pg_result_cols(res) != 2) {
        FSR_ERROR("upsert quotes: unexpected result shape");
        fsr_call_fail(op->call, FSR_INTERNAL, "internal error");
        return;
    }
    op->resp = fsr_call_alloc(op->call, sizeof(*op->resp));
    fixed_income__v1__upsert_quotes_response__init(op->resp);
    op->resp->upserted = (int32_t)strtol(fsr_pg_result_getvalue(res, 0, 0), NULL, 10);
    op->resp->latest_date = fsr_pg_col_dup(op->call, res, 0, 1);
    FSR_INFO("bond %s: %d quotes upserted (%s..%s)", op->id, op->resp->upserted, op->from, op->to);
    fi_publish_updated(op->call, op->id, op->from, op->to);
    /*
     * Answer once the cached quote is gone (and its generation bumped, so a reader that read
     * Postgres before this commit cannot cache the old quote back), so a following read sees
     * the new one.
     */
    int rv = fi_cache_invalidate(op->call, op->id, on_quote_invalidated, op);
    if (rv != 0) {
        FSR_WARN("invalidate quote of bond %s: %s", op->id, fsr_strerror(rv));
        fixed_income_v1_fixed_income_service_upsert_quotes_reply(op->call, op->resp);
    }
}

/* Validates quote |i|; finishes |call| naming the field and returns -1 if bad. */
static int check_quote(fsr_call *call, size_t i, const FixedIncome__V1__BondQuote *q)
{
#define F(name) fsr_call_printf(call, "quotes[%zu]." name, i)
    if (q->date[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, F("date"), "is required");
        return -1;
    }
    if (fsr_date_parse(q->date, NULL, NULL, NULL) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, F("date"),
                            "must be a calendar date \"YYYY-MM-DD\"");
        return -1;
    }
    int sign = 0;
    const char *why = NULL;
    switch (q->value_case) {
    case FIXED_INCOME__V1__BOND_QUOTE__VALUE_CLEAN_PRICE:
        if (fsr_decimal_check(q->clean_price, &sign, &why) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, F("cleanPrice"), "%s", why);
            return -1;
        }
        if (sign <= 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, F("cleanPrice"), "must be > 0");
            return -1;
        }
        return 0;
    case FIXED_INCOME__V1__BOND_QUOTE__VALUE_YIELD:
        if (fsr_decimal_check(q->yield, &sign, &why) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, F("yield"), "%s", why);
            return -1;
        }
        return 0;
    default:
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, F("cleanPrice"),
                            "exactly one of cleanPrice and yield is required");
        return -1;
    }
#undef F
}

typedef struct dated {
    const char *date;
    size_t i;
} dated;

static int cmp_dated(const void *a, const void *b)
{
    const dated *x = a, *y = b;
    int c = strcmp(x->date, y->date);
    if (c != 0)
        return c;
    return (x->i > y->i) - (x->i < y->i);
}

/* Joins |n| strings as a Postgres array literal "{a,b,NULL}" in the call's arena. */
static char *array_literal(fsr_call *call, const char *const *v, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += (v[i] != NULL ? strlen(v[i]) : 4) + 1;
    char *out = fsr_call_alloc(call, len);
    char *p = out;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *p++ = ',';
        const char *s = v[i] != NULL ? v[i] : "NULL";
        size_t k = strlen(s);
        memcpy(p, s, k);
        p += k;
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

void fi_upsert_quotes(fsr_call *call, const FixedIncome__V1__UpsertQuotesRequest *req)
{
    if (check_id(call, req->id) != 0)
        return;
    size_t n = req->n_quotes;
    if (n == 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "quotes", "must hold at least one quote");
        return;
    }
    if (n > FI_QUOTES_MAX) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "quotes", "must hold at most %d quotes",
                            FI_QUOTES_MAX);
        return;
    }
    /* Every quote is checked before anything is written. */
    for (size_t i = 0; i < n; i++) {
        if (check_quote(call, i, req->quotes[i]) != 0)
            return;
    }
    dated *d = fsr_call_alloc(call, sizeof(*d) * n);
    for (size_t i = 0; i < n; i++) {
        d[i].date = req->quotes[i]->date;
        d[i].i = i;
    }
    qsort(d, n, sizeof(*d), cmp_dated);
    /* The first repeat in request order is the one reported. */
    size_t dup = n;
    for (size_t k = 1; k < n; k++) {
        if (strcmp(d[k].date, d[k - 1].date) == 0 && d[k].i < dup)
            dup = d[k].i;
    }
    if (dup < n) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT,
                            fsr_call_printf(call, "quotes[%zu].date", dup),
                            "repeats the date of an earlier quote");
        return;
    }
    fsr_pg_pool *pool = fi_pool_of(call);
    if (pool == NULL)
        return;

    const char **dates = fsr_call_alloc(call, sizeof(*dates) * n);
    const char **prices = fsr_call_alloc(call, sizeof(*prices) * n);
    const char **yields = fsr_call_alloc(call, sizeof(*yields) * n);
    for (size_t i = 0; i < n; i++) {
        const FixedIncome__V1__BondQuote *q = req->quotes[i];
        dates[i] = q->date;
        bool price = q->value_case == FIXED_INCOME__V1__BOND_QUOTE__VALUE_CLEAN_PRICE;
        prices[i] = price ? q->clean_price : NULL;
        yields[i] = price ? NULL : q->yield;
    }
    upsert_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    op->from = d[0].date;
    op->to = d[n - 1].date;
    const char *values[4] = {
        req->id,
        array_literal(call, dates, n),
        array_literal(call, prices, n),
        array_literal(call, yields, n),
    };
    int rv = fsr_pg_query(pool, &fi_upsert_quotes_sql, 4, values, on_upserted, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "upsert quotes");
}

/* ---- ListQuotes --------------------------------------------------------------------- */

typedef struct list_op {
    fsr_call *call;
    const char *id;
} list_op;

static void on_listed(const fsr_pg_result *res, void *arg)
{
    list_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fi_fail_db(call, res, "list quotes");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    if (rows == 0) {
        fsr_call_fail_field(call, FSR_NOT_FOUND, "id", "bond %s not found", op->id);
        return;
    }
    if (fsr_pg_result_isnull(res, 0, 0))
        rows = 0;
    FixedIncome__V1__ListQuotesResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    fixed_income__v1__list_quotes_response__init(resp);
    size_t cap = (size_t)(rows > 0 ? rows : 1);
    resp->quotes = fsr_call_alloc(call, sizeof(*resp->quotes) * cap);
    FixedIncome__V1__BondQuote *qs = fsr_call_alloc(call, sizeof(*qs) * cap);
    for (int i = 0; i < rows; i++) {
        FixedIncome__V1__BondQuote *q = &qs[i];
        fixed_income__v1__bond_quote__init(q);
        q->date = fsr_pg_col_dup(call, res, i, 0);
        if (!fsr_pg_result_isnull(res, i, 1)) {
            q->value_case = FIXED_INCOME__V1__BOND_QUOTE__VALUE_CLEAN_PRICE;
            q->clean_price = fsr_pg_col_dup(call, res, i, 1);
        } else {
            q->value_case = FIXED_INCOME__V1__BOND_QUOTE__VALUE_YIELD;
            q->yield = fsr_pg_col_dup(call, res, i, 2);
        }
        resp->quotes[i] = q;
    }
    resp->n_quotes = (size_t)rows;
    fixed_income_v1_fixed_income_service_list_quotes_reply(call, resp);
}

void fi_list_quotes(fsr_call *call, const FixedIncome__V1__ListQuotesRequest *req)
{
    if (check_id(call, req->id) != 0)
        return;
    const char *fields[2] = { "from", "to" };
    const char *v[2] = { req->from, req->to };
    for (int k = 0; k < 2; k++) {
        if (v[k][0] != '\0' && fsr_date_parse(v[k], NULL, NULL, NULL) != 0) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, fields[k],
                                "must be a calendar date \"YYYY-MM-DD\"");
            return;
        }
    }
    if (v[0][0] != '\0' && v[1][0] != '\0' && strcmp(v[0], v[1]) > 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "to", "must not be before from");
        return;
    }
    fsr_pg_pool *pool = fi_pool_of(call);
    if (pool == NULL)
        return;
    list_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    const char *values[3] = { req->id, v[0][0] != '\0' ? v[0] : NULL,
                              v[1][0] != '\0' ? v[1] : NULL };
    int rv = fsr_pg_query(pool, &fi_list_quotes_sql, 3, values, on_listed, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "list quotes");
}
