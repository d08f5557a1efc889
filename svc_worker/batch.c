/* SPDX-License-Identifier: MIT */
/*
 * One batch of stream entries delivered to this consumer: start the jobs in Postgres, run
 * them inside transactions, commit, then settle the entries in Redis.
 *
 *   1. start    One statement for the whole batch marks every startable job RUNNING,
 *               increments its attempts (the attempt number is the fencing token), sets a
 *               lease (V/2) and returns what each entry is: a job to run, a finished job
 *               (acknowledged without running), a job some live worker is running (left
 *               pending), a job whose worker died during its last attempt (DEAD), or no
 *               job at all (dead-lettered).  RUNNING is visible to GetJob from here on.
 *   2. groups   Jobs to run are grouped into transactions: every WK_T_BATCH job of the
 *               batch shares one, each other job gets its own.  A group's transaction first
 *               locks its rows and re-checks the fencing token (SELECT ... FOR UPDATE), so a
 *               worker that lost its job to a reclaim (it stalled past the lease) can never
 *               commit it; then the handlers run one after the other, each after a
 *               SAVEPOINT so a failed job's effects roll back alone; then one UPDATE marks
 *               the successes SUCCEEDED and one marks the failures FAILED (retry due at
 *               next_run_at) or DEAD; then COMMIT.  Effects, state and attempt count commit
 *               together or not at all.
 *   3. settle   Only after COMMIT, one Lua script (atomic in Redis) acknowledges and deletes
 *               the entries, schedules retries in the delayed set (score = due time, member
 *               = the envelope for the next attempt) and appends dead letters.  If Redis or
 *               this process fails in between, the entries stay pending, are reclaimed
 *               after the visibility timeout, and step 1 finds the jobs finished: a repeat
 *               is harmless.
 *
 * Nothing is acknowledged that is not committed, so delivery is at least once; the fencing
 * token and the row locks make the effects of each job commit exactly once.
 */
#include "engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "fsr/log.h"
#include "fsr/mem.h"
#include "fsr/status.h"

#include "jobs_envelope.pb.h"

/* What the start statement made of an entry. */
enum disp {
    D_NONE,  /* not yet known */
    D_RUN,   /* started: run it (attempt, max_attempts set) */
    D_SKIP,  /* already SUCCEEDED (or DEAD, delivered fresh): acknowledge only */
    D_LEAVE, /* not ours to finish now: leave pending (reclaimed later if still needed) */
    D_DEAD,  /* dead-letter it and acknowledge */
};

typedef struct wk_group wk_group;
typedef struct wk_batch wk_batch;

struct wk_job {
    wk_batch *batch;
    wk_group *group;
    const wk_job_type *type;
    char sid[48];                /* stream entry id */
    char id[FSR_JOB_ID_LEN + 1]; /* "" if the envelope was unreadable */
    fsr_jobs_v1_JobEnvelope env; /* decoded in place: bounded, no allocation */
    uint8_t *raw;                /* D_DEAD of an unreadable envelope: its bytes */
    size_t raw_len;
    enum disp disp;
    char *dead_error; /* D_DEAD: the reason written to the dead letter */
    bool count_dead;  /* D_DEAD: count it in the metrics */
    int attempt, max_attempts;
    bool owned; /* the transaction's fence confirmed the attempt */
    bool started, finished, timed_out, handler_done, sp_open;
    bool ok;
    char *result, *error;
    uint32_t delay_ms; /* failed, not dead: the retry's backoff */
    struct event *timer;
    int64_t t_start_us;
    wk_job_commit_cb on_commit; /* wk_job_on_commit(): runs after a committed success */
    void *on_commit_arg;
    fsr_arena arena;
};

struct wk_group {
    wk_batch *b;
    fsr_pg_conn *conn;
    wk_job **jobs; /* sorted by id: the fence's rows come back in the same order */
    int n;
    int cur;
    bool stepping, finishing, broken;
};

struct wk_batch {
    wk_thread *t;
    int refs; /* outstanding statements and commands, live groups, running handlers */
    bool claimed;
    int n;
    wk_job *jobs;
    int n_groups;
    wk_group *groups;
};

/* The lease of an attempt, and the longest a handler may run: half the visibility timeout. */
static uint32_t lease_ms(void)
{
    return wk_cfg.visibility_ms / 2;
}

/* ---- small buffers -------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_reserve(sbuf *s, size_t more)
{
    if (s->len + more + 1 <= s->cap)
        return;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + more + 1)
        cap *= 2;
    s->p = fsr_xrealloc(s->p, cap);
    s->cap = cap;
}

static void sb_putn(sbuf *s, const char *p, size_t n)
{
    sb_reserve(s, n);
    memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void sb_puts(sbuf *s, const char *p)
{
    sb_putn(s, p, strlen(p));
}

static void sb_putc(sbuf *s, char c)
{
    sb_putn(s, &c, 1);
}

/* Appends |v| as an element of a Postgres array literal: quoted and escaped, or NULL. */
static void sb_array_elem(sbuf *s, const char *v)
{
    if (s->len > 1)
        sb_putc(s, ',');
    if (v == NULL) {
        sb_puts(s, "NULL");
        return;
    }
    sb_putc(s, '"');
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            sb_putc(s, '\\');
        sb_putc(s, *p);
    }
    sb_putc(s, '"');
}

static void sb_array_int(sbuf *s, long long v)
{
    char num[24];
    snprintf(num, sizeof(num), "%lld", v);
    if (s->len > 1)
        sb_putc(s, ',');
    sb_puts(s, num);
}

/* ---- envelopes ------------------------------------------------------------------------ */

