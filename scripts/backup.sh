#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Backs up the stack's databases: one pg_dump per database, custom format (-Fc: compressed,
# restorable table by table), into BACKUP_DIR/<database>-<UTC timestamp>.dump.
#
#   scripts/backup.sh [--dir DIR] [equity|fi|portfolio ...]     (no name: all three)
#   make backup
#
# Each dump is one consistent snapshot of its database (pg_dump reads everything in a single
# repeatable-read transaction while the services keep running).  The three databases live in
# three clusters, so the set is three snapshots taken one after the other, not one instant.
# Nothing is written unless every database asked for answers; a dump is written to *.part,
# checked with pg_restore --list, then renamed, so a listed file is always a whole archive.
#
# Connection: the variables the services read (defaults as in scripts/stack.sh):
#   EQUITY_DB_HOST (127.0.0.1; a directory means a unix socket) EQUITY_DB_PORT (5432)
#   EQUITY_DB_NAME (equity) EQUITY_DB_USER (fsr) EQUITY_DB_PASSWORD, and FI_DB_* (5433,
#   fixed_income), PORTFOLIO_DB_* (5434, portfolio).  BACKUP_DIR: default backups/.
# Restore with scripts/restore.sh (make restore DB=equity [FILE=...]).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prog=backup

BACKUP_DIR=${BACKUP_DIR:-$root/backups}
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
    sed -n '3,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# The PostgreSQL client tools of the server's major version when installed, else PATH's.
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

# KEY -> "PREFIX" for equity|fi|portfolio (and the database names themselves).
prefix_of() {
    case "$1" in
    equity) echo EQUITY ;;
    fi | fixed-income | fixed_income) echo FI ;;
    portfolio) echo PORTFOLIO ;;
    *) return 1 ;;
    esac
}

# Paths under the repository are shown relative to it.
rel() {
    case "$1" in
    "$root"/*) printf '%s' "${1#"$root"/}" ;;
    *) printf '%s' "$1" ;;
    esac
}

want=()
while [ $# -gt 0 ]; do
    case "$1" in
    --dir)
        [ $# -ge 2 ] || die "--dir needs a directory"
        BACKUP_DIR=$2
        shift
        ;;
    --dir=*) BACKUP_DIR=${1#--dir=} ;;
    -h | --help)
        usage
        exit 0
        ;;
    -*) die "unknown option $1 (--help)" ;;
    *)
        prefix_of "$1" >/dev/null || die "unknown database '$1' (equity, fi, portfolio)"
        want+=("$1")
        ;;
    esac
    shift
done
[ ${#want[@]} -gt 0 ] || want=(equity "fi" portfolio)

PG_DUMP=$(pg_tool pg_dump)
PG_RESTORE=$(pg_tool pg_restore)
PG_ISREADY=$(pg_tool pg_isready)

# Every database must answer before anything is written: a backup set is all or nothing.
for key in "${want[@]}"; do
    p=$(prefix_of "$key")
    h=${p}_DB_HOST port=${p}_DB_PORT db=${p}_DB_NAME
    if ! "$PG_ISREADY" -q -h "${!h}" -p "${!port}" -t 3; then
        die "PostgreSQL for ${!db} is not running on ${!h}:${!port}: is the stack up? (make up)"
    fi
done

mkdir -p "$BACKUP_DIR" || die "cannot create $BACKUP_DIR"
BACKUP_DIR=$(cd "$BACKUP_DIR" && pwd)

# One timestamp for the set; never overwrite an earlier backup taken in the same second.
while :; do
    ts=$(date -u +%Y%m%dT%H%M%SZ)
    clash=0
    for key in "${want[@]}"; do
        db=$(prefix_of "$key")_DB_NAME
        [ -e "$BACKUP_DIR/${!db}-$ts.dump" ] && clash=1
    done
    [ "$clash" = 0 ] && break
    sleep 1
done

failed=0
for key in "${want[@]}"; do
    p=$(prefix_of "$key")
    h=${p}_DB_HOST port=${p}_DB_PORT db=${p}_DB_NAME user=${p}_DB_USER pw=${p}_DB_PASSWORD
    out="$BACKUP_DIR/${!db}-$ts.dump"
    rm -f "$out.part"
    if ! PGPASSWORD=${!pw:-} PGCONNECT_TIMEOUT=10 "$PG_DUMP" -w -Fc -h "${!h}" -p "${!port}" \
        -U "${!user}" -d "${!db}" -f "$out.part"; then
        rm -f "$out.part"
        printf '%s: %s: pg_dump failed (see above)\n' "$prog" "${!db}" >&2
        failed=1
        continue
    fi
    if ! "$PG_RESTORE" --list "$out.part" >/dev/null; then
        rm -f "$out.part"
        printf '%s: %s: the dump does not read back (pg_restore --list)\n' "$prog" "${!db}" >&2
        failed=1
        continue
    fi
    mv -f "$out.part" "$out"
    tables=$("$PG_RESTORE" --list "$out" | grep -c ' TABLE DATA ' || true)
    printf '%-14s %s  (%s bytes, %s tables)\n' "${!db}" "$(rel "$out")" "$(wc -c <"$out")" "$tables"
done
exit "$failed"
