/* SPDX-License-Identifier: MIT */
/* Unit tests for lib/grpc_frame.c: prefix, grpc-timeout, percent-encoding, base64, md keys. */
#include "fsr/grpc_frame.h"
#include "fsr/metadata.h"
#include "fsr/status.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- prefix ------------------------------------------------------------------------- */

START_TEST(test_grpc_frame_prefix_write)
{
    uint8_t p[FSR_GRPC_PREFIX_LEN];
    fsr_grpc_prefix_write(p, 0x01020304u);
    ck_assert_uint_eq(p[0], 0);
    ck_assert_uint_eq(p[1], 1);
    ck_assert_uint_eq(p[2], 2);
    ck_assert_uint_eq(p[3], 3);
    ck_assert_uint_eq(p[4], 4);
    fsr_grpc_prefix_write(p, 0);
    ck_assert_mem_eq(p, "\0\0\0\0\0", 5);
}
END_TEST

START_TEST(test_grpc_frame_prefix_round_trip)
{
    const uint32_t lens[] = { 0, 1, 255, 256, 65535, 65536, 3u << 20, UINT32_MAX };
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t p[FSR_GRPC_PREFIX_LEN];
        fsr_grpc_prefix_write(p, lens[i]);
        int compressed = -1;
        uint32_t len = 1234;
        ck_assert_int_eq(fsr_grpc_prefix_parse(p, &compressed, &len), 0);
        ck_assert_int_eq(compressed, 0);
        ck_assert_uint_eq(len, lens[i]);
    }
}
END_TEST

START_TEST(test_grpc_frame_prefix_compressed_flag)
{
    const uint8_t one[5] = { 1, 0, 0, 0, 7 };
    int compressed = -1;
    uint32_t len = 0;
    ck_assert_int_eq(fsr_grpc_prefix_parse(one, &compressed, &len), 0);
    ck_assert_int_eq(compressed, 1);
    ck_assert_uint_eq(len, 7);

    /* Any other flag byte is a protocol error and leaves the out-params alone. */
    const uint8_t bad[5] = { 2, 0, 0, 0, 7 };
    compressed = -1;
    len = 99;
    ck_assert_int_eq(fsr_grpc_prefix_parse(bad, &compressed, &len), FSR_E_PROTOCOL);
    ck_assert_int_eq(compressed, -1);
    ck_assert_uint_eq(len, 99);
    const uint8_t bad2[5] = { 0x80, 0, 0, 0, 0 };
    ck_assert_int_eq(fsr_grpc_prefix_parse(bad2, &compressed, &len), FSR_E_PROTOCOL);
}
END_TEST

/* ---- grpc-timeout ------------------------------------------------------------------- */

static int64_t parse_ok(const char *s)
{
    int64_t us = -1;
    ck_assert_msg(fsr_grpc_timeout_parse(s, strlen(s), &us) == 0, "parse failed: %s", s);
    return us;
}

static int parse_rv(const char *s)
{
    int64_t us = -77;
    int rv = fsr_grpc_timeout_parse(s, s != NULL ? strlen(s) : 0, &us);
    if (rv != 0)
        ck_assert_int_eq(us, -77); /* untouched on failure */
    return rv;
}

START_TEST(test_grpc_frame_timeout_units)
{
    ck_assert_int_eq(parse_ok("1H"), 3600LL * 1000000);
    ck_assert_int_eq(parse_ok("2M"), 120LL * 1000000);
    ck_assert_int_eq(parse_ok("5S"), 5LL * 1000000);
    ck_assert_int_eq(parse_ok("100m"), 100LL * 1000);
    ck_assert_int_eq(parse_ok("250u"), 250);
    ck_assert_int_eq(parse_ok("1000n"), 1);
    ck_assert_int_eq(parse_ok("0S"), 0);
    ck_assert_int_eq(parse_ok("00000001m"), 1000);
    ck_assert_int_eq(parse_ok("99999999H"), 99999999LL * 3600 * 1000000);
}
END_TEST

