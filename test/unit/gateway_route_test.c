/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for rest_gateway/: route compilation and matching (precedence, 405/Allow,
 * percent-decoding), request building (body, query, path variables, Content-Type), the
 * error body with google.rpc details, and the HTTP status of every gRPC code.
 */
#include "gateway.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "equity/v1/equity.pb-c.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

/* A small table of our own: precedence cases the real table may not have. */
static const fsr_route test_routes[] = {
    { "GET", "/bonds/{id}", "", "", "fixed_income.v1.FixedIncomeService", "GetBond",
      "/fixed_income.v1.FixedIncomeService/GetBond", &equity__v1__get_equity_request__descriptor,
      &equity__v1__equity__descriptor, FSR_M_IDEMPOTENT },
    { "POST", "/bonds/analytics", "*", "", "fixed_income.v1.FixedIncomeService", "BondAnalytics",
      "/fixed_income.v1.FixedIncomeService/BondAnalytics",
      &equity__v1__create_equity_request__descriptor, &equity__v1__equity__descriptor, 0 },
    { "GET", "/bonds/analytics", "", "", "fixed_income.v1.FixedIncomeService", "Other",
      "/fixed_income.v1.FixedIncomeService/Other", &equity__v1__get_equity_request__descriptor,
      &equity__v1__equity__descriptor, 0 },
    { "PATCH", "/bonds/{id}", "*", "", "fixed_income.v1.FixedIncomeService", "UpdateBond",
      "/fixed_income.v1.FixedIncomeService/UpdateBond",
      &equity__v1__update_equity_request__descriptor, &equity__v1__equity__descriptor, 0 },
    { "DELETE", "/portfolios/{id}/constituents/{constituent_id}", "", "",
      "portfolio.v1.PortfolioService", "RemoveConstituent",
      "/portfolio.v1.PortfolioService/RemoveConstituent",
      &equity__v1__get_equity_request__descriptor, &equity__v1__equity__descriptor, 0 },
    { "GET", "/{id}/x/{id2}", "", "", "jobs.v1.JobService", "A", "/jobs.v1.JobService/A",
      &equity__v1__get_equity_request__descriptor, &equity__v1__equity__descriptor, 0 },
    { "GET", "/a/{id}/{id2}", "", "", "jobs.v1.JobService", "B", "/jobs.v1.JobService/B",
      &equity__v1__get_equity_request__descriptor, &equity__v1__equity__descriptor, 0 },
    /* Request-building cases with real descriptors. */
    { "GET", "/equities", "", "", "equity.v1.EquityService", "ListEquities",
      "/equity.v1.EquityService/ListEquities", &equity__v1__list_equities_request__descriptor,
      &equity__v1__list_equities_response__descriptor, FSR_M_IDEMPOTENT },
    { "POST", "/equities", "*", "", "equity.v1.EquityService", "CreateEquity",
      "/equity.v1.EquityService/CreateEquity", &equity__v1__create_equity_request__descriptor,
      &equity__v1__equity__descriptor, 0 },
    { "PATCH", "/equities/{id}", "*", "", "equity.v1.EquityService", "UpdateEquity",
      "/equity.v1.EquityService/UpdateEquity", &equity__v1__update_equity_request__descriptor,
      &equity__v1__equity__descriptor, 0 },
    { "GET", "/batch", "", "", "equity.v1.EquityService", "BatchQuotes",
      "/equity.v1.EquityService/BatchQuotes", &equity__v1__batch_quotes_request__descriptor,
      &equity__v1__batch_quotes_response__descriptor, FSR_M_IDEMPOTENT },
    { "POST", "/lots/{lot_size}", "*", "", "equity.v1.EquityService", "CreateEquity",
      "/equity.v1.EquityService/CreateEquity", &equity__v1__create_equity_request__descriptor,
      &equity__v1__equity__descriptor, 0 },
    { "GET", "/equities/{id}/prices", "", "", "equity.v1.EquityService", "ListPrices",
      "/equity.v1.EquityService/ListPrices", &equity__v1__list_prices_request__descriptor,
      &equity__v1__list_prices_response__descriptor, FSR_M_IDEMPOTENT },
};
enum {
    R_GET_BOND,
    R_POST_ANALYTICS,
    R_GET_ANALYTICS,
    R_PATCH_BOND,
    R_DEL_CONSTITUENT,
    R_VAR_FIRST,
    R_LIT_FIRST,
    R_LIST_EQ,
    R_CREATE_EQ,
    R_UPDATE_EQ,
    R_BATCH,
    R_LOTS,
    R_PRICES,
};

static gw_router *router;
static fsr_arena arena;

static void setup(void)
{
    fsr_arena_init(&arena);
    ck_assert_int_eq(gw_router_new(test_routes, FSR_ARRAY_SIZE(test_routes), &router), 0);
}

static void teardown(void)
{
    gw_router_free(router);
    router = NULL;
    fsr_arena_dispose(&arena);
}

