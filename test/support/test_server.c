/* SPDX-License-Identifier: MIT */
/*
 * fsr-test-server: a real fsr server with the test-only fsrtest.v1.TestService, for the
 * runtime's integration, interop (grpcio, buf curl) and benchmark suites.  Configured like
 * every service: PORT (0 = ephemeral), PORT_FILE, THREADS, LOG_LEVEL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "fsr/log.h"
#include "fsr/server.h"
#include "fsrtest.pb-c.h"

typedef struct pending {
    fsr_call *call;
    const Fsrtest__V1__EchoRequest *req;
    struct event *timer;
    int sent;
} pending;

static void fill_response(fsr_call *call, const Fsrtest__V1__EchoRequest *req,
                          Fsrtest__V1__EchoResponse *resp, int index)
{
    fsrtest__v1__echo_response__init(resp);
    resp->message = req->message;
    resp->index = index;
    if (req->reply_size > 0) {
        resp->payload.len = (size_t)req->reply_size;
        resp->payload.data = fsr_call_alloc(call, (size_t)req->reply_size);
        memset(resp->payload.data, 'x', (size_t)req->reply_size);
    } else {
        resp->payload = req->payload;
    }
    size_t n;
    const fsr_md *md = fsr_call_metadata_all(call, &n);
    resp->metadata = fsr_call_alloc(call, (n + 1) * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        if (fsr_md_is_binary(md[i].key)) {
            char *hex = fsr_call_alloc(call, md[i].value_len * 2 + 1);
            for (size_t k = 0; k < md[i].value_len; k++)
                snprintf(hex + 2 * k, 3, "%02x", (unsigned char)md[i].value[k]);
            resp->metadata[resp->n_metadata++] = fsr_call_printf(call, "%s=%s", md[i].key, hex);
        } else {
            resp->metadata[resp->n_metadata++] =
                fsr_call_printf(call, "%s=%s", md[i].key, md[i].value);
        }
    }
    int64_t dl = fsr_call_deadline(call);
    resp->deadline_ms = dl == INT64_MAX ? -1 : (dl - fsr_now_us()) / 1000;
}

/* Echo request metadata back: "x-*" keys as trailers, so clients see the round trip. */
static void echo_trailers(fsr_call *call)
{
    size_t n;
    const fsr_md *md = fsr_call_metadata_all(call, &n);
    for (size_t i = 0; i < n; i++)
        if (strncmp(md[i].key, "x-", 2) == 0 && strcmp(md[i].key, "x-request-id") != 0)
            fsr_call_add_trailer(call, md[i].key, md[i].value, md[i].value_len);
}

static void finish_echo(fsr_call *call, const Fsrtest__V1__EchoRequest *req)
{
    echo_trailers(call);
    if (req->bad_field != NULL && req->bad_field[0] != '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, req->bad_field, "is not acceptable");
        return;
    }
    if (req->code != 0) {
        fsr_call_finish(call, (fsr_code)req->code, req->error_message);
        return;
    }
    Fsrtest__V1__EchoResponse resp;
    fill_response(call, req, &resp, 0);
    fsr_call_reply(call, &resp.base);
}

static void on_echo_timer(evutil_socket_t fd, short what, void *arg)
{
    pending *p = arg;
    (void)fd;
    (void)what;
    event_free(p->timer);
    /* After a deadline the runtime has already answered; finishing is still required. */
    if (fsr_call_is_cancelled(p->call))
        fsr_call_finish(p->call, FSR_CANCELLED, NULL);
    else
        finish_echo(p->call, p->req);
}

static void arm(pending *p, event_callback_fn fn, int ms)
{
    p->timer = evtimer_new(fsr_loop_base(fsr_call_loop(p->call)), fn, p);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    event_add(p->timer, &tv);
}

/* message "finish-on-cancel": the handler finishes the call inside its cancel callback. */
static void on_echo_cancel(fsr_call *call, void *arg)
{
    pending *p = arg;
    event_free(p->timer);
    p->timer = NULL;
    fsr_call_finish(call, FSR_CANCELLED, NULL);
}

static void echo(fsr_call *call, const ProtobufCMessage *msg)
{
    const Fsrtest__V1__EchoRequest *req = (const Fsrtest__V1__EchoRequest *)msg;
    if (req->sleep_ms > 0) {
        pending *p = fsr_call_alloc(call, sizeof(*p));
        p->call = call;
        p->req = req;
        arm(p, on_echo_timer, req->sleep_ms);
        if (strcmp(req->message, "finish-on-cancel") == 0)
            fsr_call_on_cancel(call, on_echo_cancel, p);
        return;
    }
    finish_echo(call, req);
}

static void on_stream_timer(evutil_socket_t fd, short what, void *arg)
{
    pending *p = arg;
    (void)fd;
    (void)what;
    if (p->timer != NULL)
        event_free(p->timer);
    p->timer = NULL;
    if (fsr_call_is_cancelled(p->call)) {
        fsr_call_finish(p->call, FSR_CANCELLED, NULL);
        return;
    }
    while (p->sent < p->req->stream_count) {
        Fsrtest__V1__EchoResponse resp;
        fill_response(p->call, p->req, &resp, p->sent);
        if (fsr_call_send(p->call, &resp.base) != 0) {
            fsr_call_finish(p->call, FSR_CANCELLED, NULL);
            return;
        }
        p->sent++;
        if (p->req->sleep_ms > 0 && p->sent < p->req->stream_count) {
            arm(p, on_stream_timer, p->req->sleep_ms);
            return;
        }
    }
    if (p->req->code != 0)
        fsr_call_finish(p->call, (fsr_code)p->req->code, p->req->error_message);
    else
        fsr_call_finish(p->call, FSR_OK, NULL);
}

static void stream(fsr_call *call, const ProtobufCMessage *msg)
{
    pending *p = fsr_call_alloc(call, sizeof(*p));
    p->call = call;
    p->req = (const Fsrtest__V1__EchoRequest *)msg;
    on_stream_timer(-1, 0, p);
}

static const fsr_method test_methods[] = {
    { "Echo", echo, FSR_M_IDEMPOTENT, 0 },
    { "Stream", stream, FSR_M_SERVER_STREAM, 0 },
};
static const fsr_service test_service =
    FSR_SERVICE(&fsrtest__v1__test_service__descriptor, test_methods);

int main(void)
{
    const char *port = getenv("PORT");
    const char *threads = getenv("THREADS");
    fsr_log_init("test-server", getenv("LOG_LEVEL"), NULL);
    fsr_server_config cfg = {
        .name = "test-server",
        .port = port != NULL ? atoi(port) : 0,
        .port_file = getenv("PORT_FILE"),
        .threads = threads != NULL ? atoi(threads) : 0,
        .grace_ms = 3000,
        .header_timeout_ms =
            getenv("HEADER_TIMEOUT_MS") ? (uint32_t)atoi(getenv("HEADER_TIMEOUT_MS")) : 0,
        .idle_timeout_ms =
            getenv("IDLE_TIMEOUT_MS") ? (uint32_t)atoi(getenv("IDLE_TIMEOUT_MS")) : 0,
    };
    fsr_server *srv;
    if (fsr_server_new(&cfg, &srv) != 0 || fsr_server_add_service(srv, &test_service) != 0)
        return 1;
    int rv = fsr_server_run(srv);
    fsr_server_free(srv);
    return rv == 0 ? 0 : 1;
}
