/* SPDX-License-Identifier: MIT */
/*
 * equity_bench: fsr-equity through gRPC (docs/PERFORMANCE.md, "Equity").
 *
 *   equity_bench FSR_EQUITY_BIN     (run by test/bench/equity_bench.sh, which starts
 *                                    PostgreSQL and Redis and sets the variables below)
 *
 * 1. Bulk upsert: BENCH_ROWS bars (default 1,000,000) as BENCH_ROWS / BENCH_BATCH UpsertPrices
 *    calls of BENCH_BATCH bars (default 10,000: one equity each, consecutive days), at most
 *    BENCH_INFLIGHT calls in flight (default 1: one after the other), timed from the first
 *    request to the last answer; then the same calls again, which now replace every row (the
 *    ON CONFLICT DO UPDATE path).  Reported: rows/s and the per-call latency; the row count is
 *    checked in Postgres.
 * 2. GetAnalytics over BENCH_AN_YEARS (default 10) years of daily business-day bars of an
 *    equity against a benchmark equity (with dividends), BENCH_AN_CALLS calls (default 200)
 *    one at a time (latency percentiles), then with 8 in flight (calls/s).
 *
 * Environment: BENCH_PG_HOST, BENCH_PG_PORT (a cluster with role fsr and database equity),
 * BENCH_REDIS_PORT, BENCH_THREADS (the service's THREADS, default 2), and the knobs above;
 * BENCH_PRE_SQL, for experiments, is run on the equity database before step 1.
 * The client runs in this process on one thread; the service and Postgres share the machine.
 */
#include "fsr/client.h"
#include "fsr/loop.h"
#include "fsr/status.h"

#include "equity/v1/equity.pb-c.h"

#include <dirent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PATH(m) ("/equity.v1.EquityService/" m)

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : def;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "equity_bench: %s\n", what);
    exit(1);
}

/* ---- the service ---------------------------------------------------------------------- */

static pid_t g_pid = -1;
static char g_tmp[256];

static void stop_service(void)
{
    if (g_pid > 0) {
        kill(g_pid, SIGTERM);
        waitpid(g_pid, NULL, 0);
        g_pid = -1;
    }
}

static int start_service(const char *bin)
{
    snprintf(g_tmp, sizeof(g_tmp), "%s/fsr-ebench.XXXXXX", env_or("TMPDIR", "/tmp"));
    if (mkdtemp(g_tmp) == NULL)
        die("mkdtemp");
    char port_file[300], log[300];
    snprintf(port_file, sizeof(port_file), "%s/port", g_tmp);
    snprintf(log, sizeof(log), "%s/equity.log", g_tmp);
    g_pid = fork();
    if (g_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        setenv("EQUITY_DB_HOST", env_or("BENCH_PG_HOST", "127.0.0.1"), 1);
        setenv("EQUITY_DB_PORT", env_or("BENCH_PG_PORT", "5432"), 1);
        setenv("EQUITY_DB_NAME", "equity", 1);
        setenv("EQUITY_DB_USER", "fsr", 1);
        setenv("EQUITY_REDIS_HOST", "127.0.0.1", 1);
        setenv("EQUITY_REDIS_PORT", env_or("BENCH_REDIS_PORT", "6379"), 1);
        setenv("SHARED_REDIS_HOST", "127.0.0.1", 1);
        setenv("SHARED_REDIS_PORT", env_or("BENCH_REDIS_PORT", "6379"), 1);
        setenv("THREADS", env_or("BENCH_THREADS", "2"), 1);
        setenv("PORT", "0", 1);
        setenv("PORT_FILE", port_file, 1);
        setenv("LOG_LEVEL", "warn", 1);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600; i++) {
        FILE *f = fopen(port_file, "r");
        int port = 0;
        if (f != NULL) {
            int n = fscanf(f, "%d", &port);
            fclose(f);
            if (n == 1 && port > 0)
                return port;
        }
        if (waitpid(g_pid, NULL, WNOHANG) == g_pid)
            die("fsr-equity exited; see its log");
        struct timespec ts = { 0, 100000000L };
        nanosleep(&ts, NULL);
    }
    die("fsr-equity did not start");
    return -1;
}

/* ---- calls ---------------------------------------------------------------------------- */