static int match(const char *method, const char *path, gw_match *m)
{
    memset(m, 0, sizeof(*m));
    return gw_router_match(router, method, path, &arena, m);
}

/* ---- matching --------------------------------------------------------------------------- */

START_TEST(test_gateway_route_literal_beats_variable)
{
    gw_match m;
    ck_assert_int_eq(match("POST", "/bonds/analytics", &m), 0);
    ck_assert_uint_eq(m.route, R_POST_ANALYTICS);
    ck_assert_uint_eq(m.n_vars, 0);
    ck_assert_int_eq(match("GET", "/bonds/analytics", &m), 0);
    ck_assert_uint_eq(m.route, R_GET_ANALYTICS);
    /* Another id goes to the variable route. */
    ck_assert_int_eq(match("GET", "/bonds/b-42", &m), 0);
    ck_assert_uint_eq(m.route, R_GET_BOND);
    ck_assert_uint_eq(m.n_vars, 1);
    ck_assert_str_eq(m.vars[0].name, "id");
    ck_assert_str_eq(m.vars[0].value, "b-42");
    /* Earliest literal wins: "/a/x/y" fits both /{id}/x/{id2} and /a/{id}/{id2}. */
    ck_assert_int_eq(match("GET", "/a/x/y", &m), 0);
    ck_assert_uint_eq(m.route, R_LIT_FIRST);
    ck_assert_str_eq(m.vars[0].value, "x");
    ck_assert_str_eq(m.vars[1].value, "y");
    ck_assert_int_eq(match("GET", "/b/x/y", &m), 0);
    ck_assert_uint_eq(m.route, R_VAR_FIRST);
    ck_assert_str_eq(m.vars[0].name, "id");
    ck_assert_str_eq(m.vars[0].value, "b");
    ck_assert_str_eq(m.vars[1].name, "id2");
    ck_assert_str_eq(m.vars[1].value, "y");
}
END_TEST

START_TEST(test_gateway_route_two_vars)
{
    gw_match m;
    ck_assert_int_eq(match("DELETE", "/portfolios/p1/constituents/c2", &m), 0);
    ck_assert_uint_eq(m.route, R_DEL_CONSTITUENT);
    ck_assert_uint_eq(m.n_vars, 2);
    ck_assert_str_eq(m.vars[0].name, "id");
    ck_assert_str_eq(m.vars[0].value, "p1");
    ck_assert_str_eq(m.vars[1].name, "constituent_id");
    ck_assert_str_eq(m.vars[1].value, "c2");
}
END_TEST

START_TEST(test_gateway_route_not_found)
{
    gw_match m;
    ck_assert_int_eq(match("GET", "/nope", &m), GW_MATCH_NOT_FOUND);
    ck_assert_int_eq(match("GET", "/", &m), GW_MATCH_NOT_FOUND);
    ck_assert_int_eq(match("GET", "", &m), GW_MATCH_NOT_FOUND);
    ck_assert_int_eq(match("GET", "bonds/x", &m), GW_MATCH_NOT_FOUND);
    ck_assert_int_eq(match("GET", "/bonds", &m), GW_MATCH_NOT_FOUND);
    ck_assert_int_eq(match("GET", "/bonds/x/y/z", &m), GW_MATCH_NOT_FOUND);
    ck_assert_int_eq(match("GET", "/bonds//", &m), GW_MATCH_NOT_FOUND);  /* empty id */
    ck_assert_int_eq(match("GET", "//bonds/x", &m), GW_MATCH_NOT_FOUND); /* empty segment */
    ck_assert_int_eq(match("GET", "/BONDS/x", &m), GW_MATCH_NOT_FOUND);  /* case matters */
    ck_assert_int_eq(match("GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r", &m), GW_MATCH_NOT_FOUND);
}
END_TEST

START_TEST(test_gateway_route_trailing_slash_and_head)
{
    gw_match m;
    ck_assert_int_eq(match("GET", "/bonds/x/", &m), 0);
    ck_assert_uint_eq(m.route, R_GET_BOND);
    ck_assert_str_eq(m.vars[0].value, "x");
    ck_assert_int_eq(match("HEAD", "/bonds/x", &m), 0);
    ck_assert_uint_eq(m.route, R_GET_BOND);
}
END_TEST

START_TEST(test_gateway_route_method_not_allowed)
{
    gw_match m;
    ck_assert_int_eq(match("PUT", "/bonds/x", &m), GW_MATCH_BAD_METHOD);
    ck_assert_uint_eq(m.allow, GW_M_GET | GW_M_PATCH);
    char buf[96];
    gw_allow_format(m.allow, buf, sizeof(buf));
    ck_assert_str_eq(buf, "GET, HEAD, PATCH, OPTIONS");
    ck_assert_int_eq(match("DELETE", "/bonds/analytics", &m), GW_MATCH_BAD_METHOD);
    /* both literal routes and the variable ones match the path */
    ck_assert_uint_eq(m.allow, GW_M_GET | GW_M_POST | GW_M_PATCH);
    ck_assert_int_eq(match("BREW", "/bonds/x", &m), GW_MATCH_BAD_METHOD);
    ck_assert_int_eq(match("get", "/bonds/x", &m), GW_MATCH_BAD_METHOD); /* methods are exact */
    gw_allow_format(GW_M_POST, buf, sizeof(buf));
    ck_assert_str_eq(buf, "POST, OPTIONS");
    gw_allow_format(GW_M_GET | GW_M_DELETE, buf, 12); /* truncated at a whole name */
    ck_assert_str_eq(buf, "GET, HEAD");
}
END_TEST

