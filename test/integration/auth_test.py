# SPDX-License-Identifier: MIT
"""Authentication and authorization end to end (TAP): REST through fsr-gateway in front of the
real services (stack.py), plus direct gRPC calls with Debian's python3-grpcio.

Checked: the gateway's own endpoints need no key; a missing, malformed or unknown key is 401
with the error body and a WWW-Authenticate challenge; the bootstrap admin key (ADMIN_API_KEY)
creates clients of each role, their keys are shown once and never listed, and the database
holds only their SHA-256; the route policy per role (client: reads and its own portfolios;
data: reference-data writes; admin: clients and keys); another client's portfolio is 404;
spoofed X-Client-Id / X-Client-Role headers change nothing; a revoked key is refused by the
very next request, whether revoked through the gateway or straight over gRPC (the
"key.revoked" message); the audit rows; the services' own defense in depth (a "client" role
in metadata cannot write equities or bonds, stateless analytics stay open, internal callers
may); Authenticate over gRPC; the portfolio service down is 503 naming it.

usage: auth_test.py --equity BIN --fi BIN --portfolio BIN --gateway BIN --proto-dir DIR
(run through with_deps.sh --pg --redis).
"""
import argparse
import hashlib
import http.client
import importlib
import os
import sys
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

BOOTSTRAP_ID = '00000000-0000-4000-8000-000000000001'
GOOGLEAPIS = '/usr/share/gocode/src/github.com/gogo/googleapis'

T = stack.Tap()


def error_is(r, http_status, code):
    return r.status == http_status and stack.is_error_body(r, code)


def raw_req(s, method, path, headers):
    """A request with exactly |headers| (no Authorization unless given)."""
    c = http.client.HTTPConnection('127.0.0.1', s.ports['gateway'], timeout=15)
    try:
        c.request(method, path, headers=headers)
        r = c.getresponse()
        return stack.Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        c.close()


def equity_body(sym):
    return {'symbol': sym, 'name': sym + ' Corp', 'exchange': 'XNAS', 'currency': 'USD',
            'sector': 'Technology'}


# ---- gRPC (python3-grpcio with modules generated from proto/) -------------------------------
class Grpc:
    def __init__(self, proto_dir, tmp):
        import grpc  # noqa: F401  (python3-grpcio)
        from grpc_tools import protoc
        self.grpc = grpc
        include = os.path.join(os.path.dirname(protoc.__file__), '_proto')
        out = os.path.join(tmp, 'py')
        os.makedirs(out, exist_ok=True)
        for d, files in ((GOOGLEAPIS, ['google/api/annotations.proto', 'google/api/http.proto']),
                         (proto_dir, ['common/v1/common.proto', 'jobs/v1/jobs.proto',
                                      'equity/v1/equity.proto',
                                      'fixed_income/v1/fixed_income.proto',
                                      'portfolio/v1/portfolio.proto'])):
            for f in files:
                args = ['protoc', '-I', proto_dir, '-I', GOOGLEAPIS, '-I', include,
                        '-I', '/usr/include', '--python_out=' + out, f]
                if protoc.main(args) != 0:
                    raise RuntimeError('protoc failed for ' + f)
        sys.path.insert(0, out)
        self.common = importlib.import_module('common.v1.common_pb2')
        self.eq = importlib.import_module('equity.v1.equity_pb2')
        self.fi = importlib.import_module('fixed_income.v1.fixed_income_pb2')
        self.pf = importlib.import_module('portfolio.v1.portfolio_pb2')
        self.empty = importlib.import_module('google.protobuf.empty_pb2').Empty
        self.channels = {}

    def call(self, addr, path, req, resp_cls, md=None):
        """Unary call; returns (code name, response or None, details)."""
        ch = self.channels.get(addr)
        if ch is None:
            ch = self.channels[addr] = self.grpc.insecure_channel(addr)
        fn = ch.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=resp_cls.FromString)
        try:
            return 'OK', fn(req, metadata=md, timeout=10), ''
        except self.grpc.RpcError as e:
            return e.code().name, None, e.details()


