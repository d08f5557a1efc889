#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make bench`: unary gRPC throughput and latency of the fsr runtime against a C++ gRPC server.
#
#   scripts/bench.sh [BUILD_DIR]          default BUILD_DIR: build (configured and built first)
#
# Servers, each started alone on a free port (PORT=0) and given the whole machine in turn:
#   fsr          BUILD_DIR/test/support/fsr-test-server (THREADS=$BENCH_THREADS, default 2)
#   grpc++ cb    BUILD_DIR/test/bench/grpcpp-bench-server MODE=callback (Debian libgrpc++-dev)
#   grpc++ async the same binary, MODE=async (one completion queue per thread)
# Each answers grpc.health.v1.Health/Check and fsrtest.v1.TestService/Echo.  Before a server is
# timed, test/bench/grpc_check.py sends it the exact h2load request bodies through grpcio and
# checks grpc-status OK and the decoded replies.  Then, per method and per client count:
#
#   h2load -t 1 -c C -m 10 --warm-up-time W -D D -d BODY \
#          -H 'content-type: application/grpc' -H 'te: trailers' --log-file LOG URL
#
# reporting requests/s (h2load), p50/p99 latency (test/bench/h2load_stats.py over LOG), the
# server's CPU seconds over the measured window (utime+stime from /proc/PID/stat) and its peak
# RSS (VmHWM).  Idle RSS is read after start-up (and after the load); a real service's idle RSS
# (fsr-equity with throwaway PostgreSQL + Redis from scripts/deps.sh) when that binary exists.
# Also runs BUILD_DIR/test/bench/json_bench when present.
#
# Every server runs once per round (BENCH_ROUNDS, default 2); each table row is the best round.
# Writes the tables to BUILD_DIR/bench-results.md.  Exits non-zero when a request failed, when
# fsr's c=64 throughput is below BENCH_MIN_RATIO (1.5) x the best C++ mode's for either method,
# or when an idle fsr server's RSS reaches 10 MiB.
#
# Environment: BENCH_DURATION (s, 10), BENCH_WARMUP (s, 2), BENCH_ROUNDS (2), BENCH_CLIENTS ("1 64"),
# BENCH_STREAMS (10), BENCH_THREADS (fsr server threads, 2), BENCH_GRPCPP_MODES
# ("callback async"), BENCH_MIN_RATIO (1.5), BENCH_IDLE_RSS_KIB (10240), BENCH_EQUITY (auto|0).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${1:-build}
py=/usr/bin/python3
[ -x "$py" ] || py=python3

duration=${BENCH_DURATION:-10}
warmup=${BENCH_WARMUP:-2}
clients=${BENCH_CLIENTS:-1 64}
streams=${BENCH_STREAMS:-10}
fsr_threads=${BENCH_THREADS:-2}
grpcpp_modes=${BENCH_GRPCPP_MODES:-callback async}
min_ratio=${BENCH_MIN_RATIO:-1.5}
idle_limit_kib=${BENCH_IDLE_RSS_KIB:-10240}
bench_equity=${BENCH_EQUITY:-auto}
rounds=${BENCH_ROUNDS:-2}

say() { echo "bench: $*" >&2; }
die() {
    say "$*"
    exit 1
}
case $duration$warmup$rounds in
*[!0-9]*) die "BENCH_DURATION, BENCH_WARMUP (seconds) and BENCH_ROUNDS are whole numbers" ;;
esac
[ "$duration" -ge 1 ] && [ "$warmup" -ge 1 ] && [ "$rounds" -ge 1 ] ||
    die "BENCH_DURATION, BENCH_WARMUP and BENCH_ROUNDS must be >= 1"

command -v h2load >/dev/null || die "h2load not found (apt-get install nghttp2-client)"
"$py" -c 'import grpc, grpc_tools' 2>/dev/null ||
    die "$py lacks grpcio/grpc_tools (apt-get install python3-grpcio python3-grpc-tools)"

