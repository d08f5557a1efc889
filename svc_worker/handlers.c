/* SPDX-License-Identifier: MIT */
/*
 * The handler table: one row per job type (name, handler, attempts, timeout, flags), like
 * redis' command table.  A new job type is one handler and one row here.
 */
#include "worker.h"
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/log.h"

/* noop: does nothing and succeeds; the benchmark's job. */
static void wk_noop(wk_job *job)
{
    wk_job_succeed(job, NULL);
}

/* test.fail: fails every attempt, so it ends DEAD in the dead-letter stream. */
static void wk_test_fail(wk_job *job)
{
    wk_job_fail(job, "test.fail always fails");
}

/*
 * test.effect: inserts a row keyed by the job id into test_job_effects (a table only the
 * tests create) inside the job's transaction, which proves effects apply exactly once.  The
 * payload is optional text "key=value;...":
 *
 *   sleep_ms=N     then sleeps N ms inside the transaction (pg_sleep), for a kill mid-job
 *   sleep_until=K  ... only while the attempt is below K (default: every attempt)
 *   fail_until=K   fails attempts below K *after* inserting, so their rows must roll back
 */
typedef struct effect_args {
    int sleep_ms;
    int sleep_until;
    int fail_until;
} effect_args;

static const fsr_pg_stmt wk_effect_insert = {
    "wk_test_effect_insert",
    "INSERT INTO test_job_effects (job_id, attempt, worker) VALUES ($1::uuid, $2::integer, $3)",
};

static void effect_parse(const uint8_t *p, size_t len, effect_args *a)
{
    char buf[FSR_JOB_PAYLOAD_MAX + 1];
    memcpy(buf, p, len);
    buf[len] = '\0';
    char *save = NULL;
    for (char *tok = strtok_r(buf, ";", &save); tok != NULL; tok = strtok_r(NULL, ";", &save)) {
        int v;
        if (sscanf(tok, "sleep_ms=%d", &v) == 1)
            a->sleep_ms = v;
        else if (sscanf(tok, "sleep_until=%d", &v) == 1)
            a->sleep_until = v;
        else if (sscanf(tok, "fail_until=%d", &v) == 1)
            a->fail_until = v;
    }
}

static void on_effect_slept(const fsr_pg_result *res, void *arg)
{
    wk_job *job = arg;
    if (fsr_pg_result_status(res) != 0) {
        wk_job_fail(job, "test.effect: sleep failed");
        return;
    }
    wk_job_succeed(job, "{\"effect\":\"inserted\"}");
}

static void on_effect_inserted(const fsr_pg_result *res, void *arg)
{
    wk_job *job = arg;
    effect_args a = { 0 };
    size_t len;
    const uint8_t *p = wk_job_payload(job, &len);
    effect_parse(p, len, &a);
    if (fsr_pg_result_status(res) != 0) {
        FSR_WARN("test.effect %s: insert failed: %s", wk_job_id(job), fsr_pg_result_message(res));
        wk_job_fail(job, "test.effect: insert failed");
        return;
    }
    int attempt = wk_job_attempt(job);
    if (a.fail_until > 0 && attempt < a.fail_until) {
        wk_job_fail(job, "test.effect: failing on purpose");
        return;
    }
    if (a.sleep_ms > 0 && (a.sleep_until == 0 || attempt < a.sleep_until)) {
        char ms[16];
        snprintf(ms, sizeof(ms), "%d", a.sleep_ms);
        const char *v[] = { ms };
        if (wk_job_exec(job, "SELECT pg_sleep($1::float8 / 1000)", 1, v, on_effect_slept, job) != 0)
            wk_job_fail(job, "test.effect: cannot sleep");
        return;
    }
    wk_job_succeed(job, "{\"effect\":\"inserted\"}");
}

static void wk_test_effect(wk_job *job)
{
    char attempt[16];
    snprintf(attempt, sizeof(attempt), "%d", wk_job_attempt(job));
    const char *v[] = { wk_job_id(job), attempt, wk_job_worker(job) };
    if (wk_job_query(job, &wk_effect_insert, 3, v, on_effect_inserted, job) != 0)
        wk_job_fail(job, "test.effect: cannot insert");
}

/* clang-format off */
const wk_job_type wk_job_types[] = {
    /* name                   handler              attempts  timeout   flags */
    { "noop",                 wk_noop,             3,        1000,     WK_T_BATCH },
    { "test.fail",            wk_test_fail,        3,        1000,     WK_T_BATCH | WK_T_TEST },
    { "test.effect",          wk_test_effect,      5,        10000,    WK_T_BATCH | WK_T_TEST },
    { "equity.import_prices", wk_eq_import_prices, 3,        60000,    0 },
    /* scheduled daily (scheduler.c); ops.h */
    { "fi.eod_reprice",       wk_fi_eod_reprice,   3,        15000,    0 },
    { "pf.idempotency_cleanup", wk_pf_idempotency_cleanup, 3,  15000,    0 },
    { "pf.calculate",         wk_pf_calculate,     3,        15000,    0 },
    /* many portfolios: the timeout is capped at WORKER_VISIBILITY_TIMEOUT_MS / 2 */
    { "pf.snapshot",          wk_pf_snapshot,      5,        600000,   0 },
};
/* clang-format on */
const size_t wk_job_types_count = FSR_ARRAY_SIZE(wk_job_types);

static void wk_unknown(wk_job *job)
{
    /* Maybe a newer worker knows it (rolling deploy): fail and let the retries find it. */
    FSR_WARN("job %s: no handler for type '%s'", wk_job_id(job), wk_job_type_name(job));
    wk_job_fail(job, "unknown job type");
}

const wk_job_type wk_unknown_job_type = {
    "unknown", wk_unknown, FSR_JOB_DEFAULT_MAX_ATTEMPTS, 1000, WK_T_BATCH,
};

const wk_job_type *wk_job_type_find(const char *name)
{
    for (size_t i = 0; i < wk_job_types_count; i++) {
        const wk_job_type *t = &wk_job_types[i];
        if (strcmp(t->name, name) == 0)
            return (t->flags & WK_T_TEST) && !wk_cfg.test_jobs ? NULL : t;
    }
    return NULL;
}
