/* SPDX-License-Identifier: MIT */
/*
 * The nanopb client SDK (lib/nano): gRPC framing of nanopb messages, interoperating with
 * protobuf-c (the services' encoding) both ways, and never allocating.  The binary is
 * linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free, so every
 * allocation made by our code and by the static nanopb runtime goes through the counters
 * below.
 */
#include "fsr_nano.h"

#include "fsr/status.h"
#include "equity_v1.fsr.h"
#include "fixed_income_v1.fsr.h"
#include "equity/v1/equity.pb-c.h"
#include "fixed_income/v1/fixed_income.pb-c.h"

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation counters (--wrap) --------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

/*
 * Only code between count_allocs() and allocs() is counted.  No Check assertion may run in
 * between: in fork mode each assertion reports its location to the parent, which allocates.
 */
static volatile bool counting;
static volatile int n_allocs; // volatile: malloc is a "leaf" builtin to the compiler

void *__wrap_malloc(size_t n)
{
    n_allocs = n_allocs + counting;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    n_allocs = n_allocs + counting;
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    n_allocs = n_allocs + counting;
    return __real_realloc(p, n);
}

void __wrap_free(void *p)
{
    n_allocs = n_allocs + (counting && p != NULL);
    __real_free(p);
}

static void count_allocs(void)
{
    n_allocs = 0;
    counting = true;
}

static int allocs(void)
{
    counting = false;
    return n_allocs;
}

/* ---- helpers ------------------------------------------------------------------------ */

static size_t prefix_len(const uint8_t *b)
{
    return (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4];
}

/* Frames a protobuf-c message the way the services send it. */
static size_t pbc_frame(const ProtobufCMessage *m, uint8_t *buf, size_t cap)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    ck_assert_uint_le(n + 5, cap);
    buf[0] = 0;
    buf[1] = (uint8_t)(n >> 24);
    buf[2] = (uint8_t)(n >> 16);
    buf[3] = (uint8_t)(n >> 8);
    buf[4] = (uint8_t)n;
    ck_assert_uint_eq(protobuf_c_message_pack(m, buf + 5), n);
    return n + 5;
}

static fixed_income_v1_BondAnalyticsRequest sample_request(void)
{
    fixed_income_v1_BondAnalyticsRequest r = fixed_income_v1_BondAnalyticsRequest_init_zero;
    r.has_terms = true;
    strcpy(r.terms.isin, "US912828ZT04");
    strcpy(r.terms.name, "UST 0.25 05/31/25");
    strcpy(r.terms.issuer, "US Treasury");
    strcpy(r.terms.currency, "USD");
    strcpy(r.terms.face, "1000.00");
    r.terms.coupon_rate = 0.0025;
    r.terms.frequency = 2;
    r.terms.day_count = common_v1_DayCount_Value_ACT_ACT_ICMA;
    strcpy(r.terms.issue_date, "2020-05-31");
    strcpy(r.terms.maturity_date, "2025-05-31");
    strcpy(r.settlement_date, "2021-03-15");
    r.which_input = fixed_income_v1_BondAnalyticsRequest_yield_tag;
    r.input.yield = 0.0041;
    return r;
}

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(test_nanopb_wrap_counts)
{
    // The counters see this file's allocations: a zero below means something.
    count_allocs();
    void *volatile p = malloc(16); // volatile: the compiler may not elide the pair
    free(p);
    ck_assert_int_eq(allocs(), 2);
}
END_TEST

