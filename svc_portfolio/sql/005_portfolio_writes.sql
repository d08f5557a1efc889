-- SPDX-License-Identifier: MIT
-- The portfolio's writes as PL/pgSQL functions: create, update, delete, add and remove a
-- constituent, and apply ledger entries.
--
-- Why functions rather than statements issued one by one from C: each write is one round
-- trip (SELECT pf_...(...) inside the caller's transaction), and everything it does -- lock
-- the portfolio row, check the version, check balances, write the ledger rows, move cash
-- and holdings, bump version and updated_at, append the audit rows -- happens in one
-- statement, so any failure aborts all of it and the rules sit next to the schema they
-- keep.  C validates every field first (field-named INVALID_ARGUMENT before any write);
-- these functions enforce what needs the stored state.
--
-- Errors are raised with SQLSTATEs of our own class PF, which svc_portfolio maps to gRPC
-- codes (pf_fail_db() in portfolios.c), passing the message on to the client.  Messages are
-- client-safe by construction, never contain two consecutive spaces (the C side uses
-- ":  " to cut libpq's "ERROR:  ...  CONTEXT:  ..." text, whatever the server's language),
-- and carry no SQL:
--   PF404  NOT_FOUND            portfolio or constituent missing (or another client's)
--   PF409  ALREADY_EXISTS       the instrument is already held
--   PF412  FAILED_PRECONDITION  "version mismatch: ..." (the gateway answers HTTP 412)
--   PF400  FAILED_PRECONDITION  insufficient cash or holding, not held, negative holding
--   PF422  INVALID_ARGUMENT     "<field>: <description>", a field judged against the state
--   PF499  ABORTED              the state changed between the caller's read and its write
--
-- Amounts are NUMERIC throughout: BUY/SELL amounts default to quantity x price (a bond's
-- price is per 100 of face, so x 0.01) computed exactly (multiplication keeps every digit),
-- then trim_scale()d.

-- Today for the ledger: the UTC calendar date, whatever the session's TimeZone.
CREATE FUNCTION pf_today() RETURNS date LANGUAGE sql STABLE AS $$
    SELECT (now() AT TIME ZONE 'UTC')::date
$$;

-- Locks portfolio |p_id| as seen by |p_owner| (NULL: unscoped) for a change and checks
-- |p_version| (0: no check).
CREATE FUNCTION pf_lock(p_id uuid, p_owner uuid, p_version integer) RETURNS portfolios
LANGUAGE plpgsql AS $$
DECLARE
    r portfolios;
BEGIN
    SELECT * INTO r FROM portfolios
     WHERE id = p_id AND (p_owner IS NULL OR client_id = p_owner)
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portfolio % not found', p_id USING ERRCODE = 'PF404';
    END IF;
    IF p_version <> 0 AND r.version <> p_version THEN
        RAISE EXCEPTION 'version mismatch: portfolio % is at version %, not %',
            p_id, r.version, p_version USING ERRCODE = 'PF412';
    END IF;
    RETURN r;
END
$$;

CREATE FUNCTION pf_audit(p_actor text, p_request_id text, p_action text, p_entity text,
                         p_entity_id text, p_detail jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO audit_log (actor, request_id, action, entity, entity_id, detail)
    VALUES (p_actor, p_request_id, p_action, p_entity, p_entity_id, jsonb_strip_nulls(p_detail))
$$;

-- The targets JSON without the entry of one instrument.
CREATE FUNCTION pf_targets_without(p_targets jsonb, p_itype text, p_iid uuid) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(t ORDER BY n), '[]'::jsonb)
      FROM jsonb_array_elements(p_targets) WITH ORDINALITY AS x(t, n)
     WHERE NOT (coalesce(t->>'instrumentType', '') = p_itype
                AND lower(coalesce(t->>'instrumentId', '')) = p_iid::text)
$$;

-- ---- portfolios ------------------------------------------------------------------------

-- A new portfolio (version 1); non-zero opening cash is a DEPOSIT dated today, so that cash
-- is derivable from the ledger from the start.  One audit row.
CREATE FUNCTION pf_portfolio_create(p_owner uuid, p_name text, p_ccy text, p_cash text,
                                    p_targets jsonb, p_benchmark jsonb, p_allow_negative boolean,
                                    p_actor text, p_request_id text)
RETURNS SETOF portfolios LANGUAGE plpgsql AS $$
DECLARE
    r portfolios;
    v_tx uuid;
BEGIN
    INSERT INTO portfolios (client_id, name, base_currency, cash, targets, benchmark,
                            allow_negative)
    VALUES (p_owner, p_name, p_ccy, p_cash::numeric, p_targets, p_benchmark, p_allow_negative)
    RETURNING * INTO r;
    IF r.cash <> 0 THEN
        INSERT INTO transactions (portfolio_id, type, date, amount, note, actor, request_id)
        VALUES (r.id, 'DEPOSIT', pf_today(), r.cash, 'opening cash', p_actor, p_request_id)
        RETURNING id INTO v_tx;
    END IF;
    PERFORM pf_audit(p_actor, p_request_id, 'portfolio.create', 'portfolio', r.id::text,
                     jsonb_build_object('name', r.name, 'baseCurrency', r.base_currency,
                                        'cash', p_cash, 'allowNegative', r.allow_negative,
                                        'depositId', v_tx, 'version', 1));
    RETURN NEXT r;
END
$$;

-- Changes the fields given (NULL: unchanged; p_targets '[]' clears them).  Turning
-- allow_negative off is refused while cash or a holding is negative.
CREATE FUNCTION pf_portfolio_update(p_id uuid, p_owner uuid, p_version integer, p_actor text,
                                    p_request_id text, p_name text, p_targets jsonb,
                                    p_benchmark jsonb, p_clear_benchmark boolean,
                                    p_allow_negative boolean)
RETURNS SETOF portfolios LANGUAGE plpgsql AS $$
DECLARE
    r portfolios;
BEGIN
    r := pf_lock(p_id, p_owner, p_version);
    IF p_allow_negative IS NOT NULL AND NOT p_allow_negative AND r.allow_negative THEN
        IF r.cash < 0 THEN
            RAISE EXCEPTION 'allowNegative cannot be turned off while cash is negative (%)',
                r.cash USING ERRCODE = 'PF400';
        END IF;
        IF EXISTS (SELECT 1 FROM constituents WHERE portfolio_id = p_id AND quantity < 0) THEN
            RAISE EXCEPTION 'allowNegative cannot be turned off while a holding is negative'
                USING ERRCODE = 'PF400';
        END IF;
    END IF;
    UPDATE portfolios
       SET name = coalesce(p_name, name),
           targets = coalesce(p_targets, targets),
           benchmark = CASE WHEN p_clear_benchmark THEN NULL
                            ELSE coalesce(p_benchmark, benchmark) END,
           allow_negative = coalesce(p_allow_negative, allow_negative),
           version = version + 1,
           updated_at = now()
     WHERE id = p_id
    RETURNING * INTO r;
    PERFORM pf_audit(p_actor, p_request_id, 'portfolio.update', 'portfolio', p_id::text,
                     jsonb_build_object('name', p_name, 'targets', p_targets,
                                        'benchmark', p_benchmark,
                                        'clearBenchmark', CASE WHEN p_clear_benchmark
                                                               THEN true END,
                                        'allowNegative', p_allow_negative,
                                        'version', r.version));
    RETURN NEXT r;
END
$$;

-- Deletes a portfolio with its constituents and ledger (ON DELETE CASCADE); the audit row
-- records what went.  Returns the version deleted.
CREATE FUNCTION pf_portfolio_delete(p_id uuid, p_owner uuid, p_version integer, p_actor text,
                                    p_request_id text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    r portfolios;
    v_constituents bigint;
    v_transactions bigint;
BEGIN
    r := pf_lock(p_id, p_owner, p_version);
    SELECT count(*) INTO v_constituents FROM constituents WHERE portfolio_id = p_id;
    SELECT count(*) INTO v_transactions FROM transactions WHERE portfolio_id = p_id;
    DELETE FROM portfolios WHERE id = p_id;
    PERFORM pf_audit(p_actor, p_request_id, 'portfolio.delete', 'portfolio', p_id::text,
                     jsonb_build_object('name', r.name, 'version', r.version,
                                        'cash', r.cash::text,
                                        'constituents', v_constituents,
                                        'transactions', v_transactions));
    RETURN r.version;
END
$$;

-- ---- constituents ----------------------------------------------------------------------

-- Adds a holding.  A non-zero quantity is a TRANSFER_IN entry dated today (no cash effect);
-- p_weight (NULL: none) sets the instrument's entry in the targets, which must still sum
-- to at most 1.
CREATE FUNCTION pf_constituent_add(p_id uuid, p_owner uuid, p_version integer, p_actor text,
                                   p_request_id text, p_itype text, p_iid uuid, p_symbol text,
                                   p_quantity numeric, p_weight double precision)
RETURNS TABLE (constituent_id uuid, portfolio_id uuid, instrument_type text,
               instrument_id uuid, symbol text, quantity text, target_weight double precision,
               created_at timestamptz, version integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    p portfolios;
    c constituents;
    v_targets jsonb;
    v_sum double precision;
    v_tx uuid;
BEGIN
    p := pf_lock(p_id, p_owner, p_version);
    IF EXISTS (SELECT 1 FROM constituents k WHERE k.portfolio_id = p_id
                  AND k.instrument_type = p_itype AND k.instrument_id = p_iid) THEN
        RAISE EXCEPTION 'portfolio % already holds % %', p_id, lower(p_itype), p_iid
            USING ERRCODE = 'PF409';
    END IF;
    INSERT INTO constituents (portfolio_id, instrument_type, instrument_id, symbol, quantity)
    VALUES (p_id, p_itype, p_iid, p_symbol, p_quantity)
    RETURNING * INTO c;
    IF p_quantity <> 0 THEN
        INSERT INTO transactions (portfolio_id, type, date, instrument_type, instrument_id,
                                  constituent_id, quantity, amount, note, actor, request_id)
        VALUES (p_id, 'TRANSFER_IN', pf_today(), p_itype, p_iid, c.id, p_quantity, 0,
                'constituent added', p_actor, p_request_id)
        RETURNING id INTO v_tx;
    END IF;
    v_targets := p.targets;
    IF p_weight IS NOT NULL THEN
        v_targets := pf_targets_without(p.targets, p_itype, p_iid)
                     || jsonb_build_array(jsonb_build_object('instrumentType', p_itype,
                                                             'instrumentId', p_iid::text,
                                                             'weight', p_weight));
        SELECT sum(coalesce((t->>'weight')::double precision, 0)) INTO v_sum
          FROM jsonb_array_elements(v_targets) AS x(t);
        IF v_sum > 1 + 1e-9 THEN
            RAISE EXCEPTION 'targetWeight: the targets would sum to % (at most 1 allowed)',
                round(v_sum::numeric, 6) USING ERRCODE = 'PF422';
        END IF;
    END IF;
    UPDATE portfolios SET targets = v_targets, version = p.version + 1, updated_at = now()
     WHERE id = p_id;
    PERFORM pf_audit(p_actor, p_request_id, 'constituent.add', 'constituent', c.id::text,
                     jsonb_build_object('portfolioId', p_id, 'instrumentType', p_itype,
                                        'instrumentId', p_iid, 'symbol', p_symbol,
                                        'quantity', p_quantity::text,
                                        'targetWeight', p_weight, 'transferId', v_tx,
                                        'version', p.version + 1));
    RETURN QUERY SELECT c.id, c.portfolio_id, c.instrument_type, c.instrument_id, c.symbol,
                        c.quantity::text, p_weight, c.created_at, p.version + 1;
END
$$;

-- Removes a holding: any remaining quantity leaves as a TRANSFER_OUT entry dated today; a
-- negative (short) holding is refused (buy it back first).  The instrument's target entry
-- goes too.  Returns the new version.
CREATE FUNCTION pf_constituent_remove(p_id uuid, p_owner uuid, p_version integer, p_actor text,
                                      p_request_id text, p_cid uuid)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    p portfolios;
    c constituents;
    v_tx uuid;
BEGIN
    p := pf_lock(p_id, p_owner, p_version);
    SELECT * INTO c FROM constituents WHERE id = p_cid AND portfolio_id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'constituent % not found in portfolio %', p_cid, p_id
            USING ERRCODE = 'PF404';
    END IF;
    IF c.quantity < 0 THEN
        RAISE EXCEPTION 'the holding of % is negative (%): buy it back before removing it',
            coalesce(nullif(c.symbol, ''), c.instrument_id::text), c.quantity
            USING ERRCODE = 'PF400';
    END IF;
    IF c.quantity > 0 THEN
        INSERT INTO transactions (portfolio_id, type, date, instrument_type, instrument_id,
                                  constituent_id, quantity, amount, note, actor, request_id)
        VALUES (p_id, 'TRANSFER_OUT', pf_today(), c.instrument_type, c.instrument_id, c.id,
                c.quantity, 0, 'constituent removed', p_actor, p_request_id)
        RETURNING id INTO v_tx;
    END IF;
    DELETE FROM constituents WHERE id = p_cid;
    UPDATE portfolios
       SET targets = pf_targets_without(targets, c.instrument_type, c.instrument_id),
           version = p.version + 1, updated_at = now()
     WHERE id = p_id;
    PERFORM pf_audit(p_actor, p_request_id, 'constituent.remove', 'constituent', p_cid::text,
                     jsonb_build_object('portfolioId', p_id,
                                        'instrumentType', c.instrument_type,
                                        'instrumentId', c.instrument_id,
                                        'quantity', c.quantity::text, 'transferId', v_tx,
                                        'version', p.version + 1));
    RETURN p.version + 1;
END
$$;

-- ---- the ledger ------------------------------------------------------------------------

-- Applies the entries of p_txs (a JSON array, in order) to portfolio p_id: each becomes a
-- transactions row and moves cash and the holding it names; one version bump for the lot,
-- one audit row per entry.  Element keys (all strings; absent = not given): type, date
-- ("" or absent: today), instrumentType, instrumentId, quantity, price, amount (BUY/SELL
-- default quantity x price), note, symbol (for a holding created here), verified ("true"
-- when the caller checked the instrument exists: only then may a BUY, a TRANSFER_IN or,
-- with allow_negative, a SELL create the holding).
--
-- Balances are checked after each entry, in order: unless allow_negative, an entry that
-- takes cash or its holding below zero is refused (PF400) and nothing is written.  Returns
-- the rows written, in order, each with the portfolio's new version.
CREATE FUNCTION pf_ledger_apply(p_id uuid, p_owner uuid, p_version integer, p_actor text,
                                p_request_id text, p_txs jsonb)
RETURNS TABLE (tx transactions, new_version integer) LANGUAGE plpgsql AS $$
DECLARE
    p portfolios;
    e jsonb;
    v_n integer;
    v_i integer := 0;
    v_where text := '';
    v_type text;
    v_date date;
    v_itype text;
    v_iid uuid;
    v_qty numeric;
    v_price numeric;
    v_amount numeric;
    v_cash numeric;
    v_cid uuid;
    v_held numeric;
    v_symbol text;
    v_created boolean;
    v_version integer;
    v_tx uuid;
    v_ids uuid[] := '{}';
BEGIN
    p := pf_lock(p_id, p_owner, p_version);
    v_cash := p.cash;
    v_version := p.version + 1;
    v_n := jsonb_array_length(p_txs);
    FOR e IN SELECT x.t FROM jsonb_array_elements(p_txs) WITH ORDINALITY AS x(t, n) ORDER BY x.n
    LOOP
        IF v_n > 1 THEN
            v_where := format('transaction %s: ', v_i);
        END IF;
        v_type := e->>'type';
        v_date := coalesce(nullif(e->>'date', '')::date, pf_today());
        v_itype := nullif(e->>'instrumentType', '');
        v_iid := nullif(e->>'instrumentId', '')::uuid;
        v_qty := nullif(e->>'quantity', '')::numeric;
        v_price := nullif(e->>'price', '')::numeric;
        v_amount := nullif(e->>'amount', '')::numeric;
        IF v_type IN ('BUY', 'SELL') AND v_amount IS NULL THEN
            v_amount := trim_scale(v_qty * v_price
                                   * CASE WHEN v_itype = 'BOND' THEN 0.01 ELSE 1 END);
        ELSIF v_type IN ('TRANSFER_IN', 'TRANSFER_OUT') THEN
            v_amount := 0;
        END IF;

        -- The holding the entry names, created by a verified BUY / TRANSFER_IN / short SELL.
        v_cid := NULL;
        v_held := NULL;
        v_symbol := NULL;
        v_created := false;
        IF v_iid IS NOT NULL THEN
            SELECT c.id, c.quantity, c.symbol INTO v_cid, v_held, v_symbol
              FROM constituents c
             WHERE c.portfolio_id = p_id AND c.instrument_type = v_itype
               AND c.instrument_id = v_iid
               FOR UPDATE;
            IF NOT FOUND THEN
                IF v_type IN ('BUY', 'TRANSFER_IN')
                   OR (v_type = 'SELL' AND p.allow_negative) THEN
                    IF coalesce(e->>'verified', '') <> 'true' THEN
                        RAISE EXCEPTION '%portfolio % no longer holds % %: retry', v_where,
                            p_id, lower(v_itype), v_iid USING ERRCODE = 'PF499';
                    END IF;
                    v_symbol := coalesce(e->>'symbol', '');
                    INSERT INTO constituents (portfolio_id, instrument_type, instrument_id,
                                              symbol)
                    VALUES (p_id, v_itype, v_iid, v_symbol)
                    RETURNING id, quantity INTO v_cid, v_held;
                    v_created := true;
                ELSE
                    RAISE EXCEPTION '%portfolio % does not hold % %', v_where, p_id,
                        lower(v_itype), v_iid USING ERRCODE = 'PF400';
                END IF;
            END IF;
        END IF;

        IF v_type IN ('BUY', 'TRANSFER_IN') THEN
            v_held := v_held + v_qty;
        ELSIF v_type IN ('SELL', 'TRANSFER_OUT') THEN
            v_held := v_held - v_qty;
            IF v_held < 0 AND NOT p.allow_negative THEN
                RAISE EXCEPTION '%insufficient holding of %: % of % but % held', v_where,
                    coalesce(nullif(v_symbol, ''), v_iid::text), v_type, v_qty,
                    v_held + v_qty USING ERRCODE = 'PF400';
            END IF;
        END IF;
        IF v_type IN ('BUY', 'WITHDRAWAL', 'FEE') THEN
            v_cash := v_cash - v_amount;
            IF v_cash < 0 AND NOT p.allow_negative THEN
                IF v_iid IS NOT NULL THEN
                    RAISE EXCEPTION '%insufficient cash: % of % costs % but cash is %',
                        v_where, v_type, coalesce(nullif(v_symbol, ''), v_iid::text),
                        v_amount, v_cash + v_amount USING ERRCODE = 'PF400';
                END IF;
                RAISE EXCEPTION '%insufficient cash: % of % but cash is %', v_where, v_type,
                    v_amount, v_cash + v_amount USING ERRCODE = 'PF400';
            END IF;
        ELSIF v_type IN ('SELL', 'DEPOSIT', 'DIVIDEND', 'COUPON') THEN
            v_cash := v_cash + v_amount;
        END IF;
        IF v_type IN ('BUY', 'SELL', 'TRANSFER_IN', 'TRANSFER_OUT') THEN
            UPDATE constituents SET quantity = v_held WHERE id = v_cid;
        END IF;

        INSERT INTO transactions (portfolio_id, type, date, instrument_type, instrument_id,
                                  constituent_id, quantity, price, amount, note, actor,
                                  request_id)
        VALUES (p_id, v_type, v_date, v_itype, v_iid, v_cid, v_qty, v_price, v_amount,
                coalesce(e->>'note', ''), p_actor, p_request_id)
        RETURNING id INTO v_tx;
        v_ids := v_ids || v_tx;
        PERFORM pf_audit(p_actor, p_request_id, 'transaction.add', 'transaction', v_tx::text,
                         jsonb_build_object('portfolioId', p_id, 'type', v_type,
                                            'date', to_char(v_date, 'YYYY-MM-DD'),
                                            'instrumentType', v_itype, 'instrumentId', v_iid,
                                            'quantity', v_qty::text, 'price', v_price::text,
                                            'amount', v_amount::text,
                                            'constituentCreated', CASE WHEN v_created
                                                                       THEN v_cid END,
                                            'version', v_version));
        v_i := v_i + 1;
    END LOOP;
    UPDATE portfolios SET cash = v_cash, version = v_version, updated_at = now()
     WHERE id = p_id;
    RETURN QUERY SELECT t, v_version FROM transactions t WHERE t.id = ANY (v_ids) ORDER BY t.seq;
END
$$;
