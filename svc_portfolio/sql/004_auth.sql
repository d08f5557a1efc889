-- SPDX-License-Identifier: MIT
-- Authentication: what ClientService needs on top of 001's clients and api_keys.
--
-- api_keys.key_hash is the lowercase hex SHA-256 of the key.  Keys are 32 bytes from a
-- CSPRNG (OpenSSL RAND_bytes), so a fast unsalted hash is the right one: there is nothing
-- to guess that a slow or salted hash would protect, and a lookup by hash stays one index
-- probe.  The key itself is never stored.

-- The first characters of the key ("fsr_" and 8 hex digits), shown to tell keys apart.
ALTER TABLE api_keys ADD COLUMN prefix text NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_key_hash_hex CHECK (key_hash ~ '^[0-9a-f]{64}$');

-- ListClients: keyset paging in creation order.
CREATE INDEX clients_created_idx ON clients (created_at, id);

-- The bootstrap admin: ADMIN_API_KEY (from the environment, never stored) authenticates as
-- this client, so it is listable and audit rows naming it as actor resolve.  The id is
-- fixed (PF_BOOTSTRAP_ADMIN_ID in svc_portfolio/portfolio.h).
INSERT INTO clients (id, name, role)
VALUES ('00000000-0000-4000-8000-000000000001', 'bootstrap-admin', 'admin')
ON CONFLICT (id) DO NOTHING;
