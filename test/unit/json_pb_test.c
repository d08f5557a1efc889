/* SPDX-License-Identifier: MIT */
/* Unit tests for lib/json_pb.c: the proto3 JSON mapping over protobuf-c descriptors. */
#include "fsr/json.h"
#include "fsr/mem.h"
#include "fsr/status.h"

#include "json_test.pb-c.h"
#include "google/protobuf/any.pb-c.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EV_DESC (&fsrtest__v1__everything__descriptor)
typedef Fsrtest__V1__Everything Everything;

/* An allocator that counts live blocks and can be told to fail after |budget| successes. */
typedef struct counter {
    long live;
    long budget; /* < 0: unlimited */
} counter;

static void *cnt_alloc(void *data, size_t n)
{
    counter *c = data;
    if (c->budget == 0)
        return NULL;
    if (c->budget > 0)
        c->budget--;
    c->live++;
    return malloc(n);
}

static void cnt_free(void *data, void *p)
{
    counter *c = data;
    if (p) {
        c->live--;
        free(p);
    }
}

static Everything *parse_with(const char *json, ProtobufCAllocator *alloc)
{
    ProtobufCMessage *m = NULL;
    fsr_json_error err;
    int rv = fsr_json_to_pb(EV_DESC, json, strlen(json), alloc, &m, &err);
    ck_assert_msg(rv == 0, "parse of %s failed: [%s] %s", json, err.field, err.message);
    ck_assert_ptr_nonnull(m);
    return (Everything *)m;
}

static Everything *parse(const char *json)
{
    return parse_with(json, NULL);
}

static char *render(const void *msg, unsigned flags)
{
    fsr_json_opts opts = { flags };
    fsr_json_error err;
    char *out = NULL;
    size_t len = 0;
    int rv = fsr_pb_to_json(msg, &opts, &out, &len, &err);
    ck_assert_msg(rv == 0, "render failed: [%s] %s", err.field, err.message);
    ck_assert_uint_eq(len, strlen(out));
    return out;
}

static void free_msg(void *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
}

/* Parses |json| and checks that it renders back to exactly |expect| (NULL: |json| itself). */
static void check_roundtrip(const char *json, const char *expect)
{
    Everything *m = parse(json);
    char *out = render(m, 0);
    ck_assert_str_eq(out, expect ? expect : json);
    // and the output parses to a message that renders the same way
    Everything *m2 = parse(out);
    char *out2 = render(m2, 0);
    ck_assert_str_eq(out2, out);
    free(out2);
    free(out);
    free_msg(m2);
    free_msg(m);
}

/*
 * Checks that |json| is rejected as a |desc| with FSR_E_PROTOCOL, naming |field| and with a
 * message containing |msg|; and that the failed conversion left no allocation behind.
 */
static void expect_error_desc(const ProtobufCMessageDescriptor *desc, const char *json,
                              const char *field, const char *msg)
{
    counter cnt = { 0, -1 };
    ProtobufCAllocator alloc = { cnt_alloc, cnt_free, &cnt };
    ProtobufCMessage *m = (ProtobufCMessage *)0x1;
    fsr_json_error err;
    int rv = fsr_json_to_pb(desc, json, strlen(json), &alloc, &m, &err);
    ck_assert_msg(rv == FSR_E_PROTOCOL, "%s: expected FSR_E_PROTOCOL, got %d", json, rv);
    ck_assert_ptr_eq(m, (ProtobufCMessage *)0x1); // out-param untouched
    ck_assert_str_eq(err.field, field);
    ck_assert_msg(strstr(err.message, msg) != NULL, "%s: message \"%s\" lacks \"%s\"", json,
                  err.message, msg);
    ck_assert_int_eq(cnt.live, 0);
}

static void expect_error(const char *json, const char *field, const char *msg)
{
    expect_error_desc(EV_DESC, json, field, msg);
}

/* ---- scalars ---- */

START_TEST(test_json_pb_scalars_roundtrip)
{
    check_roundtrip("{\"scalars\":{\"fDouble\":1.5,\"fFloat\":0.25,\"fInt32\":-7,"
                    "\"fInt64\":\"-9007199254740993\",\"fUint32\":4294967295,"
                    "\"fUint64\":\"18446744073709551615\",\"fSint32\":-2147483648,"
                    "\"fSint64\":\"-9223372036854775808\",\"fFixed32\":7,\"fFixed64\":\"9\","
                    "\"fSfixed32\":-9,\"fSfixed64\":\"-10\",\"fBool\":true,"
                    "\"fString\":\"h\xc3\xa9\\\"\\\\\\n\\u0001\",\"fBytes\":\"AAEC/w==\","
                    "\"kind\":\"KIND_NEGATIVE\",\"color\":\"COLOR_GREEN\"}}",
                    NULL);
    Everything *m = parse("{\"scalars\":{\"fString\":\"h\xc3\xa9\\\"\\\\\\n\",\"fBytes\":"
                          "\"AAEC/w==\",\"fUint64\":\"18446744073709551615\"}}");
    ck_assert_str_eq(m->scalars->f_string, "h\xc3\xa9\"\\\n");
    ck_assert_uint_eq(m->scalars->f_bytes.len, 4);
    ck_assert_mem_eq(m->scalars->f_bytes.data, "\x00\x01\x02\xff", 4);
    ck_assert_uint_eq(m->scalars->f_uint64, UINT64_MAX);
    free_msg(m);
}
END_TEST

START_TEST(test_json_pb_defaults_omitted)
{
    Fsrtest__V1__Everything e;
    fsrtest__v1__everything__init(&e);
    Fsrtest__V1__Scalars s;
    fsrtest__v1__scalars__init(&s);
    char *out = render(&e, 0);
    ck_assert_str_eq(out, "{}");
    free(out);
    e.scalars = &s; // a set message with only defaults renders as {}
    out = render(&e, 0);
    ck_assert_str_eq(out, "{\"scalars\":{}}");
    free(out);
    out = render(&s, FSR_JSON_EMIT_DEFAULTS);
    ck_assert_str_eq(out, "{\"fDouble\":0,\"fFloat\":0,\"fInt32\":0,\"fInt64\":\"0\","
                          "\"fUint32\":0,\"fUint64\":\"0\",\"fSint32\":0,\"fSint64\":\"0\","
                          "\"fFixed32\":0,\"fFixed64\":\"0\",\"fSfixed32\":0,\"fSfixed64\":\"0\","
                          "\"fBool\":false,\"fString\":\"\",\"fBytes\":\"\","
                          "\"kind\":\"KIND_UNSPECIFIED\",\"color\":\"COLOR_UNSPECIFIED\"}");
    free(out);
    // emit-defaults also gives empty repeated fields and maps, but never unset messages
    e.scalars = NULL;
    out = render(&e, FSR_JSON_EMIT_DEFAULTS);
    ck_assert_ptr_nonnull(strstr(out, "\"bars\":[]"));
    ck_assert_ptr_nonnull(strstr(out, "\"weights\":{}"));
    ck_assert_ptr_null(strstr(out, "\"scalars\""));
    ck_assert_ptr_null(strstr(out, "\"cleanPrice\"")); // unset oneof
    free(out);
}
END_TEST