START_TEST(test_grpc_frame_timeout_nanos_round_up)
{
    /* Rounding down would shorten the caller's deadline. */
    ck_assert_int_eq(parse_ok("1n"), 1);
    ck_assert_int_eq(parse_ok("999n"), 1);
    ck_assert_int_eq(parse_ok("1001n"), 2);
    ck_assert_int_eq(parse_ok("0n"), 0);
}
END_TEST

START_TEST(test_grpc_frame_timeout_malformed)
{
    ck_assert_int_eq(parse_rv(""), FSR_E_PROTOCOL);
    ck_assert_int_eq(parse_rv("S"), FSR_E_PROTOCOL);   /* no digits */
    ck_assert_int_eq(parse_rv("10"), FSR_E_PROTOCOL);  /* no unit */
    ck_assert_int_eq(parse_rv("10s"), FSR_E_PROTOCOL); /* lowercase s is not a unit */
    ck_assert_int_eq(parse_rv("10h"), FSR_E_PROTOCOL);
    ck_assert_int_eq(parse_rv("10x"), FSR_E_PROTOCOL);
    ck_assert_int_eq(parse_rv("123456789S"), FSR_E_PROTOCOL); /* 9 digits */
    ck_assert_int_eq(parse_rv("-1S"), FSR_E_PROTOCOL);
    ck_assert_int_eq(parse_rv("+1S"), FSR_E_PROTOCOL);
    ck_assert_int_eq(parse_rv(" 1S"), FSR_E_PROTOCOL);
    ck_assert_int_eq(parse_rv("1 S"), FSR_E_PROTOCOL);
    ck_assert_int_eq(parse_rv("1.5S"), FSR_E_PROTOCOL);
    ck_assert_int_eq(parse_rv("1SS"), FSR_E_PROTOCOL);
    int64_t us = 5;
    ck_assert_int_eq(fsr_grpc_timeout_parse(NULL, 0, &us), FSR_E_PROTOCOL);
    /* The length bounds the parse: "5S" inside a longer buffer. */
    ck_assert_int_eq(fsr_grpc_timeout_parse("5Sxyz", 2, &us), 0);
    ck_assert_int_eq(us, 5000000);
}
END_TEST

START_TEST(test_grpc_frame_timeout_format)
{
    char out[10];
    ck_assert_uint_eq(fsr_grpc_timeout_format(1, out), 2);
    ck_assert_str_eq(out, "1u");
    ck_assert_uint_eq(fsr_grpc_timeout_format(99999999, out), 9);
    ck_assert_str_eq(out, "99999999u");
    /* Too many digits in u: move to m, rounding up. */
    fsr_grpc_timeout_format(100000000, out);
    ck_assert_str_eq(out, "100000m");
    fsr_grpc_timeout_format(100000001, out);
    ck_assert_str_eq(out, "100001m");
    fsr_grpc_timeout_format(200LL * 1000000000, out); /* 200000 s */
    ck_assert_str_eq(out, "200000S");
    fsr_grpc_timeout_format(100000000LL * 1000000, out); /* 1e8 s: too many S digits */
    ck_assert_str_eq(out, "1666667M");
    fsr_grpc_timeout_format(INT64_MAX / 2, out);
    ck_assert_uint_le(strlen(out), 9);
    ck_assert_int_eq(out[strlen(out) - 1], 'H');
    /* Expired or zero: "0n", which parses back as 0. */
    ck_assert_uint_eq(fsr_grpc_timeout_format(0, out), 2);
    ck_assert_str_eq(out, "0n");
    fsr_grpc_timeout_format(-5, out);
    ck_assert_str_eq(out, "0n");
}
END_TEST

