#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Throwaway PostgreSQL and Redis instances for tests and the dev stack.
#
#   scripts/deps.sh pg-start DIR PORT [DBNAME...]   cluster in DIR/data, socket in DIR, log DIR/log
#   scripts/deps.sh pg-stop DIR
#   scripts/deps.sh redis-start DIR PORT            data, DIR/redis.pid, DIR/redis.log
#   scripts/deps.sh redis-stop DIR
#   scripts/deps.sh free-port                       prints a free TCP port on 127.0.0.1
#
# PostgreSQL refuses to run as root and Redis should not, so when invoked as root both run as
# an unprivileged user (postgres for PostgreSQL; the owner of DIR or `redis` for Redis) via
# runuser, and DIR is chown'ed to that user.  As a normal user everything runs directly.
#
# pg-start creates (idempotently) the login role `fsr` and each DBNAME owned by it; the
# superuser is `postgres`, authentication is `trust` (local development and tests only).
# Environment: DEPS_FAST=1 turns fsync off (tests), DEPS_TIMEOUT (seconds, default 60).
set -euo pipefail

prog=${0##*/}
timeout=${DEPS_TIMEOUT:-60}

die() {
    echo "$prog: $*" >&2
    exit 1
}

log() {
    echo "$prog: $*" >&2
}

is_root() {
    [ "$(id -u)" -eq 0 ]
}

# Runs "$@" as user $1 when root, directly otherwise.
as_user() {
    local user=$1
    shift
    if is_root; then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

pg_bindir() {
    local d=""
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
    fi
    if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
        d=/usr/lib/postgresql/15/bin
    fi
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] || die "PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/15/bin)"
    echo "$d"
}

# Creates DIR (absolute path printed) and hands it to $user when root.
prepare_dir() {
    local dir=$1 user=$2
    mkdir -p "$dir" || die "cannot create $dir"
    dir=$(cd "$dir" && pwd)
    if is_root; then
        chown "$user:" "$dir" || die "cannot chown $dir to $user"
        runuser -u "$user" -- test -w "$dir" ||
            die "$dir is not writable by user $user (is a parent directory private?)"
    else
        [ -w "$dir" ] || die "$dir is not writable"
    fi
    echo "$dir"
}

check_port() {
    case $1 in
    '' | *[!0-9]*) die "bad port '$1'" ;;
    esac
    [ "$1" -gt 0 ] && [ "$1" -lt 65536 ] || die "bad port '$1'"
}

pg_user() {
    if is_root; then
        echo postgres
    else
        id -un
    fi
}

pg_psql() {
    local dir=$1 port=$2
    shift 2
    as_user "$(pg_user)" "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres \
        -d postgres "$@"
}