START_TEST(test_json_pb_options)
{
    Fsrtest__V1__Everything e;
    fsrtest__v1__everything__init(&e);
    Fsrtest__V1__Scalars s;
    fsrtest__v1__scalars__init(&s);
    s.f_int32 = 3;
    s.color = FSRTEST__V1__COLOR__COLOR_RED;
    e.scalars = &s;
    e.snake_case_2x = "x";
    char *out = render(&e, FSR_JSON_PROTO_NAMES | FSR_JSON_ENUMS_AS_INTS);
    ck_assert_str_eq(out, "{\"scalars\":{\"f_int32\":3,\"color\":1},\"snake_case_2x\":\"x\"}");
    free(out);
    out = render(&e, 0);
    ck_assert_str_eq(out,
                     "{\"scalars\":{\"fInt32\":3,\"color\":\"COLOR_RED\"},\"snakeCase2x\":\"x\"}");
    free(out);
    // an enum number the descriptor does not know renders as a number
    s.color = 42;
    out = render(&s, 0);
    ck_assert_str_eq(out, "{\"fInt32\":3,\"color\":42}");
    free(out);
}
END_TEST

START_TEST(test_json_pb_int64_precision)
{
    // 2^53 + 1 is not a double; it must survive both as a string and as a JSON integer
    Everything *m = parse("{\"scalars\":{\"fInt64\":\"9007199254740993\"},"
                          "\"ids\":[9007199254740993,\"-9223372036854775808\"]}");
    ck_assert_int_eq(m->scalars->f_int64, 9007199254740993LL);
    ck_assert_uint_eq(m->n_ids, 2);
    ck_assert_int_eq(m->ids[0], 9007199254740993LL);
    ck_assert_int_eq(m->ids[1], INT64_MIN);
    char *out = render(m, 0);
    ck_assert_str_eq(out, "{\"scalars\":{\"fInt64\":\"9007199254740993\"},"
                          "\"ids\":[\"9007199254740993\",\"-9223372036854775808\"]}");
    free(out);
    free_msg(m);
    // integral reals are fine while exact; past 2^53 the client must use a string
    m = parse("{\"scalars\":{\"fInt64\":1e15,\"fInt32\":1E3,\"fUint32\":2.0}}");
    ck_assert_int_eq(m->scalars->f_int64, 1000000000000000LL);
    ck_assert_int_eq(m->scalars->f_int32, 1000);
    ck_assert_uint_eq(m->scalars->f_uint32, 2);
    free_msg(m);
    expect_error("{\"scalars\":{\"fInt64\":1e17}}", "scalars.fInt64", "send it as a string");
}
END_TEST

START_TEST(test_json_pb_integer_errors)
{
    expect_error("{\"scalars\":{\"fInt32\":2147483648}}", "scalars.fInt32",
                 "out of range for int32");
    expect_error("{\"scalars\":{\"fInt32\":\"-2147483649\"}}", "scalars.fInt32",
                 "out of range for int32");
    expect_error("{\"scalars\":{\"fUint32\":-1}}", "scalars.fUint32", "out of range for uint32");
    expect_error("{\"scalars\":{\"fUint64\":\"-1\"}}", "scalars.fUint64",
                 "out of range for uint64");
    expect_error("{\"scalars\":{\"fUint64\":\"18446744073709551616\"}}", "scalars.fUint64",
                 "out of range for uint64");
    expect_error("{\"scalars\":{\"fInt64\":\"9223372036854775808\"}}", "scalars.fInt64",
                 "out of range for int64");
    expect_error("{\"scalars\":{\"fInt32\":1.5}}", "scalars.fInt32", "expected an integer");
    expect_error("{\"ids\":[1,2,3.25]}", "ids[2]", "expected an integer");
    expect_error("{\"scalars\":{\"fInt64\":\"1.0\"}}", "scalars.fInt64", "invalid value for int64");
    expect_error("{\"scalars\":{\"fInt64\":\" 1\"}}", "scalars.fInt64", "invalid value for int64");
    expect_error("{\"scalars\":{\"fInt64\":\"\"}}", "scalars.fInt64", "invalid value for int64");
    expect_error("{\"scalars\":{\"fInt64\":\"+1\"}}", "scalars.fInt64", "invalid value for int64");
    expect_error("{\"scalars\":{\"fSint32\":true}}", "scalars.fSint32", "got a boolean");
}
END_TEST

START_TEST(test_json_pb_huge_numbers)
{
    // beyond long long: jansson refuses the document, never wraps
    expect_error("{\"scalars\":{\"fInt64\":99999999999999999999}}", "", "invalid JSON");
    expect_error("{\"scalars\":{\"fUint64\":18446744073709551615}}", "", "invalid JSON");
    expect_error("{\"scalars\":{\"fDouble\":1e400}}", "", "invalid JSON");
    expect_error("{\"scalars\":{\"fFloat\":1e39}}", "scalars.fFloat", "out of range for float");
    expect_error("{\"scalars\":{\"fDouble\":\"1e400\"}}", "scalars.fDouble",
                 "out of range for double");
    Everything *m = parse("{\"scalars\":{\"fInt64\":-9223372036854775808,"
                          "\"fSfixed64\":9223372036854775807}}");
    ck_assert_int_eq(m->scalars->f_int64, INT64_MIN);
    ck_assert_int_eq(m->scalars->f_sfixed64, INT64_MAX);
    free_msg(m);
}
END_TEST

/* Significant digits of a number's text: mantissa digits without leading/trailing zeros. */
static size_t sig_digits(const char *s)
{
    char d[40];
    size_t n = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9')
            d[n++] = *s;
    size_t lo = 0;
    while (lo < n && d[lo] == '0')
        lo++;
    while (n > lo && d[n - 1] == '0')
        n--;
    return n - lo;
}

