#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Security and wiring properties of every rendered workload (TAP).

    security_check.py --k8s DIR [--kubectl KUBECTL] [--src DIR]

Renders k8s/overlays/dev and k8s/overlays/prod (alone, with k8s/monitoring, and with
k8s/optional) and asserts, for every Deployment, StatefulSet, Job and CronJob pod template:
non-root, seccomp RuntimeDefault, no service-account token, no host namespaces or hostPath;
every container without privilege escalation, with a read-only root filesystem (the two
optional tools excepted, by name), ALL capabilities dropped, CPU and memory requests and
limits (requests <= limits); liveness and readiness probes on every long-running container,
native gRPC readiness and HTTP /livez liveness on the fsr processes' own port, the gRPC
Services' port named grpc; env names the binaries read, ConfigMaps and Secret keys that
exist, hosts and ports that name a Service of the render; an HPA and a PDB for each fsr
Deployment. NetworkPolicies: a default deny, every pod isolated both ways, and the exact set
of allowed in-namespace connections (each database and Redis reachable only from its own
service and worker, plus the migration Job and the backups for Postgres); only the gateway
admits traffic from outside the namespace; nothing leaves it but DNS. Finally the checker
is run on deliberately broken copies of the prod render and must reject each.
"""
import argparse
import copy
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import k8s_lib as K  # noqa: E402

NAME = 'app.kubernetes.io/name'
NS = 'fsr'

SERVICES = {'equity': 8001, 'fixed-income': 8002, 'portfolio': 8003}
WORKERS = {'worker-equity': 9101, 'worker-fixed-income': 9102, 'worker-portfolio': 9103}
GATEWAY = {'gateway': 8000}
FSR_DEPLOYMENTS = dict(SERVICES, **WORKERS, **GATEWAY)
DATASTORES = ['postgres-' + s for s in SERVICES] + ['redis-' + s for s in SERVICES] + [
    'redis-shared']
# Containers allowed a writable root filesystem: the optional third-party tools, whose
# images write their own config at start (k8s/optional/*.yaml say why).
WRITABLE_ROOT_OK = {'Deployment/pgadmin', 'Deployment/redis-commander'}
# Env names no binary reads yet but the contract defines (../shared/API.md: the bootstrap
# admin key comes from ADMIN_API_KEY).
CONTRACT_ENV = {'ADMIN_API_KEY'}


def expected_edges(monitoring=False, optional=False):
    """Every in-namespace (source, destination, port) the policies must allow, and no other."""
    e = set()
    for s, p in SERVICES.items():
        e.add(('gateway', s, p))
        e |= {(s, 'postgres-' + s, 5432), (s, 'redis-' + s, 6379), (s, 'redis-shared', 6379)}
        e |= {('worker-' + s, 'postgres-' + s, 5432), ('worker-' + s, 'redis-' + s, 6379)}
        e |= {('migrate-' + s, 'postgres-' + s, 5432), ('backup-postgres', 'postgres-' + s, 5432)}
    e |= {('portfolio', 'equity', 8001), ('portfolio', 'fixed-income', 8002)}
    e.add(('fixed-income', 'portfolio', 8003))  # CountHolders before DeleteBond
    e.add(('equity', 'portfolio', 8003))  # CountHolders before DeleteEquity
    e.add(('worker-equity', 'redis-shared', 6379))  # price.updated after a CSV import
    e.add(('gateway', 'redis-shared', 6379))  # key.revoked (revoked API keys)
    if monitoring:
        e |= {('prometheus', n, p) for n, p in FSR_DEPLOYMENTS.items()}
    if optional:
        e |= {('pgadmin', 'postgres-' + s, 5432) for s in SERVICES}
        e |= {('redis-commander', r, 6379) for r in DATASTORES if r.startswith('redis-')}
    return e


# --- quantities ---------------------------------------------------------------------------
_SUFFIX = {'m': 1e-3, '': 1, 'k': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12,
           'Ki': 2**10, 'Mi': 2**20, 'Gi': 2**30, 'Ti': 2**40}


def quantity(q):
    m = re.fullmatch(r'([0-9.]+)([a-zA-Z]*)', str(q))
    if not m or m.group(2) not in _SUFFIX:
        return None
    return float(m.group(1)) * _SUFFIX[m.group(2)]


# --- env names the binaries read ------------------------------------------------------------
def env_names_read(src):
    """Names read by the C sources: config tables, getenv(), and the <PREFIX>_DB_* /
    <PREFIX>_REDIS_* families (lib/config.c) for every env_prefix a main() declares."""
    names, prefixes, suffixes = set(), {'SHARED'}, set()
    files = glob.glob(os.path.join(src, 'lib', '*.c')) + glob.glob(
        os.path.join(src, 'svc_*', '*.c')) + glob.glob(os.path.join(src, 'rest_gateway', '*.c'))
    for f in files:
        text = open(f, encoding='utf-8', errors='replace').read()
        names |= set(re.findall(r'"([A-Z][A-Z0-9_]+)",\s*FSR_CONFIG_', text))
        names |= set(re.findall(r'getenv\("([A-Z][A-Z0-9_]+)"\)', text))
        prefixes |= set(re.findall(r'\.env_prefix\s*=\s*"([A-Z]+)"', text))
        prefixes |= set(re.findall(r'"[a-z_]+", "[a-z-]+", "jobs:[a-z_]+", "([A-Z]+)"', text))
        suffixes |= set(re.findall(r'prefix, "((?:DB|REDIS)_[A-Z_]+)"', text))
    names |= {p + '_' + s for p in prefixes for s in suffixes}
    return names


# --- per-workload checks ------------------------------------------------------------------
def containers(spec):
    return [(c, False) for c in spec.get('initContainers') or []] + [
        (c, True) for c in spec.get('containers') or []]


def is_fsr_image(c):
    return re.search(r'(^|/)fsr/[a-z-]+(:|$)', c.get('image', '')) is not None


def check_workload(doc, docs, env_ok):
    """Problems of one workload (a list of strings; empty when all is well)."""
    w = K.wname(doc)
    spec = K.pod_spec(doc)
    labels = K.pod_labels(doc)
    bad = []
    psc = spec.get('securityContext') or {}
    long_running = doc['kind'] in ('Deployment', 'StatefulSet', 'DaemonSet')
    if not labels.get(NAME):
        bad.append('pod template has no %s label' % NAME)
    if spec.get('automountServiceAccountToken') is not False:
        bad.append('automountServiceAccountToken is not false')
    for h in ('hostNetwork', 'hostPID', 'hostIPC'):
        if spec.get(h):
            bad.append('%s is set' % h)
    for v in spec.get('volumes') or []:
        if 'hostPath' in v:
            bad.append('hostPath volume %s' % v.get('name'))
    if psc.get('runAsUser') == 0:
        bad.append('pod runAsUser is 0')
    for c, regular in containers(spec):
        cn = 'container %s' % c.get('name')
        sc = c.get('securityContext') or {}
        if not (sc.get('runAsNonRoot', psc.get('runAsNonRoot')) is True):
            bad.append('%s: runAsNonRoot is not true' % cn)
        if sc.get('runAsUser', psc.get('runAsUser')) == 0:
            bad.append('%s: runAsUser is 0' % cn)
        seccomp = (sc.get('seccompProfile') or psc.get('seccompProfile') or {}).get('type')
        if seccomp not in ('RuntimeDefault', 'Localhost'):
            bad.append('%s: no RuntimeDefault seccomp profile' % cn)
        if sc.get('allowPrivilegeEscalation') is not False:
            bad.append('%s: allowPrivilegeEscalation is not false' % cn)
        if sc.get('privileged'):
            bad.append('%s: privileged' % cn)
        if sc.get('readOnlyRootFilesystem') is not True and w not in WRITABLE_ROOT_OK:
            bad.append('%s: readOnlyRootFilesystem is not true' % cn)
        caps = sc.get('capabilities') or {}
        if 'ALL' not in (caps.get('drop') or []):
            bad.append('%s: capabilities do not drop ALL' % cn)
        if set(caps.get('add') or []) - {'NET_BIND_SERVICE'}:
            bad.append('%s: adds capabilities %s' % (cn, caps.get('add')))
        res = c.get('resources') or {}
        for kind in ('requests', 'limits'):
            for r in ('cpu', 'memory'):
                if (res.get(kind) or {}).get(r) is None:
                    bad.append('%s: no %s.%s' % (cn, kind, r))
        for r in ('cpu', 'memory'):
            req = quantity((res.get('requests') or {}).get(r, 0))
            lim = quantity((res.get('limits') or {}).get(r, 0))
            if req is None or lim is None:
                bad.append('%s: unreadable %s quantity' % (cn, r))
            elif lim and req > lim:
                bad.append('%s: %s request above its limit' % (cn, r))
        if long_running and regular:
            for p in ('livenessProbe', 'readinessProbe'):
                if not c.get(p):
                    bad.append('%s: no %s' % (cn, p))
        if is_fsr_image(c) and long_running:
            name = labels.get(NAME)
            want = FSR_DEPLOYMENTS.get(name)
            main = [p for p in c.get('ports') or [] if p.get('containerPort') == want]
            if want is None or not main:
                bad.append('%s: fsr process without its port %s' % (cn, want))
            else:
                pname = main[0].get('name')
                if name in SERVICES and pname != 'grpc':
                    bad.append('%s: gRPC port is named %r, not grpc' % (cn, pname))
                rp = (c.get('readinessProbe') or {}).get('grpc') or {}
                if rp.get('port') != want:
                    bad.append('%s: readiness is not a gRPC probe on %s' % (cn, want))
                sp = (c.get('startupProbe') or {}).get('grpc') or {}
                if sp.get('port') != want:
                    bad.append('%s: startup is not a gRPC probe on %s' % (cn, want))
                lp = (c.get('livenessProbe') or {}).get('httpGet') or {}
                if lp.get('path') != '/livez' or lp.get('port') not in (want, pname):
                    bad.append('%s: liveness is not GET /livez on its port (liveness must not '
                               'depend on the database, as gRPC health does)' % cn)
            if name in SERVICES or name in GATEWAY:
                thr = [e for e in c.get('env') or [] if e.get('name') == 'THREADS']
                rf = ((thr[0].get('valueFrom') or {}).get('resourceFieldRef') or {}) if thr else {}
                if rf.get('resource') != 'limits.cpu':
                    bad.append('%s: THREADS does not follow limits.cpu' % cn)
        if is_fsr_image(c):
            for e in c.get('env') or []:
                if e.get('name') not in env_ok:
                    bad.append('%s: env %s is read by no fsr binary' % (cn, e.get('name')))
            for ref in c.get('envFrom') or []:
                cm = (ref.get('configMapRef') or {}).get('name')
                data = configmap(docs, cm) if cm else None
                for k in (data or {}):
                    if k not in env_ok:
                        bad.append('%s: env %s (ConfigMap %s) is read by no fsr binary'
                                   % (cn, k, K.strip_hash(cm)))
        bad += check_refs(c, cn, docs)
    return bad


def configmap(docs, name):
    for d in docs:
        if d['kind'] == 'ConfigMap' and d['metadata']['name'] == name:
            return d.get('data') or {}
    return None


def secret_keys(docs, name):
    for d in docs:
        if d['kind'] == 'Secret' and d['metadata']['name'] == name:
            return set(d.get('data') or {}) | set(d.get('stringData') or {})
    return None


def check_refs(c, cn, docs):
    """ConfigMaps and Secret keys the container names exist (a Secret the render does not
    create is taken to be provided out of band: the prod overlay's fsr-secrets)."""
    bad = []
    for ref in c.get('envFrom') or []:
        if 'configMapRef' in ref and configmap(docs, ref['configMapRef']['name']) is None:
            bad.append('%s: ConfigMap %s not in the render' % (cn, ref['configMapRef']['name']))
        if 'secretRef' in ref and secret_keys(docs, ref['secretRef']['name']) is None:
            bad.append('%s: Secret %s not in the render' % (cn, ref['secretRef']['name']))
    for e in c.get('env') or []:
        vf = e.get('valueFrom') or {}
        if 'configMapKeyRef' in vf:
            data = configmap(docs, vf['configMapKeyRef']['name'])
            if data is None or vf['configMapKeyRef']['key'] not in data:
                bad.append('%s: %s from a missing ConfigMap key' % (cn, e['name']))
        if 'secretKeyRef' in vf:
            keys = secret_keys(docs, vf['secretKeyRef']['name'])
            if keys is not None and vf['secretKeyRef']['key'] not in keys:
                bad.append('%s: %s: Secret %s has no key %s' % (
                    cn, e['name'], vf['secretKeyRef']['name'], vf['secretKeyRef']['key']))
    return bad


def container_env(c, docs):
    env = {}
    for ref in c.get('envFrom') or []:
        if 'configMapRef' in ref:
            env.update(configmap(docs, ref['configMapRef']['name']) or {})
    for e in c.get('env') or []:
        if 'value' in e:
            env[e['name']] = e['value']
    return env


def service_ports(docs, host):
    """The ports of Service |host| (same namespace), with the workloads it selects."""
    for d in docs:
        if d['kind'] == 'Service' and d['metadata']['name'] == host.split('.')[0]:
            sel = d['spec'].get('selector') or {}
            backs = [w for w in K.workloads(docs)
                     if sel and all(K.pod_labels(w).get(k) == v for k, v in sel.items())]
            return {p['port'] for p in d['spec'].get('ports') or []}, backs
    return None, []


def check_wiring(docs):
    """Every *_HOST/_PORT pair and *_SERVICE_ADDR a fsr container gets names a Service of the
    render, on one of its ports, backed by a workload. Returns a list of problems."""
    bad = []
    for w in K.workloads(docs):
        for c, _ in containers(K.pod_spec(w)):
            if not is_fsr_image(c):
                continue
            env = container_env(c, docs)
            for k, v in env.items():
                target = None
                if k.endswith('_HOST'):
                    port = env.get(k[:-5] + '_PORT')
                    target = (v, int(port) if port else None)
                elif k.endswith('_SERVICE_ADDR'):
                    host, _, port = v.rpartition(':')
                    target = (host, int(port))
                if target is None:
                    continue
                ports, backs = service_ports(docs, target[0])
                if ports is None:
                    bad.append('%s: %s=%s names no Service' % (K.wname(w), k, v))
                elif target[1] not in ports:
                    bad.append('%s: %s: Service %s has no port %s' % (K.wname(w), k, target[0],
                                                                      target[1]))
                elif not backs:
                    bad.append('%s: %s: Service %s selects no workload' % (K.wname(w), k, v))
    for d in docs:
        if d['kind'] != 'Service':
            continue
        sel = d['spec'].get('selector') or {}
        backs = [w for w in K.workloads(docs)
                 if all(K.pod_labels(w).get(k) == v for k, v in sel.items())]
        if not backs:
            bad.append('Service %s selects no workload' % d['metadata']['name'])
            continue
        for p in d['spec'].get('ports') or []:
            tp = p.get('targetPort', p['port'])
            found = any(cp.get('name') == tp or cp.get('containerPort') == tp
                        for w in backs for c, _ in containers(K.pod_spec(w))
                        for cp in c.get('ports') or [])
            if not found:
                bad.append('Service %s port %s: no container port %s' % (
                    d['metadata']['name'], p['port'], tp))
        name = d['metadata']['name']
        if name in SERVICES and [p.get('name') for p in d['spec']['ports']] != ['grpc']:
            bad.append('Service %s: its port is not named grpc' % name)
    return bad


def check_scaling(docs):
    bad = []
    hpas = {d['spec']['scaleTargetRef']['name']: d for d in docs
            if d['kind'] == 'HorizontalPodAutoscaler'}
    pdbs = [d for d in docs if d['kind'] == 'PodDisruptionBudget']
    for d in docs:
        if d['kind'] != 'Deployment' or d['metadata']['name'] not in FSR_DEPLOYMENTS:
            continue
        n = d['metadata']['name']
        h = hpas.get(n)
        if h is None:
            bad.append('Deployment %s has no HorizontalPodAutoscaler' % n)
        elif not 1 <= h['spec'].get('minReplicas', 1) <= h['spec']['maxReplicas']:
            bad.append('HPA %s: minReplicas/maxReplicas out of order' % n)
        if not any(K.selector_matches(p['spec'].get('selector'), K.pod_labels(d)) for p in pdbs):
            bad.append('Deployment %s has no PodDisruptionBudget' % n)
    for want in FSR_DEPLOYMENTS:
        if not any(d['kind'] == 'Deployment' and d['metadata']['name'] == want for d in docs):
            bad.append('no Deployment %s' % want)
    return bad


# --- NetworkPolicies ------------------------------------------------------------------------
class Pod:
    def __init__(self, name, labels, ns, ports):
        self.name, self.labels, self.ns, self.ports = name, labels, ns, ports


# What a namespace selector can see: our namespace and kube-system with their labels; any
# other namespace may carry any labels.
NS_LABELS = {NS: {'kubernetes.io/metadata.name': NS, 'app.kubernetes.io/part-of': 'fsr'},
             'kube-system': {'kubernetes.io/metadata.name': 'kube-system'}}


def ns_selector_matches(sel, ns):
    if ns in NS_LABELS:
        return K.selector_matches(sel, NS_LABELS[ns])
    # Another namespace: matched unless the selector pins the name to one of the known ones.
    pinned = (sel.get('matchLabels') or {}).get('kubernetes.io/metadata.name')
    if pinned in NS_LABELS:
        return False
    for e in sel.get('matchExpressions') or []:
        if e.get('key') == 'kubernetes.io/metadata.name' and e.get('operator') == 'In' and \
                set(e.get('values') or []) <= set(NS_LABELS):
            return False
    return True


def peer_matches(peer, pod, policy_ns):
    """Does a NetworkPolicyPeer cover |pod|? Pods of unknown namespaces (OUTSIDE) may carry
    any labels; INTERNET is only ever covered by an ipBlock (which may cover OUTSIDE too)."""
    if 'ipBlock' in peer:
        return pod.ns not in NS_LABELS
    if pod.ns == 'internet':
        return False
    nsel, psel = peer.get('namespaceSelector'), peer.get('podSelector')
    if nsel is None:
        if pod.ns != policy_ns:
            return False
    elif not ns_selector_matches(nsel, pod.ns):
        return False
    if psel is None or pod.ns not in NS_LABELS:
        return True
    return K.selector_matches(psel, pod.labels)


def port_matches(rule_ports, dst, port, proto):
    if not rule_ports:
        return True
    for rp in rule_ports:
        if rp.get('protocol', 'TCP') != proto:
            continue
        p = rp.get('port')
        if p is None:
            return True
        if isinstance(p, str):
            p = dst.ports.get(p)
        end = rp.get('endPort', p)
        if p is not None and p <= port <= end:
            return True
    return False


def policy_types(pol):
    t = pol['spec'].get('policyTypes')
    if t:
        return set(t)
    return {'Ingress'} | ({'Egress'} if 'egress' in pol['spec'] else set())


def allowed(policies, src, dst, port, proto='TCP'):
    """Is a connection src -> dst:port allowed by both ends' policies?"""
    ing = [p for p in policies
           if dst.ns == NS and K.selector_matches(p['spec'].get('podSelector'), dst.labels)
           and 'Ingress' in policy_types(p)]
    if ing:
        ok = False
        for p in ing:
            for rule in p['spec'].get('ingress') or []:
                peers = rule.get('from')
                if (not peers or any(peer_matches(pe, src, NS) for pe in peers)) and \
                        port_matches(rule.get('ports'), dst, port, proto):
                    ok = True
        if not ok:
            return False
    eg = [p for p in policies
          if src.ns == NS and K.selector_matches(p['spec'].get('podSelector'), src.labels)
          and 'Egress' in policy_types(p)]
    if eg:
        ok = False
        for p in eg:
            for rule in p['spec'].get('egress') or []:
                peers = rule.get('to')
                if (not peers or any(peer_matches(pe, dst, NS) for pe in peers)) and \
                        port_matches(rule.get('ports'), dst, port, proto):
                    ok = True
        if not ok:
            return False
    return True


def pods_of(docs):
    out = []
    for w in K.workloads(docs):
        ports = {}
        for c, _ in containers(K.pod_spec(w)):
            for p in c.get('ports') or []:
                ports[p.get('name') or str(p['containerPort'])] = p['containerPort']
        out.append(Pod(K.pod_labels(w).get(NAME, K.wname(w)), K.pod_labels(w), NS, ports))
    return out


OUTSIDE = Pod('(another namespace)', {}, 'elsewhere', {})
INTERNET = Pod('(outside the cluster)', {}, 'internet', {'https': 443, 'http': 80})
KUBE_DNS = Pod('kube-dns', {'k8s-app': 'kube-dns'}, 'kube-system', {'dns': 53})


def check_network(docs, monitoring, optional):
    """[(check name, problems)] for the NetworkPolicies of a render."""
    pols = [d for d in docs if d['kind'] == 'NetworkPolicy']
    pods = pods_of(docs)
    res = []
    deny = [p for p in pols if p['spec'].get('podSelector') == {}
            and policy_types(p) == {'Ingress', 'Egress'}
            and not p['spec'].get('ingress') and not p['spec'].get('egress')]
    res.append(('a default-deny policy (all pods, both directions, no rules)',
                [] if deny else ['none']))
    bad = []
    for pod in pods:
        for t in ('Ingress', 'Egress'):
            if not any(K.selector_matches(p['spec'].get('podSelector'), pod.labels)
                       and t in policy_types(p) for p in pols):
                bad.append('%s: no %s policy selects it' % (pod.name, t))
    res.append(('every pod is selected by an Ingress and an Egress policy', bad))

    got = set()
    for s in pods:
        for d in pods:
            for port in set(d.ports.values()):
                if s is not d and allowed(pols, s, d, port):
                    got.add((s.name, d.name, port))
    want = expected_edges(monitoring, optional)
    res.append(('the allowed in-namespace connections are exactly the intended ones',
                ['not allowed but needed: %s -> %s:%s' % e for e in sorted(want - got)]
                + ['allowed but not intended: %s -> %s:%s' % e for e in sorted(got - want)]))
    store_bad = []
    for ds in DATASTORES:
        who = sorted({s for s, d, _ in got if d == ds})
        owners = sorted({s for s, d, _ in want if d == ds})
        if who != owners:
            store_bad.append('%s reachable from %s (intended: %s)' % (ds, who, owners))
        if any(allowed(pols, src, d, p) for d in pods if d.name == ds
               for p in d.ports.values() for src in (OUTSIDE, INTERNET)):
            store_bad.append('%s reachable from outside the namespace' % ds)
    res.append(('each database and Redis is reachable only from its own service and worker '
                '(Postgres: + migration Job, backups)', store_bad))
    outside = sorted({d.name for d in pods for p in d.ports.values()
                      for src in (OUTSIDE, INTERNET) if allowed(pols, src, d, p)})
    res.append(('only the gateway admits traffic from outside the namespace',
                [] if outside == ['gateway'] else ['admitting outside traffic: %s' % outside]))
    gw = [d for d in pods if d.name == 'gateway']
    gw_ports = sorted({p for d in gw for p in d.ports.values() if allowed(pols, OUTSIDE, d, p)})
    res.append(('the gateway admits outside traffic on 8000 only',
                [] if gw_ports == [8000] else ['outside -> gateway ports %s' % gw_ports]))
    dns_bad = [s.name for s in pods if not (allowed(pols, s, KUBE_DNS, 53, 'UDP')
                                            and allowed(pols, s, KUBE_DNS, 53, 'TCP'))]
    res.append(('every pod may query cluster DNS', ['no DNS: %s' % n for n in dns_bad]))
    leak = sorted({s.name for s in pods for port in (53, 80, 443, 5432)
                   if allowed(pols, s, INTERNET, port) or allowed(pols, s, OUTSIDE, port)})
    res.append(('no pod may connect outside the namespace (but DNS)',
                ['egress outside: %s' % leak] if leak else []))
    return res


def check_render(docs, env_ok):
    """[(name, problems)] for all per-workload and wiring checks of one render."""
    out = []
    for w in K.workloads(docs):
        out.append((K.wname(w), check_workload(w, docs, env_ok)))
    out.append(('Services, hosts and ports line up', check_wiring(docs)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--k8s', required=True)
    ap.add_argument('--kubectl')
    ap.add_argument('--src', default=K.repo_root(), help='the source tree (env names)')
    a = ap.parse_args()
    kubectl = K.kubectl_cmd(a.kubectl)
    if not kubectl:
        print('1..0 # SKIP kubectl not found (Debian: kubernetes-client)')
        return K.SKIP
    env_ok = env_names_read(a.src) | CONTRACT_ENV
    T = K.Tap()
    T.ok({'PORT', 'THREADS', 'EQUITY_DB_HOST', 'WORKER_PORT', 'EQUITY_SERVICE_ADDR'} <= env_ok,
         'the env names the binaries read are found in the sources',
         sorted(env_ok))

    renders = {}
    for rel in K.OVERLAYS + K.EXTRAS:
        docs, err = K.render(kubectl, os.path.join(a.k8s, rel))
        if T.ok(docs is not None, 'k8s/%s renders' % rel, err):
            renders[rel] = docs
    for rel in K.OVERLAYS:
        if rel not in renders:
            continue
        env = rel.split('/')[-1]
        for name, problems in check_render(renders[rel], env_ok):
            T.ok(not problems, '%s: %s' % (env, name), problems)
        probs = check_scaling(renders[rel])
        T.ok(not probs, '%s: an HPA and a PDB for every fsr Deployment' % env, probs)
        ings = [d for d in renders[rel] if d['kind'] == 'Ingress']
        backends = {p['backend']['service']['name'] for i in ings for r in i['spec']['rules']
                    for p in r['http']['paths']}
        T.ok(backends == {'gateway'}, '%s: the Ingress leads to the gateway only' % env,
             'Ingress backends: %s' % sorted(backends))
        for extra, flags in (('', (False, False)), ('monitoring', (True, False)),
                             ('optional', (False, True))):
            # The extras widen the network: checked once, on top of prod.
            if extra and (extra not in renders or env != 'prod'):
                continue
            docs = renders[rel] + (renders[extra] if extra else [])
            tag = env + ('+' + extra if extra else '')
            for name, problems in check_network(docs, *flags):
                T.ok(not problems, '%s: %s' % (tag, name), problems)
    for rel in K.EXTRAS:
        if rel not in renders:
            continue
        base = renders.get('overlays/dev', [])
        mine = {K.wname(w) for w in K.workloads(renders[rel])}
        for name, problems in check_render(renders[rel] + base, env_ok):
            if name in mine or not K.workloads(renders[rel]) or name.startswith('Services'):
                T.ok(not problems, '%s: %s' % (rel, name), problems)

    # The checker itself: each deliberate breakage of the prod render must be caught.
    if 'overlays/prod' in renders:
        self_test(T, renders['overlays/prod'], env_ok)
    return T.done()


def find(docs, kind, name):
    return next(d for d in docs if d['kind'] == kind and d['metadata']['name'] == name)


def self_test(T, prod, env_ok):
    def container(docs, kind, name):
        return K.pod_spec(find(docs, kind, name))['containers'][0]

    def all_problems(docs):
        probs = [p for _, ps in check_render(docs, env_ok) for p in ps]
        probs += check_scaling(docs)
        probs += [p for _, ps in check_network(docs, False, False) for p in ps]
        return probs

    T.ok(not all_problems(prod), 'self-test: the prod render passes unbroken')

    def mutate(what, fn):
        docs = copy.deepcopy(prod)
        fn(docs)
        T.ok(bool(all_problems(docs)), 'self-test: the checker rejects %s' % what)

    mutate('a writable root filesystem', lambda d: container(d, 'Deployment', 'equity')[
        'securityContext'].update(readOnlyRootFilesystem=False))
    mutate('a container running as root', lambda d: container(
        d, 'StatefulSet', 'redis-shared')['securityContext'].update(runAsNonRoot=False))
    mutate('a missing memory limit', lambda d: container(d, 'CronJob', 'backup-postgres')[
        'resources']['limits'].pop('memory'))
    mutate('a missing liveness probe', lambda d: container(d, 'Deployment', 'gateway').pop(
        'livenessProbe'))
    mutate('a gRPC liveness probe (database-dependent)', lambda d: container(
        d, 'Deployment', 'portfolio').update(livenessProbe={'grpc': {'port': 8003}}))
    mutate('a Service port not named grpc', lambda d: find(d, 'Service', 'fixed-income')[
        'spec']['ports'][0].update(name='h2c'))
    mutate('an env name no binary reads', lambda d: container(d, 'Deployment', 'equity')[
        'env'].append({'name': 'EQUITY_DB_HOSTNAME', 'value': 'x'}))
    mutate('a host that names no Service', lambda d: container(d, 'Deployment', 'equity')[
        'env'].append({'name': 'EQUITY_DB_HOST', 'value': 'postgres-equity-typo'}))
    mutate('a Deployment without its HPA', lambda d: d.remove(
        find(d, 'HorizontalPodAutoscaler', 'worker-portfolio')))
    mutate('a Redis open to the whole namespace', lambda d: find(
        d, 'NetworkPolicy', 'redis-equity')['spec']['ingress'].append({}))
    mutate('a database policy that shuts out its own service', lambda d: d.remove(
        find(d, 'NetworkPolicy', 'postgres-portfolio')))
    mutate('a missing default deny', lambda d: d.remove(find(d, 'NetworkPolicy',
                                                              'default-deny')))
    mutate('a service open to other namespaces', lambda d: find(
        d, 'NetworkPolicy', 'equity')['spec']['ingress'].append(
        {'from': [{'namespaceSelector': {}}]}))
    mutate('egress to anywhere', lambda d: find(
        d, 'NetworkPolicy', 'worker-equity')['spec']['egress'].append({}))


if __name__ == '__main__':
    sys.exit(main())
