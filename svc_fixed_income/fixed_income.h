/* SPDX-License-Identifier: MIT */
/* svc_fixed_income internals: the handlers service.c binds, one .c per feature. */
#ifndef FI_FIXED_INCOME_H
#define FI_FIXED_INCOME_H

#include "fsr/server.h"

#include "fsr/pg.h"

#include "fixed_income/v1/fixed_income.pb-c.h"

/*
 * Timestamps are formatted in SQL as RFC 3339 UTC and dates as YYYY-MM-DD, so the text does
 * not depend on the session's DateStyle or TimeZone.
 */
#define FI_TS(col)   "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define FI_DATE(col) "to_char(" col ", 'YYYY-MM-DD')"

/*
 * Every query returns these columns, in this order (see fi_from_row()).  face travels as
 * text (exact); coupon_rate as float8 text, which Postgres prints with the shortest digits
 * that read back to the same double.
 */
#define FI_COLS                                                                                    \
    "id, coalesce(isin, ''), name, issuer, currency, face::text, coupon_rate, frequency, "         \
    "day_count, " FI_DATE("issue_date") ", " FI_DATE("maturity_date") ", " FI_TS(                  \
        "created_at") ", " FI_TS("updated_at")
enum {
    COL_ID,
    COL_ISIN,
    COL_NAME,
    COL_ISSUER,
    COL_CURRENCY,
    COL_FACE,
    COL_COUPON_RATE,
    COL_FREQUENCY,
    COL_DAY_COUNT,
    COL_ISSUE_DATE,
    COL_MATURITY_DATE,
    COL_CREATED_AT,
    COL_UPDATED_AT,
    COL_COUNT
};

/*
 * Copies row |row| of a result whose first COL_COUNT columns are FI_COLS into a new Bond
 * in the call's arena; NULL if malformed.
 */
FixedIncome__V1__Bond *fi_from_row(fsr_call *call, const fsr_pg_result *res, int row);
/* Logs a failed statement's cause and finishes |call| with the mapped code. */
void fi_fail_db(fsr_call *call, const fsr_pg_result *res, const char *what);
/* The thread's pool, or NULL after finishing |call| UNAVAILABLE. */
fsr_pg_pool *fi_pool_of(fsr_call *call);

/* bonds.c: the bonds resource (create, get, list, update, delete). */
void fi_create_bond(fsr_call *call, const FixedIncome__V1__CreateBondRequest *req);
void fi_get_bond(fsr_call *call, const FixedIncome__V1__GetBondRequest *req);
void fi_list_bonds(fsr_call *call, const FixedIncome__V1__ListBondsRequest *req);
void fi_update_bond(fsr_call *call, const FixedIncome__V1__UpdateBondRequest *req);
void fi_delete_bond(fsr_call *call, const FixedIncome__V1__DeleteBondRequest *req);

/* quotes.c: daily quotes (upsert, list). */
void fi_upsert_quotes(fsr_call *call, const FixedIncome__V1__UpsertQuotesRequest *req);
void fi_list_quotes(fsr_call *call, const FixedIncome__V1__ListQuotesRequest *req);
/*
 * Publishes bond.updated {"id","from","to"} (or {"id"} when |from| is NULL) on the shared
 * Redis; best effort: failures are logged.
 */
void fi_publish_updated(fsr_call *call, const char *id, const char *from, const char *to);

/* analytics.c: prices and risk, stateless and of stored bonds. */
void fi_bond_analytics(fsr_call *call, const FixedIncome__V1__BondAnalyticsRequest *req);
void fi_get_bond_analytics(fsr_call *call, const FixedIncome__V1__GetBondAnalyticsRequest *req);
void fi_batch_analytics(fsr_call *call, const FixedIncome__V1__BatchAnalyticsRequest *req);

/* service.c: adds the gRPC services to |srv| (fsr_app_config.register_services). */
int fi_register_services(fsr_server *srv);

#endif /* FI_FIXED_INCOME_H */
