/* SPDX-License-Identifier: MIT */
/*
 * pf.snapshot: brings every portfolio's stored daily snapshots (pf_snapshots,
 * svc_portfolio/sql/007_snapshots.sql) up to date through the day before the run date, so
 * that a GetPerformance request never has to compute history.  Scheduled daily
 * (scheduler.c, 01:00 UTC).
 *
 *   1. One query in the job's transaction lists the portfolios that have a ledger (id and
 *      first transaction date), with the number of rows pf_snapshots holds now.
 *   2. For each, the portfolio service's own GetPerformance over gRPC (the thread's channel,
 *      wk_pf_channel()) as an internal caller (no x-client metadata), `from` empty (the first
 *      transaction) and `to` the day before the run date; it computes the missing days and
 *      stores them in its own transaction.  WK_PF_SNAPSHOT_PARALLEL calls at a time.
 *      Portfolios whose ledger leaves fewer than two weekdays up to `to` (GetPerformance
 *      refuses those) are skipped.
 *   3. One more query counts the rows pf_snapshots holds afterwards.
 *
 * Idempotent: a re-run finds every day stored and stores nothing.  Progressive: the days
 * stored by an attempt that fails or times out stay, so its retry only does the rest.  The
 * attempt stops starting calls when its time is nearly up (the type's timeout, capped at
 * half of WORKER_VISIBILITY_TIMEOUT_MS) and fails, to be retried.
 *
 * Payload: the schedule's {"run_date": "YYYY-MM-DD", ...}; absent, today (UTC).
 * Result: {"to", "portfolios", "processed", "skipped", "failed", "errors" (the first
 * WK_PF_SNAPSHOT_ERRORS: portfolio_id, error), "days_before", "days_stored", "days_added"}.
 */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "fsr/client.h"
#include "fsr/log.h"

#include "portfolio/v1/portfolio.pb-c.h"

#define WK_PF_SNAPSHOT_PARALLEL 4     /* GetPerformance calls in flight */
#define WK_PF_SNAPSHOT_ERRORS   5     /* errors kept in the result */
#define WK_PF_SNAPSHOT_CALL_MS  25000 /* one GetPerformance at most (the service's is 20 s) */
#define DAY_S                   86400
#define UUID_LEN                36

static const fsr_pg_stmt st_snap_list = {
    "wk_pf_snap_list",
    "SELECT p.id::text, min(t.date)::text, (SELECT count(*) FROM pf_snapshots)"
    " FROM portfolios p JOIN transactions t ON t.portfolio_id = p.id"
    " GROUP BY p.id ORDER BY p.id",
};

static const fsr_pg_stmt st_snap_count = {
    "wk_pf_snap_count",
    "SELECT count(*) FROM pf_snapshots",
};

typedef struct snap_op {
    wk_job *job;
    char to[11];    /* the last day to store */
    int64_t to_day; /* ... as days since the epoch */
    char (*ids)[UUID_LEN + 1];
    size_t n, next;   /* portfolios to call; the next one to start */
    size_t in_flight; /* calls not answered yet */
    size_t listed, processed, skipped, failed;
    long long days_before;
    int64_t stop_us;  /* start no call after this (fsr_now_us clock) */
    uint32_t call_ms; /* each call's deadline */
    bool out_of_time; /* stopped starting calls: the attempt fails */
    bool send_failed; /* a call could not be sent: stop starting more */
    json_t *errors;
} snap_op;

static int64_t day_of(const char *s)
{
    int y, m, d, used = 0;
    if (s == NULL || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &used) != 3 || used != 10 || m < 1 ||
        m > 12 || d < 1 || d > 31)
        return INT64_MIN;
    struct tm tm = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d };
    time_t t = timegm(&tm);
    if (tm.tm_mday != d || tm.tm_mon != m - 1)
        return INT64_MIN; /* 2026-02-30 normalised into March */
    return (int64_t)t / DAY_S;
}

static bool weekday(int64_t day)
{
    int64_t w = ((day % 7) + 7 + 3) % 7; /* 1970-01-01 was a Thursday: 0 = Monday */
    return w < 5;
}

