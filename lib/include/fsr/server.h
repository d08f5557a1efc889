/* SPDX-License-Identifier: MIT */
/*
 * The gRPC server: h2c (prior knowledge) with nghttp2 on libevent, one loop per thread with
 * SO_REUSEPORT listeners, and an HTTP/1.1 side door on the same port for /health, /metrics
 * and (in the gateway) REST.  A service is a table of method handlers (STYLE §7).
 */
#ifndef FSR_SERVER_H
#define FSR_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "fsr/http.h"
#include "fsr/loop.h"
#include "fsr/mem.h"
#include "fsr/metadata.h"
#include "fsr/status.h"

typedef struct fsr_server fsr_server;
typedef struct fsr_call fsr_call;

/*
 * A handler.  |req| is the decoded request (cast it on the first line), allocated in the
 * call's arena.  The handler finishes the call exactly once, now or later, with
 * fsr_call_reply(), fsr_call_finish() or fsr_call_fail*().  A server-streaming handler sends
 * any number of messages with fsr_call_send() before finishing.
 */
typedef void (*fsr_handler)(fsr_call *call, const ProtobufCMessage *req);

/* Method flags. */
enum {
    FSR_M_IDEMPOTENT = 1 << 0,      /* safe to retry (no side effects, or idempotent) */
    FSR_M_SERVER_STREAM = 1 << 1,   /* server-streaming: many responses */
    FSR_M_NO_SIDE_EFFECTS = 1 << 2, /* a read: idempotency_level NO_SIDE_EFFECTS (with
                                       FSR_M_IDEMPOTENT); authorization policies key on it */
};

/* One row of a service's method table. */
typedef struct fsr_method {
    const char *name;     /* the method's name in the proto, e.g. "GetEquity" */
    fsr_handler handler;  /* NULL answers UNIMPLEMENTED */
    unsigned flags;       /* FSR_M_* */
    uint32_t deadline_ms; /* server-side cap when the client sends none; 0 = server default */
} fsr_method;

/* A service: protobuf-c's descriptor plus our method table. */
typedef struct fsr_service {
    const ProtobufCServiceDescriptor *desc;
    const fsr_method *methods;
    size_t n_methods;
} fsr_service;

#define FSR_SERVICE(d, m)                                                                          \
    {                                                                                              \
        (d), (m), FSR_ARRAY_SIZE(m)                                                                \
    }

/* Readiness probe: returns 1 if the dependencies answer (called on a loop thread). */
typedef int (*fsr_ready_cb)(void *ctx);

typedef struct fsr_server_config {
    const char *name;             /* service name for logs/metrics, e.g. "equity" */
    const char *host;             /* bind address; NULL = "0.0.0.0" */
    int port;                     /* 0 = ephemeral (the bound port is written to port_file) */
    const char *port_file;        /* if set, the bound port is written here once listening */
    int threads;                  /* loop threads; 0 = number of CPUs */
    size_t max_message_size;      /* 0 = 4 MiB; larger messages get RESOURCE_EXHAUSTED */
    size_t max_http_body;         /* HTTP/1.1 and REST bodies; 0 = max_message_size */
    size_t max_header_size;       /* HTTP/1.1 header block cap; 0 = 16 KiB */
    uint32_t max_streams;         /* concurrent streams per connection; 0 = 256 */
    uint32_t grace_ms;            /* SIGTERM drain period; 0 = 10000 */
    uint32_t idle_timeout_ms;     /* idle connection timeout; 0 = 120000 */
    uint32_t header_timeout_ms;   /* a request (line + headers + body) or the h2 preface must
                                     arrive within this; slow clients are cut off; 0 = 10000 */
    uint32_t default_deadline_ms; /* cap for calls without grpc-timeout; 0 = none */

    /*
     * Per-thread setup: called once on each loop thread before it serves; the result is
     * fsr_call_ctx() / fsr_http_req_ctx() for everything that thread serves (its Postgres
     * pool, Redis connection, upstream channels...).  NULL result is allowed.
     */
    void *(*thread_init)(fsr_loop *loop, void *arg);
    void (*thread_dispose)(void *ctx, void *arg);
    void *thread_arg;

    /* Readiness for /health and grpc.health.v1 (NULL: always ready). */
    fsr_ready_cb ready;

    /*
     * HTTP requests other than GET /metrics (HTTP/1.1, and h2 requests whose content-type
     * is not application/grpc).  NULL: the server answers GET /health itself and 404 to
     * everything else.
     */
    fsr_http_handler http_handler;
    void *http_arg;

    /*
     * Optional authorization of gRPC calls: runs on the loop thread for every call whose
     * method is registered, once its request has fully arrived and before it is decoded
     * or its handler runs.  It may read the call's method (fsr_call_method(), flags
     * included), path and metadata.  Returns FSR_OK to dispatch, or the code the call is
     * refused with (e.g. FSR_PERMISSION_DENIED) after setting *|message| to a client-safe
     * static string.  NULL: every call is dispatched.
     */
    fsr_code (*authorize)(const fsr_call *call, const char **message);
} fsr_server_config;

