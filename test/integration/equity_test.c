/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of fsr-equity's market data and analytics (the harness is the one of
 * services_test.c): bulk bars, validation, the quote cache and price.updated events,
 * GetAnalytics against SeriesAnalytics, and SeriesAnalytics against the numpy reference of
 * test/analytics_ref/reference.json at the ANALYTICS.md tolerances; UpdateEquity, DeleteEquity
 * against a real fsr-portfolio (held: refused; portfolio unreachable: UNAVAILABLE, nothing
 * deleted), the stale-quote race, GetCovariance == Covariance, WatchQuotes.  fsr-equity runs as a
 * real process against the throwaway PostgreSQL and Redis of with_deps.sh, called over gRPC
 * with the project's own client (lib/client.c).
 *
 * The service gets its own database (equity) in the one cluster,
 * created by scripts/deps.sh before the suites run.  A TCase per service starts the binary
 * once in an unchecked fixture (in the parent process, so every forked test sees it) and
 * stops it with SIGTERM afterwards.  Tests share the databases, so each names what it
 * creates after its own pid.
 *
 * Environment (set by test/integration/meson.build and with_deps.sh): FSR_EQUITY_BIN,
 * FSR_PORTFOLIO_BIN, FSR_DEPS_SH,
 * TEST_PG_HOST, TEST_PG_PORT, TEST_REDIS_HOST, TEST_REDIS_PORT.
 */
#include "fsr/client.h"
#include "fsr/loop.h"
#include "fsr/status.h"

#include "equity/v1/equity.pb-c.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "svc_harness.h"

#define EQUITY_V1_PATH(m) ("/equity.v1.EquityService/" m)

static rpc eq_create(const Equity__V1__CreateEquityRequest *req)
{
    return call(g_eq.port, EQUITY_V1_PATH("CreateEquity"), req, &equity__v1__equity__descriptor,
                NULL);
}

/* ---- helpers of the market-data tests ----------------------------------------------- */

#define ANALYTICS_PATH(m) ("/equity.v1.EquityAnalyticsService/" m)

/* Creates an equity with a symbol unique to this process and |tag|; returns its id. */
static void new_equity(const char *tag, char id[64])
{
    char sym[32];
    snprintf(sym, sizeof(sym), "MD%X%s", (unsigned)getpid(), tag);
    Equity__V1__CreateEquityRequest req = EQUITY__V1__CREATE_EQUITY_REQUEST__INIT;
    req.symbol = sym;
    req.name = "Market Data Test";
    req.exchange = "XTST";
    req.currency = "USD";
    req.sector = "Testing";
    rpc r = eq_create(&req);
    expect_code(&r, FSR_OK, "CreateEquity");
    Equity__V1__Equity *e = (Equity__V1__Equity *)r.resp;
    ck_assert(is_uuid(e->id));
    snprintf(id, 64, "%s", e->id);
    rpc_dispose(&r);
}

/* "YYYY-MM-DD" of day |day| after 1990-01-01. */
static void date_of(int day, char out[16])
{
    time_t t = (time_t)(631152000 + (long)day * 86400); /* 1990-01-01T00:00:00Z */
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

/* |n| bars on consecutive days from day |first|; strings malloc()ed (bars_free). */
typedef struct bars {
    Equity__V1__PriceBar *bar;
    Equity__V1__PriceBar **ptr;
    size_t n;
} bars;

static bars bars_make(size_t n, int first, unsigned seed)
{
    bars b = { calloc(n, sizeof(Equity__V1__PriceBar)), calloc(n, sizeof(void *)), n };
    for (size_t i = 0; i < n; i++) {
        Equity__V1__PriceBar *p = &b.bar[i];
        equity__v1__price_bar__init(p);
        char d[16], buf[32];
        date_of(first + (int)i, d);
        p->date = strdup(d);
        /* A deterministic walk in cents: close between 50 and ~150. */
        long c = 10000 + (long)((i * 7919u + seed) % 5000u) - 2500;
        snprintf(buf, sizeof(buf), "%ld.%02ld", (c + 10) / 100, (c + 10) % 100);
        p->open = strdup(buf);
        snprintf(buf, sizeof(buf), "%ld.%02ld", (c + 150) / 100, (c + 150) % 100);
        p->high = strdup(buf);
        snprintf(buf, sizeof(buf), "%ld.%02ld", (c - 150) / 100, (c - 150) % 100);
        p->low = strdup(buf);
        snprintf(buf, sizeof(buf), "%ld.%02ld", c / 100, c % 100);
        p->close = strdup(buf);
        p->volume = (int64_t)(1000 + i);
        b.ptr[i] = p;
    }
    return b;
}

static void bars_free(bars *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->bar[i].date);
        free(b->bar[i].open);
        free(b->bar[i].high);
        free(b->bar[i].low);
        free(b->bar[i].close);
    }
    free(b->bar);
    free(b->ptr);
}

static rpc upsert(const char *id, bars *b)
{
    Equity__V1__UpsertPricesRequest req = EQUITY__V1__UPSERT_PRICES_REQUEST__INIT;
    req.id = mut(id);
    req.bars = b->ptr;
    req.n_bars = b->n;
    return call(g_eq.port, EQUITY_V1_PATH("UpsertPrices"), &req,
                &equity__v1__upsert_prices_response__descriptor, NULL);
}

static long bar_count(const char *id)
{
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM price_bars WHERE equity_id = '%s'", id);
    return db_long("equity", sql);
}

static redisContext *redis_connect(void)
{
    redisContext *c = redisConnect(env_or("TEST_REDIS_HOST", "127.0.0.1"),
                                   atoi(env_or("TEST_REDIS_PORT", "6379")));
    ck_assert_msg(c != NULL && c->err == 0, "redis connect");
    struct timeval tv = { 10, 0 };
    redisSetTimeout(c, tv);
    return c;
}

