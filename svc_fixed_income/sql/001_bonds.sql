-- SPDX-License-Identifier: MIT
-- Fixed-rate (and zero-coupon) bonds.
--
-- face is NUMERIC, written from the API's decimal string and read back as text, never
-- through a double.  coupon_rate is an analytics input (a fraction), hence a double.
-- day_count holds the common.v1.DayCount value name.

CREATE TABLE bonds (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    isin          char(12) CHECK (isin ~ '^[A-Z]{2}[A-Z0-9]{9}[0-9]$'),  -- NULL when none
    name          text NOT NULL DEFAULT '',
    issuer        text NOT NULL CHECK (issuer <> ''),
    currency      char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    face          numeric NOT NULL CHECK (face > 0),
    coupon_rate   double precision NOT NULL CHECK (coupon_rate >= 0 AND coupon_rate < 1),
    frequency     integer NOT NULL CHECK (frequency IN (0, 1, 2, 4, 12)),
    day_count     text NOT NULL CHECK (day_count IN ('ACT_ACT_ICMA', 'ACT_ACT_ISDA',
                      'THIRTY_360_US', 'THIRTY_E_360', 'ACT_360', 'ACT_365_FIXED')),
    issue_date    date NOT NULL,
    maturity_date date NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bonds_isin_key UNIQUE (isin),  -- NULLs never collide
    CONSTRAINT bonds_isin_or_name CHECK (isin IS NOT NULL OR name <> ''),
    CONSTRAINT bonds_dates CHECK (issue_date < maturity_date),
    CONSTRAINT bonds_zero_coupon CHECK (frequency > 0 OR coupon_rate = 0)
);

-- ListBonds: ORDER BY maturity_date, id with a keyset cursor on the same pair.
CREATE INDEX bonds_maturity_id_idx ON bonds (maturity_date, id);
CREATE INDEX bonds_issuer_idx ON bonds (issuer);
