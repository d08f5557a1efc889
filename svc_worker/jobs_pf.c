/* SPDX-License-Identifier: MIT */
/*
 * pf.idempotency_cleanup: deletes the portfolio service's idempotency keys older than
 * WORKER_IDEMPOTENCY_RETENTION_MS (24 h by default), scheduled daily (scheduler.c).  A key
 * only has to outlive the client's retries of one request; past the retention the same
 * Idempotency-Key is simply a new request.  One DELETE in the job's transaction (the
 * created_at index finds the rows), so the deletion and the job's SUCCEEDED commit
 * together; the result reports how many rows went.
 */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>

#include "fsr/log.h"

static const fsr_pg_stmt st_idem_delete = {
    "wk_pf_idem_delete",
    "DELETE FROM idempotency_keys"
    " WHERE created_at < now() - $1::bigint * interval '1 millisecond'",
};

typedef struct cleanup_op {
    wk_job *job;
    uint32_t retention_ms;
} cleanup_op;

static void on_deleted(const fsr_pg_result *res, void *arg)
{
    cleanup_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        FSR_WARN("pf.idempotency_cleanup: %s", fsr_pg_result_message(res));
        wk_job_fail(op->job, "deleting expired idempotency keys failed");
        return;
    }
    long long n = (long long)fsr_pg_result_affected(res);
    FSR_INFO("pf.idempotency_cleanup: deleted %lld idempotency keys older than %u ms", n,
             op->retention_ms);
    char result[96];
    snprintf(result, sizeof(result), "{\"deleted\":%lld,\"retention_ms\":%u}", n, op->retention_ms);
    wk_job_succeed(op->job, result);
}

void wk_pf_idempotency_cleanup(wk_job *job)
{
    if (wk_cfg.queue->id != FSR_JOB_QUEUE_PORTFOLIO) {
        wk_job_fail(job, "pf.idempotency_cleanup runs on the portfolio queue only");
        return;
    }
    cleanup_op *op = wk_job_alloc(job, sizeof(*op));
    op->job = job;
    op->retention_ms = wk_ops_cfg.idempotency_retention_ms;
    char ms[16];
    snprintf(ms, sizeof(ms), "%u", op->retention_ms);
    const char *v[] = { ms };
    if (wk_job_query(job, &st_idem_delete, 1, v, on_deleted, op) != 0)
        wk_job_fail(job, "deleting expired idempotency keys failed");
}
