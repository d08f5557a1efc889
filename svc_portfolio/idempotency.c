/* SPDX-License-Identifier: MIT */
/*
 * Idempotency-Key for creating writes, and the one-statement write runner that records the
 * response in the write's own transaction (portfolio.h explains the contract).
 *
 * The stored row is (caller, key) -> method, SHA-256 of the packed request, packed response
 * (table idempotency_keys, sql/003_ledger.sql).  The hash is computed by Postgres
 * (sha256(), PG 11+) from the request bytes sent as a bytea parameter, which keeps a digest
 * implementation out of the service.  Requests and responses travel as bytea hex text
 * ("\x0a12..."), the text form libpq uses for parameters and results alike.
 *
 * Why the primary key is enough for concurrent duplicates: both calls find no row and run
 * their write; the first to INSERT its key row holds it (uncommitted); the second INSERT
 * waits on that row, and once the first commits, ON CONFLICT sees it and -- the row being
 * younger than PF_IDEM_TTL -- updates nothing and returns no row.  The second call then
 * rolls its whole transaction back (its write included) and answers from the stored row.
 * Had the first rolled back instead, the second simply inserts and commits.
 */
#include "portfolio.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/log.h"

#define PF_IDEM_KEY_MAX 255

struct pf_idem {
    fsr_call *call;
    const char *client; /* the caller's client id, "" when internal */
    const char *key;
    const char *method;  /* the full gRPC path */
    const char *req_hex; /* the packed request as bytea hex */
    const ProtobufCMessageDescriptor *resp_desc;
    pf_idem_run_cb run;
    void *arg;
    fsr_pg_conn *conn; /* pf_idem_commit(): the write's transaction */
    const ProtobufCMessage *resp;
    bool replay; /* looking up after losing the race: a missing row is then an error */
};

/*
 * Rows older than PF_IDEM_TTL do not count: the key is free again.  Deleting them is a
 * periodic job's work (see portfolio.h).
 */
static const fsr_pg_stmt idem_lookup = {
    "pf_idem_lookup",
    "SELECT (method = $3 AND request_hash = sha256($4::bytea))::int, response"
    " FROM idempotency_keys WHERE client_id = $1 AND key = $2"
    " AND created_at > now() - interval '" PF_IDEM_TTL "'",
};

/* Returns one row when recorded, none when a live row for the key already exists. */
static const fsr_pg_stmt idem_record = {
    "pf_idem_record",
    "INSERT INTO idempotency_keys (client_id, key, method, request_hash, response)"
    " VALUES ($1, $2, $3, sha256($4::bytea), $5::bytea)"
    " ON CONFLICT (client_id, key) DO UPDATE SET method = EXCLUDED.method,"
    " request_hash = EXCLUDED.request_hash, response = EXCLUDED.response, created_at = now()"
    " WHERE idempotency_keys.created_at <= now() - interval '" PF_IDEM_TTL "'"
    " RETURNING 1",
};

/* ---- bytes <-> bytea hex text --------------------------------------------------------- */

static char *to_hex(fsr_call *call, const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s = fsr_arena_alloc(fsr_call_arena(call), 2 * n + 3);
    s[0] = '\\';
    s[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        s[2 + 2 * i] = digits[b[i] >> 4];
        s[3 + 2 * i] = digits[b[i] & 15];
    }
    s[2 + 2 * n] = '\0';
    return s;
}