int wk_envelope_encode(const char *id, const char *type, uint32_t attempt, int64_t enqueued_us,
                       const uint8_t *payload, size_t payload_len, const char *request_id,
                       uint8_t *out, size_t cap, size_t *len)
{
    fsr_jobs_v1_JobEnvelope env = fsr_jobs_v1_JobEnvelope_init_zero;
    if (fsr_job_id_to_bytes(id, env.id) != 0 || strlen(type) > FSR_JOB_TYPE_MAX ||
        payload_len > FSR_JOB_PAYLOAD_MAX)
        return -EINVAL;
    memcpy(env.type, type, strlen(type) + 1);
    env.attempt = attempt;
    env.enqueued_at_us = enqueued_us;
    memcpy(env.payload.bytes, payload, payload_len);
    env.payload.size = (pb_size_t)payload_len;
    snprintf(env.request_id, sizeof(env.request_id), "%s", request_id != NULL ? request_id : "");
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);
    if (!pb_encode(&os, fsr_jobs_v1_JobEnvelope_fields, &env))
        return FSR_E_TOO_LARGE;
    *len = os.bytes_written;
    return 0;
}

/* ---- settling in Redis ---------------------------------------------------------------- */

/*
 * KEYS: stream, delayed set, dead-letter stream.  ARGV: group, #retries, #dead letters,
 * then per retry (score, envelope), per dead letter (envelope, job id, type, attempts,
 * error), then the entry ids to acknowledge and delete.  Deleting acknowledged entries
 * keeps the stream as long as the unfinished work, so XLEN is the queue depth.
 */
static const char settle_lua[] =
    "local nr, nd = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local i = 4\n"
    "for _ = 1, nr do\n"
    "  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])\n"
    "  i = i + 2\n"
    "end\n"
    "for _ = 1, nd do\n"
    "  redis.call('XADD', KEYS[3], '*', 'e', ARGV[i], 'id', ARGV[i + 1], 'type', ARGV[i + 2],\n"
    "             'attempts', ARGV[i + 3], 'error', ARGV[i + 4])\n"
    "  i = i + 5\n"
    "end\n"
    "if i <= #ARGV then\n"
    "  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i))\n"
    "  redis.call('XDEL', KEYS[1], unpack(ARGV, i))\n"
    "end\n"
    "return #ARGV - i + 1\n";

typedef struct settle {
    fsr_arena a;
    const char **argv;
    size_t *lens;
    int argc, cap;
    /* Filled separately, assembled in script order by settle_send(). */
    const char **r_argv, **d_argv, **k_argv;
    size_t *r_lens, *d_lens, *k_lens;
    int nr, nd, nk;
    int cap_r, cap_d, cap_k;
} settle;

static void push(const char ***argv, size_t **lens, int *n, int *cap, const char *p, size_t len)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *argv = fsr_xrealloc(*argv, (size_t)*cap * sizeof(**argv));
        *lens = fsr_xrealloc(*lens, (size_t)*cap * sizeof(**lens));
    }
    (*argv)[*n] = p;
    (*lens)[*n] = len;
    (*n)++;
}

static void settle_ack(settle *s, const wk_job *j)
{
    push(&s->k_argv, &s->k_lens, &s->nk, &s->cap_k, j->sid, strlen(j->sid));
}

static void settle_retry(settle *s, const wk_job *j, int64_t due_ms)
{
    uint8_t *buf = fsr_arena_alloc(&s->a, FSR_JOB_ENVELOPE_MAX);
    size_t len = 0;
    if (wk_envelope_encode(j->id, j->env.type, (uint32_t)j->attempt + 1, j->env.enqueued_at_us,
                           j->env.payload.bytes, j->env.payload.size, j->env.request_id, buf,
                           FSR_JOB_ENVELOPE_MAX, &len) != 0)
        return; /* cannot happen: it was decoded from the same bounds */
    char *score = fsr_arena_printf(&s->a, "%lld", (long long)due_ms);
    push(&s->r_argv, &s->r_lens, &s->nr, &s->cap_r, score, strlen(score));
    push(&s->r_argv, &s->r_lens, &s->nr, &s->cap_r, (const char *)buf, len);
    settle_ack(s, j);
}

static void settle_dead(settle *s, const wk_job *j, const char *error)
{
    const uint8_t *env = j->raw;
    size_t env_len = j->raw_len;
    if (env == NULL) {
        uint8_t *buf = fsr_arena_alloc(&s->a, FSR_JOB_ENVELOPE_MAX);
        if (wk_envelope_encode(j->id, j->env.type, (uint32_t)j->attempt, j->env.enqueued_at_us,
                               j->env.payload.bytes, j->env.payload.size, j->env.request_id, buf,
                               FSR_JOB_ENVELOPE_MAX, &env_len) != 0)
            env_len = 0;
        env = buf;
    }
    char *attempts = fsr_arena_printf(&s->a, "%d", j->attempt);
    const char *type = j->raw != NULL ? "" : j->env.type;
    const char *err = error != NULL ? error : "";
    push(&s->d_argv, &s->d_lens, &s->nd, &s->cap_d, (const char *)env, env_len);
    push(&s->d_argv, &s->d_lens, &s->nd, &s->cap_d, j->id, strlen(j->id));
    push(&s->d_argv, &s->d_lens, &s->nd, &s->cap_d, type, strlen(type));
    push(&s->d_argv, &s->d_lens, &s->nd, &s->cap_d, attempts, strlen(attempts));
    push(&s->d_argv, &s->d_lens, &s->nd, &s->cap_d, err, strlen(err));
    settle_ack(s, j);
}

static void settle_dispose(settle *s)
{
    free(s->argv);
    free(s->lens);
    free(s->r_argv);
    free(s->r_lens);
    free(s->d_argv);
    free(s->d_lens);
    free(s->k_argv);
    free(s->k_lens);
    fsr_arena_dispose(&s->a);
}

static void batch_ref(wk_batch *b);
static void batch_unref(wk_batch *b);

