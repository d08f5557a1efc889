#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Local scaling: fsr-gateway balancing over replicas of fsr-equity (TAP on stdout).

Run by meson through with_deps.sh (a throwaway PostgreSQL and Redis):

    with_deps.sh --pg --redis -- scaling_test.py --gateway G --equity E --portfolio P
        [--source-root S --build-root B]

Part 1, on with_deps.sh's servers: three fsr-equity replicas started at the same instant on
an empty database (their migrations race), the gateway given all three in
EQUITY_SERVICE_ADDR.  Requests must spread over every replica (counted from each replica's
own rpc_server_handled_total), keep succeeding after one replica is SIGKILLed (GET retried
on another replica; a POST whose connection is refused goes to another replica too), and
spread again once the replica is back.  One fsr-portfolio answers the gateway's API-key
lookups (Authenticate); the requests carry the bootstrap admin key.

Part 2, with --source-root and --build-root: the operator path.  scripts/stack.sh up (its own
PostgreSQL and Redis on free ports, data in a temp dir), `make scale-equity 3`, status and
/health listing the replicas, traffic reaching all three, `make scale-equity 1` stopping
them again, and scripts/stack.sh down.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

ADMIN_KEY = 'it-admin-key-scaling-0123456789'


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, diag=None):
        self.n += 1
        if cond:
            print('ok %d - %s' % (self.n, desc), flush=True)
        else:
            self.failed += 1
            print('not ok %d - %s' % (self.n, desc), flush=True)
            if diag is not None:
                for line in str(diag)[:3000].splitlines():
                    print('# ' + line, flush=True)
        return cond

    def skip(self, desc, why):
        self.n += 1
        print('ok %d - %s # SKIP %s' % (self.n, desc, why), flush=True)

    def diag(self, msg):
        for line in str(msg).splitlines():
            print('# ' + line, flush=True)


T = Tap()
procs = {}
tmp = tempfile.mkdtemp(prefix='fsr-scale-it.')
os.chmod(tmp, 0o755)
stack_env = None  # set while part 2's stack may be running