START_TEST(test_gateway_route_percent_decoding)
{
    gw_match m;
    ck_assert_int_eq(match("GET", "/bonds/a%2Fb%20c+d", &m), 0);
    ck_assert_uint_eq(m.route, R_GET_BOND);
    ck_assert_str_eq(m.vars[0].value, "a/b c+d"); /* an escaped '/' stays in the segment */
    ck_assert_int_eq(match("GET", "/bonds/%E2%82%AC", &m), 0);
    ck_assert_str_eq(m.vars[0].value, "\xE2\x82\xAC");
    ck_assert_int_eq(match("GET", "/bonds/%e2%82%ac", &m), 0); /* lower-case hex */
    ck_assert_str_eq(m.vars[0].value, "\xE2\x82\xAC");
    ck_assert_int_eq(match("GET", "/bonds/%zz", &m), GW_MATCH_BAD_ESCAPE);
    ck_assert_int_eq(match("GET", "/bonds/abc%4", &m), GW_MATCH_BAD_ESCAPE);
    ck_assert_int_eq(match("GET", "/bonds/abc%", &m), GW_MATCH_BAD_ESCAPE);
    ck_assert_int_eq(match("GET", "/bonds/a%00b", &m), GW_MATCH_BAD_ESCAPE);
    /* Literal segments compare raw: an escaped literal is not the literal. */
    ck_assert_int_eq(match("POST", "/bonds/analytic%73", &m), GW_MATCH_BAD_METHOD);

    char out[16];
    ck_assert_int_eq(gw_percent_decode("%41%42c", 7, out), 3);
    ck_assert_str_eq(out, "ABc");
    ck_assert_int_eq(gw_percent_decode("", 0, out), 0);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_gateway_route_compile_errors)
{
    static const char *const bad[] = {
        "/a/{id=**}", "/a//b",    "a/b",
        "/a/{id",     "/a/{}",    "/a/b:verb",
        "/a/*",       "/a/{i d}", "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17",
    };
    for (size_t i = 0; i < FSR_ARRAY_SIZE(bad); i++) {
        fsr_route rt = test_routes[R_GET_BOND];
        rt.pattern = bad[i];
        gw_router *r = (gw_router *)0x1;
        ck_assert_msg(gw_router_new(&rt, 1, &r) == FSR_E_CONFIG, "accepted %s", bad[i]);
        ck_assert_ptr_eq(r, (gw_router *)0x1); /* untouched on failure */
    }
    fsr_route rt = test_routes[R_GET_BOND];
    rt.http_method = "FETCH";
    gw_router *r = NULL;
    ck_assert_int_eq(gw_router_new(&rt, 1, &r), FSR_E_CONFIG);
    rt = test_routes[R_GET_BOND];
    rt.service = "billing.v1.BillingService";
    ck_assert_int_eq(gw_router_new(&rt, 1, &r), FSR_E_CONFIG);
    ck_assert_ptr_null(r);
    /* An empty table is fine (and matches nothing). */
    ck_assert_int_eq(gw_router_new(test_routes, 0, &r), 0);
    gw_match m;
    ck_assert_int_eq(gw_router_match(r, "GET", "/bonds/x", &arena, &m), GW_MATCH_NOT_FOUND);
    gw_router_free(r);
    gw_router_free(NULL);
}
END_TEST

START_TEST(test_gateway_route_upstreams)
{
    ck_assert_int_eq(gw_upstream_of("equity.v1.EquityService"), GW_UP_EQUITY);
    ck_assert_int_eq(gw_upstream_of("equity.v1.EquityAnalyticsService"), GW_UP_EQUITY);
    ck_assert_int_eq(gw_upstream_of("fixed_income.v1.FixedIncomeService"), GW_UP_FI);
    ck_assert_int_eq(gw_upstream_of("portfolio.v1.ClientService"), GW_UP_PORTFOLIO);
    ck_assert_int_eq(gw_upstream_of("jobs.v1.JobService"), GW_UP_PORTFOLIO);
    ck_assert_int_eq(gw_upstream_of("equityx.v1.S"), -1);
    ck_assert_int_eq(gw_upstream_of("grpc.health.v1.Health"), -1);
    ck_assert_int_eq(gw_upstream_of(NULL), -1);
    ck_assert_str_eq(gw_upstream_key(GW_UP_FI), "fixed_income");
    ck_assert_str_eq(gw_upstream_title(GW_UP_EQUITY), "equity service");
    ck_assert_int_eq(gw_router_upstream(router, R_DEL_CONSTITUENT), GW_UP_PORTFOLIO);
    ck_assert_int_eq(gw_router_upstream(router, R_GET_BOND), GW_UP_FI);
}
END_TEST