START_TEST(test_json_pb_doubles)
{
    check_roundtrip(
        "{\"values\":[0.1,0.3333333333333333,1e+300,-2.2250738585072014e-308,\"NaN\",\"Infinity\","
        "\"-Infinity\",1.2345678901234568e+20,2.5]}",
        NULL);
    Everything *m = parse("{\"values\":[0.1,\"0.30000000000000004\",\"-Infinity\",1e21,3],"
                          "\"scalars\":{\"fFloat\":0.1,\"fDouble\":\"NaN\"}}");
    ck_assert(m->values[0] == 0.1);
    ck_assert(m->values[1] == 0.1 + 0.2);
    ck_assert(isinf(m->values[2]) && m->values[2] < 0);
    ck_assert(m->values[3] == 1e21);
    ck_assert(m->values[4] == 3.0);
    ck_assert(m->scalars->f_float == 0.1f);
    free_msg(m);
    // jansson reads "-0" as the integer 0, but "-0.0" keeps its sign, and renders as -0.0
    m = parse("{\"values\":[-0.0,-0]}");
    ck_assert(m->values[0] == 0 && signbit(m->values[0]));
    ck_assert(m->values[1] == 0 && !signbit(m->values[1]));
    char *z = render(m, 0);
    ck_assert_str_eq(z, "{\"values\":[-0.0,0]}");
    free(z);
    free_msg(m);
    m = parse("{\"values\":[0.1,\"0.30000000000000004\",\"-Infinity\",1e21,3],"
              "\"scalars\":{\"fFloat\":0.1,\"fDouble\":\"NaN\"}}");
    ck_assert(isnan(m->scalars->f_double));
    char *out = render(m, 0);
    ck_assert_str_eq(out, "{\"scalars\":{\"fDouble\":\"NaN\",\"fFloat\":0.1},"
                          "\"values\":[0.1,0.30000000000000004,\"-Infinity\",1e+21,3]}");
    free(out);
    free_msg(m);
    // every double survives the trip bit for bit
    Fsrtest__V1__Everything e;
    fsrtest__v1__everything__init(&e);
    double vals[200];
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < 200; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t bits = x & ~(0x7ffULL << 52);
        bits |= (uint64_t)(900 + (x % 250)) << 52; // finite, varied exponents
        memcpy(&vals[i], &bits, sizeof(double));
    }
    e.n_values = 200;
    e.values = vals;
    out = render(&e, 0);
    m = parse(out);
    ck_assert_uint_eq(m->n_values, 200);
    for (size_t i = 0; i < 200; i++)
        ck_assert_mem_eq(&m->values[i], &vals[i], sizeof(double));
    free(out);
    free_msg(m);
    // short decimals (prices, rates) take a fast path: still exact, and as short as %.17g's
    // shortest round-tripping form
    e.n_values = 1;
    for (int i = -20000; i < 20000; i += 7) {
        double d = i / 100.0 + (i % 3) * 0.001 + (i % 11) * 1e-7;
        if (i % 5 == 0)
            d *= 1e6;
        e.values = &d;
        out = render(&e, 0);
        char *num = out + strlen("{\"values\":[");
        num[strlen(num) - 2] = '\0';
        double back = strtod(num, NULL);
        ck_assert_msg(memcmp(&back, &d, sizeof(d)) == 0, "%s does not read back", num);
        char ref[40];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(ref, sizeof(ref), "%.*g", prec, d);
            if (strtod(ref, NULL) == d)
                break;
        }
        ck_assert_msg(sig_digits(num) <= sig_digits(ref), "%s is longer than %s", num, ref);
        free(out);
    }
    expect_error("{\"values\":[\"nan\"]}", "values[0]", "invalid value for double");
    expect_error("{\"values\":[\"0x10\"]}", "values[0]", "invalid value for double");
    expect_error("{\"values\":[true]}", "values[0]", "expected a number, got a boolean");
}
END_TEST

/*
 * Found by test/fuzz/fuzz_json_pb.c: {"couponRate":"-0E2110201"} parsed to -0.0, rendered as
 * "-0", which parsed back as +0 (omitted), so a JSON round trip changed the message.
 */
START_TEST(test_json_pb_negative_zero_roundtrip)
{
    static const char *const in[] = { "{\"scalars\":{\"fDouble\":\"-0E2110201\"}}",
                                      "{\"scalars\":{\"fDouble\":-0.0}}",
                                      "{\"scalars\":{\"fFloat\":\"-0\"}}" };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        Everything *m = parse(in[i]);
        char *once = render(m, 0);
        Everything *again = parse(once);
        char *twice = render(again, 0);
        ck_assert_str_eq(twice, once);
        ck_assert(signbit(i < 2 ? again->scalars->f_double : again->scalars->f_float));
        free(twice);
        free(once);
        free_msg(again);
        free_msg(m);
    }
}
END_TEST

START_TEST(test_json_pb_bytes)
{
    Everything *m = parse("{\"blobs\":[\"aGVsbG8=\",\"aGVsbG8\",\"-_8\",\"\"]}");
    ck_assert_uint_eq(m->n_blobs, 4);
    ck_assert_uint_eq(m->blobs[0].len, 5);
    ck_assert_mem_eq(m->blobs[0].data, "hello", 5);
    ck_assert_uint_eq(m->blobs[1].len, 5);
    ck_assert_uint_eq(m->blobs[2].len, 2);
    ck_assert_mem_eq(m->blobs[2].data, "\xfb\xff", 2);
    ck_assert_uint_eq(m->blobs[3].len, 0);
    char *out = render(m, 0);
    ck_assert_str_eq(out, "{\"blobs\":[\"aGVsbG8=\",\"aGVsbG8=\",\"+/8=\",\"\"]}");
    free(out);
    free_msg(m);
    expect_error("{\"blobs\":[\"ab$d\"]}", "blobs[0]", "invalid base64");
    expect_error("{\"blobs\":[\"a\"]}", "blobs[0]", "invalid base64");
}
END_TEST

/* ---- names ---- */

START_TEST(test_json_pb_snake_case_accepted)
{
    Everything *m = parse("{\"scalars\":{\"f_int32\":5,\"fInt64\":\"6\"},\"clean_price\":1.25,"
                          "\"snake_case_2x\":\"a\",\"bars_by_day\":{\"1\":{}},"
                          "\"created_at\":\"2024-01-02T03:04:05Z\"}");
    ck_assert_int_eq(m->scalars->f_int32, 5);
    ck_assert_int_eq(m->scalars->f_int64, 6);
    ck_assert_int_eq(m->price_case, FSRTEST__V1__EVERYTHING__PRICE_CLEAN_PRICE);
    ck_assert(m->clean_price == 1.25);
    ck_assert_str_eq(m->snake_case_2x, "a");
    ck_assert_uint_eq(m->n_bars_by_day, 1);
    ck_assert_ptr_nonnull(m->created_at);
    char *out = render(m, 0);
    ck_assert_str_eq(out, "{\"scalars\":{\"fInt32\":5,\"fInt64\":\"6\"},\"cleanPrice\":1.25,"
                          "\"barsByDay\":{\"1\":{}},\"createdAt\":\"2024-01-02T03:04:05Z\","
                          "\"snakeCase2x\":\"a\"}");
    free(out);
    free_msg(m);
    expect_error("{\"snakeCase2x\":\"a\",\"snake_case_2x\":\"b\"}", "snakeCase2x", "given twice");
}
END_TEST

START_TEST(test_json_pb_unknown_fields)
{
    expect_error("{\"foo\":1}", "foo", "unknown field \"foo\"");
    expect_error("{\"scalars\":{\"fInt32\":1,\"FInt32\":2}}", "scalars.FInt32",
                 "unknown field \"FInt32\"");
    expect_error("{\"bars\":[{},{},{},{\"clos\":1}]}", "bars[3].clos", "unknown field \"clos\"");
    expect_error("{\"nothing\":{\"x\":1}}", "nothing.x", "unknown field \"x\"");
    expect_error("{\"children\":[{\"child\":{\"bars\":[{\"zz\":null}]}}]}",
                 "children[0].child.bars[0].zz", "unknown field \"zz\"");
}
END_TEST

START_TEST(test_json_pb_wrong_types)
{
    expect_error("{\"bars\":[{},{},{},{\"close\":\"x\"}]}", "bars[3].close",
                 "invalid value for double");
    expect_error("{\"scalars\":{\"fString\":5}}", "scalars.fString",
                 "expected a string, got a number");
    expect_error("{\"scalars\":{\"fBool\":\"true\"}}", "scalars.fBool",
                 "expected a boolean, got a string");
    expect_error("{\"scalars\":{\"fBool\":1}}", "scalars.fBool",
                 "expected a boolean, got a number");
    expect_error("{\"bars\":{}}", "bars", "expected an array, got an object");
    expect_error("{\"scalars\":[]}", "scalars", "expected an object, got an array");
    expect_error("{\"weights\":[]}", "weights", "expected an object, got an array");
    expect_error("{\"createdAt\":0}", "createdAt", "expected a string");
    expect_error("{\"tags\":[\"a\",null]}", "tags[1]", "null is not allowed");
    expect_error("{\"bars\":[null]}", "bars[0]", "null is not allowed");
    expect_error("[1]", "", "must be a JSON object");
    expect_error("1", "", "invalid JSON");
    expect_error("{\"a\":", "", "invalid JSON");
    expect_error("", "", "invalid JSON");
}
END_TEST

