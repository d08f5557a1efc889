/* SPDX-License-Identifier: MIT */
/*
 * Bond analytics: BondAnalytics (stateless), GetBondAnalytics and BatchAnalytics (stored).
 * Stored bonds are read through the bond cache (cache.c): one MGET for the whole request,
 * then one SQL statement for the misses, whose rows are cached behind the generation guard.
 */
#include "fixed_income.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fsr/handler.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/validate.h"

#include "bondmath.h"
#include "fixed_income_v1.fsr.h"

/* Most ids one BatchAnalytics call accepts. */
#define FI_BATCH_MAX 1000

/*
 * Pricing is pure CPU (well under a microsecond per bond), so it runs on the loop thread;
 * schedules are built into the call's arena, sized exactly by fi_terms_periods().
 */

/* Why one bond could not be priced: a gRPC code, the field to blame (or NULL) and a text. */
typedef struct price_err {
    fsr_code code;
    const char *field;
    const char *msg;
} price_err;

static int32_t today_serial(void)
{
    return (int32_t)(time(NULL) / 86400) + FI_DATE_1970;
}

/* "YYYY-MM-DD" in the call's arena (no printf: a batch formats some 50,000 of them). */
static char *date_text(fsr_call *call, int32_t d)
{
    return fi_date_format(d, fsr_call_alloc(call, 11));
}

/* Fills |e| for fi error |err|; terms fields get |prefix| ("terms." or ""). */
static void err_from_fi(fsr_call *call, int err, const char *prefix, price_err *e)
{
    const char *field = fi_err_field(err);
    e->code = FSR_INVALID_ARGUMENT;
    if (field == NULL) {
        e->code = FSR_INTERNAL;
        e->field = NULL;
        e->msg = "internal error";
        return;
    }
    bool term = err >= FI_E_FIRST_COUPON_DATE && err <= FI_E_COUPON_RATE;
    e->field = term ? fsr_call_printf(call, "%s%s", prefix, field) : field;
    if (err == FI_E_NO_YIELD)
        e->msg = fsr_call_printf(call,
                                 "no yield between %g%% and %g%% reproduces this clean "
                                 "price",
                                 FI_YIELD_MIN_FACTOR * 100, FI_YIELD_MAX * 100);
    else
        e->msg = fi_strerror(err);
}

/*
 * Prices the bond |t| at |settle| from |yield| (|from_clean| false) or clean price |v|, and
 * returns the response in the call's arena; NULL with |e| filled on failure.
 */
static FixedIncome__V1__BondAnalyticsResponse *price(fsr_call *call, const fi_terms *t,
                                                     int32_t settle, bool from_clean, double v,
                                                     const char *prefix, price_err *e)
{
    int n = fi_terms_periods(t);
    if (n < 0) {
        err_from_fi(call, n, prefix, e);
        return NULL;
    }
    fi_period *periods = fsr_call_alloc(call, sizeof(*periods) * (size_t)(n > 0 ? n : 1));
    fi_bond b;
    int rv = fi_bond_init(&b, t, periods, (size_t)(n > 0 ? n : 1));
    fi_analytics a;
    if (rv == 0)
        rv = from_clean ? fi_bond_price_from_clean(&b, settle, v, &a)
                        : fi_bond_price(&b, settle, v, &a);
    int ncf = rv == 0 ? fi_bond_cashflows(&b, settle, NULL, 0) : rv;
    if (ncf < 0) {
        err_from_fi(call, ncf, prefix, e);
        return NULL;
    }
    fi_cashflow *cf = fsr_call_alloc(call, sizeof(*cf) * (size_t)(ncf > 0 ? ncf : 1));
    fi_bond_cashflows(&b, settle, cf, (size_t)ncf);

    FixedIncome__V1__BondAnalyticsResponse *r = fsr_call_alloc(call, sizeof(*r));
    fixed_income__v1__bond_analytics_response__init(r);
    r->settlement_date = date_text(call, settle);
    r->accrued = a.accrued;
    r->clean_price = a.clean_price;
    r->dirty_price = a.dirty_price;
    r->yield = a.yield;
    r->macaulay_duration = a.macaulay_duration;
    r->modified_duration = a.modified_duration;
    r->convexity = a.convexity;
    r->bpv = a.bpv;
    r->n_cashflows = (size_t)ncf;
    r->cashflows = fsr_call_alloc(call, sizeof(*r->cashflows) * (size_t)(ncf > 0 ? ncf : 1));
    FixedIncome__V1__BondCashflow *flows =
        fsr_call_alloc(call, sizeof(*flows) * (size_t)(ncf > 0 ? ncf : 1));
    for (int i = 0; i < ncf; i++) {
        fixed_income__v1__bond_cashflow__init(&flows[i]);
        flows[i].date = date_text(call, cf[i].date);
        flows[i].amount = cf[i].amount;
        flows[i].kind = cf[i].kind == FI_CF_REDEMPTION
                            ? FIXED_INCOME__V1__BOND_CASHFLOW__KIND__REDEMPTION
                            : FIXED_INCOME__V1__BOND_CASHFLOW__KIND__COUPON;
        r->cashflows[i] = &flows[i];
    }
    /* The current coupon period: the first one still paying after settlement. */
    for (int i = 0; i < b.n; i++) {
        if (b.periods[i].end > settle) {
            r->previous_coupon_date = date_text(call, b.periods[i].start);
            r->next_coupon_date = date_text(call, b.periods[i].end);
            break;
        }
    }
    return r;
}

