/* SPDX-License-Identifier: MIT */
/*
 * The REST gateway's internals, shared by its .c files and its unit test: the route
 * matcher (route_match.c), request building and error rendering (transcode.c), and the
 * HTTP handler with its upstream channels (gateway.c).  Never included outside
 * rest_gateway/ and test/unit/gateway_route_test.c.
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "fsr/app.h"
#include "fsr/http.h"
#include "fsr/mem.h"
#include "fsr/route.h"
#include "fsr/status.h"

/* ---- upstreams ----------------------------------------------------------------------- */

/* The services behind the gateway, chosen by the route's proto package. */
typedef enum gw_upstream {
    GW_UP_EQUITY = 0,    /* equity.v1.*                  EQUITY_SERVICE_ADDR    */
    GW_UP_FI = 1,        /* fixed_income.v1.*            FI_SERVICE_ADDR        */
    GW_UP_PORTFOLIO = 2, /* portfolio.v1.* and jobs.v1.* PORTFOLIO_SERVICE_ADDR */
    GW_UP_COUNT = 3,
} gw_upstream;

/*
 * The upstream serving |service| (a full proto service name, "equity.v1.EquityService"),
 * or -1 when no upstream serves its package.
 */
int gw_upstream_of(const char *service);

/* "equity", "fixed_income", "portfolio": the /health keys and the metrics label. */
const char *gw_upstream_key(int up);

/* "equity service", "fixed income service", "portfolio service": for client messages. */
const char *gw_upstream_title(int up);

/* ---- methods ------------------------------------------------------------------------- */

/* HTTP methods as bits, so a route set's methods fit in one word (the Allow header). */
enum {
    GW_M_GET = 1u << 0,
    GW_M_HEAD = 1u << 1,
    GW_M_POST = 1u << 2,
    GW_M_PUT = 1u << 3,
    GW_M_PATCH = 1u << 4,
    GW_M_DELETE = 1u << 5,
    GW_M_OPTIONS = 1u << 6,
    GW_M_OTHER = 1u << 7,
};
#define GW_N_METHODS 8

/* The bit of method name |m| (exact, upper case as HTTP requires), GW_M_OTHER if unknown. */
unsigned gw_method_bit(const char *m);

/* The index (0..GW_N_METHODS-1) of a single method bit, and the name of an index. */
int gw_method_index(unsigned bit);
const char *gw_method_name(int index);

/*
 * Writes the Allow header value for the method set |allow| ("GET, HEAD, PATCH, OPTIONS")
 * into |buf| (|cap| bytes, NUL-terminated, truncated to fit).  GET implies HEAD, and
 * OPTIONS is always listed.  Returns the length written.
 */
size_t gw_allow_format(unsigned allow, char *buf, size_t cap);

/* ---- route matching ------------------------------------------------------------------ */

/* Patterns longer than this (in segments) are refused at startup. */
#define GW_MAX_SEGS 16
/* At most this many {variables} per pattern. */
#define GW_MAX_VARS 8

typedef struct gw_router gw_router;

/*
 * Compiles |routes| (|n| rows, borrowed: they must outlive the router) into per-route
 * segment arrays, grouped by segment count, each route with its method bit, specificity
 * and upstream.  Returns 0, or FSR_E_CONFIG (logged) for a pattern that is not
 * "/seg/{var}/..." (empty segment, unbalanced brace, {var=**} or another verb syntax, too
 * many segments or variables), an unknown HTTP method, or a service no upstream serves.
 */
int gw_router_new(const fsr_route *routes, size_t n, gw_router **out);

/* Frees |r|.  NULL is a no-op. */
void gw_router_free(gw_router *r);

/* The number of routes and route |i| (a row of the table given to gw_router_new()). */
size_t gw_router_size(const gw_router *r);
const fsr_route *gw_router_route(const gw_router *r, size_t i);

/* The upstream (gw_upstream) of route |i|. */
int gw_router_upstream(const gw_router *r, size_t i);

/* The result of gw_router_match(). */
typedef struct gw_match {
    size_t route; /* index into the route table */
    size_t n_vars;
    struct {
        const char *name;  /* the field path from the pattern, e.g. "constituent_id" */
        const char *value; /* percent-decoded, NUL-terminated, in the arena */
    } vars[GW_MAX_VARS];
    unsigned allow; /* the methods of every route matching the path (for 405 and OPTIONS) */
} gw_match;

/* gw_router_match() results besides 0. */
enum {
    GW_MATCH_NOT_FOUND = 1,  /* no pattern matches the path: 404 */
    GW_MATCH_BAD_METHOD = 2, /* patterns match, none for this method: 405 (m->allow) */
    GW_MATCH_BAD_ESCAPE = 3, /* a matched variable has a malformed %-escape or %00: 400 */
};

/*
 * Matches |method| and |path| (no query) against the routes.  Literal segments compare
 * byte for byte; a {variable} matches one non-empty segment, which is percent-decoded into
 * |a| ("+" stays "+": this is a path, not a form).  One trailing slash is ignored.  When
 * several patterns match, the most specific wins: the one with a literal where the others
 * have a variable, earliest segment first ("/bonds/analytics" over "/bonds/{id}").  HEAD
 * matches GET routes.
 *
 * Returns 0 with |m| filled, or GW_MATCH_NOT_FOUND, GW_MATCH_BAD_METHOD (m->allow set) or
 * GW_MATCH_BAD_ESCAPE.  Allocates from |a| only for decoded variable values.
 */
int gw_router_match(const gw_router *r, const char *method, const char *path, fsr_arena *a,
                    gw_match *m);

/* Percent-decodes |len| bytes of |in| into |out| (at least |len| + 1 bytes, NUL-terminated).
 * Returns the decoded length, or -1 for a malformed escape or an escaped NUL. */
