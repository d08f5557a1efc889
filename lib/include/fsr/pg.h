/* SPDX-License-Identifier: MIT */
/* PostgreSQL: a non-blocking connection pool per loop thread on libpq's async API. */
#ifndef FSR_PG_H
#define FSR_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsr/loop.h"

/* libpq's PGconn and PGresult, for the blocking helpers (include <libpq-fe.h> to use them). */
struct pg_conn;
struct pg_result;

/*
 * A pool of connections owned by one loop thread.  Like every loop object it must only be
 * used from that thread (STYLE §6).
 */
typedef struct fsr_pg_pool fsr_pg_pool;

/* A connection pinned to a transaction by fsr_pg_tx_begin(). */
typedef struct fsr_pg_conn fsr_pg_conn;

/* The outcome of one statement, valid only during the callback it is passed to. */
typedef struct fsr_pg_result fsr_pg_result;

#define FSR_PG_MAX_SIZE          64 /* upper bound for fsr_pg_config.size */
#define FSR_PG_DEFAULT_SIZE      4
#define FSR_PG_DEFAULT_QUEUE_MAX 1024
#define FSR_PG_DEFAULT_TIMEOUT   5000 /* ms, connect and query */

/*
 * Pool configuration.  Strings are borrowed (copied by fsr_pg_pool_new()).
 *
 * If |conninfo| is set (a libpq "key=value" string or URI) it is used as is, with
 * |application_name| applied on top, and the other connection fields are ignored;
 * otherwise the connection comes from the fields (NULL or 0 leaves libpq's default, which
 * includes the PG* environment variables).  |host| may be a directory: a unix socket.
 */
typedef struct fsr_pg_config {
    const char *conninfo;
    const char *host;
    int port;
    const char *dbname;
    const char *user;
    const char *password;
    const char *application_name; /* shown in pg_stat_activity; NULL for none */
    int size;                     /* connections, 1..FSR_PG_MAX_SIZE; 0 = FSR_PG_DEFAULT_SIZE */
    int queue_max;                /* requests allowed to wait for a connection; 0 = default */
    int connect_timeout_ms;       /* per connection attempt; 0 = FSR_PG_DEFAULT_TIMEOUT */
    int query_timeout_ms;         /* per request, queue wait included; 0 = FSR_PG_DEFAULT_TIMEOUT */
} fsr_pg_config;

/*
 * A named prepared statement.  Declare these with static storage duration: the pool
 * remembers, per connection, which statements it has prepared (by |name|, which must be
 * unique per pool), and prepares one transparently the first
 * time it runs on a connection (again after a reconnect).  Parameter types are inferred by
 * the server; cast in SQL where needed ("$1::bigint").
 */
typedef struct fsr_pg_stmt {
    const char *name;
    const char *sql;
} fsr_pg_stmt;

/*
 * Completion callback for a statement.  |res| is valid only during the callback (copy what
 * you keep, STYLE §5).  Always check fsr_pg_result_status() first.
 */
typedef void (*fsr_pg_cb)(const fsr_pg_result *res, void *arg);

/*
 * Completion callback for fsr_pg_tx_begin(): |status| is 0 and |conn| the pinned
 * connection, inside a started transaction; or |status| is negative and |conn| is NULL.
 */
typedef void (*fsr_pg_tx_cb)(fsr_pg_conn *conn, int status, void *arg);

/*
 * Creates a pool on |loop| and starts connecting every connection (non-blocking, with
 * PQconnectStart/PQconnectPoll; the database need not be up yet, and lost or failed
 * connections are retried with exponential backoff from 100 ms to 5 s).  Requests made
 * before a connection is ready wait in the queue.
 *
 * Note: libpq resolves host names synchronously in PQconnectStart; use an IP address, a
 * unix socket directory or a name the resolver answers from /etc/hosts or a near cache.
 *
 * Returns 0 and sets *|out|, or one of the following negative codes (*|out| untouched):
 *   -EINVAL       |loop|, |cfg| or |out| is NULL
 *   FSR_E_CONFIG  a size, limit or timeout out of range, or an unparsable conninfo
 */
int fsr_pg_pool_new(fsr_loop *loop, const fsr_pg_config *cfg, fsr_pg_pool **out);

/*
 * Closes every connection and frees |pool|.  Requests not yet completed get their callback
 * with FSR_E_CLOSED (transaction callbacks with a NULL conn) before this returns; pinned
 * fsr_pg_conn handles become invalid.  May be called from one of the pool's own callbacks:
 * the memory is then released once the callback returns.  NULL is a no-op.
 */
void fsr_pg_pool_free(fsr_pg_pool *pool);

