#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""k8s/monitoring: Prometheus config and rules (TAP).

    monitoring_check.py --k8s DIR [--kubectl KUBECTL] [--promtool PROMTOOL] [--src DIR]

- `promtool check rules` on k8s/monitoring/*rules*.yaml, `promtool check config` on
  prometheus.yml, `promtool test rules` on k8s/monitoring/tests/*.test.yaml (skipped when
  promtool is missing: Debian's prometheus package has it);
- every metric the rules read is one the C sources export (or Prometheus' own `up`);
- the scrape config covers every fsr Deployment of each overlay: a job named after it whose
  DNS name is a headless Service of k8s/monitoring that selects the Deployment's pods, on the
  container's port (where /metrics is served); and every job finds something.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import k8s_lib as K  # noqa: E402

FSR_PORTS = {'equity': 8001, 'fixed-income': 8002, 'portfolio': 8003, 'gateway': 8000,
             'worker-equity': 9101, 'worker-fixed-income': 9102, 'worker-portfolio': 9103}
PROMQL_WORDS = {'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset',
                'bool', 'and', 'or', 'unless', 'inf', 'nan'}


def promql_metrics(expr):
    """Metric names an expression selects (labels, functions, keywords, durations aside)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r'\{[^}]*\}', '', e)
    e = re.sub(r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', '', e)
    e = re.sub(r'\[[^\]]*\]', '', e)
    names = set()
    for m in re.finditer(r'[a-zA-Z_:][a-zA-Z0-9_:]*', e):
        rest = e[m.end():].lstrip()
        if rest.startswith('(') or m.group(0).lower() in PROMQL_WORDS:
            continue
        names.add(m.group(0))
    return names


def exported_names(src):
    """String literals of the C sources that could be metric names."""
    lits = set()
    for f in glob.glob(os.path.join(src, '*', '*.c')) + glob.glob(os.path.join(src, '*', '*',
                                                                              '*.c')):
        if os.path.basename(os.path.dirname(f)).startswith('build') or '/test/' in f:
            continue
        text = open(f, encoding='utf-8', errors='replace').read()
        lits |= set(re.findall(r'"([a-z_:][a-z0-9_:]*)"', text))
    return lits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--k8s', required=True)
    ap.add_argument('--kubectl')
    ap.add_argument('--promtool', default=shutil.which('promtool'))
    ap.add_argument('--src', default=K.repo_root())
    a = ap.parse_args()
    mon = os.path.join(a.k8s, 'monitoring')
    T = K.Tap()

    rule_files = sorted(glob.glob(os.path.join(mon, '*rules*.yaml')))
    T.ok(bool(rule_files), 'k8s/monitoring has alert rule files (*rules*.yaml)')
    config = os.path.join(mon, 'prometheus.yml')
    tests = sorted(glob.glob(os.path.join(mon, 'tests', '*.test.yaml')))
    promtool = a.promtool if a.promtool and os.access(a.promtool, os.X_OK) else None
    for f, args, what in ([(f, ['check', 'rules'], 'promtool check rules') for f in rule_files]
                          + [(config, ['check', 'config'], 'promtool check config')]
                          + [(f, ['test', 'rules'], 'promtool test rules') for f in tests]):
        name = '%s %s' % (what, os.path.relpath(f, a.k8s))
        if not promtool:
            T.skip(name, 'promtool not found (Debian: prometheus)')
            continue
        p = subprocess.run([promtool] + args + [os.path.basename(f)], cwd=os.path.dirname(f),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        T.ok(p.returncode == 0, name, p.stdout)
    T.ok(bool(tests), 'the alert rules have unit tests (k8s/monitoring/tests/*.test.yaml)')

    # Every metric a rule reads is exported by some fsr process.
    lits = exported_names(a.src)
    records, used = set(), set()
    for f in rule_files:
        for g in (yaml.safe_load(open(f)) or {}).get('groups') or []:
            for r in g.get('rules') or []:
                if 'record' in r:
                    records.add(r['record'])
                used |= promql_metrics(str(r.get('expr', '')))
    unknown = []
    for n in sorted(used - records - {'up'}):
        base = re.sub(r'_(bucket|sum|count)$', '', n)
        if n not in lits and base not in lits and re.sub(r'_total$', '', n) not in lits:
            unknown.append(n)
    T.ok(len(used) > 5 and not unknown,
         'every metric the rules read is exported by the C sources (%d metrics)' % len(used),
         'not found: %s' % unknown)

    # The scrape config covers every fsr Deployment.
    kubectl = K.kubectl_cmd(a.kubectl)
    cfg = yaml.safe_load(open(config))
    jobs = {j['job_name']: j for j in cfg.get('scrape_configs') or []}
    if not kubectl:
        T.skip('the scrape config covers every fsr Deployment', 'kubectl not found')
        return T.done()
    monitoring, err = K.render(kubectl, mon)
    if not T.ok(monitoring is not None, 'k8s/monitoring renders', err):
        return T.done()
    services = {d['metadata']['name']: d for d in monitoring if d['kind'] == 'Service'}
    for rel in K.OVERLAYS:
        docs, err = K.render(kubectl, os.path.join(a.k8s, rel))
        if not T.ok(docs is not None, 'k8s/%s renders' % rel, err):
            continue
        env = rel.split('/')[-1]
        deps = [d for d in docs if d['kind'] == 'Deployment']
        bad = []
        for d in deps:
            name = d['metadata']['name']
            ports = [p['containerPort'] for c in K.pod_spec(d)['containers']
                     for p in c.get('ports') or []]
            if name not in FSR_PORTS:
                continue
            if FSR_PORTS[name] not in ports:
                bad.append('%s: no container port %d' % (name, FSR_PORTS[name]))
            job = jobs.get(name)
            if job is None:
                bad.append('%s: no scrape job named %s' % (name, name))
                continue
            targets = [(n.split('.')[0], sd.get('port')) for sd in job.get('dns_sd_configs') or []
                       for n in sd.get('names') or []]
            hit = False
            for svc, port in targets:
                s = services.get(svc)
                if s is None:
                    bad.append('job %s: %s is no Service of k8s/monitoring' % (name, svc))
                    continue
                if s['spec'].get('clusterIP') != 'None':
                    bad.append('job %s: Service %s is not headless (one record per pod)'
                               % (name, svc))
                if K.selector_matches({'matchLabels': s['spec'].get('selector') or {}},
                                      K.pod_labels(d)) and port in ports:
                    hit = True
            if not hit:
                bad.append('%s: no scrape job target selects its pods on its port %s'
                           % (name, FSR_PORTS[name]))
        missing = set(FSR_PORTS) - {d['metadata']['name'] for d in deps}
        bad += ['no Deployment %s in the overlay' % m for m in sorted(missing)]
        T.ok(not bad, '%s: the scrape config covers every fsr Deployment on its port' % env, bad)
        idle = []
        for name, job in jobs.items():
            for sd in job.get('dns_sd_configs') or []:
                for n in sd.get('names') or []:
                    s = services.get(n.split('.')[0])
                    sel = (s or {}).get('spec', {}).get('selector') or {}
                    if not s or not any(sel and K.selector_matches({'matchLabels': sel},
                                                                   K.pod_labels(d))
                                        for d in deps):
                        idle.append('%s: %s selects no pod' % (name, n))
        T.ok(not idle, '%s: every DNS scrape job finds pods' % env, idle)
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
