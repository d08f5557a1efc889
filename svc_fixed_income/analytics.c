/* SPDX-License-Identifier: MIT */
/* Bond analytics: BondAnalytics (stateless), GetBondAnalytics and BatchAnalytics (stored). */
#include "fixed_income.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fsr/log.h"
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

static char *date_text(fsr_call *call, int32_t d)
{
    char buf[11];
    return fsr_call_printf(call, "%s", fi_date_format(d, buf));
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
 * FI_COLS, then the latest quote on or before $2 (any date when $2 is NULL): its date, clean
 * price (text) and yield, all NULL when there is none.  $1 is a uuid[] of the bonds wanted.
 */
#define FI_QCOLS FI_COLS ", " FI_DATE("q.date") ", q.clean_price::text, q.yield"
enum {
    COL_Q_DATE = COL_COUNT,
    COL_Q_CLEAN,
    COL_Q_YIELD,
    COL_Q_COUNT
};

static const fsr_pg_stmt fi_select_priced = {
    "fi_select_priced",
    "SELECT " FI_QCOLS " FROM bonds b LEFT JOIN LATERAL (SELECT date, clean_price, yield"
    " FROM bond_quotes WHERE bond_id = b.id AND ($2::date IS NULL OR date <= $2::date)"
    " ORDER BY date DESC LIMIT 1) q ON true WHERE b.id = ANY ($1::uuid[])",
};

static int terms_from_bond(const FixedIncome__V1__Bond *b, fi_terms *t)
{
    memset(t, 0, sizeof(*t));
    t->coupon_rate = b->coupon_rate;
    t->frequency = b->frequency;
    t->day_count = (int)b->day_count;
    t->issue_date = fi_date_parse(b->issue_date);
    t->maturity_date = fi_date_parse(b->maturity_date);
    return t->issue_date != FI_NO_DATE && t->maturity_date != FI_NO_DATE ? 0 : -1;
}

/*
 * Prices row |row| of a fi_select_priced result at |settle| (FI_NO_DATE: the quote's date,
 * else today) from the given input (|have_input|) or the row's quote.
 */
static FixedIncome__V1__BondAnalyticsResponse *price_row(fsr_call *call, const fsr_pg_result *res,
                                                         int row, const FixedIncome__V1__Bond *bond,
                                                         int32_t settle, bool have_input,
                                                         bool from_clean, double v, price_err *e)
{
    fi_terms t;
    if (terms_from_bond(bond, &t) != 0) {
        *e = (price_err){ FSR_INTERNAL, NULL, "internal error" };
        return NULL;
    }
    char *qdate = NULL;
    if (!have_input) {
        if (fsr_pg_result_isnull(res, row, COL_Q_DATE)) {
            *e = (price_err){ FSR_FAILED_PRECONDITION, "yield",
                              settle != FI_NO_DATE
                                  ? fsr_call_printf(call,
                                                    "no quote on or before %s: give yield or "
                                                    "cleanPrice",
                                                    date_text(call, settle))
                                  : "the bond has no quote: give yield or cleanPrice" };
            return NULL;
        }
        qdate = fsr_call_printf(call, "%s", fsr_pg_result_getvalue(res, row, COL_Q_DATE));
        from_clean = !fsr_pg_result_isnull(res, row, COL_Q_CLEAN);
        v = strtod(fsr_pg_result_getvalue(res, row, from_clean ? COL_Q_CLEAN : COL_Q_YIELD), NULL);
        if (settle == FI_NO_DATE)
            settle = fi_date_parse(qdate);
    }
    if (settle == FI_NO_DATE)
        settle = today_serial();
    FixedIncome__V1__BondAnalyticsResponse *r = price(call, &t, settle, from_clean, v, "", e);
    if (r != NULL) {
        r->bond_id = bond->id;
        if (qdate != NULL)
            r->quote_date = qdate;
    }
    return r;
}

/* ---- GetBondAnalytics --------------------------------------------------------------- */

typedef struct get_an_op {
    fsr_call *call;
    const char *id;
    int32_t settle;
    bool have_input, from_clean;
    double v;
} get_an_op;

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
    price_err e;
    FixedIncome__V1__BondAnalyticsResponse *r =
        price_row(call, res, 0, bond, op->settle, op->have_input, op->from_clean, op->v, &e);
    if (r == NULL) {
        fail_with(call, &e);
        return;
    }
    fixed_income_v1_fixed_income_service_get_bond_analytics_reply(call, r);
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
    if (settle_from_text(call, req->settlement_date, &op->settle) != 0)
        return;
    op->have_input =
        req->input_case != FIXED_INCOME__V1__GET_BOND_ANALYTICS_REQUEST__INPUT__NOT_SET;
    op->from_clean =
        req->input_case == FIXED_INCOME__V1__GET_BOND_ANALYTICS_REQUEST__INPUT_CLEAN_PRICE;
    op->v = op->from_clean ? req->clean_price : req->yield;
    fsr_pg_pool *pool = fi_pool_of(call);
    if (pool == NULL)
        return;
    const char *values[2] = {
        fsr_call_printf(call, "{%s}", req->id),
        op->settle != FI_NO_DATE ? req->settlement_date : NULL,
    };
    int rv = fsr_pg_query(pool, &fi_select_priced, 2, values, on_get_priced, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "bond analytics");
}

