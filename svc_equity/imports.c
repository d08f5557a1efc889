/* SPDX-License-Identifier: MIT */
/*
 * ImportPrices (POST /imports/prices): stores the CSV and enqueues the job that imports it.
 *
 * The file goes into price_imports (sql/004_price_imports.sql) and the job's row into jobs in
 * one transaction (fsr_job_prepare + fsr_job_insert, lib/jobs.c); the job's envelope is
 * XADDed to the equity queue only after COMMIT, so a worker never sees a job whose file is
 * not there.  If the XADD fails the job still runs: workers re-publish QUEUED jobs nobody
 * started (WORKER_REQUEUE_AFTER_MS).  The answer is the QUEUED job; the worker
 * (svc_worker/eq_import.c) parses, validates and upserts the rows and records the outcome
 * as the job's result (GET /jobs/{id}).  Here only the request itself is checked: the rows
 * are the job's business, so that one bad line never refuses the whole file.
 */
#include "equity.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "fsr/app.h"
#include "fsr/handler.h"
#include "fsr/jobs.h"
#include "fsr/log.h"
#include "fsr/pg.h"
#include "fsr/validate.h"

#include "equity_v1.fsr.h"

/* Largest CSV accepted (the gRPC message limit, 4 MiB by default, usually binds first). */
#define EQ_IMPORT_MAX_BYTES (16 * 1024 * 1024)
#define EQ_EXCHANGE_MAX     16
#define EQ_IMPORT_ATTEMPTS  3

static const fsr_pg_stmt eq_import_insert = {
    "eq_import_insert",
    "INSERT INTO price_imports (job_id, exchange, csv, bytes)"
    " VALUES ($1::uuid, $2, $3, $4::integer)",
};

typedef struct import_op {
    fsr_call *call;
    const Equity__V1__ImportPricesRequest *req;
    fsr_job_draft d;
    fsr_job_info info;
    int job_status, import_status;
    const char *import_sqlstate;
} import_op;

static void reply_job(import_op *op)
{
    Jobs__V1__Job *j = fsr_job_info_to_pb(fsr_call_arena(op->call), &op->info);
    equity_v1_equity_service_import_prices_reply(op->call, j);
}

static void on_published(const redisReply *reply, int status, void *arg)
{
    (void)reply;
    import_op *op = arg;
    op->info.published = status == 0;
    if (status != 0)
        FSR_WARN("import job %s: XADD failed (%s); a worker will re-publish it", op->d.id,
                 fsr_strerror(status));
    reply_job(op);
}

static void on_committed(const fsr_pg_result *res, void *arg)
{
    import_op *op = arg;
    fsr_call *call = op->call;
    int st = fsr_pg_result_status(res);
    if (op->import_status != 0 && op->import_sqlstate != NULL &&
        strncmp(op->import_sqlstate, "22", 2) == 0) {
        /* Data exceptions: bytes Postgres text cannot hold (a NUL, invalid UTF-8). */
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "csv", "must be UTF-8 text");
        return;
    }
    if (op->job_status != 0 || op->import_status != 0 || st != 0) {
        if (st == FSR_E_DB)
            FSR_ERROR("import prices: commit: SQLSTATE %s: %s", fsr_pg_result_sqlstate(res),
                      fsr_pg_result_message(res));
        fsr_call_fail_err(call,
                          op->job_status != 0      ? op->job_status
                          : op->import_status != 0 ? op->import_status
                                                   : st,
                          "import prices");
        return;
    }
    FSR_INFO("import job %s queued (%zu bytes of CSV)", op->d.id, strlen(op->req->csv));
    fsr_redis *redis = fsr_app_ctx_of(call)->redis;
    int rv = redis != NULL ? fsr_job_publish(redis, &op->d, on_published, op) : FSR_E_CLOSED;
    if (rv != 0) {
        FSR_WARN("import job %s: Redis unavailable (%s); a worker will re-publish it", op->d.id,
                 fsr_strerror(rv));
        reply_job(op);
    }
}