scripts/build.sh "$build" >&2
fsr_bin=$build/test/support/fsr-test-server
cpp_bin=$build/test/bench/grpcpp-bench-server
equity_bin=$build/svc_equity/fsr-equity
json_bench=$build/test/bench/json_bench
[ -x "$fsr_bin" ] || die "$fsr_bin was not built"
[ -x "$cpp_bin" ] || die "$cpp_bin was not built (needs g++, libgrpc++-dev, protobuf-compiler-grpc)"

tmp=$(mktemp -d /tmp/fsr-bench.XXXXXX)
chmod 755 "$tmp" # scripts/deps.sh hands subdirectories to the postgres user
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -d "$tmp/equity/pg" ]; then scripts/deps.sh pg-stop "$tmp/equity/pg" >/dev/null 2>&1 || true; fi
    if [ -d "$tmp/equity/redis" ]; then scripts/deps.sh redis-stop "$tmp/equity/redis" >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$py" test/bench/grpc_check.py bodies "$tmp" "$root/proto" "$root/test/support" >&2
clk_tck=$(getconf CLK_TCK)

# ---- helpers ---------------------------------------------------------------------------------

# start_server NAME ENV... -- CMD...: starts CMD with ENV (plus PORT=0 and PORT_FILE), waits for
# the port; sets server_pid and server_port.
start_server() {
    local name=$1
    shift
    local envs=()
    while [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    local pf=$tmp/$name.port
    rm -f "$pf"
    env "${envs[@]}" PORT=0 PORT_FILE="$pf" "$@" >"$tmp/$name.log" 2>&1 &
    server_pid=$!
    local i
    for ((i = 0; i < 300; i++)); do
        if [ -s "$pf" ]; then
            server_port=$(tr -dc 0-9 <"$pf")
            [ -n "$server_port" ] && return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || {
            cat "$tmp/$name.log" >&2
            die "$name exited during start-up"
        }
        sleep 0.1
    done
    die "$name did not write its port within 30 s"
}

stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# proc_kib PID FIELD: VmRSS / VmHWM in KiB.
proc_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# cpu_ticks PID: utime + stime of every thread (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

now() { date +%s.%N; }

# sleep_until T: sleeps until the epoch time T (fractional seconds).
sleep_until() {
    local d
    d=$(awk -v t="$1" -v n="$(now)" 'BEGIN { d = t - n; printf "%.3f", (d > 0 ? d : 0) }')
    sleep "$d"
}

# server method clients req/s p50 p99 cpu_s cpu_us_per_req hwm_kib h2load_cpu_s round
results=$tmp/results.tsv
: >"$results"
failures=0

# run_h2load LABEL METHOD_PATH BODY CLIENTS: one timed run against server_pid/server_port.
run_h2load() {
    local label=$1 path=$2 body=$3 c=$4
    local out=$tmp/h2load.out log=$tmp/h2load.log
    rm -f "$log"
    local t0 c0 c1 h0 h1
    t0=$(now)
    h2load -t 1 -c "$c" -m "$streams" --warm-up-time "$warmup" -D "$duration" -d "$body" \
        -H 'content-type: application/grpc' -H 'te: trailers' --log-file "$log" \
        "http://127.0.0.1:$server_port$path" >"$out" 2>&1 &
    local hpid=$!
    # CPU over the measured window: h2load warms up for $warmup s once connected, then
    # measures for $duration s.  Both processes are sampled at the same two instants, 0.1 s
    # inside each end of that window (h2load exits at its end), and the difference is scaled
    # to $duration s.  No polling in between.
    sleep_until "$(awk -v t="$t0" -v w="$warmup" 'BEGIN { printf "%.3f", t + w + 0.1 }')"
    c0=$(cpu_ticks "$server_pid")
    h0=$(cpu_ticks "$hpid")
    sleep_until "$(awk -v t="$t0" -v w="$warmup" -v d="$duration" 'BEGIN { printf "%.3f", t + w + d - 0.1 }')"
    c1=$(cpu_ticks "$server_pid")
    h1=$(cpu_ticks "$hpid")
    local rc=0
    wait "$hpid" || rc=$?
    local rps stats
    rps=$(awk '/^finished in/ { gsub(",", "", $4); print $4 }' "$out")
    if [ "$rc" -ne 0 ] || [ -z "$rps" ] || ! stats=$("$py" test/bench/h2load_stats.py "$log"); then
        cat "$out" >&2
        say "FAIL $label $path c=$c: h2load failed"
        failures=$((failures + 1))
        return 0
    fi
    # shellcheck disable=SC2034  # ok, p90_ms and max_ms come with the eval below
    local requests=0 ok=0 failed=0 p50_ms=0 p90_ms=0 p99_ms=0 max_ms=0
    eval "$stats" # requests= ok= failed= p50_ms= p90_ms= p99_ms= max_ms=
    local p50=$p50_ms p99=$p99_ms
    local h2fail
    h2fail=$(awk '/^requests:/ { print $10 + $12 + $14 }' "$out")
    if [ "$failed" -ne 0 ] || [ "${h2fail:-1}" -ne 0 ] || ! grep -q "^status codes: [0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx" "$out"; then
        grep -E '^(requests|status codes):' "$out" >&2
        say "FAIL $label $path c=$c: $failed of $requests requests did not answer 2xx"
        failures=$((failures + 1))
    fi
    local cpu_s cpu_us hwm h2cpu
    local scale
    scale=$(awk -v d="$duration" 'BEGIN { printf "%.6f", d / (d - 0.2) }')
    cpu_s=$(awk -v a="$c0" -v b="$c1" -v t="$clk_tck" -v k="$scale" 'BEGIN { printf "%.2f", (b - a) * k / t }')
    h2cpu=$(awk -v a="$h0" -v b="$h1" -v t="$clk_tck" -v k="$scale" 'BEGIN { printf "%.2f", (b - a) * k / t }')
    cpu_us=$(awk -v s="$cpu_s" -v r="$rps" -v d="$duration" \
        'BEGIN { printf "%.1f", (r > 0 ? s * 1e6 / (r * d) : 0) }')
    hwm=$(proc_kib "$server_pid" VmHWM)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "${path##*/}" "$c" "$rps" "$p50" \
        "$p99" "$cpu_s" "$cpu_us" "$hwm" "$h2cpu" "$round" >>"$results"
    say "$(printf '%-15s %-5s c=%-3s %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms  cpu %5.2f s (h2load %5.2f s)  peak RSS %s MiB' \
        "$label" "${path##*/}" "$c" "$rps" "$p50" "$p99" "$cpu_s" "$h2cpu" "$(mib "$hwm")")"
}

idle=$tmp/idle.tsv # label idle_kib after_load_kib
: >"$idle"

# bench_server LABEL ENV... -- CMD...
bench_server() {
    local label=$1
    shift
    say "starting $label"
    start_server "$label" "$@"
    "$py" test/bench/grpc_check.py check "$tmp" "$server_port" >&2 ||
        die "$label failed the grpcio sanity check"
    sleep 1
    local idle_kib
    idle_kib=$(proc_kib "$server_pid" VmRSS)
    local c method
    for method in /grpc.health.v1.Health/Check /fsrtest.v1.TestService/Echo; do
        local body=$tmp/health.bin
        [ "$method" = /fsrtest.v1.TestService/Echo ] && body=$tmp/echo.bin
        for c in $clients; do
            run_h2load "$label" "$method" "$body" "$c"
        done
    done
    sleep 2
    printf '%s\t%s\t%s\n' "$label" "$idle_kib" "$(proc_kib "$server_pid" VmRSS)" >>"$idle"
    stop_server
}

# ---- the runs ------------------------------------------------------------------------------

load=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average before the run: $load (other work on the machine skews the numbers)"

for ((round = 1; round <= rounds; round++)); do
    say "round $round of $rounds"
    bench_server fsr THREADS="$fsr_threads" LOG_LEVEL=warn -- "$fsr_bin"
    for mode in $grpcpp_modes; do
        bench_server "grpc++ $mode" MODE="$mode" -- "$cpp_bin"
    done
done

# The best round of each (server, method, clients): the least disturbed by other work.
best_tsv=$tmp/best.tsv
awk -F'\t' '{ k = $1 FS $2 FS $3
               if (!(k in rps)) order[n++] = k
               if (!(k in rps) || $4 + 0 > rps[k] + 0) { rps[k] = $4; row[k] = $0 } }
     END { for (i = 0; i < n; i++) print row[order[i]] }' "$results" >"$best_tsv"

# A real service at idle: fsr-equity against throwaway PostgreSQL and Redis.
equity_note="fsr-equity not built"
if [ "$bench_equity" != 0 ] && [ -x "$equity_bin" ]; then
    say "starting fsr-equity (throwaway PostgreSQL + Redis) for its idle RSS"
    pg_port=$(scripts/deps.sh free-port)
    redis_port=$(scripts/deps.sh free-port)
    mkdir -p "$tmp/equity"
    chmod 755 "$tmp/equity"
    if DEPS_FAST=1 scripts/deps.sh pg-start "$tmp/equity/pg" "$pg_port" equity >&2 &&
        scripts/deps.sh redis-start "$tmp/equity/redis" "$redis_port" >&2; then
        if (start_server fsr-equity EQUITY_DB_HOST=127.0.0.1 EQUITY_DB_PORT="$pg_port" \
            EQUITY_DB_NAME=equity EQUITY_DB_USER=fsr EQUITY_REDIS_HOST=127.0.0.1 \
            EQUITY_REDIS_PORT="$redis_port" SHARED_REDIS_HOST=127.0.0.1 \
            SHARED_REDIS_PORT="$redis_port" THREADS="$fsr_threads" LOG_LEVEL=warn \
            LOG_DIR="$tmp/equity" -- "$equity_bin"
            trap 'kill -TERM $server_pid 2>/dev/null; wait $server_pid 2>/dev/null' EXIT
            "$py" test/bench/grpc_check.py check "$tmp" "$server_port" health >&2 || exit 1
            sleep 2
            printf 'fsr-equity\t%s\t\n' "$(proc_kib "$server_pid" VmRSS)" >>"$idle"
        ); then
            equity_note=""
        else
            equity_note="fsr-equity did not start or answer Health/Check (see above)"
        fi
    else
        equity_note="throwaway PostgreSQL/Redis did not start"
    fi
    [ -n "$equity_note" ] && say "$equity_note"
fi

# ---- report --------------------------------------------------------------------------------

ratio_lines=$tmp/ratios.txt
: >"$ratio_lines"
ratio_fail=0
# Best C++ mode per method at the largest client count vs fsr.
cmax=$(tr ' ' '\n' <<<"$clients" | sort -n | tail -n 1)
for m in Check Echo; do
    fsr_rps=$(awk -F'\t' -v m="$m" -v c="$cmax" '$1 == "fsr" && $2 == m && $3 == c { print $4 }' "$best_tsv")
    best=$(awk -F'\t' -v m="$m" -v c="$cmax" '$1 ~ /^grpc\+\+/ && $2 == m && $3 == c && $4 > b { b = $4; l = $1 } END { if (b) print b "\t" l }' "$best_tsv")
    if [ -z "$fsr_rps" ] || [ -z "$best" ]; then
        echo "- $m c=$cmax: no result to compare" >>"$ratio_lines"
        ratio_fail=1
        continue
    fi
    cpp_rps=${best%%$'\t'*}
    cpp_label=${best#*$'\t'}
    ratio=$(awk -v a="$fsr_rps" -v b="$cpp_rps" 'BEGIN { printf "%.2f", a / b }')
    verdict=ok
    awk -v r="$ratio" -v m="$min_ratio" 'BEGIN { exit !(r < m) }' && {
        verdict="FAIL (< ${min_ratio}x)"
        ratio_fail=1
    }
    printf -- '- %s, c=%s x %s streams: fsr %.0f req/s / %s %.0f req/s = **%sx** (required >= %sx): %s\n' \
        "$m" "$cmax" "$streams" "$fsr_rps" "$cpp_label" "$cpp_rps" "$ratio" "$min_ratio" \
        "$verdict" >>"$ratio_lines"
done

# The largest reading per server over the rounds.
idle_max=$tmp/idle-max.tsv
awk -F'\t' '{ if (!($1 in a)) order[n++] = $1
               if ($2 + 0 > a[$1] + 0) a[$1] = $2
               if ($3 != "" && $3 + 0 > b[$1] + 0) b[$1] = $3 }
     END { for (i = 0; i < n; i++) print order[i] "\t" a[order[i]] "\t" b[order[i]] }' \
    "$idle" >"$idle_max"
rss_fail=""
while IFS=$'\t' read -r label idle_kib _; do
    case $label in
    fsr | fsr-equity)
        [ "$idle_kib" -lt "$idle_limit_kib" ] || rss_fail="$rss_fail $label ($(mib "$idle_kib") MiB)"
        ;;
    esac
