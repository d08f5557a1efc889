/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/client.c against a scripted HTTP/2 server in the same loop: the wire
 * cases a real gRPC server never produces (HTTP errors, missing trailers, RST_STREAM,
 * GOAWAY before a stream, compressed or split messages) and the exact request headers.
 */
#include "fsr/client.h"
#include "fsr/loop.h"
#include "fsr/mem.h"

#include "grpc/health/v1/health.pb-c.h"

#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the scripted server ------------------------------------------------------------ */

enum mode {
    M_OK,             /* headers, one message "ok", trailers grpc-status 0 */
    M_SPLIT,          /* the same, one byte per DATA frame */
    M_HTTP_503,       /* :status 503, text/plain, no grpc-status */
    M_HTTP_404,       /* :status 404 */
    M_TRAILERS_ONLY,  /* one HEADERS frame with grpc-status 7 and an encoded message */
    M_NO_GRPC_STATUS, /* trailers without grpc-status */
    M_NO_TRAILERS,    /* DATA with END_STREAM, no trailers */
    M_BAD_STATUS,     /* grpc-status: abc */
    M_COMPRESSED,     /* compressed flag set */
    M_TWO_MESSAGES,   /* two messages for a unary call */
    M_TRUNCATED,      /* half a message, then grpc-status 0 */
    M_BAD_CT,         /* 200 with content-type text/html */
    M_REFUSE_ONCE,    /* first stream RST_STREAM(REFUSED_STREAM), then M_OK */
    M_GOAWAY_ONCE,    /* first connection GOAWAY(last_stream_id 0), then M_OK */
    M_HANG,           /* never answers */
    M_EARLY_RST,      /* answers NOT_FOUND on HEADERS, then RST_STREAM(CANCEL) mid-upload */
};

static struct {
    enum mode mode;
    int connections;
    int requests;
    uint32_t close_error[8]; /* error code of each closed stream, by request */
    int n_closed;
    char hdr_name[32][32];
    char hdr_value[32][128];
    int n_hdr;
} srv;

static const uint8_t ok_msg[] = { 0, 0, 0, 0, 4, 0x0a, 0x02, 'o', 'k' };

typedef struct sresp {
    const uint8_t *body;
    size_t len, off;
    bool one_byte;
    bool trailers; /* send trailers after the body */
    const nghttp2_nv *tnv;
    size_t n_tnv;
} sresp;

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE         \
    }

static nghttp2_nv ok_headers[] = { NV(":status", "200"), NV("content-type", "application/grpc") };
static nghttp2_nv ok_trailers[] = { NV("grpc-status", "0"), NV("x-trailer", "t") };
static nghttp2_nv no_status_trailers[] = { NV("x-trailer", "t") };
static nghttp2_nv bad_status_trailers[] = { NV("grpc-status", "abc") };

typedef struct sconn {
    struct sconn *next; /* all live server connections, freed at teardown */
    struct bufferevent *bev;
    nghttp2_session *session;
    int index;
} sconn;

static sconn *sconns;

static ssize_t s_send(nghttp2_session *s, const uint8_t *d, size_t n, int f, void *u)
{
    sconn *c = u;
    (void)s;
    (void)f;
    bufferevent_write(c->bev, d, n);
    return (ssize_t)n;
}

static ssize_t s_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                      nghttp2_data_source *src, void *u)
{
    sresp *r = src->ptr;
    (void)u;
    size_t n = r->len - r->off;
    if (n > len)
        n = len;
    if (r->one_byte && n > 1)
        n = 1;
    memcpy(buf, r->body + r->off, n);
    r->off += n;
    if (r->off == r->len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (r->trailers) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            nghttp2_submit_trailer(s, id, r->tnv, r->n_tnv);
        }
    }
    return (ssize_t)n;
}

static void respond(sconn *c, int32_t id, const nghttp2_nv *h, size_t nh, const uint8_t *body,
                    size_t len, const nghttp2_nv *t, size_t nt, bool one_byte)
{
    sresp *r = calloc(1, sizeof(*r));
    *r = (sresp){
        .body = body, .len = len, .one_byte = one_byte, .trailers = t != NULL, .tnv = t, .n_tnv = nt
    };
    nghttp2_session_set_stream_user_data(c->session, id, r);
    nghttp2_data_provider prd = { .source.ptr = r, .read_callback = s_read };
    nghttp2_submit_response(c->session, id, h, nh, &prd);
}

