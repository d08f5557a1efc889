#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""REST end-to-end test of the fixed-income service (TAP on stdout).

    with_deps.sh --pg --redis -- fixed_income_test.py --reference REFERENCE_JSON \\
        --gateway G --equity E --fi F --portfolio P

Starts the platform with stack.py and checks, through the gateway:

  * bad terms on POST /bonds: every validation rule (ISIN shape and check digit, currency,
    face > 0, coupon in [0, 1), frequency in {0, 1, 2, 4, 12}, zero coupon, known day count,
    dates, issue < maturity, the bondmath range, firstCouponDate on the schedule) answers 400
    with the INVALID_ARGUMENT body naming the field, and no row is stored; the same for
    PATCH /bonds/{id}, where the stored row must stay byte for byte (updatedAt included);
  * firstCouponDate: stored, returned, cleared by PATCH "", and priced as QuantLib does;
  * every case of test/bondref/reference.json (QuantLib 1.29, long first coupons included)
    through POST /bonds/analytics from the yield and from the quoted clean price, and as a
    stored bond through GET /bonds/{id}/analytics (given yield; then from a stored yield
    quote, twice: Postgres then the cache), at bondmath_test's tolerances;
  * GET /bonds/{id}/analytics without a quote: 400, FAILED_PRECONDITION naming yield;
  * POST /bonds/batch-analytics (the REST route of BatchAnalytics): per-item results equal to
    GET /bonds/{id}/analytics, per-item errors for bad and unknown ids;
  * the bond cache (fi:quote:<id>, generation fi:qgen:<id>): reads are served from it (a
    quote changed behind the service's back stays invisible until a write invalidates it),
    writes bump the generation whatever the id's spelling, a batch mixes hits and misses and
    caches the misses, and a reader whose generation moved while it read Postgres does not
    cache what it read (made deterministic by holding a table lock while the reader waits);
  * DeleteBond: FAILED_PRECONDITION while a portfolio holds the bond (a constituents row in
    the portfolio database), deleted once it is not, and UNAVAILABLE with nothing deleted
    while the portfolio service is down.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

T = stack.Tap()
S = None

# bondmath_test's tolerances: prices, accrued and cash flows 1e-9 absolute per 100, yields
# 1e-9, durations, convexity and BPV 1e-9 relative.
TOL_PRICE = 1e-9
TOL_YIELD = 1e-9
TOL_REL = 1e-9

BASE = {'isin': 'US0378331005', 'name': 'Validation Bond', 'issuer': 'Validation Issuer',
        'currency': 'USD', 'face': '1000', 'couponRate': 0.05, 'frequency': 2,
        'dayCount': 'ACT_ACT_ICMA', 'issueDate': '2021-01-10', 'maturityDate': '2031-06-15',
        'firstCouponDate': '2021-12-15'}


def fi_sql(sql):
    return stack.psql(sql, db='fixed_income')


def count_bonds():
    return int(fi_sql('SELECT count(*) FROM bonds')[0][0])


def q(params):
    return urllib.parse.urlencode(params)


def near(got, exp, tol, rel=False):
    if not isinstance(got, (int, float)) or isinstance(got, bool) or not math.isfinite(got):
        return False
    d = abs(got - exp)
    if rel:
        d /= max(abs(exp), 1e-300)
    return d <= tol


class Cmp:
    """Collects the differences of one check, reported as one TAP line."""

    def __init__(self):
        self.errors = []

    def num(self, what, got, exp, tol, rel=False):
        if not near(got, exp, tol, rel):
            self.errors.append('%s: got %r, want %r (tol %.3g%s)' %
                               (what, got, exp, tol, ' rel' if rel else ''))

    def eq(self, what, got, exp):
        if got != exp:
            self.errors.append('%s: got %r, want %r' % (what, got, exp))


def compare_analytics(c, tag, a, case, from_price=False):
    """Compares a BondAnalyticsResponse (JSON) with a reference case."""
    if not isinstance(a, dict):
        c.errors.append('%s: no analytics: %r' % (tag, a))
        return
    c.eq(tag + ' settlementDate', a.get('settlementDate'), case['settlementDate'])
    want_y = case['yieldFromPrice'] if from_price else case['yield']
    c.num(tag + ' yield', a.get('yield'), want_y, TOL_YIELD)
    if from_price:
        # priced at the solved yield: the price is the quoted one, the rest follows
        c.num(tag + ' cleanPrice', a.get('cleanPrice'), case['quotedCleanPrice'], TOL_PRICE)
        c.num(tag + ' accrued', a.get('accrued'), case['accrued'], TOL_PRICE)
        return
    for k in ('accrued', 'cleanPrice', 'dirtyPrice'):
        c.num(tag + ' ' + k, a.get(k), case[k], TOL_PRICE)
    for k in ('macaulayDuration', 'modifiedDuration', 'convexity', 'bpv'):
        c.num(tag + ' ' + k, a.get(k), case[k], TOL_REL, rel=True)
    flows = a.get('cashflows') or []
    c.eq(tag + ' cashflows', len(flows), len(case['cashflows']))
    for i, (f, (d, amt)) in enumerate(zip(flows, case['cashflows'])):
        c.eq('%s cashflows[%d].date' % (tag, i), f.get('date'), d)
        c.num('%s cashflows[%d].amount' % (tag, i), f.get('amount'), amt, TOL_PRICE)
    if flows:
        c.eq(tag + ' last kind', flows[-1].get('kind'), 'REDEMPTION')


def terms_of(case):
    t = dict(case['terms'])
    if t.get('firstCouponDate') is None:
        t.pop('firstCouponDate', None)
    return t


# ---- validation ---------------------------------------------------------------------------

CREATE_RULES = [
    # (what, changes to BASE (None removes the field), field named)
    ('isin check digit', {'isin': 'US0378331006'}, 'isin'),
    ('isin shape', {'isin': 'US03783310'}, 'isin'),
    ('isin and name both empty', {'isin': '', 'name': ''}, 'name'),
    ('issuer missing', {'issuer': ''}, 'issuer'),
    ('currency missing', {'currency': ''}, 'currency'),
    ('currency lower case', {'currency': 'usd'}, 'currency'),
    ('currency unknown', {'currency': 'ZZZ'}, 'currency'),
    ('currency too long', {'currency': 'EURO'}, 'currency'),
    ('face zero', {'face': '0'}, 'face'),
    ('face negative', {'face': '-1000'}, 'face'),
    ('face not a number', {'face': 'abc'}, 'face'),
    ('couponRate negative', {'couponRate': -0.01}, 'couponRate'),
    ('couponRate 1', {'couponRate': 1.0}, 'couponRate'),
    ('couponRate above 1', {'couponRate': 1.5}, 'couponRate'),
    ('frequency 3', {'frequency': 3}, 'frequency'),
    ('frequency 6', {'frequency': 6}, 'frequency'),
    ('frequency negative', {'frequency': -1}, 'frequency'),
    ('frequency 24', {'frequency': 24}, 'frequency'),
    ('zero coupon with a coupon', {'frequency': 0, 'firstCouponDate': None}, 'couponRate'),
    ('dayCount unknown name', {'dayCount': 'ACT_999'}, 'dayCount'),
    ('dayCount unknown number', {'dayCount': 99}, 'dayCount'),
    ('issueDate missing', {'issueDate': ''}, 'issueDate'),
    ('issueDate not a date', {'issueDate': '2021-02-30'}, 'issueDate'),
    ('issueDate before 1901', {'issueDate': '1850-01-10', 'firstCouponDate': None}, 'issueDate'),
    ('maturityDate missing', {'maturityDate': ''}, 'maturityDate'),
    ('maturityDate not a date', {'maturityDate': '15/06/2031'}, 'maturityDate'),
    ('issue == maturity', {'maturityDate': '2021-01-10', 'firstCouponDate': None},
     'maturityDate'),
    ('issue after maturity', {'issueDate': '2032-01-10', 'firstCouponDate': None},
     'maturityDate'),
    ('more than 100 years', {'maturityDate': '2122-06-15'}, 'maturityDate'),
    ('firstCouponDate not a date', {'firstCouponDate': '2021-12-32'}, 'firstCouponDate'),
    ('firstCouponDate off the schedule', {'firstCouponDate': '2021-12-20'}, 'firstCouponDate'),
    ('firstCouponDate after 2199', {'firstCouponDate': '2250-06-15'}, 'firstCouponDate'),
    ('firstCouponDate before issue', {'firstCouponDate': '2020-12-15'}, 'firstCouponDate'),
    ('firstCouponDate on issue', {'issueDate': '2021-06-15', 'firstCouponDate': '2021-06-15'},
     'firstCouponDate'),
    ('firstCouponDate after maturity', {'firstCouponDate': '2031-12-15'}, 'firstCouponDate'),
    ('firstCouponDate of a zero coupon',
     {'frequency': 0, 'couponRate': 0.0, 'firstCouponDate': '2021-12-15'}, 'firstCouponDate'),
]

PATCH_RULES = [
    ('isin check digit', {'isin': 'US0378331006'}, 'isin'),
    ('isin and name both empty', {'isin': '', 'name': ''}, 'name'),
    ('issuer empty', {'issuer': ''}, 'issuer'),
    ('currency empty', {'currency': ''}, 'currency'),
    ('currency unknown', {'currency': 'ZZZ'}, 'currency'),
    ('face zero', {'face': '0'}, 'face'),
    ('face negative', {'face': '-5'}, 'face'),
    ('couponRate 1', {'couponRate': 1.0}, 'couponRate'),
    ('couponRate negative', {'couponRate': -0.5}, 'couponRate'),
    ('frequency 3', {'frequency': 3}, 'frequency'),
    ('merged zero coupon with a coupon', {'frequency': 0, 'firstCouponDate': ''}, 'couponRate'),
    ('dayCount unknown', {'dayCount': 'ACT_999'}, 'dayCount'),
    ('issueDate not a date', {'issueDate': '2021-13-01'}, 'issueDate'),
    ('issueDate after the stored maturity', {'issueDate': '2032-01-01'}, 'issueDate'),
    ('maturityDate before the stored issue', {'maturityDate': '2020-01-01'}, 'maturityDate'),
    ('issue == maturity', {'issueDate': '2025-01-01', 'maturityDate': '2025-01-01'},
     'maturityDate'),
    ('more than 100 years', {'maturityDate': '2130-06-15'}, 'maturityDate'),
    ('firstCouponDate off the schedule', {'firstCouponDate': '2021-12-20'}, 'firstCouponDate'),
    ('firstCouponDate after maturity', {'firstCouponDate': '2032-06-15'}, 'firstCouponDate'),
    ('firstCouponDate not a date', {'firstCouponDate': 'soon'}, 'firstCouponDate'),
    ('maturity moved off the stored firstCouponDate\'s schedule',
     {'maturityDate': '2031-06-20'}, 'firstCouponDate'),
    ('issue moved past the stored firstCouponDate', {'issueDate': '2021-12-16'},
     'firstCouponDate'),
]


def body_with(changes):
    b = dict(BASE)
    for k, v in changes.items():
        if v is None:
            b.pop(k, None)
        else:
            b[k] = v
    return b


def test_create_validation():
    n0 = count_bonds()
    for what, changes, field in CREATE_RULES:
        r = S.req('POST', '/bonds', body_with(changes))
        T.ok(r.status == 400 and stack.is_error_body(r, 3, field),
             'POST /bonds %s -> 400 naming %s' % (what, field), r)
    T.ok(count_bonds() == n0, 'POST /bonds: no bad bond stored (%d rows before and after)' % n0,
         count_bonds())
    r = S.req('POST', '/bonds', BASE)
    ok = T.ok(r.status == 200 and r.json.get('firstCouponDate') == '2021-12-15'
              and r.json.get('isin') == 'US0378331005',
              'POST /bonds valid terms (long first coupon) -> 200 with firstCouponDate', r)
    T.ok(count_bonds() == n0 + 1, 'POST /bonds: the valid bond is the one row added')
    return r.json['id'] if ok else None


def test_patch_validation(bid):
    before = S.req('GET', '/bonds/' + bid)
    n0 = count_bonds()
    for what, changes, field in PATCH_RULES:
        r = S.req('PATCH', '/bonds/' + bid, changes)
        T.ok(r.status == 400 and stack.is_error_body(r, 3, field),
             'PATCH /bonds/{id} %s -> 400 naming %s' % (what, field), r)
    after = S.req('GET', '/bonds/' + bid)
    T.ok(after.status == 200 and after.json == before.json,
         'PATCH /bonds/{id}: the row is unchanged after every bad update (updatedAt included)',
         '%r\n%r' % (before, after))
    T.ok(count_bonds() == n0, 'PATCH /bonds/{id}: row count unchanged')
    r = S.req('PATCH', '/bonds/' + bid, {'firstCouponDate': ''})
    T.ok(r.status == 200 and r.json.get('firstCouponDate', '') == '',
         'PATCH firstCouponDate "" clears it', r)
    r = S.req('PATCH', '/bonds/' + bid, {'firstCouponDate': '2021-12-15',
                                         'maturityDate': '2031-06-15'})
    T.ok(r.status == 200 and r.json.get('firstCouponDate') == '2021-12-15',
         'PATCH firstCouponDate sets it again', r)
    r = S.req('PATCH', '/bonds/' + bid, {'maturityDate': '2031-12-15'})
    T.ok(r.status == 200 and r.json.get('maturityDate') == '2031-12-15',
         'PATCH maturityDate keeping the firstCouponDate on the schedule -> 200', r)


# ---- QuantLib reference through the API ----------------------------------------------------

def test_reference(ref):
    cases = ref['cases']
    long_first = [c for c in cases if c['terms'].get('firstCouponDate')]
    T.diag('%d reference cases, %d with a firstCouponDate' % (len(cases), len(long_first)))
    T.ok(len(long_first) >= 20, 'the reference set has long first coupon cases')

    # Stateless, from the yield and from the quoted clean price.
    bad_y, bad_p = [], []
    for case in cases:
        body = {'terms': terms_of(case), 'settlementDate': case['settlementDate'],
                'yield': case['yield']}
        r = S.req('POST', '/bonds/analytics', body)
        c = Cmp()
        if r.status != 200:
            c.errors.append('HTTP %d %r' % (r.status, r))
        else:
            compare_analytics(c, case['id'], r.json, case)
        bad_y += c.errors[:3]
        body = {'terms': terms_of(case), 'settlementDate': case['settlementDate'],
                'cleanPrice': case['quotedCleanPrice']}
        r = S.req('POST', '/bonds/analytics', body)
        c = Cmp()
        if case['yieldFromPrice'] is None:
            if not (r.status == 400 and stack.is_error_body(r, 3, 'settlementDate')):
                c.errors.append('%s: undefined yield: %r' % (case['id'], r))
        elif r.status != 200:
            c.errors.append('%s: HTTP %d %r' % (case['id'], r.status, r))
        else:
            compare_analytics(c, case['id'] + ' from price', r.json, case, from_price=True)
        bad_p += c.errors[:3]
    T.ok(not bad_y, 'POST /bonds/analytics from the yield: %d reference cases within tolerance'
         % len(cases), '\n'.join(bad_y[:30]))
    T.ok(not bad_p, 'POST /bonds/analytics from the clean price: %d reference cases' %
         len(cases), '\n'.join(bad_p[:30]))

    # Stored: create each bond, price it with a given yield, then from a stored yield quote
    # dated the settlement date (cache miss, then hit: identical JSON).
    bad, created = [], 0
    for case in cases:
        t = terms_of(case)
        body = dict(t, name='QuantLib reference ' + case['id'], issuer='QuantLib',
                    currency='USD', face='100')
        r = S.req('POST', '/bonds', body)
        if r.status != 200:
            bad.append('%s: create: %r' % (case['id'], r))
            continue
        created += 1
        bid = r.json['id']
        c = Cmp()
        c.eq(case['id'] + ' stored firstCouponDate', r.json.get('firstCouponDate') or None,
             case['terms'].get('firstCouponDate'))
        r = S.req('GET', '/bonds/%s/analytics?%s' % (
            bid, q({'settlementDate': case['settlementDate'], 'yield': repr(case['yield'])})))
        if r.status != 200:
            c.errors.append('%s: GET with yield: %r' % (case['id'], r))
        else:
            compare_analytics(c, case['id'] + ' stored', r.json, case)
        r = S.req('PUT', '/bonds/%s/quotes' % bid,
                  {'quotes': [{'date': case['settlementDate'], 'yield': repr(case['yield'])}]})
        if r.status != 200:
            c.errors.append('%s: PUT quotes: %r' % (case['id'], r))
        r1 = S.req('GET', '/bonds/%s/analytics' % bid)
        r2 = S.req('GET', '/bonds/%s/analytics' % bid)
        if r1.status != 200:
            c.errors.append('%s: GET from the quote: %r' % (case['id'], r1))
        else:
            compare_analytics(c, case['id'] + ' quoted', r1.json, case)
            c.eq(case['id'] + ' quoteDate', r1.json.get('quoteDate'), case['settlementDate'])
            c.eq(case['id'] + ' cached reply', r2.body, r1.body)
        bad += c.errors[:3]
    T.ok(created == len(cases) and not bad,
         'stored reference bonds (%d created): GET /bonds/{id}/analytics with a yield, from the '
         'stored quote, and again from the cache' % created, '\n'.join(bad[:30]))


# ---- no quote, batch ------------------------------------------------------------------------

def new_bond(name, **kw):
    body = {'name': name, 'issuer': 'Test Issuer', 'currency': 'EUR', 'face': '1000',
            'couponRate': 0.04, 'frequency': 2, 'dayCount': 'THIRTY_E_360',
            'issueDate': '2020-03-15', 'maturityDate': '2035-03-15'}
    body.update(kw)
    r = S.req('POST', '/bonds', body)
    if r.status != 200:
        raise RuntimeError('create bond: %r' % r)
    return r.json['id']


def put_quote(bid, date, price=None, yld=None):
    qt = {'date': date}
    if price is not None:
        qt['cleanPrice'] = price
    else:
        qt['yield'] = yld
    return S.req('PUT', '/bonds/%s/quotes' % bid, {'quotes': [qt]})


def test_no_quote_and_batch():
    bid = new_bond('No Quote Bond')
    r = S.req('GET', '/bonds/%s/analytics' % bid)
    T.ok(r.status == 400 and stack.is_error_body(r, 9, 'yield'),
         'GET /bonds/{id}/analytics without a quote -> 400 FAILED_PRECONDITION naming yield', r)
    r = S.req('GET', '/bonds/%s/analytics?settlementDate=2024-01-02' % bid)
    T.ok(r.status == 400 and stack.is_error_body(r, 9, 'yield')
         and '2024-01-02' in r.json['message'],
         'GET analytics with a date and no quote -> 400 FAILED_PRECONDITION naming the date', r)
    r = S.req('GET', '/bonds/%s/analytics' % uuid.uuid4())
    T.ok(r.status == 404 and stack.is_error_body(r, 5), 'GET analytics of no bond -> 404', r)

    ids = [new_bond('Batch Bond %d' % i, couponRate=0.02 + 0.01 * i) for i in range(3)]
    put_quote(ids[0], '2024-03-01', price='99.5')
    put_quote(ids[1], '2024-02-01', yld='0.041')
    put_quote(ids[1], '2024-03-04', yld='0.043')  # after the settlement date below
    unknown = str(uuid.uuid4())
    want = ids + [unknown, 'not-a-uuid', ids[0].upper()]
    r = S.req('POST', '/bonds/batch-analytics', {'bondIds': want, 'settlementDate': '2024-03-01'})
    ok = T.ok(r.status == 200 and len(r.json.get('items', [])) == len(want),
              'POST /bonds/batch-analytics -> 200, one item per id', r)
    if not ok:
        return
    it = r.json['items']
    c = Cmp()
    for k in (0, 1):
        g = S.req('GET', '/bonds/%s/analytics?settlementDate=2024-03-01' % ids[k])
        c.eq('item %d == GET analytics' % k, it[k].get('analytics'), g.json)
        c.eq('item %d bond' % k, (it[k].get('bond') or {}).get('id'), ids[k])
    c.eq('item 1 quote before the settlement date', it[1]['analytics'].get('quoteDate'),
         '2024-02-01')
    c.eq('item 2 (no quote) code', it[2].get('errorCode'), 9)
    c.eq('item 3 (unknown) code', it[3].get('errorCode'), 5)
    c.eq('item 4 (bad id) code', it[4].get('errorCode'), 3)
    c.eq('item 5 (upper-case id) analytics', (it[5].get('analytics') or {}).get('cleanPrice'),
         it[0]['analytics'].get('cleanPrice'))
    T.ok(not c.errors, 'batch items: as GET analytics, quote on or before the date, per-item '
         'errors (9 no quote, 5 unknown, 3 bad id)', '\n'.join(c.errors))
    # A read of stored bonds: open to the client role, unlike the bond writes.
    r = S.req('POST', '/clients', {'name': 'fi test reader', 'role': 'client'})
    cid = r.json.get('id') if r.status == 200 else None
    r = S.req('POST', '/clients/%s/keys' % cid) if cid else r
    key = r.json.get('apiKey') if r.status == 200 else None
    if key is None:
        T.ok(False, 'a client-role key (POST /clients, POST /clients/{id}/keys)', r)
    else:
        r = S.req('POST', '/bonds/batch-analytics',
                  {'bondIds': ids[:1], 'settlementDate': '2024-03-01'}, key=key)
        w = S.req('POST', '/bonds', dict(BASE, isin='', name='Client Write'), key=key)
        T.ok(r.status == 200 and r.json['items'][0].get('errorCode', 0) == 0
             and w.status == 403,
             'client role: POST /bonds/batch-analytics -> 200, POST /bonds -> 403',
             '%r\n%r' % (r, w))
    r = S.req('POST', '/bonds/batch-analytics', {'bondIds': [str(uuid.uuid4())] * 1001})
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'bondIds'),
         'POST /bonds/batch-analytics with 1001 ids -> 400 naming bondIds', r)