/* GetPerformance refuses a range with fewer than two weekdays. */
static bool two_weekdays(int64_t from, int64_t to)
{
    int n = 0;
    for (int64_t d = from; d <= to && n < 2; d++)
        n += weekday(d) ? 1 : 0;
    return n >= 2;
}

static void add_error(snap_op *op, const char *id, const char *msg)
{
    op->failed++;
    if (json_array_size(op->errors) < WK_PF_SNAPSHOT_ERRORS)
        json_array_append_new(op->errors,
                              json_pack("{s:s, s:s}", "portfolio_id", id, "error", msg));
}

static void on_counted(const fsr_pg_result *res, void *arg)
{
    snap_op *op = arg;
    json_t *errors = op->errors;
    op->errors = NULL;
    if (fsr_pg_result_status(res) != 0 || fsr_pg_result_rows(res) != 1) {
        FSR_WARN("pf.snapshot %s: counting snapshots: %s", wk_job_id(op->job),
                 fsr_pg_result_message(res));
        json_decref(errors);
        wk_job_fail(op->job, "counting the stored snapshots failed");
        return;
    }
    long long after = strtoll(fsr_pg_result_getvalue(res, 0, 0), NULL, 10);
    FSR_INFO("pf.snapshot %s: through %s: %zu portfolios, %zu processed, %zu skipped, %zu failed,"
             " %lld days stored (%lld added)",
             wk_job_id(op->job), op->to, op->listed, op->processed, op->skipped, op->failed, after,
             after - op->days_before);
    json_t *r =
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I}", "to", op->to, "portfolios",
                  (json_int_t)op->listed, "processed", (json_int_t)op->processed, "skipped",
                  (json_int_t)op->skipped, "failed", (json_int_t)op->failed, "errors", errors,
                  "days_before", (json_int_t)op->days_before, "days_stored", (json_int_t)after,
                  "days_added", (json_int_t)(after - op->days_before));
    char *text = r != NULL ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    if (text == NULL) {
        wk_job_fail(op->job, "the result could not be rendered");
        return;
    }
    wk_job_succeed(op->job, text);
    free(text);
}

/* Every call answered: fails on lost time, else counts the rows and succeeds. */
static void finish(snap_op *op)
{
    if (op->out_of_time || op->send_failed) {
        char err[160];
        snprintf(err, sizeof(err),
                 "%s after %zu of %zu portfolios (the days stored are kept; a retry resumes)",
                 op->out_of_time ? "out of time" : "the portfolio service could not be called",
                 op->processed + op->failed, op->n);
        json_decref(op->errors);
        op->errors = NULL;
        wk_job_fail(op->job, err);
        return;
    }
    if (wk_job_query(op->job, &st_snap_count, 0, NULL, on_counted, op) != 0) {
        json_decref(op->errors);
        op->errors = NULL;
        wk_job_fail(op->job, "counting the stored snapshots failed");
    }
}

typedef struct snap_call {
    snap_op *op;
    size_t idx;
} snap_call;

static void start_calls(snap_op *op);

static void on_performance(const fsr_result *res, void *arg)
{
    snap_call *c = arg;
    snap_op *op = c->op;
    const char *id = op->ids[c->idx];
    free(c);
    op->in_flight--;
    if (res->status.code == FSR_OK && res->response != NULL) {
        op->processed++;
    } else {
        const char *msg = res->status.message != NULL ? res->status.message : "";
        FSR_WARN("pf.snapshot %s: GetPerformance %s answered %s: %s", wk_job_id(op->job), id,
                 fsr_code_name(res->status.code), msg);
        char err[320];
        snprintf(err, sizeof(err), "%s: %.256s", fsr_code_name(res->status.code), msg);
        add_error(op, id, err);
        /* The channel closing (worker shutdown): start nothing more. */
        if (res->status.code == FSR_CANCELLED)
            op->send_failed = true;
    }
    start_calls(op);
}

