#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Batch bond analytics through the gRPC and REST front ends, in bonds/s, next to
QuantLib-Python doing the same pricing work (docs/PERFORMANCE.md, "Bond batch analytics").

    test/bench/bond_batch_bench.py BUILD_DIR [--bonds 10000] [--batch 1000] [--duration 10]
                                   [--conns 1,4] [--ql-bonds N] [--json FILE]

Runs itself under test/integration/with_deps.sh (a throwaway PostgreSQL and Redis) when
TEST_PG_HOST is not set, and starts the platform with test/integration/stack.py (every
service THREADS=2).  Then:

  1. stores --bonds bonds through POST /bonds: bond_bench.c's generator (splitmix64, seed 42:
     all six day counts, frequencies 0/1/2/4/12, coupons 0-12%, maturities 1-30 years after
     the settlement date 2024-06-14, issue dates up to 10 years back), and for each one daily
     quote on 2024-06-14: the clean price at the generated yield (POST /bonds/analytics),
     rounded to 6 decimals, so that every priced bond also solves for its yield;
  2. times BatchAnalytics on batches of --batch ids, the batches taken in turn so that every
     stored bond is priced, settlement date 2024-06-14 (each bond from its latest quote):
       grpc        h2c straight to fsr-fixed-income (python grpcio, raw bytes, no decoding)
       grpc-nocache  the same against a second fsr-fixed-income whose Redis is unreachable,
                   so that every batch reads Postgres (one SQL statement per batch)
       rest        POST /bonds/batch-analytics through fsr-gateway (HTTP/1.1 keep-alive)
     with C concurrent callers (each its own connection) for --duration seconds after a
     1-pass warm-up.  Every reply is checked: gRPC status OK (REST 200) and the reply size
     within 1% of that batch's fully checked warm-up reply (every item priced, error_code 0).
     Server CPU (utime + stime from /proc) of the service, the gateway, Redis and PostgreSQL
     over the window is reported per bond;
  3. times QuantLib-Python 1.29 on the same bonds and quotes: per bond the FixedRateBond /
     ZeroCouponBond, bondYield from the quoted clean price (accuracy 1e-12), then accrued,
     clean and dirty price, Macaulay and modified duration, convexity, BPV and the remaining
     cash flows at that yield: what BatchAnalytics answers for a bond (one thread, the
     schedule built per bond as the service builds it per request).  Its yields are compared
     with the service's (1e-9).