static long long redis_exists(const char *key)
{
    redisContext *c = redis_connect();
    redisReply *r = redisCommand(c, "EXISTS %s", key);
    ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/*
 * GetQuote writes the cache after answering (fire and forget), so a test that looks for the
 * entry right after the answer waits a little for it: up to 2 s, then EXISTS as it is.
 */
static long long redis_wait_exists(const char *key)
{
    for (int i = 0; i < 200; i++) {
        if (redis_exists(key) == 1)
            return 1;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return redis_exists(key);
}

/* ---- UpsertPrices / ListPrices ------------------------------------------------------ */

START_TEST(test_upsert_10000_bars_then_list)
{
    REQUIRE_UP(g_eq);
    char id[64];
    new_equity("BULK", id);
    bars b = bars_make(10000, 0, 17);
    rpc r = upsert(id, &b);
    expect_code(&r, FSR_OK, "UpsertPrices 10000");
    Equity__V1__UpsertPricesResponse *u = (Equity__V1__UpsertPricesResponse *)r.resp;
    ck_assert_int_eq(u->upserted, 10000);
    ck_assert_str_eq(u->latest_date, b.bar[9999].date);
    rpc_dispose(&r);
    ck_assert_int_eq(bar_count(id), 10000);

    /* Upserting again replaces, not duplicates. */
    r = upsert(id, &b);
    expect_code(&r, FSR_OK, "UpsertPrices again");
    rpc_dispose(&r);
    ck_assert_int_eq(bar_count(id), 10000);

    Equity__V1__ListPricesRequest lr = EQUITY__V1__LIST_PRICES_REQUEST__INIT;
    lr.id = id;
    lr.from = b.bar[5000].date;
    lr.to = b.bar[5029].date;
    r = call(g_eq.port, EQUITY_V1_PATH("ListPrices"), &lr,
             &equity__v1__list_prices_response__descriptor, NULL);
    expect_code(&r, FSR_OK, "ListPrices");
    Equity__V1__ListPricesResponse *l = (Equity__V1__ListPricesResponse *)r.resp;
    ck_assert_uint_eq(l->n_bars, 30);
    for (size_t i = 0; i < 30; i++) {
        const Equity__V1__PriceBar *want = &b.bar[5000 + i], *got = l->bars[i];
        ck_assert_str_eq(got->date, want->date);
        ck_assert_str_eq(got->open, want->open);
        ck_assert_str_eq(got->high, want->high);
        ck_assert_str_eq(got->low, want->low);
        ck_assert_str_eq(got->close, want->close);
        ck_assert_int_eq(got->volume, want->volume);
    }
    rpc_dispose(&r);

    lr.from = "";
    lr.to = "";
    lr.id = "6f1c2d3e-0000-4000-8000-00000000dead";
    r = call(g_eq.port, EQUITY_V1_PATH("ListPrices"), &lr,
             &equity__v1__list_prices_response__descriptor, NULL);
    expect_code(&r, FSR_NOT_FOUND, "ListPrices unknown");
    ck_assert_ptr_nonnull(strstr(r.message, lr.id));
    rpc_dispose(&r);
    bars_free(&b);
}
END_TEST

START_TEST(test_upsert_bad_bars_store_nothing)
{
    REQUIRE_UP(g_eq);
    char id[64];
    new_equity("BAD", id);
    bars b = bars_make(5, 100, 3);
    rpc r = upsert(id, &b);
    expect_code(&r, FSR_OK, "UpsertPrices");
    rpc_dispose(&r);
    ck_assert_int_eq(bar_count(id), 5);

    bars c = bars_make(20, 200, 5);
    /* high below low on bar 7 */
    char *saved = c.bar[7].high;
    c.bar[7].high = mut("1.00");
    r = upsert(id, &c);
    expect_invalid(&r, "bars[7].high", "high < low");
    c.bar[7].high = saved;
    /* a negative price on bar 3 */
    saved = c.bar[3].open;
    c.bar[3].open = mut("-5.00");
    r = upsert(id, &c);
    expect_invalid(&r, "bars[3].open", "negative open");
    c.bar[3].open = saved;
    /* low above close on bar 12 */
    saved = c.bar[12].low;
    c.bar[12].low = mut("999.00");
    r = upsert(id, &c);
    expect_invalid(&r, "bars[12].high", "low above high");
    c.bar[12].low = saved;
    /* a bad date, a negative volume, a repeated date */
    saved = c.bar[19].date;
    c.bar[19].date = mut("2023-02-29");
    r = upsert(id, &c);
    expect_invalid(&r, "bars[19].date", "bad date");
    c.bar[19].date = c.bar[4].date;
    r = upsert(id, &c);
    expect_invalid(&r, "bars[19].date", "repeated date");
    c.bar[19].date = saved;
    c.bar[0].volume = -1;
    r = upsert(id, &c);
    expect_invalid(&r, "bars[0].volume", "negative volume");
    c.bar[0].volume = 1;
    ck_assert_int_eq(bar_count(id), 5);

    r = upsert("6f1c2d3e-0000-4000-8000-00000000beef", &c);
    expect_code(&r, FSR_NOT_FOUND, "UpsertPrices unknown equity");
    ck_assert_ptr_nonnull(strstr(r.message, "6f1c2d3e-0000-4000-8000-00000000beef"));
    rpc_dispose(&r);
    bars_free(&b);
    bars_free(&c);
}
END_TEST

/* ---- GetQuote cache and price.updated ------------------------------------------------ */

static rpc get_quote(const char *id)
{
    Equity__V1__GetQuoteRequest req = EQUITY__V1__GET_QUOTE_REQUEST__INIT;
    req.id = mut(id);
    return call(g_eq.port, EQUITY_V1_PATH("GetQuote"), &req, &equity__v1__quote__descriptor, NULL);
}

START_TEST(test_quote_cache_and_price_updated)
{
    REQUIRE_UP(g_eq);
    char id[64], key[128];
    new_equity("QT", id);
    snprintf(key, sizeof(key), "eq:quote:%s", id);

    rpc r = get_quote(id);
    expect_code(&r, FSR_NOT_FOUND, "GetQuote without prices");
    rpc_dispose(&r);

    redisContext *sub = redis_connect();
    redisReply *rr = redisCommand(sub, "SUBSCRIBE price.updated");
    ck_assert(rr != NULL);
    freeReplyObject(rr);

    bars b = bars_make(3, 300, 11);
    r = upsert(id, &b);
    expect_code(&r, FSR_OK, "UpsertPrices");
    rpc_dispose(&r);

    /* Our event (other tests may publish theirs too). */
    bool seen = false;
    char want[256];
    snprintf(want, sizeof(want), "{\"id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\"}", id, b.bar[0].date,
             b.bar[2].date);
    for (int i = 0; i < 50 && !seen; i++) {
        void *reply = NULL;
        ck_assert_msg(redisGetReply(sub, &reply) == REDIS_OK, "no price.updated message");
        redisReply *m = reply;
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
            strcmp(m->element[1]->str, "price.updated") == 0 &&
            strcmp(m->element[2]->str, want) == 0)
            seen = true;
        freeReplyObject(m);
    }
    ck_assert(seen);
    redisFree(sub);

    r = get_quote(id);
    expect_code(&r, FSR_OK, "GetQuote");
    Equity__V1__Quote *q = (Equity__V1__Quote *)r.resp;
    ck_assert_str_eq(q->close, b.bar[2].close);
    ck_assert_str_eq(q->previous_close, b.bar[1].close);
    ck_assert_str_eq(q->date, b.bar[2].date);
    ck_assert_double_eq_tol(q->change,
                            strtod(b.bar[2].close, NULL) / strtod(b.bar[1].close, NULL) - 1, 1e-12);
    rpc_dispose(&r);
    ck_assert_int_eq(redis_wait_exists(key), 1);

    /* Served from the cache: a doctored cache entry is what comes back. */
    Equity__V1__Quote fake = EQUITY__V1__QUOTE__INIT;
    fake.equity_id = id;
    fake.close = "4242.42";
    uint8_t buf[256];
    size_t len = equity__v1__quote__pack(&fake, buf);
    redisContext *c = redis_connect();
    rr = redisCommand(c, "SET %s %b EX 60", key, buf, len);
    ck_assert(rr != NULL && rr->type == REDIS_REPLY_STATUS);
    freeReplyObject(rr);
    redisFree(c);
    r = get_quote(id);
    expect_code(&r, FSR_OK, "GetQuote cached");
    ck_assert_str_eq(((Equity__V1__Quote *)r.resp)->close, "4242.42");
    rpc_dispose(&r);

    /* A write invalidates it. */
    bars d = bars_make(1, 303, 99);
    r = upsert(id, &d);
    expect_code(&r, FSR_OK, "UpsertPrices one more");
    rpc_dispose(&r);
    ck_assert_int_eq(redis_exists(key), 0);
    r = get_quote(id);
    expect_code(&r, FSR_OK, "GetQuote after write");
    ck_assert_str_eq(((Equity__V1__Quote *)r.resp)->close, d.bar[0].close);
    ck_assert_str_eq(((Equity__V1__Quote *)r.resp)->date, d.bar[0].date);
    rpc_dispose(&r);
    bars_free(&b);
    bars_free(&d);
}
END_TEST

/* ---- dividends and splits ---------------------------------------------------------- */

START_TEST(test_dividends_and_splits)
{
    REQUIRE_UP(g_eq);
    char id[64];
    new_equity("DV", id);
    Equity__V1__AddDividendRequest ad = EQUITY__V1__ADD_DIVIDEND_REQUEST__INIT;
    ad.id = id;
    ad.ex_date = "2020-03-02";
    ad.pay_date = "2020-03-20";
    ad.amount = "0.5200";
    rpc r = call(g_eq.port, EQUITY_V1_PATH("AddDividend"), &ad, &equity__v1__dividend__descriptor,
                 NULL);
    expect_code(&r, FSR_OK, "AddDividend");
    Equity__V1__Dividend *dv = (Equity__V1__Dividend *)r.resp;
    ck_assert(is_uuid(dv->id));
    ck_assert_str_eq(dv->amount, "0.5200");
    ck_assert_str_eq(dv->pay_date, "2020-03-20");
    rpc_dispose(&r);
    r = call(g_eq.port, EQUITY_V1_PATH("AddDividend"), &ad, &equity__v1__dividend__descriptor,
             NULL);
    expect_code(&r, FSR_ALREADY_EXISTS, "AddDividend twice");
    rpc_dispose(&r);
    ad.ex_date = "2020-06-01";
    ad.pay_date = "";
    ad.amount = "0";
    r = call(g_eq.port, EQUITY_V1_PATH("AddDividend"), &ad, &equity__v1__dividend__descriptor,
             NULL);
    expect_invalid(&r, "amount", "zero dividend");
    ad.amount = "0.1";
    ad.pay_date = "2020-05-01";
    r = call(g_eq.port, EQUITY_V1_PATH("AddDividend"), &ad, &equity__v1__dividend__descriptor,
             NULL);
    expect_invalid(&r, "payDate", "pay before ex");

    Equity__V1__AddSplitRequest as = EQUITY__V1__ADD_SPLIT_REQUEST__INIT;
    as.id = id;
    as.ex_date = "2020-04-01";
    as.ratio = "2";
    r = call(g_eq.port, EQUITY_V1_PATH("AddSplit"), &as, &equity__v1__split__descriptor, NULL);
    expect_code(&r, FSR_OK, "AddSplit");
    rpc_dispose(&r);
    as.ratio = "-2";
    r = call(g_eq.port, EQUITY_V1_PATH("AddSplit"), &as, &equity__v1__split__descriptor, NULL);
    expect_invalid(&r, "ratio", "negative ratio");

    Equity__V1__ListDividendsRequest ld = EQUITY__V1__LIST_DIVIDENDS_REQUEST__INIT;
    ld.id = id;
    r = call(g_eq.port, EQUITY_V1_PATH("ListDividends"), &ld,
             &equity__v1__list_dividends_response__descriptor, NULL);
    expect_code(&r, FSR_OK, "ListDividends");
    ck_assert_uint_eq(((Equity__V1__ListDividendsResponse *)r.resp)->n_dividends, 1);
    rpc_dispose(&r);
    ld.from = "2020-03-03";
    r = call(g_eq.port, EQUITY_V1_PATH("ListDividends"), &ld,
             &equity__v1__list_dividends_response__descriptor, NULL);
    expect_code(&r, FSR_OK, "ListDividends range");
    ck_assert_uint_eq(((Equity__V1__ListDividendsResponse *)r.resp)->n_dividends, 0);
    rpc_dispose(&r);
    Equity__V1__ListSplitsRequest ls = EQUITY__V1__LIST_SPLITS_REQUEST__INIT;
    ls.id = id;
    r = call(g_eq.port, EQUITY_V1_PATH("ListSplits"), &ls,
             &equity__v1__list_splits_response__descriptor, NULL);
    expect_code(&r, FSR_OK, "ListSplits");
    Equity__V1__ListSplitsResponse *sl = (Equity__V1__ListSplitsResponse *)r.resp;
    ck_assert_uint_eq(sl->n_splits, 1);
    ck_assert_str_eq(sl->splits[0]->ratio, "2");
    rpc_dispose(&r);

    /* Split-adjusted analytics: 100 -> 50 across a 2-for-1 split is no loss. */
    static const char *const dates[] = { "2020-03-30", "2020-03-31", "2020-04-01", "2020-04-02" };
    static const char *const closes[] = { "100", "102", "51", "52" };
    bars b = bars_make(4, 0, 1);
    for (int i = 0; i < 4; i++) {
        free(b.bar[i].date);
        free(b.bar[i].open);
        free(b.bar[i].high);
        free(b.bar[i].low);
        free(b.bar[i].close);
        b.bar[i].date = strdup(dates[i]);
        b.bar[i].open = strdup(closes[i]);
        b.bar[i].high = strdup(closes[i]);
        b.bar[i].low = strdup(closes[i]);
        b.bar[i].close = strdup(closes[i]);
    }
    r = upsert(id, &b);
    expect_code(&r, FSR_OK, "UpsertPrices split");
    rpc_dispose(&r);
    Equity__V1__GetAnalyticsRequest ga = EQUITY__V1__GET_ANALYTICS_REQUEST__INIT;
    ga.id = id;
    ga.basis = COMMON__V1__BASIS__VALUE__PRICE;
    r = call(g_eq.port, EQUITY_V1_PATH("GetAnalytics"), &ga,
             &common__v1__series_metrics__descriptor, NULL);
    expect_code(&r, FSR_OK, "GetAnalytics split");
    ck_assert_double_eq_tol(((Common__V1__SeriesMetrics *)r.resp)->total_return, 52.0 / 50.0 - 1,
                            1e-12);
    rpc_dispose(&r);
    bars_free(&b);
}
END_TEST

/* ---- GetAnalytics == SeriesAnalytics -------------------------------------------------- */

START_TEST(test_get_analytics_matches_series_analytics)
{
    REQUIRE_UP(g_eq);
    char id[64], bid[64];
    new_equity("AN", id);
    new_equity("BM", bid);
    bars b = bars_make(300, 1000, 7);
    bars m = bars_make(300, 1005, 13);
    rpc r = upsert(id, &b);
    expect_code(&r, FSR_OK, "UpsertPrices");
    rpc_dispose(&r);
    r = upsert(bid, &m);
    expect_code(&r, FSR_OK, "UpsertPrices benchmark");
    rpc_dispose(&r);
    Equity__V1__AddDividendRequest ad = EQUITY__V1__ADD_DIVIDEND_REQUEST__INIT;
    ad.id = id;
    ad.ex_date = b.bar[100].date;
    ad.amount = "1.25";
    r = call(g_eq.port, EQUITY_V1_PATH("AddDividend"), &ad, &equity__v1__dividend__descriptor,
             NULL);
    expect_code(&r, FSR_OK, "AddDividend");
    rpc_dispose(&r);

    for (int with_bench = 0; with_bench < 2; with_bench++) {
        Equity__V1__GetAnalyticsRequest ga = EQUITY__V1__GET_ANALYTICS_REQUEST__INIT;
        ga.id = id;
        ga.from = b.bar[10].date;
        ga.to = b.bar[250].date;
        if (with_bench)
            ga.benchmark_id = bid;
        rpc got = call(g_eq.port, EQUITY_V1_PATH("GetAnalytics"), &ga,
                       &common__v1__series_metrics__descriptor, NULL);
        expect_code(&got, FSR_OK, "GetAnalytics");

        /* The same data inline. */
        Common__V1__PricePoint pp[241], bp[300], *ppp[241], *bpp[300];
        for (int i = 0; i < 241; i++) {
            common__v1__price_point__init(&pp[i]);
            pp[i].date = b.bar[10 + i].date;
            pp[i].close = strtod(b.bar[10 + i].close, NULL);
            ppp[i] = &pp[i];
        }
        for (int i = 0; i < 300; i++) {
            common__v1__price_point__init(&bp[i]);
            bp[i].date = m.bar[i].date;
            bp[i].close = strtod(m.bar[i].close, NULL);
            bpp[i] = &bp[i];
        }
        Common__V1__DividendPoint dp = COMMON__V1__DIVIDEND_POINT__INIT, *dpp = &dp;
        dp.ex_date = b.bar[100].date;
        dp.amount = 1.25;
        Equity__V1__SeriesAnalyticsRequest sa = EQUITY__V1__SERIES_ANALYTICS_REQUEST__INIT;
        sa.prices = ppp;
        sa.n_prices = 241;
        sa.dividends = &dpp;
        sa.n_dividends = 1;
        Equity__V1__SeriesInput bi = EQUITY__V1__SERIES_INPUT__INIT;
        bi.prices = bpp;
        bi.n_prices = 241 + 5; /* the benchmark's bars up to the same `to` */
        if (with_bench)
            sa.benchmark = &bi;
        rpc want = call(g_eq.port, ANALYTICS_PATH("SeriesAnalytics"), &sa,
                        &common__v1__series_metrics__descriptor, NULL);
        expect_code(&want, FSR_OK, "SeriesAnalytics");
        ck_assert_msg(same_message(got.resp, want.resp), "GetAnalytics != SeriesAnalytics");
        Common__V1__SeriesMetrics *sm = (Common__V1__SeriesMetrics *)got.resp;
        ck_assert_int_eq(sm->observations, 240);
        ck_assert(sm->has_benchmark == (with_bench != 0));
        ck_assert_uint_eq(sm->n_var, 2);
        ck_assert_double_eq(sm->var[0]->confidence, 0.95);
        ck_assert_double_eq(sm->var[1]->confidence, 0.99);
        rpc_dispose(&got);
        rpc_dispose(&want);
    }

    /* PRICE basis: totalReturn = last / first - 1. */
    Equity__V1__GetAnalyticsRequest ga = EQUITY__V1__GET_ANALYTICS_REQUEST__INIT;
    ga.id = id;
    ga.basis = COMMON__V1__BASIS__VALUE__PRICE;
    r = call(g_eq.port, EQUITY_V1_PATH("GetAnalytics"), &ga,
             &common__v1__series_metrics__descriptor, NULL);
    expect_code(&r, FSR_OK, "GetAnalytics PRICE");
    double want = strtod(b.bar[299].close, NULL) / strtod(b.bar[0].close, NULL) - 1;
    ck_assert_msg(fabs(((Common__V1__SeriesMetrics *)r.resp)->total_return - want) <= 1e-12,
                  "totalReturn %.17g, want %.17g",
                  ((Common__V1__SeriesMetrics *)r.resp)->total_return, want);
    rpc_dispose(&r);

    /* Errors: a one-point range, a benchmark without overlap, unknown ids. */
    ga.from = b.bar[5].date;
    ga.to = b.bar[5].date;
    r = call(g_eq.port, EQUITY_V1_PATH("GetAnalytics"), &ga,
             &common__v1__series_metrics__descriptor, NULL);
    expect_invalid(&r, "from", "one-point range");
    ga.from = b.bar[0].date;
    ga.to = b.bar[4].date; /* the benchmark starts 5 days later */
    ga.benchmark_id = bid;
    r = call(g_eq.port, EQUITY_V1_PATH("GetAnalytics"), &ga,
             &common__v1__series_metrics__descriptor, NULL);
    expect_invalid(&r, "benchmarkId", "no overlap");
    ga.from = "";
    ga.to = "";
    ga.benchmark_id = "6f1c2d3e-0000-4000-8000-00000000f00d";
    r = call(g_eq.port, EQUITY_V1_PATH("GetAnalytics"), &ga,
             &common__v1__series_metrics__descriptor, NULL);
    expect_code(&r, FSR_NOT_FOUND, "unknown benchmark");
    rpc_dispose(&r);
    bars_free(&b);
    bars_free(&m);
}
END_TEST

/* ---- SeriesAnalytics vs the numpy reference ------------------------------------------- */

static double jnum(json_t *v)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        return strcmp(s, "NaN") == 0 ? NAN : strcmp(s, "Infinity") == 0 ? INFINITY : -INFINITY;
    }
    return json_number_value(v);
}

