/* SPDX-License-Identifier: MIT */
/*
 * The gateway's authentication and authorization pieces that need no I/O: the Bearer
 * header, the route policy (which role each route needs), and the per-thread cache of key
 * lookups (keyed by the key's SHA-256, bounded, no allocation after creation).  gateway.c
 * does the I/O: portfolio.v1.ClientService/Authenticate on a miss, and the shared Redis
 * channel "key.revoked" that evicts entries.  Internal to rest_gateway/ and its unit test.
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- roles and the route policy -------------------------------------------------------- */

/* A caller's role, ordered: each one may do what the ones below it may. */
typedef enum gw_role {
    GW_ROLE_NONE = 0, /* not a role (unknown name) */
    GW_ROLE_CLIENT,   /* its own portfolios; reads reference data */
    GW_ROLE_DATA,     /* also writes reference and market data */
    GW_ROLE_ADMIN,    /* everything, clients and keys included */
} gw_role;

/* "client", "data", "admin" ("" for GW_ROLE_NONE). */
const char *gw_role_name(gw_role r);

/* The role named |s| (exactly, lower case), or GW_ROLE_NONE. */
gw_role gw_role_parse(const char *s);

/*
 * The least role a route needs, from its HTTP method and pattern (the policy, in one
 * place):
 *   - /clients and everything under it: GW_ROLE_ADMIN;
 *   - a method other than GET/HEAD on /equities*, /bonds* or /imports*: GW_ROLE_DATA,
 *     except POST /bonds/analytics (a stateless calculation);
 *   - everything else: GW_ROLE_CLIENT (any authenticated caller).
 * The gateway's own endpoints (/health, /metrics, /livez, /readyz, /openapi.json, /docs)
 * are not routes and need no key at all.
 */
gw_role gw_route_min_role(const char *http_method, const char *pattern);

/* ---- the Authorization header ---------------------------------------------------------- */

/* Longest API key accepted (longer ones are refused without a lookup). */
#define GW_AUTH_KEY_MAX 512

/* gw_auth_bearer() results besides 0. */
enum {
    GW_AUTH_MISSING = 1, /* no Authorization header */
    GW_AUTH_MALFORMED =
        2, /* not "Bearer <token>", or the token is empty, too long or not token68 */
};

/*
 * Parses an Authorization header value |h| (NULL when absent): the scheme "Bearer" in any
 * case, one or more spaces, then the key as RFC 6750's b64token (letters, digits and
 * "-._~+/", then optional "="), at most GW_AUTH_KEY_MAX bytes, optionally followed by
 * spaces.  Returns 0 with the key in *|key| (pointing into |h|, not NUL-terminated) and its
 * length in *|len|, or GW_AUTH_MISSING / GW_AUTH_MALFORMED.
 */
int gw_auth_bearer(const char *h, const char **key, size_t *len);

/* ---- key hashes ----------------------------------------------------------------------- */

#define GW_AUTH_HASH_LEN 32 /* SHA-256 */

/* The SHA-256 of |len| bytes of |key| into |out|.  Allocation-free (called per request). */
void gw_auth_key_hash(const char *key, size_t len, uint8_t out[GW_AUTH_HASH_LEN]);

/* Decodes 64 hex digits (either case) into |out|.  Returns 0, or -1 if |hex| is not that. */
int gw_auth_hash_from_hex(const char *hex, size_t len, uint8_t out[GW_AUTH_HASH_LEN]);

/* ---- the cache ------------------------------------------------------------------------ */

/* Who a key belongs to, as Authenticate said. */
typedef struct gw_identity {
    char client_id[40]; /* lower-case UUID, NUL-terminated */
    gw_role role;
} gw_identity;

/* How long a lookup is trusted: positive (the key works) and negative (it does not). */
#define GW_AUTH_TTL_MS          5000
#define GW_AUTH_NEGATIVE_TTL_MS 1000
/* Entries per loop thread (4-way set associative; a power of two, a multiple of 4). */
#define GW_AUTH_CACHE_SLOTS 1024

/*
 * A cache of key lookups owned by one loop thread (never shared, so never locked).  Entries
 * are keyed by the key's SHA-256, so no key is kept in memory; a full set replaces its
 * entry that expires first.
 */
typedef struct gw_auth_cache gw_auth_cache;

/* A cache of |slots| entries (rounded up to a multiple of 4; 0: GW_AUTH_CACHE_SLOTS). */
gw_auth_cache *gw_auth_cache_new(size_t slots);

/* Frees |c|.  NULL is a no-op. */
void gw_auth_cache_free(gw_auth_cache *c);

/* gw_auth_cache_get() results. */
enum {
    GW_CACHE_MISS = 0,     /* unknown or expired: look it up */
    GW_CACHE_HIT = 1,      /* the key works: *|out| is who it is */
    GW_CACHE_NEGATIVE = 2, /* the key was refused less than GW_AUTH_NEGATIVE_TTL_MS ago */
};

/* Looks up |hash| at time |now_us| (fsr_now_us()).  No allocation, no lock. */
int gw_auth_cache_get(const gw_auth_cache *c, const uint8_t hash[GW_AUTH_HASH_LEN], int64_t now_us,
                      gw_identity *out);

/*
 * Stores the lookup of |hash| made at |now_us|: |who| for a key that works (trusted for
 * GW_AUTH_TTL_MS), NULL for one refused (GW_AUTH_NEGATIVE_TTL_MS).
 */
void gw_auth_cache_put(gw_auth_cache *c, const uint8_t hash[GW_AUTH_HASH_LEN],
                       const gw_identity *who, int64_t now_us);

/* Drops the entry of |hash|, if any.  Returns true if there was one. */
bool gw_auth_cache_evict(gw_auth_cache *c, const uint8_t hash[GW_AUTH_HASH_LEN]);

/* Drops every entry. */
void gw_auth_cache_clear(gw_auth_cache *c);

#endif /* GW_AUTH_H */
