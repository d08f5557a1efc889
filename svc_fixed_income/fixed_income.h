/* SPDX-License-Identifier: MIT */
/* svc_fixed_income internals: the handlers service.c binds, one .c per feature. */
#ifndef FI_FIXED_INCOME_H
#define FI_FIXED_INCOME_H

#include "fsr/server.h"

#include "fsr/client.h"
#include "fsr/pg.h"
#include "fsr/redis.h"

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
        "created_at") ", " FI_TS("updated_at") ", coalesce(" FI_DATE("first_coupon_date") ", '')"
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
    COL_FIRST_COUPON_DATE,
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

/*
 * Per loop thread (fsr_app_ctx.user, made by main.c's thread_init): the channel to the
 * portfolio service (PORTFOLIO_SERVICE_ADDR), which DeleteBond asks whether a bond is held.
 * NULL when the address is unusable (DeleteBond then answers UNAVAILABLE).
 */
typedef struct fi_thread {
    fsr_channel *portfolio;
} fi_thread;

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

/*
 * cache.c: the pricing inputs of a stored bond (its terms and its latest quote) cached in
 * the service's Redis under fi:quote:<id>, guarded by a generation counter fi:qgen:<id>.
 *
 * Every write that changes what the entry holds (a quote upsert, a bond update or delete)
 * commits to Postgres first and then calls fi_cache_invalidate(), which atomically bumps
 * the generation and deletes the entry.  A reader that misses reads the entry and the
 * generation in one MGET *before* its SQL, and caches what Postgres returned only if the
 * generation is still the one it saw (fi_cache_fill(), one Lua script): a write that
 * committed after the reader's snapshot bumps the generation after its commit, hence after
 * the reader's MGET, so the stale row is never cached; a write that committed before the
 * snapshot is in the row.  Ids in keys are lower-cased so every spelling of a UUID meets
 * the same keys.
 */
#define FI_CACHE_TTL_S 300

/* One bond's cached pricing inputs, in the call's arena. */
typedef struct fi_cached {
    FixedIncome__V1__Bond *bond;
    FixedIncome__V1__BondQuote *latest; /* the latest quote, NULL when the bond has none */
} fi_cached;

/*
 * Bumps bond |id|'s generation and deletes its entry, in one script.  |cb| (may be NULL)
 * runs once, later, as for fsr_redis_command().  Returns 0, or FSR_E_CLOSED when the
 * service has no Redis or it is unreachable (|cb| then never runs), or another
 * fsr_redis_command() error.
 */
int fi_cache_invalidate(fsr_call *call, const char *id, fsr_redis_cb cb, void *arg);

/*
 * MGET of the entries of the |n| bonds |ids|, then their generations: the reply is an
 * array of 2 * |n| elements (entry i, then generation i at |n| + i; nil when absent).
 * Same contract as fsr_redis_command().
 */
int fi_cache_get(fsr_call *call, const char *const *ids, size_t n, fsr_redis_cb cb, void *arg);

/*
 * Decodes entry |s| (|len| bytes, from fi_cache_get()'s reply) into |out|, allocated in the
 * call's arena.  Returns 0, or -1 for a malformed entry (treat as a miss).
 */
int fi_cache_decode(fsr_call *call, const char *s, size_t len, fi_cached *out);

/*
 * Caches the entries |e| of |n| bonds (ids from their Bond), each only if its generation is
 * still |gens|[i] ("" = the generation was absent), fire and forget.  Failures are logged.
 */
void fi_cache_fill(fsr_call *call, const fi_cached *e, const char *const *gens, size_t n);

/* analytics.c: prices and risk, stateless and of stored bonds. */
void fi_bond_analytics(fsr_call *call, const FixedIncome__V1__BondAnalyticsRequest *req);
void fi_get_bond_analytics(fsr_call *call, const FixedIncome__V1__GetBondAnalyticsRequest *req);
void fi_batch_analytics(fsr_call *call, const FixedIncome__V1__BatchAnalyticsRequest *req);

/* history.c: BatchPriceHistory, stored bonds' priced quotes over a window. */
void fi_batch_price_history(fsr_call *call, const FixedIncome__V1__BatchPriceHistoryRequest *req);

/* service.c: adds the gRPC services to |srv| (fsr_app_config.register_services). */
int fi_register_services(fsr_server *srv);

#endif /* FI_FIXED_INCOME_H */
