#!/usr/bin/env bash
# Install everything the build, the stack and the tests need, if missing.
#
#   scripts/install-deps.sh           Debian packages, then the npm test tools
#   scripts/install-deps.sh --list    print the Debian package list (one per line)
#   scripts/install-deps.sh --debs    Debian packages only
#   scripts/install-deps.sh --build-debs   only the packages that build the binaries (images)
#   scripts/install-deps.sh --list-build   print that subset
#   scripts/install-deps.sh --npm     npm test tools only
#
# Idempotent and fast when everything is present: dpkg-query decides; apt-get runs only when
# something is missing. The npm tools (buf, redocly, grpc-js) go under test/node_modules from
# the committed test/package-lock.json; when the npm registry is unreachable this only warns
# and the tests that need them skip.
set -euo pipefail

# The one list of Debian packages (Debian 12). .ci/run and `make up`/`make test` all use it.
FSR_DEB_PACKAGES=(
    build-essential meson ninja-build pkg-config
    libnghttp2-dev libevent-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
    libprotobuf-dev libprotoc-dev libpq-dev libhiredis-dev check libjansson-dev nanopb libssl-dev
    libhttp-parser-dev libnanopb-dev
    redis-server postgresql postgresql-client
    python3 python3-grpcio python3-protobuf python3-grpc-tools protobuf-compiler-grpc
    libgrpc++-dev nghttp2-client golang-github-gogo-googleapis-dev
    prometheus clang-format cppcheck curl wrk ca-certificates nodejs npm jq procps iproute2
    kubernetes-client python3-yaml python3-jsonschema
    python3-h2 # hpack for test/integration/h2_abuse.py
    quantlib-python python3-numpy python3-scipy
    clang libclang-rt-14-dev # libFuzzer targets (make fuzz; their corpus replay in make test)
)
export FSR_DEB_PACKAGES_LIST="${FSR_DEB_PACKAGES[*]}"

# The subset that builds the binaries (the container images' build stage: --build-debs).
# Every one must also be in the list above (test/k8s/dockerfile_check.py checks).
FSR_BUILD_DEB_PACKAGES=(
    build-essential meson ninja-build pkg-config
    libnghttp2-dev libevent-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
    libprotobuf-dev libpq-dev libhiredis-dev libjansson-dev libssl-dev libhttp-parser-dev
    nanopb libnanopb-dev python3 python3-protobuf golang-github-gogo-googleapis-dev
)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf 'install-deps: %s\n' "$*" >&2; }

# A package counts as present when dpkg has it installed, or, for the few that another
# package may provide (NodeSource's nodejs bundles npm), when its command is on PATH.
provided_by_command() {
    case "$1" in
    npm) command -v npm >/dev/null 2>&1 ;;
    nodejs) command -v node >/dev/null 2>&1 ;;
    kubernetes-client) command -v kubectl >/dev/null 2>&1 ;; # any kubectl with `kustomize`
    *) return 1 ;;
    esac
}

missing_debs() {
    local installed pkg
    # One dpkg-query for all; unknown packages go to stderr and simply don't show up.
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${FSR_DEB_PACKAGES[@]}" \
        2>/dev/null | awk '$2 == "installed" { sub(/:.*/, "", $1); print $1 }') || true
    for pkg in "${FSR_DEB_PACKAGES[@]}"; do
        if ! grep -qxF "$pkg" <<<"$installed" && ! provided_by_command "$pkg"; then
            printf '%s\n' "$pkg"
        fi
    done
}

install_debs() {
    local missing
    mapfile -t missing < <(missing_debs)
    if [ "${#missing[@]}" -eq 0 ]; then
        log "all ${#FSR_DEB_PACKAGES[@]} Debian packages present"
        return 0
    fi
    log "installing ${#missing[@]} missing package(s): ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            log "not root and no sudo: install these by hand: ${missing[*]}"
            return 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}"
    quiet_distro_daemons "${missing[@]}"
    local still
    still=$(missing_debs | tr '\n' ' ')
    if [ -n "${still// /}" ]; then
        log "still missing after apt-get: $still"
        return 1
    fi
}

# The project runs its own PostgreSQL clusters and Redis servers (scripts/deps.sh, never as
# root, data under .run/).  When this script has just installed the distro packages, their
# own instances (which Debian starts where services may start) would hold 5432 and 6379:
# stop and disable exactly those, so `make up` works on a fresh machine.  Instances that were
# already installed before are never touched.
quiet_distro_daemons() {
    local pkg sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    for pkg in "$@"; do
        case "$pkg" in
        postgresql | postgresql-15)
            if command -v pg_lsclusters >/dev/null 2>&1; then
                pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
                    log "stopping the distro's PostgreSQL cluster $ver/$name (the stack runs its own)"
                    "${sudo[@]}" pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
                    "${sudo[@]}" sed -i 's/^auto/manual/' "/etc/postgresql/$ver/$name/start.conf" \
                        2>/dev/null || true
                done
            fi
            ;;
        redis-server)
            log "stopping the distro's redis-server (the stack runs its own)"
            if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
                "${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
            else
                "${sudo[@]}" service redis-server stop >/dev/null 2>&1 || true
            fi
            ;;
        esac
    done
}

install_npm_tools() {
    local dir="$root/test"
    [ -f "$dir/package.json" ] || return 0
    if ! command -v npm >/dev/null 2>&1; then
        log "npm not found: skipping npm test tools (tests that need them will skip)"
        return 0
    fi
    # Up to date when npm's own record of the tree is newer than the lock file.
    if [ -f "$dir/node_modules/.package-lock.json" ] &&
        [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] &&
        [ "$dir/node_modules/.package-lock.json" -nt "$dir/package.json" ]; then
        log "npm test tools present (test/node_modules)"
        return 0
    fi
    log "installing npm test tools into test/node_modules"
    if (cd "$dir" && npm install --no-audit --no-fund --loglevel=error \
        --fetch-retries=1 --fetch-timeout=30000 >&2); then
        touch "$dir/node_modules/.package-lock.json"
    else
        log "npm install failed (registry unreachable?): tests that need buf/redocly will skip"
    fi
    return 0
}

case "${1:-all}" in
--list) printf '%s\n' "${FSR_DEB_PACKAGES[@]}" ;;
--list-build) printf '%s\n' "${FSR_BUILD_DEB_PACKAGES[@]}" ;;
--debs) install_debs ;;
--build-debs)
    FSR_DEB_PACKAGES=("${FSR_BUILD_DEB_PACKAGES[@]}")
    install_debs
    ;;
--npm) install_npm_tools ;;
all) install_debs && install_npm_tools ;;
*)
    echo "usage: $0 [--list|--list-build|--debs|--build-debs|--npm]" >&2
    exit 2
    ;;
esac
