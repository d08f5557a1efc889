/* SPDX-License-Identifier: MIT */
/* svc_portfolio internals: the handlers service.c binds, one .c per feature. */
#ifndef PF_PORTFOLIO_H
#define PF_PORTFOLIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsr/app.h"
#include "fsr/analytics.h"
#include "fsr/client.h"
#include "fsr/handler.h"
#include "fsr/pg.h"
#include "fsr/server.h"

#include "portfolio/v1/portfolio.pb-c.h"

/* portfolios.c: the portfolios resource (create, get, list). */
void pf_create_portfolio(fsr_call *call, const Portfolio__V1__CreatePortfolioRequest *req);
void pf_get_portfolio(fsr_call *call, const Portfolio__V1__GetPortfolioRequest *req);
void pf_list_portfolios(fsr_call *call, const Portfolio__V1__ListPortfoliosRequest *req);

/*
 * valuation.c: a portfolio priced as of a date -- the shared input of Calculate,
 * ListConstituents and Rebalance.  Holds every constituent plus every instrument named by
 * an instrument target but not held (quantity 0, constituent_id "").  Prices come from one
 * equity.v1 BatchQuotes and one fixed_income.v1 BatchAnalytics call, issued in parallel and
 * cached in the portfolio Redis.
 */
typedef struct pf_holding {
    const char *constituent_id; /* "" for a target not held */
    Common__V1__InstrumentType__Value instrument_type;
    const char *instrument_id;
    const char *symbol;
    const char *quantity_text; /* exact decimal as stored ("0" for a target not held) */
    double quantity;           /* shares, or face for a bond */
    bool priced;               /* false: no price on or before as_of (a NO_PRICE warning) */
    double price;              /* equity close; bond DIRTY price per 100 of face */
    double clean_price;        /* bond only */
    const char *price_date;    /* "YYYY-MM-DD" of the price ("" if !priced) */
    double lot_size;           /* equity lot size; bond: 1 (face units) */
    double market_value;       /* equity quantity x price; bond quantity / 100 x dirty */
    double weight;             /* market_value / total_market_value */
    /* Bonds (per 100 of face unless said otherwise). */
    double accrued;        /* per 100 */
    double accrued_amount; /* money: quantity / 100 x accrued */
    double yield, modified_duration, macaulay_duration, convexity;
    bool has_target;
    double target_weight;
    /* Also filled by valuation.c: */
    const char *currency;        /* the instrument's currency ("" if unknown) */
    const char *created_at;      /* RFC 3339 UTC when the holding was added ("" for a target) */
    const char *no_price_reason; /* client-safe reason when !priced, else "" */
    bool from_stale_cache;       /* priced from a cache its service could not refresh */
    /* Bond: remaining cash flows after as_of, per 100 of face (days since 1970-01-01). */
    const int32_t *cf_days;
    const double *cf_amounts;
    size_t n_cf;
} pf_holding;

typedef struct pf_valuation {
    const Portfolio__V1__Portfolio *portfolio; /* as stored (version, cash text, targets...) */
    const char *as_of;                         /* "YYYY-MM-DD" */
    double cash;
    double total_market_value; /* holdings + cash */
    pf_holding *holdings;
    size_t n_holdings;
    bool stale;         /* some price came from a cache the downstream could not refresh */
    double stale_age_s; /* age of the oldest such cached price */
    int32_t as_of_day;  /* as_of in days since 1970-01-01 */
} pf_valuation;

/*
 * Called once with the valuation (valid during the callback, in the call's arena), or with
 * NULL after |call| has been finished with an error (NOT_FOUND, UNAVAILABLE naming the
 * downstream service, ...).
 */
typedef void (*pf_valuation_cb)(fsr_call *call, const pf_valuation *v, void *arg);

/*
 * Loads portfolio |id| as seen by |who| (another client's portfolio is NOT_FOUND) and
 * prices it as of |as_of| ("YYYY-MM-DD"; NULL or "": today).
 */
void pf_valuation_load(fsr_call *call, const fsr_caller *who, const char *id, const char *as_of,
                       pf_valuation_cb cb, void *arg);

