-- Fixture for the embed_sql.py round trip: quotes ", ', a backslash \, a tab	,
-- "??=" (a trigraph if unescaped) and UTF-8 (€).
CREATE TABLE things (
	id bigint PRIMARY KEY,
	label text NOT NULL DEFAULT 'it''s "q" \ ??= €'
);
