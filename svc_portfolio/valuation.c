/* SPDX-License-Identifier: MIT */
/*
 * pf_valuation_load (portfolio.h): a portfolio priced as of a date, the shared input of
 * Calculate, ListConstituents and Rebalance.
 *
 * Two round trips whatever the size of the portfolio: one SQL statement reads the portfolio
 * (scoped to the caller: another client's portfolio is NOT_FOUND) with every constituent,
 * then pf_market_fetch() prices every instrument -- the holdings and the instruments of
 * instrument targets not held -- from the cache, with one BatchQuotes and one
 * BatchAnalytics call for the misses.  Quantities and cash are the current ones (the
 * ledger's running balances), priced as of the requested date.
 */
#include "portfolio.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsr/app.h"
#include "fsr/json.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/pg.h"
#include "fsr/validate.h"

#include "market.h"

#define PF_P_CREATED PF_TS("p.created_at")
#define PF_P_UPDATED PF_TS("p.updated_at")
#define PF_C_CREATED PF_TS("c.created_at")

/*
 * The portfolio ('p', last) and its constituents ('c', in the order they were added), as
 * tagged rows of ONE statement, so both come from one snapshot: a version read with
 * holdings of another version could let Rebalance execute trades computed on holdings that
 * have changed since (pf_portfolio_from_row() needs a result of its own, hence the local
 * row reader).  No 'p' row: no such portfolio for this caller.
 */
static const fsr_pg_stmt pf_valuation_sql = {
    "pf_valuation_load",
    "SELECT 'p', p.id::text, coalesce(p.client_id::text, ''), p.name, p.base_currency::text,"
    " p.cash::text, p.targets::text, coalesce(p.benchmark::text, ''), p.version::text,"
    " " PF_P_CREATED ", " PF_P_UPDATED ", p.allow_negative::text"
    " FROM portfolios p WHERE p.id = $1::uuid AND ($2::uuid IS NULL OR p.client_id = $2::uuid)"
    " UNION ALL SELECT 'c', c.id::text, c.instrument_type, c.instrument_id::text, c.symbol,"
    " c.quantity::text, " PF_C_CREATED ", NULL, NULL, NULL, NULL, NULL"
    " FROM constituents c JOIN portfolios p ON p.id = c.portfolio_id"
    " WHERE p.id = $1::uuid AND ($2::uuid IS NULL OR p.client_id = $2::uuid)"
    " ORDER BY 1, 7, 2",
};

enum {
    COL_TAG,
    /* 'p' */
    COL_P_ID,
    COL_P_CLIENT,
    COL_P_NAME,
    COL_P_CCY,
    COL_P_CASH,
    COL_P_TARGETS,
    COL_P_BENCH,
    COL_P_VERSION,
    COL_P_CREATED,
    COL_P_UPDATED,
    COL_P_ALLOW_NEG,
    COL_COUNT,
    /* 'c' */
    COL_C_ID = COL_P_ID,
    COL_C_TYPE = COL_P_CLIENT,
    COL_C_INSTRUMENT = COL_P_NAME,
    COL_C_SYMBOL = COL_P_CCY,
    COL_C_QUANTITY = COL_P_CASH,
    COL_C_CREATED = COL_P_TARGETS,
};

typedef struct load_op {
    fsr_call *call;
    const char *id;
    pf_valuation_cb cb;
    void *arg;
    pf_valuation *v;
    pf_mkt_item *items; /* one per holding, same index */
} load_op;

static void fail_cb(load_op *op)
{
    op->cb(op->call, NULL, op->arg);
}

/* Day serial (since 1970-01-01) of "YYYY-MM-DD"; INT32_MIN if it is not a date. */
static int32_t day_of(const char *s)
{
    int y, m, d;
    if (s == NULL || fsr_date_parse(s, &y, &m, &d) != 0)
        return INT32_MIN;
    return (int32_t)fsr_days_from_civil(y, m, d);
}

