/* SPDX-License-Identifier: MIT */
/* Prometheus metrics: a process-wide registry, lock-free updates, text exposition 0.0.4. */
#ifndef FSR_METRICS_H
#define FSR_METRICS_H

#include <stddef.h>

struct evbuffer;

/*
 * A metric family (one name, one type, fixed label names) and one of its series (one
 * combination of label values).  Both live until fsr_metrics_reset(), i.e. in practice for
 * the whole process, so callers look them up once and keep the pointers:
 *
 *     static const char *const labels[] = { "method", "code" };
 *     fsr_metric *m = fsr_metric_counter("rpc_server_handled", "RPCs completed.", labels, 2);
 *     fsr_series *ok = fsr_metric_labels(m, (const char *const[]){ "GetQuote", "OK" });
 *     ...
 *     fsr_counter_add(ok, 1);  // hot path: no lock, no atomic read-modify-write
 *
 * Registration and series lookup take a mutex and may allocate; updates do not lock.
 * Counter and histogram values are kept per thread (up to FSR_METRICS_SHARDS threads get
 * a private shard; any further threads share one, updated with atomic read-modify-write)
 * and summed when the registry is rendered.  Gauges hold one value (set/add from any
 * thread, lock-free).
 *
 * Every function accepts NULL for |m| or |s| and then does nothing (or returns NULL), so a
 * failed registration, which is logged, never crashes the request path.
 */
typedef struct fsr_metric fsr_metric;
typedef struct fsr_series fsr_series;

/* Threads that get a private shard (the last shard is the shared one). */
#define FSR_METRICS_SHARDS 64

/* Most series a family may hold; fsr_metric_labels() returns NULL (logged once) beyond. */
#define FSR_METRICS_MAX_SERIES 10000

/*
 * The default histogram buckets, for latencies in seconds: 100us to 10s.
 * fsr_metric_histogram() uses them when |bounds| is NULL.
 */
extern const double fsr_metric_latency_buckets[];
#define FSR_METRIC_LATENCY_BUCKETS_N 16

/*
 * Get-or-create a counter family named |name| with |n_labels| label names.  A counter's
 * exposed name ends in "_total": the suffix is appended if |name| lacks it, so "rpc_calls"
 * and "rpc_calls_total" are the same family.  |help| is the HELP text (required by the
 * linters; NULL renders as the name).  All strings are copied.
 *
 * Calling again with the same name returns the same family if the type and label names
 * match, so modules need not coordinate who registers first.  Returns NULL (and logs) if
 * the name or a label name is invalid (names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]* and may not start with "__"), or if the name is already
 * registered with another type, other label names or other buckets.  Thread-safe.
 */
fsr_metric *fsr_metric_counter(const char *name, const char *help, const char *const *label_names,
                               size_t n_labels);

/* Get-or-create a gauge family; as fsr_metric_counter() without the "_total" rule. */
fsr_metric *fsr_metric_gauge(const char *name, const char *help, const char *const *label_names,
                             size_t n_labels);

/*
 * Get-or-create a histogram family.  |bounds| are the |n_bounds| finite upper bounds of
 * the buckets, strictly increasing; the +Inf bucket is implicit.  NULL |bounds| selects
 * fsr_metric_latency_buckets.  "le" may not be a label name.  Returns NULL as
 * fsr_metric_counter() does, and for bad bounds.
 */
fsr_metric *fsr_metric_histogram(const char *name, const char *help, const char *const *label_names,
                                 size_t n_labels, const double *bounds, size_t n_bounds);

/*
 * Get-or-create the series of |m| whose label values are |values| (|m|'s n_labels
 * strings, copied; NULL entries mean ""; |values| may be NULL when the family has no
 * labels).  Takes a mutex: call it once and cache the result.  Returns NULL if |m| is NULL
 * or the family already holds FSR_METRICS_MAX_SERIES series.  Label values should be
 * bounded sets (method names, status codes), never ids or user input.
 */
fsr_series *fsr_metric_labels(fsr_metric *m, const char *const *values);

/* Adds |v| to a counter series.  Negative and NaN values are ignored (counters only rise). */
void fsr_counter_add(fsr_series *s, double v);

/* Sets or adjusts a gauge series. */
void fsr_gauge_set(fsr_series *s, double v);
void fsr_gauge_add(fsr_series *s, double v);

/* Records |v| in a histogram series (NaN is ignored).  Cost: a binary search and two stores. */
void fsr_histogram_observe(fsr_series *s, double v);

/*
 * The current value of |s| summed over threads: a counter's or gauge's value, or a
 * histogram's observation count.  0 for NULL.  Meant for tests and health checks.
 */
double fsr_series_value(const fsr_series *s);

/* A value computed when the registry is rendered. */
typedef double (*fsr_metric_fn)(void *arg);

/*
 * Registers a label-less gauge (or counter, which gets the "_total" rule) whose value is
 * |fn|(|arg|), called at each render on the rendering thread with the registry lock held:
 * |fn| must be thread-safe, quick, and must not call any fsr_metric* function.  Several
 * callbacks may share one name (e.g. one per loop thread's pool); their values are summed.
 * Returns 0, or FSR_E_CONFIG (logged) for an invalid name or one taken by another kind.
 */
int fsr_metric_gauge_fn(const char *name, const char *help, fsr_metric_fn fn, void *arg);
int fsr_metric_counter_fn(const char *name, const char *help, fsr_metric_fn fn, void *arg);

/*
 * Removes every callback registered with this |fn| and |arg| (e.g. before freeing |arg|).
 * A family left without callbacks is no longer rendered.
 */
void fsr_metric_fn_remove(fsr_metric_fn fn, void *arg);

/*
 * Registers the standard process metrics, computed from /proc/self at render time:
 * process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds and process_start_time_seconds.  Idempotent; the
 * server calls it once at startup.  Returns 0, or FSR_E_CONFIG if a name is taken.
 */
int fsr_metrics_register_process(void);

/*
 * Renders every family (sorted by name; series in creation order) in the Prometheus text
 * exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4; charset=utf-8):
 * # HELP and # TYPE lines, escaped label values, histograms as cumulative _bucket{le=...}
 * lines ending with le="+Inf", then _sum and _count.  Families without series are skipped.
 * Values are read without stopping writers, so a histogram's _sum may lag its buckets by
 * in-flight observations; its +Inf bucket always equals its _count.
 */
void fsr_metrics_render(struct evbuffer *out);

/*
 * As fsr_metrics_render(), into a NUL-terminated buffer stored in *|out| (free() it),
 * with its length (without the NUL) in *|len| if |len| is not NULL.  Returns 0.
 */
int fsr_metrics_render_buf(char **out, size_t *len);

/*
 * Frees every family and series (callbacks included).  Only for tests and leak-checked
 * shutdown: no thread may use a metric or series pointer across it.
 */
void fsr_metrics_reset(void);

#endif /* FSR_METRICS_H */
