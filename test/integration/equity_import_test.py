# SPDX-License-Identifier: MIT
"""POST /imports/prices end to end (TAP): the gateway, fsr-equity (the CSV and the job's row
in one transaction), a real fsr-worker --queue equity (parse, check, resolve symbols, one
upsert, result), GET /jobs/{id}, the quote cache and price.updated, against with_deps.sh's
PostgreSQL and Redis (stack.py).

    with_deps.sh --pg --redis -- python3 equity_import_test.py --gateway G --equity E
        --fi F --portfolio P --worker W
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

T = stack.Tap()


def wait_job(s, job_id, timeout=30.0):
    """Polls GET /jobs/{id} until SUCCEEDED or DEAD; returns the last answer."""
    deadline = time.time() + timeout
    r = None
    while time.time() < deadline:
        r = s.req('GET', '/jobs/' + job_id)
        if r.status == 200 and r.json.get('state') in ('SUCCEEDED', 'DEAD'):
            return r
        time.sleep(0.1)
    return r


def create(s, symbol, exchange, sector='Testing'):
    r = s.req('POST', '/equities', {'symbol': symbol, 'name': symbol + ' Inc.', 'exchange': exchange,
                                    'currency': 'USD', 'sector': sector})
    if not T.ok(r.status == 200, 'create %s on %s' % (symbol, exchange), r):
        raise SystemExit(T.done())
    return r.json['id']


def run_import(s, body, what):
    r = s.req('POST', '/imports/prices', body)
    T.ok(r.status == 200 and r.json.get('state') == 'QUEUED' and
         r.json.get('type') == 'equity.import_prices' and len(r.json.get('id', '')) == 36,
         '%s: POST /imports/prices answers the QUEUED job' % what, r)
    if r.status != 200:
        return None
    j = wait_job(s, r.json['id'])
    ok = T.ok(j is not None and j.status == 200 and j.json.get('state') == 'SUCCEEDED' and
              j.json.get('attempts') == 1, '%s: GET /jobs/{id} reaches SUCCEEDED' % what, j)
    return j.json.get('result') if ok else None


def main():
    ap = argparse.ArgumentParser()
    for name in ('gateway', 'equity', 'fi', 'portfolio', 'worker'):
        ap.add_argument('--' + name, required=True)
    a = ap.parse_args()
    s = stack.Stack({'gateway': a.gateway, 'equity': a.equity, 'fixed_income': a.fi,
                     'portfolio': a.portfolio, 'worker': a.worker}, tap=T)
    s.start_all(workers=True)

    aaa_nas = create(s, 'IMPAAA', 'XNAS')
    aaa_nys = create(s, 'IMPAAA', 'XNYS')
    bbb = create(s, 'IMPBBB', 'XNAS')
    brk = create(s, 'IMP.B', 'XNYS')  # a symbol that holds a dot
    create(s, 'IMPCCC', 'XLON')

    csv = '\n'.join([
        'symbol,date,open,high,low,close,volume',          # 1 header
        'IMPAAA.XNAS,2024-01-02,10,11,9,10.5,1000',        # 2 ok: SYMBOL.EXCHANGE
        'IMPBBB,2024-01-02,20,21,19,20.5,2000',            # 3 ok
        'IMPAAA,2024-01-02,10,11,9,10.5,1000',             # 4 ambiguous
        'IMPBBB,2024-13-01,20,21,19,20.5,2000',            # 5 bad date
        'IMPBBB,2024-01-03,20,19.5,19,19.8,100',           # 6 high < open
        '   ',                                             # 7 blank: skipped
        'IMPBBB,2024-01-04,20,21,19,20.5,-5',              # 8 negative volume
        'IMPZZZ,2024-01-04,1,1,1,1,1',                     # 9 unknown symbol
        'IMPBBB,2024-01-02,20,21,19,20.6,2000',            # 10 same equity and date as 3
        'imp.b,2024-01-02,300,310,290,305,10',             # 11 ok: dotted symbol, lower case
        'IMPCCC,2024-01-02,1,2,3',                         # 12 too few fields
        '"IMPBBB","2024-01-05","20.00","21","19","20.5",', # 13 ok: quoted, empty volume = 0
        'IMPBBB,2024-01-08,0,1,1,1,1',                     # 14 open 0
        'IMPAAA.XNYS,2024-01-02,50,51,49,50.5,7\r',        # 15 ok: CRLF
    ]) + '\n'
    res = run_import(s, {'csv': csv}, 'first import')
    if res is None:
        return T.done()
    T.ok(res.get('accepted') == 5 and res.get('inserted') == 5 and res.get('updated') == 0 and
         res.get('unchanged') == 0 and res.get('rows') == 13 and res.get('lines') == 15,
         'counts: 5 accepted and inserted, 13 data rows, 15 lines', res)
    rejected = res.get('rejected') or []
    lines = [x.get('line') for x in rejected]
    T.ok(res.get('rejectedCount') == 8 and lines == [4, 5, 6, 8, 9, 10, 12, 14],
         'every rejected line, by number, in order', rejected)
    why = {x.get('line'): x.get('reason', '') for x in rejected}
    expect = {4: ('several exchanges', 'XNAS', 'XNYS'), 5: ('date',), 6: ('high',),
              8: ('volume', '>= 0'), 9: ('unknown symbol', 'IMPZZZ'), 10: ('line 3',),
              12: ('7 fields', 'found 5'), 14: ('open', '> 0')}
    T.ok(all(all(w in why.get(n, '') for w in words) for n, words in expect.items()),
         'each rejection names its reason', why)

    r = s.req('GET', '/equities/%s/prices' % bbb)
    bars = r.json.get('bars', []) if r.status == 200 else []
    T.ok([(b['date'], b['close'], b.get('volume', '0')) for b in bars] ==
         [('2024-01-02', '20.5', '2000'), ('2024-01-05', '20.5', '0')],
         'the good rows are stored, the duplicate line is not', r)
    r = s.req('GET', '/equities/%s/prices' % brk)
    T.ok(r.status == 200 and [b['close'] for b in r.json.get('bars', [])] == ['305'],
         'a symbol holding a dot matches as a whole', r)
    for eid, close in ((aaa_nas, '10.5'), (aaa_nys, '50.5')):
        r = s.req('GET', '/equities/%s/prices' % eid)
        T.ok(r.status == 200 and [b['close'] for b in r.json.get('bars', [])] == [close],
             'SYMBOL.EXCHANGE picks the listing', r)

    # The same file again: nothing changes, not even updated_at.
    before = stack.psql("SELECT count(*), max(updated_at) FROM price_bars", db='equity')
    res = run_import(s, {'csv': csv}, 're-import')
    T.ok(res is not None and res.get('accepted') == 5 and res.get('unchanged') == 5 and
         res.get('inserted') == 0 and res.get('updated') == 0 and res.get('equities') == 0 and
         res.get('rejectedCount') == 8, 're-import: 5 unchanged, nothing written', res)
    after = stack.psql("SELECT count(*), max(updated_at) FROM price_bars", db='equity')
    T.ok(before == after, 'no bar was rewritten (count and updated_at as before)', (before, after))

    # A changed close: the cached quote is invalidated and price.updated published.
    r = s.req('GET', '/equities/%s/quote' % bbb)
    T.ok(r.status == 200 and r.json.get('close') == '20.5' and r.json.get('date') == '2024-01-05',
         'quote before the change (now cached)', r)
    T.ok(stack.redis_cli('EXISTS', 'eq:quote:' + bbb) == '1', 'the quote is cached')
    sub = subprocess.Popen(['redis-cli', '-h', os.environ['TEST_REDIS_HOST'], '-p',
                            os.environ['TEST_REDIS_PORT'], 'SUBSCRIBE', 'price.updated'],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.5)
    res = run_import(s, {'csv': 'IMPBBB,2024-01-05,20,21,19,20.75,300\n'
                                'IMPBBB,2024-01-09,20.75,21,20,20.9,400\n'}, 'changed import')
    T.ok(res is not None and res.get('accepted') == 2 and res.get('inserted') == 1 and
         res.get('updated') == 1 and res.get('equities') == 1 and res.get('rejected') == [],
         'changed import: 1 inserted, 1 updated, no header needed', res)
    r = s.req('GET', '/equities/%s/quote' % bbb)
    T.ok(r.status == 200 and r.json.get('close') == '20.9' and r.json.get('date') == '2024-01-09'
         and r.json.get('previousClose') == '20.75', 'the quote shows the import at once', r)
    time.sleep(0.5)
    sub.terminate()
    out = sub.communicate(timeout=10)[0]
    want = '{"id":"%s","from":"2024-01-05","to":"2024-01-09"}' % bbb
    T.ok(want in out, 'price.updated published for the changed equity', out)

    # The import's exchange resolves a symbol listed twice.
    res = run_import(s, {'csv': 'IMPAAA,2024-01-03,10,12,9,11,5\n', 'exchange': 'XNYS'},
                     'import with exchange')
    T.ok(res is not None and res.get('accepted') == 1 and res.get('rejectedCount') == 0,
         'the exchange picks the listing', res)
    r = s.req('GET', '/equities/%s/prices?from=2024-01-03' % aaa_nys)
    T.ok(r.status == 200 and [b['close'] for b in r.json.get('bars', [])] == ['11'],
         'stored on the XNYS listing', r)

    # A file of only bad lines still succeeds, with every line reported.
    res = run_import(s, {'csv': 'symbol,date,close\nIMPBBB,2024-01-10,1,1,1,1,1\n'},
                     'bad header')
    T.ok(res is not None and res.get('accepted') == 1 and
         [x.get('line') for x in res.get('rejected', [])] == [1] and
         'header' in res['rejected'][0].get('reason', ''),
         'a wrong header is reported as line 1, the rows still read', res)

    # Request errors: nothing queued.
    jobs_before = stack.psql("SELECT count(*) FROM jobs", db='equity')
    r = s.req('POST', '/imports/prices', {'csv': ''})
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'csv'), 'empty csv is 400 naming csv', r)
    r = s.req('POST', '/imports/prices', {'csv': 'x', 'exchange': 'X Y'})
    T.ok(r.status == 400 and stack.is_error_body(r, 3, 'exchange'), 'bad exchange is 400', r)
    T.ok(stack.psql("SELECT count(*) FROM jobs", db='equity') == jobs_before,
         'refused requests create no job')
    T.ok(stack.psql("SELECT count(*) FROM price_imports p LEFT JOIN jobs j ON j.id = p.job_id"
                    " WHERE j.id IS NULL", db='equity') == [['0']],
         'every stored file has its job')
    r = s.req('GET', '/jobs/01900000-0000-8100-8000-000000000000')
    T.ok(r.status == 404, 'unknown job is 404', r)

    # A text/csv body: the gateway puts it in the request's csv field; exchange from the query.
    r = s.req('POST', '/imports/prices?exchange=XNYS',
              'symbol,date,open,high,low,close,volume\nIMPAAA,2024-01-05,12,13,11,12.5,700\n',
              ctype='text/csv; charset=utf-8')
    T.ok(r.status == 200 and r.json.get('state') == 'QUEUED', 'text/csv body: the QUEUED job', r)
    j = wait_job(s, r.json['id']) if r.status == 200 else None
    res = (j.json or {}).get('result', {}) if j is not None else {}
    bar = stack.psql("SELECT close::float8 FROM price_bars b JOIN equities e ON e.id = b.equity_id"
                     " WHERE e.symbol = 'IMPAAA' AND e.exchange = 'XNYS'"
                     " AND b.date = '2024-01-05'", db='equity')
    T.ok(res.get('accepted') == 1 and res.get('inserted') == 1 and bar == [['12.5']],
         'text/csv body: imported for the query\'s exchange', res)
    r = s.req('POST', '/imports/prices', 'x\n', ctype='text/plain')
    T.ok(r.status == 415, 'another non-JSON type is still 415', r)
    r = s.req('POST', '/equities', 'a,b\n', ctype='text/csv')
    T.ok(r.status == 415, 'text/csv on another route is 415', r)
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
