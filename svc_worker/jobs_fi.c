/* SPDX-License-Identifier: MIT */
/*
 * fi.eod_reprice: the fixed income end-of-day repricing, scheduled daily (scheduler.c).
 *
 * For the run date D (payload {"run_date": "YYYY-MM-DD"}; today, UTC, when absent) every
 * bond outstanding on D (issued on or before D, maturing after it) is priced from its
 * latest quote on or before D, settling on D: a clean price quote gives the yield and
 * everything else (fi_bond_price_from_clean), a yield quote the prices (fi_bond_price).
 * These are the numbers BatchAnalytics answers for settlementDate D, from the same bond
 * math (svc_fixed_income's fi_math library, linked here).  Bonds without a quote, bonds not
 * outstanding and bonds the math refuses are counted and skipped.
 *
 * The rows for D in bond_eod_analytics (svc_fixed_income/sql/007_bond_eod.sql) are then
 * replaced by one statement inside the job's transaction: upserted where a value changed,
 * inserted where new, deleted for bonds no longer priced.  So the date's rows and the job's
 * SUCCEEDED commit together, and re-running a date leaves identical rows (computed_at
 * included: it moves only with a value).  The job result reports every count.
 *
 * Pricing is pure CPU, a few microseconds per bond (a clean price quote needs the yield
 * solved), so it runs on the loop: 100,000 bonds hold it for about a second, once a day
 * (docs/PERFORMANCE.md, "Worker").  The log line says where the time went.
 */
#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "fsr/log.h"

#include "bondmath.h"

/* Failed bonds named in the result (the count covers all of them). */
#define EOD_ERRORS_SHOWN 10

/*
 * Every bond with its terms (first_coupon_date: svc_fixed_income/sql/004_first_coupon.sql)
 * and its latest quote on or before $1 (NULLs when none), in id order: one primary-key
 * probe of bond_quotes per bond.
 */
static const fsr_pg_stmt st_eod_bonds = {
    "wk_fi_eod_bonds",
    "SELECT b.id::text, b.coupon_rate, b.frequency, b.day_count,"
    " to_char(b.issue_date, 'YYYY-MM-DD'), to_char(b.maturity_date, 'YYYY-MM-DD'),"
    " to_char(b.first_coupon_date, 'YYYY-MM-DD'),"
    " to_char(q.date, 'YYYY-MM-DD'), q.clean_price::text, q.yield"
    " FROM bonds b LEFT JOIN LATERAL (SELECT date, clean_price, yield FROM bond_quotes"
    "  WHERE bond_id = b.id AND date <= $1::date ORDER BY date DESC LIMIT 1) q ON true"
    " ORDER BY b.id",
};

enum {
    C_ID,
    C_COUPON,
    C_FREQ,
    C_DAY_COUNT,
    C_ISSUE,
    C_MATURITY,
    C_FIRST_COUPON,
    C_Q_DATE,
    C_Q_CLEAN,
    C_Q_YIELD,
    C_COUNT
};

/*
 * Replaces the rows of date $1: the priced bonds come as arrays ($2..$12).  An unchanged
 * row is not written at all (the WHERE of DO UPDATE), which is what keeps a re-run's rows
 * identical.  The DELETE sees the table as it was before the INSERT (one snapshot per
 * statement) and touches only bonds not in $2, so the two never meet.  Reply: inserted,
 * updated and removed counts.
 */
