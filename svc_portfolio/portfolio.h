/* SPDX-License-Identifier: MIT */
/* svc_portfolio internals: the handlers service.c binds, one .c per feature. */
#ifndef PF_PORTFOLIO_H
#define PF_PORTFOLIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsr/handler.h"
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
 */
typedef void (*pf_ledger_cb)(fsr_call *call, Portfolio__V1__Transaction **written, size_t n,
                             int32_t new_version, void *arg);
/* On failure |call| is finished (FAILED_PRECONDITION for negative cash or holdings, 412 on
 * a stale version, ...) and |cb| is not called. */
void pf_ledger_apply(fsr_call *call, const fsr_caller *who, const char *id,
                     int32_t expected_version,
                     const Portfolio__V1__AddTransactionRequest *const *txs, size_t n,
                     pf_ledger_cb cb, void *arg);

/* service.c: adds the gRPC services to |srv| (fsr_app_config.register_services). */
int pf_register_services(fsr_server *srv);

#endif /* PF_PORTFOLIO_H */
