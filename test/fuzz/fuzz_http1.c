/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: HTTP/1.1 requests exactly as a service port parses them (lib/server_h1.c on
 * Debian's http-parser).  Each input is the byte stream a client sends on one connection:
 * it is written into one end of a socketpair whose other end goes to fsr__h1_accept(), the
 * function the listener calls once it has seen an HTTP/1.1 request line, and the worker's
 * loop runs until the connection is closed (end of input) or stops making progress.  So the
 * real read/parse/limit/pipelining/response code runs, not a copy of it.
 *
 * The application handler answers at once, except for paths containing "defer", which it
 * answers from the loop afterwards (the request is then pending while more input, or the
 * end of the connection, arrives).  Limits are small (2 KiB of headers, 4 KiB of body) so
 * the 431 and 413 paths are reachable with short inputs.
 */
#include "../../lib/server_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fsr/http.h"
#include "fsr/log.h"
#include "fsr/loop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fsr_server fuzz_srv;
static srv_worker fuzz_w;

static void respond_later(void *arg)
{
    fsr_http_req *r = arg;
    fsr_http_respond(r, 202, "text/plain", "later", 5);
}

static void on_request(fsr_http_req *r, void *arg)
{
    (void)arg;
    /* Read everything a handler may read; lengths must agree with the strings. */
    const char *path = fsr_http_req_path(r);
    const char *query = fsr_http_req_query(r);
    if (path == NULL || query == NULL || fsr_http_req_method(r) == NULL)
        abort();
    size_t blen = 0;
    const char *body = fsr_http_req_body(r, &blen);
    if (body == NULL || (blen > 0 && body[blen] != '\0'))
        abort();
    const char *ct = fsr_http_req_header(r, "content-type");
    if (ct != NULL)
        fsr_http_add_header(r, "x-echo-content-type", ct);
    if (strstr(path, "defer") != NULL) {
        fsr_loop_defer(fuzz_w.loop, respond_later, r);
        return;
    }
    fsr_http_respond(r, 200, "application/octet-stream", body, blen);
}

static void setup(void)
{
    fsr_log_init("fuzz", "error", NULL);
    fuzz_srv.cfg.name = "fuzz";
    fuzz_srv.cfg.max_header_size = 2048;
    fuzz_srv.cfg.max_http_body = 4096;
    fuzz_srv.cfg.idle_timeout_ms = 60000;
    fuzz_srv.cfg.header_timeout_ms = 60000;
    fuzz_srv.cfg.http_handler = on_request;
    fuzz_w.srv = &fuzz_srv;
    if (fsr_loop_new(&fuzz_w.loop) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_w.loop == NULL)
        setup();
    if (size > 65536)
        return 0; /* more than one socket buffer: not what this target is about */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        abort();
    int sz = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(sv[1], data + off, size - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    shutdown(sv[1], SHUT_WR); /* the client is done: EOF after its bytes */
    fsr__h1_accept(&fuzz_w, sv[0]);
    struct event_base *base = fsr_loop_base(fuzz_w.loop);
    char sink[65536];
    for (int i = 0; i < 64 && fuzz_w.h1_conns != NULL; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        while (read(sv[1], sink, sizeof(sink)) > 0) /* drain responses */
            ;
    }
    fsr__h1_drain_all(&fuzz_w, true);
    event_base_loop(base, EVLOOP_NONBLOCK); /* deferred responses and frees */
    event_base_loop(base, EVLOOP_NONBLOCK);
    if (fuzz_w.h1_conns != NULL)
        abort();
    close(sv[1]);
    return 0;
}
