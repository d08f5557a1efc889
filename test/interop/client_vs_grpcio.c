/* SPDX-License-Identifier: MIT */
/*
 * Interop: the C client (lib/client.c) against a real grpcio server (grpcio_server.py).
 *
 * The wrapper script starts one shared server and passes FSR_GRPCIO_PORT; tests that need to
 * kill or restart a server (reconnect, GOAWAY) spawn their own from FSR_GRPCIO_SERVER.  The
 * echo service takes and returns raw bytes, so requests and responses here are
 * grpc.health.v1.HealthCheckRequest messages: what goes out must come back identical.
 */
#include "fsr/client.h"
#include "fsr/log.h"
#include "fsr/loop.h"
#include "fsr/mem.h"
#include "fsr/server.h"

#include "fsrtest.pb-c.h"
#include "grpc_health_v1.fsr.h"
#include "grpc/health/v1/health.pb-c.h"

#include <check.h>
#include <event2/event.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ECHO   "/fsr.test.Echo/Echo"
#define STREAM "/fsr.test.Echo/Stream"
#define CHECK  "/grpc.health.v1.Health/Check"
#define WATCH  "/grpc.health.v1.Health/Watch"

static int server_port;
static const char *server_script;

/* ---- harness ------------------------------------------------------------------------ */

typedef struct kv {
    char *key;
    char *val;
    size_t len;
} kv;

/* Everything a callback saw, copied out of the call's arena. */
typedef struct box {
    int done; /* times on_done ran */
    fsr_code code;
    char *message;
    ProtobufCMessage *resp; /* default allocator */
    kv hdr[32], trl[32];
    size_t n_hdr, n_trl;
    uint8_t *details;
    size_t details_len;
    char *msgs[64]; /* HealthCheckRequest.service of each stream message */
    int n_msgs;
    int64_t t_start, t_end;
} box;

static void copy_md(kv *dst, size_t *n, const fsr_md *md, size_t count)
{
    for (size_t i = 0; i < count && *n < 32; i++) {
        dst[*n].key = strdup(md[i].key);
        dst[*n].val = malloc(md[i].value_len + 1);
        memcpy(dst[*n].val, md[i].value, md[i].value_len);
        dst[*n].val[md[i].value_len] = '\0';
        dst[*n].len = md[i].value_len;
        (*n)++;
    }
}

static ProtobufCMessage *copy_msg(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n + 1);
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *out = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    return out;
}

static void on_done(const fsr_result *res, void *arg)
{
    box *b = arg;
    b->done++;
    b->t_end = fsr_now_us();
    b->code = res->status.code;
    free(b->message);
    b->message = strdup(res->status.message != NULL ? res->status.message : "");
    if (res->response != NULL)
        b->resp = copy_msg(res->response);
    copy_md(b->hdr, &b->n_hdr, res->headers, res->n_headers);
    copy_md(b->trl, &b->n_trl, res->trailers, res->n_trailers);
    if (res->status_details != NULL) {
        b->details = malloc(res->status_details_len + 1);
        memcpy(b->details, res->status_details, res->status_details_len);
        b->details_len = res->status_details_len;
    }
}

static void on_msg(ProtobufCMessage *msg, void *arg)
{
    box *b = arg;
    ck_assert_int_eq(b->done, 0); /* messages always precede the final status */
    if (b->n_msgs < 64) {
        if (msg->descriptor == &grpc__health__v1__health_check_request__descriptor)
            b->msgs[b->n_msgs] = strdup(((Grpc__Health__V1__HealthCheckRequest *)msg)->service);
        else
            b->msgs[b->n_msgs] = strdup("");
    }
    b->n_msgs++;
}

static void box_dispose(box *b)
{
    free(b->message);
    if (b->resp != NULL)
        protobuf_c_message_free_unpacked(b->resp, NULL);
    for (size_t i = 0; i < b->n_hdr; i++)
        free(b->hdr[i].key), free(b->hdr[i].val);
    for (size_t i = 0; i < b->n_trl; i++)
        free(b->trl[i].key), free(b->trl[i].val);
    for (int i = 0; i < b->n_msgs && i < 64; i++)
        free(b->msgs[i]);
    free(b->details);
    memset(b, 0, sizeof(*b));
}

static const kv *find(const kv *v, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].key, key) == 0)
            return &v[i];
    return NULL;
}

static const char *trailer(const box *b, const char *key)
{
    const kv *e = find(b->trl, b->n_trl, key);
    return e != NULL ? e->val : NULL;
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(int *)arg = 1;
}

/* Runs the loop until *|flag| >= |want| or |ms| pass.  Returns whether the flag got there. */
static int run_until(fsr_loop *loop, const int *flag, int want, int ms)
{
    struct event_base *base = fsr_loop_base(loop);
    int expired = 0;
    struct event *t = evtimer_new(base, on_expire, &expired);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(t, &tv);
    while ((flag == NULL || *flag < want) && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    return flag != NULL && *flag >= want;
}

static void run_for(fsr_loop *loop, int ms)
{
    run_until(loop, NULL, 1, ms);
}

static Grpc__Health__V1__HealthCheckRequest make_req(const char *service)
{
    Grpc__Health__V1__HealthCheckRequest r;
    grpc__health__v1__health_check_request__init(&r);
    r.service = (char *)(uintptr_t)service;
    return r;
}

typedef struct env {
    fsr_loop *loop;
    fsr_channel *ch;
} env;

static void env_open(env *e, int port, const fsr_channel_opts *opts)
{
    ck_assert_int_eq(fsr_loop_new(&e->loop), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    ck_assert_int_eq(fsr_channel_new(e->loop, target, opts, &e->ch), 0);
}

static void env_close(env *e)
{
    fsr_channel_free(e->ch);
    fsr_loop_free(e->loop);
}

/* Starts a unary echo of |service| with |opts| and waits for it. */
static void echo_call(env *e, const char *path, const char *service, const fsr_call_opts *opts,
                      box *b, int wait_ms)
{
    Grpc__Health__V1__HealthCheckRequest req = make_req(service);
    b->t_start = fsr_now_us();
    ck_assert_int_eq(fsr_channel_unary(e->ch, path, &req.base,
                                       &grpc__health__v1__health_check_request__descriptor, opts,
                                       on_done, b),
                     0);
    ck_assert_int_eq(b->done, 0); /* never from inside fsr_channel_unary */
    ck_assert_msg(run_until(e->loop, &b->done, 1, wait_ms), "no answer within %d ms", wait_ms);
    ck_assert_int_eq(b->done, 1);
}

static const char *echoed(const box *b)
{
    ck_assert_ptr_nonnull(b->resp);
    return ((Grpc__Health__V1__HealthCheckRequest *)b->resp)->service;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* A private grpcio server (for tests that kill or stop it).  Returns its pid. */
static pid_t spawn_server(int port, const char *id, int *bound)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        char portarg[16];
        snprintf(portarg, sizeof(portarg), "%d", port);
        execl("/usr/bin/python3", "/usr/bin/python3", server_script, "--port", portarg, "--id", id,
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    char line[128];
    *bound = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "PORT %d", bound) == 1)
            break;
    }
    fclose(f); /* the server's later prints go nowhere; it never prints again */
    ck_assert_msg(*bound > 0, "private grpcio server did not start");
    return pid;
}

