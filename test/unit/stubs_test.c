/* SPDX-License-Identifier: MIT */
/*
 * protoc-gen-fsr's output: the typed server skeletons (method table, trampolines), reply
 * helpers and client stubs, checked against fakes of the runtime calls they wrap (so no
 * socket and no server are needed), and the REST route table and OpenAPI document, checked
 * against the API contract (api_routes.txt, from API.md) and the descriptors.
 */
#include "equity_v1.fsr.h"
#include "fixed_income_v1.fsr.h"
#include "grpc_health_v1.fsr.h"
#include "jobs_v1.fsr.h"
#include "portfolio_v1.fsr.h"

#include "fsr/mem.h"
#include "fsr/route.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fakes of the runtime: record what the stubs pass ------------------------------- */

static struct {
    int add_service_calls;
    int add_service_rv;
    const fsr_service *added;
    const ProtobufCMessage *replied;
    const ProtobufCMessage *sent;
    int send_rv;
    /* the last channel call */
    int channel_rv;
    const char *path;
    const ProtobufCMessage *req;
    const ProtobufCMessageDescriptor *resp_desc;
    fsr_call_opts opts;
    bool had_opts;
    fsr_unary_cb cb;
    fsr_stream_msg_cb on_msg;
    void *arg;
    ProtobufCMessage *blocking_resp;
} fake;

void *fsr_xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        abort();
    return p;
}

int fsr_server_add_service(fsr_server *srv, const fsr_service *svc)
{
    (void)srv;
    fake.add_service_calls++;
    fake.added = svc;
    return fake.add_service_rv;
}

void fsr_call_reply(fsr_call *call, const ProtobufCMessage *resp)
{
    (void)call;
    fake.replied = resp;
}

int fsr_call_send(fsr_call *call, const ProtobufCMessage *msg)
{
    (void)call;
    fake.sent = msg;
    return fake.send_rv;
}

static void record(const char *path, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, const fsr_call_opts *opts)
{
    fake.path = path;
    fake.req = req;
    fake.resp_desc = resp_desc;
    fake.had_opts = opts != NULL;
    if (opts != NULL)
        fake.opts = *opts;
}

int fsr_channel_unary(fsr_channel *ch, const char *path, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *resp_desc, const fsr_call_opts *opts,
                      fsr_unary_cb cb, void *arg)
{
    (void)ch;
    record(path, req, resp_desc, opts);
    fake.cb = cb;
    fake.arg = arg;
    return fake.channel_rv;
}

int fsr_channel_server_stream(fsr_channel *ch, const char *path, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc,
                              const fsr_call_opts *opts, fsr_stream_msg_cb on_msg,
                              fsr_unary_cb on_done, void *arg)
{
    (void)ch;
    record(path, req, resp_desc, opts);
    fake.on_msg = on_msg;
    fake.cb = on_done;
    fake.arg = arg;
    return fake.channel_rv;
}

int fsr_channel_unary_blocking(fsr_channel *ch, const char *path, const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc,
                               const fsr_call_opts *opts, ProtobufCMessage **resp,
                               fsr_status *status, char *status_buf, size_t status_buf_len)
{
    (void)ch;
    (void)status_buf;
    (void)status_buf_len;
    record(path, req, resp_desc, opts);
    if (fake.channel_rv != 0)
        return fake.channel_rv;
    *resp = fake.blocking_resp;
    status->code = fake.blocking_resp != NULL ? FSR_OK : FSR_NOT_FOUND;
    status->message = NULL;
    status->field = NULL;
    return 0;
}

/* Stand-ins for opaque runtime objects: the stubs only pass them through. */
static int dummy_call_storage, dummy_channel_storage, dummy_server_storage;
#define CALL    ((fsr_call *)(void *)&dummy_call_storage)
#define CHANNEL ((fsr_channel *)(void *)&dummy_channel_storage)
#define SERVER  ((fsr_server *)(void *)&dummy_server_storage)

/* ---- typed handlers and callbacks that record their arguments ----------------------- */

static struct {
    int calls;
    fsr_call *call;
    const void *req;
    const void *resp;
    const fsr_result *res;
    void *arg;
} seen;

static void on_get_equity(fsr_call *call, const Equity__V1__GetEquityRequest *req)
{
    seen.calls++;
    seen.call = call;
    seen.req = req;
}

