/* SPDX-License-Identifier: MIT */
/*
 * The REST/JSON gateway's request path: match the route, build the protobuf request,
 * call the upstream service over this thread's channel, and answer with the reply as
 * JSON or the status as the REST error body.  Also /health (aggregated over the
 * upstreams), /openapi.json, /docs and the probes.
 *
 * Threading: the router, the replica addresses and the metric families are built once by
 * gw_init() and only read afterwards.  Each loop thread owns its upstream channels (one per
 * replica), its round-robin cursors and back-off marks, and a cache of metric series
 * (gw_thread), so the request path takes no lock once a series is cached.
 *
 * Balancing: an upstream may be several replicas ("host:port,host:port").  Each request
 * goes to the next replica round-robin, skipping one whose last call failed with
 * UNAVAILABLE for GW_REPLICA_BACKOFF_MS.  A request that fails with UNAVAILABLE is sent
 * once more to another replica when that cannot run it twice: the route is idempotent, or
 * the call never left (no connection could be made).  With several replicas the channels
 * do not retry by themselves (max_attempts 1): failing over beats waiting on a dead one.
 *
 * Authentication: every route needs "Authorization: Bearer <key>"; the gateway's own
 * endpoints do not.  A key is looked up with portfolio.v1.ClientService/Authenticate over
 * the portfolio channels and the answer kept in the thread's cache (auth.h) for a few
 * seconds.  The caller's id and role travel upstream as x-client-id and x-client-role,
 * which the gateway alone sets: client headers reach the services only through the fixed
 * list in serve_route(), which names neither (nor the key).  A revoked key stops working at
 * once: portfolio publishes its hash on the shared Redis channel "key.revoked" before it
 * answers RevokeKey, each thread's subscription evicts it, and a RevokeKey answered through
 * this gateway also bumps g_revocations, which makes every thread drop its whole cache at
 * its next request (so no thread of this process can race the message).
 */
#include "gateway.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "fsr/client.h"
#include "fsr/json.h"
#include "fsr/log.h"
#include "fsr/metrics.h"
#include "fsr/redis.h"
#include "fsr/validate.h"
#include "grpc/health/v1/health.pb-c.h"
#include "portfolio/v1/portfolio.pb-c.h"

/* ---- metrics keys --------------------------------------------------------------------- */

/*
 * Requests are counted per "key": one per route, then the gateway's own endpoints, then
 * one per method for requests that matched no route (so a stray method name can never
 * create a series: unknown methods count as OTHER).
 */
enum {
    GW_K_HEALTH = 0,
    GW_K_OPENAPI,
    GW_K_DOCS,
    GW_K_PROBE,
    GW_K_N_SPECIAL,
};

/* The HTTP statuses the gateway answers; anything else shares the last slot's lookup. */
static const int known_status[] = { 200, 204, 400, 401, 403, 404, 405, 408, 409, 412,
                                    413, 415, 429, 431, 499, 500, 501, 502, 503, 504 };
#define GW_N_STATUS (sizeof(known_status) / sizeof(known_status[0]))

typedef struct gw_stat {
    fsr_series *by_status[GW_N_STATUS];
    fsr_series *duration;
} gw_stat;

/* One replica of an upstream as a loop thread sees it. */
typedef struct gw_replica {
    fsr_channel *ch;    /* NULL if no channel could be made for the address */
    int64_t down_until; /* fsr_now_us() before which it is skipped; 0 when healthy */
} gw_replica;

/* The replicas of one upstream, on one loop thread. */
typedef struct gw_pool {
    gw_replica *r; /* g_addrs[up].n entries */
    size_t n;
    size_t next; /* round-robin cursor */
} gw_pool;

/* Per loop thread: upstream channels, cached metric series and key lookups. */
typedef struct gw_thread {
    fsr_loop *loop;
    gw_pool up[GW_UP_COUNT];
    gw_stat *stats; /* gw_n_keys() entries */
    bool closing;   /* in gw_thread_dispose(): calls end CANCELLED, nothing restarts */
    gw_auth_cache *auth;
    unsigned auth_gen;    /* bumped by every eviction: a lookup in flight across one is not kept */
    unsigned revocations; /* g_revocations when the cache was last cleared for it */
    fsr_redis *shared;    /* the "key.revoked" subscription's client (NULL: none) */
    bool subscribed;      /* the subscription was up at the last request */
} gw_thread;

/* The replica addresses of each upstream, split from the configuration. */
typedef struct gw_addrs {
    char **addr;
    size_t n;
} gw_addrs;

static gw_config g_cfg;
static gw_addrs g_addrs[GW_UP_COUNT];
static atomic_uint g_thread_seq; /* spreads the threads' round-robin starting points */
static gw_router *g_router;
static fsr_metric *g_requests;    /* http_requests_total{route,method,status} */
static fsr_metric *g_duration;    /* http_request_duration_seconds{route,method} */
static gw_role *g_route_role;     /* per route: the least role it needs (gw_route_min_role()) */
static size_t g_revoke_route;     /* the route of ClientService/RevokeKey (SIZE_MAX: none) */
static atomic_uint g_revocations; /* RevokeKey calls answered OK through this process */

/* The shared Redis channel portfolio publishes revoked keys' hashes on. */
#define GW_KEY_REVOKED_CHANNEL "key.revoked"
/* Authenticate's deadline (the request's own deadline applies after). */
#define GW_AUTH_TIMEOUT_MS   2000
#define GW_AUTHENTICATE_PATH "/portfolio.v1.ClientService/Authenticate"

static size_t key_special(int k)
{
    return gw_router_size(g_router) + (size_t)k;
}

static size_t key_unmatched(unsigned method_bit)
{
    return gw_router_size(g_router) + GW_K_N_SPECIAL + (size_t)gw_method_index(method_bit);
}

static size_t gw_n_keys(void)
{
    return gw_router_size(g_router) + GW_K_N_SPECIAL + GW_N_METHODS;
}

/* The route and method labels of key |k|. */
static void key_labels(size_t k, const char **route, const char **method)
{
    static const char *const special[GW_K_N_SPECIAL] = { "/health", "/openapi.json", "/docs",
                                                         "/livez" };
    size_t n = gw_router_size(g_router);
    if (k < n) {
        const fsr_route *rt = gw_router_route(g_router, k);
        *route = rt->pattern;
        *method = rt->http_method;
    } else if (k < n + GW_K_N_SPECIAL) {
        *route = special[k - n];
        *method = "GET";
    } else {
        *route = "unmatched";
        *method = gw_method_name((int)(k - n - GW_K_N_SPECIAL));
    }
}