static void on_settled(const struct redisReply *reply, int status, void *arg)
{
    wk_batch *b = arg;
    if (status != 0)
        FSR_WARN("cannot acknowledge jobs (%s%s%s): their entries stay pending and will be "
                 "reclaimed, then skipped",
                 fsr_strerror(status), reply != NULL && reply->str != NULL ? ": " : "",
                 reply != NULL && reply->str != NULL ? reply->str : "");
    batch_unref(b);
}

/* Sends the script if there is anything to settle; disposes |s| either way. */
static void settle_send(wk_batch *b, settle *s)
{
    wk_thread *t = b->t;
    if (s->nk == 0 || t->closing || t->ctx->redis == NULL) {
        if (s->nk > 0)
            FSR_WARN("shutting down: %d entries stay pending", s->nk);
        settle_dispose(s);
        return;
    }
    const wk_queue *q = wk_cfg.queue;
    char nr[16], nd[16];
    snprintf(nr, sizeof(nr), "%d", s->nr / 2);
    snprintf(nd, sizeof(nd), "%d", s->nd / 5);
    const char *head[] = {
        "EVAL", settle_lua, "3", q->stream, wk_cfg.delayed_key, wk_cfg.dead_stream, WK_GROUP, nr, nd
    };
    for (size_t i = 0; i < FSR_ARRAY_SIZE(head); i++)
        push(&s->argv, &s->lens, &s->argc, &s->cap, head[i], strlen(head[i]));
    for (int i = 0; i < s->nr; i++)
        push(&s->argv, &s->lens, &s->argc, &s->cap, s->r_argv[i], s->r_lens[i]);
    for (int i = 0; i < s->nd; i++)
        push(&s->argv, &s->lens, &s->argc, &s->cap, s->d_argv[i], s->d_lens[i]);
    for (int i = 0; i < s->nk; i++)
        push(&s->argv, &s->lens, &s->argc, &s->cap, s->k_argv[i], s->k_lens[i]);
    int rv = fsr_redis_command_argv(t->ctx->redis, on_settled, b, s->argc, s->argv, s->lens);
    if (rv == 0)
        batch_ref(b);
    else
        FSR_WARN("cannot acknowledge %d jobs (%s): their entries stay pending", s->nk,
                 fsr_strerror(rv));
    settle_dispose(s);
}

/* ---- the batch's lifetime ------------------------------------------------------------- */

static void batch_ref(wk_batch *b)
{
    b->refs++;
}

static void batch_free(wk_batch *b)
{
    wk_thread *t = b->t;
    for (int i = 0; i < b->n; i++) {
        wk_job *j = &b->jobs[i];
        if (j->timer != NULL)
            event_free(j->timer);
        free(j->raw);
        free(j->dead_error);
        free(j->result);
        free(j->error);
        fsr_arena_dispose(&j->arena);
    }
    for (int i = 0; i < b->n_groups; i++)
        free(b->groups[i].jobs);
    free(b->groups);
    int n = b->n;
    free(b->jobs);
    free(b);
    wk_thread_batch_done(t, n);
    wk_thread_unref(t); /* wk_thread_batch_begin()'s */
}

static void batch_unref(wk_batch *b)
{
    if (--b->refs == 0)
        batch_free(b);
}

/* ---- metrics -------------------------------------------------------------------------- */

static void count_committed(const wk_job *j)
{
    wk_type_metrics *m = wk_type_metrics_of(j->type);
    int64_t now = fsr_now_us();
    fsr_counter_add(m->processed, 1);
    fsr_histogram_observe(m->duration, (double)(now - j->t_start_us) / 1e6);
    bool final = j->ok || j->attempt >= j->max_attempts;
    if (j->ok) {
        fsr_counter_add(m->succeeded, 1);
    } else {
        fsr_counter_add(m->failed, 1);
        fsr_counter_add(j->attempt >= j->max_attempts ? m->dead : m->retried, 1);
    }
    if (final && j->env.enqueued_at_us > 0) {
        double lat = (double)(fsr_wall_us() - j->env.enqueued_at_us) / 1e6;
        fsr_histogram_observe(m->latency, lat < 0 ? 0 : lat);
    }
}

/* ---- groups: one transaction each ----------------------------------------------------- */

static void group_step(wk_group *g);
static void group_finish(wk_group *g);

/* The group ended (committed, rolled back or abandoned). */
static void group_end(wk_group *g)
{
    g->conn = NULL;
    batch_unref(g->b);
}

/* A statement of the group's own (savepoints, state updates): any error breaks the group. */
static void on_group_stmt(const fsr_pg_result *res, void *arg)
{
    wk_group *g = arg;
    int st = fsr_pg_result_status(res);
    if (st != 0 && !g->broken) {
        g->broken = true;
        if (!g->b->t->closing)
            FSR_WARN("job transaction failed: %s", fsr_pg_result_message(res));
    }
    batch_unref(g->b);
}

static int group_exec(wk_group *g, const char *sql, int n, const char *const *v)
{
    int rv = fsr_pg_conn_exec(g->conn, sql, n, v, on_group_stmt, g);
    if (rv == 0)
        batch_ref(g->b);
    else
        g->broken = true;
    return rv;
}

static int group_query(wk_group *g, const fsr_pg_stmt *stmt, int n, const char *const *v)
{
    int rv = fsr_pg_conn_query(g->conn, stmt, n, v, on_group_stmt, g);
    if (rv == 0)
        batch_ref(g->b);
    else
        g->broken = true;
    return rv;
}

