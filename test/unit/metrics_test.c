/* SPDX-License-Identifier: MIT */
/* Unit tests for lib/metrics.c: registry, exposition text, promtool, lock-free concurrency. */
#include "fsr/metrics.h"
#include "fsr/log.h"
#include "fsr/status.h"

#include <check.h>
#include <event2/buffer.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LABELS(...) ((const char *const[]){ __VA_ARGS__ })

static void setup(void)
{
    /* Expected error records go to stderr: stdout carries the TAP stream. */
    ck_assert_int_eq(dup2(STDERR_FILENO, STDOUT_FILENO), STDOUT_FILENO);
    ck_assert_int_eq(fsr_log_init("metrics_test", "info", NULL), 0);
    fsr_metrics_reset();
}

static void teardown(void)
{
    fsr_metrics_reset(); /* leak-checked builds see everything freed */
}

static char *render(void)
{
    char *out = NULL;
    size_t len = 0;
    ck_assert_int_eq(fsr_metrics_render_buf(&out, &len), 0);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(strlen(out), len);
    return out;
}

static double fn_two(void *arg)
{
    return 2;
}

static double fn_arg(void *arg)
{
    return *(const double *)arg;
}

/* The small registry whose exposition text test_metrics_render_exact spells out. */
static void build_sample(void)
{
    static double five = 5;
    static const double lat_bounds[] = { 0.125, 0.5, 1 };
    static const double size_bounds[] = { 1024 };

    fsr_metric *req =
        fsr_metric_counter("test_requests", "Requests handled.", LABELS("method", "code"), 2);
    fsr_series *ok = fsr_metric_labels(req, LABELS("GetQuote", "OK"));
    fsr_series *nf = fsr_metric_labels(req, LABELS("GetQuote", "NOT_FOUND"));
    fsr_counter_add(ok, 3);
    fsr_counter_add(ok, 0.5);
    fsr_counter_add(nf, 1);

    fsr_metric *temp =
        fsr_metric_gauge("test_temperature_celsius", "Temperature with \\ and\nnewline.", NULL, 0);
    fsr_gauge_set(fsr_metric_labels(temp, NULL), -3.5);

    fsr_metric *lat = fsr_metric_histogram("test_latency_seconds", "Latency.", LABELS("method"), 1,
                                           lat_bounds, 3);
    fsr_series *h = fsr_metric_labels(lat, LABELS("GetQuote"));
    fsr_histogram_observe(h, 0.0625);
    fsr_histogram_observe(h, 0.125); /* a bound belongs to its own bucket (le) */
    fsr_histogram_observe(h, 0.75);
    fsr_histogram_observe(h, 3);

    fsr_metric *size = fsr_metric_histogram("test_size_bytes", "Sizes.", NULL, 0, size_bounds, 1);
    fsr_histogram_observe(fsr_metric_labels(size, NULL), 100);

    fsr_metric *esc = fsr_metric_gauge("test_escape_info", "Escapes.", LABELS("path"), 1);
    fsr_gauge_set(fsr_metric_labels(esc, LABELS("a\"b\\c\nd")), 1);

    ck_assert_ptr_nonnull(fsr_metric_counter("test_events_total", "Events.", NULL, 0));
    ck_assert_ptr_nonnull(fsr_metric_gauge("test_unused", "Never used.", LABELS("x"), 1));

    ck_assert_int_eq(fsr_metric_gauge_fn("test_pool_connections", "Pool size.", fn_two, NULL), 0);
    ck_assert_int_eq(fsr_metric_gauge_fn("test_pool_connections", "Pool size.", fn_arg, &five), 0);
}

