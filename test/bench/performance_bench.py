#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Performance benchmark: GET /portfolios/{id}/performance over 5 years of daily data for a
200-constituent portfolio through the REST gateway, with the daily snapshots in place
(issue #7's bar: under 100 ms), and the cold request that computes and stores them.

  test/integration/with_deps.sh --pg --redis -- /usr/bin/python3 \\
      test/bench/performance_bench.py --build build-perf-rel

Seeds through REST: --equities equities and --bonds bonds with a close / clean quote on
every weekday of 2019-06-03..2024-05-31 (bulk PUT prices / quotes, on a few threads), a
portfolio with a benchmark (60% the first equity, 20% the first bond, 20% cash), a deposit
and a buy of every instrument on the first day, then a deposit, a withdrawal and two trades
every month (~270 entries).  Then times one cold request (rows computed from the ledger and
the market data, stored in pf_snapshots) and --warm requests (rows read back; only the
benchmark's prices are fetched), one client on a keep-alive connection.  Every answer is
checked (200, one value per weekday, attribution present).  Prints one JSON line (ms).
"""
import argparse
import http.client
import json
import os
import random
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

HERE = os.path.dirname(os.path.abspath(__file__))
FROM, TO = date(2019, 6, 3), date(2024, 5, 31)


class Client:
    def __init__(self, url, key):
        h = url.split('//', 1)[1]
        self.host, self.port = h.split(':')[0], int(h.split(':')[1].rstrip('/'))
        self.key = key
        self.c = None

    def req(self, method, path, body=None):
        for attempt in range(2):
            if self.c is None:
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=120)
            h = {'Authorization': 'Bearer ' + self.key}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                h['Content-Type'] = 'application/json'
            try:
                self.c.request(method, path, body=data, headers=h)
                r = self.c.getresponse()
                raw = r.read()
                return r.status, raw
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = None
                if attempt == 1:
                    raise


def weekdays(a, b):
    out, d = [], a
    while d <= b:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def seed(url, key, n_eq, n_bond):
    days = weekdays(FROM - timedelta(days=30), TO)
    rnd = random.Random(42)

    def mk_equity(i):
        cl = Client(url, key)
        st, raw = cl.req('POST', '/equities', {
            'symbol': 'PB%03d%s' % (i, uuid.uuid4().hex[:5].upper()), 'name': 'Bench %d' % i,
            'exchange': 'XTST', 'currency': 'USD', 'sector': 'Bench'})
        assert st == 200, raw
        eid = json.loads(raw)['id']
        r = random.Random(i)
        p, bars = 20 + 100 * r.random(), []
        for d in days:
            p *= 1 + r.gauss(0.0003, 0.015)
            c = '%.2f' % max(p, 0.5)
            bars.append({'date': d.isoformat(), 'open': c, 'high': c, 'low': c, 'close': c,
                         'volume': '1000'})
        st, raw = cl.req('PUT', '/equities/%s/prices' % eid, {'bars': bars})
        assert st == 200, raw[:300]
        return eid, float(bars[len(days) - len(weekdays(FROM, TO))]['close'])

    def mk_bond(i):
        cl = Client(url, key)
        st, raw = cl.req('POST', '/bonds', {
            'name': 'Bench bond %d %s' % (i, uuid.uuid4().hex[:5]), 'issuer': 'Bench',
            'currency': 'USD', 'face': '1000', 'couponRate': 0.03 + 0.002 * (i % 10),
            'frequency': 2, 'dayCount': 'THIRTY_360_US', 'issueDate': '2018-01-15',
            'maturityDate': '2033-01-15'})
        assert st == 200, raw
        bid = json.loads(raw)['id']
        r = random.Random(1000 + i)
        cp, qs = 100.0, []
        for d in days:
            cp += r.gauss(0, 0.1)
            qs.append({'date': d.isoformat(), 'cleanPrice': '%.3f' % cp})
        st, raw = cl.req('PUT', '/bonds/%s/quotes' % bid, {'quotes': qs})
        assert st == 200, raw[:300]
        return bid

    with ThreadPoolExecutor(4) as ex:
        eqs = list(ex.map(mk_equity, range(n_eq)))
        bonds = list(ex.map(mk_bond, range(n_bond)))
    cl = Client(url, key)
    bench = {'components': [{'instrumentType': 'EQUITY', 'instrumentId': eqs[0][0], 'weight': 0.6},
                            {'assetClass': 'CASH', 'weight': 0.2}]}
    if bonds:
        bench['components'].append({'instrumentType': 'BOND', 'instrumentId': bonds[0],
                                    'weight': 0.2})
    else:
        bench['components'][1]['weight'] = 0.4
    st, raw = cl.req('POST', '/portfolios', {'name': 'perf bench', 'baseCurrency': 'USD',
                                             'benchmark': bench})
    assert st == 200, raw
    pid = json.loads(raw)['id']
    d0 = FROM.isoformat()
    txs = [{'type': 'DEPOSIT', 'date': d0, 'amount': '10000000'}]
    for eid, px in eqs:
        txs.append({'type': 'BUY', 'date': d0, 'instrumentType': 'EQUITY', 'instrumentId': eid,
                    'quantity': str(int(30000 / px)), 'price': '%.2f' % px})
    for bid in bonds:
        txs.append({'type': 'BUY', 'date': d0, 'instrumentType': 'BOND', 'instrumentId': bid,
                    'quantity': '20000', 'price': '100'})
    m = date(FROM.year, FROM.month, 1)
    k = 0
    while True:
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
        if m > TO:
            break
        d = m + timedelta(days=(7 - m.weekday()) % 7)  # a Monday
        txs.append({'type': 'DEPOSIT', 'date': d.isoformat(), 'amount': '50000'})
        txs.append({'type': 'WITHDRAWAL', 'date': (d + timedelta(days=9)).isoformat(),
                    'amount': '20000'})
        eid = eqs[k % len(eqs)][0]
        k += 1
        txs.append({'type': 'BUY', 'date': (d + timedelta(days=1)).isoformat(),
                    'instrumentType': 'EQUITY', 'instrumentId': eid, 'quantity': '10',
                    'price': '%.2f' % (50 + rnd.random() * 50)})
        txs.append({'type': 'SELL', 'date': (d + timedelta(days=2)).isoformat(),
                    'instrumentType': 'EQUITY', 'instrumentId': eid, 'quantity': '5',
                    'price': '%.2f' % (50 + rnd.random() * 50)})
    for x in txs:
        st, raw = cl.req('POST', '/portfolios/%s/transactions' % pid, x)
        assert st == 200, (x, raw)
    return pid, len(txs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', help='build dir: start a throwaway stack (under with_deps.sh)')
    ap.add_argument('--url', help='a running gateway (ADMIN_API_KEY in the environment)')
    ap.add_argument('--equities', type=int, default=190)
    ap.add_argument('--bonds', type=int, default=10)
    ap.add_argument('--warm', type=int, default=200)
    ap.add_argument('--threads', default=os.environ.get('THREADS', '2'))
    args = ap.parse_args()
    if args.build:
        sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
        import stack
        b = os.path.abspath(args.build)
        s = stack.Stack({'equity': b + '/svc_equity/fsr-equity',
                         'fixed_income': b + '/svc_fixed_income/fsr-fixed-income',
                         'portfolio': b + '/svc_portfolio/fsr-portfolio',
                         'gateway': b + '/rest_gateway/fsr-gateway'},
                        env={'THREADS': args.threads, 'LOG_LEVEL': 'warn'})
        s.start_all()
        url, key = 'http://127.0.0.1:%d' % s.ports['gateway'], stack.ADMIN_KEY
    else:
        url, key = args.url, os.environ.get('ADMIN_API_KEY', '')
    t0 = time.time()
    pid, ntx = seed(url, key, args.equities, args.bonds)
    seed_s = time.time() - t0
    n_days = len(weekdays(FROM, TO))
    path = '/portfolios/%s/performance?from=%s&to=%s' % (pid, FROM, TO)
    cl = Client(url, key)

    def timed():
        t = time.perf_counter()
        st, raw = cl.req('GET', path)
        ms = (time.perf_counter() - t) * 1000
        assert st == 200, raw[:500]
        j = json.loads(raw)
        assert len(j['values']) == n_days and 'attribution' in j, (len(j['values']), n_days)
        return ms, len(raw)

    cold_ms, size = timed()
    warm = sorted(timed()[0] for _ in range(args.warm))

    def pct(p):
        return round(warm[min(len(warm) - 1, int(p / 100 * len(warm)))], 2)
    print(json.dumps({'constituents': args.equities + args.bonds, 'weekdays': n_days,
                      'transactions': ntx, 'reply_bytes': size, 'seed_s': round(seed_s, 1),
                      'cold_ms': round(cold_ms, 1), 'warm_n': len(warm),
                      'warm_p50_ms': pct(50), 'warm_p90_ms': pct(90), 'warm_p99_ms': pct(99),
                      'warm_mean_ms': round(statistics.mean(warm), 2)}), flush=True)


if __name__ == '__main__':
    main()