/*
 * ledger.c: applies transactions to a portfolio atomically -- every entry, the cash and
 * holdings they move, the version bump and the audit rows in one Postgres transaction.
 * Each request is validated as AddTransaction validates it (the portfolio id in the
 * requests is ignored; |id| is used).  |expected_version| 0 skips the version check.
 * Instruments are NOT checked against their services here (the caller does it).
 * Balances are checked after each entry in order (put sells before buys); a BUY of an
 * instrument not held creates the holding (with an empty symbol).  |n| must be >= 1.
 */
typedef void (*pf_ledger_cb)(fsr_call *call, Portfolio__V1__Transaction **written, size_t n,
                             int32_t new_version, void *arg);
/* On failure |call| is finished (FAILED_PRECONDITION for negative cash or holdings, 412 on
 * a stale version, ...) and |cb| is not called. */
void pf_ledger_apply(fsr_call *call, const fsr_caller *who, const char *id,
                     int32_t expected_version,
                     const Portfolio__V1__AddTransactionRequest *const *txs, size_t n,
                     pf_ledger_cb cb, void *arg);

/*
 * market_cache.c: per loop thread state (fsr_app_config.thread_init/_dispose, set in
 * main.c): the channels to the equity and fixed-income services and, on one thread per
 * process, the subscription to price.updated / bond.updated that invalidates the cache.
 * Returns the value of ctx->user (a feature needing more per-thread state adds it there).
 */
void *pf_thread_init(fsr_app_ctx *ctx);
void pf_thread_dispose(fsr_app_ctx *ctx);

/*
 * The calling thread's channel to the equity service (EQUITY_SERVICE_ADDR, default
 * localhost:8001) or the fixed-income service (FI_SERVICE_ADDR, localhost:8002); NULL if the
 * address is unusable (logged).  Owned by the thread: never free it.
 */
struct fsr_channel *pf_equity_channel(fsr_call *call);
struct fsr_channel *pf_fi_channel(fsr_call *call);

/* calculate.c: valuation (Calculate) and holdings with their valuation (ListConstituents). */
void pf_calculate(fsr_call *call, const Portfolio__V1__CalculateRequest *req);
void pf_list_constituents(fsr_call *call, const Portfolio__V1__ListConstituentsRequest *req);

/*
 * ---- Shared by the portfolio writes (portfolios.c, constituents.c, ledger.c,
 * idempotency.c, instruments.c) --------------------------------------------------------------
 */

/* A timestamptz column as RFC 3339 UTC text, whatever the session's DateStyle and TimeZone. */
#define PF_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/*
 * The columns pf_portfolio_from_row() reads, in order, from a query over portfolios (or a
 * function returning its row type).
 */
#define PF_PORTFOLIO_COLS                                                                          \
    "id, coalesce(client_id::text, ''), name, base_currency, cash::text, targets::text, "          \
    "coalesce(benchmark::text, ''), version, allow_negative, " PF_TS("created_at") ", " PF_TS(     \
        "updated_at")

/*
 * Row |row| of |res| (PF_PORTFOLIO_COLS) as a Portfolio in the call's arena; NULL if the row
 * is not what the query promised (or its stored JSON no longer parses).
 */
Portfolio__V1__Portfolio *pf_portfolio_from_row(fsr_call *call, const fsr_pg_result *res, int row);

/* The thread's database pool, or NULL after finishing |call| with UNAVAILABLE. */
fsr_pg_pool *pf_pool(fsr_call *call);

/*
 * Finishes |call| for a failed statement.  The SQLSTATEs of class PF raised by the
 * functions of sql/005_portfolio_writes.sql become their gRPC codes with the function's
 * (client-safe) message: PF404 NOT_FOUND, PF409 ALREADY_EXISTS, PF412 and PF400
 * FAILED_PRECONDITION (PF412's message starts "version mismatch", which the gateway turns
 * into HTTP 412), PF422 INVALID_ARGUMENT naming the field before ": ", PF499 ABORTED.
 * Anything else goes through fsr_call_fail_err() (logged; a generic message).
 */
void pf_fail_db(fsr_call *call, const fsr_pg_result *res, const char *what);

/* Logs an unexpected result shape and finishes |call| with INTERNAL. */
void pf_fail_shape(fsr_call *call, const char *what);

