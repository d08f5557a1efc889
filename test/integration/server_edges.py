#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Hostile and edge-case input against a real fsr server (fsr-test-server), over raw
sockets (HTTP/1.1) and curl (HTTP/2 prior knowledge): keep-alive, pipelining, size limits,
malformed requests, slow clients, bad gRPC framing, wrong content types, graceful shutdown,
/metrics validity and idle memory.  After every hostile case the server must still serve.
Prints TAP.

usage: server_edges.py SERVER_BINARY
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HEADER_TIMEOUT_MS = 1500


def start(binary, tmp, extra=None):
    port_file = os.path.join(tmp, "port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    env = dict(os.environ, PORT="0", PORT_FILE=port_file, THREADS="2", LOG_LEVEL="warn",
               HEADER_TIMEOUT_MS=str(HEADER_TIMEOUT_MS))
    env.update(extra or {})
    log = open(os.path.join(tmp, "server.log"), "a")
    proc = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        if os.path.exists(port_file) and open(port_file).read().strip():
            return proc, int(open(port_file).read())
        if proc.poll() is not None:
            raise RuntimeError("server exited %d" % proc.returncode)
        time.sleep(0.05)
    raise RuntimeError("server did not start")


def recv_all(sock, timeout=5.0):
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


def read_response(sock):
    """Reads one HTTP/1.1 response (Content-Length framed). Returns (status, headers, body)."""
    sock.settimeout(5)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a response: %r" % buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:n], rest[n:]


class T:
    pass


def connect(t):
    return socket.create_connection(("127.0.0.1", t.port), timeout=5)


def healthy(t):
    s = connect(t)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    st, _, body, _ = read_response(s)
    s.close()
    assert st == 200 and b"SERVING" in body, (st, body)


def curl(args, data=None):
    cmd = ["curl", "-s", "-S", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
           "%{http_code}"] + args
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=20)
    return r.stdout.decode()


def nghttp(url, body, headers=(), timeout=20):
    """One h2c request with nghttp (nghttp2's client, RFC-exact where curl 7.88 is not: it
    keeps a response followed by RST_STREAM(NO_ERROR), and trailers after a GOAWAY).
    Returns the received header and trailer fields as lowercase "name: value" lines."""
    fd, path = tempfile.mkstemp()
    os.write(fd, body)
    os.close(fd)
    cmd = ["nghttp", "-v", "-d", path, "-H", "content-type: application/grpc",
           "-H", "te: trailers"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    finally:
        os.unlink(path)
    out = []
    for line in r.stdout.decode(errors="replace").splitlines():
        if "] recv (stream_id=" in line:
            out.append(line.split(") ", 1)[1].strip().lower())
    return "\n".join(out)


def grpc_post(t, body, extra_headers=()):
    return nghttp("http://127.0.0.1:%d/fsrtest.v1.TestService/Echo" % t.port, body,
                  extra_headers)


def case_h1_keep_alive(t):
    s = connect(t)
    for _ in range(3):
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        st, h, body, _ = read_response(s)
        assert st == 200 and "x-request-id" in h
    s.close()


def case_h1_pipelining_in_order(t):
    s = connect(t)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: first\r\n\r\n"
              b"GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: second\r\n\r\n")
    st1, h1, _, rest = read_response(s)
    assert st1 == 200 and h1["x-request-id"] == "first", (st1, h1)
    if rest:
        # The second response may already be buffered behind the first.
        s2 = rest + recv_all(s, 1)
        assert b"404" in s2.split(b"\r\n")[0] and b"x-request-id: second" in s2.lower(), s2
    else:
        st2, h2, _, _ = read_response(s)
        assert st2 == 404 and h2["x-request-id"] == "second", (st2, h2)
    s.close()


def case_h1_huge_header_431(t):
    s = connect(t)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
    st, _, _, _ = read_response(s)
    assert st == 431, st
    s.close()
    healthy(t)


def case_h1_many_headers_431(t):
    s = connect(t)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" +
              b"".join(b"X-H%d: v\r\n" % i for i in range(3000)) + b"\r\n")
    st, _, _, _ = read_response(s)
    assert st == 431, st
    s.close()
    healthy(t)


