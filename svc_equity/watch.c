/* SPDX-License-Identifier: MIT */
/*
 * WatchQuotes (gRPC only, server streaming): the current quotes of the requested equities
 * (all of them when none is named), then one Quote each time a price write changes an
 * equity's latest close, until the caller cancels.
 *
 * Every loop thread with a watcher subscribes to price.updated on the shared Redis (the
 * event UpsertPrices and the CSV import publish after their commit, {"id","from","to"}).
 * An event for an equity some watcher of the thread follows costs one query (the latest two
 * bars), whose answer goes to every such watcher -- if it changes what the thread last knew
 * of that equity: a later latest bar (date, then write time), and a different date or close.
 * That rule also drops duplicates (a re-upsert of the same close) and answers that arrive
 * out of order (two events' queries on two pool connections).  Watchers live in their call's
 * arena, on a per-thread list, and leave it when the call is cancelled; the call is finished
 * only when no query of its own is outstanding.
 *
 * Limits: events are Redis pub/sub, so a change published while the thread's subscription
 * is (re)connecting is not seen until the equity changes again; the first subscription of a
 * thread is made by its first watcher.  Without a shared Redis the stream is UNAVAILABLE.
 */
#include "equity.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/app.h"
#include "fsr/handler.h"
#include "fsr/log.h"
#include "fsr/loop.h"
#include "fsr/mem.h"
#include "fsr/pg.h"
#include "fsr/validate.h"

#include "equity_v1.fsr.h"

#define EQ_WATCH_MAX_IDS 1000
#define EQ_UPDATED_CHAN  "price.updated"
#define EQ_TS(col)       "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/*
 * The latest bar and the one before it of the equities in $1 (NULL: every equity), one row
 * each; an equity without a bar has NULL date.  GetQuote's statement for many ids.
 */
static const fsr_pg_stmt eq_watch_quotes_sql = {
    "eq_watch_quotes",
    "SELECT e.id, e.symbol, e.currency, b.date::text, b.close::text,"
    " coalesce(p.close::text, ''), coalesce((b.close / p.close - 1)::float8, 0)::text,"
    " " EQ_TS("b.updated_at") " FROM equities e"
                              " LEFT JOIN LATERAL (SELECT date, close, updated_at FROM price_bars"
                              " WHERE equity_id = e.id ORDER BY date DESC LIMIT 1) b ON true"
                              " LEFT JOIN LATERAL (SELECT close FROM price_bars WHERE equity_id ="
                              " e.id AND date < b.date ORDER BY date DESC LIMIT 1) p ON true"
                              " WHERE $1::uuid[] IS NULL OR e.id = ANY($1::uuid[])",
};
enum {
    W_ID,
    W_SYMBOL,
    W_CURRENCY,
    W_DATE,
    W_CLOSE,
    W_PREV,
    W_CHANGE,
    W_UPDATED,
    W_COLS
};

typedef struct eq_watcher {
    fsr_call *call;
    struct eq_watcher *prev, *next;
    char **ids; /* the request's, in the call's arena; n_ids 0: every equity */
    size_t n_ids;
    bool changes_only;
    bool started;   /* the first query answered: events reach it */
    bool pending;   /* its first query is outstanding */
    bool cancelled; /* cancelled while pending: finish when it answers */
} eq_watcher;

/* What the thread last knew of an equity's latest bar. */
typedef struct eq_last {
    char id[40];
    char date[16];
    char close[48];
    char updated[40];
} eq_last;

typedef struct eq_watch_tls {
    eq_watcher *head;
    eq_last *last;
    size_t n_last, cap_last;
    bool subscribed;
} eq_watch_tls;

static __thread eq_watch_tls *wt;

void eq_watch_thread_dispose(void)
{
    if (wt == NULL)
        return;
    free(wt->last);
    free(wt);
    wt = NULL;
}

static eq_watch_tls *tls(void)
{
    if (wt == NULL)
        wt = fsr_xcalloc(1, sizeof(*wt));
    return wt;
}

static char *unconst(const char *s)
{
    char *p;
    memcpy(&p, &s, sizeof(p));
    return p;
}

static eq_last *last_of(const char *id, bool create)
{
    eq_watch_tls *t = tls();
    for (size_t i = 0; i < t->n_last; i++) {
        if (strcmp(t->last[i].id, id) == 0)
            return &t->last[i];
    }
    if (!create || strlen(id) >= sizeof(t->last[0].id))
        return NULL;
    if (t->n_last == t->cap_last) {
        t->cap_last = t->cap_last != 0 ? t->cap_last * 2 : 64;
        t->last = fsr_xrealloc(t->last, sizeof(*t->last) * t->cap_last);
    }
    eq_last *l = &t->last[t->n_last++];
    memset(l, 0, sizeof(*l));
    snprintf(l->id, sizeof(l->id), "%s", id);
    return l;
}