def main():
    ap = argparse.ArgumentParser()
    for k in ('--equity', '--fi', '--portfolio', '--gateway', '--proto-dir'):
        ap.add_argument(k, required=True)
    a = ap.parse_args()
    s = stack.Stack({'equity': a.equity, 'fixed_income': a.fi, 'portfolio': a.portfolio,
                     'gateway': a.gateway}, tap=T)
    s.start_all()
    req = s.req

    # ---- public endpoints and refusals -------------------------------------------------------
    for path in ('/health', '/metrics', '/livez', '/readyz', '/openapi.json', '/docs'):
        r = req('GET', path, key=None)
        T.ok(r.status == 200, 'GET %s needs no key' % path, r)
    r = req('GET', '/equities', key=None)
    T.ok(error_is(r, 401, 16) and r.headers.get('www-authenticate', '').startswith('Bearer'),
         'no key -> 401 {code:16} with WWW-Authenticate: Bearer', '%r %s' % (r, r.headers))
    for h in ('Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', 'Bearer two words', 'Bearer =x',
              'Bearer ' + 'k' * 600):
        r = raw_req(s, 'GET', '/equities', {'Authorization': h})
        T.ok(error_is(r, 401, 16) and 'Bearer' in r.headers.get('www-authenticate', ''),
             'malformed Authorization %r -> 401' % h[:24], r)
    unknown = 'fsr_' + '0' * 64
    for i in range(2):  # the second answer comes from the negative cache
        r = req('GET', '/equities', key=unknown)
        T.ok(error_is(r, 401, 16) and 'invalid_token' in r.headers.get('www-authenticate', ''),
             'unknown key -> 401 (%s)' % ('lookup', 'cached')[i], r)
    r = req('POST', '/equities', equity_body('NOKEY'), key=None)
    T.ok(error_is(r, 401, 16), 'POST without a key -> 401 (nothing created)', r)
    r = req('GET', '/clients', key='not-the-admin-key-0123456789')
    T.ok(error_is(r, 401, 16), 'a wrong admin key -> 401', r)
    # 404/405 stay what they were: routing comes first (the route table is public anyway).
    r = req('GET', '/no/such/route', key=None)
    T.ok(error_is(r, 404, 5), 'unknown path without a key -> 404', r)

    # ---- the bootstrap admin creates clients; keys shown once -----------------------------------
    def create(name, role=None, key=stack.ADMIN_KEY):
        body = {'name': name}
        if role is not None:
            body['role'] = role
        return req('POST', '/clients', body, key=key)

    r = create('Alice Capital', 'client')
    ok = T.ok(r.status == 200 and r.json.get('role') == 'client'
              and r.json.get('apiKey', '').startswith('fsr_') and len(r.json['apiKey']) == 68
              and len(r.json.get('keys', [])) == 1
              and r.json['keys'][0].get('prefix') == r.json['apiKey'][:12]
              and 'revokedAt' not in r.json['keys'][0],
              'POST /clients (role client) -> the client with its first apiKey, shown once', r)
    if not ok:
        return
    alice = r.json
    alice_key = alice['apiKey']
    r = create('Bob Partners')
    bob = r.json if r.status == 200 else {}
    T.ok(r.status == 200 and bob.get('role') == 'client' and bob.get('apiKey'),
         'POST /clients without a role -> role client', r)
    bob_key = bob.get('apiKey', '')
    r = create('Dana Data Feeds', 'data')
    dana = r.json if r.status == 200 else {}
    T.ok(r.status == 200 and dana.get('role') == 'data', 'POST /clients (role data)', r)
    dana_key = dana.get('apiKey', '')
    r = create('', 'client')
    T.ok(error_is(r, 400, 3) and stack.is_error_body(r, 3, 'name'), 'empty name -> 400 naming name',
         r)
    r = create('Eve', 'root')
    T.ok(error_is(r, 400, 3) and stack.is_error_body(r, 3, 'role'), 'unknown role -> 400 naming role',
         r)
    keys = [alice_key, bob_key, dana_key]

    r = req('GET', '/clients?pageSize=1000')
    listed = {c['id']: c for c in (r.json or {}).get('clients', [])}
    T.ok(r.status == 200 and {alice['id'], bob['id'], dana['id'], BOOTSTRAP_ID} <= set(listed)
         and listed[BOOTSTRAP_ID]['name'] == 'bootstrap-admin'
         and listed[BOOTSTRAP_ID]['role'] == 'admin',
         'GET /clients lists them and the bootstrap admin', r)
    T.ok(r.status == 200 and not any(k in r.body.decode() for k in keys)
         and all(c.get('apiKey', '') == '' for c in listed.values())
         and listed[alice['id']]['keys'][0]['keyId'] == alice['keys'][0]['keyId'],
         'GET /clients never shows a key (only key ids and prefixes)', r)
    r = req('GET', '/clients/' + alice['id'])
    T.ok(r.status == 200 and r.json.get('name') == 'Alice Capital' and r.json.get('apiKey') == ''
         and alice_key not in r.body.decode() and len(r.json.get('keys', [])) == 1,
         'GET /clients/{id}: the client and its keys, never the key', r)
    r = req('GET', '/clients?pageSize=2')
    page2 = req('GET', '/clients?pageSize=2&pageToken=' + (r.json or {}).get('nextPageToken', ''))
    ids = [c['id'] for c in (r.json or {}).get('clients', [])] + \
          [c['id'] for c in (page2.json or {}).get('clients', [])]
    T.ok(r.status == 200 and page2.status == 200 and len(ids) == 4 and len(set(ids)) == 4,
         'GET /clients pages with pageSize/pageToken', '%r %r' % (r, page2))
    r = req('GET', '/clients/' + str(uuid.uuid4()))
    T.ok(error_is(r, 404, 5), 'GET /clients/{unknown} -> 404', r)

    rows = stack.psql('SELECT key_hash, prefix, api_keys::text FROM api_keys', db='portfolio')
    hashes = {row[0] for row in rows}
    T.ok(len(rows) == 3
         and hashes == {hashlib.sha256(k.encode()).hexdigest() for k in keys}
         and not any(k in row[2] or k[4:] in row[2] for k in keys for row in rows),
         'api_keys holds each key\'s SHA-256 and prefix, never the key', rows)

    # ---- role client ---------------------------------------------------------------------------
    r = req('GET', '/equities', key=alice_key)
    T.ok(r.status == 200, 'client key: GET /equities -> 200', r)
    r = req('POST', '/equities', equity_body('ALC' + uuid.uuid4().hex[:4].upper()), key=alice_key)
    T.ok(error_is(r, 403, 7), 'client key: POST /equities -> 403 {code:7}', r)
    r = req('POST', '/bonds', {'name': 'x'}, key=alice_key)
    T.ok(error_is(r, 403, 7), 'client key: POST /bonds -> 403', r)
    r = req('GET', '/clients', key=alice_key)
    T.ok(error_is(r, 403, 7), 'client key: GET /clients -> 403', r)
    r = req('POST', '/clients', {'name': 'mine'}, key=alice_key)
    T.ok(error_is(r, 403, 7), 'client key: POST /clients -> 403', r)
    r000 = {'couponRate': 0.05, 'frequency': 1, 'dayCount': 'ACT_ACT_ICMA',
            'issueDate': '2020-01-15', 'maturityDate': '2030-01-15'}
    r = req('POST', '/bonds/analytics', {'terms': r000, 'settlementDate': '2024-01-15',
                                         'yield': 0.04}, key=alice_key)
    T.ok(r.status == 200 and 'cleanPrice' in (r.json or {}),
         'client key: POST /bonds/analytics (stateless) -> 200', r)
    r = req('POST', '/portfolios', {'name': 'Alice core', 'baseCurrency': 'USD', 'cash': '100'},
            key=alice_key)
    T.ok(r.status == 200 and r.json.get('clientId') == alice['id'],
         'client key: POST /portfolios -> 200, owned by the client', r)
    alice_pf = (r.json or {}).get('id')
    r = req('GET', '/portfolios/%s' % alice_pf, key=alice_key)
    T.ok(r.status == 200 and r.json.get('id') == alice_pf, 'client key: GET its own portfolio', r)

    # ---- another client; the admin ----------------------------------------------------------------
    r = req('POST', '/portfolios', {'name': 'Bob core', 'baseCurrency': 'EUR'}, key=bob_key)
    bob_pf = (r.json or {}).get('id')
    T.ok(r.status == 200 and r.json.get('clientId') == bob['id'], 'second client: own portfolio', r)
    r = req('GET', '/portfolios/%s' % alice_pf, key=bob_key)
    T.ok(error_is(r, 404, 5) and 'Alice' not in r.body.decode(),
         'second client: GET of the first\'s portfolio -> 404, no data', r)
    r = req('GET', '/portfolios?pageSize=1000', key=bob_key)
    ids = [p['id'] for p in (r.json or {}).get('portfolios', [])]
    T.ok(r.status == 200 and bob_pf in ids and alice_pf not in ids,
         'second client: the first\'s portfolio is absent from its list', r)
    r = req('GET', '/portfolios?pageSize=1000')
    ids = [p['id'] for p in (r.json or {}).get('portfolios', [])]
    T.ok(r.status == 200 and alice_pf in ids and bob_pf in ids, 'admin: lists both portfolios', r)
    r = req('GET', '/portfolios/%s' % bob_pf)
    T.ok(r.status == 200, 'admin: GET of a client\'s portfolio -> 200', r)

    # ---- role data ----------------------------------------------------------------------------------
    r = req('POST', '/equities', equity_body('DAT' + uuid.uuid4().hex[:4].upper()), key=dana_key)
    T.ok(r.status == 200 and r.json.get('id'), 'data key: POST /equities -> 200', r)
    r = req('GET', '/clients', key=dana_key)
    T.ok(error_is(r, 403, 7), 'data key: GET /clients -> 403', r)
    r = req('POST', '/clients', {'name': 'x', 'role': 'admin'}, key=dana_key)
    T.ok(error_is(r, 403, 7), 'data key: POST /clients -> 403', r)

    # ---- spoofed identity headers ------------------------------------------------------------------
    spoof = {'X-Client-Id': bob['id'], 'X-Client-Role': 'admin'}
    r = req('GET', '/clients', key=alice_key, headers=spoof)
    T.ok(error_is(r, 403, 7), 'spoofed X-Client-Role: admin -> still 403 on /clients', r)
    r = req('GET', '/portfolios/%s' % bob_pf, key=alice_key, headers=spoof)
    T.ok(error_is(r, 404, 5), 'spoofed X-Client-Id of another client -> its portfolio still 404', r)
    r = req('POST', '/portfolios', {'name': 'spoof', 'baseCurrency': 'USD'}, key=alice_key,
            headers=spoof)
    T.ok(r.status == 200 and r.json.get('clientId') == alice['id'],
         'spoofed headers: a created portfolio is still owned by the key\'s client', r)
    r = req('POST', '/equities', equity_body('SPF' + uuid.uuid4().hex[:4].upper()),
            key=alice_key, headers={'X-Client-Role': 'data'})
    T.ok(error_is(r, 403, 7), 'spoofed X-Client-Role: data -> POST /equities still 403', r)

    # ---- keys: create, revoke (the very next request fails) ------------------------------------------
    r = req('POST', '/clients/%s/keys' % alice['id'], {})
    key2 = (r.json or {}).get('apiKey', '')
    T.ok(r.status == 200 and key2.startswith('fsr_') and key2 != alice_key
         and r.json.get('clientId') == alice['id'] and r.json.get('keyId'),
         'POST /clients/{id}/keys -> a new key, shown once', r)
    r = req('POST', '/clients/%s/keys' % uuid.uuid4(), {})
    T.ok(error_is(r, 404, 5), 'POST /clients/{unknown}/keys -> 404', r)
    # Warm both gateway threads' caches: several connections.
    warm = [req('GET', '/portfolios/%s' % alice_pf, key=alice_key).status for _ in range(8)]
    T.ok(warm == [200] * 8, 'the first key works (cached on every gateway thread)', warm)
    kid1 = alice['keys'][0]['keyId']
    r = req('DELETE', '/clients/%s/keys/%s' % (alice['id'], kid1))
    T.ok(r.status == 200, 'DELETE /clients/{id}/keys/{keyId} -> 200', r)
    after = [req('GET', '/portfolios/%s' % alice_pf, key=alice_key) for _ in range(8)]
    T.ok(all(error_is(x, 401, 16) for x in after),
         'revoked key: the very next requests (every thread) -> 401, no waiting',
         [x.status for x in after])
    r = req('GET', '/portfolios/%s' % alice_pf, key=key2)
    T.ok(r.status == 200, 'the client\'s other key still works', r)
    r = req('DELETE', '/clients/%s/keys/%s' % (alice['id'], kid1))
    T.ok(r.status == 200, 'revoking again -> 200 (idempotent)', r)
    r = req('DELETE', '/clients/%s/keys/%s' % (bob['id'], kid1))
    T.ok(error_is(r, 404, 5), 'revoking through another client\'s id -> 404', r)
    r = req('GET', '/clients/' + alice['id'])
    ks = {k['keyId']: k for k in (r.json or {}).get('keys', [])}
    T.ok(r.status == 200 and len(ks) == 2 and 'revokedAt' in ks.get(kid1, {})
         and all('revokedAt' not in k for i, k in ks.items() if i != kid1),
         'GET /clients/{id}: the revoked key has revokedAt, the new one not', r)

    # ---- audit -------------------------------------------------------------------------------------
    rows = stack.psql("SELECT action, coalesce(actor, ''), entity_id FROM audit_log"
                      " WHERE action IN ('client.create', 'key.create', 'key.revoke')"
                      " ORDER BY id", db='portfolio')
    acts = [r_[0] for r_ in rows]
    T.ok(acts.count('client.create') == 3 and acts.count('key.create') == 4
         and acts.count('key.revoke') == 1 and all(r_[1] == BOOTSTRAP_ID for r_ in rows)
         and [r_[2] for r_ in rows if r_[0] == 'key.revoke'] == [kid1],
         'audit_log: client.create x3, key.create x4, key.revoke x1, actor the bootstrap admin',
         rows)

    # ---- gRPC: defense in depth, Authenticate, revocation by message ----------------------------------
    try:
        g = Grpc(a.proto_dir, s.tmp)
    except Exception as e:  # python3-grpcio / grpc_tools missing
        T.skip('gRPC checks', 'grpcio unavailable: %s' % e)
        g = None
    if g is not None:
        eq, fi, pf = s.addr('equity'), s.addr('fixed_income'), s.addr('portfolio')
        as_client = [('x-client-id', alice['id']), ('x-client-role', 'client')]
        as_data = [('x-client-id', dana['id']), ('x-client-role', 'data')]
        create_eq = '/equity.v1.EquityService/CreateEquity'

        def eq_req(sym):
            return g.eq.CreateEquityRequest(**equity_body(sym))

        code, _, det = g.call(eq, create_eq, eq_req('GRC' + uuid.uuid4().hex[:4].upper()),
                              g.eq.Equity, as_client)
        T.ok(code == 'PERMISSION_DENIED', 'equity CreateEquity with x-client-role client -> '
             'PERMISSION_DENIED (service-side)', '%s %s' % (code, det))
        n = stack.psql("SELECT count(*) FROM equities WHERE symbol LIKE 'GRC%'", db='equity')
        T.ok(n == [['0']], '... and nothing was written', n)
        code, resp, det = g.call(eq, create_eq, eq_req('GRD' + uuid.uuid4().hex[:4].upper()),
                                 g.eq.Equity, as_data)
        T.ok(code == 'OK' and resp.id, 'equity CreateEquity as data -> OK', '%s %s' % (code, det))
        code, resp, det = g.call(eq, create_eq, eq_req('GRI' + uuid.uuid4().hex[:4].upper()),
                                 g.eq.Equity, None)
        T.ok(code == 'OK', 'equity CreateEquity without metadata (internal) -> OK',
             '%s %s' % (code, det))
        code, _, det = g.call(eq, '/equity.v1.EquityService/ListEquities',
                              g.eq.ListEquitiesRequest(page_size=1),
                              g.eq.ListEquitiesResponse, as_client)
        T.ok(code == 'OK', 'equity ListEquities (NO_SIDE_EFFECTS) as client -> OK',
             '%s %s' % (code, det))
        code, _, det = g.call(eq, '/equity.v1.EquityService/DeleteEquity',
                              g.eq.DeleteEquityRequest(id=str(uuid.uuid4())), g.empty,
                              as_client)
        T.ok(code == 'PERMISSION_DENIED', 'equity DeleteEquity (IDEMPOTENT, a write) as client '
             '-> PERMISSION_DENIED', '%s %s' % (code, det))
        sa = g.eq.SeriesAnalyticsRequest()
        for d, c in (('2024-01-02', 100.0), ('2024-01-03', 101.0), ('2024-01-04', 99.0)):
            sa.prices.add(date=d, close=c)
        code, _, det = g.call(eq, '/equity.v1.EquityAnalyticsService/SeriesAnalytics', sa,
                              g.common.SeriesMetrics, as_client)
        T.ok(code != 'PERMISSION_DENIED', 'equity SeriesAnalytics (stateless) stays open to a '
             'client (%s)' % code, det)
        code, _, det = g.call(fi, '/fixed_income.v1.FixedIncomeService/CreateBond',
                              g.fi.CreateBondRequest(name='x', issuer='y', currency='EUR'),
                              g.fi.Bond, as_client)
        T.ok(code == 'PERMISSION_DENIED', 'fixed income CreateBond as client -> PERMISSION_DENIED',
             '%s %s' % (code, det))
        ba = g.fi.BondAnalyticsRequest(settlement_date='2024-01-15', **{'yield': 0.04})
        ba.terms.coupon_rate = 0.05
        ba.terms.frequency = 1
        ba.terms.day_count = 1  # ACT_ACT_ICMA
        ba.terms.issue_date = '2020-01-15'
        ba.terms.maturity_date = '2030-01-15'
        code, _, det = g.call(fi, '/fixed_income.v1.FixedIncomeService/BondAnalytics', ba,
                              g.fi.BondAnalyticsResponse, as_client)
        T.ok(code != 'PERMISSION_DENIED', 'fixed income BondAnalytics stays open to a client (%s)'
             % code, det)
        code, _, det = g.call(pf, '/portfolio.v1.ClientService/ListClients',
                              g.pf.ListClientsRequest(), g.pf.ListClientsResponse, as_client)
        T.ok(code == 'PERMISSION_DENIED', 'portfolio ListClients with role client metadata -> '
             'PERMISSION_DENIED', '%s %s' % (code, det))

        auth = '/portfolio.v1.ClientService/Authenticate'

        def authenticate(k):
            return g.call(pf, auth, g.pf.AuthenticateRequest(api_key=k),
                          g.pf.AuthenticateResponse)

        code, resp, det = authenticate(key2)
        T.ok(code == 'OK' and resp.client_id == alice['id'] and resp.role == 'client'
             and resp.key_id == [k for k in ks if k != kid1][0],
             'Authenticate(valid key) -> its client, role and key id', '%s %s' % (code, det))
        code, resp, det = authenticate(stack.ADMIN_KEY)
        T.ok(code == 'OK' and resp.client_id == BOOTSTRAP_ID and resp.role == 'admin',
             'Authenticate(ADMIN_API_KEY) -> the bootstrap admin', '%s %s' % (code, det))
        for what, k in (('revoked', alice_key), ('unknown', unknown), ('empty', ''),
                        ('admin key + 1 char', stack.ADMIN_KEY + 'x'), ('huge', 'k' * 5000)):
            code, _, det = authenticate(k)
            T.ok(code == 'UNAUTHENTICATED', 'Authenticate(%s key) -> UNAUTHENTICATED' % what,
                 '%s %s' % (code, det))

        # ADMIN_API_KEY empty: no bootstrap key at all (a second portfolio service, same db).
        s.start('portfolio_nokey', [a.portfolio],
                dict(s.db_env('PORTFOLIO', 'portfolio'), ADMIN_API_KEY=''))
        pf2 = s.addr('portfolio_nokey')
        results = [g.call(pf2, auth, g.pf.AuthenticateRequest(api_key=k),
                          g.pf.AuthenticateResponse)
                   for k in (stack.ADMIN_KEY, '', key2)]
        T.ok([x[0] for x in results] == ['UNAUTHENTICATED', 'UNAUTHENTICATED', 'OK'],
             'ADMIN_API_KEY empty: the former admin key is UNAUTHENTICATED, stored keys still work',
             results)
        s.stop('portfolio_nokey')

        # Revoked straight over gRPC: only the shared Redis message tells the gateway.
        r = req('POST', '/clients/%s/keys' % bob['id'], {})
        key3, kid3 = (r.json or {}).get('apiKey', ''), (r.json or {}).get('keyId', '')
        warm = [req('GET', '/portfolios/%s' % bob_pf, key=key3).status for _ in range(8)]
        code, _, det = g.call(pf, '/portfolio.v1.ClientService/RevokeKey',
                              g.pf.RevokeKeyRequest(id=bob['id'], key_id=kid3), g.empty)
        after = [req('GET', '/portfolios/%s' % bob_pf, key=key3).status for _ in range(8)]
        T.ok(warm == [200] * 8 and code == 'OK' and after == [401] * 8,
             'a key revoked over gRPC (bypassing the gateway) -> the next requests are 401 '
             '(key.revoked)', '%s %s %s %s' % (warm, code, det, after))
        code, _, det = g.call(pf, '/portfolio.v1.ClientService/RevokeKey',
                              g.pf.RevokeKeyRequest(id=bob['id'], key_id=kid3), g.empty,
                              as_client)
        T.ok(code == 'PERMISSION_DENIED', 'RevokeKey with role client metadata -> '
             'PERMISSION_DENIED', '%s %s' % (code, det))

    # ---- the portfolio service down: 503 naming it ---------------------------------------------------
    s.stop('portfolio')
    r = req('GET', '/equities', key='fsr_' + uuid.uuid4().hex * 2)
    T.ok(error_is(r, 503, 14) and r.json.get('message') == 'portfolio service unavailable',
         'portfolio service down: an uncached key -> 503 "portfolio service unavailable"', r)
    s.restart('portfolio')
    r = None
    for _ in range(50):
        r = req('GET', '/equities', key=dana_key)
        if r.status == 200:
            break
    T.ok(r is not None and r.status == 200, 'portfolio back: keys work again', r)

    reports = []
    for name in s.procs:
        text = s.log(name)
        for marker in ('runtime error:', 'ERROR: AddressSanitizer', 'ERROR: LeakSanitizer'):
            if marker in text:
                reports.append('%s: %s' % (name, text[text.index(marker) - 200:][:1500]))
    T.ok(not reports, 'no sanitizer reports in any process log', '\n'.join(reports))
    logs = ''.join(s.log(n) for n in s.procs)
    T.ok(not any(k in logs for k in keys + [key2, stack.ADMIN_KEY]),
         'no key appears in any process log')


if __name__ == '__main__':
    try:
        main()
    except Exception:  # a crash is a failure, never a short pass
        T.ok(False, 'the test ran to its end', traceback.format_exc())
    sys.exit(T.done())