START_TEST(test_json_pb_null_means_default)
{
    Everything *m = parse("{\"scalars\":null,\"bars\":null,\"tags\":null,\"cleanPrice\":null,"
                          "\"yield\":2,\"createdAt\":null,\"dWrap\":null,\"snakeCase2x\":null,"
                          "\"kind\":null}");
    ck_assert_ptr_null(m->scalars);
    ck_assert_uint_eq(m->n_bars, 0);
    ck_assert_ptr_null(m->created_at);
    ck_assert_ptr_null(m->d_wrap);
    ck_assert_int_eq(m->price_case, FSRTEST__V1__EVERYTHING__PRICE_YIELD);
    char *out = render(m, 0);
    ck_assert_str_eq(out, "{\"yield\":2}");
    free(out);
    free_msg(m);
}
END_TEST

/* ---- enums ---- */

START_TEST(test_json_pb_enums)
{
    Everything *m = parse("{\"scalars\":{\"color\":2,\"kind\":\"KIND_NEGATIVE\"},"
                          "\"colors\":[\"COLOR_RED\",0,2],\"kind\":-1}");
    ck_assert_int_eq(m->scalars->color, FSRTEST__V1__COLOR__COLOR_GREEN);
    ck_assert_int_eq(m->scalars->kind, FSRTEST__V1__SCALARS__KIND__KIND_NEGATIVE);
    ck_assert_uint_eq(m->n_colors, 3);
    ck_assert_int_eq(m->colors[1], 0);
    ck_assert_int_eq(m->kind, -1);
    char *out = render(m, 0);
    ck_assert_str_eq(out, "{\"scalars\":{\"kind\":\"KIND_NEGATIVE\",\"color\":\"COLOR_GREEN\"},"
                          "\"colors\":[\"COLOR_RED\",\"COLOR_UNSPECIFIED\",\"COLOR_GREEN\"],"
                          "\"kind\":\"KIND_NEGATIVE\"}");
    free(out);
    free_msg(m);
    expect_error("{\"scalars\":{\"color\":\"PURPLE\"}}", "scalars.color",
                 "unknown value \"PURPLE\" for enum fsrtest.v1.Color");
    expect_error("{\"scalars\":{\"color\":\"color_red\"}}", "scalars.color", "unknown value");
    expect_error("{\"colors\":[1,7]}", "colors[1]", "unknown value 7 for enum fsrtest.v1.Color");
    expect_error("{\"scalars\":{\"color\":true}}", "scalars.color", "expected an enum");
}
END_TEST

/* ---- oneof ---- */

START_TEST(test_json_pb_oneof)
{
    expect_error("{\"cleanPrice\":1,\"yield\":2}", "yield",
                 "only one field of a oneof may be set, and \"cleanPrice\" is already set");
    expect_error("{\"quoteBar\":{},\"quote_text\":\"x\"}", "quoteText", "\"quoteBar\"");
    // a oneof member holding its default value is still set, and rendered
    Everything *m = parse("{\"cleanPrice\":0}");
    ck_assert_int_eq(m->price_case, FSRTEST__V1__EVERYTHING__PRICE_CLEAN_PRICE);
    char *out = render(m, 0);
    ck_assert_str_eq(out, "{\"cleanPrice\":0}");
    free(out);
    free_msg(m);
    check_roundtrip("{\"quoteBar\":{\"close\":3.5}}", NULL);
    check_roundtrip("{\"quoteText\":\"\"}", NULL);
    m = parse("{\"quoteText\":\"abc\"}");
    ck_assert_str_eq(m->quote_text, "abc");
    free_msg(m);
}
END_TEST

/* ---- maps ---- */

START_TEST(test_json_pb_maps)
{
    check_roundtrip("{\"weights\":{\"AAPL\":0.5,\"MSFT\":0.25,\"\":1},"
                    "\"barsByDay\":{\"-3\":{\"close\":1},\"7\":{}},"
                    "\"flagNames\":{\"true\":\"yes\",\"false\":\"no\"},"
                    "\"bigMap\":{\"18446744073709551615\":\"-1\",\"0\":\"0\"}}",
                    NULL);
    Everything *m = parse("{\"weights\":{\"AAPL\":0.5},\"bigMap\":{\"18446744073709551615\":5}}");
    ck_assert_uint_eq(m->n_weights, 1);
    ck_assert_str_eq(m->weights[0]->key, "AAPL");
    ck_assert(m->weights[0]->value == 0.5);
    ck_assert_uint_eq(m->big_map[0]->key, UINT64_MAX);
    ck_assert_int_eq(m->big_map[0]->value, 5);
    free_msg(m);
    expect_error("{\"barsByDay\":{\"x\":{}}}", "barsByDay[\"x\"]", "invalid value for int32");
    expect_error("{\"barsByDay\":{\"1\":{\"nope\":1}}}", "barsByDay[\"1\"].nope", "unknown field");
    expect_error("{\"flagNames\":{\"yes\":\"x\"}}", "flagNames[\"yes\"]", "invalid value for bool");
    expect_error("{\"weights\":{\"A\":null}}", "weights[\"A\"]", "cannot be null");
    expect_error("{\"weights\":{\"A\":\"x\"}}", "weights[\"A\"]", "invalid value for double");
}
END_TEST

/* ---- well-known types ---- */

START_TEST(test_json_pb_timestamp)
{
    Everything *m = parse("{\"createdAt\":\"2024-01-02T03:04:05Z\",\"times\":["
                          "\"2024-01-02T05:04:05.5+02:00\",\"1969-12-31t23:59:59.000000001z\","
                          "\"0001-01-01T00:00:00Z\",\"9999-12-31T23:59:59.999999999Z\","
                          "\"2024-02-29T00:00:00.123456-00:30\"]}");
    ck_assert_int_eq(m->created_at->seconds, 1704164645);
    ck_assert_int_eq(m->created_at->nanos, 0);
    ck_assert_int_eq(m->times[0]->seconds, 1704164645);
    ck_assert_int_eq(m->times[0]->nanos, 500000000);
    ck_assert_int_eq(m->times[1]->seconds, -1);
    ck_assert_int_eq(m->times[1]->nanos, 1);
    ck_assert_int_eq(m->times[2]->seconds, -62135596800LL);
    ck_assert_int_eq(m->times[3]->seconds, 253402300799LL);
    char *out = render(m, 0);
    ck_assert_str_eq(out, "{\"createdAt\":\"2024-01-02T03:04:05Z\",\"times\":["
                          "\"2024-01-02T03:04:05.500Z\",\"1969-12-31T23:59:59.000000001Z\","
                          "\"0001-01-01T00:00:00Z\",\"9999-12-31T23:59:59.999999999Z\","
                          "\"2024-02-29T00:30:00.123456Z\"]}");
    free(out);
    free_msg(m);
    expect_error("{\"createdAt\":\"2023-02-29T00:00:00Z\"}", "createdAt", "invalid RFC 3339");
    expect_error("{\"times\":[\"2024-01-02T03:04:05Z\",\"2024-01-02 03:04:05Z\"]}", "times[1]",
                 "invalid RFC 3339");
    expect_error("{\"createdAt\":\"2024-01-02T03:04:05\"}", "createdAt", "invalid RFC 3339");
    expect_error("{\"createdAt\":\"2024-01-02T03:04:05.1234567890Z\"}", "createdAt",
                 "invalid RFC 3339");
    expect_error("{\"createdAt\":\"0000-12-31T00:00:00Z\"}", "createdAt", "invalid RFC 3339");
    expect_error("{\"createdAt\":\"0001-01-01T00:00:00+00:01\"}", "createdAt", "out of range");
    // a Timestamp out of range cannot be rendered
    Google__Protobuf__Timestamp ts;
    google__protobuf__timestamp__init(&ts);
    ts.seconds = 253402300800LL;
    char *s = NULL;
    fsr_json_error err;
    ck_assert_int_eq(fsr_pb_to_json(&ts.base, NULL, &s, NULL, &err), -EINVAL);
    ck_assert_ptr_null(s);
    ts.seconds = 0;
    ts.nanos = 1000;
    s = render(&ts, 0); // a top-level Timestamp renders as a JSON string
    ck_assert_str_eq(s, "\"1970-01-01T00:00:00.000001Z\"");
    free(s);
}
END_TEST

