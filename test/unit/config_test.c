/* SPDX-License-Identifier: MIT */
/* Unit tests for lib/config.c: parsing, validation, masking, conninfo quoting. */
#include "fsr/config.h"
#include "fsr/log.h"
#include "fsr/status.h"

#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    int port;
    const char *host;
    const char *password;
    bool debug;
    uint32_t grace_ms;
    size_t max_body;
} cfg;

/* A table like a service's: every type, a secret, a bounded int. */
static const fsr_config_entry table[] = {
    { "port", "T_PORT", FSR_CONFIG_INT, "8001", 0, &cfg.port, .min = 0, .max = 65535 },
    { "host", "T_HOST", FSR_CONFIG_STRING, "0.0.0.0", 0, &cfg.host, 0, 0 },
    { "password", "T_PASSWORD", FSR_CONFIG_STRING, NULL, FSR_CONFIG_SECRET, &cfg.password, 0, 0 },
    { "debug", "T_DEBUG", FSR_CONFIG_BOOL, "false", 0, &cfg.debug, 0, 0 },
    { "grace", "T_GRACE", FSR_CONFIG_DURATION_MS, "10s", 0, &cfg.grace_ms, 0, 0 },
    { "max_body", "T_MAX_BODY", FSR_CONFIG_SIZE, "4M", 0, &cfg.max_body, 0, 0 },
};
#define N_TABLE (sizeof(table) / sizeof(table[0]))

static const char *const all_vars[] = {
    "T_PORT",
    "T_HOST",
    "T_PASSWORD",
    "T_DEBUG",
    "T_GRACE",
    "T_MAX_BODY",
    "T_REQ",
    "EQUITY_DB_HOST",
    "EQUITY_DB_PORT",
    "EQUITY_DB_NAME",
    "EQUITY_DB_USER",
    "EQUITY_DB_PASSWORD",
    "EQUITY_DB_CONNECT_TIMEOUT",
    "FI_DB_HOST",
    "FI_DB_PORT",
    "FI_DB_NAME",
    "FI_DB_USER",
    "FI_DB_PASSWORD",
    "FI_DB_CONNECT_TIMEOUT",
    "SHARED_REDIS_HOST",
    "SHARED_REDIS_PORT",
};

static void setup(void)
{
    for (size_t i = 0; i < sizeof(all_vars) / sizeof(all_vars[0]); i++)
        unsetenv(all_vars[i]);
    memset(&cfg, 0, sizeof(cfg));
    ck_assert_int_eq(fsr_log_init("config_test", "info", NULL), 0);
}

/* Loads |table| with T_<var>=|value| set; returns the result, error text in |err|. */
static int load_with(const char *var, const char *value, char *err, size_t errlen)
{
    setenv(var, value, 1);
    int rv = fsr_config_load(table, N_TABLE, err, errlen);
    unsetenv(var);
    return rv;
}

START_TEST(test_config_defaults)
{
    char err[256] = "junk";
    ck_assert_int_eq(fsr_config_load(table, N_TABLE, err, sizeof(err)), 0);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(cfg.port, 8001);
    ck_assert_str_eq(cfg.host, "0.0.0.0");
    ck_assert_ptr_null(cfg.password);
    ck_assert(!cfg.debug);
    ck_assert_uint_eq(cfg.grace_ms, 10000);
    ck_assert_uint_eq(cfg.max_body, 4u << 20);
}
END_TEST