static void on_create_equity(fsr_call *call, const Equity__V1__CreateEquityRequest *req)
{
    seen.calls++;
    seen.call = call;
    seen.req = req;
}

static void on_watch_quotes(fsr_call *call, const Equity__V1__WatchQuotesRequest *req)
{
    seen.calls++;
    seen.call = call;
    seen.req = req;
}

static void on_quote(const fsr_result *res, const Equity__V1__Quote *resp, void *arg)
{
    seen.calls++;
    seen.res = res;
    seen.resp = resp;
    seen.arg = arg;
}

static void on_quote_msg(const Equity__V1__Quote *msg, void *arg)
{
    seen.calls++;
    seen.resp = msg;
    seen.arg = arg;
}

static void on_stream_done(const fsr_result *res, void *arg)
{
    seen.calls += 100;
    seen.res = res;
    seen.arg = arg;
}

static const fsr_method *row(const fsr_service *svc, const char *name)
{
    for (size_t i = 0; i < svc->n_methods; i++)
        if (strcmp(svc->methods[i].name, name) == 0)
            return &svc->methods[i];
    return NULL;
}

/* ---- server side ------------------------------------------------------------------- */

START_TEST(test_stubs_bind_table)
{
    equity_v1_equity_service_handlers h = {
        .get_equity = on_get_equity,
        .create_equity = on_create_equity,
        .watch_quotes = on_watch_quotes,
        .deadline_ms.get_equity = 200,
    };
    const fsr_service *svc = NULL;
    ck_assert_int_eq(equity_v1_equity_service_bind(&h, &svc), 0);
    ck_assert_ptr_nonnull(svc);

    // One row per descriptor method, in order, named exactly as in the proto: the check
    // fsr_server_add_service() makes at startup.
    const ProtobufCServiceDescriptor *d = &equity__v1__equity_service__descriptor;
    ck_assert_ptr_eq(svc->desc, d);
    ck_assert_uint_eq(svc->n_methods, d->n_methods);
    for (unsigned i = 0; i < d->n_methods; i++) {
        ck_assert_str_eq(svc->methods[i].name, d->methods[i].name);
        ck_assert_ptr_eq(protobuf_c_service_descriptor_get_method_by_name(d, svc->methods[i].name),
                         &d->methods[i]);
    }

    const fsr_method *get = row(svc, "GetEquity");
    ck_assert_ptr_nonnull(get->handler);
    ck_assert_uint_eq(get->flags, FSR_M_IDEMPOTENT | FSR_M_NO_SIDE_EFFECTS);
    ck_assert_uint_eq(get->deadline_ms, 200);
    const fsr_method *create = row(svc, "CreateEquity");
    ck_assert_ptr_nonnull(create->handler);
    ck_assert_uint_eq(create->flags, 0);
    ck_assert_uint_eq(create->deadline_ms, 0);
    ck_assert_uint_eq(row(svc, "DeleteEquity")->flags, FSR_M_IDEMPOTENT); // IDEMPOTENT
    ck_assert_uint_eq(row(svc, "WatchQuotes")->flags,
                      FSR_M_IDEMPOTENT | FSR_M_NO_SIDE_EFFECTS | FSR_M_SERVER_STREAM);
    ck_assert_ptr_nonnull(row(svc, "WatchQuotes")->handler);
    // NULL handlers leave the row's handler NULL: the runtime answers UNIMPLEMENTED.
    ck_assert_ptr_null(row(svc, "ListEquities")->handler);
    ck_assert_ptr_null(row(svc, "GetQuote")->handler);
}
END_TEST

START_TEST(test_stubs_trampoline_dispatch)
{
    equity_v1_equity_service_handlers h = { .get_equity = on_get_equity,
                                            .create_equity = on_create_equity };
    const fsr_service *svc;
    ck_assert_int_eq(equity_v1_equity_service_bind(&h, &svc), 0);

    Equity__V1__GetEquityRequest get = EQUITY__V1__GET_EQUITY_REQUEST__INIT;
    row(svc, "GetEquity")->handler(CALL, &get.base);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_ptr_eq(seen.call, CALL);
    ck_assert_ptr_eq(seen.req, &get);

    Equity__V1__CreateEquityRequest create = EQUITY__V1__CREATE_EQUITY_REQUEST__INIT;
    row(svc, "CreateEquity")->handler(CALL, &create.base);
    ck_assert_int_eq(seen.calls, 2);
    ck_assert_ptr_eq(seen.req, &create);
}
END_TEST