static void record(gw_thread *t, size_t k, int status, int64_t t0)
{
    const char *route, *method;
    double secs = (double)(fsr_now_us() - t0) / 1e6;
    gw_stat *st = t != NULL && t->stats != NULL ? &t->stats[k] : NULL;
    size_t slot = GW_N_STATUS;
    for (size_t i = 0; i < GW_N_STATUS; i++) {
        if (known_status[i] == status) {
            slot = i;
            break;
        }
    }
    fsr_series *count = st != NULL && slot < GW_N_STATUS ? st->by_status[slot] : NULL;
    if (count == NULL || (st != NULL && st->duration == NULL)) {
        /* First time on this thread (or an unusual status): look up under the registry lock. */
        key_labels(k, &route, &method);
        char sbuf[16];
        snprintf(sbuf, sizeof(sbuf), "%d", status);
        if (count == NULL) {
            count = fsr_metric_labels(g_requests, (const char *const[]){ route, method, sbuf });
            if (st != NULL && slot < GW_N_STATUS)
                st->by_status[slot] = count;
        }
        if (st != NULL && st->duration == NULL)
            st->duration = fsr_metric_labels(g_duration, (const char *const[]){ route, method });
    }
    fsr_counter_add(count, 1);
    if (st != NULL)
        fsr_histogram_observe(st->duration, secs);
}

/* ---- responding ----------------------------------------------------------------------- */

/*
 * One access-log record per request at DEBUG, as the runtime logs RPCs; gateway-side and
 * upstream failures (5xx) at WARN, so they are seen at the default level.
 */
static void access_log(size_t k, int status, int64_t t0, fsr_code code)
{
    fsr_log_level lv = status >= 500 ? FSR_LOG_WARN : FSR_LOG_DEBUG;
    if (lv < fsr_log_min_level)
        return;
    const char *route, *method;
    key_labels(k, &route, &method);
    char sbuf[16], lbuf[24];
    snprintf(sbuf, sizeof(sbuf), "%d", status);
    snprintf(lbuf, sizeof(lbuf), "%" PRId64, fsr_now_us() - t0);
    const char *kv[] = { "http_method",       method,       "route", route, "status", sbuf, "code",
                         fsr_code_name(code), "latency_us", lbuf,    NULL };
    fsr_log_write(lv, kv, "%s %s %d", method, route, status);
}

static void respond(gw_thread *t, fsr_http_req *r, size_t k, int64_t t0, int status, fsr_code code,
                    const char *ctype, const char *body, size_t len)
{
    record(t, k, status, t0);
    access_log(k, status, t0, code);
    fsr_http_respond(r, status, ctype, body, len);
}

static void respond_error(gw_thread *t, fsr_http_req *r, size_t k, int64_t t0, const gw_error *e)
{
    size_t len;
    char *body = gw_error_json(e->code, e->message, e->field[0] ? e->field : NULL, e->description,
                               NULL, 0, &len);
    respond(t, r, k, t0, e->http, e->code, "application/json", body, len);
    free(body);
}

/* The request path made safe to quote in a message: printable ASCII, at most 200 bytes. */
static void quote_path(const char *path, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = path; *p != '\0' && o + 4 < cap; p++)
        out[o++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    if (*path != '\0' && strlen(path) >= cap - 4)
        out[o++] = '.', out[o++] = '.', out[o++] = '.';
    out[o] = '\0';
}

/* ---- upstream calls ------------------------------------------------------------------- */

/* ---- replicas ------------------------------------------------------------------------- */

/* Splits |list| into trimmed "host:port" entries (fsr_xmalloc()ed into |out|, up to |max|).
 * Returns the number of entries, or -1 with a message in |err|. */
static int addr_list_split(const char *list, char **out, size_t max, char *err, size_t cap)
{
    if (list == NULL)
        list = "";
    size_t n = 0;
    const char *s = list;
    for (;;) {
        const char *end = strchr(s, ',');
        if (end == NULL)
            end = s + strlen(s);
        const char *b = s, *e = end;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        size_t len = (size_t)(e - b);
        const char *colon = NULL;
        for (const char *q = b; q < e; q++)
            colon = *q == ':' ? q : colon;
        long port = 0;
        bool ok = len > 0 && len < 256 && colon != NULL && colon > b && colon + 1 < e;
        for (const char *q = b; ok && q < e; q++) {
            if (q > colon) {
                ok = *q >= '0' && *q <= '9' && port <= 65535;
                port = port * 10 + (*q - '0');
            } else if (q < colon) {
                ok = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                     (*q >= '0' && *q <= '9') || strchr(".-_:[]", *q) != NULL;
            }
        }
        ok = ok && port > 0 && port <= 65535;
        if (!ok) {
            snprintf(err, cap, "\"%.*s\" is not host:port", (int)(len < 200 ? len : 200), b);
            goto fail;
        }
        if (n == max) {
            snprintf(err, cap, "more than %zu addresses", max);
            goto fail;
        }
        if (out != NULL) {
            out[n] = fsr_xmalloc(len + 1);
            memcpy(out[n], b, len);
            out[n][len] = '\0';
        }
        n++;
        if (*end == '\0')
            break;
        s = end + 1;
    }
    return (int)n;
fail:
    for (size_t i = 0; out != NULL && i < n; i++)
        free(out[i]);
    return -1;
}

int gw_addr_list_check(const char *list, char *err, size_t cap)
{
    return addr_list_split(list, NULL, GW_MAX_REPLICAS, err, cap) < 0 ? -1 : 0;
}

/*
 * The replica for the next call of |pl|: the next one round-robin that is not in back-off,
 * never |avoid| (-1: none).  When all the others are in back-off, the one whose back-off
 * ends first (a try beats a refusal).  Returns -1 when there is no other replica.
 */
static int pool_pick(gw_pool *pl, int avoid, int64_t now)
{
    int fallback = -1;
    for (size_t i = 0; i < pl->n; i++) {
        size_t k = (pl->next + i) % pl->n;
        if ((int)k == avoid || pl->r[k].ch == NULL)
            continue;
        if (pl->r[k].down_until <= now) {
            pl->next = (k + 1) % pl->n;
            return (int)k;
        }
        if (fallback < 0 || pl->r[k].down_until < pl->r[fallback].down_until)
            fallback = (int)k;
    }
    if (fallback >= 0)
        pl->next = ((size_t)fallback + 1) % pl->n;
    return fallback;
}