START_TEST(test_nanopb_encode_bond_analytics_request)
{
    fixed_income_v1_BondAnalyticsRequest req = sample_request();
    uint8_t buf[1024];
    size_t len = 0, need = 0;

    count_allocs();
    int rv =
        fsr_nano_encode(&fixed_income_v1_BondAnalyticsRequest_msg, &req, buf, sizeof(buf), &len);
    int rv2 = fsr_nano_encoded_size(&fixed_income_v1_BondAnalyticsRequest_msg, &req, &need);
    ck_assert_int_eq(allocs(), 0);
    ck_assert_int_eq(rv, 0);
    ck_assert_int_eq(rv2, 0);
    ck_assert_uint_eq(need, len);
    ck_assert_uint_eq(buf[0], 0);
    ck_assert_uint_eq(prefix_len(buf) + FSR_NANO_PREFIX_LEN, len);

    // What the service decodes with protobuf-c.
    FixedIncome__V1__BondAnalyticsRequest *m =
        fixed_income__v1__bond_analytics_request__unpack(NULL, len - 5, buf + 5);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(m->terms);
    ck_assert_str_eq(m->terms->isin, "US912828ZT04");
    ck_assert_str_eq(m->terms->name, "UST 0.25 05/31/25");
    ck_assert_str_eq(m->terms->issuer, "US Treasury");
    ck_assert_str_eq(m->terms->currency, "USD");
    ck_assert_str_eq(m->terms->face, "1000.00");
    ck_assert_double_eq(m->terms->coupon_rate, 0.0025);
    ck_assert_int_eq(m->terms->frequency, 2);
    ck_assert_int_eq(m->terms->day_count, COMMON__V1__DAY_COUNT__VALUE__ACT_ACT_ICMA);
    ck_assert_str_eq(m->terms->issue_date, "2020-05-31");
    ck_assert_str_eq(m->terms->maturity_date, "2025-05-31");
    ck_assert_str_eq(m->settlement_date, "2021-03-15");
    ck_assert_int_eq(m->input_case, FIXED_INCOME__V1__BOND_ANALYTICS_REQUEST__INPUT_YIELD);
    ck_assert_double_eq(m->yield, 0.0041);
    fixed_income__v1__bond_analytics_request__free_unpacked(m, NULL);

    // The same bytes protobuf-c would send for the same message.
    FixedIncome__V1__BondTerms t = FIXED_INCOME__V1__BOND_TERMS__INIT;
    t.isin = "US912828ZT04";
    t.name = "UST 0.25 05/31/25";
    t.issuer = "US Treasury";
    t.currency = "USD";
    t.face = "1000.00";
    t.coupon_rate = 0.0025;
    t.frequency = 2;
    t.day_count = COMMON__V1__DAY_COUNT__VALUE__ACT_ACT_ICMA;
    t.issue_date = "2020-05-31";
    t.maturity_date = "2025-05-31";
    FixedIncome__V1__BondAnalyticsRequest pr = FIXED_INCOME__V1__BOND_ANALYTICS_REQUEST__INIT;
    pr.terms = &t;
    pr.settlement_date = "2021-03-15";
    pr.input_case = FIXED_INCOME__V1__BOND_ANALYTICS_REQUEST__INPUT_YIELD;
    pr.yield = 0.0041;
    uint8_t ref[1024];
    size_t ref_len = pbc_frame(&pr.base, ref, sizeof(ref));
    ck_assert_uint_eq(ref_len, len);
    ck_assert(memcmp(ref, buf, len) == 0);
}
END_TEST