START_TEST(test_stubs_bind_copies_handlers)
{
    equity_v1_equity_service_handlers h = { .get_equity = on_get_equity };
    const fsr_service *svc;
    ck_assert_int_eq(equity_v1_equity_service_bind(&h, &svc), 0);
    // The caller's struct may go away or change: the bound set is a copy.
    h.get_equity = NULL;
    Equity__V1__GetEquityRequest get = EQUITY__V1__GET_EQUITY_REQUEST__INIT;
    row(svc, "GetEquity")->handler(CALL, &get.base);
    ck_assert_int_eq(seen.calls, 1);
}
END_TEST

START_TEST(test_stubs_bind_once_per_process)
{
    equity_v1_equity_service_handlers h = { .get_equity = on_get_equity };
    const fsr_service *a, *b;
    ck_assert_int_eq(equity_v1_equity_service_bind(&h, &a), 0);
    // The same set again (a second server): the same service.
    ck_assert_int_eq(equity_v1_equity_service_bind(&h, &b), 0);
    ck_assert_ptr_eq(a, b);
    // A different set (handler or deadline): refused, *out untouched.
    equity_v1_equity_service_handlers other = h;
    other.deadline_ms.get_equity = 5;
    const fsr_service *c = NULL;
    ck_assert_int_eq(equity_v1_equity_service_bind(&other, &c), FSR_E_CONFIG);
    ck_assert_ptr_null(c);
    other = (equity_v1_equity_service_handlers){ .create_equity = on_create_equity };
    ck_assert_int_eq(equity_v1_equity_service_bind(&other, &c), FSR_E_CONFIG);
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_stubs_register_adds_service)
{
    equity_v1_equity_service_handlers h = { .get_equity = on_get_equity };
    ck_assert_int_eq(equity_v1_equity_service_register(SERVER, &h), 0);
    ck_assert_int_eq(fake.add_service_calls, 1);
    ck_assert_ptr_eq(fake.added->desc, &equity__v1__equity_service__descriptor);
    // The server's verdict is passed through.
    fake.add_service_rv = FSR_E_CONFIG;
    grpc_health_v1_health_handlers hh = { 0 };
    ck_assert_int_eq(grpc_health_v1_health_register(SERVER, &hh), FSR_E_CONFIG);
    ck_assert_int_eq(fake.add_service_calls, 2);
    ck_assert_ptr_eq(fake.added->desc, &grpc__health__v1__health__descriptor);
    ck_assert_ptr_null(fake.added->methods[0].handler);
}
END_TEST

START_TEST(test_stubs_reply_helpers)
{
    Equity__V1__Equity e = EQUITY__V1__EQUITY__INIT;
    equity_v1_equity_service_get_equity_reply(CALL, &e);
    ck_assert_ptr_eq(fake.replied, &e.base);

    Equity__V1__Quote q = EQUITY__V1__QUOTE__INIT;
    fake.send_rv = FSR_E_CLOSED;
    ck_assert_int_eq(equity_v1_equity_service_watch_quotes_send(CALL, &q), FSR_E_CLOSED);
    ck_assert_ptr_eq(fake.sent, &q.base);
}
END_TEST

/* ---- client side ------------------------------------------------------------------- */

START_TEST(test_stubs_client_unary)
{
    Equity__V1__GetQuoteRequest req = EQUITY__V1__GET_QUOTE_REQUEST__INIT;
    int token;
    ck_assert_int_eq(equity_v1_equity_service_get_quote(CHANNEL, &req, NULL, on_quote, &token), 0);
    ck_assert_str_eq(fake.path, "/equity.v1.EquityService/GetQuote");
    ck_assert_str_eq(fake.path, EQUITY_V1_EQUITY_SERVICE_GET_QUOTE_PATH);
    ck_assert_ptr_eq(fake.req, &req.base);
    ck_assert_ptr_eq(fake.resp_desc, &equity__v1__quote__descriptor);
    ck_assert(fake.had_opts);
    ck_assert(fake.opts.idempotent); // NO_SIDE_EFFECTS
    ck_assert_int_eq(seen.calls, 0); // never from inside the call

    // The runtime completes the call: the typed callback gets the typed reply and |arg|.
    Equity__V1__Quote q = EQUITY__V1__QUOTE__INIT;
    fsr_result res = { .status = { .code = FSR_OK }, .response = &q.base };
    fake.cb(&res, fake.arg);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_ptr_eq(seen.res, &res);
    ck_assert_ptr_eq(seen.resp, &q);
    ck_assert_ptr_eq(seen.arg, &token);
}
END_TEST