/*
 * Reads BondTerms into |t| with the same rules as CreateBond (identity fields are checked
 * only when given); returns 0, or -1 with |e| filled.
 */
static int terms_from_proto(fsr_call *call, const FixedIncome__V1__BondTerms *p, fi_terms *t,
                            price_err *e)
{
    e->code = FSR_INVALID_ARGUMENT;
    e->field = NULL;
    if (p == NULL) {
        e->field = "terms";
        e->msg = "is required";
        return -1;
    }
    if (p->isin[0] != '\0' && !fsr_isin_valid(p->isin)) {
        e->field = "terms.isin";
        e->msg = "is not a valid ISIN (shape or check digit)";
        return -1;
    }
    if (p->currency[0] != '\0' && !fsr_currency_valid(p->currency)) {
        e->field = "terms.currency";
        e->msg = "is not a known ISO 4217 currency code";
        return -1;
    }
    if (p->face[0] != '\0') {
        int sign = 0;
        const char *why = NULL;
        if (fsr_decimal_check(p->face, &sign, &why) != 0 || sign <= 0) {
            e->field = "terms.face";
            e->msg = why != NULL ? why : "must be > 0";
            return -1;
        }
    }
    memset(t, 0, sizeof(*t));
    t->coupon_rate = p->coupon_rate;
    t->frequency = p->frequency;
    /* Absent means THIRTY_360_US; the fi_day_count numbers are the proto's. */
    t->day_count = p->day_count == COMMON__V1__DAY_COUNT__VALUE__DAY_COUNT_UNSPECIFIED
                       ? FI_DC_THIRTY_360_US
                       : (int)p->day_count;
    t->issue_date = fi_date_parse(p->issue_date);
    t->maturity_date = fi_date_parse(p->maturity_date);
    if (p->issue_date[0] == '\0' || p->maturity_date[0] == '\0') {
        e->field = p->issue_date[0] == '\0' ? "terms.issueDate" : "terms.maturityDate";
        e->msg = "is required";
        return -1;
    }
    if (p->first_coupon_date[0] != '\0') {
        t->first_coupon_date = fi_date_parse(p->first_coupon_date);
        if (t->first_coupon_date == FI_NO_DATE) {
            e->field = "terms.firstCouponDate";
            e->msg = "must be a calendar date \"YYYY-MM-DD\" in 1901..2199";
            return -1;
        }
    }
    int n = fi_terms_periods(t);
    if (n < 0) {
        err_from_fi(call, n, "terms.", e);
        return -1;
    }
    return 0;
}

static void fail_with(fsr_call *call, const price_err *e)
{
    if (e->field != NULL)
        fsr_call_fail_field(call, e->code, e->field, "%s", e->msg);
    else
        fsr_call_fail(call, e->code, "%s", e->msg);
}