static char *lower_dup(fsr_call *call, const char *s)
{
    char *d = fsr_call_printf(call, "%s", s);
    for (char *p = d; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

/* Merges stored JSON (targets, benchmark) into |p|; -1 if it no longer parses. */
static int merge_json(fsr_call *call, Portfolio__V1__Portfolio *p, const char *field,
                      const fsr_pg_result *res, int row, int col)
{
    fsr_json_error err;
    const char *json = fsr_pg_result_getvalue(res, row, col);
    size_t len = (size_t)fsr_pg_result_getlength(res, row, col);
    if (len == 0)
        return 0;
    if (fsr_json_merge_pb(&p->base, field, json, len, fsr_arena_pb_allocator(fsr_call_arena(call)),
                          &err) != 0) {
        FSR_ERROR("portfolio %s: stored %s unreadable: %s: %s", p->id, field, err.field,
                  err.message);
        return -1;
    }
    return 0;
}

static Portfolio__V1__Portfolio *portfolio_from_row(fsr_call *call, const fsr_pg_result *res,
                                                    int row)
{
    Portfolio__V1__Portfolio *p = fsr_call_alloc(call, sizeof(*p));
    portfolio__v1__portfolio__init(p);
    p->id = fsr_pg_col_dup(call, res, row, COL_P_ID);
    p->client_id = fsr_pg_col_dup(call, res, row, COL_P_CLIENT);
    p->name = fsr_pg_col_dup(call, res, row, COL_P_NAME);
    p->base_currency = fsr_pg_col_dup(call, res, row, COL_P_CCY);
    p->cash = fsr_pg_col_dup(call, res, row, COL_P_CASH);
    p->version = (int32_t)strtol(fsr_pg_result_getvalue(res, row, COL_P_VERSION), NULL, 10);
    p->created_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, COL_P_CREATED));
    p->updated_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, COL_P_UPDATED));
    p->allow_negative = fsr_pg_result_getvalue(res, row, COL_P_ALLOW_NEG)[0] == 't';
    if (merge_json(call, p, "targets", res, row, COL_P_TARGETS) != 0 ||
        merge_json(call, p, "benchmark", res, row, COL_P_BENCH) != 0)
        return NULL;
    return p;
}

/* ---- pricing ------------------------------------------------------------------------ */

static void price_equity(load_op *op, pf_holding *h, const pf_mkt_item *it)
{
    const Equity__V1__EquityMarketData *d = it->eq;
    fsr_call *call = op->call;
    h->lot_size = 1;
    if (d->equity != NULL) {
        if (h->symbol[0] == '\0')
            h->symbol = d->equity->symbol;
        h->currency = d->equity->currency;
        if (d->equity->lot_size > 0)
            h->lot_size = d->equity->lot_size;
    }
    if (d->error_code != 0) {
        h->no_price_reason = d->error_code == FSR_NOT_FOUND
                                 ? fsr_call_printf(call, "equity %s not found", h->instrument_id)
                                 : d->error;
        return;
    }
    if (d->quote == NULL) {
        h->no_price_reason = fsr_call_printf(call, "no price on or before %s", op->v->as_of);
        return;
    }
    h->priced = true;
    h->price = strtod(d->quote->close, NULL);
    h->price_date = d->quote->date;
    h->market_value = h->quantity * h->price;
}

static void price_bond(load_op *op, pf_holding *h, const pf_mkt_item *it)
{
    const FixedIncome__V1__BatchAnalyticsItem *d = it->bond;
    fsr_call *call = op->call;
    h->lot_size = 1;
    if (d->bond != NULL) {
        if (h->symbol[0] == '\0')
            h->symbol = d->bond->isin[0] != '\0' ? d->bond->isin : d->bond->name;
        h->currency = d->bond->currency;
    }
    const FixedIncome__V1__BondAnalyticsResponse *a = d->analytics;
    if (d->error_code != 0 || a == NULL) {
        if (d->error_code == FSR_NOT_FOUND)
            h->no_price_reason = fsr_call_printf(call, "bond %s not found", h->instrument_id);
        else if (d->error_code == FSR_FAILED_PRECONDITION)
            h->no_price_reason = fsr_call_printf(call, "no quote on or before %s", op->v->as_of);
        else
            h->no_price_reason = d->error[0] != '\0' ? d->error : "no price";
        return;
    }
    h->priced = true;
    h->price = a->dirty_price;
    h->clean_price = a->clean_price;
    h->accrued = a->accrued;
    h->price_date = a->quote_date;
    h->yield = a->yield;
    h->modified_duration = a->modified_duration;
    h->macaulay_duration = a->macaulay_duration;
    h->convexity = a->convexity;
    h->market_value = h->quantity / 100.0 * a->dirty_price;
    h->accrued_amount = h->quantity / 100.0 * a->accrued;
    int32_t *days = fsr_call_alloc(call, sizeof(*days) * (a->n_cashflows + 1));
    double *amt = fsr_call_alloc(call, sizeof(*amt) * (a->n_cashflows + 1));
    size_t n = 0;
    for (size_t k = 0; k < a->n_cashflows; k++) {
        int32_t day = day_of(a->cashflows[k]->date);
        if (day == INT32_MIN)
            continue;
        days[n] = day;
        amt[n++] = a->cashflows[k]->amount;
    }
    h->cf_days = days;
    h->cf_amounts = amt;
    h->n_cf = n;
}