static const char sample_text[] =
    "# HELP test_escape_info Escapes.\n"
    "# TYPE test_escape_info gauge\n"
    "test_escape_info{path=\"a\\\"b\\\\c\\nd\"} 1\n"
    "# HELP test_events_total Events.\n"
    "# TYPE test_events_total counter\n"
    "test_events_total 0\n"
    "# HELP test_latency_seconds Latency.\n"
    "# TYPE test_latency_seconds histogram\n"
    "test_latency_seconds_bucket{method=\"GetQuote\",le=\"0.125\"} 2\n"
    "test_latency_seconds_bucket{method=\"GetQuote\",le=\"0.5\"} 2\n"
    "test_latency_seconds_bucket{method=\"GetQuote\",le=\"1\"} 3\n"
    "test_latency_seconds_bucket{method=\"GetQuote\",le=\"+Inf\"} 4\n"
    "test_latency_seconds_sum{method=\"GetQuote\"} 3.9375\n"
    "test_latency_seconds_count{method=\"GetQuote\"} 4\n"
    "# HELP test_pool_connections Pool size.\n"
    "# TYPE test_pool_connections gauge\n"
    "test_pool_connections 7\n"
    "# HELP test_requests_total Requests handled.\n"
    "# TYPE test_requests_total counter\n"
    "test_requests_total{method=\"GetQuote\",code=\"OK\"} 3.5\n"
    "test_requests_total{method=\"GetQuote\",code=\"NOT_FOUND\"} 1\n"
    "# HELP test_size_bytes Sizes.\n"
    "# TYPE test_size_bytes histogram\n"
    "test_size_bytes_bucket{le=\"1024\"} 1\n"
    "test_size_bytes_bucket{le=\"+Inf\"} 1\n"
    "test_size_bytes_sum 100\n"
    "test_size_bytes_count 1\n"
    "# HELP test_temperature_celsius Temperature with \\\\ and\\nnewline.\n"
    "# TYPE test_temperature_celsius gauge\n"
    "test_temperature_celsius -3.5\n";

START_TEST(test_metrics_render_exact)
{
    build_sample();
    char *out = render();
    ck_assert_str_eq(out, sample_text);
    free(out);

    /* The libevent variant writes the same bytes. */
    struct evbuffer *eb = evbuffer_new();
    fsr_metrics_render(eb);
    size_t n = evbuffer_get_length(eb);
    ck_assert_uint_eq(n, strlen(sample_text));
    ck_assert_int_eq(memcmp(evbuffer_pullup(eb, -1), sample_text, n), 0);
    evbuffer_free(eb);
}
END_TEST

START_TEST(test_metrics_value_format)
{
    fsr_metric *g = fsr_metric_gauge("test_values", "Values.", LABELS("v"), 1);
    fsr_gauge_set(fsr_metric_labels(g, LABELS("tenth")), 0.1);
    fsr_gauge_set(fsr_metric_labels(g, LABELS("third")), 1.0 / 3);
    fsr_gauge_set(fsr_metric_labels(g, LABELS("big")), 12345678901234567890.0);
    fsr_gauge_set(fsr_metric_labels(g, LABELS("int")), 9007199254740992.0);
    fsr_gauge_set(fsr_metric_labels(g, LABELS("inf")), INFINITY);
    fsr_gauge_set(fsr_metric_labels(g, LABELS("ninf")), -INFINITY);
    fsr_gauge_set(fsr_metric_labels(g, LABELS("nan")), NAN);
    fsr_metric_histogram("test_default_seconds", "Default buckets.", NULL, 0, NULL, 0);

    char *out = render();
    ck_assert_ptr_nonnull(strstr(out, "test_values{v=\"tenth\"} 0.1\n"));
    ck_assert_ptr_nonnull(strstr(out, "test_values{v=\"third\"} 0.33333333333333331\n"));
    ck_assert_ptr_nonnull(strstr(out, "test_values{v=\"big\"} 1.2345678901234567e+19\n"));
    ck_assert_ptr_nonnull(strstr(out, "test_values{v=\"int\"} 9007199254740992\n"));
    ck_assert_ptr_nonnull(strstr(out, "test_values{v=\"inf\"} +Inf\n"));
    ck_assert_ptr_nonnull(strstr(out, "test_values{v=\"ninf\"} -Inf\n"));
    ck_assert_ptr_nonnull(strstr(out, "test_values{v=\"nan\"} NaN\n"));

    /* The default latency buckets, in Go's shortest float form as client_golang writes them. */
    static const char *const les[] = { "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
                                       "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
                                       "1",      "2.5",     "5",      "10",    "+Inf" };
    const char *p = out;
    for (size_t i = 0; i < sizeof(les) / sizeof(les[0]); i++) {
        char want[96];
        snprintf(want, sizeof(want), "test_default_seconds_bucket{le=\"%s\"} 0\n", les[i]);
        p = strstr(p, want);
        ck_assert_msg(p != NULL, "missing %s", want);
    }
    free(out);
}
END_TEST

