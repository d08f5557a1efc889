/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for rest_gateway/auth.c: the route policy (on the real route table), the
 * Bearer header, key hashes, and the per-thread lookup cache -- hits, expiry, negative
 * entries, eviction, clearing, replacement within a full set, and that a lookup (hash +
 * cache hit) allocates nothing: malloc & co are counted through --wrap, OpenSSL's through
 * CRYPTO_set_mem_functions().
 */
#include "auth.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "fsr/route.h"

/* ---- allocation counting ----------------------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static int n_allocs;

void *__wrap_malloc(size_t n)
{
    n_allocs++;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    n_allocs++;
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    n_allocs++;
    return __real_realloc(p, n);
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    n_allocs++;
    return __real_malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    n_allocs++;
    return __real_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

static int ossl_counting; /* CRYPTO_set_mem_functions() accepted (before any OpenSSL use) */

/* ---- the route policy ------------------------------------------------------------------- */

static const fsr_route *route(const char *method, const char *pattern)
{
    for (size_t i = 0; i < fsr_n_routes; i++) {
        if (strcmp(fsr_routes[i].http_method, method) == 0 &&
            strcmp(fsr_routes[i].pattern, pattern) == 0)
            return &fsr_routes[i];
    }
    return NULL;
}

START_TEST(test_gateway_auth_policy_examples)
{
    static const struct {
        const char *method, *pattern;
        gw_role need;
    } cases[] = {
        { "POST", "/clients", GW_ROLE_ADMIN },
        { "GET", "/clients", GW_ROLE_ADMIN },
        { "GET", "/clients/{id}", GW_ROLE_ADMIN },
        { "POST", "/clients/{id}/keys", GW_ROLE_ADMIN },
        { "DELETE", "/clients/{id}/keys/{key_id}", GW_ROLE_ADMIN },
        { "GET", "/equities", GW_ROLE_CLIENT },
        { "GET", "/equities/{id}", GW_ROLE_CLIENT },
        { "GET", "/equities/{id}/quote", GW_ROLE_CLIENT },
        { "POST", "/equities", GW_ROLE_DATA },
        { "PATCH", "/equities/{id}", GW_ROLE_DATA },
        { "DELETE", "/equities/{id}", GW_ROLE_DATA },
        { "PUT", "/equities/{id}/prices", GW_ROLE_DATA },
        { "POST", "/equities/{id}/dividends", GW_ROLE_DATA },
        { "POST", "/bonds", GW_ROLE_DATA },
        { "PUT", "/bonds/{id}/quotes", GW_ROLE_DATA },
        { "GET", "/bonds/{id}/analytics", GW_ROLE_CLIENT },
        { "POST", "/bonds/analytics", GW_ROLE_CLIENT },       /* stateless */
        { "POST", "/bonds/batch-analytics", GW_ROLE_CLIENT }, /* a read sent as POST */
        { "POST", "/imports/prices", GW_ROLE_DATA },
        { "POST", "/portfolios", GW_ROLE_CLIENT },
        { "GET", "/portfolios/{id}", GW_ROLE_CLIENT },
        { "DELETE", "/portfolios/{id}", GW_ROLE_CLIENT },
        { "POST", "/portfolios/{id}/transactions", GW_ROLE_CLIENT },
        { "POST", "/analytics/series", GW_ROLE_CLIENT },
        { "POST", "/analytics/rebalance", GW_ROLE_CLIENT },
        { "GET", "/jobs/{id}", GW_ROLE_CLIENT },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* Every example is a real route of the generated table. */
        ck_assert_msg(route(cases[i].method, cases[i].pattern) != NULL, "no route %s %s",
                      cases[i].method, cases[i].pattern);
        ck_assert_msg(gw_route_min_role(cases[i].method, cases[i].pattern) == cases[i].need,
                      "%s %s: %d, want %d", cases[i].method, cases[i].pattern,
                      gw_route_min_role(cases[i].method, cases[i].pattern), cases[i].need);
    }
    /* HEAD is a read; a segment that merely starts like a resource is not it. */
    ck_assert_int_eq(gw_route_min_role("HEAD", "/equities/{id}"), GW_ROLE_CLIENT);
    ck_assert_int_eq(gw_route_min_role("POST", "/equitiesx"), GW_ROLE_CLIENT);
    ck_assert_int_eq(gw_route_min_role("GET", "/clientsfoo"), GW_ROLE_CLIENT);
}
END_TEST

