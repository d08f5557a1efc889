/* SPDX-License-Identifier: MIT */
/*
 * Holdings: AddConstituent and RemoveConstituent (their ledger side -- TRANSFER_IN and
 * TRANSFER_OUT entries -- and the target weights are in pf_constituent_add/_remove of
 * sql/005_portfolio_writes.sql), and HoldingsService.CountHolders, which the equity and
 * fixed-income services ask before deleting an instrument.  (ListConstituents, with
 * prices, is valuation's.)
 */
#include "portfolio.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fsr/log.h"
#include "fsr/validate.h"

#include "portfolio_v1.fsr.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

static const fsr_pg_stmt pf_probe = {
    "pf_probe",
    "SELECT p.allow_negative, EXISTS (SELECT 1 FROM constituents c WHERE c.portfolio_id = p.id"
    " AND c.instrument_type = $3 AND c.instrument_id = $4::uuid)"
    " FROM portfolios p WHERE p.id = $1::uuid AND ($2::uuid IS NULL OR p.client_id = $2::uuid)",
};

enum {
    CC_ID,
    CC_PORTFOLIO_ID,
    CC_TYPE,
    CC_INSTRUMENT_ID,
    CC_SYMBOL,
    CC_QUANTITY,
    CC_TARGET_WEIGHT,
    CC_CREATED_AT,
    CC_VERSION,
    CC_COUNT
};

static const fsr_pg_stmt pf_constituent_add = {
    "pf_constituent_add",
    "SELECT constituent_id, portfolio_id, instrument_type, instrument_id, symbol, quantity,"
    " target_weight, " PF_TS("created_at") ", version"
                                           " FROM pf_constituent_add($1::uuid, $2::uuid, "
                                           "$3::integer, $4, $5, $6, $7::uuid, $8,"
                                           " $9::numeric, $10::double precision)",
};

static const fsr_pg_stmt pf_constituent_remove = {
    "pf_constituent_remove",
    "SELECT pf_constituent_remove($1::uuid, $2::uuid, $3::integer, $4, $5, $6::uuid)",
};

static const fsr_pg_stmt pf_count_holders_stmt = {
    "pf_count_holders",
    "SELECT count(DISTINCT portfolio_id) FROM constituents"
    " WHERE instrument_type = $1 AND instrument_id = $2::uuid",
};

static const char *type_name(Common__V1__InstrumentType__Value t)
{
    return t == COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY ? "EQUITY" : "BOND";
}

static bool is_instrument(Common__V1__InstrumentType__Value t)
{
    return t == COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY ||
           t == COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND;
}

/* ---- the probe ------------------------------------------------------------------------ */

typedef struct probe_op {
    fsr_call *call;
    const char *id;
    pf_probe_cb cb;
    void *arg;
} probe_op;

static void on_probed(const fsr_pg_result *res, void *arg)
{
    probe_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        pf_fail_db(op->call, res, "portfolio holdings");
        return;
    }
    if (fsr_pg_result_rows(res) == 0) {
        fsr_call_fail(op->call, FSR_NOT_FOUND, "portfolio %s not found", op->id);
        return;
    }
    if (fsr_pg_result_cols(res) != 2) {
        pf_fail_shape(op->call, "portfolio holdings");
        return;
    }
    bool allow_negative = strcmp(fsr_pg_result_getvalue(res, 0, 0), "t") == 0;
    bool held = strcmp(fsr_pg_result_getvalue(res, 0, 1), "t") == 0;
    op->cb(op->call, allow_negative, held, op->arg);
}

void pf_holding_probe(fsr_call *call, const fsr_caller *who, const char *id,
                      Common__V1__InstrumentType__Value type, const char *instrument_id,
                      pf_probe_cb cb, void *arg)
{
    fsr_pg_pool *pool = pf_pool(call);
    if (pool == NULL)
        return;
    probe_op *op = fsr_call_alloc(call, sizeof(*op));
    op->call = call;
    op->id = id;
    op->cb = cb;
    op->arg = arg;
    const char *values[4] = { id, fsr_caller_scope(who), type_name(type), instrument_id };
    int rv = fsr_pg_query(pool, &pf_probe, 4, values, on_probed, op);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "portfolio holdings");
}

/* ---- AddConstituent ------------------------------------------------------------------- */

