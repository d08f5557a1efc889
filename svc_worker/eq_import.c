/* SPDX-License-Identifier: MIT */
/*
 * equity.import_prices: imports the CSV file ImportPrices stored in price_imports
 * (svc_equity/imports.c, svc_equity/sql/004_price_imports.sql) into price_bars.
 *
 * The file is "symbol,date,open,high,low,close,volume", one bar per line; a first line whose
 * first field is "symbol" is the header (optional; if its columns differ from these, that line
 * is rejected and the rest still read in this order).  Blank lines are skipped; fields may be
 * double-quoted ("" is a quote inside one); spaces around fields are ignored.  Each line is
 * checked as UpsertPrices checks a bar (a real date; open, high, low, close decimals > 0;
 * high >= open, close, low; low <= open, close; volume a whole number >= 0, empty meaning 0)
 * and its symbol resolved without an exchange:
 *
 *   1. equities whose symbol is the field (upper-cased): exactly one is that one; several are
 *      resolved by the import's exchange if one of them is on it, else the line is rejected
 *      naming the exchanges ("listed on several exchanges");
 *   2. none, and the field is "SYM.EXCHANGE": the equity SYM on EXCHANGE (split at the last
 *      dot, so a symbol holding dots, e.g. "BRK.B", matches as a whole first);
 *   3. otherwise the line is rejected ("unknown symbol").
 *
 * A second line for the same equity and date is rejected (it names the first).  A rejected
 * line never stops the others: the good ones are upserted in one statement, in the job's
 * transaction, which commits together with the job's SUCCEEDED state and its result:
 *
 *   {"lines", "rows", "accepted", "inserted", "updated", "unchanged", "equities",
 *    "rejectedCount", "rejected": [{"line", "symbol", "reason"}, ...], "rejectedTruncated"}
 *
 * "rejected" lists every rejected line up to EI_REJECTED_MAX (then "rejectedTruncated" is
 * true; "rejectedCount" is always the total).  A bar whose stored values are already the
 * same is left alone (ON CONFLICT ... WHERE ... IS DISTINCT FROM): it counts as "unchanged",
 * so importing the same file again changes nothing.  After the commit (wk_job_on_commit)
 * each equity that changed gets its cached quote invalidated and a price.updated event
 * {"id","from","to"} (the dates of its changed bars), as UpsertPrices does.
 */
#include "worker.h"
#include "eq_import.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/redis.h"
#include "fsr/validate.h"

#define EI_UPDATED_CHAN "price.updated"

/*
 * The quote cache's keys and invalidation, exactly as svc_equity/equity.h and market.c
 * define them (bump the generation, then delete the quote): see eq_quote_invalidate().
 */
#define EI_QUOTE_KEY_PREFIX "eq:quote:"
#define EI_QUOTE_GEN_PREFIX "eq:quotegen:"
#define EI_QUOTE_GEN_TTL_S  86400
static const char ei_invalidate_lua[] =
    "redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], ARGV[1])"
    " return redis.call('DEL', KEYS[2])";

static const fsr_pg_stmt ei_load = {
    "ei_load",
    "SELECT csv, coalesce(exchange, '') FROM price_imports WHERE job_id = $1::uuid",
};

static const fsr_pg_stmt ei_lookup = {
    "ei_lookup",
    "SELECT id::text, symbol, exchange FROM equities WHERE symbol = ANY($1::text[])"
    " ORDER BY symbol, exchange",
};

/*
 * The accepted bars in one statement.  A bar equal to the stored one is not rewritten, and
 * RETURNING reports only what was inserted (xmax = 0) or changed, per equity, with the date
 * range of those bars (for price.updated).
 */
