/* SPDX-License-Identifier: MIT */
/* svc_equity internals: the handlers service.c binds, one .c per feature. */
#ifndef EQ_EQUITY_H
#define EQ_EQUITY_H

#include "fsr/analytics.h"
#include "fsr/app.h"
#include "fsr/redis.h"
#include "fsr/server.h"

#include "equity/v1/equity.pb-c.h"

/* equities.c: the equities resource (create, get, list). */
void eq_create_equity(fsr_call *call, const Equity__V1__CreateEquityRequest *req);
void eq_get_equity(fsr_call *call, const Equity__V1__GetEquityRequest *req);
void eq_list_equities(fsr_call *call, const Equity__V1__ListEquitiesRequest *req);

/* market.c: bars, dividends, splits, quotes and GetAnalytics on the stored data. */
void eq_upsert_prices(fsr_call *call, const Equity__V1__UpsertPricesRequest *req);
void eq_list_prices(fsr_call *call, const Equity__V1__ListPricesRequest *req);
void eq_add_dividend(fsr_call *call, const Equity__V1__AddDividendRequest *req);
void eq_list_dividends(fsr_call *call, const Equity__V1__ListDividendsRequest *req);
void eq_add_split(fsr_call *call, const Equity__V1__AddSplitRequest *req);
void eq_list_splits(fsr_call *call, const Equity__V1__ListSplitsRequest *req);
void eq_get_quote(fsr_call *call, const Equity__V1__GetQuoteRequest *req);
void eq_get_analytics(fsr_call *call, const Equity__V1__GetAnalyticsRequest *req);

/*
 * market.c: adjusts a series to today's shares (what GetAnalytics and BatchQuotes use): each
 * of the |np| closes |pc| (dated |pd|) and |nd| dividends per share |da| (ex-dated |dd|)
 * dated before a split's ex-date |sd|[k] is divided by its ratio |sr|[k] (new shares per
 * old share), for every one of the |ns| splits.
 */
void eq_split_adjust(const int32_t *pd, double *pc, size_t np, const int32_t *dd, double *da,
                     size_t nd, const int32_t *sd, const double *sr, size_t ns);

/* batch.c: BatchQuotes, quotes and aligned windows of many equities in one statement. */
void eq_batch_quotes(fsr_call *call, const Equity__V1__BatchQuotesRequest *req);

/* analytics.c: the stateless EquityAnalyticsService and the shared metrics builder. */
void eq_series_analytics(fsr_call *call, const Equity__V1__SeriesAnalyticsRequest *req);
void eq_covariance(fsr_call *call, const Equity__V1__CovarianceRequest *req);

/* Request field names eq_metrics_dated() blames for each kind of input error. */
typedef struct eq_an_fields {
    const char *prices;          /* the series' prices (dates, prices, too short) */
    const char *dividends;       /* its dividends */
    const char *bench_prices;    /* the benchmark's prices */
    const char *bench_dividends; /* the benchmark's dividends */
    const char *overlap;         /* fewer than two common dates */
} eq_an_fields;

/*
 * Every per-series metric of |s| (vs |bench|, may be NULL), aligned on common dates, with
 * calendar-year, MAX and the requested period returns.  On an input error finishes |call|
 * with INVALID_ARGUMENT naming the field of |f| and returns NULL.
 */
Common__V1__SeriesMetrics *eq_metrics_dated(fsr_call *call, const fsr_an_series *s,
                                            const fsr_an_series *bench, fsr_an_basis basis,
                                            double rf, Common__V1__Period **periods,
                                            size_t n_periods, const eq_an_fields *f);

/* Helpers shared with market.c: each finishes |call| naming the field and returns -1. */
int eq_basis_resolve(fsr_call *call, int basis, fsr_an_basis *out);
int eq_rf_resolve(fsr_call *call, const Google__Protobuf__DoubleValue *v, double *out);
/* Day serial of "YYYY-MM-DD"; -1 if not a date (|call| untouched). */
int eq_day_parse(const char *s, int32_t *day);

