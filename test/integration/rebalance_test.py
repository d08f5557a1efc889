#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""REST end-to-end test of POST /portfolios/{id}/rebalance (TAP on stdout).

    with_deps.sh --pg --redis -- rebalance_test.py --gateway G --equity E --fi F --portfolio P

Starts the platform with stack.py, creates equities with closes and bonds with quotes, and
portfolios with instrument and asset-class targets, then checks:

  * the proposal against an independent Python computation (effective targets with the
    FIXED_INCOME class target spread pro rata to market value, whole lots rounded down,
    drift, bands; bond prices = clean + 30/360 accrued, per unit of face = dirty / 100);
  * a proposal changes nothing; a stale version is 412 and changes nothing;
  * execute writes the proposal exactly: every holding moves by its trade (exact decimals),
    cash by the transactions' amounts (each quantity x price, bond / 100), sells before
    buys, the version goes up by one;
  * BAND leaves in-band positions alone; cashToInvest is deposited first and only buys;
  * prices from a cache the equity service could not refresh: the proposal is flagged
    stale, execute is refused (400, FAILED_PRECONDITION) and nothing changes;
  * bad input is 400 naming the field; impossible targets are FAILED_PRECONDITION.
"""
import argparse
import math
import os
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

T = stack.Tap()
S = None
AS_OF = '2024-03-04'       # a Monday; the closes and quotes are dated Friday 2024-03-01
PRICE_DAY = '2024-03-01'


def req(method, path, body=None):
    return S.req(method, path, body)


def must(r, what, status=200):
    if r.status != status:
        raise RuntimeError('%s: %r' % (what, r))
    return r.json


# ---- fixtures ---------------------------------------------------------------------------

EQUITIES = {  # name: (close, lot size)
    'E1': ('51.37', 1), 'E2': ('123.45', 10), 'E3': ('8.05', 100), 'E4': ('20.00', 1),
}
BONDS = {  # name: (coupon, clean price); semi-annual 30/360 US, coupons on Jan/Jul 15
    'B1': (0.04, '97.5'), 'B2': (0.05, '101.25'), 'B3': (0.03, '94.125'),
}


def accrued_30_360(coupon):
    """Accrued per 100 from the last coupon (2024-01-15) to AS_OF, 30/360 US."""
    d1, m1, y1 = 15, 1, 2024
    d2, m2, y2 = 4, 3, 2024
    days = 360 * (y2 - y1) + 30 * (m2 - m1) + (d2 - d1)
    return 100.0 * coupon * days / 360.0


def setup_instruments():
    ids, info = {}, {}
    for name, (close, lot) in EQUITIES.items():
        e = must(req('POST', '/equities', {'symbol': name + 'X', 'name': name + ' Corp',
                                           'exchange': 'XNYS', 'currency': 'USD',
                                           'sector': 'Tech', 'lotSize': lot}), 'equity')
        must(req('PUT', '/equities/%s/prices' % e['id'],
                 {'bars': [{'date': PRICE_DAY, 'open': close, 'high': close, 'low': close,
                            'close': close, 'volume': '1000'}]}), 'prices')
        ids[name] = e['id']
        info[name] = {'type': 'EQUITY', 'price': float(close), 'lot': float(lot)}
    for name, (coupon, clean) in BONDS.items():
        b = must(req('POST', '/bonds', {'name': name + ' 2030', 'issuer': 'UST',
                                        'currency': 'USD', 'face': '100',
                                        'couponRate': coupon, 'frequency': 2,
                                        'dayCount': 'THIRTY_360_US', 'issueDate': '2020-01-15',
                                        'maturityDate': '2030-01-15'}), 'bond')
        must(req('PUT', '/bonds/%s/quotes' % b['id'],
                 {'quotes': [{'date': PRICE_DAY, 'cleanPrice': clean}]}), 'quotes')
        ids[name] = b['id']
        info[name] = {'type': 'BOND', 'price': float(clean) + accrued_30_360(coupon),
                      'lot': 1.0}
    return ids, info


def new_portfolio(name, cash, targets, holdings, ids, info):
    """targets: [(name or class, weight)], holdings: [(name, quantity text)]."""
    tg = []
    for who, w in targets:
        if who in ids:
            tg.append({'instrumentType': info[who]['type'], 'instrumentId': ids[who],
                       'weight': w})
        else:
            tg.append({'assetClass': who, 'weight': w})
    p = must(req('POST', '/portfolios', {'name': name, 'baseCurrency': 'USD', 'cash': cash,
                                         'targets': tg}), 'portfolio ' + name)
    for who, q in holdings:
        must(req('POST', '/portfolios/%s/constituents' % p['id'],
                 {'instrumentType': info[who]['type'], 'instrumentId': ids[who],
                  'quantity': q}), 'constituent ' + who)
    return p['id']


def snapshot(pid):
    """(cash Decimal, version, {instrument id: quantity Decimal}, transaction count)."""
    p = must(req('GET', '/portfolios/' + pid), 'get')
    c = must(req('GET', '/portfolios/%s/constituents' % pid), 'constituents')
    t = must(req('GET', '/portfolios/%s/transactions?pageSize=1000' % pid), 'transactions')
    q = {x['instrumentId']: Decimal(x['quantity']) for x in c.get('constituents', [])}
    return Decimal(p['cash']), p['version'], q, len(t.get('transactions', []))


# ---- the independent computation --------------------------------------------------------

def expected_plan(cash, holdings, targets, ids, info, prices, mode='FULL', cti=0.0,
                  band_abs=0.05, band_rel=0.25):
    """holdings: {name: quantity}; targets as for new_portfolio; prices: {name: quoted price
    (equity close, bond dirty per 100)}.  Returns {name: row} and the totals."""
    names = list(dict.fromkeys(list(holdings) + [w for w, _ in targets if w in ids]))
    unit = {n: prices[n] / 100.0 if info[n]['type'] == 'BOND' else prices[n] for n in names}
    q = {n: float(holdings.get(n, 0)) for n in names}
    tgt = {n: 0.0 for n in names}
    inst = {w for w, _ in targets if w in ids}
    for who, w in targets:
        if who in ids:
            tgt[who] = w
    for who, w in targets:
        if who in ids or who == 'CASH':
            continue
        cls_type = 'BOND' if who == 'FIXED_INCOME' else 'EQUITY'
        members = [n for n in names if info[n]['type'] == cls_type and n not in inst]
        value = math.fsum(q[n] * unit[n] for n in members)
        for n in members:
            tgt[n] += w * (q[n] * unit[n] / value if value > 0 else 1.0 / len(members))
    V = math.fsum([q[n] * unit[n] for n in names] + [cash, cti])
    rows, trade = {}, {}
    for n in names:
        lot = info[n]['lot']
        w = q[n] * unit[n] / V
        d = w - tgt[n]
        rel = d / tgt[n] if tgt[n] > 0 else 0.0
        breach = abs(d) > band_abs or (abs(rel) > band_rel if tgt[n] > 0 else q[n] > 0)
        tq = math.floor(tgt[n] * V / (unit[n] * lot)) * lot
        t = tq - q[n] if (mode == 'FULL' or breach) else 0.0
        if cti > 0 and t < 0:
            t = 0.0
        trade[n] = t
        rows[n] = {'target': tgt[n], 'currentWeight': w, 'driftAbs': d, 'driftRel': rel,
                   'breach': breach, 'targetQuantity': tq}
    # Sells first; buys that cost more than the cash there is are scaled down pro rata
    # and rounded down to whole lots (portfolio.proto RebalanceTrade.trade).
    def cash_after():
        return math.fsum([cash, cti] + [-trade[n] * unit[n] for n in names])
    pc = cash_after()
    if pc < 0:
        cost = math.fsum(trade[n] * unit[n] for n in names if trade[n] > 0)
        s = (pc + cost) / cost if pc + cost > 0 else 0.0
        for n in names:
            if trade[n] > 0:
                trade[n] = math.floor(s * trade[n] / info[n]['lot']) * info[n]['lot']
        pc = cash_after()
        for n in reversed(names):
            while pc < 0 and trade[n] > 0:
                trade[n] = trade[n] - info[n]['lot'] if trade[n] > info[n]['lot'] else 0.0
                pc = cash_after()
    for n in names:
        rows[n].update(trade=trade[n], notional=trade[n] * unit[n],
                       postWeight=(q[n] + trade[n]) * unit[n] / V)
    return rows, V, pc


def unit_cost(prices, n, info):
    """Cash one lot of |n| costs."""
    p = prices[n] / 100.0 if info[n]['type'] == 'BOND' else prices[n]
    return p * info[n]['lot']


def close(a, b, tol):
    return isinstance(a, (int, float)) and abs(a - b) <= tol


def check_proposal(desc, resp, rows, V, pc, ids, version):
    errs = []
    by_id = {t['instrumentId']: t for t in resp.get('trades', [])}
    if set(by_id) != {ids[n] for n in rows}:
        errs.append('instruments %r, want %r' % (sorted(by_id), sorted(ids[n] for n in rows)))
    for n, w in rows.items():
        g = by_id.get(ids[n], {})
        for k in ('target', 'currentWeight', 'driftAbs', 'driftRel'):
            if not close(g.get(k), w[k], 1e-12 * max(1.0, abs(w[k]))):
                errs.append('%s.%s: %r, want %r' % (n, k, g.get(k), w[k]))
        for k in ('targetQuantity', 'trade'):
            if g.get(k) != w[k]:
                errs.append('%s.%s: %r, want %r' % (n, k, g.get(k), w[k]))
        if g.get('breach') != w['breach']:
            errs.append('%s.breach: %r' % (n, g.get('breach')))
        if not close(g.get('notional'), w['notional'], 1e-12 * V):
            errs.append('%s.notional: %r, want %r' % (n, g.get('notional'), w['notional']))
        if not close(resp.get('postTradeWeights', {}).get(ids[n]), w['postWeight'], 1e-12):
            errs.append('%s post-trade weight' % n)
    if not close(resp.get('totalValue'), V, 1e-12 * V):
        errs.append('totalValue %r, want %r' % (resp.get('totalValue'), V))
    if not close(resp.get('postTradeCash'), pc, 1e-12 * V):
        errs.append('postTradeCash %r, want %r' % (resp.get('postTradeCash'), pc))
    if resp.get('version') != version or resp.get('asOf') != AS_OF:
        errs.append('version/asOf %r %r' % (resp.get('version'), resp.get('asOf')))
    T.ok(not errs, desc, '\n'.join(errs[:30]))


def prices_of(resp, ids, info):
    """The quoted prices the proposal used, after checking each against the fixtures: an
    equity's close exactly, a bond's clean + accrued to the ledger's 10 decimals."""
    out, errs = {}, []
    by_id = {t['instrumentId']: t for t in resp.get('trades', [])}
    for n, i in ids.items():
        if i in by_id:
            got = by_id[i]['price']
            if not close(got, info[n]['price'], 1e-9 if info[n]['type'] == 'BOND' else 0.0):
                errs.append('%s price %r, want %r' % (n, got, info[n]['price']))
            if by_id[i]['lotSize'] != info[n]['lot']:
                errs.append('%s lot %r' % (n, by_id[i]['lotSize']))
            out[n] = got
    T.ok(not errs, 'prices: equity closes, bond dirty = clean + 30/360 accrued; lot sizes',
         '\n'.join(errs))
    return out