static const fsr_pg_stmt ei_upsert = {
    "ei_upsert",
    "WITH up AS (INSERT INTO price_bars AS p (equity_id, date, open, high, low, close, volume)"
    " SELECT * FROM unnest($1::uuid[], $2::date[], $3::numeric[], $4::numeric[],"
    " $5::numeric[], $6::numeric[], $7::bigint[])"
    " ON CONFLICT (equity_id, date) DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high,"
    " low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume, updated_at = now()"
    " WHERE (p.open, p.high, p.low, p.close, p.volume) IS DISTINCT FROM"
    " (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)"
    " RETURNING p.equity_id, p.date, p.xmax = 0 AS inserted)"
    " SELECT equity_id::text, count(*) FILTER (WHERE inserted),"
    " count(*) FILTER (WHERE NOT inserted), min(date)::text, max(date)::text"
    " FROM up GROUP BY equity_id",
};

/* ---- helpers ------------------------------------------------------------------------ */

/* A growable string for the statement's array literals. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        b->p = fsr_xrealloc(b->p, cap);
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

/* Appends |s| as a double-quoted array element (quotes and backslashes escaped). */
static void sb_quoted(sbuf *b, const char *s)
{
    sb_add(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_add(b, "\\", 1);
        sb_add(b, p, 1);
    }
    sb_add(b, "\"", 1);
}

/* ---- after the commit --------------------------------------------------------------- */

typedef struct ei_event {
    fsr_redis *shared;
    char msg[160];
} ei_event;

static void ei_publish(ei_event *ev)
{
    if (ev->shared == NULL ||
        fsr_redis_command(ev->shared, NULL, NULL, "PUBLISH %s %s", EI_UPDATED_CHAN, ev->msg) != 0)
        FSR_WARN("import: %s not published: %s", EI_UPDATED_CHAN, ev->msg);
    free(ev);
}

static void on_invalidated(const redisReply *reply, int status, void *arg)
{
    (void)reply;
    if (status != 0)
        FSR_WARN("import: quote invalidation failed: %s", fsr_strerror(status));
    /* The event follows the invalidation: a consumer reacting with GetQuote sees the data. */
    ei_publish(arg);
}

static void on_import_committed(wk_job *job, void *arg)
{
    ei_job *ij = arg;
    fsr_app_ctx *ctx = wk_job_ctx(job);
    for (size_t i = 0; i < ij->n_touched; i++) {
        const ei_touched *t = &ij->touched[i];
        ei_event *ev = fsr_xcalloc(1, sizeof(*ev));
        ev->shared = ctx->shared;
        snprintf(ev->msg, sizeof(ev->msg), "{\"id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\"}", t->id,
                 t->from, t->to);
        int rv = ctx->redis != NULL
                     ? fsr_redis_command(ctx->redis, on_invalidated, ev,
                                         "EVAL %s 2 " EI_QUOTE_GEN_PREFIX "%s " EI_QUOTE_KEY_PREFIX
                                         "%s %d",
                                         ei_invalidate_lua, t->id, t->id, EI_QUOTE_GEN_TTL_S)
                     : FSR_E_CLOSED;
        if (rv != 0) {
            FSR_WARN("import: cannot invalidate the quote of equity %s: %s", t->id,
                     fsr_strerror(rv));
            ei_publish(ev);
        }
    }
}

/* ---- the job ------------------------------------------------------------------------ */

static void ei_finish(ei_job *ij, long long inserted, long long updated)
{
    json_t *o = json_object();
    long long accepted = (long long)ij->n_row;
    json_object_set_new(o, "lines", json_integer(ij->lines));
    json_object_set_new(o, "rows", json_integer(ij->rows));
    json_object_set_new(o, "accepted", json_integer(accepted));
    json_object_set_new(o, "inserted", json_integer(inserted));
    json_object_set_new(o, "updated", json_integer(updated));
    json_object_set_new(o, "unchanged", json_integer(accepted - inserted - updated));
    json_object_set_new(o, "equities", json_integer((json_int_t)ij->n_touched));
    json_object_set_new(o, "rejectedCount", json_integer(ij->n_rejected));
    json_object_set_new(o, "rejected", ij->rejected);
    ij->rejected = NULL;
    if ((size_t)ij->n_rejected > EI_REJECTED_MAX)
        json_object_set_new(o, "rejectedTruncated", json_true());
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    FSR_INFO("import %s: %d rows, %lld accepted (%lld inserted, %lld updated), %d rejected",
             wk_job_id(ij->job), ij->rows, accepted, inserted, updated, ij->n_rejected);
    if (ij->n_touched > 0)
        wk_job_on_commit(ij->job, on_import_committed, ij);
    if (text == NULL) {
        wk_job_fail(ij->job, "internal error: cannot encode the result");
        return;
    }
    wk_job_succeed(ij->job, text);
    free(text);
}