static fsr_loop *g_loop;
static fsr_channel *g_ch;

typedef struct call_state {
    bool done;
    fsr_code code;
    double t0, latency;
    char *id; /* CreateEquity: the new id (malloc) */
} call_state;

static void on_done(const fsr_result *res, void *arg)
{
    call_state *c = arg;
    c->code = res->status.code;
    c->latency = now_s() - c->t0;
    if (res->status.code != FSR_OK)
        fprintf(stderr, "equity_bench: call failed: %s %s\n", fsr_code_name(res->status.code),
                res->status.message != NULL ? res->status.message : "");
    else if (res->response != NULL && res->response->descriptor == &equity__v1__equity__descriptor)
        c->id = strdup(((Equity__V1__Equity *)res->response)->id);
    c->done = true;
}

static void start_call(const char *path, const void *req, const ProtobufCMessageDescriptor *out,
                       call_state *c)
{
    fsr_call_opts opts = { .timeout_ms = 600000 };
    c->done = false;
    c->t0 = now_s();
    if (fsr_channel_unary(g_ch, path, req, out, &opts, on_done, c) != 0)
        die("fsr_channel_unary");
}

static void wait_call(call_state *c)
{
    while (!c->done)
        event_base_loop(fsr_loop_base(g_loop), EVLOOP_ONCE);
    if (c->code != FSR_OK)
        die("a call failed");
}

/* Runs |n| calls of request |req[i]| with at most |inflight| in flight; latencies in |lat|. */
static double run_calls(const char *path, void **req, const ProtobufCMessageDescriptor *out,
                        size_t n, int inflight, double *lat)
{
    call_state *c = calloc(n, sizeof(*c));
    double t0 = now_s();
    size_t next = 0, done = 0;
    while (done < n) {
        while (next < n && next - done < (size_t)inflight) {
            start_call(path, req[next], out, &c[next]);
            next++;
        }
        event_base_loop(fsr_loop_base(g_loop), EVLOOP_ONCE);
        while (done < next && c[done].done) {
            if (c[done].code != FSR_OK)
                die("a call failed");
            lat[done] = c[done].latency;
            done++;
        }
    }
    double t = now_s() - t0;
    free(c);
    return t;
}