def case_h1_body_too_large_413(t):
    s = connect(t)
    s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
    st, _, _, _ = read_response(s)
    assert st == 413, st
    s.close()
    healthy(t)


def case_h1_malformed_400(t):
    for req, want in ((b"GARBAGE\r\n\r\n", 400), (b"GET / HTTP/9.9\r\n\r\n", 505),
                      (b"\x00\x01\x02\x03\r\n\r\n", 400),
                      (b"GET /health HTTP/1.1\r\nBad Header Line\r\n\r\n", 400)):
        s = connect(t)
        s.sendall(req)
        data = recv_all(s, 3)
        assert data.startswith(b"HTTP/1.1 %d" % want), (req, data[:80])
        s.close()
    healthy(t)


def case_h1_slow_client_cut_off(t):
    s = connect(t)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
    start = time.monotonic()
    data = recv_all(s, HEADER_TIMEOUT_MS / 1000 + 5)
    took = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408"), data[:80]
    assert took < HEADER_TIMEOUT_MS / 1000 + 3, took
    s.close()
    healthy(t)


def case_silent_connection_closed(t):
    s = connect(t)  # sends nothing at all
    start = time.monotonic()
    data = recv_all(s, HEADER_TIMEOUT_MS / 1000 + 5)
    assert data == b"" and time.monotonic() - start < HEADER_TIMEOUT_MS / 1000 + 3
    s.close()


def case_h2_truncated_grpc_frame(t):
    out = grpc_post(t, b"\x00\x00\x00\x00\x10abc")
    assert "grpc-status: 13" in out and "truncated" in out, out
    healthy(t)


def case_h2_bad_protobuf(t):
    out = grpc_post(t, b"\x00\x00\x00\x00\x02\xff\xff")
    assert "grpc-status: 3" in out, out


def case_h2_compressed_flag_unsupported(t):
    out = grpc_post(t, b"\x01\x00\x00\x00\x00")
    assert "grpc-status: 12" in out, out
    out = grpc_post(t, b"\x00\x00\x00\x00\x00", ["grpc-encoding: gzip"])
    assert "grpc-status: 12" in out and "grpc-accept-encoding: identity" in out, out


def case_h2_malformed_timeout(t):
    out = grpc_post(t, b"\x00\x00\x00\x00\x00", ["grpc-timeout: 12x"])
    assert "grpc-status: 13" in out and "grpc-timeout" in out, out


def case_h2_wrong_content_type_415(t):
    code = curl(["-H", "content-type: application/json", "--data-binary", "{}",
                 "http://127.0.0.1:%d/fsrtest.v1.TestService/Echo" % t.port])
    assert code == "415", code


def case_h2_huge_header(t):
    code = curl(["-H", "x-big: " + "a" * 40000, "http://127.0.0.1:%d/health" % t.port])
    assert code == "431", code
    out = grpc_post(t, b"\x00\x00\x00\x00\x00", ["x-big: " + "b" * 40000])
    assert "grpc-status: 8" in out, out
    healthy(t)


def case_h2_garbage_after_preface(t):
    s = connect(t)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64)
    data = recv_all(s, 3)
    # nghttp2 answers SETTINGS, then GOAWAY (frame type 7) and closes.
    assert b"\x07" in data, data
    s.close()
    healthy(t)


def case_h2_oversized_frame_length(t):
    s = connect(t)
    # A DATA frame header announcing 16 MiB on stream 1 with no stream: protocol error.
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" +
              b"\xff\xff\xff\x00\x00\x00\x00\x00\x01" + b"x" * 100)
    recv_all(s, 2)
    s.close()
    healthy(t)


def case_metrics_valid_prometheus(t):
    s = connect(t)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    st, h, body, _ = read_response(s)
    s.close()
    assert st == 200 and h["content-type"].startswith("text/plain"), (st, h)
    assert b"rpc_server_handled_total" in body and b"process_resident_memory_bytes" in body
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
        assert r.returncode == 0, r.stdout + r.stderr