/*
 * Runs the prepared statement |stmt| with |nparams| text parameters |values| (NULL entries
 * are SQL NULL) on the next free connection.  |values| and the strings are copied; |stmt|
 * must outlive the pool.  The request waits in the queue while every connection is busy.
 *
 * If this returns 0, |cb| runs exactly once, later, from the loop (never from inside this
 * call), with the result or one of these statuses:
 *   FSR_E_UNIQUE   unique violation (SQLSTATE 23505)
 *   FSR_E_CHECK    foreign-key or check violation (23503, 23514)
 *   FSR_E_TIMEOUT  query_timeout_ms expired, queue wait included (the running statement is
 *                  cancelled; for a write outside a transaction the outcome is unknown), or
 *                  the server cancelled it (57014)
 *   FSR_E_CLOSED   the connection was lost while the statement ran, the database is
 *                  unreachable (every connection failed its last attempt), or the pool
 *                  was freed
 *   FSR_E_DB       any other error (see fsr_pg_result_sqlstate() and _message())
 *
 * Returns 0, or one of the following negative codes (|cb| then never runs):
 *   -EINVAL       a NULL argument or |nparams| out of range (0..65535)
 *   FSR_E_POOL    the wait queue is full (queue_max)
 *   FSR_E_CLOSED  the pool is being freed
 */
int fsr_pg_query(fsr_pg_pool *pool, const fsr_pg_stmt *stmt, int nparams, const char *const *values,
                 fsr_pg_cb cb, void *arg);

/*
 * Like fsr_pg_query() for an unnamed, one-off statement |sql| (PQsendQueryParams): exactly
 * one SQL statement, parameters as $1..$n.  |sql| is copied.
 */
int fsr_pg_exec(fsr_pg_pool *pool, const char *sql, int nparams, const char *const *values,
                fsr_pg_cb cb, void *arg);

/*
 * Readiness check: runs "SELECT 1" through the pool.  Same contract as fsr_pg_query();
 * |cb| sees status 0 when the database answered.
 */
int fsr_pg_ping(fsr_pg_pool *pool, fsr_pg_cb cb, void *arg);

/*
 * Starts a transaction: takes the next free connection out of the pool, runs BEGIN on it
 * and hands it to |cb| pinned, so that the statements run with fsr_pg_conn_query() and
 * fsr_pg_conn_exec() all belong to the transaction.  Finish with fsr_pg_tx_commit() or
 * fsr_pg_tx_rollback(), which return the connection to the pool; until then it serves
 * nobody else, so keep transactions short and never wait for other I/O inside one unless
 * you must.  Every change touching several rows belongs in one transaction.
 *
 * If this returns 0, |cb| runs exactly once, later, with the connection or with
 * FSR_E_TIMEOUT / FSR_E_CLOSED / FSR_E_DB and a NULL connection.
 * Returns 0, -EINVAL, FSR_E_POOL or FSR_E_CLOSED as fsr_pg_query() does.
 */
int fsr_pg_tx_begin(fsr_pg_pool *pool, fsr_pg_tx_cb cb, void *arg);

/*
 * Runs a statement inside the transaction of |conn|.  Statements on one connection run in
 * the order they were issued; a statement may be issued before the previous one finished.
 * Same callback contract and timeout as fsr_pg_query().  After any error the transaction
 * is aborted by the server: roll it back.
 *
 * Returns 0, or (|cb| never runs):
 *   -EINVAL       a NULL argument, or |conn| is not pinned
 *   FSR_E_CLOSED  the connection was lost, or commit/rollback was already requested
 */
int fsr_pg_conn_query(fsr_pg_conn *conn, const fsr_pg_stmt *stmt, int nparams,
                      const char *const *values, fsr_pg_cb cb, void *arg);
int fsr_pg_conn_exec(fsr_pg_conn *conn, const char *sql, int nparams, const char *const *values,
                     fsr_pg_cb cb, void *arg);

/*
 * Ends the transaction of |conn| with COMMIT (or ROLLBACK) after the statements already
 * issued on it, then returns the connection to the pool.  |conn| must not be used after
 * this call, whatever it returns.  |cb| may be NULL.
 *
 * If this returns 0, |cb| runs exactly once, later.  A COMMIT of a transaction the server
 * had already aborted (an earlier statement failed) completes with FSR_E_DB: nothing was
 * committed.  FSR_E_CLOSED means the connection was lost; the server rolls back.
 *
 * Returns 0, or (|cb| never runs):
 *   -EINVAL       |conn| is NULL or not pinned
 *   FSR_E_CLOSED  the connection was already lost (the transaction is rolled back)
 */
int fsr_pg_tx_commit(fsr_pg_conn *conn, fsr_pg_cb cb, void *arg);
int fsr_pg_tx_rollback(fsr_pg_conn *conn, fsr_pg_cb cb, void *arg);

/* --- Results --------------------------------------------------------------------------- */

