/* SPDX-License-Identifier: MIT */
/*
 * The REST/JSON gateway's request path: match the route, build the protobuf request,
 * call the upstream service over this thread's channel, and answer with the reply as
 * JSON or the status as the REST error body.  Also /health (aggregated over the
 * upstreams), /openapi.json, /docs and the probes.
 *
 * Threading: the router and the metric families are built once by gw_init() and only
 * read afterwards.  Each loop thread owns its upstream channels and a cache of metric
 * series (gw_thread), so the request path takes no lock once a series is cached.
 */
#include "gateway.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/client.h"
#include "fsr/json.h"
#include "fsr/log.h"
#include "fsr/metrics.h"
#include "grpc/health/v1/health.pb-c.h"

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

/* Per loop thread: upstream channels and cached metric series. */
typedef struct gw_thread {
    fsr_loop *loop;
    fsr_channel *ch[GW_UP_COUNT];
    gw_stat *stats; /* gw_n_keys() entries */
} gw_thread;

static gw_config g_cfg;
static gw_router *g_router;
static fsr_metric *g_requests; /* http_requests_total{route,method,status} */
static fsr_metric *g_duration; /* http_request_duration_seconds{route,method} */

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

/* One REST request waiting for its upstream reply; lives in the request's arena. */
typedef struct gw_pending {
    fsr_http_req *r;
    gw_thread *t;
    size_t route;
    int upstream;
    int64_t t0;
    int64_t timeout_ms;
} gw_pending;

