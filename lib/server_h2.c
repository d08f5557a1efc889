/* SPDX-License-Identifier: MIT */
/*
 * Server connections: protocol detection, HTTP/2 with nghttp2 and the gRPC call.
 *
 * A connection starts in the detecting state: the first bytes are peeked (MSG_PEEK) and if
 * they are the HTTP/2 client preface the socket becomes an nghttp2 session; otherwise it is
 * handed, bytes still unread, to the HTTP/1.1 side (server_h1.c).
 *
 * nghttp2 does no I/O.  On readable we feed bytes to nghttp2_session_mem_recv(); callbacks
 * build calls and dispatch handlers; then flush() pulls frames with nghttp2_session_mem_send()
 * into one buffer and writes it.  Replies that finish later (from a database callback)
 * activate the connection's flush event, so every reply finished in one loop iteration
 * leaves in one write.  nghttp2 forbids sending from inside its callbacks, which the
 * deferred flush also respects.
 *
 * A call lives until both its stream has closed and its handler has finished (if it was
 * dispatched): a handler may finish long after the client went away, and the connection
 * may be freed long before the handler finishes, so the two are decoupled by |conn| being
 * cleared when the stream ends.
 */
#include "server_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsr/grpc_frame.h"
#include "fsr/log.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

#define PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PREFACE_LEN 24
#define OUT_HIGH    (64 * 1024) /* stop pulling frames from nghttp2 above this much unsent */

typedef struct outmsg {
    struct outmsg *next;
    size_t len, off;
    uint8_t data[]; /* 5-byte prefix + message, or an HTTP body */
} outmsg;

struct srv_conn {
    srv_conn *prev, *next;
    srv_worker *w;
    int fd;
    struct event *rev, *wev, *timer, *flush_ev;
    nghttp2_session *session; /* NULL while detecting */
    struct sockaddr_storage sa;
    socklen_t salen;
    fsr_call *calls; /* open streams */
    int n_calls;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    bool in_recv; /* inside nghttp2_session_mem_recv: no sending, no freeing */
    bool closed;  /* close requested; freed at a safe point */
    bool goaway;  /* drain GOAWAY sent */
    int64_t last_active;
    double rst_tokens; /* stream resets the client may still send (rapid-reset budget) */
    int64_t rst_at_us; /* when rst_tokens was last refilled */
};

/*
 * Rapid reset (CVE-2023-44487): every HEADERS+RST_STREAM pair costs a dispatch (the gateway:
 * an upstream call) for nothing.  nghttp2's own limit (set below) only notices after the
 * rest of the read buffer has been parsed -- thousands of pairs in a 64 KiB read -- so the
 * runtime keeps its own token bucket and stops parsing at the first reset over budget.  A
 * real client cancels a few calls a second; 200 at once, then 33 a second, is generous.
 */
#define SRV_RST_BURST      200.0
#define SRV_RST_PER_SECOND 33.0

struct fsr_call {
    fsr_arena arena;
    srv_conn *conn; /* NULL once the stream closed or the connection went away */
    srv_worker *w;
    fsr_call *prev, *next;
    int32_t stream_id;
    const srv_method *m;

    /* request */
    const char *path, *method_hdr, *content_type, *grpc_timeout, *encoding;
    size_t path_len;
    fsr_md *md;
    size_t n_md, cap_md;
    size_t header_bytes;
    char request_id[72];
    int64_t start_us, deadline_us;
    struct event *deadline_ev;
    uint8_t *in;
    size_t in_len, in_cap;

    /* response */
    fsr_md *resp_hdrs, *trailers;
    size_t n_resp_hdrs, cap_resp_hdrs, n_trailers, cap_trailers;
    outmsg *oq_head, *oq_tail;
    fsr_code code;
    const char *message;
    const char *details_b64;
    int http_status; /* plain HTTP over h2 */

    void (*on_cancel)(fsr_call *, void *);
    void *on_cancel_arg;

    fsr_http_req *hreq; /* plain HTTP request over h2 */

    unsigned too_big : 1;      /* request over a size limit */
    unsigned hdr_too_big : 1;  /* header list over the limit */
    unsigned bad_header : 1;   /* malformed header value */
    unsigned is_http : 1;      /* not a gRPC request */
    unsigned dispatched : 1;   /* handler invoked */
    unsigned handler_done : 1; /* handler finished the call */
    unsigned status_sent : 1;  /* response submitted (trailers queued) */
    unsigned headers_sent : 1; /* response headers submitted */
    unsigned deferred : 1;     /* data provider returned DEFERRED */
    unsigned cancelled : 1;
    unsigned in_cancel_cb : 1; /* running on_cancel: the call may not be freed under it */
    unsigned closed : 1;       /* stream closed */
    unsigned recorded : 1;
    unsigned remote_closed : 1; /* the client sent END_STREAM */
    unsigned bad_ct : 1;        /* a gRPC path with a non-gRPC content-type: 415 */
    unsigned free_deferred : 1; /* call_free() is queued on the loop's deferred point */
};

static void conn_close(srv_conn *c);
static void conn_schedule_flush(srv_conn *c);
static void call_maybe_free(fsr_call *call);
static void call_send_status(fsr_call *call);

srv_worker *fsr__call_worker(fsr_call *call)
{
    return call->w;
}

/* ---- the call API -------------------------------------------------------------------- */

fsr_arena *fsr_call_arena(fsr_call *call)
{
    return &call->arena;
}

void *fsr_call_alloc(fsr_call *call, size_t n)
{
    return fsr_arena_calloc(&call->arena, n);
}

char *fsr_call_printf(fsr_call *call, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return fsr_arena_strdup(&call->arena, buf);
}

fsr_loop *fsr_call_loop(fsr_call *call)
{
    return call->w->loop;
}

void *fsr_call_ctx(fsr_call *call)
{
    return call->w->ctx;
}

const fsr_method *fsr_call_method(const fsr_call *call)
{
    return call->m != NULL ? call->m->row : NULL;
}

const char *fsr_call_path(const fsr_call *call)
{
    return call->path != NULL ? call->path : "";
}

