/* SPDX-License-Identifier: MIT */
/*
 * Market data for valuations: per-thread channels to the equity and fixed-income services,
 * the per-instrument cache in the portfolio Redis, and its invalidation by the services'
 * price.updated / bond.updated events.  The design is written up in docs/ARCHITECTURE.md
 * ("Portfolio valuation cache"); in short:
 *
 *   pf:m:<T>:<id>:<as_of>  the service's item for instrument <id> (T = E equity, B bond) as
 *                          of <as_of>, in an envelope {magic, generation, fetched-at, as_of};
 *                          kept PF_MKT_KEEP_S
 *   pf:g:<T>:<id>          the instrument's generation: INCRemented by every event about it
 *   pf:l:<T>:<id>          last known: the latest item fetched for a current as_of (today or
 *                          later), kept PF_MKT_KEEP_S
 *
 * An entry is FRESH when its generation equals the instrument's current one and it is less
 * than PF_MKT_FRESH_S old (the bound on staleness should an event be lost: pub/sub does not
 * queue for a disconnected subscriber).  One MGET reads the entry and the generation of
 * every instrument; only the misses go downstream, tagged with the generation read BEFORE
 * the fetch, so an event that lands while the fetch runs leaves the new entry already
 * outdated (never a stale entry that looks fresh).  Entries are not deleted by events: an
 * outdated entry, and failing that the last-known one (if its as_of is not after the
 * requested one), is what a valuation falls back to when the service is down or times out,
 * flagged stale with its age.
 */
#include "market.h"
#include "portfolio.h"

#include <ctype.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsr/app.h"
#include "fsr/client.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/redis.h"
#include "fsr/validate.h"

#include "equity_v1.fsr.h"
#include "fixed_income_v1.fsr.h"

#define PF_MKT_FRESH_S     900         /* an entry serves without a refetch this long */
#define PF_MKT_KEEP_S      (7 * 86400) /* entries (fallbacks) live this long */
#define PF_MKT_EQ_CHUNK    5000        /* BatchQuotes' limit */
#define PF_MKT_FI_CHUNK    1000        /* BatchAnalytics' limit */
#define PF_MKT_TIMEOUT_MS  3000        /* downstream cap; less when the call has less left */
#define PF_MKT_MAX_MESSAGE (32u << 20) /* replies for thousands of instruments */
#define PF_MKT_MAGIC       "PFM1"
#define PF_MKT_HDR         (4 + 8 + 8 + 10) /* magic, generation, fetched-at ms, as_of */

/* ---- per-thread state ----------------------------------------------------------------- */

typedef struct pf_thread {
    fsr_app_ctx *ctx;
    fsr_channel *eq, *fi;
} pf_thread;

/* One thread per process subscribes (the cache is shared: one INCR per event is enough). */
static atomic_flag g_subscribed = ATOMIC_FLAG_INIT;
/* Spreads the threads over the replicas an address variable may list ("h1:p,h2:p"). */
static atomic_uint g_thread_seq;

/* The |k|-th (mod count) entry of the comma-separated list in |env| (else |def|). */
static fsr_channel *channel_for(fsr_loop *loop, const char *env, const char *def, unsigned k)
{
    const char *list = getenv(env);
    if (list == NULL || list[0] == '\0')
        list = def;
    size_t count = 0;
    for (const char *p = list; *p != '\0'; p += strcspn(p, ","), p += *p == ',')
        count++;
    const char *p = list;
    for (unsigned i = 0; i < k % (count > 0 ? count : 1); i++)
        p += strcspn(p, ",") + 1;
    while (*p == ' ')
        p++;
    char target[256];
    snprintf(target, sizeof(target), "%.*s", (int)strcspn(p, ", "), p);
    fsr_channel_opts opts = { .max_message_size = PF_MKT_MAX_MESSAGE };
    fsr_channel *ch = NULL;
    if (fsr_channel_new(loop, target, &opts, &ch) != 0) {
        FSR_ERROR("bad %s '%s': valuations cannot reach that service", env, target);
        return NULL;
    }
    return ch;
}