static const fsr_pg_stmt st_eod_replace = {
    "wk_fi_eod_replace",
    "WITH v AS (SELECT * FROM unnest($2::uuid[], $3::date[], $4::boolean[], $5::float8[],"
    "  $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[],"
    "  $12::float8[]) AS v(bond_id, quote_date, from_clean_price, yield, clean_price,"
    "  dirty_price, accrued, macaulay_duration, modified_duration, convexity, bpv)"
    "), up AS ("
    " INSERT INTO bond_eod_analytics AS e (bond_id, date, quote_date, from_clean_price, yield,"
    "  clean_price, dirty_price, accrued, macaulay_duration, modified_duration, convexity, bpv)"
    " SELECT v.bond_id, $1::date, v.quote_date, v.from_clean_price, v.yield, v.clean_price,"
    "  v.dirty_price, v.accrued, v.macaulay_duration, v.modified_duration, v.convexity, v.bpv"
    " FROM v"
    " ON CONFLICT (bond_id, date) DO UPDATE SET quote_date = excluded.quote_date,"
    "  from_clean_price = excluded.from_clean_price, yield = excluded.yield,"
    "  clean_price = excluded.clean_price, dirty_price = excluded.dirty_price,"
    "  accrued = excluded.accrued, macaulay_duration = excluded.macaulay_duration,"
    "  modified_duration = excluded.modified_duration, convexity = excluded.convexity,"
    "  bpv = excluded.bpv, computed_at = now()"
    " WHERE (e.quote_date, e.from_clean_price, e.yield, e.clean_price, e.dirty_price,"
    "  e.accrued, e.macaulay_duration, e.modified_duration, e.convexity, e.bpv)"
    "  IS DISTINCT FROM (excluded.quote_date, excluded.from_clean_price, excluded.yield,"
    "  excluded.clean_price, excluded.dirty_price, excluded.accrued,"
    "  excluded.macaulay_duration, excluded.modified_duration, excluded.convexity,"
    "  excluded.bpv)"
    " RETURNING (xmax = 0) AS inserted"
    "), del AS ("
    " DELETE FROM bond_eod_analytics d WHERE d.date = $1::date"
    "  AND NOT (d.bond_id = ANY ($2::uuid[])) RETURNING 1"
    ")"
    " SELECT (SELECT count(*) FROM up WHERE inserted), (SELECT count(*) FROM up WHERE NOT"
    " inserted), (SELECT count(*) FROM del)",
};

/* The eleven arrays of st_eod_replace, one evbuffer each ("{a,b,...}" once closed). */
enum {
    A_ID,
    A_Q_DATE,
    A_FROM_CLEAN,
    A_YIELD,
    A_CLEAN,
    A_DIRTY,
    A_ACCRUED,
    A_MACAULAY,
    A_MODIFIED,
    A_CONVEXITY,
    A_BPV,
    A_COUNT
};

typedef struct eod_op {
    wk_job *job;
    char date[11];
    int32_t settle;
    int bonds, priced, no_quote, not_outstanding, failed;
    int64_t t0_us, read_us, price_us; /* for the log: where the time went */
    json_t *errors;                   /* the first EOD_ERRORS_SHOWN failures: [{bond_id, error}] */
} eod_op;

/* Today (UTC) as "YYYY-MM-DD". */
static void today(char out[11])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

/*
 * The run date from the payload: {"run_date": "YYYY-MM-DD"} or empty.  Returns 0, or -1
 * for anything else.
 */
static int payload_date(const wk_job *job, char out[11])
{
    size_t len;
    const uint8_t *p = wk_job_payload(job, &len);
    if (len == 0) {
        today(out);
        return 0;
    }
    json_error_t e;
    json_t *root = json_loadb((const char *)p, len, 0, &e);
    const char *d = json_string_value(json_object_get(root, "run_date"));
    int rv = -1;
    if (json_is_object(root) && d == NULL && json_object_get(root, "run_date") == NULL) {
        today(out);
        rv = 0;
    } else if (d != NULL && fi_date_parse(d) != FI_NO_DATE) {
        snprintf(out, 11, "%s", d);
        rv = 0;
    }
    json_decref(root);
    return rv;
}

static void add_elem(struct evbuffer *b, const char *s)
{
    if (evbuffer_get_length(b) > 1)
        evbuffer_add(b, ",", 1);
    evbuffer_add(b, s, strlen(s));
}

static void add_double(struct evbuffer *b, double v)
{
    char num[32];
    snprintf(num, sizeof(num), "%.17g", v); /* round-trips: the stored double is exact */
    add_elem(b, num);
}

