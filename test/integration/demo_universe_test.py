# SPDX-License-Identifier: MIT
"""scripts/demo_universe.py (and scripts/demo-data.sh, which `make up` runs) against the whole
stack (stack.py): what it loads, and that running it again changes nothing (TAP).

    with_deps.sh --pg --redis -- python3 demo_universe_test.py --source-root S --gateway G
        --equity E --fi F --portfolio P
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

T = stack.Tap()
END = '2026-10-30'  # a Friday: the window is fixed, so the counts are too


def run_universe(root, s):
    env = dict(os.environ, GATEWAY_URL='http://127.0.0.1:%d' % s.ports['gateway'],
               ADMIN_API_KEY=stack.ADMIN_KEY)
    r = subprocess.run(['/usr/bin/python3', os.path.join(root, 'scripts', 'demo_universe.py'),
                        '--end', END, '--json'], env=env, capture_output=True, text=True,
                       timeout=600)
    try:
        return r.returncode, json.loads(r.stdout.strip().splitlines()[-1]), r.stderr
    except (ValueError, IndexError):
        return r.returncode, {}, r.stdout + r.stderr


def db_counts(universe):
    syms = ','.join("'%s'" % u[0] for u in universe.EQUITIES + [universe.INDEX])
    isins = ','.join("'%s'" % (b[1] + universe.isin_check_digit(b[1])) for b in universe.BONDS)
    eq = stack.psql(
        "SELECT count(*), count(DISTINCT sector) FILTER (WHERE sector <> 'Index'),"
        " count(DISTINCT exchange) FILTER (WHERE sector <> 'Index'),"
        " (SELECT count(*) FROM price_bars b JOIN equities e ON e.id = b.equity_id"
        "  WHERE e.symbol IN (%s)),"
        " (SELECT count(*) FROM dividends d JOIN equities e ON e.id = d.equity_id"
        "  WHERE e.symbol IN (%s)),"
        " (SELECT count(*) FROM splits s JOIN equities e ON e.id = s.equity_id"
        "  WHERE e.symbol IN (%s)),"
        " (SELECT count(*) FROM price_bars b JOIN equities e ON e.id = b.equity_id"
        "  WHERE e.symbol IN (%s) AND (b.high < greatest(b.open, b.close, b.low)"
        "  OR b.low > least(b.open, b.close) OR b.low <= 0))"
        " FROM equities WHERE symbol IN (%s)" % (syms, syms, syms, syms, syms), db='equity')[0]
    fi = stack.psql(
        "SELECT count(*), count(DISTINCT frequency), count(DISTINCT day_count),"
        " count(*) FILTER (WHERE frequency = 0),"
        " (SELECT count(*) FROM bond_quotes q JOIN bonds b ON b.id = q.bond_id"
        "  WHERE b.isin IN (%s)) FROM bonds WHERE isin IN (%s)" % (isins, isins),
        db='fixed_income')[0]
    return [int(x) for x in eq + fi]


def main():
    ap = argparse.ArgumentParser()
    for name in ('source-root', 'gateway', 'equity', 'fi', 'portfolio'):
        ap.add_argument('--' + name, required=True)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.source_root, 'scripts'))
    import demo_universe as universe  # noqa: E402

    s = stack.Stack({'gateway': a.gateway, 'equity': a.equity, 'fixed_income': a.fi,
                     'portfolio': a.portfolio}, tap=T)
    s.start_all()

    rc, n, err = run_universe(a.source_root, s)
    T.ok(rc == 0 and n.get('failures') == 0, 'first run succeeds', err)
    n_eq = len(universe.EQUITIES) + 1
    bars = n.get('bars', -1)
    T.ok(n.get('equities') == n_eq == n.get('equitiesCreated') and n_eq >= 21,
         '%d equities created (20+ and the index)' % n_eq, n)
    T.ok(bars >= 3 * 250 * n_eq and n.get('barsWritten') == bars,
         'three years of daily bars each, all written', n)
    T.ok(n.get('splits') == 1 == n.get('splitsCreated') and n.get('dividends', 0) >= 4 * 3 * 5
         and n.get('dividendsCreated') == n.get('dividends'), 'quarterly dividends and one split', n)
    T.ok(n.get('bonds') == 10 == n.get('bondsCreated') and n.get('quotes', 0) >= 10 * 250 and
         n.get('quotesWritten') == n.get('quotes'), '10 bonds with a year of daily quotes', n)

    c1 = db_counts(universe)
    (eq, sectors, exchanges, nbars, ndiv, nsplit, bad_ohlc, nbonds, freqs, dcs, zeros,
     nquotes) = c1
    T.ok(eq == n_eq and sectors >= 6 and exchanges >= 2,
         'stored: %d equities, %d sectors, %d exchanges' % (eq, sectors, exchanges), c1)
    T.ok(nbars == bars and ndiv == n['dividends'] and nsplit == 1,
         'stored: every bar, dividend and the split', c1)
    T.ok(bad_ohlc == 0, 'every bar is OHLC-consistent', c1)
    T.ok(nbonds == 10 and freqs >= 5 and dcs == 6 and zeros == 1 and nquotes == n['quotes'],
         'stored: 10 bonds, frequencies 0/1/2/4/12, all six day counts, one zero coupon, quotes',
         c1)

    # The data is usable: FSR500 as benchmark; equities of a sector move together.
    ids = {}
    for sym, ex in (('NOVA', 'XNAS'), ('QBIT', 'XNAS'), ('VOLT', 'XNYS'), ('FSR500', 'XIDX')):
        r = s.req('GET', '/equities?symbol=%s&exchange=%s' % (sym, ex))
        ids[sym] = r.json['equities'][0]['id'] if r.status == 200 and r.json.get('equities') \
            else None
    r = s.req('GET', '/equities/%s/analytics?benchmarkId=%s' % (ids['NOVA'], ids['FSR500']))
    T.ok(r.status == 200 and 0 < r.json.get('beta', 0) < 3 and
         r.json.get('observations', 0) >= 750, 'GetAnalytics NOVA vs FSR500', r)
    r = s.req('POST', '/equities/covariance', {'ids': [ids['NOVA'], ids['QBIT'], ids['VOLT']]})
    corr = r.json.get('correlation') if r.status == 200 else None
    T.ok(corr is not None and corr[0]['values'][1] > corr[0]['values'][2] + 0.1,
         'same-sector correlation above cross-sector (NOVA-QBIT vs NOVA-VOLT)', r)

    # Again: nothing new, nothing written, the same counts.
    rc, n2, err = run_universe(a.source_root, s)
    T.ok(rc == 0 and n2.get('failures') == 0, 'second run succeeds', err)
    T.ok(all(n2.get(k) == 0 for k in ('equitiesCreated', 'barsWritten', 'dividendsCreated',
                                      'splitsCreated', 'bondsCreated', 'quotesWritten')) and
         all(n2.get(k) == n.get(k) for k in ('equities', 'bars', 'dividends', 'splits', 'bonds',
                                             'quotes')),
         'second run creates and writes nothing', n2)
    T.ok(db_counts(universe) == c1, 'second run: the same counts in the databases')

    # scripts/demo-data.sh (what `make up` runs) on top: the universe stays as it is.
    if shutil.which('curl') and shutil.which('jq'):
        env = dict(os.environ, GATEWAY_URL='http://127.0.0.1:%d' % s.ports['gateway'],
                   ADMIN_API_KEY=stack.ADMIN_KEY, DEMO_END=END,
                   DEMO_CLIENT_KEY_FILE=os.path.join(tempfile.mkdtemp(), 'demo_client_key'))
        r = subprocess.run(['bash', os.path.join(a.source_root, 'scripts', 'demo-data.sh')],
                           env=env, capture_output=True, text=True, timeout=600)
        T.ok(r.returncode == 0 and 'demo universe to %s' % END in r.stdout,
             'scripts/demo-data.sh succeeds', r.stdout + r.stderr)
        T.ok(db_counts(universe) == c1, 'demo-data.sh: the universe counts unchanged')
    else:
        T.skip('scripts/demo-data.sh', 'curl or jq missing')
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
