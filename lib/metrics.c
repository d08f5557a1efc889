/* SPDX-License-Identifier: MIT */
/* Prometheus metrics registry: per-thread shards on the hot path, summed at scrape time. */
#include "fsr/metrics.h"
#include "fsr/log.h"
#include "fsr/status.h"

#include <event2/buffer.h>

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/*
 * Design.  The request path must not contend: STYLE §8 wants per-thread counters summed
 * at scrape time.  Each thread takes a shard id the first time it updates any metric; ids
 * 0..SHARED_SHARD-1 are private to one live thread at a time, and SHARED_SHARD is where
 * every thread beyond that lands.  A series keeps one lazily allocated, cache-line aligned
 * block per shard (so threads never write the same line), holding a counter's value or a
 * histogram's sum and bucket counts.
 *
 * A private shard has a single writer, so an update is a relaxed load plus a relaxed store:
 * plain moves on x86-64 and AArch64, no lock prefix, yet a data-race-free read for the
 * scraper.  The shared shard uses read-modify-write atomics instead.  When a thread exits,
 * a pthread key destructor returns its id to the pool; the next thread to take the id
 * continues from the values left there (the pool mutex orders the two threads' accesses),
 * which is exactly what a sum needs.
 *
 * Gauges are not sharded: "set" has no meaning per thread.  A gauge is one atomic double.
 *
 * The registry (families, series lists, callbacks) is guarded by one mutex, taken only to
 * register, to look up a series and to render.
 */

#define SHARED_SHARD (FSR_METRICS_SHARDS - 1)
#define CACHE_LINE   64

typedef enum metric_type {
    M_COUNTER,
    M_GAUGE,
    M_HISTOGRAM,
} metric_type;

/* A counter's value, or a histogram's sum followed by its n_bounds + 1 bucket counts. */
typedef struct shard {
    _Atomic double sum;
    _Atomic uint64_t buckets[]; /* non-cumulative; [n_bounds] is the +Inf bucket */
} shard;

struct fsr_series {
    fsr_metric *m;
    char **values; /* m->n_labels sanitized copies */
    uint64_t hash;
    _Atomic double gauge;
    _Atomic(shard *) shards[FSR_METRICS_SHARDS];
};

typedef struct fn_entry {
    fsr_metric_fn fn;
    void *arg;
} fn_entry;

struct fsr_metric {
    char *name; /* the exposed name ("_total" included for counters) */
    char *help; /* sanitized; escaped at render time */
    metric_type type;
    bool is_fn; /* value from callbacks, no series */
    bool overflow_logged;
    size_t n_labels;
    char **label_names;
    size_t n_bounds;
    double *bounds;
    size_t shard_size; /* bytes per shard block, a multiple of CACHE_LINE */

    fsr_series **series;
    size_t n_series, cap_series;

    fn_entry *fns;
    size_t n_fns, cap_fns;
};

const double fsr_metric_latency_buckets[FSR_METRIC_LATENCY_BUCKETS_N] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static fsr_metric **families; /* sorted by name */
static size_t n_families, cap_families;

/* ---- allocation ------------------------------------------------------------------- */

static void oom(void)
{
    FSR_ERROR("metrics: out of memory");
    abort();
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom();
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

/* Returns |arr| (|*cap| elements of |size| bytes) grown to hold at least |need|. */
static void *grow(void *arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 8;
    while (ncap < need)
        ncap *= 2;
    *cap = ncap;
    return xrealloc(arr, ncap * size);
}

/*
 * Copies |s| replacing each byte that does not start a well-formed UTF-8 sequence with
 * U+FFFD: Prometheus requires valid UTF-8 in label values and help text.
 */
static char *utf8_dup(const char *s)
{
    size_t n = strlen(s);
    char *out = xcalloc(3 * n + 1, 1);
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t len = 0;
        uint32_t cp = 0, min = 0;
        if (c < 0x80)
            len = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07, min = 0x10000;
        if (len > 1) {
            if (len > n - i) {
                len = 0;
            } else {
                for (size_t k = 1; k < len; k++) {
                    if ((u[i + k] & 0xc0) != 0x80) {
                        len = 0;
                        break;
                    }
                    cp = (cp << 6) | (u[i + k] & 0x3f);
                }
                if (len && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)))
                    len = 0;
            }
        }
        if (len == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        }
    }
    out[o] = '\0';
    return out;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xcalloc(n, 1);
    memcpy(p, s, n);
    return p;
}

