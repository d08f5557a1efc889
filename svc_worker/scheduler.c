/* SPDX-License-Identifier: MIT */
/*
 * The daily schedule: job types enqueued once a day per entry, by exactly one replica.
 *
 * Every replica's thread 0 checks the schedule every WORKER_SCHEDULE_TICK_MS.  An entry's
 * current period is its latest due time at or before now (today's 22:00 UTC after 22:00,
 * yesterday's before); once this worker knows that period's run exists it waits for the
 * next one.  Otherwise it tries to enqueue the run:
 *
 *   1. lock     SET jobs:<queue>:schedule:<name>:lock <token> NX PX <ttl> in Redis, the
 *               token being a fresh UUID.  Taken by another replica: try again next tick
 *               (by then that one has enqueued the run, and step 2 says so).  Held: extended
 *               every ttl/3 and finally released, both by Lua scripts that act only while
 *               the key still holds our token, so a lock that expired and went to another
 *               replica is never extended or deleted by us.
 *   2. guard    In ONE Postgres transaction: INSERT the run's row into scheduled_runs
 *               (primary key schedule_name, run_date, slot) ON CONFLICT DO NOTHING; if it
 *               went in, INSERT the job's row (fsr_job_insert); COMMIT.  A conflict means
 *               the run exists (another replica, or this one before a restart): roll back,
 *               create nothing.  This is what makes "once" hold even when Redis is flushed,
 *               restarted empty or partitioned: the lock only keeps replicas from racing
 *               for the same row.
 *   3. publish  After the COMMIT, XADD the job's envelope (fsr_job_publish).  If that fails
 *               the job is QUEUED in Postgres and the requeue sweep publishes it.
 *
 * Missed runs: a worker that starts (or recovers its database) after an entry's due time
 * finds the period's row missing and enqueues it at once, with that period's run date.
 * Only the latest period is ever considered, so a worker down for three days catches up
 * one run, not three.  (A new deployment counts as "down": it enqueues the latest period.)
 *
 * Daily entries use slot 0: one run per UTC day however the time is changed.  Entries with
 * an interval ("every 2s", for tests) use the second of the day their period starts.  The
 * job's payload is {"schedule": name, "run_date": "YYYY-MM-DD", "due_at": RFC 3339}.
 */
#include "ops.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "fsr/config.h"
#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/metrics.h"
#include "fsr/status.h"

wk_ops_config wk_ops_cfg;

static const fsr_config_entry ops_config_table[] = {
    { "schedule", "WORKER_SCHEDULE", FSR_CONFIG_STRING, NULL, 0, &wk_ops_cfg.schedule, 0, 0 },
    { "schedule_tick", "WORKER_SCHEDULE_TICK_MS", FSR_CONFIG_DURATION_MS, "1s", 0,
      &wk_ops_cfg.tick_ms, 10, 60000 },
    { "schedule_lock_ttl", "WORKER_SCHEDULE_LOCK_TTL_MS", FSR_CONFIG_DURATION_MS, "30s", 0,
      &wk_ops_cfg.lock_ttl_ms, 300, 3600 * 1000 },
    { "consumer_idle", "WORKER_CONSUMER_IDLE_MS", FSR_CONFIG_DURATION_MS, "1h", 0,
      &wk_ops_cfg.consumer_idle_ms, 0, 30LL * 24 * 3600 * 1000 },
    { "consumer_gc_interval", "WORKER_CONSUMER_GC_INTERVAL_MS", FSR_CONFIG_DURATION_MS, "5m", 0,
      &wk_ops_cfg.consumer_gc_ms, 10, 24LL * 3600 * 1000 },
    { "idempotency_retention", "WORKER_IDEMPOTENCY_RETENTION_MS", FSR_CONFIG_DURATION_MS, "24h", 0,
      &wk_ops_cfg.idempotency_retention_ms, 1000, 30LL * 24 * 3600 * 1000 },
};

/* ---- the schedule --------------------------------------------------------------------- */

/* The built-in schedule: each worker takes the entries of its own queue. */
typedef struct sched_def {
    const char *queue;
    const char *name; /* scheduled_runs.schedule_name; WORKER_SCHEDULE_<NAME> overrides */
    const char *type; /* the job type (a row of handlers.c) */
    const char *when; /* "HH:MM UTC" daily, or "every <duration>" */
} sched_def;