static void on_priced(fsr_call *call, bool ok, void *arg)
{
    load_op *op = arg;
    if (!ok) {
        fail_cb(op);
        return;
    }
    pf_valuation *v = op->v;
    double holdings = 0.0;
    for (size_t i = 0; i < v->n_holdings; i++) {
        pf_holding *h = &v->holdings[i];
        const pf_mkt_item *it = &op->items[i];
        if (h->instrument_type == COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND)
            price_bond(op, h, it);
        else
            price_equity(op, h, it);
        if (it->stale) {
            h->from_stale_cache = true;
            v->stale = true;
            if (it->age_s > v->stale_age_s)
                v->stale_age_s = it->age_s;
        }
        if (h->priced)
            holdings += h->market_value;
    }
    v->total_market_value = holdings + v->cash;
    for (size_t i = 0; i < v->n_holdings; i++) {
        pf_holding *h = &v->holdings[i];
        h->weight = v->total_market_value != 0.0 ? h->market_value / v->total_market_value : 0.0;
    }
    op->cb(call, v, op->arg);
}

/* ---- loading ------------------------------------------------------------------------ */

static bool same_instrument(const pf_holding *h, Common__V1__InstrumentType__Value t,
                            const char *id)
{
    return h->instrument_type == t && strcmp(h->instrument_id, id) == 0;
}

/*
 * Open addressing over "<type><id>" of the holdings: which instrument is held (targets are
 * matched against it; a portfolio holds up to thousands of instruments).
 */
typedef struct held_map {
    size_t *tab; /* holding index + 1; 0 = empty */
    size_t mask;
} held_map;

