#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Static checks of the container images' Dockerfiles (TAP). No Docker engine is needed.

    dockerfile_check.py --src DIR --build DIR

For each deployable (svc_equity, svc_fixed_income, svc_portfolio, svc_worker, rest_gateway):
the Dockerfile parses; it builds on debian:12 with scripts/install-deps.sh --build-debs and
ships debian:12-slim; every COPY source exists in the repository and .dockerignore keeps it
(and every tracked file) in the context; the binary copied out of the build stage is the path
of the directory's meson executable (from the build's meson-info), built by that ninja
target; USER is a numeric non-root uid and gid; the ENTRYPOINT is the copied binary; every
apt package named exists (apt-cache show); and the runtime packages cover `ldd` of the
locally built binary (each shared library mapped to its Debian package with dpkg -S): the
directly linked libraries' packages are listed, the rest come with them or with Debian's
required packages, and nothing listed is unneeded (ca-certificates aside). Once for the
repository: the build package list is a subset of install-deps.sh's full list and covers
what meson and the generators use (the owners of the pkg-config files, protoc and its C
plugin, python3's google.protobuf, the googleapis protos).
"""
import argparse
import fnmatch
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import k8s_lib as K  # noqa: E402

DEPLOYABLES = ['svc_equity', 'svc_fixed_income', 'svc_portfolio', 'svc_worker', 'rest_gateway']
INSTRUCTIONS = {'FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT',
                'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK',
                'SHELL', 'MAINTAINER'}
RUNTIME_EXTRAS = {'ca-certificates'}  # allowed without a library needing them
SANITIZER_PKGS = re.compile(r'^lib(asan|ubsan|lsan|tsan)\d*$')


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw)


# --- Dockerfile parsing -----------------------------------------------------------------------
def parse(path):
    """[(INSTRUCTION, argument text, line)] with continuations joined; raises ValueError."""
    out, buf, start = [], '', 0
    for i, raw in enumerate(open(path, encoding='utf-8').read().splitlines(), 1):
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith('#')):
            continue
        if buf and line.lstrip().startswith('#'):
            continue
        if not buf:
            start = i
        if line.endswith('\\'):
            buf += line[:-1] + ' '
            continue
        buf += line
        word, _, rest = buf.strip().partition(' ')
        if word.upper() not in INSTRUCTIONS:
            raise ValueError('line %d: unknown instruction %s' % (start, word))
        out.append((word.upper(), rest.strip(), start))
        buf = ''
    if buf:
        raise ValueError('dangling line continuation at the end')
    return out


def stages(instrs):
    """[{'from': image, 'as': name, 'instrs': [...]}]"""
    st = []
    for ins, arg, ln in instrs:
        if ins == 'FROM':
            parts = arg.split()
            st.append({'from': parts[0],
                       'as': parts[2] if len(parts) == 3 and parts[1].upper() == 'AS' else None,
                       'instrs': []})
        elif not st:
            if ins != 'ARG':
                raise ValueError('line %d: %s before FROM' % (ln, ins))
        else:
            st[-1]['instrs'].append((ins, arg, ln))
    return st


def apt_installs(run_arg):
    """Packages named by `apt-get install` in a RUN's shell text."""
    pkgs = []
    for cmd in re.split(r'&&|;|\|\|', run_arg):
        words = shlex.split(cmd)
        if 'apt-get' in words and 'install' in words:
            pkgs += [w for w in words[words.index('install') + 1:] if not w.startswith('-')]
    return pkgs


def copy_args(arg):
    words = shlex.split(arg)
    flags = [w for w in words if w.startswith('--')]
    paths = [w for w in words if not w.startswith('--')]
    if arg.strip().startswith('['):
        paths = json.loads(arg[arg.index('['):])
    frm = next((f.split('=', 1)[1] for f in flags if f.startswith('--from=')), None)
    return frm, paths[:-1], paths[-1]


# --- Debian packages ------------------------------------------------------------------------
_APT = {}


def apt_exists(pkg):
    if pkg not in _APT:
        apt_prefetch([pkg])
    return _APT[pkg]


def apt_prefetch(pkgs):
    """One `apt-cache show` for many packages (it prints the ones it knows)."""
    todo = sorted(set(pkgs) - set(_APT))
    if not todo:
        return
    r = run(['apt-cache', 'show', '--no-all-versions'] + todo)
    known = set(re.findall(r'^Package: (\S+)$', r.stdout, re.M))
    for p in todo:
        _APT[p] = p in known


_OWNER = {}


def _spellings(path):
    cands = [path, os.path.realpath(path)]
    for p in list(cands):
        cands.append(p[4:] if p.startswith('/usr/') else '/usr' + p)
    return list(dict.fromkeys(cands))


def dpkg_prefetch(paths):
    """One `dpkg -S` for many paths (and their /usr-merged spellings)."""
    todo = sorted({c for p in paths for c in _spellings(p)} - set(_OWNER))
    if not todo:
        return
    r = run(['dpkg', '-S'] + todo)
    for line in r.stdout.splitlines():
        pkg, _, owned = line.partition(': ')
        if 'diversion' in pkg or owned.strip() not in todo:
            continue
        _OWNER[owned.strip()] = pkg.split(',')[0].split(':')[0].strip()
    for c in todo:
        _OWNER.setdefault(c, None)


def dpkg_owner(path):
    """The package owning |path|, trying the /usr-merged spellings too; None if unowned."""
    dpkg_prefetch([path])
    return next((_OWNER[c] for c in _spellings(path) if _OWNER.get(c)), None)


@functools.lru_cache(maxsize=None)
def closure(pkgs):
    """|pkgs| and everything they Depend / Pre-Depend on, recursively."""
    if not pkgs:
        return frozenset()
    r = run(['apt-cache', 'depends', '--recurse', '--no-recommends', '--no-suggests',
             '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances'] + list(pkgs))
    return frozenset(ln.strip() for ln in r.stdout.splitlines()
                     if ln and not ln.startswith(' ') and not ln.startswith('<'))


@functools.lru_cache(maxsize=None)
def base_packages():
    """What debian:12-slim brings: the required and essential packages, with their
    dependencies (every Debian system has them installed)."""
    r = run(['dpkg-query', '-W', '-f', '${Package} ${Priority} ${Essential}\n'])
    req = sorted({ln.split()[0] for ln in r.stdout.splitlines()
                  if len(ln.split()) >= 2 and (ln.split()[1] == 'required'
                                               or ln.split()[-1] == 'yes')})
    return closure(tuple(req))


def ldd_libs(binary):
    """{soname: path} of every shared library |binary| loads (vdso and loader aside)."""
    r = run(['ldd', binary])
    libs = {}
    for ln in r.stdout.splitlines():
        m = re.match(r'\s*(\S+) => (/\S+)', ln)
        if m:
            libs[m.group(1)] = m.group(2)
        else:
            m = re.match(r'\s*(/\S+) \(', ln)
            if m:
                libs[os.path.basename(m.group(1))] = m.group(1)
    return libs


def needed(binary):
    r = run(['readelf', '-d', binary])
    return set(re.findall(r'\(NEEDED\)\s+Shared library: \[([^\]]+)\]', r.stdout))


# --- .dockerignore ---------------------------------------------------------------------------
def ignore_patterns(src):
    path = os.path.join(src, '.dockerignore')
    if not os.path.isfile(path):
        return []
    return [ln.strip() for ln in open(path) if ln.strip() and not ln.startswith('#')]


def ignored(relpath, patterns):
    """Docker's rule, simplified: a path is out when a pattern matches it or a parent (the last
    matching pattern wins; '!' re-includes)."""
    parts = relpath.split('/')
    prefixes = ['/'.join(parts[:i]) for i in range(1, len(parts) + 1)]
    out = False
    for pat in patterns:
        neg = pat.startswith('!')
        p = pat[1:] if neg else pat
        p = p.strip('/')
        rx = fnmatch.translate(p).replace('.*', '[^/]*')
        rx = rx.replace('[^/]*[^/]*/', '(?:.*/)?').replace('[^/]*[^/]*', '.*')
        if any(re.match(rx, pre) for pre in prefixes):
            out = not neg
    return out


# --- the checks ------------------------------------------------------------------------------
def build_src(build):
    """The source tree |build| was configured from."""
    with open(os.path.join(build, 'meson-info', 'meson-info.json')) as f:
        return json.load(f)['directories']['source']


def meson_executables(build):
    with open(os.path.join(build, 'meson-info', 'intro-targets.json')) as f:
        targets = json.load(f)
    return [t for t in targets if t['type'] == 'executable']


def check_dockerfile(T, src, build, d, exes, full_list, build_list, apt_ok, sanitized):
    path = os.path.join(src, d, 'Dockerfile')
    if not T.ok(os.path.isfile(path), '%s/Dockerfile exists' % d):
        return
    try:
        st = stages(parse(path))
        perr = None
    except (ValueError, OSError) as e:
        st, perr = [], str(e)
    if not T.ok(perr is None and len(st) == 2, '%s: parses into a build and a runtime stage' % d,
                perr or '%d stages' % len(st)):
        return
    b, r = st
    bad = []
    if b['from'] != 'debian:12' or not b['as']:
        bad.append('build stage is %s (AS %s), not debian:12 AS <name>' % (b['from'], b['as']))
    if r['from'] != 'debian:12-slim':
        bad.append('runtime stage is %s, not debian:12-slim' % r['from'])
    T.ok(not bad, '%s: builds on debian:12, ships debian:12-slim' % d, bad)

    # The build stage: install-deps.sh --build-debs, then meson + ninja of the right target.
    exe = [t for t in exes if os.path.dirname(t['defined_in']) == os.path.join(build_src(build), d)]
    bad = []
    if len(exe) != 1:
        bad.append('%d meson executables defined in %s/meson.build' % (len(exe), d))
    rel = os.path.relpath(exe[0]['filename'][0], build) if len(exe) == 1 else None
    workdir = next((a for i, a, _ in b['instrs'] if i == 'WORKDIR'), '/')
    runs = [a for i, a, _ in b['instrs'] if i == 'RUN']
    copies = [copy_args(a) for i, a, _ in b['instrs'] if i == 'COPY']
    deps_run = [k for k, a in enumerate(runs) if re.search(r'scripts/install-deps\.sh\s+'
                                                          r'--build-debs\b', a)]
    if not deps_run:
        bad.append('the build stage does not run scripts/install-deps.sh --build-debs')
    if apt_installs(' '.join(runs)):
        bad.append('the build stage names packages itself: %s (the list lives in '
                   'install-deps.sh)' % apt_installs(' '.join(runs)))
    if not any('scripts/install-deps.sh' in s for _, srcs, _ in copies for s in srcs):
        bad.append('install-deps.sh is not copied in')
    setup = [a for a in runs if re.search(r'\bmeson setup build\b', a)]
    if not setup or '-Dbuildtype=release' not in setup[0]:
        bad.append('no `meson setup build -Dbuildtype=release`')
    if rel and not any(re.search(r'\bninja -C build %s\b' % re.escape(rel), a) for a in runs):
        bad.append('no `ninja -C build %s` (the meson target\'s output)' % rel)
    T.ok(not bad, '%s: build stage: install-deps.sh --build-debs, meson, ninja %s' % (d, rel),
         bad)

    # COPY sources exist and stay in the context.
    pats = ignore_patterns(src)
    bad = []
    for stg in (b, r):
        for i, a, ln in stg['instrs']:
            if i not in ('COPY', 'ADD'):
                continue
            frm, srcs, _ = copy_args(a)
            if frm:
                continue
            for s in srcs:
                sp = os.path.normpath(os.path.join(src, s))
                if not os.path.exists(sp):
                    bad.append('line %d: %s does not exist' % (ln, s))
                elif s not in ('.', './') and ignored(os.path.relpath(sp, src), pats):
                    bad.append('line %d: %s is excluded by .dockerignore' % (ln, s))
    T.ok(not bad, '%s: every COPY source exists in the repository' % d, bad)

    # The runtime stage: the binary from the build stage, non-root, entrypoint.
    bad = []
    rcopies = [copy_args(a) for i, a, _ in r['instrs'] if i == 'COPY']
    from_build = [(s, dst) for frm, srcs, dst in rcopies if frm == b['as'] for s in srcs]
    want = os.path.normpath(os.path.join(workdir, 'build', rel)) if rel else None
    if [s for s, _ in from_build] != [want]:
        bad.append('copies %s from the build stage, expected exactly %s'
                   % ([s for s, _ in from_build], want))
    users = [a for i, a, _ in r['instrs'] if i == 'USER']
    m = re.fullmatch(r'(\d+)(?::(\d+))?', users[-1]) if users else None
    if not m or int(m.group(1)) == 0 or (m.group(2) is not None and int(m.group(2)) == 0):
        bad.append('USER %s is not a numeric non-root uid[:gid]' % (users[-1] if users else
                                                                     '(none)'))
    ents = [a for i, a, _ in r['instrs'] if i == 'ENTRYPOINT']
    try:
        ent = json.loads(ents[-1]) if ents else None
    except ValueError:
        ent = None
    dst = from_build[0][1] if from_build else None
    if dst and dst.endswith('/'):
        dst += os.path.basename(from_build[0][0])
    if not ent or ent[0] != dst:
        bad.append('ENTRYPOINT %s is not the exec form of the copied binary %s' % (ents, dst))
    if users and [i for i, _, _ in r['instrs']].index('USER') < max(
            k for k, (i, _, _) in enumerate(r['instrs']) if i == 'RUN'):
        bad.append('a RUN after USER in the runtime stage')
    T.ok(not bad, '%s: runtime stage: %s, non-root USER, ENTRYPOINT' % (d, want), bad)

    # Packages exist.
    rpkgs = [p for i, a, _ in r['instrs'] if i == 'RUN' for p in apt_installs(a)]
    if apt_ok:
        apt_prefetch(rpkgs)
        missing = [p for p in rpkgs if not apt_exists(p)]
        T.ok(rpkgs and not missing, '%s: every runtime package exists (apt-cache show)' % d,
             'unknown: %s' % missing)
    else:
        T.skip('%s: every runtime package exists' % d, 'apt-cache not found')

    # Runtime packages cover ldd of the built binary.
    name = 'the runtime packages cover ldd of %s' % rel
    binary = os.path.join(build, rel) if rel else None
    if not (apt_ok and shutil.which('dpkg') and shutil.which('ldd') and shutil.which('readelf')):
        T.skip('%s: %s' % (d, name), 'dpkg, ldd, readelf or apt-cache missing')
        return
    if not binary or not os.path.isfile(binary):
        T.ok(False, '%s: %s' % (d, name), '%s is not built' % binary)
        return
    libs = ldd_libs(binary)
    direct = needed(binary)
    dpkg_prefetch(list(libs.values()))
    owners, unowned = {}, []
    for so, p in libs.items():
        pkg = dpkg_owner(p)
        if pkg is None:
            unowned.append('%s (%s)' % (so, p))
        elif not (sanitized and SANITIZER_PKGS.match(pkg)):
            owners[so] = pkg
    listed = frozenset(rpkgs)
    have = closure(tuple(sorted(listed))) | base_packages()
    bad = ['no package owns %s' % u for u in unowned]
    direct_pkgs = {owners[so] for so in direct if so in owners}
    for so in sorted(direct):
        pkg = owners.get(so)
        if pkg and pkg not in listed and pkg not in base_packages():
            bad.append('%s links %s (%s): not listed' % (rel, so, pkg))
    for so, pkg in sorted(owners.items()):
        if pkg not in have:
            bad.append('%s loads %s (%s): neither listed, nor a dependency, nor in the base'
                       % (rel, so, pkg))
    extra = sorted(listed - direct_pkgs - RUNTIME_EXTRAS)
    if extra:
        bad.append('listed but not linked by %s: %s' % (rel, extra))
    for tool in ('apt-get', 'rm', 'useradd'):
        if any(re.search(r'\b%s\b' % tool, a) for i, a, _ in r['instrs'] if i == 'RUN'):
            owner = dpkg_owner(shutil.which(tool) or '/nonexistent')
            if owner not in base_packages():
                bad.append('the runtime stage runs %s (%s), not in debian:12-slim'
                           % (tool, owner))
    T.ok(not bad, '%s: %s (%d libraries, %d linked directly)' % (d, name, len(owners),
                                                                  len(direct)), bad)


def check_build_packages(T, src, build, full, sub, apt_ok):
    T.ok(bool(sub) and set(sub) <= set(full),
         'install-deps.sh: the build packages are a subset of the full list',
         'not in the full list: %s' % sorted(set(sub) - set(full)))
    if not apt_ok:
        T.skip('every build package exists (apt-cache show)', 'apt-cache not found')
        T.skip('the build packages cover what the build uses', 'apt-cache not found')
        return
    apt_prefetch(sub)
    missing = [p for p in sub if not apt_exists(p)]
    T.ok(not missing, 'every build package exists (apt-cache show)', 'unknown: %s' % missing)
    # What the build uses, mapped to its package.
    # Every dependency() the build requires (optional ones, required : false, are for tests).
    needs, bad = {}, []
    required = set()
    for root, dirs, files in os.walk(src):
        dirs[:] = [x for x in dirs if not x.startswith(('build', '.', 'node_modules'))]
        if 'meson.build' in files:
            text = open(os.path.join(root, 'meson.build')).read()
            for m in re.finditer(r"dependency\('([^']+)'([^)]*)\)", text):
                if m.group(1) and not re.search(r'required\s*:\s*false', m.group(2)):
                    required.add(m.group(1))
    required -= {'threads'}
    for name in sorted(required):
        r = run(['pkg-config', '--path', name])
        pc = r.stdout.strip()
        if r.returncode != 0 or not pc:
            bad.append('pkg-config knows no %s here' % name)
            continue
        needs['%s (%s)' % (name, os.path.basename(pc))] = dpkg_owner(pc)
    # protoc runs its C plugin from PATH (--c_out), so no build command names it.
    for prog in ('protoc', 'protoc-gen-c', 'meson', 'ninja', 'pkg-config', 'cc',
                 '/usr/bin/python3'):
        p = shutil.which(prog)
        pkg = dpkg_owner(os.path.realpath(p)) if p else None
        if pkg:
            needs[prog] = pkg
    probe = run(['/usr/bin/python3', '-c',
                 'import google.protobuf.compiler.plugin_pb2 as m; print(m.__file__)'])
    if probe.returncode == 0:
        needs['python3 google.protobuf'] = dpkg_owner(probe.stdout.strip())
    gmeson = open(os.path.join(src, 'gen', 'meson.build')).read()
    m = re.search(r"googleapis_dir = '([^']+)'", gmeson)
    if m:
        needs['googleapis protos'] = dpkg_owner(os.path.join(m.group(1), 'google', 'api',
                                                             'http.proto'))
    m = re.search(r"protobuf_include = '([^']+)'", gmeson)
    if m:
        needs['google/protobuf protos'] = dpkg_owner(os.path.join(
            m.group(1), 'google', 'protobuf', 'timestamp.proto'))
    if 'http_parser' in open(os.path.join(src, 'meson.build')).read():
        needs['http_parser.h'] = dpkg_owner('/usr/include/http_parser.h')
    # Everything under /usr the five binaries' build reads: ninja's inputs, the headers the
    # compiler reported (deps log), and the files named in the build commands.
    targets = [os.path.relpath(t['filename'][0], build) for t in meson_executables(build)
               if os.path.relpath(os.path.dirname(t['defined_in']), build_src(build))
               in DEPLOYABLES]
    used = set()
    if targets and shutil.which('ninja'):
        inputs = run(['ninja', '-C', build, '-t', 'inputs'] + targets).stdout.split()
        objs = [i for i in inputs if i.endswith('.o')]
        deps = run(['ninja', '-C', build, '-t', 'deps'] + objs).stdout.split() if objs else []
        cmds = run(['ninja', '-C', build, '-t', 'commands'] + targets).stdout
        words = inputs + deps + re.findall(r"(?:^|[\s='])(/usr/[^\s'\"]+)", cmds, re.M)
        for w in words:
            w = os.path.normpath(w)
            if w.startswith('/usr/') and os.path.isfile(w):
                used.add(w)
    dpkg_prefetch(sorted(used))
    for path in sorted(used):
        needs[path] = dpkg_owner(path)
    if not used:
        bad.append('ninja found no inputs of %s in %s' % (targets, build))
    # A tool from a package that another listed one depends on is covered too (gcc comes
    # with build-essential, libssl-dev brings libssl3...).
    have = closure(tuple(sorted(sub))) | base_packages()
    for what, pkg in sorted(needs.items()):
        if pkg is None:
            bad.append('%s: no package owns it here' % what)
        elif pkg not in have:
            bad.append('%s comes from %s, which --build-debs does not install' % (what, pkg))
    T.ok(len(needs) >= 10 and not bad,
         'the build packages cover what the build uses (%d files from %d packages)'
         % (len(needs), len(set(needs.values()))), bad)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--src', default=K.repo_root())
    ap.add_argument('--build', required=True, help='a configured and built meson build dir')
    a = ap.parse_args()
    src, build = os.path.realpath(a.src), os.path.realpath(a.build)
    T = K.Tap()
    deps_sh = os.path.join(src, 'scripts', 'install-deps.sh')
    full = run(['bash', deps_sh, '--list']).stdout.split()
    sub = run(['bash', deps_sh, '--list-build']).stdout.split()
    apt_ok = shutil.which('apt-cache') is not None
    opts = json.load(open(os.path.join(build, 'meson-info', 'intro-buildoptions.json')))
    sanitized = any(o['name'] == 'b_sanitize' and o['value'] not in ('none', '', [])
                    for o in opts)
    if sanitized:
        T.diag('sanitized build: the sanitizer runtimes are left out of the ldd comparison')
    check_build_packages(T, src, build, full, sub, apt_ok)
    exes = meson_executables(build)
    for d in DEPLOYABLES:
        check_dockerfile(T, src, build, d, exes, full, sub, apt_ok, sanitized)

    # The context: .dockerignore keeps every tracked file and drops local state.
    pats = ignore_patterns(src)
    tracked = run(['git', '-C', src, 'ls-files']).stdout.split('\n')
    tracked = [t for t in tracked if t]
    if tracked:
        out = [t for t in tracked if ignored(t, pats)]
        T.ok(not out, '.dockerignore keeps every tracked file in the build context',
             out[:20])
    else:
        T.skip('.dockerignore keeps every tracked file', 'not a git checkout')
    dropped = [p for p in ('build', 'build-k8s', '.git', '.run', 'test/node_modules')
               if ignored(p, pats)]
    T.ok(len(dropped) == 5, '.dockerignore drops build dirs, .git, .run, node_modules',
         'kept: %s' % sorted({'build', 'build-k8s', '.git', '.run', 'test/node_modules'}
                            - set(dropped)))
    return T.done()


if __name__ == '__main__':
    sys.exit(main())