/* ---- shards ------------------------------------------------------------------------ */

/*
 * initial-exec: libfsr is linked into executables only, so the shard id can live in the
 * static TLS block and be read with one instruction instead of a __tls_get_addr() call
 * (meson builds static libraries as PIC, which otherwise selects the general model).
 */
static __thread int tl_shard __attribute__((tls_model("initial-exec"))) = -1;
static pthread_once_t shard_once = PTHREAD_ONCE_INIT;
static pthread_key_t shard_key;
static pthread_mutex_t shard_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t shard_used; /* bit i set: private shard i belongs to a live thread */

/* Thread exit: give the private shard back. */
static void shard_release(void *p)
{
    int id = (int)(intptr_t)p - 1;
    pthread_mutex_lock(&shard_mu);
    shard_used &= ~(UINT64_C(1) << id);
    pthread_mutex_unlock(&shard_mu);
    /* Destructors of other keys may still update metrics on this thread: share from now. */
    tl_shard = SHARED_SHARD;
}

static void shard_key_init(void)
{
    if (pthread_key_create(&shard_key, shard_release) != 0)
        abort();
}

static int shard_assign(void)
{
    int id = SHARED_SHARD;

    pthread_once(&shard_once, shard_key_init);
    pthread_mutex_lock(&shard_mu);
    for (int i = 0; i < SHARED_SHARD; i++) {
        if (!(shard_used & (UINT64_C(1) << i))) {
            shard_used |= UINT64_C(1) << i;
            id = i;
            break;
        }
    }
    pthread_mutex_unlock(&shard_mu);
    if (id != SHARED_SHARD && pthread_setspecific(shard_key, (void *)(intptr_t)(id + 1)) != 0) {
        /* Without a destructor the id could never be returned: use the shared shard. */
        pthread_mutex_lock(&shard_mu);
        shard_used &= ~(UINT64_C(1) << id);
        pthread_mutex_unlock(&shard_mu);
        id = SHARED_SHARD;
    }
    tl_shard = id;
    return id;
}

static inline int shard_id(void)
{
    int id = tl_shard;
    if (__builtin_expect(id >= 0, 1))
        return id;
    return shard_assign();
}

static shard *shard_alloc(fsr_series *s, int id)
{
    shard *sh = aligned_alloc(CACHE_LINE, s->m->shard_size);
    if (sh == NULL)
        oom();
    memset(sh, 0, s->m->shard_size);
    /* Only the shared shard can race here; the loser frees its block. */
    shard *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&s->shards[id], &expected, sh,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        free(sh);
        return expected;
    }
    return sh;
}

static inline shard *get_shard(fsr_series *s, int id)
{
    shard *sh = atomic_load_explicit(&s->shards[id], memory_order_acquire);
    if (__builtin_expect(sh != NULL, 1))
        return sh;
    return shard_alloc(s, id);
}

