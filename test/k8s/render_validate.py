#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Renders every kustomization under k8s/ and validates the output offline (TAP).

    render_validate.py --k8s DIR --validator PATH [--kubectl KUBECTL ...]

For k8s/overlays/dev, k8s/overlays/prod, k8s/monitoring and k8s/optional: `kubectl kustomize`
renders it, and ../shared/tools/k8s-validate (strict Kubernetes 1.34 schemas) accepts every
document of the output. The dev and prod overlays must also render the same set of objects.
With several --kubectl (e.g. Debian 12's kubectl 1.20, whose kustomize is v2.0.3, and a
current one), each renders every kustomization and the outputs must agree object for object
(generated names' hash suffixes aside). Skips when kubectl or the validator is missing.
"""
import argparse
import json
import os
import re
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import k8s_lib as K  # noqa: E402


def normalise(docs):
    """{(kind, name): doc} with generated names' hash suffixes stripped everywhere."""
    out = {}
    for d in docs:
        meta = d.get('metadata') or {}
        for k in ('annotations', 'labels'):   # kustomize v2 writes empty maps, v5 drops them
            if meta.get(k) == {}:
                del meta[k]
        text = json.dumps(d, sort_keys=True)
        text = re.sub(r'"((?:[a-z0-9-]+)-env|fsr-common|prometheus-config|pgadmin-servers)'
                      r'-[a-z0-9]{10}"', r'"\1"', text)
        d2 = json.loads(text)
        out[(d2.get('kind'), (d2.get('metadata') or {}).get('name'))] = d2
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--k8s', required=True, help='the k8s/ folder')
    ap.add_argument('--validator', required=True, help='shared/tools/k8s-validate')
    ap.add_argument('--kubectl', action='append', default=[],
                    help='kubectl binary (repeatable; default $KUBECTL or kubectl)')
    a = ap.parse_args()

    kubectls = [K.kubectl_cmd(k) for k in (a.kubectl or [None])]
    extra = os.environ.get('FSR_KUBECTL_COMPAT', '')
    kubectls += [K.kubectl_cmd(k) for k in extra.split() if k]
    if not kubectls[0]:
        print('1..0 # SKIP kubectl not found (Debian: kubernetes-client)')
        return K.SKIP
    if not os.path.isfile(a.validator):
        print('1..0 # SKIP %s not found' % a.validator)
        return K.SKIP
    missing = [k for k in kubectls if not k]
    kubectls = [k for k in kubectls if k]

    T = K.Tap()
    if missing:
        T.diag('some --kubectl / FSR_KUBECTL_COMPAT binaries are missing; using %s' % kubectls)
    rendered = {}
    for rel in K.OVERLAYS + K.EXTRAS:
        path = os.path.join(a.k8s, rel)
        rc, out, err = K.render_text(kubectls[0], path)
        if not T.ok(rc == 0 and out.strip() != '', 'k8s/%s renders (kubectl kustomize)' % rel,
                    err.strip() or 'empty output'):
            continue
        v = subprocess.run([sys.executable, a.validator, '-'], input=out,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        lines = v.stdout.splitlines()
        summary = lines[-1] if lines else ''
        failures = [ln for ln in lines[:-1]]
        T.ok(v.returncode == 0, 'k8s/%s: k8s-validate accepts every document' % rel,
             failures or summary)
        # The validator's own tally, reworded so that it does not read like the suite's.
        m = re.match(r'k8s-validate: (\d+) passed, (\d+) failed', summary)
        if m:
            T.diag('k8s/%s: %s documents valid, %s invalid' % (rel, m.group(1), m.group(2)))
        rendered[rel] = normalise([d for d in yaml.safe_load_all(out) if d])

    if all(r in rendered for r in K.OVERLAYS):
        dev, prod = (set(rendered[r]) for r in K.OVERLAYS)
        # Dev creates the Secret the prod overlay expects to exist already.
        dev.discard(('Secret', 'fsr-secrets'))
        T.ok(dev == prod, 'dev and prod deploy the same objects (but for the dev Secret)',
             ['only in dev: %s' % sorted(dev - prod), 'only in prod: %s' % sorted(prod - dev)])

    for k in kubectls[1:]:
        for rel in K.OVERLAYS + K.EXTRAS:
            if rel not in rendered:
                continue
            docs, err = K.render(k, os.path.join(a.k8s, rel))
            if not T.ok(docs is not None, 'k8s/%s renders with %s' % (rel, k), err):
                continue
            other = normalise(docs)
            base = rendered[rel]
            diff = sorted(key for key in set(base) | set(other)
                          if base.get(key) != other.get(key))
            T.ok(not diff, 'k8s/%s: %s renders the same objects' % (rel, k),
                 ['differs: %s/%s' % key for key in diff])
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
