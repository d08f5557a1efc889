/* SPDX-License-Identifier: MIT */
/* JSON-lines logging: one object per line on stdout (and LOG_DIR/<service>.log). */
#ifndef FSR_LOG_H
#define FSR_LOG_H

typedef enum fsr_log_level {
    FSR_LOG_DEBUG = 0,
    FSR_LOG_INFO = 1,
    FSR_LOG_WARN = 2,
    FSR_LOG_ERROR = 3,
} fsr_log_level;

extern fsr_log_level fsr_log_min_level;

/*
 * Configures logging.  |service| is written in every record.  |level| is one of "debug",
 * "info", "warn", "error" (NULL keeps "info").  |dir|, if not NULL or empty, also appends
 * records to |dir|/<service>.log.  Returns 0, or -errno if the file cannot be opened.
 */
int fsr_log_init(const char *service, const char *level, const char *dir);

/*
 * The request id of the work the current thread is doing, written into every record as
 * "request_id" (NULL clears it).  The server sets it around each handler invocation and
 * callback, so call sites never pass it.  The pointer must stay valid until cleared.
 */
void fsr_log_set_request_id(const char *request_id);
const char *fsr_log_request_id(void);

/*
 * Writes one record.  |kv| is an optional NULL-terminated list of extra key/value string
 * pairs appended as JSON strings, e.g. { "method", "/x.v1.S/M", "code", "OK", NULL }.
 * Values are JSON-escaped.  Never pass credentials or request bodies.
 */
void fsr_log_write(fsr_log_level level, const char *const *kv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* FSR_LOG(level, fmt, ...): checks the level before evaluating the arguments. */
#define FSR_LOG(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) >= fsr_log_min_level)                                                          \
            fsr_log_write((level), NULL, __VA_ARGS__);                                             \
    } while (0)

#define FSR_DEBUG(...) FSR_LOG(FSR_LOG_DEBUG, __VA_ARGS__)
#define FSR_INFO(...)  FSR_LOG(FSR_LOG_INFO, __VA_ARGS__)
#define FSR_WARN(...)  FSR_LOG(FSR_LOG_WARN, __VA_ARGS__)
#define FSR_ERROR(...) FSR_LOG(FSR_LOG_ERROR, __VA_ARGS__)

#endif /* FSR_LOG_H */
