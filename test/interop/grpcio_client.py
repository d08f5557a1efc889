#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Off-the-shelf gRPC client (Debian python3-grpcio) against a real fsr server.

Starts fsr-test-server (the fsrtest.v1.TestService on the fsr runtime) on a free port,
generates Python stubs from the .proto files with grpc_tools.protoc, and checks the wire
behaviour: success, every status code with its message, deadlines, metadata (ASCII and
-bin), 3 MiB messages, the 4 MiB limit, an unknown method, server streaming, rich error
details, concurrency and cancellation.  Prints TAP, one line per case.

usage: grpcio_client.py SERVER_BINARY PROTO_DIR
"""
import importlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback

try:
    import grpc
    from grpc_tools import protoc
except ImportError:
    print("1..0 # SKIP python3-grpcio or python3-grpc-tools missing")
    sys.exit(0)

GOOGLEAPIS = "/usr/share/gocode/src/github.com/gogo/googleapis"


def gen_stubs(out, proto_dir, files):
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    for f in files:
        args = ["protoc", "-I", proto_dir, "-I", GOOGLEAPIS, "-I", include, "-I", "/usr/include",
                "--python_out=" + out, "--grpc_python_out=" + out, f]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed for " + f)


def start_server(binary, tmp, env_extra=None):
    port_file = os.path.join(tmp, "port")
    env = dict(os.environ, PORT="0", PORT_FILE=port_file, THREADS="2", LOG_LEVEL="warn")
    env.update(env_extra or {})
    log = open(os.path.join(tmp, "server.log"), "w")
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        if os.path.exists(port_file):
            with open(port_file) as f:
                txt = f.read().strip()
            if txt:
                return proc, int(txt)
        if proc.poll() is not None:
            raise RuntimeError("server exited: %d" % proc.returncode)
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


class Ctx:
    pass


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary, proto_dir = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="fsr-interop-")
    support_dir = os.path.dirname(os.path.abspath(binary))
    gen = os.path.join(tmp, "py")
    os.makedirs(gen)
    src_support = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support")
    gen_stubs(gen, os.path.abspath(src_support), ["fsrtest.proto"])
    gen_stubs(gen, GOOGLEAPIS, ["google/rpc/status.proto", "google/rpc/error_details.proto"])
    sys.path.insert(0, gen)
    t = Ctx()
    t.pb = importlib.import_module("fsrtest_pb2")
    t.rpc = importlib.import_module("fsrtest_pb2_grpc")
    t.status_pb = importlib.import_module("google.rpc.status_pb2")
    t.details_pb = importlib.import_module("google.rpc.error_details_pb2")
    proc, port = start_server(binary, tmp)
    t.port = port
    t.channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    t.stub = t.rpc.TestServiceStub(t.channel)
    cases = [c for name, c in sorted(globals().items()) if name.startswith("case_")]
    print("1..%d" % len(cases))
    failed = 0
    for i, case in enumerate(cases, 1):
        try:
            case(t)
            print("ok %d - %s" % (i, case.__name__[5:]))
        except Exception:  # noqa: BLE001 - report every failure as a TAP line
            failed += 1
            print("not ok %d - %s" % (i, case.__name__[5:]))
            for line in traceback.format_exc().splitlines():
                print("# " + line)
        sys.stdout.flush()
    t.channel.close()
    alive = proc.poll() is None
    proc.terminate()
    rc = proc.wait(timeout=10)
    if not alive or rc != 0:
        print("# server %s, exit status %s" % ("died" if not alive else "alive", rc))
        failed += 1
    return 1 if failed else 0


def expect_error(fn, code, details=None):
    try:
        fn()
    except grpc.RpcError as e:
        assert e.code() == code, "code %s, expected %s (%s)" % (e.code(), code, e.details())
        if details is not None:
            assert e.details() == details, "details %r, expected %r" % (e.details(), details)
        return e
    raise AssertionError("expected %s, call succeeded" % code)


def case_01_echo_success(t):
    r = t.stub.Echo(t.pb.EchoRequest(message="hello", payload=b"\x00\x01\xff"), timeout=5)
    assert r.message == "hello" and r.payload == b"\x00\x01\xff"
    assert r.deadline_ms > 0 and r.deadline_ms <= 5000, r.deadline_ms


def case_02_every_status_code_with_message(t):
    for code in grpc.StatusCode:
        if code == grpc.StatusCode.OK:
            continue
        num = code.value[0]
        msg = "failure %d: héllo 100%% ✓ \n end" % num
        expect_error(lambda: t.stub.Echo(t.pb.EchoRequest(code=num, error_message=msg),
                                         timeout=5), code, msg)


def case_03_deadline_exceeded(t):
    start = time.monotonic()
    expect_error(lambda: t.stub.Echo(t.pb.EchoRequest(sleep_ms=2000), timeout=0.2),
                 grpc.StatusCode.DEADLINE_EXCEEDED)
    assert time.monotonic() - start < 1.5
    # The server stays healthy and answers the next call.
    assert t.stub.Echo(t.pb.EchoRequest(message="after"), timeout=5).message == "after"


def case_04_server_sees_the_deadline(t):
    r = t.stub.Echo(t.pb.EchoRequest(), timeout=0.75)
    assert 0 < r.deadline_ms <= 750, r.deadline_ms
    r = t.stub.Echo(t.pb.EchoRequest())
    assert r.deadline_ms == -1, r.deadline_ms


def case_05_metadata_round_trip(t):
    md = [("x-ascii", "plain value"), ("x-data-bin", b"\x00\xffbinary\x01")]
    r, call = t.stub.Echo.with_call(t.pb.EchoRequest(), metadata=md, timeout=5)
    assert "x-ascii=plain value" in r.metadata, r.metadata
    assert "x-data-bin=00ff62696e61727901" in r.metadata, r.metadata
    tr = dict(call.trailing_metadata())
    assert tr.get("x-ascii") == "plain value", tr
    assert tr.get("x-data-bin") == b"\x00\xffbinary\x01", tr


def case_06_three_mib_messages(t):
    payload = os.urandom(3 * 1024 * 1024)
    r = t.stub.Echo(t.pb.EchoRequest(payload=payload), timeout=20)
    assert r.payload == payload
    r = t.stub.Echo(t.pb.EchoRequest(reply_size=3 * 1024 * 1024), timeout=20)
    assert len(r.payload) == 3 * 1024 * 1024


def case_07_over_max_message_size(t):
    payload = b"y" * (4 * 1024 * 1024 + 10)
    expect_error(lambda: t.stub.Echo(t.pb.EchoRequest(payload=payload), timeout=20),
                 grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert t.stub.Echo(t.pb.EchoRequest(message="still"), timeout=5).message == "still"


def case_08_unknown_method_and_service(t):
    m = t.channel.unary_unary("/fsrtest.v1.TestService/Nope")
    expect_error(lambda: m(b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED)
    m = t.channel.unary_unary("/no.such.Service/Echo")
    expect_error(lambda: m(b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED)


def case_09_server_stream(t):
    got = [r.index for r in t.stub.Stream(t.pb.EchoRequest(stream_count=25), timeout=5)]
    assert got == list(range(25)), got


def case_10_server_stream_error_after_messages(t):
    it = t.stub.Stream(t.pb.EchoRequest(stream_count=3, code=9, error_message="stop"),
                       timeout=5)
    got = []
    try:
        for r in it:
            got.append(r.index)
        raise AssertionError("stream ended OK")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and e.details() == "stop"
    assert got == [0, 1, 2], got


def case_11_field_error_details(t):
    e = expect_error(lambda: t.stub.Echo(t.pb.EchoRequest(bad_field="couponRate"), timeout=5),
                     grpc.StatusCode.INVALID_ARGUMENT, "couponRate: is not acceptable")
    raw = dict(e.trailing_metadata()).get("grpc-status-details-bin")
    assert raw is not None, e.trailing_metadata()
    st = t.status_pb.Status.FromString(raw)
    assert st.code == 3 and st.message == "couponRate: is not acceptable"
    br = t.details_pb.BadRequest()
    assert st.details[0].Unpack(br)
    assert br.field_violations[0].field == "couponRate"


def case_12_many_concurrent_calls_one_connection(t):
    futs = [t.stub.Echo.future(t.pb.EchoRequest(message=str(i), sleep_ms=i % 5), timeout=10)
            for i in range(500)]
    for i, f in enumerate(futs):
        assert f.result().message == str(i)


def case_13_cancel_then_serve(t):
    f = t.stub.Echo.future(t.pb.EchoRequest(sleep_ms=1000), timeout=10)
    time.sleep(0.05)
    assert f.cancel()
    assert t.stub.Echo(t.pb.EchoRequest(message="x"), timeout=5).message == "x"


def case_13b_finish_inside_cancel_callback(t):
    # The handler finishes the call from its on_cancel callback while the runtime is
    # tearing the stream down (a use-after-free before the fix; ASan builds catch it).
    for _ in range(20):
        f = t.stub.Echo.future(t.pb.EchoRequest(message="finish-on-cancel", sleep_ms=2000),
                               timeout=10)
        time.sleep(0.02)
        assert f.cancel()
    assert t.stub.Echo(t.pb.EchoRequest(message="z"), timeout=5).message == "z"


def case_14_stream_cancelled_by_client(t):
    it = t.stub.Stream(t.pb.EchoRequest(stream_count=1000, sleep_ms=10), timeout=10)
    assert next(it).index == 0
    it.cancel()
    assert t.stub.Echo(t.pb.EchoRequest(message="y"), timeout=5).message == "y"


def case_15_health_check(t):
    m = t.channel.unary_unary("/grpc.health.v1.Health/Check")
    assert m(b"", timeout=5) == b"\x08\x01"  # status: SERVING
    expect_error(lambda: m(b"\x0a\x04nope", timeout=5), grpc.StatusCode.NOT_FOUND)


def case_16_parallel_channels(t):
    errors = []

    def worker():
        ch = grpc.insecure_channel("127.0.0.1:%d" % t.port)
        stub = t.rpc.TestServiceStub(ch)
        try:
            for i in range(50):
                assert stub.Echo(t.pb.EchoRequest(message="p%d" % i), timeout=5).message == \
                    "p%d" % i
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        ch.close()

    th = [threading.Thread(target=worker) for _ in range(8)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    assert not errors, errors


if __name__ == "__main__":
    sys.exit(main())
