/* SPDX-License-Identifier: MIT */
/* Unit tests for lib/status.c: code names, HTTP mapping, internal error mapping. */
#include "fsr/status.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* gRPC's canonical names and grpc-gateway's HTTPStatusFromCode, one row per code. */
static const struct {
    fsr_code code;
    int number;
    const char *name;
    int http;
} expected[FSR_CODE_COUNT] = {
    { FSR_OK, 0, "OK", 200 },
    { FSR_CANCELLED, 1, "CANCELLED", 499 },
    { FSR_UNKNOWN, 2, "UNKNOWN", 500 },
    { FSR_INVALID_ARGUMENT, 3, "INVALID_ARGUMENT", 400 },
    { FSR_DEADLINE_EXCEEDED, 4, "DEADLINE_EXCEEDED", 504 },
    { FSR_NOT_FOUND, 5, "NOT_FOUND", 404 },
    { FSR_ALREADY_EXISTS, 6, "ALREADY_EXISTS", 409 },
    { FSR_PERMISSION_DENIED, 7, "PERMISSION_DENIED", 403 },
    { FSR_RESOURCE_EXHAUSTED, 8, "RESOURCE_EXHAUSTED", 429 },
    { FSR_FAILED_PRECONDITION, 9, "FAILED_PRECONDITION", 400 },
    { FSR_ABORTED, 10, "ABORTED", 409 },
    { FSR_OUT_OF_RANGE, 11, "OUT_OF_RANGE", 400 },
    { FSR_UNIMPLEMENTED, 12, "UNIMPLEMENTED", 501 },
    { FSR_INTERNAL, 13, "INTERNAL", 500 },
    { FSR_UNAVAILABLE, 14, "UNAVAILABLE", 503 },
    { FSR_DATA_LOSS, 15, "DATA_LOSS", 500 },
    { FSR_UNAUTHENTICATED, 16, "UNAUTHENTICATED", 401 },
};

START_TEST(test_status_code_numbers)
{
    for (int i = 0; i < FSR_CODE_COUNT; i++)
        ck_assert_int_eq((int)expected[i].code, expected[i].number);
}
END_TEST

START_TEST(test_status_code_names)
{
    for (int i = 0; i < FSR_CODE_COUNT; i++)
        ck_assert_str_eq(fsr_code_name(expected[i].code), expected[i].name);
    ck_assert_str_eq(fsr_code_name((fsr_code)17), "UNKNOWN");
    ck_assert_str_eq(fsr_code_name((fsr_code)-1), "UNKNOWN");
    ck_assert_str_eq(fsr_code_name((fsr_code)1000), "UNKNOWN");
}
END_TEST

START_TEST(test_status_code_from_name)
{
    for (int i = 0; i < FSR_CODE_COUNT; i++) {
        fsr_code c = (fsr_code)-1;
        ck_assert_int_eq(fsr_code_from_name(expected[i].name, &c), 0);
        ck_assert_int_eq(c, expected[i].code);
    }
    fsr_code c = FSR_ABORTED;
    ck_assert_int_eq(fsr_code_from_name("not_found", &c), -1); /* case matters */
    ck_assert_int_eq(fsr_code_from_name("NOT_FOUND ", &c), -1);
    ck_assert_int_eq(fsr_code_from_name("", &c), -1);
    ck_assert_int_eq(fsr_code_from_name("5", &c), -1);
    ck_assert_int_eq(fsr_code_from_name(NULL, &c), -1);
    ck_assert_int_eq(c, FSR_ABORTED); /* untouched on failure */
}
END_TEST

START_TEST(test_status_http_mapping)
{
    for (int i = 0; i < FSR_CODE_COUNT; i++)
        ck_assert_int_eq(fsr_code_http_status(expected[i].code), expected[i].http);
    ck_assert_int_eq(fsr_code_http_status((fsr_code)42), 500);
    ck_assert_int_eq(fsr_code_http_status((fsr_code)-3), 500);
}
END_TEST

START_TEST(test_status_from_err)
{
    ck_assert_int_eq(fsr_code_from_err(0), FSR_OK);
    ck_assert_int_eq(fsr_code_from_err(FSR_E_POOL), FSR_UNAVAILABLE);
    ck_assert_int_eq(fsr_code_from_err(FSR_E_TIMEOUT), FSR_DEADLINE_EXCEEDED);
    ck_assert_int_eq(fsr_code_from_err(FSR_E_UNIQUE), FSR_ALREADY_EXISTS);
    ck_assert_int_eq(fsr_code_from_err(FSR_E_CHECK), FSR_FAILED_PRECONDITION);
    ck_assert_int_eq(fsr_code_from_err(FSR_E_NOTFOUND), FSR_NOT_FOUND);
    ck_assert_int_eq(fsr_code_from_err(FSR_E_TOO_LARGE), FSR_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(fsr_code_from_err(FSR_E_CANCELLED), FSR_CANCELLED);
    ck_assert_int_eq(fsr_code_from_err(-ETIMEDOUT), FSR_DEADLINE_EXCEEDED);
    ck_assert_int_eq(fsr_code_from_err(-ECONNREFUSED), FSR_UNAVAILABLE);
    /* Everything else is INTERNAL: no detail leaks to clients. */
    ck_assert_int_eq(fsr_code_from_err(FSR_E_DB), FSR_INTERNAL);
    ck_assert_int_eq(fsr_code_from_err(FSR_E_PROTOCOL), FSR_INTERNAL);
    ck_assert_int_eq(fsr_code_from_err(FSR_E_CONFIG), FSR_INTERNAL);
    ck_assert_int_eq(fsr_code_from_err(-ENOMEM), FSR_INTERNAL);
    ck_assert_int_eq(fsr_code_from_err(-EIO), FSR_INTERNAL);
    ck_assert_int_eq(fsr_code_from_err(-99999), FSR_INTERNAL);
    ck_assert_int_eq(fsr_code_from_err(7), FSR_INTERNAL);
}
END_TEST

START_TEST(test_status_strerror)
{
    const int ours[] = {
        FSR_E_PROTOCOL, FSR_E_TOO_LARGE, FSR_E_TIMEOUT, FSR_E_CLOSED, FSR_E_POOL,      FSR_E_UNIQUE,
        FSR_E_CHECK,    FSR_E_NOTFOUND,  FSR_E_DB,      FSR_E_CONFIG, FSR_E_CANCELLED,
    };
    /* Every internal code has its own text. */
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
        const char *s = fsr_strerror(ours[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_str_ne(s, "unknown error");
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(s, fsr_strerror(ours[j]));
    }
    ck_assert_str_eq(fsr_strerror(FSR_E_POOL), "pool exhausted");
    /* -errno passes through to the C library's text. */
    ck_assert_str_eq(fsr_strerror(-ENOENT), "No such file or directory");
    ck_assert_str_eq(fsr_strerror(-ECONNREFUSED), "Connection refused");
    ck_assert_str_eq(fsr_strerror(-99999), "unknown error");
    ck_assert_str_eq(fsr_strerror(-4000), "unknown error");
    ck_assert_str_eq(fsr_strerror(0), "success");
}
END_TEST

static Suite *status_suite(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("names");
    tcase_add_test(tc, test_status_code_numbers);
    tcase_add_test(tc, test_status_code_names);
    tcase_add_test(tc, test_status_code_from_name);
    suite_add_tcase(s, tc);
    tc = tcase_create("http_mapping");
    tcase_add_test(tc, test_status_http_mapping);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, test_status_from_err);
    tcase_add_test(tc, test_status_strerror);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(status_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
