/* SPDX-License-Identifier: MIT */
/* Server internals shared by server.c, server_h2.c and server_http.c.  Never included outside lib/.
 */
#ifndef FSR_SERVER_INT_H
#define FSR_SERVER_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "fsr/server.h"
#include "fsr/metrics.h"

typedef struct srv_worker srv_worker;
typedef struct srv_conn srv_conn;

/* A registered method: the table row plus what the runtime derives from the descriptor. */
typedef struct srv_method {
    const fsr_method *row;
    const ProtobufCServiceDescriptor *sdesc;
    const ProtobufCMethodDescriptor *mdesc;
    char *path; /* "/pkg.Service/Method" */
    size_t path_len;
    fsr_series *handled[FSR_CODE_COUNT]; /* rpc_server_handled_total{code} */
    fsr_series *latency;                 /* rpc_server_handling_seconds */
    fsr_series *started;                 /* rpc_server_started_total */
} srv_method;

struct fsr_server {
    fsr_server_config cfg;
    srv_method *methods; /* sorted by path for bsearch */
    size_t n_methods, cap_methods;
    const fsr_service **services;
    size_t n_services;
    srv_worker *workers;
    int n_workers;
    int port;
    volatile int stopping;
    int stop_pipe[2]; /* written by fsr_server_stop (signal-safe), read by the main thread */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n_drained;
    int n_started;
    int bind_error;
    uint64_t trim_seen; /* worker 0's idle tracking: request count at the last tick */
    bool trimmed;       /* memory trimmed since the last request */
};

struct srv_worker {
    fsr_server *srv;
    int index;
    pthread_t thread;
    fsr_loop *loop;
    int listen_fd;
    struct event *accept_ev;
    struct h1_conn *h1_conns; /* HTTP/1.1 connections */
    void *ctx;
    srv_conn *conns; /* intrusive list of h2 and detecting connections */
    int running;     /* dispatched handlers not yet finished (even if their client left) */
    bool draining;
    struct event *drain_timer;
    struct event *trim_timer;  /* worker 0 only: give memory back to the OS when idle */
    _Atomic uint64_t requests; /* requests begun on this thread (read by worker 0) */
    int64_t drain_deadline;
};

const srv_method *fsr__server_find_method(const fsr_server *srv, const char *path, size_t len);

/* Hand a freshly accepted socket to the worker: protocol detection, then h2 or HTTP/1.1. */
void fsr__conn_accept(srv_worker *w, int fd, const struct sockaddr *sa, socklen_t salen);

/* Graceful drain of every h2 connection of |w|; returns the number still open. */
int fsr__conn_drain_all(srv_worker *w, bool force);

/* HTTP/1.1 (server_h1.c): take over a detected connection; respond; drain. */
void fsr__h1_accept(srv_worker *w, int fd);
void fsr__h1_respond(fsr_http_req *r, int status, const char *reason, const char *body, size_t len);
bool fsr__h1_closed(const fsr_http_req *r);
int fsr__h1_drain_all(srv_worker *w, bool force);
const char *fsr__http_reason(int status);

/* Writes the API's JSON error body for a transport-level HTTP error |status|. */
int fsr__http_error_body(int status, char *buf, size_t len);

/* Built-in plain HTTP handling (health, metrics, 404), and dispatch to the user's handler. */
void fsr__http_dispatch(srv_worker *w, fsr_http_req *r);

/*
 * A plain HTTP request, from either transport: evhttp (HTTP/1.1) or an h2 stream whose
 * content-type is not gRPC.  Lives in its own arena until the response is handed over.
 */
struct fsr_http_req {
    fsr_arena arena;
    srv_worker *w;
    const char *method, *path, *query;
    fsr_md *headers; /* request headers, names lowercased */
    size_t n_headers;
    const char *body;
    size_t body_len;
    char request_id[72];
    fsr_md *resp_headers;
    size_t n_resp_headers, cap_resp_headers;
    struct h1_conn *h1; /* HTTP/1.1 transport (NULL once it closed), or */
    fsr_call *h2;       /* the h2 stream carrying it */
    bool responded;
};

/* Creates a request in a fresh arena (headers/body added by the transport). */
fsr_http_req *fsr__http_req_new(srv_worker *w);
void fsr__http_req_free(fsr_http_req *r);

/* h2 transport of an HTTP response (called by fsr_http_respond). */
void fsr__h2_http_respond(fsr_call *call, int status, const fsr_md *headers, size_t n_headers,
                          const char *body, size_t len);
bool fsr__h2_call_closed(const fsr_call *call);

/* Per-thread request ids. */
void fsr__request_id_new(char out[17]);
bool fsr__request_id_ok(const char *s, size_t len);

/* Readiness of the process as seen from worker |w|. */
bool fsr__server_ready(srv_worker *w);

/* Counts a request begun on |w| (for idle detection); cheap, thread-local counter. */
static inline void fsr__worker_count_request(srv_worker *w)
{
    atomic_fetch_add_explicit(&w->requests, 1, memory_order_relaxed);
}

/* The worker serving |call|. */
srv_worker *fsr__call_worker(fsr_call *call);

/* Metrics: a call started; a call finished. */
void fsr__server_record_start(const srv_method *m);
void fsr__server_record(const srv_method *m, fsr_code code, int64_t latency_us);

#endif /* FSR_SERVER_INT_H */