def case_idle_rss_under_10_mib(t):
    if t.sanitized:
        return  # sanitizer shadow memory makes RSS meaningless
    proc, port = start(t.binary, t.tmp)
    try:
        time.sleep(0.5)
        with open("/proc/%d/status" % proc.pid) as f:
            rss_kb = int([ln for ln in f if ln.startswith("VmRSS:")][0].split()[1])
        print("# idle RSS of fsr-test-server: %d KiB" % rss_kb)
        assert rss_kb < 10 * 1024, rss_kb
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def case_idle_rss_after_load_returns_under_10_mib(t):
    if t.sanitized or not shutil.which("h2load"):
        return
    proc, port = start(t.binary, t.tmp)
    try:
        body = os.path.join(t.tmp, "empty.bin")
        with open(body, "wb") as f:
            f.write(b"\x00\x00\x00\x00\x00")
        r = subprocess.run(["h2load", "-n", "60000", "-c", "64", "-m", "10", "-t", "1", "-d", body,
                            "-H", "content-type: application/grpc", "-H", "te: trailers",
                            "http://127.0.0.1:%d/grpc.health.v1.Health/Check" % port],
                           capture_output=True, text=True, timeout=120)
        assert "60000 succeeded" in r.stdout, r.stdout[-400:]
        rss_kb = 0
        for _ in range(20):  # the server trims after a full idle tick (2-4 s)
            time.sleep(0.5)
            with open("/proc/%d/status" % proc.pid) as f:
                rss_kb = int([ln for ln in f if ln.startswith("VmRSS:")][0].split()[1])
            if rss_kb < 10 * 1024 and _ >= 10:
                break
        print("# RSS of fsr-test-server idle after 60000 calls on 64 connections: %d KiB" % rss_kb)
        assert rss_kb < 10 * 1024, rss_kb
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def case_graceful_shutdown_finishes_in_flight(t):
    proc, port = start(t.binary, t.tmp)
    body = b"\x28\x90\x03"  # EchoRequest{sleep_ms: 400}
    frame = b"\x00" + struct.pack(">I", len(body)) + body
    result = {}

    def call():
        result["out"] = nghttp("http://127.0.0.1:%d/fsrtest.v1.TestService/Echo" % port, frame)

    th = threading.Thread(target=call)
    th.start()
    time.sleep(0.15)
    start_t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    th.join()
    rc = proc.wait(timeout=10)
    assert "grpc-status: 0" in result["out"], result
    assert rc == 0, rc
    assert time.monotonic() - start_t < 3, "drain took too long"
    # After shutdown nothing listens.
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        raise AssertionError("still accepting after shutdown")
    except OSError:
        pass


def main():
    binary = sys.argv[1]
    if not shutil.which("curl") or not shutil.which("nghttp"):
        print("1..0 # SKIP curl or nghttp (nghttp2-client) missing")
        return 0
    t = T()
    t.binary = binary
    t.tmp = tempfile.mkdtemp(prefix="fsr-edges-")
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    t.sanitized = "libasan" in ldd or "libubsan" in ldd
    proc, t.port = start(binary, t.tmp)
    only = os.environ.get("ONLY")  # run a subset while debugging: ONLY=h2_,metrics
    cases = [(n, f) for n, f in globals().items() if n.startswith("case_") and
             (not only or any(o in n for o in only.split(",")))]
    print("1..%d" % len(cases))
    failed = 0
    for i, (name, fn) in enumerate(cases, 1):
        try:
            fn(t)
            print("ok %d - %s" % (i, name[5:]))
        except Exception:  # noqa: BLE001
            failed += 1
            print("not ok %d - %s" % (i, name[5:]))
            for line in traceback.format_exc().splitlines()[-6:]:
                print("# " + line[:300])
        sys.stdout.flush()
    alive = proc.poll() is None
    proc.terminate()
    rc = proc.wait(timeout=10)
    if not alive or rc != 0:
        failed += 1
        print("# server %s (exit %s); log:" % ("died" if not alive else "exited badly", rc))
        for line in open(os.path.join(t.tmp, "server.log")).read().splitlines()[-30:]:
            print("# " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
