/* SPDX-License-Identifier: MIT */
/*
 * protoc-gen-fsr's stubs on the real runtime: every generated method table passes
 * fsr_server_add_service()'s startup check, and a generated server skeleton answers the
 * generated client stubs (unary callback and blocking forms, server streaming, NULL
 * handlers) over a real h2c connection on 127.0.0.1 (ephemeral port).
 */
#include "equity_v1.fsr.h"
#include "fixed_income_v1.fsr.h"
#include "grpc_health_v1.fsr.h"
#include "jobs_v1.fsr.h"
#include "portfolio_v1.fsr.h"

#include "fsr/log.h"
#include "fsr/loop.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static fsr_server *new_server(const char *port_file)
{
    fsr_server_config cfg = {
        .name = "stubs-test", .host = "127.0.0.1", .port = 0, .port_file = port_file, .threads = 1
    };
    fsr_server *srv = NULL;
    ck_assert_int_eq(fsr_server_new(&cfg, &srv), 0);
    return srv;
}

/* ---- the equity service under test --------------------------------------------------- */

static void on_get_quote(fsr_call *call, const Equity__V1__GetQuoteRequest *req)
{
    Equity__V1__Quote *q = fsr_call_alloc(call, sizeof(*q));
    equity__v1__quote__init(q);
    q->equity_id = fsr_call_printf(call, "%s", req->id);
    q->symbol = "AAPL";
    q->close = "121.03";
    q->change = 0.5;
    equity_v1_equity_service_get_quote_reply(call, q);
}

static void on_get_equity(fsr_call *call, const Equity__V1__GetEquityRequest *req)
{
    fsr_call_fail(call, FSR_NOT_FOUND, "no equity %s", req->id);
}

static void on_watch_quotes(fsr_call *call, const Equity__V1__WatchQuotesRequest *req)
{
    for (size_t i = 0; i < req->n_ids; i++) {
        Equity__V1__Quote q = EQUITY__V1__QUOTE__INIT;
        q.equity_id = req->ids[i];
        equity_v1_equity_service_watch_quotes_send(call, &q); // the client counts them
    }
    fsr_call_finish(call, FSR_OK, NULL);
}

static const equity_v1_equity_service_handlers equity_handlers = {
    .get_quote = on_get_quote,
    .get_equity = on_get_equity,
    .watch_quotes = on_watch_quotes,
};

/* ---- a served server per test -------------------------------------------------------- */

static char dir[64], port_file[128];
static fsr_server *srv;
static pthread_t server_thread;
static fsr_loop *loop;
static fsr_channel *ch;

static void *serve(void *arg)
{
    (void)arg;
    fsr_server_run(srv);
    return NULL;
}