START_TEST(test_nanopb_decode_bond_analytics_response)
{
    FixedIncome__V1__BondCashflow cf[3];
    FixedIncome__V1__BondCashflow *cfp[3];
    const char *dates[3] = { "2021-05-31", "2021-11-30", "2022-05-31" };
    for (int i = 0; i < 3; i++) {
        fixed_income__v1__bond_cashflow__init(&cf[i]);
        cf[i].date = (char *)(uintptr_t)dates[i];
        cf[i].amount = i == 2 ? 100.125 : 0.125;
        cf[i].kind = i == 2 ? FIXED_INCOME__V1__BOND_CASHFLOW__KIND__REDEMPTION
                            : FIXED_INCOME__V1__BOND_CASHFLOW__KIND__COUPON;
        cfp[i] = &cf[i];
    }
    FixedIncome__V1__BondAnalyticsResponse r = FIXED_INCOME__V1__BOND_ANALYTICS_RESPONSE__INIT;
    r.settlement_date = "2021-03-15";
    r.accrued = 0.07;
    r.clean_price = 99.5;
    r.dirty_price = 99.57;
    r.yield = 0.0041;
    r.macaulay_duration = 4.2;
    r.modified_duration = 4.19;
    r.convexity = 19.5;
    r.bpv = -0.0417;
    r.n_cashflows = 3;
    r.cashflows = cfp;
    r.previous_coupon_date = "2020-11-30";
    r.next_coupon_date = "2021-05-31";
    uint8_t buf[1024];
    size_t len = pbc_frame(&r.base, buf, sizeof(buf));

    static fixed_income_v1_BondAnalyticsResponse out; // ~20 KB: 601 cash flows
    memset(&out, 0xA5, sizeof(out));                  // decode must overwrite everything
    size_t used = 0;
    count_allocs();
    int rv = fsr_nano_decode(&fixed_income_v1_BondAnalyticsResponse_msg, &out, buf, len, &used);
    ck_assert_int_eq(allocs(), 0);
    ck_assert_int_eq(rv, 0);
    ck_assert_uint_eq(used, len);
    ck_assert_str_eq(out.bond_id, "");
    ck_assert_str_eq(out.settlement_date, "2021-03-15");
    ck_assert_double_eq(out.accrued, 0.07);
    ck_assert_double_eq(out.clean_price, 99.5);
    ck_assert_double_eq(out.dirty_price, 99.57);
    ck_assert_double_eq(out.yield, 0.0041);
    ck_assert_double_eq(out.macaulay_duration, 4.2);
    ck_assert_double_eq(out.modified_duration, 4.19);
    ck_assert_double_eq(out.convexity, 19.5);
    ck_assert_double_eq(out.bpv, -0.0417);
    ck_assert_uint_eq(out.cashflows_count, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(out.cashflows[i].date, dates[i]);
        ck_assert_double_eq(out.cashflows[i].amount, cf[i].amount);
        ck_assert_int_eq((int)out.cashflows[i].kind, (int)cf[i].kind);
    }
    ck_assert_str_eq(out.previous_coupon_date, "2020-11-30");
    ck_assert_str_eq(out.next_coupon_date, "2021-05-31");
    ck_assert_str_eq(out.quote_date, "");
}
END_TEST

START_TEST(test_nanopb_get_quote_roundtrip)
{
    // Request: nanopb -> protobuf-c.
    equity_v1_GetQuoteRequest req = equity_v1_GetQuoteRequest_init_zero;
    strcpy(req.id, "0b8e4d1c-5a43-4c1e-9b0a-6c2f1f0e9d11");
    uint8_t buf[512];
    size_t len;
    count_allocs();
    int rv = fsr_nano_encode(&equity_v1_GetQuoteRequest_msg, &req, buf, sizeof(buf), &len);
    ck_assert_int_eq(allocs(), 0);
    ck_assert_int_eq(rv, 0);
    Equity__V1__GetQuoteRequest *m = equity__v1__get_quote_request__unpack(NULL, len - 5, buf + 5);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->id, req.id);
    equity__v1__get_quote_request__free_unpacked(m, NULL);

    // Response: protobuf-c -> nanopb, with a Timestamp.
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1615766400;
    ts.nanos = 5000;
    Equity__V1__Quote q = EQUITY__V1__QUOTE__INIT;
    q.equity_id = req.id;
    q.symbol = "AAPL";
    q.currency = "USD";
    q.date = "2021-03-12";
    q.close = "121.03";
    q.previous_close = "119.98";
    q.change = 0.00875;
    q.updated_at = &ts;
    len = pbc_frame(&q.base, buf, sizeof(buf));
    equity_v1_Quote out;
    size_t used;
    count_allocs();
    rv = fsr_nano_decode(&equity_v1_Quote_msg, &out, buf, len, &used);
    ck_assert_int_eq(allocs(), 0);
    ck_assert_int_eq(rv, 0);
    ck_assert_str_eq(out.equity_id, req.id);
    ck_assert_str_eq(out.symbol, "AAPL");
    ck_assert_str_eq(out.currency, "USD");
    ck_assert_str_eq(out.date, "2021-03-12");
    ck_assert_str_eq(out.close, "121.03");
    ck_assert_str_eq(out.previous_close, "119.98");
    ck_assert_double_eq(out.change, 0.00875);
    ck_assert(out.has_updated_at);
    ck_assert_int_eq(out.updated_at.seconds, 1615766400);
    ck_assert_int_eq(out.updated_at.nanos, 5000);
}
END_TEST