START_TEST(test_config_env_overrides)
{
    char err[256];
    setenv("T_PORT", "0", 1);
    setenv("T_HOST", "::1", 1);
    setenv("T_PASSWORD", "s3cret", 1);
    setenv("T_DEBUG", "YES", 1);
    setenv("T_GRACE", " 250ms ", 1); /* blanks around numbers are ignored */
    setenv("T_MAX_BODY", "64k", 1);
    ck_assert_int_eq(fsr_config_load(table, N_TABLE, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.port, 0);
    ck_assert_str_eq(cfg.host, "::1");
    ck_assert_str_eq(cfg.password, "s3cret");
    ck_assert(cfg.debug);
    ck_assert_uint_eq(cfg.grace_ms, 250);
    ck_assert_uint_eq(cfg.max_body, 65536);

    /* An empty variable counts as unset: the default applies. */
    setenv("T_PORT", "", 1);
    ck_assert_int_eq(fsr_config_load(table, N_TABLE, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.port, 8001);
}
END_TEST

START_TEST(test_config_bool_forms)
{
    static const struct {
        const char *in;
        bool want;
    } ok[] = {
        { "true", true },   { "TRUE", true },   { "1", true },  { "yes", true }, { "on", true },
        { "false", false }, { "False", false }, { "0", false }, { "no", false }, { "off", false },
    };
    char err[256];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cfg.debug = !ok[i].want;
        ck_assert_int_eq(load_with("T_DEBUG", ok[i].in, err, sizeof(err)), 0);
        ck_assert_msg(cfg.debug == ok[i].want, "%s", ok[i].in);
    }
    static const char *const bad[] = { "2", "y", "truee", "nope", "-1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(load_with("T_DEBUG", bad[i], err, sizeof(err)), FSR_E_CONFIG);
        ck_assert_msg(strncmp(err, "T_DEBUG: ", 9) == 0, "%s", err);
        ck_assert_ptr_nonnull(strstr(err, "not a boolean"));
    }
}
END_TEST

START_TEST(test_config_numbers)
{
    static const struct {
        const char *var, *in;
        unsigned long long want;
    } ok[] = {
        { "T_GRACE", "250", 250 },          { "T_GRACE", "250ms", 250 },
        { "T_GRACE", "2s", 2000 },          { "T_GRACE", "5m", 300000 },
        { "T_GRACE", "1h", 3600000 },       { "T_GRACE", "4294967295", 4294967295ULL },
        { "T_MAX_BODY", "512", 512 },       { "T_MAX_BODY", "512B", 512 },
        { "T_MAX_BODY", "64K", 65536 },     { "T_MAX_BODY", "64KiB", 65536 },
        { "T_MAX_BODY", "4M", 4194304 },    { "T_MAX_BODY", "2mb", 2097152 },
        { "T_MAX_BODY", "1G", 1073741824 }, { "T_MAX_BODY", "0", 0 },
        { "T_PORT", "65535", 65535 },       { "T_PORT", "+80", 80 },
    };
    char err[256];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ck_assert_msg(load_with(ok[i].var, ok[i].in, err, sizeof(err)) == 0, "%s=%s: %s", ok[i].var,
                      ok[i].in, err);
        unsigned long long got = strcmp(ok[i].var, "T_GRACE") == 0      ? cfg.grace_ms
                                 : strcmp(ok[i].var, "T_MAX_BODY") == 0 ? cfg.max_body
                                                                        : (unsigned)cfg.port;
        ck_assert_msg(got == ok[i].want, "%s=%s: got %llu", ok[i].var, ok[i].in, got);
    }

    static const struct {
        const char *var, *in, *err;
    } bad[] = {
        { "T_PORT", "abc", "T_PORT: 'abc' is not an integer" },
        { "T_PORT", "80x", "T_PORT: '80x' is not an integer" },
        { "T_PORT", "8 0", "T_PORT: '8 0' is not an integer" },
        { "T_PORT", "65536", "T_PORT: 65536 out of range [0, 65535]" },
        { "T_PORT", "-1", "T_PORT: -1 out of range [0, 65535]" },
        { "T_PORT", "99999999999999999999", "T_PORT: '99999999999999999999' is not an integer" },
        { "T_GRACE", "-5s", "T_GRACE: '-5s' is not a duration (e.g. 250ms, 2s, 5m, 1h)" },
        { "T_GRACE", "1.5s", "T_GRACE: '1.5s' is not a duration (e.g. 250ms, 2s, 5m, 1h)" },
        { "T_GRACE", "10d", "T_GRACE: '10d' is not a duration (e.g. 250ms, 2s, 5m, 1h)" },
        { "T_GRACE", "4294967296", "T_GRACE: 4294967296 out of range [0, 4294967295]" },
        { "T_GRACE", "2000h", "T_GRACE: 7200000000 out of range [0, 4294967295]" },
        { "T_MAX_BODY", "1T", "T_MAX_BODY: '1T' is not a size (e.g. 512, 64K, 4M, 1G)" },
        { "T_MAX_BODY", "K", "T_MAX_BODY: 'K' is not a size (e.g. 512, 64K, 4M, 1G)" },
        { "T_MAX_BODY", "-1", "T_MAX_BODY: '-1' is not a size (e.g. 512, 64K, 4M, 1G)" },
        { "T_MAX_BODY", "9999999999999G",
          "T_MAX_BODY: '9999999999999G' is not a size (e.g. 512, "
          "64K, 4M, 1G)" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(load_with(bad[i].var, bad[i].in, err, sizeof(err)), FSR_E_CONFIG);
        ck_assert_str_eq(err, bad[i].err);
    }
}
END_TEST

START_TEST(test_config_failure_stores_nothing)
{
    char err[256];
    cfg.port = 1234;
    cfg.host = "untouched";
    setenv("T_PORT", "9000", 1);     /* valid, but listed before the bad one */
    setenv("T_MAX_BODY", "huge", 1); /* invalid */
    ck_assert_int_eq(fsr_config_load(table, N_TABLE, err, sizeof(err)), FSR_E_CONFIG);
    ck_assert_int_eq(cfg.port, 1234);
    ck_assert_str_eq(cfg.host, "untouched");

    /* A tiny error buffer is still NUL-terminated. */
    char small[8];
    ck_assert_int_eq(fsr_config_load(table, N_TABLE, small, sizeof(small)), FSR_E_CONFIG);
    ck_assert_str_eq(small, "T_MAX_B");
    ck_assert_int_eq(fsr_config_load(table, N_TABLE, NULL, 0), FSR_E_CONFIG);
}
END_TEST

START_TEST(test_config_required_and_secret)
{
    static int n;
    static int key;
    static const fsr_config_entry req[] = {
        { "n", "T_REQ", FSR_CONFIG_INT, "7", FSR_CONFIG_REQUIRED, &n, 0, 0 },
        { "key", "T_PASSWORD", FSR_CONFIG_INT, NULL, FSR_CONFIG_SECRET, &key, 0, 0 },
    };
    char err[256];

    /* Required ignores the default. */
    ck_assert_int_eq(fsr_config_load(req, 1, err, sizeof(err)), FSR_E_CONFIG);
    ck_assert_str_eq(err, "T_REQ: required but not set");
    setenv("T_REQ", "", 1);
    ck_assert_int_eq(fsr_config_load(req, 1, err, sizeof(err)), FSR_E_CONFIG);
    ck_assert_str_eq(err, "T_REQ: required but not set");
    setenv("T_REQ", "3", 1);
    ck_assert_int_eq(fsr_config_load(req, 1, err, sizeof(err)), 0);
    ck_assert_int_eq(n, 3);

    /* A secret's value is never echoed in an error. */
    setenv("T_PASSWORD", "hunter2", 1);
    ck_assert_int_eq(fsr_config_load(req, 2, err, sizeof(err)), FSR_E_CONFIG);
    ck_assert_str_eq(err, "T_PASSWORD: '***' is not an integer");
}
END_TEST

START_TEST(test_config_log_masks_secrets)
{
    char err[256];
    setenv("T_PASSWORD", "hunter2", 1);
    setenv("T_HOST", "db \"primary\"", 1);
    ck_assert_int_eq(fsr_config_load(table, N_TABLE, err, sizeof(err)), 0);

    char path[] = "/tmp/fsr_config_test_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    fsr_config_log(table, N_TABLE);
    unsetenv("T_PASSWORD");
    ck_assert_int_eq(fsr_config_load(table, N_TABLE, err, sizeof(err)), 0);
    fsr_config_log(table, N_TABLE); /* unset secret: shown empty */
    dup2(saved, STDOUT_FILENO);
    close(saved);

    json_error_t jerr;
    FILE *f = fdopen(fd, "r");
    rewind(f);
    char line[4096];
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    ck_assert_ptr_null(strstr(line, "hunter2"));
    json_t *j = json_loads(line, 0, &jerr);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "message")), "effective configuration");
    ck_assert_str_eq(json_string_value(json_object_get(j, "severity")), "INFO");
    ck_assert_str_eq(json_string_value(json_object_get(j, "password")), "***");
    ck_assert_str_eq(json_string_value(json_object_get(j, "host")), "db \"primary\"");
    ck_assert_str_eq(json_string_value(json_object_get(j, "port")), "8001");
    ck_assert_str_eq(json_string_value(json_object_get(j, "debug")), "false");
    ck_assert_str_eq(json_string_value(json_object_get(j, "grace")), "10000");
    ck_assert_str_eq(json_string_value(json_object_get(j, "max_body")), "4194304");
    json_decref(j);

    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    j = json_loads(line, 0, &jerr);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "password")), "");
    json_decref(j);
    ck_assert_ptr_null(fgets(line, sizeof(line), f));
    fclose(f);
    unlink(path);
}
END_TEST

