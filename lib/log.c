/* SPDX-License-Identifier: MIT */
/* JSON-lines logging: one object per line on stdout, optionally appended to LOG_DIR too. */
#define _GNU_SOURCE /* program_invocation_short_name */
#include "fsr/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Every record is built in thread-local buffers and leaves the process in a single
 * write(2) per destination, so records from different threads never interleave within a
 * line (atomic for pipes up to PIPE_BUF, and for O_APPEND files in practice).  There is
 * no lock on this path.
 *
 * Records are capped at LINE_MAX_BYTES: a longer message or value is cut at a character
 * boundary and the record gets "truncated":true, so every line stays valid JSON.
 */
#define MSG_MAX_BYTES  8192
#define LINE_MAX_BYTES 32768
/* Room always kept free for the closing `,"truncated":true}\n`. */
#define LINE_RESERVE 32

fsr_log_level fsr_log_min_level = FSR_LOG_INFO;

/*
 * Process-wide settings, written by fsr_log_init() before threads start and only read
 * afterwards.
 */
static char *log_service;
static int log_file_fd = -1;

static __thread const char *tl_request_id;
static __thread char tl_msg[MSG_MAX_BYTES];
static __thread char tl_line[LINE_MAX_BYTES];

/* A bounded output buffer; |trunc| is set once something did not fit. */
typedef struct line_buf {
    char *p;
    size_t len;
    size_t cap; /* usable capacity: the reserve is already subtracted */
    bool trunc;
} line_buf;

