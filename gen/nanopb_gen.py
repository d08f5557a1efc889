#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Runs Debian's nanopb generator (protoc-gen-nanopb) and flattens its output.

    nanopb_gen.py --protoc PROTOC --plugin PROTOC_GEN_NANOPB --out DIR --options-dir DIR
                  [-I DIR]... PROTO...

Writes DIR/<stem>.pb.{c,h} for each PROTO (meson custom_target outputs cannot contain '/',
so the generated code includes its siblings by bare name: nanopb's --strip-path).  Imports
not among PROTO are left out of the #include lists: the .options files must skip every
message that would need them.  Fails if a generated header has a callback field
(pb_callback_t) or a pointer (malloc'ed) field: every string and repeated field must be
bounded with max_size/max_count in the .options files, so encoding and decoding never
allocate.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile


def imports_of(protoc, includes, proto):
    """The direct imports of |proto| (via a descriptor set of just that file)."""
    from google.protobuf import descriptor_pb2

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "d.pb")
        subprocess.check_call([protoc] + ["-I" + i for i in includes] +
                              ["--descriptor_set_out=" + out, proto])
        fds = descriptor_pb2.FileDescriptorSet.FromString(open(out, "rb").read())
    return list(fds.file[0].dependency)


def virtual_name(includes, proto):
    path = os.path.abspath(proto)
    for inc in includes:
        inc = os.path.abspath(inc) + os.sep
        if path.startswith(inc):
            return path[len(inc):]
    return proto


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--protoc", required=True)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--options-dir", required=True)
    ap.add_argument("-I", dest="includes", action="append", default=[])
    ap.add_argument("protos", nargs="+")
    args = ap.parse_args()

    names = [virtual_name(args.includes, p) for p in args.protos]
    stems = [os.path.splitext(os.path.basename(n))[0] for n in names]
    if len(set(stems)) != len(stems):
        sys.exit("nanopb_gen: two protos share a file name: %s" % ", ".join(names))
    excluded = set()
    for p in args.protos:
        excluded.update(d for d in imports_of(args.protoc, args.includes, p) if d not in names)

    base_opts = ["--strip-path", "--error-on-unmatched", "-q"]
    base_opts += ["-x" + x for x in sorted(excluded)]
    with tempfile.TemporaryDirectory() as tmp:
        # One run per file: nanopb looks for "<proto path>.options"; ours are flat, by stem.
        for proto, stem in zip(args.protos, stems):
            opts = list(base_opts)
            optfile = os.path.join(args.options_dir, stem + ".options")
            if os.path.isfile(optfile):
                opts.append("-f" + os.path.abspath(optfile))
            cmd = [args.protoc, "--plugin=protoc-gen-nanopb=" + args.plugin,
                   "--nanopb_opt=" + " ".join(opts), "--nanopb_out=" + tmp]
            cmd += ["-I" + i for i in args.includes] + [proto]
            subprocess.check_call(cmd)
        bad = []
        for name, stem in zip(names, stems):
            src = os.path.join(tmp, os.path.splitext(name)[0])
            for ext in (".pb.h", ".pb.c"):
                text = open(src + ext).read()
                # --strip-path strips only the file's own name: flatten sibling includes too.
                text = re.sub(r'^#include "(?:[^"/]*/)+([^"/]+\.pb\.h)"', r'#include "\1"', text,
                              flags=re.M)
                if ext == ".pb.h":
                    for line in text.splitlines():
                        if re.search(r"\bpb_callback_t\b|^\s*\w[\w\s]*\*\s*\w+;", line):
                            bad.append("%s: %s" % (stem + ext, line.strip()))
                with open(os.path.join(args.out, stem + ext), "w") as f:
                    f.write(text)
        if bad:
            sys.exit("nanopb_gen: unbounded fields (set max_size/max_count or skip the "
                     "message in gen/nanopb/*.options):\n  " + "\n  ".join(bad))


if __name__ == "__main__":
    main()