START_TEST(test_metrics_get_or_create)
{
    static const double b1[] = { 1, 2 }, b2[] = { 1, 3 }, bad[] = { 2, 1 }, inf[] = { 1, INFINITY };
    fsr_metric *c = fsr_metric_counter("rpc_calls", "Calls.", LABELS("method"), 1);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_eq(fsr_metric_counter("rpc_calls", "Other help.", LABELS("method"), 1), c);
    ck_assert_ptr_eq(fsr_metric_counter("rpc_calls_total", "Calls.", LABELS("method"), 1), c);
    /* Conflicts: other type, other labels. */
    ck_assert_ptr_null(fsr_metric_gauge("rpc_calls_total", "Calls.", LABELS("method"), 1));
    ck_assert_ptr_null(fsr_metric_counter("rpc_calls", "Calls.", LABELS("code"), 1));
    ck_assert_ptr_null(fsr_metric_counter("rpc_calls", "Calls.", NULL, 0));
    ck_assert_int_eq(fsr_metric_gauge_fn("rpc_calls_total", "x", fn_two, NULL), FSR_E_CONFIG);

    fsr_metric *h = fsr_metric_histogram("h_seconds", "H.", NULL, 0, b1, 2);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_eq(fsr_metric_histogram("h_seconds", "H.", NULL, 0, b1, 2), h);
    ck_assert_ptr_null(fsr_metric_histogram("h_seconds", "H.", NULL, 0, b2, 2));
    ck_assert_ptr_null(fsr_metric_histogram("h_seconds", "H.", NULL, 0, NULL, 0));

    /* Invalid definitions. */
    ck_assert_ptr_null(fsr_metric_gauge("9lives", "x", NULL, 0));
    ck_assert_ptr_null(fsr_metric_gauge("has-dash", "x", NULL, 0));
    ck_assert_ptr_null(fsr_metric_gauge("", "x", NULL, 0));
    ck_assert_ptr_null(fsr_metric_gauge(NULL, "x", NULL, 0));
    ck_assert_ptr_null(fsr_metric_gauge("g", "x", LABELS("__reserved"), 1));
    ck_assert_ptr_null(fsr_metric_gauge("g", "x", LABELS("a:b"), 1));
    ck_assert_ptr_null(fsr_metric_gauge("g", "x", LABELS("a", "a"), 2));
    ck_assert_ptr_null(fsr_metric_histogram("h2", "x", LABELS("le"), 1, NULL, 0));
    ck_assert_ptr_null(fsr_metric_histogram("h3", "x", NULL, 0, bad, 2));
    ck_assert_ptr_null(fsr_metric_histogram("h4", "x", NULL, 0, inf, 2));
    ck_assert_ptr_nonnull(fsr_metric_gauge("ns:sub_name", "colons are fine", LABELS("le"), 1));

    /* NULL everywhere is harmless. */
    ck_assert_ptr_null(fsr_metric_labels(NULL, NULL));
    fsr_counter_add(NULL, 1);
    fsr_gauge_set(NULL, 1);
    fsr_gauge_add(NULL, 1);
    fsr_histogram_observe(NULL, 1);
    ck_assert(fsr_series_value(NULL) == 0);
    ck_assert_ptr_null(fsr_metric_labels(c, NULL)); /* values missing */
}
END_TEST