static void put(line_buf *b, const char *s, size_t n)
{
    if (b->trunc || n > b->cap - b->len) {
        b->trunc = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_lit(line_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/*
 * Length of the well-formed UTF-8 sequence at |s| (at most |n| bytes available), or 0 if
 * the bytes there are not one.  Rejects overlong forms, surrogates and code points above
 * U+10FFFF, as RFC 3629 requires.
 */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/*
 * Appends |str| JSON-escaped, without quotes.  Quotes, backslashes and control characters
 * are escaped; each byte that does not start a well-formed UTF-8 sequence becomes \ufffd.
 * Stops, setting |trunc|, before the first character that does not fit, so an escape or a
 * multi-byte character is never split.
 */
static void put_escaped(line_buf *b, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);

    for (size_t i = 0; i < n && !b->trunc;) {
        unsigned c = s[i];
        char esc[8];
        const char *out = esc;
        size_t outlen, adv = 1;

        switch (c) {
        case '"':
            out = "\\\"";
            outlen = 2;
            break;
        case '\\':
            out = "\\\\";
            outlen = 2;
            break;
        case '\n':
            out = "\\n";
            outlen = 2;
            break;
        case '\r':
            out = "\\r";
            outlen = 2;
            break;
        case '\t':
            out = "\\t";
            outlen = 2;
            break;
        case '\b':
            out = "\\b";
            outlen = 2;
            break;
        case '\f':
            out = "\\f";
            outlen = 2;
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                outlen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
            } else if (c < 0x80) {
                out = (const char *)s + i;
                outlen = 1;
            } else if ((adv = utf8_seq_len(s + i, n - i)) != 0) {
                out = (const char *)s + i;
                outlen = adv;
            } else {
                out = "\\ufffd";
                outlen = 6;
                adv = 1;
            }
        }
        put(b, out, outlen);
        i += adv;
    }
}

/*
 * Appends `,"key":"value"` (or `,"key":null` for a NULL |val|).  If not even the key fits,
 * the field is dropped whole; a value that does not fit is cut and still closed (the
 * closing quote may use the reserve), so the record stays valid JSON either way.  Nothing
 * more is appended once the record is truncated.
 */
static void put_field(line_buf *b, const char *key, const char *val)
{
    if (b->trunc)
        return;
    size_t mark = b->len;
    put(b, ",\"", 2);
    put_escaped(b, key);
    put(b, "\":", 2);
    put(b, val != NULL ? "\"" : "null", val != NULL ? 1 : 4);
    if (b->trunc) {
        b->len = mark;
        return;
    }
    if (val != NULL) {
        put_escaped(b, val);
        b->p[b->len++] = '"';
    }
}

static const char *severity_name(fsr_log_level level)
{
    switch (level) {
    case FSR_LOG_DEBUG:
        return "DEBUG";
    case FSR_LOG_INFO:
        return "INFO";
    case FSR_LOG_WARN:
        return "WARNING";
    case FSR_LOG_ERROR:
        return "ERROR";
    }
    return "DEFAULT";
}

/* Writes all of |p|, retrying on EINTR and short writes; gives up silently otherwise. */
static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static int parse_level(const char *s, fsr_log_level *out)
{
    static const struct {
        const char *name;
        fsr_log_level level;
    } names[] = {
        { "debug", FSR_LOG_DEBUG },  { "info", FSR_LOG_INFO },   { "warn", FSR_LOG_WARN },
        { "warning", FSR_LOG_WARN }, { "error", FSR_LOG_ERROR },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

/* Opens |dir|/<service>.log for appending, creating |dir| (one level) if it is missing. */
static int open_log_file(const char *dir, const char *service)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s.log", dir, service);
    if (n < 0 || (size_t)n >= sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) {
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return -errno;
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    }
    if (fd < 0)
        return -errno;
    return fd; /* the caller keeps it as the log file for the process lifetime */
}

int fsr_log_init(const char *service, const char *level, const char *dir)
{
    fsr_log_level lv = FSR_LOG_INFO;
    int fd = -1;

    if (service == NULL || *service == '\0')
        service = program_invocation_short_name;
    /* Validate everything before changing anything, so a failure changes nothing. */
    if (level != NULL && *level != '\0' && parse_level(level, &lv) != 0)
        return -EINVAL;
    if (dir != NULL && *dir != '\0') {
        fd = open_log_file(dir, service);
        if (fd < 0)
            return fd;
    }
    char *svc = strdup(service);
    if (svc == NULL) {
        if (fd >= 0)
            close(fd);
        return -ENOMEM;
    }
    free(log_service);
    log_service = svc;
    if (log_file_fd >= 0)
        close(log_file_fd);
    log_file_fd = fd;
    fsr_log_min_level = lv;
    return 0;
}

void fsr_log_set_request_id(const char *request_id)
{
    tl_request_id = request_id;
}

const char *fsr_log_request_id(void)
{
    return tl_request_id;
}

void fsr_log_write(fsr_log_level level, const char *const *kv, const char *fmt, ...)
{
    if (level < fsr_log_min_level)
        return;

    int saved_errno = errno; /* callers may log between a failure and reading errno */
    struct timespec ts;
    struct tm tm;
    char tsbuf[128]; /* 28 bytes in practice; sized for any int the compiler imagines */

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(tsbuf, sizeof(tsbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);

    va_list ap;
    va_start(ap, fmt);
    int mlen = vsnprintf(tl_msg, sizeof(tl_msg), fmt, ap);
    va_end(ap);
    if (mlen < 0)
        tl_msg[0] = '\0';

    line_buf b = { .p = tl_line, .len = 0, .cap = sizeof(tl_line) - LINE_RESERVE };
    puts_lit(&b, "{\"timestamp\":\"");
    puts_lit(&b, tsbuf);
    puts_lit(&b, "\",\"severity\":\"");
    puts_lit(&b, severity_name(level));
    puts_lit(&b, "\"");
    put_field(&b, "service", log_service ? log_service : program_invocation_short_name);
    put_field(&b, "message", tl_msg);
    if (tl_request_id != NULL)
        put_field(&b, "request_id", tl_request_id);
    for (size_t i = 0; kv != NULL && kv[i] != NULL; i += 2)
        put_field(&b, kv[i], kv[i + 1]);
    /* A message cut by vsnprintf counts as truncated too. */
    if (b.trunc || (mlen >= 0 && (size_t)mlen >= sizeof(tl_msg))) {
        static const char t[] = ",\"truncated\":true";
        memcpy(b.p + b.len, t, sizeof(t) - 1);
        b.len += sizeof(t) - 1;
    }
    b.p[b.len++] = '}';
    b.p[b.len++] = '\n';

    write_all(STDOUT_FILENO, b.p, b.len);
    if (log_file_fd >= 0)
        write_all(log_file_fd, b.p, b.len);
    errno = saved_errno;
}
