/* SPDX-License-Identifier: MIT */
/*
 * The stored-bond pricing cache: terms and latest quote under fi:quote:<id>, guarded by the
 * generation counter fi:qgen:<id> (the protocol is described in fixed_income.h).
 *
 * An entry is a byte string: 'F', format version 1, the length of the packed Bond (4 bytes,
 * big-endian), the packed Bond, then the packed BondQuote of the latest quote (nothing when
 * the bond has no quote).  The Bond carries every column a reply needs, so a hit answers
 * GetBondAnalytics and BatchAnalytics without Postgres.
 */
#include "fixed_income.h"

#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fsr/app.h"
#include "fsr/mem.h"
#include "fsr/log.h"

#define ENTRY_MAGIC   'F'
#define ENTRY_VERSION 1
#define ENTRY_HEAD    6
/* Long enough that a generation never expires while a reader holds it (milliseconds). */
#define GEN_TTL_S 604800

/*
 * Invalidation: the generation first, then the entry, atomically (a script runs alone).
 * The generation's TTL is renewed on every write, so it cannot vanish (and restart at
 * "absent", which an old reader may hold) right after a write.
 */
static const char invalidate_lua[] = "redis.call('INCR', KEYS[1]) "
                                     "redis.call('EXPIRE', KEYS[1], ARGV[1]) "
                                     "return redis.call('DEL', KEYS[2])";

/*
 * Guarded fill: KEYS are n entries then their n generations; ARGV the TTL, the n
 * generations the reader saw ("" for absent), then the n entries.  An entry is written only
 * if its generation has not moved since.
 */
static const char fill_lua[] = "local n = #KEYS / 2 "
                               "local set = 0 "
                               "for i = 1, n do "
                               "  local g = redis.call('GET', KEYS[n + i]) or '' "
                               "  if g == ARGV[1 + i] then "
                               "    redis.call('SET', KEYS[i], ARGV[1 + n + i], 'EX', ARGV[1]) "
                               "    set = set + 1 "
                               "  end "
                               "end "
                               "return set";

/* "<prefix><id>" with the id lower-cased, in the call's arena. */
static char *key_of(fsr_call *call, const char *prefix, const char *id)
{
    char *k = fsr_call_printf(call, "%s%s", prefix, id);
    for (char *p = k + strlen(prefix); *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    return k;
}

int fi_cache_invalidate(fsr_call *call, const char *id, fsr_redis_cb cb, void *arg)
{
    fsr_redis *cache = fsr_app_ctx_of(call)->redis;
    if (cache == NULL)
        return FSR_E_CLOSED;
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", GEN_TTL_S);
    const char *argv[] = {
        "EVAL", invalidate_lua, "2", key_of(call, "fi:qgen:", id), key_of(call, "fi:quote:", id),
        ttl
    };
    return fsr_redis_command_argv(cache, cb, arg, (int)FSR_ARRAY_SIZE(argv), argv, NULL);
}

int fi_cache_get(fsr_call *call, const char *const *ids, size_t n, fsr_redis_cb cb, void *arg)
{
    fsr_redis *cache = fsr_app_ctx_of(call)->redis;
    if (cache == NULL || n == 0)
        return FSR_E_CLOSED;
    const char **argv = fsr_call_alloc(call, sizeof(*argv) * (2 * n + 1));
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++) {
        argv[1 + i] = key_of(call, "fi:quote:", ids[i]);
        argv[1 + n + i] = key_of(call, "fi:qgen:", ids[i]);
    }
    return fsr_redis_command_argv(cache, cb, arg, (int)(2 * n + 1), argv, NULL);
}

