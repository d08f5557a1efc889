#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The metrics the manifests rely on, from real processes (TAP; run under with_deps.sh).

    metrics_live.py --equity BIN --worker BIN --gateway BIN --version V --rules FILE...

Starts fsr-equity, fsr-worker --queue equity (both on with_deps.sh's PostgreSQL and Redis)
and fsr-gateway, makes a gRPC call and a REST request, then scrapes each /metrics:
fsr_build_info{service,version} is 1 with the project's version; the Postgres pool gauges
(fsr_pg_pool_size = THREADS x PG_POOL_SIZE, _connected reaching the size, _busy, _waiting)
are there for the processes with a database and absent from the gateway; promtool (when
installed) accepts each exposition; and every metric the alert rules read is exported.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import k8s_lib as K  # noqa: E402
import monitoring_check as M  # noqa: E402

procs = []


def start(name, argv, env_extra, tmp):
    env = dict(os.environ)
    port_file = os.path.join(tmp, name + '.port')
    env.update({'PORT': '0', 'PORT_FILE': port_file, 'LOG_LEVEL': 'warn',
                'SHUTDOWN_GRACE_MS': '500'})
    env.update(env_extra)
    log = open(os.path.join(tmp, name + '.log'), 'wb')
    p = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    procs.append(p)
    deadline = time.time() + 30
    while time.time() < deadline and p.poll() is None:
        try:
            with open(port_file) as f:
                s = f.read().strip()
            if s:
                return int(s)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    with open(os.path.join(tmp, name + '.log'), 'rb') as f:
        K.Tap.diag('%s did not start:\n%s' % (name, f.read()[-2000:].decode('utf-8', 'replace')))
    return None


def scrape(port):
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=5) as r:
        return r.read().decode()


def samples(text):
    """{(name, frozenset(labels)): value}"""
    out = {}
    for ln in text.splitlines():
        if not ln or ln.startswith('#'):
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)', ln)
        if m:
            labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                          m.group(3) or ''))
            out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(smp, name, **labels):
    want = frozenset(labels.items())
    vals = [v for (n, ls), v in smp.items() if n == name and want <= ls]
    return vals[0] if len(vals) == 1 else None


