/* SPDX-License-Identifier: MIT */
/*
 * svc_portfolio's market data (market_cache.c): the prices of many instruments as of a date
 * from one equity.v1 BatchQuotes and one fixed_income.v1 BatchAnalytics call, issued in
 * parallel, behind a cache in the portfolio Redis (docs/ARCHITECTURE.md, "Portfolio
 * valuation cache").
 */
#ifndef PF_MARKET_H
#define PF_MARKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsr/server.h"

#include "common/v1/common.pb-c.h"
#include "equity/v1/equity.pb-c.h"
#include "fixed_income/v1/fixed_income.pb-c.h"

/* One instrument to price: the caller sets |type| and |id|, pf_market_fetch() the rest. */
typedef struct pf_mkt_item {
    Common__V1__InstrumentType__Value type; /* EQUITY or BOND */
    char *id;                               /* lower-case UUID */

    /*
     * Results, in the call's arena.  |eq| (equities) or |bond| (bonds) is the service's item
     * (NULL only when nothing at all could be had, which fails the call instead); its
     * error_code is non-zero when the service could not price the instrument (unknown id,
     * no price on or before as_of).  Only the fields a valuation uses are kept: equity
     * {id, symbol, currency, lot_size}, quote {date, close}; bond {id, name, isin, currency,
     * face}, analytics {settlement_date, quote_date, accrued, clean/dirty price, yield,
     * durations, convexity, cashflows {date, amount}}.
     */
    const Equity__V1__EquityMarketData *eq;
    const FixedIncome__V1__BatchAnalyticsItem *bond;
    bool stale;   /* came from a cache entry its service could not refresh */
    double age_s; /* then: seconds since that entry was fetched */
} pf_mkt_item;

/*
 * Called once: |ok| true with every item filled, or false after |call| has been finished
 * with an error (UNAVAILABLE "<service> unavailable" when a service failed and some of its
 * instruments had no cached value at all).
 */
typedef void (*pf_mkt_cb)(fsr_call *call, bool ok, void *arg);

/*
 * Prices the |n| |items| as of |as_of| ("YYYY-MM-DD"): one MGET on the portfolio Redis, then
 * the misses from their services (one BatchQuotes and one BatchAnalytics call, in
 * parallel, with a deadline derived from |call|'s), written back to the cache.  |cb| runs
 * exactly once, never from inside this function.  |items| must live until then.
 */
void pf_market_fetch(fsr_call *call, const char *as_of, pf_mkt_item *items, size_t n, pf_mkt_cb cb,
                     void *arg);

#endif /* PF_MARKET_H */