static char *create_equity(const char *sym)
{
    Equity__V1__CreateEquityRequest r = EQUITY__V1__CREATE_EQUITY_REQUEST__INIT;
    memcpy(&r.symbol, &sym, sizeof(r.symbol)); /* protobuf-c strings are char *; not written */
    r.name = "Bench";
    r.exchange = "XBEN";
    r.currency = "USD";
    r.sector = "Bench";
    call_state c = { 0 };
    start_call(PATH("CreateEquity"), &r, &equity__v1__equity__descriptor, &c);
    wait_call(&c);
    return c.id;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void percentiles(const char *what, double *lat, size_t n)
{
    qsort(lat, n, sizeof(*lat), cmp_d);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += lat[i];
    printf("  %s latency: mean %.2f ms, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", what,
           sum / (double)n * 1e3, lat[n / 2] * 1e3, lat[(size_t)((double)(n - 1) * 0.99)] * 1e3,
           lat[n - 1] * 1e3);
}

/* |n| daily bars: calendar days from 1990-01-01, or business days with |business|. */
static Equity__V1__PriceBar **make_bars(size_t n, bool business, unsigned seed)
{
    Equity__V1__PriceBar *b = calloc(n, sizeof(*b));
    Equity__V1__PriceBar **p = calloc(n, sizeof(*p));
    time_t t = 631152000; /* 1990-01-01 */
    double price = 100.0;
    srand(seed);
    for (size_t i = 0; i < n; i++) {
        struct tm tm;
        for (;;) {
            gmtime_r(&t, &tm);
            t += 86400;
            if (!business || (tm.tm_wday != 0 && tm.tm_wday != 6))
                break;
        }
        char d[16], buf[32];
        strftime(d, sizeof(d), "%Y-%m-%d", &tm);
        equity__v1__price_bar__init(&b[i]);
        b[i].date = strdup(d);
        price *= 1.0 + ((double)rand() / RAND_MAX - 0.499) * 0.03;
        long c = lround(price * 100);
        snprintf(buf, sizeof(buf), "%ld.%02ld", c / 100, c % 100);
        b[i].open = strdup(buf);
        b[i].close = strdup(buf);
        snprintf(buf, sizeof(buf), "%ld.%02ld", (c + 50) / 100, (c + 50) % 100);
        b[i].high = strdup(buf);
        snprintf(buf, sizeof(buf), "%ld.%02ld", (c - 50) / 100, (c - 50) % 100);
        b[i].low = strdup(buf);
        b[i].volume = 1000000 + (int64_t)i;
        p[i] = &b[i];
    }
    return p;
}

/* utime + stime of process |pid| in seconds (0 if it is gone). */
static double proc_cpu(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_ppid(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    long ppid = -1;
    if (p == NULL || sscanf(p + 2, "%*c %ld", &ppid) != 1)
        return -1;
    return ppid;
}

/* CPU seconds of the PostgreSQL server: the postmaster and every child (backends, WAL). */
static double pg_cpu(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/data/postmaster.pid", env_or("BENCH_PG_HOST", "."));
    FILE *f = fopen(path, "r");
    long pm = -1;
    if (f == NULL || fscanf(f, "%ld", &pm) != 1) {
        if (f != NULL)
            fclose(f);
        return 0;
    }
    fclose(f);
    double sum = proc_cpu(pm);
    /* Children exit too (a backend per connection): only the live ones count, as measured. */
    DIR *d = opendir("/proc");
    if (d == NULL)
        return sum;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        long pid = strtol(e->d_name, NULL, 10);
        if (pid > 0 && proc_ppid(pid) == pm)
            sum += proc_cpu(pid);
    }
    closedir(d);
    return sum;
}

static long db_count(const char *sql)
{
    char conninfo[512];
    snprintf(conninfo, sizeof(conninfo), "host=%s port=%s dbname=equity user=fsr",
             env_or("BENCH_PG_HOST", "127.0.0.1"), env_or("BENCH_PG_PORT", "5432"));
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        die(PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    long v = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    PQfinish(c);
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        die("usage: equity_bench FSR_EQUITY_BIN");
    signal(SIGPIPE, SIG_IGN);
    size_t rows = (size_t)atol(env_or("BENCH_ROWS", "1000000"));
    size_t batch = (size_t)atol(env_or("BENCH_BATCH", "10000"));
    int inflight = atoi(env_or("BENCH_INFLIGHT", "1"));
    int years = atoi(env_or("BENCH_AN_YEARS", "10"));
    size_t an_calls = (size_t)atol(env_or("BENCH_AN_CALLS", "200"));
    if (batch == 0 || rows < batch || inflight < 1 || years < 1 || an_calls < 1)
        die("bad BENCH_* setting");
    size_t n_calls = rows / batch;
    rows = n_calls * batch;

    int port = start_service(argv[1]);
    atexit(stop_service);
    if (fsr_loop_new(&g_loop) != 0)
        die("loop");
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    fsr_channel_opts copts = { .max_message_size = 64u << 20 };
    if (fsr_channel_new(g_loop, target, &copts, &g_ch) != 0)
        die("channel");
    printf("fsr-equity THREADS=%s, %ld CPUs; %zu UpsertPrices calls of %zu bars, %d in flight\n",
           env_or("BENCH_THREADS", "2"), sysconf(_SC_NPROCESSORS_ONLN), n_calls, batch, inflight);

    /* Experiments: BENCH_PRE_SQL runs first (as fsr, the tables' owner). */
    if (getenv("BENCH_PRE_SQL") != NULL && db_count(getenv("BENCH_PRE_SQL")) == -2)
        die("BENCH_PRE_SQL");

    /* 1. Bulk upsert. */
    Equity__V1__PriceBar **bars = make_bars(batch, false, 1);
    Equity__V1__UpsertPricesRequest *req = calloc(n_calls, sizeof(*req));
    void **reqp = calloc(n_calls, sizeof(*reqp));
    for (size_t i = 0; i < n_calls; i++) {
        char sym[32];
        snprintf(sym, sizeof(sym), "B%dX%zu", (int)getpid(), i);
        equity__v1__upsert_prices_request__init(&req[i]);
        req[i].id = create_equity(sym);
        req[i].bars = bars;
        req[i].n_bars = batch;
        reqp[i] = &req[i];
    }
    double *lat = calloc(n_calls > an_calls ? n_calls : an_calls, sizeof(*lat));
    for (int pass = 0; pass < 2; pass++) {
        double svc0 = proc_cpu(g_pid), pg0 = pg_cpu(), me0 = proc_cpu(getpid());
        double t =
            run_calls(PATH("UpsertPrices"), reqp, &equity__v1__upsert_prices_response__descriptor,
                      n_calls, inflight, lat);
        double svc = proc_cpu(g_pid) - svc0, pg = pg_cpu() - pg0, me = proc_cpu(getpid()) - me0;
        printf("UpsertPrices (%s): %zu rows in %.2f s = %.0f rows/s\n",
               pass == 0 ? "insert" : "replace", rows, t, (double)rows / t);
        printf("  CPU per 10,000 rows: PostgreSQL %.1f ms, fsr-equity %.1f ms, this client "
               "%.1f ms\n",
               pg / (double)rows * 1e7, svc / (double)rows * 1e7, me / (double)rows * 1e7);
        percentiles("per call", lat, n_calls);
    }
    long stored = db_count("SELECT count(*) FROM price_bars");
    printf("  rows in price_bars: %ld\n", stored);
    if (stored != (long)rows)
        die("row count mismatch");

    /* 2. GetAnalytics over |years| years against a benchmark. */
    size_t nb = (size_t)years * 252;
    char *an_id = create_equity("ANBENCHA"), *bm_id = create_equity("ANBENCHB");
    Equity__V1__PriceBar **ab = make_bars(nb, true, 7), **bb = make_bars(nb, true, 11);
    Equity__V1__UpsertPricesRequest ua = EQUITY__V1__UPSERT_PRICES_REQUEST__INIT, ub = ua;
    ua.id = an_id;
    ua.bars = ab;
    ua.n_bars = nb;
    ub.id = bm_id;
    ub.bars = bb;
    ub.n_bars = nb;
    void *ups[2] = { &ua, &ub };
    run_calls(PATH("UpsertPrices"), ups, &equity__v1__upsert_prices_response__descriptor, 2, 2,
              lat);
    for (size_t q = 0; q < nb; q += 63) { /* quarterly dividends */
        Equity__V1__AddDividendRequest d = EQUITY__V1__ADD_DIVIDEND_REQUEST__INIT;
        d.id = an_id;
        d.ex_date = ab[q]->date;
        d.amount = "0.40";
        call_state c = { 0 };
        start_call(PATH("AddDividend"), &d, &equity__v1__dividend__descriptor, &c);
        wait_call(&c);
    }
    Equity__V1__GetAnalyticsRequest ga = EQUITY__V1__GET_ANALYTICS_REQUEST__INIT;
    ga.id = an_id;
    ga.benchmark_id = bm_id;
    void **gap = calloc(an_calls, sizeof(*gap));
    for (size_t i = 0; i < an_calls; i++)
        gap[i] = &ga;
    run_calls(PATH("GetAnalytics"), gap, &common__v1__series_metrics__descriptor, 10, 1, lat);
    double svc0 = proc_cpu(g_pid), pg0 = pg_cpu();
    double t = run_calls(PATH("GetAnalytics"), gap, &common__v1__series_metrics__descriptor,
                         an_calls, 1, lat);
    double svc = proc_cpu(g_pid) - svc0, pg = pg_cpu() - pg0;
    printf("GetAnalytics, %d years (%zu bars + benchmark, %zu dividends), one at a time: "
           "%.0f calls/s\n",
           years, nb, (nb + 62) / 63, (double)an_calls / t);
    printf("  CPU per call: PostgreSQL %.2f ms, fsr-equity %.2f ms\n", pg / (double)an_calls * 1e3,
           svc / (double)an_calls * 1e3);
    percentiles("per call", lat, an_calls);
    t = run_calls(PATH("GetAnalytics"), gap, &common__v1__series_metrics__descriptor, an_calls, 8,
                  lat);
    printf("GetAnalytics, 8 in flight: %.0f calls/s\n", (double)an_calls / t);
    percentiles("per call", lat, an_calls);
    fsr_channel_free(g_ch);
    stop_service();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "equity_bench: cannot remove %s\n", g_tmp);
    return 0;
}
