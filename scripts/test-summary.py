#!/usr/bin/python3
"""Count test cases from meson's testlog.json files and print one line: N passed, N failed.

usage: test-summary.py [--step NAME=RC ...] [-v] TESTLOG.json [TESTLOG.json ...]

Each line of a testlog.json is one test program. Exit-code tests count once, by meson's
result. TAP tests (our Check suites, with CK_TAP_LOG_FILE_NAME=-) count every `ok N` /
`not ok N` line of their stdout, with TAP's SKIP and TODO directives read the way meson reads
them; a TAP program whose meson result is a failure with no failing line (a crash, a timeout,
a bad plan) adds one failure. --step NAME=RC is a step outside meson (build, lint): one failure
when RC is not 0, nothing otherwise. A testlog file that is missing counts as one failure.
Exit status: 0 when nothing failed, 1 otherwise.
"""
import json
import os
import re
import sys

PASS_RESULTS = {"OK", "EXPECTEDFAIL"}
FAIL_RESULTS = {"FAIL", "TIMEOUT", "UNEXPECTEDPASS", "ERROR", "INTERRUPT"}
SKIP_RESULTS = {"SKIP"}

TAP_LINE = re.compile(r"^(not ok|ok)\b(?:\s+\d+)?([^#]*)(?:#\s*(\w+))?", re.IGNORECASE)
TAP_PLAN = re.compile(r"^1\.\.\d+")


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []

    def add(self, outcome, name):
        if outcome == "pass":
            self.passed += 1
        elif outcome == "skip":
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(name)


def tap_cases(stdout):
    """Yield (outcome, description) for each TAP result line; nothing when not TAP."""
    lines = stdout.splitlines()
    if not any(TAP_PLAN.match(l) or TAP_LINE.match(l) for l in lines):
        return
    for line in lines:
        m = TAP_LINE.match(line)
        if not m:
            continue
        ok = m.group(1).lower() == "ok"
        directive = (m.group(3) or "").upper()
        desc = m.group(2).strip(" -")
        if directive == "SKIP":
            yield "skip", desc
        elif directive == "TODO":
            # meson: not ok + TODO is an expected failure, ok + TODO an unexpected pass.
            yield ("fail" if ok else "pass"), desc
        else:
            yield ("pass" if ok else "fail"), desc


def count_log(path, tally, verbose, prefix=""):
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        tally.add("fail", f"{path}: {e.strerror}")
        return
    with fh:
        for raw in fh:
            raw = raw.strip()
            if not raw:
                continue
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                continue
            name = prefix + entry.get("name", "?")
            result = str(entry.get("result", "ERROR")).upper()
            cases = list(tap_cases(entry.get("stdout") or ""))
            if cases:
                any_fail = False
                for outcome, desc in cases:
                    tally.add(outcome, f"{name}: {desc}")
                    any_fail |= outcome == "fail"
                if result in FAIL_RESULTS and not any_fail:
                    tally.add("fail", f"{name}: {result} (exit {entry.get('returncode')})")
            elif result in PASS_RESULTS:
                tally.add("pass", name)
            elif result in SKIP_RESULTS:
                tally.add("skip", name)
            else:
                tally.add("fail", f"{name}: {result}")
            if verbose:
                print(f"  {result:<14} {name} ({len(cases) or 1} case(s))", file=sys.stderr)


def main(argv):
    tally = Tally()
    verbose = False
    logs = []
    steps = []
    it = iter(argv)
    for arg in it:
        if arg == "-v":
            verbose = True
        elif arg == "--step":
            steps.append(next(it, "step=1"))
        elif arg.startswith("--step="):
            steps.append(arg[len("--step="):])
        else:
            logs.append(arg)
    for path in logs:
        # build-asan/meson-logs/testlog.json -> "build-asan: " when there is more than one log
        prefix = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(path))))
        count_log(path, tally, verbose, prefix + ": " if len(logs) > 1 else "")
    for step in steps:
        name, _, rc = step.partition("=")
        if rc.strip() != "0":
            tally.add("fail", f"{name} (exit {rc})")
    if tally.failures:
        print("failed:", file=sys.stderr)
        for f in tally.failures[:50]:
            print(f"  {f}", file=sys.stderr)
        if len(tally.failures) > 50:
            print(f"  ... and {len(tally.failures) - 50} more", file=sys.stderr)
    if tally.skipped:
        print(f"({tally.skipped} skipped, not counted)", file=sys.stderr)
    sys.stderr.flush()
    # The last line is exactly "N passed, N failed": CI reads it.
    print(f"{tally.passed} passed, {tally.failed} failed", flush=True)
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