typedef struct add_op {
    fsr_caller who;
    const Portfolio__V1__AddConstituentRequest *req;
    pf_idem *idem;
    const char *values[10];
} add_op;

static ProtobufCMessage *build_constituent(fsr_call *call, const fsr_pg_result *res, void *arg)
{
    (void)arg;
    if (fsr_pg_result_rows(res) != 1 || fsr_pg_result_cols(res) != CC_COUNT)
        return NULL;
    Portfolio__V1__Constituent *c = fsr_call_alloc(call, sizeof(*c));
    portfolio__v1__constituent__init(c);
    c->constituent_id = fsr_pg_col_dup(call, res, 0, CC_ID);
    c->portfolio_id = fsr_pg_col_dup(call, res, 0, CC_PORTFOLIO_ID);
    bool equity = strcmp(fsr_pg_result_getvalue(res, 0, CC_TYPE), "EQUITY") == 0;
    c->instrument_type = equity ? COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY
                                : COMMON__V1__INSTRUMENT_TYPE__VALUE__BOND;
    c->asset_class = equity ? COMMON__V1__ASSET_CLASS__VALUE__EQUITY
                            : COMMON__V1__ASSET_CLASS__VALUE__FIXED_INCOME;
    c->instrument_id = fsr_pg_col_dup(call, res, 0, CC_INSTRUMENT_ID);
    c->symbol = fsr_pg_col_dup(call, res, 0, CC_SYMBOL);
    c->quantity = fsr_pg_col_dup(call, res, 0, CC_QUANTITY);
    if (!fsr_pg_result_isnull(res, 0, CC_TARGET_WEIGHT)) {
        Google__Protobuf__DoubleValue *w = fsr_call_alloc(call, sizeof(*w));
        google__protobuf__double_value__init(w);
        w->value = strtod(fsr_pg_result_getvalue(res, 0, CC_TARGET_WEIGHT), NULL);
        c->target_weight = w;
    }
    c->created_at = fsr_timestamp_from_pg(call, fsr_pg_result_getvalue(res, 0, CC_CREATED_AT));
    if (c->created_at == NULL)
        return NULL;
    return &c->base;
}

static void on_add_checked(fsr_call *call, const char *symbol, void *arg)
{
    add_op *op = arg;
    op->values[7] = symbol;
    pf_write w = {
        .stmt = &pf_constituent_add,
        .nparams = 10,
        .values = op->values,
        .build = build_constituent,
        .what = "add constituent",
    };
    pf_write_run(call, op->idem, &w);
}

static void on_add_probed(fsr_call *call, bool allow_negative, bool held, void *arg)
{
    add_op *op = arg;
    (void)allow_negative;
    /* Refused before asking the instrument's service; the function re-checks under lock. */
    if (held) {
        fsr_call_fail(call, FSR_ALREADY_EXISTS, "portfolio %s already holds %s %s", op->req->id,
                      op->req->instrument_type == COMMON__V1__INSTRUMENT_TYPE__VALUE__EQUITY
                          ? "equity"
                          : "bond",
                      op->values[6]);
        return;
    }
    pf_instrument_check(call, op->req->instrument_type, op->values[6], on_add_checked, op);
}

static void run_add(fsr_call *call, pf_idem *idem, void *arg)
{
    add_op *op = arg;
    op->idem = idem;
    pf_holding_probe(call, &op->who, op->req->id, op->req->instrument_type, op->values[6],
                     on_add_probed, op);
}