/* Every generated route compiles, and each pattern, instantiated, matches back to itself. */
START_TEST(test_gateway_route_generated_table)
{
    gw_router *r;
    ck_assert_uint_gt(fsr_n_routes, 30);
    ck_assert_int_eq(gw_router_new(fsr_routes, fsr_n_routes, &r), 0);
    ck_assert_uint_eq(gw_router_size(r), fsr_n_routes);
    for (size_t i = 0; i < fsr_n_routes; i++) {
        const fsr_route *rt = &fsr_routes[i];
        char path[256];
        size_t o = 0;
        int n_vars = 0;
        for (const char *p = rt->pattern; *p != '\0';) {
            if (*p == '{') {
                o += (size_t)snprintf(path + o, sizeof(path) - o, "v%%2F%d", n_vars++);
                p = strchr(p, '}') + 1;
            } else {
                path[o++] = *p++;
            }
        }
        path[o] = '\0';
        gw_match m;
        ck_assert_msg(gw_router_match(r, rt->http_method, path, &arena, &m) == 0, "%s %s",
                      rt->http_method, path);
        ck_assert_msg(strcmp(gw_router_route(r, m.route)->path, rt->path) == 0, "%s %s -> %s",
                      rt->http_method, rt->pattern, gw_router_route(r, m.route)->path);
        ck_assert_int_eq((int)m.n_vars, n_vars);
        for (int v = 0; v < n_vars; v++) {
            char want[16];
            snprintf(want, sizeof(want), "v/%d", v);
            ck_assert_str_eq(m.vars[v].value, want);
        }
        ck_assert_int_eq(gw_router_upstream(r, m.route), gw_upstream_of(rt->service));
    }
    /* Spot checks of the contract (API.md). */
    gw_match m;
    ck_assert_int_eq(gw_router_match(r, "POST", "/bonds/analytics", &arena, &m), 0);
    ck_assert_str_eq(gw_router_route(r, m.route)->method, "BondAnalytics");
    ck_assert_int_eq(gw_router_match(r, "GET", "/bonds/analytics", &arena, &m), 0);
    ck_assert_str_eq(gw_router_route(r, m.route)->method, "GetBond");
    ck_assert_int_eq(gw_router_match(r, "GET", "/jobs/j1", &arena, &m), 0);
    ck_assert_int_eq(gw_router_upstream(r, m.route), GW_UP_PORTFOLIO);
    ck_assert_int_eq(gw_router_match(r, "PUT", "/equities", &arena, &m), GW_MATCH_BAD_METHOD);
    ck_assert_uint_eq(m.allow, GW_M_GET | GW_M_POST);
    gw_router_free(r);
}
END_TEST

/* ---- building requests ------------------------------------------------------------------ */

static int build(size_t route, const char *method, const char *path, const char *ctype,
                 const char *body, const char *query, ProtobufCMessage **out, gw_error *err)
{
    gw_match m;
    memset(&m, 0, sizeof(m));
    int rv = gw_router_match(router, method, path, &arena, &m);
    ck_assert_int_eq(rv, 0);
    ck_assert_uint_eq(m.route, route);
    gw_http_in in = { method, ctype, body, strlen(body), query };
    memset(err, 0, sizeof(*err));
    return gw_build_request(&test_routes[route], &m, &in, &arena, out, err);
}

START_TEST(test_gateway_route_body_parsed)
{
    ProtobufCMessage *msg;
    gw_error e;
    ck_assert_int_eq(build(R_CREATE_EQ, "POST", "/equities", "application/json",
                           "{\"symbol\":\"AAPL\",\"lot_size\":100,\"sector\":\"Tech\"}", "", &msg,
                           &e),
                     0);
    const Equity__V1__CreateEquityRequest *req = (const Equity__V1__CreateEquityRequest *)msg;
    ck_assert_ptr_eq(msg->descriptor, &equity__v1__create_equity_request__descriptor);
    ck_assert_str_eq(req->symbol, "AAPL");
    ck_assert_str_eq(req->sector, "Tech");
    ck_assert_int_eq(req->lot_size, 100);
    /* charset parameter, any case, quoted */
    ck_assert_int_eq(build(R_CREATE_EQ, "POST", "/equities", "Application/JSON; charset=\"UTF-8\"",
                           "{\"lotSize\":5}", "", &msg, &e),
                     0);
    ck_assert_int_eq(((const Equity__V1__CreateEquityRequest *)msg)->lot_size, 5);
    /* an empty body is {} whatever the Content-Type */
    ck_assert_int_eq(build(R_CREATE_EQ, "POST", "/equities", NULL, "", "", &msg, &e), 0);
    ck_assert_str_eq(((const Equity__V1__CreateEquityRequest *)msg)->symbol, "");
}
END_TEST

