-- SPDX-License-Identifier: MIT
-- Holdings (constituents), the transaction ledger and idempotency keys.
--
-- The ledger is the source of truth: a holding's quantity is the sum of its BUY and
-- TRANSFER_IN quantities minus SELL and TRANSFER_OUT, and cash is the sum of the cash
-- effects of every entry (see portfolio.proto, Transaction.Type).  constituents.quantity and
-- portfolios.cash are kept equal to those sums by writing the entry and the balances in one
-- transaction; test/integration proves they agree.

-- Cash may go negative only where the portfolio allows it.
ALTER TABLE portfolios ADD COLUMN allow_negative boolean NOT NULL DEFAULT false;
ALTER TABLE portfolios DROP CONSTRAINT portfolios_cash_check;
ALTER TABLE portfolios ADD CONSTRAINT portfolios_cash_check CHECK (allow_negative OR cash >= 0);

CREATE TABLE constituents (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    portfolio_id    uuid NOT NULL REFERENCES portfolios (id) ON DELETE CASCADE,
    instrument_type text NOT NULL CHECK (instrument_type IN ('EQUITY', 'BOND')),
    instrument_id   uuid NOT NULL,
    -- Display symbol (equity) or name/ISIN (bond), copied from its service when added.
    symbol          text NOT NULL DEFAULT '',
    -- Shares, or face amount for a bond.  Negative only where the portfolio allows it.
    quantity        numeric NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (portfolio_id, instrument_type, instrument_id)
);
-- CountHolders: is an instrument held anywhere?
CREATE INDEX constituents_instrument_idx ON constituents (instrument_type, instrument_id);

CREATE TABLE transactions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    portfolio_id    uuid NOT NULL REFERENCES portfolios (id) ON DELETE CASCADE,
    -- Creation order within a date (the ledger is listed by date, then seq).
    seq             bigserial NOT NULL,
    type            text NOT NULL CHECK (type IN ('BUY', 'SELL', 'DEPOSIT', 'WITHDRAWAL',
                                                  'DIVIDEND', 'COUPON', 'FEE', 'TRANSFER_IN',
                                                  'TRANSFER_OUT')),
    date            date NOT NULL,
    instrument_type text CHECK (instrument_type IN ('EQUITY', 'BOND')),
    instrument_id   uuid,
    -- The holding it changed; NULL once that holding is removed.
    constituent_id  uuid REFERENCES constituents (id) ON DELETE SET NULL,
    quantity        numeric CHECK (quantity > 0),
    price           numeric CHECK (price >= 0),
    -- Cash moved, >= 0; the type gives the direction (0 for transfers).
    amount          numeric NOT NULL CHECK (amount >= 0),
    note            text NOT NULL DEFAULT '',
    actor           text,
    request_id      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Instrument entries name their instrument and quantity; cash entries name neither.
    CHECK ((type IN ('BUY', 'SELL', 'TRANSFER_IN', 'TRANSFER_OUT'))
           = (quantity IS NOT NULL)),
    CHECK ((type IN ('DEPOSIT', 'WITHDRAWAL', 'FEE')) = (instrument_id IS NULL)),
    CHECK ((instrument_id IS NULL) = (instrument_type IS NULL))
);
CREATE INDEX transactions_portfolio_idx ON transactions (portfolio_id, date, seq);

-- Idempotency-Key of creating writes: the first result is kept (the response message's
-- protobuf bytes) with a hash of the request, per caller and key, written in the same
-- transaction as the write itself.  A retry with the same key and request gets the stored
-- response; the same key with a different request is refused.
CREATE TABLE idempotency_keys (
    client_id    text NOT NULL,  -- the caller's client id; '' when unidentified
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    method       text NOT NULL,  -- full gRPC method name
    request_hash bytea NOT NULL, -- SHA-256 of the request message's bytes
    response     bytea NOT NULL, -- the response message's protobuf bytes
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
