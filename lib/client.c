/* SPDX-License-Identifier: MIT */
/*
 * The gRPC client: h2c (prior knowledge) over nghttp2 on libevent.
 *
 * Objects and ownership:
 *
 *   fsr_channel  one per target.  Owns its calls and its connections.  |ch->conn| is the
 *                connection new calls go to (NULL until the first call, and again after a
 *                failure or a GOAWAY: the next call connects afresh).  Connections that got a
 *                GOAWAY stay in |ch->conns| until their remaining streams finish.
 *   conn         one TCP connection and its nghttp2 session.  Calls wait on |waiting| while it
 *                resolves and connects; once it is READY they become streams.
 *   cstream      the glue between an nghttp2 stream and a call, owned by the conn.  nghttp2
 *                holds a pointer to it (stream user data, data provider), possibly for longer
 *                than the call lives (a cancelled request still queued inside nghttp2), so a
 *                call never hands nghttp2 a pointer to itself: it detaches by clearing
 *                |cs->call| and the cstream is freed when nghttp2 is done with the stream.
 *   call         one RPC across all its attempts.  Each attempt gets a fresh response arena.
 *
 * Reentrancy rules (STYLE §5, §4):
 *
 *   - User callbacks run only from a call's |work_ev| (a libevent event of its own), never
 *     from inside nghttp2 callbacks and never from inside fsr_channel_unary().  nghttp2
 *     callbacks only record state and activate |work_ev|.
 *   - A conn is only destroyed from libevent callbacks or from the call paths that do not run
 *     inside nghttp2 (conn_fail), never while nghttp2_session_mem_recv/send is on the stack.
 *   - fsr_channel_free() may run from a user callback: a call whose callback is on the stack
 *     is only detached (|ch| cleared), and the delivery code frees it once the callback
 *     returns.
 */
#include "fsr/client.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <nghttp2/nghttp2.h>

#include "fsr/grpc_frame.h"
#include "fsr/mem.h"
#include "fsr/server.h"

#define USER_AGENT              "grpc-c-fsr/0.1.0"
#define DEFAULT_CONNECT_MS      2000
#define DEFAULT_MAX_ATTEMPTS    3
#define DEFAULT_BACKOFF_MS      50
#define MAX_BACKOFF_MS          10000
#define STREAM_WINDOW           (1 << 20)   /* per-stream receive window */
#define CONN_WINDOW             (16 << 20)  /* connection receive window */
#define OUTBUF_HIGH             (256 << 10) /* stop producing frames above this much unsent */
#define MAX_TRANSPARENT_RETRIES 1

/* ---- intrusive list ----------------------------------------------------------------- */

typedef struct dlink {
    struct dlink *prev, *next;
} dlink;

static void list_init(dlink *h)
{
    h->prev = h->next = h;
}

static int list_empty(const dlink *h)
{
    return h->next == h;
}