/* Event payloads are {"id":"<uuid>",...} (svc_equity/market.c, svc_fixed_income/quotes.c). */
static void on_event(const char *pattern, const char *channel, const char *msg, size_t len,
                     void *arg)
{
    (void)pattern;
    (void)len;
    pf_thread *t = arg;
    const char *p = strstr(msg, "\"id\":\"");
    char id[37];
    if (p == NULL || strlen(p + 6) < 36)
        goto bad;
    for (int i = 0; i < 36; i++)
        id[i] = (char)tolower((unsigned char)p[6 + i]);
    id[36] = '\0';
    if (!fsr_uuid_valid(id))
        goto bad;
    /* Keys are formatted here: hiredis' format knows %s, %b and numbers, not %c. */
    char key[64];
    snprintf(key, sizeof(key), "pf:g:%c:%s", strcmp(channel, "bond.updated") == 0 ? 'B' : 'E', id);
    if (t->ctx->redis == NULL || fsr_redis_command(t->ctx->redis, NULL, NULL, "INCR %s", key) != 0)
        FSR_WARN("%s for %s: cannot invalidate the valuation cache", channel, id);
    /* Past prices changed: the stored performance days from the event's `from` on. */
    if (strcmp(channel, "equity.updated") != 0)
        pf_snapshot_on_price_event(t->ctx, id, msg);
    return;
bad:
    FSR_WARN("%s: unreadable event ignored", channel);
}

void *pf_thread_init(fsr_app_ctx *ctx)
{
    pf_thread *t = fsr_xcalloc(1, sizeof(*t));
    t->ctx = ctx;
    unsigned k = atomic_fetch_add(&g_thread_seq, 1);
    t->eq = channel_for(ctx->loop, "EQUITY_SERVICE_ADDR", "localhost:8001", k);
    t->fi = channel_for(ctx->loop, "FI_SERVICE_ADDR", "localhost:8002", k);
    if (ctx->shared != NULL && ctx->redis != NULL && !atomic_flag_test_and_set(&g_subscribed)) {
        /* equity.updated: reference-data changes of an equity (symbol, lot size), if sent. */
        static const char *const chans[] = { "price.updated", "bond.updated", "equity.updated" };
        for (size_t i = 0; i < sizeof(chans) / sizeof(chans[0]); i++) {
            if (fsr_redis_subscribe(ctx->shared, chans[i], on_event, t) != 0)
                FSR_ERROR("cannot subscribe to %s: the valuation cache will only expire", chans[i]);
        }
    }
    return t;
}

void pf_thread_dispose(fsr_app_ctx *ctx)
{
    pf_thread *t = ctx->user;
    if (t == NULL)
        return;
    fsr_channel_free(t->eq);
    fsr_channel_free(t->fi);
    free(t);
    ctx->user = NULL;
}

fsr_channel *pf_equity_channel(fsr_call *call)
{
    pf_thread *t = fsr_app_ctx_of(call)->user;
    return t != NULL ? t->eq : NULL;
}

fsr_channel *pf_fi_channel(fsr_call *call)
{
    pf_thread *t = fsr_app_ctx_of(call)->user;
    return t != NULL ? t->fi : NULL;
}

/* ---- items: pruning, envelopes ------------------------------------------------------ */

static char *dup(fsr_call *call, const char *s)
{
    return fsr_arena_strdup(fsr_call_arena(call), s != NULL ? s : "");
}

static bool is_bond(const pf_mkt_item *it)
{
    return it->type == COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND;
}

/* A copy of |src| in the call's arena with only what a valuation uses (see market.h). */
static Equity__V1__EquityMarketData *prune_eq(fsr_call *call,
                                              const Equity__V1__EquityMarketData *src)
{
    Equity__V1__EquityMarketData *d = fsr_call_alloc(call, sizeof(*d));
    equity__v1__equity_market_data__init(d);
    d->id = dup(call, src->id);
    d->error = dup(call, src->error);
    d->error_code = src->error_code;
    if (src->equity != NULL) {
        Equity__V1__Equity *e = fsr_call_alloc(call, sizeof(*e));
        equity__v1__equity__init(e);
        e->id = dup(call, src->equity->id);
        e->symbol = dup(call, src->equity->symbol);
        e->currency = dup(call, src->equity->currency);
        e->lot_size = src->equity->lot_size;
        d->equity = e;
    }
    if (src->quote != NULL) {
        Equity__V1__Quote *q = fsr_call_alloc(call, sizeof(*q));
        equity__v1__quote__init(q);
        q->date = dup(call, src->quote->date);
        q->close = dup(call, src->quote->close);
        d->quote = q;
    }
    return d;
}

