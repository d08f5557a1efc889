#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the C client's interop test against a real grpcio server.
# usage: client_vs_grpcio.sh <client_vs_grpcio binary> <grpcio_server.py>
# Starts the server on a free port (it prints "PORT <n>"), runs the binary with
# FSR_GRPCIO_PORT/FSR_GRPCIO_SERVER, then stops the server.  Exit 77 (skip) without grpcio.
set -u
bin=$1
server=$(realpath "$2")
py=/usr/bin/python3

if ! "$py" -c 'import grpc, grpc_tools.protoc' 2>/dev/null; then
    echo "1..0 # SKIP /usr/bin/python3 lacks grpcio or grpc_tools (python3-grpcio, python3-grpc-tools)"
    exit 77
fi

tmp=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$py" "$server" --port 0 --id main >"$tmp/out" 2>"$tmp/err" &
pid=$!

port=
i=0
while [ $i -lt 300 ]; do
    port=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$tmp/out")
    [ -n "$port" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$port" ]; then
    echo "Bail out! grpcio server did not start:" >&2
    cat "$tmp/err" >&2
    exit 1
fi

FSR_GRPCIO_PORT=$port FSR_GRPCIO_SERVER=$server "$bin"
