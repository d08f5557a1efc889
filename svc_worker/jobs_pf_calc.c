/* SPDX-License-Identifier: MIT */
/*
 * pf.calculate: the asynchronous POST /portfolios/{id}/calculate (svc_portfolio/calc_async.c
 * enqueues it).  The job calls the portfolio service's own Calculate over gRPC
 * (PORTFOLIO_SERVICE_ADDR, the first of a comma-separated list; one channel per worker
 * thread, opened on first use and closed by wk_pf_calc_thread_dispose()) with async false
 * and the caller's identity from the payload as x-client-id / x-client-role metadata, so the
 * job sees exactly what the caller would have seen; the response's JSON becomes the job's
 * result.  No database effects: a repeat (at-least-once delivery) only computes again.
 *
 * Payload: {"portfolio_id", "as_of", "lookback_days" (0: default), "client_id", "role"}.
 */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fsr/client.h"
#include "fsr/json.h"
#include "fsr/log.h"
#include "fsr/mem.h"

#include "portfolio/v1/portfolio.pb-c.h"

#define CALC_TIMEOUT_MS 12000 /* below the type's 15 s handler timeout */

typedef struct calc_tls {
    fsr_loop *loop;
    fsr_channel *ch;
} calc_tls;

static __thread calc_tls *tls;

void wk_pf_calc_thread_dispose(void)
{
    calc_tls *t = tls;
    if (t == NULL)
        return;
    tls = NULL;
    fsr_channel_free(t->ch);
    free(t);
}

/* Shared with pf.snapshot (jobs_pf_snapshot.c); ops.h. */
fsr_channel *wk_pf_channel(fsr_loop *loop)
{
    if (tls == NULL) {
        tls = fsr_xcalloc(1, sizeof(*tls));
        tls->loop = loop;
    }
    if (tls->loop != loop)
        return NULL;
    if (tls->ch == NULL) {
        const char *list = getenv("PORTFOLIO_SERVICE_ADDR");
        if (list == NULL || list[0] == '\0')
            list = "localhost:8003";
        while (*list == ' ')
            list++;
        char target[256];
        size_t n = strcspn(list, ", ");
        snprintf(target, sizeof(target), "%.*s", (int)n, list);
        fsr_channel_opts opts = { .max_message_size = 64u << 20 };
        if (fsr_channel_new(loop, target, &opts, &tls->ch) != 0) {
            FSR_ERROR("portfolio jobs: bad PORTFOLIO_SERVICE_ADDR '%s'", target);
            return NULL;
        }
    }
    return tls->ch;
}

typedef struct calc_op {
    wk_job *job;
    char client_id[40];
    char role[16];
    fsr_md md[2];
} calc_op;

static void on_calculated(const fsr_result *res, void *arg)
{
    calc_op *op = arg;
    if (res->status.code != FSR_OK || res->response == NULL) {
        /* The service's own message is what the caller would have got (client-safe). */
        const char *msg = res->status.message != NULL ? res->status.message : "";
        FSR_WARN("pf.calculate %s: Calculate answered %s: %s", wk_job_id(op->job),
                 fsr_code_name(res->status.code), msg);
        char err[320];
        if (res->status.code == FSR_UNAVAILABLE || res->status.code == FSR_CANCELLED ||
            res->status.code == FSR_INTERNAL || res->status.code == FSR_UNKNOWN)
            snprintf(err, sizeof(err), "portfolio service unavailable (%s)",
                     fsr_code_name(res->status.code));
        else
            snprintf(err, sizeof(err), "%s: %.256s", fsr_code_name(res->status.code), msg);
        wk_job_fail(op->job, err);
        return;
    }
    char *json = NULL;
    fsr_json_error jerr;
    /* As the gateway renders the synchronous answer: defaults included. */
    const fsr_json_opts jopts = { .flags = FSR_JSON_EMIT_DEFAULTS };
    if (fsr_pb_to_json(res->response, &jopts, &json, NULL, &jerr) != 0) {
        FSR_WARN("pf.calculate %s: response not representable as JSON (%s: %s)", wk_job_id(op->job),
                 jerr.field, jerr.message);
        wk_job_fail(op->job, "the valuation could not be rendered as JSON");
        return;
    }
    wk_job_succeed(op->job, json);
    free(json);
}

void wk_pf_calculate(wk_job *job)
{
    if (wk_cfg.queue->id != FSR_JOB_QUEUE_PORTFOLIO) {
        wk_job_fail(job, "pf.calculate runs on the portfolio queue only");
        return;
    }
    size_t len = 0;
    const uint8_t *p = wk_job_payload(job, &len);
    json_error_t je;
    json_t *o = json_loadb((const char *)p, len, 0, &je);
    const char *id = o != NULL ? json_string_value(json_object_get(o, "portfolio_id")) : NULL;
    if (id == NULL) {
        json_decref(o);
        wk_job_fail(job, "bad pf.calculate payload");
        return;
    }
    const char *as_of = json_string_value(json_object_get(o, "as_of"));
    json_int_t lookback = json_integer_value(json_object_get(o, "lookback_days"));
    const char *client = json_string_value(json_object_get(o, "client_id"));
    const char *role = json_string_value(json_object_get(o, "role"));

    calc_op *op = wk_job_alloc(job, sizeof(*op));
    op->job = job;
    snprintf(op->client_id, sizeof(op->client_id), "%s", client != NULL ? client : "");
    snprintf(op->role, sizeof(op->role), "%s", role != NULL ? role : "");

    Portfolio__V1__CalculateRequest req;
    portfolio__v1__calculate_request__init(&req);
    Google__Protobuf__Int32Value lb;
    google__protobuf__int32_value__init(&lb);
    req.id = wk_job_alloc(job, strlen(id) + 1);
    memcpy(req.id, id, strlen(id) + 1);
    const char *a = as_of != NULL ? as_of : "";
    req.as_of = wk_job_alloc(job, strlen(a) + 1);
    memcpy(req.as_of, a, strlen(a) + 1);
    if (lookback > 0 && lookback <= 100000) {
        lb.value = (int32_t)lookback;
        req.lookback_days = &lb;
    }
    req.async = false;
    json_decref(o);

    size_t n_md = 0;
    if (op->client_id[0] != '\0' && op->role[0] != '\0') {
        op->md[n_md++] = (fsr_md){ "x-client-id", op->client_id, strlen(op->client_id) };
        op->md[n_md++] = (fsr_md){ "x-client-role", op->role, strlen(op->role) };
    }
    fsr_channel *ch = wk_pf_channel(wk_job_ctx(job)->loop);
    if (ch == NULL) {
        wk_job_fail(job, "portfolio service unavailable");
        return;
    }
    fsr_call_opts opts = {
        .timeout_ms = CALC_TIMEOUT_MS,
        .metadata = op->md,
        .n_metadata = n_md,
        .idempotent = true,
    };
    int rv =
        fsr_channel_unary(ch, "/portfolio.v1.PortfolioService/Calculate", &req.base,
                          &portfolio__v1__calculate_response__descriptor, &opts, on_calculated, op);
    if (rv != 0)
        wk_job_fail(job, "the valuation request could not be sent");
}