done <"$idle_max"

json_out=""
if [ -x "$json_bench" ]; then
    say "running json_bench"
    json_out=$("$json_bench" 2>&1) || json_out="json_bench failed: $json_out"
fi

report=$build/bench-results.md
{
    echo "# make bench results"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)); $(uname -sr); load average before the run: $load"
    echo
    echo "h2load $(h2load --version | awk '{ print $2 }'), \`h2load -t 1 -c C -m $streams --warm-up-time $warmup -D $duration -d BODY -H 'content-type: application/grpc' -H 'te: trailers' --log-file LOG URL\`;"
    echo "fsr-test-server THREADS=$fsr_threads; grpcpp-bench-server (grpc++ $(pkg-config --modversion grpc++ 2>/dev/null || echo '?')) MODE=callback|async; each server alone on the machine."
    echo
    echo "Server CPU s: utime+stime of all its threads over the ${duration} s measured window (${duration} s = one core busy throughout; $(nproc) cores); h2load CPU s: the same for the client (single-threaded, so ${duration} s = saturated)."
    echo
    echo "Best of $rounds round(s) per row (each round runs every server once, one after another)."
    echo
    echo "| server | method | clients x streams | requests/s | p50 ms | p99 ms | server CPU s | CPU us/req | peak RSS MiB | h2load CPU s | round |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    while IFS=$'\t' read -r label m c rps p50 p99 cpu cpu_us hwm h2cpu r; do
        printf '| %s | %s | %s x %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$m" \
            "$c" "$streams" "$rps" "$p50" "$p99" "$cpu" "$cpu_us" "$(mib "$hwm")" "$h2cpu" "$r"
    done <"$best_tsv"
    if [ "$rounds" -gt 1 ]; then
        echo
        echo "Every round (requests/s):"
        echo
        echo "| server | method | clients | $(seq -s ' | ' -f 'round %g' 1 "$rounds") |"
        echo "|---|---|---|$(printf -- '---:|%.0s' $(seq "$rounds"))"
        awk -F'\t' '{ k = $1 " | " $2 " | " $3
                       if (!(k in v)) order[n++] = k
                       v[k] = v[k] sprintf(" %.0f |", $4) }
             END { for (i = 0; i < n; i++) print "| " order[i] " |" v[order[i]] }' "$results"
    fi
    echo
    echo "Throughput ratio (fsr / best C++ mode):"
    echo
    cat "$ratio_lines"
    echo
    echo "| server | idle RSS MiB (after start-up) | RSS MiB (2 s after the load) |"
    echo "|---|---:|---:|"
    while IFS=$'\t' read -r label idle_kib after_kib; do
        printf '| %s | %s | %s |\n' "$label" "$(mib "$idle_kib")" \
            "$([ -n "$after_kib" ] && mib "$after_kib" || echo -)"
    done <"$idle_max"
    [ -n "$equity_note" ] && printf '\n(%s)\n' "$equity_note"
    if [ -n "$json_out" ]; then
        echo
        echo "json_bench:"
        echo
        echo '```'
        echo "$json_out"
        echo '```'
    fi
} >"$report"

echo
cat "$report"
echo
echo "written to $report"

rc=0
if [ "$failures" -ne 0 ]; then
    say "FAIL: $failures run(s) had failed requests"
    rc=1
fi
if [ "$ratio_fail" -ne 0 ]; then
    say "FAIL: fsr's throughput is below ${min_ratio}x the C++ server's"
    rc=1
fi
if [ -n "$rss_fail" ]; then
    say "FAIL: idle RSS not under $(mib "$idle_limit_kib") MiB:$rss_fail"
    rc=1
fi
exit $rc