/* Parses |conninfo| with libpq itself and returns keyword |kw|'s value (static copy). */
static const char *pq_value(const char *conninfo, const char *kw)
{
    static char val[512];
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    ck_assert_msg(opts != NULL, "libpq rejects '%s': %s", conninfo, errmsg ? errmsg : "");
    const char *found = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, kw) == 0 && o->val != NULL) {
            snprintf(val, sizeof(val), "%s", o->val);
            found = val;
        }
    }
    PQconninfoFree(opts);
    return found;
}

START_TEST(test_config_pg_conninfo_defaults)
{
    char err[256], *ci = NULL;
    ck_assert_int_eq(fsr_config_pg_conninfo("EQUITY", 5432, "equity", &ci, err, sizeof(err)), 0);
    ck_assert_str_eq(ci, "host=127.0.0.1 port=5432 dbname=equity user=fsr connect_timeout=5");
    free(ci);

    ck_assert_int_eq(fsr_config_pg_conninfo("FI", 5433, "fixed_income", &ci, err, sizeof(err)), 0);
    ck_assert_str_eq(ci, "host=127.0.0.1 port=5433 dbname=fixed_income user=fsr connect_timeout=5");
    free(ci);
}
END_TEST

START_TEST(test_config_pg_conninfo_quoting)
{
    static const char *const hard[] = {
        "it's", "back\\slash", "sp ace", "a'b\\c d", "", "trailing\\", "=eq", "'",
    };
    char err[256], *ci = NULL;
    setenv("EQUITY_DB_HOST", "/tmp/pg sock", 1); /* a socket directory with a blank */
    setenv("EQUITY_DB_NAME", "eq'db", 1);
    setenv("EQUITY_DB_USER", "svc user", 1);
    setenv("EQUITY_DB_PORT", "6543", 1);
    setenv("EQUITY_DB_CONNECT_TIMEOUT", "2", 1);
    for (size_t i = 0; i < sizeof(hard) / sizeof(hard[0]); i++) {
        setenv("EQUITY_DB_PASSWORD", hard[i], 1);
        ck_assert_int_eq(fsr_config_pg_conninfo("EQUITY", 5432, "equity", &ci, err, sizeof(err)),
                         0);
        ck_assert_str_eq(pq_value(ci, "host"), "/tmp/pg sock");
        ck_assert_str_eq(pq_value(ci, "port"), "6543");
        ck_assert_str_eq(pq_value(ci, "dbname"), "eq'db");
        ck_assert_str_eq(pq_value(ci, "user"), "svc user");
        ck_assert_str_eq(pq_value(ci, "connect_timeout"), "2");
        if (hard[i][0] != '\0')
            ck_assert_str_eq(pq_value(ci, "password"), hard[i]);
        else
            ck_assert_ptr_null(pq_value(ci, "password")); /* empty means unset */
        free(ci);
    }
    setenv("EQUITY_DB_PASSWORD", "it's", 1);
    ck_assert_int_eq(fsr_config_pg_conninfo("EQUITY", 5432, "equity", &ci, err, sizeof(err)), 0);
    ck_assert_str_eq(ci, "host='/tmp/pg sock' port=6543 dbname='eq\\'db' user='svc user' "
                         "password='it\\'s' connect_timeout=2");
    free(ci);
}
END_TEST