/*
 * The version a change expects: |body_version| (the request's `version`) or the If-Match
 * metadata, which the gateway forwards from the header ("3", 3 or W/"3").  Both given and
 * different, a malformed If-Match, or a negative version is INVALID_ARGUMENT naming
 * "version" or "If-Match"; so is neither given when |required|.  Returns 0 and sets *|out|
 * (0: no check), or -1 after finishing |call|.
 */
int pf_version_resolve(fsr_call *call, int32_t body_version, bool required, int32_t *out);

/*
 * idempotency.c: Idempotency-Key for creating writes (CreatePortfolio, AddConstituent,
 * AddTransaction; usable by CreateClient and Rebalance with execute).
 *
 * The key is the gRPC metadata `idempotency-key` (the gateway forwards the HTTP header):
 * 1..255 printable ASCII characters, else INVALID_ARGUMENT naming "Idempotency-Key".  Keys
 * are scoped per caller (x-client-id; "" for internal callers) and kept 24 hours
 * (PF_IDEM_TTL): within that time a retry with the same key and the same request (SHA-256
 * of the packed request message, the method included) gets the stored response and writes
 * nothing; the same key with another request is ALREADY_EXISTS (HTTP 409).  After 24 hours
 * the key is free again.  Old rows are ignored, then overwritten on reuse; deleting them
 * for good is left to a periodic svc_worker job (not written yet; idempotency_keys_created_idx
 * serves it).  Failed calls store nothing: their retry runs again.
 *
 * Usage: validate the request, then pf_idem_begin(); |run| does the write in a transaction
 * and, instead of COMMIT and reply, hands the transaction and the response to
 * pf_idem_commit(), which records the response in that same transaction, commits and
 * replies.  Concurrent duplicates are serialised by the table's primary key: the loser's
 * insert waits for the winner's commit, finds the row, rolls its own write back and
 * answers from the stored row.
 */
#define PF_IDEM_TTL "24 hours"
typedef struct pf_idem pf_idem;

/* |idem| is NULL when the request carried no key (pf_idem_commit() accepts NULL). */
typedef void (*pf_idem_run_cb)(fsr_call *call, pf_idem *idem, void *arg);

/*
 * Checks the key of |call| (request |req|, borrowed for the call's life), answers a stored
 * response (unpacked as |resp_desc|) or ALREADY_EXISTS, or else calls |run| exactly once.
 * On any failure |call| is finished and |run| is not called.
 */
void pf_idem_begin(fsr_call *call, const fsr_caller *who, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, pf_idem_run_cb run, void *arg);

/*
 * Ends the write's transaction on |conn| (takes it over: committed or rolled back) and
 * finishes |call|: records |resp| under |idem| (if not NULL), commits and replies |resp|;
 * or, when a concurrent duplicate won, rolls back and replies the stored response.
 */
void pf_idem_commit(pf_idem *idem, fsr_call *call, fsr_pg_conn *conn, const ProtobufCMessage *resp);

/*
 * A write of one statement: BEGIN, |stmt| with |values|, |build| turns its result into the
 * response (NULL: an unexpected shape, INTERNAL), then pf_idem_commit() -- or, when |done|
 * is set (|idem| must then be NULL), COMMIT and |done| instead of a reply.  A statement
 * failure rolls back and finishes the call through pf_fail_db().
 */
typedef ProtobufCMessage *(*pf_write_build_cb)(fsr_call *call, const fsr_pg_result *res, void *arg);
typedef void (*pf_write_done_cb)(fsr_call *call, ProtobufCMessage *resp, void *arg);
typedef struct pf_write {
    const fsr_pg_stmt *stmt;
    int nparams;
    const char *const *values; /* the array is copied; the strings must live as long as |call| */
    pf_write_build_cb build;
    pf_write_done_cb done;
    void *arg;
    const char *what; /* "add transaction": logs and generic error messages */
} pf_write;
void pf_write_run(fsr_call *call, pf_idem *idem, const pf_write *w);

/* instruments.c (channels: pf_equity_channel() and pf_fi_channel() of market_cache.c). */

/*
 * Called with the instrument's display symbol (equity symbol; bond ISIN, or name when it
 * has none), in the call's arena.
 */