const char *fsr_call_request_id(const fsr_call *call)
{
    return call->request_id;
}

const char *fsr_call_metadata(const fsr_call *call, const char *key, size_t *len)
{
    for (size_t i = 0; i < call->n_md; i++) {
        if (strcmp(call->md[i].key, key) == 0) {
            if (len != NULL)
                *len = call->md[i].value_len;
            return call->md[i].value;
        }
    }
    return NULL;
}

const fsr_md *fsr_call_metadata_all(const fsr_call *call, size_t *n)
{
    *n = call->n_md;
    return call->md;
}

static void md_push(fsr_arena *a, fsr_md **arr, size_t *n, size_t *cap, const char *k,
                    const char *v, size_t len)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        fsr_md *na = fsr_arena_alloc(a, ncap * sizeof(*na));
        if (*n)
            memcpy(na, *arr, *n * sizeof(*na));
        *arr = na;
        *cap = ncap;
    }
    fsr_md *e = &(*arr)[(*n)++];
    e->key = fsr_arena_strdup(a, k);
    char *vv = fsr_arena_alloc(a, len + 1);
    memcpy(vv, v, len);
    vv[len] = '\0';
    e->value = vv;
    e->value_len = len;
}

void fsr_call_add_header(fsr_call *call, const char *key, const char *value, size_t len)
{
    if (call->headers_sent)
        return;
    md_push(&call->arena, &call->resp_hdrs, &call->n_resp_hdrs, &call->cap_resp_hdrs, key, value,
            len);
}

void fsr_call_add_trailer(fsr_call *call, const char *key, const char *value, size_t len)
{
    md_push(&call->arena, &call->trailers, &call->n_trailers, &call->cap_trailers, key, value, len);
}

int64_t fsr_call_deadline(const fsr_call *call)
{
    return call->deadline_us;
}

bool fsr_call_is_cancelled(const fsr_call *call)
{
    return call->cancelled;
}

void fsr_call_on_cancel(fsr_call *call, void (*cb)(fsr_call *, void *), void *arg)
{
    call->on_cancel = cb;
    call->on_cancel_arg = arg;
}

static void call_cancel(fsr_call *call)
{
    if (call->cancelled)
        return;
    call->cancelled = 1;
    if (call->deadline_ev != NULL)
        event_del(call->deadline_ev);
    if (call->on_cancel != NULL && call->dispatched && !call->handler_done) {
        void (*cb)(fsr_call *, void *) = call->on_cancel;
        call->on_cancel = NULL;
        /* The callback may finish the call; its caller frees it afterwards. */
        call->in_cancel_cb = 1;
        cb(call, call->on_cancel_arg);
        call->in_cancel_cb = 0;
    }
}

/* Queues |msg| (serialized with the 5-byte prefix) on the call's output. */
static int queue_message(fsr_call *call, const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > call->w->srv->cfg.max_message_size || n > UINT32_MAX)
        return FSR_E_TOO_LARGE;
    outmsg *o = fsr_xmalloc(sizeof(*o) + FSR_GRPC_PREFIX_LEN + n);
    o->next = NULL;
    o->off = 0;
    o->len = FSR_GRPC_PREFIX_LEN + n;
    fsr_grpc_prefix_write(o->data, (uint32_t)n);
    protobuf_c_message_pack(msg, o->data + FSR_GRPC_PREFIX_LEN);
    if (call->oq_tail != NULL)
        call->oq_tail->next = o;
    else
        call->oq_head = o;
    call->oq_tail = o;
    return 0;
}

static void free_queue(fsr_call *call)
{
    outmsg *o = call->oq_head;
    while (o != NULL) {
        outmsg *next = o->next;
        free(o);
        o = next;
    }
    call->oq_head = call->oq_tail = NULL;
}

static ssize_t on_data_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                            void *user_data);

/* nghttp2_nv wants mutable pointers it never writes through. */
#define UNCONST(p) ((uint8_t *)(uintptr_t)(p))

#define NV(n, v)                                                                                   \
    {                                                                                              \
        UNCONST(n), UNCONST(v), sizeof(n) - 1, strlen(v),                                          \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }

/* Appends custom metadata to |nva|, base64-encoding "-bin" values into the call's arena. */
static size_t md_to_nv(fsr_call *call, const fsr_md *md, size_t n, nghttp2_nv *nva)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *v = md[i].value;
        size_t vlen = md[i].value_len;
        if (fsr_md_is_binary(md[i].key)) {
            size_t cap = (vlen + 2) / 3 * 4 + 1;
            char *b = fsr_arena_alloc(&call->arena, cap);
            vlen = fsr_base64_encode((const uint8_t *)v, vlen, b, cap);
            v = b;
        }
        nva[k].name = UNCONST(md[i].key);
        nva[k].namelen = strlen(md[i].key);
        nva[k].value = UNCONST(v);
        nva[k].valuelen = vlen;
        nva[k].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
        k++;
    }
    return k;
}

/* Submits response headers with a data provider (messages follow, then trailers). */
static void submit_headers(fsr_call *call)
{
    nghttp2_nv *nva = fsr_arena_alloc(&call->arena, (3 + call->n_resp_hdrs) * sizeof(*nva));
    nghttp2_nv base[] = { NV(":status", "200"), NV("content-type", "application/grpc") };
    memcpy(nva, base, sizeof(base));
    size_t n = 2 + md_to_nv(call, call->resp_hdrs, call->n_resp_hdrs, nva + 2);
    nghttp2_data_provider prd = { .source.ptr = call, .read_callback = on_data_read };
    call->headers_sent = 1;
    nghttp2_submit_response(call->conn->session, call->stream_id, nva, n, &prd);
}

