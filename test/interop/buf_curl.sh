#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Interop: `buf curl` (an off-the-shelf Go gRPC client: connect-go speaking the gRPC protocol,
# npm @bufbuild/buf at test/node_modules/.bin/buf) against fsr-test-server, a real fsr server.
# The schema is a descriptor image built with protoc (buf curl has no reflection to use).
#
#   buf_curl.sh SERVER_BINARY [SOURCE_ROOT]
#
# Prints TAP, one line per case: success, error codes with messages (and a BadRequest detail),
# deadline propagation and expiry, metadata round trip, a 3 MiB message, an unknown method
# (UNIMPLEMENTED), a server stream, grpc.health.v1.Health/Check.  buf curl exits with the gRPC code << 3 when an
# RPC fails and prints the error as JSON on stderr.  Skips (1..0) when buf cannot be found or
# installed (cd test && npm ci).
set -uo pipefail

server=${1:?usage: buf_curl.sh SERVER_BINARY [SOURCE_ROOT]}
root=${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
buf=$root/test/node_modules/.bin/buf

if [ ! -x "$buf" ] && command -v npm >/dev/null 2>&1; then
    (cd "$root/test" && npm ci --no-audit --no-fund >&2) || true
fi
if [ ! -x "$buf" ] || ! "$buf" --version >/dev/null 2>&1; then
    echo "1..0 # SKIP buf not installed (cd test && npm ci --no-audit --no-fund)"
    exit 0
fi
if ! command -v protoc >/dev/null 2>&1; then
    echo "1..0 # SKIP protoc not installed"
    exit 0
fi

tmp=$(mktemp -d /tmp/fsr-buf-curl.XXXXXX)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
export BUF_CACHE_DIR=$tmp/cache HOME=$tmp # buf writes a cache; keep it in the temp dir

bail() {
    echo "Bail out! $*"
    [ -f "$tmp/server.log" ] && sed 's/^/# server: /' "$tmp/server.log"
    exit 1
}

# ---- server and schemas --------------------------------------------------------------------
PORT=0 PORT_FILE=$tmp/port THREADS=2 LOG_LEVEL=warn "$server" >"$tmp/server.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 100); do
    [ -s "$tmp/port" ] && port=$(tr -dc 0-9 <"$tmp/port") && [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || bail "fsr-test-server exited during start-up"
    sleep 0.1
done
[ -n "$port" ] || bail "fsr-test-server did not write its port"
url=http://127.0.0.1:$port

image=$tmp/image.binpb
protoc --include_imports --descriptor_set_out="$image" -I "$root/test/support" -I "$root/proto" \
    fsrtest.proto grpc/health/v1/health.proto || bail "protoc failed (fsrtest.proto)"
missing_image=$tmp/missing.binpb
protoc --include_imports --descriptor_set_out="$missing_image" -I "$root/test/interop" \
    fsrtest_missing.proto || bail "protoc failed (fsrtest_missing.proto)"

# call SCHEMA PATH [BUF_CURL_FLAG...]: response JSON in $tmp/out, stderr in $tmp/err, exit code
# in $rc.
call() {
    local schema=$1 path=$2
    shift 2
    "$buf" curl --log-format text --schema "$schema" --protocol grpc --http2-prior-knowledge \
        "$@" "$url$path" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# check PYTHON_EXPR...: evaluates a Python program with `out` (stdout text), `err` (stderr
# text), `rc`, `tmpdir`, `objs` (the JSON values in stdout) and `error` (the JSON error object on stderr,
# or None).  Exit 0 when it ends with `ok` true.
check() {
    "$py" - "$tmp/out" "$tmp/err" "$rc" "$@" <<'EOF'
import base64, json, os, sys
tmpdir = os.path.dirname(sys.argv[1])
out = open(sys.argv[1]).read()
err = open(sys.argv[2]).read()
rc = int(sys.argv[3])
def values(text):
    dec, i, res = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return res
        v, i = dec.raw_decode(text, i)
        res.append(v)
objs = values(out)
error = None
brace = err.find("{")
if brace >= 0:
    try:
        error = json.JSONDecoder().raw_decode(err, brace)[0]
    except ValueError:
        pass
ok = False
exec(sys.argv[4])
sys.exit(0 if ok else 1)
EOF
}

n=0
failed=0
# tap NAME CHECK_RESULT: one TAP line; on failure the call's output as diagnostics.
tap() {
    local name=$1 result=$2
    n=$((n + 1))
    if [ "$result" -eq 0 ]; then
        echo "ok $n - $name"
    else
        failed=$((failed + 1))
        echo "not ok $n - $name"
        echo "# exit code $rc"
        head -n 40 "$tmp/out" | cut -c 1-200 | sed 's/^/# stdout: /'
        head -n 40 "$tmp/err" | cut -c 1-200 | sed 's/^/# stderr: /'
    fi
}

echo "1..11"

# 1. success: message and payload come back.
call "$image" /fsrtest.v1.TestService/Echo -d '{"message": "hello fsr", "payload": "AAEC/w=="}'
check 'ok = (rc == 0 and len(objs) == 1 and objs[0]["message"] == "hello fsr" and
base64.b64decode(objs[0]["payload"]) == b"\x00\x01\x02\xff")'
tap "Echo succeeds and echoes message and payload" $?

# 2. an error code with its message: NOT_FOUND (5) -> exit 5 << 3.
call "$image" /fsrtest.v1.TestService/Echo -d '{"code": 5, "errorMessage": "no such order 42"}'
check 'ok = (rc == 40 and error is not None and error["code"] == "not_found" and
error["message"] == "no such order 42" and not objs)'
tap "NOT_FOUND with its message: exit 40, code and message printed" $?

# 3. another code, to be sure the code is not fixed: PERMISSION_DENIED (7) -> exit 56.
call "$image" /fsrtest.v1.TestService/Echo -d '{"code": 7, "errorMessage": "desk is read-only"}'
check 'ok = (rc == 56 and error is not None and error["code"] == "permission_denied" and
error["message"] == "desk is read-only")'
tap "PERMISSION_DENIED with its message: exit 56" $?