/* Replica |k| of |up| failed with UNAVAILABLE: skip it for a while (logged once per outage). */
static void replica_down(gw_thread *t, int up, int k, const char *why)
{
    gw_replica *rp = &t->up[up].r[k];
    int64_t now = fsr_now_us();
    if (t->closing)
        return;
    if (rp->down_until <= now && t->up[up].n > 1)
        FSR_WARN("%s replica %s unavailable (%s): skipped for %d ms", gw_upstream_key(up),
                 g_addrs[up].addr[k], why, GW_REPLICA_BACKOFF_MS);
    rp->down_until = now + (int64_t)GW_REPLICA_BACKOFF_MS * 1000;
}

/*
 * True if an UNAVAILABLE with |msg| (lib/client.c's wording, pinned by the refused-connection
 * POST check of test/integration/scaling_test.py) means the request never reached the
 * server: no connection could be made, or the server refused the stream.
 */
static bool never_sent(const char *msg)
{
    static const char *const prefixes[] = { "failed to connect to",
                                            "timed out connecting to",
                                            "no HTTP/2 settings from",
                                            "cannot resolve",
                                            "the server did not accept the stream",
                                            "cannot open a stream on the connection" };
    for (size_t i = 0; i < FSR_ARRAY_SIZE(prefixes); i++) {
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    }
    return false;
}

/* ---- upstream calls ------------------------------------------------------------------- */

/* One REST request waiting for its upstream reply; lives in the request's arena. */
typedef struct gw_pending {
    fsr_http_req *r;
    gw_thread *t;
    size_t route;
    int upstream;
    int replica; /* index into t->up[upstream] */
    bool retried;
    int64_t t0;
    int64_t timeout_ms;
    const ProtobufCMessage *msg; /* the request message, in the request's arena */
    fsr_call_opts opts;          /* metadata in the request's arena */
} gw_pending;

static void on_upstream_done(const fsr_result *res, void *arg);

static int pending_start(gw_pending *p)
{
    const fsr_route *rt = gw_router_route(g_router, p->route);
    fsr_channel *ch = p->t->up[p->upstream].r[p->replica].ch;
    return fsr_channel_unary(ch, rt->path, p->msg, rt->output, &p->opts, on_upstream_done, p);
}

/* After UNAVAILABLE: sends |p| to another replica if that is safe and time is left. */
static bool retry_elsewhere(gw_pending *p, const char *msg)
{
    if (p->retried || p->t->closing || !(p->opts.idempotent || never_sent(msg)))
        return false;
    int64_t now = fsr_now_us();
    int64_t left_ms = p->timeout_ms - (now - p->t0) / 1000;
    if (left_ms <= 0)
        return false;
    int k = pool_pick(&p->t->up[p->upstream], p->replica, now);
    if (k < 0)
        return false;
    int from = p->replica;
    p->retried = true;
    p->replica = k;
    p->opts.timeout_ms = left_ms;
    if (pending_start(p) != 0) {
        p->replica = from;
        return false;
    }
    FSR_DEBUG("%s: retrying on %s replica %s", gw_router_route(g_router, p->route)->path,
              gw_upstream_key(p->upstream), g_addrs[p->upstream].addr[k]);
    return true;
}

/*
 * True when the upstream itself answered UNAVAILABLE because one of ITS dependencies is
 * down (it says so with the FSR_MD_DEPENDENCY_UNAVAILABLE trailer): the upstream is up, and
 * its message ("fixed income service unavailable") names the service and goes to the client.
 */
static bool dependency_unavailable(const fsr_result *res)
{
    if (res->status.code != FSR_UNAVAILABLE)
        return false;
    for (size_t i = 0; i < res->n_trailers; i++) {
        if (strcmp(res->trailers[i].key, FSR_MD_DEPENDENCY_UNAVAILABLE) == 0)
            return true;
    }
    return false;
}

static void on_upstream_done(const fsr_result *res, void *arg)
{
    gw_pending *p = arg;
    const fsr_route *rt = gw_router_route(g_router, p->route);
    fsr_log_set_request_id(fsr_http_req_id(p->r));
    bool dependency = dependency_unavailable(res);
    if (res->status.code == FSR_UNAVAILABLE && !dependency) {
        const char *why = res->status.message != NULL ? res->status.message : "";
        replica_down(p->t, p->upstream, p->replica, why);
        if (retry_elsewhere(p, why)) {
            fsr_log_set_request_id(NULL);
            return;
        }
    } else {
        p->t->up[p->upstream].r[p->replica].down_until = 0; /* it answered */
    }
    if (res->status.code == FSR_OK && p->route == g_revoke_route) {
        /* Before the client hears OK: every thread drops its cached lookups (see the top). */
        atomic_fetch_add_explicit(&g_revocations, 1u, memory_order_release);
    }
    if (res->status.code == FSR_OK && res->response != NULL) {
        /* Defaults are emitted (grpc-gateway's EmitUnpopulated): every scalar field of the
         * response is present, so "cash": "0" or "stale": false never go missing. */
        fsr_json_opts jo = { .flags = FSR_JSON_EMIT_DEFAULTS };
        fsr_json_error jerr;
        char *body = NULL;
        size_t len = 0;
        int rv =
            rt->response_body[0] != '\0'
                ? fsr_pb_field_to_json(res->response, rt->response_body, &jo, &body, &len, &jerr)
                : fsr_pb_to_json(res->response, &jo, &body, &len, &jerr);
        if (rv == 0) {
            respond(p->t, p->r, p->route, p->t0, 200, FSR_OK, "application/json", body, len);
            free(body);
        } else {
            FSR_ERROR("%s: cannot render the reply as JSON: %s: %s", rt->path, jerr.field,
                      jerr.message);
            gw_error e;
            gw_error_set(&e, 500, FSR_INTERNAL, NULL, NULL, "the reply cannot be rendered as JSON");
            respond_error(p->t, p->r, p->route, p->t0, &e);
        }
        fsr_log_set_request_id(NULL);
        return;
    }

    fsr_code code = res->status.code == FSR_OK ? FSR_INTERNAL : res->status.code;
    const char *msg = res->status.message != NULL ? res->status.message : "";
    char buf[256];
    if (code == FSR_UNAVAILABLE && !dependency) {
        /* Transport failures carry host names: log them, tell the client which service. */
        FSR_WARN("%s: %s unavailable: %s", rt->path, gw_upstream_key(p->upstream), msg);
        snprintf(buf, sizeof(buf), "%s unavailable", gw_upstream_title(p->upstream));
        msg = buf;
    } else if (code == FSR_DEADLINE_EXCEEDED &&
               (msg[0] == '\0' || strcmp(msg, "Deadline Exceeded") == 0)) {
        snprintf(buf, sizeof(buf), "%s did not answer within %" PRId64 " ms",
                 gw_upstream_title(p->upstream), p->timeout_ms);
        msg = buf;
    }
    int http = gw_http_status(code, msg, res->status_details, res->status_details_len);
    size_t len;
    char *body =
        gw_error_json(code, msg, NULL, NULL, res->status_details, res->status_details_len, &len);
    respond(p->t, p->r, p->route, p->t0, http, code, "application/json", body, len);
    free(body);
    fsr_log_set_request_id(NULL);
}

