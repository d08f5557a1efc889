#!/usr/bin/env bash
# Static checks: clang-format (the repo's .clang-format), cppcheck, and shellcheck when it is
# installed. Exit status non-zero when any check finds something.
#
#   scripts/lint.sh            all checks
#   scripts/lint.sh --fix      reformat the C sources in place, then run the checks
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

fix=0
[ "${1:-}" = "--fix" ] && fix=1

status=0
say() { printf 'lint: %s\n' "$*"; }

# Hand-written C only: generated code lives in the build trees, which are skipped, as are the
# npm tools.
c_sources() {
    find lib svc_* rest_gateway test -type f \( -name '*.c' -o -name '*.h' \) \
        -not -path '*/node_modules/*' -not -path '*/build*/*' -not -path '*/gen_py/*' \
        2>/dev/null | LC_ALL=C sort
}
mapfile -t sources < <(c_sources)

# --- clang-format -------------------------------------------------------------------------
if ! command -v clang-format >/dev/null 2>&1; then
    say "clang-format not installed (scripts/install-deps.sh installs it)"
    status=1
elif [ "${#sources[@]}" -gt 0 ]; then
    [ "$fix" = 1 ] && clang-format -i "${sources[@]}"
    bad=()
    for f in "${sources[@]}"; do
        clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
    done
    if [ "${#bad[@]}" -gt 0 ]; then
        say "clang-format: ${#bad[@]} file(s) need formatting (scripts/lint.sh --fix, or clang-format -i):"
        printf '  %s\n' "${bad[@]}"
        status=1
    else
        say "clang-format: ${#sources[@]} files ok"
    fi
fi

# --- cppcheck -----------------------------------------------------------------------------
mapfile -t cdirs < <(for d in lib svc_* rest_gateway; do [ -d "$d" ] && echo "$d"; done)
if ! command -v cppcheck >/dev/null 2>&1; then
    say "cppcheck not installed (scripts/install-deps.sh installs it)"
    status=1
elif [ "${#cdirs[@]}" -gt 0 ]; then
    # Generated protobuf-c headers live in the build tree; they are not needed for these
    # checks (missingInclude is suppressed), so cppcheck sees only the hand-written code.
    # -D__GNUC__ with --max-configs=1 keeps one configuration per file: the one we build.
    # readdirCalled: readdir_r is deprecated; readdir on a private DIR* is thread-safe in glibc.
    # <sys/queue.h> is macros only: hand it to cppcheck so LIST_HEAD() & co. parse, without
    # pulling in the rest of the system headers.
    pre=()
    queue_h=$(printf '#include <sys/queue.h>\n' | cc -M -x c - 2>/dev/null |
        grep -o '[^ ]*/sys/queue\.h' | head -n 1) || true
    [ -n "$queue_h" ] && pre+=(--include="$queue_h")
    if cppcheck --quiet --error-exitcode=1 --inline-suppr "${pre[@]}" \
        --enable=warning,performance,portability \
        --std=c11 --library=posix -D__GNUC__ -D__linux__ --max-configs=1 \
        -j "$(nproc 2>/dev/null || echo 2)" \
        -I lib/include \
        --suppress=missingIncludeSystem --suppress=missingInclude \
        --suppress=unmatchedSuppression --suppress=unknownMacro --suppress=readdirCalled \
        -i build --template='{file}:{line}: {severity}({id}): {message}' \
        "${cdirs[@]}"; then
        say "cppcheck: ok (${cdirs[*]})"
    else
        say "cppcheck: findings above"
        status=1
    fi
fi

# --- shellcheck (optional) ----------------------------------------------------------------
if command -v shellcheck >/dev/null 2>&1; then
    mapfile -t shells < <(
        {
            find scripts test -type f -name '*.sh' -not -path '*/node_modules/*' 2>/dev/null
            [ -f .ci/run ] && echo .ci/run
        } | LC_ALL=C sort
    )
    if [ "${#shells[@]}" -gt 0 ]; then
        if shellcheck -x -S warning "${shells[@]}"; then
            say "shellcheck: ${#shells[@]} scripts ok"
        else
            say "shellcheck: findings above"
            status=1
        fi
    fi
else
    say "shellcheck not installed: skipped"
fi

exit "$status"