/* clang-format off */
static const sched_def sched_builtin[] = {
    /* queue           name                      type                      when */
    { "fixed_income", "fi.eod_reprice",          "fi.eod_reprice",          "22:00 UTC" },
    { "portfolio",    "pf.snapshot",             "pf.snapshot",             "01:00 UTC" },
    { "portfolio",    "pf.idempotency_cleanup",  "pf.idempotency_cleanup",  "03:00 UTC" },
};
/* clang-format on */

#define SCHED_MAX      32
#define NAME_MAX_LEN   63
#define DAY_S          86400
#define RETRY_MS       1000  /* after a Redis or Postgres error */
#define NO_TABLE_MS    30000 /* scheduled_runs missing: the service has not migrated yet */
#define LATE_S         60    /* enqueued this long after its due time: a catch-up */
#define PAYLOAD_FORMAT "{\"schedule\":\"%s\",\"run_date\":\"%s\",\"due_at\":\"%s\"}"

typedef struct sched_entry {
    char name[NAME_MAX_LEN + 1];
    char type[FSR_JOB_TYPE_MAX + 1];
    char when[48];      /* as configured, for the log */
    uint32_t at_s;      /* daily: seconds after midnight UTC */
    uint32_t every_s;   /* > 0: every this many seconds instead of daily */
    char lock_key[160]; /* jobs:<queue>:schedule:<name>:lock */
    int max_attempts;   /* the type's */
    fsr_series *m_enqueued, *m_skipped, *m_locked, *m_contended, *m_lost, *m_errors;

    /* Thread 0's state.  One attempt at a time per entry, so it lives here. */
    int64_t done_due_s;   /* the latest period known to have its run; -1: none yet */
    int64_t retry_at_us;  /* after an error: not before (fsr_now_us clock) */
    uint64_t gen;         /* attempts started: tells a late reply from a current one */
    bool busy;            /* an attempt is in flight */
    bool held;            /* ... and holds the lock */
    bool warned_table;    /* the missing-table warning was logged */
    int64_t due_s;        /* the attempt's period: its due time, Unix seconds */
    char run_date[11];    /* ... its UTC date */
    int slot;             /* ... and slot */
    fsr_job_draft draft;  /* the attempt's job; its id is also the lock token */
    fsr_pg_conn *conn;    /* the attempt's transaction */
    struct event *ev_ext; /* extends the held lock */
} sched_entry;

static sched_entry sched[SCHED_MAX];
static int n_sched;

/* Thread 0's context while started. */
static fsr_app_ctx *g_ctx;
static char g_consumer[96];
static struct event *g_tick;
static bool g_stopping, g_closing;

/* ---- configuration -------------------------------------------------------------------- */

static int cfg_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err != NULL && errlen > 0)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return FSR_E_CONFIG;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static bool name_valid(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return n >= 1 && n <= NAME_MAX_LEN;
}

/*
 * "HH:MM", "HH:MM:SS", either with an optional " UTC" or "Z"; or "every N[s|m|h]" (plain
 * N: seconds), 1 s to 24 h.  Sets exactly one of *|at_s| / *|every_s|.  Returns 0 or -1.
 */
static int parse_when(const char *text, uint32_t *at_s, uint32_t *every_s)
{
    char buf[64];
    if (strlen(text) >= sizeof(buf))
        return -1;
    snprintf(buf, sizeof(buf), "%s", text);
    char *s = trim(buf);
    if (strncasecmp(s, "every", 5) == 0) {
        s = trim(s + 5);
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || errno != 0 || v == 0)
            return -1;
        const char *unit = trim(end);
        unsigned long long mul = 0;
        if (*unit == '\0' || strcasecmp(unit, "s") == 0)
            mul = 1;
        else if (strcasecmp(unit, "m") == 0)
            mul = 60;
        else if (strcasecmp(unit, "h") == 0)
            mul = 3600;
        if (mul == 0 || v > DAY_S / mul)
            return -1;
        *every_s = (uint32_t)(v * mul);
        *at_s = 0;
        return 0;
    }
    size_t n = strlen(s);
    if (n >= 3 && strcasecmp(s + n - 3, "UTC") == 0)
        s[n - 3] = '\0';
    else if (n >= 1 && (s[n - 1] == 'Z' || s[n - 1] == 'z'))
        s[n - 1] = '\0';
    s = trim(s);
    int hh, mm, ss = 0, used = 0;
    if (sscanf(s, "%2d:%2d%n", &hh, &mm, &used) != 2)
        return -1;
    if (s[used] == ':') {
        int more = 0;
        if (sscanf(s + used, ":%2d%n", &ss, &more) != 1)
            return -1;
        used += more;
    }
    if (s[used] != '\0' || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 59)
        return -1;
    *at_s = (uint32_t)(hh * 3600 + mm * 60 + ss);
    *every_s = 0;
    return 0;
}