START_TEST(test_stubs_client_opts)
{
    // Non-idempotent method: the caller's options are copied as they are...
    Equity__V1__CreateEquityRequest req = EQUITY__V1__CREATE_EQUITY_REQUEST__INIT;
    fsr_md md[] = { { "x-request-id", "abc", 3 } };
    fsr_call_opts opts = { .timeout_ms = 1500, .metadata = md, .n_metadata = 1 };
    ck_assert_int_eq(equity_v1_equity_service_create_equity(CHANNEL, &req, &opts, NULL, NULL), 0);
    ck_assert_str_eq(fake.path, "/equity.v1.EquityService/CreateEquity");
    ck_assert_int_eq(fake.opts.timeout_ms, 1500);
    ck_assert_ptr_eq(fake.opts.metadata, md);
    ck_assert_uint_eq(fake.opts.n_metadata, 1);
    ck_assert(!fake.opts.idempotent);
    // ...and a NULL |cb| is fine when the call completes.
    fsr_result res = { .status = { .code = FSR_UNAVAILABLE } };
    fake.cb(&res, fake.arg);

    // ...the caller may still ask for retries.
    opts.idempotent = true;
    ck_assert_int_eq(equity_v1_equity_service_create_equity(CHANNEL, &req, &opts, NULL, NULL), 0);
    ck_assert(fake.opts.idempotent);
    fake.cb(&res, fake.arg);

    // Idempotent method with explicit options: idempotent is OR-ed in, the rest kept.
    Equity__V1__GetEquityRequest get = EQUITY__V1__GET_EQUITY_REQUEST__INIT;
    opts.idempotent = false;
    ck_assert_int_eq(equity_v1_equity_service_get_equity(CHANNEL, &get, &opts, NULL, NULL), 0);
    ck_assert(fake.opts.idempotent);
    ck_assert_int_eq(fake.opts.timeout_ms, 1500);
    ck_assert(!opts.idempotent); // the caller's struct is not written
    fake.cb(&res, fake.arg);
}
END_TEST

START_TEST(test_stubs_client_error_no_callback)
{
    // A refused call (request too large) returns the error and never calls back (the
    // context is freed: ASan builds would report a leak).
    Equity__V1__GetQuoteRequest req = EQUITY__V1__GET_QUOTE_REQUEST__INIT;
    fake.channel_rv = FSR_E_TOO_LARGE;
    ck_assert_int_eq(equity_v1_equity_service_get_quote(CHANNEL, &req, NULL, on_quote, NULL),
                     FSR_E_TOO_LARGE);
    ck_assert_int_eq(seen.calls, 0);
}
END_TEST

START_TEST(test_stubs_client_failed_status)
{
    Equity__V1__GetQuoteRequest req = EQUITY__V1__GET_QUOTE_REQUEST__INIT;
    int token;
    ck_assert_int_eq(equity_v1_equity_service_get_quote(CHANNEL, &req, NULL, on_quote, &token), 0);
    fsr_result res = { .status = { .code = FSR_NOT_FOUND, .message = "no such equity" } };
    fake.cb(&res, fake.arg);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_ptr_null(seen.resp);
    ck_assert_int_eq(seen.res->status.code, FSR_NOT_FOUND);
}
END_TEST