def check_execution(desc, pid, before, prop, res, ids, info, deposit=None):
    """Holdings moved by exactly the proposal's trades, cash by the amounts written."""
    cash0, v0, q0, n0 = before
    cash1, v1, q1, n1 = snapshot(pid)
    txs = res.get('transactions', [])
    trades = {t['instrumentId']: t for t in prop['trades'] if t['trade'] != 0}
    T.ok(res.get('executed') is True and res.get('version') == v0 + 1 and v1 == v0 + 1,
         desc + ': executed, version %d -> %d' % (v0, v1), res)
    T.ok(n1 == n0 + len(txs) and len(txs) == len(trades) + (deposit is not None),
         desc + ': one transaction per trade%s (%d)' % (' plus the deposit' if deposit else '',
                                                       len(txs)), txs)
    kinds = [t['type'] for t in txs]
    order = (['DEPOSIT'] if deposit else []) + sorted(
        [k for k in kinds if k in ('SELL', 'BUY')], key=lambda k: k != 'SELL')
    T.ok(kinds == order, desc + ': deposit, then sells, then buys', kinds)
    errs = []
    flow = Decimal(0)
    for t in txs:
        if t['type'] == 'DEPOSIT':
            if t['amount'] != deposit and Decimal(t['amount']) != Decimal(deposit):
                errs.append('deposit %r' % t['amount'])
            flow += Decimal(t['amount'])
            continue
        if t['date'] != AS_OF:
            errs.append('date %r' % t['date'])
        tr = trades.get(t['instrumentId'])
        if tr is None:
            errs.append('unexpected %r' % t)
            continue
        qty = Decimal(t['quantity'])
        if qty != Decimal(repr(abs(tr['trade']))) or (t['type'] == 'BUY') != (tr['trade'] > 0):
            errs.append('%s %s of %r for trade %r' % (t['type'], t['quantity'],
                                                      t['instrumentId'], tr['trade']))
        if abs(float(t['price']) - tr['price']) > 0:
            errs.append('price %s vs %r' % (t['price'], tr['price']))
        amount = qty * Decimal(t['price']) / (100 if tr['instrumentType'] == 'BOND' else 1)
        if Decimal(t['amount']) != amount:
            errs.append('amount %s != %s' % (t['amount'], amount))
        flow += Decimal(t['amount']) * (1 if t['type'] == 'SELL' else -1)
    for i, q in q0.items():
        want = q + Decimal(repr(trades[i]['trade'])) if i in trades else q
        if q1.get(i, Decimal(0)) != want:
            errs.append('quantity of %s: %s, want %s' % (i, q1.get(i), want))
    for i, tr in trades.items():
        if i not in q0 and q1.get(i) != Decimal(repr(tr['trade'])):
            errs.append('new holding %s: %s, want %r' % (i, q1.get(i), tr['trade']))
    if cash1 != cash0 + flow:
        errs.append('cash %s, want %s' % (cash1, cash0 + flow))
    if abs(float(cash1) - prop['postTradeCash']) > 1e-6:
        errs.append('cash %s vs proposal %r' % (cash1, prop['postTradeCash']))
    if cash1 < 0:
        errs.append('negative cash')
    T.ok(not errs, desc + ': every holding moved by its trade, cash by the amounts',
         '\n'.join(errs[:30]))


