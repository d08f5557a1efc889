/* SPDX-License-Identifier: MIT */
/*
 * The plain-HTTP request: HTTP/1.1 requests (server_h1.c) and non-gRPC HTTP/2 requests
 * (server_h2.c) both become an fsr_http_req, answered by the built-in /health and /metrics
 * or by the application's handler (the gateway's REST routes).
 */
#include "server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "fsr/log.h"

fsr_http_req *fsr__http_req_new(srv_worker *w)
{
    fsr_http_req *r = fsr_xcalloc(1, sizeof(*r));
    fsr_arena_init(&r->arena);
    r->w = w;
    r->method = r->path = r->query = r->body = "";
    return r;
}

void fsr__http_req_free(fsr_http_req *r)
{
    fsr_arena_dispose(&r->arena);
    free(r);
}

const char *fsr_http_req_method(const fsr_http_req *r)
{
    return r->method;
}

const char *fsr_http_req_path(const fsr_http_req *r)
{
    return r->path;
}

const char *fsr_http_req_query(const fsr_http_req *r)
{
    return r->query;
}

const char *fsr_http_req_header(const fsr_http_req *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].key, name) == 0)
            return r->headers[i].value;
    return NULL;
}

const char *fsr_http_req_body(const fsr_http_req *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}

fsr_arena *fsr_http_req_arena(fsr_http_req *r)
{
    return &r->arena;
}

fsr_loop *fsr_http_req_loop(fsr_http_req *r)
{
    return r->w->loop;
}

void *fsr_http_req_ctx(fsr_http_req *r)
{
    return r->w->ctx;
}

const char *fsr_http_req_id(const fsr_http_req *r)
{
    return r->request_id;
}

int fsr_http_req_is_closed(const fsr_http_req *r)
{
    if (r->h1 != NULL)
        return fsr__h1_closed(r);
    if (r->h2 != NULL)
        return fsr__h2_call_closed(r->h2);
    return 1;
}

void fsr_http_add_header(fsr_http_req *r, const char *name, const char *value)
{
    if (r->n_resp_headers == r->cap_resp_headers) {
        size_t cap = r->cap_resp_headers ? r->cap_resp_headers * 2 : 8;
        fsr_md *n = fsr_arena_alloc(&r->arena, cap * sizeof(*n));
        if (r->n_resp_headers)
            memcpy(n, r->resp_headers, r->n_resp_headers * sizeof(*n));
        r->resp_headers = n;
        r->cap_resp_headers = cap;
    }
    fsr_md *h = &r->resp_headers[r->n_resp_headers++];
    /* h2 header names must be lowercase; HTTP/1.1 does not care. */
    char *k = fsr_arena_strdup(&r->arena, name);
    for (char *p = k; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    h->key = k;
    h->value = fsr_arena_strdup(&r->arena, value);
    h->value_len = strlen(value);
}

const char *fsr__http_reason(int status);
const char *fsr__http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 408:
        return "Request Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

void fsr_http_respond(fsr_http_req *r, int status, const char *content_type, const char *body,
                      size_t len)
{
    if (r->responded)
        return;
    r->responded = true;
    if (content_type != NULL)
        fsr_http_add_header(r, "content-type", content_type);
    fsr_http_add_header(r, "x-request-id", r->request_id);
    /* h2 == NULL: an HTTP/1.1 request, even once its connection closed (h1 NULL): the
     * response is then dropped and |r| freed there. */
    if (r->h1 != NULL || r->h2 == NULL) {
        fsr__h1_respond(r, status, fsr__http_reason(status), body, len);
        return;
    }
    fsr_call *call = r->h2;
    fsr__h2_http_respond(call, status, r->resp_headers, r->n_resp_headers, body, len);
    /* The stream's call frees |r| with itself. */
}

int fsr__http_error_body(int status, char *buf, size_t len)
{
    /* The API's error shape, with the gRPC code the status stands for. */
    int code = status == 408                    ? FSR_DEADLINE_EXCEEDED
               : status == 413 || status == 431 ? FSR_RESOURCE_EXHAUSTED
               : status == 505                  ? FSR_UNIMPLEMENTED
                                                : FSR_INVALID_ARGUMENT;
    return snprintf(buf, len, "{\"code\":%d,\"message\":\"%s\",\"details\":[]}\n", code,
                    fsr__http_reason(status));
}

/* ---- built-ins ----------------------------------------------------------------------- */

static void respond_health(fsr_http_req *r)
{
    bool ok = fsr__server_ready(r->w);
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"service\":\"%s\"}\n",
                     ok ? "SERVING" : "NOT_SERVING", r->w->srv->cfg.name);
    fsr_http_respond(r, ok ? 200 : 503, "application/json", body, (size_t)n);
}

static void respond_metrics(fsr_http_req *r)
{
    struct evbuffer *b = evbuffer_new();
    fsr_server_metrics(r->w->srv, b);
    size_t len = evbuffer_get_length(b);
    const char *p = (const char *)evbuffer_pullup(b, -1);
    fsr_http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", p ? p : "", len);
    evbuffer_free(b);
}

void fsr__http_dispatch(srv_worker *w, fsr_http_req *r)
{
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    if (get && strcmp(r->path, "/metrics") == 0) {
        respond_metrics(r);
        return;
    }
    if (w->srv->cfg.http_handler != NULL) {
        fsr_log_set_request_id(r->request_id);
        w->srv->cfg.http_handler(r, w->srv->cfg.http_arg);
        fsr_log_set_request_id(NULL);
        return;
    }
    if (get && (strcmp(r->path, "/health") == 0 || strcmp(r->path, "/healthz") == 0 ||
                strcmp(r->path, "/readyz") == 0)) {
        respond_health(r);
        return;
    }
    if (get && strcmp(r->path, "/livez") == 0) {
        fsr_http_respond(r, 200, "application/json", "{\"status\":\"alive\"}\n", 19);
        return;
    }
    static const char nf[] = "{\"code\":5,\"message\":\"not found\",\"details\":[]}\n";
    fsr_http_respond(r, 404, "application/json", nf, sizeof(nf) - 1);
}