START_TEST(test_stubs_client_blocking)
{
    FixedIncome__V1__BondAnalyticsRequest req = FIXED_INCOME__V1__BOND_ANALYTICS_REQUEST__INIT;
    FixedIncome__V1__BondAnalyticsResponse *out = NULL;
    FixedIncome__V1__BondAnalyticsResponse r = FIXED_INCOME__V1__BOND_ANALYTICS_RESPONSE__INIT;
    fsr_status st;
    char buf[64];

    fake.blocking_resp = &r.base;
    ck_assert_int_eq(fixed_income_v1_fixed_income_service_bond_analytics_blocking(
                         CHANNEL, &req, NULL, &out, &st, buf, sizeof(buf)),
                     0);
    ck_assert_str_eq(fake.path, "/fixed_income.v1.FixedIncomeService/BondAnalytics");
    ck_assert_ptr_eq(fake.resp_desc, &fixed_income__v1__bond_analytics_response__descriptor);
    ck_assert(fake.opts.idempotent);
    ck_assert_int_eq(st.code, FSR_OK);
    ck_assert_ptr_eq(out, &r);

    // A non-OK status: *resp is NULL.
    fake.blocking_resp = NULL;
    ck_assert_int_eq(fixed_income_v1_fixed_income_service_bond_analytics_blocking(
                         CHANNEL, &req, NULL, &out, &st, buf, sizeof(buf)),
                     0);
    ck_assert_int_eq(st.code, FSR_NOT_FOUND);
    ck_assert_ptr_null(out);

    // An error: returned, *resp untouched.
    out = &r;
    fake.channel_rv = FSR_E_TIMEOUT;
    ck_assert_int_eq(fixed_income_v1_fixed_income_service_bond_analytics_blocking(
                         CHANNEL, &req, NULL, &out, &st, buf, sizeof(buf)),
                     FSR_E_TIMEOUT);
    ck_assert_ptr_eq(out, &r);
}
END_TEST

START_TEST(test_stubs_client_server_stream)
{
    Equity__V1__WatchQuotesRequest req = EQUITY__V1__WATCH_QUOTES_REQUEST__INIT;
    int token;
    ck_assert_int_eq(equity_v1_equity_service_watch_quotes(CHANNEL, &req, NULL, on_quote_msg,
                                                           on_stream_done, &token),
                     0);
    ck_assert_str_eq(fake.path, "/equity.v1.EquityService/WatchQuotes");
    ck_assert_ptr_eq(fake.resp_desc, &equity__v1__quote__descriptor);
    ck_assert(fake.opts.idempotent);

    Equity__V1__Quote q1 = EQUITY__V1__QUOTE__INIT, q2 = EQUITY__V1__QUOTE__INIT;
    fake.on_msg(&q1.base, fake.arg);
    ck_assert_ptr_eq(seen.resp, &q1);
    ck_assert_ptr_eq(seen.arg, &token);
    fake.on_msg(&q2.base, fake.arg);
    ck_assert_ptr_eq(seen.resp, &q2);
    ck_assert_int_eq(seen.calls, 2);
    fsr_result res = { .status = { .code = FSR_OK } };
    fake.cb(&res, fake.arg);
    ck_assert_int_eq(seen.calls, 102);
    ck_assert_ptr_eq(seen.res, &res);
    ck_assert_ptr_eq(seen.arg, &token);
}
END_TEST

/* ---- routes and OpenAPI ------------------------------------------------------------ */

/* "/a/{id}/b/{x_y}" -> "/a/{}/b/{}": variable names may differ between API.md and protos. */
static void erase_vars(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = in; *p != '\0' && n + 3 < cap; p++) {
        out[n++] = *p;
        if (*p == '{') {
            while (*p != '\0' && *p != '}')
                p++;
            out[n++] = '}';
            if (*p == '\0')
                break;
        }
    }
    out[n] = '\0';
}

static const fsr_route *find_route(const char *verb, const char *pattern)
{
    char want[256], have[256];
    erase_vars(pattern, want, sizeof(want));
    for (size_t i = 0; i < fsr_n_routes; i++) {
        erase_vars(fsr_routes[i].pattern, have, sizeof(have));
        if (strcmp(fsr_routes[i].http_method, verb) == 0 && strcmp(have, want) == 0)
            return &fsr_routes[i];
    }
    return NULL;
}

START_TEST(test_stubs_routes_cover_api)
{
    const char *path = getenv("FSR_API_ROUTES");
    ck_assert_msg(path != NULL, "FSR_API_ROUTES not set");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[512];
    int n = 0, missing = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char verb[16], pattern[256];
        if (line[0] == '#' || sscanf(line, "%15s %255s", verb, pattern) != 2)
            continue;
        n++;
        if (find_route(verb, pattern) == NULL) {
            fprintf(stderr, "missing route: %s %s\n", verb, pattern);
            missing++;
        }
    }
    fclose(f);
    ck_assert_int_ge(n, 40);
    ck_assert_int_eq(missing, 0);
}
END_TEST