static void list_add_tail(dlink *h, dlink *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

/* Unlinking an unlinked (zeroed) node is a no-op, which keeps teardown paths simple. */
static void list_del(dlink *n)
{
    if (n->next == NULL)
        return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

/* ---- types -------------------------------------------------------------------------- */

typedef struct call call;
typedef struct conn conn;

enum conn_state {
    CONN_RESOLVING,
    CONN_CONNECTING,
    CONN_READY,
    CONN_DRAINING, /* GOAWAY received: finishes its streams, takes no new ones */
};

struct conn {
    fsr_channel *ch;
    dlink ch_link;
    enum conn_state state;
    struct evdns_getaddrinfo_request *dns_req;
    struct evutil_addrinfo *addrs, *next_addr;
    evutil_socket_t fd; /* while connecting; the bufferevent owns it afterwards */
    int last_errno;
    struct event *start_ev;   /* starts resolution outside the caller's stack */
    struct event *connect_ev; /* EV_WRITE while a nonblocking connect is in flight */
    struct event *timer;      /* connect timeout */
    struct bufferevent *bev;
    nghttp2_session *session;
    dlink waiting; /* calls waiting for READY */
    dlink streams; /* cstreams */
};

typedef struct cstream {
    dlink node;
    conn *conn;
    call *call; /* NULL once the call moved on (deadline, failure, retry) */
    int32_t id;
    size_t req_off;
} cstream;

struct fsr_channel {
    fsr_loop *loop;
    struct event_base *base;
    struct evdns_base *dns;
    char *target; /* :authority */
    char *host;
    char *port;
    uint32_t connect_timeout_ms;
    size_t max_message_size;
    int max_attempts;
    uint32_t backoff_base_ms;
    uint64_t rng;
    conn *conn;  /* where new calls go */
    dlink conns; /* every live conn, including draining ones */
    dlink calls; /* every call not yet freed */
    int closing; /* fsr_channel_free() is running */
};

enum call_state {
    CALL_START,   /* |work_ev| will start an attempt (first one, or after backoff) */
    CALL_WAITING, /* on a conn's waiting list */
    CALL_ACTIVE,  /* has a cstream */
    CALL_DONE,    /* final status set; |work_ev| delivers it */
};

typedef struct pending_msg {
    struct pending_msg *next;
    fsr_arena arena;
    ProtobufCMessage *msg;
} pending_msg;

typedef struct md_vec {
    fsr_md *v;
    size_t n, cap;
} md_vec;

struct call {
    fsr_channel *ch; /* NULL once the channel is gone (see fsr_channel_free) */
    dlink ch_link;
    dlink wait_link;
    conn *wait_conn;
    cstream *cs;
    enum call_state state;

    /* What to send, kept for retries. */
    fsr_arena req_arena; /* path, request headers */
    char *path;
    nghttp2_nv *custom; /* custom metadata and x-request-id, ready for nghttp2 */
    size_t n_custom;
    uint8_t *req; /* prefix + serialized request (heap: may be megabytes) */
    size_t req_len;
    const ProtobufCMessageDescriptor *resp_desc;
    int64_t deadline; /* fsr_now_us() clock; INT64_MAX if none */
    bool idempotent;
    bool streaming;
    int attempts;
    int transparent_retries;

    fsr_unary_cb on_done;
    fsr_stream_msg_cb on_msg;
    void *arg;
    struct event *deadline_ev;
    struct event *work_ev;

    /* The current attempt's response; reset before a retry. */
    fsr_arena arena;
    int http_status;
    bool headers_seen; /* the response HEADERS block (not 1xx) arrived */
    bool trailers_seen;
    bool bad_content_type;
    md_vec headers, trailers;
    bool have_grpc_status;
    int grpc_status;
    const char *grpc_message;
    const uint8_t *details;
    size_t details_len;
    uint8_t prefix[FSR_GRPC_PREFIX_LEN];
    size_t prefix_have;
    bool in_msg;
    uint32_t msg_len;
    uint8_t *msg_buf; /* heap, only for messages split across DATA frames */
    size_t msg_have;
    ProtobufCMessage *response;
    int n_msgs;
    pending_msg *q_head, *q_tail; /* server-streaming messages not yet delivered */

    /* The outcome. */
    fsr_code code;
    const char *message;
    bool in_cb;   /* a user callback of this call is on the stack */
    bool cb_done; /* the final callback ran (or is running) */
};

static void call_start_attempt(call *c);
static void call_attempt_end(call *c, fsr_code code, const char *msg, bool transparent);
static void call_finish(call *c, fsr_code code, const char *msg);
static void call_free(call *c);
static void conn_fail(conn *cn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_destroy(conn *cn);
static int conn_flush(conn *cn);
static void conn_submit(conn *cn, call *c);
static void on_connect_writable(evutil_socket_t fd, short what, void *arg);

/* ---- small helpers ------------------------------------------------------------------ */

static struct timeval tv_from_us(int64_t us)
{
    if (us < 0)
        us = 0;
    struct timeval tv = { .tv_sec = us / 1000000, .tv_usec = us % 1000000 };
    return tv;
}

/* xorshift64*: jitter needs no quality, only independence between channels. */
static uint64_t rng_next(fsr_channel *ch)
{
    uint64_t x = ch->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ch->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void md_push(fsr_arena *a, md_vec *v, const char *key, const char *value, size_t len)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        fsr_md *nv = fsr_arena_alloc(a, cap * sizeof(*nv));
        if (v->n > 0)
            memcpy(nv, v->v, v->n * sizeof(*nv));
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = (fsr_md){ .key = key, .value = value, .value_len = len };
}

/*
 * HTTP status → gRPC code for responses without grpc-status (doc/http-grpc-status-mapping.md
 * in the gRPC repository).
 */
static fsr_code code_from_http(int status)
{
    switch (status) {
    case 400:
        return FSR_INTERNAL;
    case 401:
        return FSR_UNAUTHENTICATED;
    case 403:
        return FSR_PERMISSION_DENIED;
    case 404:
        return FSR_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return FSR_UNAVAILABLE;
    default:
        return FSR_UNKNOWN;
    }
}

/* RST_STREAM error code → gRPC code (PROTOCOL-HTTP2.md, "Errors"). */
static fsr_code code_from_h2_error(uint32_t err)
{
    switch (err) {
    case NGHTTP2_REFUSED_STREAM:
        return FSR_UNAVAILABLE;
    case NGHTTP2_CANCEL:
        return FSR_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        return FSR_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
        return FSR_PERMISSION_DENIED;
    default:
        return FSR_INTERNAL;
    }
}

/* ---- the call: attempt state -------------------------------------------------------- */

static void pending_free(pending_msg *pm)
{
    fsr_arena_dispose(&pm->arena);
    free(pm);
}

/* Forget everything the current attempt received. */
static void call_reset_attempt(call *c)
{
    fsr_arena_dispose(&c->arena);
    free(c->msg_buf);
    c->msg_buf = NULL;
    c->http_status = 0;
    c->headers_seen = c->trailers_seen = c->bad_content_type = false;
    memset(&c->headers, 0, sizeof(c->headers));
    memset(&c->trailers, 0, sizeof(c->trailers));
    c->have_grpc_status = false;
    c->grpc_status = 0;
    c->grpc_message = NULL;
    c->details = NULL;
    c->details_len = 0;
    c->prefix_have = 0;
    c->in_msg = false;
    c->msg_len = 0;
    c->msg_have = 0;
    c->response = NULL;
    c->n_msgs = 0;
    /* Queued stream messages are never dropped: an attempt that produced any is final. */
}

/* Unhooks the call from its conn: stream (nghttp2 keeps the cstream) or waiting list. */
static void call_detach(call *c)
{
    if (c->cs != NULL) {
        c->cs->call = NULL;
        c->cs = NULL;
    }
    list_del(&c->wait_link);
    c->wait_conn = NULL;
}

static void work_schedule(call *c)
{
    event_del(c->work_ev);
    event_active(c->work_ev, 0, 0);
}

static void call_finish(call *c, fsr_code code, const char *msg)
{
    if (c->state == CALL_DONE)
        return;
    call_detach(c);
    free(c->msg_buf);
    c->msg_buf = NULL;
    c->state = CALL_DONE;
    c->code = code;
    c->message = fsr_arena_strdup(&c->arena, msg != NULL ? msg : "");
    if (code != FSR_OK)
        c->response = NULL;
    event_del(c->deadline_ev);
    work_schedule(c);
}

/*
 * Ends the current attempt.  UNAVAILABLE may be retried: transparently (once, whatever the
 * method) when the server provably never saw the request (REFUSED_STREAM, above a GOAWAY's
 * last stream id), or with full-jitter exponential backoff when the method is idempotent.
 * A retry never starts after the deadline, and never once stream messages were received.
 */
static void call_attempt_end(call *c, fsr_code code, const char *msg, bool transparent)
{
    if (c->state == CALL_DONE)
        return;
    call_detach(c);
    fsr_channel *ch = c->ch;
    /* A unary response is discarded with the attempt; stream messages may be delivered. */
    bool delivered = c->streaming && (c->n_msgs > 0 || c->q_head != NULL);
    if (code == FSR_UNAVAILABLE && !delivered && ch != NULL && !ch->closing) {
        int64_t delay_us = -1;
        if (transparent && c->transparent_retries < MAX_TRANSPARENT_RETRIES) {
            c->transparent_retries++;
            delay_us = 0;
        } else if (c->idempotent && c->attempts - c->transparent_retries < ch->max_attempts) {
            int shift = c->attempts - c->transparent_retries - 1;
            uint64_t cap_ms = (uint64_t)ch->backoff_base_ms << (shift < 20 ? shift : 20);
            if (cap_ms > MAX_BACKOFF_MS)
                cap_ms = MAX_BACKOFF_MS;
            delay_us = (int64_t)(rng_next(ch) % (cap_ms * 1000 + 1));
        }
        if (delay_us >= 0 && (c->deadline == INT64_MAX || fsr_now_us() + delay_us < c->deadline)) {
            call_reset_attempt(c);
            c->state = CALL_START;
            struct timeval tv = tv_from_us(delay_us);
            event_del(c->work_ev);
            event_add(c->work_ev, &tv);
            return;
        }
    }
    call_finish(c, code, msg);
}

/* Deadline timer: cancel the stream on the wire and report DEADLINE_EXCEEDED. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    call *c = arg;
    (void)fd;
    (void)what;
    if (c->state == CALL_DONE)
        return;
    conn *cn = NULL;
    if (c->cs != NULL && c->cs->conn->session != NULL) {
        cn = c->cs->conn;
        /* Queued HEADERS are cancelled by nghttp2 itself; sent ones get RST_STREAM(CANCEL). */
        nghttp2_submit_rst_stream(cn->session, NGHTTP2_FLAG_NONE, c->cs->id, NGHTTP2_CANCEL);
    }
    call_finish(c, FSR_DEADLINE_EXCEEDED, "Deadline Exceeded");
    if (cn != NULL && conn_flush(cn) != 0)
        conn_fail(cn, "HTTP/2 session error");
}

/* ---- the call: delivery ------------------------------------------------------------- */

static void call_deliver_final(call *c)
{
    c->cb_done = true;
    fsr_result res = {
        .status = { .code = c->code, .message = c->message, .field = NULL },
        .response = c->code == FSR_OK ? c->response : NULL,
        .headers = c->headers.v,
        .n_headers = c->headers.n,
        .trailers = c->trailers.v,
        .n_trailers = c->trailers.n,
        .status_details = c->details,
        .status_details_len = c->details_len,
    };
    c->in_cb = true;
    c->on_done(&res, c->arg);
    c->in_cb = false;
}

/*
 * |work_ev|: starts an attempt, or hands queued stream messages and then the final status to
 * the user.  This is the only place user callbacks run (besides fsr_channel_free).
 */
static void on_call_work(evutil_socket_t fd, short what, void *arg)
{
    call *c = arg;
    (void)fd;
    (void)what;
    if (c->state == CALL_START) {
        call_start_attempt(c);
        return;
    }
    while (c->q_head != NULL && !c->cb_done) {
        pending_msg *pm = c->q_head;
        c->q_head = pm->next;
        if (c->q_head == NULL)
            c->q_tail = NULL;
        c->in_cb = true;
        c->on_msg(pm->msg, c->arg);
        c->in_cb = false;
        pending_free(pm);
        if (c->ch == NULL) {
            /* The channel was freed from on_msg; on_done already ran with CANCELLED. */
            call_free(c);
            return;
        }
    }
    if (c->state == CALL_DONE && !c->cb_done) {
        call_deliver_final(c);
        call_free(c);
    }
}

static void call_free(call *c)
{
    if (c->ch != NULL)
        list_del(&c->ch_link);
    call_detach(c);
    while (c->q_head != NULL) {
        pending_msg *pm = c->q_head;
        c->q_head = pm->next;
        pending_free(pm);
    }
    event_free(c->deadline_ev);
    event_free(c->work_ev);
    fsr_arena_dispose(&c->arena);
    fsr_arena_dispose(&c->req_arena);
    free(c->msg_buf);
    free(c->req);
    free(c);
}

/* ---- the call: response parsing ----------------------------------------------------- */

/* Records the failure of an attempt detected while receiving, and resets the stream. */
static void call_stream_error(call *c, fsr_code code, const char *msg)
{
    cstream *cs = c->cs;
    if (cs != NULL)
        nghttp2_submit_rst_stream(cs->conn->session, NGHTTP2_FLAG_NONE, cs->id, NGHTTP2_CANCEL);
    call_attempt_end(c, code, msg, false);
}

/* One complete message.  Returns 0, or -1 after failing the call. */
static int call_on_message(call *c, const uint8_t *data, size_t len)
{
    if (!c->streaming) {
        if (c->n_msgs > 0) {
            call_stream_error(c, FSR_INTERNAL, "more than one response message for a unary call");
            return -1;
        }
        c->response =
            protobuf_c_message_unpack(c->resp_desc, fsr_arena_pb_allocator(&c->arena), len, data);
        if (c->response == NULL) {
            call_stream_error(c, FSR_INTERNAL, "failed to parse the response message");
            return -1;
        }
        c->n_msgs++;
        return 0;
    }
    /* Each stream message gets its own arena, freed right after on_msg returns. */
    pending_msg *pm = fsr_xcalloc(1, sizeof(*pm));
    fsr_arena_init(&pm->arena);
    pm->msg =
        protobuf_c_message_unpack(c->resp_desc, fsr_arena_pb_allocator(&pm->arena), len, data);
    if (pm->msg == NULL) {
        pending_free(pm);
        call_stream_error(c, FSR_INTERNAL, "failed to parse a response message");
        return -1;
    }
    if (c->q_tail != NULL)
        c->q_tail->next = pm;
    else
        c->q_head = pm;
    c->q_tail = pm;
    c->n_msgs++;
    event_active(c->work_ev, 0, 0);
    return 0;
}

/* Splits DATA into length-prefixed messages (PROTOCOL-HTTP2.md, Length-Prefixed-Message). */
static void call_on_data(call *c, const uint8_t *data, size_t len)
{
    size_t max = c->ch->max_message_size;
    while (len > 0 && c->state == CALL_ACTIVE) {
        if (!c->in_msg) {
            size_t n = FSR_GRPC_PREFIX_LEN - c->prefix_have;
            if (n > len)
                n = len;
            memcpy(c->prefix + c->prefix_have, data, n);
            c->prefix_have += n;
            data += n;
            len -= n;
            if (c->prefix_have < FSR_GRPC_PREFIX_LEN)
                return;
            int compressed;
            if (fsr_grpc_prefix_parse(c->prefix, &compressed, &c->msg_len) != 0) {
                call_stream_error(c, FSR_INTERNAL, "invalid gRPC message prefix");
                return;
            }
            if (compressed) {
                /* We never send grpc-accept-encoding, so the server must not compress. */
                call_stream_error(c, FSR_INTERNAL,
                                  "compressed message received but no grpc-encoding negotiated");
                return;
            }
            if (c->msg_len > max) {
                char buf[128];
                snprintf(buf, sizeof(buf), "received message larger than max (%u vs. %zu)",
                         c->msg_len, max);
                call_stream_error(c, FSR_RESOURCE_EXHAUSTED, buf);
                return;
            }
            c->in_msg = true;
            c->msg_have = 0;
            c->prefix_have = 0;
            if (len >= c->msg_len) {
                /* The whole message is in this chunk: decode in place, no copy. */
                const uint8_t *m = data;
                data += c->msg_len;
                len -= c->msg_len;
                c->in_msg = false;
                if (call_on_message(c, m, c->msg_len) != 0)
                    return;
                continue;
            }
            c->msg_buf = fsr_xmalloc(c->msg_len); /* size checked against max above */
        }
        size_t n = c->msg_len - c->msg_have;
        if (n > len)
            n = len;
        memcpy(c->msg_buf + c->msg_have, data, n);
        c->msg_have += n;
        data += n;
        len -= n;
        if (c->msg_have == c->msg_len) {
            uint8_t *buf = c->msg_buf;
            c->msg_buf = NULL;
            c->in_msg = false;
            int rv = call_on_message(c, buf, c->msg_len);
            free(buf);
            if (rv != 0)
                return;
        }
    }
}

/*
 * The response ended (END_STREAM received, |error_code| NO_ERROR) or the stream closed without
 * one (reset): work out the attempt's status from what arrived.
 */
static void call_on_close(call *c, uint32_t error_code)
{
    if (error_code != NGHTTP2_NO_ERROR) {
        char buf[96];
        snprintf(buf, sizeof(buf), "stream reset with HTTP/2 error %s (%u)",
                 nghttp2_http2_strerror(error_code), error_code);
        call_attempt_end(c, code_from_h2_error(error_code), buf,
                         error_code == NGHTTP2_REFUSED_STREAM);
        return;
    }
    if (!c->trailers_seen) {
        call_attempt_end(c, FSR_INTERNAL, "server closed the stream without sending trailers",
                         false);
        return;
    }
    fsr_code code;
    const char *msg;
    if (c->have_grpc_status) {
        /* grpc-status wins over everything else when present (http-grpc-status-mapping). */
        code = (unsigned)c->grpc_status < FSR_CODE_COUNT ? (fsr_code)c->grpc_status : FSR_UNKNOWN;
        msg = c->grpc_message != NULL ? c->grpc_message : "";
    } else if (c->http_status != 200) {
        code = code_from_http(c->http_status);
        msg = fsr_arena_printf(&c->arena, "unexpected HTTP status code %d", c->http_status);
    } else {
        code = FSR_UNKNOWN;
        msg = "missing grpc-status in trailers";
    }
    if (code == FSR_OK) {
        if (c->in_msg || c->prefix_have > 0) {
            code = FSR_INTERNAL;
            msg = "stream ended inside a message";
        } else if (!c->streaming && c->n_msgs == 0) {
            code = FSR_INTERNAL;
            msg = "no response message for a unary call";
        }
    }
    call_attempt_end(c, code, msg, false);
}

/* ---- nghttp2 callbacks -------------------------------------------------------------- */

static call *stream_call(nghttp2_session *session, int32_t stream_id)
{
    cstream *cs = nghttp2_session_get_stream_user_data(session, stream_id);
    return cs != NULL ? cs->call : NULL;
}

static ssize_t on_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                       void *user_data)
{
    conn *cn = user_data;
    (void)session;
    (void)flags;
    struct evbuffer *out = bufferevent_get_output(cn->bev);
    /* Backpressure: the write callback resumes nghttp2_session_send once this drains. */
    if (evbuffer_get_length(out) >= OUTBUF_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (evbuffer_add(out, data, length) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)length;
}

static ssize_t on_req_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                           uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    cstream *cs = source->ptr;
    (void)session;
    (void)stream_id;
    (void)user_data;
    call *c = cs->call;
    if (c == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets a stream nobody wants */
    size_t n = c->req_len - cs->req_off;
    if (n > length)
        n = length;
    memcpy(buf, c->req + cs->req_off, n);
    cs->req_off += n;
    if (cs->req_off == c->req_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    call *c = stream_call(session, frame->hd.stream_id);
    if (c != NULL && frame->hd.type == NGHTTP2_HEADERS && c->headers_seen)
        c->trailers_seen = true; /* a second block is the trailers */
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    call *c = stream_call(session, frame->hd.stream_id);
    if (c == NULL || c->state != CALL_ACTIVE)
        return 0;
    const char *k = (const char *)name, *v = (const char *)value;
    /* A block that ends the stream carries trailers, including a trailers-only response. */
    bool trailers = c->trailers_seen || (frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
    if (trailers)
        c->trailers_seen = true;

    if (k[0] == ':') {
        if (namelen == 7 && memcmp(k, ":status", 7) == 0)
            c->http_status = atoi(v);
        return 0;
    }
    if (namelen == 12 && memcmp(k, "content-type", 12) == 0) {
        /* "application/grpc" optionally followed by "+proto", ";..." etc. */
        c->bad_content_type = !(valuelen >= 16 && memcmp(v, "application/grpc", 16) == 0 &&
                                (valuelen == 16 || v[16] == '+' || v[16] == ';'));
        return 0;
    }
    if (namelen == 11 && memcmp(k, "grpc-status", 11) == 0) {
        int code = 0;
        bool ok = valuelen > 0 && valuelen <= 3;
        for (size_t i = 0; ok && i < valuelen; i++) {
            ok = v[i] >= '0' && v[i] <= '9';
            code = code * 10 + (v[i] - '0');
        }
        c->have_grpc_status = true;
        c->grpc_status = ok ? code : FSR_UNKNOWN;
        return 0;
    }
    if (namelen == 12 && memcmp(k, "grpc-message", 12) == 0) {
        char *m = fsr_arena_alloc(&c->arena, valuelen + 1);
        fsr_percent_decode(v, valuelen, m, valuelen + 1);
        c->grpc_message = m;
        return 0;
    }
    if (namelen == 23 && memcmp(k, "grpc-status-details-bin", 23) == 0) {
        uint8_t *d = fsr_arena_alloc(&c->arena, valuelen + 1);
        size_t n = fsr_base64_decode(v, valuelen, d, valuelen + 1);
        if (n != (size_t)-1) {
            c->details = d;
            c->details_len = n;
        }
        return 0;
    }
    if (namelen >= 5 && memcmp(k, "grpc-", 5) == 0)
        return 0; /* grpc-encoding, grpc-accept-encoding...: transport business */

    const char *key = fsr_arena_strndup(&c->arena, k, namelen);
    const char *val;
    size_t len = valuelen;
    if (fsr_md_is_binary(key)) {
        uint8_t *d = fsr_arena_alloc(&c->arena, valuelen + 1);
        size_t n = fsr_base64_decode(v, valuelen, d, valuelen + 1);
        if (n == (size_t)-1)
            return 0; /* undecodable binary metadata is dropped, as grpc does */
        d[n] = '\0';
        val = (const char *)d;
        len = n;
    } else {
        val = fsr_arena_strndup(&c->arena, v, valuelen);
    }
    md_push(&c->arena, trailers ? &c->trailers : &c->headers, key, val, len);
    return 0;
}

static void conn_on_goaway(conn *cn)
{
    /*
     * nghttp2 itself closes our streams above last_stream_id with REFUSED_STREAM and fails
     * queued requests (on_frame_not_send); both come back here as transparent retries on a
     * fresh connection.  Streams at or below it may still complete.
     */
    cn->state = CONN_DRAINING;
    if (cn->ch->conn == cn)
        cn->ch->conn = NULL;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    conn *cn = user_data;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        evtimer_del(cn->timer); /* the HTTP/2 handshake is complete */
        return 0;
    }
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        conn_on_goaway(cn);
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    cstream *cs = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    call *c = cs != NULL ? cs->call : NULL;
    if (c == NULL || c->state != CALL_ACTIVE)
        return 0;
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        /*
         * The response is complete: judge it now rather than at stream close, so a server
         * that answers before reading the whole request (then resets the stream) is not
         * misread.  If we are still sending, stop politely, as grpc-go does.
         */
        if (!nghttp2_session_get_stream_local_close(session, cs->id))
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, cs->id, NGHTTP2_NO_ERROR);
        call_on_close(c, NGHTTP2_NO_ERROR);
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS || c->trailers_seen)
        return 0;
    if (c->http_status >= 100 && c->http_status < 200) {
        c->http_status = 0; /* informational: the real response follows */
        return 0;
    }
    c->headers_seen = true;
    /* A non-gRPC response (proxy error page...) carries no grpc-status: judge it now. */
    if (c->http_status != 200) {
        char buf[64];
        snprintf(buf, sizeof(buf), "unexpected HTTP status code %d", c->http_status);
        call_stream_error(c, code_from_http(c->http_status), buf);
    } else if (c->bad_content_type) {
        call_stream_error(c, FSR_UNKNOWN, "unexpected content-type in the response");
    }
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                              const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    call *c = stream_call(session, stream_id);
    if (c != NULL && c->state == CALL_ACTIVE)
        call_on_data(c, data, len);
    return 0;
}