/* The status trailer block (or, with |with_headers|, a trailers-only response). */
static void submit_status(fsr_call *call, bool trailers_only)
{
    size_t n_max = 6 + call->n_trailers + (trailers_only ? call->n_resp_hdrs : 0);
    nghttp2_nv *nva = fsr_arena_alloc(&call->arena, n_max * sizeof(*nva));
    size_t n = 0;
    if (trailers_only) {
        nghttp2_nv base[] = { NV(":status", "200"), NV("content-type", "application/grpc") };
        memcpy(nva, base, sizeof(base));
        n = 2;
        n += md_to_nv(call, call->resp_hdrs, call->n_resp_hdrs, nva + n);
    }
    char *code = fsr_arena_printf(&call->arena, "%d", (int)call->code);
    nva[n++] = (nghttp2_nv)NV("grpc-status", code);
    if (call->message != NULL && call->message[0] != '\0') {
        size_t len = strlen(call->message);
        char *enc = fsr_arena_alloc(&call->arena, 3 * len + 1);
        fsr_percent_encode(call->message, len, enc, 3 * len + 1);
        nva[n++] = (nghttp2_nv)NV("grpc-message", enc);
    }
    if (call->details_b64 != NULL)
        nva[n++] = (nghttp2_nv)NV("grpc-status-details-bin", call->details_b64);
    n += md_to_nv(call, call->trailers, call->n_trailers, nva + n);
    if (trailers_only) {
        call->headers_sent = 1;
        nghttp2_submit_response(call->conn->session, call->stream_id, nva, n, NULL);
    } else {
        nghttp2_submit_trailer(call->conn->session, call->stream_id, nva, n);
    }
}