static void on_upstream_done(const fsr_result *res, void *arg)
{
    gw_pending *p = arg;
    const fsr_route *rt = gw_router_route(g_router, p->route);
    fsr_log_set_request_id(fsr_http_req_id(p->r));
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
    if (code == FSR_UNAVAILABLE) {
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

static void serve_route(gw_thread *t, fsr_http_req *r, int64_t t0, const gw_match *m)
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

    fsr_channel *ch = t != NULL ? t->ch[up] : NULL;
    if (ch == NULL) {
        gw_error_set(&e, 503, FSR_UNAVAILABLE, NULL, NULL, "%s unavailable", gw_upstream_title(up));
        respond_error(t, r, m->route, t0, &e);
        return;
    }

    /* Forwarded metadata: the request id, and what the services decide on themselves. */
    static const char *const fwd[] = { "authorization", "idempotency-key", "if-match" };
    fsr_md md[1 + FSR_ARRAY_SIZE(fwd)];
    size_t n_md = 0;
    const char *rid = fsr_http_req_id(r);
    md[n_md++] = (fsr_md){ "x-request-id", rid, strlen(rid) };
    for (size_t i = 0; i < FSR_ARRAY_SIZE(fwd); i++) {
        const char *v = fsr_http_req_header(r, fwd[i]);
        if (v != NULL)
            md[n_md++] = (fsr_md){ fwd[i], v, strlen(v) };
    }

    gw_pending *p = fsr_arena_calloc(a, sizeof(*p));
    *p = (gw_pending){
        .r = r, .t = t, .route = m->route, .upstream = up, .t0 = t0, .timeout_ms = timeout_ms
    };
    fsr_call_opts opts = {
        .timeout_ms = timeout_ms,
        .metadata = md,
        .n_metadata = n_md,
        .idempotent = (rt->flags & FSR_M_IDEMPOTENT) != 0,
    };
    int rv = fsr_channel_unary(ch, rt->path, msg, rt->output, &opts, on_upstream_done, p);
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

/* ---- /health -------------------------------------------------------------------------- */

typedef struct gw_health gw_health;
typedef struct gw_health_call {
    gw_health *h;
    int up;
} gw_health_call;

struct gw_health {
    fsr_http_req *r;
    gw_thread *t;
    int64_t t0;
    int pending;
    const char *state[GW_UP_COUNT];
    gw_health_call calls[GW_UP_COUNT];
};

#define GW_HEALTH_TIMEOUT_MS 1000

static void health_finish(gw_health *h)
{
    bool all = true;
    for (int i = 0; i < GW_UP_COUNT; i++)
        all = all && strcmp(h->state[i], "SERVING") == 0;
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"gateway\":\"SERVING\",\"services\":{"
                     "\"%s\":\"%s\",\"%s\":\"%s\",\"%s\":\"%s\"}}",
                     all ? "SERVING" : "DEGRADED", gw_upstream_key(0), h->state[0],
                     gw_upstream_key(1), h->state[1], gw_upstream_key(2), h->state[2]);
    respond(h->t, h->r, key_special(GW_K_HEALTH), h->t0, all ? 200 : 503,
            all ? FSR_OK : FSR_UNAVAILABLE, "application/json", body, (size_t)n);
}

static void on_health_done(const fsr_result *res, void *arg)
{
    gw_health_call *c = arg;
    gw_health *h = c->h;
    if (res->status.code == FSR_OK && res->response != NULL) {
        const Grpc__Health__V1__HealthCheckResponse *hr =
            (const Grpc__Health__V1__HealthCheckResponse *)res->response;
        switch (hr->status) {
        case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING:
            h->state[c->up] = "SERVING";
            break;
        case GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING:
            h->state[c->up] = "NOT_SERVING";
            break;
        default:
            h->state[c->up] = "UNKNOWN";
            break;
        }
    } else {
        /* Unreachable, or no answer within the second: named by the gRPC code. */
        h->state[c->up] = res->status.code == FSR_DEADLINE_EXCEEDED ? "DEADLINE_EXCEEDED"
                          : res->status.code == FSR_UNAVAILABLE     ? "UNAVAILABLE"
                                                                    : "NOT_SERVING";
        FSR_WARN("health: %s: %s: %s", gw_upstream_key(c->up), fsr_code_name(res->status.code),
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
    gw_health *h = fsr_arena_calloc(fsr_http_req_arena(r), sizeof(*h));
    h->r = r;
    h->t = t;
    h->t0 = t0;
    h->pending = GW_UP_COUNT + 1; /* +1: held until every call has been started */
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    const char *rid = fsr_http_req_id(r);
    fsr_md md = { "x-request-id", rid, strlen(rid) };
    fsr_call_opts opts = { .timeout_ms = GW_HEALTH_TIMEOUT_MS, .metadata = &md, .n_metadata = 1 };
    for (int i = 0; i < GW_UP_COUNT; i++) {
        h->calls[i] = (gw_health_call){ h, i };
        h->state[i] = "UNAVAILABLE";
        fsr_channel *ch = t != NULL ? t->ch[i] : NULL;
        if (ch != NULL && fsr_channel_unary(ch, "/grpc.health.v1.Health/Check", &req.base,
                                            &grpc__health__v1__health_check_response__descriptor,
                                            &opts, on_health_done, &h->calls[i]) == 0)
            continue;
        h->pending--; /* never started: its callback will not run */
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
    serve_route(t, r, t0, &m);
}

/* ---- setup ---------------------------------------------------------------------------- */

int gw_init(const gw_config *cfg, const fsr_route *routes, size_t n_routes)
{
    g_cfg = *cfg;
    int rv = gw_router_new(routes, n_routes, &g_router);
    if (rv != 0)
        return rv;
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
}

void *gw_thread_init(fsr_app_ctx *ctx)
{
    gw_thread *t = fsr_xcalloc(1, sizeof(*t));
    t->loop = ctx->loop;
    t->stats = fsr_xcalloc(gw_n_keys(), sizeof(*t->stats));
    fsr_channel_opts co = { .max_message_size = g_cfg.max_upstream_message };
    for (int i = 0; i < GW_UP_COUNT; i++) {
        if (fsr_channel_new(ctx->loop, g_cfg.upstream_addr[i], &co, &t->ch[i]) != 0) {
            FSR_ERROR("gateway: bad %s address \"%s\"", gw_upstream_key(i), g_cfg.upstream_addr[i]);
            t->ch[i] = NULL;
        }
    }
    return t;
}

void gw_thread_dispose(fsr_app_ctx *ctx)
{
    gw_thread *t = ctx->user;
    if (t == NULL)
        return;
    for (int i = 0; i < GW_UP_COUNT; i++)
        fsr_channel_free(t->ch[i]);
    free(t->stats);
    free(t);
    ctx->user = NULL;
}