/* Parses a required or optional settlement date; on failure finishes |call|, returns -1. */
static int settle_from_text(fsr_call *call, const char *s, int32_t *out)
{
    if (s[0] == '\0') {
        *out = FI_NO_DATE;
        return 0;
    }
    *out = fi_date_parse(s);
    if (*out == FI_NO_DATE) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "settlementDate",
                            "must be a calendar date \"YYYY-MM-DD\" in 1901..2199");
        return -1;
    }
    return 0;
}

/* ---- BondAnalytics ------------------------------------------------------------------ */

void fi_bond_analytics(fsr_call *call, const FixedIncome__V1__BondAnalyticsRequest *req)
{
    price_err e;
    fi_terms t;
    if (terms_from_proto(call, req->terms, &t, &e) != 0) {
        fail_with(call, &e);
        return;
    }
    int32_t settle;
    if (settle_from_text(call, req->settlement_date, &settle) != 0)
        return;
    if (settle == FI_NO_DATE) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "settlementDate", "is required");
        return;
    }
    bool from_clean;
    double v;
    switch (req->input_case) {
    case FIXED_INCOME__V1__BOND_ANALYTICS_REQUEST__INPUT_YIELD:
        from_clean = false;
        v = req->yield;
        break;
    case FIXED_INCOME__V1__BOND_ANALYTICS_REQUEST__INPUT_CLEAN_PRICE:
        from_clean = true;
        v = req->clean_price;
        break;
    default:
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "yield", "yield or cleanPrice is required");
        return;
    }
    FixedIncome__V1__BondAnalyticsResponse *r =
        price(call, &t, settle, from_clean, v, "terms.", &e);
    if (r == NULL) {
        fail_with(call, &e);
        return;
    }
    fixed_income_v1_fixed_income_service_bond_analytics_reply(call, r);
}

/* ---- stored bonds: terms plus the latest quote on or before a date ------------------ */

/*
 * FI_COLS, then the bond's latest quote (date, clean price and yield as text, all NULL when
 * it has none) and, only when that quote is after $2, the latest quote on or before $2
 * (else NULL: the condition on l.date is a one-time filter, so that lookup usually costs
 * nothing).  $1 is a uuid[] of the bonds wanted; $2 NULL means no bound.  The first quote
 * is what the cache keeps (fi_cached.latest); the second serves a past settlement date.
 */
#define QUOTE_COLS(a) FI_DATE(a ".date") ", " a ".clean_price::text, " a ".yield::text"
enum {
    COL_L_DATE = COL_COUNT,
    COL_L_CLEAN,
    COL_L_YIELD,
    COL_Q_DATE,
    COL_Q_CLEAN,
    COL_Q_YIELD,
    COL_Q_COUNT
};

#define FI_PRICED_COLS FI_COLS ", " QUOTE_COLS("l") ", " QUOTE_COLS("q")
static const fsr_pg_stmt fi_select_priced = {
    "fi_select_priced",
    "SELECT " FI_PRICED_COLS " FROM bonds b LEFT JOIN LATERAL (SELECT date, clean_price, yield"
    " FROM bond_quotes WHERE bond_id = b.id ORDER BY date DESC LIMIT 1) l ON true"
    " LEFT JOIN LATERAL (SELECT date, clean_price, yield FROM bond_quotes"
    " WHERE bond_id = b.id AND l.date > $2::date AND date <= $2::date"
    " ORDER BY date DESC LIMIT 1) q ON true WHERE b.id = ANY ($1::uuid[])",
};

/* The price input of a request: a yield or clean price given (|have|), or none. */
typedef struct price_input {
    bool have, from_clean;
    double v;
} price_input;

static int terms_from_bond(const FixedIncome__V1__Bond *b, fi_terms *t)
{
    memset(t, 0, sizeof(*t));
    t->coupon_rate = b->coupon_rate;
    t->frequency = b->frequency;
    t->day_count = (int)b->day_count;
    t->issue_date = fi_date_parse(b->issue_date);
    t->maturity_date = fi_date_parse(b->maturity_date);
    if (b->first_coupon_date[0] != '\0') {
        t->first_coupon_date = fi_date_parse(b->first_coupon_date);
        if (t->first_coupon_date == FI_NO_DATE)
            return -1;
    }
    return t->issue_date != FI_NO_DATE && t->maturity_date != FI_NO_DATE ? 0 : -1;
}

