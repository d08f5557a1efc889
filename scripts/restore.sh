#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Restores one of the stack's databases from a scripts/backup.sh archive.
#
#   scripts/restore.sh [--force] equity|fi|portfolio [FILE]
#   make restore DB=equity [FILE=backups/equity-20250101T120000Z.dump]
#
# FILE defaults to the newest BACKUP_DIR/<database>-*.dump.  The database then holds exactly
# what the backup holds: its schemas are dropped and the archive replayed, all in ONE
# transaction, so the restore either happens whole or not at all (a failure leaves the
# database as it was).  The archive is decoded completely before the database is touched,
# so a truncated or corrupt file is refused up front.  An archive of another database
# (equity into portfolio) is refused unless --force.
#
# The services may keep running: their queries wait for the restore's locks (lock_timeout
# RESTORE_LOCK_TIMEOUT, default 60s) and see the restored data afterwards.  Redis caches are
# not touched: entries cached before the restore expire on their own (make restart clears
# the processes' state).
#
# Connection: the same variables as scripts/backup.sh (EQUITY_DB_HOST, EQUITY_DB_PORT, ...).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prog=restore

BACKUP_DIR=${BACKUP_DIR:-$root/backups}
RESTORE_LOCK_TIMEOUT=${RESTORE_LOCK_TIMEOUT:-60s}
: "${EQUITY_DB_HOST:=127.0.0.1}" "${EQUITY_DB_PORT:=5432}" "${EQUITY_DB_NAME:=equity}"
: "${EQUITY_DB_USER:=fsr}"
: "${FI_DB_HOST:=127.0.0.1}" "${FI_DB_PORT:=5433}" "${FI_DB_NAME:=fixed_income}"
: "${FI_DB_USER:=fsr}"
: "${PORTFOLIO_DB_HOST:=127.0.0.1}" "${PORTFOLIO_DB_PORT:=5434}"
: "${PORTFOLIO_DB_NAME:=portfolio}" "${PORTFOLIO_DB_USER:=fsr}"

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

usage() {
    sed -n '3,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

pg_tool() {
    local d
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$d" ] && [ -x "$d/$1" ]; then
        printf '%s' "$d/$1"
    elif [ -x "/usr/lib/postgresql/15/bin/$1" ]; then
        printf '%s' "/usr/lib/postgresql/15/bin/$1"
    elif command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
    else
        die "$1 not found (install postgresql-client)"
    fi
}

prefix_of() {
    case "$1" in
    equity) echo EQUITY ;;
    fi | fixed-income | fixed_income) echo FI ;;
    portfolio) echo PORTFOLIO ;;
    *) return 1 ;;
    esac
}

rel() {
    case "$1" in
    "$root"/*) printf '%s' "${1#"$root"/}" ;;
    *) printf '%s' "$1" ;;
    esac
}

force=0
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --force) force=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    -*) die "unknown option $1 (--help)" ;;
    *) args+=("$1") ;;
    esac
    shift
done
if [ ${#args[@]} -lt 1 ] || [ ${#args[@]} -gt 2 ] || ! prefix_of "${args[0]}" >/dev/null; then
    printf 'usage: %s [--force] equity|fi|portfolio [FILE]   (make restore DB=equity [FILE=...])\n' \
        "$0" >&2
    exit 2
fi
p=$(prefix_of "${args[0]}")
h=${p}_DB_HOST port=${p}_DB_PORT dbv=${p}_DB_NAME user=${p}_DB_USER pw=${p}_DB_PASSWORD
host=${!h} port=${!port} db=${!dbv} user=${!user}
export PGPASSWORD=${!pw:-} PGCONNECT_TIMEOUT=10

file=${args[1]:-}
if [ -z "$file" ]; then
    file=$(find "$BACKUP_DIR" -maxdepth 1 -type f -name "$db-*.dump" 2>/dev/null | sort | tail -n 1)
    [ -n "$file" ] || die "no backup of $db in $(rel "$BACKUP_DIR")/ (make backup first, or give FILE)"
fi
if [ ! -f "$file" ] || [ ! -r "$file" ]; then die "$file: no such readable file; nothing restored"; fi

PSQL=$(pg_tool psql)
PG_RESTORE=$(pg_tool pg_restore)
PG_ISREADY=$(pg_tool pg_isready)

if ! "$PG_ISREADY" -q -h "$host" -p "$port" -t 3; then
    die "PostgreSQL for $db is not running on $host:$port: is the stack up? (make up); nothing restored"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fsr-restore.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 700 "$tmp"

# 1. Decode the whole archive (a truncated or corrupt file fails here, target untouched).
if ! "$PG_RESTORE" --list "$file" >"$tmp/toc" 2>"$tmp/err"; then
    die "$file cannot be read as a pg_dump archive ($(head -c 300 "$tmp/err" | tr '\n' ' ')); nothing restored"
fi
from_db=$(sed -n 's/^;[[:space:]]*dbname:[[:space:]]*//ip' "$tmp/toc" | head -n 1)
if [ -n "$from_db" ] && [ "$from_db" != "$db" ] && [ "$force" = 0 ]; then
    die "$file is a backup of database $from_db, not $db (--force to restore it anyway); nothing restored"
fi
if ! "$PG_RESTORE" --no-owner --no-acl -f "$tmp/restore.sql" "$file" 2>"$tmp/err"; then
    die "$file is damaged ($(head -c 300 "$tmp/err" | tr '\n' ' ')); nothing restored"
fi

# 2. One transaction: drop what is there, replay the archive.  Schemas the role cannot drop
# (owned by someone else) make the whole restore fail rather than leave a mix.
cat >"$tmp/pre.sql" <<EOF
SET lock_timeout = '$RESTORE_LOCK_TIMEOUT';
DO \$\$
DECLARE s name;
BEGIN
    FOR s IN SELECT nspname FROM pg_namespace
             WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
    LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', s);
    END LOOP;
END \$\$;
CREATE SCHEMA public;
ALTER SCHEMA public OWNER TO pg_database_owner;
GRANT USAGE ON SCHEMA public TO PUBLIC;
EOF
started=$(date +%s)
if ! "$PSQL" -X -q -v ON_ERROR_STOP=1 --single-transaction -h "$host" -p "$port" -U "$user" \
    -d "$db" -f "$tmp/pre.sql" -f "$tmp/restore.sql" >"$tmp/out" 2>&1; then
    sed 's/^/  /' "$tmp/out" | tail -n 20 >&2
    die "restoring $db from $(rel "$file") failed; rolled back, $db is unchanged"
fi

# 3. Fresh statistics for the planner, and a summary.
"$PSQL" -X -q -h "$host" -p "$port" -U "$user" -d "$db" -c 'ANALYZE' >/dev/null 2>&1 || true
summary=$("$PSQL" -X -qAt -h "$host" -p "$port" -U "$user" -d "$db" -c "
    SELECT count(*) || ' tables, ' || coalesce(sum((xpath('/row/c/text()',
             query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename),
                          false, true, '')))[1]::text::bigint), 0) || ' rows'
    FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')" 2>/dev/null ||
    echo '?')
printf 'restored %s on %s:%s from %s: %s (%ss, one transaction)\n' "$db" "$host" "$port" \
    "$(rel "$file")" "$summary" "$(($(date +%s) - started))"