/* Every service with REST routes. */
static const ProtobufCServiceDescriptor *const services[] = {
    &equity__v1__equity_service__descriptor,
    &equity__v1__equity_analytics_service__descriptor,
    &fixed_income__v1__fixed_income_service__descriptor,
    &jobs__v1__job_service__descriptor,
    &portfolio__v1__portfolio_service__descriptor,
    &portfolio__v1__client_service__descriptor,
    &portfolio__v1__portfolio_analytics_service__descriptor,
};

START_TEST(test_stubs_routes_match_descriptors)
{
    ck_assert_uint_gt(fsr_n_routes, 0);
    for (size_t i = 0; i < fsr_n_routes; i++) {
        const fsr_route *r = &fsr_routes[i];
        const ProtobufCServiceDescriptor *sd = NULL;
        for (size_t k = 0; k < FSR_ARRAY_SIZE(services); k++)
            if (strcmp(services[k]->name, r->service) == 0)
                sd = services[k];
        ck_assert_msg(sd != NULL, "route %s %s: unknown service %s", r->http_method, r->pattern,
                      r->service);
        const ProtobufCMethodDescriptor *md =
            protobuf_c_service_descriptor_get_method_by_name(sd, r->method);
        ck_assert_msg(md != NULL, "%s has no method %s", r->service, r->method);
        char path[256];
        snprintf(path, sizeof(path), "/%s/%s", r->service, r->method);
        ck_assert_str_eq(r->path, path);
        ck_assert_ptr_eq(r->input, md->input);
        ck_assert_ptr_eq(r->output, md->output);
        ck_assert_msg(r->pattern[0] == '/', "%s", r->pattern);
        ck_assert(r->body != NULL && r->response_body != NULL);
        if (strcmp(r->http_method, "GET") == 0) {
            ck_assert_str_eq(r->body, "");
            // A GET is safe to retry: its method must say so in the proto.
            ck_assert_msg(r->flags & FSR_M_IDEMPOTENT, "GET %s: %s lacks idempotency_level",
                          r->pattern, r->path);
        }
        // Path variables name fields of the request.
        for (const char *p = strchr(r->pattern, '{'); p != NULL; p = strchr(p + 1, '{')) {
            char var[64];
            size_t n = strcspn(p + 1, "}=.");
            ck_assert_uint_lt(n, sizeof(var));
            memcpy(var, p + 1, n);
            var[n] = '\0';
            ck_assert_msg(protobuf_c_message_descriptor_get_field_by_name(r->input, var) != NULL,
                          "%s %s: %s has no field %s", r->http_method, r->pattern, r->input->name,
                          var);
        }
    }
    // Known rows.
    const fsr_route *q = find_route("GET", "/equities/{id}/quote");
    ck_assert_ptr_nonnull(q);
    ck_assert_str_eq(q->path, EQUITY_V1_EQUITY_SERVICE_GET_QUOTE_PATH);
    ck_assert_ptr_eq(q->input, &equity__v1__get_quote_request__descriptor);
    ck_assert_ptr_eq(q->output, &equity__v1__quote__descriptor);
    ck_assert_uint_eq(q->flags, FSR_M_IDEMPOTENT | FSR_M_NO_SIDE_EFFECTS);
    const fsr_route *ba = find_route("POST", "/bonds/analytics");
    ck_assert_ptr_nonnull(ba);
    ck_assert_str_eq(ba->body, "*");
    ck_assert_str_eq(ba->method, "BondAnalytics");
}
END_TEST