# 4. rich error details: INVALID_ARGUMENT with a google.rpc.BadRequest naming the field.
call "$image" /fsrtest.v1.TestService/Echo -d '{"badField": "quantity"}'
check 'd = (error or {}).get("details") or [{}]
raw = base64.b64decode(d[0].get("value", "") + "==")
ok = (rc == 24 and error["code"] == "invalid_argument" and "quantity" in error["message"] and
d[0].get("type") == "google.rpc.BadRequest" and b"quantity" in raw)'
tap "INVALID_ARGUMENT carries a google.rpc.BadRequest detail naming the field" $?

# 5. the client's deadline reaches the server (grpc-timeout): it sees 0 < remaining <= 5 s.
call "$image" /fsrtest.v1.TestService/Echo --timeout 5s -d '{"message": "dl"}'
check 'ok = (rc == 0 and 0 < int(objs[0].get("deadlineMs", "-1")) <= 5000)'
tap "deadline propagates: server sees the 5 s deadline" $?

# 6. deadline exceeded: the server sleeps 3 s, the client allows 300 ms.
start=$(date +%s%N)
call "$image" /fsrtest.v1.TestService/Echo --timeout 300ms -d '{"sleepMs": 3000}'
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
check "ok = (rc == 32 and error is not None and error['code'] == 'deadline_exceeded' and
not objs and $elapsed_ms < 2500)"
tap "DEADLINE_EXCEEDED after 300 ms (exit 32, ${elapsed_ms} ms)" $?

# 7. metadata round trip: the server lists request metadata in the reply and returns x-*
#    headers as trailers (visible with -v).
call "$image" /fsrtest.v1.TestService/Echo -v -H 'x-foo: bar' -H 'x-trade-id: T-77' \
    -d '{"message": "md"}'
check 'md = objs[0].get("metadata", []) if objs else []
ok = (rc == 0 and "x-foo=bar" in md and "x-trade-id=T-77" in md and
"< (#1) X-Foo: bar" in err and "< (#1) X-Trade-Id: T-77" in err)'
tap "metadata round trip: request headers echoed in the reply and as trailers" $?

# 8. a 3 MiB message each way.
"$py" -c 'import base64, json, os, sys
json.dump({"message": "big", "payload": base64.b64encode(os.urandom(3 << 20)).decode()},
          open(sys.argv[1], "w"))' "$tmp/big.json"
call "$image" /fsrtest.v1.TestService/Echo -d "@$tmp/big.json"
check 'sent = json.load(open(os.path.join(tmpdir, "big.json")))
ok = (rc == 0 and len(objs) == 1 and objs[0]["message"] == "big" and
len(base64.b64decode(objs[0]["payload"])) == 3 << 20 and objs[0]["payload"] == sent["payload"])'
tap "3 MiB request and reply" $?

# 9. an unknown method: the client schema declares TestService/Missing, the server does not.
call "$missing_image" /fsrtest.v1.TestService/Missing -d '{"message": "?"}'
check 'ok = (rc == 96 and error is not None and error["code"] == "unimplemented" and not objs)'
tap "unknown method answers UNIMPLEMENTED (exit 96)" $?

# 10. a server stream of 5 messages, in order.
call "$image" /fsrtest.v1.TestService/Stream -d '{"message": "tick", "streamCount": 5}'
check 'ok = (rc == 0 and len(objs) == 5 and all(o["message"] == "tick" for o in objs) and
[o.get("index", 0) for o in objs] == [0, 1, 2, 3, 4])'
tap "server stream: 5 messages in order" $?

# 11. the built-in grpc.health.v1.Health service.
call "$image" /grpc.health.v1.Health/Check -d '{}'
check 'ok = (rc == 0 and objs == [{"status": "SERVING"}])'
tap "grpc.health.v1.Health/Check answers SERVING" $?

kill -0 "$server_pid" 2>/dev/null || bail "fsr-test-server died during the run"
[ "$failed" -eq 0 ]