/* ---- BatchAnalytics ----------------------------------------------------------------- */

typedef struct batch_op {
    fsr_call *call;
    const FixedIncome__V1__BatchAnalyticsRequest *req;
    FixedIncome__V1__BatchAnalyticsItem *items; /* one per requested id */
    int32_t settle;
} batch_op;

static void item_fail(FixedIncome__V1__BatchAnalyticsItem *it, fsr_call *call, const price_err *e)
{
    it->error_code = (int32_t)e->code;
    it->error = e->field != NULL ? fsr_call_printf(call, "%s: %s", e->field, e->msg)
                                 : fsr_call_printf(call, "%s", e->msg);
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
    size_t n = op->req->n_bond_ids;
    /* Ids may repeat, so every item looks its row up (ids are few; rows are at most n). */
    for (size_t i = 0; i < n; i++) {
        FixedIncome__V1__BatchAnalyticsItem *it = &op->items[i];
        if (it->error_code != 0)
            continue;
        int row = -1;
        for (int k = 0; k < rows && row < 0; k++) {
            if (strcasecmp(fsr_pg_result_getvalue(res, k, COL_ID), it->bond_id) == 0)
                row = k;
        }
        if (row < 0) {
            it->error_code = FSR_NOT_FOUND;
            it->error = fsr_call_printf(call, "bond %s not found", it->bond_id);
            continue;
        }
        it->bond = fi_from_row(call, res, row);
        if (it->bond == NULL) {
            FSR_ERROR("batch analytics: unexpected result shape");
            fsr_call_fail(call, FSR_INTERNAL, "internal error");
            return;
        }
        price_err e;
        it->analytics = price_row(call, res, row, it->bond, op->settle, false, false, 0, &e);
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

void fi_batch_analytics(fsr_call *call, const FixedIncome__V1__BatchAnalyticsRequest *req)
{
    size_t n = req->n_bond_ids;
    if (n > FI_BATCH_MAX) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "bondIds", "at most %d ids per call",
                            FI_BATCH_MAX);
        return;
    }
    batch_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->req = req;
    if (settle_from_text(call, req->settlement_date, &op->settle) != 0)
        return;
    /* The valuation date is fixed for the whole batch: today when not given. */
    if (op->settle == FI_NO_DATE)
        op->settle = today_serial();
    op->items = fsr_call_alloc(call, sizeof(*op->items) * (n > 0 ? n : 1));
    /* "{id,id,...}": only well-formed ids go to Postgres; the others fail on their own. */
    size_t cap = 3 + n * 37;
    char *arr = fsr_call_alloc(call, cap);
    size_t len = 0;
    arr[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        FixedIncome__V1__BatchAnalyticsItem *it = &op->items[i];
        fixed_income__v1__batch_analytics_item__init(it);
        it->bond_id = req->bond_ids[i];
        if (!fsr_uuid_valid(req->bond_ids[i])) {
            it->error_code = FSR_INVALID_ARGUMENT;
            it->error = fsr_call_printf(call, "bondIds[%zu]: must be a UUID", i);
            continue;
        }
        if (len > 1)
            arr[len++] = ',';
        memcpy(arr + len, req->bond_ids[i], 36);
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
