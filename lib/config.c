/* SPDX-License-Identifier: MIT */
/* Configuration tables read from the environment, plus Postgres/Redis endpoint helpers. */
#include "fsr/config.h"
#include "fsr/log.h"
#include "fsr/status.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A parsed value, held until the whole table has validated. */
typedef union cfg_value {
    const char *s;
    long long i;
    bool b;
} cfg_value;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        FSR_ERROR("out of memory allocating %zu bytes", n);
        abort();
    }
    return p;
}

/* The inclusive range an entry accepts: its own, or its destination type's full range. */
static void entry_range(const fsr_config_entry *e, long long *lo, long long *hi)
{
    if (e->min != 0 || e->max != 0) {
        *lo = e->min;
        *hi = e->max;
        return;
    }
    switch (e->type) {
    case FSR_CONFIG_INT:
        *lo = INT_MIN;
        *hi = INT_MAX;
        break;
    case FSR_CONFIG_DURATION_MS:
        *lo = 0;
        *hi = UINT32_MAX;
        break;
    default:
        *lo = 0;
        *hi = SIZE_MAX < LLONG_MAX ? (long long)SIZE_MAX : LLONG_MAX;
        break;
    }
}

/*
 * Parses a decimal number at the start of |s| (a '-' only if |allow_sign|) into *|out|;
 * *|end| is left after the digits.  Returns 0, or -1 if there are no digits or it overflows.
 */
static int parse_number(const char *s, bool allow_sign, long long *out, const char **end)
{
    if (!allow_sign && (*s == '-' || *s == '+'))
        return -1;
    if (!isdigit((unsigned char)s[*s == '-' || *s == '+' ? 1 : 0]))
        return -1;
    errno = 0;
    char *e;
    long long v = strtoll(s, &e, 10);
    if (errno == ERANGE)
        return -1;
    *out = v;
    *end = e;
    return 0;
}

/* Multiplies |v| by |mul|, failing (-1) rather than overflowing. */
static int scale(long long v, long long mul, long long *out)
{
    if (v > LLONG_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

static int parse_duration_ms(const char *s, long long *out)
{
    static const struct {
        const char *unit;
        long long mul;
    } units[] = { { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
    long long v;
    const char *end;

    if (parse_number(s, false, &v, &end) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) == 0)
            return scale(v, units[i].mul, out);
    }
    return -1;
}

static int parse_size(const char *s, long long *out)
{
    static const struct {
        const char *unit;
        long long mul;
    } units[] = {
        { "", 1 },           { "b", 1 },           { "k", 1LL << 10 },
        { "kb", 1LL << 10 }, { "kib", 1LL << 10 }, { "m", 1LL << 20 },
        { "mb", 1LL << 20 }, { "mib", 1LL << 20 }, { "g", 1LL << 30 },
        { "gb", 1LL << 30 }, { "gib", 1LL << 30 },
    };
    long long v;
    const char *end;

    if (parse_number(s, false, &v, &end) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) == 0)
            return scale(v, units[i].mul, out);
    }
    return -1;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "true", "1", "yes", "on" };
    static const char *const no[] = { "false", "0", "no", "off" };
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/*
 * Parses |raw| for entry |e| into *|v|.  |from_default| only changes the wording of the
 * error, which helps tell a broken table from a broken deployment.
 */