static void kill_server(pid_t pid, int sig)
{
    kill(pid, sig);
    waitpid(pid, NULL, 0);
}

static char *unique_token(const char *what)
{
    static int n;
    char *s = malloc(64);
    snprintf(s, 64, "%s-%d-%d-%lld", what, (int)getpid(), ++n, (long long)fsr_wall_us());
    return s;
}

/* ---- unary -------------------------------------------------------------------------- */

START_TEST(test_interop_unary_echo)
{
    env e;
    env_open(&e, server_port, NULL);
    box b = { 0 };
    echo_call(&e, ECHO, "hello, grpcio", NULL, &b, 10000);
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_str_eq(b.message, "");
    ck_assert_str_eq(echoed(&b), "hello, grpcio");
    /* Response headers and trailers are surfaced; grpc-* are not. */
    const kv *h = find(b.hdr, b.n_hdr, "x-initial");
    ck_assert_ptr_nonnull(h);
    ck_assert_str_eq(h->val, "yes");
    ck_assert_ptr_null(find(b.trl, b.n_trl, "grpc-status"));
    ck_assert_str_eq(trailer(&b, "x-time-remaining"), "none");
    ck_assert_str_eq(trailer(&b, "x-server-id"), "main");
    ck_assert_int_eq(strncmp(trailer(&b, "x-user-agent"), "grpc-c-fsr/", 11), 0);
    box_dispose(&b);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_unary_empty_message)
{
    /* An all-default message packs to zero bytes: a 5-byte frame with length 0. */
    env e;
    env_open(&e, server_port, NULL);
    box b = { 0 };
    echo_call(&e, ECHO, "", NULL, &b, 10000);
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_str_eq(echoed(&b), "");
    box_dispose(&b);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_health_check)
{
    env e;
    env_open(&e, server_port, NULL);
    box b = { 0 };
    Grpc__Health__V1__HealthCheckRequest req = make_req("");
    ck_assert_int_eq(fsr_channel_unary(e.ch, CHECK, &req.base,
                                       &grpc__health__v1__health_check_response__descriptor, NULL,
                                       on_done, &b),
                     0);
    ck_assert(run_until(e.loop, &b.done, 1, 10000));
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_int_eq(((Grpc__Health__V1__HealthCheckResponse *)b.resp)->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    box_dispose(&b);

    req = make_req("no.such.Service");
    ck_assert_int_eq(fsr_channel_unary(e.ch, CHECK, &req.base,
                                       &grpc__health__v1__health_check_response__descriptor, NULL,
                                       on_done, &b),
                     0);
    ck_assert(run_until(e.loop, &b.done, 1, 10000));
    ck_assert_int_eq(b.code, FSR_NOT_FOUND);
    ck_assert_str_eq(b.message, "unknown service");
    ck_assert_ptr_null(b.resp);
    box_dispose(&b);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_blocking)
{
    env e;
    env_open(&e, server_port, NULL);
    Grpc__Health__V1__HealthCheckRequest req = make_req("fsr.test.Echo");
    ProtobufCMessage *resp = NULL;
    fsr_status st;
    char buf[128];
    ck_assert_int_eq(
        fsr_channel_unary_blocking(e.ch, CHECK, &req.base,
                                   &grpc__health__v1__health_check_response__descriptor, NULL,
                                   &resp, &st, buf, sizeof(buf)),
        0);
    ck_assert_int_eq(st.code, FSR_OK);
    ck_assert_ptr_nonnull(resp);
    ck_assert_int_eq(((Grpc__Health__V1__HealthCheckResponse *)resp)->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    protobuf_c_message_free_unpacked(resp, NULL);

    resp = NULL;
    req = make_req("nope");
    ck_assert_int_eq(
        fsr_channel_unary_blocking(e.ch, CHECK, &req.base,
                                   &grpc__health__v1__health_check_response__descriptor, NULL,
                                   &resp, &st, buf, sizeof(buf)),
        0);
    ck_assert_int_eq(st.code, FSR_NOT_FOUND);
    ck_assert_str_eq(st.message, "unknown service");
    ck_assert_ptr_null(resp);
    env_close(&e);
}
END_TEST

/* ---- the generated typed stubs (gen/stubs) against grpcio -------------------------- */

typedef struct typed_box {
    int done;
    fsr_code code;
    int status; /* HealthCheckResponse.status, -1 if none */
    int n_msgs;
} typed_box;

static void on_typed_check(const fsr_result *res, const Grpc__Health__V1__HealthCheckResponse *resp,
                           void *arg)
{
    typed_box *b = arg;
    b->done++;
    b->code = res->status.code;
    b->status = resp != NULL ? (int)resp->status : -1;
}

static void on_typed_watch_msg(const Grpc__Health__V1__HealthCheckResponse *msg, void *arg)
{
    typed_box *b = arg;
    b->n_msgs++;
    b->status = (int)msg->status;
}

static void on_typed_done(const fsr_result *res, void *arg)
{
    typed_box *b = arg;
    b->done++;
    b->code = res->status.code;
}

START_TEST(test_interop_generated_stubs)
{
    env e;
    env_open(&e, server_port, NULL);
    Grpc__Health__V1__HealthCheckRequest req = make_req("fsr.test.Echo");

    /* Blocking form. */
    Grpc__Health__V1__HealthCheckResponse *resp = NULL;
    fsr_status st;
    char buf[128];
    ck_assert_int_eq(
        grpc_health_v1_health_check_blocking(e.ch, &req, NULL, &resp, &st, buf, sizeof(buf)), 0);
    ck_assert_int_eq(st.code, FSR_OK);
    ck_assert_ptr_nonnull(resp);
    ck_assert_int_eq(resp->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    protobuf_c_message_free_unpacked(&resp->base, NULL);

    /* Callback form, with a deadline and metadata through the options. */
    fsr_md md[] = { { "x-typed", "yes", 3 } };
    fsr_call_opts opts = { .timeout_ms = 5000, .metadata = md, .n_metadata = 1 };
    typed_box b = { 0, FSR_UNKNOWN, -1, 0 };
    ck_assert_int_eq(grpc_health_v1_health_check(e.ch, &req, &opts, on_typed_check, &b), 0);
    ck_assert(run_until(e.loop, &b.done, 1, 10000));
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_int_eq(b.status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);

    /* An error status comes through the typed callback with no response. */
    req = make_req("nope");
    typed_box nb = { 0, FSR_OK, -1, 0 };
    ck_assert_int_eq(grpc_health_v1_health_check(e.ch, &req, NULL, on_typed_check, &nb), 0);
    ck_assert(run_until(e.loop, &nb.done, 1, 10000));
    ck_assert_int_eq(nb.code, FSR_NOT_FOUND);
    ck_assert_int_eq(nb.status, -1);

    /* Server-streaming form. */
    req = make_req("fsr.test.Echo");
    typed_box wb = { 0, FSR_UNKNOWN, -1, 0 };
    fsr_call_opts wopts = { .timeout_ms = 10000 };
    ck_assert_int_eq(
        grpc_health_v1_health_watch(e.ch, &req, &wopts, on_typed_watch_msg, on_typed_done, &wb), 0);
    ck_assert(run_until(e.loop, &wb.done, 1, 15000));
    ck_assert_int_ge(wb.n_msgs, 1);
    ck_assert_int_eq(wb.status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    env_close(&e);
}
END_TEST

/* ---- status ------------------------------------------------------------------------- */

START_TEST(test_interop_error_codes)
{
    env e;
    env_open(&e, server_port, NULL);
    for (int code = 1; code < FSR_CODE_COUNT; code++) {
        char msg[128];
        /* Non-ASCII and '%': the server percent-encodes grpc-message, we decode it. */
        snprintf(msg, sizeof(msg), "code %d: caf\xc3\xa9 \xe2\x98\x83 100%% done", code);
        char codebuf[16];
        snprintf(codebuf, sizeof(codebuf), "%d", code);
        fsr_md md[] = {
            { "x-fail-code", codebuf, strlen(codebuf) },
            { "x-fail-message-bin", msg, strlen(msg) },
        };
        fsr_call_opts opts = { .metadata = md, .n_metadata = 2 };
        box b = { 0 };
        echo_call(&e, ECHO, "x", &opts, &b, 10000);
        ck_assert_int_eq(b.code, code);
        ck_assert_str_eq(b.message, msg);
        ck_assert_ptr_null(b.resp);
        box_dispose(&b);
    }
    env_close(&e);
}
END_TEST

START_TEST(test_interop_status_details)
{
    env e;
    env_open(&e, server_port, NULL);
    const char details[] = "\x08\x03\x12\x04oops\x00\xff";
    fsr_md md[] = {
        { "x-fail-code", "3", 1 },
        { "x-fail-details-bin", details, sizeof(details) - 1 },
    };
    fsr_call_opts opts = { .metadata = md, .n_metadata = 2 };
    box b = { 0 };
    echo_call(&e, ECHO, "x", &opts, &b, 10000);
    ck_assert_int_eq(b.code, FSR_INVALID_ARGUMENT);
    ck_assert_uint_eq(b.details_len, sizeof(details) - 1);
    ck_assert_mem_eq(b.details, details, sizeof(details) - 1);
    ck_assert_ptr_null(find(b.trl, b.n_trl, "grpc-status-details-bin"));
    box_dispose(&b);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_unimplemented)
{
    env e;
    env_open(&e, server_port, NULL);
    const char *paths[] = { "/fsr.test.Echo/Nope", "/no.such.Service/Method" };
    for (size_t i = 0; i < 2; i++) {
        box b = { 0 };
        echo_call(&e, paths[i], "x", NULL, &b, 10000);
        ck_assert_int_eq(b.code, FSR_UNIMPLEMENTED);
        box_dispose(&b);
    }
    env_close(&e);
}
END_TEST

/* ---- deadlines ---------------------------------------------------------------------- */

START_TEST(test_interop_deadline_exceeded)
{
    env e;
    env_open(&e, server_port, NULL);
    fsr_md md[] = { { "x-sleep-ms", "3000", 4 } };
    fsr_call_opts opts = { .timeout_ms = 300, .metadata = md, .n_metadata = 1 };
    box b = { 0 };
    echo_call(&e, ECHO, "slow", &opts, &b, 10000);
    ck_assert_int_eq(b.code, FSR_DEADLINE_EXCEEDED);
    int64_t ms = (b.t_end - b.t_start) / 1000;
    ck_assert_int_ge(ms, 290);
    ck_assert_int_lt(ms, 1500); /* our timer, not the server's 3 s sleep */
    ck_assert_ptr_null(b.resp);
    box_dispose(&b);

    /* RST_STREAM(CANCEL) only ended that stream: the connection serves the next call. */
    echo_call(&e, ECHO, "after", NULL, &b, 10000);
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_str_eq(echoed(&b), "after");
    box_dispose(&b);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_timeout_header)
{
    env e;
    env_open(&e, server_port, NULL);
    fsr_call_opts opts = { .timeout_ms = 5000 };
    box b = { 0 };
    echo_call(&e, ECHO, "t", &opts, &b, 10000);
    ck_assert_int_eq(b.code, FSR_OK);
    double left = atof(trailer(&b, "x-time-remaining"));
    ck_assert_msg(left > 3.0 && left <= 5.001, "server saw %.3f s left", left);
    box_dispose(&b);
    env_close(&e);
}
END_TEST

/* ---- metadata and sizes ------------------------------------------------------------- */

START_TEST(test_interop_metadata_round_trip)
{
    env e;
    env_open(&e, server_port, NULL);
    const char bin[] = { 0x00, 0x01, (char)0xfe, (char)0xff, 'a', 0x00 };
    fsr_md md[] = {
        { "x-echo-ascii", "hello world", 11 },
        { "x-echo-data-bin", bin, sizeof(bin) },
        { "x-echo-empty-bin", "", 0 },
        { "grpc-timeout", "1n", 2 },     /* reserved: never sent */
        { "content-type", "text/x", 6 }, /* reserved: never sent */
        { "x-echo-bad", "a\nb", 3 },     /* not printable: never sent */
    };
    fsr_call_opts opts = { .metadata = md, .n_metadata = FSR_ARRAY_SIZE(md) };
    box b = { 0 };
    echo_call(&e, ECHO, "md", &opts, &b, 10000);
    ck_assert_int_eq(b.code, FSR_OK);
    const kv *a = find(b.trl, b.n_trl, "x-echo-ascii");
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(a->val, "hello world");
    const kv *d = find(b.trl, b.n_trl, "x-echo-data-bin");
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(d->len, sizeof(bin));
    ck_assert_mem_eq(d->val, bin, sizeof(bin));
    const kv *z = find(b.trl, b.n_trl, "x-echo-empty-bin");
    ck_assert_ptr_nonnull(z);
    ck_assert_uint_eq(z->len, 0);
    ck_assert_ptr_null(find(b.trl, b.n_trl, "x-echo-bad"));
    ck_assert_str_eq(trailer(&b, "x-time-remaining"), "none");
    box_dispose(&b);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_large_message)
{
    env e;
    env_open(&e, server_port, NULL);
    size_t n = 3u << 20; /* 3 MiB: many DATA frames and window updates each way */
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    box b = { 0 };
    echo_call(&e, ECHO, big, NULL, &b, 30000);
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_uint_eq(strlen(echoed(&b)), n);
    ck_assert_int_eq(memcmp(echoed(&b), big, n), 0);
    box_dispose(&b);
    free(big);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_max_message_size)
{
    env e;
    fsr_channel_opts copts = { .max_message_size = 1u << 20 };
    env_open(&e, server_port, &copts);

    /* Too big to send: refused up front, callback never runs. */
    char *big = malloc((2u << 20) + 1);
    memset(big, 'q', 2u << 20);
    big[2u << 20] = '\0';
    Grpc__Health__V1__HealthCheckRequest req = make_req(big);
    box b = { 0 };
    ck_assert_int_eq(fsr_channel_unary(e.ch, ECHO, &req.base,
                                       &grpc__health__v1__health_check_request__descriptor, NULL,
                                       on_done, &b),
                     FSR_E_TOO_LARGE);
    run_for(e.loop, 50);
    ck_assert_int_eq(b.done, 0);
    free(big);

    /* Too big to receive: RESOURCE_EXHAUSTED, checked before buffering it. */
    fsr_md md[] = { { "x-big-response", "2097152", 7 } };
    fsr_call_opts opts = { .metadata = md, .n_metadata = 1 };
    echo_call(&e, ECHO, "x", &opts, &b, 20000);
    ck_assert_int_eq(b.code, FSR_RESOURCE_EXHAUSTED);
    ck_assert_ptr_null(b.resp);
    box_dispose(&b);

    /* Just under the limit is fine, and the connection survived the reset. */
    fsr_md md2[] = { { "x-big-response", "1000000", 7 } };
    opts.metadata = md2;
    echo_call(&e, ECHO, "x", &opts, &b, 20000);
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_uint_eq(strlen(echoed(&b)), 1000000);
    box_dispose(&b);
    env_close(&e);
}
END_TEST

/* ---- streaming ---------------------------------------------------------------------- */

START_TEST(test_interop_server_stream)
{
    env e;
    env_open(&e, server_port, NULL);
    fsr_md md[] = { { "x-count", "5", 1 } };
    fsr_call_opts opts = { .metadata = md, .n_metadata = 1 };
    Grpc__Health__V1__HealthCheckRequest req = make_req("tick");
    box b = { 0 };
    ck_assert_int_eq(fsr_channel_server_stream(e.ch, STREAM, &req.base,
                                               &grpc__health__v1__health_check_request__descriptor,
                                               &opts, on_msg, on_done, &b),
                     0);
    ck_assert(run_until(e.loop, &b.done, 1, 10000));
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_int_eq(b.n_msgs, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(b.msgs[i], "tick");
    ck_assert_ptr_null(b.resp);
    ck_assert_ptr_nonnull(trailer(&b, "x-server-id"));
    box_dispose(&b);

    /* Zero messages is a valid stream. */
    md[0].value = "0";
    ck_assert_int_eq(fsr_channel_server_stream(e.ch, STREAM, &req.base,
                                               &grpc__health__v1__health_check_request__descriptor,
                                               &opts, on_msg, on_done, &b),
                     0);
    ck_assert(run_until(e.loop, &b.done, 1, 10000));
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_int_eq(b.n_msgs, 0);
    box_dispose(&b);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_server_stream_error)
{
    env e;
    env_open(&e, server_port, NULL);
    fsr_md md[] = {
        { "x-count", "10", 2 },
        { "x-fail-after", "2", 1 },
        { "x-fail-message-bin", "gave up", 7 },
    };
    fsr_call_opts opts = { .metadata = md, .n_metadata = 3 };
    Grpc__Health__V1__HealthCheckRequest req = make_req("s");
    box b = { 0 };
    ck_assert_int_eq(fsr_channel_server_stream(e.ch, STREAM, &req.base,
                                               &grpc__health__v1__health_check_request__descriptor,
                                               &opts, on_msg, on_done, &b),
                     0);
    ck_assert(run_until(e.loop, &b.done, 1, 10000));
    ck_assert_int_eq(b.n_msgs, 2);
    ck_assert_int_eq(b.code, FSR_ABORTED);
    ck_assert_str_eq(b.message, "gave up");
    box_dispose(&b);

    /* grpc.health.v1.Health/Watch: a real generated-stub streaming method. */
    req = make_req("");
    ck_assert_int_eq(fsr_channel_server_stream(e.ch, WATCH, &req.base,
                                               &grpc__health__v1__health_check_response__descriptor,
                                               NULL, on_msg, on_done, &b),
                     0);
    ck_assert(run_until(e.loop, &b.done, 1, 10000));
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_int_eq(b.n_msgs, 1);
    box_dispose(&b);
    env_close(&e);
}
END_TEST

/* ---- retries ------------------------------------------------------------------------ */

START_TEST(test_interop_retry_idempotent)
{
    env e;
    fsr_channel_opts copts = { .max_attempts = 3, .backoff_base_ms = 10 };
    env_open(&e, server_port, &copts);
    char *tok = unique_token("ok");
    char spec[96];
    snprintf(spec, sizeof(spec), "%s:2", tok); /* fail twice, then succeed */
    fsr_md md[] = { { "x-fail-first", spec, strlen(spec) } };
    fsr_call_opts opts = { .metadata = md, .n_metadata = 1, .idempotent = true };
    box b = { 0 };
    echo_call(&e, ECHO, "retry me", &opts, &b, 10000);
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_str_eq(echoed(&b), "retry me");
    ck_assert_str_eq(trailer(&b, "x-attempt"), "3");
    box_dispose(&b);
    free(tok);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_retry_exhausted)
{
    env e;
    fsr_channel_opts copts = { .max_attempts = 3, .backoff_base_ms = 10 };
    env_open(&e, server_port, &copts);
    char *tok = unique_token("exhaust");
    char spec[96];
    snprintf(spec, sizeof(spec), "%s:100", tok);
    fsr_md md[] = { { "x-fail-first", spec, strlen(spec) } };
    fsr_call_opts opts = { .metadata = md, .n_metadata = 1, .idempotent = true };
    box b = { 0 };
    echo_call(&e, ECHO, "x", &opts, &b, 10000);
    ck_assert_int_eq(b.code, FSR_UNAVAILABLE);
    ck_assert_str_eq(b.message, "try again (attempt 3)"); /* exactly max_attempts tries */
    box_dispose(&b);

    /* Not idempotent: one attempt only. */
    opts.idempotent = false;
    echo_call(&e, ECHO, "x", &opts, &b, 10000);
    ck_assert_int_eq(b.code, FSR_UNAVAILABLE);
    ck_assert_str_eq(b.message, "try again (attempt 4)");
    box_dispose(&b);

    /* Other codes are never retried, idempotent or not. */
    fsr_md md2[] = { { "x-fail-code", "13", 2 } };
    fsr_call_opts o2 = { .metadata = md2, .n_metadata = 1, .idempotent = true };
    echo_call(&e, ECHO, "x", &o2, &b, 10000);
    ck_assert_int_eq(b.code, FSR_INTERNAL);
    ck_assert_str_eq(trailer(&b, "x-attempt"), "0");
    box_dispose(&b);
    free(tok);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_retry_within_deadline)
{
    env e;
    fsr_channel_opts copts = { .max_attempts = 50, .backoff_base_ms = 100 };
    env_open(&e, server_port, &copts);
    char *tok = unique_token("deadline");
    char spec[96];
    snprintf(spec, sizeof(spec), "%s:1000", tok);
    fsr_md md[] = { { "x-fail-first", spec, strlen(spec) } };
    fsr_call_opts opts = { .metadata = md, .n_metadata = 1, .idempotent = true, .timeout_ms = 400 };
    box b = { 0 };
    echo_call(&e, ECHO, "x", &opts, &b, 10000);
    ck_assert_msg(b.code == FSR_UNAVAILABLE || b.code == FSR_DEADLINE_EXCEEDED, "code %d", b.code);
    int64_t ms = (b.t_end - b.t_start) / 1000;
    ck_assert_int_lt(ms, 600); /* retries stop at the deadline, not after 50 attempts */
    box_dispose(&b);
    free(tok);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_connect_refused)
{
    int port = free_port(); /* nothing listens there */
    env e;
    fsr_channel_opts copts = { .max_attempts = 3, .backoff_base_ms = 20 };
    env_open(&e, port, &copts);
    fsr_call_opts opts = { .idempotent = true, .timeout_ms = 5000 };
    box b = { 0 };
    echo_call(&e, ECHO, "x", &opts, &b, 10000);
    ck_assert_int_eq(b.code, FSR_UNAVAILABLE);
    ck_assert_msg(strstr(b.message, "Connection refused") != NULL, "message: %s", b.message);
    box_dispose(&b);

    echo_call(&e, ECHO, "x", NULL, &b, 10000);
    ck_assert_int_eq(b.code, FSR_UNAVAILABLE);
    box_dispose(&b);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_connect_timeout_silent_peer)
{
    /* A listener that completes the TCP handshake (backlog) but never speaks HTTP/2. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(lfd, 16), 0);
    socklen_t len = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &len);
    env e;
    fsr_channel_opts copts = { .connect_timeout_ms = 300 };
    env_open(&e, ntohs(a.sin_port), &copts);
    box b = { 0 };
    echo_call(&e, ECHO, "x", NULL, &b, 10000); /* no deadline: only the connect timeout */
    ck_assert_int_eq(b.code, FSR_UNAVAILABLE);
    int64_t ms = (b.t_end - b.t_start) / 1000;
    ck_assert_int_ge(ms, 290);
    ck_assert_int_lt(ms, 2000);
    ck_assert_msg(strstr(b.message, "settings") != NULL, "message: %s", b.message);
    box_dispose(&b);
    env_close(&e);
    close(lfd);
}
END_TEST

START_TEST(test_interop_unresolvable_host)
{
    fsr_loop *loop;
    fsr_channel *ch;
    ck_assert_int_eq(fsr_loop_new(&loop), 0);
    fsr_channel_opts copts = { .connect_timeout_ms = 1000 };
    ck_assert_int_eq(fsr_channel_new(loop, "no-such-host.invalid:50051", &copts, &ch), 0);
    env e = { loop, ch };
    box b = { 0 };
    echo_call(&e, ECHO, "x", NULL, &b, 10000);
    ck_assert_int_eq(b.code, FSR_UNAVAILABLE);
    ck_assert_int_lt((b.t_end - b.t_start) / 1000, 3000);
    box_dispose(&b);
    env_close(&e);
}
END_TEST

/* ---- connections -------------------------------------------------------------------- */

START_TEST(test_interop_concurrent_one_connection)
{
    enum {
        N = 50
    };
    env e;
    env_open(&e, server_port, NULL);
    static box b[N];
    int done = 0;
    fsr_md md[] = { { "x-sleep-ms", "100", 3 } };
    fsr_call_opts opts = { .metadata = md, .n_metadata = 1 };
    char names[N][24];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "call-%d", i);
        Grpc__Health__V1__HealthCheckRequest req = make_req(names[i]);
        memset(&b[i], 0, sizeof(b[i]));
        ck_assert_int_eq(fsr_channel_unary(e.ch, ECHO, &req.base,
                                           &grpc__health__v1__health_check_request__descriptor,
                                           &opts, on_done, &b[i]),
                         0);
    }
    int64_t t0 = fsr_now_us();
    while (done < N && fsr_now_us() - t0 < 20000000) {
        run_for(e.loop, 20);
        done = 0;
        for (int i = 0; i < N; i++)
            done += b[i].done;
    }
    ck_assert_int_eq(done, N);
    /* 50 calls sleeping 100 ms each finish together: they ran concurrently... */
    ck_assert_int_lt((fsr_now_us() - t0) / 1000, 3000);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(b[i].code, FSR_OK);
        ck_assert_str_eq(echoed(&b[i]), names[i]);
        /* ...as streams of one connection: the server saw a single client address. */
        ck_assert_str_eq(trailer(&b[i], "x-peer"), trailer(&b[0], "x-peer"));
    }
    for (int i = 0; i < N; i++)
        box_dispose(&b[i]);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_localhost_name)
{
    /* "localhost" may resolve to ::1 first; the server only listens on 127.0.0.1. */
    fsr_loop *loop;
    fsr_channel *ch;
    ck_assert_int_eq(fsr_loop_new(&loop), 0);
    char target[64];
    snprintf(target, sizeof(target), "localhost:%d", server_port);
    ck_assert_int_eq(fsr_channel_new(loop, target, NULL, &ch), 0);
    env e = { loop, ch };
    box b = { 0 };
    echo_call(&e, ECHO, "by name", NULL, &b, 10000);
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_str_eq(echoed(&b), "by name");
    box_dispose(&b);
    env_close(&e);
}
END_TEST

START_TEST(test_interop_reconnect)
{
    int port;
    pid_t a = spawn_server(0, "A", &port);
    env e;
    env_open(&e, port, NULL);
    box b = { 0 };
    echo_call(&e, ECHO, "one", NULL, &b, 10000);
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_str_eq(trailer(&b, "x-server-id"), "A");
    box_dispose(&b);

    kill_server(a, SIGKILL);
    run_for(e.loop, 100); /* let the client see the EOF */
    echo_call(&e, ECHO, "two", NULL, &b, 10000);
    ck_assert_int_eq(b.code, FSR_UNAVAILABLE);
    box_dispose(&b);

    int port2;
    pid_t bsrv = spawn_server(port, "B", &port2);
    ck_assert_int_eq(port2, port);
    echo_call(&e, ECHO, "three", NULL, &b, 10000);
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_str_eq(echoed(&b), "three");
    ck_assert_str_eq(trailer(&b, "x-server-id"), "B");
    box_dispose(&b);
    env_close(&e);
    kill_server(bsrv, SIGTERM);
}
END_TEST

START_TEST(test_interop_goaway)
{
    int port;
    pid_t a = spawn_server(0, "A", &port);
    env e;
    env_open(&e, port, NULL);

    /* A long call in flight on A's connection... */
    fsr_md slow[] = { { "x-sleep-ms", "1500", 4 } };
    fsr_call_opts slow_opts = { .metadata = slow, .n_metadata = 1 };
    Grpc__Health__V1__HealthCheckRequest req = make_req("long");
    box lb = { 0 };
    ck_assert_int_eq(fsr_channel_unary(e.ch, ECHO, &req.base,
                                       &grpc__health__v1__health_check_request__descriptor,
                                       &slow_opts, on_done, &lb),
                     0);
    /* ...while A shuts down gracefully (GOAWAY, 5 s grace). */
    fsr_md stop[] = { { "x-shutdown", "5000", 4 } };
    fsr_call_opts stop_opts = { .metadata = stop, .n_metadata = 1 };
    box b = { 0 };
    echo_call(&e, ECHO, "stop", &stop_opts, &b, 10000);
    ck_assert_int_eq(b.code, FSR_OK);
    box_dispose(&b);
    run_for(e.loop, 400); /* GOAWAY arrives */

    /* B takes over the port; a new call must open a new connection to reach it. */
    int port2;
    pid_t bsrv = spawn_server(port, "B", &port2);
    echo_call(&e, ECHO, "new", NULL, &b, 10000);
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_str_eq(trailer(&b, "x-server-id"), "B");
    box_dispose(&b);

    /* The old stream (below GOAWAY's last stream id) still completes on A. */
    ck_assert(run_until(e.loop, &lb.done, 1, 10000));
    ck_assert_int_eq(lb.code, FSR_OK);
    ck_assert_str_eq(echoed(&lb), "long");
    ck_assert_str_eq(trailer(&lb, "x-server-id"), "A");
    box_dispose(&lb);
    env_close(&e);
    kill_server(bsrv, SIGTERM);
    kill_server(a, SIGKILL);
}
END_TEST

/* ---- propagation through an fsr server ---------------------------------------------- */

/*
 * client → fsr server (in this process) → fsr_channel with |parent| → grpcio.  The handler
 * reports what grpcio saw: the x-request-id and the time left of the propagated deadline.
 */
static void *proxy_thread_init(fsr_loop *loop, void *arg)
{
    (void)arg;
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", server_port);
    fsr_channel *ch = NULL;
    if (fsr_channel_new(loop, target, NULL, &ch) != 0)
        abort();
    return ch;
}

static void proxy_thread_dispose(void *ctx, void *arg)
{
    (void)arg;
    fsr_channel_free(ctx);
}

static void on_upstream(const fsr_result *res, void *arg)
{
    fsr_call *call = arg;
    if (res->status.code != FSR_OK) {
        fsr_call_finish(call, res->status.code, res->status.message);
        return;
    }
    Fsrtest__V1__EchoResponse resp;
    fsrtest__v1__echo_response__init(&resp);
    resp.message = "";
    resp.deadline_ms = -1;
    for (size_t i = 0; i < res->n_trailers; i++) {
        if (strcmp(res->trailers[i].key, "x-request-id") == 0)
            resp.message = fsr_call_printf(call, "%s", res->trailers[i].value);
        if (strcmp(res->trailers[i].key, "x-time-remaining") == 0 &&
            strcmp(res->trailers[i].value, "none") != 0)
            resp.deadline_ms = (int64_t)(atof(res->trailers[i].value) * 1000);
    }
    fsr_call_reply(call, &resp.base);
}

static void proxy_echo(fsr_call *call, const ProtobufCMessage *msg)
{
    const Fsrtest__V1__EchoRequest *req = (const Fsrtest__V1__EchoRequest *)msg;
    Grpc__Health__V1__HealthCheckRequest up = make_req(req->message);
    fsr_call_opts opts = { .parent = call };
    int rv = fsr_channel_unary(fsr_call_ctx(call), ECHO, &up.base,
                               &grpc__health__v1__health_check_request__descriptor, &opts,
                               on_upstream, call);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "upstream");
}

static const fsr_method proxy_methods[] = {
    { "Echo", proxy_echo, 0, 0 },
    { "Stream", NULL, 0, 0 },
};

static void *run_server(void *arg)
{
    fsr_server_run(arg);
    return NULL;
}

START_TEST(test_interop_parent_propagation)
{
    char dir[] = "/tmp/fsr-interop-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char port_file[64];
    snprintf(port_file, sizeof(port_file), "%s/port", dir);
    fsr_server_config cfg = {
        .name = "proxy",
        .host = "127.0.0.1",
        .port = 0,
        .port_file = port_file,
        .threads = 1,
        .thread_init = proxy_thread_init,
        .thread_dispose = proxy_thread_dispose,
    };
    static const fsr_service svc =
        FSR_SERVICE(&fsrtest__v1__test_service__descriptor, proxy_methods);
    fsr_server *srv;
    ck_assert_int_eq(fsr_server_new(&cfg, &srv), 0);
    ck_assert_int_eq(fsr_server_add_service(srv, &svc), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, run_server, srv), 0);
    int port = 0;
    for (int i = 0; i < 500 && port <= 0; i++) {
        FILE *f = fopen(port_file, "r");
        if (f != NULL) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port <= 0)
            usleep(10000);
    }
    ck_assert_int_gt(port, 0);

    env e;
    env_open(&e, port, NULL);
    Fsrtest__V1__EchoRequest req;
    fsrtest__v1__echo_request__init(&req);
    req.message = "via proxy";
    fsr_md md[] = { { "x-request-id", "req-parent-42", 13 } };
    fsr_call_opts opts = { .timeout_ms = 3000, .metadata = md, .n_metadata = 1 };
    box b = { 0 };
    ck_assert_int_eq(fsr_channel_unary(e.ch, "/fsrtest.v1.TestService/Echo", &req.base,
                                       &fsrtest__v1__echo_response__descriptor, &opts, on_done, &b),
                     0);
    ck_assert(run_until(e.loop, &b.done, 1, 10000));
    ck_assert_msg(b.code == FSR_OK, "code %d: %s", b.code, b.message);
    Fsrtest__V1__EchoResponse *resp = (Fsrtest__V1__EchoResponse *)b.resp;
    /* grpcio saw our request id, and a deadline shrunk from ours, not a fresh one. */
    ck_assert_str_eq(resp->message, "req-parent-42");
    ck_assert_int_gt(resp->deadline_ms, 1500);
    ck_assert_int_le(resp->deadline_ms, 3000);
    box_dispose(&b);

    /* Without a deadline of our own, none propagates either. */
    fsr_call_opts no_deadline = { .metadata = md, .n_metadata = 1 };
    ck_assert_int_eq(fsr_channel_unary(e.ch, "/fsrtest.v1.TestService/Echo", &req.base,
                                       &fsrtest__v1__echo_response__descriptor, &no_deadline,
                                       on_done, &b),
                     0);
    ck_assert(run_until(e.loop, &b.done, 1, 10000));
    ck_assert_int_eq(b.code, FSR_OK);
    ck_assert_int_eq(((Fsrtest__V1__EchoResponse *)b.resp)->deadline_ms, -1);
    box_dispose(&b);

    env_close(&e);
    fsr_server_stop(srv);
    pthread_join(th, NULL);
    fsr_server_free(srv);
    unlink(port_file);
    rmdir(dir);
}
END_TEST