START_TEST(test_grpc_frame_timeout_round_trip)
{
    /* format then parse never shortens the timeout, and never lengthens it by a unit step. */
    const int64_t vals[] = {
        1,
        7,
        999,
        1000,
        123456,
        99999999,
        100000000,
        123456789,
        3600000000LL,
        86400000000LL,
        99999999LL * 1000000,
        100000000LL * 1000000,
        1LL << 50,
    };
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char out[10];
        size_t n = fsr_grpc_timeout_format(vals[i], out);
        ck_assert_uint_eq(n, strlen(out));
        ck_assert_uint_le(n, 9);
        int64_t back = -1;
        ck_assert_int_eq(fsr_grpc_timeout_parse(out, n, &back), 0);
        ck_assert_int_ge(back, vals[i]);
        int64_t step;
        switch (out[n - 1]) {
        case 'u':
            step = 1;
            break;
        case 'm':
            step = 1000;
            break;
        case 'S':
            step = 1000000;
            break;
        case 'M':
            step = 60000000;
            break;
        default:
            step = 3600000000LL;
            break;
        }
        ck_assert_int_lt(back - vals[i], step);
        if (vals[i] <= 99999999)
            ck_assert_int_eq(back, vals[i]); /* exact in microseconds */
    }
}
END_TEST

/* ---- percent-encoding ---------------------------------------------------------------- */

static char *enc(const char *s, size_t len)
{
    size_t n = fsr_percent_encode(s, len, NULL, 0);
    ck_assert_uint_le(n, 3 * len);
    char *out = malloc(n + 1);
    ck_assert_uint_eq(fsr_percent_encode(s, len, out, n + 1), n);
    ck_assert_uint_eq(strlen(out), n);
    return out;
}

static char *dec(const char *s)
{
    size_t len = strlen(s);
    char *out = malloc(len + 1);
    size_t n = fsr_percent_decode(s, len, out, len + 1);
    ck_assert_uint_le(n, len);
    out[n] = '\0';
    return out;
}

START_TEST(test_grpc_frame_percent_encode_ascii)
{
    /* Printable ASCII except '%' stays as is, spaces included. */
    char *e = enc("Hello, world! (ok) ~", 20);
    ck_assert_str_eq(e, "Hello, world! (ok) ~");
    free(e);
    e = enc("100%", 4);
    ck_assert_str_eq(e, "100%25");
    free(e);
    e = enc("a\nb\tc\x7f", 6);
    ck_assert_str_eq(e, "a%0Ab%09c%7F");
    free(e);
}
END_TEST

START_TEST(test_grpc_frame_percent_encode_utf8)
{
    /* Each UTF-8 byte becomes an uppercase escape. */
    char *e = enc("caf\xc3\xa9", 5);
    ck_assert_str_eq(e, "caf%C3%A9");
    free(e);
    const char *s = "\xe2\x82\xac 5"; /* "€ 5" */
    e = enc(s, strlen(s));
    ck_assert_str_eq(e, "%E2%82%AC 5");
    free(e);
    /* An embedded NUL is encoded too (length-delimited input). */
    e = enc("a\0b", 3);
    ck_assert_str_eq(e, "a%00b");
    free(e);
}
END_TEST

START_TEST(test_grpc_frame_percent_encode_truncation)
{
    char out[6];
    memset(out, 'X', sizeof(out));
    /* "é!" needs 7 bytes; never half an escape, always NUL-terminated when room. */
    ck_assert_uint_eq(fsr_percent_encode("\xc3\xa9!", 3, out, 5), 7);
    ck_assert_str_eq(out, "%C3");
    ck_assert_uint_eq(fsr_percent_encode("abc", 3, out, 0), 3);
    ck_assert_int_eq(out[0], '%'); /* cap 0 writes nothing */
}
END_TEST

START_TEST(test_grpc_frame_percent_decode)
{
    char *d = dec("caf%C3%A9");
    ck_assert_str_eq(d, "caf\xc3\xa9");
    free(d);
    d = dec("100%25 done");
    ck_assert_str_eq(d, "100% done");
    free(d);
    d = dec("lower %c3%a9");
    ck_assert_str_eq(d, "lower \xc3\xa9");
    free(d);
    d = dec("plain text");
    ck_assert_str_eq(d, "plain text");
    free(d);
}
END_TEST

