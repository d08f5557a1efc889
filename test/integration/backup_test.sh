#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Backups (TAP on stdout): scripts/backup.sh and scripts/restore.sh between two real clusters.
#
#   with_deps.sh --pg -- backup_test.sh EQUITY_BIN FI_BIN PORTFOLIO_BIN
#
# Cluster A is with_deps.sh's; the three databases get their real schemas from the service
# binaries (--migrate-only) and data from psql.  `make backup` dumps them, a second, fresh
# cluster B (scripts/deps.sh) receives each with scripts/restore.sh (and `make restore`),
# and every table must match: row counts, a content digest, a specific row, the migration
# records, sequences.  Then the failure paths: truncated, garbage, bit-flipped and foreign
# archives and a replay that fails half-way are refused with B left exactly as it was; so
# are backup and restore against a cluster that is not running.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
deps=$src/scripts/deps.sh
backup=$src/scripts/backup.sh
restore=$src/scripts/restore.sh

[ $# -eq 3 ] || {
    echo "usage: $0 EQUITY_BIN FI_BIN PORTFOLIO_BIN (under with_deps.sh --pg)" >&2
    exit 2
}
bins=()
for b in "$1" "$2" "$3"; do
    case $b in /*) ;; *) b=$PWD/$b ;; esac
    bins+=("$b")
done
: "${TEST_PG_HOST:?run under with_deps.sh --pg}" "${TEST_PG_PORT:?}"

n=0
failed=0
ok() { # ok COND-STATUS DESCRIPTION [DIAG]
    n=$((n + 1))
    if [ "$1" = 0 ]; then
        echo "ok $n - $2"
    else
        failed=$((failed + 1))
        echo "not ok $n - $2"
        [ -n "${3:-}" ] && printf '%s\n' "$3" | head -c 3000 | sed 's/^/# /'
    fi
}
skip_all() {
    echo "1..0 # SKIP $*"
    exit 0
}

bindir=$(pg_config --bindir 2>/dev/null || true)
[ -n "$bindir" ] && [ -x "$bindir/pg_dump" ] || bindir=/usr/lib/postgresql/15/bin
if [ ! -x "$bindir/pg_dump" ] || [ ! -x "$bindir/pg_restore" ]; then
    skip_all "pg_dump/pg_restore not found"
fi
for b in "${bins[@]}"; do [ -x "$b" ] || skip_all "$b not built"; done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fsr-backup-it.XXXXXX") || exit 1
chmod 755 "$tmp"
cleanup() {
    "$deps" pg-stop "$tmp/pgB" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

A_HOST=$TEST_PG_HOST A_PORT=$TEST_PG_PORT
dbs=(equity fixed_income portfolio)
keys=(equity "fi" portfolio)
prefixes=(EQUITY FI PORTFOLIO)

# Environment pointing the scripts (and the services) at cluster HOST PORT.
at() {
    local host=$1 port=$2 i
    shift 2
    local -a e=(BACKUP_DIR="$tmp/backups")
    for i in 0 1 2; do
        e+=("${prefixes[$i]}_DB_HOST=$host" "${prefixes[$i]}_DB_PORT=$port"
            "${prefixes[$i]}_DB_NAME=${dbs[$i]}" "${prefixes[$i]}_DB_USER=fsr")
    done
    env "${e[@]}" "$@"
}
q() { # q HOST PORT DB SQL  (as the superuser; one value per line)
    "$bindir/psql" -X -qAt -v ON_ERROR_STOP=1 -h "$1" -p "$2" -U postgres -d "$3" -c "$4"
}
qf() { # like q, as the application's role
    "$bindir/psql" -X -qAt -v ON_ERROR_STOP=1 -h "$1" -p "$2" -U fsr -d "$3" -c "$4"
}
# Every table of DB with its row count and an order-independent digest of its rows.
fingerprint() {
    q "$1" "$2" "$3" "
        SELECT string_agg(format('%s.%s %s %s', schemaname, tablename,
                 (xpath('/row/c/text()', query_to_xml(format(
                    'SELECT count(*) AS c FROM %I.%I', schemaname, tablename),
                    false, true, '')))[1]::text,
                 (xpath('/row/d/text()', query_to_xml(format(
                    'SELECT md5(coalesce(string_agg(md5(t::text), '','' ORDER BY md5(t::text)), '''')) AS d FROM %I.%I t',
                    schemaname, tablename), false, true, '')))[1]::text), E'\n'
                 ORDER BY schemaname, tablename)
        FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
}

# ---- cluster A: real schemas, data ----------------------------------------------------------
"$deps" pg-start "$A_HOST" "$A_PORT" "${dbs[@]}" >"$tmp/depsA.log" 2>&1
rc=0
for i in 0 1 2; do
    at "$A_HOST" "$A_PORT" env PORT=0 timeout 120 "${bins[$i]}" --migrate-only \
        >>"$tmp/migrate.log" 2>&1 || rc=1
done
ok "$rc" "cluster A: the three services' migrations applied (--migrate-only)" "$(tail -n 20 "$tmp/migrate.log")"

seed=$(
    qf "$A_HOST" "$A_PORT" equity "
        INSERT INTO equities (symbol, name, exchange, currency, sector, isin)
        VALUES ('BKP1', 'Backup Probe Inc', 'XNYS', 'USD', 'Technology', 'US0378331005');
        INSERT INTO equities (symbol, name, exchange, currency, sector)
        SELECT 'S' || g, 'Company ' || g, 'XNAS', 'USD', 'Sector ' || (g % 7)
        FROM generate_series(1, 500) g;
        INSERT INTO price_bars (equity_id, date, open, high, low, close, volume)
        SELECT e.id, date '2024-01-01' + g, 100 + g * 0.01, 101 + g * 0.01, 99 + g * 0.01,
               100.5 + g * 0.01, 1000 * g
        FROM equities e, generate_series(0, 99) g WHERE e.symbol = 'BKP1';" 2>&1 &&
        qf "$A_HOST" "$A_PORT" fixed_income "
        CREATE TABLE backup_probe (id bigserial PRIMARY KEY, note text NOT NULL);
        INSERT INTO backup_probe (note) SELECT 'note ' || g || E' with ''quotes'', tabs\t and €'
        FROM generate_series(1, 300) g;" 2>&1 &&
        qf "$A_HOST" "$A_PORT" portfolio "
        INSERT INTO clients (name, role) SELECT 'client ' || g, 'client'
        FROM generate_series(1, 50) g;
        INSERT INTO clients (name, role) VALUES ('Backup Admin', 'admin');" 2>&1
)
ok $? "cluster A: data in every database (equities, price bars, clients, a bigserial table)" "$seed"

declare -A fpA
for db in "${dbs[@]}"; do fpA[$db]=$(fingerprint "$A_HOST" "$A_PORT" "$db"); done

# ---- make backup -----------------------------------------------------------------------------
out=$(at "$A_HOST" "$A_PORT" make --no-print-directory -C "$src" backup 2>&1)
rc=$?
files=()
for db in "${dbs[@]}"; do
    f=$(find "$tmp/backups" -maxdepth 1 -name "$db-*.dump" 2>/dev/null | sort | tail -n 1)
    [ -n "$f" ] && files+=("$f")
done
names_ok=1
for f in "${files[@]}"; do
    [[ $(basename "$f") =~ ^(equity|fixed_income|portfolio)-[0-9]{8}T[0-9]{6}Z\.dump$ ]] || names_ok=0
    grep -qF "$(basename "$f")" <<<"$out" || names_ok=0
done
[ $rc = 0 ] && [ ${#files[@]} = 3 ] && [ $names_ok = 1 ]
ok $? "make backup: <db>-<UTC timestamp>.dump for each of the 3 databases, paths printed" \
    "rc=$rc files=${files[*]} out=$out"
fmt_ok=0
for f in "${files[@]}"; do
    [ "$(head -c 5 "$f")" = PGDMP ] && "$bindir/pg_restore" --list "$f" >/dev/null 2>&1 || fmt_ok=1
done
[ -z "$(find "$tmp/backups" -name '*.part')" ] || fmt_ok=1
ok $fmt_ok "the dumps are pg_dump custom-format archives (PGDMP, pg_restore --list), no *.part left"

# A second backup within the same second never overwrites the first.
out2=$(at "$A_HOST" "$A_PORT" "$backup" equity 2>&1)
rc=$?
[ $rc = 0 ] && [ "$(find "$tmp/backups" -name 'equity-*.dump' | wc -l)" = 2 ]
ok $? "backup.sh equity: a second dump of one database, next to the first" "$out2"

# ---- a fresh cluster B ------------------------------------------------------------------------
B_HOST=$tmp/pgB
B_PORT=
for _ in 1 2 3; do
    B_PORT=$("$deps" free-port)
    if DEPS_FAST=1 "$deps" pg-start "$B_HOST" "$B_PORT" "${dbs[@]}" >"$tmp/depsB.log" 2>&1; then
        break
    fi
    "$deps" pg-stop "$B_HOST" >/dev/null 2>&1
    B_PORT=
done
if [ -z "$B_PORT" ]; then
    ok 1 "a second, fresh cluster starts" "$(cat "$tmp/depsB.log")"
    echo "1..$n"
    exit 1
fi
empty=$(q "$B_HOST" "$B_PORT" equity "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
ok "$([ "$empty" = 0 ] && echo 0 || echo 1)" "cluster B starts fresh (no tables in equity)" "$empty"

# ---- restore each database into B --------------------------------------------------------------
rc=0
log=
for i in 0 1; do
    log+=$(at "$B_HOST" "$B_PORT" "$restore" "${keys[$i]}" "${files[$i]}" 2>&1)$'\n' || rc=1
done
# The third through make, without FILE: the newest backup of the database.
log+=$(at "$B_HOST" "$B_PORT" make --no-print-directory -C "$src" restore DB=portfolio 2>&1) || rc=1
ok $rc "restore.sh equity FILE, restore.sh fi FILE, make restore DB=portfolio (newest backup)" "$log"

same=0
diag=
for db in "${dbs[@]}"; do
    fpB=$(fingerprint "$B_HOST" "$B_PORT" "$db")
    if [ "$fpB" != "${fpA[$db]}" ] || [ -z "$fpB" ]; then
        same=1
        diag+="$db A:"$'\n'"${fpA[$db]}"$'\n'"$db B:"$'\n'"$fpB"$'\n'
    fi
done
ok $same "every table of the 3 databases: same row count and same content digest in B" "$diag"
grep -q 'equities 501 ' <<<"${fpA[equity]}" && grep -q 'price_bars 100 ' <<<"${fpA[equity]}"
ok $? "(the digest compared real data: 501 equities, 100 price bars)" "${fpA[equity]}"

rowA=$(q "$A_HOST" "$A_PORT" equity "SELECT id, name, isin, exchange FROM equities WHERE symbol = 'BKP1'")
rowB=$(q "$B_HOST" "$B_PORT" equity "SELECT id, name, isin, exchange FROM equities WHERE symbol = 'BKP1'")
[ -n "$rowA" ] && [ "$rowA" = "$rowB" ]
ok $? "the equity BKP1 is in B with the same id, name and ISIN" "A=$rowA B=$rowB"

migA=$(q "$A_HOST" "$A_PORT" equity "SELECT string_agg(version || ':' || checksum, ',' ORDER BY version) FROM schema_migrations")
migB=$(q "$B_HOST" "$B_PORT" equity "SELECT string_agg(version || ':' || checksum, ',' ORDER BY version) FROM schema_migrations")
out=$(at "$B_HOST" "$B_PORT" env PORT=0 timeout 120 "${bins[0]}" --migrate-only 2>&1)
rc=$?
[ -n "$migA" ] && [ "$migA" = "$migB" ] && [ $rc = 0 ]
ok $? "the migration records came along: fsr-equity --migrate-only on B accepts them" \
    "A=$migA B=$migB rc=$rc $out"

next=$(qf "$B_HOST" "$B_PORT" fixed_income "INSERT INTO backup_probe (note) VALUES ('after') RETURNING id" 2>&1)
[ "$next" = 301 ]
ok $? "sequences restored: the next bigserial id in B is 301" "$next"

own=$(q "$B_HOST" "$B_PORT" equity "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'")
[ "$own" = fsr ]
ok $? "restored tables belong to the application role (fsr)" "$own"

# ---- restore replaces: what B had beyond the backup goes --------------------------------------
qf "$B_HOST" "$B_PORT" equity "CREATE TABLE stray (x int); DELETE FROM price_bars;
    INSERT INTO equities (symbol, name, exchange, currency, sector)
    VALUES ('EXTRA', 'Extra', 'XNYS', 'USD', 'X')" >/dev/null 2>&1
out=$(at "$B_HOST" "$B_PORT" "$restore" equity 2>&1)
rc=$?
[ $rc = 0 ] && [ "$(fingerprint "$B_HOST" "$B_PORT" equity)" = "${fpA[equity]}" ]
ok $? "restoring over changed data gives exactly the backup (stray table and row gone, bars back)" \
    "rc=$rc $out"$'\n'"$(fingerprint "$B_HOST" "$B_PORT" equity)"

# ---- failures leave B untouched ----------------------------------------------------------------
qf "$B_HOST" "$B_PORT" equity "INSERT INTO equities (symbol, name, exchange, currency, sector)
    VALUES ('MARK', 'Marker', 'XNYS', 'USD', 'X')" >/dev/null 2>&1
before=$(fingerprint "$B_HOST" "$B_PORT" equity)
eq_dump=${files[0]}
size=$(wc -c <"$eq_dump")

refused() { # refused DESCRIPTION FILE [DB]: restore must fail, say why, and leave B as it was
    local desc=$1 file=$2 key=${3:-equity} out rc after
    out=$(at "$B_HOST" "$B_PORT" "$restore" "$key" "$file" 2>&1)
    rc=$?
    after=$(fingerprint "$B_HOST" "$B_PORT" equity)
    [ $rc != 0 ] && grep -q 'nothing restored\|unchanged' <<<"$out" && [ "$after" = "$before" ]
    ok $? "$desc: refused, B unchanged" "rc=$rc $out"
}
head -c $((size / 2)) "$eq_dump" >"$tmp/truncated.dump"
refused "a truncated archive (half of it)" "$tmp/truncated.dump"
head -c 4096 /dev/urandom >"$tmp/garbage.dump"
refused "a file of random bytes" "$tmp/garbage.dump"
cp "$eq_dump" "$tmp/flipped.dump"
# Overwrite 64 bytes in the compressed table data (the last third of the archive).
printf '%064d' 0 | dd of="$tmp/flipped.dump" bs=1 seek=$((size * 2 / 3)) conv=notrunc status=none
refused "an archive with corrupted bytes in its data" "$tmp/flipped.dump"
refused "an archive of another database (portfolio into equity)" "${files[2]}"
refused "a missing file" "$tmp/nope.dump"

# A valid archive whose replay fails half-way (a schema the role may not drop): rolled back.
q "$B_HOST" "$B_PORT" equity "CREATE SCHEMA alien; CREATE TABLE alien.t (x int)" >/dev/null
before=$(fingerprint "$B_HOST" "$B_PORT" equity)
refused "a replay that fails inside the transaction" "$eq_dump"
q "$B_HOST" "$B_PORT" equity "DROP SCHEMA alien CASCADE" >/dev/null

# ---- nothing running ----------------------------------------------------------------------------
dead=$("$deps" free-port)
count=$(find "$tmp/backups" -name '*.dump' | wc -l)
out=$(at "$A_HOST" "$A_PORT" env FI_DB_HOST=127.0.0.1 FI_DB_PORT="$dead" "$backup" 2>&1)
rc=$?
[ $rc != 0 ] && grep -q 'not running' <<<"$out" && grep -q 'make up' <<<"$out" &&
    [ "$(find "$tmp/backups" -name '*.dump' | wc -l)" = "$count" ]
ok $? "backup with one database down: refused naming it, no partial set written" "rc=$rc $out"
out=$(at 127.0.0.1 "$dead" make --no-print-directory -C "$src" restore DB=equity 2>&1)
rc=$?
[ $rc != 0 ] && grep -q 'not running' <<<"$out"
ok $? "make restore with the stack down: refused clearly" "rc=$rc $out"
! out=$(make --no-print-directory -C "$src" restore 2>&1) && grep -q usage <<<"$out"
ok $? "make restore without DB: usage" "$out"

echo "1..$n"
[ $failed = 0 ]
