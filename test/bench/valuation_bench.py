#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Valuation benchmark: POST /portfolios/{id}/calculate of a 1,000-constituent portfolio
(500 equities, 500 bonds) through the REST gateway, warm (valuation cache filled) and cold
(the pf:* keys deleted before every request).  Issue #6's bar: p50 under 50 ms warm and
under 250 ms cold.

Two ways to run it:

  # start a throwaway stack (PostgreSQL, Redis, the three services, the gateway):
  test/integration/with_deps.sh --pg --redis -- /usr/bin/python3 \\
      test/bench/valuation_bench.py --build build
  # or against a running stack (`make up`), Redis reachable for the cold runs:
  ADMIN_API_KEY=... /usr/bin/python3 test/bench/valuation_bench.py \\
      --url http://127.0.0.1:8000 --redis 127.0.0.1:6382

Seeding goes through REST (PUT /equities/{id}/prices and PUT /bonds/{id}/quotes take bulk
bars and quotes; POST /portfolios/{id}/constituents, or SQL rows while that answers 501),
on a few threads.  Every request sends Authorization: Bearer <admin key>.  Prints one JSON
line with the percentiles (ms).
"""
import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
AS_OF = '2024-06-14'


class Client:
    """Keep-alive HTTP/1.1 to the gateway, one connection per thread."""

    def __init__(self, url, key):
        u = urlparse(url)
        self.host, self.port, self.key = u.hostname, u.port or 80, key
        self.local = threading.local()

    def req(self, method, path, body=None):
        c = getattr(self.local, 'c', None)
        if c is None:
            c = self.local.c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        h = {'Authorization': 'Bearer ' + self.key}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h['Content-Type'] = 'application/json'
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            out = r.read()
        except (http.client.HTTPException, OSError):
            self.local.c = None
            raise
        return r.status, out


def ok(status, body, what):
    if status != 200:
        raise SystemExit('%s: HTTP %d %s' % (what, status, body[:500]))
    return json.loads(body) if body else None


def history_days(n):
    """The |n| weekdays ending on AS_OF (the default 5 are 2024-06-10..14)."""
    from datetime import date, timedelta
    d, out = date.fromisoformat(AS_OF), []
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d.isoformat())
        d -= timedelta(days=1)
    return out[::-1]


def seed(cl, n_eq, n_bond, psql, n_days=5):
    rnd = random.Random(6)
    days = history_days(n_days)

    def equity(i):
        j = ok(*cl.req('POST', '/equities', {
            'symbol': 'VB%04d%s' % (i, uuid.uuid4().hex[:4].upper()), 'name': 'Bench %d' % i,
            'exchange': 'XBEN', 'currency': 'USD', 'sector': 'Bench'}), 'create equity')
        px = 20 + rnd.random() * 200
        bars = []
        for d in days:
            px *= 1 + (rnd.random() - 0.5) * 0.02
            c = '%.2f' % px
            bars.append({'date': d, 'open': c, 'high': '%.2f' % (px + 1),
                         'low': '%.2f' % (px - 1), 'close': c, 'volume': '1000'})
        ok(*cl.req('PUT', '/equities/%s/prices' % j['id'], {'bars': bars}), 'prices')
        return j['id']

    def bond(i):
        years = 1 + i % 30
        mat = '%d-%02d-%02d' % (2024 + years, 1 + i % 12, 1 + i % 28)
        j = ok(*cl.req('POST', '/bonds', {
            'name': 'Bench bond %d %s' % (i, uuid.uuid4().hex[:4]), 'issuer': 'Bench',
            'currency': 'USD', 'face': '1000', 'couponRate': round(0.01 + (i % 9) * 0.005, 4),
            'frequency': (1, 2, 4)[i % 3], 'dayCount': 'THIRTY_360_US',
            'issueDate': '2020-01-%02d' % (1 + i % 28), 'maturityDate': mat}), 'create bond')
        quotes = [{'date': d, 'yield': '%.4f' % (0.03 + rnd.random() * 0.03)} for d in days]
        ok(*cl.req('PUT', '/bonds/%s/quotes' % j['id'], {'quotes': quotes}), 'quotes')
        return j['id']

    with ThreadPoolExecutor(8) as ex:
        eqs = list(ex.map(equity, range(n_eq)))
        bonds = list(ex.map(bond, range(n_bond)))
    pf = ok(*cl.req('POST', '/portfolios', {'name': 'Valuation bench', 'baseCurrency': 'USD',
                                            'cash': '1000000'}), 'create portfolio')
    pid = pf['id']
    items = [('EQUITY', e, str(10 + k % 500)) for k, e in enumerate(eqs)] + \
            [('BOND', b, str(10000 * (1 + k % 50))) for k, b in enumerate(bonds)]
    mode = {'api': True}

    def add(item):
        if mode['api']:
            st, body = cl.req('POST', '/portfolios/%s/constituents' % pid,
                              {'instrumentType': item[0], 'instrumentId': item[1],
                               'quantity': item[2]})
            if st == 200:
                return
            if st != 501:
                raise SystemExit('add constituent: HTTP %d %s' % (st, body[:300]))
            mode['api'] = False
        psql("INSERT INTO constituents (portfolio_id, instrument_type, instrument_id, quantity)"
             " VALUES ('%s', '%s', '%s', %s)" % (pid, item[0], item[1], item[2]))

    # The first one alone: it decides between the API and SQL.
    add(items[0])
    if mode['api']:
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(add, items[1:]))
    else:
        values = ',\n'.join("('%s', '%s', '%s', %s)" % (pid, t, i, q) for t, i, q in items[1:])
        psql('INSERT INTO constituents (portfolio_id, instrument_type, instrument_id, quantity)'
             ' VALUES ' + values)
    return pid, 'api' if mode['api'] else 'sql'


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p
    f = int(k)
    return xs[f] + (xs[min(f + 1, len(xs) - 1)] - xs[f]) * (k - f)


def summary(xs):
    return {'n': len(xs), 'p50': round(pct(xs, 0.5), 2), 'p90': round(pct(xs, 0.9), 2),
            'p99': round(pct(xs, 0.99), 2), 'mean': round(statistics.mean(xs), 2),
            'min': round(min(xs), 2), 'max': round(max(xs), 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', help='build dir: start a throwaway stack (under with_deps.sh)')
    ap.add_argument('--url', help='a running gateway, e.g. http://127.0.0.1:8000')
    ap.add_argument('--redis', help='host:port of the portfolio Redis (cold runs)')
    ap.add_argument('--equities', type=int, default=500)
    ap.add_argument('--bonds', type=int, default=500)
    ap.add_argument('--warm', type=int, default=300, help='warm requests')
    ap.add_argument('--cold', type=int, default=40, help='cold requests')
    ap.add_argument('--history-days', type=int, default=5,
                    help='bars / quotes per instrument (253: a full 252-return risk window)')
    ap.add_argument('--threads', default=os.environ.get('THREADS', '4'),
                    help='service threads (own stack)')
    args = ap.parse_args()

    if args.build:
        sys.path.insert(0, os.path.join(HERE, '..', 'integration'))
        import stack
        b = os.path.abspath(args.build)
        s = stack.Stack({'equity': b + '/svc_equity/fsr-equity',
                         'fixed_income': b + '/svc_fixed_income/fsr-fixed-income',
                         'portfolio': b + '/svc_portfolio/fsr-portfolio',
                         'gateway': b + '/rest_gateway/fsr-gateway'},
                        env={'THREADS': args.threads})
        s.start_all()
        url = 'http://127.0.0.1:%d' % s.ports['gateway']
        key = stack.ADMIN_KEY
        redis_cmd = ['redis-cli', '-h', os.environ['TEST_REDIS_HOST'], '-p',
                     os.environ['TEST_REDIS_PORT']]

        def psql(sql):
            stack.psql(sql, db='portfolio')
    else:
        if not args.url:
            raise SystemExit('give --build or --url')
        url, key = args.url, os.environ.get('ADMIN_API_KEY', '')
        h, p = (args.redis or '127.0.0.1:6382').split(':')
        redis_cmd = ['redis-cli', '-h', h, '-p', p]

        def psql(sql):
            raise SystemExit('AddConstituent is not available and no database access: %s'
                             % sql[:80])

    cl = Client(url, key)
    t0 = time.time()
    pid, how = seed(cl, args.equities, args.bonds, psql, args.history_days)
    seed_s = time.time() - t0
    path = '/portfolios/%s/calculate' % pid
    body = {'asOf': AS_OF}

    def flush():
        # The valuation cache only: the services' own caches (eq:, fi:) stay as they are.
        keys = subprocess.run(redis_cmd + ['--scan', '--pattern', 'pf:*'],
                              capture_output=True, text=True).stdout.split()
        for k in range(0, len(keys), 500):
            subprocess.run(redis_cmd + ['DEL'] + keys[k:k + 500], capture_output=True)

    last = {}

    def timed():
        t = time.perf_counter()
        st, out = cl.req('POST', path, body)
        ms = (time.perf_counter() - t) * 1000
        j = ok(st, out, 'calculate')
        if len(j['constituents']) != args.equities + args.bonds or j.get('stale'):
            raise SystemExit('unexpected valuation: %d constituents, stale %s' %
                             (len(j['constituents']), j.get('stale')))
        last.clear()
        last.update(j)
        return ms, len(out)

    cold = []
    for _ in range(args.cold):
        flush()
        cold.append(timed()[0])
    timed()  # fills the cache
    warm = []
    size = 0
    for _ in range(args.warm):
        ms, size = timed()
        warm.append(ms)
    print(json.dumps({'constituents': args.equities + args.bonds, 'constituents_via': how,
                      'history_days': args.history_days,
                      'risk_observations': (last.get('risk') or {}).get('observations'),
                      'seed_s': round(seed_s, 1), 'response_bytes': size,
                      'warm_ms': summary(warm), 'cold_ms': summary(cold)}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
