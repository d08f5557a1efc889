#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A real grpcio server for interop tests of the C client (and, later, of our servers' peers).

Serves grpc.health.v1.Health (messages generated at start-up into a temp dir with
grpc_tools.protoc from proto/) and a schema-less test service, fsr.test.Echo, whose methods take
and return raw bytes (identity serializers), so the C side can use any protobuf-c message:

  /fsr.test.Echo/Echo    unary: echoes the request bytes.  Request metadata steers it:
      x-sleep-ms: N              sleep N ms first (in steps, stopping early if cancelled)
      x-fail-code: N             finish with status code N ...
      x-fail-message-bin: B      ... and this UTF-8 message (binary metadata, so any text)
      x-fail-details-bin: B      ... and these grpc-status-details-bin bytes
      x-fail-first: TOKEN:N      the first N calls carrying TOKEN fail with UNAVAILABLE
      x-big-response: N          answer N bytes of a field-1 string instead of the echo
      x-shutdown: GRACE_MS       stop the server gracefully (GOAWAY) after answering
    Every request header named x-echo-* (ASCII or -bin) comes back in the trailers, plus
    x-attempt (the TOKEN's call count), x-peer (the client's address), x-time-remaining
    (seconds left of the grpc-timeout, or "none"), x-user-agent and x-request-id (as seen),
    x-server-id (--id).  The initial metadata carries x-initial: yes.
  /fsr.test.Echo/Stream  server streaming: the request bytes x-count times (default 3); with
      x-fail-after: K it fails with x-fail-code (default ABORTED) after K messages.

