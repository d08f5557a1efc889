/* SPDX-License-Identifier: MIT */
/*
 * BatchPriceHistory: the daily price history of up to FI_HISTORY_MAX stored bonds over a
 * date window, each quote priced with the bond math at settlement = quote date.
 *
 * One SQL statement reads the terms of every requested bond and every quote in the window
 * (a UNION ALL of two row kinds, so the terms travel once per bond, not once per quote).
 * Each bond's schedule is built once; each point is then priced from its clean price
 * (yield solved) or its yield, and cash_paid sums the coupons (and the redemption) whose
 * payment date lies in (previous point's date, this point's date].  A coupon paid on a quote
 * date belongs to the seller at that settlement (bondmath.h), so it is in that point's
 * cash_paid and not in its dirty price: (dirty_t + cash_paid_t) / dirty_{t-1} - 1 is the
 * holding-period total return.
 *
 * Quotes dated before the issue date or on/after the maturity date have no price (nothing
 * left to settle) and are left out of the history.  A quote that cannot be priced (e.g. no
 * yield reproduces its clean price) fails the whole item (FAILED_PRECONDITION naming the
 * date): a history with a silent hole would give a wrong return.
 */
#include "fixed_income.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsr/handler.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/validate.h"

#include "bondmath.h"
#include "fixed_income_v1.fsr.h"

/* Most ids one call accepts. */
#define FI_HISTORY_MAX 1000
/* Longest window: 20 years. */
#define FI_HISTORY_MONTHS 240

/*
 * Row kind 0: FI_COLS of one bond (quote columns NULL).  Row kind 1: one quote (the bond id,
 * NULLs for the other FI_COLS, the quote).  The kind is the last column so that fi_from_row()
 * reads a bond row as it is.  $1 uuid[], $2/$3 the inclusive window.
 */
enum {
    H_BOND = COL_ID,
    H_Q_DATE = COL_COUNT,
    H_Q_CLEAN,
    H_Q_YIELD,
    H_KIND,
    H_COUNT
};

#define H_NULLS13 "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
static const fsr_pg_stmt fi_select_history = {
    "fi_select_history",
    "SELECT " FI_COLS ", NULL::text, NULL::text, NULL::text, 0 FROM bonds"
    " WHERE id = ANY ($1::uuid[])"
    " UNION ALL SELECT bond_id, " H_NULLS13
    ", " FI_DATE("date") ", clean_price::text,"
                         " yield::text, 1 FROM bond_quotes WHERE bond_id = ANY ($1::uuid[])"
                         " AND date BETWEEN $2::date AND $3::date",
};

typedef struct hist_op {
    fsr_call *call;
    const FixedIncome__V1__BatchPriceHistoryRequest *req;
    FixedIncome__V1__BondPriceHistory *items; /* one per requested id */
    int32_t from, to;
} hist_op;

/* A bond row or a quote row, to sort by (id, kind, date). */
typedef struct hrow {
    const char *id;
    int32_t date; /* 0 for the bond row: sorts first */
    int row;
} hrow;

static int cmp_hrow(const void *a, const void *b)
{
    const hrow *x = a, *y = b;
    int c = strcasecmp(x->id, y->id);
    if (c != 0)
        return c;
    return (x->date > y->date) - (x->date < y->date);
}

static void item_fail(fsr_call *call, FixedIncome__V1__BondPriceHistory *it, fsr_code code,
                      const char *msg)
{
    it->error_code = (int32_t)code;
    it->error = fsr_call_printf(call, "%s", msg);
    it->n_points = 0;
}

static int terms_of(const FixedIncome__V1__Bond *b, fi_terms *t)
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

/*
 * Prices the quotes |q|[0..n) (sorted by date) of |bond| into |it|.  Returns 0, or -1 with
 * |it| failed.
 */