/* "WORKER_SCHEDULE_" + |name| upper-cased, '.' and '-' as '_'. */
static void override_var(const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "WORKER_SCHEDULE_");
    for (const char *p = name; *p != '\0' && (size_t)n + 1 < cap; p++)
        out[n++] = (*p == '.' || *p == '-') ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

static int add_entry(const char *name, const char *type, const char *when, const char *var,
                     char *err, size_t errlen)
{
    if (!name_valid(name))
        return cfg_err(err, errlen, "%s: schedule name '%s' must be 1..63 of [a-z0-9_.-]", var,
                       name);
    for (int i = 0; i < n_sched; i++) {
        if (strcmp(sched[i].name, name) == 0)
            return cfg_err(err, errlen, "%s: schedule '%s' is listed twice", var, name);
    }
    const wk_job_type *jt = wk_job_type_find(type);
    if (jt == NULL)
        return cfg_err(err, errlen, "%s: schedule '%s': unknown job type '%s'", var, name, type);
    if (n_sched == SCHED_MAX)
        return cfg_err(err, errlen, "%s: more than %d schedule entries", var, SCHED_MAX);
    sched_entry *e = &sched[n_sched];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    snprintf(e->type, sizeof(e->type), "%s", type);
    e->max_attempts = jt->max_attempts;
    e->done_due_s = -1;
    /* A per-entry variable overrides the time (or turns the entry off). */
    char ovar[96];
    override_var(name, ovar, sizeof(ovar));
    const char *over = getenv(ovar);
    if (over != NULL && over[0] != '\0') {
        if (strcasecmp(over, "off") == 0 || strcasecmp(over, "none") == 0)
            return 0;
        when = over;
        var = ovar;
    }
    if (parse_when(when, &e->at_s, &e->every_s) != 0)
        return cfg_err(err, errlen,
                       "%s: schedule '%s': '%s' is not \"HH:MM UTC\" nor \"every <N>s|m|h\" "
                       "(1s..24h)",
                       var, name, when);
    snprintf(e->when, sizeof(e->when), "%s", when);
    snprintf(e->lock_key, sizeof(e->lock_key), "%s:schedule:%s:lock", wk_cfg.queue->stream, name);
    n_sched++;
    return 0;
}

/*
 * WORKER_SCHEDULE: unset or empty, the built-in entries of this queue; "off" or "none",
 * no schedule; else a list separated by ',' or ';' of "[name=]type@when" (name defaults
 * to the type), which replaces the built-in entries.
 */
static int load_schedule(char *err, size_t errlen)
{
    n_sched = 0;
    const char *spec = wk_ops_cfg.schedule;
    if (spec == NULL || spec[0] == '\0') {
        for (size_t i = 0; i < FSR_ARRAY_SIZE(sched_builtin); i++) {
            const sched_def *d = &sched_builtin[i];
            if (strcmp(d->queue, wk_cfg.queue->name) != 0)
                continue;
            char var[96];
            override_var(d->name, var, sizeof(var));
            int rv = add_entry(d->name, d->type, d->when, var, err, errlen);
            if (rv != 0)
                return rv;
        }
        return 0;
    }
    char *copy = fsr_xstrdup(spec);
    char *t = trim(copy);
    int rv = 0;
    if (strcasecmp(t, "off") != 0 && strcasecmp(t, "none") != 0) {
        char *save = NULL;
        for (char *item = strtok_r(t, ",;", &save); item != NULL && rv == 0;
             item = strtok_r(NULL, ",;", &save)) {
            item = trim(item);
            if (*item == '\0')
                continue;
            char *at = strchr(item, '@');
            if (at == NULL) {
                rv = cfg_err(err, errlen, "WORKER_SCHEDULE: '%s' is not [name=]type@when", item);
                break;
            }
            *at = '\0';
            char *type = item, *name = item;
            char *eq = strchr(item, '=');
            if (eq != NULL) {
                *eq = '\0';
                type = trim(eq + 1);
            }
            name = trim(name);
            type = trim(type);
            rv = add_entry(name, type, at + 1, "WORKER_SCHEDULE", err, errlen);
        }
    }
    free(copy);
    return rv;
}

