/* SPDX-License-Identifier: MIT */
/*
 * ClientService: clients, their API keys, and Authenticate (who a key belongs to), which
 * the gateway calls for every key it has not cached.
 *
 * Keys are "fsr_" + 64 hex digits of 32 bytes from OpenSSL's RAND_bytes (256 bits of CSPRNG
 * output), shown once (CreateClient's and CreateKey's api_key) and stored only as their
 * SHA-256 (api_keys.key_hash, lowercase hex).  A fast unsalted hash is right for keys of
 * that entropy: nobody can enumerate candidates, so a slow or salted hash would protect
 * nothing and would turn every lookup into a scan or a CPU burner.  A password would be
 * another matter; these are not passwords.
 *
 * The bootstrap admin key is the environment variable ADMIN_API_KEY, never stored and never
 * logged: Authenticate compares its hash in constant time and answers with the fixed client
 * PF_BOOTSTRAP_ADMIN_ID (a row 004_auth.sql inserts).  Unset or empty: no bootstrap key.
 *
 * Every change is one SQL statement whose data-modifying CTEs also write the audit_log
 * rows, so the change and its audit commit together or not at all.  RevokeKey, once its
 * statement has committed, publishes the key's hash on the shared Redis channel
 * "key.revoked" and answers only after Redis has taken it, so every gateway subscribed
 * drops its cached lookup before the revoking client sees OK.
 *
 * Everything but Authenticate needs role admin (or an internal caller, no metadata).
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co: see key_hash() */

#include "portfolio.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "fsr/app.h"
#include "fsr/handler.h"
#include "fsr/log.h"
#include "fsr/pg.h"
#include "fsr/redis.h"
#include "fsr/validate.h"

#include "portfolio_v1.fsr.h"

#define PF_CLIENT_NAME_MAX 200
#define PF_KEY_RANDOM      32                      /* bytes of RAND_bytes per key */
#define PF_KEY_TAG         "fsr_"                  /* every generated key starts so */
#define PF_KEY_LEN         (4 + 2 * PF_KEY_RANDOM) /* "fsr_" + hex */
#define PF_KEY_PREFIX_LEN  12                      /* ApiKeyInfo.prefix: "fsr_" + 8 hex */
#define PF_KEY_MAX         512                     /* longer keys are refused unhashed */
#define PF_KEY_REVOKED     "key.revoked"           /* shared Redis channel */

/* Timestamps as RFC 3339 UTC, whatever the session's DateStyle and TimeZone. */
#define CL_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/*
 * Create, get and list return one row per key (a client without keys: one row with empty
 * key columns), in this column order, clients in creation order and their keys likewise.
 */
#define CL_COLS(c, k)                                                                              \
    c ".id::text, " c ".name, " c ".role, " CL_TS(                                                 \
        c ".created_at") ", coalesce(" k ".id::text, ''), coalesce(" k                             \
                         ".prefix, ''), coalesce(" CL_TS(                                          \
                             k ".created_at") ", ''), "                                            \
                                              "coalesce(" CL_TS(k ".revoked_at") ", '')"
enum {
    COL_ID,
    COL_NAME,
    COL_ROLE,
    COL_CREATED_AT,
    COL_KEY_ID,
    COL_KEY_PREFIX,
    COL_KEY_CREATED_AT,
    COL_KEY_REVOKED_AT,
    COL_COUNT
};

/* $1 name, $2 role, $3 key hash, $4 key prefix, $5 actor, $6 request id. */
static const fsr_pg_stmt cl_insert = {
    "cl_insert",
    "WITH c AS (INSERT INTO clients (name, role) VALUES ($1, $2)"
    "  RETURNING id, name, role, created_at),"
    " k AS (INSERT INTO api_keys (client_id, key_hash, prefix) SELECT id, $3, $4 FROM c"
    "  RETURNING id, prefix, created_at, revoked_at),"
    " a AS (INSERT INTO audit_log (actor, request_id, action, entity, entity_id, detail)"
    "  SELECT $5, $6, 'client.create', 'client', c.id::text,"
    "   jsonb_build_object('name', c.name, 'role', c.role) FROM c"
    "  UNION ALL"
    "  SELECT $5, $6, 'key.create', 'api_key', k.id::text,"
    "   jsonb_build_object('clientId', c.id, 'prefix', k.prefix) FROM c, k)"
    " SELECT " CL_COLS("c", "k") " FROM c, k",
};

