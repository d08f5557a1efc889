-- SPDX-License-Identifier: MIT
-- Corporate actions: cash dividends and splits, at most one of each per equity and ex-date.
-- Amounts and ratios are NUMERIC, written from the API's decimal strings.
--
-- Stored closes are as traded (not adjusted); GetAnalytics adjusts them for splits when it
-- reads them: closes (and dividends per share) dated before a split's ex-date are divided
-- by its ratio (new shares per old share).

CREATE TABLE dividends (
    id         uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    equity_id  uuid NOT NULL REFERENCES equities (id) ON DELETE CASCADE,
    ex_date    date NOT NULL,
    pay_date   date CHECK (pay_date IS NULL OR pay_date >= ex_date),
    amount     numeric NOT NULL CHECK (amount > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (equity_id, ex_date)
);

CREATE TABLE splits (
    id         uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    equity_id  uuid NOT NULL REFERENCES equities (id) ON DELETE CASCADE,
    ex_date    date NOT NULL,
    ratio      numeric NOT NULL CHECK (ratio > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (equity_id, ex_date)
);