# ---- the cache ------------------------------------------------------------------------------

def redis(*args):
    return stack.redis_cli(*args)


def clean_of(bid, extra=''):
    r = S.req('GET', '/bonds/%s/analytics%s' % (bid, extra))
    return r.json.get('cleanPrice') if r.status == 200 else r


def wait_for(pred, timeout=3.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_cache():
    bid = new_bond('Cached Bond')
    key, gkey = 'fi:quote:' + bid, 'fi:qgen:' + bid
    put_quote(bid, '2024-03-01', price='99.5')
    T.ok(redis('EXISTS', key) == '0', 'no cache entry before the first read')
    p1 = clean_of(bid)
    T.ok(near(p1, 99.5, 1e-9), 'GET analytics prices the quote', p1)
    T.ok(wait_for(lambda: redis('EXISTS', key) == '1'),
         'the read cached the bond under fi:quote:<id>')
    ttl = int(redis('TTL', key))
    T.ok(0 < ttl <= 300, 'the entry expires (TTL %d s)' % ttl)

    # Served from the cache: a change made behind the service's back is not seen ...
    fi_sql("UPDATE bond_quotes SET clean_price = 80 WHERE bond_id = '%s'" % bid)
    T.ok(near(clean_of(bid), 99.5, 1e-9), 'a cached read does not touch Postgres (old price)')
    # ... a settlement date before the cached quote needs Postgres (no quote then: 400) ...
    r = S.req('GET', '/bonds/%s/analytics?settlementDate=2024-02-01' % bid)
    T.ok(r.status == 400 and stack.is_error_body(r, 9, 'yield'),
         'a settlement date before the cached quote reads Postgres', r)
    # ... and a write invalidates it, bumping the generation, whatever the id's spelling.
    g0 = int(redis('GET', gkey) or 0)
    r = S.req('PUT', '/bonds/%s/quotes' % bid.upper(),
              {'quotes': [{'date': '2024-03-04', 'cleanPrice': '101.25'}]})
    T.ok(r.status == 200 and redis('EXISTS', key) == '0' and int(redis('GET', gkey)) == g0 + 1,
         'PUT quotes (upper-case id) deletes the entry and bumps the generation', r)
    T.ok(near(clean_of(bid), 101.25, 1e-9), 'the next read sees the new quote')
    r = S.req('PATCH', '/bonds/' + bid, {'couponRate': 0.045})
    T.ok(r.status == 200 and redis('EXISTS', key) == '0' and int(redis('GET', gkey)) == g0 + 2,
         'PATCH deletes the entry and bumps the generation', r)
    r = S.req('GET', '/bonds/%s/analytics?yield=0.05&settlementDate=2024-03-04' % bid)
    wait_for(lambda: redis('EXISTS', key) == '1')
    r2 = S.req('GET', '/bonds/%s/analytics?yield=0.05&settlementDate=2024-03-04' % bid)
    T.ok(r.status == 200 and r.body == r2.body and redis('EXISTS', key) == '1',
         'a read with a given yield caches and uses the terms too', r)

    # A batch: some bonds cached, some not; Postgres changed behind the service for all.
    ids = [new_bond('Cache Batch %d' % i) for i in range(6)]
    for b in ids:
        put_quote(b, '2024-03-01', price='99')
    for b in ids[:3]:
        clean_of(b)
    wait_for(lambda: all(redis('EXISTS', 'fi:quote:' + b) == '1' for b in ids[:3]))
    fi_sql("UPDATE bond_quotes SET clean_price = 90 WHERE bond_id IN (%s)" %
           ','.join("'%s'" % b for b in ids))
    r = S.req('POST', '/bonds/batch-analytics', {'bondIds': ids, 'settlementDate': '2024-03-01'})
    got = [it.get('analytics', {}).get('cleanPrice') for it in r.json['items']] \
        if r.status == 200 else r
    T.ok(isinstance(got, list) and all(near(x, 99, 1e-9) for x in got[:3])
         and all(near(x, 90, 1e-9) for x in got[3:]),
         'batch: hits from the cache, misses from Postgres', got)
    T.ok(wait_for(lambda: all(redis('EXISTS', 'fi:quote:' + b) == '1' for b in ids)),
         'batch: the misses are cached')

    test_cache_race()


class Locker:
    """A psql session holding ACCESS EXCLUSIVE on bonds until release()."""

    def __init__(self):
        self.p = subprocess.Popen(
            [stack.pg_bin('psql'), '-X', '-q', '-h', os.environ['TEST_PG_HOST'], '-p',
             os.environ['TEST_PG_PORT'], '-U', 'postgres', '-d', 'fixed_income'],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True)
        self.p.stdin.write('BEGIN;\nLOCK TABLE bonds IN ACCESS EXCLUSIVE MODE;\n'
                           "SET application_name = 'fi_test_locker';\n")
        self.p.stdin.flush()
        ok = wait_for(lambda: stack.psql(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'bonds' AND l.mode = 'AccessExclusiveLock' AND l.granted",
            db='fixed_income')[0][0] == '1', 5.0)
        if not ok:
            raise RuntimeError('lock not taken')

    def release(self):
        self.p.stdin.write('COMMIT;\n')
        self.p.stdin.close()
        self.p.wait(timeout=10)


def waiting_on_lock(n=1):
    rows = stack.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'fixed_income' "
                      "AND wait_event_type = 'Lock' AND application_name = 'fixed-income'",
                      db='fixed_income')
    return int(rows[0][0]) >= n