static void ei_fail(ei_job *ij, const char *error)
{
    json_decref(ij->rejected);
    ij->rejected = NULL;
    wk_job_fail(ij->job, error);
}

static void on_upserted(const fsr_pg_result *res, void *arg)
{
    ei_job *ij = arg;
    if (fsr_pg_result_status(res) != 0) {
        FSR_WARN("import %s: upsert failed: %s", wk_job_id(ij->job), fsr_pg_result_message(res));
        ei_fail(ij, "the prices could not be written; retrying");
        return;
    }
    int n = fsr_pg_result_rows(res);
    long long inserted = 0, updated = 0;
    ij->touched = wk_job_alloc(ij->job, sizeof(*ij->touched) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) {
        ei_touched *t = &ij->touched[ij->n_touched++];
        snprintf(t->id, sizeof(t->id), "%s", fsr_pg_result_getvalue(res, i, 0));
        inserted += strtoll(fsr_pg_result_getvalue(res, i, 1), NULL, 10);
        updated += strtoll(fsr_pg_result_getvalue(res, i, 2), NULL, 10);
        snprintf(t->from, sizeof(t->from), "%s", fsr_pg_result_getvalue(res, i, 3));
        snprintf(t->to, sizeof(t->to), "%s", fsr_pg_result_getvalue(res, i, 4));
    }
    ei_finish(ij, inserted, updated);
}

/* Orders the accepted rows by equity, then date, then line (the first line wins). */
static int row_cmp(const void *a, const void *b)
{
    const ei_row *x = a, *y = b;
    int c = strcmp(x->equity, y->equity);
    if (c == 0)
        c = strcmp(x->date, y->date);
    if (c == 0)
        c = (x->line > y->line) - (x->line < y->line);
    return c;
}

static int row_line_cmp(const void *a, const void *b)
{
    const ei_row *x = a, *y = b;
    return (x->line > y->line) - (x->line < y->line);
}

/* The row of the lookup result for (symbol, exchange): index range of |symbol|. */
typedef struct ei_lookup {
    const fsr_pg_result *res;
    int n;
} ei_symbols;

static void find_symbol(const ei_symbols *lk, const char *sym, size_t len, int *lo, int *hi)
{
    *lo = *hi = 0;
    for (int i = 0; i < lk->n; i++) {
        const char *s = fsr_pg_result_getvalue(lk->res, i, 1);
        if (strlen(s) == len && memcmp(s, sym, len) == 0) {
            if (*hi == 0)
                *lo = i;
            *hi = i + 1;
        }
    }
}