static void fill_series(json_t *ser, Common__V1__PricePoint ***pp, size_t *np,
                        Common__V1__DividendPoint ***dp, size_t *nd)
{
    json_t *dates = json_object_get(ser, "dates"), *close = json_object_get(ser, "close");
    json_t *divs = json_object_get(ser, "dividends");
    *np = json_array_size(dates);
    *pp = calloc(*np, sizeof(**pp));
    for (size_t i = 0; i < *np; i++) {
        Common__V1__PricePoint *p = malloc(sizeof(*p));
        common__v1__price_point__init(p);
        p->date = mut(json_string_value(json_array_get(dates, i)));
        p->close = json_number_value(json_array_get(close, i));
        (*pp)[i] = p;
    }
    *nd = json_array_size(divs);
    *dp = calloc(*nd + 1, sizeof(**dp));
    for (size_t i = 0; i < *nd; i++) {
        Common__V1__DividendPoint *d = malloc(sizeof(*d));
        common__v1__dividend_point__init(d);
        d->ex_date = mut(json_string_value(json_object_get(json_array_get(divs, i), "ex_date")));
        d->amount = json_number_value(json_object_get(json_array_get(divs, i), "amount"));
        (*dp)[i] = d;
    }
}

static void near_rel(const char *what, double got, double want, double rel)
{
    if (isnan(want)) {
        ck_assert_msg(isnan(got), "%s: %.17g, want NaN", what, got);
        return;
    }
    ck_assert_msg(fabs(got - want) <= rel * fabs(want) + 1e-300, "%s: %.17g, want %.17g", what, got,
                  want);
}

