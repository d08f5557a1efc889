/* SPDX-License-Identifier: MIT */
/*
 * Server lifecycle: the method table, loop threads with SO_REUSEPORT listeners, graceful
 * shutdown on SIGTERM, the built-in grpc.health.v1.Health service and per-method metrics.
 * The wire lives in server_h2.c (HTTP/2 + gRPC) and server_http.c (HTTP/1.1 side door).
 */
#define _GNU_SOURCE
#include "server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "fsr/log.h"
#include "grpc/health/v1/health.pb-c.h"

/* ---- request ids --------------------------------------------------------------------- */

static __thread uint64_t rid_state;

void fsr__request_id_new(char out[17])
{
    /* xorshift64*, seeded per thread from getrandom: unique enough for log correlation. */
    if (rid_state == 0) {
        if (getrandom(&rid_state, sizeof(rid_state), 0) != sizeof(rid_state) || rid_state == 0)
            rid_state = (uint64_t)fsr_wall_us() ^ (uint64_t)(uintptr_t)&rid_state;
    }
    rid_state ^= rid_state >> 12;
    rid_state ^= rid_state << 25;
    rid_state ^= rid_state >> 27;
    uint64_t v = rid_state * 0x2545F4914F6CDD1DULL;
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = hex[v & 15];
    out[16] = '\0';
}