def read_in_thread(path, out):
    def run():
        out.append(S.req('GET', path, headers={'X-Timeout-Ms': '5000'}))
    t = threading.Thread(target=run)
    t.start()
    return t


def test_cache_race():
    """A reader that missed, then read Postgres while a write bumped the generation, must not
    cache what it read.  The reader is held inside its SQL by a table lock, so the write's
    invalidation (INCR of the generation after its commit) lands exactly in that window."""
    for bump in (False, True):
        bid = new_bond('Race Bond %s' % bump)
        put_quote(bid, '2024-03-01', price='99.5')
        key, gkey = 'fi:quote:' + bid, 'fi:qgen:' + bid
        redis('DEL', key)
        lock = Locker()
        out = []
        t = read_in_thread('/bonds/%s/analytics' % bid, out)
        blocked = wait_for(lambda: waiting_on_lock(1), 3.0)
        if bump:
            redis('INCR', gkey)  # what a quote write does once it has committed
        lock.release()
        t.join(10)
        r = out[0] if out else None
        time.sleep(0.3)  # the fill is sent with the reply: let Redis run it
        cached = redis('EXISTS', key) == '1'
        ok = blocked and r is not None and r.status == 200 and near(r.json['cleanPrice'], 99.5,
                                                                       1e-9)
        if bump:
            T.ok(ok and not cached, 'race: generation moved during the reader\'s SQL -> '
                 'the reader answers but does not cache', '%s %r cached=%s' % (blocked, r, cached))
        else:
            T.ok(ok and cached, 'race control: generation unchanged -> the reader caches',
                 '%s %r cached=%s' % (blocked, r, cached))

    # The real interleaving, whichever way it falls: a read and a quote write released at
    # the same instant; afterwards every read sees the written quote.
    fails = []
    for i in range(5):
        bid = new_bond('Race Loop %d' % i)
        put_quote(bid, '2024-03-01', price='99.5')
        redis('DEL', 'fi:quote:' + bid)
        lock = Locker()
        out = []
        t = read_in_thread('/bonds/%s/analytics' % bid, out)
        wait_for(lambda: waiting_on_lock(1), 3.0)
        w = []
        tw = threading.Thread(target=lambda: w.append(S.req(
            'PUT', '/bonds/%s/quotes' % bid,
            {'quotes': [{'date': '2024-03-04', 'cleanPrice': '101'}]})))
        tw.start()
        wait_for(lambda: waiting_on_lock(2), 3.0)
        lock.release()
        t.join(10)
        tw.join(10)
        time.sleep(0.2)
        for _ in range(3):
            p = clean_of(bid)
            if not near(p, 101, 1e-9):
                fails.append('%s: read %r after the write (%r)' % (bid, p, w))
                break
    T.ok(not fails, 'race: concurrent read and write, then every read sees the write (5 runs)',
         '\n'.join(fails))