static void near_abs(const char *what, double got, double want, double tol)
{
    ck_assert_msg(fabs(got - want) <= tol, "%s: %.17g, want %.17g", what, got, want);
}

START_TEST(test_series_analytics_reference)
{
    REQUIRE_UP(g_eq);
    json_error_t jerr;
    json_t *ref = json_load_file(EQ_REF_JSON, 0, &jerr);
    ck_assert_msg(ref != NULL, "%s: %s", EQ_REF_JSON, jerr.text);
    json_t *series = json_object_get(ref, "series");
    json_t *results = json_object_get(ref, "results");
    /* AAA vs BMK on both bases. */
    int checked = 0;
    for (size_t k = 0; k < json_array_size(results); k++) {
        json_t *res = json_array_get(results, k);
        json_t *bname = json_object_get(res, "benchmark");
        if (strcmp(json_string_value(json_object_get(res, "series")), "AAA") != 0 ||
            !json_is_string(bname))
            continue;
        bool price = strcmp(json_string_value(json_object_get(res, "basis")), "PRICE") == 0;
        Equity__V1__SeriesAnalyticsRequest sa = EQUITY__V1__SERIES_ANALYTICS_REQUEST__INIT;
        fill_series(json_object_get(series, "AAA"), &sa.prices, &sa.n_prices, &sa.dividends,
                    &sa.n_dividends);
        Equity__V1__SeriesInput bi = EQUITY__V1__SERIES_INPUT__INIT;
        fill_series(json_object_get(series, json_string_value(bname)), &bi.prices, &bi.n_prices,
                    &bi.dividends, &bi.n_dividends);
        sa.benchmark = &bi;
        sa.basis = price ? COMMON__V1__BASIS__VALUE__PRICE : COMMON__V1__BASIS__VALUE__TOTAL;
        rpc r = call(g_eq.port, ANALYTICS_PATH("SeriesAnalytics"), &sa,
                     &common__v1__series_metrics__descriptor, NULL);
        expect_code(&r, FSR_OK, "SeriesAnalytics AAA/BMK");
        const Common__V1__SeriesMetrics *g = (Common__V1__SeriesMetrics *)r.resp;
        json_t *m = json_object_get(res, "metrics");
#define REL(f) near_rel(#f, g->f, jnum(json_object_get(m, #f)), 1e-9)
        ck_assert_int_eq(g->observations, (int)json_integer_value(json_object_get(m, "n")));
        near_abs("total_return", g->total_return, jnum(json_object_get(m, "total_return")), 1e-12);
        REL(annualized_return);
        REL(annualized_return_arith);
        REL(annualized_volatility);
        REL(sharpe);
        REL(downside_deviation);
        REL(sortino);
        near_abs("max_drawdown", g->max_drawdown, jnum(json_object_get(m, "max_drawdown")), 1e-12);
        REL(calmar);
        REL(skewness);
        REL(excess_kurtosis);
        REL(beta);
        REL(alpha_annualized);
        REL(correlation);
        REL(tracking_error);
        REL(information_ratio);
        near_abs("alpha_daily", g->alpha_daily, jnum(json_object_get(m, "alpha_daily")), 1e-12);
#undef REL
        ck_assert_str_eq(
            g->max_drawdown_peak_date,
            json_string_value(json_object_get(json_object_get(m, "max_drawdown_peak"), "date")));
        ck_assert_str_eq(
            g->max_drawdown_trough_date,
            json_string_value(json_object_get(json_object_get(m, "max_drawdown_trough"), "date")));
        json_t *rec = json_object_get(m, "max_drawdown_recovery");
        ck_assert_str_eq(g->max_drawdown_recovery_date,
                         json_is_object(rec) ? json_string_value(json_object_get(rec, "date"))
                                             : "");
        json_t *var = json_object_get(m, "var");
        ck_assert_uint_eq(g->n_var, json_array_size(var));
        for (size_t i = 0; i < g->n_var; i++) {
            json_t *v = json_array_get(var, i);
            const Common__V1__VarEstimate *e = g->var[i];
            ck_assert_double_eq(e->confidence, jnum(json_object_get(v, "confidence")));
            near_abs("historical", e->historical, jnum(json_object_get(v, "historical")), 1e-12);
            near_abs("historical_lower", e->historical_lower,
                     jnum(json_object_get(v, "historical_lower")), 1e-12);
            near_abs("historical_inverted_cdf", e->historical_inverted_cdf,
                     jnum(json_object_get(v, "historical_inverted_cdf")), 1e-12);
            near_abs("cvar_historical", e->cvar_historical,
                     jnum(json_object_get(v, "cvar_historical")), 1e-12);
            near_abs("gaussian", e->gaussian, jnum(json_object_get(v, "gaussian")), 1e-12);
            near_abs("es_gaussian", e->es_gaussian, jnum(json_object_get(v, "es_gaussian")), 1e-12);
            near_abs("cornish_fisher", e->cornish_fisher,
                     jnum(json_object_get(v, "cornish_fisher")), 1e-12);
        }
        /* Calendar-year returns. */
        json_t *pr = json_object_get(res, "period_returns");
        for (size_t i = 0; i < json_array_size(pr); i++) {
            json_t *p = json_array_get(pr, i);
            const char *label = json_string_value(json_object_get(p, "label"));
            if (strlen(label) != 4)
                continue;
            bool found = false;
            for (size_t j = 0; j < g->n_period_returns; j++) {
                if (strcmp(g->period_returns[j]->label, label) != 0)
                    continue;
                found = true;
                ck_assert_str_eq(g->period_returns[j]->end_close,
                                 json_string_value(json_object_get(p, "end_close")));
                near_abs(label, g->period_returns[j]->total_return,
                         jnum(json_object_get(p, "total_return")), 1e-12);
            }
            ck_assert_msg(found, "no period return %s", label);
        }
        checked++;
        rpc_dispose(&r);
        for (size_t i = 0; i < sa.n_prices; i++)
            free(sa.prices[i]);
        for (size_t i = 0; i < sa.n_dividends; i++)
            free(sa.dividends[i]);
        for (size_t i = 0; i < bi.n_prices; i++)
            free(bi.prices[i]);
        for (size_t i = 0; i < bi.n_dividends; i++)
            free(bi.dividends[i]);
        free(sa.prices);
        free(sa.dividends);
        free(bi.prices);
        free(bi.dividends);
    }
    ck_assert_int_eq(checked, 2);
    json_decref(ref);
}
END_TEST

/* ---- stateless errors and Covariance ---------------------------------------------------- */

START_TEST(test_stateless_errors_and_covariance)
{
    REQUIRE_UP(g_eq);
    Common__V1__PricePoint p0 = COMMON__V1__PRICE_POINT__INIT, p1 = p0, *pp[2] = { &p0, &p1 };
    p0.date = "2024-01-02";
    p0.close = 100;
    Equity__V1__SeriesAnalyticsRequest sa = EQUITY__V1__SERIES_ANALYTICS_REQUEST__INIT;
    sa.prices = pp;
    sa.n_prices = 1;
    rpc r = call(g_eq.port, ANALYTICS_PATH("SeriesAnalytics"), &sa,
                 &common__v1__series_metrics__descriptor, NULL);
    expect_invalid(&r, "prices", "one price");
    p1.date = "2024-01-01"; /* descending */
    p1.close = 101;
    sa.n_prices = 2;
    r = call(g_eq.port, ANALYTICS_PATH("SeriesAnalytics"), &sa,
             &common__v1__series_metrics__descriptor, NULL);
    expect_invalid(&r, "prices", "descending dates");
    p1.date = "2024-01-03";
    Equity__V1__SeriesInput bi = EQUITY__V1__SERIES_INPUT__INIT;
    Common__V1__PricePoint b0 = COMMON__V1__PRICE_POINT__INIT, *bp[1] = { &b0 };
    b0.date = "2024-01-02";
    b0.close = -3;
    bi.prices = bp;
    bi.n_prices = 1;
    sa.benchmark = &bi;
    r = call(g_eq.port, ANALYTICS_PATH("SeriesAnalytics"), &sa,
             &common__v1__series_metrics__descriptor, NULL);
    expect_invalid(&r, "benchmark.prices", "bad benchmark");

    /* Covariance of two return series, by hand. */
    double x[4] = { 0.01, -0.02, 0.03, 0.00 }, y[4] = { 0.02, -0.01, 0.01, 0.01 };
    Equity__V1__NamedSeries s1 = EQUITY__V1__NAMED_SERIES__INIT, s2 = s1, *ss[2] = { &s1, &s2 };
    s1.id = "x";
    s1.returns = x;
    s1.n_returns = 4;
    s2.id = "y";
    s2.returns = y;
    s2.n_returns = 4;
    double w[2] = { 0.5, 0.3 };
    Equity__V1__CovarianceRequest cr = EQUITY__V1__COVARIANCE_REQUEST__INIT;
    cr.series = ss;
    cr.n_series = 2;
    cr.weights = w;
    cr.n_weights = 2;
    r = call(g_eq.port, ANALYTICS_PATH("Covariance"), &cr,
             &common__v1__covariance_result__descriptor, NULL);
    expect_code(&r, FSR_OK, "Covariance");
    Common__V1__CovarianceResult *c = (Common__V1__CovarianceResult *)r.resp;
    double mx = 0.005, my = 0.0075, cxx = 0, cyy = 0, cxy = 0;
    for (int i = 0; i < 4; i++) {
        cxx += (x[i] - mx) * (x[i] - mx);
        cyy += (y[i] - my) * (y[i] - my);
        cxy += (x[i] - mx) * (y[i] - my);
    }
    cxx /= 3;
    cyy /= 3;
    cxy /= 3;
    ck_assert_int_eq(c->observations, 4);
    ck_assert_uint_eq(c->n_covariance, 2);
    near_abs("cov xx", c->covariance[0]->values[0], cxx, 1e-15);
    near_abs("cov xy", c->covariance[0]->values[1], cxy, 1e-15);
    near_abs("cov yy", c->covariance[1]->values[1], cyy, 1e-15);
    near_abs("corr", c->correlation[1]->values[0], cxy / sqrt(cxx * cyy), 1e-12);
    double var = 0.25 * cxx + 0.09 * cyy + 2 * 0.15 * cxy;
    near_rel("portfolio vol", c->portfolio_volatility, sqrt(var * 252), 1e-12);
    ck_assert_uint_eq(c->n_risk_contributions, 2);
    near_abs("rc sum", c->risk_contributions[0] + c->risk_contributions[1], 1.0, 1e-12);
    ck_assert_str_eq(c->ids[1], "y");
    rpc_dispose(&r);
    w[1] = 0.6; /* sums above 1 */
    r = call(g_eq.port, ANALYTICS_PATH("Covariance"), &cr,
             &common__v1__covariance_result__descriptor, NULL);
    expect_invalid(&r, "weights", "weights above 1");
    cr.n_series = 1;
    cr.n_weights = 0;
    r = call(g_eq.port, ANALYTICS_PATH("Covariance"), &cr,
             &common__v1__covariance_result__descriptor, NULL);
    expect_invalid(&r, "series", "one series");
}
END_TEST