static void on_request(sconn *c, int32_t id)
{
    int n = ++srv.requests;
    enum mode m = srv.mode;
    if (m == M_REFUSE_ONCE && n == 1) {
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        return;
    }
    if (m == M_REFUSE_ONCE || m == M_GOAWAY_ONCE)
        m = M_OK;
    switch (m) {
    case M_OK:
    case M_SPLIT:
        respond(c, id, ok_headers, 2, ok_msg, sizeof(ok_msg), ok_trailers, 2, m == M_SPLIT);
        break;
    case M_HTTP_503:
    case M_HTTP_404: {
        static nghttp2_nv h503[] = { NV(":status", "503"), NV("content-type", "text/plain") };
        static nghttp2_nv h404[] = { NV(":status", "404"), NV("content-type", "text/plain") };
        static const uint8_t page[] = "no such thing";
        respond(c, id, m == M_HTTP_503 ? h503 : h404, 2, page, sizeof(page) - 1, NULL, 0, false);
        break;
    }
    case M_TRAILERS_ONLY: {
        static nghttp2_nv h[] = { NV(":status", "200"), NV("content-type", "application/grpc"),
                                  NV("grpc-status", "7"), NV("grpc-message", "no%20way%zz%C3%A9"),
                                  NV("x-only", "1") };
        nghttp2_submit_response(c->session, id, h, FSR_ARRAY_SIZE(h), NULL);
        break;
    }
    case M_NO_GRPC_STATUS:
        respond(c, id, ok_headers, 2, ok_msg, sizeof(ok_msg), no_status_trailers, 1, false);
        break;
    case M_NO_TRAILERS:
        respond(c, id, ok_headers, 2, ok_msg, sizeof(ok_msg), NULL, 0, false);
        break;
    case M_BAD_STATUS:
        respond(c, id, ok_headers, 2, ok_msg, sizeof(ok_msg), bad_status_trailers, 1, false);
        break;
    case M_COMPRESSED: {
        static const uint8_t z[] = { 1, 0, 0, 0, 4, 0x0a, 0x02, 'o', 'k' };
        respond(c, id, ok_headers, 2, z, sizeof(z), ok_trailers, 2, false);
        break;
    }
    case M_TWO_MESSAGES: {
        static uint8_t two[2 * sizeof(ok_msg)];
        memcpy(two, ok_msg, sizeof(ok_msg));
        memcpy(two + sizeof(ok_msg), ok_msg, sizeof(ok_msg));
        respond(c, id, ok_headers, 2, two, sizeof(two), ok_trailers, 2, false);
        break;
    }
    case M_TRUNCATED:
        respond(c, id, ok_headers, 2, ok_msg, 7, ok_trailers, 2, false);
        break;
    case M_BAD_CT: {
        static nghttp2_nv h[] = { NV(":status", "200"), NV("content-type", "text/html") };
        static const uint8_t page[] = "<html></html>";
        respond(c, id, h, 2, page, sizeof(page) - 1, NULL, 0, false);
        break;
    }
    default:
        break; /* M_HANG */
    }
}

static int s_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                       size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                       void *u)
{
    (void)s;
    (void)f;
    (void)flags;
    (void)u;
    if (srv.requests == 0 && srv.n_hdr < 32) {
        snprintf(srv.hdr_name[srv.n_hdr], 32, "%.*s", (int)namelen, name);
        snprintf(srv.hdr_value[srv.n_hdr], 128, "%.*s", (int)valuelen, value);
        srv.n_hdr++;
    }
    return 0;
}

static int s_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
    sconn *c = u;
    if (srv.mode == M_EARLY_RST) {
        if (f->hd.type == NGHTTP2_HEADERS) {
            static nghttp2_nv h[] = { NV(":status", "200"), NV("content-type", "application/grpc"),
                                      NV("grpc-status", "5"), NV("grpc-message", "gone") };
            srv.requests++;
            nghttp2_submit_response(s, f->hd.stream_id, h, FSR_ARRAY_SIZE(h), NULL);
        }
        return 0;
    }
    if (srv.mode == M_GOAWAY_ONCE && c->index == 1) {
        /* "I processed nothing": the client must retry this stream elsewhere. */
        if (f->hd.type == NGHTTP2_HEADERS) {
            srv.requests++;
            nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
        }
        return 0;
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        on_request(c, f->hd.stream_id);
    return 0;
}

