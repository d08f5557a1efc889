#!/usr/bin/env bash
# The local development stack: PostgreSQL x3, Redis x4, the three services, three workers and
# the REST gateway, all as the current user's background processes with data, pid files and
# logs under .run/ (git-ignored). PostgreSQL runs as the `postgres` user when we are root.
#
#   scripts/stack.sh up|down|restart|status|health
#   scripts/stack.sh logs [COMPONENT...]       follow logs (all, or e.g. equity, gateway)
#   scripts/stack.sh migrate                   run each service with --migrate-only
#   scripts/stack.sh psql equity|fi|portfolio  psql shell on that service's database
#   scripts/stack.sh backup                    pg_dump each database into backups/
#   scripts/stack.sh restore DB [FILE]         restore DB (equity|fi|portfolio) from a backup
#   scripts/stack.sh scale equity|fi|portfolio N   run N replicas of a service and its worker
#   scripts/stack.sh env                       print the environment the services get
#
# Every port is an environment variable (see README.md); defaults work on one machine.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deps="$root/scripts/deps.sh"

RUN_DIR=${RUN_DIR:-$root/.run}
BUILD_DIR=${BUILD_DIR:-build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$root/$BUILD_DIR" ;; esac
BACKUP_DIR=${BACKUP_DIR:-$root/backups}
case "$RUN_DIR" in /*) ;; *) RUN_DIR="$root/$RUN_DIR" ;; esac
case "$BACKUP_DIR" in /*) ;; *) BACKUP_DIR="$root/$BACKUP_DIR" ;; esac
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-60}
logs_dir="$RUN_DIR/logs"
pids_dir="$RUN_DIR/pids"

# --- configuration (names from the shared briefing; every one overridable) ----------------
: "${EQUITY_DB_HOST:=127.0.0.1}" "${EQUITY_DB_PORT:=5432}" "${EQUITY_DB_NAME:=equity}"
: "${EQUITY_DB_USER:=fsr}"
: "${FI_DB_HOST:=127.0.0.1}" "${FI_DB_PORT:=5433}" "${FI_DB_NAME:=fixed_income}"
: "${FI_DB_USER:=fsr}"
: "${PORTFOLIO_DB_HOST:=127.0.0.1}" "${PORTFOLIO_DB_PORT:=5434}"
: "${PORTFOLIO_DB_NAME:=portfolio}" "${PORTFOLIO_DB_USER:=fsr}"
: "${EQUITY_REDIS_HOST:=127.0.0.1}" "${EQUITY_REDIS_PORT:=6379}"
: "${FI_REDIS_HOST:=127.0.0.1}" "${FI_REDIS_PORT:=6380}"
: "${SHARED_REDIS_HOST:=127.0.0.1}" "${SHARED_REDIS_PORT:=6381}"
: "${PORTFOLIO_REDIS_HOST:=127.0.0.1}" "${PORTFOLIO_REDIS_PORT:=6382}"
: "${EQUITY_PORT:=8001}" "${FI_PORT:=8002}" "${PORTFOLIO_PORT:=8003}" "${GATEWAY_PORT:=8000}"
: "${EQUITY_WORKER_PORT:=9101}" "${FI_WORKER_PORT:=9102}" "${PORTFOLIO_WORKER_PORT:=9103}"
: "${EQUITY_SERVICE_ADDR:=127.0.0.1:$EQUITY_PORT}"
: "${FI_SERVICE_ADDR:=127.0.0.1:$FI_PORT}"
: "${PORTFOLIO_SERVICE_ADDR:=127.0.0.1:$PORTFOLIO_PORT}"
: "${LOG_LEVEL:=info}"
export EQUITY_DB_HOST EQUITY_DB_PORT EQUITY_DB_NAME EQUITY_DB_USER
export FI_DB_HOST FI_DB_PORT FI_DB_NAME FI_DB_USER
export PORTFOLIO_DB_HOST PORTFOLIO_DB_PORT PORTFOLIO_DB_NAME PORTFOLIO_DB_USER
export EQUITY_REDIS_HOST EQUITY_REDIS_PORT FI_REDIS_HOST FI_REDIS_PORT
export SHARED_REDIS_HOST SHARED_REDIS_PORT PORTFOLIO_REDIS_HOST PORTFOLIO_REDIS_PORT
export EQUITY_SERVICE_ADDR FI_SERVICE_ADDR PORTFOLIO_SERVICE_ADDR LOG_LEVEL

# Components. Databases: name|data dir|port|db name. Redis: name|data dir|port.
# Processes: name|binary|port|args (port 0 = no fixed port; the process may bind a free one).
PG=(
    "pg-equity|$RUN_DIR/pg/equity|$EQUITY_DB_PORT|$EQUITY_DB_NAME"
    "pg-fixed-income|$RUN_DIR/pg/fixed_income|$FI_DB_PORT|$FI_DB_NAME"
    "pg-portfolio|$RUN_DIR/pg/portfolio|$PORTFOLIO_DB_PORT|$PORTFOLIO_DB_NAME"
)
REDIS=(
    "redis-equity|$RUN_DIR/redis/equity|$EQUITY_REDIS_PORT"
    "redis-fixed-income|$RUN_DIR/redis/fixed_income|$FI_REDIS_PORT"
    "redis-shared|$RUN_DIR/redis/shared|$SHARED_REDIS_PORT"
    "redis-portfolio|$RUN_DIR/redis/portfolio|$PORTFOLIO_REDIS_PORT"
)
SERVICES=(
    "fsr-equity|$BUILD_DIR/svc_equity/fsr-equity|$EQUITY_PORT|"
    "fsr-fixed-income|$BUILD_DIR/svc_fixed_income/fsr-fixed-income|$FI_PORT|"
    "fsr-portfolio|$BUILD_DIR/svc_portfolio/fsr-portfolio|$PORTFOLIO_PORT|"
)
WORKERS=(
    "fsr-worker-equity|$BUILD_DIR/svc_worker/fsr-worker|$EQUITY_WORKER_PORT|--queue equity"
    "fsr-worker-fixed-income|$BUILD_DIR/svc_worker/fsr-worker|$FI_WORKER_PORT|--queue fixed_income"
    "fsr-worker-portfolio|$BUILD_DIR/svc_worker/fsr-worker|$PORTFOLIO_WORKER_PORT|--queue portfolio"
)
GATEWAY=("fsr-gateway|$BUILD_DIR/rest_gateway/fsr-gateway|$GATEWAY_PORT|")

# --- scaling (scripts/stack.sh scale SERVICE N; make scale-equity N) ---------------------------
# Replica 1 of a service and its worker are the entries above.  Replicas 2..N are added here
# from $RUN_DIR/scale/<service> (written by `scale`), so up, down, restart and status handle
# them like everything else: fsr-equity-K on EQUITY_PORT + SCALE_PORT_STEP*(K-1) (8011, 8021,
# ...), fsr-worker-equity-K on EQUITY_WORKER_PORT + the same.  Unless *_SERVICE_ADDR was set
# by hand, the gateway gets every replica's address, comma-separated, and balances over them.
: "${SCALE_PORT_STEP:=10}" "${SCALE_MAX:=9}"
scale_dir="$RUN_DIR/scale"

# scale_info equity|fi|portfolio -> key service binary port worker queue worker_port addr_var
scale_info() {
    case "$1" in
    equity)
        echo "equity fsr-equity $BUILD_DIR/svc_equity/fsr-equity $EQUITY_PORT" \
            "fsr-worker-equity equity $EQUITY_WORKER_PORT EQUITY_SERVICE_ADDR"
        ;;
    fi | fixed-income | fixed_income)
        echo "fi fsr-fixed-income $BUILD_DIR/svc_fixed_income/fsr-fixed-income $FI_PORT" \
            "fsr-worker-fixed-income fixed_income $FI_WORKER_PORT FI_SERVICE_ADDR"
        ;;
    portfolio)
        echo "portfolio fsr-portfolio $BUILD_DIR/svc_portfolio/fsr-portfolio $PORTFOLIO_PORT" \
            "fsr-worker-portfolio portfolio $PORTFOLIO_WORKER_PORT PORTFOLIO_SERVICE_ADDR"
        ;;
    *) return 1 ;;
    esac
}

# The recorded replica count of a service key (1 when never scaled).
scale_of() {
    local n
    n=$(cat "$scale_dir/$1" 2>/dev/null) || n=1
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || n=1
    printf '%s' "$n"
}

# scale_specs KEY N: sets scale_svc_specs / scale_wrk_specs to replicas 1..N.
scale_specs() {
    local key svc bin port wname queue wport addr_var k
    read -r key svc bin port wname queue wport addr_var < <(scale_info "$1")
    scale_svc_specs=("$svc|$bin|$port|")
    scale_wrk_specs=("$wname|$BUILD_DIR/svc_worker/fsr-worker|$wport|--queue $queue")
    for ((k = 2; k <= $2; k++)); do
        scale_svc_specs+=("$svc-$k|$bin|$((port + SCALE_PORT_STEP * (k - 1)))|")
        scale_wrk_specs+=("$wname-$k|$BUILD_DIR/svc_worker/fsr-worker|$((wport + SCALE_PORT_STEP * (k - 1)))|--queue $queue")
    done
}

# Points the gateway's *_SERVICE_ADDR of KEY at its N replicas (unless set by hand).
scale_set_addr() {
    local key svc bin port wname queue wport addr_var k list
    read -r key svc bin port wname queue wport addr_var < <(scale_info "$1")
    case "${!addr_var}" in
    "127.0.0.1:$port" | "127.0.0.1:$port,"*) ;;
    *) return 0 ;; # set by hand: left alone
    esac
    list="127.0.0.1:$port"
    for ((k = 2; k <= $2; k++)); do list+=",127.0.0.1:$((port + SCALE_PORT_STEP * (k - 1)))"; done
    printf -v "$addr_var" '%s' "$list"
    export "${addr_var?}"
}

for scale_key in equity "fi" portfolio; do
    scale_n=$(scale_of "$scale_key")
    [ "$scale_n" -gt 1 ] || continue
    scale_specs "$scale_key" "$scale_n"
    SERVICES+=("${scale_svc_specs[@]:1}")
    WORKERS+=("${scale_wrk_specs[@]:1}")
    scale_set_addr "$scale_key" "$scale_n"
done
unset scale_key scale_n

# --- helpers --------------------------------------------------------------------------------
if [ -t 1 ]; then
    c_ok=$'\e[32m' c_bad=$'\e[31m' c_warn=$'\e[33m' c_off=$'\e[0m'
else
    c_ok='' c_bad='' c_warn='' c_off=''
fi
say() { printf '%s\n' "$*"; }
ok() { printf '  %-24s %sok%s    %s\n' "$1" "$c_ok" "$c_off" "${2:-}"; }
bad() { printf '  %-24s %sFAIL%s  %s\n' "$1" "$c_bad" "$c_off" "${2:-}" >&2; }
warn() { printf '  %-24s %swarn%s  %s\n' "$1" "$c_warn" "$c_off" "${2:-}"; }
rel() { printf '%s' "${1#"$root"/}"; }

port_busy() { ss -Hltn "( sport = :$1 )" 2>/dev/null | grep -q .; }

need_deps() {
    if [ ! -x "$deps" ] && [ ! -f "$deps" ]; then
        say "stack: $(rel "$deps") is missing (it starts PostgreSQL and Redis)" >&2
        exit 1
    fi
}

# The pid of our postmaster (scripts/deps.sh keeps the cluster in DIR/data), if alive.
pg_pid() {
    local pid
    [ -r "$1/data/postmaster.pid" ] || return 1
    pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && printf '%s' "$pid"
}

# The pid of our redis (scripts/deps.sh writes DIR/redis.pid), if alive.
redis_pid() {
    local pid
    [ -r "$1/redis.pid" ] || return 1
    pid=$(head -n 1 "$1/redis.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && printf '%s' "$pid"
}

# The pid of a process we started, if it is alive and still runs the binary we started.
proc_pid() {
    local name=$1 bin=$2 pid
    [ -r "$pids_dir/$name.pid" ] || return 1
    pid=$(cat "$pids_dir/$name.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$(basename "$bin")" || return 1
    printf '%s' "$pid"
}

http_ok() { curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$1${2:-/health}" 2>/dev/null; }

ensure_admin_key() {
    local f="$RUN_DIR/admin_api_key"
    if [ -n "${ADMIN_API_KEY:-}" ]; then
        admin_key_source="environment"
    else
        if [ ! -s "$f" ]; then
            mkdir -p "$RUN_DIR"
            (
                umask 077
                if command -v openssl >/dev/null 2>&1; then
                    openssl rand -hex 24 >"$f"
                else
                    { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' && echo; } >"$f"
                fi
            )
        fi
        ADMIN_API_KEY=$(tr -d ' \n' <"$f")
        admin_key_source=$(rel "$f")
    fi
    export ADMIN_API_KEY
}

# --- databases and caches -------------------------------------------------------------------
start_pg() {
    local name dir port db pid
    IFS='|' read -r name dir port db <<<"$1"
    if pid=$(pg_pid "$dir"); then
        ok "$name" "already running (pid $pid, port $port)"
        return 0
    fi
    if port_busy "$port"; then
        bad "$name" "port $port is taken by another process; set ${2}=<free port>"
        return 1
    fi
    if bash "$deps" pg-start "$dir" "$port" "$db" >>"$logs_dir/$name.log" 2>&1; then
        ok "$name" "port $port, database $db, data $(rel "$dir")"
    else
        bad "$name" "did not start; see $(rel "$logs_dir/$name.log")"
        tail -n 5 "$logs_dir/$name.log" | sed 's/^/      /' >&2
        return 1
    fi
}

start_redis() {
    local name dir port pid
    IFS='|' read -r name dir port <<<"$1"
    if pid=$(redis_pid "$dir"); then
        ok "$name" "already running (pid $pid, port $port)"
        return 0
    fi
    if port_busy "$port"; then
        bad "$name" "port $port is taken by another process; set ${2}=<free port>"
        return 1
    fi
    if bash "$deps" redis-start "$dir" "$port" >>"$logs_dir/$name.log" 2>&1; then
        ok "$name" "port $port, data $(rel "$dir")"
    else
        bad "$name" "did not start; see $(rel "$logs_dir/$name.log")"
        tail -n 5 "$logs_dir/$name.log" | sed 's/^/      /' >&2
        return 1
    fi
}

# --- our processes --------------------------------------------------------------------------
start_proc() {
    local name bin port args pid
    IFS='|' read -r name bin port args <<<"$1"
    if pid=$(proc_pid "$name" "$bin"); then
        ok "$name" "already running (pid $pid)"
        return 0
    fi
    if [ ! -x "$bin" ]; then
        bad "$name" "$(rel "$bin") not found (not built yet? make build)"
        return 1
    fi
    if [ "$port" != 0 ] && port_busy "$port"; then
        bad "$name" "port $port is taken by another process"
        return 1
    fi
    local port_file="$pids_dir/$name.port"
    rm -f "$port_file"
    local -a argv=()
    [ -n "$args" ] && read -r -a argv <<<"$args"
    printf '\n--- %s start %s\n' "$(date -u +%FT%TZ)" "$name" >>"$logs_dir/$name.log"
    local -a penv=("PORT=$port" "PORT_FILE=$port_file")
    [ "$port" != 0 ] && penv+=("WORKER_PORT=$port") # fsr-worker replicas (scaling)
    env "${penv[@]}" setsid nohup "$bin" "${argv[@]}" \
        </dev/null >>"$logs_dir/$name.log" 2>&1 &
    echo $! >"$pids_dir/$name.pid"
    ok "$name" "started (pid $!, log $(rel "$logs_dir/$name.log"))"
}

# Wait until each process answers GET /health (or, with no port, is still alive).
wait_healthy() {
    local spec name bin port args pid deadline=$((SECONDS + HEALTH_TIMEOUT)) rc=0
    for spec in "$@"; do
        IFS='|' read -r name bin port args <<<"$spec"
        pid=$(proc_pid "$name" "$bin") || continue # not started: already reported
        while :; do
            if ! kill -0 "$pid" 2>/dev/null; then
                bad "$name" "exited during start-up; last lines of $(rel "$logs_dir/$name.log"):"
                tail -n 8 "$logs_dir/$name.log" | sed 's/^/      /' >&2
                rc=1
                break
            fi
            local p=$port
            [ "$p" = 0 ] && [ -s "$pids_dir/$name.port" ] && p=$(cat "$pids_dir/$name.port")
            if [ "$p" = 0 ]; then
                sleep 1 # no port to ask: alive after a second counts as up
                kill -0 "$pid" 2>/dev/null && ok "$name" "running (pid $pid)" && break
                continue
            fi
            if http_ok "$p"; then
                ok "$name" "healthy on :$p"
                break
            fi
            if [ "$SECONDS" -ge "$deadline" ]; then
                bad "$name" "no healthy answer on :$p/health after ${HEALTH_TIMEOUT}s"
                rc=1
                break
            fi
            sleep 0.5
        done
    done
    return "$rc"
}

stop_pid() {
    local name=$1 pid=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "  $name did not stop in 10s: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

# --- verbs ----------------------------------------------------------------------------------
cmd_up() {
    need_deps
    mkdir -p "$logs_dir" "$pids_dir"
    ensure_admin_key
    local failed=0 spec

    say "databases and caches:"
    start_pg "${PG[0]}" EQUITY_DB_PORT || failed=1
    start_pg "${PG[1]}" FI_DB_PORT || failed=1
    start_pg "${PG[2]}" PORTFOLIO_DB_PORT || failed=1
    start_redis "${REDIS[0]}" EQUITY_REDIS_PORT || failed=1
    start_redis "${REDIS[1]}" FI_REDIS_PORT || failed=1
    start_redis "${REDIS[2]}" SHARED_REDIS_PORT || failed=1
    start_redis "${REDIS[3]}" PORTFOLIO_REDIS_PORT || failed=1

    # The services apply their own migrations at start.
    say "services:"
    for spec in "${SERVICES[@]}"; do start_proc "$spec" || failed=1; done
    wait_healthy "${SERVICES[@]}" || failed=1
    say "workers:"
    for spec in "${WORKERS[@]}"; do start_proc "$spec" || failed=1; done
    wait_healthy "${WORKERS[@]}" || failed=1
    say "gateway:"
    start_proc "${GATEWAY[0]}" || failed=1
    wait_healthy "${GATEWAY[0]}" || failed=1

    if http_ok "$GATEWAY_PORT"; then
        say "demo data:"
        if ! GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT" DEMO_CLIENT_KEY_FILE="$RUN_DIR/demo_client_key" \
            bash "$root/scripts/demo-data.sh"; then
            warn "demo-data" "incomplete (see above)"
        fi
    else
        warn "demo-data" "skipped: the gateway is not healthy"
    fi

    summary
    if [ "$failed" != 0 ]; then
        say "" >&2
        say "Some components did not come up (see FAIL above); the rest are running. 'make down' stops them." >&2
        return 1
    fi
}

summary() {
    local demo_key="(none yet: make demo-data)"
    if [ -s "$RUN_DIR/demo_client_key" ]; then
        demo_key="$(tr -d ' \n' <"$RUN_DIR/demo_client_key")   (role client, owns \"Demo balanced\" and \"Demo income\"; $(rel "$RUN_DIR")/demo_client_key)"
    fi
    cat <<EOF

The stack (data, pid files and logs in $(rel "$RUN_DIR")/):
  REST gateway     http://localhost:$GATEWAY_PORT   (/health /metrics /openapi.json /docs)
  equity           localhost:$EQUITY_PORT  gRPC h2c + GET /health /metrics
  fixed income     localhost:$FI_PORT  gRPC h2c + GET /health /metrics
  portfolio        localhost:$PORTFOLIO_PORT  gRPC h2c + GET /health /metrics
  workers          --queue equity | fixed_income | portfolio
  PostgreSQL       equity :$EQUITY_DB_PORT/$EQUITY_DB_NAME  fixed income :$FI_DB_PORT/$FI_DB_NAME  portfolio :$PORTFOLIO_DB_PORT/$PORTFOLIO_DB_NAME  (user $EQUITY_DB_USER; make shell-equity ...)
  Redis            equity :$EQUITY_REDIS_PORT  fixed income :$FI_REDIS_PORT  shared :$SHARED_REDIS_PORT  portfolio :$PORTFOLIO_REDIS_PORT
  admin API key    $ADMIN_API_KEY   ($admin_key_source)
  demo client key  $demo_key
  try              curl -H 'Authorization: Bearer $ADMIN_API_KEY' http://localhost:$GATEWAY_PORT/equities
  logs             $(rel "$logs_dir")/<name>.log  (make logs, make logs-equity ...)
  stop             make down
EOF
}

cmd_down() {
    local spec name bin port args dir pid stopped=0
    for spec in "${GATEWAY[@]}" "${WORKERS[@]}" "${SERVICES[@]}"; do
        IFS='|' read -r name bin port args <<<"$spec"
        if pid=$(proc_pid "$name" "$bin"); then
            stop_pid "$name" "$pid"
            say "  stopped $name (pid $pid)"
            stopped=$((stopped + 1))
        fi
        rm -f "$pids_dir/$name.pid" "$pids_dir/$name.port"
    done
    for spec in "${REDIS[@]}"; do
        IFS='|' read -r name dir port <<<"$spec"
        if pid=$(redis_pid "$dir"); then
            need_deps
            bash "$deps" redis-stop "$dir" >>"$logs_dir/$name.log" 2>&1 || stop_pid "$name" "$pid"
            say "  stopped $name (pid $pid)"
            stopped=$((stopped + 1))
        fi
    done
    for spec in "${PG[@]}"; do
        IFS='|' read -r name dir port args <<<"$spec"
        if pid=$(pg_pid "$dir"); then
            need_deps
            bash "$deps" pg-stop "$dir" >>"$logs_dir/$name.log" 2>&1 || stop_pid "$name" "$pid"
            say "  stopped $name (pid $pid)"
            stopped=$((stopped + 1))
        fi
    done
    say "down: stopped $stopped component(s); data kept in $(rel "$RUN_DIR")/"
}

cmd_status() {
    local spec name dir port db bin args pid state up=0 total=0 p
    printf '%-24s %-6s %-7s %-8s %s\n' COMPONENT PORT STATE PID DETAIL
    for spec in "${PG[@]}"; do
        IFS='|' read -r name dir port db <<<"$spec"
        total=$((total + 1))
        if pid=$(pg_pid "$dir"); then
            state=up
            up=$((up + 1))
            pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null || state=starting
        else
            pid=- state=down
        fi
        port_note "$name" "$port" "$state" "$pid" "db $db, $(rel "$dir")"
    done
    for spec in "${REDIS[@]}"; do
        IFS='|' read -r name dir port <<<"$spec"
        total=$((total + 1))
        if pid=$(redis_pid "$dir"); then
            state=up
            up=$((up + 1))
        else
            pid=- state=down
        fi
        port_note "$name" "$port" "$state" "$pid" "$(rel "$dir")"
    done
    for spec in "${SERVICES[@]}" "${WORKERS[@]}" "${GATEWAY[@]}"; do
        IFS='|' read -r name bin port args <<<"$spec"
        total=$((total + 1))
        p=$port
        [ "$p" = 0 ] && [ -s "$pids_dir/$name.port" ] && p=$(cat "$pids_dir/$name.port")
        if pid=$(proc_pid "$name" "$bin"); then
            up=$((up + 1))
            state=up
            if [ "$p" != 0 ] && ! http_ok "$p"; then state=unhealthy; fi
        else
            pid=- state=down
        fi
        local detail=$args
        [ "$state" = down ] && [ ! -x "$bin" ] && detail="${detail:+$detail, }not built"
        [ "$p" = 0 ] && p=-
        port_note "$name" "$p" "$state" "$pid" "$detail"
    done
    say "$up of $total components up"
}

port_note() {
    local name=$1 port=$2 state=$3 pid=$4 detail=$5 colour=$c_ok
    case "$state" in
    up) ;;
    down)
        colour=$c_bad
        if [ "$port" != - ] && port_busy "$port"; then
            detail="port taken by another process; $detail"
        fi
        ;;
    *) colour=$c_warn ;;
    esac
    printf '%-24s %-6s %s%-7s%s %-8s %s\n' "$name" "$port" "$colour" "$state" "$c_off" "$pid" "$detail"
}

cmd_health() {
    local url="http://127.0.0.1:$GATEWAY_PORT/health" body code
    body=$(curl -sS --max-time 5 -w '\n%{http_code}' "$url" 2>/dev/null) || {
        say "health: nothing answers at $url (make up; make status)" >&2
        return 1
    }
    code=${body##*$'\n'}
    body=${body%$'\n'*}
    if command -v jq >/dev/null 2>&1 && jq . <<<"$body" >/dev/null 2>&1; then
        jq . <<<"$body"
    else
        say "$body"
    fi
    say "HTTP $code from $url"
    [ "$code" = 200 ]
}

cmd_logs() {
    local files=() want f
    mkdir -p "$logs_dir"
    if [ "$#" -eq 0 ]; then
        for f in "$logs_dir"/*.log; do [ -e "$f" ] && files+=("$f"); done
    else
        for want in "$@"; do
            case "$want" in
            equity) files+=("$logs_dir/fsr-equity.log" "$logs_dir/fsr-worker-equity.log") ;;
            fi | fixed-income | fixed_income)
                files+=("$logs_dir/fsr-fixed-income.log" "$logs_dir/fsr-worker-fixed-income.log")
                ;;
            portfolio)
                files+=("$logs_dir/fsr-portfolio.log" "$logs_dir/fsr-worker-portfolio.log")
                ;;
            gateway) files+=("$logs_dir/fsr-gateway.log") ;;
            *) files+=("$logs_dir/$want.log") ;;
            esac
        done
    fi
    if [ "${#files[@]}" -eq 0 ]; then
        say "no logs yet in $(rel "$logs_dir")/ (make up)" >&2
        return 1
    fi
    if [ "${FOLLOW:-1}" = 0 ]; then
        tail -n "${LINES_SHOWN:-100}" -v "${files[@]}" 2>/dev/null
    else
        exec tail -n "${LINES_SHOWN:-100}" -F "${files[@]}"
    fi
}

# name of a database -> host port db user
db_of() {
    case "$1" in
    equity) echo "$EQUITY_DB_HOST $EQUITY_DB_PORT $EQUITY_DB_NAME $EQUITY_DB_USER" ;;
    fi | fixed-income | fixed_income) echo "$FI_DB_HOST $FI_DB_PORT $FI_DB_NAME $FI_DB_USER" ;;
    portfolio)
        echo "$PORTFOLIO_DB_HOST $PORTFOLIO_DB_PORT $PORTFOLIO_DB_NAME $PORTFOLIO_DB_USER"
        ;;
    *) return 1 ;;
    esac
}

cmd_psql() {
    local host port db user
    read -r host port db user < <(db_of "${1:-}") || {
        say "usage: $0 psql equity|fi|portfolio" >&2
        return 2
    }
    shift
    if ! pg_isready -q -h "$host" -p "$port"; then
        say "PostgreSQL for ${db} is not running on $host:$port (make up)" >&2
        return 1
    fi
    exec psql -h "$host" -p "$port" -U "$user" -d "$db" "$@"
}

# Backups are scripts/backup.sh and scripts/restore.sh (they take the same environment).
cmd_backup() { bash "$root/scripts/backup.sh" "$@"; }
cmd_restore() { bash "$root/scripts/restore.sh" "$@"; }

# --- scaling: the verb ----------------------------------------------------------------------
# scale SERVICE N: starts replicas 1..N of the service and of its worker, restarts the
# gateway with their addresses, then stops replicas above N (after the gateway forgot them).
cmd_scale() {
    local want=${1:-} n=${2:-} key svc bin port wname queue wport addr_var
    if ! read -r key svc bin port wname queue wport addr_var < <(scale_info "$want") ||
        ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt "$SCALE_MAX" ]; then
        say "usage: $0 scale equity|fi|portfolio N   (1 <= N <= $SCALE_MAX; make scale-equity 3)" >&2
        return 2
    fi
    local dbhost dbport dbname
    read -r dbhost dbport dbname _ < <(db_of "$key")
    if ! pg_isready -q -h "$dbhost" -p "$dbport"; then
        say "scale: the stack is not running (PostgreSQL for $dbname on $dbhost:$dbport); make up first" >&2
        return 1
    fi
    mkdir -p "$logs_dir" "$pids_dir" "$scale_dir"
    ensure_admin_key
    local failed=0 spec f k pid name
    scale_specs "$key" "$n"
    say "$key: $n replica(s):"
    for spec in "${scale_svc_specs[@]}"; do start_proc "$spec" || failed=1; done
    wait_healthy "${scale_svc_specs[@]}" || failed=1
    for spec in "${scale_wrk_specs[@]}"; do start_proc "$spec" || failed=1; done
    wait_healthy "${scale_wrk_specs[@]}" || failed=1
    if [ "$failed" != 0 ]; then
        say "scale: replicas did not all come up (see FAIL above); the gateway is unchanged" >&2
        return 1
    fi
    printf '%s\n' "$n" >"$scale_dir/$key"

    say "gateway:"
    scale_set_addr "$key" "$n"
    local gname gbin
    IFS='|' read -r gname gbin _ <<<"${GATEWAY[0]}"
    if pid=$(proc_pid "$gname" "$gbin"); then stop_pid "$gname" "$pid"; fi
    start_proc "${GATEWAY[0]}" || failed=1
    wait_healthy "${GATEWAY[0]}" || failed=1
    ok "$gname" "$addr_var=${!addr_var}"

    # Replicas above N: the gateway no longer sends them anything.
    local pbin
    for f in "$pids_dir/$svc"-*.pid "$pids_dir/$wname"-*.pid; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .pid)
        k=${name##*-}
        if ! [[ $k =~ ^[0-9]+$ ]] || [ "$k" -le "$n" ]; then continue; fi
        pbin=$bin
        [ "${name#"$wname"}" != "$name" ] && pbin=$BUILD_DIR/svc_worker/fsr-worker
        if pid=$(proc_pid "$name" "$pbin"); then
            stop_pid "$name" "$pid"
            ok "$name" "stopped (scaled down)"
        fi
        rm -f "$f" "$pids_dir/$name.port"
    done
    return "$failed"
}

cmd_migrate() {
    local spec name bin port args failed=0 spec_pg dir db
    for spec_pg in "${PG[@]}"; do
        IFS='|' read -r name dir port db <<<"$spec_pg"
        if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
            bad "$name" "PostgreSQL not running on port $port (make up starts it)"
            failed=1
        fi
    done
    [ "$failed" = 0 ] || return 1
    ensure_admin_key
    mkdir -p "$logs_dir"
    for spec in "${SERVICES[@]}"; do
        IFS='|' read -r name bin port args <<<"$spec"
        if [ ! -x "$bin" ]; then
            bad "$name" "binary $(rel "$bin") not built (make build)"
            failed=1
            continue
        fi
        if PORT=0 timeout 120 "$bin" --migrate-only >>"$logs_dir/$name.migrate.log" 2>&1; then
            ok "$name" "migrations applied"
        else
            bad "$name" "--migrate-only failed; see $(rel "$logs_dir/$name.migrate.log")"
            tail -n 5 "$logs_dir/$name.migrate.log" | sed 's/^/      /' >&2
            failed=1
        fi
    done
    return "$failed"
}

cmd_env() {
    ensure_admin_key
    env | grep -E '^(EQUITY|FI|PORTFOLIO|SHARED|GATEWAY)_|^(ADMIN_API_KEY|LOG_LEVEL)=' | sort
}

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

verb=${1:-}
[ "$#" -gt 0 ] && shift
case "$verb" in
up) cmd_up ;;
down) cmd_down ;;
restart)
    cmd_down
    cmd_up
    ;;
status) cmd_status ;;
health) cmd_health ;;
logs) cmd_logs "$@" ;;
migrate) cmd_migrate ;;
psql | shell) cmd_psql "$@" ;;
backup) cmd_backup "$@" ;;
restore) cmd_restore "$@" ;;
scale) cmd_scale "$@" ;;
env) cmd_env ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