# ---- scenarios --------------------------------------------------------------------------

def scenario_full(ids, info):
    targets = [('E1', 0.25), ('E2', 0.20), ('B1', 0.15), ('FIXED_INCOME', 0.20)]
    holdings = [('E1', '1000'), ('E4', '500'), ('B2', '30000'), ('B3', '10000'), ('E3', '0')]
    pid = new_portfolio('full', '250000', targets, holdings, ids, info)
    before = snapshot(pid)
    r = req('POST', '/portfolios/%s/rebalance' % pid, {'asOf': AS_OF})
    T.ok(r.status == 200 and r.json.get('executed') is False and
         r.json.get('transactions') == [] and r.json.get('stale') is False,
         'FULL: proposal (execute false) is 200, not executed, not stale', r)
    if r.status != 200:
        return
    prop = r.json
    prices = prices_of(prop, ids, info)
    rows, V, pc = expected_plan(250000.0, {n: float(q) for n, q in holdings}, targets, ids,
                                info, prices)
    check_proposal('FULL: proposal equals the independent computation (class target spread '
                   'pro rata over B2/B3, untargeted E4 sold, E2 bought from nothing)',
                   prop, rows, V, pc, ids, before[1])
    T.ok(rows['E4']['trade'] == -500 and rows['E2']['trade'] > 0 and rows['E3']['trade'] == 0,
         'FULL: the scenario sells E4 out, buys E2, leaves E3 at 0', rows)
    T.ok(snapshot(pid) == before, 'FULL: a proposal changes nothing')

    r = req('POST', '/portfolios/%s/rebalance' % pid,
            {'asOf': AS_OF, 'execute': True, 'version': before[1] - 1})
    T.ok(r.status == 412 and stack.is_error_body(r, 9) and 'version' in r.json['message'],
         'FULL: execute with a stale version is 412', r)
    T.ok(snapshot(pid) == before, 'FULL: ... and changes nothing')

    r = req('POST', '/portfolios/%s/rebalance' % pid,
            {'asOf': AS_OF, 'execute': True, 'version': before[1]})
    T.ok(r.status == 200, 'FULL: execute with the current version is 200', r)
    if r.status != 200:
        return
    res = r.json
    same = [k for k in ('trades', 'totalValue', 'postTradeCash', 'postTradeWeights')
            if res.get(k) != prop.get(k)]
    T.ok(not same, 'FULL: the executed plan is the proposal', same)
    check_execution('FULL', pid, before, prop, res, ids, info)

    # Right after execution every position is within its bands (FULL may still move a lot
    # or so: the class target's pro-rata split follows the new holdings).
    after = snapshot(pid)
    r = req('POST', '/portfolios/%s/rebalance' % pid, {'asOf': AS_OF, 'mode': 'BAND'})
    T.ok(r.status == 200 and not any(t['breach'] or t['trade'] for t in r.json['trades']),
         'FULL: after execution nothing breaches, BAND trades nothing', r)
    r = req('POST', '/portfolios/%s/rebalance' % pid,
            {'asOf': AS_OF, 'mode': 'BAND', 'execute': True, 'version': after[1]})
    T.ok(r.status == 200 and r.json.get('executed') is True and
         r.json.get('transactions') == [] and r.json.get('version') == after[1] and
         snapshot(pid) == after, 'FULL: executing an empty plan writes nothing, keeps the version',
         r)


