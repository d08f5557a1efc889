/* SPDX-License-Identifier: MIT */
/*
 * The gateway's authentication pieces without I/O (auth.h): the route policy, the Bearer
 * header and the per-thread cache of key lookups.
 *
 * The cache sits on the request path of every REST call, so a hit costs one SHA-256 of the
 * key (done by the caller, no allocation: see gw_auth_key_hash()), one set of four entries
 * compared, and no lock: each loop thread owns its cache outright (STYLE §6).  Revocation
 * reaches every thread's cache as an eviction (gateway.c), and an entry is trusted for a
 * few seconds at most, which bounds what a missed eviction can cost.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co: see gw_auth_key_hash() */

#include "auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "fsr/mem.h"

/* ---- roles and the route policy -------------------------------------------------------- */

static const char *const role_names[] = { "", "client", "data", "admin" };

const char *gw_role_name(gw_role r)
{
    return (unsigned)r < FSR_ARRAY_SIZE(role_names) ? role_names[r] : "";
}

gw_role gw_role_parse(const char *s)
{
    for (size_t i = 1; s != NULL && i < FSR_ARRAY_SIZE(role_names); i++) {
        if (strcmp(s, role_names[i]) == 0)
            return (gw_role)i;
    }
    return GW_ROLE_NONE;
}

/* True if the first segment of |pattern| ("/equities/{id}" -> "equities") is |seg|. */
static bool first_segment_is(const char *pattern, const char *seg)
{
    if (pattern[0] != '/')
        return false;
    size_t n = strlen(seg);
    return strncmp(pattern + 1, seg, n) == 0 && (pattern[1 + n] == '/' || pattern[1 + n] == '\0');
}

/*
 * The policy table: resources by their first path segment, with the role writes need and
 * the role reads need.  Routes it does not name are open to any authenticated caller.
 */
static const struct {
    const char *segment;
    gw_role read, write;
} policy[] = {
    { "clients", GW_ROLE_ADMIN, GW_ROLE_ADMIN },
    { "equities", GW_ROLE_CLIENT, GW_ROLE_DATA },
    { "bonds", GW_ROLE_CLIENT, GW_ROLE_DATA },
    { "imports", GW_ROLE_CLIENT, GW_ROLE_DATA },
};

/* Writes under a data resource that are stateless calculations: any caller. */
static const struct {
    const char *method, *pattern;
} open_writes[] = {
    { "POST", "/bonds/analytics" },
    /* A read of stored bonds (GET /bonds/{id}/analytics for many), sent as POST for its body. */
    { "POST", "/bonds/batch-analytics" },
};

gw_role gw_route_min_role(const char *http_method, const char *pattern)
{
    bool read = strcmp(http_method, "GET") == 0 || strcmp(http_method, "HEAD") == 0;
    for (size_t i = 0; i < FSR_ARRAY_SIZE(open_writes); i++) {
        if (strcmp(http_method, open_writes[i].method) == 0 &&
            strcmp(pattern, open_writes[i].pattern) == 0)
            return GW_ROLE_CLIENT;
    }
    for (size_t i = 0; i < FSR_ARRAY_SIZE(policy); i++) {
        if (first_segment_is(pattern, policy[i].segment))
            return read ? policy[i].read : policy[i].write;
    }
    return GW_ROLE_CLIENT;
}

/* ---- the Authorization header ---------------------------------------------------------- */

/* RFC 6750 b64token characters (before the optional trailing "="s). */
static bool b64token_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '+' || ch == '/';
}

int gw_auth_bearer(const char *h, const char **key, size_t *len)
{
    if (h == NULL)
        return GW_AUTH_MISSING;
    if (strncasecmp(h, "Bearer", 6) != 0 || h[6] != ' ')
        return GW_AUTH_MALFORMED;
    const char *s = h + 6;
    while (*s == ' ')
        s++;
    const char *e = s;
    while (b64token_char(*e))
        e++;
    while (*e == '=')
        e++;
    size_t n = (size_t)(e - s);
    while (*e == ' ')
        e++;
    if (n == 0 || n > GW_AUTH_KEY_MAX || *e != '\0' || *s == '=')
        return GW_AUTH_MALFORMED;
    *key = s;
    *len = n;
    return 0;
}

/* ---- key hashes ----------------------------------------------------------------------- */

/*
 * The low-level SHA256_* calls rather than EVP_Digest(): in OpenSSL 3 EVP_Digest() fetches
 * the algorithm and allocates a digest context on every call (three mallocs, ~5x slower),
 * which a cache hit must not do.  These are deprecated in OpenSSL 3.0 but present, with
 * the same assembly underneath.
 */