int wk_ops_config_load(char *err, size_t errlen)
{
    int rv = fsr_config_load(ops_config_table, FSR_ARRAY_SIZE(ops_config_table), err, errlen);
    if (rv != 0)
        return rv;
    return load_schedule(err, errlen);
}

void wk_ops_config_log(void)
{
    fsr_config_log(ops_config_table, FSR_ARRAY_SIZE(ops_config_table));
    if (n_sched == 0)
        FSR_INFO("schedule: none for queue %s", wk_cfg.queue->name);
    for (int i = 0; i < n_sched; i++)
        FSR_INFO("schedule: %s enqueues %s %s%s", sched[i].name, sched[i].type,
                 sched[i].every_s ? "" : "daily at ", sched[i].when);
}

/* ---- periods -------------------------------------------------------------------------- */

/* The latest due time of |e| at or before |now_s| (Unix seconds). */
static int64_t period_of(const sched_entry *e, int64_t now_s)
{
    if (e->every_s > 0)
        return now_s - now_s % e->every_s;
    int64_t due = now_s - now_s % DAY_S + e->at_s;
    return due > now_s ? due - DAY_S : due;
}

static void utc_text(int64_t t, const char *fmt, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, fmt, &tm);
}

/* ---- one attempt: lock, guard + job, publish, unlock ---------------------------------- */

/*
 * Extends the lock by ARGV[2] ms, or deletes it, only while it still holds our token
 * ARGV[1]: after an expiry another replica may hold it.
 */
