# SPDX-License-Identifier: MIT
"""The whole platform as real processes, for REST end-to-end tests (TAP on stdout).

Used by tests run through with_deps.sh (a throwaway PostgreSQL and Redis; TEST_PG_HOST,
TEST_PG_PORT, TEST_REDIS_HOST, TEST_REDIS_PORT in the environment):

    import stack
    T = stack.Tap()
    s = stack.Stack(binaries)           # {'equity': path, 'fixed_income': path,
                                        #  'portfolio': path, 'gateway': path,
                                        #  'worker': path (optional)}
    s.start_all()                        # databases, services, (workers), gateway
    r = s.req('POST', '/portfolios', {...})            # as the bootstrap admin
    r = s.req('GET', '/portfolios', key=client_key)    # as another caller
    ...
    s.stop('equity'); s.restart('equity')
    T.done()                             # prints the plan, returns the exit status

Every process runs on a free port (PORT=0 + PORT_FILE) with its log in a temp dir, and is
killed at exit.  One Redis serves as every service's own Redis and as the shared one, each
service on its own Redis database number would be nicer but the runtime has no DB index
setting: keys are prefixed per service (eq:, fi:, pf:) so they do not collide.
"""
import atexit
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time

ADMIN_KEY = 'it-admin-key-0123456789abcdef0123456789'

SERVICES = (('equity', 'EQUITY', 'equity'), ('fixed_income', 'FI', 'fixed_income'),
            ('portfolio', 'PORTFOLIO', 'portfolio'))


class Tap:
    """Test Anything Protocol output: one line per check."""

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
        return bool(cond)

    def skip(self, desc, why):
        self.n += 1
        print('ok %d - %s # SKIP %s' % (self.n, desc, why), flush=True)

    def diag(self, msg):
        for line in str(msg).splitlines():
            print('# ' + line, flush=True)

    def done(self):
        print('1..%d' % self.n, flush=True)
        return 1 if self.failed else 0


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return 'HTTP %d %s' % (self.status, self.body[:1500].decode('utf-8', 'replace'))


def pg_bin(tool):
    d = '/usr/lib/postgresql/15/bin'
    try:
        out = subprocess.run(['pg_config', '--bindir'], capture_output=True, text=True)
        if out.returncode == 0 and os.path.exists(os.path.join(out.stdout.strip(), tool)):
            d = out.stdout.strip()
    except OSError:
        pass
    p = os.path.join(d, tool)
    return p if os.path.exists(p) else tool