START_TEST(test_metrics_series_identity)
{
    fsr_metric *c = fsr_metric_counter("ids", "Ids.", LABELS("a", "b"), 2);
    fsr_series *s1 = fsr_metric_labels(c, LABELS("x", "y"));
    ck_assert_ptr_nonnull(s1);
    ck_assert_ptr_eq(fsr_metric_labels(c, LABELS("x", "y")), s1);
    ck_assert_ptr_ne(fsr_metric_labels(c, LABELS("y", "x")), s1);
    /* The separator keeps ("xy","") apart from ("x","y"). */
    ck_assert_ptr_ne(fsr_metric_labels(c, LABELS("xy", "")), s1);
    ck_assert_ptr_eq(fsr_metric_labels(c, LABELS("xy", NULL)),
                     fsr_metric_labels(c, LABELS("xy", "")));

    /* Invalid UTF-8 in a label value is repaired, so the exposition stays valid. */
    fsr_metric *g = fsr_metric_gauge("utf8_check", "U.", LABELS("v"), 1);
    fsr_gauge_set(fsr_metric_labels(g, LABELS("a\xff"
                                              "b")),
                  1);
    ck_assert_ptr_eq(fsr_metric_labels(g, LABELS("a\xff"
                                                 "b")),
                     fsr_metric_labels(g, LABELS("a\xef\xbf\xbd"
                                                 "b")));
    char *out = render();
    ck_assert_ptr_nonnull(strstr(out, "utf8_check{v=\"a\xef\xbf\xbd"
                                      "b\"} 1\n"));
    free(out);
}
END_TEST

