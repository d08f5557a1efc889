/* SPDX-License-Identifier: MIT */
/*
 * Plain HTTP requests on a service port: HTTP/1.1 (keep-alive) and non-gRPC HTTP/2 (h2c)
 * requests reach the same handler through this one interface.  The gateway serves its REST
 * routes here; every service serves /health and /metrics here.
 */
#ifndef FSR_HTTP_H
#define FSR_HTTP_H

#include <stddef.h>

#include "fsr/loop.h"
#include "fsr/mem.h"

typedef struct fsr_http_req fsr_http_req;

/* Method ("GET"), path without the query, raw query string (after '?', or "") */
const char *fsr_http_req_method(const fsr_http_req *r);
const char *fsr_http_req_path(const fsr_http_req *r);
const char *fsr_http_req_query(const fsr_http_req *r);

/* Case-insensitive header lookup; NULL if absent. */
const char *fsr_http_req_header(const fsr_http_req *r, const char *name);

/* The request body (may be empty, never NULL).  Bodies are capped by the server config. */
const char *fsr_http_req_body(const fsr_http_req *r, size_t *len);

/* The request's arena: freed when the response has been handed to the transport. */
fsr_arena *fsr_http_req_arena(fsr_http_req *r);

/* The loop and the per-thread context (fsr_server_config.thread_init's result). */
fsr_loop *fsr_http_req_loop(fsr_http_req *r);
void *fsr_http_req_ctx(fsr_http_req *r);

/* The request id: the client's X-Request-Id if it sent a sane one, else a generated one. */
const char *fsr_http_req_id(const fsr_http_req *r);

/* True once the client has gone away; the handler must still respond (it is dropped). */
int fsr_http_req_is_closed(const fsr_http_req *r);

/* Adds a response header; call before fsr_http_respond().  Strings are copied. */
void fsr_http_add_header(fsr_http_req *r, const char *name, const char *value);

/*
 * Sends the response and ends the request: exactly once per request, from the loop's
 * thread, now or later (e.g. from an upstream call's callback).  |body| is copied.
 * X-Request-Id and Content-Length are added automatically.  |r| is invalid afterwards.
 */
void fsr_http_respond(fsr_http_req *r, int status, const char *content_type, const char *body,
                      size_t len);

/* A request handler.  It must eventually call fsr_http_respond(). */
typedef void (*fsr_http_handler)(fsr_http_req *r, void *arg);

#endif /* FSR_HTTP_H */