static ssize_t on_data_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                            void *user_data)
{
    fsr_call *call = source->ptr;
    (void)session;
    (void)stream_id;
    (void)user_data;
    size_t n = 0;
    while (n < length && call->oq_head != NULL) {
        outmsg *o = call->oq_head;
        size_t k = o->len - o->off;
        if (k > length - n)
            k = length - n;
        memcpy(buf + n, o->data + o->off, k);
        n += k;
        o->off += k;
        if (o->off == o->len) {
            call->oq_head = o->next;
            if (call->oq_head == NULL)
                call->oq_tail = NULL;
            free(o);
        }
    }
    if (call->oq_head == NULL && call->status_sent) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (call->is_http)
            return (ssize_t)n; /* END_STREAM on the last DATA frame */
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        submit_status(call, false);
        return (ssize_t)n;
    }
    if (n == 0) {
        call->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static void resume(fsr_call *call)
{
    if (call->deferred) {
        call->deferred = 0;
        nghttp2_session_resume_data(call->conn->session, call->stream_id);
    }
    conn_schedule_flush(call->conn);
}

static void record(fsr_call *call)
{
    if (call->recorded)
        return;
    call->recorded = 1;
    int64_t lat = fsr_now_us() - call->start_us;
    fsr__server_record(call->m, call->code, lat);
    if (fsr_log_min_level <= FSR_LOG_DEBUG ||
        (call->code == FSR_INTERNAL || call->code == FSR_UNKNOWN || call->code == FSR_DATA_LOSS)) {
        char lat_s[24];
        snprintf(lat_s, sizeof(lat_s), "%lld", (long long)lat);
        const char *kv[] = { "method",     fsr_call_path(call),
                             "code",       fsr_code_name(call->code),
                             "latency_us", lat_s,
                             NULL };
        fsr_log_set_request_id(call->request_id);
        fsr_log_write(call->code == FSR_INTERNAL || call->code == FSR_UNKNOWN ||
                              call->code == FSR_DATA_LOSS
                          ? FSR_LOG_WARN
                          : FSR_LOG_DEBUG,
                      kv, "rpc finished");
        fsr_log_set_request_id(NULL);
    }
}

/* Sends the final status (once), on whatever transport state remains. */
static void call_send_status(fsr_call *call)
{
    if (call->status_sent)
        return;
    call->status_sent = 1;
    if (call->deadline_ev != NULL)
        event_del(call->deadline_ev);
    record(call);
    if (call->conn == NULL || call->closed)
        return;
    if (!call->headers_sent) {
        if (call->oq_head == NULL)
            submit_status(call, true); /* trailers-only */
        else
            submit_headers(call);
    }
    resume(call);
}

static void on_deferred_call_free(void *arg)
{
    fsr_call *call = arg;
    call->free_deferred = 0;
    call_maybe_free(call);
}

static void finish(fsr_call *call, fsr_code code, const char *message)
{
    if (call->handler_done)
        return; /* finishing twice is a handler bug: ignore rather than corrupt */
    call->handler_done = 1;
    if (call->dispatched)
        call->w->running--;
    if (!call->status_sent) {
        call->code = code;
        call->message = message != NULL ? fsr_arena_strdup(&call->arena, message) : NULL;
        call_send_status(call);
    }
    /*
     * Never freed here: the handler finishing its call usually has memory from the call's
     * arena on its stack (an op it goes on to read, a callback to its own caller that got
     * "failed" -- svc_portfolio/market_cache.c did exactly that).  When the stream is already
     * gone (deadline passed, client reset) the call would otherwise be freed right now, so the
     * free waits for the loop's deferred point (STYLE 5).
     */
    if (call->closed && !call->free_deferred) {
        call->free_deferred = 1;
        fsr_loop_defer(call->w->loop, on_deferred_call_free, call);
    }
}

void fsr_call_finish(fsr_call *call, fsr_code code, const char *message)
{
    finish(call, code, message);
}

void fsr_call_fail(fsr_call *call, fsr_code code, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    finish(call, code, buf);
}

void fsr_call_fail_field(fsr_call *call, fsr_code code, const char *field, const char *fmt, ...)
{
    char desc[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    char *msg = fsr_arena_printf(&call->arena, "%s: %s", field, desc);
    /* google.rpc.Status{code, message, details: [Any(google.rpc.BadRequest)]} */
    Google__Rpc__BadRequest__FieldViolation fv = GOOGLE__RPC__BAD_REQUEST__FIELD_VIOLATION__INIT;
    fv.field = fsr_arena_strdup(&call->arena, field);
    fv.description = desc;
    Google__Rpc__BadRequest__FieldViolation *fvs[1] = { &fv };
    Google__Rpc__BadRequest br = GOOGLE__RPC__BAD_REQUEST__INIT;
    br.n_field_violations = 1;
    br.field_violations = fvs;
    size_t brn = protobuf_c_message_get_packed_size(&br.base);
    uint8_t *brb = fsr_arena_alloc(&call->arena, brn);
    protobuf_c_message_pack(&br.base, brb);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "type.googleapis.com/google.rpc.BadRequest";
    any.value.data = brb;
    any.value.len = brn;
    Google__Protobuf__Any *anys[1] = { &any };
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = (int32_t)code;
    st.message = msg;
    st.n_details = 1;
    st.details = anys;
    size_t sn = protobuf_c_message_get_packed_size(&st.base);
    uint8_t *sb = fsr_arena_alloc(&call->arena, sn);
    protobuf_c_message_pack(&st.base, sb);
    size_t cap = (sn + 2) / 3 * 4 + 1;
    char *b64 = fsr_arena_alloc(&call->arena, cap);
    fsr_base64_encode(sb, sn, b64, cap);
    if (!call->status_sent)
        call->details_b64 = b64;
    finish(call, code, msg);
}

void fsr_call_fail_err(fsr_call *call, int err, const char *what)
{
    fsr_code code = fsr_code_from_err(err);
    fsr_log_set_request_id(call->request_id);
    FSR_WARN("%s: %s", what != NULL ? what : fsr_call_path(call), fsr_strerror(err));
    fsr_log_set_request_id(NULL);
    const char *msg;
    switch (code) {
    case FSR_UNAVAILABLE:
        msg = "service temporarily unavailable";
        break;
    case FSR_DEADLINE_EXCEEDED:
        msg = "deadline exceeded";
        break;
    case FSR_ALREADY_EXISTS:
        msg = "already exists";
        break;
    case FSR_FAILED_PRECONDITION:
        msg = "failed precondition";
        break;
    case FSR_NOT_FOUND:
        msg = "not found";
        break;
    default:
        msg = "internal error";
        break;
    }
    finish(call, code, what != NULL ? fsr_call_printf(call, "%s: %s", what, msg) : msg);
}

void fsr_call_reply(fsr_call *call, const ProtobufCMessage *resp)
{
    if (call->handler_done)
        return;
    if (!call->status_sent) {
        if (call->m != NULL && resp->descriptor != call->m->mdesc->output) {
            FSR_ERROR("%s: reply of type %s, expected %s", fsr_call_path(call),
                      resp->descriptor->name, call->m->mdesc->output->name);
            finish(call, FSR_INTERNAL, "internal error");
            return;
        }
        if (queue_message(call, resp) != 0) {
            finish(call, FSR_RESOURCE_EXHAUSTED, "response larger than the max message size");
            return;
        }
    }
    finish(call, FSR_OK, NULL);
}

int fsr_call_send(fsr_call *call, const ProtobufCMessage *msg)
{
    if (call->status_sent || call->handler_done || call->conn == NULL)
        return FSR_E_CLOSED;
    int rv = queue_message(call, msg);
    if (rv != 0)
        return rv;
    if (!call->headers_sent)
        submit_headers(call);
    resume(call);
    return 0;
}

/* ---- call lifecycle ------------------------------------------------------------------ */

static void call_free(fsr_call *call)
{
    if (call->deadline_ev != NULL)
        event_free(call->deadline_ev);
    free_queue(call);
    free(call->in);
    if (call->hreq != NULL)
        fsr__http_req_free(call->hreq);
    fsr_arena_dispose(&call->arena);
    free(call);
}

static void call_unlink(fsr_call *call)
{
    srv_conn *c = call->conn;
    if (c == NULL)
        return;
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    c->n_calls--;
    call->conn = NULL;
    call->prev = call->next = NULL;
}

/* Frees the call once the stream is closed and no handler still owns it. */
static void call_maybe_free(fsr_call *call)
{
    if (!call->closed || call->in_cancel_cb || call->free_deferred)
        return;
    if (call->dispatched && !call->handler_done)
        return;
    if (call->hreq != NULL && !call->hreq->responded)
        return;
    call_free(call);
}

/* The stream is gone (closed normally, reset, or the connection died). */
static void call_stream_gone(fsr_call *call, bool abnormal)
{
    call_unlink(call);
    call->closed = 1;
    if (abnormal || !call->status_sent)
        call_cancel(call);
    if (!call->status_sent && call->dispatched) {
        call->code = FSR_CANCELLED;
        record(call);
    }
    call_maybe_free(call);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    fsr_call *call = arg;
    (void)fd;
    (void)what;
    if (call->status_sent)
        return;
    call->code = FSR_DEADLINE_EXCEEDED;
    call->message = "deadline exceeded";
    call_send_status(call);
    call_cancel(call);
    call_maybe_free(call);
}

/* Ends a call the runtime refuses before (or instead of) the handler. */
static void reject(fsr_call *call, fsr_code code, const char *message)
{
    if (call->status_sent)
        return;
    call->code = code;
    call->message = message;
    call_send_status(call);
}

static void dispatch(fsr_call *call)
{
    srv_conn *c = call->conn;
    const srv_method *m = call->m;
    if (call->status_sent)
        return;
    if (call->too_big) {
        reject(call, FSR_RESOURCE_EXHAUSTED,
               fsr_call_printf(call, "request message larger than max (%zu bytes)",
                               c->w->srv->cfg.max_message_size));
        return;
    }
    /* Exactly one length-prefixed, uncompressed message. */
    if (call->in_len < FSR_GRPC_PREFIX_LEN) {
        reject(call, FSR_INTERNAL,
               call->in_len == 0 ? "missing request message" : "truncated gRPC message prefix");
        return;
    }
    int compressed;
    uint32_t len;
    if (fsr_grpc_prefix_parse(call->in, &compressed, &len) != 0) {
        reject(call, FSR_INTERNAL, "invalid gRPC message flag");
        return;
    }
    if (compressed) {
        reject(call, FSR_UNIMPLEMENTED, "message compression is not supported");
        return;
    }
    if ((size_t)len + FSR_GRPC_PREFIX_LEN > call->in_len) {
        reject(call, FSR_INTERNAL, "truncated gRPC message");
        return;
    }
    if ((size_t)len + FSR_GRPC_PREFIX_LEN < call->in_len) {
        reject(call, FSR_UNIMPLEMENTED, "more than one request message on a unary method");
        return;
    }
    if (c->w->srv->cfg.authorize != NULL) {
        const char *why = NULL;
        fsr_code code = c->w->srv->cfg.authorize(call, &why);
        if (code != FSR_OK) {
            reject(call, code, why != NULL ? why : "the caller may not call this method");
            return;
        }
    }
    ProtobufCMessage *req = protobuf_c_message_unpack(
        m->mdesc->input, fsr_arena_pb_allocator(&call->arena), len, call->in + FSR_GRPC_PREFIX_LEN);
    if (req == NULL) {
        reject(call, FSR_INVALID_ARGUMENT, "request message could not be decoded");
        return;
    }
    free(call->in);
    call->in = NULL;
    call->in_len = call->in_cap = 0;
    if (m->row->handler == NULL) {
        reject(call, FSR_UNIMPLEMENTED,
               fsr_call_printf(call, "method %s is not implemented", m->path));
        return;
    }
    call->dispatched = 1;
    call->w->running++;
    fsr_log_set_request_id(call->request_id);
    m->row->handler(call, req);
    fsr_log_set_request_id(NULL);
}

/* Headers complete: validate, pick the method, arm the deadline. */
static void on_request_headers(fsr_call *call)
{
    srv_conn *c = call->conn;
    fsr_server *srv = c->w->srv;
    if (call->request_id[0] == '\0')
        fsr__request_id_new(call->request_id);
    const char *ct = call->content_type;
    bool grpc = ct != NULL && strncmp(ct, "application/grpc", 16) == 0 &&
                (ct[16] == '\0' || ct[16] == '+' || ct[16] == ';');
    const srv_method *m =
        call->path != NULL ? fsr__server_find_method(srv, call->path, call->path_len) : NULL;
    if (!grpc) {
        if (m == NULL || ct == NULL || strncmp(ct, "application/grpc", 16) != 0) {
            /* A gRPC path with a non-gRPC content-type gets 415, as the gRPC spec says. */
            call->bad_ct = m != NULL && ct != NULL;
            call->is_http = 1;
            call->hreq = fsr__http_req_new(c->w);
            call->hreq->h2 = call;
            return; /* plain HTTP: dispatched at END_STREAM */
        }
    }
    call->m = m;
    fsr__server_record_start(m);
    if (call->hdr_too_big) {
        reject(call, FSR_RESOURCE_EXHAUSTED, "request metadata too large");
        return;
    }
    if (m == NULL) {
        reject(call, FSR_UNIMPLEMENTED,
               fsr_call_printf(call, "unknown method %s", call->path ? call->path : "(none)"));
        return;
    }
    if (grpc && strncmp(ct + 16, "+json", 5) == 0) {
        reject(call, FSR_UNIMPLEMENTED, "only application/grpc+proto is supported");
        return;
    }
    if (call->method_hdr == NULL || strcmp(call->method_hdr, "POST") != 0) {
        reject(call, FSR_INTERNAL, "gRPC requires the POST method");
        return;
    }
    if (call->bad_header) {
        reject(call, FSR_INTERNAL, "malformed metadata");
        return;
    }
    if (call->encoding != NULL && strcmp(call->encoding, "identity") != 0) {
        fsr_call_add_header(call, "grpc-accept-encoding", "identity", 8);
        reject(call, FSR_UNIMPLEMENTED, "message compression is not supported");
        return;
    }
    int64_t deadline = INT64_MAX;
    if (call->grpc_timeout != NULL) {
        int64_t us;
        if (fsr_grpc_timeout_parse(call->grpc_timeout, strlen(call->grpc_timeout), &us) != 0) {
            reject(call, FSR_INTERNAL, "malformed grpc-timeout");
            return;
        }
        deadline = call->start_us + us;
    }
    uint32_t cap_ms = m->row->deadline_ms ? m->row->deadline_ms : srv->cfg.default_deadline_ms;
    if (cap_ms != 0 && call->start_us + (int64_t)cap_ms * 1000 < deadline)
        deadline = call->start_us + (int64_t)cap_ms * 1000;
    call->deadline_us = deadline;
    if (deadline != INT64_MAX) {
        int64_t left = deadline - fsr_now_us();
        if (left <= 0) {
            reject(call, FSR_DEADLINE_EXCEEDED, "deadline exceeded");
            return;
        }
        call->deadline_ev = evtimer_new(fsr_loop_base(c->w->loop), on_deadline, call);
        struct timeval tv = { (time_t)(left / 1000000), (suseconds_t)(left % 1000000) };
        event_add(call->deadline_ev, &tv);
    }
    if (c->w->draining && c->goaway) {
        reject(call, FSR_UNAVAILABLE, "server shutting down");
        return;
    }
}

/* ---- nghttp2 callbacks --------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    srv_conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    fsr__worker_count_request(c->w);
    fsr_call *call = fsr_xcalloc(1, sizeof(*call));
    fsr_arena_init(&call->arena);
    call->conn = c;
    call->w = c->w;
    call->stream_id = frame->hd.stream_id;
    call->start_us = fsr_now_us();
    call->deadline_us = INT64_MAX;
    call->code = FSR_OK;
    call->next = c->calls;
    if (c->calls != NULL)
        c->calls->prev = call;
    c->calls = call;
    c->n_calls++;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    fsr_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call == NULL)
        return 0;
    call->header_bytes += namelen + valuelen + 32;
    if (call->header_bytes > call->w->srv->cfg.max_header_size) {
        call->hdr_too_big = 1;
        return 0;
    }
    fsr_arena *a = &call->arena;
    const char *n = (const char *)name;
    const char *v = (const char *)value;
    if (n[0] == ':') {
        if (namelen == 5 && memcmp(n, ":path", 5) == 0) {
            call->path = fsr_arena_strndup(a, v, valuelen);
            call->path_len = valuelen;
        } else if (namelen == 7 && memcmp(n, ":method", 7) == 0) {
            call->method_hdr = fsr_arena_strndup(a, v, valuelen);
        }
        return 0;
    }
    if (namelen == 12 && memcmp(n, "content-type", 12) == 0) {
        call->content_type = fsr_arena_strndup(a, v, valuelen);
    } else if (namelen == 12 && memcmp(n, "grpc-timeout", 12) == 0) {
        call->grpc_timeout = fsr_arena_strndup(a, v, valuelen);
    } else if (namelen == 13 && memcmp(n, "grpc-encoding", 13) == 0) {
        call->encoding = fsr_arena_strndup(a, v, valuelen);
    } else if (namelen == 12 && memcmp(n, "x-request-id", 12) == 0 &&
               fsr__request_id_ok(v, valuelen)) {
        memcpy(call->request_id, v, valuelen);
        call->request_id[valuelen] = '\0';
    }
    /* Everything but reserved headers is metadata; plain HTTP keeps all headers. */
    if (namelen >= 5 && memcmp(n, "grpc-", 5) == 0)
        return 0;
    if ((namelen == 2 && memcmp(n, "te", 2) == 0) ||
        (namelen == 12 && memcmp(n, "content-type", 12) == 0) ||
        (namelen == 10 && memcmp(n, "user-agent", 10) == 0))
        return 0;
    char *key = fsr_arena_strndup(a, n, namelen);
    if (fsr_md_is_binary(key)) {
        uint8_t *buf = fsr_arena_alloc(a, valuelen + 1);
        size_t dl = fsr_base64_decode(v, valuelen, buf, valuelen + 1);
        if (dl == (size_t)-1) {
            call->bad_header = 1;
            return 0;
        }
        buf[dl] = '\0';
        md_push(a, &call->md, &call->n_md, &call->cap_md, key, (const char *)buf, dl);
    } else {
        md_push(a, &call->md, &call->n_md, &call->cap_md, key, v, valuelen);
    }
    return 0;
}

static void http_collect_headers(fsr_call *call)
{
    fsr_http_req *r = call->hreq;
    fsr_arena *a = &r->arena;
    const char *p = call->path != NULL ? call->path : "/";
    const char *q = strchr(p, '?');
    r->path = q ? fsr_arena_strndup(a, p, (size_t)(q - p)) : fsr_arena_strdup(a, p);
    r->query = q ? fsr_arena_strdup(a, q + 1) : "";
    r->method = fsr_arena_strdup(a, call->method_hdr ? call->method_hdr : "GET");
    size_t extra = call->content_type != NULL;
    r->headers = fsr_arena_alloc(a, (call->n_md + extra + 1) * sizeof(fsr_md));
    for (size_t i = 0; i < call->n_md; i++) {
        r->headers[i].key = fsr_arena_strdup(a, call->md[i].key);
        r->headers[i].value = fsr_arena_strndup(a, call->md[i].value, call->md[i].value_len);
        r->headers[i].value_len = call->md[i].value_len;
    }
    r->n_headers = call->n_md;
    if (extra) {
        r->headers[r->n_headers].key = "content-type";
        r->headers[r->n_headers].value = fsr_arena_strdup(a, call->content_type);
        r->headers[r->n_headers].value_len = strlen(call->content_type);
        r->n_headers++;
    }
    r->body = call->in != NULL ? fsr_arena_strndup(a, (const char *)call->in, call->in_len) : "";
    r->body_len = call->in_len;
    snprintf(r->request_id, sizeof(r->request_id), "%s", call->request_id);
}

/* Takes one reset from |c|'s budget; false when it is spent. */
static bool rst_budget_take(srv_conn *c)
{
    int64_t now = fsr_now_us();
    c->rst_tokens += (double)(now - c->rst_at_us) * (SRV_RST_PER_SECOND / 1e6);
    if (c->rst_tokens > SRV_RST_BURST)
        c->rst_tokens = SRV_RST_BURST;
    c->rst_at_us = now;
    if (c->rst_tokens < 1.0)
        return false;
    c->rst_tokens -= 1.0;
    return true;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        srv_conn *c = user_data;
        if (rst_budget_take(c))
            return 0;
        FSR_WARN("h2: too many stream resets from one connection: closing it (rapid reset)");
        nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(session),
                              NGHTTP2_ENHANCE_YOUR_CALM, NULL, 0);
        return NGHTTP2_ERR_CALLBACK_FAILURE; /* stop parsing the rest of the read now */
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    fsr_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call == NULL)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        on_request_headers(call);
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    call->remote_closed = 1;
    if (call->is_http) {
        if (call->hreq == NULL || call->hreq->responded)
            return 0;
        /* Plain HTTP is answered once the request is complete, errors included. */
        http_collect_headers(call);
        free(call->in);
        call->in = NULL;
        int status = call->too_big ? 413 : call->hdr_too_big ? 431 : call->bad_ct ? 415 : 0;
        if (status != 0) {
            char body[128];
            int n = fsr__http_error_body(status, body, sizeof(body));
            fsr_http_respond(call->hreq, status, "application/json", body, (size_t)n);
            return 0;
        }
        fsr__http_dispatch(call->w, call->hreq);
        return 0;
    }
    dispatch(call);
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    fsr_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call == NULL || call->status_sent || call->too_big)
        return 0;
    fsr_server *srv = call->w->srv;
    size_t limit =
        call->is_http ? srv->cfg.max_http_body : srv->cfg.max_message_size + FSR_GRPC_PREFIX_LEN;
    if (call->in_len + len > limit) {
        call->too_big = 1;
        free(call->in);
        call->in = NULL;
        call->in_len = call->in_cap = 0;
        if (!call->is_http)
            dispatch(call); /* answers RESOURCE_EXHAUSTED now; nghttp2 resets the rest */
        return 0;
    }
    if (call->in_len + len > call->in_cap) {
        size_t cap = call->in_cap ? call->in_cap : 256;
        while (cap < call->in_len + len)
            cap *= 2;
        /* A declared message length lets us size the buffer once. */
        call->in = fsr_xrealloc(call->in, cap);
        call->in_cap = cap;
    }
    memcpy(call->in + call->in_len, data, len);
    call->in_len += len;
    if (!call->is_http && call->in_len >= FSR_GRPC_PREFIX_LEN &&
        call->in_len - len < FSR_GRPC_PREFIX_LEN) {
        int compressed;
        uint32_t mlen;
        if (fsr_grpc_prefix_parse(call->in, &compressed, &mlen) == 0 &&
            (size_t)mlen > srv->cfg.max_message_size) {
            call->too_big = 1;
            dispatch(call);
        }
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    (void)user_data;
    fsr_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    call_stream_gone(call, error_code != NGHTTP2_NO_ERROR);
    return 0;
}

