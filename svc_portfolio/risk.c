/* SPDX-License-Identifier: MIT */
/*
 * The return series behind Calculate's risk figures: one equity.v1 BatchQuotes (lookback,
 * TOTAL returns, prices) for the held equities and the benchmark's equity components, and
 * one fixed_income.v1 BatchPriceHistory for the held bonds, issued in parallel, behind a
 * per-instrument cache in the portfolio Redis that follows market_cache.c's rules:
 *
 *   pf:s:<T>:<id>:<as_of>:<lookback>  the instrument's series as a flat binary image in an
 *                                     envelope {magic, generation, fetched-at}; kept
 *                                     PF_SER_KEEP_S
 *   pf:g:<T>:<id>                     the instrument's generation (market_cache.c INCRs it
 *                                     on price.updated / bond.updated / equity.updated)
 *
 * An entry serves when its generation is the instrument's current one and it is less than
 * PF_SER_FRESH_S old; misses go downstream tagged with the generation read before the
 * fetch, so an event during the fetch leaves the new entry already outdated.  When a
 * service fails, an outdated entry of the same key is used (flagged stale); with none the
 * instrument has no series (risk then says so; the valuation itself never fails for risk).
 *
 * Bond histories are asked for from as_of - (lookback x 7/5 + 31) calendar days, enough
 * weekdays for the lookback plus holidays; risk.c's caller aligns them on its grid.
 */
#include "risk.h"
#include "portfolio.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/redis.h"
#include "fsr/validate.h"

#include "equity_v1.fsr.h"
#include "fixed_income_v1.fsr.h"

#define PF_SER_FRESH_S         900
#define PF_SER_KEEP_S          (7 * 86400)
#define PF_SER_TIMEOUT_MS      5000
#define PF_SER_MAGIC           "PFS2"
#define PF_SER_HDR             (4 + 8 + 8)
#define PF_SER_EQ_CHUNK        5000
#define PF_SER_FI_CHUNK        1000
#define PF_SER_EQ_LOOKBACK_MAX 2520  /* BatchQuotes' longest lookback */
#define PF_SER_EQ_POINTS       60000 /* days x ids per BatchQuotes reply (~2.7 MB) */
#define PF_SER_FI_POINTS       40000 /* points x ids per BatchPriceHistory reply (~2.6 MB) */

typedef struct ser_op {
    fsr_call *call;
    pf_series *s;
    size_t n;
    const char *as_of;
    int lookback;
    char *from; /* bond window start */
    int64_t now_ms;
    int64_t *gen;
    pf_series *cand; /* outdated entries (fallback) */
    bool *have_cand;
    int64_t *cand_ms;
    size_t *miss[2];
    size_t n_miss[2];
    int pending;
    pf_series_cb cb;
    void *arg;
} ser_op;