static int parse_entry(const fsr_config_entry *e, const char *raw, bool from_default, cfg_value *v,
                       char *err, size_t errlen)
{
    const char *what = from_default ? " (default)" : "";
    bool secret = (e->flags & FSR_CONFIG_SECRET) != 0;
    const char *shown = secret ? "***" : raw;
    char buf[128];
    long long lo, hi, x;
    int rv = 0;

    if (e->type == FSR_CONFIG_STRING) {
        v->s = raw;
        return 0;
    }

    /* Numbers and booleans: ignore surrounding blanks. */
    while (isspace((unsigned char)*raw))
        raw++;
    size_t len = strlen(raw);
    while (len > 0 && isspace((unsigned char)raw[len - 1]))
        len--;
    if (len >= sizeof(buf)) {
        set_err(err, errlen, "%s: value%s too long", e->env, what);
        return FSR_E_CONFIG;
    }
    memcpy(buf, raw, len);
    buf[len] = '\0';

    switch (e->type) {
    case FSR_CONFIG_BOOL:
        if (parse_bool(buf, &v->b) != 0) {
            set_err(err, errlen, "%s: '%s'%s is not a boolean (true/false, 1/0, yes/no)", e->env,
                    shown, what);
            return FSR_E_CONFIG;
        }
        return 0;
    case FSR_CONFIG_INT: {
        const char *end;
        rv = parse_number(buf, true, &x, &end);
        if (rv == 0 && *end != '\0')
            rv = -1;
        if (rv != 0) {
            set_err(err, errlen, "%s: '%s'%s is not an integer", e->env, shown, what);
            return FSR_E_CONFIG;
        }
        break;
    }
    case FSR_CONFIG_DURATION_MS:
        if (parse_duration_ms(buf, &x) != 0) {
            set_err(err, errlen, "%s: '%s'%s is not a duration (e.g. 250ms, 2s, 5m, 1h)", e->env,
                    shown, what);
            return FSR_E_CONFIG;
        }
        break;
    case FSR_CONFIG_SIZE:
        if (parse_size(buf, &x) != 0) {
            set_err(err, errlen, "%s: '%s'%s is not a size (e.g. 512, 64K, 4M, 1G)", e->env, shown,
                    what);
            return FSR_E_CONFIG;
        }
        break;
    default:
        set_err(err, errlen, "%s: unknown config type %d", e->env, (int)e->type);
        return FSR_E_CONFIG;
    }

    entry_range(e, &lo, &hi);
    if (x < lo || x > hi) {
        if (secret)
            set_err(err, errlen, "%s: value%s out of range [%lld, %lld]", e->env, what, lo, hi);
        else
            set_err(err, errlen, "%s: %lld%s out of range [%lld, %lld]", e->env, x, what, lo, hi);
        return FSR_E_CONFIG;
    }
    v->i = x;
    return 0;
}

int fsr_config_load(const fsr_config_entry *table, size_t n, char *err, size_t errlen)
{
    cfg_value *vals = xmalloc(n * sizeof(*vals));
    bool *set = xmalloc(n * sizeof(*set));
    int rv = 0;

    set_err(err, errlen, "%s", "");
    for (size_t i = 0; i < n; i++) {
        const fsr_config_entry *e = &table[i];
        if (e->env == NULL || e->dest == NULL) {
            set_err(err, errlen, "%s: config entry without a variable or destination",
                    e->name ? e->name : "?");
            rv = FSR_E_CONFIG;
            goto done;
        }
        const char *raw = getenv(e->env);
        bool from_default = false;
        if (raw == NULL || *raw == '\0') {
            if (e->flags & FSR_CONFIG_REQUIRED) {
                set_err(err, errlen, "%s: required but not set", e->env);
                rv = FSR_E_CONFIG;
                goto done;
            }
            raw = e->def;
            from_default = true;
        }
        set[i] = raw != NULL;
        if (raw == NULL)
            continue;
        rv = parse_entry(e, raw, from_default, &vals[i], err, errlen);
        if (rv != 0)
            goto done;
    }

    /* Everything validated: now store. */
    for (size_t i = 0; i < n; i++) {
        const fsr_config_entry *e = &table[i];
        switch (e->type) {
        case FSR_CONFIG_STRING:
            *(const char **)e->dest = set[i] ? vals[i].s : NULL;
            break;
        case FSR_CONFIG_INT:
            *(int *)e->dest = set[i] ? (int)vals[i].i : 0;
            break;
        case FSR_CONFIG_BOOL:
            *(bool *)e->dest = set[i] ? vals[i].b : false;
            break;
        case FSR_CONFIG_DURATION_MS:
            *(uint32_t *)e->dest = set[i] ? (uint32_t)vals[i].i : 0;
            break;
        case FSR_CONFIG_SIZE:
            *(size_t *)e->dest = set[i] ? (size_t)vals[i].i : 0;
            break;
        }
    }
done:
    free(set);
    free(vals);
    return rv;
}

