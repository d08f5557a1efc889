/* SPDX-License-Identifier: MIT */
/*
 * The transaction ledger: AddTransaction, ListTransactions and pf_ledger_apply() (several
 * entries atomically, for Rebalance).  Every field is validated here before anything is
 * written; the entries are then applied by one call of pf_ledger_apply() in SQL
 * (sql/005_portfolio_writes.sql), which locks the portfolio row, checks the version and the
 * balances, writes the rows and the audit trail, and bumps the version -- one statement in
 * one transaction per call.
 *
 * Entry types and what they need (portfolio.proto, Transaction.Type):
 *   BUY, SELL                  instrument, quantity > 0, price >= 0; amount defaults to
 *                              quantity x price (bond: quantity / 100 x price), exactly
 *   TRANSFER_IN, TRANSFER_OUT  instrument, quantity > 0; no price, no amount (no cash effect)
 *   DEPOSIT, WITHDRAWAL, FEE   amount > 0; no instrument, quantity or price
 *   DIVIDEND (equity), COUPON (bond)  instrument (a holding) and amount > 0
 * A BUY (or TRANSFER_IN, or a short SELL where allowed) of an instrument not held creates
 * the holding: AddTransaction first asks the instrument's service whether it exists, as
 * AddConstituent does, outside the transaction.
 */
#include "portfolio.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fsr/log.h"
#include "fsr/validate.h"

#include "portfolio_v1.fsr.h"

#define PF_NOTE_MAX 1000
/* Entries pf_ledger_apply() takes in one call. */
#define PF_LEDGER_MAX 1000

/* A transactions row "t" as text: the columns tx_from_row() reads. */
#define PF_TX_COLS                                                                                 \
    "t.id, t.portfolio_id, t.type, to_char(t.date, 'YYYY-MM-DD'), "                                \
    "coalesce(t.instrument_type, ''), coalesce(t.instrument_id::text, ''), "                       \
    "coalesce(t.quantity::text, ''), coalesce(t.price::text, ''), t.amount::text, t.note, " PF_TS( \
        "t.created_at") ", coalesce(t.constituent_id::text, ''), t.seq"
enum {
    TX_ID,
    TX_PORTFOLIO_ID,
    TX_TYPE,
    TX_DATE,
    TX_INSTRUMENT_TYPE,
    TX_INSTRUMENT_ID,
    TX_QUANTITY,
    TX_PRICE,
    TX_AMOUNT,
    TX_NOTE,
    TX_CREATED_AT,
    TX_CONSTITUENT_ID,
    TX_SEQ,
    TX_COLS
};

static const fsr_pg_stmt pf_ledger_apply_stmt = {
    "pf_ledger_apply",
    "SELECT " PF_TX_COLS ", t.new_version FROM (SELECT (a.tx).*, a.new_version"
    " FROM pf_ledger_apply($1::uuid, $2::uuid, $3::integer, $4, $5, $6::jsonb) a) t",
};

/*
 * Keyset paging by (date, seq).  The portfolio is looked up first so that a missing (or
 * another client's) portfolio is told from an empty ledger: no row at all vs one row of
 * NULLs.
 */
static const fsr_pg_stmt pf_ledger_list = {
    "pf_ledger_list",
    "SELECT " PF_TX_COLS " FROM (SELECT id FROM portfolios WHERE id = $1::uuid"
    " AND ($2::uuid IS NULL OR client_id = $2::uuid)) p"
    " LEFT JOIN LATERAL (SELECT * FROM transactions x WHERE x.portfolio_id = p.id"
    " AND ($3::date IS NULL OR x.date >= $3::date) AND ($4::date IS NULL OR x.date <= $4::date)"
    " AND ($5::date IS NULL OR (x.date, x.seq) > ($5::date, $6::bigint))"
    " ORDER BY x.date, x.seq LIMIT $7::integer) t ON true ORDER BY t.date, t.seq",
};

/* ---- rows -> messages ----------------------------------------------------------------- */

static int enum_value(const ProtobufCEnumDescriptor *d, const char *name)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(d, name);
    return v != NULL ? v->value : 0;
}