/* 0 on success, else FSR_E_* as listed at fsr_pg_query(). */
int fsr_pg_result_status(const fsr_pg_result *res);

/* The five-character SQLSTATE of a server error, or "" (success, timeout, lost connection). */
const char *fsr_pg_result_sqlstate(const fsr_pg_result *res);

/*
 * A one-line description of the error for logs ("" on success).  It may quote SQL and
 * values: never send it to clients.
 */
const char *fsr_pg_result_message(const fsr_pg_result *res);

/* Rows and columns returned (0 on error or for commands without rows). */
int fsr_pg_result_rows(const fsr_pg_result *res);
int fsr_pg_result_cols(const fsr_pg_result *res);

/*
 * The text value at |row|, |col| as PQgetvalue(): "" for SQL NULL (tell with
 * fsr_pg_result_isnull()), NULL when out of range.  Valid only during the callback.
 */
const char *fsr_pg_result_getvalue(const fsr_pg_result *res, int row, int col);

/* Length in bytes of the value at |row|, |col| (0 when NULL or out of range). */
int fsr_pg_result_getlength(const fsr_pg_result *res, int row, int col);

/* True if the value is SQL NULL or out of range. */
bool fsr_pg_result_isnull(const fsr_pg_result *res, int row, int col);

/* The index of the column named |name|, or -1. */
int fsr_pg_result_col(const fsr_pg_result *res, const char *name);

/* Rows affected by INSERT/UPDATE/DELETE/SELECT..., from the command tag (0 if none). */
int64_t fsr_pg_result_affected(const fsr_pg_result *res);

/* --- Pool state ------------------------------------------------------------------------ */

typedef struct fsr_pg_stats {
    int size;            /* configured connections */
    int connected;       /* connections up */
    int busy;            /* running a statement or pinned to a transaction */
    int waiting;         /* requests in the queue */
    uint64_t queries;    /* requests accepted (statements, pings, BEGIN/COMMIT/ROLLBACK) */
    uint64_t errors;     /* requests completed with an error status */
    uint64_t timeouts;   /* of which FSR_E_TIMEOUT */
    uint64_t reconnects; /* successful connects after a connection was lost or failed */
    uint64_t prepares;   /* statements prepared (once per statement per connection) */
} fsr_pg_stats;

/* Fills *|out| with the current gauges and counters (for /metrics and health). */
void fsr_pg_pool_stats(const fsr_pg_pool *pool, fsr_pg_stats *out);

/* --- Helpers --------------------------------------------------------------------------- */

/*
 * Maps a SQLSTATE to an FSR_E_* code: class 00 → 0, 23505 → FSR_E_UNIQUE, 23503 and 23514
 * → FSR_E_CHECK, 57014 → FSR_E_TIMEOUT, class 08 and 57P01..57P03 → FSR_E_CLOSED, anything
 * else (or NULL) → FSR_E_DB.
 */
int fsr_pg_err_from_sqlstate(const char *sqlstate);

/*
 * Writes the libpq conninfo string for |cfg| into |buf|, e.g. for fsr_migrate(): with
 * |cfg|->conninfo set, that string plus application_name (unless it is a URI); else
 * "host='..' port=.. dbname='..' ..." from the fields with values quoted, plus
 * connect_timeout rounded up to seconds.  Returns 0, -EINVAL, or FSR_E_TOO_LARGE if |len| is
 * too small.
 */
int fsr_pg_config_conninfo(const fsr_pg_config *cfg, char *buf, size_t len);

/* --- Blocking helpers, for startup and migrations only (never on a serving loop) ------- */

/*
 * Connects with PQconnectdb(|conninfo|).  Returns 0 and sets *|out| (close it with
 * fsr_pg_sync_close()), or FSR_E_CLOSED with the reason in |err| (may be NULL).
 */
int fsr_pg_sync_connect(const char *conninfo, struct pg_conn **out, char *err, size_t errlen);

/*
 * Runs |sql| with PQexec (|nparams| == 0: several statements allowed) or PQexecParams.  If
 * |out| is not NULL the caller gets the PGresult on success and frees it with PQclear.
 * Returns 0, or the fsr_pg_err_from_sqlstate() code (FSR_E_CLOSED if the connection is
 * gone) with the server's message in |err|.
 */
int fsr_pg_sync_exec(struct pg_conn *conn, const char *sql, int nparams, const char *const *values,
                     struct pg_result **out, char *err, size_t errlen);

/* Closes a connection from fsr_pg_sync_connect().  NULL is a no-op. */
void fsr_pg_sync_close(struct pg_conn *conn);

/* Connects, runs |sql| (fsr_pg_sync_exec() without parameters) and disconnects. */
int fsr_pg_sync_run(const char *conninfo, const char *sql, char *err, size_t errlen);

#endif /* FSR_PG_H */