/* Over the whole table: the three rules and nothing else. */
START_TEST(test_gateway_auth_policy_every_route)
{
    ck_assert_uint_gt(fsr_n_routes, 20);
    size_t admin = 0, data = 0;
    for (size_t i = 0; i < fsr_n_routes; i++) {
        const fsr_route *rt = &fsr_routes[i];
        gw_role need = gw_route_min_role(rt->http_method, rt->pattern);
        bool get = strcmp(rt->http_method, "GET") == 0;
        bool clients = strncmp(rt->pattern, "/clients", 8) == 0;
        bool data_res = strncmp(rt->pattern, "/equities", 9) == 0 ||
                        strncmp(rt->pattern, "/bonds", 6) == 0 ||
                        strncmp(rt->pattern, "/imports", 8) == 0;
        bool stateless = strcmp(rt->pattern, "/bonds/analytics") == 0 ||
                         strcmp(rt->pattern, "/bonds/batch-analytics") == 0;
        gw_role want = clients                          ? GW_ROLE_ADMIN
                       : data_res && !get && !stateless ? GW_ROLE_DATA
                                                        : GW_ROLE_CLIENT;
        ck_assert_msg(need == want, "%s %s: %d, want %d", rt->http_method, rt->pattern, need, want);
        /* ClientService is admin only, and only ClientService is. */
        ck_assert_int_eq(strcmp(rt->service, "portfolio.v1.ClientService") == 0,
                         need == GW_ROLE_ADMIN);
        admin += need == GW_ROLE_ADMIN;
        data += need == GW_ROLE_DATA;
    }
    ck_assert_uint_eq(admin, 5);
    ck_assert_uint_ge(data, 8);
}
END_TEST

START_TEST(test_gateway_auth_roles)
{
    ck_assert_int_eq(gw_role_parse("admin"), GW_ROLE_ADMIN);
    ck_assert_int_eq(gw_role_parse("data"), GW_ROLE_DATA);
    ck_assert_int_eq(gw_role_parse("client"), GW_ROLE_CLIENT);
    ck_assert_int_eq(gw_role_parse("Admin"), GW_ROLE_NONE);
    ck_assert_int_eq(gw_role_parse(""), GW_ROLE_NONE);
    ck_assert_int_eq(gw_role_parse(NULL), GW_ROLE_NONE);
    ck_assert_str_eq(gw_role_name(GW_ROLE_DATA), "data");
    ck_assert_str_eq(gw_role_name(GW_ROLE_NONE), "");
    ck_assert(GW_ROLE_CLIENT < GW_ROLE_DATA && GW_ROLE_DATA < GW_ROLE_ADMIN);
}
END_TEST

/* ---- the Authorization header ----------------------------------------------------------- */

static int bearer(const char *h, char *out, size_t cap)
{
    const char *k = NULL;
    size_t n = 0;
    int rv = gw_auth_bearer(h, &k, &n);
    if (rv == 0) {
        ck_assert_uint_lt(n, cap);
        memcpy(out, k, n);
        out[n] = '\0';
    }
    return rv;
}

START_TEST(test_gateway_auth_bearer)
{
    char k[600];
    ck_assert_int_eq(bearer(NULL, k, sizeof(k)), GW_AUTH_MISSING);
    ck_assert_int_eq(bearer("Bearer fsr_0123abcd", k, sizeof(k)), 0);
    ck_assert_str_eq(k, "fsr_0123abcd");
    ck_assert_int_eq(bearer("bearer   a-b.c_d~e+f/g==  ", k, sizeof(k)), 0);
    ck_assert_str_eq(k, "a-b.c_d~e+f/g==");
    ck_assert_int_eq(bearer("BEARER x", k, sizeof(k)), 0);
    ck_assert_str_eq(k, "x");
    static const char *const bad[] = {
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic dXNlcjpwYXNz",
        "Bearerx abc",
        "Bearer\tabc",
        "Bearer abc def",
        "Bearer =abc",
        "Bearer ab=c",
        "Bearer ab\"c",
        "Bearer abc,",
        "Token abc",
        "Bearer a\x01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(bearer(bad[i], k, sizeof(k)) == GW_AUTH_MALFORMED, "accepted \"%s\"", bad[i]);
    /* Length: GW_AUTH_KEY_MAX bytes pass, one more does not. */
    char h[7 + GW_AUTH_KEY_MAX + 2];
    memcpy(h, "Bearer ", 7);
    memset(h + 7, 'k', GW_AUTH_KEY_MAX);
    h[7 + GW_AUTH_KEY_MAX] = '\0';
    ck_assert_int_eq(bearer(h, k, sizeof(k)), 0);
    ck_assert_uint_eq(strlen(k), GW_AUTH_KEY_MAX);
    h[7 + GW_AUTH_KEY_MAX] = 'k';
    h[8 + GW_AUTH_KEY_MAX] = '\0';
    ck_assert_int_eq(bearer(h, k, sizeof(k)), GW_AUTH_MALFORMED);
}
END_TEST

/* ---- hashes ---------------------------------------------------------------------------- */