static int s_on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
    (void)u;
    /* M_EARLY_RST: once the status is on the wire, refuse the rest of the request. */
    if (srv.mode == M_EARLY_RST && f->hd.type == NGHTTP2_HEADERS &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_CANCEL);
    return 0;
}

static int s_on_close(nghttp2_session *s, int32_t id, uint32_t err, void *u)
{
    (void)u;
    free(nghttp2_session_get_stream_user_data(s, id));
    if (srv.n_closed < 8)
        srv.close_error[srv.n_closed++] = err;
    return 0;
}

static void sconn_free(sconn *c)
{
    for (sconn **p = &sconns; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    nghttp2_session_del(c->session);
    bufferevent_free(c->bev);
    free(c);
}

static void s_on_read(struct bufferevent *bev, void *arg)
{
    sconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    ssize_t rv = nghttp2_session_mem_recv(c->session, evbuffer_pullup(in, -1), len);
    evbuffer_drain(in, len);
    if (rv < 0 || nghttp2_session_send(c->session) != 0)
        sconn_free(c);
}

static void s_on_write(struct bufferevent *bev, void *arg)
{
    sconn *c = arg;
    (void)bev;
    if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
        sconn_free(c);
}

static void s_on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        sconn_free(arg);
}

static void s_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                        int salen, void *arg)
{
    (void)sa;
    (void)salen;
    (void)arg;
    sconn *c = calloc(1, sizeof(*c));
    c->index = ++srv.connections;
    c->next = sconns;
    sconns = c;
    c->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, s_send);
    nghttp2_session_callbacks_set_on_header_callback(cbs, s_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, s_on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, s_on_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, s_on_frame_send);
    nghttp2_session_server_new(&c->session, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, NULL, 0);
    nghttp2_session_send(c->session);
    bufferevent_setcb(c->bev, s_on_read, s_on_write, s_on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- harness ------------------------------------------------------------------------ */

typedef struct outcome {
    int done;
    fsr_code code;
    char message[256];
    char service[64]; /* of the decoded HealthCheckRequest, if any */
    bool have_resp;
    char trailer[64]; /* "key=value" of the first trailer */
} outcome;

static void on_done(const fsr_result *res, void *arg)
{
    outcome *o = arg;
    o->done++;
    o->code = res->status.code;
    snprintf(o->message, sizeof(o->message), "%s", res->status.message);
    if (res->response != NULL) {
        o->have_resp = true;
        snprintf(o->service, sizeof(o->service), "%s",
                 ((Grpc__Health__V1__HealthCheckRequest *)res->response)->service);
    }
    if (res->n_trailers > 0)
        snprintf(o->trailer, sizeof(o->trailer), "%s=%s", res->trailers[0].key,
                 res->trailers[0].value);
}

static fsr_loop *loop;
static struct evconnlistener *listener;
static fsr_channel *ch;
static char target[64];

static void setup(void)
{
    memset(&srv, 0, sizeof(srv));
    ck_assert_int_eq(fsr_loop_new(&loop), 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    listener = evconnlistener_new_bind(fsr_loop_base(loop), s_on_accept, NULL,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                       (struct sockaddr *)&a, sizeof(a));
    ck_assert_ptr_nonnull(listener);
    socklen_t len = sizeof(a);
    getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&a, &len);
    snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(a.sin_port));
    fsr_channel_opts opts = { .backoff_base_ms = 5 };
    ck_assert_int_eq(fsr_channel_new(loop, target, &opts, &ch), 0);
}

static void teardown(void)
{
    fsr_channel_free(ch);
    while (sconns != NULL)
        sconn_free(sconns);
    evconnlistener_free(listener);
    fsr_loop_free(loop);
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(int *)arg = 1;
}