/* Records the outcome of |j|'s attempt; the handler may still hold it (timeouts). */
static void job_finish(wk_job *j, bool ok, char *result, char *error)
{
    if (j->finished) {
        free(result);
        free(error);
        return;
    }
    j->finished = true;
    j->ok = ok;
    j->result = result;
    j->error = error;
    if (j->timer != NULL)
        event_del(j->timer);
    wk_group *g = j->group;
    if (j->sp_open && g->conn != NULL) {
        /* Statements on one connection run in order: this lands after the job's own. */
        if (ok) {
            group_exec(g, "RELEASE SAVEPOINT wk_job", 0, NULL);
        } else {
            group_exec(g, "ROLLBACK TO SAVEPOINT wk_job", 0, NULL);
            group_exec(g, "RELEASE SAVEPOINT wk_job", 0, NULL);
        }
    }
    if (!ok)
        FSR_LOG(j->attempt >= j->max_attempts ? FSR_LOG_WARN : FSR_LOG_INFO,
                "job %s (%s) attempt %d/%d failed: %s", j->id, j->env.type, j->attempt,
                j->max_attempts, error != NULL ? error : "");
    if (!g->stepping)
        group_step(g);
}

static void on_job_timeout(evutil_socket_t fd, short what, void *arg)
{
    wk_job *j = arg;
    (void)fd;
    (void)what;
    if (j->finished)
        return;
    j->timed_out = true;
    uint32_t limit = j->type->timeout_ms < lease_ms() ? j->type->timeout_ms : lease_ms();
    char msg[64];
    snprintf(msg, sizeof(msg), "timed out after %u ms", limit);
    job_finish(j, false, NULL, fsr_xstrdup(msg));
}

static void job_run(wk_job *j)
{
    wk_batch *b = j->batch;
    j->started = true;
    j->t_start_us = fsr_now_us();
    batch_ref(b); /* held by the handler until it calls wk_job_succeed/fail */
    const char *prev = fsr_log_request_id();
    if (j->env.request_id[0] != '\0')
        fsr_log_set_request_id(j->env.request_id);
    j->type->run(j);
    fsr_log_set_request_id(prev);
    if (!j->finished) {
        /* Asynchronous: bound it.  (Synchronous handlers never cost a timer.) */
        uint32_t ms = j->type->timeout_ms < lease_ms() ? j->type->timeout_ms : lease_ms();
        j->timer = evtimer_new(fsr_loop_base(b->t->ctx->loop), on_job_timeout, j);
        if (j->timer == NULL) {
            FSR_ERROR("cannot create a timer");
            abort();
        }
        struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
        evtimer_add(j->timer, &tv);
    }
}

/*
 * Runs the group's jobs one after the other.  Re-entrant calls (a handler finishing
 * synchronously) return at once: the loop below sees the job finished and moves on.
 */
static void group_step(wk_group *g)
{
    if (g->stepping || g->finishing)
        return;
    g->stepping = true;
    wk_thread *t = g->b->t;
    while (g->cur < g->n) {
        wk_job *j = g->jobs[g->cur];
        if (!j->owned || (!j->started && (g->broken || t->closing))) {
            g->cur++;
            continue;
        }
        if (!j->started)
            job_run(j);
        if (!j->finished)
            break;
        g->cur++;
    }
    g->stepping = false;
    if (g->cur == g->n)
        group_finish(g);
}

static const fsr_pg_stmt st_fence = {
    "wk_fence",
    "SELECT j.id::text FROM jobs j"
    " JOIN unnest($1::uuid[], $2::integer[]) AS u(id, att) ON j.id = u.id AND j.attempts = u.att"
    " WHERE j.state = 'RUNNING' ORDER BY j.id FOR UPDATE OF j",
};

static const fsr_pg_stmt st_succeeded = {
    "wk_succeeded",
    "UPDATE jobs j SET state = 'SUCCEEDED', result = u.res::jsonb, error = NULL,"
    " finished_at = clock_timestamp(), lease_until = NULL, next_run_at = NULL,"
    " updated_at = clock_timestamp()"
    " FROM unnest($1::uuid[], $2::integer[], $3::text[]) AS u(id, att, res)"
    " WHERE j.id = u.id AND j.attempts = u.att AND j.state = 'RUNNING'",
};

static const fsr_pg_stmt st_failed = {
    "wk_failed",
    "UPDATE jobs j SET state = CASE WHEN u.dead THEN 'DEAD' ELSE 'FAILED' END, error = u.err,"
    " next_run_at = CASE WHEN u.dead THEN NULL"
    " ELSE now() + u.delay * interval '1 millisecond' END,"
    " finished_at = CASE WHEN u.dead THEN clock_timestamp() END, lease_until = NULL,"
    " updated_at = clock_timestamp()"
    " FROM unnest($1::uuid[], $2::integer[], $3::text[], $4::boolean[], $5::integer[])"
    " AS u(id, att, err, dead, delay)"
    " WHERE j.id = u.id AND j.attempts = u.att AND j.state = 'RUNNING'",
};

/* Exponential backoff with "equal jitter": half the step fixed, half random. */
static uint32_t backoff_ms(wk_thread *t, int attempt)
{
    uint64_t d = wk_cfg.backoff_base_ms;
    for (int i = 1; i < attempt && d < wk_cfg.backoff_max_ms; i++)
        d *= 2;
    if (d > wk_cfg.backoff_max_ms)
        d = wk_cfg.backoff_max_ms;
    uint64_t half = d / 2;
    return (uint32_t)(d - half + wk_thread_rand(t) % (half + 1));
}