static void cstream_free(cstream *cs)
{
    if (cs->call != NULL)
        cs->call->cs = NULL;
    list_del(&cs->node);
    free(cs);
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    (void)user_data;
    cstream *cs = nghttp2_session_get_stream_user_data(session, stream_id);
    if (cs == NULL)
        return 0;
    call *c = cs->call;
    cstream_free(cs);
    if (c != NULL && c->state == CALL_ACTIVE)
        call_on_close(c, error_code);
    return 0;
}

static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame,
                             int lib_error_code, void *user_data)
{
    conn *cn = user_data;
    (void)lib_error_code;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    /* The stream never opened (GOAWAY, or cancelled while queued): nghttp2 has no user data. */
    cstream *cs = NULL;
    for (dlink *l = cn->streams.next; l != &cn->streams; l = l->next) {
        cstream *s = FSR_CONTAINER_OF(l, cstream, node);
        if (s->id == frame->hd.stream_id) {
            cs = s;
            break;
        }
    }
    if (cs == NULL)
        return 0;
    call *c = cs->call;
    /* If nghttp2 did open the stream, on_stream_close will still come and free |cs|. */
    if (nghttp2_session_get_stream_user_data(session, frame->hd.stream_id) == NULL) {
        cstream_free(cs);
    } else if (c != NULL) {
        c->cs = NULL;
        cs->call = NULL;
    }
    if (c != NULL && c->state == CALL_ACTIVE)
        call_attempt_end(c, FSR_UNAVAILABLE, "the server did not accept the stream", true);
    return 0;
}