static inline void add_double(_Atomic double *cell, double v, bool shared)
{
    if (!shared) {
        double cur = atomic_load_explicit(cell, memory_order_relaxed);
        atomic_store_explicit(cell, cur + v, memory_order_relaxed);
        return;
    }
    double cur = atomic_load_explicit(cell, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(cell, &cur, cur + v, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/* ---- hot path ---------------------------------------------------------------------- */

void fsr_counter_add(fsr_series *s, double v)
{
    if (s == NULL || !(v > 0) || s->m->type != M_COUNTER)
        return;
    int id = shard_id();
    add_double(&get_shard(s, id)->sum, v, id == SHARED_SHARD);
}

void fsr_gauge_set(fsr_series *s, double v)
{
    if (s == NULL || s->m->type != M_GAUGE)
        return;
    atomic_store_explicit(&s->gauge, v, memory_order_relaxed);
}

void fsr_gauge_add(fsr_series *s, double v)
{
    if (s == NULL || s->m->type != M_GAUGE)
        return;
    add_double(&s->gauge, v, true);
}

void fsr_histogram_observe(fsr_series *s, double v)
{
    if (s == NULL || isnan(v))
        return;
    const fsr_metric *m = s->m;
    if (m->type != M_HISTOGRAM)
        return;

    /* The first bucket whose upper bound is >= v; n_bounds is +Inf. */
    size_t lo = 0, hi = m->n_bounds;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= m->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }

    int id = shard_id();
    shard *sh = get_shard(s, id);
    if (id != SHARED_SHARD) {
        uint64_t c = atomic_load_explicit(&sh->buckets[lo], memory_order_relaxed);
        atomic_store_explicit(&sh->buckets[lo], c + 1, memory_order_relaxed);
        add_double(&sh->sum, v, false);
    } else {
        atomic_fetch_add_explicit(&sh->buckets[lo], 1, memory_order_relaxed);
        add_double(&sh->sum, v, true);
    }
}

/* Sum of the shards' |sum| cells. */
static double series_sum(const fsr_series *s)
{
    double total = 0;
    for (int i = 0; i < FSR_METRICS_SHARDS; i++) {
        shard *sh = atomic_load_explicit(&s->shards[i], memory_order_acquire);
        if (sh != NULL)
            total += atomic_load_explicit(&sh->sum, memory_order_relaxed);
    }
    return total;
}

/* Fills |counts| (n_bounds + 1) with the per-bucket counts summed over shards. */
static void series_buckets(const fsr_series *s, uint64_t *counts)
{
    size_t nb = s->m->n_bounds + 1;
    memset(counts, 0, nb * sizeof(*counts));
    for (int i = 0; i < FSR_METRICS_SHARDS; i++) {
        shard *sh = atomic_load_explicit(&s->shards[i], memory_order_acquire);
        if (sh == NULL)
            continue;
        for (size_t b = 0; b < nb; b++)
            counts[b] += atomic_load_explicit(&sh->buckets[b], memory_order_relaxed);
    }
}

double fsr_series_value(const fsr_series *s)
{
    if (s == NULL)
        return 0;
    switch (s->m->type) {
    case M_COUNTER:
        return series_sum(s);
    case M_GAUGE:
        return atomic_load_explicit(&s->gauge, memory_order_relaxed);
    case M_HISTOGRAM: {
        uint64_t *counts = xcalloc(s->m->n_bounds + 1, sizeof(*counts));
        uint64_t total = 0;
        series_buckets(s, counts);
        for (size_t b = 0; b <= s->m->n_bounds; b++)
            total += counts[b];
        free(counts);
        return (double)total;
    }
    }
    return 0;
}

/* ---- registration ------------------------------------------------------------------ */

static bool valid_name(const char *s, bool colon_ok)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (colon_ok && c == ':')))
            return false;
    }
    return true;
}