static void call_with(enum mode m, const fsr_call_opts *opts, char *service, outcome *o)
{
    srv.mode = m;
    Grpc__Health__V1__HealthCheckRequest req;
    grpc__health__v1__health_check_request__init(&req);
    req.service = service;
    memset(o, 0, sizeof(*o));
    ck_assert_int_eq(fsr_channel_unary(ch, "/fsr.test.Echo/Echo", &req.base,
                                       &grpc__health__v1__health_check_request__descriptor, opts,
                                       on_done, o),
                     0);
    int expired = 0;
    struct event *t = evtimer_new(fsr_loop_base(loop), on_expire, &expired);
    struct timeval tv = { 5, 0 };
    evtimer_add(t, &tv);
    while (!o->done && !expired)
        event_base_loop(fsr_loop_base(loop), EVLOOP_ONCE);
    event_free(t);
    ck_assert_int_eq(o->done, 1);
}

static void call(enum mode m, const fsr_call_opts *opts, outcome *o)
{
    call_with(m, opts, "ping", o);
}

static const char *req_header(const char *name)
{
    for (int i = 0; i < srv.n_hdr; i++)
        if (strcmp(srv.hdr_name[i], name) == 0)
            return srv.hdr_value[i];
    return NULL;
}

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(test_client_request_headers)
{
    fsr_md md[] = { { "x-ascii", "v1", 2 }, { "x-data-bin", "\x00\xff", 2 } };
    fsr_call_opts opts = { .timeout_ms = 2000, .metadata = md, .n_metadata = 2 };
    outcome o;
    call(M_OK, &opts, &o);
    ck_assert_int_eq(o.code, FSR_OK);
    ck_assert_str_eq(req_header(":method"), "POST");
    ck_assert_str_eq(req_header(":scheme"), "http");
    ck_assert_str_eq(req_header(":path"), "/fsr.test.Echo/Echo");
    ck_assert_str_eq(req_header(":authority"), target);
    ck_assert_str_eq(req_header("content-type"), "application/grpc");
    ck_assert_str_eq(req_header("te"), "trailers");
    ck_assert_int_eq(strncmp(req_header("user-agent"), "grpc-c-fsr/", 11), 0);
    ck_assert_str_eq(req_header("x-ascii"), "v1");
    ck_assert_str_eq(req_header("x-data-bin"), "AP8=");
    /* 2000 ms less a little, sent in the finest unit that fits: microseconds. */
    const char *t = req_header("grpc-timeout");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t[strlen(t) - 1], 'u');
    long us = atol(t);
    ck_assert_int_gt(us, 1500000);
    ck_assert_int_le(us, 2000000);
    /* Pseudo-headers come first, as HTTP/2 requires. */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(srv.hdr_name[i][0], ':');
}
END_TEST

START_TEST(test_client_no_timeout_header_without_deadline)
{
    outcome o;
    call(M_OK, NULL, &o);
    ck_assert_int_eq(o.code, FSR_OK);
    ck_assert_ptr_null(req_header("grpc-timeout"));
}
END_TEST

START_TEST(test_client_split_message)
{
    outcome o;
    call(M_SPLIT, NULL, &o);
    ck_assert_int_eq(o.code, FSR_OK);
    ck_assert_str_eq(o.service, "ok");
    ck_assert_str_eq(o.trailer, "x-trailer=t");
}
END_TEST

START_TEST(test_client_http_status_mapping)
{
    outcome o;
    call(M_HTTP_503, NULL, &o);
    ck_assert_int_eq(o.code, FSR_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(o.message, "503"));
    call(M_HTTP_404, NULL, &o);
    ck_assert_int_eq(o.code, FSR_UNIMPLEMENTED);
    ck_assert_int_eq(o.have_resp, false);
}
END_TEST

START_TEST(test_client_trailers_only)
{
    outcome o;
    call(M_TRAILERS_ONLY, NULL, &o);
    ck_assert_int_eq(o.code, FSR_PERMISSION_DENIED);
    ck_assert_str_eq(o.message, "no way%zz\xc3\xa9"); /* decoded; bad escape kept */
    ck_assert_str_eq(o.trailer, "x-only=1");
}
END_TEST