/* $1 client id, $2 key hash, $3 key prefix, $4 actor, $5 request id.  No row: no client. */
static const fsr_pg_stmt cl_key_insert = {
    "cl_key_insert",
    "WITH c AS (SELECT id FROM clients WHERE id = $1::uuid FOR KEY SHARE),"
    " k AS (INSERT INTO api_keys (client_id, key_hash, prefix) SELECT id, $2, $3 FROM c"
    "  RETURNING id, client_id, prefix, created_at),"
    " a AS (INSERT INTO audit_log (actor, request_id, action, entity, entity_id, detail)"
    "  SELECT $4, $5, 'key.create', 'api_key', k.id::text,"
    "   jsonb_build_object('clientId', k.client_id, 'prefix', k.prefix) FROM k)"
    " SELECT k.id::text, k.client_id::text, " CL_TS("k.created_at") " FROM k",
};

/*
 * $1 client id, $2 key id, $3 actor, $4 request id.  No row: no such key of that client.
 * Otherwise the key's hash and whether this call revoked it (0: it already was revoked --
 * OK again, without a second audit row).  FOR UPDATE serialises concurrent revocations.
 */
static const fsr_pg_stmt cl_key_revoke = {
    "cl_key_revoke",
    "WITH k AS (SELECT id, key_hash, revoked_at FROM api_keys"
    "  WHERE id = $2::uuid AND client_id = $1::uuid FOR UPDATE),"
    " u AS (UPDATE api_keys SET revoked_at = now() FROM k"
    "  WHERE api_keys.id = k.id AND k.revoked_at IS NULL RETURNING api_keys.id),"
    " a AS (INSERT INTO audit_log (actor, request_id, action, entity, entity_id, detail)"
    "  SELECT $3, $4, 'key.revoke', 'api_key', u.id::text,"
    "   jsonb_build_object('clientId', $1::text) FROM u)"
    " SELECT k.key_hash, (SELECT count(*) FROM u) FROM k",
};

static const fsr_pg_stmt cl_select = {
    "cl_select",
    "SELECT " CL_COLS("c", "k") " FROM clients c LEFT JOIN api_keys k ON k.client_id = c.id"
                                " WHERE c.id = $1::uuid ORDER BY k.created_at, k.id",
};

/*
 * Keyset paging in creation order (created_at, then id): the page is $3 clients (one more
 * than asked, to learn whether another page follows) after the cursor ($1, $2), each with
 * its keys.
 */
static const fsr_pg_stmt cl_list = {
    "cl_list",
    "SELECT " CL_COLS(
        "c",
        "k") " FROM (SELECT id, name, role, created_at FROM clients"
             "  WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1::timestamptz, $2::uuid))"
             "  ORDER BY created_at, id LIMIT $3::integer) c"
             " LEFT JOIN api_keys k ON k.client_id = c.id"
             " ORDER BY c.created_at, c.id, k.created_at, k.id",
};

/* $1 key hash: the key's id, its client and role, while neither is revoked or gone. */
static const fsr_pg_stmt cl_authenticate = {
    "cl_authenticate",
    "SELECT k.id::text, c.id::text, c.role FROM api_keys k JOIN clients c ON c.id = k.client_id"
    " WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
};

/* ---- keys ------------------------------------------------------------------------- */

/*
 * SHA-256 of |len| bytes of |key|.  The one-shot SHA256_* functions are used rather than
 * EVP_Digest(): in OpenSSL 3 EVP fetches the algorithm and allocates a context per call and
 * pulls in the provider machinery (megabytes of resident pages), for no benefit here.
 */