/* ---- UpdateEquity / DeleteEquity, the quote-cache race, GetCovariance ----------------- */

/*
 * The TCase "equity_writes" runs fsr-portfolio (its CountHolders answers DeleteEquity) and
 * three fsr-equity instances on the same database: g_eq knows the portfolio service,
 * g_eq_nopf is told a port where nothing listens, g_eq_race delays its quote-cache writes
 * (EQ_TEST_QUOTE_CACHE_DELAY_MS) so that a price write can land between GetQuote's read of
 * Postgres and its cache write.
 */
static proc g_eq_nopf, g_eq_race;

#define RACE_DELAY_MS 1500

static void start_writes(void)
{
    start_portfolio();
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", g_pf.port);
    setenv("PORTFOLIO_SERVICE_ADDR", addr, 1);
    svc_start(&EQUITY, "w", &g_eq);
    setenv("PORTFOLIO_SERVICE_ADDR", "127.0.0.1:1", 1); /* nothing listens on port 1 */
    svc_start(&EQUITY, "nopf", &g_eq_nopf);
    unsetenv("PORTFOLIO_SERVICE_ADDR");
    char delay[16];
    snprintf(delay, sizeof(delay), "%d", RACE_DELAY_MS);
    setenv("EQ_TEST_QUOTE_CACHE_DELAY_MS", delay, 1);
    svc_start(&EQUITY, "race", &g_eq_race);
    unsetenv("EQ_TEST_QUOTE_CACHE_DELAY_MS");
}

static void stop_writes(void)
{
    proc_stop(&g_eq_race);
    proc_stop(&g_eq_nopf);
    proc_stop(&g_eq);
    stop_portfolio();
}

static rpc update_equity(int port, Equity__V1__UpdateEquityRequest *u)
{
    return call(port, EQUITY_V1_PATH("UpdateEquity"), u, &equity__v1__equity__descriptor, NULL);
}

static rpc delete_equity(int port, const char *id)
{
    Equity__V1__DeleteEquityRequest d = EQUITY__V1__DELETE_EQUITY_REQUEST__INIT;
    d.id = mut(id);
    return call(port, EQUITY_V1_PATH("DeleteEquity"), &d, &google__protobuf__empty__descriptor,
                NULL);
}

static rpc get_equity(int port, const char *id)
{
    Equity__V1__GetEquityRequest g = EQUITY__V1__GET_EQUITY_REQUEST__INIT;
    g.id = mut(id);
    return call(port, EQUITY_V1_PATH("GetEquity"), &g, &equity__v1__equity__descriptor, NULL);
}

START_TEST(test_update_equity)
{
    REQUIRE_UP(g_eq);
    char id[64], id2[64], sym[32];
    new_equity("UP", id);
    new_equity("UQ", id2);
    snprintf(sym, sizeof(sym), "MD%XUP", (unsigned)getpid());

    /* Only the fields that are set change. */
    Equity__V1__UpdateEquityRequest u = EQUITY__V1__UPDATE_EQUITY_REQUEST__INIT;
    Google__Protobuf__StringValue name = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    Google__Protobuf__StringValue isin = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    Google__Protobuf__StringValue s = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    Google__Protobuf__StringValue cur = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    Google__Protobuf__StringValue ex = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    Google__Protobuf__Int32Value lot = GOOGLE__PROTOBUF__INT32_VALUE__INIT;
    u.id = id;
    name.value = "Renamed Holdings";
    lot.value = 100;
    isin.value = "us0378331005"; /* upper-cased, check digit valid */
    u.name = &name;
    u.lot_size = &lot;
    u.isin = &isin;
    rpc r = update_equity(g_eq.port, &u);
    expect_code(&r, FSR_OK, "UpdateEquity");
    Equity__V1__Equity *e = (Equity__V1__Equity *)r.resp;
    ck_assert_str_eq(e->name, "Renamed Holdings");
    ck_assert_int_eq(e->lot_size, 100);
    ck_assert_str_eq(e->isin, "US0378331005");
    ck_assert_str_eq(e->symbol, sym);
    ck_assert_str_eq(e->sector, "Testing");
    ck_assert_str_eq(e->currency, "USD");
    ck_assert(e->updated_at->seconds > e->created_at->seconds ||
              (e->updated_at->seconds == e->created_at->seconds &&
               e->updated_at->nanos > e->created_at->nanos));
    rpc_dispose(&r);

    /* "" clears the ISIN; absent fields stay. */
    Equity__V1__UpdateEquityRequest u2 = EQUITY__V1__UPDATE_EQUITY_REQUEST__INIT;
    u2.id = id;
    isin.value = "";
    u2.isin = &isin;
    r = update_equity(g_eq.port, &u2);
    expect_code(&r, FSR_OK, "UpdateEquity clear isin");
    ck_assert_str_eq(((Equity__V1__Equity *)r.resp)->isin, "");
    ck_assert_str_eq(((Equity__V1__Equity *)r.resp)->name, "Renamed Holdings");
    ck_assert_int_eq(((Equity__V1__Equity *)r.resp)->lot_size, 100);
    rpc_dispose(&r);

    /* Validation as on create, nothing written. */
    u2.isin = NULL;
    lot.value = 0;
    u2.lot_size = &lot;
    r = update_equity(g_eq.port, &u2);
    expect_invalid(&r, "lotSize", "lot size 0");
    u2.lot_size = NULL;
    cur.value = "usd";
    u2.currency = &cur;
    r = update_equity(g_eq.port, &u2);
    expect_invalid(&r, "currency", "lower-case currency");
    cur.value = "XYZ";
    r = update_equity(g_eq.port, &u2);
    expect_invalid(&r, "currency", "unknown currency");
    u2.currency = NULL;
    s.value = "";
    u2.symbol = &s;
    r = update_equity(g_eq.port, &u2);
    expect_invalid(&r, "symbol", "empty symbol");
    u2.symbol = NULL;
    isin.value = "US0378331006";
    u2.isin = &isin;
    r = update_equity(g_eq.port, &u2);
    expect_invalid(&r, "isin", "bad check digit");
    u2.isin = NULL;
    u2.id = "not-a-uuid";
    r = update_equity(g_eq.port, &u2);
    expect_invalid(&r, "id", "bad id");
    r = get_equity(g_eq.port, id);
    expect_code(&r, FSR_OK, "GetEquity");
    ck_assert_str_eq(((Equity__V1__Equity *)r.resp)->currency, "USD");
    ck_assert_int_eq(((Equity__V1__Equity *)r.resp)->lot_size, 100);
    rpc_dispose(&r);

    /* Symbol unique per exchange: the second equity cannot take the first one's symbol on
     * the same exchange, but can on another. */
    Equity__V1__UpdateEquityRequest u3 = EQUITY__V1__UPDATE_EQUITY_REQUEST__INIT;
    u3.id = id2;
    char lower[32];
    snprintf(lower, sizeof(lower), "md%xup", (unsigned)getpid());
    s.value = lower;
    u3.symbol = &s;
    r = update_equity(g_eq.port, &u3);
    expect_code(&r, FSR_ALREADY_EXISTS, "UpdateEquity duplicate symbol");
    rpc_dispose(&r);
    ex.value = "XOTH";
    u3.exchange = &ex;
    r = update_equity(g_eq.port, &u3);
    expect_code(&r, FSR_OK, "UpdateEquity symbol on another exchange");
    ck_assert_str_eq(((Equity__V1__Equity *)r.resp)->symbol, sym);
    ck_assert_str_eq(((Equity__V1__Equity *)r.resp)->exchange, "XOTH");
    rpc_dispose(&r);

    /* A cached quote carries the symbol: an update invalidates it. */
    bars b = bars_make(2, 500, 3);
    r = upsert(id, &b);
    expect_code(&r, FSR_OK, "UpsertPrices");
    rpc_dispose(&r);
    r = get_quote(id);
    expect_code(&r, FSR_OK, "GetQuote");
    ck_assert_str_eq(((Equity__V1__Quote *)r.resp)->symbol, sym);
    rpc_dispose(&r);
    char key[128];
    snprintf(key, sizeof(key), "eq:quote:%s", id);
    ck_assert_int_eq(redis_wait_exists(key), 1);
    char newsym[32];
    snprintf(newsym, sizeof(newsym), "MD%XUZ", (unsigned)getpid());
    s.value = newsym;
    u3.id = id;
    u3.exchange = NULL;
    r = update_equity(g_eq.port, &u3);
    expect_code(&r, FSR_OK, "UpdateEquity symbol");
    rpc_dispose(&r);
    ck_assert_int_eq(redis_exists(key), 0);
    r = get_quote(id);
    expect_code(&r, FSR_OK, "GetQuote after update");
    ck_assert_str_eq(((Equity__V1__Quote *)r.resp)->symbol, newsym);
    rpc_dispose(&r);
    bars_free(&b);

    u3.id = "6f1c2d3e-0000-4000-8000-00000000f00d";
    r = update_equity(g_eq.port, &u3);
    expect_code(&r, FSR_NOT_FOUND, "UpdateEquity unknown");
    rpc_dispose(&r);
}
END_TEST