static size_t held_hash(Common__V1__InstrumentType__Value t, const char *id)
{
    size_t h = 2166136261u ^ (size_t)t;
    for (const char *p = id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

/* The holding of (|t|, |id|), or -1; with |add| >= 0, records holding |add| if absent. */
static long held_find(held_map *m, const pf_holding *hs, Common__V1__InstrumentType__Value t,
                      const char *id, long add)
{
    for (size_t i = held_hash(t, id) & m->mask;; i = (i + 1) & m->mask) {
        if (m->tab[i] == 0) {
            if (add >= 0)
                m->tab[i] = (size_t)add + 1;
            return -1;
        }
        if (same_instrument(&hs[m->tab[i] - 1], t, id))
            return (long)(m->tab[i] - 1);
    }
}

static void on_loaded(const fsr_pg_result *res, void *arg)
{
    load_op *op = arg;
    fsr_call *call = op->call;
    int st = fsr_pg_result_status(res);
    if (st != 0) {
        if (st == FSR_E_DB)
            FSR_ERROR("valuation: SQLSTATE %s: %s", fsr_pg_result_sqlstate(res),
                      fsr_pg_result_message(res));
        fsr_call_fail_err(call, st, "load portfolio");
        fail_cb(op);
        return;
    }
    int rows = fsr_pg_result_rows(res);
    if (fsr_pg_result_cols(res) != COL_COUNT) {
        FSR_ERROR("valuation: unexpected result shape");
        fsr_call_fail(call, FSR_INTERNAL, "internal error");
        fail_cb(op);
        return;
    }
    /* The 'p' row sorts last; without it the caller has no such portfolio. */
    if (rows == 0 || fsr_pg_result_getvalue(res, rows - 1, COL_TAG)[0] != 'p') {
        fsr_call_fail_field(call, FSR_NOT_FOUND, "id", "portfolio %s not found", op->id);
        fail_cb(op);
        return;
    }
    pf_valuation *v = op->v;
    const Portfolio__V1__Portfolio *p = portfolio_from_row(call, res, rows - 1);
    if (p == NULL) {
        fsr_call_fail(call, FSR_INTERNAL, "internal error");
        fail_cb(op);
        return;
    }
    v->portfolio = p;
    v->cash = strtod(p->cash, NULL);

    size_t n_c = (size_t)rows - 1, cap = n_c + p->n_targets;
    v->holdings = fsr_call_alloc(call, sizeof(*v->holdings) * (cap + 1));
    held_map map = { NULL, 15 };
    while (map.mask + 1 < 2 * cap + 2)
        map.mask = map.mask * 2 + 1;
    map.tab = fsr_call_alloc(call, sizeof(*map.tab) * (map.mask + 1));
    size_t n = 0;
    for (int r = 0; r + 1 < rows; r++) {
        pf_holding *h = &v->holdings[n];
        const char *type = fsr_pg_result_getvalue(res, r, COL_C_TYPE);
        h->instrument_type = strcmp(type, "BOND") == 0 ? COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND
                                                       : COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY;
        h->constituent_id = fsr_pg_col_dup(call, res, r, COL_C_ID);
        h->instrument_id = fsr_pg_col_dup(call, res, r, COL_C_INSTRUMENT);
        h->symbol = fsr_pg_col_dup(call, res, r, COL_C_SYMBOL);
        h->quantity_text = fsr_pg_col_dup(call, res, r, COL_C_QUANTITY);
        h->quantity = strtod(h->quantity_text, NULL);
        h->created_at = fsr_pg_col_dup(call, res, r, COL_C_CREATED);
        if (held_find(&map, v->holdings, h->instrument_type, h->instrument_id, (long)n) < 0)
            n++; /* (type, id) is unique per portfolio; a repeat would be skipped */
    }
    /* Instrument targets: the holding's target weight, or a holding of quantity 0. */
    for (size_t k = 0; k < p->n_targets; k++) {
        const Portfolio__V1__Target *t = p->targets[k];
        if (t->instrument_type != COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY &&
            t->instrument_type != COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND)
            continue;
        if (!fsr_uuid_valid(t->instrument_id))
            continue;
        const char *id = lower_dup(call, t->instrument_id);
        long at = held_find(&map, v->holdings, t->instrument_type, id, -1);
        pf_holding *h = &v->holdings[at >= 0 ? (size_t)at : n];
        if (at < 0) {
            h->constituent_id = "";
            h->instrument_type = t->instrument_type;
            h->instrument_id = id;
            h->symbol = "";
            h->quantity_text = "0";
            h->created_at = "";
            held_find(&map, v->holdings, t->instrument_type, id, (long)n);
            n++;
        }
        h->has_target = true;
        h->target_weight = t->weight;
    }
    v->n_holdings = n;
    op->items = fsr_call_alloc(call, sizeof(*op->items) * (n + 1));
    for (size_t i = 0; i < n; i++) {
        pf_holding *h = &v->holdings[i];
        h->price_date = "";
        h->currency = "";
        h->no_price_reason = "";
        op->items[i].type = h->instrument_type;
        op->items[i].id = lower_dup(call, h->instrument_id);
    }
    pf_market_fetch(call, v->as_of, op->items, n, on_priced, op);
}

void pf_valuation_load(fsr_call *call, const fsr_caller *who, const char *id, const char *as_of,
                       pf_valuation_cb cb, void *arg)
{
    load_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = id;
    op->cb = cb;
    op->arg = arg;
    op->v = fsr_call_alloc(call, sizeof(*op->v));
    if (fsr_check_uuid(call, "id", id) != 0) {
        fail_cb(op);
        return;
    }
    if (as_of == NULL || as_of[0] == '\0') {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        char buf[11];
        strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
        as_of = fsr_call_printf(call, "%s", buf);
    } else if (fsr_date_parse(as_of, NULL, NULL, NULL) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "asOf", "must be a date \"YYYY-MM-DD\"");
        fail_cb(op);
        return;
    }
    op->v->as_of = as_of;
    op->v->as_of_day = day_of(as_of);
    fsr_pg_pool *pool = fsr_app_ctx_of(call)->pg;
    if (pool == NULL) {
        fsr_call_fail(call, FSR_UNAVAILABLE, "the portfolio database is unavailable");
        fail_cb(op);
        return;
    }
    const char *values[2] = { id, who != NULL ? fsr_caller_scope(who) : NULL };
    int rv = fsr_pg_query(pool, &pf_valuation_sql, 2, values, on_loaded, op);
    if (rv != 0) {
        fsr_call_fail_err(call, rv, "load portfolio");
        fail_cb(op);
    }
}