/*
 * Records row |row| of |res| as what the thread knows of that equity.  Returns true if it
 * is news: a later latest bar whose date or close differs from what was known.
 */
static bool note_row(const fsr_pg_result *res, int row)
{
    const char *id = fsr_pg_result_getvalue(res, row, W_ID);
    const char *date = fsr_pg_result_getvalue(res, row, W_DATE);
    const char *close = fsr_pg_result_getvalue(res, row, W_CLOSE);
    const char *updated = fsr_pg_result_getvalue(res, row, W_UPDATED);
    eq_last *l = last_of(id, true);
    if (l == NULL)
        return false;
    int c = strcmp(date, l->date);
    if (c < 0 || (c == 0 && strcmp(updated, l->updated) <= 0))
        return false; /* not later than what is known (an answer overtaken by another) */
    bool news = c != 0 || l->close[0] == '\0' || fsr_decimal_cmp(close, l->close) != 0;
    snprintf(l->date, sizeof(l->date), "%s", date);
    snprintf(l->close, sizeof(l->close), "%s", close);
    snprintf(l->updated, sizeof(l->updated), "%s", updated);
    return news;
}

/* Row |row| as a Quote in |q| (strings point into |res|: send it during the callback). */
static void quote_of_row(const fsr_pg_result *res, int row, Equity__V1__Quote *q,
                         Google__Protobuf__Timestamp *ts)
{
    equity__v1__quote__init(q);
    google__protobuf__timestamp__init(ts);
    q->equity_id = unconst(fsr_pg_result_getvalue(res, row, W_ID));
    q->symbol = unconst(fsr_pg_result_getvalue(res, row, W_SYMBOL));
    q->currency = unconst(fsr_pg_result_getvalue(res, row, W_CURRENCY));
    q->date = unconst(fsr_pg_result_getvalue(res, row, W_DATE));
    q->close = unconst(fsr_pg_result_getvalue(res, row, W_CLOSE));
    q->previous_close = unconst(fsr_pg_result_getvalue(res, row, W_PREV));
    q->change = strtod(fsr_pg_result_getvalue(res, row, W_CHANGE), NULL);
    if (fsr_pg_timestamp_parse(fsr_pg_result_getvalue(res, row, W_UPDATED), &ts->seconds,
                               &ts->nanos) == 0)
        q->updated_at = ts;
}

static bool follows(const eq_watcher *w, const char *id)
{
    if (w->n_ids == 0)
        return true;
    for (size_t i = 0; i < w->n_ids; i++) {
        if (strcmp(w->ids[i], id) == 0)
            return true;
    }
    return false;
}