static char *packed_hex(fsr_call *call, const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = fsr_arena_alloc(fsr_call_arena(call), n > 0 ? n : 1);
    protobuf_c_message_pack(msg, buf);
    return to_hex(call, buf, n);
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes Postgres' bytea hex output ("\x0a12...") into the arena; -1 if it is not that. */
static int from_hex(fsr_call *call, const char *s, size_t len, uint8_t **out, size_t *n)
{
    if (len < 2 || s[0] != '\\' || s[1] != 'x' || len % 2 != 0)
        return -1;
    size_t m = (len - 2) / 2;
    uint8_t *b = fsr_arena_alloc(fsr_call_arena(call), m > 0 ? m : 1);
    for (size_t i = 0; i < m; i++) {
        int hi = hex_val(s[2 + 2 * i]), lo = hex_val(s[3 + 2 * i]);
        if (hi < 0 || lo < 0)
            return -1;
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = b;
    *n = m;
    return 0;
}

/* ---- the lookup ---------------------------------------------------------------------- */

/* Replies the stored response, or refuses a reuse of the key for another request. */
static void answer_stored(pf_idem *idem, const fsr_pg_result *res)
{
    fsr_call *call = idem->call;
    if (strcmp(fsr_pg_result_getvalue(res, 0, 0), "1") != 0) {
        fsr_call_fail(call, FSR_ALREADY_EXISTS,
                      "Idempotency-Key \"%s\" was already used for a different request", idem->key);
        return;
    }
    uint8_t *bytes;
    size_t n;
    if (from_hex(call, fsr_pg_result_getvalue(res, 0, 1),
                 (size_t)fsr_pg_result_getlength(res, 0, 1), &bytes, &n) != 0) {
        pf_fail_shape(call, "idempotency: stored response");
        return;
    }
    ProtobufCMessage *msg = protobuf_c_message_unpack(
        idem->resp_desc, fsr_arena_pb_allocator(fsr_call_arena(call)), n, bytes);
    if (msg == NULL) {
        pf_fail_shape(call, "idempotency: stored response");
        return;
    }
    FSR_INFO("Idempotency-Key replay: %s", idem->method);
    fsr_call_reply(call, msg);
}

static void on_looked_up(const fsr_pg_result *res, void *arg)
{
    pf_idem *idem = arg;
    if (fsr_pg_result_status(res) != 0) {
        pf_fail_db(idem->call, res, "idempotency: lookup");
        return;
    }
    if (fsr_pg_result_rows(res) == 1 && fsr_pg_result_cols(res) == 2) {
        answer_stored(idem, res);
        return;
    }
    if (idem->replay) {
        /* The winner's row vanished (expired meanwhile?): let the client retry. */
        fsr_call_fail(idem->call, FSR_ABORTED,
                      "a concurrent request with the same Idempotency-Key did not complete; "
                      "retry");
        return;
    }
    idem->run(idem->call, idem, idem->arg);
}

static void lookup(pf_idem *idem)
{
    fsr_pg_pool *pool = pf_pool(idem->call);
    if (pool == NULL)
        return;
    const char *values[4] = { idem->client, idem->key, idem->method, idem->req_hex };
    int rv = fsr_pg_query(pool, &idem_lookup, 4, values, on_looked_up, idem);
    if (rv != 0)
        fsr_call_fail_err(idem->call, rv, "idempotency: lookup");
}

void pf_idem_begin(fsr_call *call, const fsr_caller *who, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, pf_idem_run_cb run, void *arg)
{
    size_t len = 0;
    const char *key = fsr_call_metadata(call, "idempotency-key", &len);
    if (key == NULL) {
        run(call, NULL, arg);
        return;
    }
    bool printable = len >= 1 && len <= PF_IDEM_KEY_MAX;
    for (size_t i = 0; printable && i < len; i++)
        printable = key[i] >= 0x20 && key[i] <= 0x7e;
    if (!printable) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "Idempotency-Key",
                            "must be 1 to %d printable ASCII characters", PF_IDEM_KEY_MAX);
        return;
    }
    pf_idem *idem = fsr_call_alloc(call, sizeof(*idem));
    idem->call = call;
    idem->client = who->client_id != NULL ? who->client_id : "";
    idem->key = fsr_arena_strndup(fsr_call_arena(call), key, len);
    idem->method = fsr_call_path(call);
    idem->req_hex = packed_hex(call, req);
    idem->resp_desc = resp_desc;
    idem->run = run;
    idem->arg = arg;
    lookup(idem);
}

/* ---- recording, commit and reply ------------------------------------------------------ */

static void on_committed(const fsr_pg_result *res, void *arg)
{
    pf_idem *idem = arg;
    if (fsr_pg_result_status(res) != 0) {
        pf_fail_db(idem->call, res, "commit");
        return;
    }
    fsr_call_reply(idem->call, idem->resp);
}

static void commit(pf_idem *idem)
{
    fsr_pg_conn *conn = idem->conn;
    idem->conn = NULL;
    int rv = fsr_pg_tx_commit(conn, on_committed, idem);
    if (rv != 0)
        fsr_call_fail_err(idem->call, rv, "commit");
}

