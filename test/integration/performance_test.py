#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""GET /portfolios/{id}/performance end to end (TAP on stdout), against an independent
numpy/scipy computation of the same ledger and prices.

Run by meson through with_deps.sh (a throwaway PostgreSQL and Redis):

    with_deps.sh --pg --redis -- performance_test.py --gateway G --equity E --fi F \\
        --portfolio P

A year (2023) of daily equity closes (with holidays missing: prices carried forward) and
bond quotes loaded through REST, a portfolio with deposits, withdrawals (one on a
Saturday), buys and sells of two equities and a bond, a dividend, a coupon and a fee, and
a benchmark of 50% equity, 30% bond, 20% cash.  Checks every figure of the response (values,
flows, daily returns, TWR, MWR, annualised return and volatility, Sharpe, Sortino, max
drawdown with dates, Calmar, beta, tracking error, information ratio, benchmark return,
calendar-period returns, Brinson-Fachler and BHB attribution linked with Carino) at the
ANALYTICS.md tolerances; the effects sum to the active return to 1e-12; a second request
(served from the stored snapshots) answers the same; a back-dated transaction and a changed
past price invalidate the snapshots; and the degenerate cases (empty period, a portfolio
without flows, zero starting value, no benchmark, a flat series).
"""
import argparse
import json
import math
import os
import random
import sys
import time
import uuid
from datetime import date, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import brentq  # noqa: E402

T = stack.Tap()
RF = 0.02
RFD = (1 + RF) ** (1 / 252) - 1
HOLIDAYS = {'2023-01-16', '2023-02-20', '2023-04-07', '2023-05-29', '2023-07-04',
            '2023-09-04', '2023-11-23', '2023-12-25'}
FROM, TO = '2023-01-03', '2023-12-29'


def d2s(d):
    return d.isoformat()


def s2d(s):
    return date.fromisoformat(s)


def weekdays(a, b):
    out, d = [], s2d(a)
    while d <= s2d(b):
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def prev_weekday(d):
    d -= timedelta(days=1)
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return d


def close_to(got, want, rel, absol=0.0):
    if got is None or want is None:
        return False
    return abs(got - want) <= max(rel * abs(want), absol)


def carry(prices, d):
    """Last price on or before d from a sorted [(date, price)] list (None if none)."""
    last = None
    for pd, p in prices:
        if pd <= d:
            last = p
        else:
            break
    return last


# ---- the independent computation ------------------------------------------------------

def reference(ledger, eq_px, eq_div, bond_dirty, bond_cf, frm, to, bench=None, model='BF'):
    """Everything GET /performance answers, from the ledger and prices (plain Python/numpy)."""
    days = weekdays(frm, to)
    cls_of = {}
    for iid in eq_px:
        cls_of[iid] = 0
    for iid in bond_dirty:
        cls_of[iid] = 1
    rows = []
    qty = {}
    cash = 0.0
    ti = 0
    lg = sorted(ledger, key=lambda x: (x['date'], x['n']))
    for i, d in enumerate(days):
        prev = prev_weekday(d)
        r = dict(value=0.0, cash=0.0, eqv=0.0, fiv=0.0, flow=0.0, cf=[0.0, 0.0, 0.0])
        while ti < len(lg) and s2d(lg[ti]['date']) <= d:
            x = lg[ti]
            ti += 1
            fl = i > 0 or s2d(x['date']) > prev
            t, a = x['type'], float(x.get('amount', 0) or 0)
            iid = x.get('instrumentId')
            if t in ('BUY', 'SELL'):
                q = float(x['quantity'])
                p = float(x['price'])
                if 'amount' not in x:
                    a = q * p / (100.0 if cls_of[iid] == 1 else 1.0)
            sg = {'DEPOSIT': 1, 'WITHDRAWAL': -1}.get(t)
            if sg is not None:
                cash += sg * a
                if fl:
                    r['flow'] += sg * a
                    r['cf'][2] += sg * a
            elif t == 'FEE':
                cash -= a
            elif t in ('BUY', 'SELL'):
                sg = 1 if t == 'BUY' else -1
                cash -= sg * a
                qty[iid] = qty.get(iid, 0.0) + sg * q
                if fl:
                    r['cf'][cls_of[iid]] += sg * a
                    r['cf'][2] -= sg * a
            elif t in ('TRANSFER_IN', 'TRANSFER_OUT'):
                # in kind, an external flow at market value at the start of the day: the
                # previous weekday's price
                sg = 1 if t == 'TRANSFER_IN' else -1
                q = float(x['quantity'])
                qty[iid] = qty.get(iid, 0.0) + sg * q
                if fl:
                    src = eq_px if cls_of[iid] == 0 else bond_dirty
                    p = carry(src[iid], prev)
                    if p is None:
                        p = carry(src[iid], d)
                    mv = sg * (q * p if cls_of[iid] == 0 else q / 100.0 * p)
                    r['flow'] += mv
                    r['cf'][cls_of[iid]] += mv
            elif t in ('DIVIDEND', 'COUPON'):
                cash += a
                if fl:
                    r['cf'][cls_of[iid]] -= a
                    r['cf'][2] += a
        r['cash'] = cash
        for iid, q in qty.items():
            if q == 0:
                continue
            if cls_of[iid] == 0:
                r['eqv'] += q * carry(eq_px[iid], d)
            else:
                r['fiv'] += q / 100.0 * carry(bond_dirty[iid], d)
        r['value'] = r['eqv'] + r['fiv'] + r['cash']
        rows.append(r)
    s = 0
    while s < len(days) and rows[s]['value'] == 0 and not (
            s + 1 < len(days) and rows[s + 1]['flow'] != 0):
        s += 1
    days, rows = days[s:], rows[s:]
    n = len(days) - 1
    V = np.array([r['value'] for r in rows])
    CF = np.array([r['flow'] for r in rows])
    ret = V[1:] / (V[:-1] + CF[1:]) - 1
    out = {'from': d2s(days[0]), 'to': d2s(days[-1]), 'values': V, 'returns': ret,
           'flows': [(d2s(days[t]), CF[t]) for t in range(1, len(days)) if CF[t] != 0]}
    out['twr'] = float(np.prod(1 + ret) - 1)
    out['annualizedTwr'] = (1 + out['twr']) ** (365.0 / (days[-1] - days[0]).days) - 1
    ex = ret - RFD
    out['annualizedReturn'] = float(np.prod(1 + ret) ** (252.0 / n) - 1)
    out['annualizedVolatility'] = float(np.std(ret, ddof=1) * math.sqrt(252))
    sd_ex = np.std(ex, ddof=1)
    out['sharpe'] = float(np.mean(ex) / sd_ex * math.sqrt(252)) if sd_ex > 0 else None
    dd = math.sqrt(np.sum(np.minimum(ex, 0) ** 2) / n) * math.sqrt(252)
    out['sortino'] = float(np.mean(ex) * 252 / dd) if dd > 0 else None
    w = np.concatenate([[1.0], np.cumprod(1 + ret)])
    peak = np.maximum.accumulate(w)
    ddn = 1 - w / peak
    trough = int(np.argmax(ddn))
    out['maxDrawdown'] = float(ddn[trough])
    if out['maxDrawdown'] > 0:
        pk = max(j for j in range(trough + 1) if w[j] == peak[trough])
        rec = [j for j in range(trough + 1, len(w)) if w[j] >= w[pk]]
        out['peak'], out['trough'] = d2s(days[pk]), d2s(days[trough])
        out['recovery'] = d2s(days[rec[0]]) if rec else None
        out['calmar'] = out['annualizedReturn'] / out['maxDrawdown']
    # MWR
    fl = []
    if V[0] != 0:
        fl.append((days[0], -V[0]))
    fl += [(days[t], -CF[t]) for t in range(1, len(days)) if CF[t] != 0]
    fl.append((days[-1], V[-1]))

    def npv(rate):
        return sum(a / (1 + rate) ** ((d - fl[0][0]).days / 365.0) for d, a in fl)
    try:
        out['mwr'] = brentq(npv, -0.99, 10, xtol=1e-15, rtol=1e-15, maxiter=500)
    except ValueError:
        out['mwr'] = None
    # periods ending at `to`
    dts = days

    def period(start):
        if start < dts[0]:
            return None
        g = 1.0
        for t in range(1, len(dts)):
            if dts[t] > start:
                g *= 1 + ret[t - 1]
        return g - 1
    y, m = dts[-1].year, dts[-1].month
    qm = (m - 1) // 3 * 3 + 1
    out['periods'] = {
        'MTD': period(date(y, m, 1) - timedelta(days=1)),
        'QTD': period(date(y, qm, 1) - timedelta(days=1)),
        'YTD': period(date(y, 1, 1) - timedelta(days=1)),
        '1Y': period(date(y - 1, m, min(dts[-1].day, 28 if m == 2 else 31))),
        'SINCE_INCEPTION': period(s2d(min(x['date'] for x in ledger))),
    }
    if bench is None:
        return out
    # benchmark: component total returns on the same weekdays, daily mix, cash at rf_d
    allw = weekdays(d2s(days[0]), d2s(days[-1]))

    def comp_returns(kind, iid):
        r = []
        for t in range(1, len(allw)):
            a, b = allw[t - 1], allw[t]
            if kind == 'EQUITY':
                p0, p1 = carry(eq_px[iid], a), carry(eq_px[iid], b)
                inc = sum(v for dd_, v in eq_div.get(iid, []) if a < dd_ <= b)
            else:
                p0, p1 = carry(bond_dirty[iid], a), carry(bond_dirty[iid], b)
                # income on the quote dates in (a, b]: the coupons since the previous quote
                inc = 0.0
                qd = [qd_ for qd_, _ in bond_dirty[iid] if a < qd_ <= b]
                if qd:
                    lastq = max(qd_ for qd_, _ in bond_dirty[iid] if qd_ <= a)
                    inc = sum(v for cd, v in bond_cf[iid] if lastq < cd <= qd[-1])
            r.append((p1 + inc) / p0 - 1)
        return np.array(r)
    rb = np.zeros(n)
    rbc = [np.zeros(n), np.zeros(n), np.full(n, RFD)]
    wb = [0.0, 0.0, 0.0]
    cash_w = 1.0
    for c in bench:
        if c.get('kind') is None:
            wb[2] += c['weight']
            continue
        cr = comp_returns(c['kind'], c['id'])
        k = 0 if c['kind'] == 'EQUITY' else 1
        rb += c['weight'] * cr
        cash_w -= c['weight']
        wb[k] += c['weight']
        rbc[k] = rbc[k] + c['weight'] * cr
    rb += cash_w * RFD
    for k in (0, 1):
        rbc[k] = rbc[k] / wb[k] if wb[k] > 0 else np.full(n, RFD)
    out['benchmarkReturn'] = float(np.prod(1 + rb) - 1)
    out['beta'] = float(np.cov(ret, rb, ddof=1)[0, 1] / np.var(rb, ddof=1))
    out['trackingError'] = float(np.std(ret - rb, ddof=1) * math.sqrt(252))
    out['informationRatio'] = float(np.mean(ret - rb) * 252 / out['trackingError'])
    # attribution per day, Carino-linked
    eff = np.zeros((n, 3, 3))
    Rp, Rb = np.zeros(n), np.zeros(n)
    for t in range(n):
        a, b = rows[t], rows[t + 1]
        den = a['value'] + b['flow']
        dc = [a['eqv'] + b['cf'][0], a['fiv'] + b['cf'][1], a['cash'] + b['cf'][2]]
        vc = [b['eqv'], b['fiv'], b['cash']]
        wp = [x / den for x in dc]
        rp = [vc[k] / dc[k] - 1 if dc[k] != 0 else 0.0 for k in range(3)]
        rbt = [rbc[k][t] for k in range(3)]
        Rp[t] = sum(wp[k] * rp[k] for k in range(3))
        Rb[t] = sum(wb[k] * rbt[k] for k in range(3))
        for k in range(3):
            dw = wp[k] - wb[k]
            alloc = dw * (rbt[k] - Rb[t]) if model == 'BF' else dw * rbt[k]
            eff[t, k] = [alloc, wb[k] * (rp[k] - rbt[k]), dw * (rp[k] - rbt[k])]
    R, B = np.prod(1 + Rp) - 1, np.prod(1 + Rb) - 1

    def kf(x, y):
        return (math.log(1 + x) - math.log(1 + y)) / (x - y) if x != y else 1 / (1 + x)
    k = kf(R, B)
    f = np.array([kf(Rp[t], Rb[t]) / k for t in range(n)])
    out['attr'] = {'R': R, 'B': B, 'classes': (f[:, None, None] * eff).sum(axis=0)}
    return out


# ---- checks ---------------------------------------------------------------------------

def check_all(tag, got, ref, bench=True):
    j = got
    T.ok(j.get('from') == ref['from'] and j.get('to') == ref['to'],
         '%s: from/to are the base and last weekday' % tag, (j.get('from'), j.get('to'), ref))
    vals = [v.get('value', 0.0) for v in j.get('values', [])]
    T.ok(len(vals) == len(ref['values']) and
         all(close_to(a, b, 1e-12, 1e-9) for a, b in zip(vals, ref['values'])),
         '%s: %d daily values match to 1e-12' % (tag, len(ref['values'])),
         list(zip(vals, ref['values']))[:5])
    rets = [v.get('value', 0.0) for v in j.get('dailyReturns', [])]
    T.ok(len(rets) == len(ref['returns']) and
         all(abs(a - b) <= 1e-12 for a, b in zip(rets, ref['returns'])),
         '%s: daily returns match to 1e-12' % tag,
         max((abs(a - b) for a, b in zip(rets, ref['returns'])), default=None))
    fl = [(f['date'], f.get('amount', 0.0)) for f in j.get('flows', [])]
    T.ok(len(fl) == len(ref['flows']) and all(a[0] == b[0] and close_to(a[1], b[1], 1e-12)
                                              for a, b in zip(fl, ref['flows'])),
         '%s: flows (dated on their business day)' % tag, (fl, ref['flows']))
    T.ok(abs(j.get('twr', 0.0) - ref['twr']) <= 1e-12, '%s: TWR' % tag, (j.get('twr'), ref['twr']))
    for k in ('annualizedTwr', 'annualizedReturn', 'annualizedVolatility', 'sharpe', 'sortino',
              'maxDrawdown', 'calmar'):
        T.ok(close_to(j.get(k, 0.0), ref[k], 1e-9, 1e-15), '%s: %s' % (tag, k),
             (j.get(k), ref[k]))
    T.ok(j.get('maxDrawdownPeakDate') == ref['peak'] and
         j.get('maxDrawdownTroughDate') == ref['trough'] and
         (j.get('maxDrawdownRecoveryDate') or None) == ref['recovery'],
         '%s: drawdown dates' % tag, (j.get('maxDrawdownPeakDate'),
                                      j.get('maxDrawdownTroughDate'),
                                      j.get('maxDrawdownRecoveryDate'), ref['peak'],
                                      ref['trough'], ref['recovery']))
    T.ok(close_to(j.get('mwr'), ref['mwr'], 1e-9, 1e-12), '%s: MWR (XIRR)' % tag,
         (j.get('mwr'), ref['mwr']))
    pr = {p['period']: p for p in j.get('periodReturns', [])}
    okp = set(pr) == set(ref['periods'])
    for name, want in ref['periods'].items():
        g = pr.get(name, {}).get('twr')
        okp = okp and ((want is None and g is None) or
                       (want is not None and g is not None and abs(g - want) <= 1e-12))
    T.ok(okp, '%s: period returns MTD/QTD/YTD/1Y/SINCE_INCEPTION' % tag, (pr, ref['periods']))
    T.ok('NaN' not in json.dumps(j) and 'Infinity' not in json.dumps(j),
         '%s: no NaN or Infinity' % tag)
    if not bench:
        T.ok(all(k not in j for k in ('beta', 'trackingError', 'informationRatio',
                                      'benchmarkReturn', 'attribution')),
             '%s: no benchmark: beta, TE, IR, benchmark return and attribution absent' % tag, j)
        return
    for k in ('benchmarkReturn',):
        T.ok(abs(j.get(k, 0.0) - ref[k]) <= 1e-12, '%s: %s' % (tag, k), (j.get(k), ref[k]))
    for k in ('beta', 'trackingError', 'informationRatio'):
        T.ok(close_to(j.get(k), ref[k], 1e-9), '%s: %s' % (tag, k), (j.get(k), ref[k]))
    a = j.get('attribution', {})
    tot = a.get('totalAllocation', 0.0) + a.get('totalSelection', 0.0) + \
        a.get('totalInteraction', 0.0)
    active = j.get('twr', 0.0) - j.get('benchmarkReturn', 0.0)
    T.ok(abs(tot - active) <= 1e-12,
         '%s: allocation + selection + interaction = TWR - benchmark return (1e-12)' % tag,
         (tot, active, tot - active))
    T.ok(abs(a.get('activeReturn', 0.0) - active) <= 1e-12 and
         abs(a.get('portfolioReturn', 0.0) - ref['twr']) <= 1e-12 and
         abs(a.get('benchmarkReturn', 0.0) - ref['benchmarkReturn']) <= 1e-12,
         '%s: attribution portfolio/benchmark/active returns' % tag, a)
    cls = {c['name']: c for c in a.get('classes', [])}
    oka = list(cls) == ['EQUITY', 'FIXED_INCOME', 'CASH']
    for k, name in enumerate(('EQUITY', 'FIXED_INCOME', 'CASH')):
        for e, field in enumerate(('allocation', 'selection', 'interaction')):
            g = cls.get(name, {}).get(field, 0.0)
            oka = oka and close_to(g, ref['attr']['classes'][k][e], 1e-9, 1e-13)
    T.ok(oka, '%s: per-class effects match the independent Carino-linked Brinson' % tag,
         (cls, ref['attr']['classes']))


# ---- main -----------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    for a in ('gateway', 'equity', 'fi', 'portfolio'):
        ap.add_argument('--' + a, required=True)
    args = ap.parse_args()
    s = stack.Stack({'equity': args.equity, 'fixed_income': args.fi,
                     'portfolio': args.portfolio, 'gateway': args.gateway}, tap=T)
    s.start_all()
    rnd = random.Random(7)
    days = [d for d in weekdays('2022-12-01', '2023-12-29')]

    # Two equities (E1 pays a dividend), one bond (semi-annual, quotes on most weekdays).
    eq_px, eq_div, eq_id = {}, {}, {}
    for tag, p0 in (('E1', 50.0), ('E2', 120.0)):
        sym = ('PF%s%s' % (tag, uuid.uuid4().hex[:6])).upper()
        r = s.req('POST', '/equities', {'symbol': sym, 'name': 'Perf ' + tag, 'exchange': 'XTST',
                                        'currency': 'USD', 'sector': 'Testing'})
        assert r.status == 200, r
        eid = r.json['id']
        eq_id[tag] = eid
        p, bars, ser = p0, [], []
        for d in days:
            p *= 1 + rnd.gauss(0.0004, 0.012)
            c = '%.2f' % p
            if d2s(d) in HOLIDAYS:
                continue
            bars.append({'date': d2s(d), 'open': c, 'high': c, 'low': c, 'close': c,
                         'volume': '1000'})
            ser.append((d, float(c)))
        r = s.req('PUT', '/equities/%s/prices' % eid, {'bars': bars})
        assert r.status == 200, r
        eq_px[eid] = ser
    r = s.req('POST', '/equities/%s/dividends' % eq_id['E1'], {'exDate': '2023-04-13',
                                                              'amount': '0.75'})
    assert r.status == 200, r
    eq_div[eq_id['E1']] = [(s2d('2023-04-13'), 0.75)]

    terms = {'couponRate': 0.045, 'frequency': 2, 'dayCount': 'THIRTY_360_US',
             'issueDate': '2020-01-15', 'maturityDate': '2030-01-15'}
    r = s.req('POST', '/bonds', dict(terms, name='Perf B1 ' + uuid.uuid4().hex[:6],
                                     issuer='Test Treasury', currency='USD', face='1000'))
    assert r.status == 200, r
    bid = r.json['id']
    quotes, cp = [], 99.0
    for d in days:
        cp += rnd.gauss(0, 0.15)
        if d2s(d) in HOLIDAYS or d.day == 10:  # some days without a quote
            continue
        quotes.append({'date': d2s(d), 'cleanPrice': '%.3f' % cp})
    r = s.req('PUT', '/bonds/%s/quotes' % bid, {'quotes': quotes})
    T.ok(r.status == 200, 'bond quotes loaded', r)
    dirty = []
    cfs = None
    for q in quotes:
        rr = s.req('POST', '/bonds/analytics', {'terms': terms, 'settlementDate': q['date'],
                                                'cleanPrice': q['cleanPrice']})
        assert rr.status == 200, rr
        dirty.append((s2d(q['date']), rr.json['dirtyPrice']))
        if cfs is None:
            cfs = [(s2d(c['date']), c['amount']) for c in rr.json.get('cashflows', [])]
    bond_dirty = {bid: dirty}
    bond_cf = {bid: cfs}
    E1, E2 = eq_id['E1'], eq_id['E2']

    bench = [{'kind': 'EQUITY', 'id': E1, 'weight': 0.5}, {'kind': 'BOND', 'id': bid, 'weight': 0.3},
             {'kind': None, 'weight': 0.2}]
    bench_json = {'components': [
        {'instrumentType': 'EQUITY', 'instrumentId': E1, 'weight': 0.5},
        {'instrumentType': 'BOND', 'instrumentId': bid, 'weight': 0.3},
        {'assetClass': 'CASH', 'weight': 0.2}]}
    r = s.req('POST', '/portfolios', {'name': 'perf', 'baseCurrency': 'USD',
                                      'benchmark': bench_json})
    T.ok(r.status == 200, 'portfolio with a benchmark created', r)
    pid = r.json['id']

    def px(iid, d):
        return carry(eq_px[iid], s2d(d))
    ledger = [
        {'type': 'DEPOSIT', 'date': '2023-01-03', 'amount': '100000'},
        {'type': 'BUY', 'date': '2023-01-04', 'instrumentType': 'EQUITY', 'instrumentId': E1,
         'quantity': '600', 'price': '%.2f' % px(E1, '2023-01-04')},
        {'type': 'BUY', 'date': '2023-01-05', 'instrumentType': 'BOND', 'instrumentId': bid,
         'quantity': '30000', 'price': '99.25'},
        {'type': 'BUY', 'date': '2023-02-15', 'instrumentType': 'EQUITY', 'instrumentId': E2,
         'quantity': '150', 'price': '%.2f' % px(E2, '2023-02-15')},
        {'type': 'DEPOSIT', 'date': '2023-03-10', 'amount': '25000'},
        {'type': 'DIVIDEND', 'date': '2023-04-20', 'instrumentType': 'EQUITY', 'instrumentId': E1,
         'amount': '450'},
        {'type': 'WITHDRAWAL', 'date': '2023-05-20', 'amount': '5000'},  # a Saturday
        {'type': 'SELL', 'date': '2023-06-15', 'instrumentType': 'EQUITY', 'instrumentId': E1,
         'quantity': '200', 'price': '%.2f' % px(E1, '2023-06-15')},
        {'type': 'COUPON', 'date': '2023-07-17', 'instrumentType': 'BOND', 'instrumentId': bid,
         'amount': '675'},
        {'type': 'FEE', 'date': '2023-08-01', 'amount': '25'},
        {'type': 'BUY', 'date': '2023-09-12', 'instrumentType': 'EQUITY', 'instrumentId': E2,
         'quantity': '40', 'price': '%.2f' % px(E2, '2023-09-12')},
        {'type': 'WITHDRAWAL', 'date': '2023-11-01', 'amount': '20000'},
    ]
    for n_, x in enumerate(ledger):
        x['n'] = n_
        body = {k: v for k, v in x.items() if k != 'n'}
        r = s.req('POST', '/portfolios/%s/transactions' % pid, body)
        if not T.ok(r.status == 200, 'ledger: %s %s' % (x['type'], x['date']), r):
            return T.done()

    path = '/portfolios/%s/performance?from=%s&to=%s' % (pid, FROM, TO)
    r = s.req('GET', path)
    T.ok(r.status == 200, 'GET performance (cold: computed from the ledger)', r)
    ref = reference(ledger, eq_px, eq_div, bond_dirty, bond_cf, FROM, TO, bench)
    if r.status == 200:
        check_all('cold', r.json, ref)
    cold = r.json
    r2 = s.req('GET', path)
    T.ok(r2.status == 200 and r2.json == cold,
         'second request (stored snapshots) answers exactly the same', r2)
    # defaults: from = the first transaction's date
    r = s.req('GET', '/portfolios/%s/performance?to=%s' % (pid, TO))
    T.ok(r.status == 200 and r.json == cold, 'from defaults to the inception date', r)

    # BHB: the same totals of allocation, different per-class allocation
    r = s.req('GET', path + '&model=BHB')
    if T.ok(r.status == 200, 'model=BHB', r):
        refb = reference(ledger, eq_px, eq_div, bond_dirty, bond_cf, FROM, TO, bench, 'BHB')
        cls = {c['name']: c for c in r.json['attribution']['classes']}
        ok = r.json['attribution'].get('model') == 'BHB'
        for k, name in enumerate(('EQUITY', 'FIXED_INCOME', 'CASH')):
            ok = ok and close_to(cls[name].get('allocation', 0.0),
                                 refb['attr']['classes'][k][0], 1e-9, 1e-13)
        a = r.json['attribution']
        tot = a.get('totalAllocation', 0) + a.get('totalSelection', 0) + \
            a.get('totalInteraction', 0)
        ok = ok and abs(tot - (r.json['twr'] - r.json['benchmarkReturn'])) <= 1e-12
        T.ok(ok, 'BHB: per-class allocation matches; effects sum to the active return', a)

    # zero starting value: from before the inception (leading empty days skipped)
    r = s.req('GET', '/portfolios/%s/performance?from=2022-12-28&to=%s' % (pid, TO))
    ref0 = reference(ledger, eq_px, eq_div, bond_dirty, bond_cf, '2022-12-28', TO, bench)
    if T.ok(r.status == 200 and r.json.get('startValue', 0.0) == 0.0 and
            r.json.get('from') == '2023-01-02', 'zero starting value: base is the last empty day',
            r):
        check_all('zero-start', r.json, ref0)

    # A back-dated fee invalidates the stored days from its date on.
    fee = {'type': 'FEE', 'date': '2023-06-01', 'amount': '100', 'n': 99}
    r = s.req('POST', '/portfolios/%s/transactions' % pid,
              {k: v for k, v in fee.items() if k != 'n'})
    T.ok(r.status == 200, 'back-dated fee written', r)
    ledger.append(fee)
    r = s.req('GET', path)
    ref2 = reference(ledger, eq_px, eq_div, bond_dirty, bond_cf, FROM, TO, bench)
    if T.ok(r.status == 200 and r.json != cold, 'after the fee the figures change', r):
        check_all('after-fee', r.json, ref2)

    # A changed past close (price.updated) invalidates the days from its date on.
    newc = '%.2f' % (px(E2, '2023-10-02') * 1.1)
    r = s.req('PUT', '/equities/%s/prices' % E2, {'bars': [
        {'date': '2023-10-02', 'open': newc, 'high': newc, 'low': newc, 'close': newc,
         'volume': '1000'}]})
    T.ok(r.status == 200, 'a past close of E2 changed', r)
    eq_px[E2] = [(d, float(newc) if d2s(d) == '2023-10-02' else c) for d, c in eq_px[E2]]
    ref3 = reference(ledger, eq_px, eq_div, bond_dirty, bond_cf, FROM, TO, bench)
    ok = False
    for _ in range(50):  # the event is asynchronous
        r = s.req('GET', path)
        vals = [v.get('value', 0.0) for v in r.json.get('values', [])] if r.status == 200 else []
        if len(vals) == len(ref3['values']) and all(
                close_to(a, b, 1e-12, 1e-9) for a, b in zip(vals, ref3['values'])):
            ok = True
            break
        time.sleep(0.1)
    T.ok(ok, 'price.updated invalidated the stored days: values follow the new close')
    if ok:
        check_all('after-price', r.json, ref3)

    # Transfers in kind: external flows at market value at the start of the day.
    r = s.req('POST', '/portfolios', {'name': 'transfers', 'baseCurrency': 'USD',
                                      'benchmark': bench_json})
    tid = r.json['id']
    tl = [
        {'type': 'DEPOSIT', 'date': '2023-01-03', 'amount': '10000', 'n': 0},
        {'type': 'TRANSFER_IN', 'date': '2023-03-01', 'instrumentType': 'EQUITY',
         'instrumentId': E2, 'quantity': '100', 'n': 1},
        {'type': 'BUY', 'date': '2023-03-02', 'instrumentType': 'EQUITY', 'instrumentId': E1,
         'quantity': '50', 'price': '%.2f' % px(E1, '2023-03-02'), 'n': 2},
        {'type': 'TRANSFER_IN', 'date': '2023-04-08', 'instrumentType': 'BOND',  # a Saturday
         'instrumentId': bid, 'quantity': '5000', 'n': 3},
        {'type': 'TRANSFER_OUT', 'date': '2023-08-01', 'instrumentType': 'EQUITY',
         'instrumentId': E2, 'quantity': '40', 'n': 4},
    ]
    for x in tl:
        r = s.req('POST', '/portfolios/%s/transactions' % tid,
                  {k: v for k, v in x.items() if k != 'n'})
        T.ok(r.status == 200, 'transfers ledger: %s %s' % (x['type'], x['date']), r)
    r = s.req('GET', '/portfolios/%s/performance?to=%s' % (tid, TO))
    reft = reference(tl, eq_px, eq_div, bond_dirty, bond_cf, FROM, TO, bench)
    if T.ok(r.status == 200, 'transfers: 200', r):
        check_all('transfers', r.json, reft)

    # ---- degenerate input --------------------------------------------------------------
    r = s.req('GET', '/portfolios/%s/performance?from=2023-06-01&to=2023-05-01' % pid)
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'from'), 'from after to: 400 naming from',
         r)
    r = s.req('GET', '/portfolios/%s/performance?from=2023-06-01&to=2023-06-01' % pid)
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'from'), 'empty period: 400 naming from',
         r)
    r = s.req('GET', '/portfolios/%s/performance?from=2023-06-03&to=2023-06-04' % pid)
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'to'),
         'a weekend (no business day): 400 naming to', r)
    r = s.req('GET', '/portfolios/%s/performance?from=2023-06-01&to=x' % pid)
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'to'), 'malformed to: 400 naming to', r)
    r = s.req('GET', '/portfolios/%s/performance?from=2023-01-03&to=2023-02-01'
              '&riskFreeRate=NaN' % pid)
    T.ok(r.status == 400, 'riskFreeRate NaN refused', r)
    r = s.req('GET', '/portfolios/%s/performance' % str(uuid.uuid4()))
    T.ok(r.status == 404, 'unknown portfolio: 404', r)

    r = s.req('POST', '/portfolios', {'name': 'empty', 'baseCurrency': 'USD'})
    eid = r.json['id']
    r = s.req('GET', '/portfolios/%s/performance' % eid)
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'from'),
         'no transactions and no from: 400 naming from', r)
    r = s.req('GET', '/portfolios/%s/performance?from=2023-01-03&to=2023-03-01' % eid)
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'from'),
         'a portfolio without flows: 400 naming from (it holds nothing)', r)

    # no benchmark, a flat series: cash only
    r = s.req('POST', '/portfolios', {'name': 'flat', 'baseCurrency': 'USD'})
    fid = r.json['id']
    r = s.req('POST', '/portfolios/%s/transactions' % fid,
              {'type': 'DEPOSIT', 'date': '2023-01-03', 'amount': '1000'})
    assert r.status == 200, r
    r = s.req('GET', '/portfolios/%s/performance?to=2023-03-31' % fid)
    j = r.json if r.status == 200 else {}
    und = set(j.get('undefinedMetrics', []))
    T.ok(r.status == 200 and j.get('twr', 0.0) == 0.0 and
         j.get('annualizedVolatility', 0.0) == 0.0 and j.get('sharpe', 0.0) == 0.0 and
         {'sharpe', 'annualizedVolatility', 'calmar'} <= und and
         'NaN' not in r.body.decode() and abs(j.get('mwr', 1.0)) <= 1e-12,
         'flat series: zero volatility, Sharpe/Calmar listed undefined (0), no NaN, MWR 0',
         r)
    T.ok(all(k not in j for k in ('beta', 'trackingError', 'informationRatio', 'attribution',
                                  'benchmarkReturn')),
         'no benchmark: benchmark figures absent', j)
    # no benchmark with trades: the full reference without the benchmark part
    r = s.req('POST', '/portfolios', {'name': 'nobench', 'baseCurrency': 'USD'})
    nid = r.json['id']
    # Written out of date order (the 2023-02-15 buy last): the stored rows' guard must use
    # the highest seq, not the last entry by date.
    for x in [ledger[i] for i in (0, 1, 2, 4, 5, 3)]:
        r = s.req('POST', '/portfolios/%s/transactions' % nid,
                  {k: v for k, v in x.items() if k != 'n'})
        assert r.status == 200, r
    r = s.req('GET', '/portfolios/%s/performance?from=%s&to=2023-09-29' % (nid, FROM))
    refn = reference(ledger[:6], eq_px, eq_div, bond_dirty, bond_cf, FROM, '2023-09-29')
    if T.ok(r.status == 200, 'no benchmark: 200', r):
        check_all('no-bench', r.json, refn, bench=False)
    # one return only: every ratio undefined, never NaN
    r = s.req('GET', '/portfolios/%s/performance?from=2023-01-05&to=2023-01-06' % pid)
    j = r.json if r.status == 200 else {}
    T.ok(r.status == 200 and len(j.get('dailyReturns', [])) == 1 and
         {'sharpe', 'annualizedVolatility', 'beta'} <= set(j.get('undefinedMetrics', [])) and
         'NaN' not in r.body.decode(), 'a single return: ratios listed undefined, no NaN', r)
    # Stored days need no market data: with both instrument services stopped, the same
    # request (no benchmark) is answered from pf_snapshots alone.
    nb_path = '/portfolios/%s/performance?from=%s&to=2023-09-29' % (nid, FROM)
    first = s.req('GET', nb_path)
    s.stop('equity')
    s.stop('fixed_income')
    r = s.req('GET', nb_path)
    T.ok(r.status == 200 and r.json == first.json,
         'snapshots in place: answered with the equity and fixed-income services down', r)
    r = s.req('GET', '/portfolios/%s/performance?from=%s&to=2023-10-31' % (nid, FROM))
    T.ok(r.status == 503, 'days not stored yet need the services: 503 while they are down', r)
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