/* The deadline from X-Timeout-Ms (milliseconds, capped), or -1 if the header is malformed. */
static int64_t request_timeout_ms(fsr_http_req *r)
{
    const char *h = fsr_http_req_header(r, "x-timeout-ms");
    if (h == NULL)
        return g_cfg.default_timeout_ms;
    int64_t v = 0;
    const char *s = h;
    while (*s == ' ')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v < INT64_MAX / 100)
            v = v * 10 + (*s - '0');
    }
    while (*s == ' ')
        s++;
    if (*s != '\0' || v <= 0)
        return -1;
    return v < g_cfg.max_timeout_ms ? v : g_cfg.max_timeout_ms;
}

static void serve_route(gw_thread *t, fsr_http_req *r, int64_t t0, const gw_match *m,
                        const gw_identity *who)
{
    const fsr_route *rt = gw_router_route(g_router, m->route);
    int up = gw_router_upstream(g_router, m->route);
    fsr_arena *a = fsr_http_req_arena(r);
    gw_error e;

    if (rt->flags & FSR_M_SERVER_STREAM) {
        gw_error_set(&e, 501, FSR_UNIMPLEMENTED, NULL, NULL,
                     "streaming methods are not served over REST");
        respond_error(t, r, m->route, t0, &e);
        return;
    }
    int64_t timeout_ms = request_timeout_ms(r);
    if (timeout_ms < 0) {
        gw_error_set(&e, 400, FSR_INVALID_ARGUMENT, "X-Timeout-Ms", "a positive integer (ms)",
                     "X-Timeout-Ms must be a positive integer number of milliseconds");
        respond_error(t, r, m->route, t0, &e);
        return;
    }

    size_t body_len;
    const char *body = fsr_http_req_body(r, &body_len);
    gw_http_in in = {
        .method = fsr_http_req_method(r),
        .content_type = fsr_http_req_header(r, "content-type"),
        .body = body,
        .body_len = body_len,
        .query = fsr_http_req_query(r),
    };
    ProtobufCMessage *msg;
    if (gw_build_request(rt, m, &in, a, &msg, &e) != 0) {
        respond_error(t, r, m->route, t0, &e);
        return;
    }

    int replica = t != NULL ? pool_pick(&t->up[up], -1, fsr_now_us()) : -1;
    if (replica < 0) {
        gw_error_set(&e, 503, FSR_UNAVAILABLE, NULL, NULL, "%s unavailable", gw_upstream_title(up));
        respond_error(t, r, m->route, t0, &e);
        return;
    }

    /* Forwarded metadata: the request id, the authenticated caller, and what the services
     * decide on themselves.  Only these: a client's own x-client-id or x-client-role header
     * (or its key) never reaches a service.  In the arena: a retry on another replica sends
     * it again. */
    static const char *const fwd[] = { "idempotency-key", "if-match" };
    fsr_md *md = fsr_arena_alloc(a, sizeof(*md) * (3 + FSR_ARRAY_SIZE(fwd)));
    size_t n_md = 0;
    const char *rid = fsr_http_req_id(r);
    md[n_md++] = (fsr_md){ "x-request-id", rid, strlen(rid) };
    const char *role = gw_role_name(who->role);
    const char *client_id = fsr_arena_strdup(a, who->client_id);
    md[n_md++] = (fsr_md){ "x-client-id", client_id, strlen(client_id) };
    md[n_md++] = (fsr_md){ "x-client-role", role, strlen(role) };
    for (size_t i = 0; i < FSR_ARRAY_SIZE(fwd); i++) {
        const char *v = fsr_http_req_header(r, fwd[i]);
        if (v != NULL)
            md[n_md++] = (fsr_md){ fwd[i], v, strlen(v) };
    }

    gw_pending *p = fsr_arena_calloc(a, sizeof(*p));
    *p = (gw_pending){
        .r = r,
        .t = t,
        .route = m->route,
        .upstream = up,
        .replica = replica,
        .t0 = t0,
        .timeout_ms = timeout_ms,
        .msg = msg,
        .opts = { .timeout_ms = timeout_ms,
                  .metadata = md,
                  .n_metadata = n_md,
                  .idempotent = (rt->flags & FSR_M_IDEMPOTENT) != 0 },
    };
    int rv = pending_start(p);
    if (rv != 0) {
        if (rv == FSR_E_TOO_LARGE)
            gw_error_set(&e, 413, FSR_RESOURCE_EXHAUSTED, NULL, NULL,
                         "the request is larger than the upstream message limit");
        else
            gw_error_set(&e, 503, FSR_UNAVAILABLE, NULL, NULL, "%s unavailable",
                         gw_upstream_title(up));
        respond_error(t, r, m->route, t0, &e);
    }
}

/* ---- authentication ------------------------------------------------------------------- */

/* 401 with a WWW-Authenticate challenge (RFC 6750; |invalid|: a key was sent but is bad). */
static void respond_unauthenticated(gw_thread *t, fsr_http_req *r, size_t k, int64_t t0,
                                    bool invalid, const char *msg)
{
    fsr_http_add_header(r, "WWW-Authenticate",
                        invalid ? "Bearer realm=\"fsr\", error=\"invalid_token\""
                                : "Bearer realm=\"fsr\"");
    gw_error e;
    gw_error_set(&e, 401, FSR_UNAUTHENTICATED, NULL, NULL, "%s", msg);
    respond_error(t, r, k, t0, &e);
}

static void respond_auth_unavailable(gw_thread *t, fsr_http_req *r, size_t k, int64_t t0)
{
    gw_error e;
    gw_error_set(&e, 503, FSR_UNAVAILABLE, NULL, NULL, "%s unavailable",
                 gw_upstream_title(GW_UP_PORTFOLIO));
    respond_error(t, r, k, t0, &e);
}