static void key_hash(const char *key, size_t len, unsigned char out[SHA256_DIGEST_LENGTH])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, key, len);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof(c));
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* A new key (in the call's arena), its hash (hex) and its prefix.  -1 if RAND_bytes fails. */
typedef struct new_key {
    char *key;
    char hash[2 * SHA256_DIGEST_LENGTH + 1];
    char prefix[PF_KEY_PREFIX_LEN + 1];
} new_key;

static int key_generate(fsr_call *call, new_key *k)
{
    unsigned char raw[PF_KEY_RANDOM], md[SHA256_DIGEST_LENGTH];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    k->key = fsr_call_alloc(call, PF_KEY_LEN + 1);
    memcpy(k->key, PF_KEY_TAG, 4);
    hex_encode(raw, sizeof(raw), k->key + 4);
    OPENSSL_cleanse(raw, sizeof(raw));
    key_hash(k->key, PF_KEY_LEN, md);
    hex_encode(md, sizeof(md), k->hash);
    memcpy(k->prefix, k->key, PF_KEY_PREFIX_LEN);
    k->prefix[PF_KEY_PREFIX_LEN] = '\0';
    return 0;
}

/* The bootstrap admin key's hash, read once from ADMIN_API_KEY (never the key itself). */
static pthread_once_t admin_once = PTHREAD_ONCE_INIT;
static bool admin_set;
static unsigned char admin_hash[SHA256_DIGEST_LENGTH];

static void admin_init(void)
{
    const char *k = getenv("ADMIN_API_KEY");
    size_t len = k != NULL ? strlen(k) : 0;
    if (len == 0) {
        FSR_INFO("ADMIN_API_KEY is not set: no bootstrap admin key");
        return;
    }
    key_hash(k, len, admin_hash);
    admin_set = true;
    if (len < 16)
        FSR_WARN("ADMIN_API_KEY is only %zu characters: use a long random key", len);
}

/* ---- helpers ---------------------------------------------------------------------- */

/* Fills |who|; 0 if it may manage clients and keys (admin or internal), else -1 (failed). */
static int require_admin(fsr_call *call, fsr_caller *who)
{
    if (fsr_caller_of(call, who) != 0)
        return -1;
    if (who->role == FSR_ROLE_ADMIN || who->role == FSR_ROLE_INTERNAL)
        return 0;
    fsr_call_fail(call, FSR_PERMISSION_DENIED, "clients and API keys need role admin");
    return -1;
}

static fsr_pg_pool *pool_of(fsr_call *call)
{
    fsr_pg_pool *pool = fsr_app_ctx_of(call)->pg;
    if (pool == NULL)
        fsr_call_fail(call, FSR_UNAVAILABLE, "the portfolio database is unavailable");
    return pool;
}

static void fail_db(fsr_call *call, const fsr_pg_result *res, const char *what)
{
    int st = fsr_pg_result_status(res);
    if (st == FSR_E_DB)
        FSR_ERROR("%s: SQLSTATE %s: %s", what, fsr_pg_result_sqlstate(res),
                  fsr_pg_result_message(res));
    fsr_call_fail_err(call, st, what);
}

static void fail_shape(fsr_call *call, const char *what)
{
    FSR_ERROR("%s: unexpected result shape", what);
    fsr_call_fail(call, FSR_INTERNAL, "internal error");
}

static const char *col(const fsr_pg_result *res, int row, int c)
{
    return fsr_pg_result_getvalue(res, row, c);
}

/* Row |row|'s key columns as an ApiKeyInfo, or NULL when the row has no key. */
static Portfolio__V1__ApiKeyInfo *key_info_from_row(fsr_call *call, const fsr_pg_result *res,
                                                    int row)
{
    if (col(res, row, COL_KEY_ID)[0] == '\0')
        return NULL;
    Portfolio__V1__ApiKeyInfo *k = fsr_call_alloc(call, sizeof(*k));
    portfolio__v1__api_key_info__init(k);
    k->key_id = fsr_pg_col_dup(call, res, row, COL_KEY_ID);
    k->prefix = fsr_pg_col_dup(call, res, row, COL_KEY_PREFIX);
    k->created_at = fsr_timestamp_from_pg(call, col(res, row, COL_KEY_CREATED_AT));
    if (col(res, row, COL_KEY_REVOKED_AT)[0] != '\0')
        k->revoked_at = fsr_timestamp_from_pg(call, col(res, row, COL_KEY_REVOKED_AT));
    return k;
}

/*
 * The client of rows [|from|, |to|) (one client, one row per key) into a Client in the
 * call's arena; NULL if the rows are not what the query promised.
 */
static Portfolio__V1__Client *client_from_rows(fsr_call *call, const fsr_pg_result *res, int from,
                                               int to)
{
    if (fsr_pg_result_cols(res) != COL_COUNT || from >= to)
        return NULL;
    Portfolio__V1__Client *c = fsr_call_alloc(call, sizeof(*c));
    portfolio__v1__client__init(c);
    c->id = fsr_pg_col_dup(call, res, from, COL_ID);
    c->name = fsr_pg_col_dup(call, res, from, COL_NAME);
    c->role = fsr_pg_col_dup(call, res, from, COL_ROLE);
    c->created_at = fsr_timestamp_from_pg(call, col(res, from, COL_CREATED_AT));
    if (c->created_at == NULL)
        return NULL;
    c->keys = fsr_call_alloc(call, sizeof(*c->keys) * (size_t)(to - from));
    for (int i = from; i < to; i++) {
        Portfolio__V1__ApiKeyInfo *k = key_info_from_row(call, res, i);
        if (k == NULL)
            continue;
        if (k->created_at == NULL)
            return NULL;
        c->keys[c->n_keys++] = k;
    }
    return c;
}

/* ---- CreateClient ----------------------------------------------------------------- */

typedef struct create_op {
    fsr_call *call;
    char *key; /* the plaintext, for the one response that shows it */
} create_op;

static void on_client_created(const fsr_pg_result *res, void *arg)
{
    create_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(op->call, res, "create client");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    Portfolio__V1__Client *c = rows == 1 ? client_from_rows(op->call, res, 0, 1) : NULL;
    if (c == NULL || c->n_keys != 1) {
        fail_shape(op->call, "create client");
        return;
    }
    c->api_key = op->key;
    FSR_INFO("client %s created (role %s, key %s)", c->id, c->role, c->keys[0]->key_id);
    portfolio_v1_client_service_create_client_reply(op->call, c);
}

void pf_create_client(fsr_call *call, const Portfolio__V1__CreateClientRequest *req)
{
    fsr_caller who;
    if (require_admin(call, &who) != 0)
        return;
    if (fsr_check_text(call, "name", req->name, true, PF_CLIENT_NAME_MAX, true) != 0)
        return;
    const char *role = req->role[0] != '\0' ? req->role : "client";
    if (strcmp(role, "admin") != 0 && strcmp(role, "data") != 0 && strcmp(role, "client") != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "role",
                            "must be \"admin\", \"data\" or \"client\"");
        return;
    }
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    new_key k;
    if (key_generate(call, &k) != 0) {
        FSR_ERROR("create client: RAND_bytes failed");
        fsr_call_fail(call, FSR_INTERNAL, "cannot generate an API key");
        return;
    }
    create_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->key = k.key;
    const char *values[6] = { req->name, role,          k.hash,
                              k.prefix,  who.client_id, fsr_call_request_id(call) };
    int rv = fsr_pg_query(pool, &cl_insert, 6, values, on_client_created, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "create client");
}