/* Binary search; returns the family or NULL, and the insertion index in *|pos|. */
static fsr_metric *find_family(const char *name, size_t *pos)
{
    size_t lo = 0, hi = n_families;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(families[mid]->name, name);
        if (c == 0) {
            *pos = mid;
            return families[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return NULL;
}

static uint64_t hash_values(const char *const *values, size_t n)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        for (const char *p = values[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
        h = (h ^ 0xff) * UINT64_C(1099511628211); /* separator: 0xff never occurs in UTF-8 */
    }
    return h;
}

/* Creates series |values| (already sanitized, ownership taken) of |m|.  Lock held. */
static fsr_series *series_new(fsr_metric *m, char **values)
{
    fsr_series *s = xcalloc(1, sizeof(*s));
    s->m = m;
    s->values = values;
    s->hash = hash_values((const char *const *)values, m->n_labels);
    atomic_init(&s->gauge, 0.0);
    for (int i = 0; i < FSR_METRICS_SHARDS; i++)
        atomic_init(&s->shards[i], NULL);
    m->series = grow(m->series, &m->cap_series, m->n_series + 1, sizeof(*m->series));
    m->series[m->n_series++] = s;
    return s;
}

static void series_free(fsr_series *s, size_t n_labels)
{
    for (int i = 0; i < FSR_METRICS_SHARDS; i++)
        free(atomic_load_explicit(&s->shards[i], memory_order_relaxed));
    for (size_t i = 0; i < n_labels; i++)
        free(s->values[i]);
    free(s->values);
    free(s);
}

static void family_free(fsr_metric *m)
{
    for (size_t i = 0; i < m->n_series; i++)
        series_free(m->series[i], m->n_labels);
    for (size_t i = 0; i < m->n_labels; i++)
        free(m->label_names[i]);
    free(m->label_names);
    free(m->series);
    free(m->fns);
    free(m->bounds);
    free(m->help);
    free(m->name);
    free(m);
}

/* The exposed name: counters end in "_total".  Caller frees. */
static char *exposed_name(const char *name, metric_type type)
{
    size_t n = strlen(name);
    if (type != M_COUNTER || (n >= 6 && strcmp(name + n - 6, "_total") == 0))
        return xstrdup(name);
    char *p = xcalloc(n + 7, 1);
    memcpy(p, name, n);
    memcpy(p + n, "_total", 7);
    return p;
}

static const char *type_name(metric_type t)
{
    return t == M_COUNTER ? "counter" : t == M_GAUGE ? "gauge" : "histogram";
}

/*
 * Get-or-create under the lock.  |bounds| is NULL for non-histograms.  Returns NULL (and
 * logs) on invalid input or a conflicting definition.
 */
static fsr_metric *family_get(const char *name_in, const char *help, metric_type type, bool is_fn,
                              const char *const *label_names, size_t n_labels, const double *bounds,
                              size_t n_bounds)
{
    if (!valid_name(name_in, true)) {
        FSR_ERROR("metrics: invalid metric name '%s'", name_in ? name_in : "(null)");
        return NULL;
    }
    if (n_labels > 0 && label_names == NULL) {
        FSR_ERROR("metrics: %s: label names missing", name_in);
        return NULL;
    }
    for (size_t i = 0; i < n_labels; i++) {
        const char *l = label_names[i];
        if (!valid_name(l, false) || strncmp(l, "__", 2) == 0 ||
            (type == M_HISTOGRAM && strcmp(l, "le") == 0)) {
            FSR_ERROR("metrics: %s: invalid label name '%s'", name_in, l ? l : "(null)");
            return NULL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(l, label_names[j]) == 0) {
                FSR_ERROR("metrics: %s: duplicate label name '%s'", name_in, l);
                return NULL;
            }
        }
    }
    for (size_t i = 0; i < n_bounds; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
            FSR_ERROR("metrics: %s: bucket bounds must be finite and increasing", name_in);
            return NULL;
        }
    }

    char *name = exposed_name(name_in, type);
    size_t pos;
    pthread_mutex_lock(&reg_mu);
    fsr_metric *m = find_family(name, &pos);
    if (m != NULL) {
        bool same = m->type == type && m->is_fn == is_fn && m->n_labels == n_labels &&
                    m->n_bounds == n_bounds;
        for (size_t i = 0; same && i < n_labels; i++)
            same = strcmp(m->label_names[i], label_names[i]) == 0;
        for (size_t i = 0; same && i < n_bounds; i++)
            same = m->bounds[i] == bounds[i];
        pthread_mutex_unlock(&reg_mu);
        if (!same) {
            FSR_ERROR("metrics: %s is already registered as a different %s", name,
                      type_name(m->type));
            m = NULL;
        }
        free(name);
        return m;
    }

    m = xcalloc(1, sizeof(*m));
    m->name = name;
    m->help = utf8_dup(help != NULL && *help != '\0' ? help : name);
    m->type = type;
    m->is_fn = is_fn;
    m->n_labels = n_labels;
    m->label_names = xcalloc(n_labels, sizeof(char *));
    for (size_t i = 0; i < n_labels; i++)
        m->label_names[i] = xstrdup(label_names[i]);
    m->n_bounds = n_bounds;
    m->bounds = xcalloc(n_bounds, sizeof(double));
    if (n_bounds > 0)
        memcpy(m->bounds, bounds, n_bounds * sizeof(double));
    size_t sz = sizeof(shard) + (type == M_HISTOGRAM ? (n_bounds + 1) * sizeof(uint64_t) : 0);
    m->shard_size = (sz + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;

    families = grow(families, &cap_families, n_families + 1, sizeof(*families));
    memmove(families + pos + 1, families + pos, (n_families - pos) * sizeof(*families));
    families[pos] = m;
    n_families++;
    /* A family without labels has exactly one series, which exists (at 0) from the start. */
    if (!is_fn && n_labels == 0)
        series_new(m, xcalloc(1, sizeof(char *)));
    pthread_mutex_unlock(&reg_mu);
    return m;
}

fsr_metric *fsr_metric_counter(const char *name, const char *help, const char *const *label_names,
                               size_t n_labels)
{
    return family_get(name, help, M_COUNTER, false, label_names, n_labels, NULL, 0);
}

fsr_metric *fsr_metric_gauge(const char *name, const char *help, const char *const *label_names,
                             size_t n_labels)
{
    return family_get(name, help, M_GAUGE, false, label_names, n_labels, NULL, 0);
}

fsr_metric *fsr_metric_histogram(const char *name, const char *help, const char *const *label_names,
                                 size_t n_labels, const double *bounds, size_t n_bounds)
{
    if (bounds == NULL) {
        bounds = fsr_metric_latency_buckets;
        n_bounds = FSR_METRIC_LATENCY_BUCKETS_N;
    }
    return family_get(name, help, M_HISTOGRAM, false, label_names, n_labels, bounds, n_bounds);
}

fsr_series *fsr_metric_labels(fsr_metric *m, const char *const *values)
{
    if (m == NULL || m->is_fn)
        return NULL;
    if (m->n_labels > 0 && values == NULL) {
        FSR_ERROR("metrics: %s: label values missing", m->name);
        return NULL;
    }

    /* Sanitize first (outside the lock), so lookups compare what is stored. */
    char **vals = xcalloc(m->n_labels ? m->n_labels : 1, sizeof(char *));
    for (size_t i = 0; i < m->n_labels; i++)
        vals[i] = utf8_dup(values[i] != NULL ? values[i] : "");
    uint64_t h = hash_values((const char *const *)vals, m->n_labels);

    fsr_series *found = NULL;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < m->n_series && found == NULL; i++) {
        fsr_series *s = m->series[i];
        if (s->hash != h)
            continue;
        size_t k = 0;
        while (k < m->n_labels && strcmp(s->values[k], vals[k]) == 0)
            k++;
        if (k == m->n_labels)
            found = s;
    }
    if (found == NULL) {
        if (m->n_series >= FSR_METRICS_MAX_SERIES) {
            bool log = !m->overflow_logged;
            m->overflow_logged = true;
            pthread_mutex_unlock(&reg_mu);
            if (log)
                FSR_ERROR("metrics: %s: more than %d series, dropping new ones", m->name,
                          FSR_METRICS_MAX_SERIES);
            goto free_vals;
        }
        found = series_new(m, vals);
        pthread_mutex_unlock(&reg_mu);
        return found;
    }
    pthread_mutex_unlock(&reg_mu);
free_vals:
    for (size_t i = 0; i < m->n_labels; i++)
        free(vals[i]);
    free(vals);
    return found;
}

