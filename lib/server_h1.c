/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 connections on a service port, parsed by Debian's http-parser (the parser
 * Node.js used before llhttp).  One request at a time per connection: after a request is
 * complete the parser is paused until its response is written, so pipelined requests are
 * answered in order and a slow handler holds back only its own connection.
 *
 * Limits: the request line plus headers may not exceed max_header_size (431), the body
 * max_http_body (413); a request must arrive completely within header_timeout_ms of its
 * first byte (slow clients are cut off: 408), and an idle keep-alive connection closes
 * after idle_timeout_ms.
 */
#include "server_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <http_parser.h>

#include "fsr/log.h"

#define READ_CHUNK 16384

typedef struct h1_conn {
    struct h1_conn *prev, *next;
    srv_worker *w;
    int fd;
    struct event *rev, *wev, *timer;
    http_parser parser;
    fsr_http_req *cur;     /* being parsed */
    fsr_http_req *pending; /* dispatched, awaiting its response */
    char *url;
    size_t url_len;
    fsr_md *hdrs;
    size_t n_hdrs, cap_hdrs;
    bool in_value; /* http-parser alternates field/value callbacks, possibly split */
    size_t header_bytes;
    char *body;
    size_t body_len, body_cap;
    int error_status; /* a limit was hit: answer this and close */
    bool keep_alive;
    bool expect_continue;
    uint8_t *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off, out_cap;
    bool close_after_write;
    bool closed;
    int in_callbacks; /* >0 while inside http_parser_execute or dispatch */
} h1_conn;

static void h1_close(h1_conn *c);
static void h1_process(h1_conn *c);

static void arm_timer(h1_conn *c, uint32_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    event_add(c->timer, &tv);
}

static void out_add(h1_conn *c, const char *d, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        c->out = fsr_xrealloc(c->out, cap);
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, d, n);
    c->out_len += n;
}

/* Writes what is buffered; returns -1 if the connection is gone. */
static int h1_flush(h1_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(c->wev, NULL);
                return 0;
            }
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    event_del(c->wev);
    if (c->close_after_write) {
        shutdown(c->fd, SHUT_WR);
        return -1;
    }
    return 0;
}

/* Writes a complete response into the output buffer. */
static void write_response(h1_conn *c, int status, const char *reason, const fsr_md *hdrs,
                           size_t n_hdrs, const char *body, size_t len, bool head)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s", status,
                     reason, len, c->keep_alive ? "" : "Connection: close\r\n");
    out_add(c, line, (size_t)n);
    for (size_t i = 0; i < n_hdrs; i++) {
        out_add(c, hdrs[i].key, strlen(hdrs[i].key));
        out_add(c, ": ", 2);
        out_add(c, hdrs[i].value, hdrs[i].value_len);
        out_add(c, "\r\n", 2);
    }
    out_add(c, "\r\n", 2);
    if (!head)
        out_add(c, body, len);
    if (!c->keep_alive)
        c->close_after_write = true;
}

/* Answers a protocol-level error (limits, malformed request) and closes. */
static void h1_fail(h1_conn *c, int status)
{
    c->keep_alive = false;
    char body[128];
    int n = fsr__http_error_body(status, body, sizeof(body));
    static const fsr_md ct = { "Content-Type", "application/json", 16 };
    write_response(c, status, fsr__http_reason(status), &ct, 1, body, (size_t)n, false);
    if (h1_flush(c) != 0 || c->out_len == 0)
        h1_close(c);
}

/* ---- http-parser callbacks ----------------------------------------------------------- */

static int count_header(h1_conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->w->srv->cfg.max_header_size) {
        c->error_status = 431;
        return -1;
    }
    return 0;
}

static char *grow(fsr_arena *a, char *old, size_t old_len, const char *add, size_t n)
{
    char *p = fsr_arena_alloc(a, old_len + n + 1);
    if (old_len)
        memcpy(p, old, old_len);
    memcpy(p + old_len, add, n);
    p[old_len + n] = '\0';
    return p;
}

