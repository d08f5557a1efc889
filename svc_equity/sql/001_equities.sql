-- SPDX-License-Identifier: MIT
-- Equities (reference data) and their daily price bars.
--
-- Text keys compare byte-wise (COLLATE "C") so that listing order and page cursors do not
-- depend on the cluster's locale.  Stored prices are NUMERIC: they are written from the
-- decimal strings of the API and read back as text, never through a double.

CREATE TABLE equities (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    symbol     text COLLATE "C" NOT NULL CHECK (symbol <> '' AND symbol = upper(symbol)),
    name       text NOT NULL CHECK (name <> ''),
    exchange   text COLLATE "C" NOT NULL CHECK (exchange <> ''),
    currency   char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    sector     text NOT NULL CHECK (sector <> ''),
    isin       char(12) CHECK (isin ~ '^[A-Z]{2}[A-Z0-9]{9}[0-9]$'),  -- NULL when none
    lot_size   integer NOT NULL DEFAULT 1 CHECK (lot_size > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT equities_exchange_symbol_key UNIQUE (exchange, symbol),
    CONSTRAINT equities_isin_key UNIQUE (isin)  -- NULLs never collide
);

-- ListEquities: ORDER BY symbol, exchange with a keyset cursor on the same pair.
CREATE INDEX equities_symbol_exchange_idx ON equities (symbol, exchange);
CREATE INDEX equities_sector_idx ON equities (sector);

-- Daily bars, one per equity and trading date.
CREATE TABLE price_bars (
    equity_id  uuid NOT NULL REFERENCES equities (id) ON DELETE CASCADE,
    date       date NOT NULL,
    open       numeric NOT NULL,
    high       numeric NOT NULL,
    low        numeric NOT NULL,
    close      numeric NOT NULL CHECK (close > 0),
    volume     bigint NOT NULL DEFAULT 0 CHECK (volume >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (equity_id, date)
);
