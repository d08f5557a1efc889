#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Portfolio valuation end to end (TAP on stdout): equity.v1 BatchQuotes at gRPC level, then
POST /portfolios/{id}/calculate and GET /portfolios/{id}/constituents through the gateway.

Run by meson through with_deps.sh (a throwaway PostgreSQL and Redis):

    with_deps.sh --pg --redis -- valuation_test.py --gateway G --equity E --fi F \\
        --portfolio P --proto-dir DIR --googleapis-dir DIR

Checks:
- BatchQuotes: request order, repeated, unknown and malformed ids (per-item errors), as_of,
  the windows (lookback and from; prices, dividends, returns; TOTAL and PRICE) against an
  independent split/dividend-adjusted computation, the id limit;
- Calculate: every figure against an independent Python computation at the ANALYTICS.md
  tolerances (per-bond numbers from POST /bonds/analytics; MVs, weights, sleeve averages,
  DV01 and the cash-flow yield with scipy's brentq), NO_PRICE, one BatchQuotes and one
  BatchAnalytics call per cold valuation, plus one BatchQuotes window and one
  BatchPriceHistory for the risk series (the services' /metrics), input errors;
- ListConstituents: holdings with last price, market value, weight, total, stale;
- the cache: filled by a valuation, invalidated by PUT prices / PUT quotes (price.updated,
  bond.updated), the stale fallbacks with a service stopped (200, stale, age), 503 naming
  the service with nothing cached;
- scoping: another client's portfolio is 404 (gRPC metadata; REST once /clients works).
"""
import argparse
import importlib
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

from scipy.optimize import brentq  # noqa: E402

T = stack.Tap()
AS_OF = '2024-06-14'  # a Friday
TOL_VALUE = 1e-12     # values and weights (relative for money, absolute for weights)
TOL_BOND = 1e-10      # bond prices and durations, relative
TOL_XIRR = 1e-9


def rel_ok(got, want, tol):
    if got is None or want is None:
        return False
    return abs(got - want) <= tol * max(abs(want), 1e-300) or got == want


def abs_ok(got, want, tol):
    return got is not None and want is not None and abs(got - want) <= tol


def bar(d, close):
    c = float(close)
    return {'date': d, 'open': close, 'high': '%.4f' % (c + 1), 'low': '%.4f' % (c - 1),
            'close': close, 'volume': '1000'}


# ---- gRPC stubs ------------------------------------------------------------------------

def grpc_modules(proto_dir, googleapis_dir):
    """Python stubs of equity.v1 and portfolio.v1 (with their imports) in a temp dir."""
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix='fsr-val-py.')
    include = os.path.join(os.path.dirname(protoc.__file__), '_proto')
    files = ['common/v1/common.proto', 'jobs/v1/jobs.proto', 'equity/v1/equity.proto',
             'portfolio/v1/portfolio.proto']
    args = ['protoc', '-I', proto_dir, '-I', googleapis_dir, '-I', include,
            '--python_out=' + out, '--grpc_python_out=' + out] + files
    if protoc.main(args) != 0:
        raise RuntimeError('protoc failed')
    for f in ('google/api/annotations.proto', 'google/api/http.proto'):
        if protoc.main(['protoc', '-I', googleapis_dir, '-I', include, '--python_out=' + out,
                        f]) != 0:
            raise RuntimeError('protoc failed for ' + f)
    sys.path.insert(0, out)
    mods = {}
    for name in ('equity.v1.equity_pb2', 'equity.v1.equity_pb2_grpc',
                 'portfolio.v1.portfolio_pb2', 'portfolio.v1.portfolio_pb2_grpc',
                 'common.v1.common_pb2'):
        mods[name.split('.')[-1]] = importlib.import_module(name)
    return mods


def metric(port, name, method):
    """The rpc_server_<name> counter of |method| on a service's /metrics (0 if absent)."""
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith('rpc_server_%s{' % name) and 'method="%s"' % method in line:
            total += float(line.rsplit(' ', 1)[1])
    return total


# ---- fixtures ------------------------------------------------------------------------

class World:
    """What the test creates: equities, bonds, the portfolio and its constituents."""

    def __init__(self, s):
        self.s = s
        self.eq = {}
        self.bond = {}
        self.bond_terms = {}
        self.quote_input = {}

    def add_equity(self, tag, bars, lot=1):
        sym = ('V%s%s' % (tag, uuid.uuid4().hex[:6])).upper()
        r = self.s.req('POST', '/equities', {'symbol': sym, 'name': 'Valuation ' + tag,
                                             'exchange': 'XTST', 'currency': 'USD',
                                             'sector': 'Testing', 'lotSize': lot})
        assert r.status == 200, r
        eid = r.json['id']
        if bars:
            r = self.s.req('PUT', '/equities/%s/prices' % eid, {'bars': bars})
            assert r.status == 200, r
        self.eq[tag] = eid
        return eid

    def add_bond(self, tag, terms, quotes):
        body = dict(terms, name='Valuation %s %s' % (tag, uuid.uuid4().hex[:6]),
                    issuer='Test Treasury', currency='USD', face='1000')
        r = self.s.req('POST', '/bonds', body)
        assert r.status == 200, r
        bid = r.json['id']
        r = self.s.req('PUT', '/bonds/%s/quotes' % bid, {'quotes': quotes})
        assert r.status == 200, r
        self.bond[tag] = bid
        self.bond_terms[tag] = terms
        return bid


def add_constituent(s, pid, itype, iid, qty, mode):
    """POST /portfolios/{id}/constituents, or (while it answers 501) a row through SQL."""
    if mode['api']:
        r = s.req('POST', '/portfolios/%s/constituents' % pid,
                  {'instrumentType': itype, 'instrumentId': iid, 'quantity': qty})
        if r.status == 200:
            return r.json['constituentId']
        if r.status != 501:
            raise RuntimeError('AddConstituent: %r' % r)
        mode['api'] = False
        T.diag('AddConstituent answers 501: constituents inserted with SQL')
    rows = stack.psql("INSERT INTO constituents (portfolio_id, instrument_type, instrument_id,"
                      " quantity) VALUES ('%s', '%s', '%s', %s) RETURNING id"
                      % (pid, itype, iid, qty), db='portfolio')
    return rows[0][0]


def bond_analytics(s, terms, settle, quote):
    """Per-100 analytics from the stateless POST /bonds/analytics (the independent input)."""
    body = {'terms': terms, 'settlementDate': settle}
    body.update(quote)
    r = s.req('POST', '/bonds/analytics', body)
    assert r.status == 200, r
    return r.json


def expected(s, w, holdings, cash, settle, targets):
    """An independent valuation: {constituentId: {...}}, classes, sleeve, total."""
    rows = {}
    total = cash
    for cid, h in holdings.items():
        e = {'type': h['type'], 'id': h['id'], 'qty': float(h['qty'])}
        if h['type'] == 'EQUITY':
            if h.get('close') is None:
                e['priced'] = False
            else:
                e.update(priced=True, price=float(h['close']), date=h['date'])
                e['mv'] = e['qty'] * e['price']
        else:
            a = bond_analytics(s, w.bond_terms[h['tag']], settle, h['quote'])
            e.update(priced=True, price=a['dirtyPrice'], date=h['date'], a=a)
            e['mv'] = e['qty'] / 100.0 * a['dirtyPrice']
            e['accrued'] = e['qty'] / 100.0 * a['accrued']
        if e['priced']:
            total += e['mv']
        e['target'] = targets.get(h['id'])
        rows[cid] = e
    for e in rows.values():
        if e['priced']:
            e['weight'] = e['mv'] / total
    eq = sum(e['mv'] for e in rows.values() if e['priced'] and e['type'] == 'EQUITY')
    bonds = [e for e in rows.values() if e['priced'] and e['type'] == 'BOND']
    fi = sum(e['mv'] for e in bonds)
    sleeve = None
    if bonds:
        mod = sum(e['mv'] * e['a']['modifiedDuration'] for e in bonds) / fi
        mac = sum(e['mv'] * e['a']['macaulayDuration'] for e in bonds) / fi
        ytm = sum(e['mv'] * e['a']['yield'] for e in bonds) / fi
        d0 = date.fromisoformat(settle)
        flows = [(0.0, -fi)]
        for e in bonds:
            for cf in e['a']['cashflows']:
                t = (date.fromisoformat(cf['date']) - d0).days / 365.0
                flows.append((t, e['qty'] / 100.0 * cf['amount']))

        def npv(r):
            return sum(a * (1.0 + r) ** (-t) for t, a in flows)
        cfy = brentq(npv, -0.99, 10.0, xtol=1e-15, rtol=1e-15, maxiter=500)
        sleeve = {'marketValueDirty': fi, 'accruedAmount': sum(e['accrued'] for e in bonds),
                  'modifiedDuration': mod, 'macaulayDuration': mac,
                  'dv01': sum(e['a']['modifiedDuration'] * e['mv'] for e in bonds) * 1e-4,
                  'cashflowYield': cfy, 'mvWeightedYtmApproximation': ytm}
    return {'rows': rows, 'total': total, 'classes': {'EQUITY': eq, 'FIXED_INCOME': fi,
                                                      'CASH': cash}, 'sleeve': sleeve}


def check_calculate(label, r, exp, cash):
    j = r.json or {}
    if not T.ok(r.status == 200, '%s: Calculate answers 200' % label, r):
        return
    T.ok(j.get('asOf') == AS_OF, '%s: asOf echoed' % label, j.get('asOf'))
    T.ok(rel_ok(j.get('totalMarketValue'), exp['total'], TOL_VALUE),
         '%s: totalMarketValue' % label, (j.get('totalMarketValue'), exp['total']))
    T.ok(rel_ok(j.get('cash', 0.0), cash, TOL_VALUE), '%s: cash' % label, j.get('cash'))
    got = {c['constituentId']: c for c in j.get('constituents', [])}
    T.ok(set(got) == set(exp['rows']), '%s: one entry per holding, no target-only one' % label,
         (sorted(got), sorted(exp['rows'])))
    bad = []
    for cid, e in exp['rows'].items():
        c = got.get(cid, {})
        if c.get('instrumentType') != e['type'] or c.get('instrumentId') != e['id']:
            bad.append((cid, 'instrument', c))
        if float(c.get('quantity', 'nan')) != e['qty']:
            bad.append((cid, 'quantity', c.get('quantity')))
        tw = c.get('targetWeight')
        if tw != e['target']:
            bad.append((cid, 'targetWeight', tw, e['target']))
        if not e['priced']:
            if c.get('marketValue', 0.0) != 0.0 or c.get('price', 0.0) != 0.0:
                bad.append((cid, 'unpriced has a value', c))
            continue
        if c.get('priceDate') != e['date']:
            bad.append((cid, 'priceDate', c.get('priceDate'), e['date']))
        tol = TOL_VALUE if e['type'] == 'EQUITY' else TOL_BOND
        if not rel_ok(c.get('price'), e['price'], tol):
            bad.append((cid, 'price', c.get('price'), e['price']))
        if not rel_ok(c.get('marketValue'), e['mv'], tol):
            bad.append((cid, 'marketValue', c.get('marketValue'), e['mv']))
        if not abs_ok(c.get('weight'), e['weight'], TOL_VALUE):
            bad.append((cid, 'weight', c.get('weight'), e['weight']))
        want_class = 'EQUITY' if e['type'] == 'EQUITY' else 'FIXED_INCOME'
        if c.get('assetClass') != want_class:
            bad.append((cid, 'assetClass', c.get('assetClass')))
        if e['type'] == 'BOND':
            a = e['a']
            if not rel_ok(c.get('accruedAmount'), e['accrued'], TOL_BOND):
                bad.append((cid, 'accruedAmount', c.get('accruedAmount'), e['accrued']))
            if not rel_ok(c.get('modifiedDuration'), a['modifiedDuration'], TOL_BOND):
                bad.append((cid, 'modifiedDuration', c.get('modifiedDuration')))
            if not rel_ok(c.get('yield'), a['yield'], TOL_BOND):
                bad.append((cid, 'yield', c.get('yield'), a['yield']))
    T.ok(not bad, '%s: every constituent (price, date, MV, weight, accrued, duration, yield, '
         'target)' % label, bad)
    classes = {a['assetClass']: a for a in j.get('assetClasses', [])}
    T.ok(set(classes) == {'EQUITY', 'FIXED_INCOME', 'CASH'}, '%s: three asset classes' % label,
         classes)
    cbad = []
    for k, mv in exp['classes'].items():
        a = classes.get(k, {})
        if not rel_ok(a.get('marketValue', 0.0), mv, TOL_VALUE):
            cbad.append((k, 'marketValue', a.get('marketValue'), mv))
        if not abs_ok(a.get('weight', 0.0), mv / exp['total'], TOL_VALUE):
            cbad.append((k, 'weight', a.get('weight'), mv / exp['total']))
    T.ok(not cbad, '%s: asset-class values and weights' % label, cbad)
    s = j.get('fixedIncome') or {}
    want = exp['sleeve']
    sbad = []
    for k in ('marketValueDirty', 'accruedAmount', 'modifiedDuration', 'macaulayDuration',
              'dv01', 'mvWeightedYtmApproximation'):
        if not rel_ok(s.get(k), want[k], TOL_BOND):
            sbad.append((k, s.get(k), want[k]))
    T.ok(not sbad, '%s: fixed-income sleeve (dirty MV, accrued, durations, DV01 > 0, MV-'
         'weighted YTM)' % label, sbad)
    T.ok(s.get('dv01', 0) > 0, '%s: DV01 positive for a long sleeve' % label, s.get('dv01'))
    T.ok(abs_ok(s.get('cashflowYield'), want['cashflowYield'], TOL_XIRR),
         '%s: cash-flow yield = IRR of the bond cash flows (brentq)' % label,
         (s.get('cashflowYield'), want['cashflowYield']))
    pmd = want['modifiedDuration'] * exp['classes']['FIXED_INCOME'] / exp['total']
    T.ok(rel_ok(j.get('portfolioModifiedDuration'), pmd, TOL_BOND),
         '%s: portfolio modified duration = sleeve x FI weight' % label,
         (j.get('portfolioModifiedDuration'), pmd))
    # The risk figures themselves are checked in risk_test.py: here, present or explained.
    T.ok(('risk' in j and j['risk'].get('observations', 0) >= 2)
         or any(x.get('code') == 'RISK_UNAVAILABLE' for x in j.get('warnings', [])),
         '%s: risk computed, or absent with a RISK_UNAVAILABLE warning' % label, j.get('risk'))
    unpriced = sorted(cid for cid, e in exp['rows'].items() if not e['priced'])
    no_price = sorted(x.get('constituentId') for x in j.get('warnings', [])
                      if x.get('code') == 'NO_PRICE')
    T.ok(no_price == unpriced, '%s: a NO_PRICE warning per unpriced holding' % label,
         j.get('warnings'))


# ---- BatchQuotes ---------------------------------------------------------------------

def test_batch_quotes(s, w, m):
    import grpc
    pb = m['equity_pb2']
    stub = m['equity_pb2_grpc'].EquityServiceStub(
        grpc.insecure_channel('127.0.0.1:%d' % s.ports['equity']))
    e1, e2, e3 = w.eq['E1'], w.eq['E2'], w.eq['E3']
    unknown = str(uuid.uuid4())
    ids = [e2, unknown, 'not-a-uuid', e1.upper(), e3, e1]
    r = stub.BatchQuotes(pb.BatchQuotesRequest(ids=ids, as_of=AS_OF), timeout=10)
    T.ok([it.id for it in r.items] == ids, 'BatchQuotes: one item per id, in request order',
         [it.id for it in r.items])
    it = {i: r.items[i] for i in range(len(ids))}
    T.ok(it[1].error_code == 5 and 'not found' in it[1].error and not it[1].HasField('equity'),
         'BatchQuotes: unknown id is a per-item NOT_FOUND', it[1])
    T.ok(it[2].error_code == 3, 'BatchQuotes: malformed id is a per-item INVALID_ARGUMENT',
         it[2])
    T.ok(it[0].error_code == 0 and it[0].quote.date == AS_OF and it[0].quote.close == '50.10'
         and it[0].quote.previous_close == '49.90' and it[0].equity.symbol != '',
         'BatchQuotes: quote = last bar on or before asOf (and the one before)', it[0])
    T.ok(it[3].quote.close == '101.25' and it[3].equity.lot_size == 10
         and it[3].quote.date == AS_OF and it[3].quote == it[5].quote,
         'BatchQuotes: upper-case and repeated ids; lotSize carried', (it[3], it[5]))
    T.ok(it[4].error_code == 0 and not it[4].HasField('quote') and it[4].HasField('equity'),
         'BatchQuotes: an equity without a price has no quote and no error', it[4])
    r = stub.BatchQuotes(pb.BatchQuotesRequest(ids=[e1], as_of='2024-06-13'), timeout=10)
    T.ok(r.items[0].quote.date == '2024-06-13' and r.items[0].quote.close == '100.50',
         'BatchQuotes: an earlier asOf gives the earlier bar', r.items[0])
    r = stub.BatchQuotes(pb.BatchQuotesRequest(ids=[e1]), timeout=10)
    T.ok(r.items[0].quote.date == '2024-06-17', 'BatchQuotes: no asOf gives the latest bar',
         r.items[0])
    try:
        stub.BatchQuotes(pb.BatchQuotesRequest(ids=[e1] * 5001), timeout=10)
        T.ok(False, 'BatchQuotes: more than 5000 ids refused')
    except grpc.RpcError as e:
        T.ok(e.code() == grpc.StatusCode.INVALID_ARGUMENT, 'BatchQuotes: more than 5000 ids '
             'refused', e)
    try:
        stub.BatchQuotes(pb.BatchQuotesRequest(ids=[e1], as_of='2024-13-01'), timeout=10)
        T.ok(False, 'BatchQuotes: a bad asOf refused')
    except grpc.RpcError as e:
        T.ok(e.code() == grpc.StatusCode.INVALID_ARGUMENT and 'asOf' in e.details(),
             'BatchQuotes: a bad asOf refused naming it', e)

    # Windows: E5 has a 2:1 split (ex 2024-06-05) and a dividend (ex 2024-06-11).
    e5 = w.eq['E5']
    closes = w.e5_bars
    cb = m['common_pb2']
    split_ex, ratio = '2024-06-05', 2.0
    dividends = (('2024-06-04', 2.0), ('2024-06-11', 0.5))

    def adj(d, v):
        return v / ratio if d < split_ex else v

    def want_window(first, basis):
        pts = [(d, adj(d, float(c))) for d, c in closes if first <= d <= AS_OF]
        divs = [(d, adj(d, a)) for d, a in dividends if pts and pts[0][0] <= d <= AS_OF]
        rets = []
        for k in range(1, len(pts)):
            dv = sum(a for dd, a in divs if pts[k - 1][0] < dd <= pts[k][0])
            num = pts[k][1] + (dv if basis == 'TOTAL' else 0.0)
            rets.append((pts[k][0], num / pts[k - 1][1] - 1.0))
        return pts, divs, rets

    for basis in ('TOTAL', 'PRICE'):
        bv = getattr(cb.Basis, basis)
        for how, req in (('lookback 5', dict(lookback_days=5)),
                         ('from', dict(**{'from': '2024-06-04'}))):
            r = stub.BatchQuotes(pb.BatchQuotesRequest(
                ids=[e5, unknown], as_of=AS_OF, basis=bv, include_prices=True,
                include_dividends=True, include_returns=True, **req), timeout=10)
            item = r.items[0]
            first = '2024-06-04'
            if how.startswith('lookback'):
                first = [d for d, _ in closes if d <= AS_OF][-6]
            pts, divs, rets = want_window(first, basis)
            okp = [(p.date, p.close) for p in item.prices] == [(d, v) for d, v in pts]
            okd = [(x.ex_date, x.amount) for x in item.dividends] == divs
            okr = len(item.returns) == len(rets) and all(
                x.date == d and abs(x.value - v) <= 1e-15 for x, (d, v) in
                zip(item.returns, rets))
            T.ok(okp and okd and okr and r.items[1].error_code == 5,
                 'BatchQuotes window (%s, %s): split-adjusted prices, dividends, returns' %
                 (how, basis), (item, pts, divs, rets))
    r = stub.BatchQuotes(pb.BatchQuotesRequest(ids=[e5], as_of=AS_OF, include_prices=True),
                         timeout=10)
    T.ok(len(r.items[0].prices) == 0 and r.items[0].quote.date == AS_OF,
         'BatchQuotes: no window without from or lookbackDays', r.items[0])


# ---- main ------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    for a in ('gateway', 'equity', 'fi', 'portfolio', 'proto-dir', 'googleapis-dir'):
        ap.add_argument('--' + a, required=True)
    args = ap.parse_args()
    s = stack.Stack({'equity': args.equity, 'fixed_income': args.fi,
                     'portfolio': args.portfolio, 'gateway': args.gateway}, tap=T)
    s.start_all()
    m = grpc_modules(args.proto_dir, args.googleapis_dir)
    w = World(s)

    # Equities: E1 (lot 10) has a bar after AS_OF; E3 has no price; E4 is only a target.
    w.add_equity('E1', [bar('2024-06-12', '99.75'), bar('2024-06-13', '100.50'),
                    bar(AS_OF, '101.25'), bar('2024-06-17', '103.00')], lot=10)
    w.add_equity('E2', [bar('2024-06-12', '48.00'), bar('2024-06-13', '49.90'),
                    bar(AS_OF, '50.10')])
    w.add_equity('E3', [])
    w.add_equity('E4', [bar(AS_OF, '10.00')])
    w.e5_bars = [('2024-06-%02d' % d, c) for d, c in
                 ((3, '80.00'), (4, '82.00'), (5, '41.50'), (6, '42.00'), (7, '41.00'),
                  (10, '41.60'), (11, '41.40'), (12, '41.90'), (13, '42.30'), (14, '42.10'),
                  (17, '43.00'))]
    w.add_equity('E5', [bar(d, c) for d, c in w.e5_bars])
    r = s.req('POST', '/equities/%s/splits' % w.eq['E5'], {'exDate': '2024-06-05',
                                                          'ratio': '2'})
    assert r.status == 200, r
    for ex, amount in (('2024-06-04', '2.0'), ('2024-06-11', '0.5')):
        r = s.req('POST', '/equities/%s/dividends' % w.eq['E5'], {'exDate': ex,
                                                                 'amount': amount})
        assert r.status == 200, r
    # Bonds: a semi-annual 30/360, a yield-quoted one, a zero coupon.
    w.add_bond('B1', {'couponRate': 0.05, 'frequency': 2, 'dayCount': 'THIRTY_360_US',
                  'issueDate': '2020-01-15', 'maturityDate': '2030-01-15'},
           [{'date': '2024-06-13', 'cleanPrice': '98.25'},
            {'date': AS_OF, 'cleanPrice': '98.5'}])
    w.add_bond('B2', {'couponRate': 0.0425, 'frequency': 2, 'dayCount': 'THIRTY_360_US',
                  'issueDate': '2019-05-15', 'maturityDate': '2034-05-15'},
           [{'date': AS_OF, 'yield': '0.0451'}])
    w.add_bond('B3', {'couponRate': 0.0, 'frequency': 0, 'dayCount': 'ACT_365_FIXED',
                  'issueDate': '2022-03-01', 'maturityDate': '2027-03-01'},
           [{'date': AS_OF, 'cleanPrice': '88.0'}])

    test_batch_quotes(s, w, m)

    cash = '25000.50'
    targets = {w.eq['E1']: 0.2, w.bond['B1']: 0.3, w.eq['E4']: 0.05}
    r = s.req('POST', '/portfolios', {
        'name': 'Valuation test', 'baseCurrency': 'USD', 'cash': cash,
        'targets': [{'instrumentType': 'EQUITY', 'instrumentId': w.eq['E1'], 'weight': 0.2},
                    {'instrumentType': 'BOND', 'instrumentId': w.bond['B1'], 'weight': 0.3},
                    {'instrumentType': 'EQUITY', 'instrumentId': w.eq['E4'], 'weight': 0.05}]})
    assert r.status == 200, r
    pid = r.json['id']
    mode = {'api': True}
    spec = [('E1', 'EQUITY', '150', '101.25'), ('E2', 'EQUITY', '75.5', '50.10'),
            ('E3', 'EQUITY', '10', None), ('B1', 'BOND', '100000', {'cleanPrice': 98.5}),
            ('B2', 'BOND', '250000', {'yield': 0.0451}), ('B3', 'BOND', '50000',
                                                          {'cleanPrice': 88.0})]
    holdings = {}
    for tag, itype, qty, px in spec:
        iid = w.eq[tag] if itype == 'EQUITY' else w.bond[tag]
        cid = add_constituent(s, pid, itype, iid, qty, mode)
        h = {'type': itype, 'id': iid, 'qty': qty, 'tag': tag, 'date': AS_OF}
        if itype == 'EQUITY':
            h['close'] = px
        else:
            h['quote'] = px
        holdings[cid] = h
    T.ok(True, 'constituents added (%s)' % ('AddConstituent' if mode['api'] else 'SQL'))

    exp = expected(s, w, holdings, float(cash), AS_OF, targets)
    bq0 = metric(s.ports['equity'], 'started_total', 'BatchQuotes')
    ba0 = metric(s.ports['fixed_income'], 'started_total', 'BatchAnalytics')
    bh0 = metric(s.ports['fixed_income'], 'started_total', 'BatchPriceHistory')
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': AS_OF})
    check_calculate('cold', r, exp, float(cash))
    # Prices: one BatchQuotes + one BatchAnalytics; risk series: one BatchQuotes (window)
    # + one BatchPriceHistory, never a call per constituent.
    T.ok(metric(s.ports['equity'], 'started_total', 'BatchQuotes') - bq0 == 2 and
         metric(s.ports['fixed_income'], 'started_total', 'BatchAnalytics') - ba0 == 1 and
         metric(s.ports['fixed_income'], 'started_total', 'BatchPriceHistory') - bh0 == 1,
         'a cold valuation makes two BatchQuotes (prices, risk series), one BatchAnalytics '
         'and one BatchPriceHistory call')
    first = r.json
    keys = stack.redis_cli('--scan', '--pattern', 'pf:m:*:%s' % AS_OF).split()
    T.ok(len(keys) == 7, 'every instrument (targets included) cached for the date', keys)
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': AS_OF})
    check_calculate('warm', r, exp, float(cash))
    T.ok(r.json == first, 'warm answer equals the cold one')
    T.ok(metric(s.ports['equity'], 'started_total', 'BatchQuotes') - bq0 == 2 and
         metric(s.ports['fixed_income'], 'started_total', 'BatchAnalytics') - ba0 == 1 and
         metric(s.ports['fixed_income'], 'started_total', 'BatchPriceHistory') - bh0 == 1,
         'a warm valuation (and its risk) calls neither service')
    T.ok(first.get('stale') is False and first.get('staleAgeSeconds') == 0,
         'fresh prices: not stale', first.get('stale'))

    # Input errors and scoping.
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': '2024-02-30'})
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'asOf'), 'bad asOf: 400 naming it', r)
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'lookbackDays': 1})
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'lookbackDays'),
         'bad lookbackDays: 400 naming it', r)
    # async (demo_portfolios_test runs the job with a worker): a QUEUED pf.calculate job.
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'async': True})
    T.ok(r.status == 200 and (r.json or {}).get('job', {}).get('state') == 'QUEUED' and
         r.json['job'].get('type') == 'pf.calculate', 'async: a QUEUED pf.calculate job', r)
    r = s.req('POST', '/portfolios/%s/calculate' % uuid.uuid4(), {})
    T.ok(r.status == 404, 'unknown portfolio: 404', r)
    import grpc
    pstub = m['portfolio_pb2_grpc'].PortfolioServiceStub(
        grpc.insecure_channel('127.0.0.1:%d' % s.ports['portfolio']))
    other = [('x-client-id', str(uuid.uuid4())), ('x-client-role', 'client')]
    for name, call in (('Calculate', lambda: pstub.Calculate(
            m['portfolio_pb2'].CalculateRequest(id=pid, as_of=AS_OF), metadata=other,
            timeout=10)),
                       ('ListConstituents', lambda: pstub.ListConstituents(
                           m['portfolio_pb2'].ListConstituentsRequest(id=pid), metadata=other,
                           timeout=10))):
        try:
            call()
            T.ok(False, "%s of another client's portfolio: NOT_FOUND" % name)
        except grpc.RpcError as e:
            T.ok(e.code() == grpc.StatusCode.NOT_FOUND,
                 "%s of another client's portfolio: NOT_FOUND (gRPC metadata)" % name, e)
    r = s.req('POST', '/clients', {'name': 'valuation other', 'role': 'client'})
    if r.status == 200 and r.json.get('apiKey'):
        key = r.json['apiKey']
        r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': AS_OF}, key=key)
        T.ok(r.status == 404, "another client's portfolio over REST: 404", r)
        r = s.req('GET', '/portfolios/%s/constituents' % pid, key=key)
        T.ok(r.status == 404, "another client's constituents over REST: 404", r)
    else:
        T.skip("another client's portfolio over REST", 'POST /clients answers %d' % r.status)

    # ListConstituents: as of today (the latest prices).
    r = s.req('GET', '/portfolios/%s/constituents' % pid)
    j = r.json or {}
    T.ok(r.status == 200 and len(j.get('constituents', [])) == 6,
         'ListConstituents: every holding', r)
    today = date.today().isoformat()
    lc = {c['constituentId']: c for c in j.get('constituents', [])}
    total = float(cash)
    latest = {'E1': ('2024-06-17', 103.0), 'E2': (AS_OF, 50.10)}
    lbad = []
    for cid, h in holdings.items():
        c = lc.get(cid, {})
        if h['type'] == 'EQUITY' and h['tag'] in latest:
            d, px = latest[h['tag']]
            mv = float(h['qty']) * px
            if c.get('lastPrice') != px or c.get('priceDate') != d or \
                    not rel_ok(c.get('marketValue'), mv, TOL_VALUE):
                lbad.append((cid, c))
            total += mv
        elif h['type'] == 'BOND':
            a = bond_analytics(s, w.bond_terms[h['tag']], today, h['quote'])
            mv = float(h['qty']) / 100.0 * a['dirtyPrice']
            if c.get('priceDate') != AS_OF or not rel_ok(c.get('lastPrice'), a['dirtyPrice'],
                                                         TOL_BOND):
                lbad.append((cid, c, a['dirtyPrice']))
            total += mv
        elif c.get('lastPrice') or c.get('marketValue') or c.get('priceDate'):
            lbad.append((cid, 'unpriced', c))
        if c.get('portfolioId') != pid or c.get('quantity') is None or not c.get('createdAt'):
            lbad.append((cid, 'fields', c))
    T.ok(not lbad, 'ListConstituents: last price, price date, market value per holding', lbad)
    T.ok(rel_ok(j.get('totalMarketValue'), total, TOL_BOND),
         'ListConstituents: totalMarketValue = holdings + cash', (j.get('totalMarketValue'),
                                                                  total))
    wsum = sum(c.get('weight', 0.0) for c in lc.values()) + float(cash) / total
    T.ok(abs(wsum - 1.0) < 1e-12, 'ListConstituents: weights and cash sum to 1', wsum)
    tw = {c['instrumentId']: c.get('targetWeight') for c in lc.values()}
    T.ok(tw.get(w.eq['E1']) == 0.2 and tw.get(w.bond['B1']) == 0.3
         and tw.get(w.eq['E2']) is None, 'ListConstituents: target weights', tw)
    T.ok(j.get('stale') is True and j.get('asOf') == today,
         'ListConstituents: stale (a missing price, old prices), asOf today', j)

    # Invalidation: PUT prices / quotes reach the next valuation (events are asynchronous:
    # allow them a moment, far below the cache's freshness window).
    r = s.req('PUT', '/equities/%s/prices' % w.eq['E1'], {'bars': [bar(AS_OF, '102.40')]})
    r2 = s.req('PUT', '/bonds/%s/quotes' % w.bond['B1'],
               {'quotes': [{'date': AS_OF, 'cleanPrice': '99.125'}]})
    assert r.status == 200 and r2.status == 200, (r, r2)
    for cid, h in holdings.items():
        if h['tag'] == 'E1':
            h['close'] = '102.40'
        if h['tag'] == 'B1':
            h['quote'] = {'cleanPrice': 99.125}
    exp = expected(s, w, holdings, float(cash), AS_OF, targets)
    want_e1 = [cid for cid, h in holdings.items() if h['tag'] == 'E1'][0]
    want_b1 = [cid for cid, h in holdings.items() if h['tag'] == 'B1'][0]
    deadline = time.time() + 5
    while True:
        r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': AS_OF})
        got = {c['constituentId']: c for c in (r.json or {}).get('constituents', [])}
        done = got.get(want_e1, {}).get('price') == 102.40 and rel_ok(
            got.get(want_b1, {}).get('price'), exp['rows'][want_b1]['price'], TOL_BOND)
        if done or time.time() > deadline:
            break
        time.sleep(0.05)
    T.ok(done, 'price.updated and bond.updated invalidate the cached prices', r)
    check_calculate('after updates', r, exp, float(cash))
    fresh = r.json

    # Fixed income down, entries outdated (as after an event): the outdated entries serve.
    for tag in ('B1', 'B2', 'B3'):
        stack.redis_cli('INCR', 'pf:g:B:%s' % w.bond[tag])
    time.sleep(1.1)
    s.stop('fixed_income')
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': AS_OF})
    j = r.json or {}
    T.ok(r.status == 200 and j.get('stale') is True and j.get('staleAgeSeconds', 0) >= 1.0,
         'fixed income down, cached values: 200, stale, with the age', r)
    T.ok(any(x.get('code') == 'STALE_CACHE' and x.get('value', 0) >= 1.0
             for x in j.get('warnings', [])), 'stale: a STALE_CACHE warning with the age',
         j.get('warnings'))
    flags = ('stale', 'staleAgeSeconds', 'warnings')
    same = {k: v for k, v in j.items() if k not in flags}
    T.ok(same == {k: v for k, v in fresh.items() if k not in flags},
         'stale: the figures of the cached prices', (same, fresh))
    # A date never priced: nothing cached for it.
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': '2024-06-13'})
    T.ok(r.status == 503 and stack.is_error_body(r, 14) and
         r.json['message'] == 'fixed income service unavailable',
         'fixed income down, nothing cached for the date: 503 naming the service', r)
    # Last known: today's valuation is cached as last known; without today's own entries
    # (deleted) it still answers, stale.
    for k in stack.redis_cli('--scan', '--pattern', 'pf:m:B:*:%s' % today).split():
        stack.redis_cli('DEL', k)
    r = s.req('GET', '/portfolios/%s/constituents' % pid)
    T.ok(r.status == 200 and r.json.get('stale') is True and
         r.json.get('staleAgeSeconds', 0) > 0,
         'fixed income down: ListConstituents from the last-known prices, stale', r)
    # Cache flushed: 503.
    for k in stack.redis_cli('--scan', '--pattern', 'pf:*').split():
        stack.redis_cli('DEL', k)
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': AS_OF})
    T.ok(r.status == 503 and r.json and r.json.get('message') ==
         'fixed income service unavailable', 'fixed income down, empty cache: 503', r)
    s.restart('fixed_income')
    for k in stack.redis_cli('--scan', '--pattern', 'pf:*').split():
        stack.redis_cli('DEL', k)
    s.stop('equity')
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': AS_OF})
    T.ok(r.status == 503 and r.json and r.json.get('message') == 'equity service unavailable',
         'equity down, empty cache: 503 naming the equity service', r)
    s.restart('equity')
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': AS_OF})
    check_calculate('services back', r, exp, float(cash))
    T.ok(r.json.get('stale') is not True, 'services back: fresh again')

    # An empty portfolio: cash only.
    r = s.req('POST', '/portfolios', {'name': 'Cash only', 'baseCurrency': 'USD',
                                      'cash': '1000'})
    r = s.req('POST', '/portfolios/%s/calculate' % r.json['id'], {'asOf': AS_OF})
    j = r.json or {}
    T.ok(r.status == 200 and j.get('totalMarketValue') == 1000.0 and 'fixedIncome' not in j
         and not j.get('constituents') and
         {a['assetClass']: a.get('weight', 0.0) for a in j.get('assetClasses', [])} ==
         {'EQUITY': 0.0, 'FIXED_INCOME': 0.0, 'CASH': 1.0}, 'cash only: CASH weight 1', r)
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
