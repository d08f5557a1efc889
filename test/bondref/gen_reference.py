#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Bond reference set from QuantLib-Python (Debian quantlib-python 1.29).

Writes test/bondref/reference.json: a randomized but deterministic (fixed seed) set of bonds
priced by QuantLib's FixedRateBond / ZeroCouponBond and BondFunctions with the conventions of
svc_fixed_income/bondmath.h, which test/unit/bondmath_test.c compares output by output.

    gen_reference.py                  regenerate test/bondref/reference.json
    gen_reference.py --output FILE    write elsewhere
    gen_reference.py --check FILE     regenerate in memory and compare with FILE (exit 1 on a
                                      difference, 77 = skipped when QuantLib is missing)

Conventions (the same choices as bondmath.h):
  * Schedule(issue, maturity, Period(frequency), NullCalendar(), Unadjusted, Unadjusted,
    DateGeneration.Backward, endOfMonth=False, firstDate=firstCouponDate or Date());
    FixedRateBond(0, 100, schedule, [coupon], dayCounter, Unadjusted, 100, issue).
  * Zero coupon (frequency 0): ZeroCouponBond(0, NullCalendar(), 100, maturity, Unadjusted,
    100, issue); the yield is compounded Annual.
  * Day counters: ACT_ACT_ICMA ActualActual(ISMA) (no schedule), ACT_ACT_ISDA
    ActualActual(ISDA), THIRTY_360_US Thirty360(USA), THIRTY_E_360 Thirty360(EurobondBasis),
    ACT_360 Actual360(), ACT_365_FIXED Actual365Fixed().
  * Yield: InterestRate(y, bond day counter, Compounded, frequency); cleanPrice, accrued,
    dirtyPrice, duration (Macaulay, Modified), convexity, basisPointValue from BondFunctions at
    the settlement date (cash flows on the settlement date excluded, QuantLib's default).
  * yieldFromPrice: BondFunctions.bondYield at a quoted clean price (the clean price rounded
    to 10 significant digits), accuracy 1e-14.  bondYield's accuracy is on the price, in
    absolute terms, so for prices of about 1e-6 per 100 and below its yield can be off by far
    more than 1e-9: each yield is checked against scipy's brentq on QuantLib's own cleanPrice
    (xtol 1e-15), and where they differ by more than 1e-10 the Brent root is the reference
    (tag "ql_yield_imprecise", QuantLib's value kept as yieldFromPriceQuantLib).  Where no time
    is left to maturity under the day count the yield is undefined: yieldFromPrice is null
    (tag "yield_undefined").
"""

import argparse
import json
import os
import random
import sys

SEED = 20240601
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "reference.json")

DAY_COUNT_NAMES = ["ACT_ACT_ICMA", "ACT_ACT_ISDA", "THIRTY_360_US", "THIRTY_E_360", "ACT_360",
                   "ACT_365_FIXED"]
FREQUENCIES = [1, 2, 4, 12]


def load_quantlib():
    try:
        import QuantLib as ql  # noqa: N813
    except ImportError:
        return None
    return ql


def day_counter(ql, name):
    return {
        "ACT_ACT_ICMA": lambda: ql.ActualActual(ql.ActualActual.ISMA),
        "ACT_ACT_ISDA": lambda: ql.ActualActual(ql.ActualActual.ISDA),
        "THIRTY_360_US": lambda: ql.Thirty360(ql.Thirty360.USA),
        "THIRTY_E_360": lambda: ql.Thirty360(ql.Thirty360.EurobondBasis),
        "ACT_360": lambda: ql.Actual360(),
        "ACT_365_FIXED": lambda: ql.Actual365Fixed(),
    }[name]()


def ql_frequency(ql, f):
    return {0: ql.Annual, 1: ql.Annual, 2: ql.Semiannual, 4: ql.Quarterly, 12: ql.Monthly}[f]


class Gen:
    """Random terms, settlement dates and yields; every draw goes through self.rng."""

    def __init__(self, ql, seed):
        self.ql = ql
        self.rng = random.Random(seed)

    def maturity(self):
        ql, r = self.ql, self.rng
        y = r.randint(2001, 2060)
        m = r.randint(1, 12)
        last = ql.Date.endOfMonth(ql.Date(1, m, y)).dayOfMonth()
        u = r.random()
        if u < 0.25:
            d = last  # end of month: 28/29 Feb, 30th, 31st
        elif u < 0.4:
            d = r.choice([29, 30, 31, 28])
            d = min(d, last)
        else:
            d = r.randint(1, 28)
        return ql.Date(d, m, y)

    def grid(self, maturity, months, k):
        return maturity - self.ql.Period(k * months, self.ql.Months)

    def terms(self, dc, freq, stub):
        """Returns (issue, maturity, first_coupon or None, coupon)."""
        ql, r = self.ql, self.rng
        while True:
            maturity = self.maturity()
            years = r.randint(1, 30)
            coupon = 0.0 if freq == 0 or r.random() < 0.05 else round(r.uniform(0.001, 0.12), 6)
            first = None
            if freq == 0:
                issue = maturity - ql.Period(years * 12, ql.Months)
                if r.random() < 0.5:  # not on an anniversary
                    issue = issue + r.randint(1, 300)
            else:
                months = 12 // freq
                k = max(1, years * freq - r.randint(0, freq))
                if stub == "regular":
                    issue = self.grid(maturity, months, k)
                else:
                    # issue strictly between grid dates k+1 and k: a short first period
                    lo, hi = self.grid(maturity, months, k + 1), self.grid(maturity, months, k)
                    if hi - lo < 2:
                        continue
                    issue = lo + r.randint(1, hi - lo - 1)
                    if stub == "long":
                        # first coupon one (or, sometimes, two) grid dates later: a long stub
                        j = k - 1 if r.random() < 0.8 else k - 2
                        if j < 0:
                            continue
                        first = self.grid(maturity, months, j)
                    elif stub == "long_on_grid":
                        issue = lo
                        if k - 1 < 0:
                            continue
                        first = self.grid(maturity, months, k - 1)
            if issue < ql.Date(1, 1, 1901) or issue >= maturity:
                continue
            return issue, maturity, first, coupon

    def settlement(self, kind, dates, issue, maturity):
        """A settlement date in [issue, maturity) of the requested kind (falls back to random)."""
        r = self.rng
        inner = [d for d in dates if issue < d < maturity]
        if kind == "on_coupon" and inner:
            return r.choice(inner)
        if kind == "before_coupon" and inner:
            return r.choice(inner) - 1
        if kind == "after_coupon" and inner:
            d = r.choice(inner) + 1
            if d < maturity:
                return d
        if kind == "issue":
            return issue
        if kind == "last_day":
            return maturity - 1
        if kind == "first_period" and len(dates) > 1:
            hi = min(dates[1], maturity)
            if hi - issue > 1:
                return issue + r.randint(1, hi - issue - 1)
        return issue + r.randint(0, maturity - issue - 1)

    def yld(self, kind):
        r = self.rng
        if kind == "negative":
            return round(r.uniform(-0.05, -0.0001), 8)
        if kind == "high":
            return round(r.uniform(0.15, 1.0), 8)
        if kind == "very_high":
            return round(r.uniform(1.0, 3.0), 8)
        if kind == "zero":
            return 0.0
        return round(r.uniform(0.0, 0.08), 8)


def make_bond(ql, issue, maturity, first, coupon, freq, dc):
    if freq == 0:
        bond = ql.ZeroCouponBond(0, ql.NullCalendar(), 100.0, maturity, ql.Unadjusted, 100.0,
                                 issue)
        return bond, [issue, maturity]
    sched = ql.Schedule(issue, maturity, ql.Period(ql_frequency(ql, freq)), ql.NullCalendar(),
                        ql.Unadjusted, ql.Unadjusted, ql.DateGeneration.Backward, False,
                        first if first is not None else ql.Date())
    bond = ql.FixedRateBond(0, 100.0, sched, [coupon], dc, ql.Unadjusted, 100.0, issue)
    return bond, list(sched)


def price_case(ql, case_id, tags, issue, maturity, first, coupon, freq, dcname, settle, y):
    dc = day_counter(ql, dcname)
    bond, dates = make_bond(ql, issue, maturity, first, coupon, freq, dc)
    ql.Settings.instance().evaluationDate = settle
    comp, qf = ql.Compounded, ql_frequency(ql, freq)
    bf = ql.BondFunctions
    clean = bf.cleanPrice(bond, y, dc, comp, qf, settle)
    out = {
        "id": case_id,
        "tags": tags,
        "terms": {
            "couponRate": coupon,
            "frequency": freq,
            "dayCount": dcname,
            "issueDate": issue.ISO(),
            "maturityDate": maturity.ISO(),
            "firstCouponDate": first.ISO() if first is not None else None,
        },
        "settlementDate": settle.ISO(),
        "yield": y,
        "accrued": bond.accruedAmount(settle),
        "cleanPrice": clean,
        "dirtyPrice": bond.dirtyPrice(y, dc, comp, qf, settle),
        "macaulayDuration": bf.duration(bond, y, dc, comp, qf, ql.Duration.Macaulay, settle),
        "modifiedDuration": bf.duration(bond, y, dc, comp, qf, ql.Duration.Modified, settle),
        "convexity": bf.convexity(bond, y, dc, comp, qf, settle),
        "bpv": bf.basisPointValue(bond, y, dc, comp, qf, settle),
        # what BondFunctions prices: flows paid after the settlement date
        # (includeSettlementDateFlows = false)
        "cashflows": [[cf.date().ISO(), cf.amount()] for cf in bond.cashflows()
                      if cf.date() > settle],
    }
    quoted = float("%.10g" % clean)  # a quote: 10 significant digits
    out["quotedCleanPrice"] = quoted
    if out["macaulayDuration"] == 0.0:
        # Every remaining flow is at time 0 under the day count (30/360 from the 30th to a
        # 31st maturity): the price does not depend on the yield.  bondYield returns its
        # guess (0.05) there; bondmath answers FI_E_YIELD_UNDEFINED.
        out["yieldFromPrice"] = None
        out["tags"].append("yield_undefined")
        return out, dates
    qly = bf.bondYield(bond, quoted, dc, comp, qf, settle, 1e-14, 1000)
    # bondYield stops when |price error| < accuracy, an absolute test: for prices of 1e-6 per
    # 100 and below that leaves the yield off by up to 1e-6.  Check it against Brent on
    # QuantLib's own price function to full precision and use that root when they differ.
    by = brent_yield(ql, bond, quoted, dc, comp, qf, settle, y, freq)
    if abs(qly - by) > 1e-10:
        out["yieldFromPrice"] = by
        out["yieldFromPriceQuantLib"] = qly
        out["tags"].append("ql_yield_imprecise")
    else:
        out["yieldFromPrice"] = qly
    return out, dates


def brent_yield(ql, bond, quoted, dc, comp, qf, settle, y0, freq):
    """The root of QuantLib's cleanPrice(y) - quoted near y0, to machine precision."""
    from scipy.optimize import brentq

    def f(y):
        return ql.BondFunctions.cleanPrice(bond, y, dc, comp, qf, settle) - quoted

    w = 1e-3 * max(1.0, abs(y0))
    lo = max(y0 - w, -0.999 * max(freq, 1))
    return brentq(f, lo, y0 + w, xtol=1e-15, rtol=1e-15, maxiter=500)


def day_count_cases(ql, g):
    """Year fractions on awkward dates: month ends, February, long ICMA ranges."""
    r = g.rng
    cases = []
    for name in DAY_COUNT_NAMES:
        dc = day_counter(ql, name)
        for i in range(60):
            a = g.maturity() - r.randint(0, 4000)
            if name == "ACT_ACT_ICMA":
                months = r.choice([1, 3, 6, 12])
                rs = a
                re = rs + ql.Period(months, ql.Months)
                u = r.random()
                if u < 0.4:  # inside the reference period
                    d1 = rs + r.randint(0, re - rs)
                    d2 = d1 + r.randint(0, re - d1)
                elif u < 0.7:  # long first coupon: d1 before the reference period
                    d1 = rs - r.randint(1, 3 * (re - rs))
                    d2 = d1 + r.randint(0, re - d1)
                else:  # past the reference end
                    d1 = rs + r.randint(0, re - rs - 1)
                    d2 = re + r.randint(1, 5 * (re - rs))
            else:
                rs = re = None
                d1 = a
                u = r.random()
                if u < 0.3:
                    d2 = ql.Date.endOfMonth(d1 + r.randint(0, 800))
                elif u < 0.4:
                    d2 = d1
                else:
                    d2 = d1 + r.randint(1, 4000)
                if r.random() < 0.3:
                    d1 = ql.Date.endOfMonth(d1)
                    if d2 < d1:
                        d2 = d1
            if rs is None:
                yf = dc.yearFraction(d1, d2)
            else:
                yf = dc.yearFraction(d1, d2, rs, re)
            cases.append({
                "dayCount": name,
                "d1": d1.ISO(),
                "d2": d2.ISO(),
                "refStart": rs.ISO() if rs is not None else None,
                "refEnd": re.ISO() if re is not None else None,
                "yearFraction": yf,
            })
    # ACT/ACT-ICMA ranges reaching back more than 160 notional periods (bondmath's loop hands
    # over to QuantLib's plain recursion there)
    dc = day_counter(ql, "ACT_ACT_ICMA")
    for i in range(8):
        months = r.choice([1, 3])
        re = g.maturity()
        rs = re - ql.Period(months, ql.Months)
        d1 = rs - r.randint(100, 260) * months * 30
        d2 = rs + r.randint(0, re - rs)
        cases.append({"dayCount": "ACT_ACT_ICMA", "d1": d1.ISO(), "d2": d2.ISO(),
                      "refStart": rs.ISO(), "refEnd": re.ISO(),
                      "yearFraction": dc.yearFraction(d1, d2, rs, re)})
    return cases


def fixed_cases(ql):
    """Hand-picked edge cases, always present whatever the random draw."""
    D = ql.Date
    return [
        # (tag, issue, maturity, first, coupon, freq, dc, settle, yield)
        ("eom_feb29_icma", D(29, 2, 2020), D(31, 8, 2030), None, 0.04, 2, "ACT_ACT_ICMA",
         D(15, 11, 2023), 0.035),
        ("eom_aug31_30360", D(31, 8, 2020), D(31, 8, 2031), None, 0.05, 2, "THIRTY_360_US",
         D(28, 2, 2025), 0.045),
        ("eom_feb_30e360", D(28, 2, 2019), D(28, 2, 2029), None, 0.03, 4, "THIRTY_E_360",
         D(31, 5, 2024), 0.02),
        ("single_short_period", D(1, 3, 2024), D(15, 6, 2024), None, 0.06, 2, "ACT_ACT_ICMA",
         D(1, 4, 2024), 0.05),
        ("single_long_period", D(1, 3, 2024), D(15, 12, 2025), D(15, 12, 2025), 0.06, 2,
         "ACT_ACT_ICMA", D(1, 4, 2024), 0.05),
        ("long_first_isda", D(10, 1, 2021), D(15, 6, 2031), D(15, 12, 2021), 0.045, 2,
         "ACT_ACT_ISDA", D(20, 3, 2021), 0.03),
        ("settle_on_issue", D(15, 3, 2022), D(15, 3, 2052), None, 0.03, 2, "ACT_ACT_ICMA",
         D(15, 3, 2022), 0.04),
        ("settle_last_day", D(15, 3, 2022), D(15, 3, 2052), None, 0.03, 2, "ACT_365_FIXED",
         D(14, 3, 2052), 0.04),
        ("zero_coupon_icma_long", D(15, 3, 2022), D(15, 3, 2052), None, 0.0, 0, "ACT_ACT_ICMA",
         D(20, 7, 2023), 0.03),
        ("zero_coupon_negative", D(1, 2, 2020), D(1, 2, 2030), None, 0.0, 0, "ACT_360",
         D(3, 3, 2021), -0.006),
        ("monthly_30y_high", D(31, 1, 2024), D(31, 1, 2054), None, 0.07, 12, "ACT_360",
         D(29, 2, 2024), 0.95),
        ("zero_rate_coupon_bond", D(1, 6, 2020), D(1, 6, 2040), None, 0.0, 4, "THIRTY_360_US",
         D(17, 8, 2025), 0.02),
    ]


def generate(ql):
    g = Gen(ql, SEED)
    r = g.rng
    settle_kinds = ["random", "on_coupon", "before_coupon", "after_coupon", "issue",
                    "last_day", "first_period"]
    yield_kinds = ["normal", "normal", "normal", "negative", "high", "very_high", "zero"]
    specs = []
    for dcname in DAY_COUNT_NAMES:
        for freq in FREQUENCIES:
            for stub in ["regular", "short", "long", "long_on_grid"]:
                for _ in range(4 if stub != "long_on_grid" else 1):
                    specs.append((dcname, freq, stub))
        for _ in range(10):
            specs.append((dcname, 0, "zero"))
    cases, schedules = [], []
    for n, (dcname, freq, stub) in enumerate(specs):
        issue, maturity, first, coupon = g.terms(dcname, freq, stub)
        _, dates = make_bond(ql, issue, maturity, first, coupon, freq, day_counter(ql, dcname))
        skind, ykind = r.choice(settle_kinds), r.choice(yield_kinds)
        settle = g.settlement(skind, dates, issue, maturity)
        y = g.yld(ykind)
        tags = [dcname, "f%d" % freq, stub, "settle:" + skind, "yield:" + ykind]
        case, dates = price_case(ql, "r%03d" % n, tags, issue, maturity, first, coupon, freq,
                                 dcname, settle, y)
        cases.append(case)
        if freq != 0 and n % 3 == 0:
            schedules.append({"id": case["id"], "dates": [d.ISO() for d in dates]})
    for tag, issue, maturity, first, coupon, freq, dcname, settle, y in fixed_cases(ql):
        case, dates = price_case(ql, tag, [dcname, "f%d" % freq, "fixed"], issue, maturity,
                                 first, coupon, freq, dcname, settle, y)
        cases.append(case)
        if freq != 0:
            schedules.append({"id": tag, "dates": [d.ISO() for d in dates]})
    return {
        "generator": "test/bondref/gen_reference.py",
        "quantlib": ql.__version__,
        "seed": SEED,
        "cases": cases,
        "schedules": schedules,
        "dayCounts": day_count_cases(ql, g),
    }


def dump(ref):
    """One case per line: diffable, and far smaller than indented JSON."""
    lines = ["{"]
    keys = list(ref.keys())
    for i, k in enumerate(keys):
        v = ref[k]
        sep = "," if i + 1 < len(keys) else ""
        if isinstance(v, list):
            lines.append(" %s: [" % json.dumps(k))
            for j, item in enumerate(v):
                lines.append("  " + json.dumps(item, separators=(",", ":")) +
                             ("," if j + 1 < len(v) else ""))
            lines.append(" ]" + sep)
        else:
            lines.append(" %s: %s%s" % (json.dumps(k), json.dumps(v), sep))
    lines.append("}")
    return "\n".join(lines) + "\n"


def compare(a, b, path, diffs, rel=1e-12):
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            diffs.append("%s: %r vs %r" % (path, a, b))
        elif not (a == b or abs(a - b) <= rel * max(1.0, abs(a), abs(b))):
            diffs.append("%s: %r vs %r" % (path, a, b))
    elif isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            diffs.append("%s: keys %s vs %s" % (path, sorted(a), sorted(b)))
            return
        for k in a:
            compare(a[k], b[k], path + "." + k, diffs, rel)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append("%s: length %d vs %d" % (path, len(a), len(b)))
            return
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, "%s[%d]" % (path, i), diffs, rel)
    elif a != b:
        diffs.append("%s: %r vs %r" % (path, a, b))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default=DEFAULT_OUTPUT)
    ap.add_argument("--check", metavar="FILE",
                    help="regenerate and compare with FILE instead of writing")
    args = ap.parse_args()
    ql = load_quantlib()
    try:
        import scipy.optimize  # noqa: F401  (brent_yield)
    except ImportError:
        ql = None
    if ql is None:
        print("gen_reference: QuantLib-Python or SciPy not installed (Debian quantlib-python, "
              "python3-scipy)", file=sys.stderr)
        return 77 if args.check else 1
    ref = generate(ql)
    ncases = len(ref["cases"])
    if args.check:
        with open(args.check) as f:
            old = json.load(f)
        if old.get("quantlib") != ref["quantlib"]:
            print("gen_reference: note: %s was made with QuantLib %s, this is %s" %
                  (args.check, old.get("quantlib"), ref["quantlib"]))
        old.pop("quantlib", None)
        ref.pop("quantlib", None)
        diffs = []
        compare(old, ref, "$", diffs)
        for d in diffs[:20]:
            print("DIFF " + d)
        print("gen_reference: %d cases regenerated, %d differences from %s" %
              (ncases, len(diffs), args.check))
        return 1 if diffs else 0
    with open(args.output, "w") as f:
        f.write(dump(ref))
    print("gen_reference: wrote %d cases, %d schedules, %d day counts to %s" %
          (ncases, len(ref["schedules"]), len(ref["dayCounts"]), args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