/* The quote in columns |col|.. of row |row| (date, clean price, yield); NULL if none. */
static FixedIncome__V1__BondQuote *quote_from_row(fsr_call *call, const fsr_pg_result *res, int row,
                                                  int col)
{
    if (fsr_pg_result_isnull(res, row, col))
        return NULL;
    FixedIncome__V1__BondQuote *q = fsr_call_alloc(call, sizeof(*q));
    fixed_income__v1__bond_quote__init(q);
    q->date = fsr_pg_col_dup(call, res, row, col);
    if (!fsr_pg_result_isnull(res, row, col + 1)) {
        q->value_case = FIXED_INCOME__V1__BOND_QUOTE__VALUE_CLEAN_PRICE;
        q->clean_price = fsr_pg_col_dup(call, res, row, col + 1);
    } else {
        q->value_case = FIXED_INCOME__V1__BOND_QUOTE__VALUE_YIELD;
        q->yield = fsr_pg_col_dup(call, res, row, col + 2);
    }
    return q;
}

/*
 * Whether a bond whose latest quote is |latest| needs nothing older to be priced at
 * |settle| (FI_NO_DATE: at the latest quote's date): true when it has no quote at all (then
 * it has none on or before any date either) or its latest is on or before |settle|.
 */
static bool latest_serves(const FixedIncome__V1__BondQuote *latest, int32_t settle)
{
    return latest == NULL || settle == FI_NO_DATE || fi_date_parse(latest->date) <= settle;
}

/*
 * Prices the stored bond |bond| at |settle| (FI_NO_DATE: the quote's date, else today) from
 * the given input or, without one, from |quote| (the latest on or before |settle|; NULL
 * when there is none: FAILED_PRECONDITION, since the bond exists but its data does not).
 */
static FixedIncome__V1__BondAnalyticsResponse *
price_stored(fsr_call *call, const FixedIncome__V1__Bond *bond, int32_t settle,
             const price_input *in, const FixedIncome__V1__BondQuote *quote, price_err *e)
{
    fi_terms t;
    if (terms_from_bond(bond, &t) != 0) {
        FSR_ERROR("bond %s: stored terms do not parse", bond->id);
        *e = (price_err){ FSR_INTERNAL, NULL, "internal error" };
        return NULL;
    }
    bool from_clean = in->from_clean;
    double v = in->v;
    const char *qdate = NULL;
    if (!in->have) {
        if (quote == NULL) {
            *e = (price_err){ FSR_FAILED_PRECONDITION, "yield",
                              settle != FI_NO_DATE
                                  ? fsr_call_printf(call,
                                                    "no quote on or before %s: give yield or "
                                                    "cleanPrice",
                                                    date_text(call, settle))
                                  : "the bond has no quote: give yield or cleanPrice" };
            return NULL;
        }
        qdate = quote->date;
        from_clean = quote->value_case == FIXED_INCOME__V1__BOND_QUOTE__VALUE_CLEAN_PRICE;
        v = strtod(from_clean ? quote->clean_price : quote->yield, NULL);
        if (settle == FI_NO_DATE)
            settle = fi_date_parse(qdate);
    }
    if (settle == FI_NO_DATE)
        settle = today_serial();
    FixedIncome__V1__BondAnalyticsResponse *r = price(call, &t, settle, from_clean, v, "", e);
    if (r != NULL) {
        r->bond_id = bond->id;
        if (qdate != NULL)
            r->quote_date = fsr_call_printf(call, "%s", qdate);
    }
    return r;
}

/* The generation element of an MGET reply, copied ("" when absent). */
static const char *gen_text(fsr_call *call, const redisReply *g)
{
    if (g != NULL && g->type == REDIS_REPLY_STRING)
        return fsr_arena_strndup(fsr_call_arena(call), g->str, g->len);
    return "";
}

/* ---- GetBondAnalytics --------------------------------------------------------------- */

typedef struct get_an_op {
    fsr_call *call;
    const char *id;
    int32_t settle;
    price_input in;
    const char *gen; /* a cache miss: the generation seen; NULL: do not fill */
} get_an_op;