def psql(sql, db='postgres'):
    """Runs |sql| as the superuser in |db|; returns the rows as lists of strings."""
    r = subprocess.run([pg_bin('psql'), '-X', '-q', '-A', '-t', '-F', '\t', '-v',
                        'ON_ERROR_STOP=1', '-h', os.environ['TEST_PG_HOST'], '-p',
                        os.environ['TEST_PG_PORT'], '-U', 'postgres', '-d', db, '-c', sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError('psql failed: ' + r.stderr)
    return [line.split('\t') for line in r.stdout.splitlines() if line != '']


def redis_cli(*args):
    r = subprocess.run(['redis-cli', '-h', os.environ['TEST_REDIS_HOST'], '-p',
                        os.environ['TEST_REDIS_PORT']] + [str(a) for a in args],
                       capture_output=True, text=True)
    return r.stdout.strip()


def _read_port(path, proc, timeout=30.0):
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


class Stack:
    def __init__(self, binaries, env=None, tap=None):
        self.bin = dict(binaries)
        self.extra_env = dict(env or {})
        self.T = tap
        self.tmp = tempfile.mkdtemp(prefix='fsr-stack.')
        self.procs = {}
        self.ports = {}
        self.envs = {}
        atexit.register(self.cleanup)

    # ---- processes ---------------------------------------------------------------------
    def cleanup(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get('STACK_KEEP_LOGS') is None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def db_env(self, prefix, db):
        h, p = os.environ['TEST_REDIS_HOST'], os.environ['TEST_REDIS_PORT']
        return {prefix + '_DB_HOST': os.environ['TEST_PG_HOST'],
                prefix + '_DB_PORT': os.environ['TEST_PG_PORT'],
                prefix + '_DB_NAME': db, prefix + '_DB_USER': 'fsr',
                prefix + '_REDIS_HOST': h, prefix + '_REDIS_PORT': p,
                'SHARED_REDIS_HOST': h, 'SHARED_REDIS_PORT': p}

    def log(self, name):
        try:
            with open(os.path.join(self.tmp, name + '.log'), 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''

    def start(self, name, argv, env_extra, wait_port=True):
        env = dict(os.environ)
        env.update({'PORT': '0', 'PORT_FILE': os.path.join(self.tmp, name + '.port'),
                    'THREADS': '2', 'LOG_LEVEL': os.environ.get('STACK_LOG_LEVEL', 'warn'),
                    'ADMIN_API_KEY': ADMIN_KEY, 'SHUTDOWN_GRACE_MS': '500'})
        env.update(self.extra_env)
        env.update(env_extra)
        try:
            os.unlink(env['PORT_FILE'])
        except OSError:
            pass
        self.envs[name] = (argv, env_extra)
        logf = open(os.path.join(self.tmp, name + '.log'), 'ab')
        p = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        self.procs[name] = p
        if not wait_port:
            return None
        port = _read_port(env['PORT_FILE'], p)
        if port is None:
            raise RuntimeError('%s did not start:\n%s' % (name, self.log(name)[-3000:]))
        self.ports[name] = port
        return port

    def stop(self, name, sig=None):
        """Stops |name| (SIGKILL by default) and waits for it."""
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            if sig is None:
                p.kill()
            else:
                p.send_signal(sig)
            p.wait(timeout=30)

    def restart(self, name):
        """Starts |name| again with the same arguments, on the same port."""
        argv, env_extra = self.envs[name]
        env_extra = dict(env_extra)
        if name in self.ports:
            env_extra['PORT'] = str(self.ports[name])
        return self.start(name, argv, env_extra)

    def addr(self, name):
        return '127.0.0.1:%d' % self.ports[name]

    def start_all(self, workers=False):
        """Databases, the three services, optionally a worker per queue, then the gateway."""
        for name, prefix, db in SERVICES:
            if not psql("SELECT 1 FROM pg_database WHERE datname = '%s'" % db):
                psql('CREATE DATABASE %s OWNER fsr' % db)
        peers = {}
        for name, prefix, db in SERVICES:
            self.start(name, [self.bin[name]], dict(self.db_env(prefix, db), **peers))
            # Later services reach the earlier ones; portfolio (last) reaches both.
            peers = self.peer_env()
        # Equity and fixed income learn the portfolio address (CountHolders) on restart;
        # restart them now so every service knows every other.
        for name in ('equity', 'fixed_income'):
            self.stop(name, 15)
            argv, env_extra = self.envs[name]
            self.envs[name] = (argv, dict(env_extra, **self.peer_env()))
            self.restart(name)
        if workers and self.bin.get('worker'):
            for name, prefix, db in SERVICES:
                wenv = dict(self.db_env(prefix, db), **self.peer_env())
                wenv['WORKER_PORT'] = '0'
                self.start('worker_' + name, [self.bin['worker'], '--queue', name], wenv,
                           wait_port=False)
        gw_env = dict(self.peer_env(), MAX_MESSAGE_SIZE='4M')
        gw_env.update({'SHARED_REDIS_HOST': os.environ['TEST_REDIS_HOST'],
                       'SHARED_REDIS_PORT': os.environ['TEST_REDIS_PORT']})
        self.start('gateway', [self.bin['gateway']], gw_env)
        self.wait_health()

    def peer_env(self):
        env = {}
        for name, var in (('equity', 'EQUITY_SERVICE_ADDR'), ('fixed_income', 'FI_SERVICE_ADDR'),
                          ('portfolio', 'PORTFOLIO_SERVICE_ADDR')):
            if name in self.ports:
                env[var] = self.addr(name)
        return env

    def wait_health(self, want=200, timeout=30.0):
        deadline = time.time() + timeout
        r = None
        while time.time() < deadline:
            try:
                r = self.req('GET', '/health')
                if r.status == want:
                    return r
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError('gateway /health never answered %d: %r' % (want, r))

    # ---- REST --------------------------------------------------------------------------
    def req(self, method, path, body=None, key=ADMIN_KEY, headers=None, timeout=30,
            ctype='application/json'):
        """One REST call through the gateway; |key| None sends no Authorization."""
        h = {}
        if key is not None:
            h['Authorization'] = 'Bearer ' + key
        if body is not None and ctype is not None:
            h['Content-Type'] = ctype
        h.update(headers or {})
        data = body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        c = http.client.HTTPConnection('127.0.0.1', self.ports['gateway'], timeout=timeout)
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            c.close()


def is_error_body(r, code, field=None):
    """True if |r| is the gateway's error body for gRPC |code| (naming |field| if given)."""
    j = r.json
    if not (isinstance(j, dict) and j.get('code') == code and isinstance(j.get('message'), str)
            and j.get('message') != '' and isinstance(j.get('details'), list)):
        return False
    if field is None:
        return True
    return any(isinstance(d, dict) and d.get('field') == field for d in j['details'])


# ---- the throwaway dependencies themselves (fault injection) -----------------------------

def _deps_sh():
    return os.environ.get('DEPS_SH') or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', '..', 'scripts', 'deps.sh')


def _dep_dir(var, sub):
    d = os.environ.get(var)
    if d:
        return d
    # Older with_deps.sh: both live side by side in its temp dir.
    return os.path.join(os.path.dirname(os.environ['TEST_PG_HOST'].rstrip('/')), sub)


def _deps(*args):
    r = subprocess.run([_deps_sh()] + [str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError('deps.sh %s failed: %s' % (' '.join(map(str, args)), r.stderr))


def pg_stop():
    """Stops with_deps.sh's PostgreSQL (pg_ctl -m fast, as the postgres user)."""
    _deps('pg-stop', _dep_dir('TEST_PG_DIR', 'pg'))


def pg_start():
    """Starts with_deps.sh's PostgreSQL again on its port, waiting until it accepts."""
    _deps('pg-start', _dep_dir('TEST_PG_DIR', 'pg'), os.environ['TEST_PG_PORT'])


def redis_stop():
    """Stops with_deps.sh's Redis (SIGTERM; its data is not persisted)."""
    _deps('redis-stop', _dep_dir('TEST_REDIS_DIR', 'redis'))


def redis_start():
    """Starts with_deps.sh's Redis again on its port (empty)."""
    _deps('redis-start', _dep_dir('TEST_REDIS_DIR', 'redis'), os.environ['TEST_REDIS_PORT'])


def proc_usage(pid):
    """(threads, open fds, RSS KiB) of |pid| from /proc."""
    threads = len(os.listdir('/proc/%d/task' % pid))
    fds = len(os.listdir('/proc/%d/fd' % pid))
    rss = 0
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                rss = int(line.split()[1])
    return threads, fds, rss