START_TEST(test_gateway_auth_hash)
{
    /* FIPS 180-2's "abc" example. */
    static const char abc_hex[] =
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    uint8_t h[GW_AUTH_HASH_LEN], want[GW_AUTH_HASH_LEN];
    gw_auth_key_hash("abc", 3, h);
    ck_assert_int_eq(gw_auth_hash_from_hex(abc_hex, 64, want), 0);
    ck_assert_mem_eq(h, want, sizeof(h));
    /* Upper case decodes the same; wrong length or a non-hex digit does not decode. */
    char upper[65];
    for (int i = 0; i < 64; i++)
        upper[i] = (char)(abc_hex[i] >= 'a' ? abc_hex[i] - 'a' + 'A' : abc_hex[i]);
    upper[64] = '\0';
    uint8_t u[GW_AUTH_HASH_LEN];
    ck_assert_int_eq(gw_auth_hash_from_hex(upper, 64, u), 0);
    ck_assert_mem_eq(u, want, sizeof(u));
    ck_assert_int_eq(gw_auth_hash_from_hex(abc_hex, 63, u), -1);
    ck_assert_int_eq(gw_auth_hash_from_hex(NULL, 64, u), -1);
    upper[10] = 'g';
    ck_assert_int_eq(gw_auth_hash_from_hex(upper, 64, u), -1);
    /* Different keys, different hashes. */
    gw_auth_key_hash("abd", 3, u);
    ck_assert(memcmp(u, h, sizeof(h)) != 0);
}
END_TEST

/* ---- the cache ------------------------------------------------------------------------- */

#define S (1000 * 1000LL) /* one second in microseconds */

static gw_identity ident(const char *id, gw_role role)
{
    gw_identity w = { .role = role };
    strcpy(w.client_id, id);
    return w;
}

static void key_of(int i, uint8_t out[GW_AUTH_HASH_LEN])
{
    char k[32];
    snprintf(k, sizeof(k), "key-%d", i);
    gw_auth_key_hash(k, strlen(k), out);
}

START_TEST(test_gateway_auth_cache_hit_expiry)
{
    gw_auth_cache *c = gw_auth_cache_new(0);
    uint8_t a[GW_AUTH_HASH_LEN], b[GW_AUTH_HASH_LEN];
    key_of(1, a);
    key_of(2, b);
    gw_identity w;
    int64_t t = 100 * S;
    ck_assert_int_eq(gw_auth_cache_get(c, a, t, &w), GW_CACHE_MISS);
    gw_identity alice = ident("11111111-1111-4111-8111-111111111111", GW_ROLE_CLIENT);
    gw_auth_cache_put(c, a, &alice, t);
    ck_assert_int_eq(gw_auth_cache_get(c, a, t + 1, &w), GW_CACHE_HIT);
    ck_assert_str_eq(w.client_id, alice.client_id);
    ck_assert_int_eq(w.role, GW_ROLE_CLIENT);
    ck_assert_int_eq(gw_auth_cache_get(c, b, t + 1, &w), GW_CACHE_MISS);
    /* Trusted for GW_AUTH_TTL_MS, not a microsecond longer. */
    ck_assert_int_eq(gw_auth_cache_get(c, a, t + GW_AUTH_TTL_MS * 1000LL - 1, &w), GW_CACHE_HIT);
    ck_assert_int_eq(gw_auth_cache_get(c, a, t + GW_AUTH_TTL_MS * 1000LL, &w), GW_CACHE_MISS);
    /* Negative entries: shorter. */
    gw_auth_cache_put(c, b, NULL, t);
    ck_assert_int_eq(gw_auth_cache_get(c, b, t + 1, &w), GW_CACHE_NEGATIVE);
    ck_assert_int_eq(gw_auth_cache_get(c, b, t + GW_AUTH_NEGATIVE_TTL_MS * 1000LL, &w),
                     GW_CACHE_MISS);
    ck_assert_int_lt(GW_AUTH_NEGATIVE_TTL_MS, GW_AUTH_TTL_MS);
    /* A key refused, then accepted: the newer answer replaces the older in place. */
    gw_auth_cache_put(c, b, &alice, t + 2);
    ck_assert_int_eq(gw_auth_cache_get(c, b, t + 3, &w), GW_CACHE_HIT);
    gw_auth_cache_free(c);
    gw_auth_cache_free(NULL);
}
END_TEST