START_TEST(test_grpc_frame_percent_decode_invalid_passthrough)
{
    /* Invalid escapes are kept verbatim, never an error or a dropped message. */
    char *d = dec("50%");
    ck_assert_str_eq(d, "50%");
    free(d);
    d = dec("50%2");
    ck_assert_str_eq(d, "50%2");
    free(d);
    d = dec("%zz%4");
    ck_assert_str_eq(d, "%zz%4");
    free(d);
    d = dec("%%41");
    ck_assert_str_eq(d, "%A");
    free(d);
    d = dec("%G1ok%41");
    ck_assert_str_eq(d, "%G1okA");
    free(d);
}
END_TEST

START_TEST(test_grpc_frame_percent_round_trip)
{
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char *e = enc((const char *)all, sizeof(all));
    for (const char *p = e; *p; p++)
        ck_assert(*p >= 0x20 && *p <= 0x7e);
    char out[257];
    size_t n = fsr_percent_decode(e, strlen(e), out, sizeof(out));
    ck_assert_uint_eq(n, 256);
    ck_assert_mem_eq(out, all, 256);
    free(e);
}
END_TEST

/* ---- base64 ------------------------------------------------------------------------- */

START_TEST(test_grpc_frame_base64_vectors)
{
    /* RFC 4648 §10 test vectors. */
    const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *b64[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (size_t i = 0; i < 7; i++) {
        char out[16];
        size_t n = fsr_base64_encode((const uint8_t *)plain[i], strlen(plain[i]), out, sizeof(out));
        ck_assert_uint_eq(n, strlen(b64[i]));
        ck_assert_str_eq(out, b64[i]);
        uint8_t back[16];
        size_t m = fsr_base64_decode(b64[i], strlen(b64[i]), back, sizeof(back));
        ck_assert_uint_eq(m, strlen(plain[i]));
        ck_assert_mem_eq(back, plain[i], m);
    }
}
END_TEST

START_TEST(test_grpc_frame_base64_unpadded)
{
    uint8_t out[8];
    ck_assert_uint_eq(fsr_base64_decode("Zg", 2, out, sizeof(out)), 1);
    ck_assert_int_eq(out[0], 'f');
    ck_assert_uint_eq(fsr_base64_decode("Zm9vYmE", 7, out, sizeof(out)), 5);
    ck_assert_mem_eq(out, "fooba", 5);
}
END_TEST

START_TEST(test_grpc_frame_base64_invalid)
{
    uint8_t out[16];
    const size_t bad = (size_t)-1;
    ck_assert_uint_eq(fsr_base64_decode("Z", 1, out, sizeof(out)), bad);        /* 1 mod 4 */
    ck_assert_uint_eq(fsr_base64_decode("Zm9v!", 5, out, sizeof(out)), bad);    /* alphabet */
    ck_assert_uint_eq(fsr_base64_decode("Zm-_", 4, out, sizeof(out)), bad);     /* url-safe */
    ck_assert_uint_eq(fsr_base64_decode("Zg=", 3, out, sizeof(out)), bad);      /* half pad */
    ck_assert_uint_eq(fsr_base64_decode("Z===", 4, out, sizeof(out)), bad);     /* too much */
    ck_assert_uint_eq(fsr_base64_decode("Zg==Zg==", 8, out, sizeof(out)), bad); /* mid pad */
    ck_assert_uint_eq(fsr_base64_decode("Zh==", 4, out, sizeof(out)), bad);     /* stray bits */
    ck_assert_uint_eq(fsr_base64_decode("Zm9vYmFy", 8, out, 5), bad);           /* no room */
}
END_TEST

START_TEST(test_grpc_frame_base64_binary_round_trip)
{
    uint8_t in[300];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(in); len += 7) {
        size_t need = fsr_base64_encode(in, len, NULL, 0);
        ck_assert_uint_eq(need, (len + 2) / 3 * 4);
        char *b = malloc(need + 1);
        ck_assert_uint_eq(fsr_base64_encode(in, len, b, need + 1), need);
        uint8_t out[300];
        ck_assert_uint_eq(fsr_base64_decode(b, need, out, sizeof(out)), len);
        ck_assert(len == 0 || memcmp(out, in, len) == 0);
        free(b);
    }
}
END_TEST