static void on_lost_rolled_back(const fsr_pg_result *res, void *arg)
{
    pf_idem *idem = arg;
    (void)res; /* whatever the rollback said, nothing of this call was committed */
    idem->replay = true;
    lookup(idem);
}

static void on_recorded(const fsr_pg_result *res, void *arg)
{
    pf_idem *idem = arg;
    if (fsr_pg_result_status(res) != 0) {
        fsr_pg_tx_rollback(idem->conn, NULL, NULL);
        idem->conn = NULL;
        pf_fail_db(idem->call, res, "idempotency: record");
        return;
    }
    if (fsr_pg_result_rows(res) == 1) {
        commit(idem);
        return;
    }
    /* A concurrent request with the key committed first: undo ours, answer from its row. */
    fsr_pg_conn *conn = idem->conn;
    idem->conn = NULL;
    if (fsr_pg_tx_rollback(conn, on_lost_rolled_back, idem) != 0) {
        idem->replay = true;
        lookup(idem);
    }
}

void pf_idem_commit(pf_idem *idem, fsr_call *call, fsr_pg_conn *conn, const ProtobufCMessage *resp)
{
    if (idem == NULL) {
        /* No key: a plain commit, then the reply. */
        idem = fsr_call_alloc(call, sizeof(*idem));
        idem->call = call;
        idem->conn = conn;
        idem->resp = resp;
        commit(idem);
        return;
    }
    idem->conn = conn;
    idem->resp = resp;
    const char *values[5] = { idem->client, idem->key, idem->method, idem->req_hex,
                              packed_hex(call, resp) };
    int rv = fsr_pg_conn_query(conn, &idem_record, 5, values, on_recorded, idem);
    if (rv != 0) {
        fsr_pg_tx_rollback(conn, NULL, NULL);
        idem->conn = NULL;
        fsr_call_fail_err(call, rv, "idempotency: record");
    }
}

/* ---- the one-statement write ---------------------------------------------------------- */

typedef struct write_op {
    fsr_call *call;
    pf_idem *idem;
    pf_write w;
    fsr_pg_conn *conn;
    ProtobufCMessage *resp;
} write_op;

static void on_write_committed(const fsr_pg_result *res, void *arg)
{
    write_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        pf_fail_db(op->call, res, op->w.what);
        return;
    }
    op->w.done(op->call, op->resp, op->w.arg);
}

static void write_abort(write_op *op)
{
    fsr_pg_tx_rollback(op->conn, NULL, NULL);
    op->conn = NULL;
}

static void on_written(const fsr_pg_result *res, void *arg)
{
    write_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        write_abort(op);
        pf_fail_db(op->call, res, op->w.what);
        return;
    }
    op->resp = op->w.build(op->call, res, op->w.arg);
    if (op->resp == NULL) {
        write_abort(op);
        pf_fail_shape(op->call, op->w.what);
        return;
    }
    fsr_pg_conn *conn = op->conn;
    op->conn = NULL;
    if (op->w.done == NULL) {
        pf_idem_commit(op->idem, op->call, conn, op->resp);
        return;
    }
    int rv = fsr_pg_tx_commit(conn, on_write_committed, op);
    if (rv != 0)
        fsr_call_fail_err(op->call, rv, op->w.what);
}

static void on_write_begun(fsr_pg_conn *conn, int status, void *arg)
{
    write_op *op = arg;
    if (status != 0) {
        fsr_call_fail_err(op->call, status, op->w.what);
        return;
    }
    op->conn = conn;
    int rv = fsr_pg_conn_query(conn, op->w.stmt, op->w.nparams, op->w.values, on_written, op);
    if (rv != 0) {
        write_abort(op);
        fsr_call_fail_err(op->call, rv, op->w.what);
    }
}

void pf_write_run(fsr_call *call, pf_idem *idem, const pf_write *w)
{
    fsr_pg_pool *pool = pf_pool(call);
    if (pool == NULL)
        return;
    write_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->idem = idem;
    op->w = *w;
    const char **values = fsr_call_alloc(call, sizeof(*values) * (size_t)(w->nparams + 1));
    memcpy(values, w->values, sizeof(*values) * (size_t)w->nparams);
    op->w.values = values;
    int rv = fsr_pg_tx_begin(pool, on_write_begun, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, w->what);
}