static const char extend_lua[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                 "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                 "end\n"
                                 "return 0\n";
static const char release_lua[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                  "  return redis.call('DEL', KEYS[1])\n"
                                  "end\n"
                                  "return 0\n";

static const fsr_pg_stmt st_run_insert = {
    "wk_sched_run_insert",
    "INSERT INTO scheduled_runs"
    " (schedule_name, run_date, slot, due_at, job_id, job_type, enqueued_by)"
    " VALUES ($1, $2::date, $3::integer, to_timestamp($4::bigint), $5::uuid, $6, $7)"
    " ON CONFLICT DO NOTHING RETURNING 1",
};

static void arm_ms(struct event *ev, uint32_t ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(ev, &tv);
}

static void on_released(const struct redisReply *reply, int status, void *arg)
{
    sched_entry *e = arg;
    (void)reply;
    if (status != 0 && !g_closing)
        FSR_DEBUG("schedule %s: lock release failed (%s); it expires by itself", e->name,
                  fsr_strerror(status));
}

/* The attempt is over: let go of the lock, retry after |retry_ms| (0: next tick). */
static void attempt_end(sched_entry *e, uint32_t retry_ms)
{
    if (e->ev_ext != NULL)
        event_del(e->ev_ext);
    if (e->held && !g_closing && g_ctx->redis != NULL)
        fsr_redis_command(g_ctx->redis, on_released, e, "EVAL %s 1 %s %s", release_lua, e->lock_key,
                          e->draft.id);
    e->held = false;
    e->busy = false;
    e->conn = NULL;
    if (retry_ms > 0)
        e->retry_at_us = fsr_now_us() + (int64_t)retry_ms * 1000;
}

/* An extension in flight: the attempt it was sent for (its reply may outlive it). */
typedef struct ext_req {
    sched_entry *e;
    uint64_t gen;
} ext_req;

static void on_extended(const struct redisReply *reply, int status, void *arg)
{
    ext_req *x = arg;
    sched_entry *e = x->e;
    bool current = x->gen == e->gen;
    free(x);
    if (g_closing || !e->held || !current)
        return;
    if (status == 0 && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        /* Expired, or Redis lost it: the Postgres guard still makes the run unique. */
        FSR_WARN("schedule %s: lost the lock while enqueueing (expired or Redis flushed)", e->name);
        fsr_counter_add(e->m_lost, 1);
        e->held = false;
        return;
    }
    arm_ms(e->ev_ext, wk_ops_cfg.lock_ttl_ms / 3);
}

static void on_ext_timer(evutil_socket_t fd, short what, void *arg)
{
    sched_entry *e = arg;
    (void)fd;
    (void)what;
    if (g_closing || !e->held || g_ctx->redis == NULL)
        return;
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%u", wk_ops_cfg.lock_ttl_ms);
    ext_req *x = fsr_xmalloc(sizeof(*x));
    *x = (ext_req){ e, e->gen };
    if (fsr_redis_command(g_ctx->redis, on_extended, x, "EVAL %s 1 %s %s %s", extend_lua,
                          e->lock_key, e->draft.id, ttl) != 0) {
        free(x);
        arm_ms(e->ev_ext, wk_ops_cfg.lock_ttl_ms / 3);
    }
}

static void on_published(const struct redisReply *reply, int status, void *arg)
{
    sched_entry *e = arg;
    (void)reply;
    if (g_closing)
        return;
    if (status != 0)
        FSR_WARN("schedule %s: job %s committed but not published (%s); the requeue sweep "
                 "publishes it",
                 e->name, e->draft.id, fsr_strerror(status));
    attempt_end(e, 0);
}

static void on_committed(const fsr_pg_result *res, void *arg)
{
    sched_entry *e = arg;
    e->conn = NULL;
    if (g_closing)
        return;
    int st = fsr_pg_result_status(res);
    if (st != 0) {
        /* If the COMMIT did land after all, the next attempt finds the row and skips. */
        FSR_WARN("schedule %s: enqueue not committed (%s)", e->name, fsr_pg_result_message(res));
        fsr_counter_add(e->m_errors, 1);
        attempt_end(e, RETRY_MS);
        return;
    }
    e->done_due_s = e->due_s;
    fsr_counter_add(e->m_enqueued, 1);
    int64_t late = fsr_wall_us() / 1000000 - e->due_s;
    char due[32];
    utc_text(e->due_s, "%Y-%m-%dT%H:%M:%SZ", due, sizeof(due));
    if (late > LATE_S)
        FSR_INFO("schedule %s: enqueued job %s (%s) for %s: catching up the run due at %s", e->name,
                 e->draft.id, e->type, e->run_date, due);
    else
        FSR_INFO("schedule %s: enqueued job %s (%s) for %s (due %s)", e->name, e->draft.id, e->type,
                 e->run_date, due);
    if (g_ctx->redis == NULL || fsr_job_publish(g_ctx->redis, &e->draft, on_published, e) != 0) {
        FSR_WARN("schedule %s: Redis unavailable; the requeue sweep publishes job %s", e->name,
                 e->draft.id);
        attempt_end(e, 0);
    }
}

static void on_rolled_back(const fsr_pg_result *res, void *arg)
{
    (void)res;
    (void)arg;
}

/* Rolls the attempt's transaction back (if any) and ends the attempt. */
static void attempt_abort(sched_entry *e, uint32_t retry_ms)
{
    if (e->conn != NULL && fsr_pg_tx_rollback(e->conn, on_rolled_back, e) != 0)
        FSR_DEBUG("schedule %s: rollback not sent; the connection is gone", e->name);
    e->conn = NULL;
    attempt_end(e, retry_ms);
}

static void on_job_inserted(const fsr_pg_result *res, void *arg)
{
    sched_entry *e = arg;
    if (g_closing)
        return;
    if (fsr_pg_result_status(res) != 0) {
        FSR_WARN("schedule %s: cannot insert the job: %s", e->name, fsr_pg_result_message(res));
        fsr_counter_add(e->m_errors, 1);
        attempt_abort(e, RETRY_MS);
        return;
    }
    fsr_pg_conn *conn = e->conn;
    if (fsr_pg_tx_commit(conn, on_committed, e) != 0) {
        e->conn = NULL; /* unusable after the call, whatever it returned */
        fsr_counter_add(e->m_errors, 1);
        attempt_end(e, RETRY_MS);
    }
}

static void on_run_inserted(const fsr_pg_result *res, void *arg)
{
    sched_entry *e = arg;
    if (g_closing)
        return;
    int st = fsr_pg_result_status(res);
    if (st != 0) {
        bool no_table = strcmp(fsr_pg_result_sqlstate(res), "42P01") == 0;
        if (!no_table || !e->warned_table)
            FSR_WARN("schedule %s: %s", e->name,
                     no_table ? "table scheduled_runs missing (the service has not migrated "
                                "its database yet); retrying"
                              : fsr_pg_result_message(res));
        e->warned_table |= no_table;
        fsr_counter_add(e->m_errors, 1);
        attempt_abort(e, no_table ? NO_TABLE_MS : RETRY_MS);
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        /* The period's run exists: someone else enqueued it (or we did, before a restart). */
        FSR_DEBUG("schedule %s: the run for %s slot %d is already enqueued", e->name, e->run_date,
                  e->slot);
        e->done_due_s = e->due_s;
        fsr_counter_add(e->m_skipped, 1);
        attempt_abort(e, 0);
        return;
    }
    if (fsr_job_insert(e->conn, &e->draft, on_job_inserted, e) != 0) {
        fsr_counter_add(e->m_errors, 1);
        attempt_abort(e, RETRY_MS);
    }
}

static void on_begun(fsr_pg_conn *conn, int status, void *arg)
{
    sched_entry *e = arg;
    if (g_closing) {
        if (conn != NULL)
            fsr_pg_tx_rollback(conn, NULL, NULL);
        return;
    }
    if (status != 0) {
        FSR_WARN("schedule %s: cannot begin a transaction (%s)", e->name, fsr_strerror(status));
        fsr_counter_add(e->m_errors, 1);
        attempt_end(e, RETRY_MS);
        return;
    }
    e->conn = conn;
    char slot[16], due[24];
    snprintf(slot, sizeof(slot), "%d", e->slot);
    snprintf(due, sizeof(due), "%lld", (long long)e->due_s);
    const char *v[] = { e->name, e->run_date, slot, due, e->draft.id, e->type, g_consumer };
    if (fsr_pg_conn_query(conn, &st_run_insert, 7, v, on_run_inserted, e) != 0) {
        fsr_counter_add(e->m_errors, 1);
        attempt_abort(e, RETRY_MS);
    }
}

static void on_locked(const struct redisReply *reply, int status, void *arg)
{
    sched_entry *e = arg;
    if (g_closing)
        return;
    if (status != 0) {
        FSR_WARN("schedule %s: cannot take the lock (%s%s%s); retrying", e->name,
                 fsr_strerror(status), reply != NULL && reply->str != NULL ? ": " : "",
                 reply != NULL && reply->str != NULL ? reply->str : "");
        fsr_counter_add(e->m_errors, 1);
        attempt_end(e, RETRY_MS);
        return;
    }
    if (reply->type == REDIS_REPLY_NIL) {
        /* Another replica is enqueueing this entry; next tick we will see its row. */
        fsr_counter_add(e->m_contended, 1);
        attempt_end(e, 0);
        return;
    }
    e->held = true;
    fsr_counter_add(e->m_locked, 1);
    arm_ms(e->ev_ext, wk_ops_cfg.lock_ttl_ms / 3);
    if (g_stopping) {
        attempt_end(e, 0);
        return;
    }
    if (g_ctx->pg == NULL || fsr_pg_tx_begin(g_ctx->pg, on_begun, e) != 0) {
        fsr_counter_add(e->m_errors, 1);
        attempt_end(e, RETRY_MS);
    }
}

/* Starts an attempt at the run of period |due_s|. */
static void attempt(sched_entry *e, int64_t due_s)
{
    e->gen++;
    e->due_s = due_s;
    utc_text(due_s, "%Y-%m-%d", e->run_date, sizeof(e->run_date));
    e->slot = e->every_s > 0 ? (int)(due_s % DAY_S) : 0;
    char due[32], payload[256], reqid[80]; /* cut to FSR_JOB_REQID_MAX by prepare */
    utc_text(due_s, "%Y-%m-%dT%H:%M:%SZ", due, sizeof(due));
    int plen = snprintf(payload, sizeof(payload), PAYLOAD_FORMAT, e->name, e->run_date, due);
    snprintf(reqid, sizeof(reqid), "schedule:%s", e->name);
    fsr_job_spec spec = {
        .type = e->type,
        .payload = payload,
        .payload_len = (size_t)plen,
        .max_attempts = e->max_attempts,
        .request_id = reqid,
    };
    if (fsr_job_prepare(wk_cfg.queue->id, &spec, &e->draft) != 0) {
        /* Cannot happen: the type and name were checked at startup. */
        FSR_ERROR("schedule %s: cannot prepare its job", e->name);
        e->retry_at_us = fsr_now_us() + (int64_t)NO_TABLE_MS * 1000;
        return;
    }
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%u", wk_ops_cfg.lock_ttl_ms);
    /* The token is the job id: fresh per attempt, and it names who held the lock. */
    if (g_ctx->redis == NULL || fsr_redis_command(g_ctx->redis, on_locked, e, "SET %s %s NX PX %s",
                                                  e->lock_key, e->draft.id, ttl) != 0) {
        e->retry_at_us = fsr_now_us() + (int64_t)RETRY_MS * 1000;
        return;
    }
    e->busy = true;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (g_stopping)
        return;
    int64_t now_us = fsr_now_us();
    int64_t now_s = fsr_wall_us() / 1000000;
    for (int i = 0; i < n_sched; i++) {
        sched_entry *e = &sched[i];
        if (e->busy || now_us < e->retry_at_us)
            continue;
        int64_t due = period_of(e, now_s);
        if (due != e->done_due_s)
            attempt(e, due);
    }
    arm_ms(g_tick, wk_ops_cfg.tick_ms);
}

/* ---- metrics and lifecycle ------------------------------------------------------------ */

static void metrics_init(void)
{
    static const char *const l[] = { "queue", "schedule" };
    fsr_metric *enq = fsr_metric_counter(
        "worker_schedule_runs_enqueued",
        "Scheduled runs this worker enqueued (run row and job row committed together).", l, 2);
    fsr_metric *skip = fsr_metric_counter(
        "worker_schedule_runs_skipped",
        "Due scheduled runs this worker found already enqueued (by another replica or before "
        "a restart), so created nothing.",
        l, 2);
    fsr_metric *locked = fsr_metric_counter("worker_schedule_lock_acquisitions",
                                            "Schedule locks this worker acquired in Redis.", l, 2);
    fsr_metric *cont = fsr_metric_counter(
        "worker_schedule_lock_contended",
        "Attempts that found a schedule lock held by another worker (retried next tick).", l, 2);
    fsr_metric *lost = fsr_metric_counter(
        "worker_schedule_lock_lost",
        "Schedule locks that expired or vanished (Redis flushed) while held; the Postgres "
        "guard still keeps the run unique.",
        l, 2);
    fsr_metric *errs =
        fsr_metric_counter("worker_schedule_errors",
                           "Scheduling attempts that failed on Redis or Postgres errors.", l, 2);
    for (int i = 0; i < n_sched; i++) {
        sched_entry *e = &sched[i];
        const char *v[] = { wk_cfg.queue->name, e->name };
        e->m_enqueued = fsr_metric_labels(enq, v);
        e->m_skipped = fsr_metric_labels(skip, v);
        e->m_locked = fsr_metric_labels(locked, v);
        e->m_contended = fsr_metric_labels(cont, v);
        e->m_lost = fsr_metric_labels(lost, v);
        e->m_errors = fsr_metric_labels(errs, v);
    }
}

void wk_ops_start(fsr_app_ctx *ctx, const char *consumer)
{
    wk_ops_config_log();
    g_ctx = ctx;
    snprintf(g_consumer, sizeof(g_consumer), "%s", consumer);
    metrics_init();
    struct event_base *base = fsr_loop_base(ctx->loop);
    if (n_sched > 0) {
        g_tick = evtimer_new(base, on_tick, NULL);
        for (int i = 0; i < n_sched; i++)
            sched[i].ev_ext = evtimer_new(base, on_ext_timer, &sched[i]);
        /* The first check right away: a run missed while no worker was up is caught up. */
        arm_ms(g_tick, 1);
    }
    wk_consumers_start(ctx, consumer);
}

void wk_ops_stop(void)
{
    g_stopping = true;
    if (g_tick != NULL)
        event_del(g_tick);
    wk_consumers_stop();
}

void wk_ops_close(void)
{
    g_stopping = true;
    g_closing = true;
    if (g_tick != NULL)
        event_free(g_tick);
    g_tick = NULL;
    for (int i = 0; i < n_sched; i++) {
        if (sched[i].ev_ext != NULL)
            event_free(sched[i].ev_ext);
        sched[i].ev_ext = NULL;
    }
    wk_consumers_close();
}
