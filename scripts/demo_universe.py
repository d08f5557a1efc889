#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The demo universe, loaded through the REST gateway (standard library only).

    scripts/demo_universe.py [--gateway URL] [--end YYYY-MM-DD] [--years 3] [--quiet]

What it loads (deterministic: one seeded RNG, see below):
  * 22 equities in 7 sectors on two exchanges (XNAS, XNYS) and the benchmark index FSR500
    (sector "Index", exchange XIDX: an equity-like instrument for benchmarkId);
  * three years of daily business-day bars up to --end: a geometric Brownian motion per
    equity driven by a market factor, a sector factor and its own noise (so equities of a
    sector are more correlated with each other than with the rest), open/high/low around the
    close (always high >= open, close >= low > 0), volumes;
  * quarterly cash dividends for the dividend payers (the close drops by the dividend on the
    ex-date), and one 2-for-1 split (NOVA, 2025-06-16; closes before it are as traded);
  * 10 bonds, every day count, frequencies 1, 2, 4, 12 and one zero coupon, each with a year
    of daily yield quotes up to --end.

Determinism: the paths start at ORIGIN (2015-01-02) and are generated business day by business
day from random.Random(SEED), so the bar of a given date never depends on --end: a later run
only adds the days since.  Corporate actions sit on fixed calendar dates.

Idempotent: equities are looked up by symbol and exchange, bonds by ISIN, before creating;
existing bars and quotes are read back and only missing or different ones are written (PUT in
chunks of at most 10,000); a dividend or split already recorded for its ex-date (409) counts as
existing.  Running it twice changes nothing the second time.