def cleanup():
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()
    if stack_env is not None:
        subprocess.run(['bash', stack_env['_STACK_SH'], 'down'], env=stack_env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    shutil.rmtree(tmp, ignore_errors=True)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def port_free(p):
    """True if nothing listens on |p| (a connection in TIME_WAIT there does not count)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(('127.0.0.1', p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def read_port(path, proc, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return None
        try:
            with open(path) as f:
                s = f.read().strip()
            if s:
                return int(s)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return None


def log_tail(name, n=3000):
    try:
        with open(os.path.join(tmp, name + '.log'), 'rb') as f:
            return f.read()[-n:].decode('utf-8', 'replace')
    except OSError:
        return ''


def spawn(name, binary, env_extra, port='0'):
    env = dict(os.environ)
    env.update({'PORT': str(port), 'PORT_FILE': os.path.join(tmp, name + '.port'),
                'THREADS': '2', 'LOG_LEVEL': os.environ.get('SCALE_IT_LOG_LEVEL', 'warn'),
                'ADMIN_API_KEY': ADMIN_KEY, 'SHUTDOWN_GRACE_MS': '500'})
    env.update(env_extra)
    try:
        os.unlink(env['PORT_FILE'])
    except OSError:
        pass
    log = open(os.path.join(tmp, name + '.log'), 'ab')
    p = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    procs[name] = p
    return p, env['PORT_FILE']


def start(name, binary, env_extra, port='0'):
    p, pf = spawn(name, binary, env_extra, port)
    got = read_port(pf, p)
    if got is None:
        T.diag('%s did not start:\n%s' % (name, log_tail(name)))
    return got


def pg_bin(tool):
    d = '/usr/lib/postgresql/15/bin'
    try:
        out = subprocess.run(['pg_config', '--bindir'], capture_output=True, text=True)
        if out.returncode == 0 and os.path.exists(out.stdout.strip() + '/' + tool):
            d = out.stdout.strip()
    except OSError:
        pass
    return d + '/' + tool if os.path.exists(d + '/' + tool) else tool


def psql(sql, db='postgres', user='postgres'):
    r = subprocess.run([pg_bin('psql'), '-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-h',
                        os.environ['TEST_PG_HOST'], '-p', os.environ['TEST_PG_PORT'], '-U',
                        user, '-d', db, '-c', sql], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError('psql failed: ' + r.stderr)
    return r.stdout.strip()


class Resp:
    def __init__(self, status, body):
        self.status = status
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return 'HTTP %d %s' % (self.status, self.body[:600].decode('utf-8', 'replace'))


def req(port, method, path, body=None, key=ADMIN_KEY):
    h = {}
    if key:
        h['Authorization'] = 'Bearer ' + key
    data = None
    if body is not None:
        h['Content-Type'] = 'application/json'
        data = json.dumps(body).encode()
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=15)
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return Resp(r.status, r.read())
    except OSError as e:
        return Resp(0, str(e).encode())
    finally:
        c.close()


def handled(port, method='GetEquity'):
    """rpc_server_handled_total{method=..., code="OK"} of the replica on |port|, or None."""
    r = req(port, 'GET', '/metrics', key=None)
    if r.status != 200:
        return None
    total = 0.0
    pat = re.compile(r'^rpc_server_handled_total\{([^}]*)\}\s+(\S+)')
    for line in r.body.decode('utf-8', 'replace').splitlines():
        m = pat.match(line)
        if m and 'method="%s"' % method in m.group(1) and 'code="OK"' in m.group(1):
            total += float(m.group(2))
    return int(total)


def wait_for(fn, timeout=20.0, step=0.2):
    deadline = time.time() + timeout
    v = fn()
    while not v and time.time() < deadline:
        time.sleep(step)
        v = fn()
    return v


def equity_body(sym):
    return {'symbol': sym, 'name': sym + ' Holdings', 'exchange': 'XNYS', 'currency': 'USD',
            'sector': 'Technology', 'lotSize': '1'}


def burst(gw, path, n):
    """n sequential GETs (a new connection each): the statuses."""
    return [req(gw, 'GET', path).status for _ in range(n)]


def part1(a):
    psql('CREATE DATABASE equity OWNER fsr')
    eq_env = {'EQUITY_DB_HOST': os.environ['TEST_PG_HOST'],
              'EQUITY_DB_PORT': os.environ['TEST_PG_PORT'], 'EQUITY_DB_NAME': 'equity',
              'EQUITY_DB_USER': 'fsr', 'EQUITY_REDIS_HOST': os.environ['TEST_REDIS_HOST'],
              'EQUITY_REDIS_PORT': os.environ['TEST_REDIS_PORT'],
              'SHARED_REDIS_HOST': os.environ['TEST_REDIS_HOST'],
              'SHARED_REDIS_PORT': os.environ['TEST_REDIS_PORT']}

    # ---- three replicas at once on an empty database: the migrations race ------------------
    started = [spawn('equity%d' % i, a.equity, eq_env) for i in range(3)]
    ports = [read_port(pf, p) for p, pf in started]
    if not T.ok(all(ports), 'three fsr-equity replicas start together on an empty database',
                '\n'.join(log_tail('equity%d' % i, 1500) for i in range(3))):
        return
    rows = psql('SELECT count(*) || \'/\' || count(DISTINCT version) FROM schema_migrations',
                db='equity')
    n_rows, n_versions = (int(x) for x in rows.split('/'))
    T.ok(n_rows >= 1 and n_rows == n_versions
         and psql("SELECT count(*) FROM pg_tables WHERE tablename = 'equities'", db='equity') == '1',
         'their concurrent migrations applied each version exactly once (%d)' % n_rows, rows)

    # The portfolio service: every REST request's API key is checked there (Authenticate).
    psql('CREATE DATABASE portfolio OWNER fsr')
    pf_env = {k.replace('EQUITY_', 'PORTFOLIO_'): v for k, v in eq_env.items()}
    pf_env['PORTFOLIO_DB_NAME'] = 'portfolio'
    pf_port = start('portfolio', a.portfolio, pf_env)
    if not T.ok(pf_port is not None, 'fsr-portfolio starts (API-key lookups)'):
        return

    dead = free_port()
    addrs = ['127.0.0.1:%d' % p for p in ports]
    gw_env = {'EQUITY_SERVICE_ADDR': ', '.join(addrs),  # spaces after commas are allowed
              'FI_SERVICE_ADDR': '127.0.0.1:%d' % dead,
              'PORTFOLIO_SERVICE_ADDR': '127.0.0.1:%d' % pf_port,
              'SHARED_REDIS_HOST': os.environ['TEST_REDIS_HOST'],
              'SHARED_REDIS_PORT': os.environ['TEST_REDIS_PORT']}
    gw = start('gateway', a.gateway, gw_env)
    if not T.ok(gw is not None, 'gateway starts with EQUITY_SERVICE_ADDR listing 3 replicas'):
        return

    # ---- /health lists the replicas -----------------------------------------------------------
    r = req(gw, 'GET', '/health', key=None)
    j = r.json if isinstance(r.json, dict) else {}
    reps = j.get('replicas', {}).get('equity', [])
    T.ok(j.get('services', {}).get('equity') == 'SERVING'
         and [x.get('address') for x in reps] == addrs
         and all(x.get('status') == 'SERVING' for x in reps)
         and j.get('services', {}).get('fixed_income') == 'UNAVAILABLE'
         and j.get('replicas', {}).get('fixed_income') == [
             {'address': '127.0.0.1:%d' % dead, 'status': 'UNAVAILABLE'}],
         '/health: equity SERVING, each of its 3 replicas listed and SERVING', r)

    r = req(gw, 'POST', '/equities', equity_body('SCL' + uuid.uuid4().hex[:5].upper()))
    eid = r.json.get('id') if r.status == 200 and isinstance(r.json, dict) else None
    if not T.ok(eid is not None, 'POST /equities through the balanced gateway', r):
        return
    path = '/equities/' + eid

    # ---- 60 GETs spread over the three ----------------------------------------------------------
    before = [handled(p) for p in ports]
    st = burst(gw, path, 60)
    after = [handled(p) for p in ports]
    served = [b - a_ if a_ is not None and b is not None else None
              for a_, b in zip(before, after)]
    T.ok(all(s == 200 for s in st), '60 GETs all answer 200',
         {s: st.count(s) for s in set(st)})
    T.ok(None not in served and sum(served) == 60 and min(served) >= 10,
         'each replica served a share of the 60 (%s)' % served, served)

    # ---- kill -9 one replica: nothing breaks ----------------------------------------------------
    victim = 1
    procs['equity%d' % victim].send_signal(signal.SIGKILL)
    procs['equity%d' % victim].wait()
    alive = [i for i in range(3) if i != victim]
    before = [handled(ports[i]) for i in alive]
    st = burst(gw, path, 60)
    after = [handled(ports[i]) for i in alive]
    served = [b - a_ if a_ is not None and b is not None else None
              for a_, b in zip(before, after)]
    T.ok(all(s == 200 for s in st), 'after kill -9 of a replica: the next 60 GETs all answer 200',
         '%s\n%s' % ({s: st.count(s) for s in set(st)}, log_tail('gateway')))
    T.ok(None not in served and sum(served) == 60 and min(served) >= 10,
         'and are spread over the two remaining replicas (%s)' % served, served)

    r = req(gw, 'GET', '/health', key=None)
    j = r.json if isinstance(r.json, dict) else {}
    st_by_addr = {x.get('address'): x.get('status') for x in j.get('replicas', {}).get('equity', [])}
    T.ok(j.get('services', {}).get('equity') == 'SERVING'
         and st_by_addr.get(addrs[victim]) == 'UNAVAILABLE'
         and all(st_by_addr.get(addrs[i]) == 'SERVING' for i in alive),
         '/health: equity still SERVING, the killed replica UNAVAILABLE', r)

    # ---- a POST (not idempotent) whose connection is refused goes to another replica -----------
    # One loop thread, the dead replica first in the list: the first call is sent to it.
    gw1 = start('gateway1', a.gateway, dict(gw_env, THREADS='1', EQUITY_SERVICE_ADDR=','.join(
        [addrs[victim], addrs[alive[0]]])))
    syms = ['SCP' + uuid.uuid4().hex[:5].upper() for _ in range(4)]
    res = [req(gw1, 'POST', '/equities', equity_body(s)) for s in syms]
    counts = psql("SELECT count(*) FROM equities WHERE symbol IN (%s)"
                  % ','.join("'%s'" % s for s in syms), db='equity')
    T.ok(gw1 is not None and all(x.status == 200 for x in res) and counts == '4',
         'POSTs still succeed, each created once, when the connection to a replica is refused',
         '%s count=%s\n%s' % (res, counts, log_tail('gateway1')))
    T.ok('replica %s unavailable' % addrs[victim] in log_tail('gateway1', 20000),
         'the gateway logged the refused replica and skipped it', log_tail('gateway1'))
    if gw1 is not None:
        procs['gateway1'].send_signal(signal.SIGTERM)

    # ---- the replica comes back: after the back-off it gets traffic again -------------------
    back = start('equity%d' % victim, a.equity, eq_env, port=ports[victim])
    if T.ok(back == ports[victim], 'the killed replica restarts on its port'):
        time.sleep(1.3)  # > the gateway's 1 s back-off
        before = [handled(p) for p in ports]
        st = burst(gw, path, 60)
        after = [handled(p) for p in ports]
        served = [b - a_ if a_ is not None and b is not None else None
                  for a_, b in zip(before, after)]
        T.ok(all(s == 200 for s in st) and None not in served and sum(served) == 60
             and min(served) >= 10,
             'once back it is balanced to again: 60 GETs over 3 replicas (%s)' % served,
             {s: st.count(s) for s in set(st)})

    # ---- configuration errors -------------------------------------------------------------------
    for bad in ('127.0.0.1:1,', '127.0.0.1:1,bogus', '127.0.0.1:99999', ' , '):
        env = dict(os.environ, EQUITY_SERVICE_ADDR=bad, PORT='0')
        r = subprocess.run([a.gateway], env=env, capture_output=True, text=True, timeout=20)
        if not T.ok(r.returncode == 2 and 'EQUITY_SERVICE_ADDR' in r.stderr,
                    'EQUITY_SERVICE_ADDR=%r is refused at start (exit 2, named)' % bad,
                    '%d %s' % (r.returncode, r.stderr)):
            break

    procs['gateway'].send_signal(signal.SIGTERM)
    try:
        rc = procs['gateway'].wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = None
    T.ok(rc == 0, 'gateway exits 0 on SIGTERM', rc)


def run(cmd, env, timeout=300):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def port_block(n, step):
    """A base port p with p + step*k free for k < n."""
    for _ in range(200):
        p = free_port()
        if p + step * (n - 1) < 65000 and all(port_free(p + step * k) for k in range(n)):
            return p
    return None


def part2(a):
    global stack_env
    if a.source_root is None or a.build_root is None:
        T.skip('make scale-equity', 'no --source-root/--build-root')
        return
    if shutil.which('make') is None:
        T.skip('make scale-equity', 'make not installed')
        return
    for rel in ('svc_equity/fsr-equity', 'svc_fixed_income/fsr-fixed-income',
                'svc_portfolio/fsr-portfolio', 'svc_worker/fsr-worker',
                'rest_gateway/fsr-gateway'):
        if not os.access(os.path.join(a.build_root, rel), os.X_OK):
            T.skip('make scale-equity', rel + ' not built')
            return
    step = 10
    env = dict(os.environ)
    for k in [k for k in env if re.match(r'^(EQUITY|FI|PORTFOLIO|SHARED|GATEWAY)_', k)]:
        del env[k]
    env.update({'RUN_DIR': os.path.join(tmp, 'run'), 'BUILD_DIR': a.build_root,
                'BACKUP_DIR': os.path.join(tmp, 'backups'), 'DEPS_FAST': '1',
                'ADMIN_API_KEY': ADMIN_KEY, 'LOG_LEVEL': 'warn', 'HEALTH_TIMEOUT': '60',
                'SCALE_PORT_STEP': str(step), 'THREADS': '2',
                '_STACK_SH': os.path.join(a.source_root, 'scripts', 'stack.sh')})
    for v in ('EQUITY_DB_PORT', 'FI_DB_PORT', 'PORTFOLIO_DB_PORT', 'EQUITY_REDIS_PORT',
              'FI_REDIS_PORT', 'SHARED_REDIS_PORT', 'PORTFOLIO_REDIS_PORT', 'GATEWAY_PORT',
              'FI_PORT', 'PORTFOLIO_PORT', 'FI_WORKER_PORT', 'PORTFOLIO_WORKER_PORT'):
        env[v] = str(free_port())
    eq, eqw = port_block(3, step), port_block(3, step)
    if eq is None or eqw is None:
        T.skip('make scale-equity', 'no block of free ports')
        return
    env['EQUITY_PORT'], env['EQUITY_WORKER_PORT'] = str(eq), str(eqw)
    stack = ['bash', env['_STACK_SH']]
    make = ['make', '--no-print-directory', '-C', a.source_root, 'BUILD=' + a.build_root]
    gw = int(env['GATEWAY_PORT'])

    stack_env = env
    rc, out = run(stack + ['up'], env, timeout=400)
    if not T.ok(req(gw, 'GET', '/livez', key=None).status == 200,
                'scripts/stack.sh up: the stack runs (own PostgreSQL/Redis on free ports)',
                out[-3000:]):
        return

    rc, out = run(make + ['scale-equity', '3'], env)
    eq_ports = [eq + step * k for k in range(3)]
    T.ok(rc == 0 and 'fsr-equity-2' in out and 'fsr-equity-3' in out
         and 'fsr-worker-equity-3' in out,
         '`make scale-equity 3` starts replicas 2 and 3 of fsr-equity and of its worker', out)
    rc, out = run(stack + ['status'], env)
    ups = {m.group(1): m.group(2) for m in re.finditer(r'^(\S+)\s+(\d+)\s+up\b', out, re.M)}
    T.ok(all(ups.get(n) == str(p) for n, p in (('fsr-equity', eq), ('fsr-equity-2', eq + step),
                                                 ('fsr-equity-3', eq + 2 * step),
                                                 ('fsr-worker-equity-2', eqw + step),
                                                 ('fsr-worker-equity-3', eqw + 2 * step))),
         'make status shows the replicas up on distinct ports', out)
    r = req(gw, 'GET', '/health', key=None)
    reps = (r.json or {}).get('replicas', {}).get('equity', []) if isinstance(r.json, dict) else []
    T.ok([x.get('address') for x in reps] == ['127.0.0.1:%d' % p for p in eq_ports]
         and all(x.get('status') == 'SERVING' for x in reps),
         'the restarted gateway balances over the 3 equity replicas (/health)', r)

    r = req(gw, 'POST', '/equities', equity_body('MKS' + uuid.uuid4().hex[:5].upper()))
    eid = r.json.get('id') if r.status == 200 and isinstance(r.json, dict) else None
    if T.ok(eid is not None, 'POST /equities on the scaled stack', r):
        before = [handled(p) for p in eq_ports]
        st = burst(gw, '/equities/' + eid, 30)
        after = [handled(p) for p in eq_ports]
        served = [b - a_ if a_ is not None and b is not None else None
                  for a_, b in zip(before, after)]
        T.ok(all(s == 200 for s in st) and None not in served and sum(served) == 30
             and min(served) > 0, 'traffic reaches every replica (%s)' % served, st)

    rc, out = run(make + ['scale-equity', 'N=1'], env)
    gone = wait_for(lambda: not any(not port_free(p) for p in eq_ports[1:]), timeout=15)
    r = req(gw, 'GET', '/health', key=None)
    reps = (r.json or {}).get('replicas', {}).get('equity', []) if isinstance(r.json, dict) else []
    T.ok(rc == 0 and gone and [x.get('address') for x in reps] == ['127.0.0.1:%d' % eq],
         '`make scale-equity N=1` stops replicas 2..3 (ports closed) and the gateway forgets them',
         '%s\n%r' % (out, r))
    if eid is not None:
        st = burst(gw, '/equities/' + eid, 10)
        T.ok(all(s == 200 for s in st), 'requests keep working after scaling down', st)

    rc, out = run(make + ['scale-equity'], env)
    T.ok(rc != 0 and 'usage' in out, '`make scale-equity` without N explains itself', out)

    rc, out = run(stack + ['down'], env, timeout=200)
    stack_env = None
    T.ok(rc == 0 and req(gw, 'GET', '/livez', key=None).status == 0
         and port_free(eq), 'scripts/stack.sh down stops everything', out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--gateway', required=True)
    ap.add_argument('--equity', required=True)
    ap.add_argument('--portfolio', required=True)
    ap.add_argument('--source-root')
    ap.add_argument('--build-root')
    a = ap.parse_args()
    part1(a)
    part2(a)

    reports = []
    for name in procs:
        text = log_tail(name, 10 ** 7)
        for marker in ('runtime error:', 'ERROR: AddressSanitizer', 'ERROR: LeakSanitizer'):
            if marker in text:
                reports.append('%s: %s' % (name, text[text.index(marker) - 200:][:1500]))
    T.ok(not reports, 'no sanitizer reports in any process log', '\n'.join(reports))
    print('1..%d' % T.n, flush=True)
    if T.failed:
        for name in procs:
            T.diag('--- %s log (tail) ---\n%s' % (name, log_tail(name, 2000)))
    return 1 if T.failed else 0


if __name__ == '__main__':
    rc = 1
    try:
        rc = main()
    finally:
        cleanup()
    sys.exit(rc)
