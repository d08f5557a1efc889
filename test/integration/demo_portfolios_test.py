# SPDX-License-Identifier: MIT
"""scripts/demo_portfolios.py (run by scripts/demo-data.sh, which `make up` runs) against the
whole stack (stack.py), twice: the demo client and its key file, two mixed portfolios with
targets and a benchmark, a year of ledger of every kind, calculate answering for both, and a
second run creating nothing (TAP).  The async calculate (with a worker) is checked too.

    with_deps.sh --pg --redis -- python3 demo_portfolios_test.py --source-root S --gateway G
        --equity E --fi F --portfolio P --worker W
"""
import argparse
import json
import os
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

T = stack.Tap()
END = '2026-10-30'  # a Friday: the window is fixed, so the plan is too
NAMES = ('Demo balanced', 'Demo income')
KINDS = {'DEPOSIT', 'BUY', 'SELL', 'DIVIDEND', 'COUPON', 'FEE', 'WITHDRAWAL'}


def run(root, s, script, *args):
    env = dict(os.environ, GATEWAY_URL='http://127.0.0.1:%d' % s.ports['gateway'],
               ADMIN_API_KEY=stack.ADMIN_KEY)
    r = subprocess.run(['/usr/bin/python3', os.path.join(root, 'scripts', script), '--end', END,
                        '--json'] + list(args), env=env, capture_output=True, text=True,
                       timeout=600)
    try:
        return r.returncode, json.loads(r.stdout.strip().splitlines()[-1]), r.stderr
    except (ValueError, IndexError):
        return r.returncode, {}, r.stdout + r.stderr


def ledger(cid):
    rows = stack.psql(
        "SELECT p.name, t.type, count(*) FROM transactions t JOIN portfolios p"
        " ON p.id = t.portfolio_id WHERE p.client_id = '%s' GROUP BY 1, 2 ORDER BY 1, 2" % cid,
        db='portfolio')
    return {(r[0], r[1]): int(r[2]) for r in rows}