static const char *enum_name(const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    return v != NULL ? v->name : "";
}

static Portfolio__V1__Transaction *tx_from_row(fsr_call *call, const fsr_pg_result *res, int row)
{
    Portfolio__V1__Transaction *t = fsr_call_alloc(call, sizeof(*t));
    portfolio__v1__transaction__init(t);
    t->transaction_id = fsr_pg_col_dup(call, res, row, TX_ID);
    t->portfolio_id = fsr_pg_col_dup(call, res, row, TX_PORTFOLIO_ID);
    t->type = enum_value(&portfolio__v1__transaction__type__descriptor,
                         fsr_pg_result_getvalue(res, row, TX_TYPE));
    t->date = fsr_pg_col_dup(call, res, row, TX_DATE);
    t->instrument_type = enum_value(&common__v1__instrument_type__value__descriptor,
                                    fsr_pg_result_getvalue(res, row, TX_INSTRUMENT_TYPE));
    t->instrument_id = fsr_pg_col_dup(call, res, row, TX_INSTRUMENT_ID);
    t->quantity = fsr_pg_col_dup(call, res, row, TX_QUANTITY);
    t->price = fsr_pg_col_dup(call, res, row, TX_PRICE);
    t->amount = fsr_pg_col_dup(call, res, row, TX_AMOUNT);
    t->note = fsr_pg_col_dup(call, res, row, TX_NOTE);
    t->created_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, row, TX_CREATED_AT));
    t->constituent_id = fsr_pg_col_dup(call, res, row, TX_CONSTITUENT_ID);
    if (t->created_at == NULL || t->type == 0)
        return NULL;
    return t;
}

/* ---- validation ----------------------------------------------------------------------- */

typedef Portfolio__V1__AddTransactionRequest tx_req;

#define T_BUY          PORTFOLIO__V1__TRANSACTION__TYPE__BUY
#define T_SELL         PORTFOLIO__V1__TRANSACTION__TYPE__SELL
#define T_DEPOSIT      PORTFOLIO__V1__TRANSACTION__TYPE__DEPOSIT
#define T_WITHDRAWAL   PORTFOLIO__V1__TRANSACTION__TYPE__WITHDRAWAL
#define T_DIVIDEND     PORTFOLIO__V1__TRANSACTION__TYPE__DIVIDEND
#define T_COUPON       PORTFOLIO__V1__TRANSACTION__TYPE__COUPON
#define T_FEE          PORTFOLIO__V1__TRANSACTION__TYPE__FEE
#define T_TRANSFER_IN  PORTFOLIO__V1__TRANSACTION__TYPE__TRANSFER_IN
#define T_TRANSFER_OUT PORTFOLIO__V1__TRANSACTION__TYPE__TRANSFER_OUT
#define I_EQUITY       COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY
#define I_BOND         COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND
#define I_NONE         COMMON__V1__INSTRUMENT_TYPE__VALUE__INSTRUMENT_TYPE_UNSPECIFIED

static bool moves_holding(int type)
{
    return type == T_BUY || type == T_SELL || type == T_TRANSFER_IN || type == T_TRANSFER_OUT;
}

static bool names_instrument(int type)
{
    return moves_holding(type) || type == T_DIVIDEND || type == T_COUPON;
}

/* Field names in errors: "quantity" for AddTransaction, "transactions[2].quantity" in a lot. */
typedef struct check_ctx {
    fsr_call *call;
    const char *prefix;
} check_ctx;

#define BAD(c, field, ...)                                                                         \
    (fsr_call_fail_field((c)->call, FSR_INVALID_ARGUMENT,                                          \
                         fsr_call_printf((c)->call, "%s%s", (c)->prefix, (field)), __VA_ARGS__),   \
     -1)