/*
 * After a complete response to a request the client is still sending (an early error: too
 * large, unknown method, bad metadata), ask it to stop without error, as RFC 9113 §8.1
 * allows; otherwise some clients keep the stream open waiting to finish their upload.
 */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    fsr_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call != NULL && !call->remote_closed)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    return 0;
}

/* ---- plain HTTP over h2 -------------------------------------------------------------- */

bool fsr__h2_call_closed(const fsr_call *call)
{
    return call->conn == NULL || call->closed;
}

void fsr__h2_http_respond(fsr_call *call, int status, const fsr_md *headers, size_t n_headers,
                          const char *body, size_t len)
{
    call->status_sent = 1;
    call->is_http = 1;
    if (call->conn == NULL || call->closed) {
        call_maybe_free(call);
        return;
    }
    outmsg *o = fsr_xmalloc(sizeof(*o) + len);
    o->next = NULL;
    o->off = 0;
    o->len = len;
    memcpy(o->data, body, len);
    call->oq_head = call->oq_tail = o;
    nghttp2_nv *nva = fsr_arena_alloc(&call->arena, (n_headers + 2) * sizeof(*nva));
    char *st = fsr_arena_printf(&call->arena, "%d", status);
    char *cl = fsr_arena_printf(&call->arena, "%zu", len);
    nva[0] = (nghttp2_nv)NV(":status", st);
    nva[1] = (nghttp2_nv)NV("content-length", cl);
    for (size_t i = 0; i < n_headers; i++) {
        nva[2 + i].name = UNCONST(headers[i].key);
        nva[2 + i].namelen = strlen(headers[i].key);
        nva[2 + i].value = UNCONST(headers[i].value);
        nva[2 + i].valuelen = headers[i].value_len;
        nva[2 + i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    nghttp2_data_provider prd = { .source.ptr = call, .read_callback = on_data_read };
    call->headers_sent = 1;
    nghttp2_submit_response(call->conn->session, call->stream_id, nva, n_headers + 2,
                            len ? &prd : NULL);
    conn_schedule_flush(call->conn);
}

/* ---- connection I/O ------------------------------------------------------------------ */

static ssize_t on_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                       void *user_data)
{
    /* Unused: we pull with nghttp2_session_mem_send().  Required by nghttp2's API. */
    (void)session;
    (void)data;
    (void)flags;
    (void)user_data;
    return (ssize_t)length;
}

static void out_append(srv_conn *c, const uint8_t *d, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 16384;
        while (cap < c->out_len + n)
            cap *= 2;
        c->out = fsr_xrealloc(c->out, cap);
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, d, n);
    c->out_len += n;
}

