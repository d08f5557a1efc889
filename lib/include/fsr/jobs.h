/* SPDX-License-Identifier: MIT */
/*
 * Background jobs, the service side: job ids, enqueueing (a row in the service's Postgres,
 * then an envelope on its Redis stream) and the jobs.v1.JobService/GetJob handler every
 * service registers.  svc_worker runs the jobs (see svc_worker/worker.h and
 * docs/ARCHITECTURE.md, "Jobs").
 *
 * Where things live, per queue <q> (equity, fixed_income, portfolio), all on the owning
 * service's own Postgres and Redis:
 *
 *   Postgres  table jobs (svc_<q>/sql/002_jobs.sql): one row per job, the source of truth
 *             for its state (QUEUED, RUNNING, SUCCEEDED, FAILED, DEAD), attempts, result,
 *             error and timestamps; it survives a Redis flush.
 *   Redis     stream jobs:<q>, consumer group "workers": one entry per delivery, field "e"
 *             holding the nanopb-encoded fsr.jobs.v1.JobEnvelope (gen/nanopb/);
 *             sorted set jobs:<q>:delayed: retries waiting for their backoff to pass;
 *             stream jobs:<q>:dead: jobs that used up their attempts.
 *
 * Job ids are UUIDs that name their queue, so that any service can route GET /jobs/{id}
 * to the owner without a lookup: RFC 9562 version 8 ("custom") UUIDs laid out as
 *
 *   48 bits  Unix time in ms (ids sort by creation, like UUIDv7: B-tree friendly)
 *    4 bits  version, 8
 *    4 bits  owner: 1 equity, 2 fixed_income, 3 portfolio (the 15th hex digit)
 *    8 bits  random
 *    2 bits  variant, binary 10
 *   62 bits  random
 *
 * e.g. "0190f3a2-7c41-8147-a3b2-9f0c51d2e4a7" belongs to equity.
 */
#ifndef FSR_JOBS_H
#define FSR_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsr/mem.h"
#include "fsr/pg.h"
#include "fsr/redis.h"
#include "fsr/server.h"

#include "jobs/v1/jobs.pb-c.h"

/* The queues: one per service, numbered as in the job id's owner digit. */
typedef enum fsr_job_queue {
    FSR_JOB_QUEUE_EQUITY = 1,
    FSR_JOB_QUEUE_FIXED_INCOME = 2,
    FSR_JOB_QUEUE_PORTFOLIO = 3,
} fsr_job_queue;

#define FSR_JOB_ID_LEN               36 /* canonical UUID text, without the NUL */
#define FSR_JOB_TYPE_MAX             63 /* bytes of a type name (envelope bound, without the NUL) */
#define FSR_JOB_PAYLOAD_MAX          1024 /* bytes of a payload (envelope bound) */
#define FSR_JOB_REQID_MAX            63   /* bytes of a request id kept in the envelope */
#define FSR_JOB_ENVELOPE_MAX         1200 /* an encoded envelope never exceeds this */
#define FSR_JOB_ATTEMPTS_MAX         100  /* upper bound for any max_attempts */
#define FSR_JOB_DEFAULT_MAX_ATTEMPTS 5

/* "equity", "fixed_income", "portfolio"; NULL for anything else. */
const char *fsr_job_queue_name(fsr_job_queue q);

/*
 * The queue named |name| ("equity", "fixed_income" or its short form "fi", "portfolio").
 * Returns 0 and sets *|out|, or -EINVAL (NULL or unknown name; *|out| untouched).
 */
int fsr_job_queue_from_name(const char *name, fsr_job_queue *out);

/*
 * The queue of the service whose env prefix is |prefix| ("EQUITY", "FI", "PORTFOLIO", as
 * fsr_app_config.env_prefix).  Returns 0 and sets *|out|, or -EINVAL.
 */
int fsr_job_queue_from_prefix(const char *prefix, fsr_job_queue *out);

/*
 * Writes a new job id for queue |q| (layout above; time from the wall clock, randomness
 * from a per-thread generator seeded by getrandom()) into |out|, NUL-terminated.
 * Returns 0, or -EINVAL for an unknown |q| or a NULL |out|.
 */
int fsr_job_id_new(fsr_job_queue q, char out[FSR_JOB_ID_LEN + 1]);

/*
 * The owner of job id |id|.  Returns 0 and sets *|out| when |id| is a canonical UUID of
 * version 8 with the RFC variant and a known owner digit; otherwise -EINVAL (*|out|
 * untouched): any other UUID is nobody's job.
 */
int fsr_job_id_queue(const char *id, fsr_job_queue *out);

