/* SPDX-License-Identifier: MIT */
/* Unit tests for lib/validate.c: ids, currencies, ISINs, decimals, dates, text, paging. */
#include "fsr/validate.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_validate_uuid)
{
    ck_assert(fsr_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c3301"));
    ck_assert(fsr_uuid_valid("3F2504E0-4F89-41D3-9A0C-0305E82C3301"));
    ck_assert(fsr_uuid_valid("00000000-0000-0000-0000-000000000000"));
    ck_assert(!fsr_uuid_valid(NULL));
    ck_assert(!fsr_uuid_valid(""));
    ck_assert(!fsr_uuid_valid("not-a-uuid"));
    ck_assert(!fsr_uuid_valid("3f2504e04f8941d39a0c0305e82c3301"));
    ck_assert(!fsr_uuid_valid("{3f2504e0-4f89-41d3-9a0c-0305e82c3301}"));
    ck_assert(!fsr_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c330"));
    ck_assert(!fsr_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c33011"));
    ck_assert(!fsr_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c330g"));
    ck_assert(!fsr_uuid_valid("3f2504e0x4f89-41d3-9a0c-0305e82c3301"));
    ck_assert(!fsr_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c33 1"));
}
END_TEST

START_TEST(test_validate_currency)
{
    const char *good[] = { "USD", "EUR", "JPY", "CHF", "GBP", "XAU", "XDR", "ZWG", "AED", "ZMW" };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(fsr_currency_valid(good[i]), "%s should be valid", good[i]);
    const char *bad[] = { "usd", "Usd", "US",  "USDD", "",    "XXX",
                          "XTS", "HRK", "ABC", "DEM",  "US1", "U D" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!fsr_currency_valid(bad[i]), "%s should be invalid", bad[i]);
    ck_assert(!fsr_currency_valid(NULL));
}
END_TEST

/* bsearch() only works on a sorted table: every code must be findable. */
START_TEST(test_validate_currency_table_sorted)
{
    size_t n;
    const char *const *codes = fsr_currency_codes(&n);
    ck_assert_uint_ge(n, 150);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(strlen(codes[i]), 3);
        if (i > 0)
            ck_assert_msg(strcmp(codes[i - 1], codes[i]) < 0, "%s before %s", codes[i - 1],
                          codes[i]);
        ck_assert_msg(fsr_currency_valid(codes[i]), "%s not found", codes[i]);
    }
}
END_TEST

START_TEST(test_validate_isin)
{
    const char *good[] = { "US0378331005", "AU0000XVGZA3", "GB0002634946", "DE000BAY0017",
                           "NL0000729408", "JP3633400001", "CH0012221716" };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(fsr_isin_valid(good[i]), "%s should be valid", good[i]);
    const char *bad[] = { "US0378331006", "us0378331005", "US037833100",  "US03783310055",
                          "1S0378331005", "US037833100A", "US03783310-5", "",
                          "AU0000XVGZA4" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!fsr_isin_valid(bad[i]), "%s should be invalid", bad[i]);
    ck_assert(!fsr_isin_valid(NULL));
}
END_TEST

/* Shape only: a wrong check digit is still ISIN-shaped, a malformed string is not. */
START_TEST(test_validate_isin_shaped)
{
    ck_assert(fsr_isin_shaped("US0378331005"));
    ck_assert(fsr_isin_shaped("US0378331006")); /* wrong check digit, right shape */
    const char *bad[] = { "us0378331005",
                          "US037833100",
                          "US03783310055",
                          "1S0378331005",
                          "US037833100A",
                          "US03783310-5",
                          "" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!fsr_isin_shaped(bad[i]), "%s should not be ISIN-shaped", bad[i]);
    ck_assert(!fsr_isin_shaped(NULL));
}
END_TEST

/* For any 11-character body exactly one of the ten check digits is valid. */
START_TEST(test_validate_isin_one_check_digit)
{
    const char *bodies[] = { "US037833100", "AU0000XVGZA", "XS123456789", "FRABCDEFGHI" };
    for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
        int valid = 0;
        for (char d = '0'; d <= '9'; d++) {
            char isin[13];
            snprintf(isin, sizeof(isin), "%s%c", bodies[b], d);
            valid += fsr_isin_valid(isin);
        }
        ck_assert_int_eq(valid, 1);
    }
}
END_TEST

START_TEST(test_validate_decimal_valid)
{
    static const struct {
        const char *s;
        int sign;
    } ok[] = {
        { "0", 0 },
        { "12", 1 },
        { "-0.5", -1 },
        { "+1.25", 1 },
        { "1234.5600", 1 },
        { "000123", 1 },
        { "-0.00", 0 },
        { "999999999999999999", 1 },
        { "0.0000000001", 1 },
        { "-999999999999999999.9999999999", -1 },
        { "0000000000000000000000001", 1 },
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int sign = 42;
        const char *why = NULL;
        ck_assert_msg(fsr_decimal_check(ok[i].s, &sign, &why) == 0, "%s: %s", ok[i].s, why);
        ck_assert_int_eq(sign, ok[i].sign);
    }
    ck_assert_int_eq(fsr_decimal_check("1", NULL, NULL), 0);
}
END_TEST

START_TEST(test_validate_decimal_invalid)
{
    const char *bad[] = { "",    ".5", "5.", "1e5",   " 1",   "1 ", "NaN",   "Infinity", "1,5",
                          "--1", "+",  "-",  "1.2.3", "0x10", "١",  "1_000", "+-1",      "1.-5" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int sign = 42;
        const char *why = NULL;
        ck_assert_msg(fsr_decimal_check(bad[i], &sign, &why) == -EINVAL, "'%s' accepted", bad[i]);
        ck_assert_int_eq(sign, 42); /* untouched on failure */
        ck_assert_str_eq(why, "must be a decimal number like \"1234.56\"");
    }
    ck_assert_int_eq(fsr_decimal_check(NULL, NULL, NULL), -EINVAL);

    const char *why = NULL;
    ck_assert_int_eq(fsr_decimal_check("1000000000000000000", NULL, &why), -EINVAL);
    ck_assert_str_eq(why, "has more than 18 integer digits");
    ck_assert_int_eq(fsr_decimal_check("1.00000000000", NULL, &why), -EINVAL);
    ck_assert_str_eq(why, "has more than 10 fraction digits");
}
END_TEST

START_TEST(test_validate_decimal_cmp)
{
    static const struct {
        const char *a, *b;
        int want;
    } cases[] = {
        { "1", "1", 0 },
        { "1.50", "1.5", 0 },
        { "007", "7", 0 },
        { "+2", "2.000", 0 },
        { "0", "0.0", 0 },
        { "0.001", "0", 1 },
        { "10", "9.99", 1 },
        { "9.99", "10", -1 },
        { "100.5", "100.49", 1 },
        { "100.049", "100.05", -1 },
        { "0.1", "0.09", 1 },
        { "123456789012345678", "123456789012345679", -1 },
        { "1.0000000001", "1", 1 },
        { "0010.10", "10.1", 0 },
        /* Found by test/fuzz/fuzz_validate.c: a zero written "-0.00" (sign 0) is every zero. */
        { "00", "-0.00", 0 },
        { "-0", "+0.0", 0 },
        { "-0.0", "0.01", -1 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int c = fsr_decimal_cmp(cases[i].a, cases[i].b);
        int r = fsr_decimal_cmp(cases[i].b, cases[i].a);
        ck_assert_msg((c > 0) - (c < 0) == cases[i].want, "%s vs %s: %d", cases[i].a, cases[i].b,
                      c);
        ck_assert_msg((r > 0) - (r < 0) == -cases[i].want, "%s vs %s: %d", cases[i].b, cases[i].a,
                      r);
    }
}
END_TEST

START_TEST(test_validate_date)
{
    int y = 0, m = 0, d = 0;
    ck_assert_int_eq(fsr_date_parse("2024-02-29", &y, &m, &d), 0);
    ck_assert_int_eq(y, 2024);
    ck_assert_int_eq(m, 2);
    ck_assert_int_eq(d, 29);
    ck_assert_int_eq(fsr_date_parse("2000-02-29", NULL, NULL, NULL), 0);
    ck_assert_int_eq(fsr_date_parse("9999-12-31", NULL, NULL, NULL), 0);
    ck_assert_int_eq(fsr_date_parse("0001-01-01", NULL, NULL, NULL), 0);
    const char *bad[] = { "2023-02-29", "1900-02-29", "2024-04-31", "2024-13-01",  "2024-00-10",
                          "2024-01-00", "0000-01-01", "2024-1-01",  "2024-01-01x", "20240101",
                          "2024/01/01", "",           "2024-01-32", " 2024-01-01" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        y = -1;
        ck_assert_msg(fsr_date_parse(bad[i], &y, NULL, NULL) == -EINVAL, "%s accepted", bad[i]);
        ck_assert_int_eq(y, -1);
    }
    ck_assert_int_eq(fsr_date_parse(NULL, NULL, NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_validate_days_from_civil)
{
    ck_assert_int_eq(fsr_days_from_civil(1970, 1, 1), 0);
    ck_assert_int_eq(fsr_days_from_civil(1969, 12, 31), -1);
    ck_assert_int_eq(fsr_days_from_civil(2000, 3, 1), 11017);
    ck_assert_int_eq(fsr_days_from_civil(2024, 1, 2), 19724);
    ck_assert_int_eq(fsr_days_from_civil(1, 1, 1), -719162);
}
END_TEST

START_TEST(test_validate_pg_timestamp)
{
    int64_t s = 0;
    int32_t ns = 0;
    ck_assert_int_eq(fsr_pg_timestamp_parse("1970-01-01 00:00:00+00", &s, &ns), 0);
    ck_assert_int_eq(s, 0);
    ck_assert_int_eq(ns, 0);
    /* 2024-01-02 = day 19724; 03:04:05 = 11045 s. */
    ck_assert_int_eq(fsr_pg_timestamp_parse("2024-01-02 03:04:05.123456+00", &s, &ns), 0);
    ck_assert_int_eq(s, 1704164645);
    ck_assert_int_eq(ns, 123456000);
    ck_assert_int_eq(fsr_pg_timestamp_parse("2024-01-02 03:04:05.5+05:30", &s, &ns), 0);
    ck_assert_int_eq(s, 1704164645 - 19800);
    ck_assert_int_eq(ns, 500000000);
    ck_assert_int_eq(fsr_pg_timestamp_parse("2024-01-02 03:04:05-03:30:15", &s, &ns), 0);
    ck_assert_int_eq(s, 1704164645 + 12615);
    ck_assert_int_eq(fsr_pg_timestamp_parse("2024-01-02T03:04:05.000000001Z", &s, &ns), 0);
    ck_assert_int_eq(s, 1704164645);
    ck_assert_int_eq(ns, 1);
    ck_assert_int_eq(fsr_pg_timestamp_parse("1969-12-31 23:59:59+00", &s, &ns), 0);
    ck_assert_int_eq(s, -1);

    const char *bad[] = { "2024-01-02 03:04:05",
                          "infinity",
                          "2024-01-02 03:04:05.1234567890+00",
                          "2024-01-02 24:00:00+00",
                          "2024-01-02 03:04:05+00 BC",
                          "2024-01-02 03:04:05.+00",
                          "2024-02-30 03:04:05+00",
                          "2024-01-02 03:04:05+0",
                          "",
                          "2024-01-02" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = 7;
        ck_assert_msg(fsr_pg_timestamp_parse(bad[i], &s, &ns) == -EINVAL, "%s accepted", bad[i]);
        ck_assert_int_eq(s, 7);
    }
}
END_TEST

START_TEST(test_validate_text)
{
    const char *why = NULL;
    ck_assert_int_eq(fsr_text_check("Apple Inc.", 100, true, &why), 0);
    ck_assert_int_eq(
        fsr_text_check("Soci\xc3\xa9t\xc3\xa9 G\xc3\xa9n\xc3\xa9rale", 100, true, &why), 0);
    ck_assert_int_eq(fsr_text_check("\xf0\x9f\x92\xb6", 4, false, &why), 0);
    ck_assert_int_eq(fsr_text_check("", 0, false, &why), 0);

    ck_assert_int_eq(fsr_text_check("A B", 100, false, &why), -EINVAL);
    ck_assert_str_eq(why, "must not contain spaces");
    ck_assert_int_eq(fsr_text_check("A\tB", 100, true, &why), -EINVAL);
    ck_assert_str_eq(why, "must not contain control characters");
    ck_assert_int_eq(fsr_text_check("A\x7f", 100, true, &why), -EINVAL);
    ck_assert_str_eq(why, "must not contain control characters");
    const char *bad_utf8[] = { "\xc3\x28",         "\xc0\xaf", "\xed\xa0\x80",
                               "\xf4\x90\x80\x80", "\xe2\x82", "\xff" };
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        why = NULL;
        ck_assert_int_eq(fsr_text_check(bad_utf8[i], 100, true, &why), -EINVAL);
        ck_assert_str_eq(why, "must be valid UTF-8");
    }
    ck_assert_int_eq(fsr_text_check("abcd", 3, true, &why), -EINVAL);
    ck_assert_str_eq(why, "is too long");
    ck_assert_int_eq(fsr_text_check("abc", 3, true, &why), 0);
    ck_assert_int_eq(fsr_text_check(NULL, 3, true, &why), -EINVAL);
}
END_TEST

START_TEST(test_validate_page_size)
{
    int n = -1;
    ck_assert_int_eq(fsr_page_size_resolve(0, &n), 0);
    ck_assert_int_eq(n, 50);
    ck_assert_int_eq(fsr_page_size_resolve(1, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(fsr_page_size_resolve(1000, &n), 0);
    ck_assert_int_eq(n, 1000);
    n = -1;
    ck_assert_int_eq(fsr_page_size_resolve(1001, &n), -EINVAL);
    ck_assert_int_eq(fsr_page_size_resolve(-1, &n), -EINVAL);
    ck_assert_int_eq(n, -1);
}
END_TEST

START_TEST(test_validate_page_token_round_trip)
{
    fsr_arena a;
    fsr_arena_init(&a);
    const char *in[] = { "AAPL", "XNAS", "", "caf\xc3\xa9 +/=" };
    for (size_t n = 1; n <= 4; n++) {
        char *tok = fsr_page_token_encode(&a, in, n);
        ck_assert_ptr_nonnull(tok);
        /* URL-safe: no '+', '/', '=' or anything else needing escapes in a query string. */
        for (const char *p = tok; *p; p++)
            ck_assert_msg(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                                 *p) != NULL,
                          "bad char %c in %s", *p, tok);
        char *out[4] = { NULL };
        ck_assert_int_eq(fsr_page_token_decode(&a, tok, out, n), 0);
        for (size_t i = 0; i < n; i++)
            ck_assert_str_eq(out[i], in[i]);
        /* The wrong number of fields is refused either way. */
        ck_assert_int_eq(fsr_page_token_decode(&a, tok, out, n + 1), -EINVAL);
        if (n > 1)
            ck_assert_int_eq(fsr_page_token_decode(&a, tok, out, n - 1), -EINVAL);
    }
    const char *nl[] = { "a\nb" };
    ck_assert_ptr_null(fsr_page_token_encode(&a, nl, 1));
    ck_assert_ptr_null(fsr_page_token_encode(&a, in, 0));
    fsr_arena_dispose(&a);
}
END_TEST

START_TEST(test_validate_page_token_garbage)
{
    fsr_arena a;
    fsr_arena_init(&a);
    char *out[2] = { NULL, NULL };
    const char *bad[] = { "",          "!!!!", "a", "YWJj", /* "abc": no version line */
                          "cDIKYQpi",                       /* "p2\na\nb": another version */
                          "cDEKYQpi=", /* padding is not part of the alphabet */
                          "cDEKYQpi+" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(fsr_page_token_decode(&a, bad[i], out, 2) == -EINVAL, "%s accepted", bad[i]);
    ck_assert_ptr_null(out[0]);
    /* "p1\na\nb" is the canonical encoding of two fields. */
    ck_assert_int_eq(fsr_page_token_decode(&a, "cDEKYQpi", out, 2), 0);
    ck_assert_str_eq(out[0], "a");
    ck_assert_str_eq(out[1], "b");
    /* "p1\na" ends in a partial group whose unused bits must be zero. */
    ck_assert_int_eq(fsr_page_token_decode(&a, "cDEKYQ", out, 1), 0);
    ck_assert_str_eq(out[0], "a");
    ck_assert_int_eq(fsr_page_token_decode(&a, "cDEKYR", out, 1), -EINVAL);
    /* Too long. */
    char *longtok = fsr_arena_alloc(&a, FSR_PAGE_TOKEN_MAX + 2);
    memset(longtok, 'A', FSR_PAGE_TOKEN_MAX + 1);
    longtok[FSR_PAGE_TOKEN_MAX + 1] = '\0';
    ck_assert_int_eq(fsr_page_token_decode(&a, longtok, out, 2), -EINVAL);
    fsr_arena_dispose(&a);
}
END_TEST

static Suite *validate_suite(void)
{
    Suite *s = suite_create("validate");
    TCase *tc = tcase_create("ids");
    tcase_add_test(tc, test_validate_uuid);
    tcase_add_test(tc, test_validate_isin);
    tcase_add_test(tc, test_validate_isin_one_check_digit);
    tcase_add_test(tc, test_validate_isin_shaped);
    suite_add_tcase(s, tc);
    tc = tcase_create("currency");
    tcase_add_test(tc, test_validate_currency);
    tcase_add_test(tc, test_validate_currency_table_sorted);
    suite_add_tcase(s, tc);
    tc = tcase_create("decimal");
    tcase_add_test(tc, test_validate_decimal_valid);
    tcase_add_test(tc, test_validate_decimal_invalid);
    tcase_add_test(tc, test_validate_decimal_cmp);
    suite_add_tcase(s, tc);
    tc = tcase_create("time");
    tcase_add_test(tc, test_validate_date);
    tcase_add_test(tc, test_validate_days_from_civil);
    tcase_add_test(tc, test_validate_pg_timestamp);
    suite_add_tcase(s, tc);
    tc = tcase_create("text");
    tcase_add_test(tc, test_validate_text);
    suite_add_tcase(s, tc);
    tc = tcase_create("paging");
    tcase_add_test(tc, test_validate_page_size);
    tcase_add_test(tc, test_validate_page_token_round_trip);
    tcase_add_test(tc, test_validate_page_token_garbage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(validate_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