bool fsr__request_id_ok(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

/* ---- metrics ------------------------------------------------------------------------- */

static fsr_metric *m_handled, *m_latency, *m_started;

static void metrics_init(void)
{
    static const char *const labels3[] = { "service", "method", "code" };
    static const char *const labels2[] = { "service", "method" };
    fsr_metrics_register_process();
    m_handled = fsr_metric_counter("rpc_server_handled_total",
                                   "RPCs completed on the server, by status code.", labels3, 3);
    m_started =
        fsr_metric_counter("rpc_server_started_total", "RPCs started on the server.", labels2, 2);
    m_latency =
        fsr_metric_histogram("rpc_server_handling_seconds",
                             "Time from request headers to final status.", labels2, 2, NULL, 0);
}

static void method_metrics(srv_method *m)
{
    const char *lv[3] = { m->sdesc->name, m->mdesc->name, NULL };
    m->started = fsr_metric_labels(m_started, lv);
    m->latency = fsr_metric_labels(m_latency, lv);
    for (int c = 0; c < FSR_CODE_COUNT; c++) {
        lv[2] = fsr_code_name((fsr_code)c);
        m->handled[c] = fsr_metric_labels(m_handled, lv);
    }
}

void fsr__server_record(const srv_method *m, fsr_code code, int64_t latency_us)
{
    if (m == NULL)
        return;
    fsr_counter_add(m->handled[(unsigned)code < FSR_CODE_COUNT ? code : FSR_UNKNOWN], 1);
    fsr_histogram_observe(m->latency, (double)latency_us / 1e6);
}

void fsr__server_record_start(const srv_method *m)
{
    if (m != NULL)
        fsr_counter_add(m->started, 1);
}

void fsr_server_metrics(fsr_server *srv, struct evbuffer *out)
{
    (void)srv;
    fsr_metrics_render(out);
}

/* ---- the method table ---------------------------------------------------------------- */

static int method_cmp(const void *a, const void *b)
{
    const srv_method *x = a, *y = b;
    return strcmp(x->path, y->path);
}

const srv_method *fsr__server_find_method(const fsr_server *srv, const char *path, size_t len)
{
    size_t lo = 0, hi = srv->n_methods;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const srv_method *m = &srv->methods[mid];
        size_t n = m->path_len < len ? m->path_len : len;
        int c = memcmp(m->path, path, n);
        if (c == 0)
            c = m->path_len < len ? -1 : m->path_len > len ? 1 : 0;
        if (c == 0)
            return m;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int fsr_server_add_service(fsr_server *srv, const fsr_service *svc)
{
    const ProtobufCServiceDescriptor *d = svc->desc;
    for (size_t i = 0; i < srv->n_services; i++) {
        if (strcmp(srv->services[i]->desc->name, d->name) == 0) {
            FSR_ERROR("service %s registered twice", d->name);
            return FSR_E_CONFIG;
        }
    }
    /* Every row names a real method, once; every descriptor method has a row. */
    for (size_t i = 0; i < svc->n_methods; i++) {
        if (protobuf_c_service_descriptor_get_method_by_name(d, svc->methods[i].name) == NULL) {
            FSR_ERROR("service %s: table row %s names no method", d->name, svc->methods[i].name);
            return FSR_E_CONFIG;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(svc->methods[i].name, svc->methods[j].name) == 0) {
                FSR_ERROR("service %s: method %s has two rows", d->name, svc->methods[i].name);
                return FSR_E_CONFIG;
            }
        }
    }
    if (svc->n_methods != d->n_methods) {
        for (unsigned k = 0; k < d->n_methods; k++) {
            size_t i = 0;
            while (i < svc->n_methods && strcmp(svc->methods[i].name, d->methods[k].name) != 0)
                i++;
            if (i == svc->n_methods)
                FSR_ERROR("service %s: method %s has no row", d->name, d->methods[k].name);
        }
        return FSR_E_CONFIG;
    }
    srv->services = fsr_xrealloc(srv->services, (srv->n_services + 1) * sizeof(*srv->services));
    srv->services[srv->n_services++] = svc;
    if (srv->n_methods + svc->n_methods > srv->cap_methods) {
        srv->cap_methods = (srv->n_methods + svc->n_methods) * 2;
        srv->methods = fsr_xrealloc(srv->methods, srv->cap_methods * sizeof(*srv->methods));
    }
    for (size_t i = 0; i < svc->n_methods; i++) {
        srv_method *m = &srv->methods[srv->n_methods++];
        memset(m, 0, sizeof(*m));
        m->row = &svc->methods[i];
        m->sdesc = d;
        m->mdesc = protobuf_c_service_descriptor_get_method_by_name(d, m->row->name);
        size_t n = 1 + strlen(d->name) + 1 + strlen(m->row->name);
        m->path = fsr_xmalloc(n + 1);
        snprintf(m->path, n + 1, "/%s/%s", d->name, m->row->name);
        m->path_len = n;
    }
    qsort(srv->methods, srv->n_methods, sizeof(*srv->methods), method_cmp);
    /* Series pointers are stable; (re)resolve them after the sort moved the rows. */
    for (size_t i = 0; i < srv->n_methods; i++)
        method_metrics(&srv->methods[i]);
    return 0;
}

/* ---- grpc.health.v1.Health ----------------------------------------------------------- */

bool fsr__server_ready(srv_worker *w)
{
    if (w->srv->stopping)
        return false;
    return w->srv->cfg.ready == NULL || w->srv->cfg.ready(w->ctx) != 0;
}

static srv_worker *call_worker(fsr_call *call);

static int health_status(fsr_call *call, const Grpc__Health__V1__HealthCheckRequest *req)
{
    srv_worker *w = call_worker(call);
    if (req->service != NULL && req->service[0] != '\0') {
        size_t i = 0;
        while (i < w->srv->n_services && strcmp(w->srv->services[i]->desc->name, req->service))
            i++;
        if (i == w->srv->n_services)
            return -1;
    }
    return fsr__server_ready(w)
               ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
               : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static void health_check(fsr_call *call, const ProtobufCMessage *msg)
{
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)msg;
    int st = health_status(call, req);
    if (st < 0) {
        fsr_call_fail(call, FSR_NOT_FOUND, "unknown service %s", req->service);
        return;
    }
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = st;
    fsr_call_reply(call, &resp.base);
}

/*
 * Watch: the current status at once, then again whenever it changes (checked every
 * second), until the client cancels or the server shuts down.
 */
typedef struct watch {
    fsr_call *call;
    struct event *timer;
    int last;
    const Grpc__Health__V1__HealthCheckRequest *req;
} watch;

static void watch_end(watch *wt, fsr_code code)
{
    event_free(wt->timer);
    fsr_call_finish(wt->call, code, code == FSR_OK ? NULL : "server shutting down");
}

static void on_watch_tick(evutil_socket_t fd, short what, void *arg)
{
    watch *wt = arg;
    (void)fd;
    (void)what;
    if (fsr_call_is_cancelled(wt->call)) {
        watch_end(wt, FSR_CANCELLED);
        return;
    }
    if (call_worker(wt->call)->draining) {
        watch_end(wt, FSR_UNAVAILABLE);
        return;
    }
    int st = health_status(wt->call, wt->req);
    if (st < 0)
        st = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    if (st != wt->last) {
        Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        resp.status = st;
        wt->last = st;
        if (fsr_call_send(wt->call, &resp.base) != 0) {
            watch_end(wt, FSR_CANCELLED);
            return;
        }
    }
    struct timeval tv = { 1, 0 };
    event_add(wt->timer, &tv);
}

static void health_watch(fsr_call *call, const ProtobufCMessage *msg)
{
    watch *wt = fsr_call_alloc(call, sizeof(*wt));
    wt->call = call;
    wt->req = (const void *)msg;
    wt->last = -1;
    wt->timer = evtimer_new(fsr_loop_base(fsr_call_loop(call)), on_watch_tick, wt);
    on_watch_tick(-1, 0, wt);
}

static const fsr_method health_methods[] = {
    { "Check", health_check, FSR_M_IDEMPOTENT, 0 },
    { "Watch", health_watch, FSR_M_IDEMPOTENT | FSR_M_SERVER_STREAM, 0 },
};
static const fsr_service health_service =
    FSR_SERVICE(&grpc__health__v1__health__descriptor, health_methods);

/* ---- lifecycle ----------------------------------------------------------------------- */

int fsr_server_new(const fsr_server_config *cfg, fsr_server **out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, metrics_init);
    if (cfg->port < 0 || cfg->port > 65535 || cfg->threads < 0 || cfg->threads > 256) {
        FSR_ERROR("server config: port or threads out of range");
        return FSR_E_CONFIG;
    }
    fsr_server *srv = fsr_xcalloc(1, sizeof(*srv));
    srv->cfg = *cfg;
    if (srv->cfg.host == NULL)
        srv->cfg.host = "0.0.0.0";
    if (srv->cfg.name == NULL)
        srv->cfg.name = "fsr";
    if (srv->cfg.max_message_size == 0)
        srv->cfg.max_message_size = 4u * 1024 * 1024;
    if (srv->cfg.max_http_body == 0)
        srv->cfg.max_http_body = srv->cfg.max_message_size;
    if (srv->cfg.max_header_size == 0)
        srv->cfg.max_header_size = 16 * 1024;
    if (srv->cfg.max_streams == 0)
        srv->cfg.max_streams = 256;
    if (srv->cfg.grace_ms == 0)
        srv->cfg.grace_ms = 10000;
    if (srv->cfg.header_timeout_ms == 0)
        srv->cfg.header_timeout_ms = 10000;
    if (srv->cfg.idle_timeout_ms == 0)
        srv->cfg.idle_timeout_ms = 120000;
    if (srv->cfg.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        srv->cfg.threads = n > 0 ? (int)(n > 64 ? 64 : n) : 1;
    }
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    if (pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(srv);
        return -errno;
    }
    int rv = fsr_server_add_service(srv, &health_service);
    if (rv != 0) {
        fsr_server_free(srv);
        return rv;
    }
    *out = srv;
    return 0;
}