static long count_rows(const char *table, const char *id)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE equity_id = '%s'", table, id);
    return db_long("equity", sql);
}

START_TEST(test_delete_equity_held_then_free)
{
    REQUIRE_UP(g_eq);
    REQUIRE_UP(g_pf);
    char id[64];
    new_equity("DEL", id);
    bars b = bars_make(5, 600, 9);
    rpc r = upsert(id, &b);
    expect_code(&r, FSR_OK, "UpsertPrices");
    rpc_dispose(&r);
    Equity__V1__AddDividendRequest ad = EQUITY__V1__ADD_DIVIDEND_REQUEST__INIT;
    ad.id = id;
    ad.ex_date = b.bar[2].date;
    ad.amount = "0.25";
    r = call(g_eq.port, EQUITY_V1_PATH("AddDividend"), &ad, &equity__v1__dividend__descriptor,
             NULL);
    expect_code(&r, FSR_OK, "AddDividend");
    rpc_dispose(&r);
    Equity__V1__AddSplitRequest as = EQUITY__V1__ADD_SPLIT_REQUEST__INIT;
    as.id = id;
    as.ex_date = b.bar[3].date;
    as.ratio = "2";
    r = call(g_eq.port, EQUITY_V1_PATH("AddSplit"), &as, &equity__v1__split__descriptor, NULL);
    expect_code(&r, FSR_OK, "AddSplit");
    rpc_dispose(&r);
    r = get_quote(id);
    expect_code(&r, FSR_OK, "GetQuote");
    rpc_dispose(&r);
    char key[128];
    snprintf(key, sizeof(key), "eq:quote:%s", id);
    ck_assert_int_eq(redis_wait_exists(key), 1);

    /* Held in one portfolio (a constituent row, whatever its quantity): refused. */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "WITH p AS (INSERT INTO portfolios (name, base_currency) VALUES ('held %s', 'USD')"
             " RETURNING id) INSERT INTO constituents (portfolio_id, instrument_type,"
             " instrument_id, quantity) SELECT id, 'EQUITY', '%s', 0 FROM p RETURNING 1",
             id, id);
    ck_assert_int_eq(db_long("portfolio", sql), 1);
    r = delete_equity(g_eq.port, id);
    expect_code(&r, FSR_FAILED_PRECONDITION, "DeleteEquity held");
    ck_assert_msg(strstr(r.message, "held in 1 portfolio") != NULL, "message: %s", r.message);
    rpc_dispose(&r);
    ck_assert_int_eq(bar_count(id), 5);
    r = get_equity(g_eq.port, id);
    expect_code(&r, FSR_OK, "GetEquity after refused delete");
    rpc_dispose(&r);

    /* No longer held: deleted with its prices, dividends and splits; the quote is gone. */
    snprintf(sql, sizeof(sql),
             "WITH d AS (DELETE FROM constituents WHERE instrument_id = '%s' RETURNING 1)"
             " SELECT count(*) FROM d",
             id);
    ck_assert_int_eq(db_long("portfolio", sql), 1);
    r = delete_equity(g_eq.port, id);
    expect_code(&r, FSR_OK, "DeleteEquity");
    rpc_dispose(&r);
    ck_assert_int_eq(bar_count(id), 0);
    ck_assert_int_eq(count_rows("dividends", id), 0);
    ck_assert_int_eq(count_rows("splits", id), 0);
    ck_assert_int_eq(redis_exists(key), 0);
    r = get_equity(g_eq.port, id);
    expect_code(&r, FSR_NOT_FOUND, "GetEquity after delete");
    rpc_dispose(&r);
    r = get_quote(id);
    expect_code(&r, FSR_NOT_FOUND, "GetQuote after delete");
    rpc_dispose(&r);
    r = delete_equity(g_eq.port, id);
    expect_code(&r, FSR_NOT_FOUND, "DeleteEquity again");
    rpc_dispose(&r);
    r = delete_equity(g_eq.port, "nope");
    expect_invalid(&r, "id", "DeleteEquity bad id");
    bars_free(&b);
}
END_TEST

START_TEST(test_delete_equity_portfolio_unavailable)
{
    REQUIRE_UP(g_eq_nopf);
    /* The instance whose PORTFOLIO_SERVICE_ADDR points where nothing listens. */
    char sym[32];
    snprintf(sym, sizeof(sym), "MD%XNOPF", (unsigned)getpid());
    Equity__V1__CreateEquityRequest req = EQUITY__V1__CREATE_EQUITY_REQUEST__INIT;
    req.symbol = sym;
    req.name = "Cannot Delete";
    req.exchange = "XTST";
    req.currency = "USD";
    req.sector = "Testing";
    rpc r = call(g_eq_nopf.port, EQUITY_V1_PATH("CreateEquity"), &req,
                 &equity__v1__equity__descriptor, NULL);
    expect_code(&r, FSR_OK, "CreateEquity");
    char id[64];
    snprintf(id, sizeof(id), "%s", ((Equity__V1__Equity *)r.resp)->id);
    rpc_dispose(&r);
    bars b = bars_make(3, 700, 5);
    Equity__V1__UpsertPricesRequest up = EQUITY__V1__UPSERT_PRICES_REQUEST__INIT;
    up.id = id;
    up.bars = b.ptr;
    up.n_bars = b.n;
    r = call(g_eq_nopf.port, EQUITY_V1_PATH("UpsertPrices"), &up,
             &equity__v1__upsert_prices_response__descriptor, NULL);
    expect_code(&r, FSR_OK, "UpsertPrices");
    rpc_dispose(&r);

    r = delete_equity(g_eq_nopf.port, id);
    expect_code(&r, FSR_UNAVAILABLE, "DeleteEquity without the portfolio service");
    ck_assert_str_eq(r.message, "portfolio service unavailable, cannot check holdings");
    rpc_dispose(&r);
    ck_assert_int_eq(bar_count(id), 3);
    r = get_equity(g_eq_nopf.port, id);
    expect_code(&r, FSR_OK, "GetEquity: nothing deleted");
    rpc_dispose(&r);
    bars_free(&b);
}
END_TEST

/*
 * The stale-quote race: GetQuote misses the cache and reads Postgres; a price write commits
 * and invalidates the cache; only then does GetQuote's cache write arrive.  Without the
 * generation check that write re-caches the old quote for its whole TTL.  g_eq_race delays
 * the cache write by RACE_DELAY_MS after answering, so the write always lands inside it.
 */
