#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""QuantLib-Python on bond_bench's bond set: the reference side of test/bench/bond_bench.c.

Builds the same bonds as bond_bench.c (same generator, see there) with QuantLib's
FixedRateBond / ZeroCouponBond and the conventions of svc_fixed_income/bondmath.h, then times
  price: BondFunctions.cleanPrice + duration(Modified) + convexity per bond, from its yield
  yield: BondFunctions.bondYield per bond from its clean price (accuracy 1e-12)
best of --repeat passes each, and prints one JSON object: timings in seconds for the whole set
and checksums bond_bench compares with its own.  Bond construction is timed as init_s and
excluded from the rest.

    bond_bench_ql.py [--n 10000] [--repeat 3]
"""

import argparse
import json
import sys
import time

import QuantLib as ql

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def rnd(self, n):
        return self.next() % n


FREQS = [0, 1, 2, 2, 2, 4, 12]
QL_FREQ = {0: ql.Annual, 1: ql.Annual, 2: ql.Semiannual, 4: ql.Quarterly, 12: ql.Monthly}
DAY_COUNTERS = {  # fi_day_count numbering
    1: ql.ActualActual(ql.ActualActual.ISMA),
    2: ql.ActualActual(ql.ActualActual.ISDA),
    3: ql.Thirty360(ql.Thirty360.USA),
    4: ql.Thirty360(ql.Thirty360.EurobondBasis),
    5: ql.Actual360(),
    6: ql.Actual365Fixed(),
}


def bond_set(n, settle):
    r = SplitMix64(42)
    specs = []
    for _ in range(n):
        dc = 1 + r.rnd(6)
        freq = FREQS[r.rnd(7)]
        c = r.rnd(1201) / 10000.0
        coupon = c if freq else 0.0
        maturity = ql.Date(settle.serialNumber() + 365 + r.rnd(29 * 365 + 1))
        issue = ql.Date(settle.serialNumber() - r.rnd(3651))
        y = (r.rnd(1101) - 100) / 10000.0
        specs.append((dc, freq, coupon, issue, maturity, y))
    return specs


def build(spec):
    dc, freq, coupon, issue, maturity, _ = spec
    if freq == 0:
        return ql.ZeroCouponBond(0, ql.NullCalendar(), 100.0, maturity, ql.Unadjusted, 100.0,
                                 issue)
    sched = ql.Schedule(issue, maturity, ql.Period(QL_FREQ[freq]), ql.NullCalendar(),
                        ql.Unadjusted, ql.Unadjusted, ql.DateGeneration.Backward, False)
    return ql.FixedRateBond(0, 100.0, sched, [coupon], DAY_COUNTERS[dc], ql.Unadjusted, 100.0,
                            issue)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    settle = ql.Date(14, 6, 2024)
    ql.Settings.instance().evaluationDate = settle
    specs = bond_set(args.n, settle)
    t0 = time.perf_counter()
    bonds = [build(s) for s in specs]
    init_s = time.perf_counter() - t0
    work = [(b, DAY_COUNTERS[s[0]], QL_FREQ[s[1]], s[5]) for b, s in zip(bonds, specs)]

    clean_price = ql.BondFunctions.cleanPrice
    duration = ql.BondFunctions.duration
    convexity = ql.BondFunctions.convexity
    bond_yield = ql.BondFunctions.bondYield
    comp, modified = ql.Compounded, ql.Duration.Modified

    cleans = [clean_price(b, y, dc, comp, f, settle) for b, dc, f, y in work]
    sums = {"clean": sum(cleans),
            "modified": sum(duration(b, y, dc, comp, f, modified, settle)
                            for b, dc, f, y in work),
            "convexity": sum(convexity(b, y, dc, comp, f, settle) for b, dc, f, y in work)}

    price_s = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for b, dc, f, y in work:
            clean_price(b, y, dc, comp, f, settle)
            duration(b, y, dc, comp, f, modified, settle)
            convexity(b, y, dc, comp, f, settle)
        price_s = min(price_s, time.perf_counter() - t0)

    yield_s = float("inf")
    for _ in range(args.repeat):
        acc = 0.0
        t0 = time.perf_counter()
        for (b, dc, f, _), p in zip(work, cleans):
            acc += bond_yield(b, p, dc, comp, f, settle, 1e-12, 100)
        yield_s = min(yield_s, time.perf_counter() - t0)
    sums["yield"] = acc

    json.dump({"quantlib": ql.__version__, "n": args.n, "repeat": args.repeat,
               "init_s": init_s, "price_s": price_s, "yield_s": yield_s, "checksums": sums},
              sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