/* A decimal field: |required|; |positive| (> 0) or not negative (>= 0). */
static int check_decimal(const check_ctx *c, const char *field, const char *v, bool required,
                         bool positive)
{
    if (v[0] == '\0')
        return required ? BAD(c, field, "is required") : 0;
    const char *why = NULL;
    int sign = 0;
    if (fsr_decimal_check(v, &sign, &why) != 0)
        return BAD(c, field, "%s", why);
    if (positive && sign <= 0)
        return BAD(c, field, "must be > 0");
    if (sign < 0)
        return BAD(c, field, "must be >= 0");
    return 0;
}

static int check_absent(const check_ctx *c, const char *field, const char *v, const char *type)
{
    return v[0] != '\0' ? BAD(c, field, "must be absent for %s", type) : 0;
}

static int check_tx(const check_ctx *c, const tx_req *t)
{
    int type = t->type;
    const char *tn = enum_name(&portfolio__v1__transaction__type__descriptor, type);
    if (type <= 0 || type > T_TRANSFER_OUT)
        return BAD(c, "type",
                   "is required: BUY, SELL, DEPOSIT, WITHDRAWAL, DIVIDEND, COUPON, "
                   "FEE, TRANSFER_IN or TRANSFER_OUT");
    if (t->date[0] != '\0' && fsr_date_parse(t->date, NULL, NULL, NULL) != 0)
        return BAD(c, "date", "must be a date \"YYYY-MM-DD\"");
    const char *why = NULL;
    if (fsr_text_check(t->note, PF_NOTE_MAX, true, &why) != 0)
        return BAD(c, "note", "%s", why);

    if (names_instrument(type)) {
        if (t->instrument_type != I_EQUITY && t->instrument_type != I_BOND)
            return BAD(c, "instrumentType", "is required for %s: EQUITY or BOND", tn);
        if (type == T_DIVIDEND && t->instrument_type != I_EQUITY)
            return BAD(c, "instrumentType", "must be EQUITY for a DIVIDEND (bonds pay COUPON)");
        if (type == T_COUPON && t->instrument_type != I_BOND)
            return BAD(c, "instrumentType", "must be BOND for a COUPON (equities pay DIVIDEND)");
        if (t->instrument_id[0] == '\0')
            return BAD(c, "instrumentId", "is required for %s", tn);
        if (!fsr_uuid_valid(t->instrument_id))
            return BAD(c, "instrumentId", "must be a UUID");
    } else {
        if (t->instrument_type != I_NONE)
            return BAD(c, "instrumentType", "must be absent for %s", tn);
        if (check_absent(c, "instrumentId", t->instrument_id, tn) != 0)
            return -1;
    }

    if (type == T_BUY || type == T_SELL) {
        if (check_decimal(c, "quantity", t->quantity, true, true) != 0 ||
            check_decimal(c, "price", t->price, true, false) != 0 ||
            check_decimal(c, "amount", t->amount, false, false) != 0)
            return -1;
    } else if (type == T_TRANSFER_IN || type == T_TRANSFER_OUT) {
        if (check_decimal(c, "quantity", t->quantity, true, true) != 0 ||
            check_absent(c, "price", t->price, tn) != 0 ||
            check_absent(c, "amount", t->amount, tn) != 0)
            return -1;
    } else {
        if (check_absent(c, "quantity", t->quantity, tn) != 0 ||
            check_absent(c, "price", t->price, tn) != 0 ||
            check_decimal(c, "amount", t->amount, true, true) != 0)
            return -1;
    }
    return 0;
}

/* ---- applying ------------------------------------------------------------------------- */

/* What the caller knows of an entry's instrument: checked by RPC, with its symbol. */
typedef struct tx_extra {
    bool verified;
    const char *symbol;
} tx_extra;

static const char *lower_uuid(fsr_call *call, const char *s)
{
    char *l = fsr_arena_strdup(fsr_call_arena(call), s);
    for (char *p = l; *p; p++) {
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    }
    return l;
}