/* Pulls frames from nghttp2 and writes them; returns -1 if the connection must close. */
static int flush(srv_conn *c)
{
    if (c->closed || c->session == NULL)
        return -1;
    for (;;) {
        while (c->out_len - c->out_off < OUT_HIGH) {
            const uint8_t *d;
            ssize_t n = nghttp2_session_mem_send(c->session, &d);
            if (n < 0)
                return -1;
            if (n == 0)
                break;
            out_append(c, d, (size_t)n);
        }
        if (c->out_len == c->out_off)
            break;
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(c->wev, NULL);
                return 0;
            }
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->out_off += (size_t)n;
        if (n > 0)
            c->last_active = fsr_now_us(); /* the peer is reading: not stalled */
        if (c->out_off == c->out_len)
            c->out_off = c->out_len = 0;
    }
    event_del(c->wev);
    if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
        return -1;
    return 0;
}

static void on_flush_ev(evutil_socket_t fd, short what, void *arg)
{
    srv_conn *c = arg;
    (void)fd;
    (void)what;
    if (flush(c) != 0)
        conn_close(c);
}

static void conn_schedule_flush(srv_conn *c)
{
    if (c != NULL && !c->in_recv && !c->closed)
        event_active(c->flush_ev, 0, 0);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    on_flush_ev(fd, what, arg);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    srv_conn *c = arg;
    (void)what;
    uint8_t buf[65536];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (n < 0)
        return;
    c->last_active = fsr_now_us();
    c->in_recv = true;
    ssize_t rv = nghttp2_session_mem_recv(c->session, buf, (size_t)n);
    c->in_recv = false;
    if (rv < 0) {
        FSR_DEBUG("h2 protocol error: %s", nghttp2_strerror((int)rv));
        /* nghttp2 has queued a GOAWAY where the error allows; send it, then close. */
        flush(c);
        conn_close(c);
        return;
    }
    if (flush(c) != 0)
        conn_close(c);
}