/* ---- lifecycle ---------------------------------------------------------------------- */

START_TEST(test_interop_channel_free_cancels)
{
    env e;
    env_open(&e, server_port, NULL);
    fsr_md md[] = { { "x-sleep-ms", "2000", 4 } };
    fsr_call_opts opts = { .metadata = md, .n_metadata = 1 };
    Grpc__Health__V1__HealthCheckRequest req = make_req("x");
    box b1 = { 0 }, b2 = { 0 };
    ck_assert_int_eq(fsr_channel_unary(e.ch, ECHO, &req.base,
                                       &grpc__health__v1__health_check_request__descriptor, &opts,
                                       on_done, &b1),
                     0);
    run_for(e.loop, 200); /* b1 is on the wire */
    ck_assert_int_eq(fsr_channel_unary(e.ch, ECHO, &req.base,
                                       &grpc__health__v1__health_check_request__descriptor, &opts,
                                       on_done, &b2),
                     0); /* b2 not even started */
    fsr_channel_free(e.ch);
    ck_assert_int_eq(b1.done, 1);
    ck_assert_int_eq(b1.code, FSR_CANCELLED);
    ck_assert_int_eq(b2.done, 1);
    ck_assert_int_eq(b2.code, FSR_CANCELLED);
    run_for(e.loop, 50); /* nothing fires afterwards */
    ck_assert_int_eq(b1.done, 1);
    ck_assert_int_eq(b2.done, 1);
    box_dispose(&b1);
    box_dispose(&b2);
    fsr_loop_free(e.loop);
}
END_TEST