Environment: GATEWAY_URL (default http://127.0.0.1:${GATEWAY_PORT:-8000}); ADMIN_API_KEY, else
the key in .run/admin_api_key.  Prints one summary line (JSON with --json).  Exit status 0, or 1
when a request failed.
"""
import argparse
import datetime as dt
import json
import math
import os
import random
import sys
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

SEED = 20150102
ORIGIN = dt.date(2015, 1, 2)
CHUNK = 10000
SPLIT = ('NOVA', dt.date(2025, 6, 16), 2)

# symbol, name, exchange, sector, start price, annual drift, annual vol, dividend yield
EQUITIES = [
    ('NOVA', 'Nova Microsystems', 'XNAS', 'Technology', 180.0, 0.14, 0.32, 0.0),
    ('QBIT', 'Qubit Labs', 'XNAS', 'Technology', 60.0, 0.18, 0.45, 0.0),
    ('CLDS', 'Cloudspan Software', 'XNAS', 'Technology', 95.0, 0.12, 0.35, 0.0),
    ('SEMX', 'Semix Devices', 'XNAS', 'Technology', 120.0, 0.10, 0.38, 0.008),
    ('HLXR', 'Helix Therapeutics', 'XNAS', 'Health Care', 75.0, 0.08, 0.30, 0.0),
    ('MEDQ', 'Mediquest Health', 'XNYS', 'Health Care', 140.0, 0.07, 0.20, 0.018),
    ('CRVA', 'Curava Pharma', 'XNYS', 'Health Care', 55.0, 0.06, 0.24, 0.025),
    ('BKRG', 'Bankridge Financial', 'XNYS', 'Financials', 48.0, 0.06, 0.25, 0.030),
    ('LEDG', 'Ledgerline Capital', 'XNYS', 'Financials', 88.0, 0.07, 0.22, 0.022),
    ('ASRX', 'Assurex Insurance', 'XNYS', 'Financials', 130.0, 0.05, 0.18, 0.020),
    ('PTRL', 'Petralis Energy', 'XNYS', 'Energy', 70.0, 0.03, 0.33, 0.045),
    ('SOLR', 'Solaris Power', 'XNAS', 'Energy', 35.0, 0.09, 0.50, 0.0),
    ('GRDN', 'Gridline Renewables', 'XNYS', 'Energy', 42.0, 0.05, 0.28, 0.030),
    ('BRWN', 'Brewan Foods', 'XNYS', 'Consumer Staples', 62.0, 0.04, 0.15, 0.032),
    ('HMGD', 'Homegood Brands', 'XNYS', 'Consumer Staples', 110.0, 0.05, 0.14, 0.028),
    ('FRSH', 'Freshcart Markets', 'XNAS', 'Consumer Staples', 38.0, 0.06, 0.20, 0.015),
    ('AXLE', 'Axle Industrial', 'XNYS', 'Industrials', 150.0, 0.07, 0.24, 0.014),
    ('RAIL', 'Railmark Transport', 'XNYS', 'Industrials', 210.0, 0.06, 0.21, 0.019),
    ('DRNX', 'Dronix Aerospace', 'XNAS', 'Industrials', 85.0, 0.10, 0.36, 0.0),
    ('VOLT', 'Voltwise Utilities', 'XNYS', 'Utilities', 58.0, 0.03, 0.14, 0.040),
    ('AQUA', 'Aquanet Water', 'XNYS', 'Utilities', 72.0, 0.04, 0.13, 0.035),
    ('WIRE', 'Wirecom Networks', 'XNAS', 'Technology', 44.0, 0.05, 0.27, 0.012),
]
INDEX = ('FSR500', 'FSR 500 Index', 'XIDX', 'Index', 4000.0, 0.08, 0.16, 0.0)
SECTORS = sorted({e[3] for e in EQUITIES})
BETA_MARKET, BETA_SECTOR = 0.55, 0.45  # factor loadings of the daily shocks

# key, isin body (11 chars, check digit computed), name, issuer, coupon, frequency, day count,
# issue, maturity, base yield
BONDS = [
    ('UST2034', 'US912828ZT1', 'US Treasury 4.25% 2034', 'US Treasury', 0.0425, 2, 'ACT_ACT_ICMA',
     '2024-11-15', '2034-11-15', 0.0430),
    ('UST2029', 'US912828YB2', 'US Treasury 3.875% 2029', 'US Treasury', 0.03875, 2, 'ACT_ACT_ICMA',
     '2022-08-15', '2029-08-15', 0.0395),
    ('BUND2033', 'DE000110123', 'Bund 2.3% 2033', 'Federal Republic', 0.023, 1, 'ACT_ACT_ISDA',
     '2023-02-15', '2033-02-15', 0.0255),
    ('ACME2030', 'US00081TAB3', 'ACME Corp 5% 2030', 'ACME Corp', 0.05, 2, 'THIRTY_360_US',
     '2020-06-15', '2030-06-15', 0.0520),
    ('EURO2031', 'XS234567890', 'Eurotel 3.5% 2031', 'Eurotel SA', 0.035, 1, 'THIRTY_E_360',
     '2021-03-10', '2031-03-10', 0.0380),
    ('FRN2028', 'XS198765432', 'Northbank 4.1% 2028', 'Northbank plc', 0.041, 4, 'ACT_360',
     '2023-09-01', '2028-09-01', 0.0440),
    ('GILT2035', 'GB00B24FF09', 'UK Gilt 4.5% 2035', 'HM Treasury', 0.045, 2, 'ACT_365_FIXED',
     '2025-03-07', '2035-03-07', 0.0460),
    ('MUNI2032', 'US64966MAB1', 'Metro Water 3% 2032', 'Metro Water Authority', 0.03, 12,
     'THIRTY_360_US', '2022-01-01', '2032-01-01', 0.0350),
    ('ZERO2030', 'US912803AA2', 'Strip zero 2030', 'US Treasury', 0.0, 0, 'ACT_ACT_ISDA',
     '2020-05-15', '2030-05-15', 0.0410),
    ('CORP2036', 'XS314159265', 'Globex 5.75% 2036', 'Globex Corp', 0.0575, 2, 'THIRTY_E_360',
     '2024-04-30', '2036-04-30', 0.0600),
]


def isin_check_digit(body):
    """The ISIN check digit of the 11-character |body| (letters as 10..35, Luhn)."""
    digits = ''.join(str(int(c, 36)) for c in body)
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def business_days(start, end):
    d = start
    while d <= end:
        if d.weekday() < 5:
            yield d
        d += dt.timedelta(days=1)


def cents(x):
    return '%d.%02d' % (x // 100, x % 100)


def dividend_dates(start, end):
    """Quarterly ex-dates: the 15th of Feb, May, Aug and Nov, moved to a business day."""
    for year in range(start.year, end.year + 1):
        for month in (2, 5, 8, 11):
            d = dt.date(year, month, 15)
            while d.weekday() >= 5:
                d += dt.timedelta(days=1)
            if start <= d <= end:
                yield d


def generate(end, years):
    """Bars and corporate actions of every equity (index last) in the window ending |end|."""
    start = end.replace(year=end.year - years) + dt.timedelta(days=1)
    rng = random.Random(SEED)
    universe = EQUITIES + [INDEX]
    dt_year = 1.0 / 252
    price = [u[4] for u in universe]
    div_dates = set(dividend_dates(ORIGIN, end))
    out = {u[0]: {'bars': [], 'dividends': [], 'splits': []} for u in universe}
    for day in business_days(ORIGIN, end):
        zm = rng.gauss(0, 1)
        zs = {s: rng.gauss(0, 1) for s in SECTORS}
        for k, u in enumerate(universe):
            sym, _, _, sector, _, mu, vol, dy = u
            zi = rng.gauss(0, 1)
            if sym == INDEX[0]:
                z = 0.97 * zm + math.sqrt(1 - 0.97 ** 2) * zi
            else:
                idio = math.sqrt(1 - BETA_MARKET ** 2 - BETA_SECTOR ** 2)
                z = BETA_MARKET * zm + BETA_SECTOR * zs[sector] + idio * zi
            gap = rng.gauss(0, 0.25 * vol * math.sqrt(dt_year))
            up, down = abs(rng.gauss(0, 0.4)), abs(rng.gauss(0, 0.4))
            vshock = rng.lognormvariate(0, 0.35)
            prev = price[k]
            if sym == SPLIT[0] and day == SPLIT[1]:
                prev /= SPLIT[2]  # the new shares
            close = prev * math.exp((mu - 0.5 * vol * vol) * dt_year +
                                    vol * math.sqrt(dt_year) * z)
            dividend = None
            if dy > 0 and day in div_dates:
                # A quarter of the yield on the day's price, in cents; the close goes ex.
                dividend = max(1, int(round(close * dy / 4 * 100)))
                close -= dividend / 100.0
            price[k] = close
            if day < start:
                continue
            sigma_d = vol * math.sqrt(dt_year)
            c = max(1, int(round(close * 100)))
            o = max(1, int(round(prev * math.exp(gap) * 100)))
            h = max(o, c) + int(math.ceil(max(o, c) * sigma_d * up))
            low = max(1, min(o, c) - int(math.ceil(min(o, c) * sigma_d * down)))
            volume = 0 if sym == INDEX[0] else int(2_000_000 * vshock * 100 / (u[4] + 50))
            out[sym]['bars'].append({'date': day.isoformat(), 'open': cents(o), 'high': cents(h),
                                     'low': cents(low), 'close': cents(c),
                                     'volume': str(volume)})
            if dividend is not None:
                out[sym]['dividends'].append({
                    'exDate': day.isoformat(),
                    'payDate': (day + dt.timedelta(days=14)).isoformat(),
                    'amount': cents(dividend)})
            if sym == SPLIT[0] and day == SPLIT[1]:
                out[sym]['splits'].append({'exDate': day.isoformat(), 'ratio': str(SPLIT[2])})
    return out


def bond_quotes(end):
    """A year of daily yields per bond (random walk around its base yield)."""
    rng = random.Random(SEED + 1)
    start = end.replace(year=end.year - 1) + dt.timedelta(days=1)
    out = {}
    level = {b[0]: b[9] for b in BONDS}
    for day in business_days(ORIGIN, end):
        common = rng.gauss(0, 0.0004)
        for b in BONDS:
            y = level[b[0]] + common + rng.gauss(0, 0.00015)
            level[b[0]] = b[9] + 0.98 * (y - b[9])  # mean-reverting
            if start <= day < dt.date.fromisoformat(b[8]) and day >= dt.date.fromisoformat(b[7]):
                out.setdefault(b[0], []).append(
                    {'date': day.isoformat(), 'yield': '%.6f' % level[b[0]]})
    return out


class Api:
    def __init__(self, base, key):
        self.base = base.rstrip('/')
        self.key = key
        self.failures = 0

    def call(self, method, path, body=None, ok=(200,)):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header('Authorization', 'Bearer ' + self.key)
        req.add_header('Accept', 'application/json')
        if data is not None:
            req.add_header('Content-Type', 'application/json')
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        except OSError as e:
            raise SystemExit('demo_universe: %s %s: %s' % (method, path, e))
        try:
            j = json.loads(text) if text else {}
        except ValueError:
            j = {}
        if status not in ok:
            self.failures += 1
            print('demo_universe: %s %s -> HTTP %d %s' % (method, path, status, text[:300]),
                  file=sys.stderr)
        return status, j


def find_equity(api, sym, exchange):
    q = urllib.parse.urlencode({'symbol': sym, 'exchange': exchange})
    st, j = api.call('GET', '/equities?' + q)
    for e in j.get('equities', []) if st == 200 else []:
        if e.get('symbol') == sym and e.get('exchange') == exchange:
            return e['id']
    return None


def find_bond(api, isin):
    st, j = api.call('GET', '/bonds?' + urllib.parse.urlencode({'isin': isin}))
    for b in j.get('bonds', []) if st == 200 else []:
        if b.get('isin') == isin:
            return b['id']
    return None


def same_bar(a, b):
    keys = ('open', 'high', 'low', 'close')
    return all(Decimal(a[k]) == Decimal(b[k]) for k in keys) and \
        int(a.get('volume', 0)) == int(b.get('volume', 0))


def load(api, end, years, log):
    n = {'equities': 0, 'equitiesCreated': 0, 'bars': 0, 'barsWritten': 0, 'dividends': 0,
         'dividendsCreated': 0, 'splits': 0, 'splitsCreated': 0, 'bonds': 0, 'bondsCreated': 0,
         'quotes': 0, 'quotesWritten': 0}
    data = generate(end, years)
    for u in EQUITIES + [INDEX]:
        sym, name, exchange, sector = u[:4]
        eid = find_equity(api, sym, exchange)
        if eid is None:
            st, j = api.call('POST', '/equities', {'symbol': sym, 'name': name, 'exchange': exchange,
                                                   'currency': 'USD', 'sector': sector},
                             ok=(200, 409))
            eid = j.get('id') if st == 200 else find_equity(api, sym, exchange)
            n['equitiesCreated'] += st == 200
        if eid is None:
            continue
        n['equities'] += 1
        bars = data[sym]['bars']
        st, j = api.call('GET', '/equities/%s/prices?%s' % (eid, urllib.parse.urlencode(
            {'from': bars[0]['date'], 'to': bars[-1]['date']})))
        have = {b['date']: b for b in j.get('bars', [])} if st == 200 else {}
        todo = [b for b in bars if b['date'] not in have or not same_bar(b, have[b['date']])]
        for i in range(0, len(todo), CHUNK):
            st, _ = api.call('PUT', '/equities/%s/prices' % eid, {'bars': todo[i:i + CHUNK]})
            if st == 200:
                n['barsWritten'] += len(todo[i:i + CHUNK])
        n['bars'] += len(bars)
        for kind, path in (('dividends', 'dividends'), ('splits', 'splits')):
            for act in data[sym][kind]:
                st, _ = api.call('POST', '/equities/%s/%s' % (eid, path), act, ok=(200, 409))
                n[kind] += st in (200, 409)
                n[kind + 'Created'] += st == 200
        log('  %-7s %-5s %4d bars (%d written), %d dividends, %d split' % (
            sym, exchange, len(bars), len(todo), len(data[sym]['dividends']),
            len(data[sym]['splits'])))
    quotes = bond_quotes(end)
    for b in BONDS:
        key, body, name, issuer, rate, freq, dc, issue, maturity = b[:9]
        isin = body + isin_check_digit(body)
        bid = find_bond(api, isin)
        if bid is None:
            st, j = api.call('POST', '/bonds', {
                'isin': isin, 'name': name, 'issuer': issuer, 'currency': 'USD', 'face': '100',
                'couponRate': rate, 'frequency': freq, 'dayCount': dc, 'issueDate': issue,
                'maturityDate': maturity}, ok=(200, 409))
            bid = j.get('id') if st == 200 else find_bond(api, isin)
            n['bondsCreated'] += st == 200
        if bid is None:
            continue
        n['bonds'] += 1
        qs = quotes.get(key, [])
        if not qs:
            continue
        st, j = api.call('GET', '/bonds/%s/quotes?%s' % (bid, urllib.parse.urlencode(
            {'from': qs[0]['date'], 'to': qs[-1]['date']})))
        have = {q['date'] for q in j.get('quotes', [])} if st == 200 else set()
        todo = [q for q in qs if q['date'] not in have]
        for i in range(0, len(todo), CHUNK):
            st, _ = api.call('PUT', '/bonds/%s/quotes' % bid, {'quotes': todo[i:i + CHUNK]})
            if st == 200:
                n['quotesWritten'] += len(todo[i:i + CHUNK])
        n['quotes'] += len(qs)
        log('  %-8s %s %3d quotes (%d written)' % (key, isin, len(qs), len(todo)))
    return n


def default_end():
    """The last business day before today (UTC)."""
    d = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    while d.weekday() >= 5:
        d -= dt.timedelta(days=1)
    return d


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--gateway', default=os.environ.get(
        'GATEWAY_URL', 'http://127.0.0.1:%s' % os.environ.get('GATEWAY_PORT', '8000')))
    ap.add_argument('--end', type=dt.date.fromisoformat, default=None,
                    help='last date of the bars and quotes (default: the last business day)')
    ap.add_argument('--years', type=int, default=3)
    ap.add_argument('--json', action='store_true', help='print the summary as JSON')
    ap.add_argument('--quiet', action='store_true')
    a = ap.parse_args()
    key = os.environ.get('ADMIN_API_KEY', '')
    if not key:
        try:
            with open(os.path.join(root, '.run', 'admin_api_key')) as f:
                key = f.read().strip()
        except OSError:
            pass
    if not key:
        sys.exit('demo_universe: ADMIN_API_KEY is not set and .run/admin_api_key is missing')
    end = a.end or default_end()
    if end < ORIGIN.replace(year=ORIGIN.year + a.years) or a.years < 1:
        sys.exit('demo_universe: --end must be at least --years after %s' % ORIGIN)
    api = Api(a.gateway, key)
    log = (lambda s: None) if a.quiet or a.json else print
    n = load(api, end, a.years, log)
    n['end'] = end.isoformat()
    n['failures'] = api.failures
    if a.json:
        print(json.dumps(n, sort_keys=True))
    else:
        print('  demo universe to %s: %d equities (%d new), %d bars (%d written), %d dividends '
              '(%d new), %d split, %d bonds (%d new), %d quotes (%d written), %d failure(s)' % (
                  n['end'], n['equities'], n['equitiesCreated'], n['bars'], n['barsWritten'],
                  n['dividends'], n['dividendsCreated'], n['splits'], n['bonds'],
                  n['bondsCreated'], n['quotes'], n['quotesWritten'], api.failures))
    return 1 if api.failures else 0


if __name__ == '__main__':
    sys.exit(main())