START_TEST(test_quote_cache_race)
{
    REQUIRE_UP(g_eq_race);
    char sym[32];
    snprintf(sym, sizeof(sym), "MD%XRACE", (unsigned)getpid());
    Equity__V1__CreateEquityRequest req = EQUITY__V1__CREATE_EQUITY_REQUEST__INIT;
    req.symbol = sym;
    req.name = "Race";
    req.exchange = "XTST";
    req.currency = "USD";
    req.sector = "Testing";
    rpc r = call(g_eq_race.port, EQUITY_V1_PATH("CreateEquity"), &req,
                 &equity__v1__equity__descriptor, NULL);
    expect_code(&r, FSR_OK, "CreateEquity");
    char id[64], key[128];
    snprintf(id, sizeof(id), "%s", ((Equity__V1__Equity *)r.resp)->id);
    snprintf(key, sizeof(key), "eq:quote:%s", id);
    rpc_dispose(&r);

    bars b = bars_make(3, 800, 21);
    bars c = bars_make(1, 803, 77);
    Equity__V1__UpsertPricesRequest up = EQUITY__V1__UPSERT_PRICES_REQUEST__INIT;
    up.id = id;
    up.bars = b.ptr;
    up.n_bars = b.n;
    r = call(g_eq_race.port, EQUITY_V1_PATH("UpsertPrices"), &up,
             &equity__v1__upsert_prices_response__descriptor, NULL);
    expect_code(&r, FSR_OK, "UpsertPrices");
    rpc_dispose(&r);

    Equity__V1__GetQuoteRequest gq = EQUITY__V1__GET_QUOTE_REQUEST__INIT;
    gq.id = id;
    /* 1. A miss: Postgres says bar 2; the cache write is now pending. */
    r = call(g_eq_race.port, EQUITY_V1_PATH("GetQuote"), &gq, &equity__v1__quote__descriptor, NULL);
    expect_code(&r, FSR_OK, "GetQuote");
    ck_assert_str_eq(((Equity__V1__Quote *)r.resp)->close, b.bar[2].close);
    rpc_dispose(&r);
    ck_assert_int_eq(redis_exists(key), 0);
    /* 2. A newer bar commits and invalidates before that write arrives. */
    up.bars = c.ptr;
    up.n_bars = c.n;
    r = call(g_eq_race.port, EQUITY_V1_PATH("UpsertPrices"), &up,
             &equity__v1__upsert_prices_response__descriptor, NULL);
    expect_code(&r, FSR_OK, "UpsertPrices newer");
    rpc_dispose(&r);
    /* 3. The stale write has had its chance: it must not have cached bar 2. */
    sleep_ms(RACE_DELAY_MS + 700);
    ck_assert_int_eq(redis_exists(key), 0);
    r = call(g_eq_race.port, EQUITY_V1_PATH("GetQuote"), &gq, &equity__v1__quote__descriptor, NULL);
    expect_code(&r, FSR_OK, "GetQuote after the write");
    ck_assert_str_eq(((Equity__V1__Quote *)r.resp)->close, c.bar[0].close);
    ck_assert_str_eq(((Equity__V1__Quote *)r.resp)->date, c.bar[0].date);
    rpc_dispose(&r);
    /* 4. Without a write in between, the (delayed) cache write does happen. */
    sleep_ms(RACE_DELAY_MS + 700);
    ck_assert_int_eq(redis_wait_exists(key), 1);
    r = call(g_eq_race.port, EQUITY_V1_PATH("GetQuote"), &gq, &equity__v1__quote__descriptor, NULL);
    expect_code(&r, FSR_OK, "GetQuote cached");
    ck_assert_str_eq(((Equity__V1__Quote *)r.resp)->close, c.bar[0].close);
    rpc_dispose(&r);
    bars_free(&b);
    bars_free(&c);
}
END_TEST

/* The same bars as PricePoints for the stateless Covariance. */
static void points_of(const bars *b, size_t from, size_t n, Common__V1__PricePoint *pp,
                      Common__V1__PricePoint **ptr)
{
    for (size_t i = 0; i < n; i++) {
        common__v1__price_point__init(&pp[i]);
        pp[i].date = b->bar[from + i].date;
        pp[i].close = strtod(b->bar[from + i].close, NULL);
        ptr[i] = &pp[i];
    }
}

static void same_cov(const Common__V1__CovarianceResult *got,
                     const Common__V1__CovarianceResult *want, size_t k)
{
    ck_assert_int_eq(got->observations, want->observations);
    ck_assert_str_eq(got->start_date, want->start_date);
    ck_assert_str_eq(got->end_date, want->end_date);
    ck_assert_uint_eq(got->n_covariance, k);
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < k; j++) {
            ck_assert_double_eq_tol(got->covariance[i]->values[j], want->covariance[i]->values[j],
                                    1e-15);
            ck_assert_double_eq_tol(got->correlation[i]->values[j], want->correlation[i]->values[j],
                                    1e-12);
        }
        ck_assert_double_eq_tol(got->volatilities[i], want->volatilities[i], 1e-12);
    }
    ck_assert_double_eq_tol(got->portfolio_volatility, want->portfolio_volatility, 1e-12);
}

START_TEST(test_get_covariance_stored)
{
    REQUIRE_UP(g_eq);
    char a[64], bb[64], cc[64];
    new_equity("CVA", a);
    new_equity("CVB", bb);
    new_equity("CVC", cc);
    /* A: days 0..59; B: days 0..59 without day 10; C: days 5..59.  Common: 5..59 but 10. */
    bars ba = bars_make(60, 900, 3), bb_all = bars_make(60, 900, 41), bc = bars_make(55, 905, 97);
    bars bbm = { calloc(59, sizeof(Equity__V1__PriceBar)), calloc(59, sizeof(void *)), 59 };
    for (size_t i = 0, k = 0; i < 60; i++) {
        if (i == 10)
            continue;
        bbm.bar[k] = bb_all.bar[i];
        bbm.ptr[k] = &bbm.bar[k];
        k++;
    }
    rpc r = upsert(a, &ba);
    expect_code(&r, FSR_OK, "UpsertPrices A");
    rpc_dispose(&r);
    r = upsert(bb, &bbm);
    expect_code(&r, FSR_OK, "UpsertPrices B");
    rpc_dispose(&r);
    r = upsert(cc, &bc);
    expect_code(&r, FSR_OK, "UpsertPrices C");
    rpc_dispose(&r);
    Equity__V1__AddDividendRequest ad = EQUITY__V1__ADD_DIVIDEND_REQUEST__INIT;
    ad.id = a;
    ad.ex_date = ba.bar[20].date;
    ad.amount = "0.75";
    r = call(g_eq.port, EQUITY_V1_PATH("AddDividend"), &ad, &equity__v1__dividend__descriptor,
             NULL);
    expect_code(&r, FSR_OK, "AddDividend");
    rpc_dispose(&r);

    char *ids[3] = { a, bb, cc };
    double w[3] = { 0.3, 0.3, 0.3 };
    Equity__V1__GetCovarianceRequest gc = EQUITY__V1__GET_COVARIANCE_REQUEST__INIT;
    gc.ids = ids;
    gc.n_ids = 3;
    gc.from = ba.bar[0].date;
    gc.to = ba.bar[59].date;
    gc.weights = w;
    gc.n_weights = 3;
    rpc got = call(g_eq.port, EQUITY_V1_PATH("GetCovariance"), &gc,
                   &common__v1__covariance_result__descriptor, NULL);
    expect_code(&got, FSR_OK, "GetCovariance");

    /* The same data through the stateless Covariance. */
    Common__V1__PricePoint pa[60], pb[59], pc[55], *qa[60], *qb[59], *qc[55];
    points_of(&ba, 0, 60, pa, qa);
    points_of(&bbm, 0, 59, pb, qb);
    points_of(&bc, 0, 55, pc, qc);
    Common__V1__DividendPoint dp = COMMON__V1__DIVIDEND_POINT__INIT, *dpp = &dp;
    dp.ex_date = ba.bar[20].date;
    dp.amount = 0.75;
    Equity__V1__NamedSeries s1 = EQUITY__V1__NAMED_SERIES__INIT, s2 = s1, s3 = s1;
    Equity__V1__NamedSeries *ss[3] = { &s1, &s2, &s3 };
    s1.id = a;
    s1.prices = qa;
    s1.n_prices = 60;
    s1.dividends = &dpp;
    s1.n_dividends = 1;
    s2.id = bb;
    s2.prices = qb;
    s2.n_prices = 59;
    s3.id = cc;
    s3.prices = qc;
    s3.n_prices = 55;
    Equity__V1__CovarianceRequest cr = EQUITY__V1__COVARIANCE_REQUEST__INIT;
    cr.series = ss;
    cr.n_series = 3;
    cr.weights = w;
    cr.n_weights = 3;
    rpc want = call(g_eq.port, ANALYTICS_PATH("Covariance"), &cr,
                    &common__v1__covariance_result__descriptor, NULL);
    expect_code(&want, FSR_OK, "Covariance");
    Common__V1__CovarianceResult *g = (Common__V1__CovarianceResult *)got.resp;
    ck_assert_int_eq(g->observations, 53); /* 54 common dates: 5..59 without 10 */
    ck_assert_str_eq(g->start_date, ba.bar[5].date);
    ck_assert_str_eq(g->ids[2], cc);
    same_cov(g, (Common__V1__CovarianceResult *)want.resp, 3);
    rpc_dispose(&got);
    rpc_dispose(&want);

    /* PRICE basis, no window: the last 10 common returns up to `to`. */
    gc.from = "";
    gc.lookback_days = 10;
    gc.basis = COMMON__V1__BASIS__VALUE__PRICE;
    gc.n_weights = 0;
    got = call(g_eq.port, EQUITY_V1_PATH("GetCovariance"), &gc,
               &common__v1__covariance_result__descriptor, NULL);
    expect_code(&got, FSR_OK, "GetCovariance lookback");
    points_of(&ba, 49, 11, pa, qa);
    points_of(&bbm, 48, 11, pb, qb); /* B's index is one lower after day 10 */
    points_of(&bc, 44, 11, pc, qc);
    s1.n_prices = s2.n_prices = s3.n_prices = 11;
    cr.basis = COMMON__V1__BASIS__VALUE__PRICE;
    cr.n_weights = 0;
    want = call(g_eq.port, ANALYTICS_PATH("Covariance"), &cr,
                &common__v1__covariance_result__descriptor, NULL);
    expect_code(&want, FSR_OK, "Covariance last 11");
    g = (Common__V1__CovarianceResult *)got.resp;
    ck_assert_int_eq(g->observations, 10);
    ck_assert_str_eq(g->end_date, ba.bar[59].date);
    same_cov(g, (Common__V1__CovarianceResult *)want.resp, 3);
    rpc_dispose(&got);
    rpc_dispose(&want);

    /* Errors name the field. */
    gc.n_ids = 1;
    r = call(g_eq.port, EQUITY_V1_PATH("GetCovariance"), &gc,
             &common__v1__covariance_result__descriptor, NULL);
    expect_invalid(&r, "ids", "one id");
    gc.n_ids = 3;
    gc.n_weights = 2;
    r = call(g_eq.port, EQUITY_V1_PATH("GetCovariance"), &gc,
             &common__v1__covariance_result__descriptor, NULL);
    expect_invalid(&r, "weights", "two weights for three ids");
    gc.n_weights = 0;
    gc.from = ba.bar[9].date;
    gc.to = ba.bar[8].date;
    r = call(g_eq.port, EQUITY_V1_PATH("GetCovariance"), &gc,
             &common__v1__covariance_result__descriptor, NULL);
    expect_invalid(&r, "to", "to before from");
    gc.from = ba.bar[0].date;
    gc.to = ba.bar[5].date; /* C has one price in the window */
    r = call(g_eq.port, EQUITY_V1_PATH("GetCovariance"), &gc,
             &common__v1__covariance_result__descriptor, NULL);
    expect_invalid(&r, "ids[2]", "one price");
    gc.to = ba.bar[59].date;
    ids[1] = mut("6f1c2d3e-0000-4000-8000-00000000abcd");
    r = call(g_eq.port, EQUITY_V1_PATH("GetCovariance"), &gc,
             &common__v1__covariance_result__descriptor, NULL);
    expect_code(&r, FSR_NOT_FOUND, "unknown id");
    ck_assert_str_eq(r.field, "ids[1]");
    rpc_dispose(&r);
    ids[1] = mut("bad");
    r = call(g_eq.port, EQUITY_V1_PATH("GetCovariance"), &gc,
             &common__v1__covariance_result__descriptor, NULL);
    expect_invalid(&r, "ids[1]", "malformed id");
    bars_free(&ba);
    bars_free(&bb_all);
    bars_free(&bc);
    free(bbm.bar);
    free(bbm.ptr);
}
END_TEST

