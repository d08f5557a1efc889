/* SPDX-License-Identifier: MIT */
/* Background jobs, the service side: ids that name their queue, enqueueing, GetJob. */
#include "fsr/jobs.h"
#include "jobs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "fsr/app.h"
#include "fsr/client.h"
#include "fsr/json.h"
#include "fsr/log.h"
#include "fsr/validate.h"

#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "jobs_envelope.pb.h"

_Static_assert(fsr_jobs_v1_JobEnvelope_size <= FSR_JOB_ENVELOPE_MAX, "envelope bound");
_Static_assert(sizeof(((fsr_jobs_v1_JobEnvelope *)0)->type) == FSR_JOB_TYPE_MAX + 1, "type bound");
_Static_assert(sizeof(((fsr_jobs_v1_JobEnvelope *)0)->payload.bytes) == FSR_JOB_PAYLOAD_MAX,
               "payload bound");
_Static_assert(sizeof(((fsr_jobs_v1_JobEnvelope *)0)->request_id) == FSR_JOB_REQID_MAX + 1,
               "request id bound");

#define FORWARDED_KEY "x-fsr-forwarded"

/* ---- queues and ids ------------------------------------------------------------------ */

static const char *const queue_names[] = { NULL, "equity", "fixed_income", "portfolio" };

const char *fsr_job_queue_name(fsr_job_queue q)
{
    return q >= FSR_JOB_QUEUE_EQUITY && q <= FSR_JOB_QUEUE_PORTFOLIO ? queue_names[q] : NULL;
}

int fsr_job_queue_from_name(const char *name, fsr_job_queue *out)
{
    if (name == NULL || out == NULL)
        return -EINVAL;
    if (strcmp(name, "fi") == 0)
        name = "fixed_income";
    for (int q = FSR_JOB_QUEUE_EQUITY; q <= FSR_JOB_QUEUE_PORTFOLIO; q++) {
        if (strcmp(name, queue_names[q]) == 0) {
            *out = (fsr_job_queue)q;
            return 0;
        }
    }
    return -EINVAL;
}

int fsr_job_queue_from_prefix(const char *prefix, fsr_job_queue *out)
{
    static const char *const prefixes[] = { NULL, "EQUITY", "FI", "PORTFOLIO" };
    if (prefix == NULL || out == NULL)
        return -EINVAL;
    for (int q = FSR_JOB_QUEUE_EQUITY; q <= FSR_JOB_QUEUE_PORTFOLIO; q++) {
        if (strcmp(prefix, prefixes[q]) == 0) {
            *out = (fsr_job_queue)q;
            return 0;
        }
    }
    return -EINVAL;
}

/*
 * xoshiro256** per thread, seeded from getrandom(): ids need uniqueness, not secrecy, and a
 * system call per id would dominate the cost of enqueueing.  70 random bits per millisecond
 * per queue make a collision practically impossible (and the primary key would refuse it).
 */