static FixedIncome__V1__BatchAnalyticsItem *prune_fi(fsr_call *call,
                                                     const FixedIncome__V1__BatchAnalyticsItem *src)
{
    FixedIncome__V1__BatchAnalyticsItem *d = fsr_call_alloc(call, sizeof(*d));
    fixed_income__v1__batch_analytics_item__init(d);
    d->bond_id = dup(call, src->bond_id);
    d->error = dup(call, src->error);
    d->error_code = src->error_code;
    if (src->bond != NULL) {
        FixedIncome__V1__Bond *b = fsr_call_alloc(call, sizeof(*b));
        fixed_income__v1__bond__init(b);
        b->id = dup(call, src->bond->id);
        b->name = dup(call, src->bond->name);
        b->isin = dup(call, src->bond->isin);
        b->currency = dup(call, src->bond->currency);
        b->face = dup(call, src->bond->face);
        d->bond = b;
    }
    const FixedIncome__V1__BondAnalyticsResponse *s = src->analytics;
    if (s != NULL) {
        FixedIncome__V1__BondAnalyticsResponse *a = fsr_call_alloc(call, sizeof(*a));
        fixed_income__v1__bond_analytics_response__init(a);
        a->settlement_date = dup(call, s->settlement_date);
        a->quote_date = dup(call, s->quote_date);
        a->accrued = s->accrued;
        a->clean_price = s->clean_price;
        a->dirty_price = s->dirty_price;
        a->yield = s->yield;
        a->macaulay_duration = s->macaulay_duration;
        a->modified_duration = s->modified_duration;
        a->convexity = s->convexity;
        size_t n = s->n_cashflows;
        FixedIncome__V1__BondCashflow *cf = fsr_call_alloc(call, sizeof(*cf) * (n + 1));
        a->cashflows = fsr_call_alloc(call, sizeof(*a->cashflows) * (n + 1));
        for (size_t i = 0; i < n; i++) {
            fixed_income__v1__bond_cashflow__init(&cf[i]);
            cf[i].date = dup(call, s->cashflows[i]->date);
            cf[i].amount = s->cashflows[i]->amount;
            a->cashflows[i] = &cf[i];
        }
        a->n_cashflows = n;
        d->analytics = a;
    }
    return d;
}

static void put64(uint8_t *p, int64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)v >> (8 * i));
}

static int64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return (int64_t)v;
}

/* A decoded cache entry. */
typedef struct entry {
    int64_t gen;
    int64_t fetched_ms;
    char as_of[11];
    const void *msg; /* the pruned item, in the call's arena */
} entry;

/* Decodes |len| bytes of |s| as an entry of |it|'s type; false if it does not parse. */
static bool entry_decode(fsr_call *call, const pf_mkt_item *it, const char *s, size_t len, entry *e)
{
    const uint8_t *p = (const uint8_t *)s;
    if (len < PF_MKT_HDR || memcmp(p, PF_MKT_MAGIC, 4) != 0)
        return false;
    e->gen = get64(p + 4);
    e->fetched_ms = get64(p + 12);
    memcpy(e->as_of, p + 20, 10);
    e->as_of[10] = '\0';
    ProtobufCAllocator *a = fsr_arena_pb_allocator(fsr_call_arena(call));
    if (is_bond(it))
        e->msg =
            fixed_income__v1__batch_analytics_item__unpack(a, len - PF_MKT_HDR, p + PF_MKT_HDR);
    else
        e->msg = equity__v1__equity_market_data__unpack(a, len - PF_MKT_HDR, p + PF_MKT_HDR);
    return e->msg != NULL;
}

/* ---- the fetch ---------------------------------------------------------------------- */

typedef struct fetch_op fetch_op;

/* One downstream call: the items of one type it prices. */
typedef struct chunk {
    fetch_op *op;
    size_t *idx;
    size_t n;
} chunk;

struct fetch_op {
    fsr_call *call;
    char *as_of;
    bool current; /* as_of is today or later: also write the last-known entries */
    pf_mkt_item *items;
    size_t n;
    pf_mkt_cb cb;
    void *arg;
    int64_t now_ms;
    int64_t *gen;    /* per item: the generation read with the entry */
    entry *cand;     /* per item: an outdated entry of the same as_of (msg NULL if none) */
    bool *need;      /* per item: not priced yet */
    size_t *miss[2]; /* [0] equities, [1] bonds to fetch */
    size_t n_miss[2];
    bool failed[2]; /* a call for that type failed */
    int pending;    /* downstream calls outstanding */
    size_t *lk_idx; /* items waiting for their last-known entry */
    size_t n_lk;
};

static const char *const service_name[2] = { "equity service", "fixed income service" };