static void conn_free(void *arg)
{
    srv_conn *c = arg;
    if (c->session != NULL)
        nghttp2_session_del(c->session);
    free(c->out);
    free(c);
}

static void conn_close(srv_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    srv_worker *w = c->w;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    /* Streams still open: their handlers may still be running. */
    while (c->calls != NULL) {
        fsr_call *call = c->calls;
        if (c->session != NULL)
            nghttp2_session_set_stream_user_data(c->session, call->stream_id, NULL);
        call_stream_gone(call, true);
    }
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->timer);
    event_free(c->flush_ev);
    if (c->fd >= 0)
        close(c->fd);
    /* nghttp2 may be on the stack (we can be called from a callback): free later. */
    fsr_loop_defer(w->loop, conn_free, c);
}

/*
 * True if the connection has output it cannot deliver: bytes stuck in our buffer (the peer
 * stopped reading TCP) or a stream with a queued or finished response (flow-control window
 * held at zero).  A stream whose handler is still running with nothing to send (a quiet
 * server stream) is not stalled.
 */
static bool conn_stalled(const srv_conn *c)
{
    if (c->out_len > c->out_off)
        return true;
    for (const fsr_call *call = c->calls; call != NULL; call = call->next) {
        if (call->oq_head != NULL || call->status_sent)
            return true;
    }
    return false;
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    srv_conn *c = arg;
    (void)fd;
    (void)what;
    int64_t idle_us = (int64_t)c->w->srv->cfg.idle_timeout_ms * 1000;
    if (c->session == NULL) {
        conn_close(c); /* never sent a full preface or request line: slow or idle client */
        return;
    }
    if (c->n_calls == 0 && fsr_now_us() - c->last_active >= idle_us) {
        nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR,
                              (const uint8_t *)"idle", 4);
        flush(c);
        conn_close(c);
        return;
    }
    /*
     * A peer that holds its window at zero (or stops reading) pins its streams, their queued
     * responses and the socket for ever: with nothing read and nothing written for the idle
     * timeout, close it as a write timeout.  Reads and write progress refresh last_active.
     */
    if (c->n_calls > 0 && fsr_now_us() - c->last_active >= idle_us && conn_stalled(c)) {
        FSR_DEBUG("h2 connection stalled for %u ms with undeliverable output: closing",
                  c->w->srv->cfg.idle_timeout_ms);
        nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR,
                              (const uint8_t *)"write timeout", 13);
        flush(c);
        conn_close(c);
        return;
    }
    struct timeval tv = { (time_t)(idle_us / 2000000) + 1, 0 };
    event_add(c->timer, &tv);
}