/* ---- WatchQuotes ----------------------------------------------------------------------- */

typedef struct watch_rx {
    char date[8][16];
    char close[8][32];
    int n;
    bool done;
    fsr_code code;
    char field[64];
} watch_rx;

static void on_watch_msg(ProtobufCMessage *msg, void *arg)
{
    watch_rx *w = arg;
    const Equity__V1__Quote *q = (const Equity__V1__Quote *)msg;
    if (w->n < 8) {
        snprintf(w->date[w->n], sizeof(w->date[0]), "%s", q->date);
        snprintf(w->close[w->n], sizeof(w->close[0]), "%s", q->close);
    }
    w->n++;
}

static void on_watch_done(const fsr_result *res, void *arg)
{
    watch_rx *w = arg;
    w->code = res->status.code;
    if (res->status_details != NULL)
        details_field(res->status_details, res->status_details_len, w->field, sizeof(w->field));
    w->done = true;
}

/* Runs the test's loop for up to |ms| or until |w| holds |n| messages (or ended). */
static void pump_until(watch_rx *w, int n, int ms)
{
    for (int waited = 0; waited < ms && w->n < n && !w->done; waited += 5) {
        event_base_loop(fsr_loop_base(g_loop), EVLOOP_NONBLOCK);
        sleep_ms(5);
    }
}

static void start_watch(watch_rx *w, char **ids, size_t n, bool changes_only)
{
    memset(w, 0, sizeof(*w));
    Equity__V1__WatchQuotesRequest req = EQUITY__V1__WATCH_QUOTES_REQUEST__INIT;
    req.ids = ids;
    req.n_ids = n;
    req.changes_only = changes_only;
    fsr_call_opts opts = { .timeout_ms = 60000 };
    ck_assert_int_eq(fsr_channel_server_stream(channel_to(g_eq.port), EQUITY_V1_PATH("WatchQuotes"),
                                               &req.base, &equity__v1__quote__descriptor, &opts,
                                               on_watch_msg, on_watch_done, w),
                     0);
}

START_TEST(test_watch_quotes)
{
    REQUIRE_UP(g_eq);
    char id[64], other[64];
    new_equity("WQ", id);
    new_equity("WR", other);
    bars b = bars_make(3, 1100, 5);
    rpc r = upsert(id, &b);
    expect_code(&r, FSR_OK, "UpsertPrices");
    rpc_dispose(&r);

    char *ids[1] = { id };
    watch_rx w, c;
    start_watch(&w, ids, 1, false);
    pump_until(&w, 1, 5000);
    ck_assert_int_eq(w.n, 1); /* the current quote first */
    ck_assert_str_eq(w.close[0], b.bar[2].close);
    ck_assert_str_eq(w.date[0], b.bar[2].date);
    start_watch(&c, ids, 1, true); /* changes only: nothing yet */
    pump_until(&c, 1, 500);
    ck_assert_int_eq(c.n, 0);
    ck_assert(!c.done);

    /* A newer bar: both streams get it. */
    bars d = bars_make(1, 1103, 77);
    r = upsert(id, &d);
    expect_code(&r, FSR_OK, "UpsertPrices newer");
    rpc_dispose(&r);
    pump_until(&w, 2, 5000);
    pump_until(&c, 1, 5000);
    ck_assert_int_eq(w.n, 2);
    ck_assert_str_eq(w.date[1], d.bar[0].date);
    ck_assert_str_eq(w.close[1], d.bar[0].close);
    ck_assert_int_eq(c.n, 1);
    ck_assert_str_eq(c.close[0], d.bar[0].close);

    /* An older bar, the same latest bar again, another equity: the latest close of the
     * watched one does not change, so nothing is sent... */
    r = upsert(id, &b);
    expect_code(&r, FSR_OK, "UpsertPrices older");
    rpc_dispose(&r);
    r = upsert(id, &d);
    expect_code(&r, FSR_OK, "UpsertPrices same");
    rpc_dispose(&r);
    bars o = bars_make(2, 1200, 9);
    r = upsert(other, &o);
    expect_code(&r, FSR_OK, "UpsertPrices other");
    rpc_dispose(&r);
    /* ... and the next message is the next change. */
    bars e = bars_make(1, 1104, 123);
    r = upsert(id, &e);
    expect_code(&r, FSR_OK, "UpsertPrices next");
    rpc_dispose(&r);
    pump_until(&w, 3, 5000);
    pump_until(&w, 4, 300);
    ck_assert_int_eq(w.n, 3);
    ck_assert_str_eq(w.date[2], e.bar[0].date);
    ck_assert(!w.done);

    /* An unknown id ends the stream with NOT_FOUND naming it. */
    watch_rx u;
    char *bad[2] = { id, mut("6f1c2d3e-0000-4000-8000-00000000cafe") };
    start_watch(&u, bad, 2, false);
    pump_until(&u, 99, 5000);
    ck_assert(u.done);
    ck_assert_int_eq(u.code, FSR_NOT_FOUND);
    ck_assert_str_eq(u.field, "ids[1]");
    bad[1] = mut("x");
    start_watch(&u, bad, 2, false);
    pump_until(&u, 99, 5000);
    ck_assert(u.done);
    ck_assert_int_eq(u.code, FSR_INVALID_ARGUMENT);

    /* Closing the client's channel cancels both streams; the service carries on. */
    fsr_channel_free(g_ch);
    g_ch = NULL;
    ck_assert(w.done && c.done);
    r = upsert(id, &b);
    expect_code(&r, FSR_OK, "UpsertPrices after the watchers left");
    rpc_dispose(&r);
    r = get_quote(id);
    expect_code(&r, FSR_OK, "GetQuote after the watchers left");
    rpc_dispose(&r);
    bars_free(&b);
    bars_free(&d);
    bars_free(&e);
    bars_free(&o);
}
END_TEST

static Suite *equity_suite(void)
{
    Suite *s = suite_create("equity_market");
    TCase *tc = tcase_create("equity");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, start_equity, stop_equity);
    tcase_add_test(tc, test_upsert_10000_bars_then_list);
    tcase_add_test(tc, test_upsert_bad_bars_store_nothing);
    tcase_add_test(tc, test_quote_cache_and_price_updated);
    tcase_add_test(tc, test_dividends_and_splits);
    tcase_add_test(tc, test_get_analytics_matches_series_analytics);
    tcase_add_test(tc, test_series_analytics_reference);
    tcase_add_test(tc, test_stateless_errors_and_covariance);
    suite_add_tcase(s, tc);
    tc = tcase_create("equity_writes");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, start_writes, stop_writes);
    tcase_add_test(tc, test_update_equity);
    tcase_add_test(tc, test_delete_equity_held_then_free);
    tcase_add_test(tc, test_delete_equity_portfolio_unavailable);
    tcase_add_test(tc, test_quote_cache_race);
    tcase_add_test(tc, test_get_covariance_stored);
    tcase_add_test(tc, test_watch_quotes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (getenv("TEST_PG_HOST") == NULL || getenv("TEST_REDIS_PORT") == NULL) {
        fprintf(stderr, "equity_test: run me through with_deps.sh\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(g_tmp, sizeof(g_tmp), "%s/fsr-equity-it.XXXXXX", env_or("TMPDIR", "/tmp"));
    if (mkdtemp(g_tmp) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' pg-start '%s' '%s' equity portfolio 1>&2",
             env_or("FSR_DEPS_SH", "scripts/deps.sh"), getenv("TEST_PG_HOST"),
             env_or("TEST_PG_PORT", "5432"));
    if (system(cmd) != 0) {
        fprintf(stderr, "equity_test: cannot create the database\n");
        return 1;
    }
    SRunner *sr = srunner_create(equity_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (failed == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "equity_test: cannot remove %s\n", g_tmp);
    } else {
        fprintf(stderr, "equity_test: logs kept in %s\n", g_tmp);
    }
    (void)wait_healthy;
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