void fsr_server_free(fsr_server *srv)
{
    if (srv == NULL)
        return;
    for (size_t i = 0; i < srv->n_methods; i++)
        free(srv->methods[i].path);
    free(srv->methods);
    free(srv->services);
    free(srv->workers);
    close(srv->stop_pipe[0]);
    close(srv->stop_pipe[1]);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->cond);
    free(srv);
}

int fsr_server_port(const fsr_server *srv)
{
    return srv->port;
}

void fsr_server_stop(fsr_server *srv)
{
    char c = 1;
    ssize_t rv = write(srv->stop_pipe[1], &c, 1); /* async-signal-safe */
    (void)rv;
}

static int listen_socket(const char *host, int port, int *bound_port)
{
    struct addrinfo hints = { 0 }, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char pbuf[16];
    snprintf(pbuf, sizeof(pbuf), "%d", port);
    int rv = getaddrinfo(host, pbuf, &hints, &res);
    if (rv != 0) {
        FSR_ERROR("cannot resolve listen address %s: %s", host, gai_strerror(rv));
        return -EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rv = -errno;
        freeaddrinfo(res);
        return rv;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        rv = -errno;
        FSR_ERROR("cannot listen on %s:%d: %s", host, port, strerror(-rv));
        close(fd);
        freeaddrinfo(res);
        return rv;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    srv_worker *w = arg;
    (void)what;
    /* Accept a bounded batch per wakeup so one busy listener cannot starve the loop. */
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                FSR_WARN("accept: %s", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fsr__conn_accept(w, fd, (struct sockaddr *)&ss, sl);
    }
}

static void worker_drained(srv_worker *w)
{
    fsr_server *srv = w->srv;
    pthread_mutex_lock(&srv->lock);
    srv->n_drained++;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    srv_worker *w = arg;
    (void)fd;
    (void)what;
    bool force = fsr_now_us() >= w->drain_deadline;
    int left = fsr__conn_drain_all(w, force) + fsr__h1_drain_all(w, force) + w->running;
    if (left == 0 || force) {
        if (force && left > 0)
            FSR_WARN("grace period over: closing %d busy connections", left);
        event_free(w->drain_timer);
        w->drain_timer = NULL;
        worker_drained(w);
        fsr_loop_stop(w->loop);
        return;
    }
    struct timeval tv = { 0, 20000 };
    event_add(w->drain_timer, &tv);
}

static void begin_drain(void *arg)
{
    srv_worker *w = arg;
    w->draining = true;
    if (w->accept_ev != NULL) {
        event_free(w->accept_ev);
        w->accept_ev = NULL;
    }
    close(w->listen_fd);
    w->listen_fd = -1;
    w->drain_deadline = fsr_now_us() + (int64_t)w->srv->cfg.grace_ms * 1000;
    w->drain_timer = evtimer_new(fsr_loop_base(w->loop), on_drain_tick, w);
    fsr__conn_drain_all(w, false); /* shutdown notice now */
    fsr__h1_drain_all(w, false);   /* close idle keep-alive connections */
    on_drain_tick(-1, 0, w);
}

/*
 * After a burst of traffic glibc keeps the freed heap (per-thread arenas) mapped, so RSS
 * stays at its peak.  Once the whole server has been idle for a full tick, hand the free
 * pages back with malloc_trim() -- once per idle period, never on the request path.
 */
#define TRIM_TICK_S 2

static void on_trim_tick(evutil_socket_t fd, short what, void *arg)
{
    srv_worker *w0 = arg;
    fsr_server *srv = w0->srv;
    (void)fd;
    (void)what;
    uint64_t total = 0;
    for (int i = 0; i < srv->n_workers; i++)
        total += atomic_load_explicit(&srv->workers[i].requests, memory_order_relaxed);
    if (total != srv->trim_seen) {
        srv->trim_seen = total;
        srv->trimmed = false;
    } else if (!srv->trimmed) {
        malloc_trim(0);
        srv->trimmed = true;
    }
    struct timeval tv = { TRIM_TICK_S, 0 };
    event_add(w0->trim_timer, &tv);
}

static void *worker_main(void *arg)
{
    srv_worker *w = arg;
    fsr_server *srv = w->srv;
    if (fsr_loop_new(&w->loop) != 0)
        abort();
    if (srv->cfg.thread_init != NULL)
        w->ctx = srv->cfg.thread_init(w->loop, srv->cfg.thread_arg);
    w->accept_ev =
        event_new(fsr_loop_base(w->loop), w->listen_fd, EV_READ | EV_PERSIST, on_accept, w);
    event_add(w->accept_ev, NULL);
    if (w->index == 0) {
        srv->trimmed = true; /* nothing to give back before the first request */
        w->trim_timer = evtimer_new(fsr_loop_base(w->loop), on_trim_tick, w);
        struct timeval tv = { TRIM_TICK_S, 0 };
        event_add(w->trim_timer, &tv);
    }
    pthread_mutex_lock(&srv->lock);
    srv->n_started++;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);

    fsr_loop_run(w->loop);

    fsr__h1_drain_all(w, true);
    if (w->trim_timer != NULL)
        event_free(w->trim_timer);
    if (srv->cfg.thread_dispose != NULL)
        srv->cfg.thread_dispose(w->ctx, srv->cfg.thread_arg);
    fsr_loop_free(w->loop);
    return NULL;
}