static nghttp2_session_callbacks *h2_cbs;
static nghttp2_option *h2_opt;

static void h2_init_once(void)
{
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_option_new(&h2_opt);
    /* Bound the queues a peer can grow with SETTINGS/PING floods. */
    nghttp2_option_set_max_outbound_ack(h2_opt, 1000);
    nghttp2_option_set_max_settings(h2_opt, 32);
    /*
     * Rapid reset (CVE-2023-44487): a token bucket on incoming RST_STREAM, GOAWAY when empty;
     * CONTINUATION flood (CVE-2024-27316/28182): at most 8 CONTINUATION frames per header
     * block.  Both are nghttp2's defaults in Debian 12's 1.52.0-1+deb12u2 (backported from
     * 1.57/1.61); set explicitly so the bound is ours, not a default's.  test/integration/
     * h2_abuse.py proves both.
     */
    nghttp2_option_set_stream_reset_rate_limit(h2_opt, 1000, 33);
    nghttp2_option_set_max_continuations(h2_opt, 8);
    h2_cbs = cb;
}

static int start_h2(srv_conn *c)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, h2_init_once);
    nghttp2_session_callbacks *cbs = h2_cbs;
    nghttp2_option *opt = h2_opt;
    if (nghttp2_session_server_new2(&c->session, cbs, c, opt) != 0)
        return -1;
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->w->srv->cfg.max_streams },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)c->w->srv->cfg.max_header_size },
    };
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, FSR_ARRAY_SIZE(iv));
    /* A large connection window so several multi-MiB messages can be in flight. */
    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    return 0;
}

static void on_detect(evutil_socket_t fd, short what, void *arg)
{
    srv_conn *c = arg;
    (void)what;
    char buf[PREFACE_LEN];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (n < 0)
        return;
    if (memcmp(buf, PREFACE, (size_t)n) == 0 && n < PREFACE_LEN)
        return; /* a prefix of the preface so far: wait for the rest */
    if (n == PREFACE_LEN && memcmp(buf, PREFACE, PREFACE_LEN) == 0) {
        if (start_h2(c) != 0) {
            conn_close(c);
            return;
        }
        event_free(c->rev);
        c->rev = event_new(fsr_loop_base(c->w->loop), fd, EV_READ | EV_PERSIST, on_readable, c);
        event_add(c->rev, NULL);
        c->last_active = fsr_now_us();
        on_conn_timer(-1, 0, c); /* re-arms as the idle timer */
        on_readable(fd, EV_READ, c);
        return;
    }
    /* Not HTTP/2: the HTTP/1.1 side takes the socket, unread bytes and all. */
    srv_worker *w = c->w;
    c->fd = -1;
    conn_close(c);
    fsr__h1_accept(w, fd);
}

void fsr__conn_accept(srv_worker *w, int fd, const struct sockaddr *sa, socklen_t salen)
{
    if (w->draining) {
        close(fd);
        return;
    }
    srv_conn *c = fsr_xcalloc(1, sizeof(*c));
    c->w = w;
    c->fd = fd;
    c->rst_tokens = SRV_RST_BURST;
    c->rst_at_us = fsr_now_us();
    memcpy(&c->sa, sa, salen);
    c->salen = salen;
    struct event_base *base = fsr_loop_base(w->loop);
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_detect, c);
    c->wev = event_new(base, fd, EV_WRITE, on_writable, c);
    c->timer = evtimer_new(base, on_conn_timer, c);
    c->flush_ev = event_new(base, -1, 0, on_flush_ev, c);
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    event_add(c->rev, NULL);
    uint32_t ms = w->srv->cfg.header_timeout_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    event_add(c->timer, &tv);
}

int fsr__conn_drain_all(srv_worker *w, bool force)
{
    /*
     * Two-phase GOAWAY, as gRPC servers do: first a shutdown notice (last stream id 2^31-1)
     * so clients stop opening streams without any stream in flight being refused; then, once
     * the connection has no open streams, the final GOAWAY with the real last stream id, and
     * close.  Connections still detecting their protocol have nothing in flight: close them.
     */
    int left = 0;
    srv_conn *c = w->conns;
    while (c != NULL) {
        srv_conn *next = c->next;
        if (force || c->session == NULL) {
            conn_close(c);
            c = next;
            continue;
        }
        if (!c->goaway) {
            c->goaway = true;
            nghttp2_submit_shutdown_notice(c->session);
        }
        if (c->n_calls == 0) {
            nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(c->session),
                                  NGHTTP2_NO_ERROR, NULL, 0);
            flush(c);
            conn_close(c);
        } else {
            if (flush(c) != 0)
                conn_close(c);
            else
                left++;
        }
        c = next;
    }
    return left;
}