static void on_job_inserted(const fsr_pg_result *res, void *arg)
{
    import_op *op = arg;
    op->job_status = fsr_pg_result_status(res);
    if (op->job_status != 0) {
        FSR_ERROR("import prices: job insert: %s", fsr_pg_result_message(res));
        return;
    }
    const char *ts = fsr_pg_result_getvalue(res, 0, 0);
    if (ts != NULL)
        fsr_pg_timestamp_parse(ts, &op->info.created_s, &op->info.created_ns);
}

static void on_import_inserted(const fsr_pg_result *res, void *arg)
{
    import_op *op = arg;
    op->import_status = fsr_pg_result_status(res);
    if (op->import_status != 0) {
        op->import_sqlstate = fsr_call_printf(op->call, "%s", fsr_pg_result_sqlstate(res));
        /* A statement after a failed one fails too: log the first cause only. */
        if (op->job_status == 0)
            FSR_WARN("import prices: file insert: SQLSTATE %s: %s", op->import_sqlstate,
                     fsr_pg_result_message(res));
    }
}

static void on_rolled_back(const fsr_pg_result *res, void *arg)
{
    (void)res;
    import_op *op = arg;
    fsr_call_fail(op->call, FSR_UNAVAILABLE, "the equity database is unavailable");
}

static void on_begun(fsr_pg_conn *conn, int status, void *arg)
{
    import_op *op = arg;
    fsr_call *call = op->call;
    if (status != 0) {
        fsr_call_fail_err(call, status, "import prices");
        return;
    }
    const Equity__V1__ImportPricesRequest *req = op->req;
    const char *bytes = fsr_call_printf(call, "%zu", strlen(req->csv));
    const char *v[4] = { op->d.id, req->exchange[0] != '\0' ? req->exchange : NULL, req->csv,
                         bytes };
    /* The job's row first (the file references it); both pipelined, their callbacks run
     * before COMMIT's. */
    int rv = fsr_job_insert(conn, &op->d, on_job_inserted, op);
    if (rv == 0)
        rv = fsr_pg_conn_query(conn, &eq_import_insert, 4, v, on_import_inserted, op);
    if (rv != 0) {
        if (fsr_pg_tx_rollback(conn, on_rolled_back, op) != 0)
            fsr_call_fail(call, FSR_UNAVAILABLE, "the equity database is unavailable");
        return;
    }
    if (fsr_pg_tx_commit(conn, on_committed, op) != 0)
        fsr_call_fail(call, FSR_UNAVAILABLE, "the equity database is unavailable");
}

void eq_import_prices(fsr_call *call, const Equity__V1__ImportPricesRequest *req)
{
    size_t len = strlen(req->csv);
    if (len == 0 || strspn(req->csv, " \t\r\n") == len) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "csv",
                            "is required: symbol,date,open,high,low,close,volume lines");
        return;
    }
    if (len > EQ_IMPORT_MAX_BYTES) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "csv", "must be at most %d bytes",
                            EQ_IMPORT_MAX_BYTES);
        return;
    }
    if (fsr_check_text(call, "exchange", req->exchange, false, EQ_EXCHANGE_MAX, false) != 0)
        return;
    fsr_pg_pool *pool = fsr_app_ctx_of(call)->pg;
    if (pool == NULL) {
        fsr_call_fail(call, FSR_UNAVAILABLE, "the equity database is unavailable");
        return;
    }
    import_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->req = req;
    fsr_job_spec spec = {
        .type = EQ_IMPORT_JOB_TYPE,
        .max_attempts = EQ_IMPORT_ATTEMPTS,
        .request_id = fsr_call_request_id(call),
    };
    int rv = fsr_job_prepare(FSR_JOB_QUEUE_EQUITY, &spec, &op->d);
    if (rv != 0) {
        fsr_call_fail_err(call, rv, "import prices");
        return;
    }
    memcpy(op->info.id, op->d.id, sizeof(op->info.id));
    op->info.type = op->d.type;
    op->info.max_attempts = op->d.max_attempts;
    rv = fsr_pg_tx_begin(pool, on_begun, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "import prices");
}
