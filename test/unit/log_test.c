/* SPDX-License-Identifier: MIT */
/* Unit tests for lib/log.c: record shape, JSON escaping, levels, request ids, LOG_DIR. */
#include "fsr/log.h"

#include <check.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- capturing stdout ------------------------------------------------------------ */

static int saved_stdout = -1;
static char cap_path[] = "/tmp/fsr_log_test_XXXXXX";

static void capture_begin(void)
{
    int fd = mkstemp(cap_path);
    ck_assert_int_ge(fd, 0);
    fflush(stdout);
    saved_stdout = dup(STDOUT_FILENO);
    ck_assert_int_ge(saved_stdout, 0);
    ck_assert_int_eq(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    close(fd);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (n + 4096 + 1) * 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* Restores stdout and returns everything written since capture_begin() (free() it). */
static char *capture_end(size_t *len)
{
    ck_assert_int_eq(dup2(saved_stdout, STDOUT_FILENO), STDOUT_FILENO);
    close(saved_stdout);
    char *out = read_file(cap_path, len);
    unlink(cap_path);
    strcpy(cap_path, "/tmp/fsr_log_test_XXXXXX");
    return out;
}

/* Parses one line (exactly one record, ending in '\n') and returns the object. */
static json_t *parse_line(const char *line, size_t len)
{
    json_error_t jerr;
    ck_assert_uint_gt(len, 0);
    ck_assert_int_eq(line[len - 1], '\n');
    ck_assert_ptr_null(memchr(line, '\n', len - 1));
    json_t *j = json_loadb(line, len, 0, &jerr);
    ck_assert_msg(j != NULL, "invalid JSON (%s): %.*s", jerr.text, (int)len, line);
    ck_assert(json_is_object(j));
    return j;
}

/* Captures the single record written by |fn|. */
static const char *str_field(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void setup(void)
{
    ck_assert_int_eq(fsr_log_init("equity", "debug", NULL), 0);
    fsr_log_set_request_id(NULL);
}

/* ---- tests ----------------------------------------------------------------------- */

START_TEST(test_log_record_fields)
{
    static const char *const kv[] = { "method", "/equity.v1.EquityService/GetQuote", "code", "OK",
                                      NULL };
    size_t len;

    fsr_log_set_request_id("req-123");
    capture_begin();
    fsr_log_write(FSR_LOG_INFO, kv, "served %d in %s", 42, "3ms");
    char *out = capture_end(&len);
    json_t *j = parse_line(out, len);

    ck_assert_str_eq(str_field(j, "severity"), "INFO");
    ck_assert_str_eq(str_field(j, "service"), "equity");
    ck_assert_str_eq(str_field(j, "message"), "served 42 in 3ms");
    ck_assert_str_eq(str_field(j, "request_id"), "req-123");
    ck_assert_str_eq(str_field(j, "method"), "/equity.v1.EquityService/GetQuote");
    ck_assert_str_eq(str_field(j, "code"), "OK");
    ck_assert_uint_eq(json_object_size(j), 7);

    /* 2026-11-24T10:00:00.123456Z */
    const char *ts = str_field(j, "timestamp");
    ck_assert_ptr_nonnull(ts);
    ck_assert_uint_eq(strlen(ts), 27);
    int y, mo, d, h, mi, s, us;
    char z;
    ck_assert_int_eq(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%6d%c", &y, &mo, &d, &h, &mi, &s, &us, &z),
                     8);
    ck_assert_int_eq(z, 'Z');
    ck_assert_int_ge(y, 2024);

    /* The fixed fields lead, in the documented order. */
    ck_assert_int_eq(strncmp(out, "{\"timestamp\":\"", 14), 0);
    ck_assert_ptr_nonnull(
        strstr(out, "\",\"severity\":\"INFO\",\"service\":\"equity\",\"message\":"));
    json_decref(j);
    free(out);
}
END_TEST

START_TEST(test_log_severity_names)
{
    static const struct {
        fsr_log_level level;
        const char *name;
    } cases[] = {
        { FSR_LOG_DEBUG, "DEBUG" },
        { FSR_LOG_INFO, "INFO" },
        { FSR_LOG_WARN, "WARNING" },
        { FSR_LOG_ERROR, "ERROR" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        capture_begin();
        fsr_log_write(cases[i].level, NULL, "x");
        char *out = capture_end(&len);
        json_t *j = parse_line(out, len);
        ck_assert_str_eq(str_field(j, "severity"), cases[i].name);
        ck_assert_ptr_null(json_object_get(j, "request_id"));
        json_decref(j);
        free(out);
    }
}
END_TEST

START_TEST(test_log_json_escaping)
{
    /* Every byte 1..0x7f, then multi-byte UTF-8: all must round-trip exactly. */
    char msg[256];
    size_t n = 0;
    for (int c = 1; c < 0x80; c++)
        msg[n++] = (char)c;
    const char *utf8 = "é€😀 \xe2\x80\xa8"; /* 2-, 3-, 4-byte and U+2028 */
    memcpy(msg + n, utf8, strlen(utf8) + 1);

    const char *kv[] = { "key \"quoted\"\n", "value\\with\ttabs\x01", "null_value", NULL, NULL };
    size_t len;
    capture_begin();
    fsr_log_write(FSR_LOG_INFO, kv, "%s", msg);
    char *out = capture_end(&len);
    json_t *j = parse_line(out, len);
    ck_assert_str_eq(str_field(j, "message"), msg);
    ck_assert_str_eq(str_field(j, "key \"quoted\"\n"), "value\\with\ttabs\x01");
    ck_assert(json_is_null(json_object_get(j, "null_value")));

    /* Control characters are escaped, never raw; the short forms are used where JSON has them. */
    for (size_t i = 0; i < len - 1; i++)
        ck_assert_int_ge((unsigned char)out[i], 0x20);
    ck_assert_ptr_nonnull(strstr(out, "\\u0001\\u0002"));
    ck_assert_ptr_nonnull(strstr(out, "\\b\\t\\n\\u000b\\f\\r"));
    ck_assert_ptr_nonnull(strstr(out, "\\u007f"));
    ck_assert_ptr_nonnull(strstr(out, "\\\"#$%&'"));
    json_decref(j);
    free(out);
}
END_TEST

START_TEST(test_log_invalid_utf8)
{
    static const struct {
        const char *in;
        const char *want; /* as decoded by jansson */
    } cases[] = {
        { "a\xff"
          "b",
          "a\xef\xbf\xbd"
          "b" },                                                    /* never valid */
        { "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },                 /* overlong '/' */
        { "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* surrogate */
        { "x\xe2\x82", "x\xef\xbf\xbd\xef\xbf\xbd" },               /* cut short */
        { "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* >10FFFF */
        { "\xe2\x82\xac\x80", "\xe2\x82\xac\xef\xbf\xbd" }, /* stray continuation */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *kv[] = { "v", cases[i].in, NULL };
        size_t len;
        capture_begin();
        fsr_log_write(FSR_LOG_INFO, kv, "%s", cases[i].in);
        char *out = capture_end(&len);
        json_t *j = parse_line(out, len); /* jansson rejects invalid UTF-8: this checks it too */
        ck_assert_str_eq(str_field(j, "message"), cases[i].want);
        ck_assert_str_eq(str_field(j, "v"), cases[i].want);
        ck_assert_ptr_nonnull(strstr(out, "\\ufffd"));
        json_decref(j);
        free(out);
    }
}
END_TEST

static int evaluated;

static int side_effect(void)
{
    return ++evaluated;
}

START_TEST(test_log_level_filter)
{
    size_t len;
    ck_assert_int_eq(fsr_log_init("equity", "warn", NULL), 0);
    ck_assert_int_eq(fsr_log_min_level, FSR_LOG_WARN);

    capture_begin();
    FSR_INFO("skipped %d", side_effect());
    FSR_DEBUG("skipped %d", side_effect());
    fsr_log_write(FSR_LOG_INFO, NULL, "skipped too");
    FSR_WARN("kept %d", side_effect());
    FSR_ERROR("kept %d", side_effect());
    char *out = capture_end(&len);

    ck_assert_int_eq(evaluated, 2); /* filtered records never evaluate their arguments */
    char *nl = strchr(out, '\n');
    ck_assert_ptr_nonnull(nl);
    json_t *a = parse_line(out, (size_t)(nl - out) + 1);
    json_t *b = parse_line(nl + 1, len - (size_t)(nl + 1 - out));
    ck_assert_str_eq(str_field(a, "message"), "kept 1");
    ck_assert_str_eq(str_field(a, "severity"), "WARNING");
    ck_assert_str_eq(str_field(b, "message"), "kept 2");
    json_decref(a);
    json_decref(b);
    free(out);

    /* An unknown level is refused and changes nothing. */
    ck_assert_int_eq(fsr_log_init("other", "verbose", NULL), -EINVAL);
    ck_assert_int_eq(fsr_log_min_level, FSR_LOG_WARN);
    ck_assert_int_eq(fsr_log_init("equity", "ERROR", NULL), 0);
    ck_assert_int_eq(fsr_log_min_level, FSR_LOG_ERROR);
    ck_assert_int_eq(fsr_log_init("equity", NULL, NULL), 0);
    ck_assert_int_eq(fsr_log_min_level, FSR_LOG_INFO);
}
END_TEST

static void *thread_request_id(void *arg)
{
    /* A new thread starts without the creator's request id. */
    *(const char **)arg = fsr_log_request_id();
    fsr_log_set_request_id("thread-id");
    FSR_INFO("from thread");
    return NULL;
}

START_TEST(test_log_request_id_thread_local)
{
    const char *seen = "unset";
    pthread_t t;
    size_t len;

    fsr_log_set_request_id("main-id");
    capture_begin();
    ck_assert_int_eq(pthread_create(&t, NULL, thread_request_id, &seen), 0);
    pthread_join(t, NULL);
    FSR_INFO("from main");
    fsr_log_set_request_id(NULL);
    FSR_INFO("cleared");
    char *out = capture_end(&len);

    ck_assert_ptr_null(seen);
    ck_assert_ptr_null(fsr_log_request_id());
    char *l2 = strchr(out, '\n') + 1;
    char *l3 = strchr(l2, '\n') + 1;
    json_t *a = parse_line(out, (size_t)(l2 - out));
    json_t *b = parse_line(l2, (size_t)(l3 - l2));
    json_t *c = parse_line(l3, len - (size_t)(l3 - out));
    ck_assert_str_eq(str_field(a, "request_id"), "thread-id");
    ck_assert_str_eq(str_field(b, "request_id"), "main-id");
    ck_assert_ptr_null(json_object_get(c, "request_id"));
    json_decref(a);
    json_decref(b);
    json_decref(c);
    free(out);
}
END_TEST

START_TEST(test_log_dir_file)
{
    char dir[] = "/tmp/fsr_log_dir_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char sub[256], path[300];
    snprintf(sub, sizeof(sub), "%s/logs", dir); /* missing: created */
    snprintf(path, sizeof(path), "%s/portfolio.log", sub);

    ck_assert_int_eq(fsr_log_init("portfolio", "info", sub), 0);
    capture_begin();
    FSR_INFO("one");
    FSR_WARN("two");
    size_t len, flen;
    char *out = capture_end(&len);
    char *file = read_file(path, &flen);
    ck_assert_uint_gt(len, 0);
    ck_assert_str_eq(file, out); /* the same records, in both places */
    ck_assert_ptr_nonnull(strstr(file, "\"service\":\"portfolio\",\"message\":\"one\""));

    /* Re-initialising appends, it does not truncate. */
    ck_assert_int_eq(fsr_log_init("portfolio", "info", sub), 0);
    capture_begin();
    FSR_INFO("three");
    free(capture_end(NULL));
    free(file);
    file = read_file(path, &flen);
    ck_assert_uint_gt(flen, len);
    ck_assert_ptr_nonnull(strstr(file, "\"message\":\"three\""));

    /* A directory that cannot be created is reported, and logging carries on as before. */
    ck_assert_int_lt(fsr_log_init("portfolio", "info", "/proc/no/such/dir"), 0);
    ck_assert_int_eq(fsr_log_init("portfolio", "info", NULL), 0);
    free(file);
    free(out);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}
END_TEST

START_TEST(test_log_truncation)
{
    size_t big = 100000, len;
    char *msg = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        msg[i] = (char)('a' + i % 26);
    msg[big] = '\0';
    msg[5000] = '"'; /* escapes near the cut must not be split */

    const char *kv[] = { "k1", msg, "k2", "v2", NULL };
    capture_begin();
    fsr_log_write(FSR_LOG_ERROR, kv, "%s", msg);
    char *out = capture_end(&len);
    ck_assert_uint_le(len, 32768);
    json_t *j = parse_line(out, len);
    ck_assert(json_is_true(json_object_get(j, "truncated")));
    const char *m = str_field(j, "message");
    ck_assert_uint_gt(strlen(m), 4000);
    ck_assert_int_eq(strncmp(m, msg, strlen(m)), 0);
    json_decref(j);
    free(out);

    /* Many large values: cut somewhere in the kv list, still one valid record. */
    const char *many[41];
    for (int i = 0; i < 40; i += 2) {
        many[i] = "key";
        many[i + 1] = msg + big - 3000; /* 3000 chars each */
    }
    many[40] = NULL;
    for (int k = 0; k < 50; k++) {
        /* Vary the message length so the cut lands at every position in the kv list. */
        capture_begin();
        fsr_log_write(FSR_LOG_INFO, many, "%.*s", k * 97, msg);
        out = capture_end(&len);
        ck_assert_uint_le(len, 32768);
        j = parse_line(out, len);
        ck_assert(json_is_true(json_object_get(j, "truncated")));
        json_decref(j);
        free(out);
    }
    free(msg);
}
END_TEST

#define N_THREADS 8
#define N_LINES   500

static void *thread_spam(void *arg)
{
    long id = (long)arg;
    char rid[32];
    snprintf(rid, sizeof(rid), "t%ld", id);
    fsr_log_set_request_id(rid);
    for (int i = 0; i < N_LINES; i++)
        FSR_INFO("thread %ld line %d %s", id, i, "padding padding padding padding padding");
    fsr_log_set_request_id(NULL);
    return NULL;
}

START_TEST(test_log_concurrent_lines_intact)
{
    pthread_t t[N_THREADS];
    size_t len;
    int seen[N_THREADS] = { 0 };

    capture_begin();
    for (long i = 0; i < N_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, thread_spam, (void *)i), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    char *out = capture_end(&len);

    int lines = 0;
    for (char *p = out; p < out + len;) {
        char *nl = strchr(p, '\n');
        ck_assert_ptr_nonnull(nl);
        json_t *j = parse_line(p, (size_t)(nl - p) + 1);
        long id;
        int line;
        ck_assert_int_eq(sscanf(str_field(j, "message"), "thread %ld line %d", &id, &line), 2);
        char rid[32];
        snprintf(rid, sizeof(rid), "t%ld", id);
        ck_assert_str_eq(str_field(j, "request_id"), rid);
        ck_assert_int_eq(line, seen[id]); /* in order per thread */
        seen[id]++;
        json_decref(j);
        lines++;
        p = nl + 1;
    }
    ck_assert_int_eq(lines, N_THREADS * N_LINES);
    free(out);
}
END_TEST

START_TEST(test_log_preserves_errno)
{
    capture_begin();
    errno = ECONNREFUSED;
    FSR_ERROR("connect failed");
    ck_assert_int_eq(errno, ECONNREFUSED);
    free(capture_end(NULL));
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc;

    tc = tcase_create("record");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_log_record_fields);
    tcase_add_test(tc, test_log_severity_names);
    tcase_add_test(tc, test_log_preserves_errno);
    suite_add_tcase(s, tc);

    tc = tcase_create("escaping");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_log_json_escaping);
    tcase_add_test(tc, test_log_invalid_utf8);
    tcase_add_test(tc, test_log_truncation);
    suite_add_tcase(s, tc);

    tc = tcase_create("levels");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_log_level_filter);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_log_request_id_thread_local);
    tcase_add_test(tc, test_log_concurrent_lines_intact);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("file");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_log_dir_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