static void write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        FSR_ERROR("cannot write port file %s: %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%d\n", port);
    fclose(f);
    rename(tmp, path); /* atomic: readers never see a partial file */
}

int fsr_server_run(fsr_server *srv)
{
    /* Signals go to this thread only: block them before spawning the loop threads. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    signal(SIGPIPE, SIG_IGN);

    int n = srv->cfg.threads;
    srv->workers = fsr_xcalloc((size_t)n, sizeof(*srv->workers));
    int port = srv->cfg.port;
    for (int i = 0; i < n; i++) {
        int bound = 0;
        int fd = listen_socket(srv->cfg.host, port, &bound);
        if (fd < 0) {
            for (int j = 0; j < i; j++)
                close(srv->workers[j].listen_fd);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            return fd;
        }
        port = bound; /* port 0: the first bind picks, the others share it */
        srv->workers[i].srv = srv;
        srv->workers[i].index = i;
        srv->workers[i].listen_fd = fd;
    }
    srv->port = port;
    srv->n_workers = n;
    for (int i = 0; i < n; i++)
        pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]);
    pthread_mutex_lock(&srv->lock);
    while (srv->n_started < n)
        pthread_cond_wait(&srv->cond, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    if (srv->cfg.port_file != NULL)
        write_port_file(srv->cfg.port_file, port);
    FSR_INFO("%s listening on %s:%d (%d threads; gRPC h2c, HTTP/1.1)", srv->cfg.name, srv->cfg.host,
             port, n);

    /* Wait for SIGTERM/SIGINT or fsr_server_stop(): poll the stop pipe between sigtimedwait. */
    for (;;) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        int sig = sigtimedwait(&set, NULL, &ts);
        char c;
        if (sig > 0) {
            FSR_INFO("received %s: draining (grace %u ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                     srv->cfg.grace_ms);
            break;
        }
        if (read(srv->stop_pipe[0], &c, 1) == 1) {
            FSR_INFO("stop requested: draining (grace %u ms)", srv->cfg.grace_ms);
            break;
        }
    }
    srv->stopping = 1;
    for (int i = 0; i < n; i++)
        fsr_loop_post(srv->workers[i].loop, begin_drain, &srv->workers[i]);
    for (int i = 0; i < n; i++)
        pthread_join(srv->workers[i].thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    FSR_INFO("%s stopped", srv->cfg.name);
    return 0;
}

/* ---- call plumbing shared with server_h2.c ------------------------------------------- */

static srv_worker *call_worker(fsr_call *call)
{
    return fsr__call_worker(call);
}