/* The entries as pf_ledger_apply()'s JSON array (strings only; absent = not given). */
static const char *txs_json(fsr_call *call, const tx_req *const *txs, size_t n,
                            const tx_extra *extra)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const tx_req *t = txs[i];
        json_t *o = json_object();
        json_object_set_new(
            o, "type",
            json_string(enum_name(&portfolio__v1__transaction__type__descriptor, t->type)));
        struct {
            const char *key, *value;
        } kv[] = {
            { "date", t->date },
            { "instrumentType",
              t->instrument_type != I_NONE
                  ? enum_name(&common__v1__instrument_type__value__descriptor, t->instrument_type)
                  : "" },
            { "instrumentId", t->instrument_id[0] ? lower_uuid(call, t->instrument_id) : "" },
            { "quantity", t->quantity },
            { "price", t->price },
            { "amount", t->amount },
            { "note", t->note },
            { "symbol", extra[i].symbol != NULL ? extra[i].symbol : "" },
            { "verified", extra[i].verified ? "true" : "" },
        };
        for (size_t k = 0; k < FSR_ARRAY_SIZE(kv); k++) {
            if (kv[k].value[0] != '\0')
                json_object_set_new(o, kv[k].key, json_string(kv[k].value));
        }
        json_array_append_new(arr, o);
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (text == NULL)
        return NULL;
    const char *copy = fsr_arena_strdup(fsr_call_arena(call), text);
    free(text);
    return copy;
}

typedef struct ledger_op {
    fsr_call *call;
    const char *values[6];
    Portfolio__V1__Transaction **written;
    size_t n_written;
    int32_t version;
    pf_ledger_build_cb build;
    pf_ledger_cb done;
    void *arg;
} ledger_op;

static ProtobufCMessage *build_written(fsr_call *call, const fsr_pg_result *res, void *arg)
{
    ledger_op *op = arg;
    int rows = fsr_pg_result_rows(res);
    if (rows < 1 || fsr_pg_result_cols(res) != TX_COLS + 1)
        return NULL;
    op->written = fsr_call_alloc(call, sizeof(*op->written) * (size_t)rows);
    for (int i = 0; i < rows; i++) {
        if ((op->written[i] = tx_from_row(call, res, i)) == NULL)
            return NULL;
    }
    op->n_written = (size_t)rows;
    op->version = (int32_t)strtol(fsr_pg_result_getvalue(res, 0, TX_COLS), NULL, 10);
    if (op->build != NULL)
        return op->build(call, op->written, op->n_written, op->version, op->arg);
    return &op->written[0]->base;
}

static void on_applied(fsr_call *call, ProtobufCMessage *resp, void *arg)
{
    ledger_op *op = arg;
    (void)resp;
    op->done(call, op->written, op->n_written, op->version, op->arg);
}

/*
 * Applies |txs| (validated) with pf_ledger_apply() in SQL: |build| makes the response
 * (NULL: the first entry written) which is recorded under |idem| and replied; or, with
 * |done|, COMMIT and |done|.
 */
static void ledger_run(fsr_call *call, const fsr_caller *who, const char *id,
                       int32_t expected_version, const tx_req *const *txs, size_t n,
                       const tx_extra *extra, pf_idem *idem, pf_ledger_build_cb build,
                       pf_ledger_cb done, void *arg)
{
    const char *json = txs_json(call, txs, n, extra);
    if (json == NULL) {
        pf_fail_shape(call, "apply transactions: JSON");
        return;
    }
    ledger_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->build = build;
    op->done = done;
    op->arg = arg;
    op->values[0] = id;
    op->values[1] = fsr_caller_scope(who);
    op->values[2] = fsr_call_printf(call, "%d", expected_version);
    op->values[3] = who->client_id;
    op->values[4] = fsr_call_request_id(call);
    op->values[5] = json;
    pf_write w = {
        .stmt = &pf_ledger_apply_stmt,
        .nparams = 6,
        .values = op->values,
        .build = build_written,
        .done = done != NULL ? on_applied : NULL,
        .arg = op,
        .what = "apply transactions",
    };
    pf_write_run(call, idem, &w);
}