/* The 16 bytes of UUID text |id| (canonical form).  Returns 0, or -EINVAL. */
int fsr_job_id_to_bytes(const char *id, uint8_t out[16]);

/* The canonical lower-case text of the 16 bytes |b| into |out| (37 bytes with the NUL). */
void fsr_job_id_from_bytes(const uint8_t b[16], char out[FSR_JOB_ID_LEN + 1]);

/* ---- enqueueing ---------------------------------------------------------------------- */

/* What to run.  Strings and the payload are borrowed (copied by the calls below). */
typedef struct fsr_job_spec {
    const char *type;    /* required: 1..FSR_JOB_TYPE_MAX bytes of [a-z0-9_.-] */
    const void *payload; /* may be NULL when |payload_len| is 0 */
    size_t payload_len;  /* 0..FSR_JOB_PAYLOAD_MAX */
    /*
     * Attempts allowed, shown by GetJob until a worker starts the job, which then applies
     * its handler table's per-type limit (svc_worker/handlers.c).  0 means
     * FSR_JOB_DEFAULT_MAX_ATTEMPTS; at most FSR_JOB_ATTEMPTS_MAX.
     */
    int max_attempts;
    const char *request_id; /* NULL or "": none; longer than FSR_JOB_REQID_MAX is cut */
} fsr_job_spec;

/*
 * A job ready to be stored and published: its id, its row's values and its encoded
 * envelope.  Fixed size, no pointers: embed it, copy it.
 */
typedef struct fsr_job_draft {
    fsr_job_queue queue;
    char id[FSR_JOB_ID_LEN + 1];
    char type[FSR_JOB_TYPE_MAX + 1];
    int max_attempts;
    uint8_t envelope[FSR_JOB_ENVELOPE_MAX];
    size_t envelope_len;
    uint8_t payload[FSR_JOB_PAYLOAD_MAX];
    size_t payload_len;
    char request_id[FSR_JOB_REQID_MAX + 1];
} fsr_job_draft;

/*
 * Fills *|out| for a new job of queue |q|: a fresh id and the encoded envelope (attempt 1,
 * enqueued now).  Returns 0, or -EINVAL (NULL argument, unknown queue, a type that is empty,
 * too long or has characters outside [a-z0-9_.-], a payload over FSR_JOB_PAYLOAD_MAX,
 * max_attempts outside 0..FSR_JOB_ATTEMPTS_MAX); *|out| is then untouched.
 */
int fsr_job_prepare(fsr_job_queue q, const fsr_job_spec *spec, fsr_job_draft *out);

/*
 * Inserts the row of |d| (state QUEUED) inside the caller's transaction |conn|, so that a
 * service can create a job atomically with its own rows (an import's data, say).  Publish
 * it with fsr_job_publish() only after the transaction committed: a worker that sees the
 * envelope first finds no row and dead-letters it.  Same contract as fsr_pg_conn_query().
 */
int fsr_job_insert(fsr_pg_conn *conn, const fsr_job_draft *d, fsr_pg_cb cb, void *arg);

/*
 * XADDs the envelope of |d| to its queue's stream on |r|.  Same contract as
 * fsr_redis_command(); the reply is the new entry's id.  A job whose row exists but whose
 * envelope never made it (Redis down, process killed in between) is not lost: workers
 * re-publish QUEUED jobs nobody started within WORKER_REQUEUE_AFTER_MS.
 */
int fsr_job_publish(fsr_redis *r, const fsr_job_draft *d, fsr_redis_cb cb, void *arg);

/* The outcome of fsr_job_enqueue(), valid during the callback. */
typedef struct fsr_job_info {
    char id[FSR_JOB_ID_LEN + 1];
    const char *type;
    int max_attempts;
    int64_t created_s;  /* created_at: seconds since the epoch ... */
    int32_t created_ns; /* ... and nanoseconds */
    bool published;     /* the envelope reached the stream (else a worker re-publishes it) */
} fsr_job_info;

/*
 * Completion of fsr_job_enqueue().  |status| is 0 when the job's row is committed (the
 * job will run even if |info|->published is false), else the fsr_pg_query() status of the
 * INSERT and |info| is NULL.
 */
typedef void (*fsr_job_enqueue_cb)(const fsr_job_info *info, int status, void *arg);

/*
 * Creates a job of queue |q|: prepares it, INSERTs its row (state QUEUED) on |pg|, and once
 * that is committed XADDs its envelope on |redis|; then |cb| runs.  |redis| may be NULL
 * (the job is then published by a worker's requeue sweep).
 *
 * If this returns 0, |cb| runs exactly once, later, from the loop.  Returns 0, or -EINVAL
 * (as fsr_job_prepare(), or a NULL |pg| or |cb|), FSR_E_POOL or FSR_E_CLOSED as
 * fsr_pg_query() does (|cb| never runs).
 */