static void start(void)
{
    fsr_log_init("stubs-test", "error", NULL); // stdout is TAP: only errors
    strcpy(dir, "/tmp/fsr-stubs-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(port_file, sizeof(port_file), "%s/port", dir);
    srv = new_server(port_file);
    ck_assert_int_eq(equity_v1_equity_service_register(srv, &equity_handlers), 0);
    ck_assert_int_eq(pthread_create(&server_thread, NULL, serve, NULL), 0);
    int port = 0;
    for (int i = 0; i < 500 && port == 0; i++) {
        FILE *f = fopen(port_file, "r");
        if (f == NULL || fscanf(f, "%d", &port) != 1)
            usleep(10000);
        if (f != NULL)
            fclose(f);
    }
    ck_assert_int_gt(port, 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    ck_assert_int_eq(fsr_loop_new(&loop), 0);
    ck_assert_int_eq(fsr_channel_new(loop, target, NULL, &ch), 0);
}

static void stop(void)
{
    fsr_channel_free(ch);
    fsr_loop_free(loop);
    fsr_server_stop(srv);
    pthread_join(server_thread, NULL);
    fsr_server_free(srv);
    unlink(port_file);
    rmdir(dir);
}

/* ---- tests --------------------------------------------------------------------------- */

START_TEST(test_stubs_server_tables_pass_startup_check)
{
    fsr_log_init("stubs-test", "error", NULL);
    fsr_server *s = new_server(NULL);
    // Every generated table, all handlers NULL: the runtime's row/method check passes.
    ck_assert_int_eq(equity_v1_equity_service_register(s, &equity_handlers), 0);
    ck_assert_int_eq(equity_v1_equity_analytics_service_register(
                         s, &(equity_v1_equity_analytics_service_handlers){ 0 }),
                     0);
    ck_assert_int_eq(fixed_income_v1_fixed_income_service_register(
                         s, &(fixed_income_v1_fixed_income_service_handlers){ 0 }),
                     0);
    ck_assert_int_eq(jobs_v1_job_service_register(s, &(jobs_v1_job_service_handlers){ 0 }), 0);
    ck_assert_int_eq(
        portfolio_v1_portfolio_service_register(s, &(portfolio_v1_portfolio_service_handlers){ 0 }),
        0);
    ck_assert_int_eq(
        portfolio_v1_client_service_register(s, &(portfolio_v1_client_service_handlers){ 0 }), 0);
    ck_assert_int_eq(portfolio_v1_portfolio_analytics_service_register(
                         s, &(portfolio_v1_portfolio_analytics_service_handlers){ 0 }),
                     0);
    // The server refuses a service twice (the health service is built in).
    ck_assert_int_eq(equity_v1_equity_service_register(s, &equity_handlers), FSR_E_CONFIG);
    ck_assert_int_eq(grpc_health_v1_health_register(s, &(grpc_health_v1_health_handlers){ 0 }),
                     FSR_E_CONFIG);
    fsr_server_free(s);
}
END_TEST

START_TEST(test_stubs_server_blocking_unary)
{
    Equity__V1__GetQuoteRequest req = EQUITY__V1__GET_QUOTE_REQUEST__INIT;
    req.id = "0b8e4d1c-5a43-4c1e-9b0a-6c2f1f0e9d11";
    Equity__V1__Quote *q = NULL;
    fsr_status st;
    char buf[256];
    fsr_call_opts opts = { .timeout_ms = 5000 };
    ck_assert_int_eq(
        equity_v1_equity_service_get_quote_blocking(ch, &req, &opts, &q, &st, buf, sizeof(buf)), 0);
    ck_assert_int_eq(st.code, FSR_OK);
    ck_assert_ptr_nonnull(q);
    ck_assert_str_eq(q->equity_id, req.id);
    ck_assert_str_eq(q->symbol, "AAPL");
    ck_assert_str_eq(q->close, "121.03");
    ck_assert_double_eq(q->change, 0.5);
    protobuf_c_message_free_unpacked(&q->base, NULL);

    // A failing handler: the status and message come through, no reply.
    Equity__V1__GetEquityRequest get = EQUITY__V1__GET_EQUITY_REQUEST__INIT;
    get.id = "nope";
    Equity__V1__Equity sentinel;
    Equity__V1__Equity *e = &sentinel; // must be overwritten
    ck_assert_int_eq(
        equity_v1_equity_service_get_equity_blocking(ch, &get, &opts, &e, &st, buf, sizeof(buf)),
        0);
    ck_assert_int_eq(st.code, FSR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(st.message, "no equity nope"));
    ck_assert_ptr_null(e);

    // A NULL handler: UNIMPLEMENTED.
    Equity__V1__ListEquitiesRequest list = EQUITY__V1__LIST_EQUITIES_REQUEST__INIT;
    Equity__V1__ListEquitiesResponse *lr = NULL;
    ck_assert_int_eq(equity_v1_equity_service_list_equities_blocking(ch, &list, &opts, &lr, &st,
                                                                     buf, sizeof(buf)),
                     0);
    ck_assert_int_eq(st.code, FSR_UNIMPLEMENTED);
    ck_assert_ptr_null(lr);
}
END_TEST

static struct {
    int results;
    fsr_code code;
    char equity_id[64];
    int msgs;
    char ids[4][8];
} got;

static void on_quote(const fsr_result *res, const Equity__V1__Quote *resp, void *arg)
{
    got.results++;
    got.code = res->status.code;
    if (resp != NULL)
        snprintf(got.equity_id, sizeof(got.equity_id), "%s", resp->equity_id);
    fsr_loop_stop(arg);
}

static void on_quote_msg(const Equity__V1__Quote *msg, void *arg)
{
    (void)arg;
    if (got.msgs < 4)
        snprintf(got.ids[got.msgs], sizeof(got.ids[0]), "%s", msg->equity_id);
    got.msgs++;
}

static void on_stream_done(const fsr_result *res, void *arg)
{
    got.results++;
    got.code = res->status.code;
    fsr_loop_stop(arg);
}

START_TEST(test_stubs_server_callback_unary)
{
    Equity__V1__GetQuoteRequest req = EQUITY__V1__GET_QUOTE_REQUEST__INIT;
    req.id = "e1";
    ck_assert_int_eq(equity_v1_equity_service_get_quote(ch, &req, NULL, on_quote, loop), 0);
    ck_assert_int_eq(got.results, 0); // never from inside the call
    fsr_loop_run(loop);
    ck_assert_int_eq(got.results, 1);
    ck_assert_int_eq(got.code, FSR_OK);
    ck_assert_str_eq(got.equity_id, "e1");
}
END_TEST

START_TEST(test_stubs_server_stream)
{
    Equity__V1__WatchQuotesRequest req = EQUITY__V1__WATCH_QUOTES_REQUEST__INIT;
    char *ids[] = { "a", "b", "c" };
    req.ids = ids;
    req.n_ids = 3;
    ck_assert_int_eq(
        equity_v1_equity_service_watch_quotes(ch, &req, NULL, on_quote_msg, on_stream_done, loop),
        0);
    fsr_loop_run(loop);
    ck_assert_int_eq(got.results, 1);
    ck_assert_int_eq(got.code, FSR_OK);
    ck_assert_int_eq(got.msgs, 3);
    ck_assert_str_eq(got.ids[0], "a");
    ck_assert_str_eq(got.ids[1], "b");
    ck_assert_str_eq(got.ids[2], "c");
}
END_TEST

static Suite *stubs_server_suite(void)
{
    Suite *s = suite_create("stubs_server");
    TCase *tc = tcase_create("register");
    tcase_add_test(tc, test_stubs_server_tables_pass_startup_check);
    suite_add_tcase(s, tc);

    tc = tcase_create("calls");
    tcase_add_checked_fixture(tc, start, stop);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_stubs_server_blocking_unary);
    tcase_add_test(tc, test_stubs_server_callback_unary);
    tcase_add_test(tc, test_stubs_server_stream);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stubs_server_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
