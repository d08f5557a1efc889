#!/usr/bin/env bash
# Demo data through the REST gateway: the demo universe of scripts/demo_universe.py (22 equities
# in 7 sectors on two exchanges, the FSR500 benchmark index, three years of daily bars,
# quarterly dividends, a 2-for-1 split, 10 bonds with a year of daily quotes), then one
# portfolio holding some of them. Safe to run again: the universe script looks everything up
# first and writes only what is missing or different; the portfolio is looked up by name and
# its creates carry an Idempotency-Key. Routes that answer 404/501/405 (not implemented yet)
# are reported, not fatal.
#
#   GATEWAY_URL (default http://127.0.0.1:8000), ADMIN_API_KEY (default: .run/admin_api_key),
#   DEMO_END (last date of the bars and quotes, default: the last business day)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GATEWAY_URL=${GATEWAY_URL:-http://127.0.0.1:${GATEWAY_PORT:-8000}}
if [ -z "${ADMIN_API_KEY:-}" ] && [ -s "$root/.run/admin_api_key" ]; then
    ADMIN_API_KEY=$(tr -d ' \n' <"$root/.run/admin_api_key")
fi
if [ -z "${ADMIN_API_KEY:-}" ]; then
    echo "demo-data: ADMIN_API_KEY is not set and .run/admin_api_key is missing" >&2
    exit 1
fi
for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "demo-data: $tool is required (scripts/install-deps.sh)" >&2
        exit 1
    }
done

created=0 existing=0 missing_routes=0 errors=0
code='' body=''

# api METHOD PATH [JSON] [IDEMPOTENCY-KEY]: sets $code and $body.
api() {
    local method=$1 path=$2 data=${3:-} key=${4:-} out
    local -a args=(-sS --max-time 15 -X "$method" -H "Authorization: Bearer $ADMIN_API_KEY"
        -H 'Accept: application/json' -w '\n%{http_code}')
    [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
    [ -n "$key" ] && args+=(-H "Idempotency-Key: $key")
    if ! out=$(curl "${args[@]}" "$GATEWAY_URL$path" 2>&1); then
        code=000 body=$out
        return 1
    fi
    code=${out##*$'\n'}
    body=${out%$'\n'*}
    [[ "$code" == 2* ]]
}

report() { printf '  %-36s %s\n' "$1" "$2"; }

# Classify the last answer; returns 0 on 2xx.
outcome() {
    local what=$1
    case "$code" in
    2*) return 0 ;;
    404 | 405 | 501)
        report "$what" "skipped: $code (route not implemented yet?)"
        missing_routes=$((missing_routes + 1))
        ;;
    *)
        report "$what" "FAILED: HTTP $code $(head -c 300 <<<"$body")"
        errors=$((errors + 1))
        ;;
    esac
    return 1
}

# find_id LIST_PATH FIELD VALUE: the id of the first object in the list whose FIELD == VALUE.
find_id() {
    api GET "$1" || return 1
    jq -r --arg f "$2" --arg v "$3" \
        'first(.. | objects | select(has("id") and .[$f] == $v) | .id) // empty' \
        <<<"$body" 2>/dev/null | grep . || return 1
}

# ensure LABEL LIST_PATH FIELD VALUE CREATE_PATH JSON: sets $id (existing or new); 0 if known.
id=''
ensure() {
    local label=$1 list=$2 field=$3 value=$4 create=$5 json=$6
    if id=$(find_id "$list" "$field" "$value"); then
        report "$label" "exists ($id)"
        existing=$((existing + 1))
        return 0
    fi
    if api POST "$create" "$json" "demo-$label"; then
        id=$(jq -r '.id // empty' <<<"$body" 2>/dev/null)
        report "$label" "created ${id:-"(no id in the answer)"}"
        created=$((created + 1))
        [ -n "$id" ]
        return
    fi
    if [ "$code" = 409 ] && id=$(find_id "$list" "$field" "$value"); then
        report "$label" "exists ($id)"
        existing=$((existing + 1))
        return 0
    fi
    outcome "$label"
}

echo "  gateway $GATEWAY_URL"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
uargs=()
[ -n "${DEMO_END:-}" ] && uargs+=(--end "$DEMO_END")
if ! GATEWAY_URL=$GATEWAY_URL ADMIN_API_KEY=$ADMIN_API_KEY "$py" "$root/scripts/demo_universe.py" "${uargs[@]}"; then
    report "demo universe" "FAILED (see above)"
    errors=$((errors + 1))
fi

# The portfolio's instruments, from the universe: two equities and two bonds.
declare -A equity_id=() bond_id=()
for sym_ex in NOVA:XNAS MEDQ:XNYS; do
    sym=${sym_ex%%:*}
    if id=$(find_id "/equities?symbol=$sym&exchange=${sym_ex#*:}" symbol "$sym"); then
        equity_id[$sym]=$id
    fi
done
for key_isin in UST2034:US912828ZT12 ACME2030:US00081TAB36; do
    isin=${key_isin#*:}
    if id=$(find_id "/bonds?isin=$isin" isin "$isin"); then
        bond_id[${key_isin%%:*}]=$id
    fi
done

pname="Demo balanced"
pjson=$(jq -nc --arg n "$pname" '{name: $n, baseCurrency: "USD", cash: "250000.00"}')
if ensure "portfolio" /portfolios name "$pname" /portfolios "$pjson"; then
    pid=$id
    if api GET "/portfolios/$pid/constituents" && [ "$(jq '[.. | objects | select(has("instrumentId"))] | length' <<<"$body" 2>/dev/null || echo 0)" -gt 0 ]; then
        report "constituents" "already present"
    else
        add() {
            local label=$1 type=$2 iid=$3 qty=$4 weight=$5
            [ -n "$iid" ] || return 0
            if api POST "/portfolios/$pid/constituents" \
                "{\"instrumentType\":\"$type\",\"instrumentId\":\"$iid\",\"quantity\":\"$qty\",\"targetWeight\":$weight}" \
                "demo-constituent-$label"; then
                report "constituent $label" "$qty"
                created=$((created + 1))
            else
                outcome "constituent $label"
            fi
        }
        add NOVA EQUITY "${equity_id[NOVA]:-}" 300 0.3
        add MEDQ EQUITY "${equity_id[MEDQ]:-}" 120 0.25
        add UST2034 BOND "${bond_id[UST2034]:-}" 100000 0.3
        add ACME2030 BOND "${bond_id[ACME2030]:-}" 50000 0.15
    fi
fi

echo "  demo data: $created created, $existing already there, $missing_routes route(s) not implemented, $errors error(s)"
[ "$errors" = 0 ]