/* Resolves r->symbol to an equity id (in the job's memory); rejects the line if it cannot. */
static int resolve(ei_job *ij, const ei_symbols *lk, ei_row *r)
{
    int lo, hi;
    find_symbol(lk, r->symbol, strlen(r->symbol), &lo, &hi);
    int pick = -1;
    if (hi - lo == 1) {
        pick = lo;
    } else if (hi - lo > 1) {
        for (int i = lo; i < hi && ij->exchange[0] != '\0'; i++) {
            if (strcmp(fsr_pg_result_getvalue(lk->res, i, 2), ij->exchange) == 0)
                pick = i;
        }
        if (pick < 0) {
            char list[256] = "";
            size_t used = 0;
            for (int i = lo; i < hi && used < sizeof(list) - 20; i++)
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                         i > lo ? ", " : "", fsr_pg_result_getvalue(lk->res, i, 2));
            wk_ei_reject(ij, r->line, r->symbol,
                         "symbol: %s is listed on several exchanges (%s); write it as "
                         "SYMBOL.EXCHANGE or give the import an exchange",
                         r->symbol, list);
            return -1;
        }
    } else {
        const char *dot = strrchr(r->symbol, '.');
        if (dot != NULL && dot != r->symbol && dot[1] != '\0') {
            find_symbol(lk, r->symbol, (size_t)(dot - r->symbol), &lo, &hi);
            for (int i = lo; i < hi; i++) {
                if (strcmp(fsr_pg_result_getvalue(lk->res, i, 2), dot + 1) == 0)
                    pick = i;
            }
        }
        if (pick < 0) {
            wk_ei_reject(ij, r->line, r->symbol, "symbol: unknown symbol %s", r->symbol);
            return -1;
        }
    }
    const char *id = fsr_pg_result_getvalue(lk->res, pick, 0);
    size_t n = strlen(id) + 1;
    char *copy = wk_job_alloc(ij->job, n);
    memcpy(copy, id, n);
    r->equity = copy;
    return 0;
}