START_TEST(test_gateway_auth_cache_evict_clear)
{
    gw_auth_cache *c = gw_auth_cache_new(64);
    gw_identity w, adm = ident("00000000-0000-4000-8000-000000000001", GW_ROLE_ADMIN);
    uint8_t h[8][GW_AUTH_HASH_LEN];
    for (int i = 0; i < 8; i++) {
        key_of(i, h[i]);
        gw_auth_cache_put(c, h[i], &adm, S);
    }
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(gw_auth_cache_get(c, h[i], S, &w), GW_CACHE_HIT);
    ck_assert(gw_auth_cache_evict(c, h[3]));
    ck_assert(!gw_auth_cache_evict(c, h[3]));
    ck_assert_int_eq(gw_auth_cache_get(c, h[3], S, &w), GW_CACHE_MISS);
    ck_assert_int_eq(gw_auth_cache_get(c, h[4], S, &w), GW_CACHE_HIT);
    gw_auth_cache_clear(c);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(gw_auth_cache_get(c, h[i], S, &w), GW_CACHE_MISS);
        ck_assert(!gw_auth_cache_evict(c, h[i]));
    }
    /* Usable after a clear. */
    gw_auth_cache_put(c, h[0], &adm, 2 * S);
    ck_assert_int_eq(gw_auth_cache_get(c, h[0], 2 * S, &w), GW_CACHE_HIT);
    gw_auth_cache_free(c);
}
END_TEST

/* A full set replaces the entry that expires first; the cache never grows. */
START_TEST(test_gateway_auth_cache_full_set)
{
    gw_auth_cache *c = gw_auth_cache_new(4); /* one set of 4 ways: every key shares it */
    gw_identity w, cl = ident("22222222-2222-4222-8222-222222222222", GW_ROLE_CLIENT);
    uint8_t h[5][GW_AUTH_HASH_LEN];
    for (int i = 0; i < 5; i++)
        key_of(i, h[i]);
    /* h[2] stored first expires first. */
    gw_auth_cache_put(c, h[2], &cl, 10 * S);
    gw_auth_cache_put(c, h[0], &cl, 11 * S);
    gw_auth_cache_put(c, h[1], &cl, 12 * S);
    gw_auth_cache_put(c, h[3], &cl, 13 * S);
    n_allocs = 0;
    gw_auth_cache_put(c, h[4], &cl, 14 * S);
    int allocs = n_allocs;
    ck_assert_int_eq(allocs, 0);
    ck_assert_int_eq(gw_auth_cache_get(c, h[2], 14 * S, &w), GW_CACHE_MISS);
    for (int i = 0; i < 5; i++) {
        if (i != 2)
            ck_assert_int_eq(gw_auth_cache_get(c, h[i], 14 * S, &w), GW_CACHE_HIT);
    }
    gw_auth_cache_free(c);
}
END_TEST

/* The request path's work on a hit -- hash the key, look it up -- allocates nothing. */
START_TEST(test_gateway_auth_hit_allocates_nothing)
{
    ck_assert_msg(ossl_counting, "CRYPTO_set_mem_functions() was refused");
    gw_auth_cache *c = gw_auth_cache_new(0);
    const char *key = "fsr_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    uint8_t h[GW_AUTH_HASH_LEN];
    gw_auth_key_hash(key, strlen(key), h);
    gw_identity w, cl = ident("33333333-3333-4333-8333-333333333333", GW_ROLE_DATA);
    gw_auth_cache_put(c, h, &cl, S);
    const char *k;
    size_t n;
    int hits = 0;
    n_allocs = 0; /* no ck_assert in the loop: Check itself allocates to record one */
    for (int i = 0; i < 1000; i++) {
        int rv = gw_auth_bearer("Bearer fsr_00112233445566778899aabbccddeeff00112233"
                                "445566778899aabbccddeeff",
                                &k, &n);
        gw_auth_key_hash(k, rv == 0 ? n : 0, h);
        hits += gw_auth_cache_get(c, h, S + i, &w) == GW_CACHE_HIT;
    }
    int allocs = n_allocs;
    ck_assert_int_eq(hits, 1000);
    ck_assert_int_eq(allocs, 0);
    ck_assert_int_eq(w.role, GW_ROLE_DATA);
    gw_auth_cache_free(c);
}
END_TEST

static Suite *gateway_auth_suite(void)
{
    Suite *s = suite_create("gateway_auth");
    TCase *tc = tcase_create("policy");
    tcase_add_test(tc, test_gateway_auth_policy_examples);
    tcase_add_test(tc, test_gateway_auth_policy_every_route);
    tcase_add_test(tc, test_gateway_auth_roles);
    suite_add_tcase(s, tc);
    tc = tcase_create("header");
    tcase_add_test(tc, test_gateway_auth_bearer);
    tcase_add_test(tc, test_gateway_auth_hash);
    suite_add_tcase(s, tc);
    tc = tcase_create("cache");
    tcase_add_test(tc, test_gateway_auth_cache_hit_expiry);
    tcase_add_test(tc, test_gateway_auth_cache_evict_clear);
    tcase_add_test(tc, test_gateway_auth_cache_full_set);
    tcase_add_test(tc, test_gateway_auth_hit_allocates_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* First, before anything could make OpenSSL allocate. */
    ossl_counting = CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
    SRunner *sr = srunner_create(gateway_auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