/* The caller is |who|: the route's policy (gw_route_min_role()), then the upstream call. */
static void serve_authorized(gw_thread *t, fsr_http_req *r, int64_t t0, const gw_match *m,
                             const gw_identity *who)
{
    gw_role need = g_route_role[m->route];
    if (who->role < need) {
        const fsr_route *rt = gw_router_route(g_router, m->route);
        gw_error e;
        gw_error_set(&e, 403, FSR_PERMISSION_DENIED, NULL, NULL,
                     "%s %s needs role %s; this API key's role is %s", fsr_http_req_method(r),
                     rt->pattern, need == GW_ROLE_ADMIN ? "admin" : "data or admin",
                     gw_role_name(who->role));
        respond_error(t, r, m->route, t0, &e);
        return;
    }
    serve_route(t, r, t0, m, who);
}

/*
 * Drops this thread's cached lookups when they may be stale: a key was revoked through this
 * process since, or the "key.revoked" subscription has just come (back) up -- messages
 * published while it was down are lost.  Costs an atomic load and a few reads per request.
 */
static void auth_sync(gw_thread *t)
{
    unsigned rev = atomic_load_explicit(&g_revocations, memory_order_acquire);
    bool sub = t->shared != NULL && fsr_redis_is_subscribed(t->shared);
    if (rev != t->revocations || (sub && !t->subscribed)) {
        gw_auth_cache_clear(t->auth);
        t->auth_gen++;
        t->revocations = rev;
    }
    t->subscribed = sub;
}

/* A key lookup on a cache miss; lives in the request's arena. */
typedef struct gw_auth_call {
    fsr_http_req *r;
    gw_thread *t;
    int64_t t0;
    gw_match m; /* copied: the request continues from here */
    uint8_t hash[GW_AUTH_HASH_LEN];
    unsigned gen; /* t->auth_gen when the lookup started */
    int replica;  /* of the portfolio upstream */
    bool retried;
    Portfolio__V1__AuthenticateRequest req;
    fsr_md md;
    fsr_call_opts opts;
} gw_auth_call;

static void on_authenticated(const fsr_result *res, void *arg);

static int auth_call_start(gw_auth_call *ac)
{
    fsr_channel *ch = ac->t->up[GW_UP_PORTFOLIO].r[ac->replica].ch;
    return fsr_channel_unary(ch, GW_AUTHENTICATE_PATH, &ac->req.base,
                             &portfolio__v1__authenticate_response__descriptor, &ac->opts,
                             on_authenticated, ac);
}

/* After UNAVAILABLE: Authenticate has no side effects, so another replica may answer. */
static bool auth_retry_elsewhere(gw_auth_call *ac)
{
    gw_thread *t = ac->t;
    if (ac->retried || t->closing)
        return false;
    int k = pool_pick(&t->up[GW_UP_PORTFOLIO], ac->replica, fsr_now_us());
    if (k < 0)
        return false;
    int from = ac->replica;
    ac->retried = true;
    ac->replica = k;
    if (auth_call_start(ac) != 0) {
        ac->replica = from;
        return false;
    }
    return true;
}

static void on_authenticated(const fsr_result *res, void *arg)
{
    gw_auth_call *ac = arg;
    gw_thread *t = ac->t;
    size_t k = ac->m.route;
    fsr_code code = res->status.code;
    const char *msg = res->status.message != NULL ? res->status.message : "";
    fsr_log_set_request_id(fsr_http_req_id(ac->r));
    if (code == FSR_UNAVAILABLE) {
        replica_down(t, GW_UP_PORTFOLIO, ac->replica, msg);
        if (auth_retry_elsewhere(ac)) {
            fsr_log_set_request_id(NULL);
            return;
        }
    } else if (code != FSR_CANCELLED) {
        t->up[GW_UP_PORTFOLIO].r[ac->replica].down_until = 0; /* it answered */
    }

    if (code == FSR_OK && res->response != NULL) {
        const Portfolio__V1__AuthenticateResponse *ar =
            (const Portfolio__V1__AuthenticateResponse *)res->response;
        gw_identity who = { .role = gw_role_parse(ar->role) };
        if (who.role == GW_ROLE_NONE || !fsr_uuid_valid(ar->client_id)) {
            FSR_ERROR("authentication: Authenticate answered an unusable identity");
            gw_error e;
            gw_error_set(&e, 500, FSR_INTERNAL, NULL, NULL, "the API key cannot be checked");
            respond_error(t, ac->r, k, ac->t0, &e);
        } else {
            for (size_t i = 0; i < 36; i++) {
                char ch = ar->client_id[i];
                who.client_id[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
            }
            who.client_id[36] = '\0';
            /* Not kept if an eviction happened meanwhile: the answer may predate it. */
            if (ac->gen == t->auth_gen)
                gw_auth_cache_put(t->auth, ac->hash, &who, fsr_now_us());
            serve_authorized(t, ac->r, ac->t0, &ac->m, &who);
        }
    } else if (code == FSR_UNAUTHENTICATED || code == FSR_INVALID_ARGUMENT) {
        gw_auth_cache_put(t->auth, ac->hash, NULL, fsr_now_us());
        respond_unauthenticated(t, ac->r, k, ac->t0, true, "unknown or revoked API key");
    } else {
        /* Transport failures name hosts: logged, the client hears which service. */
        FSR_WARN("authentication: portfolio Authenticate failed: %s: %s", fsr_code_name(code), msg);
        respond_auth_unavailable(t, ac->r, k, ac->t0);
    }
    fsr_log_set_request_id(NULL);
}

/*
 * Every route needs a key: from the cache on a hit (no allocation beyond the request's
 * arena, no lock), else from portfolio.v1.ClientService/Authenticate.  Then the route's
 * policy, then the upstream call.
 */
static void serve_authenticated(gw_thread *t, fsr_http_req *r, int64_t t0, const gw_match *m)
{
    size_t k = m->route;
    const char *key;
    size_t len;
    int rv = gw_auth_bearer(fsr_http_req_header(r, "authorization"), &key, &len);
    if (rv != 0) {
        respond_unauthenticated(t, r, k, t0, rv == GW_AUTH_MALFORMED,
                                rv == GW_AUTH_MISSING
                                    ? "an API key is required (Authorization: Bearer <key>)"
                                    : "malformed Authorization header (expected Bearer <key>)");
        return;
    }
    if (t == NULL) {
        respond_auth_unavailable(t, r, k, t0);
        return;
    }
    auth_sync(t);
    uint8_t hash[GW_AUTH_HASH_LEN];
    gw_auth_key_hash(key, len, hash);
    gw_identity who;
    switch (gw_auth_cache_get(t->auth, hash, t0, &who)) {
    case GW_CACHE_HIT:
        serve_authorized(t, r, t0, m, &who);
        return;
    case GW_CACHE_NEGATIVE:
        respond_unauthenticated(t, r, k, t0, true, "unknown or revoked API key");
        return;
    default:
        break;
    }

    int replica = pool_pick(&t->up[GW_UP_PORTFOLIO], -1, fsr_now_us());
    if (replica < 0) {
        respond_auth_unavailable(t, r, k, t0);
        return;
    }
    fsr_arena *a = fsr_http_req_arena(r);
    gw_auth_call *ac = fsr_arena_calloc(a, sizeof(*ac));
    ac->r = r;
    ac->t = t;
    ac->t0 = t0;
    ac->m = *m;
    memcpy(ac->hash, hash, sizeof(hash));
    ac->gen = t->auth_gen;
    ac->replica = replica;
    portfolio__v1__authenticate_request__init(&ac->req);
    ac->req.api_key = fsr_arena_strndup(a, key, len);
    const char *rid = fsr_http_req_id(r);
    ac->md = (fsr_md){ "x-request-id", rid, strlen(rid) };
    ac->opts = (fsr_call_opts){
        .timeout_ms = GW_AUTH_TIMEOUT_MS, .metadata = &ac->md, .n_metadata = 1, .idempotent = true
    };
    if (auth_call_start(ac) != 0)
        respond_auth_unavailable(t, r, k, t0);
}

/* A "key.revoked" message (the key's SHA-256 in hex): forget the key on this thread. */
static void on_key_revoked(const char *pattern, const char *channel, const char *msg, size_t len,
                           void *arg)
{
    (void)pattern;
    (void)channel;
    gw_thread *t = arg;
    uint8_t hash[GW_AUTH_HASH_LEN];
    t->auth_gen++;
    if (gw_auth_hash_from_hex(msg, len, hash) == 0) {
        gw_auth_cache_evict(t->auth, hash);
    } else {
        FSR_WARN("malformed %s message: every cached key lookup dropped", GW_KEY_REVOKED_CHANNEL);
        gw_auth_cache_clear(t->auth);
    }
}

/* ---- /health -------------------------------------------------------------------------- */

/*
 * grpc.health.v1.Health/Check on every replica of every upstream in parallel.  A service
 * is SERVING when any replica serves; otherwise it takes the most hopeful state among its
 * replicas.  "replicas" lists each replica's own answer.
 */
typedef struct gw_health gw_health;
typedef struct gw_health_call {
    gw_health *h;
    int up;
    int replica;
} gw_health_call;

struct gw_health {
    fsr_http_req *r;
    gw_thread *t;
    int64_t t0;
    int pending;
    const char **state[GW_UP_COUNT];    /* per replica */
    gw_health_call *calls[GW_UP_COUNT]; /* per replica */
};

#define GW_HEALTH_TIMEOUT_MS 1000

static const char *health_aggregate(const char *const *state, size_t n)
{
    static const char *const best_first[] = { "SERVING", "NOT_SERVING", "UNKNOWN",
                                              "DEADLINE_EXCEEDED", "UNAVAILABLE" };
    for (size_t o = 0; o < FSR_ARRAY_SIZE(best_first); o++) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(state[i], best_first[o]) == 0)
                return best_first[o];
        }
    }
    return n > 0 ? state[0] : "UNAVAILABLE";
}