static bool ser_is_bond(const pf_series *s)
{
    return s->type == COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND;
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

/* "YYYY-MM-DD" of day serial |z| (days since 1970-01-01; Hinnant's civil_from_days). */
static char *date_of(fsr_call *call, int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    return fsr_call_printf(call, "%04d-%02d-%02d", (int)(y + (m <= 2)), (int)m, (int)d);
}

int32_t pf_day_of(const char *date)
{
    int y, m, d;
    if (date == NULL || fsr_date_parse(date, &y, &m, &d) != 0)
        return INT32_MIN;
    return (int32_t)fsr_days_from_civil(y, m, d);
}

char *pf_date_text(fsr_call *call, int32_t day)
{
    return date_of(call, day);
}

static char *ser_key(ser_op *op, const pf_series *s)
{
    return fsr_call_printf(op->call, "pf:s:%c:%s:%s:%d", ser_is_bond(s) ? 'B' : 'E', s->id,
                           op->as_of, op->lookback);
}

/* Fills |s|'s dated returns (and sector/issuer) from the service's item |msg|. */
static void take(ser_op *op, pf_series *s, const void *msg, bool stale)
{
    fsr_call *call = op->call;
    s->stale = stale;
    if (ser_is_bond(s)) {
        const FixedIncome__V1__BondPriceHistory *h = msg;
        if (h->error_code != 0) {
            s->error = fsr_call_printf(call, "%s", h->error);
            return;
        }
        if (h->bond != NULL)
            s->group = fsr_call_printf(call, "%s", h->bond->issuer);
        size_t n = h->n_points;
        s->days = fsr_call_alloc(call, sizeof(*s->days) * (n + 1));
        s->r = fsr_call_alloc(call, sizeof(*s->r) * (n + 1));
        s->price_days = fsr_call_alloc(call, sizeof(*s->price_days) * (n + 1));
        for (size_t j = 0; j < n; j++) {
            s->price_days[j] = pf_day_of(h->points[j]->date);
            if (j == 0)
                continue;
            const FixedIncome__V1__BondPricePoint *a = h->points[j - 1], *b = h->points[j];
            s->days[s->n] = s->price_days[j];
            s->r[s->n++] = (b->dirty_price + b->cash_paid) / a->dirty_price - 1.0;
        }
        s->n_price_days = n;
        s->ok = true;
        return;
    }
    const Equity__V1__EquityMarketData *d = msg;
    if (d->error_code != 0) {
        s->error = fsr_call_printf(call, "%s", d->error);
        return;
    }
    if (d->equity != NULL)
        s->group = fsr_call_printf(call, "%s", d->equity->sector);
    size_t n = d->n_returns;
    s->days = fsr_call_alloc(call, sizeof(*s->days) * (n + 1));
    s->r = fsr_call_alloc(call, sizeof(*s->r) * (n + 1));
    for (size_t j = 0; j < n; j++) {
        s->days[j] = pf_day_of(d->returns[j]->date);
        s->r[j] = d->returns[j]->value;
    }
    s->n = n;
    s->price_days = fsr_call_alloc(call, sizeof(*s->price_days) * (d->n_prices + 1));
    for (size_t j = 0; j < d->n_prices; j++)
        s->price_days[j] = pf_day_of(d->prices[j]->date);
    s->n_price_days = d->n_prices;
    s->ok = true;
}

/*
 * Entries are a flat binary image of the filled pf_series, not the service's message:
 * reading 1,000 windows of a year back must cost a memcpy, not a protobuf decode.
 *   magic "PFS2", generation (8), fetched-at ms (8), ok (4), n (4), n_price_days (4),
 *   group length (4) and bytes, error length (4) and bytes, days (4 n), returns (8 n),
 *   price days (4 n_price_days).  Header integers are little-endian; the arrays are in
 *   host order (replicas sharing a Redis run one architecture; the magic would change
 *   otherwise).
 */
static size_t ser_size(const pf_series *s)
{
    size_t g = s->group != NULL ? strlen(s->group) : 0, e = s->error != NULL ? strlen(s->error) : 0;
    return PF_SER_HDR + 4 * 5 + g + e + s->n * 12 + s->n_price_days * 4;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void cache_put(ser_op *op, size_t i)
{
    fsr_redis *r = fsr_app_ctx_of(op->call)->redis;
    const pf_series *s = &op->s[i];
    if (r == NULL || s->unavailable)
        return;
    size_t len = ser_size(s);
    uint8_t *buf = fsr_call_alloc(op->call, len);
    uint8_t *p = buf;
    memcpy(p, PF_SER_MAGIC, 4);
    put64(p + 4, op->gen[i]);
    put64(p + 12, op->now_ms);
    p += PF_SER_HDR;
    size_t g = s->group != NULL ? strlen(s->group) : 0, e = s->error != NULL ? strlen(s->error) : 0;
    put32(p, s->ok);
    put32(p + 4, (uint32_t)s->n);
    put32(p + 8, (uint32_t)s->n_price_days);
    put32(p + 12, (uint32_t)g);
    p += 16;
    memcpy(p, s->group, g);
    p += g;
    put32(p, (uint32_t)e);
    p += 4;
    memcpy(p, s->error, e);
    p += e;
    memcpy(p, s->days, 4 * s->n);
    p += 4 * s->n;
    memcpy(p, s->r, 8 * s->n);
    p += 8 * s->n;
    memcpy(p, s->price_days, 4 * s->n_price_days);
    int rv = fsr_redis_command(r, NULL, NULL, "SET %s %b EX %d", ser_key(op, s), buf, len,
                               PF_SER_KEEP_S);
    if (rv != 0)
        FSR_WARN("risk series cache write: %s", fsr_strerror(rv));
}

/* Decodes entry |buf| (|len| bytes) into |s| (arena copies); false if malformed. */
static bool ser_decode(fsr_call *call, const uint8_t *buf, size_t len, pf_series *s)
{
    if (len < PF_SER_HDR + 20 || memcmp(buf, PF_SER_MAGIC, 4) != 0)
        return false;
    const uint8_t *p = buf + PF_SER_HDR, *end = buf + len;
    bool ok = get32(p) != 0;
    size_t n = get32(p + 4), np = get32(p + 8), g = get32(p + 12);
    p += 16;
    if ((size_t)(end - p) < g + 4)
        return false;
    char *group = fsr_arena_strndup(fsr_call_arena(call), (const char *)p, g);
    p += g;
    size_t e = get32(p);
    p += 4;
    if ((size_t)(end - p) != e + 12 * n + 4 * np)
        return false;
    char *error = e > 0 ? fsr_arena_strndup(fsr_call_arena(call), (const char *)p, e) : NULL;
    p += e;
    s->ok = ok;
    s->group = group;
    s->error = error;
    s->n = n;
    s->n_price_days = np;
    s->days = fsr_call_alloc(call, 4 * n + 4);
    s->r = fsr_call_alloc(call, 8 * n + 8);
    s->price_days = fsr_call_alloc(call, 4 * np + 4);
    memcpy(s->days, p, 4 * n);
    p += 4 * n;
    memcpy(s->r, p, 8 * n);
    p += 8 * n;
    memcpy(s->price_days, p, 4 * np);
    return true;
}

static void finish(ser_op *op)
{
    for (size_t i = 0; i < op->n; i++) {
        pf_series *s = &op->s[i];
        if (s->ok || s->error != NULL)
            continue;
        if (op->have_cand[i]) {
            pf_series keep = *s;
            *s = op->cand[i];
            s->type = keep.type;
            s->id = keep.id;
            s->stale = true;
            s->age_s = (double)(op->now_ms - op->cand_ms[i]) / 1000.0;
        } else {
            s->unavailable = true;
            s->error =
                ser_is_bond(s) ? "fixed income service unavailable" : "equity service unavailable";
        }
    }
    op->cb(op->call, op->s, op->n, op->arg);
}

static void done_one(ser_op *op)
{
    if (--op->pending == 0)
        finish(op);
}

typedef struct ser_chunk {
    ser_op *op;
    size_t *idx;
    size_t n;
} ser_chunk;

static void on_quotes(const fsr_result *res, const Equity__V1__BatchQuotesResponse *resp, void *arg)
{
    ser_chunk *c = arg;
    ser_op *op = c->op;
    if (res->status.code != FSR_OK || resp == NULL || resp->n_items != c->n) {
        FSR_WARN("risk: equity service call failed: %s", fsr_code_name(res->status.code));
    } else {
        for (size_t k = 0; k < c->n; k++) {
            size_t i = c->idx[k];
            take(op, &op->s[i], resp->items[k], false);
            cache_put(op, i);
        }
    }
    done_one(op);
}

static void on_history(const fsr_result *res,
                       const FixedIncome__V1__BatchPriceHistoryResponse *resp, void *arg)
{
    ser_chunk *c = arg;
    ser_op *op = c->op;
    if (res->status.code != FSR_OK || resp == NULL || resp->n_items != c->n) {
        FSR_WARN("risk: fixed income service call failed: %s", fsr_code_name(res->status.code));
    } else {
        for (size_t k = 0; k < c->n; k++) {
            size_t i = c->idx[k];
            take(op, &op->s[i], resp->items[k], false);
            cache_put(op, i);
        }
    }
    done_one(op);
}

/*
 * Ids per downstream call: the services' limits, and replies kept to about 2-3 MB (an
 * equity costs some 45 bytes a day, a bond point some 65), so a 252-day window of 500
 * instruments goes out as a few calls in parallel rather than one the 4 MB default message
 * limit refuses (RESOURCE_EXHAUSTED).
 */
static size_t chunk_of(const ser_op *op, int type)
{
    size_t max = type == 0 ? PF_SER_EQ_CHUNK : PF_SER_FI_CHUNK;
    size_t fit = (type == 0 ? PF_SER_EQ_POINTS : PF_SER_FI_POINTS) / ((size_t)op->lookback + 1);
    return fit < 1 ? 1 : fit < max ? fit : max;
}

static void fetch_type(ser_op *op, int type, const fsr_call_opts *opts)
{
    size_t max = chunk_of(op, type);
    fsr_channel *ch = type == 0 ? pf_equity_channel(op->call) : pf_fi_channel(op->call);
    for (size_t at = 0; at < op->n_miss[type]; at += max) {
        ser_chunk *c = fsr_call_alloc(op->call, sizeof(*c));
        c->op = op;
        c->idx = op->miss[type] + at;
        c->n = op->n_miss[type] - at < max ? op->n_miss[type] - at : max;
        char **ids = fsr_call_alloc(op->call, sizeof(*ids) * c->n);
        for (size_t k = 0; k < c->n; k++)
            ids[k] = op->s[c->idx[k]].id;
        int rv = FSR_E_CLOSED;
        if (type == 0 && ch != NULL) {
            Equity__V1__BatchQuotesRequest *req = fsr_call_alloc(op->call, sizeof(*req));
            equity__v1__batch_quotes_request__init(req);
            req->ids = ids;
            req->n_ids = c->n;
            req->as_of = fsr_call_printf(op->call, "%s", op->as_of);
            req->lookback_days = op->lookback;
            req->basis = COMMON__V1__BASIS__VALUE__TOTAL;
            req->include_prices = true; /* their dates: the grid (the base date included) */
            req->include_returns = true;
            rv = equity_v1_equity_service_batch_quotes(ch, req, opts, on_quotes, c);
        } else if (type == 1 && ch != NULL) {
            FixedIncome__V1__BatchPriceHistoryRequest *req = fsr_call_alloc(op->call, sizeof(*req));
            fixed_income__v1__batch_price_history_request__init(req);
            req->bond_ids = ids;
            req->n_bond_ids = c->n;
            req->from = op->from;
            req->to = fsr_call_printf(op->call, "%s", op->as_of);
            rv = fixed_income_v1_fixed_income_service_batch_price_history(ch, req, opts, on_history,
                                                                          c);
        }
        if (rv != 0)
            FSR_WARN("risk: cannot call the %s service: %s", type ? "fixed income" : "equity",
                     fsr_strerror(rv));
        else
            op->pending++;
    }
}

static void fetch_misses(ser_op *op)
{
    fsr_call_opts opts = { .timeout_ms = PF_SER_TIMEOUT_MS,
                           .parent = op->call,
                           .idempotent = true };
    op->pending = 1; /* held until both types are issued */
    fetch_type(op, 0, &opts);
    fetch_type(op, 1, &opts);
    done_one(op);
}

static void on_deferred(void *arg)
{
    fetch_misses(arg);
}

static void on_mget(const redisReply *reply, int status, void *arg)
{
    ser_op *op = arg;
    bool ok = status == 0 && reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
              reply->elements == 2 * op->n;
    for (size_t i = 0; ok && i < op->n; i++) {
        const redisReply *val = reply->element[2 * i], *gen = reply->element[2 * i + 1];
        op->gen[i] = gen->type == REDIS_REPLY_STRING ? strtoll(gen->str, NULL, 10) : 0;
        if (val->type != REDIS_REPLY_STRING || val->len < PF_SER_HDR)
            continue;
        const uint8_t *p = (const uint8_t *)val->str;
        pf_series dec = op->s[i];
        if (!ser_decode(op->call, p, val->len, &dec))
            continue;
        int64_t fetched = get64(p + 12), age_ms = op->now_ms - fetched;
        if (get64(p + 4) == op->gen[i] && age_ms >= 0 && age_ms < PF_SER_FRESH_S * 1000LL) {
            op->s[i] = dec;
        } else {
            op->cand[i] = dec;
            op->have_cand[i] = true;
            op->cand_ms[i] = fetched;
        }
    }
    if (!ok && status != 0)
        FSR_WARN("risk series cache read failed: %s", fsr_strerror(status));
    for (size_t i = 0; i < op->n; i++) {
        if (op->s[i].ok || op->s[i].error != NULL)
            continue;
        int type = ser_is_bond(&op->s[i]);
        op->miss[type][op->n_miss[type]++] = i;
    }
    fetch_misses(op);
}

void pf_series_fetch(fsr_call *call, const char *as_of, int lookback, pf_series *s, size_t n,
                     pf_series_cb cb, void *arg)
{
    ser_op *op = fsr_call_alloc(call, sizeof(*op));
    memset(op, 0, sizeof(*op));
    op->call = call;
    op->s = s;
    op->n = n;
    op->as_of = as_of;
    op->lookback = lookback;
    op->cb = cb;
    op->arg = arg;
    op->now_ms = fsr_wall_us() / 1000;
    op->from = date_of(call, pf_day_of(as_of) - ((int64_t)lookback * 7 / 5 + 31));
    size_t cap = n > 0 ? n : 1;
    op->gen = fsr_call_alloc(call, sizeof(*op->gen) * cap);
    op->cand = fsr_call_alloc(call, sizeof(*op->cand) * cap);
    op->have_cand = fsr_call_alloc(call, sizeof(*op->have_cand) * cap);
    memset(op->have_cand, 0, sizeof(*op->have_cand) * cap);
    op->cand_ms = fsr_call_alloc(call, sizeof(*op->cand_ms) * cap);
    op->miss[0] = fsr_call_alloc(call, sizeof(size_t) * cap);
    op->miss[1] = fsr_call_alloc(call, sizeof(size_t) * cap);
    const char **argv = fsr_call_alloc(call, sizeof(*argv) * (2 * n + 1));
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++) {
        argv[1 + 2 * i] = ser_key(op, &s[i]);
        argv[2 + 2 * i] =
            fsr_call_printf(call, "pf:g:%c:%s", ser_is_bond(&s[i]) ? 'B' : 'E', s[i].id);
    }
    fsr_redis *r = fsr_app_ctx_of(call)->redis;
    if (n == 0 || r == NULL ||
        fsr_redis_command_argv(r, on_mget, op, (int)(2 * n + 1), argv, NULL) != 0) {
        for (size_t i = 0; i < n; i++) {
            int type = ser_is_bond(&s[i]);
            op->miss[type][op->n_miss[type]++] = i;
        }
        fsr_loop_defer(fsr_call_loop(call), on_deferred, op); /* |cb| never runs inside */
    }
}