/* ---- GetClient -------------------------------------------------------------------- */

typedef struct get_op {
    fsr_call *call;
    const char *id;
} get_op;

static void on_client_got(const fsr_pg_result *res, void *arg)
{
    get_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(op->call, res, "get client");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    if (rows == 0) {
        fsr_call_fail(op->call, FSR_NOT_FOUND, "client %s not found", op->id);
        return;
    }
    Portfolio__V1__Client *c = client_from_rows(op->call, res, 0, rows);
    if (c == NULL) {
        fail_shape(op->call, "get client");
        return;
    }
    portfolio_v1_client_service_get_client_reply(op->call, c);
}

void pf_get_client(fsr_call *call, const Portfolio__V1__GetClientRequest *req)
{
    fsr_caller who;
    if (require_admin(call, &who) != 0)
        return;
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    get_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    const char *values[1] = { req->id };
    int rv = fsr_pg_query(pool, &cl_select, 1, values, on_client_got, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "get client");
}

/* ---- ListClients ------------------------------------------------------------------ */

typedef struct list_op {
    fsr_call *call;
    int page_size;
} list_op;

static void on_clients_listed(const fsr_pg_result *res, void *arg)
{
    list_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(call, res, "list clients");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    Portfolio__V1__ListClientsResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    portfolio__v1__list_clients_response__init(resp);
    resp->clients = fsr_call_alloc(call, sizeof(*resp->clients) * (size_t)op->page_size);
    bool more = false;
    int last_row = -1; /* a row of the last client of the page */
    for (int from = 0; from < rows;) {
        int to = from + 1;
        while (to < rows && strcmp(col(res, to, COL_ID), col(res, from, COL_ID)) == 0)
            to++;
        if ((int)resp->n_clients == op->page_size) {
            more = true; /* the extra client fetched: another page follows */
            break;
        }
        Portfolio__V1__Client *c = client_from_rows(call, res, from, to);
        if (c == NULL) {
            fail_shape(call, "list clients");
            return;
        }
        resp->clients[resp->n_clients++] = c;
        last_row = from;
        from = to;
    }
    if (more) {
        /* The cursor: the last client's created_at (exact, microseconds UTC) and id. */
        const char *cursor[2] = { col(res, last_row, COL_CREATED_AT), col(res, last_row, COL_ID) };
        resp->next_page_token = fsr_page_token_encode(fsr_call_arena(call), cursor, 2);
        if (resp->next_page_token == NULL) {
            fail_shape(call, "list clients");
            return;
        }
    }
    portfolio_v1_client_service_list_clients_reply(call, resp);
}