/* ---- the connection ----------------------------------------------------------------- */

static int conn_flush(conn *cn)
{
    if (cn->session == NULL)
        return 0;
    int rv = nghttp2_session_send(cn->session);
    return rv == 0 ? 0 : -1;
}

/* Frees |cn|.  Calls must already be off it: streams keep only detached cstreams. */
static void conn_destroy(conn *cn)
{
    list_del(&cn->ch_link);
    if (cn->ch != NULL && cn->ch->conn == cn)
        cn->ch->conn = NULL;
    if (cn->dns_req != NULL) {
        struct evdns_getaddrinfo_request *req = cn->dns_req;
        cn->dns_req = NULL;
        evdns_getaddrinfo_cancel(req); /* its callback sees EVUTIL_EAI_CANCEL and returns */
    }
    while (!list_empty(&cn->streams))
        cstream_free(FSR_CONTAINER_OF(cn->streams.next, cstream, node));
    if (cn->session != NULL)
        nghttp2_session_del(cn->session);
    if (cn->bev != NULL)
        bufferevent_free(cn->bev); /* closes the fd */
    else if (cn->fd >= 0)
        evutil_closesocket(cn->fd);
    if (cn->connect_ev != NULL)
        event_free(cn->connect_ev);
    event_free(cn->start_ev);
    event_free(cn->timer);
    if (cn->addrs != NULL)
        evutil_freeaddrinfo(cn->addrs);
    free(cn);
}

