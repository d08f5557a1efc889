#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Portfolio risk end to end (TAP on stdout): fixed_income.v1 BatchPriceHistory at gRPC
level, then the risk figures of POST /portfolios/{id}/calculate through the gateway.

Run by meson through with_deps.sh (a throwaway PostgreSQL and Redis):

    with_deps.sh --pg --redis -- risk_test.py --gateway G --equity E --fi F \\
        --portfolio P --proto-dir DIR --googleapis-dir DIR

Checks:
- BatchPriceHistory: request order, unknown/malformed ids (per-item errors), the window,
  every point's clean/dirty/accrued/yield against POST /bonds/analytics at settlement = the
  quote date (the bond math checked against QuantLib), cash_paid = the coupons paid in
  (previous point, this point], quotes outside the bond's life left out, input errors;
- Calculate risk: volatility, risk and marginal contributions, per-class sums, VaR/ES
  (historical, gaussian, Cornish-Fisher; 95/99; fractions and money), equity-sleeve beta,
  against an independent numpy/scipy computation of the same aligned returns at the
  ANALYTICS.md tolerances; concentration warnings and their limits; degenerate cases.
"""
import argparse
import importlib
import os
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

T = stack.Tap()
TOL_BOND = 1e-10


def rel_ok(got, want, tol):
    if got is None or want is None:
        return False
    return abs(got - want) <= tol * max(abs(want), 1e-300) or got == want


def abs_ok(got, want, tol):
    return got is not None and want is not None and abs(got - want) <= tol


def grpc_modules(proto_dir, googleapis_dir):
    """Python stubs of equity.v1, fixed_income.v1 and portfolio.v1 in a temp dir."""
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix='fsr-risk-py.')
    include = os.path.join(os.path.dirname(protoc.__file__), '_proto')
    files = ['common/v1/common.proto', 'jobs/v1/jobs.proto', 'equity/v1/equity.proto',
             'fixed_income/v1/fixed_income.proto', 'portfolio/v1/portfolio.proto']
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
    for name in ('fixed_income.v1.fixed_income_pb2', 'fixed_income.v1.fixed_income_pb2_grpc',
                 'portfolio.v1.portfolio_pb2', 'common.v1.common_pb2'):
        mods[name.split('.')[-1]] = importlib.import_module(name)
    return mods


def add_bond(s, terms, quotes, issuer='Test Treasury'):
    body = dict(terms, name='Risk %s' % uuid.uuid4().hex[:8], issuer=issuer, currency='USD',
                face='1000')
    r = s.req('POST', '/bonds', body)
    assert r.status == 200, r
    bid = r.json['id']
    if quotes:
        r = s.req('PUT', '/bonds/%s/quotes' % bid, {'quotes': quotes})
        assert r.status == 200, r
    return bid


def bond_analytics(s, terms, settle, quote):
    body = {'terms': terms, 'settlementDate': settle}
    body.update(quote)
    r = s.req('POST', '/bonds/analytics', body)
    assert r.status == 200, r
    return r.json


# ---- BatchPriceHistory -------------------------------------------------------------------

H_TERMS = {'couponRate': 0.05, 'frequency': 2, 'dayCount': 'THIRTY_360_US',
           'issueDate': '2020-01-15', 'maturityDate': '2030-01-15'}
# Across the 2024-07-15 coupon: a clean quote, a yield quote, one on the coupon date, after.
H_QUOTES = [{'date': '2024-07-05', 'cleanPrice': '97.00'},   # before the window
            {'date': '2024-07-11', 'cleanPrice': '98.25'},
            {'date': '2024-07-12', 'yield': '0.0531'},
            {'date': '2024-07-15', 'cleanPrice': '98.40'},
            {'date': '2024-07-16', 'cleanPrice': '98.375'},
            {'date': '2024-07-30', 'cleanPrice': '99.00'}]   # after the window
# Sparse: the coupon falls between two points.
S_QUOTES = [{'date': '2024-07-11', 'cleanPrice': '101.5'},
            {'date': '2024-07-16', 'cleanPrice': '101.25'}]
# Matures inside the window: its quote on the maturity date has no price.
M_TERMS = {'couponRate': 0.04, 'frequency': 1, 'dayCount': 'ACT_365_FIXED',
           'issueDate': '2021-07-15', 'maturityDate': '2024-07-15'}
M_QUOTES = [{'date': '2024-07-12', 'cleanPrice': '99.99'},
            {'date': '2024-07-15', 'cleanPrice': '100'}]


def quote_input(q):
    return {'cleanPrice': float(q['cleanPrice'])} if 'cleanPrice' in q else \
        {'yield': float(q['yield'])}


def test_price_history(s, m):
    import grpc
    pb = m['fixed_income_pb2']
    stub = m['fixed_income_pb2_grpc'].FixedIncomeServiceStub(
        grpc.insecure_channel('127.0.0.1:%d' % s.ports['fixed_income']))
    h = add_bond(s, H_TERMS, H_QUOTES)
    sp = add_bond(s, H_TERMS, S_QUOTES)
    mt = add_bond(s, M_TERMS, M_QUOTES)
    empty = add_bond(s, H_TERMS, [])
    unknown = str(uuid.uuid4())
    ids = [sp, unknown, 'nope', h.upper(), mt, empty, h]
    r = stub.BatchPriceHistory(pb.BatchPriceHistoryRequest(bond_ids=ids, to='2024-07-20',
                                                           **{'from': '2024-07-10'}),
                               timeout=10)
    T.ok([it.bond_id for it in r.items] == ids, 'BatchPriceHistory: one item per id, in order',
         [it.bond_id for it in r.items])
    it = list(r.items)
    T.ok(it[1].error_code == 5 and 'not found' in it[1].error and not it[1].HasField('bond'),
         'BatchPriceHistory: unknown id is a per-item NOT_FOUND', it[1])
    T.ok(it[2].error_code == 3 and len(it[2].points) == 0,
         'BatchPriceHistory: malformed id is a per-item INVALID_ARGUMENT', it[2])
    T.ok(it[5].error_code == 0 and len(it[5].points) == 0 and it[5].bond.id == empty,
         'BatchPriceHistory: a bond without quotes has terms and no points', it[5])
    hist = it[3]
    T.ok(hist.error_code == 0 and hist.bond.coupon_rate == 0.05 and it[6].points == hist.points
         and it[6].bond == hist.bond,
         'BatchPriceHistory: upper-case and repeated ids give the same history', hist.bond)
    want_dates = [q['date'] for q in H_QUOTES[1:5]]
    T.ok([p.date for p in hist.points] == want_dates,
         'BatchPriceHistory: the quotes inside [from, to], ascending',
         [p.date for p in hist.points])
    coupon = None
    ok = True
    diag = []
    for p, q in zip(hist.points, H_QUOTES[1:5]):
        a = bond_analytics(s, H_TERMS, q['date'], quote_input(q))
        for f, g in (('cleanPrice', p.clean_price), ('dirtyPrice', p.dirty_price),
                     ('accrued', p.accrued), ('yield', getattr(p, 'yield'))):
            if not (rel_ok(g, a[f], TOL_BOND) or abs_ok(g, a[f], 1e-13)):
                ok = False
                diag.append((q['date'], f, g, a[f]))
        if q['date'] == '2024-07-12':
            coupon = a['cashflows'][0]['amount']
            T.ok(a['cashflows'][0]['date'] == '2024-07-15', 'reference: the next coupon',
                 a['cashflows'][0])
    T.ok(ok, 'BatchPriceHistory: clean/dirty/accrued/yield = POST /bonds/analytics at the '
         'quote date (clean and yield quotes)', diag)
    cash = [p.cash_paid for p in hist.points]
    T.ok(cash == [0.0, 0.0, coupon, 0.0] and hist.points[2].accrued == 0.0,
         'BatchPriceHistory: the coupon is cash_paid on its payment date (accrued 0 there)',
         (cash, coupon))
    sparse = it[0]
    T.ok([p.date for p in sparse.points] == ['2024-07-11', '2024-07-16']
         and [p.cash_paid for p in sparse.points] == [0.0, coupon],
         'BatchPriceHistory: a coupon between two points is paid on the later one',
         sparse.points)
    T.ok(it[4].error_code == 0 and [p.date for p in it[4].points] == ['2024-07-12'],
         'BatchPriceHistory: a quote on the maturity date is left out (nothing to settle)',
         it[4])
    # A window starting on the coupon date: the first point pays nothing.
    r = stub.BatchPriceHistory(pb.BatchPriceHistoryRequest(bond_ids=[h], to='2024-07-16',
                                                           **{'from': '2024-07-15'}),
                               timeout=10)
    T.ok([p.cash_paid for p in r.items[0].points] == [0.0, 0.0],
         'BatchPriceHistory: the first point of the window has cash_paid 0', r.items[0])
    for req, field, desc in (
            (dict(bond_ids=[h], to='2024-07-16'), 'from', 'from is required'),
            (dict(bond_ids=[h], to='2024-07-16', **{'from': '2024-13-01'}), 'from',
             'a bad from'),
            (dict(bond_ids=[h], to='2024-07-01', **{'from': '2024-07-15'}), 'to',
             'to before from'),
            (dict(bond_ids=[h], to='2045-01-01', **{'from': '2024-07-15'}), 'to',
             'a window over 20 years'),
            (dict(bond_ids=[h] * 1001, to='2024-07-16', **{'from': '2024-07-15'}), 'bondIds',
             'more than 1000 ids')):
        try:
            stub.BatchPriceHistory(pb.BatchPriceHistoryRequest(**req), timeout=10)
            T.ok(False, 'BatchPriceHistory: %s refused' % desc)
        except grpc.RpcError as e:
            T.ok(e.code() == grpc.StatusCode.INVALID_ARGUMENT and field in e.details(),
                 'BatchPriceHistory: %s refused naming %s' % (desc, field), e)


# ---- Calculate risk ------------------------------------------------------------------------

def weekdays(start, n):
    d = date.fromisoformat(start)
    out = []
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d.isoformat())
        d += timedelta(days=1)
    return out


def bar(d, close):
    return {'date': d, 'open': close, 'high': close, 'low': close, 'close': close,
            'volume': '1000'}


def add_equity(s, sector, closes):
    sym = ('R%s' % uuid.uuid4().hex[:7]).upper()
    r = s.req('POST', '/equities', {'symbol': sym, 'name': 'Risk ' + sym, 'exchange': 'XTST',
                                    'currency': 'USD', 'sector': sector, 'lotSize': 1})
    assert r.status == 200, r
    eid = r.json['id']
    if closes:
        r = s.req('PUT', '/equities/%s/prices' % eid, {'bars': [bar(d, c) for d, c in closes]})
        assert r.status == 200, r
    return eid


def add_portfolio(s, cash, benchmark=None):
    body = {'name': 'Risk test', 'baseCurrency': 'USD', 'cash': cash}
    if benchmark:
        body['benchmark'] = {'components': benchmark}
    r = s.req('POST', '/portfolios', body)
    assert r.status == 200, r
    return r.json['id']


def hold(s, pid, itype, iid, qty):
    r = s.req('POST', '/portfolios/%s/constituents' % pid,
              {'instrumentType': itype, 'instrumentId': iid, 'quantity': qty})
    assert r.status == 200, r
    return r.json['constituentId']


def equity_returns(closes, divs):
    """Independent TOTAL returns (P_t + D_t) / P_{t-1} - 1, dated by their end date."""
    out = []
    for (d0, c0), (d1, c1) in zip(closes, closes[1:]):
        out.append((d1, (float(c1) + divs.get(d1, 0.0)) / float(c0) - 1.0))
    return out


def bond_returns(s, terms, quotes, lo):
    """Independent point returns from POST /bonds/analytics dirty prices and cash flows."""
    pts = []
    for q in quotes:
        if q['date'] < lo:
            continue
        a = bond_analytics(s, terms, q['date'], quote_input(q))
        pts.append((q['date'], a['dirtyPrice'], {c['date']: c['amount'] for c in a['cashflows']}))
    out = []
    for (d0, p0, cf0), (d1, p1, _) in zip(pts, pts[1:]):
        cash = sum(v for k, v in cf0.items() if d0 < k <= d1)
        out.append((d1, (p1 + cash) / p0 - 1.0))
    return out


def on_grid(series, grid):
    """Compounds a dated return series over (grid[k-1], grid[k]]; 0 where none."""
    out = []
    for a, b in zip(grid, grid[1:]):
        g = 1.0
        for d, r in series:
            if a < d <= b:
                g *= 1.0 + r
        out.append(g - 1.0)
    return out


def var_ref(x, conf):
    import numpy as np
    from scipy.stats import norm
    x = np.asarray(x)
    n = len(x)
    p = round(1 - conf, 12)  # ANALYTICS.md: 0.95 gives exactly the double nearest 0.05
    xs = np.sort(x)
    k = int(np.floor((n - 1) * p)) + 1
    m, sd = x.mean(), x.std(ddof=1)
    z = norm.ppf(p)
    c = x - m
    m2 = (c ** 2).mean()
    S = (c ** 3).mean() / m2 ** 1.5
    K = (c ** 4).mean() / m2 ** 2 - 3
    zcf = z + (z * z - 1) * S / 6 + (z ** 3 - 3 * z) * K / 24 - (2 * z ** 3 - 5 * z) * S * S / 36
    return {'historical': -np.percentile(x, p * 100), 'cvarHistorical': -xs[:k].mean(),
            'gaussian': -(m + z * sd), 'esGaussian': -m + sd * norm.pdf(z) / p,
            'cornishFisher': -(m + zcf * sd), 'historicalLower': -xs[int(np.floor((n - 1) * p))],
            'historicalInvertedCdf': -xs[int(np.ceil(n * p)) - 1]}


def test_risk(s):
    import numpy as np
    days = weekdays('2024-06-17', 30)
    as_of = days[-1]
    L = 20
    rng = np.random.default_rng(7)

    def walk(p0, vol):
        out, p = [], p0
        for d in days:
            p *= 1 + rng.normal(0.0003, vol)
            out.append((d, '%.4f' % p))
        return out
    ca, cb, cc, cd = walk(100, 0.012), walk(50, 0.02), walk(80, 0.015), walk(30, 0.01)
    cc = [x for x in cc if x[0] != days[-8]]  # C does not trade one day: carried forward
    ea = add_equity(s, 'Technology', ca)
    eb = add_equity(s, 'Technology', cb)
    ec = add_equity(s, 'Energy', cc)
    ed = add_equity(s, 'Energy', cd)  # benchmark only
    div_day = days[-5]
    r = s.req('POST', '/equities/%s/dividends' % ec, {'exDate': div_day, 'amount': '0.75'})
    assert r.status == 200, r
    # Bonds: B1 clean-quoted on most days (not all), across its 2024-07-15 coupon; B2 by yield.
    b1q = [{'date': d, 'cleanPrice': '%.3f' % (98 + 0.02 * i + 0.1 * np.sin(i))}
           for i, d in enumerate(days) if i % 4 != 1]
    b2t = {'couponRate': 0.0425, 'frequency': 2, 'dayCount': 'THIRTY_360_US',
           'issueDate': '2019-05-15', 'maturityDate': '2034-05-15'}
    b2q = [{'date': d, 'yield': '%.5f' % (0.045 + 0.0004 * np.cos(i))} for i, d in enumerate(days)]
    b1 = add_bond(s, H_TERMS, b1q, issuer='Issuer One')
    b2 = add_bond(s, b2t, b2q, issuer='Issuer Two')
    bench = [{'instrumentType': 'EQUITY', 'instrumentId': ea, 'weight': 0.5},
             {'instrumentType': 'EQUITY', 'instrumentId': ed.upper(), 'weight': 0.3},
             {'instrumentType': 'BOND', 'instrumentId': b1, 'weight': 0.2}]
    pid = add_portfolio(s, '20000', bench)
    cids = {}
    for tag, t, iid, q in (('A', 'EQUITY', ea, '300'), ('B', 'EQUITY', eb, '500'),
                           ('C', 'EQUITY', ec, '250'), ('B1', 'BOND', b1, '40000'),
                           ('B2', 'BOND', b2, '25000')):
        cids[tag] = hold(s, pid, t, iid, q)
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': as_of, 'lookbackDays': L})
    T.ok(r.status == 200 and 'risk' in r.json, 'calculate with risk answers', r)
    if r.status != 200 or 'risk' not in r.json:
        return
    j = r.json
    risk = j['risk']
    tmv = j['totalMarketValue']
    wt = {c['constituentId']: c['weight'] for c in j['constituents']}

    # The independent computation.
    grid = sorted(set(d for d, _ in ca) | set(d for d, _ in cb) | set(d for d, _ in cc))
    grid = [d for d in grid if d <= as_of][-(L + 1):]
    lo = (date.fromisoformat(as_of) - timedelta(days=L * 7 // 5 + 31)).isoformat()
    ser = {'A': equity_returns(ca, {}), 'B': equity_returns(cb, {}),
           'C': equity_returns(cc, {div_day: 0.75}), 'D': equity_returns(cd, {}),
           'B1': bond_returns(s, H_TERMS, b1q, lo), 'B2': bond_returns(s, b2t, b2q, lo)}
    tags = ['A', 'B', 'C', 'B1', 'B2']
    R = np.array([on_grid(ser[t], grid) for t in tags])
    w = np.array([wt[cids[t]] for t in tags])
    C = np.cov(R, ddof=1)
    wCw = w @ C @ w
    Cw = C @ w
    rp = w @ R
    T.ok(risk.get('observations') == L and risk.get('startDate') == grid[0]
         and risk.get('endDate') == grid[-1],
         'risk: %d observations on the equities\' trading dates' % L, risk)
    T.ok(rel_ok(risk['volatility'], np.sqrt(wCw * 252), 1e-9),
         'risk: volatility = sqrt(w\'Cw x 252) (numpy covariance matrix)',
         (risk['volatility'], np.sqrt(wCw * 252)))
    got = {c['constituentId']: c for c in risk['contributions']}
    ok = len(got) == 5
    diag = []
    for i, t in enumerate(tags):
        c = got.get(cids[t], {})
        want_rc = w[i] * Cw[i] / wCw
        want_mc = Cw[i] / np.sqrt(wCw) * np.sqrt(252)
        if not (abs_ok(c.get('riskContribution', 0.0), want_rc, 1e-9)
                and rel_ok(c.get('marginalContribution', 0.0), want_mc, 1e-9)
                and c.get('weight') == wt[cids[t]]):
            ok = False
            diag.append((t, c, want_rc, want_mc))
    T.ok(ok, 'risk: risk and marginal contributions = w_i (Cw)_i / w\'Cw and '
         '(Cw)_i / sqrt(w\'Cw) x sqrt(252)', diag)
    T.ok(abs(sum(c.get('riskContribution', 0.0) for c in risk['contributions']) - 1) < 1e-12,
         'risk: contributions sum to 1')
    cls = {a['assetClass']: a for a in risk.get('assetClasses', [])}
    eq_rc = sum(w[i] * Cw[i] / wCw for i in range(3))
    T.ok(abs_ok(cls.get('EQUITY', {}).get('riskContribution', 0.0), eq_rc, 1e-9)
         and abs_ok(cls.get('FIXED_INCOME', {}).get('riskContribution', 0.0), 1 - eq_rc, 1e-9)
         and cls.get('CASH', {}).get('riskContribution', 0.0) == 0.0
         and abs_ok(cls.get('CASH', {}).get('weight', 0.0), 20000 / tmv, 1e-12)
         and abs_ok(cls['EQUITY']['weight'], w[:3].sum(), 1e-12),
         'risk: per asset class sums of weights and contributions', cls)
    ok = len(risk.get('var', [])) == 2
    diag = []
    for v in risk.get('var', []):
        want = var_ref(rp, v['confidence'])
        for f, x in want.items():
            if not abs_ok(v.get(f, 0.0), x, 1e-12):
                ok = False
                diag.append((v['confidence'], f, v.get(f), x))
        for f in ('historical', 'cvarHistorical', 'gaussian', 'esGaussian', 'cornishFisher'):
            if not rel_ok(v.get(f + 'Money', 0.0), want[f] * tmv, 1e-9):
                ok = False
                diag.append((v['confidence'], f + 'Money', v.get(f + 'Money'), want[f] * tmv))
    T.ok(ok and sorted(v['confidence'] for v in risk['var']) == [0.95, 0.99],
         'risk: VaR/ES 95/99 (historical, gaussian, Cornish-Fisher, fractions and money) of '
         'r_p vs numpy/scipy', diag)
    # Beta: equity sleeve (A, B, C renormalised) vs benchmark equities (A 0.5, D 0.3 -> 5/8, 3/8).
    ws = w[:3] / w[:3].sum()
    x = ws @ R[:3]
    b = 0.625 * np.array(on_grid(ser['A'], grid)) + 0.375 * np.array(on_grid(ser['D'], grid))
    beta = np.cov(x, b, ddof=1)[0, 1] / np.var(b, ddof=1)
    T.ok(rel_ok(risk.get('equityBeta'), beta, 1e-9),
         'risk: equity-sleeve beta vs the benchmark\'s equity components (renormalised)',
         (risk.get('equityBeta'), beta))

    # Concentration: defaults (0.10 position, 0.30 sector, 0.25 issuer).
    def conc(resp):
        return sorted((w_.get('constituentId', ''), round(w_.get('value', 0), 12),
                       w_.get('limit'))
                      for w_ in resp.get('warnings', []) if w_['code'] == 'CONCENTRATION')

    def want_conc(pl, sl, il):
        out = [(cids[t], round(wt[cids[t]], 12), pl) for t in tags if wt[cids[t]] > pl]
        sec = {'Technology': wt[cids['A']] + wt[cids['B']], 'Energy': wt[cids['C']]}
        iss = {'Issuer One': wt[cids['B1']], 'Issuer Two': wt[cids['B2']]}
        out += [('', round(v, 12), sl) for v in sec.values() if v > sl]
        out += [('', round(v, 12), il) for v in iss.values() if v > il]
        return sorted(out)
    T.ok(conc(j) == want_conc(0.10, 0.30, 0.25) and len(conc(j)) > 0,
         'concentration: default limits (position, sector, issuer)', (conc(j), wt))
    lim = {'positionLimit': 0.2, 'sectorLimit': 0.15, 'issuerLimit': 0.9}
    r = s.req('POST', '/portfolios/%s/calculate' % pid, dict(lim, asOf=as_of, lookbackDays=L))
    T.ok(r.status == 200 and conc(r.json) == want_conc(0.2, 0.15, 0.9),
         'concentration: limits from the request', conc(r.json) if r.status == 200 else r)
    T.ok(r.status == 200 and r.json.get('risk') == risk,
         'risk: the same again (from the series cache)', r.json.get('risk') if r.status == 200 else r)
    for f in ('positionLimit', 'sectorLimit', 'issuerLimit'):
        r = s.req('POST', '/portfolios/%s/calculate' % pid, {f: 0})
        T.ok(stack.is_error_body(r, 3, f), 'calculate: %s 0 refused naming it' % f, r)
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': as_of, 'lookbackDays': 0})
    T.ok(r.status == 200 and 'risk' not in r.json and r.json.get('totalMarketValue', 0) > 0,
         'calculate: lookbackDays 0 values without risk', r)
    for lb in (-1, 1, 2521):
        r = s.req('POST', '/portfolios/%s/calculate' % pid, {'lookbackDays': lb})
        T.ok(stack.is_error_body(r, 3, 'lookbackDays'), 'calculate: lookbackDays %d refused' % lb,
             r)

    # Degenerate: one return only; constant prices (zero variance); cash only.
    short = add_equity(s, 'Technology', [(days[-2], '10.00'), (days[-1], '10.50')])
    pid2 = add_portfolio(s, '1000')
    hold(s, pid2, 'EQUITY', short, '10')
    r = s.req('POST', '/portfolios/%s/calculate' % pid2, {'asOf': as_of})
    T.ok(r.status == 200 and 'risk' not in r.json
         and any(w_['code'] == 'RISK_UNAVAILABLE' for w_ in r.json.get('warnings', [])),
         'degenerate: fewer than 2 returns -> no risk, a RISK_UNAVAILABLE warning', r)
    flat = add_equity(s, 'Technology', [(d, '10.00') for d in days])
    pid3 = add_portfolio(s, '1000')
    hold(s, pid3, 'EQUITY', flat, '10')
    r = s.req('POST', '/portfolios/%s/calculate' % pid3, {'asOf': as_of})
    T.ok(r.status == 200 and 'risk' not in r.json
         and any(w_['code'] == 'RISK_UNAVAILABLE' and 'vary' in w_['message']
                 for w_ in r.json.get('warnings', [])),
         'degenerate: zero variance -> no risk, a RISK_UNAVAILABLE warning', r)
    pid4 = add_portfolio(s, '1000')
    r = s.req('POST', '/portfolios/%s/calculate' % pid4, {'asOf': as_of})
    T.ok(r.status == 200 and 'risk' not in r.json and b'NaN' not in r.body,
         'degenerate: cash only -> no risk, no NaN', r)
    # Invalidation: new prices for A change the risk (bumped generation, not the stale entry).
    r = s.req('PUT', '/equities/%s/prices' % ea, {'bars': [bar(as_of, '1.00')]})
    assert r.status == 200, r
    time.sleep(0.5)
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': as_of, 'lookbackDays': L})
    T.ok(r.status == 200 and r.json['risk']['volatility'] != risk['volatility'],
         'risk: price.updated invalidates the cached series', r.json.get('risk', {}).get('volatility') if r.status == 200 else r)
    # The result cache dropped: the same figures from the per-instrument series cache.
    keys = stack.redis_cli('--scan', '--pattern', 'pf:rk:*').split()
    T.ok(len(keys) > 0, 'risk: results are cached per portfolio (pf:rk:*)', keys)
    if keys:
        stack.redis_cli('DEL', *keys)
    r2 = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': as_of, 'lookbackDays': L})
    T.ok(r2.status == 200 and r2.json.get('risk') == r.json.get('risk')
         and len(stack.redis_cli('--scan', '--pattern', 'pf:s:*').split()) >= 5,
         'risk: recomputed from the cached series, the same figures', r2)


def main():
    ap = argparse.ArgumentParser()
    for a in ('gateway', 'equity', 'fi', 'portfolio', 'proto-dir', 'googleapis-dir'):
        ap.add_argument('--' + a, required=True)
    args = ap.parse_args()
    s = stack.Stack({'equity': args.equity, 'fixed_income': args.fi,
                     'portfolio': args.portfolio, 'gateway': args.gateway}, tap=T)
    s.start_all()
    m = grpc_modules(args.proto_dir, args.googleapis_dir)
    test_price_history(s, m)
    test_risk(s)
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