typedef struct reentrant {
    fsr_channel *ch;
    box b;
} reentrant;

static void on_done_free_channel(const fsr_result *res, void *arg)
{
    reentrant *r = arg;
    on_done(res, &r->b);
    fsr_channel_free(r->ch); /* from inside the callback: must be safe */
    r->ch = NULL;
}

START_TEST(test_interop_free_from_callback)
{
    env e;
    env_open(&e, server_port, NULL);
    reentrant r = { .ch = e.ch };
    Grpc__Health__V1__HealthCheckRequest req = make_req("bye");
    box other = { 0 };
    fsr_md md[] = { { "x-sleep-ms", "2000", 4 } };
    fsr_call_opts slow = { .metadata = md, .n_metadata = 1 };
    ck_assert_int_eq(fsr_channel_unary(e.ch, ECHO, &req.base,
                                       &grpc__health__v1__health_check_request__descriptor, &slow,
                                       on_done, &other),
                     0);
    ck_assert_int_eq(fsr_channel_unary(e.ch, ECHO, &req.base,
                                       &grpc__health__v1__health_check_request__descriptor, NULL,
                                       on_done_free_channel, &r),
                     0);
    ck_assert(run_until(e.loop, &r.b.done, 1, 10000));
    ck_assert_ptr_null(r.ch);
    ck_assert_int_eq(r.b.code, FSR_OK);
    ck_assert_int_eq(other.done, 1);
    ck_assert_int_eq(other.code, FSR_CANCELLED);
    run_for(e.loop, 50);
    box_dispose(&r.b);
    box_dispose(&other);
    fsr_loop_free(e.loop);
}
END_TEST

