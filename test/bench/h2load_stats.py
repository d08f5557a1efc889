#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Latency percentiles from an h2load --log-file (h2load itself prints only mean and sd).

Each log row is tab-separated: start time (us since epoch), HTTP status (-1 for a failed
stream), microseconds until the end of the response.  h2load logs only the main measurement
phase (not --warm-up-time).  Prints one line of shell-readable key=value pairs:

    requests=N ok=N failed=N p50_ms=X p90_ms=X p99_ms=X max_ms=X

`ok` counts 2xx responses; `failed` everything else.  Percentiles use the nearest-rank method
over every logged request.  Exits 1 when the log holds no request.

usage: h2load_stats.py LOGFILE
"""
import sys


def percentile(sorted_us, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_us:
        return 0
    rank = max(1, -(-len(sorted_us) * p // 100))  # ceil(n * p / 100)
    return sorted_us[int(rank) - 1]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    lat = []
    ok = failed = 0
    with open(sys.argv[1]) as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) < 3:
                continue
            status = int(cols[1])
            if 200 <= status < 300:
                ok += 1
            else:
                failed += 1
            lat.append(int(cols[2]))
    if not lat:
        print("h2load_stats: no request in %s" % sys.argv[1], file=sys.stderr)
        return 1
    lat.sort()
    print("requests=%d ok=%d failed=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f" % (
        len(lat), ok, failed, percentile(lat, 50) / 1000.0, percentile(lat, 90) / 1000.0,
        percentile(lat, 99) / 1000.0, lat[-1] / 1000.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