static char *item_key(fetch_op *op, const pf_mkt_item *it)
{
    return fsr_call_printf(op->call, "pf:m:%c:%s:%s", is_bond(it) ? 'B' : 'E', it->id, op->as_of);
}

static char *last_known_key(fetch_op *op, const pf_mkt_item *it)
{
    return fsr_call_printf(op->call, "pf:l:%c:%s", is_bond(it) ? 'B' : 'E', it->id);
}

static void finish(fetch_op *op, bool ok)
{
    op->cb(op->call, ok, op->arg);
}

static void on_deferred_finish(void *arg)
{
    finish(arg, true);
}

static void fetch_misses(fetch_op *op);

static void on_deferred_misses(void *arg)
{
    fetch_misses(arg);
}

/* Writes |msg| (the pruned item of |it|) to the cache: its entry, and last-known if current. */
static void cache_put(fetch_op *op, size_t i, const ProtobufCMessage *msg)
{
    fsr_redis *r = fsr_app_ctx_of(op->call)->redis;
    if (r == NULL)
        return;
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = fsr_call_alloc(op->call, PF_MKT_HDR + len + 1);
    memcpy(buf, PF_MKT_MAGIC, 4);
    put64(buf + 4, op->gen[i]);
    put64(buf + 12, op->now_ms);
    memcpy(buf + 20, op->as_of, 10);
    protobuf_c_message_pack(msg, buf + PF_MKT_HDR);
    const pf_mkt_item *it = &op->items[i];
    int rv = fsr_redis_command(r, NULL, NULL, "SET %s %b EX %d", item_key(op, it), buf,
                               PF_MKT_HDR + len, PF_MKT_KEEP_S);
    if (rv == 0 && op->current)
        rv = fsr_redis_command(r, NULL, NULL, "SET %s %b EX %d", last_known_key(op, it), buf,
                               PF_MKT_HDR + len, PF_MKT_KEEP_S);
    if (rv != 0)
        FSR_WARN("valuation cache write: %s", fsr_strerror(rv));
}

static void use_entry(fetch_op *op, size_t i, const entry *e, bool stale)
{
    pf_mkt_item *it = &op->items[i];
    if (is_bond(it))
        it->bond = e->msg;
    else
        it->eq = e->msg;
    it->stale = stale;
    it->age_s = stale ? (double)(op->now_ms - e->fetched_ms) / 1000.0 : 0.0;
    if (it->age_s < 0)
        it->age_s = 0;
    op->need[i] = false;
}

/* Fails the call naming the service(s) whose instruments could not be priced at all. */
static void fail_unavailable(fetch_op *op)
{
    bool which[2] = { false, false };
    for (size_t k = 0; k < op->n_lk; k++)
        which[is_bond(&op->items[op->lk_idx[k]])] = true;
    for (size_t i = 0; i < op->n; i++)
        if (op->need[i])
            which[is_bond(&op->items[i])] = true;
    /* The trailer tells the gateway that this service is up and its message is the answer. */
    const char *dep = which[0] && which[1] ? "equity,fixed_income"
                      : which[1]           ? "fixed_income"
                                           : "equity";
    if (which[0] && which[1])
        fsr_call_fail_dependency(op->call, dep,
                                 "equity service and fixed income service unavailable");
    else
        fsr_call_fail_dependency(op->call, dep, "%s unavailable", service_name[which[1]]);
    finish(op, false);
}

static void on_last_known(const redisReply *reply, int status, void *arg)
{
    fetch_op *op = arg;
    bool got = status == 0 && reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
               reply->elements == op->n_lk;
    for (size_t k = 0; got && k < op->n_lk; k++) {
        const redisReply *el = reply->element[k];
        size_t i = op->lk_idx[k];
        entry e;
        /* Usable only if its prices are not after the requested date. */
        if (el->type == REDIS_REPLY_STRING &&
            entry_decode(op->call, &op->items[i], el->str, el->len, &e) &&
            strcmp(e.as_of, op->as_of) <= 0)
            use_entry(op, i, &e, true);
    }
    for (size_t i = 0; i < op->n; i++) {
        if (op->need[i]) {
            fail_unavailable(op);
            return;
        }
    }
    finish(op, true);
}