START_TEST(test_client_missing_status)
{
    outcome o;
    call(M_NO_GRPC_STATUS, NULL, &o);
    ck_assert_int_eq(o.code, FSR_UNKNOWN);
    call(M_NO_TRAILERS, NULL, &o);
    ck_assert_int_eq(o.code, FSR_INTERNAL);
    call(M_BAD_STATUS, NULL, &o);
    ck_assert_int_eq(o.code, FSR_UNKNOWN);
    ck_assert_int_eq(o.have_resp, false);
}
END_TEST

START_TEST(test_client_bad_messages)
{
    outcome o;
    call(M_COMPRESSED, NULL, &o);
    ck_assert_int_eq(o.code, FSR_INTERNAL);
    call(M_TWO_MESSAGES, NULL, &o);
    ck_assert_int_eq(o.code, FSR_INTERNAL);
    call(M_TRUNCATED, NULL, &o);
    ck_assert_int_eq(o.code, FSR_INTERNAL);
    call(M_BAD_CT, NULL, &o);
    ck_assert_int_eq(o.code, FSR_UNKNOWN);
    /* Each failure reset only its stream: one connection served all of them. */
    call(M_OK, NULL, &o);
    ck_assert_int_eq(o.code, FSR_OK);
    ck_assert_int_eq(srv.connections, 1);
}
END_TEST

START_TEST(test_client_refused_stream_transparent_retry)
{
    /* Not idempotent, yet retried: REFUSED_STREAM proves the server did nothing. */
    outcome o;
    call(M_REFUSE_ONCE, NULL, &o);
    ck_assert_int_eq(o.code, FSR_OK);
    ck_assert_str_eq(o.service, "ok");
    ck_assert_int_eq(srv.requests, 2);
}
END_TEST

START_TEST(test_client_goaway_retry_new_connection)
{
    outcome o;
    call(M_GOAWAY_ONCE, NULL, &o);
    ck_assert_int_eq(o.code, FSR_OK);
    ck_assert_int_eq(srv.requests, 2);
    ck_assert_int_eq(srv.connections, 2);
    call(M_OK, NULL, &o); /* later calls stay on the new connection */
    ck_assert_int_eq(o.code, FSR_OK);
    ck_assert_int_eq(srv.connections, 2);
}
END_TEST

START_TEST(test_client_deadline_sends_rst_cancel)
{
    fsr_call_opts opts = { .timeout_ms = 100 };
    outcome o;
    call(M_HANG, &opts, &o);
    ck_assert_int_eq(o.code, FSR_DEADLINE_EXCEEDED);
    /* Let the RST_STREAM reach the server. */
    int expired = 0;
    struct event *t = evtimer_new(fsr_loop_base(loop), on_expire, &expired);
    struct timeval tv = { 0, 100000 };
    evtimer_add(t, &tv);
    while (!expired)
        event_base_loop(fsr_loop_base(loop), EVLOOP_ONCE);
    event_free(t);
    ck_assert_int_eq(srv.n_closed, 1);
    ck_assert_uint_eq(srv.close_error[0], NGHTTP2_CANCEL);
}
END_TEST

START_TEST(test_client_status_before_request_sent)
{
    /*
     * The server answers while 1 MiB of request is still held back by flow control, then
     * resets the stream: the status it sent counts, not the reset.
     */
    size_t n = 1u << 20;
    char *big = malloc(n + 1);
    memset(big, 'b', n);
    big[n] = '\0';
    outcome o;
    call_with(M_EARLY_RST, NULL, big, &o);
    free(big);
    ck_assert_int_eq(o.code, FSR_NOT_FOUND);
    ck_assert_str_eq(o.message, "gone");
}
END_TEST

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("request");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_client_request_headers);
    tcase_add_test(tc, test_client_no_timeout_header_without_deadline);
    tcase_add_test(tc, test_client_split_message);
    suite_add_tcase(s, tc);

    tc = tcase_create("response_status");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_client_http_status_mapping);
    tcase_add_test(tc, test_client_trailers_only);
    tcase_add_test(tc, test_client_missing_status);
    tcase_add_test(tc, test_client_bad_messages);
    tcase_add_test(tc, test_client_status_before_request_sent);
    suite_add_tcase(s, tc);

    tc = tcase_create("retry_and_deadline");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_client_refused_stream_transparent_retry);
    tcase_add_test(tc, test_client_goaway_retry_new_connection);
    tcase_add_test(tc, test_client_deadline_sends_rst_cancel);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(client_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
