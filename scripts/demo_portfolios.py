#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The demo client and its two mixed portfolios, through the REST gateway (standard library).

    scripts/demo_portfolios.py [--gateway URL] [--end YYYY-MM-DD] [--key-file PATH] [--json]

Runs after scripts/demo_universe.py (scripts/demo-data.sh runs both; `make up` runs that):

  * a client "Demo client" (role client), created with the admin key through POST /clients;
    its API key goes to the git-ignored .run/demo_client_key (mode 0600; --key-file), which
    `make up` prints next to the admin key.  If the client exists but the file is missing or
    its key no longer works, a new key is made (POST /clients/{id}/keys);
  * as that client, two portfolios in USD with targets and a benchmark from the demo
    universe: "Demo balanced" (four equities, two bonds; instrument targets; benchmark 60%
    FSR500 + 40% UST2034) and "Demo income" (three equities, three bonds; asset-class
    targets; benchmark 40% FSR500 + 60% UST2029);
  * a year of ledger up to --end through POST /portfolios/{id}/transactions: the opening
    DEPOSIT and BUYs, a top-up DEPOSIT and more BUYs, a partial SELL, every DIVIDEND paid on
    the equities held (the universe's dividends x shares) and every COUPON of the bonds held
    (face x coupon / frequency on the schedule's dates), a FEE and a WITHDRAWAL.  Equities
    trade at the universe's close of the day; bonds at the dirty price per 100 of face that
    GET /bonds/{id}/analytics gives for that day's quoted yield.

Deterministic: the plan is a pure function of --end and the universe (scripts/demo_universe.py
generates the same bars and dividends as it stored).  Idempotent: the client and portfolios
are looked up by name first, every create carries an Idempotency-Key, and a portfolio's
ledger is read back first: only the planned transactions beyond those already recorded are
posted, so a second run creates nothing.  (A run with a later --end against an existing
ledger adds nothing either: the ledger is then already at least as long as the plan.)

Environment: GATEWAY_URL (default http://127.0.0.1:${GATEWAY_PORT:-8000}); ADMIN_API_KEY, else
.run/admin_api_key; DEMO_CLIENT_KEY_FILE (the default of --key-file).  Exit status 0, or 1
when a request failed.
"""
import argparse
import datetime as dt
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from decimal import ROUND_HALF_UP, Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_universe as U  # noqa: E402

CLIENT_NAME = 'Demo client'
BOND_TERMS = {b[0]: b for b in U.BONDS}

# name, [(symbol, exchange, share of the opening deposit, target)], [(bond key, share of the
# opening deposit, target)], asset-class targets, benchmark [(symbol or bond key, weight)],
# opening deposit, top-up deposit.  Quantities: the share of the deposit at the day's price,
# rounded down to whole shares (bonds: 1,000 of face).
PORTFOLIOS = [
    ('Demo balanced',
     [('MEDQ', 'XNYS', 0.15, 0.15), ('BKRG', 'XNYS', 0.15, 0.15),
      ('VOLT', 'XNYS', 0.15, 0.15), ('AXLE', 'XNYS', 0.15, 0.15)],
     [('UST2034', 0.20, 0.20), ('ACME2030', 0.15, 0.15)],
     None,
     [('FSR500', 0.6), ('UST2034', 0.4)],
     '500000.00', '40000.00'),
    ('Demo income',
     [('HMGD', 'XNYS', 0.15, None), ('SEMX', 'XNAS', 0.12, None),
      ('AQUA', 'XNYS', 0.13, None)],
     [('UST2029', 0.25, None), ('MUNI2032', 0.15, None), ('CORP2036', 0.12, None)],
     [('EQUITY', 0.40), ('FIXED_INCOME', 0.55)],
     [('FSR500', 0.4), ('UST2029', 0.6)],
     '450000.00', '25000.00'),
]


class Api:
    def __init__(self, base, key):
        self.base = base.rstrip('/')
        self.key = key
        self.failures = 0

    def call(self, method, path, body=None, ok=(200,), key=None, idem=None, quiet=False):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header('Authorization', 'Bearer ' + (key or self.key))
        req.add_header('Accept', 'application/json')
        if data is not None:
            req.add_header('Content-Type', 'application/json')
        if idem:
            req.add_header('Idempotency-Key', idem)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        except OSError as e:
            raise SystemExit('demo_portfolios: %s %s: %s' % (method, path, e))
        try:
            j = json.loads(text) if text else {}
        except ValueError:
            j = {}
        if status not in ok and not quiet:
            self.failures += 1
            print('demo_portfolios: %s %s -> HTTP %d %s' % (method, path, status, text[:300]),
                  file=sys.stderr)
        return status, j


def money(x):
    return str(Decimal(x).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP))


def add_months(d, months):
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    day = min(d.day, [31, 29 if y % 4 == 0 and (y % 100 or y % 400 == 0) else 28, 31, 30, 31,
                      30, 31, 31, 30, 31, 30, 31][m - 1])
    return dt.date(y, m, day)


def coupon_dates(key, start, end):
    """Coupon dates of bond |key| in (start, end]: backward from maturity, unadjusted."""
    b = BOND_TERMS[key]
    freq, maturity = b[5], dt.date.fromisoformat(b[8])
    if freq == 0:
        return []
    out, k = [], 0
    while True:
        d = add_months(maturity, -12 // freq * k)
        if d <= start:
            break
        if d <= end:
            out.append(d)
        k += 1
    return sorted(out)


def trading_day(bars_by_date, d):
    """The first date on or after |d| with a bar."""
    for _ in range(10):
        if d.isoformat() in bars_by_date:
            return d
        d += dt.timedelta(days=1)
    raise SystemExit('demo_portfolios: no bar near %s (is --end the universe\'s end?)' % d)


def plan(api, end, ids, data):
    """The transactions of every portfolio, in date order (a list per portfolio name)."""
    start = end.replace(year=end.year - 1) + dt.timedelta(days=7)
    any_bars = {b['date']: b for b in data['FSR500']['bars']}
    d0 = trading_day(any_bars, start)
    d_top = trading_day(any_bars, d0 + dt.timedelta(days=120))
    d_fee = trading_day(any_bars, d0 + dt.timedelta(days=91))
    d_sell = trading_day(any_bars, d0 + dt.timedelta(days=200))
    d_wd = trading_day(any_bars, d0 + dt.timedelta(days=280))
    bond_px = {}

    def bond_price(key, d):
        if (key, d) in bond_px:
            return bond_px[key, d]
        bid = ids[key]
        st, q = api.call('GET', '/bonds/%s/quotes?%s' % (bid, urllib.parse.urlencode(
            {'from': (d - dt.timedelta(days=7)).isoformat(), 'to': d.isoformat()})))
        quotes = sorted(q.get('quotes', []), key=lambda x: x['date']) if st == 200 else []
        if not quotes:
            raise SystemExit('demo_portfolios: no quote for %s near %s' % (key, d))
        y = quotes[-1]['yield']
        st, a = api.call('GET', '/bonds/%s/analytics?%s' % (bid, urllib.parse.urlencode(
            {'settlementDate': d.isoformat(), 'yield': y})))
        if st != 200 or 'dirtyPrice' not in a:
            raise SystemExit('demo_portfolios: no analytics for %s on %s' % (key, d))
        px = '%.6f' % float(a['dirtyPrice'])
        bond_px[key, d] = px
        return px

    def close(sym, d):
        return {b['date']: b for b in data[sym]['bars']}[d.isoformat()]['close']

    out = {}
    for name, equities, bonds, _, _, deposit, topup in PORTFOLIOS:
        txs = [{'type': 'DEPOSIT', 'date': d0.isoformat(), 'amount': deposit,
                'note': 'opening deposit'}]
        qty = {}
        for sym, _, share, _ in equities:
            px = close(sym, d0)
            qty[sym] = int(Decimal(deposit) * Decimal(str(share)) / Decimal(px))
            txs.append({'type': 'BUY', 'date': d0.isoformat(), 'instrumentType': 'EQUITY',
                        'instrumentId': ids[sym], 'quantity': str(qty[sym]), 'price': px})
        for key, share, _ in bonds:
            px = bond_price(key, d0)
            qty[key] = int(Decimal(deposit) * Decimal(str(share)) * 100 / Decimal(px) /
                           1000) * 1000
            txs.append({'type': 'BUY', 'date': d0.isoformat(), 'instrumentType': 'BOND',
                        'instrumentId': ids[key], 'quantity': str(qty[key]), 'price': px})
        txs.append({'type': 'FEE', 'date': d_fee.isoformat(), 'amount': '250.00',
                    'note': 'quarterly custody fee'})
        txs.append({'type': 'DEPOSIT', 'date': d_top.isoformat(), 'amount': topup,
                    'note': 'top-up'})
        # The top-up buys more of the first equity and the first bond.
        sym0 = equities[0][0]
        add_shares = int(Decimal(topup) / 2 / Decimal(close(sym0, d_top)))
        txs.append({'type': 'BUY', 'date': d_top.isoformat(), 'instrumentType': 'EQUITY',
                    'instrumentId': ids[sym0], 'quantity': str(add_shares),
                    'price': close(sym0, d_top)})
        key0 = bonds[0][0]
        txs.append({'type': 'BUY', 'date': d_top.isoformat(), 'instrumentType': 'BOND',
                    'instrumentId': ids[key0], 'quantity': '10000',
                    'price': bond_price(key0, d_top)})
        # A partial sale of the second equity.
        sym1 = equities[1][0]
        sold = qty[sym1] // 5
        txs.append({'type': 'SELL', 'date': d_sell.isoformat(), 'instrumentType': 'EQUITY',
                    'instrumentId': ids[sym1], 'quantity': str(sold),
                    'price': close(sym1, d_sell)})
        txs.append({'type': 'WITHDRAWAL', 'date': d_wd.isoformat(), 'amount': '15000.00',
                    'note': 'client withdrawal'})
        # Income: dividends paid on the shares held at the ex-date, coupons on the face held.
        for sym, _, _, _ in equities:
            for dv in data[sym]['dividends']:
                ex, pay = dt.date.fromisoformat(dv['exDate']), dt.date.fromisoformat(dv['payDate'])
                if ex <= d0 or pay > end:
                    continue
                held = qty[sym]
                if sym == sym0 and ex > d_top:
                    held += add_shares
                if sym == sym1 and ex > d_sell:
                    held -= sold
                txs.append({'type': 'DIVIDEND', 'date': pay.isoformat(),
                            'instrumentType': 'EQUITY', 'instrumentId': ids[sym],
                            'amount': money(Decimal(dv['amount']) * held),
                            'note': 'dividend %s x %d' % (dv['amount'], held)})
        for key, _, _ in bonds:
            b = BOND_TERMS[key]
            for cd in coupon_dates(key, d0, end):
                held = qty[key] + (10000 if key == key0 and cd > d_top else 0)
                txs.append({'type': 'COUPON', 'date': cd.isoformat(), 'instrumentType': 'BOND',
                            'instrumentId': ids[key],
                            'amount': money(Decimal(held) * Decimal(str(b[4])) / b[5]),
                            'note': 'coupon on %d face' % held})
        order = {'DEPOSIT': 0, 'SELL': 1, 'DIVIDEND': 2, 'COUPON': 2, 'BUY': 3, 'FEE': 4,
                 'WITHDRAWAL': 5}
        txs.sort(key=lambda t: (t['date'], order[t['type']]))  # stable: planned order kept
        out[name] = txs
    return out


def read_key(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ''


def write_key(path, key):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(key + '\n')
    os.chmod(path, 0o600)


def ensure_client(api, key_file, n, log):
    """The demo client's id and a working API key (stored in |key_file|)."""
    cid, page = None, ''
    while cid is None:
        st, j = api.call('GET', '/clients?' + urllib.parse.urlencode(
            {'pageSize': 1000, 'pageToken': page}))
        if st != 200:
            return None, None
        for c in j.get('clients', []):
            if c.get('name') == CLIENT_NAME and c.get('role', 'client') == 'client':
                cid = c['id']
                break
        page = j.get('nextPageToken', '')
        if not page:
            break
    if cid is None:
        st, j = api.call('POST', '/clients', {'name': CLIENT_NAME, 'role': 'client'},
                         idem='demo-client')
        if st != 200 or not j.get('apiKey'):
            return None, None
        write_key(key_file, j['apiKey'])
        n['clientCreated'] = 1
        log('  demo client %s created; key in %s' % (j['id'], key_file))
        return j['id'], j['apiKey']
    key = read_key(key_file)
    if key:
        st, _ = api.call('GET', '/portfolios?pageSize=1', key=key, quiet=True)
        if st == 200:
            log('  demo client %s exists; key in %s' % (cid, key_file))
            return cid, key
    st, j = api.call('POST', '/clients/%s/keys' % cid, {})
    if st != 200 or not j.get('apiKey'):
        return None, None
    write_key(key_file, j['apiKey'])
    n['keysCreated'] = 1
    log('  demo client %s exists; new key in %s' % (cid, key_file))
    return cid, j['apiKey']


def list_all(api, path, field, key):
    out, page = [], ''
    while True:
        sep = '&' if '?' in path else '?'
        st, j = api.call('GET', path + sep + urllib.parse.urlencode(
            {'pageSize': 1000, 'pageToken': page}), key=key)
        if st != 200:
            return None
        out += j.get(field, [])
        page = j.get('nextPageToken', '')
        if not page:
            return out


def load(api, end, key_file, log):
    n = {'clientCreated': 0, 'keysCreated': 0, 'portfolios': 0, 'portfoliosCreated': 0,
         'transactions': 0, 'transactionsCreated': 0}
    cid, ckey = ensure_client(api, key_file, n, log)
    if cid is None:
        return n, None
    n['clientId'] = cid
    ids = {}
    for _, equities, bonds, _, bench, _, _ in PORTFOLIOS:
        for sym, ex, _, _ in equities + [(U.INDEX[0], U.INDEX[2], 0, 0)]:
            if sym not in ids:
                ids[sym] = U.find_equity(api, sym, ex)
        for key, _, _ in bonds + [(k, 0, 0) for k, _ in bench if k in BOND_TERMS]:
            if key not in ids:
                b = BOND_TERMS[key]
                ids[key] = U.find_bond(api, b[1] + U.isin_check_digit(b[1]))
    missing = sorted(k for k, v in ids.items() if v is None)
    if missing:
        print('demo_portfolios: not in the universe (run demo_universe.py first): %s' %
              ', '.join(missing), file=sys.stderr)
        api.failures += 1
        return n, cid
    data = U.generate(end, 1)
    txplan = plan(api, end, ids, data)
    existing = {p['name']: p for p in (list_all(api, '/portfolios', 'portfolios', ckey) or [])}
    for name, equities, bonds, classes, bench, _, _ in PORTFOLIOS:
        p = existing.get(name)
        if p is None:
            targets = [{'instrumentType': 'EQUITY', 'instrumentId': ids[s], 'weight': w}
                       for s, _, _, w in equities if w is not None]
            targets += [{'instrumentType': 'BOND', 'instrumentId': ids[k], 'weight': w}
                        for k, _, w in bonds if w is not None]
            targets += [{'assetClass': c, 'weight': w} for c, w in classes or []]
            comps = [{'instrumentType': 'BOND' if k in BOND_TERMS else 'EQUITY',
                      'instrumentId': ids[k], 'weight': w} for k, w in bench]
            st, p = api.call('POST', '/portfolios', {
                'name': name, 'baseCurrency': 'USD', 'cash': '0', 'targets': targets,
                'benchmark': {'components': comps}}, key=ckey, idem='demo-portfolio-' + name)
            if st != 200:
                continue
            n['portfoliosCreated'] += 1
        n['portfolios'] += 1
        pid = p['id']
        have = list_all(api, '/portfolios/%s/transactions' % pid, 'transactions', ckey)
        if have is None:
            continue
        todo = txplan[name][len(have):]
        for i, tx in enumerate(txplan[name]):
            if i < len(have):
                continue
            st, _ = api.call('POST', '/portfolios/%s/transactions' % pid, tx, key=ckey,
                             idem='demo-%s-tx-%d-%s' % (pid, i, tx['date']))
            if st != 200:
                break
            n['transactionsCreated'] += 1
        n['transactions'] += max(len(have), len(txplan[name]))
        log('  %-14s %s  %d transactions (%d new)' % (name, pid, max(len(have), len(
            txplan[name])), len(todo)))
    return n, cid


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--gateway', default=os.environ.get(
        'GATEWAY_URL', 'http://127.0.0.1:%s' % os.environ.get('GATEWAY_PORT', '8000')))
    ap.add_argument('--end', type=dt.date.fromisoformat, default=None,
                    help='last date of the ledger (default: the last business day, as '
                         'demo_universe.py)')
    ap.add_argument('--key-file', default=os.environ.get('DEMO_CLIENT_KEY_FILE') or
                    os.path.join(root, '.run', 'demo_client_key'))
    ap.add_argument('--json', action='store_true', help='print the summary as JSON')
    a = ap.parse_args()
    key = os.environ.get('ADMIN_API_KEY', '') or read_key(os.path.join(root, '.run',
                                                                       'admin_api_key'))
    if not key:
        sys.exit('demo_portfolios: ADMIN_API_KEY is not set and .run/admin_api_key is missing')
    end = a.end or U.default_end()
    api = Api(a.gateway, key)
    log = (lambda s: None) if a.json else print
    n, _ = load(api, end, a.key_file, log)
    n['end'] = end.isoformat()
    n['failures'] = api.failures
    if a.json:
        print(json.dumps(n, sort_keys=True))
    else:
        print('  demo portfolios to %s: client %s, %d portfolios (%d new), %d transactions '
              '(%d new), %d failure(s)' % (
                  n['end'], 'created' if n['clientCreated'] else 'exists', n['portfolios'],
                  n['portfoliosCreated'], n['transactions'], n['transactionsCreated'],
                  api.failures))
    return 1 if api.failures else 0


if __name__ == '__main__':
    sys.exit(main())
