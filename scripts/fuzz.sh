#!/usr/bin/env bash
# libFuzzer targets (test/fuzz/): a separate clang build in build-fuzz/ with
# -fsanitize=fuzzer-no-link,address,undefined on all code and -fsanitize=fuzzer on the targets.
#
#   scripts/fuzz.sh check             exit 0 if clang and libFuzzer are installed, else 77
#   scripts/fuzz.sh build             configure (once) and build the fuzz targets only
#   scripts/fuzz.sh smoke             build, then replay every committed corpus once (-runs=0)
#   scripts/fuzz.sh run [TARGET...]   build, then fuzz each target (default: all) for
#                                     FUZZ_SECONDS (60) over test/fuzz/corpus/<target>/, new
#                                     inputs going to build-fuzz/fuzz-out/<target>/; prints
#                                     executions and crashes per target (`make fuzz`)
#   scripts/fuzz.sh merge [TARGET...] minimize (-merge=1) corpus + fuzz-out into the committed
#                                     corpus (files named regress_* are always kept)
#
# Environment: FUZZ_SECONDS (60), FUZZ_DIR (build-fuzz), FUZZ_JOBS (parallel targets in
# `run`; default 1), FUZZ_MAX_LEN (4096).  A crash leaves its input in
# build-fuzz/fuzz-out/<target>-crash-*; replay it with build-fuzz/test/fuzz/fuzz_<target> FILE.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
dir=${FUZZ_DIR:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
max_len=${FUZZ_MAX_LEN:-4096}
targets_all=(grpc_frame http1 json_pb pb_decode csv_import validate)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

log() { printf 'fuzz: %s\n' "$*" >&2; }

have_fuzzer() {
    command -v clang >/dev/null 2>&1 || return 1
    # libclang-rt-14-dev: the libFuzzer runtime clang links with -fsanitize=fuzzer.
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}' |
        clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1
}

build() {
    if ! have_fuzzer; then
        log "clang or libFuzzer (libclang-rt-14-dev) missing: scripts/install-deps.sh installs them"
        return 77
    fi
    if [ ! -f "$dir/build.ninja" ]; then
        # UBSan must abort (not just print) for libFuzzer to count a finding.
        CC=clang meson setup "$dir" -Dfuzz=true -Dbuildtype=debugoptimized \
            -Db_sanitize=address,undefined -Db_lundef=false \
            -Dc_args="-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
            -Dc_link_args="-fsanitize=fuzzer-no-link" || return 1
    fi
    local t names=()
    for t in "${targets_all[@]}"; do names+=("test/fuzz/fuzz_$t"); done
    ninja -C "$dir" "${names[@]}"
}

# run_one TARGET: fuzz for $seconds; prints "TARGET execs=N crashes=N".
run_one() {
    local t=$1
    local out="$dir/fuzz-out/$t" logf="$dir/fuzz-out/$t.log"
    mkdir -p "$out" "test/fuzz/corpus/$t"
    rm -f "$dir/fuzz-out/$t"-crash-* "$dir/fuzz-out/$t"-leak-* "$dir/fuzz-out/$t"-timeout-*
    "$dir/test/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -error_exitcode=1 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/fuzz-out/$t-" \
        "$out" "test/fuzz/corpus/$t" >"$logf" 2>&1
    local rc=$?
    local execs crashes
    execs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$logf" | tail -1)
    crashes=$(find "$dir/fuzz-out" -maxdepth 1 -name "$t-crash-*" -o -maxdepth 1 -name "$t-leak-*" \
        -o -maxdepth 1 -name "$t-timeout-*" -o -maxdepth 1 -name "$t-oom-*" | wc -l)
    printf '%-12s execs=%-10s crashes=%s rc=%s seconds=%s\n' "$t" "${execs:-?}" "$crashes" "$rc" \
        "$seconds"
    [ "$rc" = 0 ] && [ "$crashes" = 0 ]
}

cmd=${1:-run}
[ "$#" -gt 0 ] && shift
targets=("$@")
[ "${#targets[@]}" -eq 0 ] && targets=("${targets_all[@]}")

case "$cmd" in
check) have_fuzzer || exit 77 ;;
build) build ;;
smoke)
    build || exit $?
    meson test -C "$dir" --no-rebuild --print-errorlogs --suite fuzz
    ;;
run)
    build || exit $?
    jobs=${FUZZ_JOBS:-1} rc=0
    results=$(mktemp)
    for t in "${targets[@]}"; do
        (run_one "$t" >>"$results") &
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    done
    wait
    printf '%s\n' "per target (FUZZ_SECONDS=$seconds):"
    sort "$results"
    grep -qv 'crashes=0 rc=0' "$results" && rc=1
    rm -f "$results"
    exit "$rc"
    ;;
merge)
    build || exit $?
    for t in "${targets[@]}"; do
        fresh="$dir/fuzz-merge/$t"
        rm -rf "$fresh" && mkdir -p "$fresh"
        "$dir/test/fuzz/fuzz_$t" -merge=1 -max_len="$max_len" "$fresh" "test/fuzz/corpus/$t" \
            "$dir/fuzz-out/$t" >"$dir/fuzz-merge/$t.log" 2>&1 || { log "$t: merge failed"; exit 1; }
        # regress_* are inputs that once found a bug: kept whatever coverage they add.
        find "test/fuzz/corpus/$t" -type f ! -name 'regress_*' -delete
        cp "$fresh"/* "test/fuzz/corpus/$t"/
        log "$t: $(find "test/fuzz/corpus/$t" -type f | wc -l) files, $(du -sh "test/fuzz/corpus/$t" | cut -f1)"
    done
    ;;
*)
    echo "usage: $0 [check|build|smoke|run|merge] [TARGET...]" >&2
    exit 2
    ;;
esac
