#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Equity analytics through the REST API against the numpy/scipy reference (TAP).

    with_deps.sh --pg --redis -- equity_rest_test.py --build BUILD --reference REF.json

Every case of test/analytics_ref/reference.json (gen_reference.py: series x benchmark x
basis) is checked twice through the gateway, at the ANALYTICS.md tolerances:
  - stored: the six series loaded as equities (PUT prices, POST dividends, POST splits --
    the split series stored RAW, i.e. un-adjusted before its ex-date, so the service's own
    split adjustment is exercised), then GET /equities/{id}/analytics?benchmarkId&basis;
  - stateless: POST /analytics/series with the same prices and dividends.
Then the bad-input rules of the issue: unknown security, empty and one-point ranges, a
benchmark with no overlap, bars with high < low or a negative price (nothing stored).
"""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

T = stack.Tap()
TOL_ABS = 1e-12  # returns, drawdowns, VaR (ANALYTICS.md)
TOL_REL = 1e-9   # ratios and annualised metrics

REL = ['annualized_return', 'annualized_return_arith', 'annualized_volatility', 'sharpe',
       'downside_deviation', 'sortino', 'calmar', 'skewness', 'excess_kurtosis', 'beta',
       'alpha_annualized', 'correlation', 'tracking_error', 'information_ratio']
ABS = ['total_return', 'max_drawdown', 'alpha_daily']
VAR = ['historical', 'historical_lower', 'historical_inverted_cdf', 'cvar_historical',
       'gaussian', 'es_gaussian', 'cornish_fisher']


def camel(s):
    head, *rest = s.split('_')
    return head + ''.join(w[:1].upper() + w[1:] for w in rest)


def compare(got, ref, label):
    """Returns a list of mismatches of metrics |got| (REST JSON) vs reference |ref|."""
    bad = []

    def num(name, g, r, rel):
        if isinstance(r, str) or r is None:
            return  # non-finite in the reference: the API documents null/0 instead
        if not isinstance(g, (int, float)) or not math.isfinite(g):
            bad.append('%s: %r' % (name, g))
            return
        err = abs(g - r) / max(abs(r), 1e-300) if rel else abs(g - r)
        if err > (TOL_REL if rel else TOL_ABS):
            bad.append('%s: got %.17g want %.17g (%s err %.3g)' %
                       (name, g, r, 'rel' if rel else 'abs', err))

    if got.get('observations') != ref['n']:
        bad.append('observations %r != %r' % (got.get('observations'), ref['n']))
    for k in REL:
        if k in ref:
            num(k, got.get(camel(k), 0.0), ref[k], True)
    for k in ABS:
        if k in ref:
            num(k, got.get(camel(k), 0.0), ref[k], False)
    for k, api in (('max_drawdown_peak', 'maxDrawdownPeakDate'),
                   ('max_drawdown_trough', 'maxDrawdownTroughDate'),
                   ('max_drawdown_recovery', 'maxDrawdownRecoveryDate')):
        want = ref[k]['date'] if isinstance(ref.get(k), dict) else ''
        if (got.get(api) or '') != want:
            bad.append('%s %r != %r' % (api, got.get(api), want))
    gv = got.get('var', [])
    if len(gv) != len(ref['var']):
        bad.append('var: %d entries, want %d' % (len(gv), len(ref['var'])))
    else:
        for g, r in zip(gv, ref['var']):
            if g.get('confidence') != r['confidence']:
                bad.append('var confidence %r' % g.get('confidence'))
            for k in VAR:
                num('var[%s].%s' % (r['confidence'], k), g.get(camel(k), 0.0), r[k], False)
    return bad


def bars(dates, closes, scale_before=None, ratio=1.0):
    out = []
    for d, c in zip(dates, closes):
        if scale_before is not None and d < scale_before:
            c = c * ratio  # raw (un-adjusted) close; x4 and /4 are exact in binary
        s = repr(float(c))
        out.append({'date': d, 'open': s, 'high': s, 'low': s, 'close': s, 'volume': '0'})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', required=True)
    ap.add_argument('--reference', required=True)
    a = ap.parse_args()
    b = a.build
    s = stack.Stack({'equity': b + '/svc_equity/fsr-equity',
                     'fixed_income': b + '/svc_fixed_income/fsr-fixed-income',
                     'portfolio': b + '/svc_portfolio/fsr-portfolio',
                     'gateway': b + '/rest_gateway/fsr-gateway'}, tap=T)
    s.start_all()
    ref = json.load(open(a.reference))
    series = ref['series']

    # ---- load the six series as stored equities ----------------------------------------
    ids = {}
    for i, (name, sr) in enumerate(sorted(series.items())):
        r = s.req('POST', '/equities', {'symbol': 'R' + name, 'name': 'Reference ' + name,
                                        'exchange': 'XNYS', 'currency': 'USD',
                                        'sector': 'Reference', 'lotSize': '1'})
        if not T.ok(r.status == 200, 'create equity %s' % name, r):
            return T.done()
        ids[name] = r.json['id']
        split = sr.get('split')
        before = split['ex_date'] if split else None
        ratio = split['ratio'] if split else 1.0
        all_bars = bars(sr['dates'], sr['close'], before, ratio)
        r = s.req('PUT', '/equities/%s/prices' % ids[name], {'bars': all_bars})
        T.ok(r.status == 200, 'PUT %d bars of %s' % (len(all_bars), name), r)
        ok = True
        for dv in sr['dividends']:
            amount = dv['amount'] * (ratio if before and dv['ex_date'] < before else 1.0)
            r = s.req('POST', '/equities/%s/dividends' % ids[name],
                      {'exDate': dv['ex_date'], 'payDate': dv['ex_date'],
                       'amount': repr(float(amount))})
            ok = ok and r.status == 200
        T.ok(ok, '%d dividends of %s stored' % (len(sr['dividends']), name), r)
        if split:
            r = s.req('POST', '/equities/%s/splits' % ids[name],
                      {'exDate': split['ex_date'], 'ratio': repr(float(split['ratio']))})
            T.ok(r.status == 200, 'split of %s stored' % name, r)

    def series_body(name):
        sr = series[name]
        return {'prices': [{'date': d, 'close': c} for d, c in zip(sr['dates'], sr['close'])],
                'dividends': [{'exDate': dv['ex_date'], 'amount': dv['amount']}
                              for dv in sr['dividends']]}

    # ---- every reference case, stored and stateless --------------------------------------
    for case in ref['results']:
        name, bench, basis = case['series'], case['benchmark'], case['basis']
        label = '%s vs %s, %s' % (name, bench or 'none', basis)
        q = '/equities/%s/analytics?basis=%s' % (ids[name], basis)
        if bench:
            q += '&benchmarkId=' + ids[bench]
        r = s.req('GET', q)
        bad = compare(r.json or {}, case['metrics'], label) if r.status == 200 else [repr(r)]
        T.ok(not bad, 'GET /equities/{id}/analytics %s matches the reference' % label,
             '\n'.join(bad))

        body = series_body(name)
        body['basis'] = basis
        if bench:
            body['benchmark'] = series_body(bench)
        r = s.req('POST', '/analytics/series', body)
        bad = compare(r.json or {}, case['metrics'], label) if r.status == 200 else [repr(r)]
        T.ok(not bad, 'POST /analytics/series %s matches the reference' % label,
             '\n'.join(bad))

    # ---- bad input ---------------------------------------------------------------------------
    aaa = ids['AAA']
    r = s.req('GET', '/equities/%s/analytics' % '00000000-0000-4000-8000-0000000000ff')
    T.ok(r.status == 404 and stack.is_error_body(r, 5), 'unknown security -> 404', r)
    r = s.req('GET', '/equities/%s/analytics?from=2030-01-01&to=2030-02-01' % aaa)
    T.ok(r.status == 400 and stack.is_error_body(r, 3), 'empty range -> 400', r)
    r = s.req('GET', '/equities/%s/analytics?from=2021-01-04&to=2021-01-04' % aaa)
    T.ok(r.status == 400 and stack.is_error_body(r, 3), 'one-point range -> 400', r)
    r = s.req('GET', '/equities/%s/analytics?from=2021-01-04&to=2021-03-01&benchmarkId=%s'
              % (ids['IPO'], aaa))
    T.ok(r.status == 400 and stack.is_error_body(r, 3),
         'benchmark with no overlap in the range -> 400', r)
    r = s.req('GET', '/equities/%s/analytics?from=2021-01-04&to=2021-03-01&benchmarkId=%s'
              % (aaa, ids['IPO']))
    T.ok(r.status == 400 and stack.is_error_body(r, 3),
         'benchmark with no data in the range -> 400', r)
    before = stack.psql('SELECT count(*) FROM price_bars', 'equity')
    good = {'date': '2025-02-03', 'open': '10', 'high': '11', 'low': '9', 'close': '10',
            'volume': '5'}
    for bad_bar, field, what in (
            (dict(good, high='8'), 'high', 'high < low'),
            (dict(good, low='-1'), 'low', 'a negative price')):
        r = s.req('PUT', '/equities/%s/prices' % aaa, {'bars': [good, bad_bar]})
        T.ok(r.status == 400 and stack.is_error_body(r, 3)
             and any(field in (d.get('field') or '') for d in r.json['details']),
             'a bar with %s -> 400 naming the field' % what, r)
    T.ok(stack.psql('SELECT count(*) FROM price_bars', 'equity') == before,
         'nothing partial stored after the refused bars')

    # DeleteEquity cannot check holdings without the portfolio service: 503 naming it (the
    # dependency trailer), nothing deleted, and the gateway does not take equity for down.
    # (The admin key was looked up moments ago: the gateway's cache still answers for it.)
    n0 = stack.psql('SELECT count(*) FROM equities', 'equity')
    s.stop('portfolio')
    r = s.req('DELETE', '/equities/' + aaa)
    T.ok(r.status == 503 and stack.is_error_body(r, 14)
         and r.json['message'].startswith('portfolio service unavailable')
         and stack.psql('SELECT count(*) FROM equities', 'equity') == n0,
         'DELETE /equities/{id} with the portfolio service down -> 503 naming it, nothing '
         'deleted', r)
    r = s.req('GET', '/equities/' + aaa)
    T.ok(r.status == 200, 'the equity service is not taken for down by the gateway', r)
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
