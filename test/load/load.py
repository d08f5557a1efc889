# SPDX-License-Identifier: MIT
"""Load and soak through the REST gateway with wrk (test/load/mix.lua), TAP on stdout.

Own stack (with_deps.sh's PostgreSQL and Redis, processes from stack.py):

    test/integration/with_deps.sh --pg --redis -- python3 test/load/load.py \
        --gateway G --equity E --fi F --portfolio P [--duration 10] [--soak]

A running `make up` stack instead (its admin key and pid files from .run/):

    python3 test/load/load.py --url http://127.0.0.1:8000 --key "$(cat .run/admin_api_key)" \
        --pids-dir .run/pids --duration 60

Seeds 3 equities (30 bars each), 2 bonds (a quote each), 3 portfolios holding them (read,
listed, calculated) and 2 more the DEPOSITs go to, runs wrk for --duration seconds and
checks: zero non-2xx answers, zero socket errors, p99 <= --p99-max-ms.  With --soak it also
samples RSS and open fds of every process every --sample-every seconds and fails if, after
--warmup seconds, one grows beyond max(--rss-pct % of its post-warm-up RSS, --rss-kib KiB) or
--fd-growth fds.  The figures go to stdout as TAP diagnostics and, with --json-out, to a file.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
import stack  # noqa: E402

AS_OF = '2024-06-14'
T = stack.Tap()


class Client:
    def __init__(self, base, key):
        self.base = base.rstrip('/')
        self.key = key

    def req(self, method, path, body=None, headers=None):
        h = {'Authorization': 'Bearer ' + self.key}
        data = None
        if body is not None:
            h['Content-Type'] = 'application/json'
            data = json.dumps(body).encode()
        h.update(headers or {})
        r = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b'null')
        except urllib.error.HTTPError as e:
            return e.code, e.read()[:500]


def must(res, what):
    st, j = res
    if st != 200:
        raise RuntimeError('%s: HTTP %s %r' % (what, st, j))
    return j


def bars(n, base):
    out = []
    t = time.mktime(time.strptime(AS_OF, '%Y-%m-%d'))
    k = 0
    while len(out) < n:
        d = time.localtime(t - 86400 * k)
        k += 1
        if d.tm_wday >= 5:
            continue
        c = base + (len(out) * 37 % 11) * 0.5
        out.append({'date': time.strftime('%Y-%m-%d', d), 'open': '%.2f' % c,
                     'high': '%.2f' % (c + 1), 'low': '%.2f' % (c - 1), 'close': '%.2f' % c,
                     'volume': '1000'})
    return out


def seed(c):
    tag = uuid.uuid4().hex[:6]
    eqs, bonds, pfs, wpfs = [], [], [], []
    for i in range(3):
        j = must(c.req('POST', '/equities', {
            'symbol': ('LD%d%s' % (i, tag)).upper(), 'name': 'Load %d %s' % (i, tag),
            'exchange': 'XTST', 'currency': 'USD', 'sector': 'Testing', 'lotSize': 1}),
            'create equity')
        must(c.req('PUT', '/equities/%s/prices' % j['id'], {'bars': bars(30, 50 + 20 * i)}),
             'prices')
        eqs.append(j['id'])
    for i in range(2):
        j = must(c.req('POST', '/bonds', {
            'couponRate': 0.03 + 0.01 * i, 'frequency': 2, 'dayCount': 'THIRTY_360_US',
            'issueDate': '2020-01-15', 'maturityDate': '203%d-01-15' % i,
            'name': 'Load %d %s' % (i, tag), 'issuer': 'Load Treasury', 'currency': 'USD',
            'face': '1000'}), 'create bond')
        must(c.req('PUT', '/bonds/%s/quotes' % j['id'],
                   {'quotes': [{'date': AS_OF, 'cleanPrice': '%.1f' % (97 + i)}]}), 'quotes')
        bonds.append(j['id'])
    for i in range(5):
        j = must(c.req('POST', '/portfolios', {'name': 'Load %d %s' % (i, tag),
                                               'baseCurrency': 'USD', 'cash': '100000'}),
                 'create portfolio')
        (pfs if i < 3 else wpfs).append(j['id'])
        if i < 3:
            for k, (itype, iid) in enumerate([('EQUITY', e) for e in eqs] +
                                             [('BOND', b) for b in bonds]):
                must(c.req('POST', '/portfolios/%s/constituents' % j['id'],
                           {'instrumentType': itype, 'instrumentId': iid,
                            'quantity': str(10 * (k + 1) if itype == 'EQUITY' else 1000 * (k + 1))}),
                     'constituent')
    # One pass of every request kind, so a broken route fails here with its message.
    for p in pfs:
        must(c.req('POST', '/portfolios/%s/calculate' % p, {'asOf': AS_OF}), 'calculate')
        must(c.req('GET', '/portfolios/%s/constituents' % p), 'constituents')
    for e in eqs:
        must(c.req('GET', '/equities/%s/quote' % e), 'quote')
    for b in bonds:
        must(c.req('GET', '/bonds/%s/analytics?settlementDate=%s' % (b, AS_OF)), 'bond analytics')
    return {'LOAD_PORTFOLIOS': ','.join(pfs), 'LOAD_WRITE_PF': ','.join(wpfs),
            'LOAD_EQUITIES': ','.join(eqs), 'LOAD_BONDS': ','.join(bonds), 'LOAD_AS_OF': AS_OF}


def sample(pids):
    out = {}
    for name, pid in pids.items():
        try:
            th, fds, rss = stack.proc_usage(pid)
            out[name] = {'threads': th, 'fds': fds, 'rss_kib': rss}
        except OSError:
            out[name] = None
    return out


def pids_from_dir(d):
    pids = {}
    for f in sorted(os.listdir(d)):
        if f.endswith('.pid'):
            try:
                with open(os.path.join(d, f)) as fh:
                    pid = int(fh.read().strip())
                os.kill(pid, 0)
                pids[f[:-4]] = pid
            except (OSError, ValueError):
                pass
    return pids


def main():
    ap = argparse.ArgumentParser()
    for a in ('gateway', 'equity', 'fi', 'portfolio'):
        ap.add_argument('--' + a)
    ap.add_argument('--url', help='a running gateway instead of an own stack')
    ap.add_argument('--key', default=os.environ.get('ADMIN_API_KEY', stack.ADMIN_KEY))
    ap.add_argument('--pids-dir', help='with --url: pid files of the processes to sample')
    ap.add_argument('--duration', type=int, default=10, help='seconds of wrk')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--connections', type=int, default=16)
    ap.add_argument('--p99-max-ms', type=float, default=500.0)
    ap.add_argument('--soak', action='store_true', help='sample RSS/fds, bound their growth')
    ap.add_argument('--sample-every', type=float, default=10.0)
    ap.add_argument('--warmup', type=float, default=None,
                    help='seconds before the baseline sample (default: 10%% of duration, '
                         'at least 30 s, at most 60 s)')
    ap.add_argument('--rss-pct', type=float, default=20.0)
    ap.add_argument('--rss-kib', type=int, default=10240)
    ap.add_argument('--fd-growth', type=int, default=10)
    ap.add_argument('--json-out')
    ap.add_argument('--lua', default=os.path.join(HERE, 'mix.lua'))
    args = ap.parse_args()

    s = None
    if args.url:
        base = args.url
        pids = pids_from_dir(args.pids_dir) if args.pids_dir else {}
    else:
        s = stack.Stack({'equity': args.equity, 'fixed_income': args.fi,
                         'portfolio': args.portfolio, 'gateway': args.gateway},
                        env={'LOG_LEVEL': 'error'}, tap=T)
        s.start_all()
        base = 'http://127.0.0.1:%d' % s.ports['gateway']
        pids = {n: p.pid for n, p in s.procs.items()}
    c = Client(base, args.key)
    env = dict(os.environ, LOAD_KEY=args.key, **seed(c))
    T.ok(True, 'seeded: 3 equities, 2 bonds, 3 portfolios read, 2 written')

    cmd = ['wrk', '-t', str(args.threads), '-c', str(args.connections),
           '-d', '%ds' % args.duration, '--timeout', '5s', '-s', args.lua, base]
    T.diag('%s' % ' '.join(cmd))
    samples = []
    t0 = time.monotonic()
    warmup = args.warmup
    if warmup is None:
        warmup = min(60.0, max(30.0, args.duration * 0.1))
    samples.append((0.0, sample(pids)))
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if args.soak:
        nxt = t0 + args.sample_every
        while p.poll() is None:
            time.sleep(min(1.0, max(0.0, nxt - time.monotonic())))
            if time.monotonic() >= nxt and p.poll() is None:
                samples.append((time.monotonic() - t0, sample(pids)))
                nxt += args.sample_every
    out, err = p.communicate()
    samples.append((time.monotonic() - t0, sample(pids)))
    res = None
    for line in out.splitlines():
        if line.startswith('LOAD_RESULT '):
            res = json.loads(line[len('LOAD_RESULT '):])
    T.ok(p.returncode == 0 and res is not None, 'wrk ran (%d s)' % args.duration,
         out[-2000:] + err[-2000:])
    if res is None:
        return T.done()
    lat = res['latency_us']
    se = res['socket_errors']
    rps = res['requests'] / (res['duration_us'] / 1e6)
    T.diag('requests %d (%.0f/s), non-2xx %d, socket errors %s' %
           (res['requests'], rps, res['non2xx'], se))
    T.diag('latency ms: p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f; mix %s' %
           (lat['p50'] / 1e3, lat['p90'] / 1e3, lat['p99'] / 1e3, lat['p999'] / 1e3,
            lat['max'] / 1e3, res['mix']))
    T.ok(res['counted'] == res['requests'],
         'the response hook saw every response (%d of %d)' % (res['counted'], res['requests']))
    T.ok(res['requests'] > 0 and res['non2xx'] == 0,
         'zero non-2xx answers (%d of %d)' % (res['non2xx'], res['requests']), err[-2000:])
    T.ok(all(v == 0 for v in se.values()), 'zero socket errors/timeouts', se)
    T.ok(lat['p99'] / 1e3 <= args.p99_max_ms,
         'p99 %.2f ms <= %.0f ms' % (lat['p99'] / 1e3, args.p99_max_ms))
    report = {'requests': res['requests'], 'rps': round(rps, 1), 'non2xx': res['non2xx'],
              'socket_errors': se, 'latency_ms': {k: v / 1e3 for k, v in lat.items()},
              'mix': res['mix'], 'duration_s': args.duration, 'threads': args.threads,
              'connections': args.connections}
    if pids:
        alive = [n for n, v in samples[-1][1].items() if v is not None]
        T.ok(len(alive) == len(pids), 'every process is still running',
             sorted(set(pids) - set(alive)))
    if args.soak and pids:
        base_s = next((sm for (t, sm) in samples if t >= warmup), samples[-1][1])
        last = samples[-1][1]
        grew = []
        rows = []
        for name in sorted(pids):
            b, e, z = base_s.get(name), last.get(name), samples[0][1].get(name)
            if b is None or e is None:
                grew.append('%s: gone' % name)
                continue
            allow = max(b['rss_kib'] * args.rss_pct / 100.0, args.rss_kib)
            rows.append('%-14s rss KiB %7d -> %7d -> %7d   fds %3d -> %3d -> %3d   threads %d'
                        % (name, z['rss_kib'] if z else -1, b['rss_kib'], e['rss_kib'],
                           z['fds'] if z else -1, b['fds'], e['fds'], e['threads']))
            if e['rss_kib'] - b['rss_kib'] > allow:
                grew.append('%s rss +%d KiB (allowed %d)' % (name, e['rss_kib'] - b['rss_kib'],
                                                             allow))
            if e['fds'] - b['fds'] > args.fd_growth:
                grew.append('%s fds +%d' % (name, e['fds'] - b['fds']))
        T.diag('before load -> after %.0f s warm-up -> end (%d samples):\n%s' %
               (warmup, len(samples), '\n'.join(rows)))
        T.ok(not grew, 'soak: RSS within max(+%.0f%%, +%d KiB) and fds within +%d after '
             'warm-up, for every process' % (args.rss_pct, args.rss_kib, args.fd_growth), grew)
        report['samples'] = [{'t': round(t, 1), 'procs': sm} for t, sm in samples]
        report['warmup_s'] = warmup
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(report, f, indent=1)
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
