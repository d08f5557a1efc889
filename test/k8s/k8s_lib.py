# SPDX-License-Identifier: MIT
"""Shared helpers of the k8s suite: TAP output, rendering kustomizations, reading manifests."""
import os
import re
import shutil
import subprocess
import sys

import yaml

# The kustomizations the suite renders, relative to k8s/.
OVERLAYS = ('overlays/dev', 'overlays/prod')
EXTRAS = ('monitoring', 'optional')

SKIP = 0  # after "1..0 # SKIP why": meson counts a TAP test skipped (77 is an error)


class Tap:
    """TAP producer: one `ok N - name` per check, diagnostics as `# ...` lines."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        print('%s %d - %s' % ('ok' if cond else 'not ok', self.n, name))
        if not cond:
            self.failed += 1
            if diag:
                self.diag(diag)
        sys.stdout.flush()
        return cond

    def skip(self, name, why):
        self.n += 1
        print('ok %d - %s # SKIP %s' % (self.n, name, why))

    @staticmethod
    def diag(text):
        if isinstance(text, (list, tuple)):
            text = '\n'.join(str(t) for t in text)
        for line in str(text).splitlines():
            print('# ' + line)

    def done(self):
        print('1..%d' % self.n)
        return 1 if self.failed else 0


def kubectl_cmd(explicit=None):
    """The kubectl to render with: $KUBECTL, else `kubectl` on PATH; None if absent."""
    k = explicit or os.environ.get('KUBECTL') or 'kubectl'
    return shutil.which(k)


def render(kubectl, path):
    """`kubectl kustomize PATH` -> (documents, error text or None). Deprecation warnings on
    stderr (kustomize v5 on the v2-compatible fields) are not errors."""
    p = subprocess.run([kubectl, 'kustomize', path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        return None, (p.stderr or p.stdout).strip() or 'exit status %d' % p.returncode
    try:
        docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    except yaml.YAMLError as e:
        return None, 'output is not YAML: %s' % e
    return docs, None


def render_text(kubectl, path):
    p = subprocess.run([kubectl, 'kustomize', path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    return p.returncode, p.stdout, p.stderr


GENERATED_SUFFIX = re.compile(r'-[a-z0-9]{10}$')


def strip_hash(name):
    """A generated ConfigMap's name without kustomize's content-hash suffix."""
    return GENERATED_SUFFIX.sub('', name)


def pod_spec(doc):
    """The pod spec of a workload document, or None."""
    kind = doc.get('kind')
    spec = doc.get('spec') or {}
    if kind in ('Deployment', 'StatefulSet', 'Job', 'DaemonSet', 'ReplicaSet'):
        return ((spec.get('template') or {}).get('spec')) or {}
    if kind == 'CronJob':
        jt = (spec.get('jobTemplate') or {}).get('spec') or {}
        return ((jt.get('template') or {}).get('spec')) or {}
    if kind == 'Pod':
        return spec
    return None


def pod_labels(doc):
    kind = doc.get('kind')
    spec = doc.get('spec') or {}
    if kind == 'CronJob':
        spec = (spec.get('jobTemplate') or {}).get('spec') or {}
    if kind == 'Pod':
        return (doc.get('metadata') or {}).get('labels') or {}
    return ((spec.get('template') or {}).get('metadata') or {}).get('labels') or {}


def workloads(docs):
    return [d for d in docs if pod_spec(d) is not None]


def wname(doc):
    return '%s/%s' % (doc.get('kind'), (doc.get('metadata') or {}).get('name'))


def selector_matches(sel, labels):
    """A LabelSelector (matchLabels + matchExpressions) against a label map. {} matches all."""
    if sel is None:
        return False
    for k, v in (sel.get('matchLabels') or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get('matchExpressions') or []:
        key, op, vals = e.get('key'), e.get('operator'), e.get('values') or []
        if op == 'In' and labels.get(key) not in vals:
            return False
        if op == 'NotIn' and key in labels and labels[key] in vals:
            return False
        if op == 'Exists' and key not in labels:
            return False
        if op == 'DoesNotExist' and key in labels:
            return False
    return True


def repo_root():
    return os.path.realpath(os.path.join(os.path.dirname(os.path.realpath(__file__)), '..', '..'))