def scenario_band(ids, info):
    targets = [('E1', 0.30), ('E2', 0.30), ('E3', 0.20)]
    holdings = [('E1', '500'), ('E2', '100'), ('E3', '2000')]
    pid = new_portfolio('band', '20000', targets, holdings, ids, info)
    before = snapshot(pid)
    r = req('POST', '/portfolios/%s/rebalance' % pid, {'asOf': AS_OF, 'mode': 'BAND'})
    T.ok(r.status == 200, 'BAND: proposal is 200', r)
    if r.status != 200:
        return
    prop = r.json
    prices = prices_of(prop, ids, info)
    rows, V, pc = expected_plan(20000.0, {n: float(q) for n, q in holdings}, targets, ids,
                                info, prices, mode='BAND')
    check_proposal('BAND: proposal equals the independent computation', prop, rows, V, pc,
                   ids, before[1])
    inband = [n for n in rows if not rows[n]['breach']]
    T.ok(sorted(inband) == ['E1', 'E3'] and rows['E2']['breach'] and rows['E2']['trade'] > 0,
         'BAND: the scenario has E1 and E3 in band, E2 breached', rows)
    r = req('POST', '/portfolios/%s/rebalance' % pid,
            {'asOf': AS_OF, 'mode': 'BAND', 'execute': True, 'version': before[1]})
    T.ok(r.status == 200, 'BAND: execute is 200', r)
    if r.status != 200:
        return
    check_execution('BAND', pid, before, prop, r.json, ids, info)
    after = snapshot(pid)
    T.ok(all(after[2][ids[n]] == before[2][ids[n]] for n in inband),
         'BAND: in-band positions untouched')
    # Tighter bands make E1 and E3 breach too.
    r = req('POST', '/portfolios/%s/rebalance' % pid,
            {'asOf': AS_OF, 'mode': 'BAND', 'bandAbs': 0, 'bandRel': 0})
    T.ok(r.status == 200 and all(t['breach'] for t in r.json['trades']),
         'BAND: bandAbs/bandRel are honoured', r)


