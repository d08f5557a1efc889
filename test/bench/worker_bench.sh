#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Throughput of fsr-worker on no-op jobs (docs/PERFORMANCE.md, "Worker"): starts a throwaway
# PostgreSQL and Redis (scripts/deps.sh) on free ports, runs test/bench/worker_bench, tears
# them down.
#
#   test/bench/worker_bench.sh [BUILD_DIR]        default BUILD_DIR: build
#
# Durability is production-like unless asked otherwise: PostgreSQL with fsync and
# synchronous_commit on (BENCH_FAST=1: off, as the test suites run it), Redis with its
# append-only file, fsync every second (BENCH_REDIS_AOF=0: none; always: every write).
# Other knobs go to worker_bench: BENCH_JOBS (100000), BENCH_THREADS (1), BENCH_BATCH,
# BENCH_MODE (backlog | live | both | enqueue), BENCH_TYPE (noop | test.effect), BENCH_PREFETCH,
# BENCH_ENQ_BATCH (0: fsr_job_enqueue per job; N: fsr_job_enqueue_batch of N jobs).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
bench=$build/test/bench/worker_bench
worker=$build/svc_worker/fsr-worker
[ -x "$bench" ] && [ -x "$worker" ] || {
    echo "worker_bench.sh: build $bench and $worker first (ninja -C $build)" >&2
    exit 1
}
deps=$root/scripts/deps.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fsr-wbench.XXXXXX")
chmod 755 "$tmp"
cleanup() {
    "$deps" redis-stop "$tmp/redis" >/dev/null 2>&1 || true
    "$deps" pg-stop "$tmp/pg" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

export DEPS_FAST=${BENCH_FAST:-0}
pg_port=$("$deps" free-port)
"$deps" pg-start "$tmp/pg" "$pg_port" >&2
redis_port=$("$deps" free-port)
"$deps" redis-start "$tmp/redis" "$redis_port" >&2
aof=${BENCH_REDIS_AOF:-everysec}
if [ "$aof" != 0 ]; then
    redis-cli -p "$redis_port" CONFIG SET appendfsync "$aof" >/dev/null
    redis-cli -p "$redis_port" CONFIG SET appendonly yes >/dev/null
fi
echo "postgres: fsync $([ "$DEPS_FAST" = 1 ] && echo off || echo on); redis: appendonly" \
    "$([ "$aof" = 0 ] && echo no || echo "yes, appendfsync $aof"); $(nproc) CPUs"
BENCH_PG_HOST=$tmp/pg BENCH_PG_PORT=$pg_port BENCH_REDIS_PORT=$redis_port "$bench" "$worker"