START_TEST(test_gateway_route_body_errors)
{
    ProtobufCMessage *msg = NULL;
    gw_error e;
    ck_assert_int_eq(build(R_CREATE_EQ, "POST", "/equities", "application/json",
                           "{\"symbol\":\"A\",\"bogus\":1}", "", &msg, &e),
                     -1);
    ck_assert_int_eq(e.http, 400);
    ck_assert_int_eq(e.code, FSR_INVALID_ARGUMENT);
    ck_assert_str_eq(e.field, "bogus");
    ck_assert_ptr_nonnull(strstr(e.message, "unknown field"));

    ck_assert_int_eq(build(R_CREATE_EQ, "POST", "/equities", "application/json",
                           "{\"lotSize\":\"many\"}", "", &msg, &e),
                     -1);
    ck_assert_int_eq(e.http, 400);
    ck_assert_str_eq(e.field, "lotSize");
    ck_assert_ptr_nonnull(strstr(e.message, "lotSize: "));

    ck_assert_int_eq(
        build(R_CREATE_EQ, "POST", "/equities", "application/json", "not json", "", &msg, &e), -1);
    ck_assert_int_eq(e.http, 400);
    ck_assert_str_eq(e.field, "");
    ck_assert_ptr_nonnull(strstr(e.message, "invalid request body"));

    ck_assert_int_eq(
        build(R_CREATE_EQ, "POST", "/equities", "application/json", "[1,2]", "", &msg, &e), -1);
    ck_assert_int_eq(e.http, 400);
    ck_assert_ptr_nonnull(strstr(e.message, "JSON object"));

    static const char *const bad_ct[] = { NULL,
                                          "text/plain",
                                          "application/jsonx",
                                          "application/x-www-form-urlencoded",
                                          "application/json; charset=latin1",
                                          "application/json; charset=\"utf-16",
                                          "multipart/form-data; boundary=x" };
    for (size_t i = 0; i < FSR_ARRAY_SIZE(bad_ct); i++) {
        ck_assert_int_eq(build(R_CREATE_EQ, "POST", "/equities", bad_ct[i], "{}", "", &msg, &e),
                         -1);
        ck_assert_msg(e.http == 415, "%s -> %d", bad_ct[i] ? bad_ct[i] : "(none)", e.http);
    }
    /* a body on a route without one */
    ck_assert_int_eq(build(R_LIST_EQ, "GET", "/equities", "application/json", "{}", "", &msg, &e),
                     -1);
    ck_assert_int_eq(e.http, 400);
}
END_TEST

START_TEST(test_gateway_route_query_params)
{
    ProtobufCMessage *msg;
    gw_error e;
    ck_assert_int_eq(build(R_LIST_EQ, "GET", "/equities", NULL, "",
                           "symbol=BRK.B&pageSize=10&page_token=t%2B1&sector=Health+Care", &msg,
                           &e),
                     0);
    const Equity__V1__ListEquitiesRequest *q = (const Equity__V1__ListEquitiesRequest *)msg;
    ck_assert_str_eq(q->symbol, "BRK.B");
    ck_assert_int_eq(q->page_size, 10);
    ck_assert_str_eq(q->page_token, "t+1");
    ck_assert_str_eq(q->sector, "Health Care");

    /* repeated field: repeated parameters, both spellings of the other fields */
    ck_assert_int_eq(build(R_BATCH, "GET", "/batch", NULL, "",
                           "ids=a&ids=b&lookbackDays=30&include_prices=true&ids=c", &msg, &e),
                     0);
    const Equity__V1__BatchQuotesRequest *b = (const Equity__V1__BatchQuotesRequest *)msg;
    ck_assert_uint_eq(b->n_ids, 3);
    ck_assert_str_eq(b->ids[0], "a");
    ck_assert_str_eq(b->ids[1], "b");
    ck_assert_str_eq(b->ids[2], "c");
    ck_assert_int_eq(b->lookback_days, 30);
    ck_assert(b->include_prices);

    ck_assert_int_eq(
        build(R_LIST_EQ, "GET", "/equities", NULL, "", "symbol=A&colour=red", &msg, &e), -1);
    ck_assert_int_eq(e.http, 400);
    ck_assert_str_eq(e.field, "colour");
    ck_assert_str_eq(e.message, "unknown query parameter \"colour\"");

    ck_assert_int_eq(build(R_LIST_EQ, "GET", "/equities", NULL, "", "pageSize=ten", &msg, &e), -1);
    ck_assert_int_eq(e.http, 400);
    ck_assert_str_eq(e.field, "pageSize");

    ck_assert_int_eq(build(R_LIST_EQ, "GET", "/equities", NULL, "", "symbol=A&symbol=B", &msg, &e),
                     -1);
    ck_assert_int_eq(e.http, 400);

    /* body "*" routes take their fields in the body only */
    ck_assert_int_eq(
        build(R_CREATE_EQ, "POST", "/equities", "application/json", "{}", "symbol=A", &msg, &e),
        -1);
    ck_assert_int_eq(e.http, 400);
    ck_assert_str_eq(e.field, "symbol");
}
END_TEST