static int price_history(fsr_call *call, const fsr_pg_result *res,
                         FixedIncome__V1__BondPriceHistory *it, const FixedIncome__V1__Bond *bond,
                         const hrow *q, size_t n)
{
    fi_terms t;
    int np = terms_of(bond, &t) == 0 ? fi_terms_periods(&t) : -1;
    if (np < 0) {
        FSR_ERROR("bond %s: stored terms do not parse", bond->id);
        item_fail(call, it, FSR_INTERNAL, "internal error");
        return -1;
    }
    size_t cap = np > 0 ? (size_t)np : 1;
    fi_period *periods = fsr_call_alloc(call, sizeof(*periods) * cap);
    fi_bond b;
    if (fi_bond_init(&b, &t, periods, cap) != 0) {
        item_fail(call, it, FSR_INTERNAL, "internal error");
        return -1;
    }
    FixedIncome__V1__BondPricePoint *pts = fsr_call_alloc(call, sizeof(*pts) * (n > 0 ? n : 1));
    it->points = fsr_call_alloc(call, sizeof(*it->points) * (n > 0 ? n : 1));
    size_t k = 0;
    int ci = 0; /* next coupon period whose payment date is not yet counted */
    int32_t prev = FI_NO_DATE;
    for (size_t j = 0; j < n; j++) {
        int32_t d = q[j].date;
        /* Outside the bond's life: nothing to settle; see the file comment. */
        if (d < t.issue_date || d >= t.maturity_date)
            continue;
        fi_analytics a;
        int rv;
        if (!fsr_pg_result_isnull(res, q[j].row, H_Q_CLEAN))
            rv = fi_bond_price_from_clean(
                &b, d, strtod(fsr_pg_result_getvalue(res, q[j].row, H_Q_CLEAN), NULL), &a);
        else
            rv = fi_bond_price(&b, d,
                               strtod(fsr_pg_result_getvalue(res, q[j].row, H_Q_YIELD), NULL), &a);
        if (rv != 0) {
            char buf[11];
            item_fail(call, it, FSR_FAILED_PRECONDITION,
                      fsr_call_printf(call, "quote of %s cannot be priced: %s",
                                      fi_date_format(d, buf), fi_strerror(rv)));
            return -1;
        }
        /* Cash paid in (prev, d]: none before the first point. */
        double cash = 0.0;
        while (ci < b.n && b.periods[ci].end <= d) {
            if (prev != FI_NO_DATE && b.periods[ci].end > prev)
                cash += b.periods[ci].amount;
            ci++;
        }
        FixedIncome__V1__BondPricePoint *p = &pts[k];
        fixed_income__v1__bond_price_point__init(p);
        p->date = fi_date_format(d, fsr_call_alloc(call, 11));
        p->clean_price = a.clean_price;
        p->dirty_price = a.dirty_price;
        p->accrued = a.accrued;
        p->yield = a.yield;
        p->cash_paid = cash;
        it->points[k++] = p;
        prev = d;
    }
    it->n_points = k;
    return 0;
}

static void on_history(const fsr_pg_result *res, void *arg)
{
    hist_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fi_fail_db(call, res, "price history");
        return;
    }
    if (fsr_pg_result_cols(res) != H_COUNT) {
        FSR_ERROR("price history: unexpected result shape");
        fsr_call_fail(call, FSR_INTERNAL, "internal error");
        return;
    }
    /*
     * Bond rows sorted by id (at most FI_HISTORY_MAX); each quote row finds its bond by
     * binary search (skipped while rows keep the previous row's id, as the primary-key scan
     * returns them), then a counting sort buckets the quotes per bond, each bucket put in
     * date order only if it is not already.  No string sort over the 250,000 quotes of a
     * year of 1,000 bonds.
     */
    int rows = fsr_pg_result_rows(res);
    size_t cap = rows > 0 ? (size_t)rows : 1;
    hrow *bonds = fsr_call_alloc(call, sizeof(*bonds) * cap);
    size_t nb = 0;
    for (int r = 0; r < rows; r++)
        if (fsr_pg_result_getvalue(res, r, H_KIND)[0] != '1')
            bonds[nb++] = (hrow){ fsr_pg_result_getvalue(res, r, H_BOND), 0, r };
    qsort(bonds, nb, sizeof(*bonds), cmp_hrow);
    hrow *quotes = fsr_call_alloc(call, sizeof(*quotes) * cap);
    int *bix = fsr_call_alloc(call, sizeof(*bix) * cap);
    size_t *count = fsr_call_alloc(call, sizeof(*count) * (nb + 1));
    memset(count, 0, sizeof(*count) * (nb + 1));
    size_t nq = 0;
    const char *prev = NULL;
    int pb = -1;
    for (int r = 0; r < rows; r++) {
        if (fsr_pg_result_getvalue(res, r, H_KIND)[0] != '1')
            continue;
        const char *id = fsr_pg_result_getvalue(res, r, H_BOND);
        if (prev == NULL || strcmp(prev, id) != 0) {
            hrow key = { id, 0, 0 };
            const hrow *hit = bsearch(&key, bonds, nb, sizeof(*bonds), cmp_hrow);
            pb = hit != NULL ? (int)(hit - bonds) : -1;
            prev = id;
        }
        if (pb < 0)
            continue; /* cannot happen: quotes reference bonds */
        quotes[nq] = (hrow){ id, fi_date_parse(fsr_pg_result_getvalue(res, r, H_Q_DATE)), r };
        bix[nq++] = pb;
        count[pb]++;
    }
    size_t *at = fsr_call_alloc(call, sizeof(*at) * (nb + 1));
    at[0] = 0;
    for (size_t b = 0; b < nb; b++)
        at[b + 1] = at[b] + count[b];
    hrow *sorted = fsr_call_alloc(call, sizeof(*sorted) * cap);
    size_t *fill = fsr_call_alloc(call, sizeof(*fill) * (nb + 1));
    memcpy(fill, at, sizeof(*fill) * (nb + 1));
    for (size_t q = 0; q < nq; q++)
        sorted[fill[bix[q]]++] = quotes[q];
    for (size_t b = 0; b < nb; b++) {
        for (size_t q = at[b] + 1; q < at[b + 1]; q++) {
            if (sorted[q].date < sorted[q - 1].date) {
                qsort(sorted + at[b], at[b + 1] - at[b], sizeof(*sorted), cmp_hrow);
                break;
            }
        }
    }

    size_t n = op->req->n_bond_ids;
    for (size_t i = 0; i < n; i++) {
        FixedIncome__V1__BondPriceHistory *it = &op->items[i];
        if (it->error_code != 0)
            continue;
        hrow key = { it->bond_id, 0, 0 };
        const hrow *hit = nb > 0 ? bsearch(&key, bonds, nb, sizeof(*bonds), cmp_hrow) : NULL;
        if (hit == NULL) {
            item_fail(call, it, FSR_NOT_FOUND,
                      fsr_call_printf(call, "bond %s not found", it->bond_id));
            continue;
        }
        size_t b = (size_t)(hit - bonds);
        it->bond = fi_from_row(call, res, hit->row);
        if (it->bond == NULL) {
            FSR_ERROR("price history: unexpected result shape");
            fsr_call_fail(call, FSR_INTERNAL, "internal error");
            return;
        }
        price_history(call, res, it, it->bond, sorted + at[b], at[b + 1] - at[b]);
    }
    FixedIncome__V1__BatchPriceHistoryResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    fixed_income__v1__batch_price_history_response__init(resp);
    resp->n_items = n;
    resp->items = fsr_call_alloc(call, sizeof(*resp->items) * (n > 0 ? n : 1));
    for (size_t i = 0; i < n; i++)
        resp->items[i] = &op->items[i];
    fixed_income_v1_fixed_income_service_batch_price_history_reply(call, resp);
}