static int on_message_begin(http_parser *p)
{
    h1_conn *c = p->data;
    fsr__worker_count_request(c->w);
    c->cur = fsr__http_req_new(c->w);
    c->url = NULL;
    c->url_len = 0;
    c->hdrs = NULL;
    c->n_hdrs = c->cap_hdrs = 0;
    c->in_value = false;
    c->header_bytes = 0;
    c->body_len = 0;
    c->expect_continue = false;
    arm_timer(c, c->w->srv->cfg.header_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    h1_conn *c = p->data;
    if (count_header(c, n) != 0)
        return -1;
    c->url = grow(&c->cur->arena, c->url, c->url_len, at, n);
    c->url_len += n;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    h1_conn *c = p->data;
    if (count_header(c, n + 4) != 0)
        return -1;
    fsr_arena *a = &c->cur->arena;
    if (c->in_value || c->n_hdrs == 0) {
        if (c->n_hdrs == c->cap_hdrs) {
            size_t cap = c->cap_hdrs ? c->cap_hdrs * 2 : 16;
            fsr_md *h = fsr_arena_alloc(a, cap * sizeof(*h));
            if (c->n_hdrs)
                memcpy(h, c->hdrs, c->n_hdrs * sizeof(*h));
            c->hdrs = h;
            c->cap_hdrs = cap;
        }
        fsr_md *h = &c->hdrs[c->n_hdrs++];
        h->key = grow(a, NULL, 0, at, n);
        h->value = "";
        h->value_len = 0;
        c->in_value = false;
    } else {
        fsr_md *h = &c->hdrs[c->n_hdrs - 1];
        h->key = grow(a, (char *)(uintptr_t)h->key, strlen(h->key), at, n);
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    h1_conn *c = p->data;
    if (count_header(c, n) != 0)
        return -1;
    if (c->n_hdrs == 0)
        return -1;
    fsr_md *h = &c->hdrs[c->n_hdrs - 1];
    h->value = grow(&c->cur->arena, (char *)(uintptr_t)h->value, h->value_len, at, n);
    h->value_len += n;
    c->in_value = true;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    h1_conn *c = p->data;
    if (p->http_major != 1) {
        c->error_status = 505;
        return -1;
    }
    /* Lowercase names: h2 and our lookups agree on that form. */
    for (size_t i = 0; i < c->n_hdrs; i++) {
        for (char *k = (char *)(uintptr_t)c->hdrs[i].key; *k; k++)
            if (*k >= 'A' && *k <= 'Z')
                *k = (char)(*k - 'A' + 'a');
        if (strcmp(c->hdrs[i].key, "expect") == 0 &&
            strcasecmp(c->hdrs[i].value, "100-continue") == 0)
            c->expect_continue = true;
    }
    if (p->content_length != ULLONG_MAX && p->content_length > c->w->srv->cfg.max_http_body) {
        c->error_status = 413;
        return -1;
    }
    if (c->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        out_add(c, cont, sizeof(cont) - 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    h1_conn *c = p->data;
    if (c->body_len + n > c->w->srv->cfg.max_http_body) {
        c->error_status = 413;
        return -1;
    }
    if (c->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 1024;
        while (cap < c->body_len + n + 1)
            cap *= 2;
        c->body = fsr_xrealloc(c->body, cap);
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, n);
    c->body_len += n;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    h1_conn *c = p->data;
    fsr_http_req *r = c->cur;
    fsr_arena *a = &r->arena;
    c->cur = NULL;
    r->method = http_method_str((enum http_method)p->method);
    const char *url = c->url != NULL ? c->url : "/";
    const char *q = strchr(url, '?');
    r->path = q ? fsr_arena_strndup(a, url, (size_t)(q - url)) : url;
    r->query = q ? q + 1 : "";
    r->headers = c->hdrs;
    r->n_headers = c->n_hdrs;
    r->body = c->body_len ? fsr_arena_strndup(a, c->body, c->body_len) : "";
    r->body_len = c->body_len;
    const char *rid = fsr_http_req_header(r, "x-request-id");
    if (rid != NULL && fsr__request_id_ok(rid, strlen(rid)))
        snprintf(r->request_id, sizeof(r->request_id), "%s", rid);
    else
        fsr__request_id_new(r->request_id);
    c->keep_alive = http_should_keep_alive(p) != 0 && !c->w->draining;
    r->h1 = c;
    c->pending = r;
    event_del(c->timer); /* no timeout while the handler works */
    /* One request at a time: stop here until this one is answered. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connection ---------------------------------------------------------------------- */

/* Parses buffered input until a request is complete (then dispatches it) or input runs out. */
static void h1_process(h1_conn *c)
{
    while (!c->closed && c->pending == NULL && c->in_len > 0) {
        c->in_callbacks++;
        size_t n = http_parser_execute(&c->parser, &settings, (const char *)c->in, c->in_len);
        c->in_callbacks--;
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        memmove(c->in, c->in + n, c->in_len - n);
        c->in_len -= n;
        if (err == HPE_PAUSED && c->pending != NULL) {
            fsr_http_req *r = c->pending;
            c->in_callbacks++;
            fsr__http_dispatch(c->w, r);
            c->in_callbacks--;
            continue;
        }
        if (err != HPE_OK && err != HPE_PAUSED) {
            if (c->cur != NULL) {
                fsr__http_req_free(c->cur);
                c->cur = NULL;
            }
            h1_fail(c, c->error_status ? c->error_status : err == HPE_HEADER_OVERFLOW ? 431 : 400);
            return;
        }
        if (n == 0)
            break;
    }
    if (c->closed)
        return;
    if (c->out_len > 0 && h1_flush(c) != 0) {
        h1_close(c);
        return;
    }
    if (c->pending == NULL && c->cur == NULL && c->out_len == 0)
        arm_timer(c, c->w->srv->cfg.idle_timeout_ms); /* idle keep-alive */
}

static void on_h1_readable(evutil_socket_t fd, short what, void *arg)
{
    h1_conn *c = arg;
    (void)what;
    if (c->in_len + READ_CHUNK > c->in_cap) {
        c->in_cap = c->in_len + READ_CHUNK;
        c->in = fsr_xrealloc(c->in, c->in_cap);
    }
    ssize_t n = read(fd, c->in + c->in_len, READ_CHUNK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        h1_close(c);
        return;
    }
    if (n < 0)
        return;
    c->in_len += (size_t)n;
    /* While a request is pending, buffer at most a little pipelined input. */
    if (c->pending != NULL && c->in_len > 4 * READ_CHUNK)
        event_del(c->rev);
    h1_process(c);
}

static void on_h1_writable(evutil_socket_t fd, short what, void *arg)
{
    h1_conn *c = arg;
    (void)fd;
    (void)what;
    if (h1_flush(c) != 0)
        h1_close(c);
}

static void on_h1_timer(evutil_socket_t fd, short what, void *arg)
{
    h1_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->cur != NULL) {
        /* A request started but never finished arriving: a slow or stalled client. */
        fsr__http_req_free(c->cur);
        c->cur = NULL;
        h1_fail(c, 408);
        return;
    }
    h1_close(c);
}

static void h1_free(void *arg)
{
    h1_conn *c = arg;
    free(c->in);
    free(c->out);
    free(c->body);
    free(c);
}

static void h1_close(h1_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    srv_worker *w = c->w;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->h1_conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->cur != NULL) {
        fsr__http_req_free(c->cur);
        c->cur = NULL;
    }
    if (c->pending != NULL) {
        c->pending->h1 = NULL; /* the handler still responds; the response is dropped */
        c->pending = NULL;
    }
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->timer);
    close(c->fd);
    fsr_loop_defer(w->loop, h1_free, c);
}

void fsr__h1_accept(srv_worker *w, int fd)
{
    h1_conn *c = fsr_xcalloc(1, sizeof(*c));
    c->w = w;
    c->fd = fd;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    struct event_base *base = fsr_loop_base(w->loop);
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_h1_readable, c);
    c->wev = event_new(base, fd, EV_WRITE, on_h1_writable, c);
    c->timer = evtimer_new(base, on_h1_timer, c);
    c->next = w->h1_conns;
    if (w->h1_conns != NULL)
        w->h1_conns->prev = c;
    w->h1_conns = c;
    event_add(c->rev, NULL);
    arm_timer(c, c->w->srv->cfg.header_timeout_ms);
    on_h1_readable(fd, EV_READ, c);
}

bool fsr__h1_closed(const fsr_http_req *r)
{
    return r->h1 == NULL;
}

void fsr__h1_respond(fsr_http_req *r, int status, const char *reason, const char *body, size_t len)
{
    h1_conn *c = r->h1;
    bool head = strcmp(r->method, "HEAD") == 0;
    if (c != NULL) {
        c->pending = NULL;
        write_response(c, status, reason, r->resp_headers, r->n_resp_headers, body, len, head);
    }
    fsr__http_req_free(r);
    if (c == NULL)
        return;
    http_parser_pause(&c->parser, 0);
    if (c->in_callbacks > 0)
        return; /* h1_process continues with the next pipelined request and flushes */
    if (h1_flush(c) != 0) {
        h1_close(c);
        return;
    }
    event_add(c->rev, NULL);
    h1_process(c);
}

int fsr__h1_drain_all(srv_worker *w, bool force)
{
    int left = 0;
    h1_conn *c = w->h1_conns;
    while (c != NULL) {
        h1_conn *next = c->next;
        if (force || (c->pending == NULL && c->out_len == 0))
            h1_close(c);
        else
            left++;
        c = next;
    }
    return left;
}
