#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""REST end-to-end test of the stateless flow analytics (TAP on stdout).

    with_deps.sh --pg --redis -- stateless_test.py --reference FLOWS_JSON \\
        --gateway G --equity E --fi F --portfolio P

Starts the platform with stack.py and sends every case of
test/analytics_ref/flows_reference.json (written by gen_flows_reference.py, an independent
numpy/scipy implementation) through the gateway: POST /analytics/twr (each flow timing),
/analytics/xirr, /analytics/attribution (BRINSON_FACHLER and BHB) and /analytics/rebalance,
comparing at the ANALYTICS.md tolerances -- returns, weights and values 1e-12 (money
relative to the total value), annualized figures 1e-9 relative, XIRR 1e-9, attribution
effects summing to the active return within 1e-12.  Then bad input: 400 with the gRPC code
3 body naming the field, and no reply ever carrying NaN or Infinity.
"""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

T = stack.Tap()
S = None
NONFINITE = [0]


def post(path, body):
    r = S.req('POST', path, body)
    if b'NaN' in r.body or b'Infinity' in r.body:
        NONFINITE[0] += 1
        T.diag('non-finite number in %s reply: %r' % (path, r))
    return r


def near(got, exp, tol):
    return isinstance(got, (int, float)) and not isinstance(got, bool) and \
        math.isfinite(got) and abs(got - exp) <= tol


class Cmp:
    """Collects the differences of one case, reported as one TAP line."""

    def __init__(self):
        self.errors = []

    def num(self, what, got, exp, tol):
        if not near(got, exp, tol):
            self.errors.append('%s: got %r, want %r (tol %.3g)' % (what, got, exp, tol))

    def eq(self, what, got, exp):
        if got != exp:
            self.errors.append('%s: got %r, want %r' % (what, got, exp))

    def ok(self, desc, resp=None):
        T.ok(not self.errors, desc, '\n'.join(self.errors[:20]) +
             ('' if resp is None else '\n%r' % resp))


def rel(x):
    return max(1.0, abs(x))


# ---- the reference cases --------------------------------------------------------------

def check_twr(cases):
    n = 0
    for c in cases:
        for timing, exp in c['expected'].items():
            body = dict(c['request'])
            if timing != 'default':
                body['flowTiming'] = timing
            r = post('/analytics/twr', body)
            m = Cmp()
            if r.status != 200 or not isinstance(r.json, dict):
                m.errors.append('HTTP %d' % r.status)
            else:
                j = r.json
                m.num('twr', j.get('twr'), exp['twr'], 1e-12 * rel(exp['twr']))
                m.num('annualizedTwr', j.get('annualizedTwr'), exp['annualizedTwr'],
                      1e-9 * rel(exp['annualizedTwr']))
                m.num('annualizedTwr252', j.get('annualizedTwr252'), exp['annualizedTwr252'],
                      1e-9 * rel(exp['annualizedTwr252']))
                got = j.get('dailyReturns', [])
                want = exp.get('dailyReturns', [])
                if len(got) != len(want):
                    m.errors.append('dailyReturns: %d, want %d' % (len(got), len(want)))
                else:
                    dates = [v['date'] for v in c['request']['values'][1:]]
                    for i, (g, w) in enumerate(zip(got, want)):
                        m.eq('dailyReturns[%d].date' % i, g.get('date'), dates[i])
                        m.num('dailyReturns[%d].value' % i, g.get('value'), w, 1e-12)
            m.ok('twr %s %s (%d values, %d flows)' % (c['name'], timing,
                                                     len(c['request']['values']),
                                                     len(c['request']['flows'])), r)
            n += 1
    return n


def check_xirr(cases):
    for c in cases:
        r = post('/analytics/xirr', c['request'])
        exp = c['expected']
        m = Cmp()
        if 'rate' in exp:
            if r.status != 200 or not isinstance(r.json, dict):
                m.errors.append('HTTP %d' % r.status)
            else:
                m.num('rate', r.json.get('rate'), exp['rate'], 1e-9)
        else:
            words = {'NO_SIGN_CHANGE': 'change sign', 'NO_ROOT': 'no rate'}[exp['error']]
            if r.status != 400 or not stack.is_error_body(r, 3, 'flows'):
                m.errors.append('want 400 naming flows')
            elif words not in r.json['message']:
                m.errors.append('message lacks %r' % words)
        m.ok('xirr %s: %s' % (c['name'], 'rate' if 'rate' in exp else exp['error']), r)


def check_attribution(cases):
    for c in cases:
        r = post('/analytics/attribution', c['request'])
        exp = c['expected']
        m = Cmp()
        if r.status != 200 or not isinstance(r.json, dict):
            m.errors.append('HTTP %d' % r.status)
        else:
            j = r.json
            m.eq('model', j.get('model'), exp['model'])
            for k in ('portfolioReturn', 'benchmarkReturn', 'activeReturn', 'totalAllocation',
                      'totalSelection', 'totalInteraction'):
                m.num(k, j.get(k), exp[k], 1e-12)
            cls = j.get('classes', [])
            if len(cls) != len(exp['classes']):
                m.errors.append('classes: %d, want %d' % (len(cls), len(exp['classes'])))
            else:
                for i, (g, w) in enumerate(zip(cls, exp['classes'])):
                    m.eq('classes[%d].name' % i, g.get('name'), w['name'])
                    for k in ('allocation', 'selection', 'interaction'):
                        m.num('classes[%d].%s' % (i, k), g.get(k), w[k], 1e-12)
            # The effects explain the active return, and the totals are the class sums.
            if not m.errors:
                m.num('allocation + selection + interaction',
                      j['totalAllocation'] + j['totalSelection'] + j['totalInteraction'],
                      j['activeReturn'], 1e-12)
                m.num('portfolioReturn - benchmarkReturn',
                      j['portfolioReturn'] - j['benchmarkReturn'], j['activeReturn'], 1e-12)
                for k, t in (('allocation', 'totalAllocation'), ('selection', 'totalSelection'),
                             ('interaction', 'totalInteraction')):
                    m.num('sum of ' + k, math.fsum(x[k] for x in cls), j[t], 1e-12)
        m.ok('attribution %s (%d classes)' % (c['name'], len(c['request']['classes'])), r)


def check_rebalance(cases):
    for c in cases:
        req = c['request']
        r = post('/analytics/rebalance', req)
        exp = c['expected']
        m = Cmp()
        if r.status != 200 or not isinstance(r.json, dict):
            m.errors.append('HTTP %d' % r.status)
        else:
            j = r.json
            V = exp['totalValue']
            m.num('totalValue', j.get('totalValue'), V, 1e-12 * rel(V))
            m.num('postTradeCash', j.get('postTradeCash'), exp['postTradeCash'], 1e-12 * rel(V))
            if not (isinstance(j.get('postTradeCash'), (int, float)) and j['postTradeCash'] >= 0):
                m.errors.append('postTradeCash %r is negative' % j.get('postTradeCash'))
            pos = j.get('positions', [])
            if len(pos) != len(exp['positions']):
                m.errors.append('positions: %d, want %d' % (len(pos), len(exp['positions'])))
            else:
                for i, (g, w) in enumerate(zip(pos, exp['positions'])):
                    f = 'positions[%d].' % i
                    m.eq(f + 'id', g.get('id'), w['id'])
                    m.eq(f + 'breach', g.get('breach'), w['breach'])
                    for k in ('currentWeight', 'driftAbs'):
                        m.num(f + k, g.get(k), w[k], 1e-12)
                    m.num(f + 'driftRel', g.get('driftRel'), w['driftRel'],
                          1e-12 * rel(w['driftRel']))
                    for k in ('targetQuantity', 'trade'):
                        m.num(f + k, g.get(k), w[k], 1e-12 * rel(w[k]))
                    m.num(f + 'notional', g.get('notional'), w['notional'], 1e-12 * rel(V))
                    # The documented rules, independently of the reference's numbers.
                    if req.get('mode') == 'BAND' and not w['breach']:
                        m.eq(f + 'trade (unbreached, BAND)', g.get('trade'), 0)
                    if req.get('cashToInvest', 0) > 0 and g.get('trade', 0) < 0:
                        m.errors.append(f + 'trade sells with cashToInvest')
            ptw = j.get('postTradeWeights', {})
            if set(ptw) != set(exp['postTradeWeights']):
                m.errors.append('postTradeWeights keys %r' % sorted(ptw))
            else:
                for k, w in exp['postTradeWeights'].items():
                    m.num('postTradeWeights[%s]' % k, ptw[k], w, 1e-12)
        m.ok('rebalance %s (%d positions)' % (c['name'], len(req.get('positions', []))), r)


# ---- bad input ------------------------------------------------------------------------

V3 = [{'date': '2024-01-02', 'value': 100.0}, {'date': '2024-01-03', 'value': 101.0},
      {'date': '2024-01-05', 'value': 99.0}]
CLS = [{'name': 'EQUITY', 'portfolioWeight': 0.7, 'benchmarkWeight': 0.6,
        'portfolioReturn': 0.1, 'benchmarkReturn': 0.08},
       {'name': 'FIXED_INCOME', 'portfolioWeight': 0.3, 'benchmarkWeight': 0.4,
        'portfolioReturn': 0.03, 'benchmarkReturn': 0.035}]
POS = [{'id': 'A', 'quantity': 10, 'price': 100, 'lotSize': 1, 'target': 0.5},
       {'id': 'B', 'quantity': 0, 'price': 50, 'target': 0.3}]


def with_item(lst, i, **kw):
    out = [dict(x) for x in lst]
    out[i].update(kw)
    return out


def check_errors():
    twr = '/analytics/twr'
    cases = [
        # /analytics/twr
        (twr, {'values': V3[:1]}, 'values', 'at least two'),
        (twr, {'values': with_item(V3, 1, date='2024-13-01')}, 'values[1].date', 'YYYY-MM-DD'),
        (twr, {'values': with_item(V3, 2, date='2024-01-03')}, 'values[2].date', 'after'),
        (twr, {'values': with_item(V3, 0, value='NaN')}, 'values[0].value', 'finite'),
        (twr, {'values': with_item(V3, 1, value=-5)}, 'values[1].value', '>= 0'),
        (twr, {'values': V3, 'flows': [{'date': '2024-01-02', 'amount': 5}]}, 'flows[0].date',
         'after the first'),
        (twr, {'values': V3, 'flows': [{'date': '2024-01-06', 'amount': 5}]}, 'flows[0].date',
         'last valuation'),
        (twr, {'values': V3, 'flows': [{'date': '2024-01-03', 'amount': 5},
                                       {'date': '2024-01-04', 'amount': 5}]},
         'flows[1].date', 'valuation date'),
        (twr, {'values': V3, 'flows': [{'date': '2024-01-03', 'amount': 'Infinity'}]},
         'flows[0].amount', 'finite'),
        (twr, {'values': V3, 'flows': [{'date': 'tomorrow', 'amount': 1}]}, 'flows[0].date',
         'YYYY-MM-DD'),
        (twr, {'values': V3, 'flows': [{'date': '2024-01-03', 'amount': -100}]}, 'flows',
         'no base'),
        (twr, {'values': with_item(V3, 1, value=0), 'flowTiming': 'END_OF_DAY'},
         'values[1].value', 'no base'),
        (twr, {'values': V3, 'flows': [{'date': '2024-01-03', 'amount': 150}],
               'flowTiming': 'END_OF_DAY'}, 'values[1].value', '-100%'),
        (twr, {'values': V3, 'flowTiming': 'SIDEWAYS'}, 'flowTiming', None),
        (twr, {'values': [{'date': '2024-01-02', 'value': 100.0},
                          {'date': '2024-01-05', 'value': 0.0}],
               'flows': [{'date': '2024-01-05', 'amount': 500.0}],
               'flowTiming': 'MODIFIED_DIETZ'}, 'flows', 'below -100%'),
        (twr, {'values': [{'date': '2024-01-02', 'value': 1.0},
                          {'date': '2024-01-03', 'value': 1e9}]}, 'values', 'overflows'),
        (twr, {'values': V3, 'bogus': 1}, 'bogus', None),
        # /analytics/xirr
        ('/analytics/xirr', {'flows': [{'date': '2024-01-02', 'amount': -1}]}, 'flows',
         'at least two'),
        ('/analytics/xirr', {'flows': [{'date': '2024-01-02', 'amount': -1},
                                       {'date': '2024-02-30', 'amount': 2}]},
         'flows[1].date', 'YYYY-MM-DD'),
        ('/analytics/xirr', {'flows': [{'date': '2024-01-02', 'amount': 'NaN'},
                                       {'date': '2024-02-03', 'amount': 2}]},
         'flows[0].amount', 'finite'),
        ('/analytics/xirr', {'flows': [{'date': '2024-01-02', 'amount': 1},
                                       {'date': '2024-02-03', 'amount': 2}]},
         'flows', 'change sign'),
        # /analytics/attribution
        ('/analytics/attribution', {'classes': []}, 'classes', 'at least one'),
        ('/analytics/attribution', {'classes': with_item(CLS, 0, name='')}, 'classes[0].name',
         'required'),
        ('/analytics/attribution', {'classes': with_item(CLS, 1, name='EQUITY')},
         'classes[1].name', 'repeats'),
        ('/analytics/attribution', {'classes': with_item(CLS, 0, portfolioWeight='NaN')},
         'classes[0].portfolioWeight', 'finite'),
        ('/analytics/attribution', {'classes': with_item(CLS, 0, portfolioWeight=0.8)},
         'classes', 'portfolio weights'),
        ('/analytics/attribution', {'classes': with_item(CLS, 1, benchmarkWeight=0.5)},
         'classes', 'benchmark weights'),
        ('/analytics/attribution', {'classes': with_item(CLS, 1, benchmarkReturn=-1.5)},
         'classes[1].benchmarkReturn', '-100%'),
        ('/analytics/attribution', {'classes': CLS, 'model': 'CARHART'}, 'model', None),
        # /analytics/rebalance
        ('/analytics/rebalance', {'positions': with_item(POS, 0, price=0), 'cash': 10},
         'positions[0].price', '> 0'),
        ('/analytics/rebalance', {'positions': with_item(POS, 1, quantity=-1), 'cash': 10},
         'positions[1].quantity', '>= 0'),
        ('/analytics/rebalance', {'positions': with_item(POS, 0, lotSize=-10), 'cash': 10},
         'positions[0].lotSize', '> 0'),
        ('/analytics/rebalance', {'positions': with_item(POS, 0, target=1.5), 'cash': 10},
         'positions[0].target', '[0, 1]'),
        ('/analytics/rebalance', {'positions': with_item(POS, 1, target=0.6), 'cash': 10},
         'positions', 'at most 1'),
        ('/analytics/rebalance', {'positions': with_item(POS, 1, id='A'), 'cash': 10},
         'positions[1].id', 'repeats'),
        ('/analytics/rebalance', {'positions': POS + [dict(POS[1], target=0),
                                                  dict(POS[0], target=0)], 'cash': 10},
         'positions[2].id', 'repeats positions[1].id'),
        ('/analytics/rebalance', {'positions': with_item(POS, 0, id=''), 'cash': 10},
         'positions[0].id', 'required'),
        ('/analytics/rebalance', {'positions': POS, 'cash': -1}, 'cash', '>= 0'),
        ('/analytics/rebalance', {'positions': POS, 'cash': 1, 'cashToInvest': 'NaN'},
         'cashToInvest', 'finite'),
        ('/analytics/rebalance', {'positions': POS, 'cash': 1, 'bandAbs': -0.1}, 'bandAbs',
         '>= 0'),
        ('/analytics/rebalance', {'positions': POS, 'cash': 1, 'bandRel': 'Infinity'},
         'bandRel', '>= 0'),
        ('/analytics/rebalance', {'positions': with_item(POS, 0, quantity=0), 'cash': 0},
         'positions', 'total value'),
        ('/analytics/rebalance', {'positions': POS, 'mode': 'HALF'}, 'mode', None),
    ]
    for path, body, field, words in cases:
        r = post(path, body)
        good = r.status == 400 and stack.is_error_body(r, 3, field)
        if good and words is not None:
            good = words in r.json['message']
        T.ok(good, '%s: 400 naming %s%s' % (path, field,
                                           '' if words is None else ' (%s)' % words), r)


def main():
    global S
    ap = argparse.ArgumentParser()
    ap.add_argument('--reference', required=True)
    ap.add_argument('--gateway', required=True)
    ap.add_argument('--equity', required=True)
    ap.add_argument('--fi', required=True)
    ap.add_argument('--portfolio', required=True)
    args = ap.parse_args()
    if not os.environ.get('TEST_PG_HOST'):
        print('1..0 # SKIP run through with_deps.sh --pg --redis')
        return 77
    with open(args.reference) as f:
        ref = json.load(f)
    S = stack.Stack({'equity': args.equity, 'fixed_income': args.fi,
                     'portfolio': args.portfolio, 'gateway': args.gateway}, tap=T)
    S.start_all()

    n_twr = check_twr(ref['twr'])
    T.diag('%d TWR requests' % n_twr)
    check_xirr(ref['xirr'])
    check_attribution(ref['attribution'])
    check_rebalance(ref['rebalance'])
    check_errors()
    T.ok(NONFINITE[0] == 0, 'no reply carried NaN or Infinity (%d did)' % NONFINITE[0])
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