/* Every downstream call is back: fall back to cached values where a service failed. */
static void resolve(fetch_op *op)
{
    op->lk_idx = fsr_call_alloc(op->call, sizeof(*op->lk_idx) * (op->n + 1));
    for (size_t i = 0; i < op->n; i++) {
        if (!op->need[i])
            continue;
        if (op->cand[i].msg != NULL)
            use_entry(op, i, &op->cand[i], true);
        else
            op->lk_idx[op->n_lk++] = i;
    }
    if (op->n_lk == 0) {
        finish(op, true);
        return;
    }
    fsr_redis *r = fsr_app_ctx_of(op->call)->redis;
    const char **argv = fsr_call_alloc(op->call, sizeof(*argv) * (op->n_lk + 1));
    argv[0] = "MGET";
    for (size_t k = 0; k < op->n_lk; k++) {
        const pf_mkt_item *it = &op->items[op->lk_idx[k]];
        argv[k + 1] = last_known_key(op, it);
    }
    if (r == NULL ||
        fsr_redis_command_argv(r, on_last_known, op, (int)op->n_lk + 1, argv, NULL) != 0)
        fail_unavailable(op);
}

static void chunk_done(fetch_op *op)
{
    if (--op->pending == 0)
        resolve(op);
}

static void log_failure(const fsr_result *res, int type)
{
    FSR_WARN("valuation: %s call failed: %s %s", service_name[type],
             fsr_code_name(res->status.code),
             res->status.message != NULL ? res->status.message : "");
}

static void on_quotes(const fsr_result *res, const Equity__V1__BatchQuotesResponse *resp, void *arg)
{
    chunk *c = arg;
    fetch_op *op = c->op;
    if (res->status.code != FSR_OK || resp == NULL || resp->n_items != c->n) {
        log_failure(res, 0);
        op->failed[0] = true;
    } else {
        for (size_t k = 0; k < c->n; k++) {
            size_t i = c->idx[k];
            Equity__V1__EquityMarketData *d = prune_eq(op->call, resp->items[k]);
            op->items[i].eq = d;
            op->need[i] = false;
            cache_put(op, i, &d->base);
        }
    }
    chunk_done(op);
}

static void on_analytics(const fsr_result *res, const FixedIncome__V1__BatchAnalyticsResponse *resp,
                         void *arg)
{
    chunk *c = arg;
    fetch_op *op = c->op;
    if (res->status.code != FSR_OK || resp == NULL || resp->n_items != c->n) {
        log_failure(res, 1);
        op->failed[1] = true;
    } else {
        for (size_t k = 0; k < c->n; k++) {
            size_t i = c->idx[k];
            FixedIncome__V1__BatchAnalyticsItem *d = prune_fi(op->call, resp->items[k]);
            op->items[i].bond = d;
            op->need[i] = false;
            cache_put(op, i, &d->base);
        }
    }
    chunk_done(op);
}

/*
 * The downstream deadline: what the call has left, less a third kept to answer from the
 * cache should the service not answer in time, and at most PF_MKT_TIMEOUT_MS.
 */
static int64_t downstream_timeout_ms(fsr_call *call)
{
    int64_t deadline = fsr_call_deadline(call);
    if (deadline == INT64_MAX)
        return PF_MKT_TIMEOUT_MS;
    int64_t left = (deadline - fsr_now_us()) / 1000;
    int64_t t = left * 2 / 3;
    return t < 1 ? 1 : t > PF_MKT_TIMEOUT_MS ? PF_MKT_TIMEOUT_MS : t;
}

/* Issues the calls for the misses of |type| (0 equities, 1 bonds), chunked by the limits. */
static void fetch_type(fetch_op *op, int type, const fsr_call_opts *opts)
{
    size_t max = type == 0 ? PF_MKT_EQ_CHUNK : PF_MKT_FI_CHUNK;
    fsr_channel *ch = type == 0 ? pf_equity_channel(op->call) : pf_fi_channel(op->call);
    for (size_t at = 0; at < op->n_miss[type]; at += max) {
        chunk *c = fsr_call_alloc(op->call, sizeof(*c));
        c->op = op;
        c->idx = op->miss[type] + at;
        c->n = op->n_miss[type] - at < max ? op->n_miss[type] - at : max;
        char **ids = fsr_call_alloc(op->call, sizeof(*ids) * c->n);
        for (size_t k = 0; k < c->n; k++)
            ids[k] = op->items[c->idx[k]].id;
        int rv = FSR_E_CLOSED;
        if (type == 0 && ch != NULL) {
            Equity__V1__BatchQuotesRequest *req = fsr_call_alloc(op->call, sizeof(*req));
            equity__v1__batch_quotes_request__init(req);
            req->ids = ids;
            req->n_ids = c->n;
            req->as_of = op->as_of;
            rv = equity_v1_equity_service_batch_quotes(ch, req, opts, on_quotes, c);
        } else if (type == 1 && ch != NULL) {
            FixedIncome__V1__BatchAnalyticsRequest *req = fsr_call_alloc(op->call, sizeof(*req));
            fixed_income__v1__batch_analytics_request__init(req);
            req->bond_ids = ids;
            req->n_bond_ids = c->n;
            req->settlement_date = op->as_of;
            rv = fixed_income_v1_fixed_income_service_batch_analytics(ch, req, opts, on_analytics,
                                                                      c);
        }
        if (rv != 0) {
            FSR_WARN("valuation: cannot call the %s: %s", service_name[type], fsr_strerror(rv));
            op->failed[type] = true;
        } else {
            op->pending++;
        }
    }
}