static void unlink_watcher(eq_watcher *w)
{
    eq_watch_tls *t = tls();
    if (w->prev != NULL)
        w->prev->next = w->next;
    else if (t->head == w)
        t->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

static void finish_cancelled(void *arg)
{
    fsr_call_finish(arg, FSR_CANCELLED, "cancelled");
}

static void on_watch_cancel(fsr_call *call, void *arg)
{
    eq_watcher *w = arg;
    if (w->pending) {
        w->cancelled = true; /* its query's callback still holds |w| */
        return;
    }
    unlink_watcher(w);
    /*
     * Not from inside this callback: when the stream is gone, lib/server_h2.c reads the call
     * after the cancel callback returns, and finishing would free it under its feet.  The
     * call stays allocated until it is finished, so the deferred finish is safe.
     */
    fsr_loop_defer(fsr_call_loop(call), finish_cancelled, call);
}

/* "{...}" uuid[] literal of |n| ids (checked UUIDs: nothing to quote), in the call's arena. */
static const char *uuid_array(fsr_call *call, char **ids, size_t n)
{
    char *s = fsr_call_alloc(call, n * 38 + 3);
    char *p = s;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *p++ = ',';
        size_t len = strlen(ids[i]);
        memcpy(p, ids[i], len);
        p += len;
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

/* ---- events ------------------------------------------------------------------------- */

static void on_event_quote(const fsr_pg_result *res, void *arg)
{
    free(arg);
    if (fsr_pg_result_status(res) != 0) {
        FSR_WARN("WatchQuotes: quote query failed: %s", fsr_pg_result_message(res));
        return;
    }
    if (fsr_pg_result_rows(res) != 1 || fsr_pg_result_cols(res) != W_COLS ||
        fsr_pg_result_isnull(res, 0, W_DATE) || !note_row(res, 0))
        return;
    Equity__V1__Quote q;
    Google__Protobuf__Timestamp ts;
    quote_of_row(res, 0, &q, &ts);
    for (eq_watcher *w = tls()->head; w != NULL; w = w->next) {
        if (w->started && follows(w, q.equity_id))
            (void)equity_v1_equity_service_watch_quotes_send(w->call, &q);
    }
}

static void on_price_updated(const char *pattern, const char *channel, const char *msg, size_t len,
                             void *arg)
{
    (void)pattern;
    (void)channel;
    (void)len;
    fsr_app_ctx *ctx = arg;
    const char *p = strstr(msg, "\"id\":\"");
    if (p == NULL)
        return;
    char id[40];
    snprintf(id, sizeof(id), "%.36s", p + 6);
    if (!fsr_uuid_valid(id))
        return;
    bool wanted = false;
    for (eq_watcher *w = tls()->head; w != NULL && !wanted; w = w->next)
        wanted = w->started && follows(w, id);
    if (!wanted || ctx->pg == NULL)
        return;
    char *lit = fsr_xmalloc(48);
    snprintf(lit, 48, "{%s}", id);
    const char *values[1] = { lit };
    /* |lit| doubles as the callback's argument, freed there (values are copied). */
    if (fsr_pg_query(ctx->pg, &eq_watch_quotes_sql, 1, values, on_event_quote, lit) != 0) {
        FSR_WARN("WatchQuotes: cannot query the quote of equity %s", id);
        free(lit);
    }
}

/* ---- the call ----------------------------------------------------------------------- */

static void on_first_quotes(const fsr_pg_result *res, void *arg)
{
    eq_watcher *w = arg;
    fsr_call *call = w->call;
    w->pending = false;
    if (w->cancelled) {
        unlink_watcher(w);
        fsr_call_finish(call, FSR_CANCELLED, "cancelled");
        return;
    }
    int st = fsr_pg_result_status(res);
    if (st != 0 || fsr_pg_result_cols(res) != W_COLS) {
        unlink_watcher(w);
        if (st == FSR_E_DB)
            FSR_ERROR("WatchQuotes: SQLSTATE %s: %s", fsr_pg_result_sqlstate(res),
                      fsr_pg_result_message(res));
        fsr_call_fail_err(call, st != 0 ? st : FSR_E_DB, "watch quotes");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    /* Every named equity must exist. */
    for (size_t i = 0; i < w->n_ids; i++) {
        bool found = false;
        for (int r = 0; r < rows && !found; r++)
            found = strcmp(fsr_pg_result_getvalue(res, r, W_ID), w->ids[i]) == 0;
        if (!found) {
            unlink_watcher(w);
            fsr_call_fail_field(call, FSR_NOT_FOUND, fsr_call_printf(call, "ids[%zu]", i),
                                "equity %s not found", w->ids[i]);
            return;
        }
    }
    for (int r = 0; r < rows; r++) {
        if (fsr_pg_result_isnull(res, r, W_DATE))
            continue;
        (void)note_row(res, r);
        if (w->changes_only)
            continue;
        Equity__V1__Quote q;
        Google__Protobuf__Timestamp ts;
        quote_of_row(res, r, &q, &ts);
        if (equity_v1_equity_service_watch_quotes_send(call, &q) != 0)
            break;
    }
    w->started = true;
}

void eq_watch_quotes(fsr_call *call, const Equity__V1__WatchQuotesRequest *req)
{
    if (req->n_ids > EQ_WATCH_MAX_IDS) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "ids", "must hold at most %d ids",
                            EQ_WATCH_MAX_IDS);
        return;
    }
    for (size_t i = 0; i < req->n_ids; i++) {
        if (fsr_check_uuid(call, fsr_call_printf(call, "ids[%zu]", i), req->ids[i]) != 0)
            return;
    }
    fsr_app_ctx *ctx = fsr_app_ctx_of(call);
    if (ctx->pg == NULL) {
        fsr_call_fail(call, FSR_UNAVAILABLE, "the equity database is unavailable");
        return;
    }
    eq_watch_tls *t = tls();
    if (!t->subscribed) {
        int rv = ctx->shared != NULL
                     ? fsr_redis_subscribe(ctx->shared, EQ_UPDATED_CHAN, on_price_updated, ctx)
                     : FSR_E_CLOSED;
        if (rv != 0 && rv != -EEXIST) {
            fsr_call_fail(call, FSR_UNAVAILABLE, "quote events are unavailable");
            return;
        }
        t->subscribed = true;
    }
    eq_watcher *w = fsr_call_alloc(call, sizeof(*w));
    w->call = call;
    w->ids = req->ids;
    w->n_ids = req->n_ids;
    w->changes_only = req->changes_only;
    const char *values[1] = { req->n_ids > 0 ? uuid_array(call, req->ids, req->n_ids) : NULL };
    int rv = fsr_pg_query(ctx->pg, &eq_watch_quotes_sql, 1, values, on_first_quotes, w);
    if (rv != 0) {
        fsr_call_fail_err(call, rv, "watch quotes");
        return;
    }
    w->pending = true;
    w->next = t->head;
    if (t->head != NULL)
        t->head->prev = w;
    t->head = w;
    fsr_call_on_cancel(call, on_watch_cancel, w);
}
