-- SPDX-License-Identifier: MIT
-- Daily performance snapshots (svc_portfolio/performance.c): one row per portfolio per
-- business day (Monday..Friday), the end-of-day valuation rebuilt from the ledger and the
-- market data, so that a long GetPerformance reads rows instead of recomputing history.
--
-- A row depends only on the ledger up to its date and on the prices on or before it, so:
--  * a transaction written (or changed, or deleted) with a date on or before a stored day
--    deletes that portfolio's rows from its date on (trigger below, whatever writes it);
--  * a price or quote change (price.updated / bond.updated, which carry the changed
--    {"id","from","to"}) deletes, for every portfolio whose ledger names the instrument,
--    the rows from the event's `from` on (performance.c, pf_snapshot_on_price_event).
-- Missing rows are recomputed on the next request and written in one statement.
-- The benchmark is not stored: its returns are read fresh each request.
CREATE TABLE pf_snapshots (
    portfolio_id uuid NOT NULL REFERENCES portfolios (id) ON DELETE CASCADE,
    date         date NOT NULL,
    -- End-of-day values, base currency: the total and its equity, fixed-income (dirty) and
    -- cash parts (value = equity_value + fi_value + cash).
    value        float8 NOT NULL,
    cash         float8 NOT NULL,
    equity_value float8 NOT NULL,
    fi_value     float8 NOT NULL,
    -- External flow at the start of the day (DEPOSIT +, WITHDRAWAL -, TRANSFER_IN/OUT at
    -- market value), all entries dated after the previous business day up to this one.
    flow         float8 NOT NULL,
    -- Money moved into each class at the start of the day (trades, income, transfers):
    -- equity_flow + fi_flow + cash_flow = flow.  The class returns of attribution come from
    -- these and the class values.
    equity_flow  float8 NOT NULL,
    fi_flow      float8 NOT NULL,
    cash_flow    float8 NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portfolio_id, date)
);

CREATE FUNCTION pf_snapshots_invalidate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM pf_snapshots WHERE portfolio_id = OLD.portfolio_id AND date >= OLD.date;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        DELETE FROM pf_snapshots WHERE portfolio_id = NEW.portfolio_id AND date >= NEW.date;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER transactions_snapshots_invalidate
    AFTER INSERT OR UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION pf_snapshots_invalidate();

-- Price events: the portfolios whose ledger names an instrument.
CREATE INDEX transactions_instrument_idx ON transactions (instrument_id) WHERE instrument_id IS NOT NULL;