START_TEST(test_config_pg_conninfo_errors)
{
    char err[256], *ci = (char *)"untouched";
    setenv("FI_DB_PORT", "0", 1);
    ck_assert_int_eq(fsr_config_pg_conninfo("FI", 5433, "fixed_income", &ci, err, sizeof(err)),
                     FSR_E_CONFIG);
    ck_assert_str_eq(err, "FI_DB_PORT: 0 out of range [1, 65535]");
    ck_assert_str_eq(ci, "untouched");
    unsetenv("FI_DB_PORT");
    /* No default database: the variable becomes required. */
    ck_assert_int_eq(fsr_config_pg_conninfo("FI", 5433, NULL, &ci, err, sizeof(err)), FSR_E_CONFIG);
    ck_assert_str_eq(err, "FI_DB_NAME: required but not set");
    setenv("FI_DB_PASSWORD", "p", 1);
    setenv("FI_DB_CONNECT_TIMEOUT", "soon", 1);
    ck_assert_int_eq(fsr_config_pg_conninfo("FI", 5433, "fi", &ci, err, sizeof(err)), FSR_E_CONFIG);
    ck_assert_str_eq(err, "FI_DB_CONNECT_TIMEOUT: 'soon' is not an integer");
}
END_TEST

START_TEST(test_config_redis_addr)
{
    char err[256];
    fsr_redis_addr a = { NULL, 0 };
    ck_assert_int_eq(fsr_config_redis_addr("SHARED", 6381, &a, err, sizeof(err)), 0);
    ck_assert_str_eq(a.host, "127.0.0.1");
    ck_assert_int_eq(a.port, 6381);

    setenv("SHARED_REDIS_HOST", "redis-shared", 1);
    setenv("SHARED_REDIS_PORT", "7000", 1);
    ck_assert_int_eq(fsr_config_redis_addr("SHARED", 6381, &a, err, sizeof(err)), 0);
    ck_assert_str_eq(a.host, "redis-shared");
    ck_assert_int_eq(a.port, 7000);

    setenv("SHARED_REDIS_PORT", "70000", 1);
    ck_assert_int_eq(fsr_config_redis_addr("SHARED", 6381, &a, err, sizeof(err)), FSR_E_CONFIG);
    ck_assert_str_eq(err, "SHARED_REDIS_PORT: 70000 out of range [1, 65535]");
    ck_assert_str_eq(a.host, "redis-shared"); /* untouched on failure */
    ck_assert_int_eq(a.port, 7000);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("load");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_config_defaults);
    tcase_add_test(tc, test_config_env_overrides);
    tcase_add_test(tc, test_config_bool_forms);
    tcase_add_test(tc, test_config_numbers);
    tcase_add_test(tc, test_config_failure_stores_nothing);
    tcase_add_test(tc, test_config_required_and_secret);
    suite_add_tcase(s, tc);

    tc = tcase_create("log");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_config_log_masks_secrets);
    suite_add_tcase(s, tc);

    tc = tcase_create("endpoints");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_config_pg_conninfo_defaults);
    tcase_add_test(tc, test_config_pg_conninfo_quoting);
    tcase_add_test(tc, test_config_pg_conninfo_errors);
    tcase_add_test(tc, test_config_redis_addr);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