static __thread uint64_t rng_s[4];
static __thread int rng_seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        if (getrandom(rng_s, sizeof(rng_s), 0) != (ssize_t)sizeof(rng_s)) {
            /* No entropy source at all: fall back to time and address bits. */
            rng_s[0] = (uint64_t)fsr_wall_us() ^ 0x9e3779b97f4a7c15ull;
            rng_s[1] = (uint64_t)(uintptr_t)&rng_seeded ^ (uint64_t)fsr_now_us();
            rng_s[2] = 0xbf58476d1ce4e5b9ull;
            rng_s[3] = 0x94d049bb133111ebull;
        }
        rng_seeded = 1;
    }
    uint64_t *s = rng_s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void fsr_job_id_from_bytes(const uint8_t b[16], char out[FSR_JOB_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int fsr_job_id_to_bytes(const char *id, uint8_t out[16])
{
    if (!fsr_uuid_valid(id) || out == NULL)
        return -EINVAL;
    int n = 0;
    for (const char *p = id; *p != '\0'; p++) {
        if (*p == '-')
            continue;
        int v = hexval(*p);
        if (n % 2 == 0)
            out[n / 2] = (uint8_t)(v << 4);
        else
            out[n / 2] |= (uint8_t)v;
        n++;
    }
    return 0;
}

int fsr_job_id_new(fsr_job_queue q, char out[FSR_JOB_ID_LEN + 1])
{
    if (fsr_job_queue_name(q) == NULL || out == NULL)
        return -EINVAL;
    uint64_t ms = (uint64_t)(fsr_wall_us() / 1000);
    uint64_t r1 = rng_next(), r2 = rng_next();
    uint8_t b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x80 | (unsigned)q); /* version 8, then the owner digit */
    b[7] = (uint8_t)r1;
    b[8] = (uint8_t)(0x80 | ((r2 >> 56) & 0x3f)); /* variant 10 */
    for (int i = 9; i < 16; i++)
        b[i] = (uint8_t)(r2 >> (8 * (15 - i)));
    fsr_job_id_from_bytes(b, out);
    return 0;
}

int fsr_job_id_queue(const char *id, fsr_job_queue *out)
{
    if (!fsr_uuid_valid(id) || out == NULL)
        return -EINVAL;
    /* "xxxxxxxx-xxxx-8Qxx-Vxxx-...": version at 14, owner at 15, variant at 19. */
    int owner = hexval(id[15]);
    int variant = hexval(id[19]);
    if (id[14] != '8' || (variant & 0xc) != 0x8 || fsr_job_queue_name(owner) == NULL)
        return -EINVAL;
    *out = (fsr_job_queue)owner;
    return 0;
}

/* ---- drafts, rows, envelopes --------------------------------------------------------- */

static bool type_valid(const char *t)
{
    size_t n = 0;
    for (; t[n] != '\0'; n++) {
        char c = t[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return n >= 1 && n <= FSR_JOB_TYPE_MAX;
}

int fsr_job_prepare(fsr_job_queue q, const fsr_job_spec *spec, fsr_job_draft *out)
{
    if (spec == NULL || out == NULL || fsr_job_queue_name(q) == NULL || spec->type == NULL ||
        !type_valid(spec->type) || spec->payload_len > FSR_JOB_PAYLOAD_MAX ||
        (spec->payload == NULL && spec->payload_len > 0) || spec->max_attempts < 0 ||
        spec->max_attempts > FSR_JOB_ATTEMPTS_MAX)
        return -EINVAL;
    fsr_job_draft *d = out;
    d->queue = q;
    fsr_job_id_new(q, d->id);
    snprintf(d->type, sizeof(d->type), "%s", spec->type);
    d->max_attempts = spec->max_attempts > 0 ? spec->max_attempts : FSR_JOB_DEFAULT_MAX_ATTEMPTS;
    if (spec->payload_len > 0)
        memcpy(d->payload, spec->payload, spec->payload_len);
    d->payload_len = spec->payload_len;
    snprintf(d->request_id, sizeof(d->request_id), "%s",
             spec->request_id != NULL ? spec->request_id : "");

    fsr_jobs_v1_JobEnvelope env = fsr_jobs_v1_JobEnvelope_init_zero;
    fsr_job_id_to_bytes(d->id, env.id);
    memcpy(env.type, d->type, sizeof(env.type));
    env.attempt = 1;
    env.enqueued_at_us = fsr_wall_us();
    memcpy(env.payload.bytes, d->payload, d->payload_len);
    env.payload.size = (pb_size_t)d->payload_len;
    memcpy(env.request_id, d->request_id, sizeof(env.request_id));
    pb_ostream_t os = pb_ostream_from_buffer(d->envelope, sizeof(d->envelope));
    /* Every field is within its bound and the buffer holds the largest envelope. */
    if (!pb_encode(&os, fsr_jobs_v1_JobEnvelope_fields, &env))
        return -EINVAL;
    d->envelope_len = os.bytes_written;
    return 0;
}

/* created_at comes back as RFC 3339 UTC text, parsed exactly by fsr_pg_timestamp_parse(). */
#define TS_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

static const fsr_pg_stmt job_insert = {
    "fsr_job_insert",
    "INSERT INTO jobs (id, queue, type, payload, max_attempts, request_id)"
    " VALUES ($1::uuid, $2, $3, $4::bytea, $5::integer, nullif($6, ''))"
    " RETURNING " TS_SQL("created_at"),
};

static const fsr_pg_stmt job_select = {
    "fsr_job_select",
    "SELECT " FSR_JOBS_ROW_COLUMNS " FROM jobs WHERE id = $1::uuid",
};

/* Postgres' hex bytea input: "\x" then two digits per byte. */
static void bytea_hex(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    *out++ = '\\';
    *out++ = 'x';
    for (size_t i = 0; i < n; i++) {
        *out++ = hex[p[i] >> 4];
        *out++ = hex[p[i] & 15];
    }
    *out = '\0';
}

int fsr_job_insert(fsr_pg_conn *conn, const fsr_job_draft *d, fsr_pg_cb cb, void *arg)
{
    if (conn == NULL || d == NULL || cb == NULL)
        return -EINVAL;
    char hex[2 * FSR_JOB_PAYLOAD_MAX + 3], max[16];
    bytea_hex(d->payload, d->payload_len, hex);
    snprintf(max, sizeof(max), "%d", d->max_attempts);
    const char *v[] = { d->id, fsr_job_queue_name(d->queue), d->type, hex, max, d->request_id };
    return fsr_pg_conn_query(conn, &job_insert, 6, v, cb, arg);
}

int fsr_job_publish(fsr_redis *r, const fsr_job_draft *d, fsr_redis_cb cb, void *arg)
{
    if (r == NULL || d == NULL || fsr_job_queue_name(d->queue) == NULL)
        return -EINVAL;
    char stream[64];
    snprintf(stream, sizeof(stream), "jobs:%s", fsr_job_queue_name(d->queue));
    return fsr_redis_command(r, cb, arg, "XADD %s * e %b", stream, (const char *)d->envelope,
                             d->envelope_len);
}

/* ---- fsr_job_enqueue ----------------------------------------------------------------- */

typedef struct enqueue_op {
    fsr_job_draft d;
    fsr_redis *redis;
    fsr_job_enqueue_cb cb;
    void *arg;
    fsr_job_info info;
} enqueue_op;

static void enqueue_done(enqueue_op *op)
{
    op->cb(&op->info, 0, op->arg);
    free(op);
}

static void on_published(const struct redisReply *reply, int status, void *arg)
{
    enqueue_op *op = arg;
    (void)reply;
    op->info.published = status == 0;
    if (status != 0)
        FSR_WARN("job %s: XADD failed (%s); a worker will re-publish it", op->d.id,
                 fsr_strerror(status));
    enqueue_done(op);
}

static void on_inserted(const fsr_pg_result *res, void *arg)
{
    enqueue_op *op = arg;
    int st = fsr_pg_result_status(res);
    if (st != 0) {
        FSR_WARN("job %s: insert failed: %s", op->d.id, fsr_pg_result_message(res));
        op->cb(NULL, st, op->arg);
        free(op);
        return;
    }
    const char *ts = fsr_pg_result_getvalue(res, 0, 0);
    if (ts != NULL)
        fsr_pg_timestamp_parse(ts, &op->info.created_s, &op->info.created_ns);
    if (op->redis == NULL || fsr_job_publish(op->redis, &op->d, on_published, op) != 0) {
        if (op->redis != NULL)
            FSR_WARN("job %s: Redis unavailable; a worker will re-publish it", op->d.id);
        enqueue_done(op);
    }
}

int fsr_job_enqueue(fsr_pg_pool *pg, fsr_redis *redis, fsr_job_queue q, const fsr_job_spec *spec,
                    fsr_job_enqueue_cb cb, void *arg)
{
    if (pg == NULL || cb == NULL)
        return -EINVAL;
    enqueue_op *op = fsr_xcalloc(1, sizeof(*op));
    int rv = fsr_job_prepare(q, spec, &op->d);
    if (rv != 0) {
        free(op);
        return rv;
    }
    op->redis = redis;
    op->cb = cb;
    op->arg = arg;
    memcpy(op->info.id, op->d.id, sizeof(op->info.id));
    op->info.type = op->d.type;
    op->info.max_attempts = op->d.max_attempts;
    char hex[2 * FSR_JOB_PAYLOAD_MAX + 3], max[16];
    bytea_hex(op->d.payload, op->d.payload_len, hex);
    snprintf(max, sizeof(max), "%d", op->d.max_attempts);
    const char *v[] = { op->d.id, fsr_job_queue_name(q), op->d.type, hex, max, op->d.request_id };
    rv = fsr_pg_query(pg, &job_insert, 6, v, on_inserted, op);
    if (rv != 0)
        free(op);
    return rv;
}

/* ---- fsr_job_enqueue_batch ----------------------------------------------------------- */

/*
 * One statement for the whole batch: the rows travel as five array parameters, and the
 * reply is one row (the count and the shared created_at: now() is the statement's
 * transaction time, the column's default) rather than one per job.
 */
static const fsr_pg_stmt job_insert_batch = {
    "fsr_job_insert_batch",
    "WITH ins AS ("
    " INSERT INTO jobs (id, queue, type, payload, max_attempts, request_id)"
    " SELECT u.id, $1, u.type, u.payload, u.max_attempts, nullif(u.request_id, '')"
    " FROM unnest($2::uuid[], $3::text[], $4::bytea[], $5::integer[], $6::text[])"
    "  AS u(id, type, payload, max_attempts, request_id)"
    " RETURNING 1)"
    " SELECT count(*), " TS_SQL("now()") " FROM ins",
};

/* A growable string: the array literals of the batch INSERT. */
typedef struct abuf {
    char *p;
    size_t len, cap;
} abuf;

static void ab_put(abuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = fsr_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Appends a separator unless |b| holds only the opening brace. */
static void ab_sep(abuf *b)
{
    if (b->len > 1)
        ab_put(b, ",", 1);
}

/* A quoted array element: "NULL" unquoted would be SQL NULL, and text may hold '"' or '\'. */
static void ab_quoted(abuf *b, const char *s)
{
    ab_sep(b);
    ab_put(b, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            ab_put(b, "\\", 1);
        ab_put(b, p, 1);
    }
    ab_put(b, "\"", 1);
}

typedef struct enqueue_batch_op enqueue_batch_op;

/* One XADD of the pipeline: which job it publishes. */
typedef struct batch_pub {
    enqueue_batch_op *op;
    size_t i;
} batch_pub;

struct enqueue_batch_op {
    fsr_redis *redis;
    fsr_job_queue q;
    fsr_job_enqueue_batch_cb cb;
    void *arg;
    size_t n, outstanding;
    bool warned;          /* an XADD failure was logged */
    fsr_job_info *infos;  /* n, in the arena */
    uint8_t **envelopes;  /* n encoded envelopes, in the arena */
    size_t *envelope_len; /* ... and their lengths */
    batch_pub *pubs;      /* n */
    fsr_arena arena;
};

static void batch_op_free(enqueue_batch_op *op)
{
    fsr_arena_dispose(&op->arena);
    free(op);
}

static void batch_done(enqueue_batch_op *op)
{
    op->cb(op->infos, op->n, 0, op->arg);
    batch_op_free(op);
}

static void on_batch_published(const struct redisReply *reply, int status, void *arg)
{
    batch_pub *p = arg;
    enqueue_batch_op *op = p->op;
    (void)reply;
    op->infos[p->i].published = status == 0;
    if (status != 0 && !op->warned) {
        op->warned = true;
        FSR_WARN("job batch: XADD failed (%s); a worker will re-publish the jobs not published",
                 fsr_strerror(status));
    }
    if (--op->outstanding == 0)
        batch_done(op);
}

static void on_batch_inserted(const fsr_pg_result *res, void *arg)
{
    enqueue_batch_op *op = arg;
    int st = fsr_pg_result_status(res);
    if (st == 0 && (fsr_pg_result_rows(res) != 1 ||
                    strtoull(fsr_pg_result_getvalue(res, 0, 0), NULL, 10) != op->n)) {
        /* Cannot happen: the INSERT has no conflict clause, so it is all or an error. */
        FSR_ERROR("job batch: unexpected insert result");
        st = FSR_E_DB;
    }
    if (st != 0) {
        FSR_WARN("job batch of %zu: insert failed: %s", op->n, fsr_pg_result_message(res));
        op->cb(NULL, 0, st, op->arg);
        batch_op_free(op);
        return;
    }
    int64_t s = 0;
    int32_t ns = 0;
    fsr_pg_timestamp_parse(fsr_pg_result_getvalue(res, 0, 1), &s, &ns);
    char stream[64];
    snprintf(stream, sizeof(stream), "jobs:%s", fsr_job_queue_name(op->q));
    /*
     * The XADDs go out back to back, without waiting for replies: hiredis writes them in
     * one go and Redis answers them in order, so the batch costs one round trip.
     */
    for (size_t i = 0; i < op->n; i++) {
        op->infos[i].created_s = s;
        op->infos[i].created_ns = ns;
        op->pubs[i] = (batch_pub){ op, i };
        if (op->redis != NULL &&
            fsr_redis_command(op->redis, on_batch_published, &op->pubs[i], "XADD %s * e %b", stream,
                              (const char *)op->envelopes[i], op->envelope_len[i]) == 0)
            op->outstanding++;
    }
    if (op->outstanding < op->n && op->redis != NULL)
        FSR_WARN("job batch: Redis unavailable for %zu jobs; a worker will re-publish them",
                 op->n - op->outstanding);
    if (op->outstanding == 0)
        batch_done(op);
    /* else the last on_batch_published() finishes */
}

int fsr_job_enqueue_batch(fsr_pg_pool *pg, fsr_redis *redis, fsr_job_queue q,
                          const fsr_job_spec *specs, size_t n, fsr_job_enqueue_batch_cb cb,
                          void *arg)
{
    if (pg == NULL || specs == NULL || cb == NULL || n == 0 || n > FSR_JOB_BATCH_MAX ||
        fsr_job_queue_name(q) == NULL)
        return -EINVAL;
    enqueue_batch_op *op = fsr_xcalloc(1, sizeof(*op));
    fsr_arena_init(&op->arena);
    op->redis = redis;
    op->q = q;
    op->cb = cb;
    op->arg = arg;
    op->n = n;
    op->infos = fsr_arena_calloc(&op->arena, n * sizeof(*op->infos));
    op->envelopes = fsr_arena_calloc(&op->arena, n * sizeof(*op->envelopes));
    op->envelope_len = fsr_arena_calloc(&op->arena, n * sizeof(*op->envelope_len));
    op->pubs = fsr_arena_calloc(&op->arena, n * sizeof(*op->pubs));
    abuf ids = { 0 }, types = { 0 }, payloads = { 0 }, maxes = { 0 }, reqids = { 0 };
    abuf *all[] = { &ids, &types, &payloads, &maxes, &reqids };
    for (size_t k = 0; k < FSR_ARRAY_SIZE(all); k++)
        ab_put(all[k], "{", 1);
    fsr_job_draft *d = fsr_xmalloc(sizeof(*d)); /* ~2.3 KiB: one reused, not n */
    char hex[2 * FSR_JOB_PAYLOAD_MAX + 3];
    int rv = 0;
    for (size_t i = 0; i < n && rv == 0; i++) {
        rv = fsr_job_prepare(q, &specs[i], d);
        if (rv != 0)
            break;
        fsr_job_info *info = &op->infos[i];
        memcpy(info->id, d->id, sizeof(info->id));
        info->type = fsr_arena_strdup(&op->arena, d->type);
        info->max_attempts = d->max_attempts;
        op->envelopes[i] = fsr_arena_alloc(&op->arena, d->envelope_len);
        memcpy(op->envelopes[i], d->envelope, d->envelope_len);
        op->envelope_len[i] = d->envelope_len;
        ab_sep(&ids);
        ab_put(&ids, d->id, FSR_JOB_ID_LEN);
        ab_quoted(&types, d->type);
        /* "\x..." inside a quoted array element: the backslash itself is escaped. */
        bytea_hex(d->payload, d->payload_len, hex);
        ab_sep(&payloads);
        ab_put(&payloads, "\"\\", 2);
        ab_put(&payloads, hex, strlen(hex));
        ab_put(&payloads, "\"", 1);
        char num[16];
        int len = snprintf(num, sizeof(num), "%d", d->max_attempts);
        ab_sep(&maxes);
        ab_put(&maxes, num, (size_t)len);
        ab_quoted(&reqids, d->request_id);
    }
    free(d);
    if (rv == 0) {
        for (size_t k = 0; k < FSR_ARRAY_SIZE(all); k++)
            ab_put(all[k], "}", 1);
        const char *v[] = { fsr_job_queue_name(q), ids.p, types.p, payloads.p, maxes.p, reqids.p };
        rv = fsr_pg_query(pg, &job_insert_batch, 6, v, on_batch_inserted, op);
    }
    for (size_t k = 0; k < FSR_ARRAY_SIZE(all); k++)
        free(all[k]->p);
    if (rv != 0)
        batch_op_free(op);
    return rv;
}

/* ---- jobs.v1.Job --------------------------------------------------------------------- */

int fsr_job_state_from_name(const char *name)
{
    static const struct {
        const char *name;
        int value;
    } states[] = {
        { "QUEUED", COMMON__V1__JOB_STATE__VALUE__QUEUED },
        { "RUNNING", COMMON__V1__JOB_STATE__VALUE__RUNNING },
        { "SUCCEEDED", COMMON__V1__JOB_STATE__VALUE__SUCCEEDED },
        { "FAILED", COMMON__V1__JOB_STATE__VALUE__FAILED },
        { "DEAD", COMMON__V1__JOB_STATE__VALUE__DEAD },
    };
    for (size_t i = 0; name != NULL && i < FSR_ARRAY_SIZE(states); i++) {
        if (strcmp(name, states[i].name) == 0)
            return states[i].value;
    }
    return COMMON__V1__JOB_STATE__VALUE__JOB_STATE_UNSPECIFIED;
}

static Google__Protobuf__Timestamp *ts_new(fsr_arena *a, int64_t s, int32_t ns)
{
    Google__Protobuf__Timestamp *ts = fsr_arena_calloc(a, sizeof(*ts));
    google__protobuf__timestamp__init(ts);
    ts->seconds = s;
    ts->nanos = ns;
    return ts;
}

/* NULL for "" (absent), else the parsed timestamp; *|bad| set on unparsable text. */
static Google__Protobuf__Timestamp *ts_from_text(fsr_arena *a, const char *text, bool *bad)
{
    if (text == NULL || text[0] == '\0')
        return NULL;
    int64_t s;
    int32_t ns;
    if (fsr_pg_timestamp_parse(text, &s, &ns) != 0) {
        *bad = true;
        return NULL;
    }
    return ts_new(a, s, ns);
}

Jobs__V1__Job *fsr_job_info_to_pb(fsr_arena *arena, const fsr_job_info *info)
{
    if (arena == NULL || info == NULL)
        return NULL;
    Jobs__V1__Job *j = fsr_arena_calloc(arena, sizeof(*j));
    jobs__v1__job__init(j);
    j->id = fsr_arena_strdup(arena, info->id);
    j->type = fsr_arena_strdup(arena, info->type != NULL ? info->type : "");
    j->state = COMMON__V1__JOB_STATE__VALUE__QUEUED;
    j->attempts = 0;
    j->max_attempts = info->max_attempts;
    j->created_at = ts_new(arena, info->created_s, info->created_ns);
    return j;
}

enum {
    COL_ID,
    COL_TYPE,
    COL_STATE,
    COL_ATTEMPTS,
    COL_MAX_ATTEMPTS,
    COL_CREATED,
    COL_STARTED,
    COL_FINISHED,
    COL_RESULT,
    COL_ERROR,
    COL_COUNT
};

Jobs__V1__Job *fsr_jobs_row_to_pb(fsr_arena *arena, const fsr_pg_result *res, int row)
{
    if (arena == NULL || res == NULL || fsr_pg_result_cols(res) != COL_COUNT ||
        row >= fsr_pg_result_rows(res))
        return NULL;
    Jobs__V1__Job *j = fsr_arena_calloc(arena, sizeof(*j));
    jobs__v1__job__init(j);
    j->id = fsr_arena_strdup(arena, fsr_pg_result_getvalue(res, row, COL_ID));
    j->type = fsr_arena_strdup(arena, fsr_pg_result_getvalue(res, row, COL_TYPE));
    j->state = fsr_job_state_from_name(fsr_pg_result_getvalue(res, row, COL_STATE));
    j->attempts = atoi(fsr_pg_result_getvalue(res, row, COL_ATTEMPTS));
    j->max_attempts = atoi(fsr_pg_result_getvalue(res, row, COL_MAX_ATTEMPTS));
    bool bad = false;
    j->created_at = ts_from_text(arena, fsr_pg_result_getvalue(res, row, COL_CREATED), &bad);
    j->started_at = ts_from_text(arena, fsr_pg_result_getvalue(res, row, COL_STARTED), &bad);
    j->finished_at = ts_from_text(arena, fsr_pg_result_getvalue(res, row, COL_FINISHED), &bad);
    if (bad)
        return NULL;
    if (!fsr_pg_result_isnull(res, row, COL_RESULT)) {
        ProtobufCMessage *m = NULL;
        const char *text = fsr_pg_result_getvalue(res, row, COL_RESULT);
        if (fsr_json_to_pb(&google__protobuf__struct__descriptor, text,
                           (size_t)fsr_pg_result_getlength(res, row, COL_RESULT),
                           fsr_arena_pb_allocator(arena), &m, NULL) != 0)
            return NULL;
        j->result = (Google__Protobuf__Struct *)m;
    }
    j->error = fsr_arena_strdup(arena, fsr_pg_result_getvalue(res, row, COL_ERROR));
    return j;
}

/* ---- GetJob -------------------------------------------------------------------------- */

/*
 * Per loop thread: one channel per other service, opened on the first forwarded request
 * and kept (a job is typically polled many times), freed by fsr__jobs_thread_dispose().
 */
typedef struct jobs_tls {
    fsr_loop *loop;
    fsr_channel *ch[FSR_JOB_QUEUE_PORTFOLIO + 1];
} jobs_tls;

static __thread jobs_tls *tls;

void fsr__jobs_thread_dispose(void)
{
    jobs_tls *t = tls;
    if (t == NULL)
        return;
    tls = NULL;
    for (size_t i = 0; i < FSR_ARRAY_SIZE(t->ch); i++)
        fsr_channel_free(t->ch[i]);
    free(t);
}

/* The channel to the owner of queue |q| on |loop|, created on first use; NULL on error. */
static fsr_channel *owner_channel(fsr_loop *loop, fsr_job_queue q)
{
    static const char *const env[] = { NULL, "EQUITY_SERVICE_ADDR", "FI_SERVICE_ADDR",
                                       "PORTFOLIO_SERVICE_ADDR" };
    static const char *const def[] = { NULL, "localhost:8001", "localhost:8002", "localhost:8003" };
    if (tls == NULL) {
        tls = fsr_xcalloc(1, sizeof(*tls));
        tls->loop = loop;
    }
    if (tls->loop != loop) /* a thread has one loop: never true in a service */
        return NULL;
    if (tls->ch[q] == NULL) {
        const char *list = getenv(env[q]);
        if (list == NULL || list[0] == '\0')
            list = def[q];
        /* The variable may list replicas ("h1:p,h2:p", as the gateway accepts): any will do. */
        char target[256];
        while (*list == ' ')
            list++;
        size_t n = strcspn(list, ", ");
        snprintf(target, sizeof(target), "%.*s", (int)n, list);
        if (fsr_channel_new(loop, target, NULL, &tls->ch[q]) != 0) {
            FSR_ERROR("GetJob: bad %s '%s'", env[q], target);
            return NULL;
        }
    }
    return tls->ch[q];
}

static void on_forwarded(const fsr_result *res, void *arg)
{
    fsr_call *call = arg;
    fsr_code code = res->status.code;
    if (code == FSR_OK && res->response != NULL) {
        fsr_call_reply(call, res->response);
        return;
    }
    /*
     * The owner's own answers (NOT_FOUND, INVALID_ARGUMENT) pass through; transport trouble
     * gets a generic message, since its text may name hosts.
     */
    if (code == FSR_UNAVAILABLE || code == FSR_CANCELLED || code == FSR_UNKNOWN ||
        code == FSR_INTERNAL || code == FSR_OK) {
        FSR_WARN("GetJob: owner of the job answered %s: %s", fsr_code_name(code),
                 res->status.message != NULL ? res->status.message : "");
        fsr_call_finish(call, FSR_UNAVAILABLE, "the service owning this job is unavailable");
        return;
    }
    fsr_call_finish(call, code, res->status.message);
}

static void on_selected(const fsr_pg_result *res, void *arg)
{
    fsr_call *call = arg;
    int st = fsr_pg_result_status(res);
    if (st != 0) {
        fsr_call_fail_err(call, st, "GetJob");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_finish(call, FSR_NOT_FOUND, "job not found");
        return;
    }
    Jobs__V1__Job *job = fsr_jobs_row_to_pb(fsr_call_arena(call), res, 0);
    if (job == NULL) {
        FSR_ERROR("GetJob: unexpected row shape");
        fsr_call_finish(call, FSR_INTERNAL, "internal error");
        return;
    }
    fsr_call_reply(call, &job->base);
}

void fsr_jobs_get_job(fsr_call *call, const Jobs__V1__GetJobRequest *req)
{
    const char *id = req->id != NULL ? req->id : "";
    if (id[0] == '\0') {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "id", "is required");
        return;
    }
    if (!fsr_uuid_valid(id)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "id", "must be a UUID");
        return;
    }
    fsr_job_queue owner, self;
    if (fsr_job_id_queue(id, &owner) != 0) {
        fsr_call_finish(call, FSR_NOT_FOUND, "job not found");
        return;
    }
    fsr_app_ctx *ctx = fsr_app_ctx_of(call);
    if (ctx == NULL || ctx->cfg == NULL || fsr_job_queue_from_prefix(ctx->cfg->env_prefix, &self)) {
        fsr_call_finish(call, FSR_NOT_FOUND, "job not found");
        return;
    }
    if (owner == self) {
        if (ctx->pg == NULL) {
            fsr_call_finish(call, FSR_UNAVAILABLE, "database unavailable");
            return;
        }
        const char *v[] = { id };
        int rv = fsr_pg_query(ctx->pg, &job_select, 1, v, on_selected, call);
        if (rv != 0)
            fsr_call_fail_err(call, rv, "GetJob");
        return;
    }
    if (fsr_call_metadata(call, FORWARDED_KEY, NULL) != NULL) {
        /* Already forwarded once: the addresses are misconfigured; never loop. */
        FSR_WARN("GetJob: forwarded job %s does not belong here (queue %s); check the "
                 "*_SERVICE_ADDR variables",
                 id, fsr_job_queue_name(owner));
        fsr_call_finish(call, FSR_NOT_FOUND, "job not found");
        return;
    }
    fsr_channel *ch = owner_channel(ctx->loop, owner);
    if (ch == NULL) {
        fsr_call_finish(call, FSR_UNAVAILABLE, "the service owning this job is unavailable");
        return;
    }
    static const fsr_md md[] = { { FORWARDED_KEY, "1", 1 } };
    fsr_call_opts opts = {
        .timeout_ms = 5000, /* capped by the caller's own deadline (parent) */
        .metadata = md,
        .n_metadata = 1,
        .parent = call,
        .idempotent = true,
    };
    int rv = fsr_channel_unary(ch, "/jobs.v1.JobService/GetJob", &req->base,
                               &jobs__v1__job__descriptor, &opts, on_forwarded, call);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "GetJob");
}