static void on_group_commit(const fsr_pg_result *res, void *arg)
{
    wk_group *g = arg;
    wk_batch *b = g->b;
    wk_thread *t = b->t;
    int st = fsr_pg_result_status(res);
    if (t->closing) {
        group_end(g);
        return;
    }
    if (st != 0 || g->broken) {
        int owned = 0;
        for (int i = 0; i < g->n; i++)
            owned += g->jobs[i]->owned;
        FSR_WARN("job transaction not committed (%s): %d jobs stay RUNNING until reclaimed",
                 st != 0 ? fsr_pg_result_message(res) : "an earlier statement failed", owned);
        wk_thread_pause(t, 500);
        group_end(g);
        return;
    }
    settle s = { 0 };
    int64_t now_ms = fsr_wall_us() / 1000;
    for (int i = 0; i < g->n; i++) {
        wk_job *j = g->jobs[i];
        if (!j->owned || !j->finished)
            continue;
        count_committed(j);
        if (j->ok && j->on_commit != NULL)
            j->on_commit(j, j->on_commit_arg);
        if (j->ok)
            settle_ack(&s, j);
        else if (j->attempt >= j->max_attempts)
            settle_dead(&s, j, j->error);
        else
            settle_retry(&s, j, now_ms + j->delay_ms);
    }
    settle_send(b, &s);
    group_end(g);
}

static void on_group_rolled_back(const fsr_pg_result *res, void *arg)
{
    (void)res;
    group_end(arg);
}

static void group_rollback(wk_group *g)
{
    if (g->conn == NULL || fsr_pg_tx_rollback(g->conn, on_group_rolled_back, g) != 0)
        group_end(g);
}

/* Every job of the group has finished (or will not start): write the states, commit. */
static void group_finish(wk_group *g)
{
    g->finishing = true;
    wk_thread *t = g->b->t;
    if (t->closing || g->broken) {
        group_rollback(g);
        return;
    }
    sbuf ok_id = { 0 }, ok_att = { 0 }, ok_res = { 0 };
    sbuf f_id = { 0 }, f_att = { 0 }, f_err = { 0 }, f_dead = { 0 }, f_delay = { 0 };
    sbuf *all[] = { &ok_id, &ok_att, &ok_res, &f_id, &f_att, &f_err, &f_dead, &f_delay };
    for (size_t i = 0; i < FSR_ARRAY_SIZE(all); i++)
        sb_putc(all[i], '{');
    int n_ok = 0, n_fail = 0;
    for (int i = 0; i < g->n; i++) {
        wk_job *j = g->jobs[i];
        if (!j->owned || !j->finished)
            continue;
        if (j->ok) {
            sb_array_elem(&ok_id, j->id);
            sb_array_int(&ok_att, j->attempt);
            sb_array_elem(&ok_res, j->result);
            n_ok++;
        } else {
            bool dead = j->attempt >= j->max_attempts;
            j->delay_ms = dead ? 0 : backoff_ms(t, j->attempt);
            sb_array_elem(&f_id, j->id);
            sb_array_int(&f_att, j->attempt);
            sb_array_elem(&f_err, j->error != NULL ? j->error : "failed");
            sb_array_elem(&f_dead, dead ? "t" : "f");
            sb_array_int(&f_delay, j->delay_ms);
            n_fail++;
        }
    }
    for (size_t i = 0; i < FSR_ARRAY_SIZE(all); i++)
        sb_putc(all[i], '}');
    if (n_ok > 0) {
        const char *v[] = { ok_id.p, ok_att.p, ok_res.p };
        group_query(g, &st_succeeded, 3, v);
    }
    if (n_fail > 0) {
        const char *v[] = { f_id.p, f_att.p, f_err.p, f_dead.p, f_delay.p };
        group_query(g, &st_failed, 5, v);
    }
    for (size_t i = 0; i < FSR_ARRAY_SIZE(all); i++)
        free(all[i]->p);
    if (g->broken) {
        group_rollback(g);
        return;
    }
    /* The updates' callbacks run before COMMIT's: on_group_commit() sees any failure. */
    fsr_pg_conn *conn = g->conn;
    if (fsr_pg_tx_commit(conn, on_group_commit, g) != 0) {
        FSR_WARN("cannot commit a job transaction: the jobs stay RUNNING until reclaimed");
        group_end(g);
    }
}

static int job_cmp_id(const void *a, const void *b)
{
    const wk_job *const *x = a, *const *y = b;
    return strcmp((*x)->id, (*y)->id);
}

static void on_fence(const fsr_pg_result *res, void *arg)
{
    wk_group *g = arg;
    wk_thread *t = g->b->t;
    int st = fsr_pg_result_status(res);
    if (t->closing || st != 0) {
        if (st != 0 && !t->closing)
            FSR_WARN("cannot lock jobs: %s", fsr_pg_result_message(res));
        g->broken = true;
        g->finishing = true;
        group_rollback(g);
        batch_unref(g->b);
        return;
    }
    /* Rows and jobs are both in id order: merge. */
    int rows = fsr_pg_result_rows(res), r = 0;
    for (int i = 0; i < g->n; i++) {
        wk_job *j = g->jobs[i];
        const char *id = r < rows ? fsr_pg_result_getvalue(res, r, 0) : NULL;
        if (id != NULL && strcmp(id, j->id) == 0) {
            j->owned = true;
            r++;
        } else {
            /* Taken over by a worker that reclaimed it: that one finishes it. */
            j->disp = D_LEAVE;
            FSR_INFO("job %s attempt %d was taken over by another worker; leaving it", j->id,
                     j->attempt);
        }
    }
    group_step(g);
    batch_unref(g->b);
}