static void fetch_misses(fetch_op *op)
{
    for (size_t i = 0; i < op->n; i++) {
        if (op->need[i]) {
            int type = is_bond(&op->items[i]);
            op->miss[type][op->n_miss[type]++] = i;
        }
    }
    fsr_call_opts opts = {
        .timeout_ms = downstream_timeout_ms(op->call),
        .parent = op->call,
        .idempotent = true,
    };
    /* Both calls go out before either answers: they run in parallel. */
    fetch_type(op, 0, &opts);
    fetch_type(op, 1, &opts);
    if (op->pending == 0)
        resolve(op);
}

static void on_mget(const redisReply *reply, int status, void *arg)
{
    fetch_op *op = arg;
    if (status != 0 || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 2 * op->n) {
        FSR_WARN("valuation cache read failed (%s): pricing from the services",
                 status != 0 ? fsr_strerror(status) : "unexpected reply");
        fetch_misses(op);
        return;
    }
    for (size_t i = 0; i < op->n; i++) {
        const redisReply *val = reply->element[2 * i], *gen = reply->element[2 * i + 1];
        op->gen[i] = gen->type == REDIS_REPLY_STRING ? strtoll(gen->str, NULL, 10) : 0;
        entry e;
        if (val->type != REDIS_REPLY_STRING ||
            !entry_decode(op->call, &op->items[i], val->str, val->len, &e) ||
            strcmp(e.as_of, op->as_of) != 0)
            continue;
        int64_t age_ms = op->now_ms - e.fetched_ms;
        if (e.gen == op->gen[i] && age_ms >= 0 && age_ms < PF_MKT_FRESH_S * 1000LL)
            use_entry(op, i, &e, false);
        else
            op->cand[i] = e;
    }
    fetch_misses(op);
}

void pf_market_fetch(fsr_call *call, const char *as_of, pf_mkt_item *items, size_t n, pf_mkt_cb cb,
                     void *arg)
{
    fetch_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->as_of = fsr_call_printf(call, "%s", as_of);
    op->items = items;
    op->n = n;
    op->cb = cb;
    op->arg = arg;
    op->now_ms = fsr_wall_us() / 1000;
    char today[11];
    time_t now = (time_t)(op->now_ms / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(today, sizeof(today), "%Y-%m-%d", &tm);
    op->current = strcmp(as_of, today) >= 0;
    if (n == 0) {
        fsr_loop_defer(fsr_call_loop(call), on_deferred_finish, op);
        return;
    }
    op->gen = fsr_call_alloc(call, sizeof(*op->gen) * n);
    op->cand = fsr_call_alloc(call, sizeof(*op->cand) * n);
    op->need = fsr_call_alloc(call, sizeof(*op->need) * n);
    op->miss[0] = fsr_call_alloc(call, sizeof(size_t) * n);
    op->miss[1] = fsr_call_alloc(call, sizeof(size_t) * n);
    for (size_t i = 0; i < n; i++)
        op->need[i] = true;

    /* MGET entry_0 gen_0 entry_1 gen_1 ... */
    const char **argv = fsr_call_alloc(call, sizeof(*argv) * (2 * n + 1));
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++) {
        argv[1 + 2 * i] = item_key(op, &items[i]);
        argv[2 + 2 * i] =
            fsr_call_printf(call, "pf:g:%c:%s", is_bond(&items[i]) ? 'B' : 'E', items[i].id);
    }
    fsr_redis *r = fsr_app_ctx_of(call)->redis;
    if (r == NULL || fsr_redis_command_argv(r, on_mget, op, (int)(2 * n + 1), argv, NULL) != 0) {
        FSR_WARN("valuation cache unavailable: pricing from the services");
        fsr_loop_defer(fsr_call_loop(call), on_deferred_misses, op); /* |cb| never runs inside */
    }
}