/* Validates a lot for pf_ledger_apply*(): -1 after failing |call|. */
static int check_lot(fsr_call *call, const char *id, const tx_req *const *txs, size_t n,
                     tx_extra **extra)
{
    if (fsr_check_uuid(call, "id", id) != 0)
        return -1;
    if (n == 0 || n > PF_LEDGER_MAX) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "transactions", "must hold 1 to %d entries",
                            PF_LEDGER_MAX);
        return -1;
    }
    *extra = fsr_call_alloc(call, sizeof(**extra) * n);
    for (size_t i = 0; i < n; i++) {
        check_ctx c = { call, fsr_call_printf(call, "transactions[%zu].", i) };
        if (check_tx(&c, txs[i]) != 0)
            return -1;
        (*extra)[i].verified = true; /* the caller checked the instruments (portfolio.h) */
    }
    return 0;
}

void pf_ledger_apply(fsr_call *call, const fsr_caller *who, const char *id,
                     int32_t expected_version,
                     const Portfolio__V1__AddTransactionRequest *const *txs, size_t n,
                     pf_ledger_cb cb, void *arg)
{
    tx_extra *extra;
    if (check_lot(call, id, txs, n, &extra) != 0)
        return;
    ledger_run(call, who, id, expected_version, txs, n, extra, NULL, NULL, cb, arg);
}

void pf_ledger_apply_reply(fsr_call *call, const fsr_caller *who, const char *id,
                           int32_t expected_version,
                           const Portfolio__V1__AddTransactionRequest *const *txs, size_t n,
                           pf_idem *idem, pf_ledger_build_cb build, void *arg)
{
    tx_extra *extra;
    if (check_lot(call, id, txs, n, &extra) != 0)
        return;
    ledger_run(call, who, id, expected_version, txs, n, extra, idem, build, NULL, arg);
}

/* ---- AddTransaction ------------------------------------------------------------------- */

typedef struct add_tx_op {
    fsr_caller who;
    const tx_req *req;
    const tx_req *txs[1];
    tx_extra extra[1];
    int32_t version;
    pf_idem *idem;
} add_tx_op;

static void add_tx_apply(fsr_call *call, add_tx_op *op)
{
    ledger_run(call, &op->who, op->req->id, op->version, op->txs, 1, op->extra, op->idem, NULL,
               NULL, NULL);
}

static void on_tx_instrument_checked(fsr_call *call, const char *symbol, void *arg)
{
    add_tx_op *op = arg;
    op->extra[0].verified = true;
    op->extra[0].symbol = symbol;
    add_tx_apply(call, op);
}

/*
 * Only an entry that would create the holding needs the RPC: a BUY or TRANSFER_IN of an
 * instrument not held, or a SELL of one where short positions are allowed.  Anything else
 * goes straight to the write, which re-checks under the row lock (a holding removed since
 * this read makes it ABORTED).
 */
static void on_tx_probed(fsr_call *call, bool allow_negative, bool held, void *arg)
{
    add_tx_op *op = arg;
    int type = op->req->type;
    bool creates = type == T_BUY || type == T_TRANSFER_IN || (type == T_SELL && allow_negative);
    if (!held && creates) {
        pf_instrument_check(call, op->req->instrument_type, op->req->instrument_id,
                            on_tx_instrument_checked, op);
        return;
    }
    add_tx_apply(call, op);
}

static void run_add_tx(fsr_call *call, pf_idem *idem, void *arg)
{
    add_tx_op *op = arg;
    op->idem = idem;
    if (moves_holding(op->req->type)) {
        pf_holding_probe(call, &op->who, op->req->id, op->req->instrument_type,
                         op->req->instrument_id, on_tx_probed, op);
        return;
    }
    add_tx_apply(call, op);
}

void pf_add_transaction(fsr_call *call, const Portfolio__V1__AddTransactionRequest *req)
{
    add_tx_op *op = fsr_call_alloc(call, sizeof(*op));
    if (fsr_caller_of(call, &op->who) != 0)
        return;
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    check_ctx c = { call, "" };
    if (check_tx(&c, req) != 0)
        return;
    if (pf_version_resolve(call, req->version, false, &op->version) != 0)
        return;
    op->req = req;
    op->txs[0] = req;
    pf_idem_begin(call, &op->who, &req->base, &portfolio__v1__transaction__descriptor, run_add_tx,
                  op);
}