static void note_error(eod_op *op, const char *id, const char *what)
{
    op->failed++;
    if (json_array_size(op->errors) < EOD_ERRORS_SHOWN)
        json_array_append_new(op->errors, json_pack("{s:s,s:s}", "bond_id", id, "error", what));
}

/* Prices row |r| into the arrays; counts what it skips.  The row's values are text. */
static void price_row(eod_op *op, const fsr_pg_result *res, int r, struct evbuffer **a)
{
    const char *id = fsr_pg_result_getvalue(res, r, C_ID);
    fi_terms t = {
        .coupon_rate = strtod(fsr_pg_result_getvalue(res, r, C_COUPON), NULL),
        .frequency = atoi(fsr_pg_result_getvalue(res, r, C_FREQ)),
        .day_count = fi_day_count_from_name(fsr_pg_result_getvalue(res, r, C_DAY_COUNT)),
        .issue_date = fi_date_parse(fsr_pg_result_getvalue(res, r, C_ISSUE)),
        .maturity_date = fi_date_parse(fsr_pg_result_getvalue(res, r, C_MATURITY)),
        .first_coupon_date = fsr_pg_result_isnull(res, r, C_FIRST_COUPON)
                                 ? FI_NO_DATE
                                 : fi_date_parse(fsr_pg_result_getvalue(res, r, C_FIRST_COUPON)),
    };
    if (op->settle < t.issue_date || op->settle >= t.maturity_date) {
        op->not_outstanding++;
        return;
    }
    if (fsr_pg_result_isnull(res, r, C_Q_DATE)) {
        op->no_quote++;
        return;
    }
    bool from_clean = !fsr_pg_result_isnull(res, r, C_Q_CLEAN);
    double v = strtod(fsr_pg_result_getvalue(res, r, from_clean ? C_Q_CLEAN : C_Q_YIELD), NULL);
    /* Exactly the periods the bond has (fi_terms_periods()), on the stack up to a point. */
    fi_period stack[256];
    int n = fi_terms_periods(&t);
    if (n < 0) {
        note_error(op, id, fi_strerror(n));
        return;
    }
    size_t cap = n > 0 ? (size_t)n : 1;
    fi_period *periods = cap <= FSR_ARRAY_SIZE(stack) ? stack : fsr_xcalloc(cap, sizeof(*periods));
    fi_bond b;
    fi_analytics an = { 0 };
    int rv = fi_bond_init(&b, &t, periods, cap);
    if (rv == 0)
        rv = from_clean ? fi_bond_price_from_clean(&b, op->settle, v, &an)
                        : fi_bond_price(&b, op->settle, v, &an);
    if (periods != stack)
        free(periods);
    double vals[] = { an.yield,
                      an.clean_price,
                      an.dirty_price,
                      an.accrued,
                      an.macaulay_duration,
                      an.modified_duration,
                      an.convexity,
                      an.bpv };
    for (size_t i = 0; rv == 0 && i < FSR_ARRAY_SIZE(vals); i++) {
        if (!isfinite(vals[i]))
            rv = FI_E_NO_YIELD; /* not expected; never store a non-finite analytic */
    }
    if (rv != 0) {
        note_error(op, id, fi_strerror(rv));
        return;
    }
    add_elem(a[A_ID], id);
    add_elem(a[A_Q_DATE], fsr_pg_result_getvalue(res, r, C_Q_DATE));
    add_elem(a[A_FROM_CLEAN], from_clean ? "t" : "f");
    for (size_t i = 0; i < FSR_ARRAY_SIZE(vals); i++)
        add_double(a[A_YIELD + i], vals[i]);
    op->priced++;
}