cmd_pg_start() {
    [ $# -ge 2 ] || die "usage: $prog pg-start DIR PORT [DBNAME...]"
    local dir=$1 port=$2
    shift 2
    check_port "$port"
    local db
    for db in "$@"; do
        [[ $db =~ ^[a-z_][a-z0-9_]*$ ]] || die "bad database name '$db' (want [a-z_][a-z0-9_]*)"
    done
    BIN=$(pg_bindir)
    local user
    user=$(pg_user)
    if is_root; then
        id "$user" >/dev/null 2>&1 || die "user $user does not exist (install postgresql)"
    fi
    dir=$(prepare_dir "$dir" "$user")
    local data=$dir/data

    if [ ! -f "$data/PG_VERSION" ]; then
        log "initdb $data"
        local extra=()
        [ "${DEPS_FAST:-0}" = 1 ] && extra+=(--no-sync)
        if ! as_user "$user" "$BIN/initdb" -D "$data" -A trust -U postgres -E UTF8 \
            --locale=C "${extra[@]}" >"$dir/initdb.log" 2>&1; then
            cat "$dir/initdb.log" >&2
            die "initdb failed"
        fi
    fi

    if as_user "$user" "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "postgres already running in $data"
    else
        local opts="-p $port -k $dir -c listen_addresses=127.0.0.1"
        if [ "${DEPS_FAST:-0}" = 1 ]; then
            opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        fi
        log "starting postgres on 127.0.0.1:$port (socket dir $dir)"
        if ! as_user "$user" "$BIN/pg_ctl" -D "$data" -l "$dir/log" -w -t "$timeout" \
            -o "$opts" start >/dev/null; then
            tail -n 20 "$dir/log" >&2 || true
            die "postgres failed to start (log: $dir/log)"
        fi
    fi

    local i=0
    until as_user "$user" "$BIN/pg_isready" -q -h "$dir" -p "$port" -t 1; do
        i=$((i + 1))
        if [ "$i" -ge "$((timeout * 5))" ]; then
            tail -n 20 "$dir/log" >&2 || true
            die "postgres not ready on port $port after ${timeout}s (is another cluster in $dir on another port?)"
        fi
        sleep 0.2
    done

    pg_psql "$dir" "$port" -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fsr') THEN
            CREATE ROLE fsr LOGIN;
        END IF; END \$\$;" || die "cannot create role fsr"
    for db in "$@"; do
        if [ -z "$(pg_psql "$dir" "$port" -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
            pg_psql "$dir" "$port" -c "CREATE DATABASE \"$db\" OWNER fsr" ||
                die "cannot create database $db"
        fi
    done
    log "postgres ready: host=$dir port=$port user=fsr${*:+ dbs: $*}"
}

cmd_pg_stop() {
    [ $# -eq 1 ] || die "usage: $prog pg-stop DIR"
    local dir=$1
    local data=$dir/data
    [ -f "$data/PG_VERSION" ] || return 0
    [ -f "$data/postmaster.pid" ] || return 0
    BIN=$(pg_bindir)
    local user
    user=$(pg_user)
    if ! as_user "$user" "$BIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1; then
        as_user "$user" "$BIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
            die "cannot stop postgres in $data"
    fi
    log "postgres in $data stopped"
}

redis_pid_alive() {
    local pidfile=$1
    [ -s "$pidfile" ] || return 1
    local pid
    pid=$(cat "$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null
}

cmd_redis_start() {
    [ $# -eq 2 ] || die "usage: $prog redis-start DIR PORT"
    local dir=$1 port=$2
    check_port "$port"
    command -v redis-server >/dev/null 2>&1 || die "redis-server not found"
    command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found"
    mkdir -p "$dir" || die "cannot create $dir"
    local user
    user=$(id -un)
    if is_root; then
        # Reuse an unprivileged owner of DIR (e.g. postgres when sharing a directory),
        # otherwise the Debian `redis` user, otherwise postgres.
        user=$(stat -c %U "$dir")
        if [ "$user" = root ] || [ "$user" = UNKNOWN ]; then
            user=${DEPS_REDIS_USER:-redis}
            id "$user" >/dev/null 2>&1 || user=postgres
            id "$user" >/dev/null 2>&1 || die "no unprivileged user to run redis as"
        fi
    fi
    dir=$(prepare_dir "$dir" "$user")

    if redis_pid_alive "$dir/redis.pid" &&
        [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
        log "redis already running on port $port"
        return 0
    fi
    log "starting redis on 127.0.0.1:$port (dir $dir, user $user)"
    as_user "$user" redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
        --appendonly no --daemonize yes --pidfile "$dir/redis.pid" \
        --logfile "$dir/redis.log" || die "redis-server failed to start"
    local i=0
    until [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; do
        i=$((i + 1))
        if [ "$i" -ge "$((timeout * 10))" ]; then
            tail -n 20 "$dir/redis.log" >&2 || true
            die "redis not ready on port $port after ${timeout}s"
        fi
        sleep 0.1
    done
    # The pid file is written just after the port opens; wait for it so redis-stop works.
    i=0
    until redis_pid_alive "$dir/redis.pid"; do
        i=$((i + 1))
        [ "$i" -lt 50 ] || die "redis started but $dir/redis.pid is missing"
        sleep 0.1
    done
    log "redis ready: 127.0.0.1:$port"
}

cmd_redis_stop() {
    [ $# -eq 1 ] || die "usage: $prog redis-stop DIR"
    local pidfile=$1/redis.pid
    redis_pid_alive "$pidfile" || return 0
    local pid
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    local i=0
    while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -ge 100 ]; then
            log "redis (pid $pid) ignored SIGTERM; killing"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    rm -f "$pidfile"
    log "redis (pid $pid) stopped"
}

cmd_free_port() {
    local py=/usr/bin/python3
    [ -x "$py" ] || py=python3
    "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

[ $# -ge 1 ] || die "usage: $prog pg-start|pg-stop|redis-start|redis-stop|free-port ..."
cmd=$1
shift
case $cmd in
pg-start) cmd_pg_start "$@" ;;
pg-stop) cmd_pg_stop "$@" ;;
redis-start) cmd_redis_start "$@" ;;
redis-stop) cmd_redis_stop "$@" ;;
free-port) cmd_free_port "$@" ;;
*) die "unknown command '$cmd'" ;;
esac