static void reply_get(get_an_op *op, const FixedIncome__V1__Bond *bond,
                      const FixedIncome__V1__BondQuote *quote)
{
    price_err e;
    FixedIncome__V1__BondAnalyticsResponse *r =
        price_stored(op->call, bond, op->settle, &op->in, quote, &e);
    if (r == NULL) {
        fail_with(op->call, &e);
        return;
    }
    fixed_income_v1_fixed_income_service_get_bond_analytics_reply(op->call, r);
}

static void on_get_priced(const fsr_pg_result *res, void *arg)
{
    get_an_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fi_fail_db(call, res, "bond analytics");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail(call, FSR_NOT_FOUND, "bond %s not found", op->id);
        return;
    }
    FixedIncome__V1__Bond *bond =
        fsr_pg_result_cols(res) == COL_Q_COUNT ? fi_from_row(call, res, 0) : NULL;
    if (bond == NULL) {
        FSR_ERROR("bond analytics: unexpected result shape");
        fsr_call_fail(call, FSR_INTERNAL, "internal error");
        return;
    }
    FixedIncome__V1__BondQuote *latest = quote_from_row(call, res, 0, COL_L_DATE);
    if (op->gen != NULL) {
        fi_cached c = { bond, latest };
        fi_cache_fill(call, &c, &op->gen, 1);
    }
    reply_get(op, bond,
              latest_serves(latest, op->settle) ? latest
                                                : quote_from_row(call, res, 0, COL_Q_DATE));
}

static void get_from_db(get_an_op *op)
{
    fsr_call *call = op->call;
    fsr_pg_pool *pool = fi_pool_of(call);
    if (pool == NULL)
        return;
    const char *values[2] = {
        fsr_call_printf(call, "{%s}", op->id),
        op->settle != FI_NO_DATE ? date_text(call, op->settle) : NULL,
    };
    int rv = fsr_pg_query(pool, &fi_select_priced, 2, values, on_get_priced, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "bond analytics");
}

static void on_get_cached(const redisReply *reply, int status, void *arg)
{
    get_an_op *op = arg;
    if (status == 0 && reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        const redisReply *ent = reply->element[0];
        fi_cached c;
        if (ent->type == REDIS_REPLY_STRING &&
            fi_cache_decode(op->call, ent->str, ent->len, &c) == 0) {
            if (op->in.have || latest_serves(c.latest, op->settle)) {
                reply_get(op, c.bond, c.latest);
                return;
            }
            /* The entry is current but the settlement date wants an older quote. */
        } else {
            op->gen = gen_text(op->call, reply->element[1]);
        }
    } else if (status != 0) {
        FSR_WARN("bond cache: %s; reading the database", fsr_strerror(status));
    }
    get_from_db(op);
}

void fi_get_bond_analytics(fsr_call *call, const FixedIncome__V1__GetBondAnalyticsRequest *req)
{
    if (!fsr_uuid_valid(req->id)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "id",
                            req->id[0] == '\0' ? "is required" : "must be a UUID");
        return;
    }
    get_an_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    op->gen = NULL;
    if (settle_from_text(call, req->settlement_date, &op->settle) != 0)
        return;
    op->in.have = req->input_case != FIXED_INCOME__V1__GET_BOND_ANALYTICS_REQUEST__INPUT__NOT_SET;
    op->in.from_clean =
        req->input_case == FIXED_INCOME__V1__GET_BOND_ANALYTICS_REQUEST__INPUT_CLEAN_PRICE;
    op->in.v = op->in.from_clean ? req->clean_price : req->yield;
    const char *ids[1] = { req->id };
    if (fi_cache_get(call, ids, 1, on_get_cached, op) != 0)
        get_from_db(op);
}

/* ---- BatchAnalytics ----------------------------------------------------------------- */

/* Where one requested bond stands before pricing. */
typedef struct batch_slot {
    FixedIncome__V1__Bond *bond;             /* its terms, once known */
    const FixedIncome__V1__BondQuote *quote; /* the quote that prices it; NULL: none */
    bool need_db;                            /* not (usefully) cached: ask Postgres */
    const char *gen;                         /* a miss: the generation seen; NULL: no fill */
} batch_slot;

typedef struct batch_op {
    fsr_call *call;
    const FixedIncome__V1__BatchAnalyticsRequest *req;
    FixedIncome__V1__BatchAnalyticsItem *items; /* one per requested id */
    batch_slot *slots;                          /* one per requested id */
    const char **valid_ids;                     /* the well-formed ids ... */
    size_t *valid;                              /* ... and their request indices */
    size_t n_valid;
    int32_t settle;
} batch_op;