static void on_group_begin(fsr_pg_conn *conn, int status, void *arg)
{
    wk_group *g = arg;
    wk_thread *t = g->b->t;
    if (status != 0 || t->closing) {
        if (status != 0 && !t->closing) {
            FSR_WARN("cannot begin a job transaction (%s): %d jobs stay RUNNING until "
                     "reclaimed",
                     fsr_strerror(status), g->n);
            wk_thread_pause(t, 1000);
        }
        g->finishing = true;
        g->conn = conn;
        if (conn != NULL)
            group_rollback(g);
        else
            group_end(g);
        return;
    }
    g->conn = conn;
    sbuf ids = { 0 }, atts = { 0 };
    sb_putc(&ids, '{');
    sb_putc(&atts, '{');
    for (int i = 0; i < g->n; i++) {
        sb_array_elem(&ids, g->jobs[i]->id);
        sb_array_int(&atts, g->jobs[i]->attempt);
    }
    sb_putc(&ids, '}');
    sb_putc(&atts, '}');
    const char *v[] = { ids.p, atts.p };
    int rv = fsr_pg_conn_query(conn, &st_fence, 2, v, on_fence, g);
    free(ids.p);
    free(atts.p);
    if (rv == 0) {
        batch_ref(g->b);
    } else {
        g->broken = true;
        g->finishing = true;
        group_rollback(g);
    }
}

/* ---- the handler API ------------------------------------------------------------------ */

const char *wk_job_id(const wk_job *job)
{
    return job->id;
}

const char *wk_job_type_name(const wk_job *job)
{
    return job->env.type;
}

const uint8_t *wk_job_payload(const wk_job *job, size_t *len)
{
    if (len != NULL)
        *len = job->env.payload.size;
    return job->env.payload.bytes;
}

int wk_job_attempt(const wk_job *job)
{
    return job->attempt;
}

int wk_job_max_attempts(const wk_job *job)
{
    return job->max_attempts;
}

const char *wk_job_worker(const wk_job *job)
{
    return job->batch->t->consumer;
}

fsr_app_ctx *wk_job_ctx(const wk_job *job)
{
    return job->batch->t->ctx;
}

void *wk_job_alloc(wk_job *job, size_t n)
{
    return fsr_arena_calloc(&job->arena, n);
}

void wk_job_on_commit(wk_job *job, wk_job_commit_cb cb, void *arg)
{
    job->on_commit = cb;
    job->on_commit_arg = arg;
}

/* Opens the job's savepoint before its first statement. */
static int job_tx(wk_job *j)
{
    wk_group *g = j->group;
    if (j->finished || g == NULL || g->conn == NULL || g->finishing)
        return FSR_E_CANCELLED;
    if (!j->sp_open) {
        int rv = group_exec(g, "SAVEPOINT wk_job", 0, NULL);
        if (rv != 0)
            return rv;
        j->sp_open = true;
    }
    return 0;
}

int wk_job_query(wk_job *job, const fsr_pg_stmt *stmt, int nparams, const char *const *values,
                 fsr_pg_cb cb, void *arg)
{
    int rv = job_tx(job);
    if (rv != 0)
        return rv;
    return fsr_pg_conn_query(job->group->conn, stmt, nparams, values, cb, arg);
}

int wk_job_exec(wk_job *job, const char *sql, int nparams, const char *const *values, fsr_pg_cb cb,
                void *arg)
{
    int rv = job_tx(job);
    if (rv != 0)
        return rv;
    return fsr_pg_conn_exec(job->group->conn, sql, nparams, values, cb, arg);
}

static void handler_done(wk_job *j, bool ok, char *result, char *error)
{
    if (j->handler_done) {
        FSR_ERROR("job %s (%s): the handler finished it twice", j->id, j->env.type);
        free(result);
        free(error);
        return;
    }
    j->handler_done = true;
    wk_batch *b = j->batch;
    job_finish(j, ok, result, error);
    batch_unref(b); /* the handler's reference: |j| may be gone after this */
}

void wk_job_succeed(wk_job *job, const char *result_json)
{
    if (result_json == NULL) {
        handler_done(job, true, NULL, NULL);
        return;
    }
    json_error_t e;
    json_t *v = json_loads(result_json, JSON_REJECT_DUPLICATES, &e);
    bool object = v != NULL && json_is_object(v);
    json_decref(v);
    if (!object) {
        FSR_ERROR("job %s (%s): the handler's result is not a JSON object", job->id, job->env.type);
        handler_done(job, false, NULL, fsr_xstrdup("internal error: invalid result"));
        return;
    }
    handler_done(job, true, fsr_xstrdup(result_json), NULL);
}

void wk_job_fail(wk_job *job, const char *error)
{
    handler_done(job, false, NULL, fsr_xstrdup(error != NULL && error[0] ? error : "failed"));
}

/* ---- start ---------------------------------------------------------------------------- */

/*
 * For each job (in the order of $1): take it if it is QUEUED or FAILED, or RUNNING with an
 * expired lease (its worker died or stalled); a RUNNING job whose last attempt's worker was
 * lost goes DEAD instead of starting again.  Rows locked by another worker's transaction
 * (it is finishing that job right now, or stalled inside it) are skipped, never waited for:
 * they come back as RUNNING and stay pending, so one stuck transaction cannot hold up a
 * whole batch.  The last SELECT sees the rows as they were before the UPDATE (a CTE's
 * snapshot), hence the coalesce with the UPDATE's RETURNING; it looks up only the rows not
 * taken, one primary-key probe each (the LATERAL with OFFSET 0 keeps the planner from
 * turning that into a hash join over the whole table).
 */