def scenario_cash_to_invest(ids, info):
    targets = [('E1', 0.5), ('E2', 0.4)]
    holdings = [('E1', '1500'), ('E2', '50')]
    pid = new_portfolio('cti', '1000', targets, holdings, ids, info)
    before = snapshot(pid)
    body = {'asOf': AS_OF, 'cashToInvest': '20000.50'}
    r = req('POST', '/portfolios/%s/rebalance' % pid, body)
    T.ok(r.status == 200, 'cashToInvest: proposal is 200', r)
    if r.status != 200:
        return
    prop = r.json
    prices = prices_of(prop, ids, info)
    rows, V, pc = expected_plan(1000.0, {n: float(q) for n, q in holdings}, targets, ids, info,
                                prices, cti=20000.5)
    check_proposal('cashToInvest: proposal equals the independent computation', prop, rows, V,
                   pc, ids, before[1])
    full = req('POST', '/portfolios/%s/rebalance' % pid, {'asOf': AS_OF}).json
    T.ok(any(t['trade'] < 0 for t in full['trades']) and
         all(t['trade'] >= 0 for t in prop['trades']) and rows['E2']['trade'] > 0,
         'cashToInvest: buys only (without it, E1 would be sold)', prop)
    e2 = rows['E2']
    T.ok(0 < e2['trade'] < e2['targetQuantity'] - 50 and 0 <= pc < unit_cost(prices, 'E2', info),
         'cashToInvest: the buy of E2 is scaled to the cash there is, leaving less than a lot',
         rows)
    r = req('POST', '/portfolios/%s/rebalance' % pid, dict(body, execute=True,
                                                          version=before[1]))
    T.ok(r.status == 200, 'cashToInvest: execute is 200', r)
    if r.status != 200:
        return
    check_execution('cashToInvest', pid, before, prop, r.json, ids, info, deposit='20000.50')
    T.ok(snapshot(pid)[2][ids['E1']] == Decimal(1500), 'cashToInvest: E1 not sold')