/* Keeps WK_PF_SNAPSHOT_PARALLEL calls in flight; finishes once all are answered. */
static void start_calls(snap_op *op)
{
    while (op->next < op->n && op->in_flight < WK_PF_SNAPSHOT_PARALLEL && !op->send_failed) {
        if (fsr_now_us() > op->stop_us) {
            op->out_of_time = true;
            break;
        }
        fsr_channel *ch = wk_pf_channel(wk_job_ctx(op->job)->loop);
        if (ch == NULL) {
            op->send_failed = true;
            break;
        }
        size_t idx = op->next++;
        Portfolio__V1__GetPerformanceRequest req;
        portfolio__v1__get_performance_request__init(&req);
        req.id = op->ids[idx];
        req.from = (char *)"";
        req.to = op->to;
        fsr_call_opts opts = { .timeout_ms = op->call_ms, .idempotent = true };
        snap_call *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            op->send_failed = true;
            break;
        }
        c->op = op;
        c->idx = idx;
        op->in_flight++;
        int rv = fsr_channel_unary(ch, "/portfolio.v1.PortfolioService/GetPerformance", &req.base,
                                   &portfolio__v1__performance_response__descriptor, &opts,
                                   on_performance, c);
        if (rv != 0) {
            /* Not sent, so no callback comes. */
            op->in_flight--;
            free(c);
            op->send_failed = true;
            break;
        }
    }
    if (op->in_flight == 0 && (op->next == op->n || op->out_of_time || op->send_failed))
        finish(op);
}

static void on_listed(const fsr_pg_result *res, void *arg)
{
    snap_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        FSR_WARN("pf.snapshot %s: listing portfolios: %s", wk_job_id(op->job),
                 fsr_pg_result_message(res));
        wk_job_fail(op->job, "listing the portfolios failed");
        return;
    }
    size_t rows = (size_t)fsr_pg_result_rows(res);
    op->listed = rows;
    op->ids = wk_job_alloc(op->job, (rows > 0 ? rows : 1) * sizeof(*op->ids));
    for (size_t i = 0; i < rows; i++) {
        const char *id = fsr_pg_result_getvalue(res, (int)i, 0);
        int64_t first = day_of(fsr_pg_result_getvalue(res, (int)i, 1));
        if (i == 0)
            op->days_before = strtoll(fsr_pg_result_getvalue(res, 0, 2), NULL, 10);
        if (strlen(id) != UUID_LEN || first == INT64_MIN || !two_weekdays(first, op->to_day)) {
            op->skipped++;
            continue;
        }
        memcpy(op->ids[op->n++], id, UUID_LEN + 1);
    }
    op->errors = json_array();
    start_calls(op);
}

void wk_pf_snapshot(wk_job *job)
{
    if (wk_cfg.queue->id != FSR_JOB_QUEUE_PORTFOLIO) {
        wk_job_fail(job, "pf.snapshot runs on the portfolio queue only");
        return;
    }
    size_t len = 0;
    const uint8_t *p = wk_job_payload(job, &len);
    int64_t run_day = fsr_wall_us() / 1000000 / DAY_S;
    json_error_t je;
    json_t *o = len > 0 ? json_loadb((const char *)p, len, 0, &je) : NULL;
    const char *rd = o != NULL ? json_string_value(json_object_get(o, "run_date")) : NULL;
    if (rd != NULL) {
        run_day = day_of(rd);
        if (run_day == INT64_MIN) {
            json_decref(o);
            wk_job_fail(job, "bad pf.snapshot payload: run_date must be \"YYYY-MM-DD\"");
            return;
        }
    }
    json_decref(o);

    snap_op *op = wk_job_alloc(job, sizeof(*op));
    op->job = job;
    op->to_day = run_day - 1;
    time_t t = (time_t)(op->to_day * DAY_S);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(op->to, sizeof(op->to), "%Y-%m-%d", &tm);
    /* The attempt's time: the type's timeout capped at the lease (half the visibility). */
    const wk_job_type *jt = wk_job_type_find("pf.snapshot");
    uint32_t budget = jt != NULL ? jt->timeout_ms : 60000;
    if (wk_cfg.visibility_ms / 2 < budget)
        budget = wk_cfg.visibility_ms / 2;
    op->call_ms = budget / 2 < WK_PF_SNAPSHOT_CALL_MS ? budget / 2 : WK_PF_SNAPSHOT_CALL_MS;
    op->stop_us = fsr_now_us() + (int64_t)(budget - op->call_ms) * 1000;
    if (wk_job_query(job, &st_snap_list, 0, NULL, on_listed, op) != 0)
        wk_job_fail(job, "listing the portfolios failed");
}