START_TEST(test_gateway_route_path_vars)
{
    ProtobufCMessage *msg;
    gw_error e;
    ck_assert_int_eq(
        build(R_PRICES, "GET", "/equities/e%201/prices", NULL, "", "from=2024-01-01", &msg, &e), 0);
    const Equity__V1__ListPricesRequest *lp = (const Equity__V1__ListPricesRequest *)msg;
    ck_assert_str_eq(lp->id, "e 1");
    ck_assert_str_eq(lp->from, "2024-01-01");

    /* the path sets the field; the same value in the body is fine, a different one is not */
    ck_assert_int_eq(build(R_UPDATE_EQ, "PATCH", "/equities/e1", "application/json",
                           "{\"name\":\"New\"}", "", &msg, &e),
                     0);
    const Equity__V1__UpdateEquityRequest *up = (const Equity__V1__UpdateEquityRequest *)msg;
    ck_assert_str_eq(up->id, "e1");
    ck_assert_ptr_nonnull(up->name);
    ck_assert_str_eq(up->name->value, "New");
    ck_assert_int_eq(build(R_UPDATE_EQ, "PATCH", "/equities/e1", "application/json",
                           "{\"id\":\"e1\"}", "", &msg, &e),
                     0);
    ck_assert_int_eq(build(R_UPDATE_EQ, "PATCH", "/equities/e1", "application/json",
                           "{\"id\":\"e2\"}", "", &msg, &e),
                     -1);
    ck_assert_int_eq(e.http, 400);
    ck_assert_str_eq(e.field, "id");
    /* query vs path, on a GET route */
    ck_assert_int_eq(build(R_PRICES, "GET", "/equities/e1/prices", NULL, "", "id=e2", &msg, &e),
                     -1);
    ck_assert_str_eq(e.field, "id");

    /* numeric path variables: converted, range-checked, compared with the body */
    ck_assert_int_eq(build(R_LOTS, "POST", "/lots/100", NULL, "", "", &msg, &e), 0);
    ck_assert_int_eq(((const Equity__V1__CreateEquityRequest *)msg)->lot_size, 100);
    ck_assert_int_eq(
        build(R_LOTS, "POST", "/lots/100", "application/json", "{\"lotSize\":100}", "", &msg, &e),
        0);
    ck_assert_int_eq(
        build(R_LOTS, "POST", "/lots/100", "application/json", "{\"lotSize\":7}", "", &msg, &e),
        -1);
    ck_assert_str_eq(e.field, "lotSize");
    ck_assert_int_eq(build(R_LOTS, "POST", "/lots/lots", NULL, "", "", &msg, &e), -1);
    ck_assert_int_eq(e.http, 400);
    ck_assert_ptr_nonnull(strstr(e.message, "path parameter lotSize"));
    ck_assert_int_eq(build(R_LOTS, "POST", "/lots/99999999999", NULL, "", "", &msg, &e), -1);
    ck_assert_int_eq(e.http, 400);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------ */

/* Packs a google.rpc.Status with the given Any details; returns malloc()ed bytes. */
static uint8_t *pack_status(int code, char *msg, Google__Protobuf__Any **any, size_t n, size_t *len)
{
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = code;
    st.message = msg;
    st.details = any;
    st.n_details = n;
    *len = google__rpc__status__get_packed_size(&st);
    uint8_t *buf = malloc(*len);
    google__rpc__status__pack(&st, buf);
    return buf;
}

static void any_of(Google__Protobuf__Any *any, char *type, const ProtobufCMessage *m)
{
    google__protobuf__any__init(any);
    any->type_url = type;
    any->value.len = protobuf_c_message_get_packed_size(m);
    any->value.data = malloc(any->value.len);
    protobuf_c_message_pack(m, any->value.data);
}

START_TEST(test_gateway_route_error_body_details)
{
    Google__Rpc__BadRequest__FieldViolation fv1 = GOOGLE__RPC__BAD_REQUEST__FIELD_VIOLATION__INIT,
                                            fv2 = GOOGLE__RPC__BAD_REQUEST__FIELD_VIOLATION__INIT;
    fv1.field = "couponRate";
    fv1.description = "must be >= 0";
    fv2.field = "bars[2].close";
    fv2.description = "must be positive";
    Google__Rpc__BadRequest__FieldViolation *fvs[] = { &fv1, &fv2 };
    Google__Rpc__BadRequest br = GOOGLE__RPC__BAD_REQUEST__INIT;
    br.field_violations = fvs;
    br.n_field_violations = 2;

    Google__Rpc__DebugInfo dbg = GOOGLE__RPC__DEBUG_INFO__INIT;
    dbg.detail = "secret stack trace";

    Google__Rpc__ErrorInfo__MetadataEntry me = GOOGLE__RPC__ERROR_INFO__METADATA_ENTRY__INIT;
    me.key = "limit";
    me.value = "10";
    Google__Rpc__ErrorInfo__MetadataEntry *mes[] = { &me };
    Google__Rpc__ErrorInfo ei = GOOGLE__RPC__ERROR_INFO__INIT;
    ei.reason = "QUOTA";
    ei.domain = "fsr";
    ei.metadata = mes;
    ei.n_metadata = 1;

    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    d.seconds = 1;
    d.nanos = 500000000;
    Google__Rpc__RetryInfo ri = GOOGLE__RPC__RETRY_INFO__INIT;
    ri.retry_delay = &d;

    Google__Protobuf__Any a[5];
    any_of(&a[0], "type.googleapis.com/google.rpc.BadRequest", &br.base);
    any_of(&a[1], "type.googleapis.com/google.rpc.DebugInfo", &dbg.base);
    any_of(&a[2], "type.googleapis.com/google.rpc.ErrorInfo", &ei.base);
    any_of(&a[3], "type.googleapis.com/google.rpc.RetryInfo", &ri.base);
    any_of(&a[4], "type.googleapis.com/acme.Unknown", &ri.base);
    Google__Protobuf__Any *ap[] = { &a[0], &a[1], &a[2], &a[3], &a[4] };
    size_t blen;
    uint8_t *bin = pack_status(3, "bad", ap, 5, &blen);

    size_t len;
    char *s = gw_error_json(FSR_INVALID_ARGUMENT, "couponRate: must be >= 0", NULL, NULL, bin, blen,
                            &len);
    ck_assert_uint_eq(len, strlen(s));
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "code")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(j, "message")), "couponRate: must be >= 0");
    json_t *det = json_object_get(j, "details");
    ck_assert_uint_eq(json_array_size(det), 4); /* 2 violations, ErrorInfo, RetryInfo */
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(det, 0), "field")),
                     "couponRate");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(det, 0), "description")),
                     "must be >= 0");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(det, 1), "field")),
                     "bars[2].close");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(det, 2), "reason")), "QUOTA");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(det, 2), "metadata"), "limit")),
                     "10");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(det, 3), "retryDelay")),
                     "1.500s");
    ck_assert_ptr_null(strstr(s, "secret")); /* DebugInfo never reaches clients */
    json_decref(j);
    free(s);

    /* a local field violation comes first; garbage details are ignored */
    static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0x01 };
    s = gw_error_json(FSR_INVALID_ARGUMENT, "x", "name", "required", junk, sizeof(junk), &len);
    ck_assert_str_eq(s, "{\"code\":3,\"message\":\"x\",\"details\":[{\"field\":\"name\","
                        "\"description\":\"required\"}]}");
    free(s);
    s = gw_error_json(FSR_NOT_FOUND, "equity \"x\" not found", NULL, NULL, NULL, 0, &len);
    ck_assert_str_eq(s, "{\"code\":5,\"message\":\"equity \\\"x\\\" not found\",\"details\":[]}");
    free(s);
    /* a message that is not UTF-8 still yields valid JSON */
    s = gw_error_json(FSR_INTERNAL, "bad \xff", NULL, NULL, NULL, 0, &len);
    json_t *k = json_loads(s, 0, &je);
    ck_assert_ptr_nonnull(k);
    json_decref(k);
    free(s);

    for (int i = 0; i < 5; i++)
        free(a[i].value.data);
    free(bin);
}
END_TEST