START_TEST(test_json_pb_duration)
{
    Everything *m = parse("{\"timeout\":\"1.5s\"}");
    ck_assert_int_eq(m->timeout->seconds, 1);
    ck_assert_int_eq(m->timeout->nanos, 500000000);
    char *out = render(m, 0);
    ck_assert_str_eq(out, "{\"timeout\":\"1.500s\"}");
    free(out);
    free_msg(m);
    m = parse("{\"timeout\":\"-0.000001s\"}");
    ck_assert_int_eq(m->timeout->seconds, 0);
    ck_assert_int_eq(m->timeout->nanos, -1000);
    out = render(m, 0);
    ck_assert_str_eq(out, "{\"timeout\":\"-0.000001s\"}");
    free(out);
    free_msg(m);
    check_roundtrip("{\"timeout\":\"-315576000000s\"}", NULL);
    check_roundtrip("{\"timeout\":\"0s\"}", NULL);
    expect_error("{\"timeout\":\"1.5\"}", "timeout", "invalid duration");
    expect_error("{\"timeout\":\"315576000001s\"}", "timeout", "out of range");
    expect_error("{\"timeout\":\"s\"}", "timeout", "invalid duration");
}
END_TEST

START_TEST(test_json_pb_wrappers)
{
    const char *json = "{\"dWrap\":0,\"fWrap\":1.25,\"i64Wrap\":\"9007199254740993\","
                       "\"u64Wrap\":\"18446744073709551615\",\"i32Wrap\":-9,\"u32Wrap\":10,"
                       "\"bWrap\":false,\"sWrap\":\"\",\"bytesWrap\":\"AQ==\"}";
    check_roundtrip(json, NULL);
    Everything *m = parse(json);
    ck_assert_ptr_nonnull(m->d_wrap);
    ck_assert(m->d_wrap->value == 0);
    ck_assert_int_eq(m->i64_wrap->value, 9007199254740993LL);
    ck_assert_ptr_nonnull(m->b_wrap);
    ck_assert_int_eq(m->b_wrap->value, 0);
    ck_assert_str_eq(m->s_wrap->value, "");
    free_msg(m);
    m = parse("{\"i64Wrap\":12}");
    ck_assert_int_eq(m->i64_wrap->value, 12);
    free_msg(m);
    expect_error("{\"i32Wrap\":\"x\"}", "i32Wrap", "invalid value for int32");
    expect_error("{\"bWrap\":{\"value\":true}}", "bWrap", "expected a boolean, got an object");
}
END_TEST