START_TEST(test_nanopb_stream_of_messages)
{
    // Two messages back to back (a server stream), then a partial third.
    Equity__V1__Quote q = EQUITY__V1__QUOTE__INIT;
    uint8_t buf[512];
    q.symbol = "MSFT";
    size_t n1 = pbc_frame(&q.base, buf, sizeof(buf));
    q.symbol = "IBM";
    size_t n2 = pbc_frame(&q.base, buf + n1, sizeof(buf) - n1);
    size_t n3 = pbc_frame(&q.base, buf + n1 + n2, sizeof(buf) - n1 - n2);
    size_t total = n1 + n2 + n3 - 1;

    equity_v1_Quote out;
    size_t used, off = 0;
    ck_assert_int_eq(fsr_nano_decode(&equity_v1_Quote_msg, &out, buf, total, &used), 0);
    ck_assert_str_eq(out.symbol, "MSFT");
    off += used;
    ck_assert_int_eq(fsr_nano_decode(&equity_v1_Quote_msg, &out, buf + off, total - off, &used), 0);
    ck_assert_str_eq(out.symbol, "IBM");
    off += used;
    ck_assert_uint_eq(off, n1 + n2);
    size_t want = 0;
    ck_assert_int_eq(fsr_nano_peek(buf + off, total - off, &want), -EAGAIN);
    ck_assert_uint_eq(want, n3);
    used = 77;
    ck_assert_int_eq(fsr_nano_decode(&equity_v1_Quote_msg, &out, buf + off, total - off, &used),
                     -EAGAIN);
    ck_assert_uint_eq(used, 77);
    ck_assert_int_eq(fsr_nano_peek(buf, 4, &want), -EAGAIN);
}
END_TEST

START_TEST(test_nanopb_errors)
{
    fixed_income_v1_BondAnalyticsRequest req = sample_request();
    uint8_t buf[1024];
    size_t len = 12345, need;
    ck_assert_int_eq(fsr_nano_encoded_size(&fixed_income_v1_BondAnalyticsRequest_msg, &req, &need),
                     0);

    // Too small a buffer: FSR_E_TOO_LARGE, *len untouched; exactly enough works.
    count_allocs();
    int small =
        fsr_nano_encode(&fixed_income_v1_BondAnalyticsRequest_msg, &req, buf, need - 1, &len);
    int tiny = fsr_nano_encode(&fixed_income_v1_BondAnalyticsRequest_msg, &req, buf, 3, &len);
    size_t len_after = len;
    int exact = fsr_nano_encode(&fixed_income_v1_BondAnalyticsRequest_msg, &req, buf, need, &len);
    // A compressed message: never negotiated, so a protocol error.
    buf[0] = 1;
    fixed_income_v1_BondAnalyticsRequest back;
    size_t used;
    int compressed =
        fsr_nano_decode(&fixed_income_v1_BondAnalyticsRequest_msg, &back, buf, len, &used);
    // Garbage payload.
    buf[0] = 0;
    memset(buf + 5, 0xff, len - 5);
    int garbage =
        fsr_nano_decode(&fixed_income_v1_BondAnalyticsRequest_msg, &back, buf, len, &used);
    ck_assert_int_eq(allocs(), 0);
    ck_assert_int_eq(small, FSR_E_TOO_LARGE);
    ck_assert_int_eq(tiny, FSR_E_TOO_LARGE);
    ck_assert_uint_eq(len_after, 12345);
    ck_assert_int_eq(exact, 0);
    ck_assert_uint_eq(len, need);
    ck_assert_int_eq(compressed, FSR_E_PROTOCOL);
    ck_assert_int_eq(garbage, FSR_E_PROTOCOL);
}
END_TEST

