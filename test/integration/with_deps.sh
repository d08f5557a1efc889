#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs a test binary against a throwaway PostgreSQL and/or Redis (scripts/deps.sh) on free
# ports in a temp dir, and always tears them down.
#
#   with_deps.sh [--pg] [--redis] -- PROGRAM [ARGS...]      (no flag: both)
#
# Exports TEST_PG_CONNINFO (database fsr_test, user fsr), TEST_PG_HOST, TEST_PG_PORT,
# TEST_REDIS_HOST, TEST_REDIS_PORT.  Exits 77 (meson's "skipped") when the server binaries
# are missing.  Progress goes to stderr, so a TAP stream on stdout stays clean.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
deps=${DEPS_SH:-$here/../../scripts/deps.sh}

want_pg=0
want_redis=0
while [ $# -gt 0 ]; do
    case $1 in
    --pg) want_pg=1 ;;
    --redis) want_redis=1 ;;
    --) shift; break ;;
    *) break ;;
    esac
    shift
done
if [ $want_pg = 0 ] && [ $want_redis = 0 ]; then
    want_pg=1
    want_redis=1
fi
[ $# -ge 1 ] || { echo "usage: $0 [--pg] [--redis] -- PROGRAM [ARGS...]" >&2; exit 2; }

skip() {
    echo "with_deps: $*; skipping" >&2
    exit 77
}

if [ $want_pg = 1 ]; then
    bindir=$(pg_config --bindir 2>/dev/null || true)
    [ -n "$bindir" ] && [ -x "$bindir/initdb" ] || bindir=/usr/lib/postgresql/15/bin
    [ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ] || skip "PostgreSQL server binaries not found"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || skip "running as root without a postgres user"
    fi
fi
if [ $want_redis = 1 ]; then
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 ||
        skip "redis-server not found"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fsr-it.XXXXXX") || exit 1
chmod 755 "$tmp"

cleanup() {
    [ $want_redis = 1 ] && "$deps" redis-stop "$tmp/redis" >&2 2>&1
    [ $want_pg = 1 ] && "$deps" pg-stop "$tmp/pg" >&2 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export DEPS_FAST=1

# A port found free can be taken before the server binds it: retry with another.
if [ $want_pg = 1 ]; then
    ok=0
    for _ in 1 2 3; do
        pg_port=$("$deps" free-port) || exit 1
        if "$deps" pg-start "$tmp/pg" "$pg_port" fsr_test >&2; then
            ok=1
            break
        fi
        "$deps" pg-stop "$tmp/pg" >&2 2>&1
    done
    [ $ok = 1 ] || { echo "with_deps: cannot start postgres" >&2; exit 1; }
    export TEST_PG_HOST=$tmp/pg
    export TEST_PG_PORT=$pg_port
    export TEST_PG_DIR=$tmp/pg # for scripts/deps.sh pg-stop/pg-start
    export TEST_PG_CONNINFO="host=$tmp/pg port=$pg_port dbname=fsr_test user=fsr"
fi
if [ $want_redis = 1 ]; then
    ok=0
    for _ in 1 2 3; do
        redis_port=$("$deps" free-port) || exit 1
        if "$deps" redis-start "$tmp/redis" "$redis_port" >&2; then
            ok=1
            break
        fi
        "$deps" redis-stop "$tmp/redis" >&2 2>&1
    done
    [ $ok = 1 ] || { echo "with_deps: cannot start redis" >&2; exit 1; }
    export TEST_REDIS_HOST=127.0.0.1
    export TEST_REDIS_PORT=$redis_port
    export TEST_REDIS_DIR=$tmp/redis # for scripts/deps.sh redis-stop/redis-start
fi

"$@"
exit $?