def scenario_stale(ids, info):
    pid = new_portfolio('stale', '10000', [('E4', 0.5)], [('E4', '100')], ids, info)
    r = req('POST', '/portfolios/%s/rebalance' % pid, {'asOf': AS_OF})
    T.ok(r.status == 200 and r.json['stale'] is False, 'stale: fresh proposal', r)
    before = snapshot(pid)
    # Outdate the cached close the way a price.updated event does (a new generation), with
    # the equity service down so that it cannot be refetched.
    stack.redis_cli('INCR', 'pf:g:E:' + ids['E4'])
    S.stop('equity')
    try:
        r = req('POST', '/portfolios/%s/rebalance' % pid, {'asOf': AS_OF})
        T.ok(r.status == 200 and r.json.get('stale') is True and
             any(t['trade'] != 0 for t in r.json['trades']),
             'stale: the proposal is still given, flagged stale', r)
        r = req('POST', '/portfolios/%s/rebalance' % pid,
                {'asOf': AS_OF, 'execute': True, 'version': before[1]})
        T.ok(r.status == 400 and stack.is_error_body(r, 9) and 'stale' in r.json['message'],
             'stale: execute is refused (FAILED_PRECONDITION)', r)
        T.ok(snapshot(pid) == before, 'stale: ... and changes nothing')
    finally:
        S.restart('equity')
    r = req('POST', '/portfolios/%s/rebalance' % pid,
            {'asOf': AS_OF, 'execute': True, 'version': before[1]})
    T.ok(r.status == 200 and r.json.get('stale') is False and r.json.get('executed') is True,
         'stale: with the equity service back, execute works', r)