/* ---- ListTransactions ----------------------------------------------------------------- */

typedef struct list_tx_op {
    fsr_call *call;
    const char *id;
    int page_size;
} list_tx_op;

static void on_tx_listed(const fsr_pg_result *res, void *arg)
{
    list_tx_op *op = arg;
    fsr_call *call = op->call;
    if (fsr_pg_result_status(res) != 0) {
        pf_fail_db(call, res, "list transactions");
        return;
    }
    int rows = fsr_pg_result_rows(res);
    if (rows == 0) {
        fsr_call_fail(call, FSR_NOT_FOUND, "portfolio %s not found", op->id);
        return;
    }
    if (fsr_pg_result_cols(res) != TX_COLS) {
        pf_fail_shape(call, "list transactions");
        return;
    }
    if (rows == 1 && fsr_pg_result_isnull(res, 0, TX_ID))
        rows = 0; /* the portfolio, with nothing (more) in its ledger */
    bool more = rows > op->page_size;
    if (more)
        rows = op->page_size;
    Portfolio__V1__ListTransactionsResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    portfolio__v1__list_transactions_response__init(resp);
    resp->transactions =
        fsr_call_alloc(call, sizeof(*resp->transactions) * (size_t)(rows > 0 ? rows : 1));
    for (int i = 0; i < rows; i++) {
        if ((resp->transactions[i] = tx_from_row(call, res, i)) == NULL) {
            pf_fail_shape(call, "list transactions");
            return;
        }
    }
    resp->n_transactions = (size_t)rows;
    if (more) {
        const char *cursor[2] = { fsr_pg_result_getvalue(res, rows - 1, TX_DATE),
                                  fsr_pg_result_getvalue(res, rows - 1, TX_SEQ) };
        resp->next_page_token = fsr_page_token_encode(fsr_call_arena(call), cursor, 2);
        if (resp->next_page_token == NULL) {
            pf_fail_shape(call, "list transactions");
            return;
        }
    }
    portfolio_v1_portfolio_service_list_transactions_reply(call, resp);
}

static bool digits_only(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > 18)
        return false;
    return strspn(s, "0123456789") == strlen(s);
}

void pf_list_transactions(fsr_call *call, const Portfolio__V1__ListTransactionsRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0)
        return;
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    if (req->from[0] != '\0' && fsr_date_parse(req->from, NULL, NULL, NULL) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "from", "must be a date \"YYYY-MM-DD\"");
        return;
    }
    if (req->to[0] != '\0' && fsr_date_parse(req->to, NULL, NULL, NULL) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "to", "must be a date \"YYYY-MM-DD\"");
        return;
    }
    if (req->from[0] != '\0' && req->to[0] != '\0' && strcmp(req->from, req->to) > 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "to", "must not be before from");
        return;
    }
    int page_size;
    if (fsr_page_size_resolve(req->page_size, &page_size) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "pageSize", "must be between 0 and %d",
                            FSR_PAGE_SIZE_MAX);
        return;
    }
    char *cursor[2] = { NULL, NULL };
    if (req->page_token[0] != '\0' &&
        (fsr_page_token_decode(fsr_call_arena(call), req->page_token, cursor, 2) != 0 ||
         fsr_date_parse(cursor[0], NULL, NULL, NULL) != 0 || !digits_only(cursor[1]))) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "pageToken",
                            "is not a token from a previous ListTransactions response");
        return;
    }
    fsr_pg_pool *pool = pf_pool(call);
    if (pool == NULL)
        return;
    list_tx_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = req->id;
    op->page_size = page_size;
    const char *values[7] = {
        req->id,
        fsr_caller_scope(&who),
        req->from[0] != '\0' ? req->from : NULL,
        req->to[0] != '\0' ? req->to : NULL,
        cursor[0],
        cursor[1],
        fsr_call_printf(call, "%d", page_size + 1),
    };
    int rv = fsr_pg_query(pool, &pf_ledger_list, 7, values, on_tx_listed, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "list transactions");
}