def grpc_health(port):
    """A grpc.health.v1 Check over h2c (with grpcio when available)."""
    try:
        import grpc
    except ImportError:
        return False
    ch = grpc.insecure_channel('127.0.0.1:%d' % port)
    f = ch.unary_unary('/grpc.health.v1.Health/Check', request_serializer=lambda x: x,
                       response_deserializer=lambda x: x)
    try:
        return f(b'', timeout=5) == b'\x08\x01'   # status: SERVING
    finally:
        ch.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--equity', required=True)
    ap.add_argument('--worker', required=True)
    ap.add_argument('--gateway', required=True)
    ap.add_argument('--version', required=True)
    ap.add_argument('--rules', nargs='+', required=True)
    a = ap.parse_args()
    if 'TEST_PG_HOST' not in os.environ:
        print('1..0 # SKIP needs with_deps.sh (PostgreSQL and Redis)')
        return K.SKIP
    T = K.Tap()
    tmp = tempfile.mkdtemp(prefix='fsr-metrics-')
    db = {'EQUITY_DB_HOST': os.environ['TEST_PG_HOST'],
          'EQUITY_DB_PORT': os.environ['TEST_PG_PORT'], 'EQUITY_DB_NAME': 'fsr_test',
          'EQUITY_DB_USER': 'fsr', 'EQUITY_REDIS_HOST': os.environ['TEST_REDIS_HOST'],
          'EQUITY_REDIS_PORT': os.environ['TEST_REDIS_PORT'],
          'SHARED_REDIS_HOST': os.environ['TEST_REDIS_HOST'],
          'SHARED_REDIS_PORT': os.environ['TEST_REDIS_PORT'], 'PG_POOL_SIZE': '3'}
    try:
        eq = start('equity', [a.equity], dict(db, THREADS='2'), tmp)
        if not T.ok(eq is not None, 'fsr-equity starts'):
            return T.done()
        wk = start('worker', [a.worker, '--queue', 'equity'], dict(db, WORKER_PORT='0'), tmp)
        T.ok(wk is not None, 'fsr-worker --queue equity starts')
        dead = 1  # nothing listens on port 1: the other upstreams are down
        gw = start('gateway', [a.gateway], {
            'THREADS': '1', 'EQUITY_SERVICE_ADDR': '127.0.0.1:%d' % eq,
            'FI_SERVICE_ADDR': '127.0.0.1:%d' % dead,
            'PORTFOLIO_SERVICE_ADDR': '127.0.0.1:%d' % dead}, tmp)
        T.ok(gw is not None, 'fsr-gateway starts')

        T.ok(grpc_health(eq), 'a gRPC health check on fsr-equity answers SERVING')
        try:
            urllib.request.urlopen('http://127.0.0.1:%d/equities' % gw, timeout=5).read()
        except Exception:  # any status will do: the request is what counts
            pass

        ports = {'equity': eq, 'worker-equity': wk, 'gateway': gw}
        texts = {}
        deadline = time.time() + 10
        while True:
            texts = {k: scrape(p) for k, p in ports.items() if p}
            smp = samples(texts.get('equity', ''))
            size = value(smp, 'fsr_pg_pool_size')
            if (size and value(smp, 'fsr_pg_pool_connected') == size) or time.time() > deadline:
                break
            time.sleep(0.3)
        parsed = {k: samples(t) for k, t in texts.items()}

        for k, smp in parsed.items():
            svc = {'equity': 'equity', 'worker-equity': 'worker-equity', 'gateway': 'gateway'}[k]
            T.ok(value(smp, 'fsr_build_info', service=svc, version=a.version) == 1,
                 '%s: fsr_build_info{service="%s",version="%s"} 1' % (k, svc, a.version),
                 [ln for ln in texts[k].splitlines() if 'build_info' in ln])
        e = parsed.get('equity', {})
        T.ok(value(e, 'fsr_pg_pool_size') == 6,
             'equity: fsr_pg_pool_size is THREADS x PG_POOL_SIZE (2 x 3)',
             'got %s' % value(e, 'fsr_pg_pool_size'))
        T.ok(value(e, 'fsr_pg_pool_connected') == 6, 'equity: all 6 connections come up',
             'fsr_pg_pool_connected %s' % value(e, 'fsr_pg_pool_connected'))
        T.ok(value(e, 'fsr_pg_pool_busy') is not None
             and value(e, 'fsr_pg_pool_waiting') is not None,
             'equity: fsr_pg_pool_busy and fsr_pg_pool_waiting are exported')
        if 'worker-equity' in parsed:
            w = parsed['worker-equity']
            T.ok(value(w, 'fsr_pg_pool_size') == 3,
                 'worker: one thread, PG_POOL_SIZE connections', 'got %s'
                 % value(w, 'fsr_pg_pool_size'))
        if 'gateway' in parsed:
            T.ok(not any(n.startswith('fsr_pg_pool') for n, _ in parsed['gateway']),
                 'gateway (no database): no pool gauges')

        promtool = shutil.which('promtool')
        for k, t in texts.items():
            if not promtool:
                T.skip('%s: promtool check metrics' % k, 'promtool not found')
                continue
            p = subprocess.run([promtool, 'check', 'metrics'], input=t,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            T.ok(p.returncode == 0, '%s: promtool check metrics' % k, p.stdout)

        exported = {n for smp in parsed.values() for n, _ in smp}
        used, records = set(), set()
        for f in a.rules:
            for g in (yaml.safe_load(open(f)) or {}).get('groups') or []:
                for r in g.get('rules') or []:
                    records.add(r.get('record'))
                    used |= M.promql_metrics(str(r.get('expr', '')))
        missing = sorted(used - records - {'up'} - exported)
        T.ok(len(used) > 5 and not missing,
             'every metric the alert rules read is exported by a running process',
             'not exported: %s' % missing)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