static int fn_register(const char *name, const char *help, metric_type type, fsr_metric_fn fn,
                       void *arg)
{
    if (fn == NULL)
        return FSR_E_CONFIG;
    fsr_metric *m = family_get(name, help, type, true, NULL, 0, NULL, 0);
    if (m == NULL)
        return FSR_E_CONFIG;
    pthread_mutex_lock(&reg_mu);
    bool dup = false;
    for (size_t i = 0; i < m->n_fns && !dup; i++)
        dup = m->fns[i].fn == fn && m->fns[i].arg == arg;
    if (!dup) {
        m->fns = grow(m->fns, &m->cap_fns, m->n_fns + 1, sizeof(*m->fns));
        m->fns[m->n_fns++] = (fn_entry){ fn, arg };
    }
    pthread_mutex_unlock(&reg_mu);
    return 0;
}

int fsr_metric_gauge_fn(const char *name, const char *help, fsr_metric_fn fn, void *arg)
{
    return fn_register(name, help, M_GAUGE, fn, arg);
}

int fsr_metric_counter_fn(const char *name, const char *help, fsr_metric_fn fn, void *arg)
{
    return fn_register(name, help, M_COUNTER, fn, arg);
}

void fsr_metric_fn_remove(fsr_metric_fn fn, void *arg)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < n_families; i++) {
        fsr_metric *m = families[i];
        size_t k = 0;
        for (size_t j = 0; j < m->n_fns; j++) {
            if (!(m->fns[j].fn == fn && m->fns[j].arg == arg))
                m->fns[k++] = m->fns[j];
        }
        m->n_fns = k;
    }
    pthread_mutex_unlock(&reg_mu);
}