START_TEST(test_gateway_route_status_all_codes)
{
    static const int want[FSR_CODE_COUNT] = {
        [FSR_OK] = 200,
        [FSR_CANCELLED] = 499,
        [FSR_UNKNOWN] = 500,
        [FSR_INVALID_ARGUMENT] = 400,
        [FSR_DEADLINE_EXCEEDED] = 504,
        [FSR_NOT_FOUND] = 404,
        [FSR_ALREADY_EXISTS] = 409,
        [FSR_PERMISSION_DENIED] = 403,
        [FSR_RESOURCE_EXHAUSTED] = 429,
        [FSR_FAILED_PRECONDITION] = 400,
        [FSR_ABORTED] = 409,
        [FSR_OUT_OF_RANGE] = 400,
        [FSR_UNIMPLEMENTED] = 501,
        [FSR_INTERNAL] = 500,
        [FSR_UNAVAILABLE] = 503,
        [FSR_DATA_LOSS] = 500,
        [FSR_UNAUTHENTICATED] = 401,
    };
    for (int c = 0; c < FSR_CODE_COUNT; c++) {
        ck_assert_msg(gw_http_status((fsr_code)c, "whatever", NULL, 0) == want[c], "code %d", c);
        /* the body carries the gRPC number */
        size_t len;
        char *s = gw_error_json((fsr_code)c, "m", NULL, NULL, NULL, 0, &len);
        json_t *j = json_loads(s, 0, NULL);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "code")), c);
        json_decref(j);
        free(s);
    }
    ck_assert_int_eq(gw_http_status((fsr_code)99, "x", NULL, 0), 500);
}
END_TEST