static int32_t parse_bound(fsr_call *call, const char *s, const char *field)
{
    if (s[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field, "is required");
        return FI_NO_DATE;
    }
    int32_t d = fi_date_parse(s);
    if (d == FI_NO_DATE)
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, field,
                            "must be a calendar date \"YYYY-MM-DD\" in 1901..2199");
    return d;
}

void fi_batch_price_history(fsr_call *call, const FixedIncome__V1__BatchPriceHistoryRequest *req)
{
    size_t n = req->n_bond_ids;
    if (n > FI_HISTORY_MAX) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "bondIds", "at most %d ids per call",
                            FI_HISTORY_MAX);
        return;
    }
    hist_op *op = fsr_call_alloc(call, sizeof(*op));
    memset(op, 0, sizeof(*op));
    op->call = call;
    op->req = req;
    if ((op->from = parse_bound(call, req->from, "from")) == FI_NO_DATE)
        return;
    if ((op->to = parse_bound(call, req->to, "to")) == FI_NO_DATE)
        return;
    if (op->to < op->from) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "to", "must not be before from");
        return;
    }
    if (op->to > fi_date_add_months(op->from, FI_HISTORY_MONTHS)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "to", "at most 20 years after from");
        return;
    }
    size_t cap = n > 0 ? n : 1;
    op->items = fsr_call_alloc(call, sizeof(*op->items) * cap);
    /* "{id,id,...}" of the well-formed ids; the others fail on their own. */
    char *arr = fsr_call_alloc(call, 3 + n * 37);
    size_t len = 0, valid = 0;
    arr[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        FixedIncome__V1__BondPriceHistory *it = &op->items[i];
        fixed_income__v1__bond_price_history__init(it);
        it->bond_id = req->bond_ids[i];
        if (!fsr_uuid_valid(req->bond_ids[i])) {
            it->error_code = FSR_INVALID_ARGUMENT;
            it->error = fsr_call_printf(call, "bondIds[%zu]: must be a UUID", i);
            continue;
        }
        if (valid++ > 0)
            arr[len++] = ',';
        memcpy(arr + len, req->bond_ids[i], 36);
        len += 36;
    }
    arr[len++] = '}';
    arr[len] = '\0';
    fsr_pg_pool *pool = fi_pool_of(call);
    if (pool == NULL)
        return;
    const char *values[3] = { arr, fi_date_format(op->from, fsr_call_alloc(call, 11)),
                              fi_date_format(op->to, fsr_call_alloc(call, 11)) };
    int rv = fsr_pg_query(pool, &fi_select_history, 3, values, on_history, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "price history");
}