START_TEST(test_interop_bad_target)
{
    fsr_loop *loop;
    ck_assert_int_eq(fsr_loop_new(&loop), 0);
    const char *bad[] = { "nohost",     "host:",  "host:abc", ":80", "host:0",
                          "host:70000", "::1:80", "[::1:80",  "" };
    for (size_t i = 0; i < FSR_ARRAY_SIZE(bad); i++) {
        fsr_channel *ch = (fsr_channel *)(uintptr_t)1;
        ck_assert_msg(fsr_channel_new(loop, bad[i], NULL, &ch) == FSR_E_CONFIG, "%s", bad[i]);
        ck_assert_ptr_eq(ch, (fsr_channel *)(uintptr_t)1); /* untouched */
    }
    fsr_channel *ch = NULL;
    ck_assert_int_eq(fsr_channel_new(loop, "[::1]:50051", NULL, &ch), 0);
    fsr_channel_free(ch);
    fsr_channel_free(NULL);
    fsr_loop_free(loop);
}
END_TEST

static Suite *interop_suite(void)
{
    Suite *s = suite_create("client_vs_grpcio");
    TCase *tc;

    tc = tcase_create("unary");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_interop_unary_echo);
    tcase_add_test(tc, test_interop_unary_empty_message);
    tcase_add_test(tc, test_interop_health_check);
    tcase_add_test(tc, test_interop_blocking);
    tcase_add_test(tc, test_interop_generated_stubs);
    suite_add_tcase(s, tc);

    tc = tcase_create("status");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_interop_error_codes);
    tcase_add_test(tc, test_interop_status_details);
    tcase_add_test(tc, test_interop_unimplemented);
    suite_add_tcase(s, tc);

    tc = tcase_create("deadline");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_interop_deadline_exceeded);
    tcase_add_test(tc, test_interop_timeout_header);
    suite_add_tcase(s, tc);

    tc = tcase_create("metadata_and_size");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_interop_metadata_round_trip);
    tcase_add_test(tc, test_interop_large_message);
    tcase_add_test(tc, test_interop_max_message_size);
    suite_add_tcase(s, tc);

    tc = tcase_create("server_stream");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_interop_server_stream);
    tcase_add_test(tc, test_interop_server_stream_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("retry");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_interop_retry_idempotent);
    tcase_add_test(tc, test_interop_retry_exhausted);
    tcase_add_test(tc, test_interop_retry_within_deadline);
    tcase_add_test(tc, test_interop_connect_refused);
    tcase_add_test(tc, test_interop_connect_timeout_silent_peer);
    tcase_add_test(tc, test_interop_unresolvable_host);
    suite_add_tcase(s, tc);

    tc = tcase_create("connection");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_interop_concurrent_one_connection);
    tcase_add_test(tc, test_interop_localhost_name);
    tcase_add_test(tc, test_interop_reconnect);
    tcase_add_test(tc, test_interop_goaway);
    suite_add_tcase(s, tc);

    tc = tcase_create("propagation");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_interop_parent_propagation);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_interop_channel_free_cancels);
    tcase_add_test(tc, test_interop_free_from_callback);
    tcase_add_test(tc, test_interop_bad_target);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *port = getenv("FSR_GRPCIO_PORT");
    server_script = getenv("FSR_GRPCIO_SERVER");
    if (port == NULL || server_script == NULL) {
        fprintf(stderr, "run through client_vs_grpcio.sh (FSR_GRPCIO_PORT, FSR_GRPCIO_SERVER)\n");
        return 77;
    }
    server_port = atoi(port);
    signal(SIGPIPE, SIG_IGN);
    /* Server logs go to stdout, which carries TAP here: keep them to errors. */
    fsr_log_init("client_vs_grpcio", "error", NULL);
    SRunner *sr = srunner_create(interop_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