def main():
    ap = argparse.ArgumentParser()
    for name in ('source-root', 'gateway', 'equity', 'fi', 'portfolio', 'worker'):
        ap.add_argument('--' + name, required=True)
    a = ap.parse_args()
    s = stack.Stack({'gateway': a.gateway, 'equity': a.equity, 'fixed_income': a.fi,
                     'portfolio': a.portfolio, 'worker': a.worker}, tap=T)
    s.start_all(workers=True)
    tmp = tempfile.mkdtemp(prefix='demo-pf-')
    key_file = os.path.join(tmp, 'demo_client_key')

    rc, u, err = run(a.source_root, s, 'demo_universe.py')
    T.ok(rc == 0 and u.get('failures') == 0, 'the demo universe loads', err)

    rc, n, err = run(a.source_root, s, 'demo_portfolios.py', '--key-file', key_file)
    T.ok(rc == 0 and n.get('failures') == 0, 'first run succeeds', err)
    T.ok(n.get('clientCreated') == 1 and n.get('portfoliosCreated') == 2 and
         n.get('portfolios') == 2, 'first run creates the client and two portfolios', n)
    T.ok(n.get('transactions', 0) >= 30 and n.get('transactionsCreated') == n.get('transactions'),
         'first run writes the whole ledger (%s transactions)' % n.get('transactions'), n)
    key = open(key_file).read().strip() if os.path.exists(key_file) else ''
    mode = stat.S_IMODE(os.stat(key_file).st_mode) if key else None
    T.ok(key != '' and mode == 0o600, 'the client key is stored with mode 0600', oct(mode or 0))
    cid = n.get('clientId', '')
    crow = stack.psql("SELECT role FROM clients WHERE id = '%s'" % cid, db='portfolio') \
        if cid else []
    T.ok(crow == [['client']], 'the demo client has role client', crow)

    r = s.req('GET', '/portfolios', key=key)
    ps = {p['name']: p for p in (r.json or {}).get('portfolios', [])}
    T.ok(r.status == 200 and sorted(ps) == sorted(NAMES), 'the client sees its two portfolios', r)
    for name in NAMES:
        p = ps.get(name, {})
        bench = p.get('benchmark', {}).get('components', [])
        T.ok(p.get('clientId') == cid and len(p.get('targets', [])) >= 2 and len(bench) == 2 and
             {c.get('instrumentType') for c in bench} == {'EQUITY', 'BOND'},
             '%s: owned by the client, targets and an equity+bond benchmark' % name, p)

    l1 = ledger(cid)
    for name in NAMES:
        kinds = {k for (pn, k) in l1 if pn == name}
        T.ok(kinds == KINDS, '%s: the ledger has every kind (%s)' % (name, sorted(kinds)), l1)
    T.ok(sum(l1.values()) == n.get('transactions'), 'the ledger count is the plan\'s',
         (sum(l1.values()), n))

    calcs = {}
    for name in NAMES:
        pid = ps.get(name, {}).get('id', '00000000-0000-0000-0000-000000000000')
        r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': END}, key=key)
        j = r.json or {}
        classes = {c.get('assetClass'): c.get('marketValue', 0) for c in j.get('assetClasses', [])}
        T.ok(r.status == 200 and j.get('totalMarketValue', 0) > 0 and
             all(classes.get(c, 0) > 0 for c in ('EQUITY', 'FIXED_INCOME', 'CASH')) and
             j.get('fixedIncome', {}).get('modifiedDuration', 0) > 0,
             '%s: calculate values equities, bonds and cash' % name, r)
        h = s.req('GET', '/portfolios/%s' % pid, key=key).json or {}
        T.ok(float(h.get('cash', '-1')) > 0, '%s: cash stays positive' % name, h)
        calcs[name] = (pid, j)

    rc, n2, err = run(a.source_root, s, 'demo_portfolios.py', '--key-file', key_file)
    T.ok(rc == 0 and n2.get('failures') == 0, 'second run succeeds', err)
    T.ok(n2.get('clientCreated') == 0 and n2.get('keysCreated') == 0 and
         n2.get('portfoliosCreated') == 0 and n2.get('transactionsCreated') == 0 and
         n2.get('clientId') == cid, 'second run creates nothing', n2)
    T.ok(ledger(cid) == l1, 'second run: the same ledger', ledger(cid))
    nclients = stack.psql("SELECT count(*) FROM clients WHERE name = 'Demo client'",
                          db='portfolio')
    T.ok(nclients == [['1']], 'one demo client', nclients)
    T.ok(open(key_file).read().strip() == key, 'the stored key is kept')

    # A lost key file: the client gets a new key, nothing else is created.
    os.unlink(key_file)
    rc, n3, err = run(a.source_root, s, 'demo_portfolios.py', '--key-file', key_file)
    key3 = open(key_file).read().strip() if os.path.exists(key_file) else ''
    T.ok(rc == 0 and n3.get('keysCreated') == 1 and n3.get('portfoliosCreated') == 0 and
         n3.get('transactionsCreated') == 0 and key3 not in ('', key) and
         s.req('GET', '/portfolios', key=key3).status == 200,
         'a lost key file: a new working key, nothing else', (n3, err))

    # ---- async calculate (worker) ------------------------------------------------------
    pid, sync = calcs[NAMES[0]]
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'asOf': END, 'async': True}, key=key)
    job = (r.json or {}).get('job', {})
    T.ok(r.status == 200 and job.get('state') == 'QUEUED' and job.get('id') and
         (r.json or {}).get('portfolioId') == pid and not (r.json or {}).get('constituents') and
         not (r.json or {}).get('totalMarketValue'),
         'async calculate answers at once with a QUEUED job', r)
    T.ok(job.get('type') == 'pf.calculate', 'the job is a pf.calculate', job)
    jid = job.get('id', '00000000-0000-8003-8000-000000000000')
    seen, final = set(), {}
    deadline = time.time() + 60
    while time.time() < deadline:
        g = s.req('GET', '/jobs/%s' % jid, key=key)
        final = g.json or {}
        seen.add(final.get('state'))
        if g.status != 200 or final.get('state') in ('SUCCEEDED', 'DEAD'):
            break
        time.sleep(0.1)
    T.ok(final.get('state') == 'SUCCEEDED' and final.get('attempts') == 1,
         'the job succeeds (states seen: %s)' % sorted(x for x in seen if x), final)
    res = final.get('result', {})
    strip = ('stale', 'staleAgeSeconds')  # cache freshness may differ between the two runs
    want = {k: v for k, v in sync.items() if k not in strip}
    got = {k: v for k, v in res.items() if k not in strip}
    diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
    T.ok(got == want and len(want) > 5, 'its result is the synchronous calculate\'s JSON',
         json.dumps(diff)[:3000])

    # Another client cannot read it; an admin can.
    other = s.req('POST', '/clients', {'name': 'other', 'role': 'client'}).json or {}
    okey = other.get('apiKey', '')
    g = s.req('GET', '/jobs/%s' % jid, key=okey)
    T.ok(okey != '' and g.status == 404 and 'result' not in (g.json or {}),
         'another client gets 404 for the job', g)
    T.ok(s.req('GET', '/jobs/%s' % jid).status == 200, 'the admin reads the job')
    dkey = (s.req('POST', '/clients', {'name': 'feed', 'role': 'data'}).json or {}).get('apiKey')
    g = s.req('GET', '/jobs/%s' % jid, key=dkey)
    T.ok(dkey and g.status == 404, 'a data-role caller gets 404 for a client\'s job too', g)
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'async': True}, key=okey)
    T.ok(r.status == 404, 'another client cannot start an async calculate of the portfolio', r)
    n_jobs = stack.psql("SELECT count(*) FROM jobs WHERE type = 'pf.calculate'", db='portfolio')
    T.ok(n_jobs == [['1']], 'and no job was created for it', n_jobs)
    r = s.req('POST', '/portfolios/%s/calculate' % pid, {'async': True, 'asOf': 'x'}, key=key)
    T.ok(r.status == 400, 'a bad asOf is refused before any job is made', r)
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