START_TEST(test_nanopb_bounds)
{
    // A string longer than its max_size is rejected, not truncated, still without malloc.
    FixedIncome__V1__BondAnalyticsResponse r = FIXED_INCOME__V1__BOND_ANALYTICS_RESPONSE__INIT;
    r.settlement_date = "2021-03-15 and then some more text";
    uint8_t buf[64 * 1024];
    size_t len = pbc_frame(&r.base, buf, sizeof(buf));
    static fixed_income_v1_BondAnalyticsResponse out;
    size_t used;
    count_allocs();
    int rv = fsr_nano_decode(&fixed_income_v1_BondAnalyticsResponse_msg, &out, buf, len, &used);
    ck_assert_int_eq(allocs(), 0);
    ck_assert_int_eq(rv, FSR_E_PROTOCOL);

    // More cash flows than max_count (601): rejected; exactly 601 decode.
    static FixedIncome__V1__BondCashflow cf[602];
    static FixedIncome__V1__BondCashflow *cfp[602];
    for (int i = 0; i < 602; i++) {
        fixed_income__v1__bond_cashflow__init(&cf[i]);
        cf[i].date = "2030-01-01";
        cf[i].amount = i;
        cfp[i] = &cf[i];
    }
    r.settlement_date = "2021-03-15";
    r.cashflows = cfp;
    r.n_cashflows = 602;
    len = pbc_frame(&r.base, buf, sizeof(buf));
    count_allocs();
    rv = fsr_nano_decode(&fixed_income_v1_BondAnalyticsResponse_msg, &out, buf, len, &used);
    ck_assert_int_eq(allocs(), 0);
    ck_assert_int_eq(rv, FSR_E_PROTOCOL);
    r.n_cashflows = 601;
    len = pbc_frame(&r.base, buf, sizeof(buf));
    count_allocs();
    rv = fsr_nano_decode(&fixed_income_v1_BondAnalyticsResponse_msg, &out, buf, len, &used);
    ck_assert_int_eq(allocs(), 0);
    ck_assert_int_eq(rv, 0);
    ck_assert_uint_eq(out.cashflows_count, 601);
    ck_assert_double_eq(out.cashflows[600].amount, 600);
}
END_TEST

START_TEST(test_nanopb_paths_match_protos)
{
    // The SDK's path constants are the generated stubs' paths.
    ck_assert_str_eq(FSR_NANO_PATH_BOND_ANALYTICS,
                     FIXED_INCOME_V1_FIXED_INCOME_SERVICE_BOND_ANALYTICS_PATH);
    ck_assert_str_eq(FSR_NANO_PATH_GET_QUOTE, EQUITY_V1_EQUITY_SERVICE_GET_QUOTE_PATH);
}
END_TEST

static Suite *nanopb_suite(void)
{
    Suite *s = suite_create("nanopb");
    TCase *tc = tcase_create("frame");
    tcase_add_test(tc, test_nanopb_wrap_counts);
    tcase_add_test(tc, test_nanopb_encode_bond_analytics_request);
    tcase_add_test(tc, test_nanopb_decode_bond_analytics_response);
    tcase_add_test(tc, test_nanopb_get_quote_roundtrip);
    tcase_add_test(tc, test_nanopb_stream_of_messages);
    tcase_add_test(tc, test_nanopb_errors);
    tcase_add_test(tc, test_nanopb_bounds);
    tcase_add_test(tc, test_nanopb_paths_match_protos);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(nanopb_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