void fsr_config_log(const fsr_config_entry *table, size_t n)
{
    if (FSR_LOG_INFO < fsr_log_min_level)
        return;

    /* Formatted numbers go in one block: 24 bytes hold any 64-bit integer. */
    enum {
        NUM = 24
    };
    const char **kv = xmalloc((2 * n + 1) * sizeof(*kv));
    char *nums = xmalloc(n * NUM);
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        const fsr_config_entry *e = &table[i];
        char *num = nums + i * NUM;
        const char *val = num;

        if (e->dest == NULL)
            continue;
        switch (e->type) {
        case FSR_CONFIG_STRING:
            val = *(const char *const *)e->dest;
            if (val == NULL)
                val = "";
            break;
        case FSR_CONFIG_INT:
            snprintf(num, NUM, "%d", *(const int *)e->dest);
            break;
        case FSR_CONFIG_BOOL:
            val = *(const bool *)e->dest ? "true" : "false";
            break;
        case FSR_CONFIG_DURATION_MS:
            snprintf(num, NUM, "%" PRIu32, *(const uint32_t *)e->dest);
            break;
        case FSR_CONFIG_SIZE:
            snprintf(num, NUM, "%zu", *(const size_t *)e->dest);
            break;
        default:
            val = "?";
        }
        if ((e->flags & FSR_CONFIG_SECRET) && *val != '\0')
            val = "***";
        kv[k++] = e->name ? e->name : e->env;
        kv[k++] = val;
    }
    kv[k] = NULL;
    fsr_log_write(FSR_LOG_INFO, kv, "effective configuration");
    free(nums);
    free(kv);
}

/* True if a conninfo value must be single-quoted to survive libpq's parser. */
static bool pq_needs_quotes(const char *s)
{
    if (*s == '\0')
        return true;
    for (; *s; s++) {
        if (isspace((unsigned char)*s) || *s == '\'' || *s == '\\' || *s == '=')
            return true;
    }
    return false;
}

/*
 * Appends ` key=value` to |buf|.  libpq's conninfo parser takes a bare word up to the next
 * blank, or a single-quoted string in which a backslash escapes the next character; so
 * quote when needed and backslash-escape ' and \ inside the quotes.
 */
static void pq_append(char **buf, size_t *len, size_t *cap, const char *key, const char *val)
{
    size_t need = strlen(key) + 2 * strlen(val) + 5; /* space, '=', two quotes, NUL */
    if (*len + need > *cap) {
        *cap = (*len + need) * 2;
        char *nb = realloc(*buf, *cap);
        if (nb == NULL) {
            FSR_ERROR("out of memory building conninfo");
            abort();
        }
        *buf = nb;
    }
    char *p = *buf + *len;
    if (*len > 0)
        *p++ = ' ';
    p += sprintf(p, "%s=", key);
    bool q = pq_needs_quotes(val);
    if (q)
        *p++ = '\'';
    for (const char *s = val; *s; s++) {
        if (q && (*s == '\'' || *s == '\\'))
            *p++ = '\\';
        *p++ = *s;
    }
    if (q)
        *p++ = '\'';
    *p = '\0';
    *len = (size_t)(p - *buf);
}