void gw_auth_key_hash(const char *key, size_t len, uint8_t out[GW_AUTH_HASH_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, key, len);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof(c));
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int gw_auth_hash_from_hex(const char *hex, size_t len, uint8_t out[GW_AUTH_HASH_LEN])
{
    if (hex == NULL || len != 2 * GW_AUTH_HASH_LEN)
        return -1;
    uint8_t tmp[GW_AUTH_HASH_LEN];
    for (size_t i = 0; i < GW_AUTH_HASH_LEN; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        tmp[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(out, tmp, sizeof(tmp));
    return 0;
}

/* ---- the cache ------------------------------------------------------------------------ */

#define WAYS 4

typedef struct entry {
    uint8_t hash[GW_AUTH_HASH_LEN];
    int64_t expires_us; /* 0: empty */
    uint32_t gen;       /* the cache's generation when stored: older ones are empty */
    bool negative;
    gw_identity who;
} entry;

struct gw_auth_cache {
    size_t n_sets; /* a power of two */
    uint32_t gen;  /* bumped by gw_auth_cache_clear(): no page of |e| is touched */
    entry *e;      /* n_sets * WAYS */
};

gw_auth_cache *gw_auth_cache_new(size_t slots)
{
    if (slots == 0)
        slots = GW_AUTH_CACHE_SLOTS;
    size_t sets = 1;
    while (sets * WAYS < slots)
        sets *= 2;
    gw_auth_cache *c = fsr_xcalloc(1, sizeof(*c));
    c->n_sets = sets;
    c->gen = 1; /* calloc()ed entries (gen 0) are empty */
    c->e = fsr_xcalloc(sets * WAYS, sizeof(*c->e));
    return c;
}

void gw_auth_cache_free(gw_auth_cache *c)
{
    if (c == NULL)
        return;
    free(c->e);
    free(c);
}

/* The set of |hash|: its first bytes are uniformly distributed already (SHA-256). */
static entry *set_of(const gw_auth_cache *c, const uint8_t *hash)
{
    uint64_t h;
    memcpy(&h, hash, sizeof(h));
    return &c->e[(h & (c->n_sets - 1)) * WAYS];
}

/* When |e| expires: 0 if it is empty or from before the last clear. */
static int64_t expiry(const gw_auth_cache *c, const entry *e)
{
    return e->gen == c->gen ? e->expires_us : 0;
}

int gw_auth_cache_get(const gw_auth_cache *c, const uint8_t hash[GW_AUTH_HASH_LEN], int64_t now_us,
                      gw_identity *out)
{
    const entry *s = set_of(c, hash);
    for (int i = 0; i < WAYS; i++) {
        if (expiry(c, &s[i]) > now_us && memcmp(s[i].hash, hash, GW_AUTH_HASH_LEN) == 0) {
            if (s[i].negative)
                return GW_CACHE_NEGATIVE;
            *out = s[i].who;
            return GW_CACHE_HIT;
        }
    }
    return GW_CACHE_MISS;
}

void gw_auth_cache_put(gw_auth_cache *c, const uint8_t hash[GW_AUTH_HASH_LEN],
                       const gw_identity *who, int64_t now_us)
{
    entry *s = set_of(c, hash);
    /* The same key again, else the way that expires first (an empty one has expired). */
    entry *slot = &s[0];
    for (int i = 0; i < WAYS; i++) {
        if (expiry(c, &s[i]) != 0 && memcmp(s[i].hash, hash, GW_AUTH_HASH_LEN) == 0) {
            slot = &s[i];
            break;
        }
        if (expiry(c, &s[i]) < expiry(c, slot))
            slot = &s[i];
    }
    memcpy(slot->hash, hash, GW_AUTH_HASH_LEN);
    slot->gen = c->gen;
    slot->negative = who == NULL;
    slot->expires_us =
        now_us + (int64_t)(who != NULL ? GW_AUTH_TTL_MS : GW_AUTH_NEGATIVE_TTL_MS) * 1000;
    if (who != NULL)
        slot->who = *who;
    else
        memset(&slot->who, 0, sizeof(slot->who));
}

bool gw_auth_cache_evict(gw_auth_cache *c, const uint8_t hash[GW_AUTH_HASH_LEN])
{
    entry *s = set_of(c, hash);
    bool found = false;
    for (int i = 0; i < WAYS; i++) {
        if (expiry(c, &s[i]) != 0 && memcmp(s[i].hash, hash, GW_AUTH_HASH_LEN) == 0) {
            memset(&s[i], 0, sizeof(s[i]));
            found = true;
        }
    }
    return found;
}

void gw_auth_cache_clear(gw_auth_cache *c)
{
    if (++c->gen == 0) {
        /* Wrapped after 2^32 clears: generation 0 must mean empty again. */
        memset(c->e, 0, c->n_sets * WAYS * sizeof(*c->e));
        c->gen = 1;
    }
}