/*
 * The connection is unusable: every call on it fails this attempt with UNAVAILABLE (and
 * may retry on a new connection), then |cn| is freed.
 */
static void conn_fail(conn *cn, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (cn->ch->conn == cn)
        cn->ch->conn = NULL;
    while (!list_empty(&cn->waiting)) {
        call *c = FSR_CONTAINER_OF(cn->waiting.next, call, wait_link);
        call_attempt_end(c, FSR_UNAVAILABLE, msg, false);
    }
    for (dlink *l = cn->streams.next; l != &cn->streams;) {
        cstream *cs = FSR_CONTAINER_OF(l, cstream, node);
        l = l->next;
        call *c = cs->call;
        if (c != NULL && c->state == CALL_ACTIVE)
            call_attempt_end(c, FSR_UNAVAILABLE, msg, false);
    }
    conn_destroy(cn);
}

static int conn_live_streams(conn *cn)
{
    int n = 0;
    for (dlink *l = cn->streams.next; l != &cn->streams; l = l->next)
        n += FSR_CONTAINER_OF(l, cstream, node)->call != NULL;
    return n;
}

/* After I/O: close a session nghttp2 is done with, or a drained one nobody uses. */
static void conn_maybe_close(conn *cn)
{
    if (!nghttp2_session_want_read(cn->session) && !nghttp2_session_want_write(cn->session)) {
        conn_fail(cn, "connection closed");
        return;
    }
    if (cn->state == CONN_DRAINING && conn_live_streams(cn) == 0 &&
        evbuffer_get_length(bufferevent_get_output(cn->bev)) == 0)
        conn_destroy(cn);
}

static void on_conn_read(struct bufferevent *bev, void *arg)
{
    conn *cn = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len;
    while ((len = evbuffer_get_contiguous_space(in)) > 0) {
        const uint8_t *data = evbuffer_pullup(in, (ssize_t)len);
        ssize_t rv = nghttp2_session_mem_recv(cn->session, data, len);
        if (rv < 0) {
            conn_fail(cn, "HTTP/2 protocol error: %s", nghttp2_strerror((int)rv));
            return;
        }
        evbuffer_drain(in, (size_t)rv);
    }
    if (conn_flush(cn) != 0) {
        conn_fail(cn, "HTTP/2 session error");
        return;
    }
    conn_maybe_close(cn);
}