START_TEST(test_json_pb_struct_value)
{
    check_roundtrip("{\"attrs\":{\"a\":1,\"b\":[true,null,\"x\",{}],\"c\":{\"d\":null,"
                    "\"e\":[[]]},\"f\":-2.5},\"anyValue\":null,\"list\":[1,\"a\",false]}",
                    NULL);
    Everything *m = parse("{\"anyValue\":{\"k\":[1]}}");
    ck_assert_int_eq(m->any_value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
    ck_assert_uint_eq(m->any_value->struct_value->n_fields, 1);
    ck_assert_str_eq(m->any_value->struct_value->fields[0]->key, "k");
    free_msg(m);
    m = parse("{\"anyValue\":null,\"nullValue\":null}");
    ck_assert_ptr_nonnull(m->any_value);
    ck_assert_int_eq(m->any_value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    free_msg(m);
    expect_error("{\"attrs\":[]}", "attrs", "expected an object");
    expect_error("{\"list\":{}}", "list", "expected an array");
    expect_error("{\"attrs\":{\"a\":{\"b\":[1,\"\xff\"]}}}", "", "invalid JSON");
    // a Value without a kind, or holding NaN, has no JSON form
    Google__Protobuf__Value v;
    google__protobuf__value__init(&v);
    char *s = NULL;
    fsr_json_error err;
    ck_assert_int_eq(fsr_pb_to_json(&v.base, NULL, &s, NULL, &err), -EINVAL);
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    v.number_value = NAN;
    ck_assert_int_eq(fsr_pb_to_json(&v.base, NULL, &s, NULL, &err), -EINVAL);
    ck_assert_ptr_null(s);
}
END_TEST

START_TEST(test_json_pb_empty_and_any)
{
    check_roundtrip("{\"nothing\":{}}", NULL);
    expect_error_desc(&google__protobuf__any__descriptor, "{}", "", "Any is not supported");
    Google__Protobuf__Any any;
    google__protobuf__any__init(&any);
    char *s = NULL;
    fsr_json_error err;
    ck_assert_int_eq(fsr_pb_to_json(&any.base, NULL, &s, NULL, &err), -EINVAL);
    ck_assert_str_eq(err.message, "google.protobuf.Any is not supported");
}
END_TEST

/*
 * google.protobuf.FieldMask is not among gen/'s protos, so describe it by hand: the mapping
 * recognises well-known types by their full name.
 */
typedef struct test_field_mask {
    ProtobufCMessage base;
    size_t n_paths;
    char **paths;
} test_field_mask;

static const ProtobufCMessageDescriptor fm_desc;
static const ProtobufCFieldDescriptor fm_fields[1] = {
    { "paths", 1, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_STRING,
      offsetof(test_field_mask, n_paths), offsetof(test_field_mask, paths), NULL,
      &protobuf_c_empty_string, 0, 0, NULL, NULL },
};
static const unsigned fm_by_name[] = { 0 };
static const ProtobufCIntRange fm_ranges[] = { { 1, 0 }, { 0, 1 } };

static void fm_init(ProtobufCMessage *m)
{
    test_field_mask init = { PROTOBUF_C_MESSAGE_INIT(&fm_desc), 0, NULL };
    memcpy(m, &init, sizeof(init));
}

static const ProtobufCMessageDescriptor fm_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "google.protobuf.FieldMask",
    "FieldMask",
    "Google__Protobuf__FieldMask",
    "google.protobuf",
    sizeof(test_field_mask),
    1,
    fm_fields,
    fm_by_name,
    1,
    fm_ranges,
    fm_init,
    NULL,
    NULL,
    NULL,
};

START_TEST(test_json_pb_field_mask)
{
    json_t *v = json_string("a.fooBar,b,cDE");
    ProtobufCMessage *m = NULL;
    fsr_json_error err;
    ck_assert_int_eq(fsr_json_object_to_pb(&fm_desc, v, NULL, &m, &err), 0);
    json_decref(v);
    test_field_mask *fm = (test_field_mask *)m;
    ck_assert_uint_eq(fm->n_paths, 3);
    ck_assert_str_eq(fm->paths[0], "a.foo_bar");
    ck_assert_str_eq(fm->paths[1], "b");
    ck_assert_str_eq(fm->paths[2], "c_d_e");
    char *out = render(m, 0);
    ck_assert_str_eq(out, "\"a.fooBar,b,cDE\"");
    free(out);
    free_msg(m);
    v = json_string("a_b");
    ck_assert_int_eq(fsr_json_object_to_pb(&fm_desc, v, NULL, &m, &err), FSR_E_PROTOCOL);
    json_decref(v);
}
END_TEST

/* ---- limits and malformed input ---- */

static char *nested(const char *open, const char *close, int levels, const char *inner)
{
    size_t lo = strlen(open), lc = strlen(close), li = strlen(inner);
    char *s = malloc(levels * (lo + lc) + li + 1), *p = s;
    for (int i = 0; i < levels; i++, p += lo)
        memcpy(p, open, lo);
    memcpy(p, inner, li);
    p += li;
    for (int i = 0; i < levels; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

START_TEST(test_json_pb_depth_limit)
{
    // the outer object plus 63 nested children: exactly 64 levels, accepted
    char *inner = nested("{\"child\":", "}", 63, "{}");
    Everything *m = parse(inner + 0);
    free_msg(m);
    free(inner);
    // 65 levels: rejected, naming where it happened
    inner = nested("{\"child\":", "}", 64, "{}");
    counter cnt = { 0, -1 };
    ProtobufCAllocator alloc = { cnt_alloc, cnt_free, &cnt };
    ProtobufCMessage *out = NULL;
    fsr_json_error err;
    ck_assert_int_eq(fsr_json_to_pb(EV_DESC, inner, strlen(inner), &alloc, &out, &err),
                     FSR_E_PROTOCOL);
    ck_assert_str_eq(err.message, "JSON nested deeper than 64 levels");
    char expect[sizeof(err.field)] = "";
    for (size_t i = 0; i < 30; i++) // the path, truncated to fit
        strncat(expect, i ? ".child" : "child", sizeof(expect) - strlen(expect) - 1);
    ck_assert_uint_eq(strlen(err.field), sizeof(err.field) - 1);
    ck_assert_str_eq(err.field, expect);
    ck_assert_int_eq(cnt.live, 0);
    free(inner);
    // arrays count too, e.g. inside a google.protobuf.Value
    inner = nested("[", "]", 70, "1");
    char *doc = malloc(strlen(inner) + 32);
    strcpy(doc, "{\"anyValue\":");
    strcat(doc, inner);
    strcat(doc, "}");
    strcpy(expect, "anyValue");
    while (strlen(expect) < sizeof(expect) - 1) // the path, truncated to fit
        strncat(expect, "[0]", sizeof(expect) - strlen(expect) - 1);
    expect_error(doc, expect, "deeper than 64");
    free(doc);
    free(inner);
    // and jansson's own limit protects its parser from much deeper input
    inner = nested("[", "]", 100000, "");
    expect_error(inner, "", "invalid JSON");
    free(inner);
}
END_TEST

START_TEST(test_json_pb_duplicate_keys)
{
    expect_error("{\"tags\":[],\"tags\":[]}", "", "duplicate");
    expect_error("{\"attrs\":{\"a\":1,\"a\":2}}", "", "duplicate");
}
END_TEST

START_TEST(test_json_pb_invalid_utf8)
{
    expect_error("{\"scalars\":{\"fString\":\"a\xff\"}}", "", "invalid JSON");
    expect_error("{\"scalars\":{\"fString\":\"\xed\xa0\x80\"}}", "", "invalid JSON"); // surrogate
    expect_error("{\"scalars\":{\"fString\":\"\xc0\xaf\"}}", "", "invalid JSON");     // overlong
    expect_error("{\"scalars\":{\"fString\":\"\\ud800\"}}", "", "invalid JSON");
    expect_error("{\"scalars\":{\"fString\":\"a\\u0000b\"}}", "", "invalid JSON");
    expect_error("{\"f\xff\":1}", "", "invalid JSON");
    // strings that are not UTF-8 cannot be rendered either
    Fsrtest__V1__Scalars s;
    fsrtest__v1__scalars__init(&s);
    s.f_string = "ok\xff";
    char *out = NULL;
    fsr_json_error err;
    ck_assert_int_eq(fsr_pb_to_json(&s.base, NULL, &out, NULL, &err), -EINVAL);
    ck_assert_str_eq(err.field, "fString");
    ck_assert_ptr_null(out);
}
END_TEST

/* ---- allocation ---- */

static const char *rich_json =
    "{\"scalars\":{\"fDouble\":1.5,\"fInt64\":\"42\",\"fString\":\"s\",\"fBytes\":\"AQI=\","
    "\"kind\":\"KIND_BOND\"},\"bar\":{\"date\":\"2021-01-04\",\"close\":101.25,"
    "\"volume\":\"1000\"},\"bars\":[{\"close\":1},{\"close\":2.5}],\"ids\":[\"1\",\"-2\"],"
    "\"tags\":[\"a\",\"b\"],\"values\":[0.5,\"NaN\"],\"colors\":[\"COLOR_RED\"],"
    "\"flags\":[true,false],\"blobs\":[\"AA==\"],\"yield\":0.05,\"weights\":{\"AAPL\":0.5},"
    "\"barsByDay\":{\"3\":{\"open\":1}},\"flagNames\":{\"true\":\"yes\"},"
    "\"bigMap\":{\"18446744073709551615\":\"-1\"},\"createdAt\":\"2024-01-02T03:04:05.123Z\","
    "\"times\":[\"1970-01-01T00:00:00Z\"],\"timeout\":\"1.500s\",\"dWrap\":0,\"fWrap\":1.25,"
    "\"i64Wrap\":\"7\",\"u64Wrap\":\"8\",\"i32Wrap\":9,\"u32Wrap\":10,\"bWrap\":false,"
    "\"sWrap\":\"\",\"bytesWrap\":\"\",\"attrs\":{\"a\":1,\"b\":[true,null,\"x\"],"
    "\"c\":{\"d\":null}},\"anyValue\":null,\"list\":[1,\"a\"],\"nothing\":{},"
    "\"child\":{\"ids\":[\"5\"]},\"children\":[{},{\"tags\":[\"z\"]}],\"snakeCase2x\":\"q\","
    "\"kind\":\"KIND_EQUITY\"}";

START_TEST(test_json_pb_rich_roundtrip)
{
    check_roundtrip(rich_json, NULL);
}
END_TEST

START_TEST(test_json_pb_out_of_memory)
{
    // fail the n-th allocation for every n: -ENOMEM each time, and nothing left behind
    for (long budget = 0;; budget++) {
        counter cnt = { 0, budget };
        ProtobufCAllocator alloc = { cnt_alloc, cnt_free, &cnt };
        ProtobufCMessage *m = NULL;
        fsr_json_error err;
        int rv = fsr_json_to_pb(EV_DESC, rich_json, strlen(rich_json), &alloc, &m, &err);
        if (rv == 0) {
            ck_assert_int_gt(budget, 20);
            ck_assert_int_gt(cnt.live, 0);
            protobuf_c_message_free_unpacked(m, &alloc);
            ck_assert_int_eq(cnt.live, 0);
            break;
        }
        ck_assert_int_eq(rv, -ENOMEM);
        ck_assert_str_eq(err.message, "out of memory");
        ck_assert_int_eq(cnt.live, 0);
    }
}
END_TEST

START_TEST(test_json_pb_failures_leak_nothing)
{
    // an error late in a large document frees everything built before it
    static const char *bad[] = {
        "{\"tags\":[\"a\",\"b\"],\"bars\":[{\"date\":\"x\"}],\"weights\":{\"a\":1},"
        "\"attrs\":{\"k\":[1,2]},\"times\":[\"2024-01-02T03:04:05Z\"],\"scalars\":{\"fInt32\":"
        "\"z\"}}",
        "{\"children\":[{\"tags\":[\"a\"]},{\"blobs\":[\"AAAA\",\"!\"]}]}",
        "{\"quoteText\":\"abc\",\"quoteBar\":{}}",
        "{\"bigMap\":{\"1\":\"2\",\"-1\":\"2\"}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        counter cnt = { 0, -1 };
        ProtobufCAllocator alloc = { cnt_alloc, cnt_free, &cnt };
        ProtobufCMessage *m = NULL;
        fsr_json_error err;
        ck_assert_int_eq(fsr_json_to_pb(EV_DESC, bad[i], strlen(bad[i]), &alloc, &m, &err),
                         FSR_E_PROTOCOL);
        ck_assert_int_eq(cnt.live, 0);
    }
}
END_TEST

START_TEST(test_json_pb_arena)
{
    fsr_arena arena;
    fsr_arena_init(&arena);
    Everything *m = parse_with(rich_json, fsr_arena_pb_allocator(&arena));
    ck_assert_str_eq(m->tags[1], "b");
    char *out = render(m, 0);
    ck_assert_str_eq(out, rich_json);
    free(out);
    fsr_arena_dispose(&arena);
}
END_TEST

/* ---- merging, path variables and query parameters ---- */

START_TEST(test_json_pb_set_field_from_string)
{
    ProtobufCMessage *pm;
    ck_assert_int_eq(fsr_pb_new(EV_DESC, NULL, &pm), 0);
    Everything *m = (Everything *)pm;
    fsr_json_error err;
    ck_assert_int_eq(
        fsr_pb_set_field_from_string(pm, "scalars.f_int64", "-9007199254740993", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "scalars.fString", "x y", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "scalars.fString", "z", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "scalars.color", "COLOR_RED", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "scalars.kind", "2", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "scalars.fBool", "true", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "scalars.fBytes", "AQ", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "bar.close", "1.5", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "ids", "1", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "ids", "2", NULL, &err), 0);
    ck_assert_int_eq(
        fsr_pb_set_field_from_string(pm, "createdAt", "2024-01-02T03:04:05Z", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "d_wrap", "NaN", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "quoteText", "q", NULL, &err), 0);
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "child.child.tags", "t", NULL, &err), 0);
    ck_assert_int_eq(m->scalars->f_int64, -9007199254740993LL);
    ck_assert_str_eq(m->scalars->f_string, "z");
    ck_assert_int_eq(m->scalars->kind, FSRTEST__V1__SCALARS__KIND__KIND_BOND);
    ck_assert_uint_eq(m->n_ids, 2);
    ck_assert_int_eq(m->ids[1], 2);
    char *out = render(m, 0);
    ck_assert_str_eq(out, "{\"scalars\":{\"fInt64\":\"-9007199254740993\",\"fBool\":true,"
                          "\"fString\":\"z\",\"fBytes\":\"AQ==\",\"kind\":\"KIND_BOND\","
                          "\"color\":\"COLOR_RED\"},\"bar\":{\"close\":1.5},\"ids\":[\"1\",\"2\"],"
                          "\"quoteText\":\"q\",\"createdAt\":\"2024-01-02T03:04:05Z\","
                          "\"dWrap\":\"NaN\",\"child\":{\"child\":{\"tags\":[\"t\"]}}}");
    free(out);

    struct {
        const char *path, *value, *field, *msg;
    } bad[] = {
        { "nope", "1", "nope", "unknown field \"nope\"" },
        { "scalars.nope", "1", "scalars.nope", "unknown field" },
        { "scalars.fInt32", "abc", "scalars.fInt32", "invalid value for int32" },
        { "scalars.fInt32", "4294967296", "scalars.fInt32", "out of range" },
        { "scalars.f_uint32", "-1", "scalars.fUint32", "out of range" },
        { "scalars.fBool", "yes", "scalars.fBool", "invalid value for bool" },
        { "scalars.color", "9", "scalars.color", "unknown value" },
        { "scalars.fString", "\xff", "scalars.fString", "not valid UTF-8" },
        { "bar", "x", "bar", "cannot be set from a string" },
        { "weights", "x", "weights", "map field" },
        { "bars.close", "1", "bars", "no subfields" },
        { "cleanPrice", "1", "cleanPrice", "\"quoteText\" is already set" },
        { "createdAt", "yesterday", "createdAt", "invalid RFC 3339" },
        { "ids", "1.5", "ids", "invalid value for int64" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rv = fsr_pb_set_field_from_string(pm, bad[i].path, bad[i].value, NULL, &err);
        ck_assert_msg(rv == FSR_E_PROTOCOL, "%s=%s: rv %d", bad[i].path, bad[i].value, rv);
        ck_assert_str_eq(err.field, bad[i].field);
        ck_assert_msg(strstr(err.message, bad[i].msg), "%s: \"%s\"", bad[i].path, err.message);
    }
    ck_assert_uint_eq(m->n_ids, 2); // failed appends left the field as it was
    free_msg(m);
}
END_TEST

START_TEST(test_json_pb_merge_query)
{
    ProtobufCMessage *pm;
    ck_assert_int_eq(fsr_pb_new(EV_DESC, NULL, &pm), 0);
    Everything *m = (Everything *)pm;
    fsr_json_error err;
    const char *q = "ids=3&tags=a+b&ids=1&scalars.fBool=1&&tags=c%2Fd%C3%A9&ids=2&values=NaN"
                    "&colors=COLOR_RED&colors=2&snake_case_2x&bar.date=2021-01-04";
    ck_assert_int_eq(fsr_pb_merge_query(pm, q, strlen(q), NULL, &err), 0);
    ck_assert_uint_eq(m->n_ids, 3);
    ck_assert_int_eq(m->ids[0], 3); // repeated values keep their order
    ck_assert_int_eq(m->ids[1], 1);
    ck_assert_int_eq(m->ids[2], 2);
    ck_assert_uint_eq(m->n_tags, 2);
    ck_assert_str_eq(m->tags[0], "a b");
    ck_assert_str_eq(m->tags[1], "c/d\xc3\xa9");
    ck_assert_int_eq(m->scalars->f_bool, 1);
    ck_assert_uint_eq(m->n_colors, 2);
    ck_assert_int_eq(m->colors[1], FSRTEST__V1__COLOR__COLOR_GREEN);
    ck_assert_str_eq(m->snake_case_2x, "");
    ck_assert_str_eq(m->bar->date, "2021-01-04");
    // appending again extends the arrays
    ck_assert_int_eq(fsr_pb_merge_query(pm, "ids=4", 5, NULL, &err), 0);
    ck_assert_uint_eq(m->n_ids, 4);
    ck_assert_int_eq(m->ids[3], 4);

    struct {
        const char *q, *field, *msg;
    } bad[] = {
        { "scalars.fInt32=1&scalars.fInt32=2", "scalars.fInt32", "more than once" },
        { "ids=%zz", "ids", "malformed %-escape" },
        { "ids=%4", "ids", "malformed %-escape" },
        { "i%d=1", "i%d", "malformed %-escape" },
        { "pageSize=10", "pageSize", "unknown field \"pageSize\"" },
        { "ids=1&ids=x", "ids", "invalid value for int64: \"x\"" },
        { "tags=%ff", "tags", "not valid UTF-8" },
        { "tags=a%00b", "tags", "not valid UTF-8" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rv = fsr_pb_merge_query(pm, bad[i].q, strlen(bad[i].q), NULL, &err);
        ck_assert_msg(rv == FSR_E_PROTOCOL, "%s: rv %d", bad[i].q, rv);
        ck_assert_str_eq(err.field, bad[i].field);
        ck_assert_msg(strstr(err.message, bad[i].msg), "%s: \"%s\"", bad[i].q, err.message);
    }
    free_msg(m);
}
END_TEST

START_TEST(test_json_pb_merge_body_field)
{
    ProtobufCMessage *pm;
    ck_assert_int_eq(fsr_pb_new(EV_DESC, NULL, &pm), 0);
    Everything *m = (Everything *)pm;
    fsr_json_error err;
    ck_assert_int_eq(fsr_pb_set_field_from_string(pm, "snakeCase2x", "id-1", NULL, &err), 0);
    const char *body = "[{\"date\":\"2021-01-04\",\"close\":101.25},{\"close\":7}]";
    ck_assert_int_eq(fsr_json_merge_pb(pm, "bars", body, strlen(body), NULL, &err), 0);
    ck_assert_uint_eq(m->n_bars, 2);
    ck_assert_int_eq(fsr_json_merge_pb(pm, "bars", "[{}]", 4, NULL, &err), 0);
    ck_assert_uint_eq(m->n_bars, 3);
    ck_assert_int_eq(fsr_json_merge_pb(pm, "child.scalars", "{\"fInt32\":4}", 12, NULL, &err), 0);
    ck_assert_int_eq(m->child->scalars->f_int32, 4);
    body = "{\"tags\":[\"x\"],\"child\":{\"scalars\":{\"fInt64\":\"5\"}}}";
    ck_assert_int_eq(fsr_json_merge_pb(pm, NULL, body, strlen(body), NULL, &err), 0);
    ck_assert_int_eq(m->child->scalars->f_int32, 4); // merged, not replaced
    ck_assert_int_eq(m->child->scalars->f_int64, 5);
    ck_assert_int_eq(fsr_json_merge_pb(pm, "createdAt", "\"2024-01-02T03:04:05Z\"", 22, NULL, &err),
                     0);
    ck_assert_int_eq(m->created_at->seconds, 1704164645);
    ck_assert_int_eq(fsr_json_merge_pb(pm, "bars", "[{\"x\":1}]", 9, NULL, &err), FSR_E_PROTOCOL);
    ck_assert_str_eq(err.field, "bars[0].x");
    ck_assert_int_eq(fsr_json_merge_pb(pm, NULL, "[]", 2, NULL, &err), FSR_E_PROTOCOL);
    ck_assert_int_eq(fsr_json_merge_pb(pm, "nope", "1", 1, NULL, &err), FSR_E_PROTOCOL);
    ck_assert_str_eq(err.field, "nope");
    // the message is still valid after the failures
    char *out = render(m, 0);
    ck_assert_ptr_nonnull(strstr(out, "\"snakeCase2x\":\"id-1\""));
    free(out);
    free_msg(m);
}
END_TEST

START_TEST(test_json_pb_field_to_json)
{
    Everything *m = parse("{\"bars\":[{\"close\":1},{}],\"quoteText\":\"q\",\"ids\":[\"1\"]}");
    char *out = NULL;
    size_t len = 0;
    fsr_json_error err;
    ck_assert_int_eq(fsr_pb_field_to_json(&m->base, "bars", NULL, &out, &len, &err), 0);
    ck_assert_str_eq(out, "[{\"close\":1},{}]");
    ck_assert_uint_eq(len, 16);
    free(out);
    ck_assert_int_eq(fsr_pb_field_to_json(&m->base, "tags", NULL, &out, NULL, &err), 0);
    ck_assert_str_eq(out, "[]");
    free(out);
    ck_assert_int_eq(fsr_pb_field_to_json(&m->base, "bar", NULL, &out, NULL, &err), 0);
    ck_assert_str_eq(out, "null");
    free(out);
    ck_assert_int_eq(fsr_pb_field_to_json(&m->base, "scalars.fInt64", NULL, &out, NULL, &err), 0);
    ck_assert_str_eq(out, "\"0\"");
    free(out);
    ck_assert_int_eq(fsr_pb_field_to_json(&m->base, "quoteBar", NULL, &out, NULL, &err), 0);
    ck_assert_str_eq(out, "null");
    free(out);
    ck_assert_int_eq(fsr_pb_field_to_json(&m->base, "cleanPrice", NULL, &out, NULL, &err), 0);
    ck_assert_str_eq(out, "0");
    free(out);
    out = NULL;
    ck_assert_int_eq(fsr_pb_field_to_json(&m->base, "bars.close", NULL, &out, NULL, &err), -EINVAL);
    ck_assert_int_eq(fsr_pb_field_to_json(&m->base, "zzz", NULL, &out, NULL, &err), -EINVAL);
    ck_assert_ptr_null(out);
    free_msg(m);
}
END_TEST

static Suite *json_pb_suite(void)
{
    Suite *s = suite_create("json_pb");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        { "scalars", test_json_pb_scalars_roundtrip },
        { "defaults", test_json_pb_defaults_omitted },
        { "options", test_json_pb_options },
        { "int64_precision", test_json_pb_int64_precision },
        { "integer_errors", test_json_pb_integer_errors },
        { "huge_numbers", test_json_pb_huge_numbers },
        { "doubles", test_json_pb_doubles },
        { "negative_zero_roundtrip", test_json_pb_negative_zero_roundtrip },
        { "bytes", test_json_pb_bytes },
        { "snake_case", test_json_pb_snake_case_accepted },
        { "unknown_fields", test_json_pb_unknown_fields },
        { "wrong_types", test_json_pb_wrong_types },
        { "null", test_json_pb_null_means_default },
        { "enums", test_json_pb_enums },
        { "oneof", test_json_pb_oneof },
        { "maps", test_json_pb_maps },
        { "timestamp", test_json_pb_timestamp },
        { "duration", test_json_pb_duration },
        { "wrappers", test_json_pb_wrappers },
        { "struct_value", test_json_pb_struct_value },
        { "empty_any", test_json_pb_empty_and_any },
        { "field_mask", test_json_pb_field_mask },
        { "depth_limit", test_json_pb_depth_limit },
        { "duplicate_keys", test_json_pb_duplicate_keys },
        { "invalid_utf8", test_json_pb_invalid_utf8 },
        { "rich_roundtrip", test_json_pb_rich_roundtrip },
        { "out_of_memory", test_json_pb_out_of_memory },
        { "failures_leak_nothing", test_json_pb_failures_leak_nothing },
        { "arena", test_json_pb_arena },
        { "set_field_from_string", test_json_pb_set_field_from_string },
        { "merge_query", test_json_pb_merge_query },
        { "merge_body_field", test_json_pb_merge_body_field },
        { "field_to_json", test_json_pb_field_to_json },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(json_pb_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
