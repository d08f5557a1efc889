-- SPDX-License-Identifier: MIT
-- Clients and their API keys, portfolios, and the append-only audit log.
--
-- Money is NUMERIC, written from the API's decimal strings and read back as text, never
-- through a double.  targets and benchmark hold the proto3 JSON of portfolio.v1's Target
-- list and Benchmark message (lowerCamelCase names, enum names).

CREATE TABLE clients (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (name <> ''),
    role       text NOT NULL DEFAULT 'client' CHECK (role IN ('admin', 'data', 'client')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Only a hash of each key is stored; the key itself is shown once, at creation.
CREATE TABLE api_keys (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id  uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    key_hash   text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz  -- NULL while the key works
);
CREATE INDEX api_keys_client_idx ON api_keys (client_id);

-- client_id is the owner as the gateway reports it (x-client-id).  It is nullable and has
-- no foreign key until authentication lands; a later migration adds both.
CREATE TABLE portfolios (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id     uuid,
    name          text NOT NULL CHECK (name <> ''),
    base_currency char(3) NOT NULL CHECK (base_currency ~ '^[A-Z]{3}$'),
    cash          numeric NOT NULL DEFAULT 0 CHECK (cash >= 0),
    targets       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(targets) = 'array'),
    benchmark     jsonb CHECK (benchmark IS NULL OR jsonb_typeof(benchmark) = 'object'),
    version       integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- ListPortfolios: ORDER BY created_at, id, for one client or for all.
CREATE INDEX portfolios_created_idx ON portfolios (created_at, id);
CREATE INDEX portfolios_client_created_idx ON portfolios (client_id, created_at, id);

-- Who changed what, written in the same transaction as the change.  Rows are never
-- updated or deleted: the trigger below refuses it.
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text,  -- the caller's client id; NULL when the caller is not identified
    request_id text,
    action     text NOT NULL,  -- e.g. 'portfolio.create'
    entity     text NOT NULL,  -- e.g. 'portfolio'
    entity_id  text,
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
