#!/usr/bin/env bash
# `make test`: install what is missing, build, run every meson suite (each suite starts its own
# throwaway PostgreSQL/Redis on free ports: no `make up` needed), then, when CI=true or ASAN=1,
# the unit and integration suites again under AddressSanitizer+UBSan (build-asan/), then lint.
# The last line printed is the total over all of it, counted per test case:
#   N passed, N failed   (skips are reported on stderr, not counted)
# Exit status is non-zero when anything failed.
#
# Environment: CI, ASAN (1 = run the sanitizer pass), MESON_TEST_ARGS (extra `meson test`
# arguments, e.g. "--suite unit"), SKIP_LINT=1, SKIP_DEPS=1, SKIP_FUZZ=1.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

logs=()
steps=()
banner() { printf '\n==== %s\n' "$*"; }

step() { # step NAME COMMAND...: run, record NAME=rc
    local name=$1 rc=0
    shift
    "$@" || rc=$?
    steps+=(--step "$name=$rc")
    return "$rc"
}

# meson_suite NAME DIR [ARGS...]: run meson test in DIR; its testlog.json joins the count.
meson_suite() {
    local name=$1 dir=$2 rc=0
    shift 2
    local log="$dir/meson-logs/testlog.json"
    rm -f "$log"
    # shellcheck disable=SC2086 # MESON_TEST_ARGS is a list of words on purpose
    meson test -C "$dir" --print-errorlogs ${MESON_TEST_ARGS:-} "$@" || rc=$?
    if [ -f "$log" ]; then
        logs+=("$log")
    elif [ "$rc" != 0 ]; then
        steps+=(--step "$name=$rc") # meson itself failed before running anything
    fi
}

if [ "${SKIP_DEPS:-0}" != 1 ]; then
    banner "dependencies"
    step install-deps scripts/install-deps.sh
fi

banner "build (build/)"
if step build scripts/build.sh build; then
    banner "tests (build/)"
    meson_suite tests build
fi

# libFuzzer targets (test/fuzz/, scripts/fuzz.sh): a clang build of just those, each committed
# corpus replayed once under ASan+UBSan.  Fuzzing proper is `make fuzz`.
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
    banner "fuzz corpus replay (build-fuzz/: clang, libFuzzer, address,undefined)"
    if scripts/fuzz.sh check; then
        if step build-fuzz scripts/fuzz.sh build; then
            MESON_TEST_ARGS='' meson_suite fuzz-replay build-fuzz --no-rebuild --suite fuzz
        fi
    else
        echo "skipped: clang or libclang-rt-14-dev missing (scripts/install-deps.sh installs them)"
    fi
fi

if [ "${CI:-}" = true ] || [ "${ASAN:-0}" = 1 ]; then
    banner "sanitizer build (build-asan/: address,undefined)"
    if step build-asan scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false; then
        banner "sanitizer tests (build-asan/: unit, integration)"
        meson_suite tests-asan build-asan --suite unit --suite integration --timeout-multiplier 3
    fi
fi

if [ "${SKIP_LINT:-0}" != 1 ]; then
    banner "lint"
    step lint scripts/lint.sh
fi

banner "summary"
summary=$(/usr/bin/python3 scripts/test-summary.py "${steps[@]}" "${logs[@]}")
rc=$?
mkdir -p build
printf '%s\n' "$summary" >build/test-summary.txt
printf '%s\n' "$summary"
exit "$rc"
