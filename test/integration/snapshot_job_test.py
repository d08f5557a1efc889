#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""pf.snapshot (svc_worker/jobs_pf_snapshot.c) end to end (TAP on stdout): the whole stack
(stack.py) with workers, the portfolio worker's schedule replaced by
WORKER_SCHEDULE='pf.snapshot@every 4s' so that the job runs every few seconds.

    with_deps.sh --pg --redis -- snapshot_job_test.py --gateway G --equity E --fi F \\
        --portfolio P --worker W

An equity with closes over the last weeks and two portfolios through REST: one with a
ledger of a deposit and a buy (its snapshots must be stored by the job, one row per weekday
from its first transaction through yesterday, UTC), one with a single transaction dated
today (fewer than two weekdays up to yesterday: skipped).  Waits for a pf.snapshot job that
started after the data was written to SUCCEED, then checks its result (processed, skipped,
failed, days stored and added), the rows in pf_snapshots, that GET /jobs/{id} shows it, that
a GetPerformance through yesterday afterwards writes nothing (the rows keep their
computed_at) and answers the same JSON twice, and that the next run adds no day.
"""
import argparse
import json
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

T = stack.Tap()


def weekdays(a, b):
    out, d = [], a
    while d <= b:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def snapshot_jobs(after):
    """(id, state, result, error) of the pf.snapshot jobs created after |after| (SQL text)."""
    return stack.psql(
        "SELECT id, state, coalesce(result::text, ''), coalesce(error, '') FROM jobs"
        " WHERE type = 'pf.snapshot' AND created_at > '%s' ORDER BY created_at" % after,
        db='portfolio')


def wait_job(after, timeout=60.0):
    """The first pf.snapshot job created after |after| that finished (SUCCEEDED or DEAD)."""
    deadline = time.time() + timeout
    rows = []
    while time.time() < deadline:
        rows = snapshot_jobs(after)
        for r in rows:
            if r[1] in ('SUCCEEDED', 'DEAD'):
                return r
        time.sleep(0.3)
    return rows[0] if rows else None


def rows_of(pid):
    return stack.psql("SELECT date::text, computed_at::text FROM pf_snapshots"
                      " WHERE portfolio_id = '%s' ORDER BY date" % pid, db='portfolio')


def main():
    ap = argparse.ArgumentParser()
    for a in ('gateway', 'equity', 'fi', 'portfolio', 'worker'):
        ap.add_argument('--' + a, required=True)
    args = ap.parse_args()
    s = stack.Stack({'equity': args.equity, 'fixed_income': args.fi,
                     'portfolio': args.portfolio, 'gateway': args.gateway,
                     'worker': args.worker},
                    env={'WORKER_SCHEDULE_PF_SNAPSHOT': 'every 4s'}, tap=T)
    s.start_all(workers=True)

    today = datetime.now(timezone.utc).date()
    yesterday = today - timedelta(days=1)
    start = today - timedelta(days=20)
    while start.weekday() >= 5:
        start += timedelta(days=1)
    days = weekdays(start, yesterday)

    # Runs come every 4 s, so one may start while the data below is being written.
    before_data = stack.psql("SELECT now()::text", db='portfolio')[0][0]

    # An equity with a close every weekday of the window.
    sym = ('SNAP%s' % uuid.uuid4().hex[:6]).upper()
    r = s.req('POST', '/equities', {'symbol': sym, 'name': 'Snapshot test', 'exchange': 'XTST',
                                    'currency': 'USD', 'sector': 'Testing'})
    if not T.ok(r.status == 200, 'equity created', r):
        return T.done()
    eid = r.json['id']
    bars, p = [], 40.0
    for i, d in enumerate(weekdays(start - timedelta(days=7), today)):
        p += 0.25 if i % 3 else -0.4
        c = '%.2f' % p
        bars.append({'date': d.isoformat(), 'open': c, 'high': c, 'low': c, 'close': c,
                     'volume': '1000'})
    r = s.req('PUT', '/equities/%s/prices' % eid, {'bars': bars})
    T.ok(r.status == 200, 'closes loaded (%d bars)' % len(bars), r)

    r = s.req('POST', '/portfolios', {'name': 'snap-a', 'baseCurrency': 'USD'})
    T.ok(r.status == 200, 'portfolio A created', r)
    pid = (r.json or {}).get('id', '')
    ledger = [
        {'type': 'DEPOSIT', 'date': start.isoformat(), 'amount': '10000'},
        {'type': 'BUY', 'date': days[2].isoformat(), 'instrumentType': 'EQUITY',
         'instrumentId': eid, 'quantity': '100', 'price': bars[9]['close']},
    ]
    for x in ledger:
        r = s.req('POST', '/portfolios/%s/transactions' % pid, x)
        T.ok(r.status == 200, 'A: %s %s' % (x['type'], x['date']), r)

    # B: its only transaction dated today, so nothing to store through yesterday.
    r = s.req('POST', '/portfolios', {'name': 'snap-b', 'baseCurrency': 'USD'})
    bid = (r.json or {}).get('id', '')
    r = s.req('POST', '/portfolios/%s/transactions' % bid,
              {'type': 'DEPOSIT', 'date': today.isoformat(), 'amount': '500'})
    T.ok(r.status == 200, 'B: a deposit dated today', r)
    T.ok(rows_of(pid) == [] or snapshot_jobs(before_data) != [],
         'no snapshot stored before a job runs')

    # A run that starts after the data exists.
    after = stack.psql("SELECT now()::text", db='portfolio')[0][0]
    job = wait_job(after)
    if not T.ok(job is not None and job[1] == 'SUCCEEDED', 'a pf.snapshot run succeeds', job):
        T.diag(s.log('worker_portfolio')[-3000:])
        return T.done()
    res = json.loads(job[2])
    T.ok(res.get('to') == yesterday.isoformat(), 'it stores through yesterday (%s)' % yesterday,
         res)
    T.ok(res.get('processed', 0) >= 1 and res.get('failed') == 0 and res.get('errors') == [],
         'A processed, nothing failed', res)
    T.ok(res.get('skipped', 0) >= 1, 'B skipped (no two weekdays through yesterday)', res)
    stored = rows_of(pid)
    want = [d.isoformat() for d in days]
    T.ok([x[0] for x in stored] == want,
         'A: one row per weekday from its first transaction through yesterday (%d)' % len(want),
         (stored, want))
    T.ok(rows_of(bid) == [], 'B: no rows')
    total = int(stack.psql("SELECT count(*) FROM pf_snapshots", db='portfolio')[0][0])
    T.ok(res.get('days_stored') == total and res.get('days_added', -1) >= 0 and
         res.get('days_before', -1) + res.get('days_added', -1) == total,
         'days stored and added (%d rows)' % total, res)

    g = s.req('GET', '/jobs/%s' % job[0])
    T.ok(g.status == 200 and (g.json or {}).get('state') == 'SUCCEEDED' and
         (g.json or {}).get('type') == 'pf.snapshot', 'GET /jobs/{id} shows it (admin)', g)

    # GetPerformance reads the stored rows: nothing rewritten, the same answer twice.
    path = '/portfolios/%s/performance?to=%s' % (pid, yesterday.isoformat())
    r1 = s.req('GET', path)
    T.ok(r1.status == 200 and (r1.json or {}).get('to') == yesterday.isoformat(),
         'GET performance through yesterday answers', r1)
    T.ok(rows_of(pid) == stored, 'it wrote nothing (same rows, same computed_at)')
    r2 = s.req('GET', path)
    T.ok(r2.status == 200 and r2.json == r1.json, 'a second request answers the same JSON')
    vals = (r1.json or {}).get('values') or []
    T.ok([v.get('date') for v in vals] == want, 'its values are the stored days',
         [v.get('date') for v in vals])
    last = stack.psql("SELECT value FROM pf_snapshots WHERE portfolio_id = '%s' AND date = '%s'"
                      % (pid, yesterday.isoformat()), db='portfolio')
    T.ok(vals and last and abs(float(vals[-1].get('value', 0)) - float(last[0][0])) < 1e-6 and
         float(last[0][0]) > 5000, 'the last value is the stored row\'s', (vals[-1:], last))

    # The next run: idempotent.
    after2 = stack.psql("SELECT now()::text", db='portfolio')[0][0]
    job2 = wait_job(after2)
    res2 = json.loads(job2[2]) if job2 is not None and job2[1] == 'SUCCEEDED' else {}
    T.ok(res2.get('days_added') == 0 and res2.get('days_stored') == total and
         res2.get('failed') == 0, 'the next run stores nothing new', (job2, res2))
    T.ok(rows_of(pid) == stored, 'A: rows untouched by the re-run')

    # A back-dated transaction drops the later rows; the next run stores them again.
    r = s.req('POST', '/portfolios/%s/transactions' % pid,
              {'type': 'DEPOSIT', 'date': days[-3].isoformat(), 'amount': '100'})
    T.ok(r.status == 200 and len(rows_of(pid)) == len(want) - 3,
         'a back-dated deposit invalidates the last 3 days', len(rows_of(pid)))
    after3 = stack.psql("SELECT now()::text", db='portfolio')[0][0]
    job3 = wait_job(after3)
    res3 = json.loads(job3[2]) if job3 is not None and job3[1] == 'SUCCEEDED' else {}
    T.ok(res3.get('days_added') == 3 and [x[0] for x in rows_of(pid)] == want,
         'the next run stores them again', (job3, res3))
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