# ---- DeleteBond and the portfolio service -------------------------------------------------

def count_holders_works(bid):
    """True if the portfolio service answers CountHolders (grpcio, raw bytes)."""
    try:
        import grpc
    except ImportError:
        return None
    req = b'\x08\x02' + b'\x12' + bytes([len(bid)]) + bid.encode()
    ch = grpc.insecure_channel(S.addr('portfolio'))
    try:
        f = ch.unary_unary('/portfolio.v1.HoldingsService/CountHolders')
        f(req, timeout=5)
        return True
    except grpc.RpcError as e:
        T.diag('CountHolders: %s %s' % (e.code(), e.details()))
        return False
    finally:
        ch.close()


def test_delete_held():
    bid = new_bond('Held Bond')
    put_quote(bid, '2024-03-01', price='99')
    clean_of(bid)
    works = count_holders_works(bid)
    if not works:
        for what in ('DELETE held bond -> 400 FAILED_PRECONDITION',
                     'DELETE unheld bond -> 200 and gone'):
            T.skip(what, 'portfolio.v1.HoldingsService/CountHolders not answering OK yet')
    else:
        r = S.req('POST', '/portfolios', {'name': 'Holder', 'baseCurrency': 'EUR'})
        pid = r.json.get('id') if r.status == 200 else None
        if pid is None:
            T.ok(False, 'POST /portfolios for the holder', r)
            return
        stack.psql("INSERT INTO constituents (portfolio_id, instrument_type, instrument_id, "
                   "quantity) VALUES ('%s', 'BOND', '%s', 1000)" % (pid, bid), db='portfolio')
        r = S.req('DELETE', '/bonds/' + bid)
        T.ok(r.status == 400 and stack.is_error_body(r, 9) and 'held' in r.json['message']
             and S.req('GET', '/bonds/' + bid).status == 200,
             'DELETE /bonds/{id} held in a portfolio -> 400 FAILED_PRECONDITION, still there', r)
        stack.psql("DELETE FROM constituents WHERE instrument_id = '%s'" % bid, db='portfolio')
        r = S.req('DELETE', '/bonds/' + bid)
        T.ok(r.status == 200 and S.req('GET', '/bonds/' + bid).status == 404
             and int(fi_sql("SELECT count(*) FROM bond_quotes WHERE bond_id = '%s'" % bid)[0][0])
             == 0 and redis('EXISTS', 'fi:quote:' + bid) == '0',
             'DELETE /bonds/{id} no longer held -> 200, bond, quotes and cache entry gone', r)

    other = new_bond('Undeletable While Portfolio Down')
    S.stop('portfolio')
    n0 = count_bonds()
    r = S.req('DELETE', '/bonds/' + other)
    T.ok(r.status == 503 and stack.is_error_body(r, 14)
         and r.json['message'].startswith('portfolio service unavailable')
         and count_bonds() == n0 and S.req('GET', '/bonds/' + other).status == 200,
         'DELETE /bonds/{id} with the portfolio service down -> 503 UNAVAILABLE naming the '
         'portfolio service, nothing deleted', r)
    g = S.req('GET', '/bonds/' + other)
    T.ok(g.status == 200, 'the fixed-income service is not taken for down by the gateway', g)
    S.restart('portfolio')
    if works:
        ok = False
        for _ in range(50):
            r = S.req('DELETE', '/bonds/' + other)
            if r.status == 200:
                ok = True
                break
            time.sleep(0.1)
        T.ok(ok and S.req('GET', '/bonds/' + other).status == 404,
             'DELETE succeeds once the portfolio service is back', r)


def main():
    global S
    ap = argparse.ArgumentParser()
    ap.add_argument('--reference', required=True)
    for name in ('gateway', 'equity', 'fi', 'portfolio'):
        ap.add_argument('--' + name, required=True)
    a = ap.parse_args()
    bins = {'gateway': a.gateway, 'equity': a.equity, 'fixed_income': a.fi,
            'portfolio': a.portfolio}
    for k, v in bins.items():
        if not os.path.exists(v):
            print('1..0 # SKIP %s binary %s missing' % (k, v))
            return 0
    with open(a.reference) as f:
        ref = json.load(f)
    S = stack.Stack(bins, tap=T)
    S.start_all()
    bid = test_create_validation()
    if bid is not None:
        test_patch_validation(bid)
    test_no_quote_and_batch()
    test_cache()
    test_delete_held()
    test_reference(ref)
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
