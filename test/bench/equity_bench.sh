#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# fsr-equity through gRPC (docs/PERFORMANCE.md, "Equity"): starts a throwaway PostgreSQL and
# Redis (scripts/deps.sh) on free ports, runs test/bench/equity_bench against a real
# fsr-equity, tears them down.
#
#   test/bench/equity_bench.sh [BUILD_DIR]        default BUILD_DIR: build
#
# PostgreSQL runs with fsync and synchronous_commit on (BENCH_FAST=1: off, as the test suites
# run it).  Knobs passed to equity_bench: BENCH_ROWS (1000000), BENCH_BATCH (10000),
# BENCH_INFLIGHT (1), BENCH_THREADS (2), BENCH_AN_YEARS (10), BENCH_AN_CALLS (200).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
bench=$build/test/bench/equity_bench
equity=$build/svc_equity/fsr-equity
[ -x "$bench" ] && [ -x "$equity" ] || {
    echo "equity_bench.sh: build $bench and $equity first (ninja -C $build)" >&2
    exit 1
}
deps=$root/scripts/deps.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fsr-ebench.XXXXXX")
chmod 755 "$tmp"
cleanup() {
    "$deps" redis-stop "$tmp/redis" >/dev/null 2>&1 || true
    "$deps" pg-stop "$tmp/pg" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

export DEPS_FAST=${BENCH_FAST:-0}
pg_port=$("$deps" free-port)
"$deps" pg-start "$tmp/pg" "$pg_port" equity >&2
redis_port=$("$deps" free-port)
"$deps" redis-start "$tmp/redis" "$redis_port" >&2
echo "postgres: fsync $([ "$DEPS_FAST" = 1 ] && echo off || echo on); $(nproc) CPUs"
BENCH_PG_HOST=$tmp/pg BENCH_PG_PORT=$pg_port BENCH_REDIS_PORT=$redis_port "$bench" "$equity"