void pf_add_constituent(fsr_call *call, const Portfolio__V1__AddConstituentRequest *req)
{
    add_op *op = fsr_call_alloc(call, sizeof(*op));
    if (fsr_caller_of(call, &op->who) != 0)
        return;
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    if (!is_instrument(req->instrument_type)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "instrumentType",
                            "is required: EQUITY or BOND");
        return;
    }
    if (fsr_check_uuid(call, "instrumentId", req->instrument_id) != 0)
        return;
    const char *qty = req->quantity[0] != '\0' ? req->quantity : "0";
    const char *why = NULL;
    int sign = 0;
    if (fsr_decimal_check(qty, &sign, &why) != 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "quantity", "%s", why);
        return;
    }
    if (sign < 0) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "quantity", "must be >= 0");
        return;
    }
    const char *weight = NULL;
    if (req->target_weight != NULL) {
        double w = req->target_weight->value;
        if (!(w >= 0.0 && w <= 1.0)) {
            fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "targetWeight", "must be in [0, 1]");
            return;
        }
        weight = fsr_call_printf(call, "%.17g", w);
    }
    int32_t version = 0;
    if (pf_version_resolve(call, req->version, false, &version) != 0)
        return;

    op->req = req;
    /* Lower case: the instrument id as Postgres prints a uuid, in messages and targets. */
    char *iid = fsr_arena_strdup(fsr_call_arena(call), req->instrument_id);
    for (char *p = iid; *p; p++) {
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    }
    const char *values[10] = {
        req->id,
        fsr_caller_scope(&op->who),
        fsr_call_printf(call, "%d", version),
        op->who.client_id,
        fsr_call_request_id(call),
        type_name(req->instrument_type),
        iid,
        "", /* the symbol, from the instrument's service */
        qty,
        weight,
    };
    memcpy(op->values, values, sizeof(values));
    pf_idem_begin(call, &op->who, &req->base, &portfolio__v1__constituent__descriptor, run_add, op);
}

/* ---- RemoveConstituent ---------------------------------------------------------------- */

static ProtobufCMessage *build_empty(fsr_call *call, const fsr_pg_result *res, void *arg)
{
    (void)arg;
    if (fsr_pg_result_rows(res) != 1)
        return NULL;
    Google__Protobuf__Empty *e = fsr_call_alloc(call, sizeof(*e));
    google__protobuf__empty__init(e);
    return &e->base;
}

void pf_remove_constituent(fsr_call *call, const Portfolio__V1__RemoveConstituentRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0)
        return;
    if (fsr_check_uuid(call, "id", req->id) != 0)
        return;
    if (fsr_check_uuid(call, "constituentId", req->constituent_id) != 0)
        return;
    int32_t version = 0;
    if (pf_version_resolve(call, req->version, false, &version) != 0)
        return;
    const char **values = fsr_call_alloc(call, sizeof(*values) * 6);
    values[0] = req->id;
    values[1] = fsr_caller_scope(&who);
    values[2] = fsr_call_printf(call, "%d", version);
    values[3] = who.client_id;
    values[4] = fsr_call_request_id(call);
    values[5] = req->constituent_id;
    pf_write w = {
        .stmt = &pf_constituent_remove,
        .nparams = 6,
        .values = values,
        .build = build_empty,
        .what = "remove constituent",
    };
    pf_write_run(call, NULL, &w);
}

/* ---- CountHolders --------------------------------------------------------------------- */

static void on_counted(const fsr_pg_result *res, void *arg)
{
    fsr_call *call = arg;
    if (fsr_pg_result_status(res) != 0) {
        pf_fail_db(call, res, "count holders");
        return;
    }
    if (fsr_pg_result_rows(res) != 1) {
        pf_fail_shape(call, "count holders");
        return;
    }
    Portfolio__V1__CountHoldersResponse *resp = fsr_call_alloc(call, sizeof(*resp));
    portfolio__v1__count_holders_response__init(resp);
    resp->portfolios = strtoll(fsr_pg_result_getvalue(res, 0, 0), NULL, 10);
    portfolio_v1_holdings_service_count_holders_reply(call, resp);
}

/*
 * For the instrument services (internal callers) and admins only: the count spans every
 * client's portfolios.
 */
void pf_count_holders(fsr_call *call, const Portfolio__V1__CountHoldersRequest *req)
{
    fsr_caller who;
    if (fsr_caller_of(call, &who) != 0)
        return;
    if (who.role != FSR_ROLE_INTERNAL && who.role != FSR_ROLE_ADMIN) {
        fsr_call_fail(call, FSR_PERMISSION_DENIED, "CountHolders is for internal callers");
        return;
    }
    if (!is_instrument(req->instrument_type)) {
        fsr_call_fail_field(call, FSR_INVALID_ARGUMENT, "instrumentType",
                            "is required: EQUITY or BOND");
        return;
    }
    if (fsr_check_uuid(call, "instrumentId", req->instrument_id) != 0)
        return;
    fsr_pg_pool *pool = pf_pool(call);
    if (pool == NULL)
        return;
    const char *values[2] = { type_name(req->instrument_type), req->instrument_id };
    int rv = fsr_pg_query(pool, &pf_count_holders_stmt, 2, values, on_counted, call);
    if (rv != 0)
        fsr_call_fail_err(call, rv, "count holders");
}