static void on_conn_write(struct bufferevent *bev, void *arg)
{
    conn *cn = arg;
    (void)bev;
    if (conn_flush(cn) != 0) {
        conn_fail(cn, "HTTP/2 session error");
        return;
    }
    conn_maybe_close(cn);
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    conn *cn = arg;
    (void)bev;
    if (what & BEV_EVENT_EOF)
        conn_fail(cn, "connection to %s closed by the server", cn->ch->target);
    else if (what & BEV_EVENT_ERROR)
        conn_fail(cn, "connection to %s failed: %s", cn->ch->target,
                  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static int conn_session_new(conn *cn)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -1;
    nghttp2_session_callbacks_set_send_callback(cbs, on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
    int rv = nghttp2_session_client_new(&cn->session, cbs, cn);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        cn->session = NULL;
        return -1;
    }
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
    };
    if (nghttp2_submit_settings(cn->session, NGHTTP2_FLAG_NONE, iv, FSR_ARRAY_SIZE(iv)) != 0)
        return -1;
    if (nghttp2_session_set_local_window_size(cn->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
        return -1;
    return 0;
}

static void conn_on_connected(conn *cn)
{
    fsr_channel *ch = cn->ch;
    /*
     * The connect timer keeps running until the server's SETTINGS arrive: a peer that
     * accepts TCP but never speaks HTTP/2 (wrong port, overloaded) is a failed connect.
     */
    if (cn->connect_ev != NULL) {
        event_free(cn->connect_ev);
        cn->connect_ev = NULL;
    }
    int one = 1;
    setsockopt(cn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    cn->bev = bufferevent_socket_new(ch->base, cn->fd, BEV_OPT_CLOSE_ON_FREE);
    if (cn->bev == NULL) {
        conn_fail(cn, "out of memory");
        return;
    }
    cn->fd = -1;
    bufferevent_setcb(cn->bev, on_conn_read, on_conn_write, on_conn_event, cn);
    bufferevent_enable(cn->bev, EV_READ | EV_WRITE);
    if (conn_session_new(cn) != 0) {
        conn_fail(cn, "cannot create an HTTP/2 session");
        return;
    }
    cn->state = CONN_READY;
    while (!list_empty(&cn->waiting)) {
        call *c = FSR_CONTAINER_OF(cn->waiting.next, call, wait_link);
        list_del(&c->wait_link);
        c->wait_conn = NULL;
        conn_submit(cn, c);
    }
    if (conn_flush(cn) != 0)
        conn_fail(cn, "HTTP/2 session error");
}

/* Tries the resolved addresses in order until one accepts (e.g. ::1 then 127.0.0.1). */
static void conn_try_next(conn *cn)
{
    while (cn->next_addr != NULL) {
        struct evutil_addrinfo *ai = cn->next_addr;
        cn->next_addr = ai->ai_next;
        evutil_socket_t fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            cn->last_errno = errno;
            continue;
        }
        cn->fd = fd;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            conn_on_connected(cn);
            return;
        }
        if (errno == EINPROGRESS) {
            if (cn->connect_ev != NULL)
                event_free(cn->connect_ev);
            cn->connect_ev = event_new(cn->ch->base, fd, EV_WRITE, on_connect_writable, cn);
            event_add(cn->connect_ev, NULL);
            return;
        }
        cn->last_errno = errno;
        evutil_closesocket(fd);
        cn->fd = -1;
    }
    conn_fail(cn, "failed to connect to %s: %s", cn->ch->target,
              strerror(cn->last_errno ? cn->last_errno : ECONNREFUSED));
}

static void on_connect_writable(evutil_socket_t fd, short what, void *arg)
{
    conn *cn = arg;
    (void)what;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == 0) {
        conn_on_connected(cn);
        return;
    }
    cn->last_errno = err;
    event_free(cn->connect_ev);
    cn->connect_ev = NULL;
    evutil_closesocket(cn->fd);
    cn->fd = -1;
    conn_try_next(cn);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    if (result == EVUTIL_EAI_CANCEL)
        return; /* conn_destroy() is cancelling: |arg| is going away */
    conn *cn = arg;
    cn->dns_req = NULL;
    if (result != 0) {
        conn_fail(cn, "cannot resolve %s: %s", cn->ch->host, evutil_gai_strerror(result));
        return;
    }
    cn->addrs = res;
    cn->next_addr = res;
    cn->state = CONN_CONNECTING;
    conn_try_next(cn);
}