"""
import argparse
import datetime
import http.client
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'test', 'integration'))

SETTLE = datetime.date(2024, 6, 14)
MASK = (1 << 64) - 1
FREQS = [0, 1, 2, 2, 2, 4, 12]
DAY_COUNTS = ['ACT_ACT_ICMA', 'ACT_ACT_ISDA', 'THIRTY_360_US', 'THIRTY_E_360', 'ACT_360',
              'ACT_365_FIXED']


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def rnd(self, n):
        return self.next() % n


def bond_set(n):
    """bond_bench.c's (and bond_bench_ql.py's) set: the same draws in the same order."""
    r = SplitMix64(42)
    out = []
    for i in range(n):
        dc = 1 + r.rnd(6)
        freq = FREQS[r.rnd(7)]
        c = r.rnd(1201) / 10000.0
        coupon = c if freq else 0.0
        maturity = SETTLE + datetime.timedelta(days=365 + r.rnd(29 * 365 + 1))
        issue = SETTLE - datetime.timedelta(days=r.rnd(3651))
        y = (r.rnd(1101) - 100) / 10000.0
        out.append({'name': 'Bench Bond %05d' % i, 'issuer': 'Bench', 'currency': 'USD',
                    'face': '100', 'couponRate': coupon, 'frequency': freq,
                    'dayCount': DAY_COUNTS[dc - 1], 'issueDate': issue.isoformat(),
                    'maturityDate': maturity.isoformat(), '_yield': y})
    return out


# ---- HTTP/1.1 keep-alive client -------------------------------------------------------------

class Http:
    def __init__(self, port, key):
        self.port = port
        self.key = key
        self.c = None

    def req(self, method, path, body=None):
        for attempt in (0, 1):
            if self.c is None:
                self.c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=60)
            try:
                h = {'Authorization': 'Bearer ' + self.key}
                data = None
                if body is not None:
                    data = body if isinstance(body, bytes) else json.dumps(body).encode()
                    h['Content-Type'] = 'application/json'
                self.c.request(method, path, body=data, headers=h)
                r = self.c.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.c.close()
                self.c = None
                if attempt:
                    raise
        return None


def populate(s, bonds, workers=6):
    """Creates the bonds and their price quotes; returns the ids and the quoted prices."""
    import stack
    local = threading.local()

    def one(b):
        h = getattr(local, 'h', None)
        if h is None:
            h = local.h = Http(s.ports['gateway'], stack.ADMIN_KEY)
        terms = {k: v for k, v in b.items() if not k.startswith('_')}
        st, body = h.req('POST', '/bonds', terms)
        if st != 200:
            raise RuntimeError('POST /bonds: %d %s' % (st, body[:300]))
        bid = json.loads(body)['id']
        st, body = h.req('POST', '/bonds/analytics', {
            'terms': terms, 'settlementDate': SETTLE.isoformat(), 'yield': b['_yield']})
        if st != 200:
            raise RuntimeError('POST /bonds/analytics: %d %s' % (st, body[:300]))
        price = '%.6f' % json.loads(body)['cleanPrice']
        st, body = h.req('PUT', '/bonds/%s/quotes' % bid, {
            'quotes': [{'date': SETTLE.isoformat(), 'cleanPrice': price}]})
        if st != 200:
            raise RuntimeError('PUT quotes: %d %s' % (st, body[:300]))
        return bid, float(price)

    with ThreadPoolExecutor(workers) as ex:
        res = list(ex.map(one, bonds))
    return [r[0] for r in res], [r[1] for r in res]


# ---- protobuf by hand (no generated Python code needed) ------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(field, payload):
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def batch_request_pb(ids):
    return b''.join(ld(1, i.encode()) for i in ids) + ld(2, SETTLE.isoformat().encode())


def read_varint(b, i):
    n = shift = 0
    while True:
        x = b[i]
        i += 1
        n |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return n, i


def fields(b):
    """(field number, wire type, value) of one message's top-level fields."""
    i = 0
    while i < len(b):
        key, i = read_varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(b, i)
        elif wt == 2:
            n, i = read_varint(b, i)
            v = b[i:i + n]
            i += n
        elif wt == 1:
            v = b[i:i + 8]
            i += 8
        elif wt == 5:
            v = b[i:i + 4]
            i += 4
        else:
            raise ValueError('wire type %d' % wt)
        yield f, wt, v


def check_batch_pb(reply, n):
    """Every item priced: returns {bond id: yield} or raises."""
    import struct
    out = {}
    for f, _, item in fields(reply):
        if f != 1:
            continue
        bid, code, an = None, 0, None
        for g, _, v in fields(item):
            if g == 1:
                bid = v.decode()
            elif g == 3:
                an = v
            elif g == 5:
                code = v
        if code != 0 or an is None:
            raise RuntimeError('item %s failed (code %s)' % (bid, code))
        y = None
        for g, wt, v in fields(an):
            if g == 6 and wt == 1:
                y = struct.unpack('<d', v)[0]
        out[bid] = y if y is not None else 0.0
    if len(out) != n:
        raise RuntimeError('%d items priced, %d asked' % (len(out), n))
    return out


# ---- CPU accounting ---------------------------------------------------------------------------

def proc_cpu(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            parts = f.read().rsplit(')', 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError, IndexError):
        return 0.0


def children(ppid):
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                if int(f.read().rsplit(')', 1)[1].split()[1]) == ppid:
                    out.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return out


def dep_pids():
    """The throwaway PostgreSQL (postmaster and backends) and Redis of with_deps.sh."""
    pg, rd = [], []
    base = os.path.dirname(os.environ.get('TEST_PG_HOST', '/nonexistent'))
    try:
        with open(os.path.join(base, 'pg', 'data', 'postmaster.pid')) as f:
            pm = int(f.readline())
        pg = [pm] + children(pm)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(base, 'redis', 'redis.pid')) as f:
            rd = [int(f.read().strip())]
    except (OSError, ValueError):
        pass
    return pg, rd