long gw_percent_decode(const char *in, size_t len, char *out);

/* ---- building the upstream request ---------------------------------------------------- */

/*
 * A request the gateway refuses before calling upstream: the HTTP status, the gRPC code
 * for the body, a client-safe message and, when a field is to blame, a field violation.
 */
typedef struct gw_error {
    int http;
    fsr_code code;
    char message[400];
    char field[160];       /* lowerCamelCase path, or "" */
    char description[300]; /* the violation's description, or "" */
} gw_error;

/* What the HTTP request carries, as gw_build_request() needs it. */
typedef struct gw_http_in {
    const char *method;       /* "POST" */
    const char *content_type; /* the Content-Type header, or NULL */
    const char *body;         /* never NULL */
    size_t body_len;
    const char *query; /* raw query string, "" when none */
} gw_http_in;

/*
 * Builds the input message of |rt| for a request matched as |m|, allocated in |a|:
 *
 *  1. the body: for body "*" the JSON object is parsed into the message (an empty body is
 *     {}); for body "<field>" it is merged into that field; a route without a body
 *     refuses a non-empty one.  A non-empty body must be Content-Type application/json
 *     (a charset parameter, if any, must be utf-8): 415 otherwise.
 *  2. query parameters (routes whose body is not "*"): lowerCamelCase or snake_case field
 *     paths, repeated parameters for repeated fields; unknown parameters are refused.
 *     Routes with body "*" take no query parameters.
 *  3. path variables set their fields last; a body or query value that differs from the
 *     path's is refused (the path is authoritative).
 *
 * Returns 0 and the message in *|out|, or -1 with |err| filled (400 or 415, INVALID_ARGUMENT).
 */
int gw_build_request(const fsr_route *rt, const gw_match *m, const gw_http_in *in, fsr_arena *a,
                     ProtobufCMessage **out, gw_error *err);

/* Sets |err| (http 0 means: the status fsr_code_http_status(code)). */
void gw_error_set(gw_error *err, int http, fsr_code code, const char *field,
                  const char *description, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* ---- rendering errors ------------------------------------------------------------------ */

/*
 * The HTTP status for a gRPC |code|: fsr_code_http_status(), except FAILED_PRECONDITION on
 * a version mismatch, which is 412: the message mentions "version mismatch" or "stale
 * version" (any case), or the details carry an ErrorInfo with reason "VERSION_MISMATCH"
 * or a PreconditionFailure violation of type "VERSION".  |details| (grpc-status-details-bin
 * bytes, a google.rpc.Status) may be NULL.
 */
int gw_http_status(fsr_code code, const char *message, const void *details, size_t details_len);

/*
 * Renders the error body {"code": <code>, "message": "...", "details": [...]}.  The
 * details are |field|/|description| as {"field", "description"} when |field| is not NULL,
 * then those decoded from |details| (a serialized google.rpc.Status): BadRequest field
 * violations as {"field", "description"}, PreconditionFailure violations as {"type",
 * "subject", "description"}, ErrorInfo as {"reason", "domain", "metadata"}, RetryInfo as
 * {"retryDelay": "1.5s"}, ResourceInfo as {"resourceType", "resourceName", "description"};
 * DebugInfo and unknown types are dropped (never shown to clients), as are undecodable
 * bytes.  Returns a malloc()ed NUL-terminated string (length in *|len|) to free().
 */
char *gw_error_json(fsr_code code, const char *message, const char *field, const char *description,
                    const void *details, size_t details_len, size_t *len);

/* ---- the HTTP side ------------------------------------------------------------------- */

/* At most this many replicas per upstream (comma-separated addresses). */
#define GW_MAX_REPLICAS 64

/* While a replica is skipped after its call failed with UNAVAILABLE. */
#define GW_REPLICA_BACKOFF_MS 1000

/*
 * Checks an upstream address list: one or more "host:port" separated by commas (spaces
 * around them allowed), a numeric port in 1..65535, a host of letters, digits and ".-_:[]"
 * (IPv6 in brackets), at most GW_MAX_REPLICAS entries.  Returns 0, or -1 with a message in
 * |err| (|cap| bytes).
 */
int gw_addr_list_check(const char *list, char *err, size_t cap);

/* The gateway's global configuration, set once by main() before threads start. */
typedef struct gw_config {
    /*
     * "host:port[,host:port...]": the replicas of each upstream.  Each loop thread opens
     * one channel per replica and sends requests round-robin; a replica whose call failed
     * with UNAVAILABLE is skipped for GW_REPLICA_BACKOFF_MS, and such a request is tried
     * once more on another replica when it is idempotent or provably never left.
     */
    const char *upstream_addr[GW_UP_COUNT];
    int64_t default_timeout_ms;  /* without X-Timeout-Ms: 10000 */
    int64_t max_timeout_ms;      /* X-Timeout-Ms cap: 60000 */
    size_t max_upstream_message; /* per channel: 16 MiB */
} gw_config;

/*
 * Compiles the routes and registers the metrics.  Call once, before fsr_app_main().
 * Returns 0, or FSR_E_CONFIG (logged).
 */
int gw_init(const gw_config *cfg, const fsr_route *routes, size_t n_routes);

/* Releases what gw_init() made. */
void gw_shutdown(void);

/* fsr_app_config hooks: per-thread upstream channels, and the HTTP handler. */
void *gw_thread_init(fsr_app_ctx *ctx);
void gw_thread_dispose(fsr_app_ctx *ctx);
void gw_handle(fsr_http_req *r, void *arg);

/* The /docs page (docs_html.c, generated from docs.html). */
extern const char gw_docs_html[];
extern const size_t gw_docs_html_len;

#endif /* GW_GATEWAY_H */