static void health_finish(gw_health *h)
{
    const char *svc[GW_UP_COUNT];
    bool all = true;
    size_t cap = 256;
    for (int i = 0; i < GW_UP_COUNT; i++) {
        svc[i] = health_aggregate(h->state[i], g_addrs[i].n);
        all = all && strcmp(svc[i], "SERVING") == 0;
        cap += 64;
        for (size_t k = 0; k < g_addrs[i].n; k++)
            cap += strlen(g_addrs[i].addr[k]) + 64;
    }
    char *body = fsr_arena_alloc(fsr_http_req_arena(h->r), cap);
    size_t n = 0;
#define HEALTH_PUT(...)                                                                            \
    do {                                                                                           \
        int w_ = snprintf(body + n, cap - n, __VA_ARGS__);                                         \
        if (w_ > 0)                                                                                \
            n = n + (size_t)w_ < cap ? n + (size_t)w_ : cap - 1;                                   \
    } while (0)
    /*
     * Redis is a cache (and the key.revoked channel): without it reads fall back to
     * PostgreSQL, so its loss makes the platform DEGRADED but still 200 -- only an upstream
     * service that does not serve makes /health 503.  Observed through the gateway's own
     * SHARED_REDIS connection; "redis" is absent when the gateway has none.
     */
    const char *redis = NULL;
    if (h->t != NULL && h->t->shared != NULL)
        redis = fsr_redis_is_connected(h->t->shared) ? "SERVING" : "UNAVAILABLE";
    bool redis_ok = redis == NULL || strcmp(redis, "SERVING") == 0;
    HEALTH_PUT("{\"status\":\"%s\",\"gateway\":\"SERVING\",",
               all && redis_ok ? "SERVING" : "DEGRADED");
    if (redis != NULL)
        HEALTH_PUT("\"redis\":\"%s\",", redis);
    HEALTH_PUT("\"services\":{");
    for (int i = 0; i < GW_UP_COUNT; i++)
        HEALTH_PUT("%s\"%s\":\"%s\"", i > 0 ? "," : "", gw_upstream_key(i), svc[i]);
    HEALTH_PUT("},\"replicas\":{");
    for (int i = 0; i < GW_UP_COUNT; i++) {
        HEALTH_PUT("%s\"%s\":[", i > 0 ? "," : "", gw_upstream_key(i));
        for (size_t k = 0; k < g_addrs[i].n; k++)
            HEALTH_PUT("%s{\"address\":\"%s\",\"status\":\"%s\"}", k > 0 ? "," : "",
                       g_addrs[i].addr[k], h->state[i][k]);
        HEALTH_PUT("]");
    }
    HEALTH_PUT("}}");
#undef HEALTH_PUT
    respond(h->t, h->r, key_special(GW_K_HEALTH), h->t0, all ? 200 : 503,
            all ? FSR_OK : FSR_UNAVAILABLE, "application/json", body, n);
}