int fi_cache_decode(fsr_call *call, const char *s, size_t len, fi_cached *out)
{
    const uint8_t *p = (const uint8_t *)s;
    if (len < ENTRY_HEAD || p[0] != ENTRY_MAGIC || p[1] != ENTRY_VERSION)
        return -1;
    size_t blen = (size_t)p[2] << 24 | (size_t)p[3] << 16 | (size_t)p[4] << 8 | (size_t)p[5];
    if (blen > len - ENTRY_HEAD)
        return -1;
    ProtobufCAllocator *alloc = fsr_arena_pb_allocator(fsr_call_arena(call));
    FixedIncome__V1__Bond *b = fixed_income__v1__bond__unpack(alloc, blen, p + ENTRY_HEAD);
    if (b == NULL || b->id[0] == '\0')
        return -1;
    FixedIncome__V1__BondQuote *q = NULL;
    size_t qlen = len - ENTRY_HEAD - blen;
    if (qlen > 0) {
        q = fixed_income__v1__bond_quote__unpack(alloc, qlen, p + ENTRY_HEAD + blen);
        if (q == NULL || q->date[0] == '\0' ||
            q->value_case == FIXED_INCOME__V1__BOND_QUOTE__VALUE__NOT_SET)
            return -1;
    }
    out->bond = b;
    out->latest = q;
    return 0;
}

/* Packs |e| as an entry into the call's arena; sets *|len|. */
static uint8_t *encode(fsr_call *call, const fi_cached *e, size_t *len)
{
    size_t blen = fixed_income__v1__bond__get_packed_size(e->bond);
    size_t qlen = e->latest != NULL ? fixed_income__v1__bond_quote__get_packed_size(e->latest) : 0;
    uint8_t *buf = fsr_call_alloc(call, ENTRY_HEAD + blen + qlen + 1);
    buf[0] = ENTRY_MAGIC;
    buf[1] = ENTRY_VERSION;
    buf[2] = (uint8_t)(blen >> 24);
    buf[3] = (uint8_t)(blen >> 16);
    buf[4] = (uint8_t)(blen >> 8);
    buf[5] = (uint8_t)blen;
    fixed_income__v1__bond__pack(e->bond, buf + ENTRY_HEAD);
    if (e->latest != NULL)
        fixed_income__v1__bond_quote__pack(e->latest, buf + ENTRY_HEAD + blen);
    *len = ENTRY_HEAD + blen + qlen;
    return buf;
}

static void on_filled(const redisReply *reply, int status, void *arg)
{
    (void)arg;
    if (status != 0)
        FSR_WARN("bond cache fill: %s%s%s", fsr_strerror(status),
                 reply != NULL && reply->type == REDIS_REPLY_ERROR ? ": " : "",
                 reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : "");
}

void fi_cache_fill(fsr_call *call, const fi_cached *e, const char *const *gens, size_t n)
{
    fsr_redis *cache = fsr_app_ctx_of(call)->redis;
    if (cache == NULL || n == 0)
        return;
    size_t argc = 4 + 4 * n;
    const char **argv = fsr_call_alloc(call, sizeof(*argv) * argc);
    size_t *lens = fsr_call_alloc(call, sizeof(*lens) * argc);
    char *nkeys = fsr_call_printf(call, "%zu", 2 * n);
    char *ttl = fsr_call_printf(call, "%d", FI_CACHE_TTL_S);
    argv[0] = "EVAL";
    argv[1] = fill_lua;
    argv[2] = nkeys;
    argv[3 + 2 * n] = ttl;
    for (size_t i = 0; i < n; i++) {
        argv[3 + i] = key_of(call, "fi:quote:", e[i].bond->id);
        argv[3 + n + i] = key_of(call, "fi:qgen:", e[i].bond->id);
        argv[4 + 2 * n + i] = gens[i];
        size_t len;
        argv[4 + 3 * n + i] = (const char *)encode(call, &e[i], &len);
        lens[4 + 3 * n + i] = len;
    }
    for (size_t i = 0; i < argc; i++) {
        if (i < 4 + 3 * n)
            lens[i] = strlen(argv[i]);
    }
    int rv = fsr_redis_command_argv(cache, on_filled, NULL, (int)argc, argv, lens);
    if (rv != 0 && rv != FSR_E_CLOSED)
        FSR_WARN("bond cache fill: %s", fsr_strerror(rv));
}