void pf_list_clients(fsr_call *call, const Portfolio__V1__ListClientsRequest *req)
{
    fsr_caller who;
    if (require_admin(call, &who) != 0)
        return;
    int page_size;
    if (fsr_page_size_resolve(req->page_size, &page_size) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "pageSize", "must be between 0 and %d",
                            FSR_PAGE_SIZE_MAX);
        return;
    }
    char *cursor[2] = { NULL, NULL };
    if (req->page_token[0] != '\0') {
        int64_t s;
        int32_t ns;
        if (fsr_page_token_decode(fsr_call_arena(call), req->page_token, cursor, 2) != 0 ||
            fsr_pg_timestamp_parse(cursor[0], &s, &ns) != 0 || !fsr_uuid_valid(cursor[1])) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "pageToken",
                                "is not a token from a previous ListClients response");
            return;
        }
    }
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    list_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->page_size = page_size;
    const char *values[3] = { cursor[0], cursor[1], fsr_call_printf(call, "%d", page_size + 1) };
    int rv = fsr_pg_query(pool, &cl_list, 3, values, on_clients_listed, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "list clients");
}

/* ---- CreateKey -------------------------------------------------------------------- */

typedef struct key_op {
    fsr_call *call;
    const char *id;
    char *key;
} key_op;

static void on_key_created(const fsr_pg_result *res, void *arg)
{
    key_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(op->call, res, "create key");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail(op->call, FSR_NOT_FOUND, "client %s not found", op->id);
        return;
    }
    if (fsr_pg_result_rows(res) != 1 || fsr_pg_result_cols(res) != 3) {
        fail_shape(op->call, "create key");
        return;
    }
    Portfolio__V1__ApiKey *k = fsr_call_alloc(op->call, sizeof(*k));
    portfolio__v1__api_key__init(k);
    k->key_id = fsr_pg_col_dup(op->call, res, 0, 0);
    k->client_id = fsr_pg_col_dup(op->call, res, 0, 1);
    k->created_at = fsr_timestamp_from_pg(op->call, col(res, 0, 2));
    k->api_key = op->key;
    FSR_INFO("client %s: key %s created", k->client_id, k->key_id);
    portfolio_v1_client_service_create_key_reply(op->call, k);
}

void pf_create_key(fsr_call *call, const Portfolio__V1__CreateKeyRequest *req)
{
    fsr_caller who;
    if (require_admin(call, &who) != 0)
        return;
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    new_key k;
    if (key_generate(call, &k) != 0) {
        FSR_ERROR("create key: RAND_bytes failed");
        fsr_call_fail(call, FSR_INTERNAL, "cannot generate an API key");
        return;
    }
    key_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    op->key = k.key;
    const char *values[5] = { req->id, k.hash, k.prefix, who.client_id, fsr_call_request_id(call) };
    int rv = fsr_pg_query(pool, &cl_key_insert, 5, values, on_key_created, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "create key");
}

/* ---- RevokeKey -------------------------------------------------------------------- */

typedef struct revoke_op {
    fsr_call *call;
    const char *id, *key_id;
    char hash[2 * SHA256_DIGEST_LENGTH + 1];
} revoke_op;

static void revoke_reply(revoke_op *op)
{
    static const Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
    portfolio_v1_client_service_revoke_key_reply(op->call, &empty);
}

static void on_revoke_published(const struct redisReply *reply, int status, void *arg)
{
    (void)reply;
    revoke_op *op = arg;
    if (status != 0)
        FSR_WARN("key %s revoked, but %s was not published (%s): gateways drop it when "
                 "their cache entry expires",
                 op->key_id, PF_KEY_REVOKED, fsr_strerror(status));
    revoke_reply(op);
}

