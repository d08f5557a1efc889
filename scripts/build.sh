#!/usr/bin/env bash
# Configure (when needed) and build one build directory.
#
#   scripts/build.sh [DIR [MESON_SETUP_OPTION...]]     default DIR: build
#
# `make build` uses build/; the sanitizer build uses build-asan/ with
# -Db_sanitize=address,undefined. Options are applied only when DIR is first configured.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dir=${1:-build}
[ "$#" -gt 0 ] && shift

if [ ! -f "$dir/build.ninja" ]; then
    if [ -f "$dir/meson-private/coredata.dat" ]; then
        meson setup --reconfigure "$dir" "$@"
    else
        meson setup "$dir" "$@"
    fi
fi
ninja -C "$dir"