/* equities.c: UpdateEquity and DeleteEquity (refused while a portfolio holds the equity). */
void eq_update_equity(fsr_call *call, const Equity__V1__UpdateEquityRequest *req);
void eq_delete_equity(fsr_call *call, const Equity__V1__DeleteEquityRequest *req);
/* fsr_app_config.thread_dispose: the portfolio channel, WatchQuotes state (watch.c). */
void eq_thread_dispose(fsr_app_ctx *ctx);

/* imports.c: ImportPrices stores the CSV and enqueues the worker job equity.import_prices. */
void eq_import_prices(fsr_call *call, const Equity__V1__ImportPricesRequest *req);
#define EQ_IMPORT_JOB_TYPE "equity.import_prices"

/* watch.c: WatchQuotes (server streaming); the thread's watcher state, freed at exit. */
void eq_watch_quotes(fsr_call *call, const Equity__V1__WatchQuotesRequest *req);
void eq_watch_thread_dispose(void);

/* covariance.c: GetCovariance on stored equities. */
void eq_get_covariance(fsr_call *call, const Equity__V1__GetCovarianceRequest *req);

/*
 * analytics.c: covariance and correlation of the |k| dated series |s| aligned on their
 * common dates (what Covariance does with dated prices), over the last |last| aligned
 * returns (0: all), with the portfolio risk of |weights| if |n_weights| > 0 (== k).  Sets
 * start_date and end_date; o->ids (room for k) is left to the caller.  On an input error
 * finishes |call| naming |f_series| or |f_weights| and returns NULL.
 */
Common__V1__CovarianceResult *eq_covariance_dated(fsr_call *call, const fsr_an_series *s, size_t k,
                                                  fsr_an_basis basis, size_t last, double *weights,
                                                  size_t n_weights, const char *f_series,
                                                  const char *f_weights);

/*
 * market.c: loads equity |id|'s closes in |from|..|to| and its dividends up to |to| (NULL:
 * unbounded), split-adjusted as GetAnalytics reads them, into *|out| (call's arena); then
 * |cb| runs once with status 0, -ENOENT (no such equity) or the failed statement's status
 * (the call is left unfinished either way).  Returns 0, or (|cb| never runs, the call is
 * not finished) FSR_E_CLOSED when the thread has no database pool, or the error of
 * fsr_pg_query().
 */
typedef void (*eq_series_cb)(fsr_call *call, int status, void *arg);
int eq_series_load(fsr_call *call, const char *id, const char *from, const char *to,
                   fsr_an_series *out, eq_series_cb cb, void *arg);

/*
 * The quote cache (the equity service's own Redis): eq:quote:<id> holds the packed Quote
 * (TTL 60 s) and eq:quotegen:<id> a generation counter that every price or equity write
 * INCRs, after its commit and before it deletes eq:quote:<id>.  GetQuote reads both, queries
 * Postgres on a miss, and caches its answer only if the generation is still the one it read
 * (a Lua script: compare and SET atomically), so a read that raced a write can never put the
 * older quote back.  svc_worker's price import does the same invalidation (eq_import.c).
 */
#define EQ_QUOTE_KEY_PREFIX "eq:quote:"
#define EQ_QUOTE_GEN_PREFIX "eq:quotegen:"
#define EQ_QUOTE_GEN_TTL_S  86400

/*
 * market.c: bumps the generation of equity |id|'s cached quote and deletes it (one Lua
 * script), then |cb| (may be NULL) runs with the Redis status.  Returns 0 (|cb| will run),
 * or the error of fsr_redis_command() (FSR_E_CLOSED without a cache connection).
 */
int eq_quote_invalidate(fsr_app_ctx *ctx, const char *id, fsr_redis_cb cb, void *arg);

/* service.c: adds the gRPC services to |srv| (fsr_app_config.register_services). */
int eq_register_services(fsr_server *srv);

#endif /* EQ_EQUITY_H */