static void on_key_revoked(const fsr_pg_result *res, void *arg)
{
    revoke_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(op->call, res, "revoke key");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail(op->call, FSR_NOT_FOUND, "key %s of client %s not found", op->key_id, op->id);
        return;
    }
    const char *hash = col(res, 0, 0);
    if (fsr_pg_result_cols(res) != 2 || strlen(hash) != sizeof(op->hash) - 1) {
        fail_shape(op->call, "revoke key");
        return;
    }
    memcpy(op->hash, hash, sizeof(op->hash));
    if (strcmp(col(res, 0, 1), "0") != 0)
        FSR_INFO("client %s: key %s revoked", op->id, op->key_id);
    /*
     * Committed (one autocommit statement).  Published even when the key was already
     * revoked: a gateway that missed the first message drops it now.  The reply waits for
     * Redis, which has then queued the message to every subscriber.
     */
    fsr_redis *shared = fsr_app_ctx_of(op->call)->shared;
    int rv = shared != NULL ? fsr_redis_command(shared, on_revoke_published, op, "PUBLISH %s %s",
                                                PF_KEY_REVOKED, op->hash)
                            : FSR_E_CLOSED;
    if (rv != 0) {
        FSR_WARN("key %s revoked, but %s was not published (%s): gateways drop it when "
                 "their cache entry expires",
                 op->key_id, PF_KEY_REVOKED, fsr_strerror(rv));
        revoke_reply(op);
    }
}

void pf_revoke_key(fsr_call *call, const Portfolio__V1__RevokeKeyRequest *req)
{
    fsr_caller who;
    if (require_admin(call, &who) != 0)
        return;
    if (fsr_check_uuid(call, "id", req->id) != 0 || fsr_check_uuid(call, "keyId", req->key_id) != 0)
        return;
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    revoke_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    op->key_id = req->key_id;
    const char *values[4] = { req->id, req->key_id, who.client_id, fsr_call_request_id(call) };
    int rv = fsr_pg_query(pool, &cl_key_revoke, 4, values, on_key_revoked, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "revoke key");
}

/* ---- Authenticate ----------------------------------------------------------------- */

static void on_authenticated(const fsr_pg_result *res, void *arg)
{
    fsr_call *call = arg;
    if (fsr_pg_result_status(res) != 0) {
        fail_db(call, res, "authenticate");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail(call, FSR_UNAUTHENTICATED, "unknown or revoked API key");
        return;
    }
    if (fsr_pg_result_cols(res) != 3) {
        fail_shape(call, "authenticate");
        return;
    }
    Portfolio__V1__AuthenticateResponse *r = fsr_call_alloc(call, sizeof(*r));
    portfolio__v1__authenticate_response__init(r);
    r->key_id = fsr_pg_col_dup(call, res, 0, 0);
    r->client_id = fsr_pg_col_dup(call, res, 0, 1);
    r->role = fsr_pg_col_dup(call, res, 0, 2);
    portfolio_v1_client_service_authenticate_reply(call, r);
}

void pf_authenticate(fsr_call *call, const Portfolio__V1__AuthenticateRequest *req)
{
    /* No role check: the gateway calls this for every caller; it answers nothing secret. */
    size_t len = strlen(req->api_key);
    if (len == 0 || len > PF_KEY_MAX) {
        fsr_call_fail(call, FSR_UNAUTHENTICATED,
                      len == 0 ? "an API key is required" : "unknown or revoked API key");
        return;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    key_hash(req->api_key, len, md);
    pthread_once(&admin_once, admin_init);
    /* Constant time: how much of the bootstrap key's hash matched never shows in timing. */
    if (admin_set && CRYPTO_memcmp(md, admin_hash, sizeof(md)) == 0) {
        Portfolio__V1__AuthenticateResponse *r = fsr_call_alloc(call, sizeof(*r));
        portfolio__v1__authenticate_response__init(r);
        r->client_id = PF_BOOTSTRAP_ADMIN_ID;
        r->role = "admin";
        portfolio_v1_client_service_authenticate_reply(call, r);
        return;
    }
    fsr_pg_pool *pool = pool_of(call);
    if (pool == NULL)
        return;
    char *hex = fsr_call_alloc(call, 2 * sizeof(md) + 1);
    hex_encode(md, sizeof(md), hex);
    const char *values[1] = { hex };
    int rv = fsr_pg_query(pool, &cl_authenticate, 1, values, on_authenticated, call);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "authenticate");
}