static void on_conn_start(evutil_socket_t fd, short what, void *arg)
{
    conn *cn = arg;
    fsr_channel *ch = cn->ch;
    (void)fd;
    (void)what;
    if (ch->dns == NULL) {
        ch->dns = evdns_base_new(ch->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                               EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (ch->dns == NULL)
            ch->dns = evdns_base_new(ch->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (ch->dns == NULL) {
            conn_fail(cn, "cannot set up DNS resolution");
            return;
        }
    }
    struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC,
                                     .ai_socktype = SOCK_STREAM,
                                     .ai_protocol = IPPROTO_TCP };
    /*
     * The callback may run before this returns (numeric hosts, /etc/hosts) and may free
     * |cn|; a non-NULL request means it did not.
     */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(ch->dns, ch->host, ch->port, &hints, on_resolved, cn);
    if (req != NULL)
        cn->dns_req = req;
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    conn *cn = arg;
    (void)fd;
    (void)what;
    if (cn->state == CONN_RESOLVING || cn->state == CONN_CONNECTING)
        conn_fail(cn, "timed out connecting to %s", cn->ch->target);
    else
        conn_fail(cn, "no HTTP/2 settings from %s within the connect timeout", cn->ch->target);
}

static conn *conn_new(fsr_channel *ch)
{
    conn *cn = fsr_xcalloc(1, sizeof(*cn));
    cn->ch = ch;
    cn->fd = -1;
    cn->state = CONN_RESOLVING;
    list_init(&cn->waiting);
    list_init(&cn->streams);
    list_add_tail(&ch->conns, &cn->ch_link);
    cn->start_ev = event_new(ch->base, -1, 0, on_conn_start, cn);
    cn->timer = evtimer_new(ch->base, on_connect_timeout, cn);
    struct timeval tv = tv_from_us((int64_t)ch->connect_timeout_ms * 1000);
    evtimer_add(cn->timer, &tv);
    event_active(cn->start_ev, 0, 0);
    return cn;
}

/* Opens the call's stream on a READY conn.  The caller flushes. */
static void conn_submit(conn *cn, call *c)
{
    fsr_channel *ch = cn->ch;
    int64_t remaining = 0;
    if (c->deadline != INT64_MAX) {
        remaining = c->deadline - fsr_now_us();
        if (remaining <= 0) {
            call_finish(c, FSR_DEADLINE_EXCEEDED, "Deadline Exceeded");
            return;
        }
    }
    char timeout[10];
    size_t timeout_len = c->deadline != INT64_MAX ? fsr_grpc_timeout_format(remaining, timeout) : 0;

#define NV(n, v, vl)                                                                               \
    (nghttp2_nv){ (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE }
    size_t nmax = 8 + c->n_custom;
    nghttp2_nv *nva = fsr_xmalloc(nmax * sizeof(*nva));
    size_t n = 0;
    nva[n++] = NV(":method", "POST", 4);
    nva[n++] = NV(":scheme", "http", 4);
    nva[n++] = NV(":path", c->path, strlen(c->path));
    nva[n++] = NV(":authority", ch->target, strlen(ch->target));
    nva[n++] = NV("content-type", "application/grpc", 16);
    nva[n++] = NV("te", "trailers", 8);
    nva[n++] = NV("user-agent", USER_AGENT, sizeof(USER_AGENT) - 1);
    if (timeout_len > 0)
        nva[n++] = NV("grpc-timeout", timeout, timeout_len);
#undef NV
    memcpy(nva + n, c->custom, c->n_custom * sizeof(*nva));
    n += c->n_custom;

    cstream *cs = fsr_xcalloc(1, sizeof(*cs));
    cs->conn = cn;
    cs->call = c;
    nghttp2_data_provider prd = { .source.ptr = cs, .read_callback = on_req_read };
    int32_t id = nghttp2_submit_request(cn->session, NULL, nva, n, &prd, cs);
    free(nva); /* nghttp2 copied it */
    if (id < 0) {
        /* Out of stream ids, or the session is going away: use a new connection. */
        free(cs);
        if (ch->conn == cn)
            ch->conn = NULL;
        cn->state = CONN_DRAINING;
        call_attempt_end(c, FSR_UNAVAILABLE, "cannot open a stream on the connection", true);
        return;
    }
    cs->id = id;
    list_add_tail(&cn->streams, &cs->node);
    c->cs = cs;
    c->state = CALL_ACTIVE;
}

/* ---- the call: starting ------------------------------------------------------------- */

static void call_start_attempt(call *c)
{
    fsr_channel *ch = c->ch;
    c->attempts++;
    if (c->deadline != INT64_MAX && fsr_now_us() >= c->deadline) {
        call_finish(c, FSR_DEADLINE_EXCEEDED, "Deadline Exceeded");
        return;
    }
    conn *cn = ch->conn;
    if (cn == NULL)
        cn = ch->conn = conn_new(ch);
    if (cn->state != CONN_READY) {
        c->state = CALL_WAITING;
        c->wait_conn = cn;
        list_add_tail(&cn->waiting, &c->wait_link);
        return;
    }
    conn_submit(cn, c);
    if (conn_flush(cn) != 0)
        conn_fail(cn, "HTTP/2 session error");
}

/* Copies |opts|' metadata (and the parent's request id) into nghttp2 headers. */
static void call_build_metadata(call *c, const fsr_call_opts *opts)
{
    size_t n_md = opts != NULL ? opts->n_metadata : 0;
    c->custom = fsr_arena_alloc(&c->req_arena, (n_md + 1) * sizeof(nghttp2_nv));
    bool have_request_id = false;
    for (size_t i = 0; i < n_md; i++) {
        const fsr_md *md = &opts->metadata[i];
        /* Keys the transport owns (or malformed ones) are skipped: they cannot be sent. */
        if (!fsr_md_key_is_custom(md->key))
            continue;
        char *value;
        size_t len;
        if (fsr_md_is_binary(md->key)) {
            len = fsr_base64_encode((const uint8_t *)md->value, md->value_len, NULL, 0);
            value = fsr_arena_alloc(&c->req_arena, len + 1);
            fsr_base64_encode((const uint8_t *)md->value, md->value_len, value, len + 1);
        } else {
            bool printable = true;
            for (size_t j = 0; j < md->value_len && printable; j++)
                printable = md->value[j] >= 0x20 && md->value[j] <= 0x7e;
            if (!printable)
                continue;
            value = fsr_arena_strndup(&c->req_arena, md->value, md->value_len);
            len = md->value_len;
        }
        if (strcmp(md->key, "x-request-id") == 0)
            have_request_id = true;
        c->custom[c->n_custom++] = (nghttp2_nv){
            .name = (uint8_t *)fsr_arena_strdup(&c->req_arena, md->key),
            .value = (uint8_t *)value,
            .namelen = strlen(md->key),
            .valuelen = len,
            .flags = NGHTTP2_NV_FLAG_NONE,
        };
    }
    if (!have_request_id && opts != NULL && opts->parent != NULL) {
        const char *rid = fsr_call_request_id(opts->parent);
        if (rid != NULL && rid[0] != '\0') {
            c->custom[c->n_custom++] = (nghttp2_nv){
                .name = (uint8_t *)"x-request-id",
                .value = (uint8_t *)fsr_arena_strdup(&c->req_arena, rid),
                .namelen = 12,
                .valuelen = strlen(rid),
                .flags = NGHTTP2_NV_FLAG_NONE,
            };
        }
    }
}

static int call_start(fsr_channel *ch, const char *path, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *resp_desc, const fsr_call_opts *opts,
                      bool streaming, fsr_stream_msg_cb on_msg, fsr_unary_cb on_done, void *arg)
{
    if (ch->closing)
        return FSR_E_CLOSED;
    size_t size = protobuf_c_message_get_packed_size(req);
    if (size > ch->max_message_size || size > UINT32_MAX)
        return FSR_E_TOO_LARGE;

    call *c = fsr_xcalloc(1, sizeof(*c));
    c->ch = ch;
    fsr_arena_init(&c->req_arena);
    fsr_arena_init(&c->arena);
    c->path = fsr_arena_strdup(&c->req_arena, path);
    c->req_len = FSR_GRPC_PREFIX_LEN + size;
    c->req = fsr_xmalloc(c->req_len);
    fsr_grpc_prefix_write(c->req, (uint32_t)size);
    protobuf_c_message_pack(req, c->req + FSR_GRPC_PREFIX_LEN);
    c->resp_desc = resp_desc;
    c->streaming = streaming;
    c->on_msg = on_msg;
    c->on_done = on_done;
    c->arg = arg;
    c->idempotent = opts != NULL && opts->idempotent;
    call_build_metadata(c, opts);

    /* The deadline: our own timeout, shrunk to what the parent call has left. */
    c->deadline = INT64_MAX;
    int64_t now = fsr_now_us();
    if (opts != NULL && opts->timeout_ms > 0 && opts->timeout_ms < INT64_MAX / 4000 - now / 1000)
        c->deadline = now + opts->timeout_ms * 1000; /* larger is "no deadline" in practice */
    if (opts != NULL && opts->parent != NULL) {
        int64_t pd = fsr_call_deadline(opts->parent);
        if (pd < c->deadline)
            c->deadline = pd;
    }

    c->deadline_ev = evtimer_new(ch->base, on_deadline, c);
    c->work_ev = event_new(ch->base, -1, 0, on_call_work, c);
    list_add_tail(&ch->calls, &c->ch_link);
    if (c->deadline != INT64_MAX) {
        struct timeval tv = tv_from_us(c->deadline - now);
        evtimer_add(c->deadline_ev, &tv);
    }
    /* Even the first attempt starts from the loop: nothing runs inside the caller. */
    c->state = CALL_START;
    event_active(c->work_ev, 0, 0);
    return 0;
}

/* ---- public API --------------------------------------------------------------------- */

int fsr_channel_new(fsr_loop *loop, const char *target, const fsr_channel_opts *opts,
                    fsr_channel **out)
{
    if (loop == NULL || target == NULL)
        return FSR_E_CONFIG;
    /* "host:port" or "[v6addr]:port"; the port is required. */
    const char *colon = strrchr(target, ':');
    if (colon == NULL || colon == target || colon[1] == '\0')
        return FSR_E_CONFIG;
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return FSR_E_CONFIG;
    }
    long port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535)
        return FSR_E_CONFIG;
    const char *host = target;
    size_t host_len = (size_t)(colon - target);
    if (target[0] == '[') {
        if (host_len < 3 || target[host_len - 1] != ']')
            return FSR_E_CONFIG;
        host++;
        host_len -= 2;
    } else if (memchr(target, ':', host_len) != NULL) {
        return FSR_E_CONFIG; /* bare IPv6 without brackets */
    }

    fsr_channel *ch = fsr_xcalloc(1, sizeof(*ch));
    ch->loop = loop;
    ch->base = fsr_loop_base(loop);
    ch->target = fsr_xstrdup(target);
    ch->host = fsr_xstrndup(host, host_len);
    ch->port = fsr_xstrdup(colon + 1);
    ch->connect_timeout_ms =
        opts != NULL && opts->connect_timeout_ms ? opts->connect_timeout_ms : DEFAULT_CONNECT_MS;
    ch->max_message_size =
        opts != NULL && opts->max_message_size ? opts->max_message_size : FSR_DEFAULT_MAX_MESSAGE;
    ch->max_attempts =
        opts != NULL && opts->max_attempts > 0 ? opts->max_attempts : DEFAULT_MAX_ATTEMPTS;
    ch->backoff_base_ms =
        opts != NULL && opts->backoff_base_ms ? opts->backoff_base_ms : DEFAULT_BACKOFF_MS;
    ch->rng = (uint64_t)fsr_now_us() ^ (uint64_t)(uintptr_t)ch ^ 0x9E3779B97F4A7C15ULL;
    if (ch->rng == 0)
        ch->rng = 1;
    list_init(&ch->conns);
    list_init(&ch->calls);
    *out = ch;
    return 0;
}

