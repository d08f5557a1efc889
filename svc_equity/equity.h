/* SPDX-License-Identifier: MIT */
/* svc_equity internals: the handlers service.c binds, one .c per feature. */
#ifndef EQ_EQUITY_H
#define EQ_EQUITY_H

#include "fsr/analytics.h"
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

/* service.c: adds the gRPC services to |srv| (fsr_app_config.register_services). */
int eq_register_services(fsr_server *srv);

#endif /* EQ_EQUITY_H */