int fsr_job_enqueue(fsr_pg_pool *pg, fsr_redis *redis, fsr_job_queue q, const fsr_job_spec *spec,
                    fsr_job_enqueue_cb cb, void *arg);

/* Most jobs one fsr_job_enqueue_batch() call takes. */
#define FSR_JOB_BATCH_MAX 10000

/*
 * Completion of fsr_job_enqueue_batch().  |status| is 0 when every row is committed: then
 * |infos| holds |n| entries, in the order of the specs (each job runs even if its
 * |published| is false).  Otherwise |status| is the fsr_pg_query() status of the INSERT,
 * nothing was created, and |infos| is NULL.  |infos| is valid during the callback only.
 */
typedef void (*fsr_job_enqueue_batch_cb)(const fsr_job_info *infos, size_t n, int status,
                                         void *arg);

/*
 * Creates |n| jobs of queue |q| at once, one per spec of |specs| (1..FSR_JOB_BATCH_MAX):
 * ONE INSERT ... SELECT FROM unnest(...) of all rows (one round trip, one commit: all or
 * none), then, once committed, the XADDs of their envelopes sent back to back on |redis|
 * (one pipeline); |cb| runs when every reply is in.  |redis| may be NULL (a worker's
 * requeue sweep publishes them).  Several times the throughput of |n| fsr_job_enqueue()
 * calls: one commit instead of |n| (docs/PERFORMANCE.md, "Worker").
 *
 * If this returns 0, |cb| runs exactly once, later, from the loop.  Returns 0, or -EINVAL
 * (a NULL argument, |n| 0 or above FSR_JOB_BATCH_MAX, or any spec that fsr_job_prepare()
 * refuses: nothing is written), FSR_E_POOL or FSR_E_CLOSED as fsr_pg_query() does (|cb|
 * never runs).
 */
int fsr_job_enqueue_batch(fsr_pg_pool *pg, fsr_redis *redis, fsr_job_queue q,
                          const fsr_job_spec *specs, size_t n, fsr_job_enqueue_batch_cb cb,
                          void *arg);

/*
 * A jobs.v1.Job in |arena| for a just-enqueued job (state QUEUED, attempts 0), the reply
 * of an API call that starts a job (ImportPrices, an asynchronous Calculate).
 */
Jobs__V1__Job *fsr_job_info_to_pb(fsr_arena *arena, const fsr_job_info *info);

/* ---- GetJob -------------------------------------------------------------------------- */

/*
 * The jobs.v1.JobService/GetJob handler, for every service built on fsr_app_main():
 *
 *     static const jobs_v1_job_service_handlers jobs = { .get_job = fsr_jobs_get_job };
 *     jobs_v1_job_service_register(srv, &jobs);
 *
 * The id's owner digit names the queue.  A job of the serving service's own queue (from
 * fsr_app_config.env_prefix) is read from its Postgres table jobs; a job of another queue
 * is asked of the owning service over gRPC, at EQUITY_SERVICE_ADDR, FI_SERVICE_ADDR or
 * PORTFOLIO_SERVICE_ADDR (defaults localhost:8001, :8002, :8003; of a comma-separated list
 * the first), on a channel per loop thread, with the caller's deadline and request id; the owner's
 * answer (NOT_FOUND included) is passed through, UNAVAILABLE if it cannot be reached.  A forwarded
 * request is never forwarded again (metadata x-fsr-forwarded), so a misconfigured address cannot
 * loop.  INVALID_ARGUMENT (field "id") for a malformed id, NOT_FOUND for a UUID that is no
 * job id or no job.
 */
void fsr_jobs_get_job(fsr_call *call, const Jobs__V1__GetJobRequest *req);

/*
 * Builds a jobs.v1.Job in |arena| from a row of the columns FSR_JOBS_ROW_COLUMNS (in that
 * order) at |row| of |res|.  Returns NULL if the row does not have that shape.  Exposed for
 * tests and for services that list jobs.
 */
#define FSR_JOBS_ROW_COLUMNS                                                                       \
    "id::text, type, state, attempts, max_attempts, "                                              \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "                \
    "coalesce(to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), ''), "  \
    "coalesce(to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), ''), " \
    "result::text, coalesce(error, '')"
Jobs__V1__Job *fsr_jobs_row_to_pb(fsr_arena *arena, const fsr_pg_result *res, int row);

/*
 * The job state named |name| ("QUEUED", ...) as common.v1.JobState.Value, or 0
 * (JOB_STATE_UNSPECIFIED) for anything else.
 */
int fsr_job_state_from_name(const char *name);

#endif /* FSR_JOBS_H */