void fsr_channel_free(fsr_channel *ch)
{
    if (ch == NULL)
        return;
    ch->closing = 1;
    /* Pending calls first: each callback runs once, with CANCELLED. */
    while (!list_empty(&ch->calls)) {
        call *c = FSR_CONTAINER_OF(ch->calls.next, call, ch_link);
        list_del(&c->ch_link);
        call_detach(c);
        if (!c->cb_done) {
            event_del(c->work_ev);
            event_del(c->deadline_ev);
            c->state = CALL_DONE;
            c->code = FSR_CANCELLED;
            c->message = "channel closed";
            c->response = NULL;
            bool nested = c->in_cb; /* its on_msg is on the stack */
            call_deliver_final(c);
            c->in_cb = nested;
        }
        c->ch = NULL;
        if (!c->in_cb)
            call_free(c);
        /* else: the delivery code sees |ch| == NULL after the callback and frees it. */
    }
    while (!list_empty(&ch->conns)) {
        conn *cn = FSR_CONTAINER_OF(ch->conns.next, conn, ch_link);
        conn_destroy(cn);
    }
    if (ch->dns != NULL)
        evdns_base_free(ch->dns, 0);
    free(ch->target);
    free(ch->host);
    free(ch->port);
    free(ch);
}

int fsr_channel_unary(fsr_channel *ch, const char *path, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *resp_desc, const fsr_call_opts *opts,
                      fsr_unary_cb cb, void *arg)
{
    return call_start(ch, path, req, resp_desc, opts, false, NULL, cb, arg);
}

int fsr_channel_server_stream(fsr_channel *ch, const char *path, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc,
                              const fsr_call_opts *opts, fsr_stream_msg_cb on_msg,
                              fsr_unary_cb on_done, void *arg)
{
    return call_start(ch, path, req, resp_desc, opts, true, on_msg, on_done, arg);
}

typedef struct blocking {
    bool done;
    ProtobufCMessage *resp;
    fsr_status *status;
    char *buf;
    size_t buf_len;
} blocking;

static void on_blocking_done(const fsr_result *res, void *arg)
{
    blocking *b = arg;
    b->done = true;
    b->status->code = res->status.code;
    b->status->field = NULL;
    b->status->message = NULL;
    if (b->buf != NULL && b->buf_len > 0) {
        snprintf(b->buf, b->buf_len, "%s", res->status.message ? res->status.message : "");
        b->status->message = b->buf;
    }
    if (res->status.code == FSR_OK && res->response != NULL) {
        /* The arena copy dies with the call: re-decode with the default allocator. */
        size_t n = protobuf_c_message_get_packed_size(res->response);
        uint8_t *tmp = fsr_xmalloc(n);
        protobuf_c_message_pack(res->response, tmp);
        b->resp = protobuf_c_message_unpack(res->response->descriptor, NULL, n, tmp);
        free(tmp);
    }
}

int fsr_channel_unary_blocking(fsr_channel *ch, const char *path, const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc,
                               const fsr_call_opts *opts, ProtobufCMessage **resp,
                               fsr_status *status, char *status_buf, size_t status_buf_len)
{
    blocking b = { .status = status, .buf = status_buf, .buf_len = status_buf_len };
    int rv = fsr_channel_unary(ch, path, req, resp_desc, opts, on_blocking_done, &b);
    if (rv != 0)
        return rv;
    while (!b.done) {
        /* The call always has an event pending (work, timer or socket), so this blocks. */
        if (event_base_loop(ch->base, EVLOOP_ONCE) < 0)
            abort(); /* libevent itself failed: the call's memory is still referenced */
    }
    if (resp != NULL)
        *resp = b.resp;
    else if (b.resp != NULL)
        protobuf_c_message_free_unpacked(b.resp, NULL);
    return 0;
}