Usage: grpcio_server.py [--port N] [--id NAME] [--proto-root DIR]
Prints "PORT <n>" on stdout once serving; exits on SIGTERM/SIGINT.
"""

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))


def generate_messages(proto_root, protos, out_dir):
    """Runs grpc_tools.protoc and imports each <name>_pb2 module by file path.

    The generated packages would be named like the grpcio package itself (grpc/health/v1), so
    they are loaded from their files instead of through sys.path.
    """
    subprocess.run([sys.executable, '-m', 'grpc_tools.protoc', '-I' + proto_root,
                    '--python_out=' + out_dir] + [os.path.join(proto_root, p) for p in protos],
                   check=True)
    modules = {}
    for p in protos:
        path = os.path.join(out_dir, p[:-len('.proto')] + '_pb2.py')
        name = p[:-len('.proto')].replace('/', '_') + '_pb2'
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        modules[p] = mod
    return modules


def identity(b):
    return b


class Echo:
    def __init__(self, server_id):
        self.server_id = server_id
        self.lock = threading.Lock()
        self.attempts = {}
        self.server = None

    @staticmethod
    def md(context):
        return {k: v for k, v in context.invocation_metadata()}

    def attempt(self, md):
        """Counts calls per x-fail-first token; True if this one must fail."""
        spec = md.get('x-fail-first')
        if spec is None:
            return 0, False
        token, n = spec.rsplit(':', 1)
        with self.lock:
            self.attempts[token] = self.attempts.get(token, 0) + 1
            k = self.attempts[token]
        return k, k <= int(n)

    def trailers(self, context, md, attempt):
        out = [(k, v) for k, v in md.items() if k.startswith('x-echo-')]
        remaining = context.time_remaining()
        out += [('x-attempt', str(attempt)),
                ('x-peer', context.peer()),
                # grpcio reports a huge value rather than None when there is no deadline.
                ('x-time-remaining',
                 'none' if remaining is None or remaining > 1e9 else '%.3f' % remaining),
                ('x-user-agent', md.get('user-agent', '')),
                ('x-request-id', md.get('x-request-id', '')),
                ('x-server-id', self.server_id)]
        return out

    @staticmethod
    def fail(context, md, default_code=None):
        code = md.get('x-fail-code', default_code)
        if code is None:
            return False
        code = int(code)
        status = next(s for s in grpc.StatusCode if s.value[0] == code)
        context.set_code(status)
        msg = md.get('x-fail-message-bin')
        if msg is not None:
            context.set_details(msg.decode('utf-8'))
        return True

    def echo(self, request, context):
        md = self.md(context)
        context.send_initial_metadata([('x-initial', 'yes')])
        sleep_ms = int(md.get('x-sleep-ms', '0'))
        end = time.monotonic() + sleep_ms / 1000.0
        while time.monotonic() < end and context.is_active():
            time.sleep(0.01)
        attempt, must_fail = self.attempt(md)
        trailers = self.trailers(context, md, attempt)
        if 'x-fail-details-bin' in md:
            trailers.append(('grpc-status-details-bin', md['x-fail-details-bin']))
        context.set_trailing_metadata(trailers)
        if must_fail:
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details('try again (attempt %d)' % attempt)
            return b''
        if self.fail(context, md):
            return b''
        if 'x-shutdown' in md:
            grace = int(md['x-shutdown']) / 1000.0
            threading.Timer(0.05, lambda: self.server.stop(grace)).start()
        if 'x-big-response' in md:
            n = int(md['x-big-response'])
            return b'\x0a' + encode_varint(n) + b'x' * n
        return request

    def stream(self, request, context):
        md = self.md(context)
        context.set_trailing_metadata(self.trailers(context, md, 0))
        count = int(md.get('x-count', '3'))
        fail_after = md.get('x-fail-after')
        for i in range(count):
            if fail_after is not None and i == int(fail_after):
                break
            yield request
        if fail_after is not None:
            self.fail(context, md, default_code=grpc.StatusCode.ABORTED.value[0])


def encode_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def health_handler(health_pb2):
    req_t, resp_t = health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    known = {'', 'grpc.health.v1.Health', 'fsr.test.Echo'}

    def check(request, context):
        if request.service not in known:
            context.abort(grpc.StatusCode.NOT_FOUND, 'unknown service')
        return resp_t(status=resp_t.SERVING)

    def watch(request, context):
        yield resp_t(status=resp_t.SERVING if request.service in known
                     else resp_t.SERVICE_UNKNOWN)

    return grpc.method_handlers_generic_handler('grpc.health.v1.Health', {
        'Check': grpc.unary_unary_rpc_method_handler(
            check, request_deserializer=req_t.FromString,
            response_serializer=resp_t.SerializeToString),
        'Watch': grpc.unary_stream_rpc_method_handler(
            watch, request_deserializer=req_t.FromString,
            response_serializer=resp_t.SerializeToString),
    })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--id', default='grpcio')
    ap.add_argument('--proto-root', default=os.path.join(HERE, '..', '..', 'proto'))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix='fsr-grpcio-') as tmp:
        mods = generate_messages(os.path.abspath(args.proto_root),
                                 ['grpc/health/v1/health.proto'], tmp)
        health_pb2 = mods['grpc/health/v1/health.proto']

    limit = 64 * 1024 * 1024
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=[
        ('grpc.max_receive_message_length', limit),
        ('grpc.max_send_message_length', limit),
    ])
    echo = Echo(args.id)
    echo.server = server
    server.add_generic_rpc_handlers([
        health_handler(health_pb2),
        grpc.method_handlers_generic_handler('fsr.test.Echo', {
            'Echo': grpc.unary_unary_rpc_method_handler(
                echo.echo, request_deserializer=identity, response_serializer=identity),
            'Stream': grpc.unary_stream_rpc_method_handler(
                echo.stream, request_deserializer=identity, response_serializer=identity),
        }),
    ])
    port = server.add_insecure_port('127.0.0.1:%d' % args.port)
    if port == 0:
        sys.exit('cannot bind port %d' % args.port)
    server.start()
    print('PORT %d' % port, flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Also end when a graceful stop was requested over RPC (x-shutdown).
    threading.Thread(target=lambda: (server.wait_for_termination(), stop.set()),
                     daemon=True).start()
    stop.wait()
    server.stop(0)


if __name__ == '__main__':
    main()