static void on_replaced(const fsr_pg_result *res, void *arg)
{
    eod_op *op = arg;
    if (fsr_pg_result_status(res) != 0) {
        FSR_WARN("fi.eod_reprice %s: storing the analytics failed: %s", op->date,
                 fsr_pg_result_message(res));
        json_decref(op->errors);
        wk_job_fail(op->job, "storing the end-of-day analytics failed");
        return;
    }
    json_t *result = json_pack(
        "{s:s,s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:o}", "run_date", op->date, "bonds", op->bonds,
        "priced", op->priced, "no_quote", op->no_quote, "not_outstanding", op->not_outstanding,
        "failed", op->failed, "inserted", (json_int_t)atoll(fsr_pg_result_getvalue(res, 0, 0)),
        "updated", (json_int_t)atoll(fsr_pg_result_getvalue(res, 0, 1)), "removed",
        (json_int_t)atoll(fsr_pg_result_getvalue(res, 0, 2)), "errors", op->errors);
    char *text = json_dumps(result, JSON_COMPACT);
    json_decref(result);
    int64_t now = fsr_now_us();
    FSR_INFO("fi.eod_reprice %s: %d bonds, %d priced, %d without a quote, %d not outstanding, "
             "%d failed; %.0f ms (read %.0f, price %.0f, store %.0f)",
             op->date, op->bonds, op->priced, op->no_quote, op->not_outstanding, op->failed,
             (double)(now - op->t0_us) / 1e3, (double)(op->read_us - op->t0_us) / 1e3,
             (double)(op->price_us - op->read_us) / 1e3, (double)(now - op->price_us) / 1e3);
    wk_job_succeed(op->job, text);
    free(text);
}

static void on_bonds(const fsr_pg_result *res, void *arg)
{
    eod_op *op = arg;
    if (fsr_pg_result_status(res) != 0 || fsr_pg_result_cols(res) != C_COUNT) {
        FSR_WARN("fi.eod_reprice %s: reading the bonds failed: %s", op->date,
                 fsr_pg_result_message(res));
        wk_job_fail(op->job, "reading the bonds and quotes failed");
        return;
    }
    op->read_us = fsr_now_us();
    struct evbuffer *a[A_COUNT];
    for (int i = 0; i < A_COUNT; i++) {
        a[i] = evbuffer_new();
        if (a[i] == NULL) {
            FSR_ERROR("out of memory");
            abort();
        }
        evbuffer_add(a[i], "{", 1);
    }
    op->errors = json_array();
    op->bonds = fsr_pg_result_rows(res);
    for (int r = 0; r < op->bonds; r++)
        price_row(op, res, r, a);
    const char *v[1 + A_COUNT];
    v[0] = op->date;
    for (int i = 0; i < A_COUNT; i++) {
        evbuffer_add(a[i], "}", 2); /* with the NUL */
        v[1 + i] = (const char *)evbuffer_pullup(a[i], -1);
    }
    op->price_us = fsr_now_us();
    int rv = wk_job_query(op->job, &st_eod_replace, 1 + A_COUNT, v, on_replaced, op);
    for (int i = 0; i < A_COUNT; i++)
        evbuffer_free(a[i]); /* the pool copied the parameters */
    if (rv != 0) {
        json_decref(op->errors);
        wk_job_fail(op->job, "storing the end-of-day analytics failed");
    }
}

void wk_fi_eod_reprice(wk_job *job)
{
    if (wk_cfg.queue->id != FSR_JOB_QUEUE_FIXED_INCOME) {
        wk_job_fail(job, "fi.eod_reprice runs on the fixed_income queue only");
        return;
    }
    eod_op *op = wk_job_alloc(job, sizeof(*op));
    op->job = job;
    if (payload_date(job, op->date) != 0) {
        wk_job_fail(job, "payload: run_date must be a date \"YYYY-MM-DD\"");
        return;
    }
    op->settle = fi_date_parse(op->date);
    op->t0_us = fsr_now_us();
    const char *v[] = { op->date };
    if (wk_job_query(job, &st_eod_bonds, 1, v, on_bonds, op) != 0)
        wk_job_fail(job, "reading the bonds and quotes failed");
}