static const fsr_pg_stmt st_start = {
    "wk_start",
    "WITH req AS ("
    " SELECT r.id, r.max_attempts, r.ord"
    " FROM unnest($1::uuid[], $2::integer[]) WITH ORDINALITY AS r(id, max_attempts, ord)"
    "), cand AS ("
    " SELECT j.id FROM jobs j WHERE j.id = ANY($1::uuid[])"
    " AND (j.state IN ('QUEUED', 'FAILED') OR (j.state = 'RUNNING' AND j.lease_until < now()))"
    " FOR UPDATE OF j SKIP LOCKED"
    "), upd AS ("
    " UPDATE jobs j SET"
    "  state = CASE WHEN j.state = 'RUNNING' AND j.attempts >= r.max_attempts"
    "   THEN 'DEAD' ELSE 'RUNNING' END,"
    "  attempts = CASE WHEN j.state = 'RUNNING' AND j.attempts >= r.max_attempts"
    "   THEN j.attempts ELSE j.attempts + 1 END,"
    "  error = CASE WHEN j.state = 'RUNNING' AND j.attempts >= r.max_attempts"
    "   THEN 'the worker running the last attempt was lost' ELSE j.error END,"
    "  finished_at = CASE WHEN j.state = 'RUNNING' AND j.attempts >= r.max_attempts"
    "   THEN now() END,"
    "  started_at = CASE WHEN j.state = 'RUNNING' AND j.attempts >= r.max_attempts"
    "   THEN j.started_at ELSE now() END,"
    "  lease_until = CASE WHEN j.state = 'RUNNING' AND j.attempts >= r.max_attempts"
    "   THEN NULL ELSE now() + $3::integer * interval '1 millisecond' END,"
    "  max_attempts = r.max_attempts, worker = $4, next_run_at = NULL, updated_at = now()"
    " FROM req r JOIN cand c ON c.id = r.id"
    " WHERE j.id = r.id"
    " RETURNING j.id, j.state, j.attempts, j.error"
    ")"
    " SELECT r.ord, coalesce(u.state, p.state, ''), coalesce(u.attempts, p.attempts, 0),"
    "  u.id IS NOT NULL, coalesce(u.error, p.error, '')"
    " FROM req r LEFT JOIN upd u ON u.id = r.id"
    " LEFT JOIN LATERAL (SELECT j.state, j.attempts, j.error FROM jobs j"
    "  WHERE j.id = r.id AND u.id IS NULL OFFSET 0) p ON true"
    " ORDER BY r.ord",
};

typedef struct start_op {
    wk_batch *b;
    wk_job **jobs; /* the jobs sent, in $1's order */
    int n;
} start_op;

static void set_dead(wk_job *j, const char *error, bool count)
{
    j->disp = D_DEAD;
    j->dead_error = fsr_xstrdup(error);
    j->count_dead = count;
}

/* After the start statement: settle what needs no transaction, form and begin groups. */
static void batch_dispatch(wk_batch *b)
{
    wk_thread *t = b->t;
    settle s = { 0 };
    int n_batchable = 0, n_groups = 0;
    for (int i = 0; i < b->n; i++) {
        wk_job *j = &b->jobs[i];
        switch (j->disp) {
        case D_RUN:
            if (j->type->flags & WK_T_BATCH)
                n_batchable++;
            else
                n_groups++;
            break;
        case D_SKIP:
            fsr_counter_add(wk_m.skipped, 1);
            settle_ack(&s, j);
            break;
        case D_DEAD:
            if (j->count_dead)
                fsr_counter_add(wk_type_metrics_of(j->type)->dead, 1);
            FSR_WARN("job %s%s dead-lettered: %s", j->id[0] ? j->id : "(unreadable entry ",
                     j->id[0] ? "" : ")", j->dead_error);
            settle_dead(&s, j, j->dead_error);
            break;
        default:
            break;
        }
    }
    settle_send(b, &s);
    n_groups += n_batchable > 0;
    if (n_groups == 0)
        return;
    b->groups = fsr_xcalloc((size_t)n_groups, sizeof(*b->groups));
    b->n_groups = n_groups;
    int gi = n_batchable > 0 ? 1 : 0;
    if (n_batchable > 0)
        b->groups[0].jobs = fsr_xcalloc((size_t)n_batchable, sizeof(wk_job *));
    for (int i = 0; i < b->n; i++) {
        wk_job *j = &b->jobs[i];
        if (j->disp != D_RUN)
            continue;
        wk_group *g = (j->type->flags & WK_T_BATCH) ? &b->groups[0] : &b->groups[gi++];
        if (g->jobs == NULL)
            g->jobs = fsr_xcalloc(1, sizeof(wk_job *));
        g->jobs[g->n++] = j;
        j->group = g;
    }
    for (int k = 0; k < n_groups; k++) {
        wk_group *g = &b->groups[k];
        g->b = b;
        qsort(g->jobs, (size_t)g->n, sizeof(*g->jobs), job_cmp_id);
        batch_ref(b); /* the group's reference, until group_end() */
        int rv = fsr_pg_tx_begin(t->ctx->pg, on_group_begin, g);
        if (rv != 0) {
            FSR_WARN("cannot begin a job transaction (%s): %d jobs stay RUNNING until reclaimed",
                     fsr_strerror(rv), g->n);
            wk_thread_pause(t, 1000);
            g->finishing = true;
            group_end(g);
        }
    }
}

static void on_started(const fsr_pg_result *res, void *arg)
{
    start_op *op = arg;
    wk_batch *b = op->b;
    wk_thread *t = b->t;
    int st = fsr_pg_result_status(res);
    if (t->closing) {
        /* nothing */
    } else if (st != 0) {
        FSR_WARN("cannot start %d jobs (%s: %s): their entries stay pending and will be "
                 "reclaimed",
                 op->n, fsr_strerror(st), fsr_pg_result_message(res));
        wk_thread_pause(t, 1000);
    } else {
        int rows = fsr_pg_result_rows(res);
        for (int r = 0; r < rows; r++) {
            int ord = atoi(fsr_pg_result_getvalue(res, r, 0));
            if (ord < 1 || ord > op->n)
                continue;
            wk_job *j = op->jobs[ord - 1];
            const char *state = fsr_pg_result_getvalue(res, r, 1);
            int attempts = atoi(fsr_pg_result_getvalue(res, r, 2));
            bool taken = strcmp(fsr_pg_result_getvalue(res, r, 3), "t") == 0;
            const char *error = fsr_pg_result_getvalue(res, r, 4);
            j->attempt = attempts;
            if (taken && strcmp(state, "RUNNING") == 0) {
                j->disp = D_RUN;
            } else if (taken) { /* DEAD: its worker died during the last attempt */
                set_dead(j, error, true);
            } else if (state[0] == '\0') {
                set_dead(j, "no such job", true);
            } else if (strcmp(state, "SUCCEEDED") == 0) {
                j->disp = D_SKIP;
            } else if (strcmp(state, "DEAD") == 0) {
                /*
                 * Redelivered by a reclaim: whoever made it DEAD died before settling, so
                 * the dead letter may be missing.  A fresh duplicate is just acknowledged.
                 */
                if (b->claimed)
                    set_dead(j, error, false);
                else
                    j->disp = D_SKIP;
            } else {
                j->disp = D_LEAVE; /* RUNNING under a live lease elsewhere */
            }
        }
        batch_dispatch(b);
    }
    free(op->jobs);
    free(op);
    batch_unref(b);
}