static void item_fail(FixedIncome__V1__BatchAnalyticsItem *it, fsr_call *call, const price_err *e)
{
    it->error_code = (int32_t)e->code;
    it->error = e->field != NULL ? fsr_call_printf(call, "%s: %s", e->field, e->msg)
                                 : fsr_call_printf(call, "%s", e->msg);
}

/* Prices every item that has not failed yet and answers. */
static void batch_finish(batch_op *op)
{
    fsr_call *call = op->call;
    size_t n = op->req->n_bond_ids;
    static const price_input none = { false, false, 0.0 };
    for (size_t i = 0; i < n; i++) {
        FixedIncome__V1__BatchAnalyticsItem *it = &op->items[i];
        if (it->error_code != 0)
            continue;
        batch_slot *s = &op->slots[i];
        it->bond = s->bond;
        price_err e;
        it->analytics = price_stored(call, s->bond, op->settle, &none, s->quote, &e);
        if (it->analytics == NULL)
            item_fail(it, call, &e);
    }
    FixedIncome__V1__BatchAnalyticsResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    fixed_income__v1__batch_analytics_response__init(resp);
    resp->n_items = n;
    resp->items = fsr_call_alloc(call, sizeof(*resp->items) * (n > 0 ? n : 1));
    for (size_t i = 0; i < n; i++)
        resp->items[i] = &op->items[i];
    fixed_income_v1_fixed_income_service_batch_analytics_reply(call, resp);
}

/* A result row by id: the rows sorted once, then binary search (ids are UUID text). */
typedef struct row_ref {
    const char *id;
    int row;
} row_ref;

static int cmp_row_ref(const void *a, const void *b)
{
    return strcasecmp(((const row_ref *)a)->id, ((const row_ref *)b)->id);
}

static void on_batch_priced(const fsr_pg_result *res, void *arg)
{
    batch_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fi_fail_db(call, res, "batch analytics");
        return;
    }
    if (fsr_pg_result_cols(res) != COL_Q_COUNT) {
        FSR_ERROR("batch analytics: unexpected result shape");
        fsr_call_fail(call, FSR_INTERNAL, "internal error");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    row_ref *index = fsr_call_alloc(call, sizeof(*index) * (size_t)(rows > 0 ? rows : 1));
    for (int k = 0; k < rows; k++)
        index[k] = (row_ref){ fsr_pg_result_getvalue(res, k, COL_ID), k };
    qsort(index, (size_t)rows, sizeof(*index), cmp_row_ref);

    fi_cached *fills = fsr_call_alloc(call, sizeof(*fills) * op->n_valid);
    const char **gens = fsr_call_alloc(call, sizeof(*gens) * op->n_valid);
    size_t n_fill = 0;
    for (size_t k = 0; k < op->n_valid; k++) {
        size_t i = op->valid[k];
        batch_slot *s = &op->slots[i];
        if (!s->need_db)
            continue;
        FixedIncome__V1__BatchAnalyticsItem *it = &op->items[i];
        row_ref key = { it->bond_id, 0 };
        const row_ref *hit =
            rows > 0 ? bsearch(&key, index, (size_t)rows, sizeof(*index), cmp_row_ref) : NULL;
        if (hit == NULL) {
            it->error_code = FSR_NOT_FOUND;
            it->error = fsr_call_printf(call, "bond %s not found", it->bond_id);
            continue;
        }
        s->bond = fi_from_row(call, res, hit->row);
        if (s->bond == NULL) {
            FSR_ERROR("batch analytics: unexpected result shape");
            fsr_call_fail(call, FSR_INTERNAL, "internal error");
            return;
        }
        FixedIncome__V1__BondQuote *latest = quote_from_row(call, res, hit->row, COL_L_DATE);
        if (s->gen != NULL) {
            fills[n_fill] = (fi_cached){ s->bond, latest };
            gens[n_fill++] = s->gen;
        }
        s->quote = latest_serves(latest, op->settle)
                       ? latest
                       : quote_from_row(call, res, hit->row, COL_Q_DATE);
    }
    fi_cache_fill(call, fills, gens, n_fill);
    batch_finish(op);
}