static void on_health_done(const fsr_result *res, void *arg)
{
    gw_health_call *c = arg;
    gw_health *h = c->h;
    const char **state = &h->state[c->up][c->replica];
    if (res->status.code == FSR_OK && res->response != NULL) {
        const Grpc__Health__V1__HealthCheckResponse *hr =
            (const Grpc__Health__V1__HealthCheckResponse *)res->response;
        switch (hr->status) {
        case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING:
            *state = "SERVING";
            break;
        case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING:
            *state = "NOT_SERVING";
            break;
        default:
            *state = "UNKNOWN";
            break;
        }
        if (h->t != NULL)
            h->t->up[c->up].r[c->replica].down_until = 0; /* it answered */
    } else {
        /* Unreachable, or no answer within the second: named by the gRPC code. */
        *state = res->status.code == FSR_DEADLINE_EXCEEDED ? "DEADLINE_EXCEEDED"
                 : res->status.code == FSR_UNAVAILABLE     ? "UNAVAILABLE"
                                                           : "NOT_SERVING";
        FSR_WARN("health: %s %s: %s: %s", gw_upstream_key(c->up), g_addrs[c->up].addr[c->replica],
                 fsr_code_name(res->status.code),
                 res->status.message != NULL ? res->status.message : "");
        if (res->status.code == FSR_UNAVAILABLE && h->t != NULL)
            replica_down(h->t, c->up, c->replica,
                         res->status.message != NULL ? res->status.message : "");
    }
    if (--h->pending == 0) {
        fsr_log_set_request_id(fsr_http_req_id(h->r));
        health_finish(h);
        fsr_log_set_request_id(NULL);
    }
}

static void serve_health(gw_thread *t, fsr_http_req *r, int64_t t0)
{
    fsr_arena *a = fsr_http_req_arena(r);
    gw_health *h = fsr_arena_calloc(a, sizeof(*h));
    h->r = r;
    h->t = t;
    h->t0 = t0;
    h->pending = 1; /* held until every call has been started */
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    const char *rid = fsr_http_req_id(r);
    fsr_md md = { "x-request-id", rid, strlen(rid) };
    fsr_call_opts opts = { .timeout_ms = GW_HEALTH_TIMEOUT_MS, .metadata = &md, .n_metadata = 1 };
    for (int i = 0; i < GW_UP_COUNT; i++) {
        size_t n = g_addrs[i].n;
        h->state[i] = fsr_arena_calloc(a, sizeof(*h->state[i]) * (n > 0 ? n : 1));
        h->calls[i] = fsr_arena_calloc(a, sizeof(*h->calls[i]) * (n > 0 ? n : 1));
        for (size_t k = 0; k < n; k++) {
            h->calls[i][k] = (gw_health_call){ h, i, (int)k };
            h->state[i][k] = "UNAVAILABLE";
            fsr_channel *ch = t != NULL && k < t->up[i].n ? t->up[i].r[k].ch : NULL;
            h->pending++;
            if (ch != NULL &&
                fsr_channel_unary(ch, "/grpc.health.v1.Health/Check", &req.base,
                                  &grpc__health__v1__health_check_response__descriptor, &opts,
                                  on_health_done, &h->calls[i][k]) == 0)
                continue;
            h->pending--; /* never started: its callback will not run */
        }
    }
    /* Callbacks never run inside fsr_channel_unary(), so nothing has finished yet. */
    if (--h->pending == 0)
        health_finish(h);
}

/* ---- the handler ---------------------------------------------------------------------- */

static void respond_method_not_allowed(gw_thread *t, fsr_http_req *r, size_t k, int64_t t0,
                                       unsigned allow, const char *method, const char *path)
{
    char allow_s[96], qp[208];
    gw_allow_format(allow, allow_s, sizeof(allow_s));
    quote_path(path, qp, sizeof(qp));
    fsr_http_add_header(r, "Allow", allow_s);
    gw_error e;
    gw_error_set(&e, 405, FSR_UNIMPLEMENTED, NULL, NULL,
                 "method %s not allowed on %s (allowed: %s)",
                 gw_method_name(gw_method_index(gw_method_bit(method))), qp, allow_s);
    respond_error(t, r, k, t0, &e);
}

/* The gateway's own GET endpoints.  Returns true if |path| is one of them (and answered). */
static bool serve_builtin(gw_thread *t, fsr_http_req *r, int64_t t0, unsigned mbit,
                          const char *path)
{
    int which;
    if (strcmp(path, "/health") == 0)
        which = GW_K_HEALTH;
    else if (strcmp(path, "/openapi.json") == 0)
        which = GW_K_OPENAPI;
    else if (strcmp(path, "/docs") == 0 || strcmp(path, "/docs/") == 0)
        which = GW_K_DOCS;
    else if (strcmp(path, "/livez") == 0 || strcmp(path, "/readyz") == 0)
        which = GW_K_PROBE;
    else
        return false;
    size_t k = key_special(which);
    if (mbit == GW_M_OPTIONS) {
        fsr_http_add_header(r, "Allow", "GET, HEAD, OPTIONS");
        respond(t, r, k, t0, 204, FSR_OK, NULL, "", 0);
        return true;
    }
    if (mbit != GW_M_GET && mbit != GW_M_HEAD) {
        respond_method_not_allowed(t, r, k, t0, GW_M_GET, fsr_http_req_method(r), path);
        return true;
    }
    switch (which) {
    case GW_K_HEALTH:
        serve_health(t, r, t0);
        break;
    case GW_K_OPENAPI:
        fsr_http_add_header(r, "Cache-Control", "no-cache");
        respond(t, r, k, t0, 200, FSR_OK, "application/json", fsr_openapi_json,
                fsr_openapi_json_len);
        break;
    case GW_K_DOCS:
        /* Offline by construction: the page may load nothing but /openapi.json. */
        fsr_http_add_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; "
                            "style-src 'unsafe-inline'; connect-src 'self'; img-src data:");
        fsr_http_add_header(r, "Cache-Control", "no-cache");
        respond(t, r, k, t0, 200, FSR_OK, "text/html; charset=utf-8", gw_docs_html,
                gw_docs_html_len);
        break;
    default: {
        static const char ok[] = "{\"status\":\"SERVING\"}";
        respond(t, r, k, t0, 200, FSR_OK, "application/json", ok, sizeof(ok) - 1);
        break;
    }
    }
    return true;
}