/*
 * Creates a server (not yet listening).  |cfg| is copied; its strings must outlive the
 * server.  grpc.health.v1.Health (Check and Watch) is registered automatically.
 * Returns 0, or FSR_E_CONFIG.
 */
int fsr_server_new(const fsr_server_config *cfg, fsr_server **out);

/*
 * Adds |svc|.  Refuses (FSR_E_CONFIG, logged) a table row naming no method of the
 * descriptor, a descriptor method without a row, a duplicate row, or a duplicate service.
 * |svc| and its table must outlive the server.
 */
int fsr_server_add_service(fsr_server *srv, const fsr_service *svc);

/*
 * Binds, starts the loop threads and serves until SIGTERM/SIGINT (or fsr_server_stop()),
 * then drains gracefully: GOAWAY to every h2 connection, stop accepting, finish in-flight
 * calls within grace_ms, close.  Returns 0 after a clean shutdown, or -errno if binding
 * failed.  Call from the main thread.
 */
int fsr_server_run(fsr_server *srv);

/* Asks a running server to shut down gracefully.  Thread- and signal-safe. */
void fsr_server_stop(fsr_server *srv);

/* Frees a server that is not running.  NULL is a no-op. */
void fsr_server_free(fsr_server *srv);

/* The bound port (valid after listening started). */
int fsr_server_port(const fsr_server *srv);

/* Appends the server's Prometheus text (all metrics) to |out| (for custom /metrics). */
struct evbuffer;
void fsr_server_metrics(fsr_server *srv, struct evbuffer *out);

/* ---- the call ---------------------------------------------------------------------- */

/* The call's arena (request, response, strings); freed when the call ends. */
fsr_arena *fsr_call_arena(fsr_call *call);
void *fsr_call_alloc(fsr_call *call, size_t n); /* zeroed */
char *fsr_call_printf(fsr_call *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

fsr_loop *fsr_call_loop(fsr_call *call);
void *fsr_call_ctx(fsr_call *call);
const fsr_method *fsr_call_method(const fsr_call *call);
const char *fsr_call_path(const fsr_call *call); /* "/equity.v1.EquityService/GetEquity" */

/* The request id (x-request-id metadata if sane, else generated). */
const char *fsr_call_request_id(const fsr_call *call);

/*
 * First value of request metadata |key| (lowercase), or NULL.  For "-bin" keys the value is
 * decoded bytes and *|len| its length; |len| may be NULL.
 */
const char *fsr_call_metadata(const fsr_call *call, const char *key, size_t *len);

/* All request metadata; *|n| entries (custom metadata only, no pseudo or grpc-* headers). */
const fsr_md *fsr_call_metadata_all(const fsr_call *call, size_t *n);

/* Adds response header metadata (before the first message) or trailer metadata.  Copied. */
void fsr_call_add_header(fsr_call *call, const char *key, const char *value, size_t len);
void fsr_call_add_trailer(fsr_call *call, const char *key, const char *value, size_t len);

/*
 * The call's absolute deadline on the fsr_now_us() clock, or INT64_MAX if none.  Downstream
 * calls pass the call as |parent| so the remaining time propagates, shrinking.
 */
int64_t fsr_call_deadline(const fsr_call *call);

/* True once the client cancelled (RST_STREAM), the connection dropped or the deadline hit. */
bool fsr_call_is_cancelled(const fsr_call *call);

/*
 * Registers |cb| to run once if the call is cancelled before it finishes (deadline,
 * RST_STREAM, connection loss), e.g. to abandon a database query.  The call stays valid;
 * the handler must still finish it (the status sent is then ignored).
 */
void fsr_call_on_cancel(fsr_call *call, void (*cb)(fsr_call *call, void *arg), void *arg);

/* Unary: sends |resp| and finishes with OK.  |resp| must be of the method's output type. */
void fsr_call_reply(fsr_call *call, const ProtobufCMessage *resp);

/* Server-streaming: queues one message.  Returns 0, or FSR_E_CLOSED if the call ended. */
int fsr_call_send(fsr_call *call, const ProtobufCMessage *msg);

/* Finishes with |code| and |message| (copied; may be NULL). */
void fsr_call_finish(fsr_call *call, fsr_code code, const char *message);

/* Finishes with a formatted message. */
void fsr_call_fail(fsr_call *call, fsr_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Finishes naming the bad field: message "<field>: <description>", plus a
 * google.rpc.BadRequest field violation in grpc-status-details-bin, which the gateway
 * renders as {"details":[{"field":...,"description":...}]}.
 */
void fsr_call_fail_field(fsr_call *call, fsr_code code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Finishes with the code fsr_code_from_err(|err|) and a client-safe message; logs |err|. */
void fsr_call_fail_err(fsr_call *call, int err, const char *what);

#endif /* FSR_SERVER_H */