START_TEST(test_metrics_update_semantics)
{
    fsr_series *c = fsr_metric_labels(fsr_metric_counter("c", "C.", NULL, 0), NULL);
    fsr_series *g = fsr_metric_labels(fsr_metric_gauge("g", "G.", NULL, 0), NULL);
    fsr_series *h = fsr_metric_labels(fsr_metric_histogram("h", "H.", NULL, 0, NULL, 0), NULL);

    fsr_counter_add(c, 2);
    fsr_counter_add(c, -5); /* counters never go down */
    fsr_counter_add(c, NAN);
    ck_assert(fsr_series_value(c) == 2);

    fsr_gauge_set(g, 10);
    fsr_gauge_add(g, -2.5);
    ck_assert(fsr_series_value(g) == 7.5);
    fsr_gauge_set(g, 1);
    ck_assert(fsr_series_value(g) == 1);

    fsr_histogram_observe(h, 0.001);
    fsr_histogram_observe(h, 1e9); /* +Inf bucket */
    fsr_histogram_observe(h, -1);  /* first bucket */
    fsr_histogram_observe(h, NAN); /* ignored */
    ck_assert(fsr_series_value(h) == 3);

    /* Operations of another type are ignored, not misapplied. */
    fsr_counter_add(g, 100);
    fsr_gauge_set(c, 100);
    fsr_histogram_observe(c, 1);
    fsr_counter_add(h, 1);
    ck_assert(fsr_series_value(g) == 1);
    ck_assert(fsr_series_value(c) == 2);
    ck_assert(fsr_series_value(h) == 3);

    char *out = render();
    ck_assert_ptr_nonnull(strstr(out, "h_bucket{le=\"0.0001\"} 1\nh_bucket{le=\"0.00025\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(out, "h_bucket{le=\"0.001\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(out, "h_bucket{le=\"10\"} 2\nh_bucket{le=\"+Inf\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(out, "h_count 3\n"));
    free(out);
}
END_TEST

START_TEST(test_metrics_callbacks)
{
    double a = 3, b = 4;
    ck_assert_int_eq(fsr_metric_gauge_fn("pool_size", "Pool.", fn_arg, &a), 0);
    ck_assert_int_eq(fsr_metric_gauge_fn("pool_size", "Pool.", fn_arg, &b), 0);
    ck_assert_int_eq(fsr_metric_gauge_fn("pool_size", "Pool.", fn_arg, &b), 0); /* no double */
    ck_assert_int_eq(fsr_metric_counter_fn("jobs", "Jobs.", fn_arg, &a), 0);
    ck_assert_int_eq(fsr_metric_gauge_fn("bad name", "x", fn_two, NULL), FSR_E_CONFIG);
    ck_assert_int_eq(fsr_metric_gauge_fn("nofn", "x", NULL, NULL), FSR_E_CONFIG);
    /* A callback family has no series. */
    ck_assert_ptr_null(fsr_metric_gauge("pool_size", "Pool.", NULL, 0));

    char *out = render();
    ck_assert_ptr_nonnull(strstr(out, "# TYPE pool_size gauge\npool_size 7\n"));
    ck_assert_ptr_nonnull(strstr(out, "# TYPE jobs_total counter\njobs_total 3\n"));
    free(out);

    b = 10; /* read at render time */
    out = render();
    ck_assert_ptr_nonnull(strstr(out, "pool_size 13\n"));
    free(out);

    fsr_metric_fn_remove(fn_arg, &b);
    out = render();
    ck_assert_ptr_nonnull(strstr(out, "pool_size 3\n"));
    free(out);
    fsr_metric_fn_remove(fn_arg, &a);
    out = render();
    ck_assert_str_eq(out, ""); /* families without callbacks are not rendered */
    free(out);
}
END_TEST

START_TEST(test_metrics_process)
{
    ck_assert_int_eq(fsr_metrics_register_process(), 0);
    ck_assert_int_eq(fsr_metrics_register_process(), 0); /* idempotent */

    /* Burn a little CPU so cpu seconds are above zero. */
    volatile double x = 0;
    for (int i = 0; i < 20000000; i++)
        x += i;

    char *out = render();
    double rss = 0, fds = 0, start = 0, cpu = 0, maxfds = 0, vm = 0;
    const char *p;
    ck_assert_ptr_nonnull(p = strstr(out, "\nprocess_resident_memory_bytes "));
    rss = strtod(p + 31, NULL);
    ck_assert_ptr_nonnull(p = strstr(out, "\nprocess_virtual_memory_bytes "));
    vm = strtod(p + 30, NULL);
    ck_assert_ptr_nonnull(p = strstr(out, "\nprocess_open_fds "));
    fds = strtod(p + 18, NULL);
    ck_assert_ptr_nonnull(p = strstr(out, "\nprocess_max_fds "));
    maxfds = strtod(p + 17, NULL);
    ck_assert_ptr_nonnull(p = strstr(out, "\nprocess_start_time_seconds "));
    start = strtod(p + 28, NULL);
    ck_assert_ptr_nonnull(p = strstr(out, "\nprocess_cpu_seconds_total "));
    cpu = strtod(p + 27, NULL);
    ck_assert_ptr_nonnull(strstr(out, "# TYPE process_cpu_seconds_total counter\n"));
    ck_assert_ptr_nonnull(strstr(out, "# TYPE process_open_fds gauge\n"));

    ck_assert_msg(rss > 1e5 && rss < 1e11, "rss %g", rss);
    ck_assert_msg(vm >= rss, "vm %g rss %g", vm, rss);
    ck_assert_msg(fds >= 3 && fds < 10000, "fds %g", fds);
    ck_assert_msg(maxfds >= fds, "max fds %g", maxfds);
    ck_assert_msg(cpu > 0 && cpu < 1e6, "cpu %g", cpu);
    double now = (double)time(NULL);
    ck_assert_msg(start > now - 3600 && start <= now + 1, "start %f now %f", start, now);
    free(out);
}
END_TEST

/* ---- promtool ---------------------------------------------------------------------- */

static const char *promtool_path(void)
{
    const char *env = getenv("PROMTOOL");
    if (env != NULL && access(env, X_OK) == 0)
        return env;
    return access("/usr/bin/promtool", X_OK) == 0 ? "/usr/bin/promtool" : NULL;
}

/* Runs `promtool check metrics` on |text|; returns its exit status and output in |msg|. */
static int promtool_check(const char *tool, const char *text, char *msg, size_t msglen)
{
    char in[] = "/tmp/fsr_prom_in_XXXXXX", outp[] = "/tmp/fsr_prom_out_XXXXXX";
    int fd = mkstemp(in), ofd = mkstemp(outp);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(ofd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    close(ofd);

    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' check metrics < %s > %s 2>&1", tool, in, outp);
    int st = system(cmd);
    FILE *f = fopen(outp, "r");
    size_t n = fread(msg, 1, msglen - 1, f);
    msg[n] = '\0';
    fclose(f);
    unlink(in);
    unlink(outp);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

START_TEST(test_metrics_promtool_accepts)
{
    const char *tool = promtool_path();
    if (tool == NULL) {
        fprintf(stderr, "# promtool not found: skipping the promtool assertions\n");
        return;
    }
    char msg[4096];

    /* First prove the check can fail: a counter without HELP and _total is linted. */
    ck_assert_int_ne(promtool_check(tool, "# TYPE foo counter\nfoo 1\n", msg, sizeof(msg)), 0);

    build_sample();
    ck_assert_int_eq(fsr_metrics_register_process(), 0);
    fsr_metric *lat = fsr_metric_histogram("rpc_server_handling_seconds", "RPC latency.",
                                           LABELS("service", "method"), 2, NULL, 0);
    for (int i = 0; i < 100; i++)
        fsr_histogram_observe(fsr_metric_labels(lat, LABELS("equity.v1.EquityService",
                                                            i % 2 ? "GetQuote" : "PlaceOrder")),
                              i / 1000.0);
    fsr_metric *h = fsr_metric_counter("rpc_server_handled", "RPCs completed.",
                                       LABELS("service", "method", "code"), 3);
    fsr_counter_add(fsr_metric_labels(h, LABELS("s", "m", "OK")), 5);
    fsr_counter_add(fsr_metric_labels(h, LABELS("s", "we\"ird\\ \n value", "UNKNOWN")), 1);

    char *out = render();
    int rv = promtool_check(tool, out, msg, sizeof(msg));
    if (rv != 0 || msg[0] != '\0')
        fprintf(stderr, "--- promtool input ---\n%s--- end ---\n", out);
    /* Check caps failure messages at a few KiB: keep them short. */
    ck_assert_msg(rv == 0, "promtool exit %d: %.1000s", rv, msg);
    ck_assert_msg(msg[0] == '\0', "promtool said: %.1000s", msg);
    free(out);
}
END_TEST

/* ---- concurrency ------------------------------------------------------------------- */

typedef struct work {
    fsr_series *counter, *hist, *gauge;
    int iterations;
    pthread_barrier_t *barrier;
} work;

static void *worker(void *arg)
{
    const work *w = arg;
    if (w->barrier != NULL)
        pthread_barrier_wait(w->barrier); /* all threads alive at once */
    for (int i = 0; i < w->iterations; i++) {
        fsr_counter_add(w->counter, 1);
        fsr_histogram_observe(w->hist, (i % 4) * 0.5); /* 0, 0.5, 1, 1.5 */
        fsr_gauge_add(w->gauge, 1);
    }
    if (w->barrier != NULL)
        pthread_barrier_wait(w->barrier); /* keep shards taken until everyone is done */
    return NULL;
}

static void run_threads(int n_threads, int iterations, bool together)
{
    static const double bounds[] = { 0.25, 1 };
    fsr_series *c =
        fsr_metric_labels(fsr_metric_counter("conc", "C.", LABELS("k"), 1), LABELS("v"));
    fsr_series *h = fsr_metric_labels(
        fsr_metric_histogram("conc_seconds", "H.", LABELS("k"), 1, bounds, 2), LABELS("v"));
    fsr_series *g = fsr_metric_labels(fsr_metric_gauge("conc_gauge", "G.", NULL, 0), NULL);
    pthread_barrier_t barrier;
    pthread_t *t = calloc((size_t)n_threads, sizeof(*t));
    work w = { c, h, g, iterations, together ? &barrier : NULL };

    if (together)
        pthread_barrier_init(&barrier, NULL, (unsigned)n_threads);
    for (int i = 0; i < n_threads; i++) {
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &w), 0);
        if (!together)
            pthread_join(t[i], NULL); /* one after another: shard ids are recycled */
    }
    if (together) {
        for (int i = 0; i < n_threads; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&barrier);
    }
    free(t);

    double total = (double)n_threads * iterations;
    ck_assert_msg(fsr_series_value(c) == total, "counter %f want %f", fsr_series_value(c), total);
    ck_assert(fsr_series_value(h) == total);
    ck_assert(fsr_series_value(g) == total);

    /* Buckets: a quarter each of 0, 0.5, 1, 1.5 (iterations divisible by 4). */
    char *out = render(), want[256];
    long q = (long)total / 4;
    snprintf(want, sizeof(want),
             "conc_seconds_bucket{k=\"v\",le=\"0.25\"} %ld\n"
             "conc_seconds_bucket{k=\"v\",le=\"1\"} %ld\n"
             "conc_seconds_bucket{k=\"v\",le=\"+Inf\"} %ld\n"
             "conc_seconds_sum{k=\"v\"} %ld\n",
             q, 3 * q, 4 * q, 3 * q);
    ck_assert_msg(strstr(out, want) != NULL, "want:\n%s\ngot:\n%.2000s", want, out);
    free(out);
}

START_TEST(test_metrics_concurrent_exact)
{
    run_threads(8, 200000, true);
}
END_TEST

START_TEST(test_metrics_more_threads_than_shards)
{
    /* 100 live threads > 63 private shards: the rest share the atomic shard. */
    run_threads(100, 4000, true);
}
END_TEST

START_TEST(test_metrics_shard_recycling)
{
    /* 300 short-lived threads in turn: ids return to the pool, values carry over. */
    run_threads(300, 400, false);
}
END_TEST

static void *scraper(void *arg)
{
    atomic_int *stop = arg;
    while (!atomic_load(stop)) {
        char *out = NULL;
        fsr_metrics_render_buf(&out, NULL);
        free(out);
    }
    return NULL;
}

START_TEST(test_metrics_render_while_updating)
{
    /* Renders race updates and series creation; sanitizer builds catch misuse. */
    atomic_int stop = 0;
    pthread_t s;
    ck_assert_int_eq(pthread_create(&s, NULL, scraper, &stop), 0);
    fsr_metric *m = fsr_metric_counter("churn", "C.", LABELS("i"), 1);
    for (int i = 0; i < 2000; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i % 500);
        fsr_counter_add(fsr_metric_labels(m, LABELS(v)), 1);
    }
    atomic_store(&stop, 1);
    pthread_join(s, NULL);
    double sum = 0;
    for (int i = 0; i < 500; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        sum += fsr_series_value(fsr_metric_labels(m, LABELS(v)));
    }
    ck_assert(sum == 2000);
}
END_TEST

START_TEST(test_metrics_series_limit)
{
    fsr_metric *m = fsr_metric_gauge("many", "Many.", LABELS("i"), 1);
    char v[16];
    for (int i = 0; i < FSR_METRICS_MAX_SERIES; i++) {
        snprintf(v, sizeof(v), "%d", i);
        ck_assert_ptr_nonnull(fsr_metric_labels(m, LABELS(v)));
    }
    ck_assert_ptr_null(fsr_metric_labels(m, LABELS("one more")));
    ck_assert_ptr_nonnull(fsr_metric_labels(m, LABELS("42"))); /* existing ones still found */
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc;

    tc = tcase_create("render");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_metrics_render_exact);
    tcase_add_test(tc, test_metrics_value_format);
    tcase_add_test(tc, test_metrics_callbacks);
    tcase_add_test(tc, test_metrics_process);
    tcase_add_test(tc, test_metrics_promtool_accepts);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("registry");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_metrics_get_or_create);
    tcase_add_test(tc, test_metrics_series_identity);
    tcase_add_test(tc, test_metrics_update_semantics);
    tcase_add_test(tc, test_metrics_series_limit);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_metrics_concurrent_exact);
    tcase_add_test(tc, test_metrics_more_threads_than_shards);
    tcase_add_test(tc, test_metrics_shard_recycling);
    tcase_add_test(tc, test_metrics_render_while_updating);
    tcase_set_timeout(tc, 100);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
