-- SPDX-License-Identifier: MIT
-- Daily bond quotes: a clean price per 100 of face (exact NUMERIC from the API's decimal
-- string) or a yield (an analytics input, a fraction), exactly one of the two per day.
CREATE TABLE bond_quotes (
    bond_id     uuid NOT NULL REFERENCES bonds (id) ON DELETE CASCADE,
    date        date NOT NULL,
    clean_price numeric,
    yield       double precision,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bond_id, date),
    CONSTRAINT bond_quotes_one_value CHECK ((clean_price IS NULL) <> (yield IS NULL))
);