/* One SQL statement for every slot marked need_db. */
static void batch_from_db(batch_op *op)
{
    fsr_call *call = op->call;
    /* "{id,id,...}" */
    char *arr = fsr_call_alloc(call, 3 + op->n_valid * 37);
    size_t len = 0;
    arr[len++] = '{';
    for (size_t k = 0; k < op->n_valid; k++) {
        if (!op->slots[op->valid[k]].need_db)
            continue;
        if (len > 1)
            arr[len++] = ',';
        memcpy(arr + len, op->valid_ids[k], 36);
        len += 36;
    }
    arr[len++] = '}';
    arr[len] = '\0';
    fsr_pg_pool *pool = fi_pool_of(call);
    if (pool == NULL)
        return;
    const char *values[2] = { arr, date_text(call, op->settle) };
    int rv = fsr_pg_query(pool, &fi_select_priced, 2, values, on_batch_priced, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "batch analytics");
}

static void on_batch_cached(const redisReply *reply, int status, void *arg)
{
    batch_op *op = arg;
    size_t m = op->n_valid;
    bool ok = status == 0 && reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
              reply->elements == 2 * m;
    if (status != 0)
        FSR_WARN("bond cache: %s; reading the database", fsr_strerror(status));
    size_t misses = 0;
    for (size_t k = 0; k < m; k++) {
        batch_slot *s = &op->slots[op->valid[k]];
        fi_cached c;
        const redisReply *ent = ok ? reply->element[k] : NULL;
        if (ent != NULL && ent->type == REDIS_REPLY_STRING &&
            fi_cache_decode(op->call, ent->str, ent->len, &c) == 0) {
            s->bond = c.bond;
            if (latest_serves(c.latest, op->settle)) {
                s->quote = c.latest;
                continue;
            }
        } else if (ok) {
            s->gen = gen_text(op->call, reply->element[m + k]);
        }
        s->need_db = true;
        misses++;
    }
    if (misses > 0)
        batch_from_db(op);
    else
        batch_finish(op);
}

void fi_batch_analytics(fsr_call *call, const FixedIncome__V1__BatchAnalyticsRequest *req)
{
    size_t n = req->n_bond_ids;
    if (n > FI_BATCH_MAX) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "bondIds", "at most %d ids per call",
                            FI_BATCH_MAX);
        return;
    }
    batch_op *op = fsr_call_alloc(call, sizeof(*op));
    memset(op, 0, sizeof(*op));
    op->call = call;
    op->req = req;
    if (settle_from_text(call, req->settlement_date, &op->settle) != 0)
        return;
    /* The valuation date is fixed for the whole batch: today when not given. */
    if (op->settle == FI_NO_DATE)
        op->settle = today_serial();
    size_t cap = n > 0 ? n : 1;
    op->items = fsr_call_alloc(call, sizeof(*op->items) * cap);
    op->slots = fsr_call_alloc(call, sizeof(*op->slots) * cap);
    op->valid_ids = fsr_call_alloc(call, sizeof(*op->valid_ids) * cap);
    op->valid = fsr_call_alloc(call, sizeof(*op->valid) * cap);
    for (size_t i = 0; i < n; i++) {
        FixedIncome__V1__BatchAnalyticsItem *it = &op->items[i];
        fixed_income__v1__batch_analytics_item__init(it);
        it->bond_id = req->bond_ids[i];
        op->slots[i] = (batch_slot){ NULL, NULL, false, NULL };
        /* Only well-formed ids go to Redis and Postgres; the others fail on their own. */
        if (!fsr_uuid_valid(req->bond_ids[i])) {
            it->error_code = FSR_INVALID_ARGUMENT;
            it->error = fsr_call_printf(call, "bondIds[%zu]: must be a UUID", i);
            continue;
        }
        op->valid_ids[op->n_valid] = req->bond_ids[i];
        op->valid[op->n_valid++] = i;
    }
    if (op->n_valid == 0) {
        batch_finish(op);
        return;
    }
    if (fi_cache_get(call, op->valid_ids, op->n_valid, on_batch_cached, op) != 0) {
        for (size_t k = 0; k < op->n_valid; k++)
            op->slots[op->valid[k]].need_db = true;
        batch_from_db(op);
    }
}