def scenario_errors(ids, info):
    pid = new_portfolio('errors', '1000', [('E1', 0.5)], [], ids, info)
    path = '/portfolios/%s/rebalance' % pid
    for body, field in (({'execute': True}, 'version'),
                        ({'version': -1}, 'version'),
                        ({'cashToInvest': '-5'}, 'cashToInvest'),
                        ({'cashToInvest': '1e3'}, 'cashToInvest'),
                        ({'bandAbs': -0.1}, 'bandAbs'),
                        ({'bandRel': 'NaN'}, 'bandRel'),
                        ({'asOf': '2024-02-30'}, 'asOf'),
                        ({'mode': 'HALF'}, 'mode')):
        r = req('POST', path, body)
        T.ok(r.status == 400 and stack.is_error_body(r, 3, field),
             'rebalance %s: 400 naming %s' % (body, field), r)
    r = req('POST', '/portfolios/00000000-0000-4000-8000-00000000abcd/rebalance', {})
    T.ok(r.status == 404, 'rebalance of an unknown portfolio: 404', r)
    r = req('POST', '/portfolios/not-a-uuid/rebalance', {})
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'id'), 'rebalance, bad id: 400', r)
    nt = new_portfolio('no-targets', '1000', [], [('E1', '10')], ids, info)
    r = req('POST', '/portfolios/%s/rebalance' % nt, {'asOf': AS_OF})
    T.ok(r.status == 400 and stack.is_error_body(r, 9) and 'no targets' in r.json['message'],
         'no targets: FAILED_PRECONDITION', r)
    nc = new_portfolio('no-class-member', '1000', [('FIXED_INCOME', 0.5)], [('E1', '10')], ids,
                       info)
    r = req('POST', '/portfolios/%s/rebalance' % nc, {'asOf': AS_OF})
    T.ok(r.status == 400 and stack.is_error_body(r, 9) and 'FIXED_INCOME' in r.json['message'],
         'a class target with no instrument of the class: FAILED_PRECONDITION', r)
    r = req('POST', '/portfolios/%s/rebalance' % nc, {'asOf': '2020-01-02'})
    T.ok(r.status == 400 and stack.is_error_body(r, 9) and 'price' in r.json['message'],
         'a holding with no price as of asOf: FAILED_PRECONDITION', r)


def main():
    global S
    ap = argparse.ArgumentParser()
    ap.add_argument('--gateway', required=True)
    ap.add_argument('--equity', required=True)
    ap.add_argument('--fi', required=True)
    ap.add_argument('--portfolio', required=True)
    args = ap.parse_args()
    if not os.environ.get('TEST_PG_HOST'):
        print('1..0 # SKIP run through with_deps.sh --pg --redis')
        return 77
    S = stack.Stack({'equity': args.equity, 'fixed_income': args.fi,
                     'portfolio': args.portfolio, 'gateway': args.gateway}, tap=T)
    S.start_all()
    ids, info = setup_instruments()
    for scenario in (scenario_full, scenario_band, scenario_cash_to_invest, scenario_errors,
                     scenario_stale):
        try:
            scenario(ids, info)
        except Exception as e:  # a broken fixture fails the scenario, not the whole run
            T.ok(False, '%s: %s' % (scenario.__name__, e))
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