typedef void (*pf_instrument_cb)(fsr_call *call, const char *symbol, void *arg);

/*
 * Checks with one RPC (equity.v1.EquityService/GetEquity or
 * fixed_income.v1.FixedIncomeService/GetBond) that instrument |id| of |type| exists.  On
 * failure |call| is finished -- NOT_FOUND naming the instrument, UNAVAILABLE naming the
 * service ("equity service unavailable") -- and |cb| is not called.
 */
void pf_instrument_check(fsr_call *call, Common__V1__InstrumentType__Value type, const char *id,
                         pf_instrument_cb cb, void *arg);

/*
 * constituents.c: whether portfolio |id| (as |who| sees it) holds an instrument, read before
 * a write that may have to check the instrument by RPC (never inside its transaction).
 * NOT_FOUND finishes |call| when the portfolio is missing or another client's.
 */
typedef void (*pf_probe_cb)(fsr_call *call, bool allow_negative, bool held, void *arg);
void pf_holding_probe(fsr_call *call, const fsr_caller *who, const char *id,
                      Common__V1__InstrumentType__Value type, const char *instrument_id,
                      pf_probe_cb cb, void *arg);

/* portfolios.c: the rest of the portfolios resource. */
void pf_update_portfolio(fsr_call *call, const Portfolio__V1__UpdatePortfolioRequest *req);
void pf_delete_portfolio(fsr_call *call, const Portfolio__V1__DeletePortfolioRequest *req);

/* constituents.c: holdings, and HoldingsService.CountHolders for the instrument services. */
void pf_add_constituent(fsr_call *call, const Portfolio__V1__AddConstituentRequest *req);
void pf_remove_constituent(fsr_call *call, const Portfolio__V1__RemoveConstituentRequest *req);
void pf_count_holders(fsr_call *call, const Portfolio__V1__CountHoldersRequest *req);

/* ledger.c: the transaction ledger. */
void pf_add_transaction(fsr_call *call, const Portfolio__V1__AddTransactionRequest *req);
void pf_list_transactions(fsr_call *call, const Portfolio__V1__ListTransactionsRequest *req);

/*
 * Like pf_ledger_apply(), for a write that answers with its own response (Rebalance with
 * execute): |build| makes the response from the entries written, inside the transaction;
 * the response is recorded under |idem| (may be NULL), committed and replied.  |build|
 * returning NULL rolls back and fails with INTERNAL.
 */
typedef ProtobufCMessage *(*pf_ledger_build_cb)(fsr_call *call,
                                                Portfolio__V1__Transaction **written, size_t n,
                                                int32_t new_version, void *arg);
void pf_ledger_apply_reply(fsr_call *call, const fsr_caller *who, const char *id,
                           int32_t expected_version,
                           const Portfolio__V1__AddTransactionRequest *const *txs, size_t n,
                           pf_idem *idem, pf_ledger_build_cb build, void *arg);

/* service.c: adds the gRPC services to |srv| (fsr_app_config.register_services). */
int pf_register_services(fsr_server *srv);

/*
 * analytics.c: the stateless PortfolioAnalyticsService (POST /analytics/twr, /xirr,
 * /attribution, /rebalance) over fsr/analytics.h, every input checked with a field-named
 * INVALID_ARGUMENT and no NaN or infinity ever in a reply.
 */
void pf_twr(fsr_call *call, const Portfolio__V1__TwrRequest *req);
void pf_xirr(fsr_call *call, const Portfolio__V1__XirrRequest *req);
void pf_attribution(fsr_call *call, const Portfolio__V1__AttributionRequest *req);
void pf_rebalance_plan(fsr_call *call, const Portfolio__V1__RebalancePlanRequest *req);