class CpuWindow:
    def __init__(self, groups):
        self.groups = groups  # name -> callable returning pids

    def snap(self):
        return {k: {p: proc_cpu(p) for p in f()} for k, f in self.groups.items()}

    @staticmethod
    def delta(a, b):
        return {k: sum(b[k].get(p, 0.0) - a[k].get(p, 0.0) for p in b[k]) for k in b}


# ---- the load ---------------------------------------------------------------------------------

def run_load(make_caller, batches, sizes, conns, duration, cpu):
    """|conns| threads call in turn over |batches| for |duration| s; returns the figures."""
    stop = threading.Event()
    counts = [0] * conns
    lat = [[] for _ in range(conns)]
    errors = []

    def worker(k):
        call = make_caller()
        i = k
        while not stop.is_set():
            j = i % len(batches)
            t0 = time.perf_counter()
            try:
                n = call(batches[j])
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e)[:300])
                return
            dt = time.perf_counter() - t0
            if abs(n - sizes[j]) > 0.01 * sizes[j]:
                errors.append('batch %d: reply of %d bytes, warm-up had %d' % (j, n, sizes[j]))
                return
            if not stop.is_set():
                counts[k] += 1
                lat[k].append(dt)
            i += conns

    c0 = cpu.snap()
    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in ths:
        t.start()
    time.sleep(duration)
    stop.set()
    c1 = cpu.snap()
    wall = time.perf_counter() - t0
    for t in ths:
        t.join(120)
    calls = sum(counts)
    allat = sorted(x for l in lat for x in l)
    return {'calls': calls, 'seconds': wall, 'errors': errors,
            'p50_ms': 1000 * allat[len(allat) // 2] if allat else None,
            'p99_ms': 1000 * allat[min(len(allat) - 1, int(len(allat) * 0.99))] if allat else None,
            'cpu_s': CpuWindow.delta(c0, c1)}


def grpc_caller_factory(addr):
    import grpc

    def make():
        ch = grpc.insecure_channel(addr, options=[
            ('grpc.max_receive_message_length', 256 << 20),
            ('grpc.max_send_message_length', 64 << 20)])
        f = ch.unary_unary('/fixed_income.v1.FixedIncomeService/BatchAnalytics')

        def call(b):
            return len(f(b['pb'], timeout=30))
        return call
    return make


def rest_caller_factory(port, key):
    def make():
        h = Http(port, key)

        def call(b):
            st, body = h.req('POST', '/bonds/batch-analytics', b['json'])
            if st != 200:
                raise RuntimeError('HTTP %d %s' % (st, body[:300]))
            return len(body)
        return call
    return make


# ---- QuantLib ---------------------------------------------------------------------------------

def quantlib_side(bonds, prices, n):
    try:
        import QuantLib as ql
    except ImportError:
        return None
    qf = {0: ql.Annual, 1: ql.Annual, 2: ql.Semiannual, 4: ql.Quarterly, 12: ql.Monthly}
    dcs = {'ACT_ACT_ICMA': ql.ActualActual(ql.ActualActual.ISMA),
           'ACT_ACT_ISDA': ql.ActualActual(ql.ActualActual.ISDA),
           'THIRTY_360_US': ql.Thirty360(ql.Thirty360.USA),
           'THIRTY_E_360': ql.Thirty360(ql.Thirty360.EurobondBasis),
           'ACT_360': ql.Actual360(), 'ACT_365_FIXED': ql.Actual365Fixed()}
    settle = ql.Date(SETTLE.isoformat(), '%Y-%m-%d')
    ql.Settings.instance().evaluationDate = settle
    bf = ql.BondFunctions
    comp = ql.Compounded

    def d(s):
        return ql.Date(s, '%Y-%m-%d')

    def price_one(b, clean):
        dc, f = dcs[b['dayCount']], b['frequency']
        issue, mat = d(b['issueDate']), d(b['maturityDate'])
        if f == 0:
            bond = ql.ZeroCouponBond(0, ql.NullCalendar(), 100.0, mat, ql.Unadjusted, 100.0, issue)
        else:
            sched = ql.Schedule(issue, mat, ql.Period(qf[f]), ql.NullCalendar(), ql.Unadjusted,
                                ql.Unadjusted, ql.DateGeneration.Backward, False)
            bond = ql.FixedRateBond(0, 100.0, sched, [b['couponRate']], dc, ql.Unadjusted, 100.0,
                                    issue)
        y = bf.bondYield(bond, clean, dc, comp, qf[f], settle, 1e-12, 100)
        bond.accruedAmount(settle)
        bf.cleanPrice(bond, y, dc, comp, qf[f], settle)
        bond.dirtyPrice(y, dc, comp, qf[f], settle)
        bf.duration(bond, y, dc, comp, qf[f], ql.Duration.Macaulay, settle)
        bf.duration(bond, y, dc, comp, qf[f], ql.Duration.Modified, settle)
        bf.convexity(bond, y, dc, comp, qf[f], settle)
        bf.basisPointValue(bond, y, dc, comp, qf[f], settle)
        [(cf.date(), cf.amount()) for cf in bond.cashflows() if cf.date() > settle]
        return y

    t0 = time.perf_counter()
    ys = [price_one(b, p) for b, p in zip(bonds[:n], prices[:n])]
    dt = time.perf_counter() - t0
    return {'quantlib': ql.__version__, 'bonds': n, 'seconds': dt, 'yields': ys}


# ---- main -------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('build')
    ap.add_argument('--bonds', type=int, default=10000)
    ap.add_argument('--batch', type=int, default=1000)
    ap.add_argument('--duration', type=float, default=10.0)
    ap.add_argument('--conns', default='1,4')
    ap.add_argument('--ql-bonds', type=int, default=None,
                    help='bonds QuantLib prices (default: all)')
    ap.add_argument('--json', default=None, help='also write the figures here')
    a = ap.parse_args()
    build = os.path.abspath(a.build)

    if 'TEST_PG_HOST' not in os.environ:
        wd = os.path.join(ROOT, 'test', 'integration', 'with_deps.sh')
        os.execv(wd, [wd, '--pg', '--redis', '--', sys.executable, os.path.abspath(__file__)] +
                 sys.argv[1:])

    import stack
    bins = {'equity': os.path.join(build, 'svc_equity', 'fsr-equity'),
            'fixed_income': os.path.join(build, 'svc_fixed_income', 'fsr-fixed-income'),
            'portfolio': os.path.join(build, 'svc_portfolio', 'fsr-portfolio'),
            'gateway': os.path.join(build, 'rest_gateway', 'fsr-gateway')}
    s = stack.Stack(bins, env={'LOG_LEVEL': 'warn'})
    s.start_all()
    # A second fixed-income service on the same database whose Redis is unreachable: every
    # batch reads Postgres.
    s.start('fi_nocache', [bins['fixed_income']], dict(
        s.db_env('FI', 'fixed_income'), FI_REDIS_HOST='127.0.0.1', FI_REDIS_PORT='1',
        **s.peer_env()))

    bonds = bond_set(a.bonds)
    t0 = time.perf_counter()
    ids, prices = populate(s, bonds)
    print('stored %d bonds with a clean-price quote each in %.1f s' %
          (len(ids), time.perf_counter() - t0), flush=True)

    batches = []
    for i in range(0, len(ids), a.batch):
        part = ids[i:i + a.batch]
        batches.append({'ids': part, 'pb': batch_request_pb(part),
                        'json': json.dumps({'bondIds': part,
                                            'settlementDate': SETTLE.isoformat()}).encode()})

    # Warm-up: one full pass each way, every reply checked; sizes kept for the run checks.
    import grpc
    ch = grpc.insecure_channel(s.addr('fixed_income'),
                               options=[('grpc.max_receive_message_length', 256 << 20)])
    f = ch.unary_unary('/fixed_income.v1.FixedIncomeService/BatchAnalytics')
    pb_sizes, service_yields = [], {}
    for b in batches:
        reply = f(b['pb'], timeout=60)
        service_yields.update(check_batch_pb(reply, len(b['ids'])))
        pb_sizes.append(len(reply))
    h = Http(s.ports['gateway'], stack.ADMIN_KEY)
    json_sizes = []
    for b in batches:
        st, body = h.req('POST', '/bonds/batch-analytics', b['json'])
        j = json.loads(body) if st == 200 else None
        if j is None or len(j['items']) != len(b['ids']) or \
                any(it.get('errorCode') or 'analytics' not in it for it in j['items']):
            raise RuntimeError('REST warm-up: HTTP %d %s' % (st, body[:500]))
        for it in j['items']:
            if abs(it['analytics']['yield'] - service_yields[it['bondId']]) > 0:
                raise RuntimeError('REST and gRPC disagree on %s' % it['bondId'])
        json_sizes.append(len(body))
    nc = grpc.insecure_channel(s.addr('fi_nocache'),
                               options=[('grpc.max_receive_message_length', 256 << 20)])
    fnc = nc.unary_unary('/fixed_income.v1.FixedIncomeService/BatchAnalytics')
    for b, size in zip(batches, pb_sizes):
        if len(fnc(b['pb'], timeout=60)) != size:
            raise RuntimeError('the uncached service answers differently')
    print('warm-up: %d batches of %d, gRPC reply %.2f MB, REST reply %.2f MB per batch' % (
        len(batches), a.batch, sum(pb_sizes) / len(pb_sizes) / 1e6,
        sum(json_sizes) / len(json_sizes) / 1e6), flush=True)

    pg, rd = dep_pids()
    groups = {
        'fixed_income': lambda: [s.procs['fixed_income'].pid],
        'fi_nocache': lambda: [s.procs['fi_nocache'].pid],
        'gateway': lambda: [s.procs['gateway'].pid],
        'redis': lambda: rd,
        'postgres': lambda: [pg[0]] + children(pg[0]) if pg else [],
    }
    cpu = CpuWindow(groups)
    results = []
    for mode in ('grpc', 'grpc-nocache', 'rest'):
        for conns in [int(x) for x in a.conns.split(',')]:
            if mode == 'grpc':
                mk, sizes = grpc_caller_factory(s.addr('fixed_income')), pb_sizes
            elif mode == 'grpc-nocache':
                mk, sizes = grpc_caller_factory(s.addr('fi_nocache')), pb_sizes
            else:
                mk, sizes = rest_caller_factory(s.ports['gateway'], stack.ADMIN_KEY), json_sizes
            r = run_load(mk, batches, sizes, conns, a.duration, cpu)
            if r['errors']:
                raise RuntimeError('%s c=%d: %s' % (mode, conns, r['errors'][:3]))
            bonds_s = r['calls'] * a.batch / r['seconds']
            row = dict(r, mode=mode, conns=conns, bonds_per_s=bonds_s)
            results.append(row)
            cs = r['cpu_s']
            served = r['calls'] * a.batch
            svc = cs['fi_nocache'] if mode == 'grpc-nocache' else cs['fixed_income']
            print('%-13s c=%d  %8.0f bonds/s  %6.1f batches/s  p50 %6.1f ms  p99 %6.1f ms  '
                  'CPU us/bond: service %.2f gateway %.2f redis %.2f postgres %.2f' % (
                      mode, conns, bonds_s, r['calls'] / r['seconds'], r['p50_ms'],
                      r['p99_ms'], 1e6 * svc / served, 1e6 * cs['gateway'] / served,
                      1e6 * cs['redis'] / served, 1e6 * cs['postgres'] / served), flush=True)

    qn = a.ql_bonds if a.ql_bonds is not None else len(ids)
    qlr = quantlib_side(bonds, prices, qn)
    if qlr is None:
        print('QuantLib-Python not installed: no reference timing')
    else:
        worst = max(abs(y - service_yields[i]) for y, i in zip(qlr['yields'], ids))
        print('QuantLib-Python %s: %d bonds in %.2f s = %.0f bonds/s (one thread); yields agree '
              'with the service within %.2g' % (qlr['quantlib'], qlr['bonds'], qlr['seconds'],
                                                qlr['bonds'] / qlr['seconds'], worst), flush=True)
        if worst > 1e-9:
            raise RuntimeError('QuantLib and the service disagree by %g' % worst)
        qlr.pop('yields')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({'bonds': len(ids), 'batch': a.batch, 'results': results,
                       'quantlib': qlr}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