void fsr_metrics_reset(void)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < n_families; i++)
        family_free(families[i]);
    free(families);
    families = NULL;
    n_families = cap_families = 0;
    pthread_mutex_unlock(&reg_mu);
}

/* ---- process metrics ------------------------------------------------------------- */

static double proc_cpu_seconds(void *arg)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Field |field| (0 = size, 1 = resident) of /proc/self/statm, in bytes. */
static double proc_statm(int field)
{
    unsigned long v[2] = { 0, 0 };
    FILE *f = fopen("/proc/self/statm", "re");
    if (f == NULL)
        return 0;
    int n = fscanf(f, "%lu %lu", &v[0], &v[1]);
    fclose(f);
    if (n != 2)
        return 0;
    return (double)v[field] * (double)sysconf(_SC_PAGESIZE);
}

static double proc_resident(void *arg)
{
    return proc_statm(1);
}

static double proc_virtual(void *arg)
{
    return proc_statm(0);
}

static double proc_open_fds(void *arg)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    double n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not counting the directory's own fd */
}

static double proc_max_fds(void *arg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    return (double)rl.rlim_cur;
}

static double start_time;

static double proc_start_time(void *arg)
{
    return start_time;
}

/* Boot time (/proc/stat btime) plus our start (/proc/self/stat field 22, in clock ticks). */
static double compute_start_time(void)
{
    char buf[4096];
    unsigned long long btime = 0, ticks = 0;
    FILE *f = fopen("/proc/stat", "re");
    if (f == NULL)
        return 0;
    while (fgets(buf, sizeof(buf), f) != NULL) {
        if (sscanf(buf, "btime %llu", &btime) == 1)
            break;
    }
    fclose(f);

    f = fopen("/proc/self/stat", "re");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* comm (field 2) may contain spaces and parentheses: fields resume after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    p++;
    /* Fields 3..21 precede starttime. */
    for (int field = 3; field <= 22 && p != NULL; field++) {
        while (*p == ' ')
            p++;
        if (field == 22) {
            ticks = strtoull(p, NULL, 10);
            break;
        }
        p = strchr(p, ' ');
    }
    return (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

static void init_start_time(void)
{
    start_time = compute_start_time();
}

int fsr_metrics_register_process(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    static const struct {
        const char *name, *help;
        bool counter;
        fsr_metric_fn fn;
    } defs[] = {
        { "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", true,
          proc_cpu_seconds },
        { "process_resident_memory_bytes", "Resident memory size in bytes.", false, proc_resident },
        { "process_virtual_memory_bytes", "Virtual memory size in bytes.", false, proc_virtual },
        { "process_open_fds", "Number of open file descriptors.", false, proc_open_fds },
        { "process_max_fds", "Maximum number of open file descriptors.", false, proc_max_fds },
        { "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
          false, proc_start_time },
    };

    pthread_once(&once, init_start_time);
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        int rv = defs[i].counter
                     ? fsr_metric_counter_fn(defs[i].name, defs[i].help, defs[i].fn, NULL)
                     : fsr_metric_gauge_fn(defs[i].name, defs[i].help, defs[i].fn, NULL);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* ---- rendering ------------------------------------------------------------------- */

/* Formats |v| as Prometheus expects: shortest round-trip decimal, +Inf, -Inf, NaN. */
static void fmt_double(char *buf, size_t len, double v)
{
    if (isnan(v)) {
        snprintf(buf, len, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(buf, len, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, len, "%.17g", v);
    }
}

/* Writes |s| escaped for a HELP line (|label| false) or a label value (|label| true). */
static void put_escaped(FILE *f, const char *s, bool label)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if (label && *s == '"')
            fputs("\\\"", f);
        else
            fputc(*s, f);
    }
}

/* Writes `{a="x",b="y"}`, plus le="|le|" last if |le| is not NULL; nothing if empty. */
static void put_labels(FILE *f, const fsr_metric *m, const fsr_series *s, const char *le)
{
    if (m->n_labels == 0 && le == NULL)
        return;
    fputc('{', f);
    for (size_t i = 0; i < m->n_labels; i++) {
        fprintf(f, "%s%s=\"", i ? "," : "", m->label_names[i]);
        put_escaped(f, s->values[i], true);
        fputc('"', f);
    }
    if (le != NULL)
        fprintf(f, "%sle=\"%s\"", m->n_labels ? "," : "", le);
    fputc('}', f);
}

static void render_family(FILE *f, const fsr_metric *m, uint64_t *counts)
{
    char num[64];

    if (m->is_fn ? m->n_fns == 0 : m->n_series == 0)
        return;
    fprintf(f, "# HELP %s ", m->name);
    put_escaped(f, m->help, false);
    fprintf(f, "\n# TYPE %s %s\n", m->name, type_name(m->type));

    if (m->is_fn) {
        double v = 0;
        for (size_t i = 0; i < m->n_fns; i++)
            v += m->fns[i].fn(m->fns[i].arg);
        fmt_double(num, sizeof(num), v);
        fprintf(f, "%s %s\n", m->name, num);
        return;
    }

    for (size_t i = 0; i < m->n_series; i++) {
        const fsr_series *s = m->series[i];
        if (m->type != M_HISTOGRAM) {
            fmt_double(num, sizeof(num), fsr_series_value(s));
            fputs(m->name, f);
            put_labels(f, m, s, NULL);
            fprintf(f, " %s\n", num);
            continue;
        }
        /* Cumulative buckets; the count is their total, so +Inf == _count always. */
        series_buckets(s, counts);
        uint64_t cum = 0;
        for (size_t b = 0; b <= m->n_bounds; b++) {
            cum += counts[b];
            if (b < m->n_bounds)
                fmt_double(num, sizeof(num), m->bounds[b]);
            else
                snprintf(num, sizeof(num), "+Inf");
            fprintf(f, "%s_bucket", m->name);
            put_labels(f, m, s, num);
            fprintf(f, " %" PRIu64 "\n", cum);
        }
        fmt_double(num, sizeof(num), series_sum(s));
        fprintf(f, "%s_sum", m->name);
        put_labels(f, m, s, NULL);
        fprintf(f, " %s\n%s_count", num, m->name);
        put_labels(f, m, s, NULL);
        fprintf(f, " %" PRIu64 "\n", cum);
    }
}

int fsr_metrics_render_buf(char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (f == NULL)
        oom();

    pthread_mutex_lock(&reg_mu);
    size_t max_buckets = 0;
    for (size_t i = 0; i < n_families; i++) {
        if (families[i]->n_bounds + 1 > max_buckets)
            max_buckets = families[i]->n_bounds + 1;
    }
    uint64_t *counts = xcalloc(max_buckets, sizeof(*counts));
    for (size_t i = 0; i < n_families; i++)
        render_family(f, families[i], counts);
    pthread_mutex_unlock(&reg_mu);
    free(counts);

    if (fclose(f) != 0 || buf == NULL)
        oom();
    *out = buf;
    if (len != NULL)
        *len = n;
    return 0;
}

void fsr_metrics_render(struct evbuffer *out)
{
    char *buf;
    size_t n;
    fsr_metrics_render_buf(&buf, &n);
    evbuffer_add(out, buf, n);
    free(buf);
}
