#!/bin/sh
# SPDX-License-Identifier: MIT
# Lints the generated OpenAPI document with redocly's recommended rules: any error fails
# (warnings are printed).  Usage: openapi_lint.sh <test dir> <openapi.json>.  Skips (77)
# when the npm tools are not installed (scripts/install-deps.sh puts them in test/node_modules).
set -eu
redocly="$1/node_modules/.bin/redocly"
if [ ! -x "$redocly" ]; then
    echo "redocly not installed under $1/node_modules: skipped"
    exit 77
fi
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
exec "$redocly" lint --format=stylish "$2"
