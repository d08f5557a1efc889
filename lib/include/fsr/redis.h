/* SPDX-License-Identifier: MIT */
/* Redis: hiredis' async API on the thread's loop, with timeouts, reconnects and pub/sub. */
#ifndef FSR_REDIS_H
#define FSR_REDIS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsr/loop.h"

/* hiredis' reply (include <hiredis/hiredis.h> to read it). */
struct redisReply;

/*
 * A Redis client owned by one loop thread: one connection for commands (pipelined, replies
 * in order) and, once fsr_redis_subscribe() is called, a second one for pub/sub.
 */
typedef struct fsr_redis fsr_redis;

#define FSR_REDIS_DEFAULT_TIMEOUT 2000 /* ms, connect and command */

typedef struct fsr_redis_options {
    int connect_timeout_ms; /* per attempt; 0 = FSR_REDIS_DEFAULT_TIMEOUT */
    int command_timeout_ms; /* per command; 0 = FSR_REDIS_DEFAULT_TIMEOUT */
} fsr_redis_options;

/*
 * Command completion.  |status| is 0 with a |reply| of any non-error type; FSR_E_DB with an
 * error |reply| (REDIS_REPLY_ERROR, its text in reply->str); or, with a NULL |reply|,
 * FSR_E_TIMEOUT (command_timeout_ms expired: the command may still execute and its late
 * reply is dropped), FSR_E_CLOSED (the connection was lost or the client freed).
 * |reply| is valid only during the callback (STYLE §5).
 */
typedef void (*fsr_redis_cb)(const struct redisReply *reply, int status, void *arg);

/*
 * A pub/sub message: |channel| and |pattern| NUL-terminated, |msg| of |len| bytes (also
 * NUL-terminated), all valid only during the callback.
 */
typedef void (*fsr_redis_message_cb)(const char *pattern, const char *channel, const char *msg,
                                     size_t len, void *arg);

/*
 * Creates a client for |host|:|port| (|host| starting with '/' is a unix socket path) on
 * |loop| and starts connecting, without blocking (but see the DNS note at
 * fsr_pg_pool_new()).  Commands issued before the connection is up are sent once it is.
 * After a disconnect or failed attempt it reconnects with backoff (immediately after a
 * disconnect, then 100 ms doubling to 5 s).  |opts| may be NULL for defaults.
 *
 * Returns 0 and sets *|out|, or (*|out| untouched):
 *   -EINVAL       NULL |loop|, |host| or |out|, or a port outside 0..65535
 *   FSR_E_CONFIG  a negative timeout
 */
int fsr_redis_new(fsr_loop *loop, const char *host, int port, const fsr_redis_options *opts,
                  fsr_redis **out);

/*
 * Disconnects and frees |r|.  Pending commands get their callback with FSR_E_CLOSED before
 * this returns, or, when called from inside one of |r|'s callbacks, as soon as it returns.
 * NULL is a no-op.
 */
void fsr_redis_free(fsr_redis *r);

/*
 * Sends a command built from the printf-like |fmt| as hiredis' redisAsyncCommand does
 * (%s C string, %b binary: pointer and size_t length; each %-argument is one argument,
 * never split by spaces).
 *
 * If this returns 0, |cb| (which may be NULL: fire and forget) runs exactly once, later,
 * never from inside this call.  Returns 0, or (|cb| never runs):
 *   -EINVAL       NULL |r| or |fmt|, or |fmt| cannot be formatted
 *   FSR_E_CLOSED  not connected and waiting to reconnect, or |r| is being freed
 */
int fsr_redis_command(fsr_redis *r, fsr_redis_cb cb, void *arg, const char *fmt, ...);
int fsr_redis_commandv(fsr_redis *r, fsr_redis_cb cb, void *arg, const char *fmt, va_list ap);

/*
 * The same with |argc| arguments |argv| of lengths |argvlen| (NULL: strlen of each).
 * The arguments are copied.
 */
int fsr_redis_command_argv(fsr_redis *r, fsr_redis_cb cb, void *arg, int argc,
                           const char *const *argv, const size_t *argvlen);

/*
 * Readiness check: sends PING; |cb| sees status 0 only for a PONG.  Same contract as
 * fsr_redis_command().
 */
int fsr_redis_ping(fsr_redis *r, fsr_redis_cb cb, void *arg);

/*
 * Subscribes to the channels matching |pattern| (PSUBSCRIBE glob; a plain channel name
 * matches itself) on a dedicated pub/sub connection, opened on first use.  |on_message|
 * runs for every message, any number of times, until fsr_redis_free(); the subscription
 * is renewed automatically after a reconnect (messages published while disconnected are
 * lost, as always with Redis pub/sub).  |pattern| is copied.
 *
 * Returns 0, or:
 *   -EINVAL       NULL argument
 *   -EEXIST       |pattern| is already subscribed on |r|
 *   FSR_E_CLOSED  |r| is being freed
 */
int fsr_redis_subscribe(fsr_redis *r, const char *pattern, fsr_redis_message_cb on_message,
                        void *arg);

/* True while the command connection is up. */
bool fsr_redis_is_connected(const fsr_redis *r);

/* True while the pub/sub connection is up and every subscription has been confirmed. */
bool fsr_redis_is_subscribed(const fsr_redis *r);

typedef struct fsr_redis_stats {
    bool connected;      /* command connection up */
    int pending;         /* commands awaiting a reply (timed-out ones included) */
    uint64_t commands;   /* commands accepted */
    uint64_t errors;     /* commands completed with a non-zero status */
    uint64_t timeouts;   /* of which FSR_E_TIMEOUT */
    uint64_t reconnects; /* successful connects after a loss or failure, both connections */
    uint64_t messages;   /* pub/sub messages delivered */
} fsr_redis_stats;

/* Fills *|out| (for /metrics and health). */
void fsr_redis_stats_get(const fsr_redis *r, fsr_redis_stats *out);

#endif /* FSR_REDIS_H */