static void on_lookup(const fsr_pg_result *res, void *arg)
{
    ei_job *ij = arg;
    if (fsr_pg_result_status(res) != 0) {
        FSR_WARN("import %s: symbol lookup failed: %s", wk_job_id(ij->job),
                 fsr_pg_result_message(res));
        ei_fail(ij, "the symbols could not be looked up; retrying");
        return;
    }
    ei_symbols lk = { res, fsr_pg_result_rows(res) };
    /* Rejections stay in line order: resolve in line order, then sort for duplicates. */
    size_t k = 0;
    for (size_t i = 0; i < ij->n_row; i++) {
        if (resolve(ij, &lk, &ij->row[i]) == 0)
            ij->row[k++] = ij->row[i];
    }
    ij->n_row = k;
    qsort(ij->row, k, sizeof(*ij->row), row_cmp);
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (m > 0 && strcmp(ij->row[m - 1].equity, ij->row[i].equity) == 0 &&
            strcmp(ij->row[m - 1].date, ij->row[i].date) == 0) {
            wk_ei_reject(ij, ij->row[i].line, ij->row[i].symbol,
                         "date: repeats the bar of line %d (same equity and date)",
                         ij->row[m - 1].line);
            continue;
        }
        ij->row[m++] = ij->row[i];
    }
    ij->n_row = m;
    /* Duplicates were found out of line order: list the rejections by line again. */
    size_t nr = json_array_size(ij->rejected);
    if (nr > 1) {
        json_t **items = fsr_xcalloc(nr, sizeof(*items));
        int *lines = fsr_xcalloc(nr, sizeof(*lines));
        for (size_t i = 0; i < nr; i++) {
            items[i] = json_incref(json_array_get(ij->rejected, i));
            lines[i] = (int)json_integer_value(json_object_get(items[i], "line"));
        }
        /* Insertion sort by line: already nearly ordered. */
        for (size_t i = 1; i < nr; i++) {
            for (size_t j = i; j > 0 && lines[j - 1] > lines[j]; j--) {
                int tl = lines[j];
                lines[j] = lines[j - 1];
                lines[j - 1] = tl;
                json_t *tv = items[j];
                items[j] = items[j - 1];
                items[j - 1] = tv;
            }
        }
        json_array_clear(ij->rejected);
        for (size_t i = 0; i < nr; i++)
            json_array_append_new(ij->rejected, items[i]);
        free(items);
        free(lines);
    }
    if (m == 0) {
        ei_finish(ij, 0, 0);
        return;
    }
    /* Line order in the statement too, so that the write order is the file's. */
    qsort(ij->row, m, sizeof(*ij->row), row_line_cmp);
    sbuf a[EI_FIELDS];
    memset(a, 0, sizeof(a));
    for (int c = 0; c < EI_FIELDS; c++)
        sb_str(&a[c], "{");
    for (size_t i = 0; i < m; i++) {
        const ei_row *r = &ij->row[i];
        const char *sep = i > 0 ? "," : "";
        char vol[24];
        snprintf(vol, sizeof(vol), "%lld", r->volume);
        const char *v[EI_FIELDS] = { r->equity, r->date, r->open, r->high, r->low, r->close, vol };
        for (int c = 0; c < EI_FIELDS; c++) {
            sb_str(&a[c], sep);
            sb_str(&a[c], v[c]);
        }
    }
    for (int c = 0; c < EI_FIELDS; c++)
        sb_str(&a[c], "}");
    const char *values[EI_FIELDS] = { a[0].p, a[1].p, a[2].p, a[3].p, a[4].p, a[5].p, a[6].p };
    int rv = wk_job_query(ij->job, &ei_upsert, EI_FIELDS, values, on_upserted, ij);
    for (int c = 0; c < EI_FIELDS; c++)
        free(a[c].p);
    if (rv != 0)
        ei_fail(ij, "the prices could not be written; retrying");
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void on_loaded(const fsr_pg_result *res, void *arg)
{
    ei_job *ij = arg;
    if (fsr_pg_result_status(res) != 0) {
        FSR_WARN("import %s: cannot read the file: %s", wk_job_id(ij->job),
                 fsr_pg_result_message(res));
        ei_fail(ij, "the import file could not be read; retrying");
        return;
    }
    if (fsr_pg_result_rows(res) != 1) {
        ei_fail(ij, "the import file is missing");
        return;
    }
    int len = fsr_pg_result_getlength(res, 0, 0);
    char *csv = wk_job_alloc(ij->job, (size_t)len + 1);
    memcpy(csv, fsr_pg_result_getvalue(res, 0, 0), (size_t)len);
    const char *ex = fsr_pg_result_getvalue(res, 0, 1);
    ij->exchange = wk_job_alloc(ij->job, strlen(ex) + 1);
    memcpy(ij->exchange, ex, strlen(ex));
    ij->row = wk_job_alloc(ij->job, sizeof(*ij->row) * wk_ei_csv_max_rows(csv));
    wk_ei_parse_csv(ij, csv);
    if (ij->n_row == 0) {
        ei_finish(ij, 0, 0);
        return;
    }
    /* Every distinct symbol as written, and the SYM of each SYM.EXCHANGE, in one lookup. */
    const char **syms = fsr_xcalloc(ij->n_row, sizeof(*syms));
    for (size_t i = 0; i < ij->n_row; i++)
        syms[i] = ij->row[i].symbol;
    qsort(syms, ij->n_row, sizeof(*syms), str_cmp);
    sbuf names = { 0 };
    sb_str(&names, "{");
    for (size_t i = 0; i < ij->n_row; i++) {
        const char *s = syms[i];
        if (i > 0 && strcmp(s, syms[i - 1]) == 0)
            continue;
        if (i > 0)
            sb_str(&names, ",");
        sb_quoted(&names, s);
        const char *dot = strrchr(s, '.');
        if (dot != NULL && dot != s) {
            char sym[EI_SYMBOL_MAX + 1];
            snprintf(sym, sizeof(sym), "%.*s", (int)(dot - s), s);
            sb_str(&names, ",");
            sb_quoted(&names, sym);
        }
    }
    sb_str(&names, "}");
    free(syms);
    const char *v[1] = { names.p };
    int rv = wk_job_query(ij->job, &ei_lookup, 1, v, on_lookup, ij);
    free(names.p);
    if (rv != 0)
        ei_fail(ij, "the symbols could not be looked up; retrying");
}

void wk_eq_import_prices(wk_job *job)
{
    ei_job *ij = wk_job_alloc(job, sizeof(*ij));
    ij->job = job;
    ij->rejected = json_array();
    const char *v[1] = { wk_job_id(job) };
    if (wk_job_query(job, &ei_load, 1, v, on_loaded, ij) != 0)
        ei_fail(ij, "the import file could not be read; retrying");
}