START_TEST(test_stubs_openapi)
{
    // The embedded document is openapi.json byte for byte.
    const char *path = getenv("FSR_OPENAPI_JSON");
    ck_assert_msg(path != NULL, "FSR_OPENAPI_JSON not set");
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *file = malloc(fsr_openapi_json_len + 2);
    size_t n = fread(file, 1, fsr_openapi_json_len + 1, f);
    fclose(f);
    ck_assert_uint_eq(n, fsr_openapi_json_len);
    ck_assert_uint_eq(strlen(fsr_openapi_json), fsr_openapi_json_len);
    ck_assert(memcmp(file, fsr_openapi_json, n) == 0);
    free(file);

    json_error_t err;
    json_t *doc = json_loads(fsr_openapi_json, 0, &err);
    ck_assert_msg(doc != NULL, "openapi.json: %s at line %d", err.text, err.line);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
    json_t *paths = json_object_get(doc, "paths");

    // Every route is an operation, under its path with variables as they appear.
    for (size_t i = 0; i < fsr_n_routes; i++) {
        char p[256], verb[16];
        size_t k = 0;
        for (const char *s = fsr_routes[i].pattern; *s != '\0' && k + 1 < sizeof(p); s++) {
            if (*s == '=') { // "{name=a/*}" -> "{name}"
                while (*s != '\0' && *s != '}')
                    s++;
                if (*s == '\0')
                    break;
            }
            p[k++] = *s;
        }
        p[k] = '\0';
        for (k = 0; fsr_routes[i].http_method[k] != '\0' && k + 1 < sizeof(verb); k++)
            verb[k] = (char)(fsr_routes[i].http_method[k] - 'A' + 'a');
        verb[k] = '\0';
        json_t *op = json_object_get(json_object_get(paths, p), verb);
        ck_assert_msg(op != NULL, "no operation %s %s", verb, p);
        ck_assert_ptr_nonnull(json_object_get(json_object_get(op, "responses"), "200"));
        const char *id = json_string_value(json_object_get(op, "operationId"));
        ck_assert_ptr_nonnull(id);
        ck_assert_msg(strstr(id, fsr_routes[i].method) != NULL, "%s", id);
    }
    // The public endpoints need no key; the others inherit the global bearer scheme.
    json_t *health = json_object_get(json_object_get(paths, "/health"), "get");
    ck_assert_ptr_nonnull(health);
    ck_assert_uint_eq(json_array_size(json_object_get(health, "security")), 0);
    ck_assert_ptr_nonnull(json_object_get(paths, "/metrics"));
    json_t *scheme = json_object_get(
        json_object_get(json_object_get(doc, "components"), "securitySchemes"), "bearerAuth");
    ck_assert_str_eq(json_string_value(json_object_get(scheme, "scheme")), "bearer");
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "security")), 1);

    // proto3 JSON mapping in the schemas: lowerCamelCase names, 64-bit integers as strings.
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *bar = json_object_get(json_object_get(schemas, "fixed_income.v1.BondAnalyticsResponse"),
                                  "properties");
    ck_assert_ptr_nonnull(json_object_get(bar, "modifiedDuration"));
    ck_assert_ptr_null(json_object_get(bar, "modified_duration"));
    json_t *error = json_object_get(json_object_get(schemas, "Error"), "properties");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(error, "code"), "type")),
                     "integer");
    json_decref(doc);
}
END_TEST

static void reset(void)
{
    memset(&fake, 0, sizeof(fake));
    memset(&seen, 0, sizeof(seen));
}

static Suite *stubs_suite(void)
{
    Suite *s = suite_create("stubs");
    TCase *tc = tcase_create("server");
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, test_stubs_bind_table);
    tcase_add_test(tc, test_stubs_trampoline_dispatch);
    tcase_add_test(tc, test_stubs_bind_copies_handlers);
    tcase_add_test(tc, test_stubs_bind_once_per_process);
    tcase_add_test(tc, test_stubs_register_adds_service);
    tcase_add_test(tc, test_stubs_reply_helpers);
    suite_add_tcase(s, tc);

    tc = tcase_create("client");
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, test_stubs_client_unary);
    tcase_add_test(tc, test_stubs_client_opts);
    tcase_add_test(tc, test_stubs_client_error_no_callback);
    tcase_add_test(tc, test_stubs_client_failed_status);
    tcase_add_test(tc, test_stubs_client_blocking);
    tcase_add_test(tc, test_stubs_client_server_stream);
    suite_add_tcase(s, tc);

    tc = tcase_create("routes");
    tcase_add_test(tc, test_stubs_routes_cover_api);
    tcase_add_test(tc, test_stubs_routes_match_descriptors);
    tcase_add_test(tc, test_stubs_openapi);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stubs_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
