#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Hostile input through fsr-gateway (stack.py: the three services and the gateway as real
processes): SQL injection and junk payloads in every path parameter, query parameter, string
body field and the Idempotency-Key / If-Match headers of every route the gateway's own
/openapi.json lists (so a new route is covered automatically) -> never a 5xx, nothing changed
elsewhere (every table still there, a sentinel portfolio and the clients untouched, a stored
payload read back literally); path traversal -> 404/400, never another route's data;
oversized and malformed headers; non-JSON, 10,000-deep, huge-number and duplicate-key bodies
-> 400.  TAP.

usage: hostile_test.py --gateway G --equity E --fi F --portfolio P
"""
import argparse
import json
import os
import re
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402

PAYLOADS = [
    "' OR 1=1 --",
    "'; DROP TABLE portfolios; --",
    "a\x00b",
    "\\u0000\\ud800 \u202e \U0001F600 \u00e9",
    "%00%27%22;--/*",
    "1; SELECT pg_sleep(5)",
    "x" * 100000,
]
DBS = ("equity", "fixed_income", "portfolio")


def tables():
    out = {}
    for db in DBS:
        out[db] = sorted(r[0] for r in stack.psql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", db))
    return out


def counts(db, names):
    return {n: int(stack.psql('SELECT count(*) FROM "%s"' % n, db)[0][0]) for n in names}


def resolve(spec, schema, depth=0):
    if depth > 5 or not isinstance(schema, dict):
        return {}
    if "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        return resolve(spec, spec.get("components", {}).get("schemas", {}).get(ref, {}),
                       depth + 1)
    return schema


def body_string_fields(spec, op):
    """Top-level string (and decimal-string) properties of the request body schema."""
    rb = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    sch = resolve(spec, rb.get("schema", {}))
    props = sch.get("properties", {})
    out = []
    for name, p in props.items():
        p = resolve(spec, p)
        if p.get("type") in ("string", None) and "properties" not in p:
            out.append(name)
    return out


def fill_path(path, params, value):
    def sub(m):
        name = m.group(1)
        v = value if (params is None or name in params) else \
            "00000000-0000-4000-8000-000000000000"
        return urllib.parse.quote(v, safe="")
    return re.sub(r"\{([^}/]+)\}", sub, path)


def raw(port, data, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            buf += chunk
            if b"\r\n\r\n" in buf:
                head, rest = buf.split(b"\r\n\r\n", 1)
                m = re.search(rb"content-length:\s*(\d+)", head, re.I)
                if m and len(rest) >= int(m.group(1)):
                    break
        return int(buf.split(b" ", 2)[1]) if buf.startswith(b"HTTP/1.1 ") else None, buf
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    for a in ("--gateway", "--equity", "--fi", "--portfolio"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    T = stack.Tap()
    s = stack.Stack({"equity": args.equity, "fixed_income": args.fi,
                     "portfolio": args.portfolio, "gateway": args.gateway}, tap=T)
    s.start_all()
    port = s.ports["gateway"]

    # Sentinels: a client with its own portfolio, and the state we must find unchanged.
    c = s.req("POST", "/clients", {"name": "hostile-sentinel", "role": "client"})
    T.ok(c.status in (200, 201) and c.json and c.json.get("apiKey"), "sentinel client", c)
    ckey = (c.json or {}).get("apiKey")
    p = s.req("POST", "/portfolios", {"name": "sentinel", "baseCurrency": "USD"}, key=ckey)
    T.ok(p.status in (200, 201), "sentinel portfolio", p)
    pid = (p.json or {}).get("id", "")
    before_p = s.req("GET", "/portfolios/" + pid, key=ckey).body
    before_tables = tables()
    before_clients = counts("portfolio", ["clients", "api_keys"])

    spec = s.req("GET", "/openapi.json").json or {}
    ops = []
    for path, item in sorted(spec.get("paths", {}).items()):
        for method, op in item.items():
            if method.lower() in ("get", "post", "put", "patch", "delete"):
                ops.append((method.upper(), path, op))
    T.ok(len(ops) >= 20, "openapi.json lists the routes (%d operations)" % len(ops))

    # ---- injection in every parameter of every route ----------------------------------
    fivexx = []
    n_req = 0
    stored = []
    t0 = time.time()
    for method, path, op in ops:
        params = op.get("parameters", [])
        path_params = [q["name"] for q in params if q.get("in") == "path"] or \
            re.findall(r"\{([^}/]+)\}", path)
        query_params = [q["name"] for q in params if q.get("in") == "query"]
        fields = body_string_fields(spec, op) if method in ("POST", "PUT", "PATCH") else []
        base_body = {} if method in ("POST", "PUT", "PATCH") else None
        for v in PAYLOADS:
            cases = []
            for pp in path_params:
                cases.append((fill_path(path, [pp], v), base_body, {}))
            plain = fill_path(path, None, "")
            for q in query_params:
                cases.append((plain + "?" + urllib.parse.urlencode({q: v}), base_body, {}))
            for f in fields:
                cases.append((plain, {f: v}, {}))
            if method != "GET":
                cases.append((plain, base_body, {"Idempotency-Key": v[:4000]}))
                cases.append((plain, base_body, {"If-Match": v[:4000]}))
            for url, body, hdrs in cases:
                # Header values go out as raw UTF-8 bytes (a NUL would be refused by
                # http.client itself; the raw-socket cases below send one).
                hdrs = {k: val.replace("\x00", "%00").encode() for k, val in hdrs.items()}
                try:
                    r = s.req(method, url, body, headers=hdrs, timeout=30)
                except OSError as e:
                    # A 100 KB URL is refused at the header limit (431) and the connection
                    # closed while http.client still sends the body: read the answer raw.
                    st, _ = raw(port, ("%s %s HTTP/1.1\r\nHost: x\r\n\r\n" %
                                       (method, url)).encode())
                    if len(url) < 16384 or st != 431:
                        fivexx.append((method, url[:120], "exception %r, raw %s" % (e, st)))
                    continue
                n_req += 1
                if r.status >= 500:
                    fivexx.append((method, url[:120], json.dumps(body)[:120] if body else "",
                                   hdrs and list(hdrs), r.status, r.body[:200]))
                elif r.status in (200, 201) and method == "POST" and body and \
                        isinstance(r.json, dict) and r.json.get("id"):
                    stored.append((path, r.json["id"], body))
    took = time.time() - t0
    T.diag("injection: %d requests over %d operations in %.1f s, %d 5xx, %d stored" %
           (n_req, len(ops), took, len(fivexx), len(stored)))
    T.ok(not fivexx, "no 5xx for any payload in any field of any route", "\n".join(
        repr(x) for x in fivexx[:30]))

    # A payload accepted into storage comes back literally (no interpretation).
    mism = []
    for path, oid, body in stored[:20]:
        r = s.req("GET", path.rstrip("/") + "/" + oid)
        if r.status == 200 and isinstance(r.json, dict):
            for k, v in body.items():
                if k in r.json and r.json[k] != v:
                    mism.append((path, k, v[:40], str(r.json[k])[:40]))
    T.ok(not mism, "stored payloads read back literally (%d checked)" % min(20, len(stored)),
         mism)

    # Nothing changed elsewhere.
    T.ok(tables() == before_tables, "every table still exists in every database")
    T.ok(s.req("GET", "/portfolios/" + pid, key=ckey).body == before_p,
         "the sentinel portfolio is unchanged")
    after_clients = counts("portfolio", ["clients", "api_keys"])
    T.ok(after_clients["clients"] >= before_clients["clients"] and
         s.req("GET", "/portfolios", key=ckey).status == 200,
         "clients intact, the sentinel client's key still works", (before_clients, after_clients))

    # ---- path traversal ------------------------------------------------------------------
    clients_body = s.req("GET", "/clients").body
    bad = []
    for path in ("/portfolios/../clients", "/portfolios/%2e%2e/clients",
                 "/portfolios/%2E%2E%2Fclients", "//clients", "/portfolios//clients",
                 "/portfolios/..%2fclients", "/equities/%2e%2e%2f%2e%2e%2fclients",
                 "/portfolios/" + pid + "/../../clients", "/./clients/./",
                 "/portfolios%2f" + pid, "/clients%00", "/%2fclients"):
        for key in (stack.ADMIN_KEY, ckey):
            r = s.req("GET", path, key=key)
            leaked = r.status == 200 and (r.body == clients_body or b"apiKey" in r.body or
                                          b"hostile-sentinel" in r.body)
            if r.status not in (400, 404) or leaked:
                bad.append((path, key == ckey, r.status, r.body[:120]))
    T.ok(not bad, "path traversal: 404/400, never another route's data", bad)

    # ---- oversized and malformed headers --------------------------------------------------
    auth = b"Authorization: Bearer " + stack.ADMIN_KEY.encode() + b"\r\n"
    cases = [
        ("40 KiB header", b"GET /equities HTTP/1.1\r\nHost: x\r\n" + auth + b"X-Big: " +
         b"a" * 40000 + b"\r\n\r\n", (431,)),
        ("3000 headers", b"GET /equities HTTP/1.1\r\nHost: x\r\n" + auth +
         b"".join(b"X-H%d: v\r\n" % i for i in range(3000)) + b"\r\n", (431,)),
        ("100 KiB Authorization", b"GET /equities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
         b"k" * 100000 + b"\r\n\r\n", (431,)),
        ("header without colon", b"GET /equities HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", (400,)),
        ("bad Content-Length", b"POST /portfolios HTTP/1.1\r\nHost: x\r\n" + auth +
         b"Content-Length: -5\r\n\r\n", (400,)),
        ("two Content-Lengths", b"POST /portfolios HTTP/1.1\r\nHost: x\r\n" + auth +
         b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x", (400,)),
        ("NUL in header value", b"GET /equities HTTP/1.1\r\nHost: x\r\n" + auth +
         b"X-A: a\x00b\r\n\r\n", (400,)),
        ("SQL in Bearer key", b"GET /equities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ' OR "
         b"1=1 --\r\n\r\n", (401,)),
        ("CRLF injection attempt", b"GET /equities?x=%0d%0aSet-Cookie:%20a HTTP/1.1\r\nHost: x\r\n"
         + auth + b"\r\n", (200, 400)),
    ]
    for name, data, want in cases:
        st, resp = raw(port, data)
        T.ok(st in want and b"Set-Cookie" not in resp.split(b"\r\n\r\n")[0],
             "header abuse: %s -> %s" % (name, "/".join(map(str, want))), (st, resp[:300]))

    # ---- hostile bodies ---------------------------------------------------------------------
    for name, body in (("non-JSON", b"not json at all"),
                       ("10,000-deep arrays", b"[" * 10000 + b"]" * 10000),
                       ("10,000-deep objects", b'{"a":' * 10000 + b"1" + b"}" * 10000),
                       ("huge number", b'{"name":"x","baseCurrency":"USD","cash":1e999999}'),
                       ("duplicate keys", b'{"name":"a","name":"b","baseCurrency":"USD"}'),
                       ("truncated", b'{"name":"a"'),
                       ("invalid UTF-8", b'{"name":"\xff\xfe","baseCurrency":"USD"}')):
        r = s.req("POST", "/portfolios", body)
        T.ok(r.status == 400, "body %s -> 400" % name, r)
    st, _ = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    T.ok(st == 200, "the gateway still serves")
    for name, proc in s.procs.items():
        T.ok(proc.poll() is None, "%s still running" % name)
    # Credentials never reach the logs.
    logs = "".join(s.log(n) for n in s.procs)
    T.ok(stack.ADMIN_KEY not in logs and (ckey or "-") not in logs,
         "neither ADMIN_API_KEY nor a created key appears in any log")
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
