-- SPDX-License-Identifier: MIT
-- End-of-day bond analytics: one row per bond per date, written by the worker's
-- fi.eod_reprice job (svc_worker/jobs_fi.c), scheduled daily.  Each bond outstanding on the
-- date is priced from its latest quote on or before it, settling on the date itself (as
-- BatchAnalytics with that settlementDate); bonds without such a quote get no row.  A run
-- replaces the date's rows in one transaction with the job's state: re-running a date
-- upserts identical rows (computed_at moves only when a value changed) and removes the rows
-- of bonds no longer priceable.  The analytics are per 100 of face, doubles as in the API.
CREATE TABLE bond_eod_analytics (
    bond_id           uuid NOT NULL REFERENCES bonds (id) ON DELETE CASCADE,
    date              date NOT NULL,            -- valuation (= settlement) date
    quote_date        date NOT NULL,            -- the quote priced from
    from_clean_price  boolean NOT NULL,         -- the quote was a clean price (else a yield)
    yield             double precision NOT NULL,
    clean_price       double precision NOT NULL,
    dirty_price       double precision NOT NULL,
    accrued           double precision NOT NULL,
    macaulay_duration double precision NOT NULL,
    modified_duration double precision NOT NULL,
    convexity         double precision NOT NULL,
    bpv               double precision NOT NULL,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bond_id, date),
    CHECK (quote_date <= date)
);
-- A date's rows: the job's replace, and end-of-day reports.
CREATE INDEX bond_eod_analytics_date_idx ON bond_eod_analytics (date);
