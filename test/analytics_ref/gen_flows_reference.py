#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Independent numpy/scipy reference for the stateless flow analytics of svc_portfolio.

Randomized cases for POST /analytics/twr (START_OF_DAY, END_OF_DAY, SPLIT, MODIFIED_DIETZ),
/analytics/xirr, /analytics/attribution (BRINSON_FACHLER, BHB) and /analytics/rebalance,
computed straight from the formulas of the shared ANALYTICS.md (and, for rebalancing, the
service's documented buy-only and cash-never-negative rules, portfolio.proto RebalancePlan)
with numpy and scipy -- scipy.optimize.brentq for XIRR, math.fsum for totals -- never by
porting the C code.  Each case holds the request body exactly as the REST API takes it and
the expected response fields, so test/integration/stateless_test.py only posts and compares.

    gen_flows_reference.py                  write test/analytics_ref/flows_reference.json
    gen_flows_reference.py --out FILE       write FILE
    gen_flows_reference.py --check FILE     regenerate in memory and compare with FILE:
                                            inputs identical, results equal to 1e-12
                                            relative; exit 0 on match, 1 on a difference, 77
                                            (meson's "skip") without numpy or scipy

The data come from a self-contained splitmix64 generator (not numpy's, whose streams may
change between versions), so the inputs are the same on every machine.  Random cases whose
result would hinge on a last-bit difference (a floor() argument within 1e-9 of an integer, a
drift within 1e-12 of a band, post-trade cash within 1e-6 of zero, an XIRR with more than one
root) are drawn again, so the comparison tests the conventions, not rounding luck.
"""

import argparse
import datetime as dt
import json
import math
import os
import sys

try:
    import numpy as np
    import scipy
    from scipy import optimize
except ImportError:  # pragma: no cover - the meson test skips
    print("gen_flows_reference.py: numpy and scipy are required (apt-get install python3-numpy "
          "python3-scipy)", file=sys.stderr)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
TIMINGS = ("START_OF_DAY", "END_OF_DAY", "SPLIT", "MODIFIED_DIETZ")


class Rng:
    """splitmix64 with Box-Muller normals: the same stream on every platform."""
    M64 = (1 << 64) - 1

    def __init__(self, seed):
        self.s = seed & self.M64

    def u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & self.M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M64
        return z ^ (z >> 31)

    def uniform(self, a=0.0, b=1.0):
        return a + (b - a) * (((self.u64() >> 11) + 0.5) / 9007199254740992.0)

    def int(self, a, b):
        """Uniform integer in [a, b]."""
        return a + self.u64() % (b - a + 1)

    def normal(self):
        u1, u2 = self.uniform(), self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def choice(self, seq):
        return seq[self.u64() % len(seq)]

    def shuffle(self, seq):
        for i in range(len(seq) - 1, 0, -1):
            j = self.u64() % (i + 1)
            seq[i], seq[j] = seq[j], seq[i]


def ordinal(s):
    return dt.date.fromisoformat(s).toordinal()


def iso(o):
    return dt.date.fromordinal(int(o)).isoformat()


class Fragile(Exception):
    """A random case too close to a decision boundary: draw another."""


# ---------------------------------------------------------------------------------------
# TWR (ANALYTICS.md "Time-weighted and money-weighted returns")

def twr_expected(values, flows, timing):
    dates = np.array([ordinal(v["date"]) for v in values])
    V = np.array([v["value"] for v in values], dtype=float)
    n = len(V)
    days = int(dates[-1] - dates[0])
    if timing == "MODIFIED_DIETZ":
        W = np.array([(dates[-1] - ordinal(f["date"])) / days for f in flows])
        C = np.array([f["amount"] for f in flows], dtype=float)
        den = V[0] + math.fsum(W * C)
        twr = (V[-1] - V[0] - math.fsum(C)) / den
        if not den > 0 or twr <= -1:
            raise Fragile("dietz")
        returns = None
    else:
        cf, inflow, outflow = np.zeros(n), np.zeros(n), np.zeros(n)
        for f in flows:
            i = int(np.nonzero(dates == ordinal(f["date"]))[0][0])
            cf[i] += f["amount"]
            if f["amount"] > 0:
                inflow[i] += f["amount"]
            else:
                outflow[i] -= f["amount"]
        if timing == "START_OF_DAY":
            num, den = V[1:], V[:-1] + cf[1:]
        elif timing == "END_OF_DAY":
            num, den = V[1:] - cf[1:], V[:-1]
        else:
            num, den = V[1:] + outflow[1:], V[:-1] + inflow[1:]
        if not (np.all(den > 0) and np.all(num >= 0)):
            raise Fragile("denominator")
        r = num / den - 1
        twr = float(np.prod(1 + r) - 1)
        returns = [float(x) for x in r]  # dated values[1:].date
    try:
        ann = (1 + twr) ** (365 / days) - 1
        ann252 = (1 + twr) ** (252 / (n - 1)) - 1
    except OverflowError:
        raise Fragile("annualized overflow")
    if not (math.isfinite(ann) and math.isfinite(ann252)):
        raise Fragile("annualized overflow")
    out = {"twr": twr, "annualizedTwr": ann, "annualizedTwr252": ann252}
    if returns is not None:
        out["dailyReturns"] = returns
    return out


def twr_case(name, values, flows, timings):
    """One request body (without flowTiming) and the expected result for each timing
    ("default" = flowTiming absent, which is START_OF_DAY)."""
    return {"name": name, "request": {"values": values, "flows": flows},
            "expected": {t: twr_expected(values, flows, "START_OF_DAY" if t == "default" else t)
                         for t in timings}}


def twr_random(rng, idx):
    n = rng.choice([2, 3, 5, 20, 60, 120, 250])
    start = dt.date(2010, 1, 1).toordinal() + rng.int(0, 5000)
    ords = [start]
    for _ in range(n - 1):
        ords.append(ords[-1] + rng.choice([1, 1, 1, 1, 3, 2, 4, 7]))
    v = round(10 ** rng.uniform(3, 7), 2)
    values = [{"date": iso(ords[0]), "value": v}]
    flows = []
    flow_p = rng.uniform(0.03, 0.3)
    for t in range(1, n):
        cf = 0.0
        if rng.uniform() < flow_p:
            for _ in range(rng.int(1, 3)):
                a = round(v * rng.uniform(-0.3, 0.4), 2)
                if a == 0:
                    continue
                flows.append({"date": iso(ords[t]), "amount": a})
                cf += a
        v = round((v + cf) * (1 + 0.0003 + 0.012 * rng.normal()), 2)
        if v <= 0:
            raise Fragile("value")
        values.append({"date": iso(ords[t]), "value": v})
    if rng.uniform() < 0.4:
        rng.shuffle(flows)
    cases = [twr_case("random_%02d" % idx, values, flows, TIMINGS)]
    # Modified Dietz also takes flows between valuation dates.
    if n > 2 and ords[-1] - ords[0] > 2 and rng.uniform() < 0.5:
        dietz_flows = [dict(f) for f in flows]
        for _ in range(rng.int(1, 4)):
            d = rng.int(ords[0] + 1, ords[-1])
            dietz_flows.append({"date": iso(d), "amount": round(values[0]["value"] *
                                                                rng.uniform(-0.1, 0.2), 2)})
        rng.shuffle(dietz_flows)
        cases.append(twr_case("random_%02d_dietz_any_date" % idx, values, dietz_flows,
                              ("MODIFIED_DIETZ",)))
    return cases


def twr_cases():
    hand_values = [{"date": "2024-01-02", "value": 1000.0}, {"date": "2024-01-03", "value": 1010.0},
                   {"date": "2024-01-04", "value": 1525.0}, {"date": "2024-01-05", "value": 1320.0},
                   {"date": "2024-01-08", "value": 1340.0}]
    hand_flows = [{"date": "2024-01-04", "amount": 500.0}, {"date": "2024-01-05", "amount": -200.0},
                  {"date": "2024-01-08", "amount": 300.0}, {"date": "2024-01-08", "amount": -310.0}]
    cases = [twr_case("hand", hand_values, hand_flows, ("default",) + TIMINGS),
             twr_case("no_flows", hand_values, [], TIMINGS)]
    # Everything withdrawn at the end of the last day: the last value is 0.
    out_values = [{"date": "2023-03-01", "value": 5000.0}, {"date": "2023-03-02", "value": 5100.0},
                  {"date": "2023-03-03", "value": 0.0}]
    out_flows = [{"date": "2023-03-03", "amount": -5150.0}]
    cases.append(twr_case("liquidated_end", out_values, out_flows, ("END_OF_DAY", "SPLIT")))
    rng = Rng(0x7357_0001)
    idx = 0
    while idx < 24:
        try:
            cases += twr_random(rng, idx)
        except Fragile:
            continue
        idx += 1
    return cases


# ---------------------------------------------------------------------------------------
# XIRR: sum CF_i / (1 + r)^((d_i - d_0) / 365) = 0, root in (-0.99, 10)

XIRR_LO, XIRR_HI = -0.99, 10.0


def xirr_expected(flows):
    ords = np.array([ordinal(f["date"]) for f in flows], dtype=float)
    a = np.array([f["amount"] for f in flows], dtype=float)
    t = (ords - ords.min()) / 365.0
    if not (np.any(a > 0) and np.any(a < 0)):
        return {"error": "NO_SIGN_CHANGE"}

    def npv(r):
        return float(np.sum(a / (1.0 + r) ** t))
    # A fine scan for sign changes: exactly one root is a clean case; none is NO_ROOT; more
    # than one is ambiguous (the service takes the one nearest 0) and is not used here.
    grid = np.expm1(np.linspace(math.log1p(XIRR_LO), math.log1p(XIRR_HI), 20001))
    with np.errstate(over="ignore", invalid="ignore"):
        vals = np.array([npv(r) for r in grid])
    if not np.all(np.isfinite(vals)):
        raise Fragile("npv overflow")
    s = np.sign(vals)
    changes = np.nonzero(s[:-1] * s[1:] < 0)[0]
    if np.any(s == 0):
        raise Fragile("root on the grid")
    if len(changes) == 0:
        return {"error": "NO_ROOT"}
    if len(changes) > 1:
        raise Fragile("several roots")
    i = int(changes[0])
    rate = optimize.brentq(npv, grid[i], grid[i + 1], xtol=1e-15, rtol=1e-15, maxiter=500)
    # Conditioning: a root where the NPV is nearly flat would make 1e-9 a test of luck.
    # The NPV carries rounding errors of about 1e-15 x sum |CF|; divided by its slope
    # that is the uncertainty of the root, which must stay far below 1e-9.
    h = 1e-6 * max(1.0, abs(rate))
    slope = abs(npv(rate + h) - npv(rate - h)) / (2 * h)
    if 1e-15 * float(np.sum(np.abs(a))) / slope > 1e-11:
        raise Fragile("flat root")
    return {"rate": rate}


def xirr_random(rng, idx):
    m = rng.choice([2, 3, 4, 6, 12, 24, 40])
    start = dt.date(2005, 1, 1).toordinal() + rng.int(0, 6000)
    span = rng.int(20, 15 * 365)
    ords = sorted(set([start] + [start + rng.int(1, span) for _ in range(m - 1)]))
    if len(ords) < 2:
        raise Fragile("dates")
    # An investment, then contributions (negative) and withdrawals (positive), then the
    # final value: what is invested, grown or shrunk at some annual rate.
    flows = []
    invested = 0.0
    rate = rng.uniform(-0.3, 0.6) if span < 3 * 365 else rng.uniform(-0.15, 0.3)
    for j, o in enumerate(ords):
        if j == 0:
            a = -round(10 ** rng.uniform(2, 6), 2)
        elif j == len(ords) - 1:
            a = round(max(invested, 1.0) * (1 + rate) ** ((o - ords[0]) / 365.0), 2)
        else:
            a = round(invested * rng.uniform(-0.2, 0.12), 2)
        if a == 0:
            a = -1.0
        invested -= a
        flows.append({"date": iso(o), "amount": a})
    if rng.uniform() < 0.4:
        rng.shuffle(flows)
    exp = xirr_expected(flows)
    if "error" in exp:
        raise Fragile("random cases are for rates")
    return {"name": "random_%02d" % idx, "request": {"flows": flows}, "expected": exp}


def xirr_cases():
    monthly = [{"date": "2022-01-03", "amount": -5000.0}]
    monthly += [{"date": dt.date(2022 + (m // 12), m % 12 + 1, 3).isoformat(), "amount": -500.0}
                for m in range(1, 24)]
    monthly += [{"date": "2023-12-29", "amount": 19876.54}]
    hand = [
        # Microsoft's XIRR example (documented result 0.373362535).
        ("excel_doc", [("2008-01-01", -10000.0), ("2008-03-01", 2750.0), ("2008-10-30", 4250.0),
                       ("2009-02-15", 3250.0), ("2009-04-01", 2750.0)]),
        ("loss", [("2021-01-04", -1000.0), ("2023-01-04", 900.0)]),
        ("unsorted", [("2023-06-30", 3000.0), ("2022-01-10", -10000.0), ("2024-02-01", 9100.0),
                      ("2022-09-15", -2500.0)]),
        ("same_day", [("2021-01-01", -100.0), ("2021-01-01", -50.0), ("2022-01-01", 170.0)]),
        ("rate_8", [("2021-01-01", -100.0), ("2022-01-01", 900.0)]),
        ("all_negative", [("2021-01-01", -100.0), ("2022-01-01", -50.0)]),
        ("all_positive_and_zero", [("2021-01-01", 0.0), ("2022-01-01", 50.0)]),
        ("too_high", [("2021-01-01", -100.0), ("2022-01-01", 2000.0)]),
        ("near_total_loss", [("2021-01-01", -100.0), ("2021-01-31", 0.001)]),
    ]
    cases = [{"name": name, "request": {"flows": [{"date": d, "amount": a} for d, a in fl]}}
             for name, fl in hand]
    cases.insert(2, {"name": "monthly_savings", "request": {"flows": monthly}})
    for c in cases:
        c["expected"] = xirr_expected(c["request"]["flows"])
    # Excel documents 0.373362535 (its own solver stops within about 2e-9).
    assert abs(cases[0]["expected"]["rate"] - 0.373362535) < 2e-9
    rng = Rng(0x7357_0002)
    idx = 0
    while idx < 40:
        try:
            cases.append(xirr_random(rng, idx))
        except Fragile:
            continue
        idx += 1
    return cases


# ---------------------------------------------------------------------------------------
# Brinson attribution (single period)

def attribution_expected(classes, model):
    wp = np.array([c["portfolioWeight"] for c in classes], dtype=float)
    wb = np.array([c["benchmarkWeight"] for c in classes], dtype=float)
    rp = np.array([c["portfolioReturn"] for c in classes], dtype=float)
    rb = np.array([c["benchmarkReturn"] for c in classes], dtype=float)
    Rp, Rb = math.fsum(wp * rp), math.fsum(wb * rb)
    alloc = (wp - wb) * (rb - Rb) if model == "BRINSON_FACHLER" else (wp - wb) * rb
    sel = wb * (rp - rb)
    inter = (wp - wb) * (rp - rb)
    ta, ts, ti = math.fsum(alloc), math.fsum(sel), math.fsum(inter)
    assert abs(ta + ts + ti - (Rp - Rb)) < 1e-14
    return {"model": model, "portfolioReturn": Rp, "benchmarkReturn": Rb,
            "activeReturn": Rp - Rb,
            "classes": [{"name": c["name"], "allocation": float(alloc[i]),
                         "selection": float(sel[i]), "interaction": float(inter[i])}
                        for i, c in enumerate(classes)],
            "totalAllocation": ta, "totalSelection": ts, "totalInteraction": ti}


def normalized(raw):
    s = math.fsum(raw)
    w = [x / s for x in raw]
    assert abs(math.fsum(w) - 1) < 1e-12
    return w


def attribution_random(rng, idx):
    k = rng.choice([1, 2, 3, 4, 5, 8, 12])
    names = ["EQUITY", "FIXED_INCOME", "CASH", "US EQUITY", "EM", "REITs", "Gold", "HY",
             "IG", "Infra", "PE", "Crypto"]
    wp = normalized([rng.uniform(0.01, 1.0) for _ in range(k)])
    if k > 2 and rng.uniform() < 0.2:  # an overdraft: a negative cash weight
        wp = normalized([rng.uniform(0.2, 1.0) for _ in range(k - 1)] + [-0.15])
    raw_b = [rng.uniform(0.01, 1.0) if (j == 0 or rng.uniform() < 0.75) else 0.0
             for j in range(k)]
    wb = normalized(raw_b)
    classes = []
    for j in range(k):
        rb = rng.uniform(-0.4, 0.6)
        classes.append({"name": names[j], "portfolioWeight": wp[j], "benchmarkWeight": wb[j],
                        "portfolioReturn": rb + rng.uniform(-0.15, 0.15)
                        if rb > -0.85 else rb, "benchmarkReturn": rb})
    out = []
    for model in ("BRINSON_FACHLER", "BHB"):
        out.append({"name": "random_%02d_%s" % (idx, model.lower()),
                    "request": {"model": model, "classes": classes},
                    "expected": attribution_expected(classes, model)})
    return out


def attribution_cases():
    simple = [{"name": "EQUITY", "portfolioWeight": 0.70, "benchmarkWeight": 0.60,
               "portfolioReturn": 0.125, "benchmarkReturn": 0.100},
              {"name": "FIXED_INCOME", "portfolioWeight": 0.30, "benchmarkWeight": 0.40,
               "portfolioReturn": 0.031, "benchmarkReturn": 0.035}]
    cases = [{"name": "BF_SIMPLE", "request": {"model": "BRINSON_FACHLER", "classes": simple},
              "expected": attribution_expected(simple, "BRINSON_FACHLER")},
             {"name": "BF_SIMPLE_default_model", "request": {"classes": simple},
              "expected": attribution_expected(simple, "BRINSON_FACHLER")},
             {"name": "BHB_SIMPLE", "request": {"model": "BHB", "classes": simple},
              "expected": attribution_expected(simple, "BHB")}]
    # The worked example's published figures (ANALYTICS.md, percent, rounded to 0.01).
    bf = cases[0]["expected"]
    for key, pct in (("portfolioReturn", 9.68), ("benchmarkReturn", 7.40),
                     ("activeReturn", 2.28)):
        assert abs(bf[key] * 100 - pct) < 1e-9, key
    for c, (a, s, i) in zip(bf["classes"], [(0.26, 1.50, 0.25), (0.39, -0.16, 0.04)]):
        assert abs(c["allocation"] * 100 - a) < 1e-9
        assert abs(c["selection"] * 100 - s) < 1e-9
        assert abs(c["interaction"] * 100 - i) < 1e-9
    rng = Rng(0x7357_0003)
    for idx in range(30):
        cases += attribution_random(rng, idx)
    return cases


# ---------------------------------------------------------------------------------------
# Rebalancing: ANALYTICS.md's drift, 5/25 bands and whole lots, plus the service's rules
# (portfolio.proto RebalancePositionResult.trade): with cashToInvest nothing is sold; when
# the buys cost more than cash + cashToInvest + the sells' proceeds every buy is scaled by
# available / cost and rounded down to whole lots, then cut one lot at a time from the last
# position while cash is still below zero.

def check_floor_arg(x):
    if abs(x - round(x)) < 1e-9 * max(1.0, abs(x)):
        raise Fragile("floor argument %r" % x)


def rebalance_expected(req, strict):
    pos = req.get("positions", [])
    q = [float(p.get("quantity", 0.0)) for p in pos]
    price = [float(p["price"]) for p in pos]
    lot = [float(p.get("lotSize", 0.0)) or 1.0 for p in pos]
    tgt = [float(p.get("target", 0.0)) for p in pos]
    cash, cti = float(req.get("cash", 0.0)), float(req.get("cashToInvest", 0.0))
    band_abs, band_rel = req.get("bandAbs", 0.05), req.get("bandRel", 0.25)
    mode = req.get("mode", "FULL")
    k = len(pos)
    V = math.fsum([q[i] * price[i] for i in range(k)] + [cash, cti])
    w = [q[i] * price[i] / V for i in range(k)]
    drift = [w[i] - tgt[i] for i in range(k)]
    rel, breach, tq, trade = [], [], [], []
    for i in range(k):
        if tgt[i] > 0:
            rel.append(drift[i] / tgt[i])
            b = abs(drift[i]) > band_abs or abs(rel[i]) > band_rel
            if strict and (abs(abs(drift[i]) - band_abs) < 1e-12 or
                           abs(abs(rel[i]) - band_rel) < 1e-12):
                raise Fragile("band edge")
        else:
            rel.append(0.0)            # undefined: reported as 0
            b = abs(drift[i]) > band_abs or q[i] > 0
        breach.append(b)
        x = tgt[i] * V / (price[i] * lot[i])
        if strict and x != 0:
            check_floor_arg(x)
        tq.append(math.floor(x) * lot[i])
        t = tq[i] - q[i] if (mode == "FULL" or b) else 0.0
        if cti > 0 and t < 0:
            t = 0.0
        trade.append(t)

    def cash_after():
        return math.fsum([cash, cti] + [-trade[i] * price[i] for i in range(k)])
    pc = cash_after()
    if strict and abs(pc) < 1e-6 * V and pc != 0:
        raise Fragile("post-trade cash near zero")
    if pc < 0:
        cost = math.fsum([trade[i] * price[i] for i in range(k) if trade[i] > 0])
        if cost > 0:
            avail = pc + cost
            s = avail / cost if avail > 0 else 0.0
            for i in range(k):
                if trade[i] > 0:
                    x = s * trade[i] / lot[i]
                    if strict:
                        check_floor_arg(x)
                    trade[i] = math.floor(x) * lot[i]
            pc = cash_after()
        for i in reversed(range(k)):
            while pc < 0 and trade[i] > 0:
                trade[i] = trade[i] - lot[i] if trade[i] > lot[i] else 0.0
                pc = cash_after()
            if pc >= 0:
                break
    return {"totalValue": V,
            "positions": [{"id": pos[i]["id"], "currentWeight": w[i], "driftAbs": drift[i],
                           "driftRel": rel[i], "breach": breach[i], "targetQuantity": tq[i],
                           "trade": trade[i], "notional": trade[i] * price[i]}
                          for i in range(k)],
            "postTradeCash": pc,
            "postTradeWeights": {pos[i]["id"]: (q[i] + trade[i]) * price[i] / V
                                 for i in range(k)}}


def rebalance_random(rng, idx):
    k = rng.choice([1, 2, 3, 4, 6, 8, 12])
    total_target = rng.choice([1.0, 0.95, 0.9, 0.8, 0.6])
    raw = [rng.uniform(0.05, 1.0) if rng.uniform() < 0.85 else 0.0 for _ in range(k)]
    if sum(raw) == 0:
        raw[0] = 1.0
    s = math.fsum(raw)
    targets = [x / s * total_target * (1 - 1e-12) for x in raw]
    positions = []
    for i in range(k):
        kind = rng.choice(["share", "share", "share", "bond"])
        if kind == "bond":
            # A bond: price per unit of face (dirty / 100), lots of face.
            price = rng.uniform(0.85, 1.15)
            lot = rng.choice([1.0, 1000.0, 5000.0])
            qty = rng.choice([0.0, lot * rng.int(1, 400)])
        else:
            price = round(rng.uniform(1.0, 600.0), 2)
            lot = rng.choice([0.0, 1.0, 1.0, 10.0, 100.0, 0.5])
            qty = rng.choice([0.0, float(rng.int(1, 5000)), round(rng.uniform(0, 3000), 3)])
        p = {"id": "P%02d%s" % (i, rng.choice(["", "-x", " y", ".z"])), "quantity": qty,
             "price": price, "target": targets[i]}
        if lot or rng.uniform() < 0.5:
            p["lotSize"] = lot
        positions.append(p)
    req = {"positions": positions, "cash": round(10 ** rng.uniform(2, 6), 2),
           "mode": rng.choice(["FULL", "BAND"])}
    if rng.uniform() < 0.35:
        req["cashToInvest"] = round(10 ** rng.uniform(2, 6), 2)
    if rng.uniform() < 0.3:
        req["bandAbs"] = rng.uniform(0.01, 0.1)
        req["bandRel"] = rng.uniform(0.1, 0.6)
    return {"name": "random_%02d_%s" % (idx, req["mode"].lower()), "request": req,
            "expected": rebalance_expected(req, True)}


def rebalance_cases():
    book = [{"id": "AAA", "quantity": 1200.0, "price": 51.37, "lotSize": 1.0, "target": 0.30},
            {"id": "BBB", "quantity": 300.0, "price": 88.10, "lotSize": 1.0, "target": 0.15},
            {"id": "EUX", "quantity": 900.0, "price": 40.05, "lotSize": 10.0, "target": 0.20},
            {"id": "BOND", "quantity": 40000.0, "price": 1.0125, "lotSize": 1000.0,
             "target": 0.25},
            {"id": "OLD", "quantity": 50.0, "price": 12.0, "lotSize": 1.0, "target": 0.0}]
    tight = [{"id": "AAA", "quantity": 540.0, "price": 100.0, "lotSize": 1.0, "target": 0.50},
             {"id": "BBB", "quantity": 360.0, "price": 100.0, "lotSize": 1.0, "target": 0.50}]
    hand = [
        ("book_full", {"positions": book, "cash": 15250.0, "mode": "FULL"}),
        ("book_full_default_mode", {"positions": book, "cash": 15250.0}),
        ("book_band", {"positions": book, "cash": 15250.0, "mode": "BAND"}),
        ("book_band_wide", {"positions": book, "cash": 15250.0, "mode": "BAND",
                            "bandAbs": 0.10, "bandRel": 0.50}),
        ("book_cash_to_invest", {"positions": book, "cash": 15250.0, "cashToInvest": 10000.0,
                                 "mode": "FULL"}),
        # Unbreached AAA sits above its target while BBB breaches low: buying BBB to its
        # full target needs 4000 more than the cash, so the buy is scaled to fit.
        ("tight_band_scaled", {"positions": tight, "cash": 10000.0, "mode": "BAND"}),
        # New money, overweight AAA is not sold: buys scaled to the cash there is.
        ("tight_cash_to_invest", {"positions": tight, "cash": 0.0, "cashToInvest": 5000.0}),
        ("cash_only", {"positions": [], "cash": 1000.0}),
        ("new_position", {"positions": [{"id": "NEW", "quantity": 0.0, "price": 25.5,
                                         "target": 0.4}], "cash": 9999.0}),
    ]
    cases = [{"name": n, "request": r, "expected": rebalance_expected(r, False)} for n, r in hand]
    t = cases[5]["expected"]
    assert t["positions"][1]["trade"] > 0 and t["postTradeCash"] >= 0
    assert t["positions"][1]["trade"] < t["positions"][1]["targetQuantity"] - 360.0
    rng = Rng(0x7357_0004)
    idx = 0
    while idx < 40:
        try:
            cases.append(rebalance_random(rng, idx))
        except Fragile:
            continue
        idx += 1
    return cases


# ---------------------------------------------------------------------------------------
# Assembly, JSON and --check

def build():
    return {
        "meta": {
            "generator": "test/analytics_ref/gen_flows_reference.py",
            "numpy": np.__version__, "scipy": scipy.__version__,
            "conventions": "shared ANALYTICS.md; TWR annualized over calendar days/365 and "
                           "252/returns; XIRR actual/365 root in (-0.99, 10); rebalancing "
                           "per portfolio.proto RebalancePlan (buy-only with cashToInvest, "
                           "buys scaled to whole lots so cash never goes negative, driftRel "
                           "0 for target 0)",
            "tolerances": "returns, weights, values 1e-12 (money relative to the total "
                          "value); annualized 1e-9 relative; XIRR 1e-9; attribution effects "
                          "sum to the active return within 1e-12",
        },
        "twr": twr_cases(),
        "xirr": xirr_cases(),
        "attribution": attribution_cases(),
        "rebalance": rebalance_cases(),
    }


def plain(x):
    if isinstance(x, np.ndarray):
        return [plain(v) for v in x.tolist()]
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        assert math.isfinite(x), "non-finite number in the reference"
        return x
    return x


def dump(x, indent=0):
    pad = " " * indent
    if isinstance(x, dict):
        if not x:
            return "{}"
        if all(not isinstance(v, (dict, list)) for v in x.values()) and len(x) <= 8:
            return "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in x.items()) + "}"
        items = [f'{pad} {json.dumps(k)}: {dump(v, indent + 1)}' for k, v in x.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(x, list):
        if all(not isinstance(v, (dict, list)) for v in x):
            return "[" + ", ".join(json.dumps(v) for v in x) + "]"
        return "[\n" + ",\n".join(pad + " " + dump(v, indent + 1) for v in x) + "\n" + pad + "]"
    return json.dumps(x)


def compare(a, b, path, errors, inputs):
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            errors.append(f"{path}: keys differ: {sorted(set(a) ^ set(b))}")
            return
        for k in a:
            if k in ("numpy", "scipy"):
                continue
            compare(a[k], b[k], f"{path}.{k}", errors, inputs or k == "request")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            errors.append(f"{path}: length {len(a)} != {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, f"{path}[{i}]", errors, inputs)
    elif isinstance(a, float) and isinstance(b, (float, int)) and not isinstance(b, bool):
        if a != b and (inputs or abs(a - b) > 1e-12 * max(abs(a), abs(b)) + 1e-300):
            errors.append(f"{path}: {a!r} != {b!r}")
    elif a != b:
        errors.append(f"{path}: {a!r} != {b!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "flows_reference.json"))
    ap.add_argument("--check", metavar="FILE")
    args = ap.parse_args()
    text = dump(plain(build())) + "\n"
    if args.check:
        with open(args.check) as f:
            committed = json.load(f)
        errors = []
        compare(json.loads(text), committed, "$", errors, False)
        if errors:
            print(f"{args.check} differs from a fresh numpy {np.__version__} / scipy "
                  f"{scipy.__version__} run ({len(errors)} differences):", file=sys.stderr)
            for e in errors[:40]:
                print("  " + e, file=sys.stderr)
            return 1
        print(f"{args.check}: matches (numpy {np.__version__}, scipy {scipy.__version__})")
        return 0
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