/* Writes "<prefix>_<suffix>" into |out|; returns -1 if it does not fit. */
static int env_name(char *out, size_t outlen, const char *prefix, const char *suffix)
{
    int n = snprintf(out, outlen, "%s_%s", prefix, suffix);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int fsr_config_pg_conninfo(const char *prefix, int default_port, const char *default_db, char **out,
                           char *err, size_t errlen)
{
    char e_host[128], e_port[128], e_name[128], e_user[128], e_pass[128], e_tmo[128];
    char def_port[16];
    struct {
        const char *host, *name, *user, *password;
        int port, timeout;
    } pg;

    if (prefix == NULL || env_name(e_host, sizeof(e_host), prefix, "DB_HOST") != 0 ||
        env_name(e_port, sizeof(e_port), prefix, "DB_PORT") != 0 ||
        env_name(e_name, sizeof(e_name), prefix, "DB_NAME") != 0 ||
        env_name(e_user, sizeof(e_user), prefix, "DB_USER") != 0 ||
        env_name(e_pass, sizeof(e_pass), prefix, "DB_PASSWORD") != 0 ||
        env_name(e_tmo, sizeof(e_tmo), prefix, "DB_CONNECT_TIMEOUT") != 0) {
        set_err(err, errlen, "invalid database config prefix");
        return FSR_E_CONFIG;
    }
    snprintf(def_port, sizeof(def_port), "%d", default_port);

    const fsr_config_entry table[] = {
        { "db_host", e_host, FSR_CONFIG_STRING, "127.0.0.1", 0, &pg.host, 0, 0 },
        { "db_port", e_port, FSR_CONFIG_INT, def_port, 0, &pg.port, 1, 65535 },
        { "db_name", e_name, FSR_CONFIG_STRING, default_db, default_db ? 0 : FSR_CONFIG_REQUIRED,
          &pg.name, 0, 0 },
        { "db_user", e_user, FSR_CONFIG_STRING, "fsr", 0, &pg.user, 0, 0 },
        { "db_password", e_pass, FSR_CONFIG_STRING, NULL, FSR_CONFIG_SECRET, &pg.password, 0, 0 },
        { "db_connect_timeout", e_tmo, FSR_CONFIG_INT, "5", 0, &pg.timeout, 0, 3600 },
    };
    int rv = fsr_config_load(table, sizeof(table) / sizeof(table[0]), err, errlen);
    if (rv != 0)
        return rv;

    char *buf = NULL, tmo[16], port[16];
    size_t len = 0, cap = 0;
    snprintf(port, sizeof(port), "%d", pg.port);
    snprintf(tmo, sizeof(tmo), "%d", pg.timeout);
    pq_append(&buf, &len, &cap, "host", pg.host);
    pq_append(&buf, &len, &cap, "port", port);
    pq_append(&buf, &len, &cap, "dbname", pg.name);
    pq_append(&buf, &len, &cap, "user", pg.user);
    if (pg.password != NULL)
        pq_append(&buf, &len, &cap, "password", pg.password);
    pq_append(&buf, &len, &cap, "connect_timeout", tmo);
    *out = buf;
    return 0;
}

int fsr_config_redis_addr(const char *prefix, int default_port, fsr_redis_addr *out, char *err,
                          size_t errlen)
{
    char e_host[128], e_port[128], def_port[16];
    fsr_redis_addr a;

    if (prefix == NULL || env_name(e_host, sizeof(e_host), prefix, "REDIS_HOST") != 0 ||
        env_name(e_port, sizeof(e_port), prefix, "REDIS_PORT") != 0) {
        set_err(err, errlen, "invalid redis config prefix");
        return FSR_E_CONFIG;
    }
    snprintf(def_port, sizeof(def_port), "%d", default_port);
    const fsr_config_entry table[] = {
        { "redis_host", e_host, FSR_CONFIG_STRING, "127.0.0.1", 0, &a.host, 0, 0 },
        { "redis_port", e_port, FSR_CONFIG_INT, def_port, 0, &a.port, 1, 65535 },
    };
    int rv = fsr_config_load(table, 2, err, errlen);
    if (rv == 0)
        *out = a;
    return rv;
}
