/* SPDX-License-Identifier: MIT */
/* Configuration from environment variables, declared as a table (redis' static_configs). */
#ifndef FSR_CONFIG_H
#define FSR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The type of an entry, which also fixes the type |dest| points to.
 *
 *   FSR_CONFIG_STRING       const char **  the value itself; it points into the environment
 *                                          (or at |def|), so it lives as long as the process
 *                                          unless the variable is changed with setenv().
 *   FSR_CONFIG_INT          int *          decimal, e.g. "8001", "-1".
 *   FSR_CONFIG_BOOL         bool *         true/false, 1/0, yes/no, on/off (any case).
 *   FSR_CONFIG_DURATION_MS  uint32_t *     milliseconds: "250" or "250ms", "2s", "5m", "1h".
 *   FSR_CONFIG_SIZE         size_t *       bytes: "512" or "512B", "64K", "4M", "1G" (binary
 *                                          multiples; "KB"/"KiB" forms are accepted too).
 *
 * Numbers may not carry a sign unless the type is INT, and surrounding blanks are ignored.
 */
typedef enum fsr_config_type {
    FSR_CONFIG_STRING,
    FSR_CONFIG_INT,
    FSR_CONFIG_BOOL,
    FSR_CONFIG_DURATION_MS,
    FSR_CONFIG_SIZE,
} fsr_config_type;

/* Entry flags. */
enum {
    FSR_CONFIG_REQUIRED = 1 << 0, /* unset (or empty) is an error; |def| is ignored */
    FSR_CONFIG_SECRET = 1 << 1,   /* never logged nor echoed in errors: shown as "***" */
};

/*
 * One configuration entry.  A service declares a static table of them:
 *
 *     static struct { int port; const char *db_password; uint32_t grace_ms; } cfg;
 *     static const fsr_config_entry eq_config[] = {
 *         { "port", "PORT", FSR_CONFIG_INT, "8001", 0, &cfg.port, .min = 0, .max = 65535 },
 *         { "db_password", "EQUITY_DB_PASSWORD", FSR_CONFIG_STRING, NULL, FSR_CONFIG_SECRET,
 *           &cfg.db_password },
 *         { "grace", "GRACE_MS", FSR_CONFIG_DURATION_MS, "10s", 0, &cfg.grace_ms },
 *     };
 *
 * |min| and |max| bound INT, DURATION_MS (in ms) and SIZE (in bytes) values, inclusive;
 * leaving both 0 means the full range of the destination type.
 */
typedef struct fsr_config_entry {
    const char *name; /* the key in the effective-config log record, e.g. "port" */
    const char *env;  /* the environment variable, e.g. "PORT" */
    fsr_config_type type;
    const char *def; /* default, in the same syntax as the variable; NULL = none */
    unsigned flags;  /* FSR_CONFIG_* */
    void *dest;      /* where the value goes; its type follows |type| */
    long long min;
    long long max;
} fsr_config_entry;

/*
 * Reads every entry of |table| (|n| entries) from the environment.  An unset or empty
 * variable takes the entry's default; an unset entry without a default leaves a STRING
 * destination NULL and other destinations 0/false.
 *
 * Everything is validated before anything is stored, so on failure no destination is
 * written.  Returns 0, or FSR_E_CONFIG with a one-line message in |err| (|errlen| bytes,
 * always NUL-terminated when |errlen| > 0) that names the variable, e.g.
 * "PORT: 'abc' is not an integer" or "EQUITY_DB_PASSWORD: required but not set".
 * Values of secret entries are never copied into |err|.  The caller logs |err| and exits
 * non-zero before opening any socket.
 */
int fsr_config_load(const fsr_config_entry *table, size_t n, char *err, size_t errlen);

/*
 * Logs the values currently in the destinations of |table| as one INFO record with
 * message "effective configuration" and one field per entry, keyed by |name|.  Secrets
 * that are set are shown as "***"; unset strings as "".  Durations are in ms, sizes in bytes.
 */
void fsr_config_log(const fsr_config_entry *table, size_t n);

/*
 * Builds a libpq conninfo string from <prefix>_DB_HOST (default "127.0.0.1"; may be a
 * socket directory), <prefix>_DB_PORT (|default_port|), <prefix>_DB_NAME (|default_db|),
 * <prefix>_DB_USER ("fsr"), <prefix>_DB_PASSWORD (omitted if unset) and
 * <prefix>_DB_CONNECT_TIMEOUT (seconds, default 5), e.g. for prefix "EQUITY":
 *
 *     host=127.0.0.1 port=5432 dbname=equity user=fsr password='it\'s' connect_timeout=5
 *
 * (values are single-quoted when needed, with ' and \ backslash-escaped, as libpq parses
 * them).  On success stores a string the caller frees with free() in *|out| and returns 0;
 * otherwise returns FSR_E_CONFIG with a message in |err| as fsr_config_load() does.
 */
int fsr_config_pg_conninfo(const char *prefix, int default_port, const char *default_db, char **out,
                           char *err, size_t errlen);

/* A Redis endpoint.  |host| starting with '/' is a unix socket path and |port| is unused. */
typedef struct fsr_redis_addr {
    const char *host; /* points into the environment, or at a static default */
    int port;
} fsr_redis_addr;

/*
 * Reads <prefix>_REDIS_HOST (default "127.0.0.1") and <prefix>_REDIS_PORT (|default_port|,
 * 1..65535) into *|out|.  Returns 0, or FSR_E_CONFIG with a message in |err| (|out|
 * untouched).
 */
int fsr_config_redis_addr(const char *prefix, int default_port, fsr_redis_addr *out, char *err,
                          size_t errlen);

#endif /* FSR_CONFIG_H */