void gw_handle(fsr_http_req *r, void *arg)
{
    (void)arg;
    int64_t t0 = fsr_now_us();
    fsr_app_ctx *ctx = fsr_http_req_ctx(r);
    gw_thread *t = ctx != NULL ? ctx->user : NULL;
    const char *method = fsr_http_req_method(r);
    const char *path = fsr_http_req_path(r);
    unsigned mbit = gw_method_bit(method);

    if (serve_builtin(t, r, t0, mbit, path))
        return;

    gw_match m;
    int rv = gw_router_match(g_router, method, path, fsr_http_req_arena(r), &m);
    if (rv == GW_MATCH_BAD_METHOD && mbit == GW_M_OPTIONS) {
        char allow_s[96];
        gw_allow_format(m.allow, allow_s, sizeof(allow_s));
        fsr_http_add_header(r, "Allow", allow_s);
        respond(t, r, key_unmatched(mbit), t0, 204, FSR_OK, NULL, "", 0);
        return;
    }
    if (rv == GW_MATCH_BAD_METHOD) {
        respond_method_not_allowed(t, r, key_unmatched(mbit), t0, m.allow, method, path);
        return;
    }
    if (rv != 0) {
        gw_error e;
        char qp[208];
        quote_path(path, qp, sizeof(qp));
        if (rv == GW_MATCH_BAD_ESCAPE)
            gw_error_set(&e, 400, FSR_INVALID_ARGUMENT, NULL, NULL,
                         "malformed percent-escape in the URL path %s", qp);
        else
            gw_error_set(&e, 404, FSR_NOT_FOUND, NULL, NULL, "no route matches %s %s",
                         gw_method_name(gw_method_index(mbit)), qp);
        respond_error(t, r, key_unmatched(mbit), t0, &e);
        return;
    }
    serve_authenticated(t, r, t0, &m);
}

/* ---- setup ---------------------------------------------------------------------------- */

int gw_init(const gw_config *cfg, const fsr_route *routes, size_t n_routes)
{
    g_cfg = *cfg;
    for (int i = 0; i < GW_UP_COUNT; i++) {
        char err[300];
        char **addr = fsr_xcalloc(GW_MAX_REPLICAS, sizeof(*addr));
        int n = addr_list_split(cfg->upstream_addr[i], addr, GW_MAX_REPLICAS, err, sizeof(err));
        if (n < 0) {
            FSR_ERROR("gateway: %s addresses: %s", gw_upstream_key(i), err);
            free(addr);
            return FSR_E_CONFIG;
        }
        g_addrs[i] = (gw_addrs){ addr, (size_t)n };
        if (n > 1)
            FSR_INFO("gateway: %s: %d replicas, round-robin", gw_upstream_key(i), n);
    }
    int rv = gw_router_new(routes, n_routes, &g_router);
    if (rv != 0)
        return rv;
    /* The route policy, evaluated once per route (auth.h). */
    g_route_role = fsr_xcalloc(n_routes > 0 ? n_routes : 1, sizeof(*g_route_role));
    g_revoke_route = SIZE_MAX;
    for (size_t i = 0; i < n_routes; i++) {
        g_route_role[i] = gw_route_min_role(routes[i].http_method, routes[i].pattern);
        if (strcmp(routes[i].path, "/portfolio.v1.ClientService/RevokeKey") == 0)
            g_revoke_route = i;
    }
    static const char *const req_labels[] = { "route", "method", "status" };
    g_requests = fsr_metric_counter("http_requests_total", "REST requests answered by the gateway.",
                                    req_labels, 3);
    g_duration = fsr_metric_histogram("http_request_duration_seconds",
                                      "REST request latency at the gateway, in seconds.",
                                      req_labels, 2, NULL, 0);
    if (g_requests == NULL || g_duration == NULL)
        return FSR_E_CONFIG;
    FSR_INFO("gateway: %zu REST routes", n_routes);
    return 0;
}

void gw_shutdown(void)
{
    gw_router_free(g_router);
    g_router = NULL;
    free(g_route_role);
    g_route_role = NULL;
    for (int i = 0; i < GW_UP_COUNT; i++) {
        for (size_t k = 0; k < g_addrs[i].n; k++)
            free(g_addrs[i].addr[k]);
        free(g_addrs[i].addr);
        g_addrs[i] = (gw_addrs){ NULL, 0 };
    }
}

void *gw_thread_init(fsr_app_ctx *ctx)
{
    gw_thread *t = fsr_xcalloc(1, sizeof(*t));
    t->loop = ctx->loop;
    t->stats = fsr_xcalloc(gw_n_keys(), sizeof(*t->stats));
    unsigned seq = atomic_fetch_add(&g_thread_seq, 1u);
    t->auth = gw_auth_cache_new(0);
    t->revocations = atomic_load(&g_revocations);
    if (ctx->shared != NULL) {
        int rv = fsr_redis_subscribe(ctx->shared, GW_KEY_REVOKED_CHANNEL, on_key_revoked, t);
        if (rv == 0)
            t->shared = ctx->shared;
        else
            FSR_ERROR("gateway: cannot subscribe to %s: %s (revoked keys then work until their "
                      "cache entry expires)",
                      GW_KEY_REVOKED_CHANNEL, fsr_strerror(rv));
    }
    for (int i = 0; i < GW_UP_COUNT; i++) {
        gw_pool *pl = &t->up[i];
        pl->n = g_addrs[i].n;
        pl->r = fsr_xcalloc(pl->n > 0 ? pl->n : 1, sizeof(*pl->r));
        pl->next = pl->n > 0 ? seq % pl->n : 0;
        /* Several replicas: fail over at once rather than retry a dead one (see the top). */
        fsr_channel_opts co = { .max_message_size = g_cfg.max_upstream_message,
                                .max_attempts = pl->n > 1 ? 1 : 0 };
        for (size_t k = 0; k < pl->n; k++) {
            if (fsr_channel_new(ctx->loop, g_addrs[i].addr[k], &co, &pl->r[k].ch) != 0) {
                FSR_ERROR("gateway: bad %s address \"%s\"", gw_upstream_key(i), g_addrs[i].addr[k]);
                pl->r[k].ch = NULL;
            }
        }
    }
    return t;
}

void gw_thread_dispose(fsr_app_ctx *ctx)
{
    gw_thread *t = ctx->user;
    if (t == NULL)
        return;
    /* Freeing a channel completes its calls (CANCELLED): the pools stay valid until all are
     * closed, and nothing is retried meanwhile. */
    t->closing = true;
    for (int i = 0; i < GW_UP_COUNT; i++) {
        for (size_t k = 0; k < t->up[i].n; k++) {
            fsr_channel_free(t->up[i].r[k].ch);
            t->up[i].r[k].ch = NULL;
        }
    }
    for (int i = 0; i < GW_UP_COUNT; i++)
        free(t->up[i].r);
    gw_auth_cache_free(t->auth); /* after the channels: their calls ended on it */
    free(t->stats);
    free(t);
    ctx->user = NULL;
}