START_TEST(test_gateway_route_status_version_mismatch)
{
    ck_assert_int_eq(gw_http_status(FSR_FAILED_PRECONDITION, "version mismatch: have 3", NULL, 0),
                     412);
    ck_assert_int_eq(gw_http_status(FSR_FAILED_PRECONDITION, "Version Mismatch", NULL, 0), 412);
    ck_assert_int_eq(gw_http_status(FSR_FAILED_PRECONDITION, "stale version 2", NULL, 0), 412);
    ck_assert_int_eq(gw_http_status(FSR_FAILED_PRECONDITION, "still held", NULL, 0), 400);
    ck_assert_int_eq(gw_http_status(FSR_FAILED_PRECONDITION, NULL, NULL, 0), 400);
    /* only FAILED_PRECONDITION becomes 412 */
    ck_assert_int_eq(gw_http_status(FSR_ABORTED, "version mismatch", NULL, 0), 409);

    /* by the details: ErrorInfo reason, or a PreconditionFailure of type VERSION */
    Google__Rpc__ErrorInfo ei = GOOGLE__RPC__ERROR_INFO__INIT;
    ei.reason = "VERSION_MISMATCH";
    Google__Protobuf__Any a;
    any_of(&a, "type.googleapis.com/google.rpc.ErrorInfo", &ei.base);
    Google__Protobuf__Any *ap[] = { &a };
    size_t blen;
    uint8_t *bin = pack_status(9, "precondition", ap, 1, &blen);
    ck_assert_int_eq(gw_http_status(FSR_FAILED_PRECONDITION, "precondition", bin, blen), 412);
    free(bin);
    free(a.value.data);

    Google__Rpc__PreconditionFailure__Violation v =
        GOOGLE__RPC__PRECONDITION_FAILURE__VIOLATION__INIT;
    v.type = "VERSION";
    v.subject = "portfolio/1";
    Google__Rpc__PreconditionFailure__Violation *vs[] = { &v };
    Google__Rpc__PreconditionFailure pf = GOOGLE__RPC__PRECONDITION_FAILURE__INIT;
    pf.violations = vs;
    pf.n_violations = 1;
    any_of(&a, "type.googleapis.com/google.rpc.PreconditionFailure", &pf.base);
    bin = pack_status(9, "precondition", ap, 1, &blen);
    ck_assert_int_eq(gw_http_status(FSR_FAILED_PRECONDITION, "precondition", bin, blen), 412);
    free(bin);
    free(a.value.data);

    v.type = "HOLDINGS";
    any_of(&a, "type.googleapis.com/google.rpc.PreconditionFailure", &pf.base);
    bin = pack_status(9, "precondition", ap, 1, &blen);
    ck_assert_int_eq(gw_http_status(FSR_FAILED_PRECONDITION, "precondition", bin, blen), 400);
    free(bin);
    free(a.value.data);
}
END_TEST

START_TEST(test_gateway_route_methods)
{
    ck_assert_uint_eq(gw_method_bit("GET"), GW_M_GET);
    ck_assert_uint_eq(gw_method_bit("DELETE"), GW_M_DELETE);
    ck_assert_uint_eq(gw_method_bit("OPTIONS"), GW_M_OPTIONS);
    ck_assert_uint_eq(gw_method_bit("Get"), GW_M_OTHER);
    ck_assert_uint_eq(gw_method_bit(""), GW_M_OTHER);
    for (int i = 0; i < GW_N_METHODS; i++)
        ck_assert_int_eq(gw_method_index(1u << i), i);
    ck_assert_str_eq(gw_method_name(gw_method_index(GW_M_PATCH)), "PATCH");
    ck_assert_str_eq(gw_method_name(99), "OTHER");
}
END_TEST

static Suite *gateway_suite(void)
{
    Suite *s = suite_create("gateway_route");
    TCase *tc = tcase_create("match");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_gateway_route_literal_beats_variable);
    tcase_add_test(tc, test_gateway_route_two_vars);
    tcase_add_test(tc, test_gateway_route_not_found);
    tcase_add_test(tc, test_gateway_route_trailing_slash_and_head);
    tcase_add_test(tc, test_gateway_route_method_not_allowed);
    tcase_add_test(tc, test_gateway_route_percent_decoding);
    tcase_add_test(tc, test_gateway_route_compile_errors);
    tcase_add_test(tc, test_gateway_route_upstreams);
    tcase_add_test(tc, test_gateway_route_generated_table);
    tcase_add_test(tc, test_gateway_route_methods);
    suite_add_tcase(s, tc);

    tc = tcase_create("request");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_gateway_route_body_parsed);
    tcase_add_test(tc, test_gateway_route_body_errors);
    tcase_add_test(tc, test_gateway_route_query_params);
    tcase_add_test(tc, test_gateway_route_path_vars);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_gateway_route_error_body_details);
    tcase_add_test(tc, test_gateway_route_status_all_codes);
    tcase_add_test(tc, test_gateway_route_status_version_mismatch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(gateway_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
