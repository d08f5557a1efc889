#!/usr/bin/env bash
# Demo data through the REST gateway: three equities with ~90 weekdays of daily bars, two bonds
# with a quote, and one portfolio holding them. Safe to run again: things that already exist
# (looked up by symbol or name) are reused, creates carry an Idempotency-Key, and prices are
# upserts. Routes that answer 404/501/405 (not implemented yet) are reported, not fatal.
#
#   GATEWAY_URL (default http://127.0.0.1:8000), ADMIN_API_KEY (default: .run/admin_api_key)
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

# Daily bars for the last N weekdays ending today: a deterministic gentle random walk.
bars_json() {
    local start=$1 n=$2 seed=$3 d back dates=()
    for ((back = n * 7 / 5 + 5; back >= 0; back--)); do
        d=$(date -u -d "today - $back days" +%F)
        case $(date -u -d "$d" +%u) in 6 | 7) continue ;; esac
        dates+=("$d")
    done
    printf '%s\n' "${dates[@]: -$n}" | awk -v p="$start" -v seed="$seed" '
        BEGIN { srand(seed); printf "{\"bars\":[" }
        {
            o = p; r = (rand() - 0.48) * 0.03; c = o * (1 + r)
            h = (o > c ? o : c) * (1 + rand() * 0.006); l = (o < c ? o : c) * (1 - rand() * 0.006)
            printf "%s{\"date\":\"%s\",\"open\":\"%.2f\",\"high\":\"%.2f\",\"low\":\"%.2f\",\"close\":\"%.2f\",\"volume\":\"%d\"}",
                (NR > 1 ? "," : ""), $1, o, h, l, c, 1000000 + int(rand() * 4000000)
            p = c
        }
        END { printf "]}" }'
}

echo "  gateway $GATEWAY_URL"
declare -A equity_id=()
while IFS='|' read -r sym name exch sector isin price; do
    json=$(jq -nc --arg s "$sym" --arg n "$name" --arg e "$exch" --arg sec "$sector" --arg i "$isin" \
        '{symbol: $s, name: $n, exchange: $e, currency: "USD", sector: $sec, isin: $i, lotSize: "1"}')
    if ensure "equity $sym" "/equities?symbol=$sym" symbol "$sym" /equities "$json"; then
        equity_id[$sym]=$id
        if api PUT "/equities/$id/prices" "$(bars_json "$price" 90 "${#sym}$price")"; then
            report "prices $sym" "90 daily bars"
        else
            outcome "prices $sym"
        fi
    fi
done <<'EOF'
AAPL|Apple Inc.|XNAS|Information Technology|US0378331005|185
MSFT|Microsoft Corporation|XNAS|Information Technology|US5949181045|410
SPY|SPDR S&P 500 ETF Trust|ARCX|Index|US78462F1030|480
EOF

declare -A bond_id=()
today=$(date -u +%F)
while IFS='|' read -r key name issuer rate freq dc issue maturity clean; do
    json=$(jq -nc --arg n "$name" --arg is "$issuer" --argjson r "$rate" --argjson f "$freq" \
        --arg dc "$dc" --arg id "$issue" --arg md "$maturity" \
        '{name: $n, issuer: $is, currency: "USD", face: "100", couponRate: $r, frequency: $f,
          dayCount: $dc, issueDate: $id, maturityDate: $md}')
    if ensure "bond $key" "/bonds?issuer=$(jq -rn --arg v "$issuer" '$v|@uri')" name "$name" /bonds "$json"; then
        bond_id[$key]=$id
        if api PUT "/bonds/$id/quotes" "{\"quotes\":[{\"date\":\"$today\",\"cleanPrice\":\"$clean\"}]}"; then
            report "quote $key" "clean $clean on $today"
        else
            outcome "quote $key"
        fi
    fi
done <<'EOF'
UST34|US Treasury 4.25% 2034|US Treasury|0.0425|2|ACT_ACT_ICMA|2024-11-15|2034-11-15|97.50
ACME30|ACME Corp 5% 2030|ACME Corp|0.05|2|THIRTY_360_US|2020-06-15|2030-06-15|101.25
EOF

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
        add AAPL EQUITY "${equity_id[AAPL]:-}" 300 0.3
        add MSFT EQUITY "${equity_id[MSFT]:-}" 120 0.25
        add UST34 BOND "${bond_id[UST34]:-}" 100000 0.3
        add ACME30 BOND "${bond_id[ACME30]:-}" 50000 0.15
    fi
fi

echo "  demo data: $created created, $existing already there, $missing_routes route(s) not implemented, $errors error(s)"
[ "$errors" = 0 ]