/* ---- metadata keys ------------------------------------------------------------------ */

START_TEST(test_grpc_frame_md_is_binary)
{
    ck_assert_int_ne(fsr_md_is_binary("trace-bin"), 0);
    ck_assert_int_ne(fsr_md_is_binary("grpc-status-details-bin"), 0);
    ck_assert_int_eq(fsr_md_is_binary("trace"), 0);
    ck_assert_int_eq(fsr_md_is_binary("-bin"), 0);
    ck_assert_int_eq(fsr_md_is_binary("bin"), 0);
    ck_assert_int_eq(fsr_md_is_binary("x-bin-y"), 0);
    ck_assert_int_eq(fsr_md_is_binary("trace-BIN"), 0);
    ck_assert_int_eq(fsr_md_is_binary(""), 0);
    ck_assert_int_eq(fsr_md_is_binary(NULL), 0);
}
END_TEST

START_TEST(test_grpc_frame_md_key_is_custom)
{
    const char *ok[] = { "x-request-id", "authorization", "a", "trace-bin", "x_y.z-0" };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(fsr_md_key_is_custom(ok[i]), "%s should be custom", ok[i]);
    const char *bad[] = {
        "",           ":path",        ":authority",  "content-type",      "te",
        "user-agent", "host",         "connection",  "transfer-encoding", "upgrade",
        "keep-alive", "grpc-timeout", "grpc-status", "grpc-foo",          "X-Request-Id",
        "with space", "semi;colon",   "slash/",      "caf\xc3\xa9",       "content-length",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!fsr_md_key_is_custom(bad[i]), "%s should be reserved", bad[i]);
    ck_assert_int_eq(fsr_md_key_is_custom(NULL), 0);
    /* "grpc" alone or as a non-prefix is fine. */
    ck_assert_int_ne(fsr_md_key_is_custom("grpc"), 0);
    ck_assert_int_ne(fsr_md_key_is_custom("my-grpc-thing"), 0);
}
END_TEST

static Suite *grpc_frame_suite(void)
{
    Suite *s = suite_create("grpc_frame");
    struct {
        const char *name;
        const TTest *tests[8];
    } cases[] = {
        { "prefix",
          { test_grpc_frame_prefix_write, test_grpc_frame_prefix_round_trip,
            test_grpc_frame_prefix_compressed_flag } },
        { "timeout_parse",
          { test_grpc_frame_timeout_units, test_grpc_frame_timeout_nanos_round_up,
            test_grpc_frame_timeout_malformed } },
        { "timeout_format",
          { test_grpc_frame_timeout_format, test_grpc_frame_timeout_round_trip } },
        { "percent_encode",
          { test_grpc_frame_percent_encode_ascii, test_grpc_frame_percent_encode_utf8,
            test_grpc_frame_percent_encode_truncation } },
        { "percent_decode",
          { test_grpc_frame_percent_decode, test_grpc_frame_percent_decode_invalid_passthrough,
            test_grpc_frame_percent_round_trip } },
        { "base64",
          { test_grpc_frame_base64_vectors, test_grpc_frame_base64_unpadded,
            test_grpc_frame_base64_invalid, test_grpc_frame_base64_binary_round_trip } },
        { "metadata_keys", { test_grpc_frame_md_is_binary, test_grpc_frame_md_key_is_custom } },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        for (size_t j = 0; j < 8 && cases[i].tests[j] != NULL; j++)
            tcase_add_test(tc, cases[i].tests[j]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(grpc_frame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
