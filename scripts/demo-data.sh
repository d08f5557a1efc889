#!/usr/bin/env bash
# Demo data through the REST gateway: the demo universe of scripts/demo_universe.py (22 equities
# in 7 sectors on two exchanges, the FSR500 benchmark index, three years of daily bars,
# quarterly dividends, a 2-for-1 split, 10 bonds with a year of daily quotes), then the demo
# client (scripts/demo_portfolios.py: its key in .run/demo_client_key) with two mixed
# portfolios and a year of transactions. Safe to run again: both scripts look everything up
# first and write only what is missing; creates carry an Idempotency-Key.
#
#   GATEWAY_URL (default http://127.0.0.1:8000), ADMIN_API_KEY (default: .run/admin_api_key),
#   DEMO_END (last date of the bars, quotes and ledger, default: the last business day),
#   DEMO_CLIENT_KEY_FILE (default .run/demo_client_key)
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
errors=0
report() { printf '  %-36s %s\n' "$1" "$2"; }

echo "  gateway $GATEWAY_URL"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
uargs=()
[ -n "${DEMO_END:-}" ] && uargs+=(--end "$DEMO_END")
if ! GATEWAY_URL=$GATEWAY_URL ADMIN_API_KEY=$ADMIN_API_KEY "$py" "$root/scripts/demo_universe.py" "${uargs[@]}"; then
    report "demo universe" "FAILED (see above)"
    errors=$((errors + 1))
fi

# The demo client and its two portfolios with a year of ledger (scripts/demo_portfolios.py):
# the client's API key goes to .run/demo_client_key (0600), which `make up` prints.
pargs=()
[ -n "${DEMO_END:-}" ] && pargs+=(--end "$DEMO_END")
[ -n "${DEMO_CLIENT_KEY_FILE:-}" ] && pargs+=(--key-file "$DEMO_CLIENT_KEY_FILE")
if ! GATEWAY_URL=$GATEWAY_URL ADMIN_API_KEY=$ADMIN_API_KEY "$py" "$root/scripts/demo_portfolios.py" "${pargs[@]}"; then
    report "demo portfolios" "FAILED (see above)"
    errors=$((errors + 1))
fi

echo "  demo data: $errors error(s)"
[ "$errors" = 0 ]