/*
 * analytics.c: the rebalancing rule of RebalancePlan and Rebalance (one function, so the
 * stateless and the stored rebalance cannot drift apart).  fsr_an_rebalance() gives drift,
 * the 5/25 breaches, whole-lot target quantities and the FULL/BAND trades; then:
 *  - buy only: with |cash_to_invest| > 0 nothing is sold (negative trades become 0);
 *  - cash never goes negative: sells come first, and when the buys cost more than cash +
 *    cash_to_invest + the sells' proceeds, every buy becomes floor(s x trade / lot) x lot
 *    with s = available / cost; if double rounding still leaves cash below 0, buys lose
 *    one lot at a time from the last position backwards.
 * trade, notional, post_quantity, post_weight and the post-trade cash reflect both;
 * target_quantity stays floor(target x V / (price x lot)) x lot.  *|buy_scale| (may be NULL)
 * gets s, or 1 when nothing was scaled.  Returns 0 or an FSR_AN_E_* of fsr_an_rebalance().
 */
int pf_rebalance_core(const fsr_an_rebal_position *pos, size_t k, double cash,
                      double cash_to_invest, fsr_an_rebal_mode mode, double band_abs,
                      double band_rel, fsr_an_rebal_result *res, fsr_an_rebal_total *total,
                      double *buy_scale);
/* True if every number of a plan is finite (inputs near DBL_MAX can overflow). */
bool pf_rebalance_finite(const fsr_an_rebal_result *res, size_t k, const fsr_an_rebal_total *t);
/* drift_rel as replied: 0 where it is undefined (target 0), never NaN or an infinity. */
double pf_drift_rel_json(double drift_rel);
/* Request mode (UNSPECIFIED = FULL) and bands (absent: 0.05 / 0.25, each finite >= 0);
 * -1 after failing |call| naming "mode", "bandAbs" or "bandRel". */
int pf_rebalance_mode_resolve(fsr_call *call, int mode, fsr_an_rebal_mode *out);
int pf_rebalance_bands_resolve(fsr_call *call, const Google__Protobuf__DoubleValue *abs_v,
                               const Google__Protobuf__DoubleValue *rel_v, double *band_abs,
                               double *band_rel);

/* rebalance.c: POST /portfolios/{id}/rebalance (proposal, or execution through the ledger). */
void pf_rebalance(fsr_call *call, const Portfolio__V1__RebalanceRequest *req);

/*
 * clients.c: ClientService -- clients and API keys (admin only) and Authenticate (the
 * gateway's key lookup).  ADMIN_API_KEY authenticates as PF_BOOTSTRAP_ADMIN_ID, a client
 * row inserted by sql/004_auth.sql.
 */
#define PF_BOOTSTRAP_ADMIN_ID "00000000-0000-4000-8000-000000000001"
void pf_create_client(fsr_call *call, const Portfolio__V1__CreateClientRequest *req);
void pf_list_clients(fsr_call *call, const Portfolio__V1__ListClientsRequest *req);
void pf_get_client(fsr_call *call, const Portfolio__V1__GetClientRequest *req);
void pf_create_key(fsr_call *call, const Portfolio__V1__CreateKeyRequest *req);
void pf_revoke_key(fsr_call *call, const Portfolio__V1__RevokeKeyRequest *req);
void pf_authenticate(fsr_call *call, const Portfolio__V1__AuthenticateRequest *req);

/*
 * calc_async.c: Calculate with "async": the caller must see portfolio req->id; enqueues a
 * "pf.calculate" job (svc_worker/jobs_pf_calc.c) and replies with the QUEUED job.  And the
 * GetJob handler: a pf.calculate job only for the client it was made for (and admin/internal
 * callers); a `client` caller sees no other job; then fsr_jobs_get_job().
 */
void pf_calculate_async(fsr_call *call, const fsr_caller *who,
                        const Portfolio__V1__CalculateRequest *req);
void pf_get_job(fsr_call *call, const Jobs__V1__GetJobRequest *req);

/*
 * performance.c: GET /portfolios/{id}/performance, over the daily snapshots
 * (sql/007_snapshots.sql) computed on demand.  pf_snapshot_on_price_event() is called by
 * market_cache.c's price.updated / bond.updated subscriber with the instrument id and the
 * event's JSON ({"id","from","to"}): it deletes the stored days from `from` on of every
 * portfolio whose ledger names the instrument (all of them when `from` is missing).
 */
void pf_get_performance(fsr_call *call, const Portfolio__V1__GetPerformanceRequest *req);
void pf_snapshot_on_price_event(fsr_app_ctx *ctx, const char *id, const char *msg);

#endif /* PF_PORTFOLIO_H */