static int job_cmp_order(const void *a, const void *b)
{
    const wk_job *const *x = a, *const *y = b;
    int c = strcmp((*x)->id, (*y)->id);
    if (c != 0)
        return c;
    return (*x < *y) ? -1 : (*x > *y);
}

/* Reads one entry [id, [field, value, ...]] into |j|. */
static void job_from_entry(wk_job *j, const redisReply *e)
{
    j->disp = D_NONE;
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING) {
        j->disp = D_LEAVE; /* malformed reply: nothing to acknowledge */
        return;
    }
    snprintf(j->sid, sizeof(j->sid), "%s", e->element[0]->str);
    const redisReply *f = e->element[1];
    const redisReply *val = NULL;
    for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
        if (f->element[k]->type == REDIS_REPLY_STRING && strcmp(f->element[k]->str, "e") == 0)
            val = f->element[k + 1];
    }
    if (val != NULL && val->type == REDIS_REPLY_STRING) {
        pb_istream_t is = pb_istream_from_buffer((const pb_byte_t *)val->str, val->len);
        if (pb_decode(&is, fsr_jobs_v1_JobEnvelope_fields, &j->env)) {
            uint8_t zero[16] = { 0 };
            if (memcmp(j->env.id, zero, 16) != 0) {
                fsr_job_id_from_bytes(j->env.id, j->id);
                j->type = wk_job_type_find(j->env.type);
                if (j->type == NULL)
                    j->type = &wk_unknown_job_type;
                j->max_attempts = j->type->max_attempts;
                return;
            }
        }
    }
    /* Unreadable: keep its bytes for the dead letter. */
    j->type = &wk_unknown_job_type;
    if (val != NULL && val->type == REDIS_REPLY_STRING && val->len > 0) {
        j->raw = fsr_xmalloc(val->len);
        memcpy(j->raw, val->str, val->len);
        j->raw_len = val->len;
    } else {
        j->raw = fsr_xmalloc(1);
        j->raw_len = 0;
    }
    set_dead(j, "unreadable job envelope", true);
}

void wk_batch_start(wk_thread *t, const redisReply *entries, bool claimed)
{
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY || entries->elements == 0)
        return;
    int n = (int)entries->elements;
    wk_batch *b = fsr_xcalloc(1, sizeof(*b));
    b->t = t;
    b->n = n;
    b->claimed = claimed;
    b->jobs = fsr_xcalloc((size_t)n, sizeof(*b->jobs));
    b->refs = 1; /* this function's, released at the end */
    wk_thread_batch_begin(t, n);

    start_op *op = fsr_xcalloc(1, sizeof(*op));
    op->b = b;
    op->jobs = fsr_xcalloc((size_t)n, sizeof(*op->jobs));
    for (int i = 0; i < n; i++) {
        wk_job *j = &b->jobs[i];
        j->batch = b;
        job_from_entry(j, entries->element[i]);
        if (j->disp == D_NONE)
            op->jobs[op->n++] = j;
    }
    /*
     * The same job twice in one batch (a re-published duplicate next to the original):
     * start it once; the other copy stays pending and is skipped once the job is done.
     */
    qsort(op->jobs, (size_t)op->n, sizeof(*op->jobs), job_cmp_order);
    int m = 0;
    for (int i = 0; i < op->n; i++) {
        if (m > 0 && strcmp(op->jobs[m - 1]->id, op->jobs[i]->id) == 0)
            op->jobs[i]->disp = D_LEAVE;
        else
            op->jobs[m++] = op->jobs[i];
    }
    op->n = m;

    if (op->n == 0) {
        free(op->jobs);
        free(op);
        batch_dispatch(b);
        batch_unref(b);
        return;
    }
    sbuf ids = { 0 }, max = { 0 };
    sb_putc(&ids, '{');
    sb_putc(&max, '{');
    for (int i = 0; i < op->n; i++) {
        sb_array_elem(&ids, op->jobs[i]->id);
        sb_array_int(&max, op->jobs[i]->max_attempts);
    }
    sb_putc(&ids, '}');
    sb_putc(&max, '}');
    char lease[16];
    snprintf(lease, sizeof(lease), "%u", lease_ms());
    const char *v[] = { ids.p, max.p, lease, t->consumer };
    int rv = t->ctx->pg != NULL ? fsr_pg_query(t->ctx->pg, &st_start, 4, v, on_started, op)
                                : FSR_E_CLOSED;
    free(ids.p);
    free(max.p);
    if (rv == 0) {
        batch_ref(b);
    } else {
        FSR_WARN("cannot start %d jobs (%s): their entries stay pending and will be reclaimed",
                 op->n, fsr_strerror(rv));
        wk_thread_pause(t, 1000);
        free(op->jobs);
        free(op);
        /* Whatever needs no database (unreadable entries) is still settled. */
        batch_dispatch(b);
    }
    batch_unref(b);
}
