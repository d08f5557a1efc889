#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Request bodies for h2load and a grpcio sanity check of a server under benchmark.

h2load checks only HTTP status codes, and a gRPC error still answers HTTP 200 (the status is
in the grpc-status trailer).  So before timing a server, scripts/bench.sh sends the very
bodies h2load will send through grpcio (Debian python3-grpcio) and checks grpc-status OK and
the decoded reply.

  grpc_check.py bodies OUTDIR PROTO_DIR SUPPORT_DIR
      writes OUTDIR/health.bin (grpc.health.v1.HealthCheckRequest{}) and OUTDIR/echo.bin
      (fsrtest.v1.EchoRequest{message, 16-byte payload}), each a 5-byte-prefixed gRPC
      message, plus Python stubs in OUTDIR/py
  grpc_check.py check OUTDIR PORT [health]
      calls Health/Check and TestService/Echo on 127.0.0.1:PORT with those bodies; exit 0
      when both answer OK with SERVING and the echoed message and payload ("health": only
      Health/Check, for a real service)
"""
import importlib
import os
import struct
import sys

import grpc
from grpc_tools import protoc

ECHO_MESSAGE = "bench"
ECHO_PAYLOAD = bytes(range(16))


def frame(msg):
    raw = msg.SerializeToString()
    return b"\x00" + struct.pack(">I", len(raw)) + raw


def load(outdir):
    sys.path.insert(0, os.path.join(outdir, "py"))
    return importlib.import_module("health_pb2"), importlib.import_module("fsrtest_pb2")


def bodies(outdir, proto_dir, support_dir):
    py = os.path.join(outdir, "py")
    os.makedirs(py, exist_ok=True)
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    for d, f in ((os.path.join(proto_dir, "grpc/health/v1"), "health.proto"),
                 (support_dir, "fsrtest.proto")):
        if protoc.main(["protoc", "-I", d, "-I", include, "--python_out=" + py, f]) != 0:
            raise SystemExit("grpc_check: protoc failed for " + f)
    health_pb2, fsrtest_pb2 = load(outdir)
    with open(os.path.join(outdir, "health.bin"), "wb") as f:
        f.write(frame(health_pb2.HealthCheckRequest()))
    with open(os.path.join(outdir, "echo.bin"), "wb") as f:
        f.write(frame(fsrtest_pb2.EchoRequest(message=ECHO_MESSAGE, payload=ECHO_PAYLOAD)))
    return 0


def unframe(path):
    with open(path, "rb") as f:
        data = f.read()
    flag, n = struct.unpack(">BI", data[:5])
    if flag != 0 or n != len(data) - 5:
        raise SystemExit("grpc_check: %s is not one uncompressed gRPC message" % path)
    return data[5:]


def check(outdir, port, health_only=False):
    health_pb2, fsrtest_pb2 = load(outdir)
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        health = ch.unary_unary("/grpc.health.v1.Health/Check",
                                response_deserializer=health_pb2.HealthCheckResponse.FromString)
        resp, call = health.with_call(unframe(os.path.join(outdir, "health.bin")), timeout=5)
        if call.code() != grpc.StatusCode.OK or \
                resp.status != health_pb2.HealthCheckResponse.SERVING:
            raise SystemExit("grpc_check: Health/Check: %s %s" % (call.code(), resp))
        if health_only:
            print("grpc_check: 127.0.0.1:%d Health/Check SERVING" % port)
            return 0
        echo = ch.unary_unary("/fsrtest.v1.TestService/Echo",
                              response_deserializer=fsrtest_pb2.EchoResponse.FromString)
        resp, call = echo.with_call(unframe(os.path.join(outdir, "echo.bin")), timeout=5)
        if call.code() != grpc.StatusCode.OK or resp.message != ECHO_MESSAGE or \
                resp.payload != ECHO_PAYLOAD:
            raise SystemExit("grpc_check: TestService/Echo: %s %s" % (call.code(), resp))
    print("grpc_check: 127.0.0.1:%d Health/Check SERVING, Echo echoed, grpc-status OK" % port)
    return 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "bodies":
        return bodies(*sys.argv[2:])
    if len(sys.argv) in (4, 5) and sys.argv[1] == "check":
        return check(sys.argv[2], int(sys.argv[3]), len(sys.argv) == 5 and sys.argv[4] == "health")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
