#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Independent numpy/scipy reference for the analytics library (lib/analytics).

Builds a deterministic multi-year dataset (a benchmark and five securities with dividends,
different holiday calendars, a late listing with a trading halt, a split-adjusted history)
and computes every metric of the shared ANALYTICS.md straight from its formulas with numpy
and scipy -- np.quantile's methods, np.cov/np.corrcoef, scipy.stats.skew/kurtosis/linregress,
scipy.stats.norm, scipy.optimize.brentq -- never by porting the C code.  It also writes
reference cases for TWR, XIRR, Brinson attribution and rebalancing.

    gen_reference.py                   write test/analytics_ref/reference.json
    gen_reference.py --out FILE        write FILE
    gen_reference.py --check FILE      regenerate in memory and compare with FILE: inputs must
                                       be identical, results equal to 1e-12 relative (room for
                                       last-digit differences between numpy/scipy versions);
                                       exit 0 on match, 1 on a difference, 77 (meson's "skip")
                                       without numpy or scipy

The data come from a self-contained splitmix64 generator (not numpy's, whose streams may
change between versions), and prices are rounded to cents, so the inputs are the same on
every machine.
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
    from scipy import optimize, special, stats
except ImportError:  # pragma: no cover - the meson test skips
    print("gen_reference.py: numpy and scipy are required (apt-get install python3-numpy "
          "python3-scipy)", file=sys.stderr)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
A = 252
RF_ANNUAL = 0.02
RF_D = (1 + RF_ANNUAL) ** (1 / 252) - 1
CONFIDENCES = (0.95, 0.99)
# p = 1 - confidence as the decimal number it names (0.95 -> 0.05), which is what
# numpy.percentile(x, 5) uses.
P_OF = {0.95: 0.05, 0.99: 0.01}
START = dt.date(2021, 1, 4)
END = dt.date(2024, 12, 31)


# ---------------------------------------------------------------------------------------
# Deterministic random numbers (splitmix64, Box-Muller)

class Rng:
    M64 = (1 << 64) - 1

    def __init__(self, seed):
        self.s = seed & self.M64

    def u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & self.M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M64
        return z ^ (z >> 31)

    def uniform(self):
        return ((self.u64() >> 11) + 0.5) / 9007199254740992.0

    def normal(self):
        u1, u2 = self.uniform(), self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


# ---------------------------------------------------------------------------------------
# Calendars

def nth_weekday(year, month, weekday, n):
    d = dt.date(year, month, 1)
    d += dt.timedelta(days=(weekday - d.weekday()) % 7)
    return d + dt.timedelta(weeks=n - 1)


def last_weekday(year, month, weekday):
    d = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
    return d - dt.timedelta(days=(d.weekday() - weekday) % 7)


def observed(d):
    if d.weekday() == 5:
        return d - dt.timedelta(days=1)
    if d.weekday() == 6:
        return d + dt.timedelta(days=1)
    return d


GOOD_FRIDAY = {2021: dt.date(2021, 4, 2), 2022: dt.date(2022, 4, 15),
               2023: dt.date(2023, 4, 7), 2024: dt.date(2024, 3, 29)}


def us_holidays(year):
    return {observed(dt.date(year, 1, 1)), nth_weekday(year, 1, 0, 3), nth_weekday(year, 2, 0, 3),
            GOOD_FRIDAY[year], last_weekday(year, 5, 0), observed(dt.date(year, 7, 4)),
            nth_weekday(year, 9, 0, 1), nth_weekday(year, 11, 3, 4),
            observed(dt.date(year, 12, 25))}


def eu_holidays(year):
    gf = GOOD_FRIDAY[year]
    return {dt.date(year, 1, 1), gf, gf + dt.timedelta(days=3), dt.date(year, 5, 1),
            dt.date(year, 12, 25), dt.date(year, 12, 26)}


def weekdays(start, end):
    d, out = start, []
    while d <= end:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


ALL_DAYS = weekdays(START, END)
US_CAL = [d for d in ALL_DAYS if d not in us_holidays(d.year)]
EU_CAL = [d for d in ALL_DAYS if d not in eu_holidays(d.year)]


def first_trading_on_or_after(cal, d):
    for c in cal:
        if c >= d:
            return c
    raise ValueError(d)


def quarterly_ex_dates(cal, months, day):
    return [first_trading_on_or_after(cal, dt.date(y, m, day))
            for y in range(START.year, END.year + 1) for m in months
            if dt.date(y, m, day) > START and dt.date(y, m, day) <= END]


# ---------------------------------------------------------------------------------------
# The dataset

def build_dataset():
    rng = Rng(20240611)
    market = {d: 0.00035 + 0.0105 * rng.normal() for d in ALL_DAYS}

    def path(name, cal, p0, beta, vol, drift, dividends, tail=0.02, regime=None, decimals=2):
        """Closes on |cal| from a one-factor model with fat tails; on an ex-date the close
        drops by the dividend.  |regime|: (from_date, extra daily drift)."""
        r_seed = Rng(sum(map(ord, name)) * 7919)
        divs = dict(dividends)
        closes, p = [], p0
        for d in ALL_DAYS:
            eps = r_seed.normal()
            if r_seed.uniform() < tail:
                eps *= 4.0
            mu = drift + (regime[1] if regime and d >= regime[0] else 0.0)
            p = p * (1.0 + mu + beta * market[d] + vol * eps)
            if d in cal:
                if d in divs and closes:
                    p -= divs[d]
                closes.append((d, round(p, decimals)))
        return closes

    series = {}
    # Benchmark: a price index with quarterly index dividends, US calendar.
    bmk_divs = [(d, 9.5) for d in quarterly_ex_dates(US_CAL, (3, 6, 9, 12), 17)]
    series["BMK"] = dict(prices=path("BMK", set(US_CAL), 3700.0, 1.0, 0.002, 0.0, bmk_divs),
                         dividends=bmk_divs, calendar="US",
                         note="benchmark index, quarterly index dividends")
    # AAA: steady dividend payer, US calendar.
    aaa_divs = [(d, 0.41) for d in quarterly_ex_dates(US_CAL, (2, 5, 8, 11), 10)]
    series["AAA"] = dict(prices=path("AAA", set(US_CAL), 48.20, 0.85, 0.009, 0.0001, aaa_divs),
                         dividends=aaa_divs, calendar="US",
                         note="quarterly dividends")
    # BBB: volatile, no dividends, falls from mid-2023 and never recovers.
    series["BBB"] = dict(prices=path("BBB", set(US_CAL), 131.0, 1.35, 0.021, 0.0003, [],
                                     tail=0.04, regime=(dt.date(2023, 6, 1), -0.0035)),
                         dividends=[], calendar="US",
                         note="no dividends, fat tails, unrecovered drawdown")
    # EUX: European calendar (trades on US holidays, closed on European ones); one ex-date
    # on US Thanksgiving 2023, so aligned with BMK it counts on the next common date.
    eux_divs = [(dt.date(2021, 5, 12), 1.10), (dt.date(2022, 5, 11), 1.15),
                (dt.date(2023, 11, 23), 1.20), (dt.date(2024, 5, 15), 1.25)]
    series["EUX"] = dict(prices=path("EUX", set(EU_CAL), 36.75, 0.7, 0.012, 0.0002, eux_divs),
                         dividends=eux_divs, calendar="EU",
                         note="European holidays; a dividend ex on a US holiday")
    # SPLT: a 4:1 split on 2022-08-25, history split-adjusted as the equity service stores it
    # after POST /splits: closes and dividends before the ex-date divided by 4 (the raw
    # pre-split closes were 4x these, the raw pre-split dividend 1.00 a share).
    split_day = dt.date(2022, 8, 25)
    splt_divs = [(d, 0.25 if d < split_day else 0.26)
                 for d in quarterly_ex_dates(US_CAL, (1, 4, 7, 10), 20)]
    series["SPLT"] = dict(prices=path("SPLT", set(US_CAL), 103.0, 1.1, 0.014, 0.0002, splt_divs),
                          dividends=splt_divs, calendar="US",
                          split={"ex_date": split_day.isoformat(), "ratio": 4.0},
                          note="split-adjusted history (4:1 on 2022-08-25)")
    # IPO: listed 2022-06-15, US calendar, a five-day trading halt in March 2023 with a
    # dividend going ex during it (it counts on the first close after the halt).
    halt = set(weekdays(dt.date(2023, 3, 6), dt.date(2023, 3, 10)))
    ipo_cal = set(d for d in US_CAL if d >= dt.date(2022, 6, 15) and d not in halt)
    ipo_divs = [(dt.date(2022, 12, 14), 0.30), (dt.date(2023, 3, 8), 0.30),
                (dt.date(2023, 9, 13), 0.32), (dt.date(2024, 3, 13), 0.32),
                (dt.date(2024, 9, 11), 0.34)]
    series["IPO"] = dict(prices=path("IPO", ipo_cal, 22.0, 1.2, 0.018, 0.0004, ipo_divs),
                         dividends=ipo_divs, calendar="US from 2022-06-15, halt 2023-03-06..10",
                         note="late listing, trading halt with a dividend inside it")
    return series


# ---------------------------------------------------------------------------------------
# Series construction and alignment (from ANALYTICS.md)

def to_arrays(s):
    dates = np.array([d.toordinal() for d, _ in s["prices"]], dtype=np.int64)
    closes = np.array([c for _, c in s["prices"]], dtype=float)
    return dates, closes


def aligned(series_list, basis):
    """Intersection of the dates, closes on it, each dividend attached to the first common
    date on or after its ex-date (none if that is the base date or beyond the end), and
    returns recomputed on the common dates."""
    arrays = [to_arrays(s) for s in series_list]
    common = arrays[0][0]
    for dates, _ in arrays[1:]:
        common = np.intersect1d(common, dates)
    out = []
    for (dates, closes), s in zip(arrays, series_list):
        c = closes[np.searchsorted(dates, common)]
        div = np.zeros(len(common))
        for d, amount in s["dividends"]:
            i = np.searchsorted(common, d.toordinal(), side="left")
            if 0 < i < len(common):
                div[i] += amount
        if basis == "PRICE":
            r = c[1:] / c[:-1] - 1
        else:
            r = (c[1:] + div[1:]) / c[:-1] - 1
        out.append((c, div, r))
    return common, out


# ---------------------------------------------------------------------------------------
# Metrics (from ANALYTICS.md)

def var_block(r, conf):
    p = P_OF[conf]
    n = len(r)
    mean, s = r.mean(), r.std(ddof=1)
    z = stats.norm.ppf(p)
    S = stats.skew(r, bias=True)
    K = stats.kurtosis(r, fisher=True, bias=True)
    zcf = z + (z**2 - 1) * S / 6 + (z**3 - 3 * z) * K / 24 - (2 * z**3 - 5 * z) * S**2 / 36
    k = int(math.floor((n - 1) * p)) + 1
    return {
        "confidence": conf,
        "historical": -np.quantile(r, p, method="linear"),
        "historical_lower": -np.quantile(r, p, method="lower"),
        "historical_inverted_cdf": -np.quantile(r, p, method="inverted_cdf"),
        # empyrical's conditional_value_at_risk: the mean of the k smallest.
        "cvar_historical": -np.mean(np.partition(r, k - 1)[:k]),
        "gaussian": -(mean + z * s),
        "es_gaussian": -mean + s * stats.norm.pdf(z) / p,
        "cornish_fisher": -(mean + zcf * s),
    }


def drawdown(r, dates):
    wealth = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    peak = np.maximum.accumulate(wealth)
    dd = wealth / peak - 1.0
    if dd.min() == 0.0:
        return 0.0, None, None, None
    trough = int(np.argmin(dd))                      # first occurrence
    at_peak = np.nonzero(wealth[:trough + 1] == peak[:trough + 1])[0]
    pk = int(at_peak[-1])                            # last date at the running peak
    back = np.nonzero(wealth[trough + 1:] >= wealth[pk])[0]
    rec = int(back[0]) + trough + 1 if len(back) else None

    def day(i):
        return None if i is None else {"index": i, "date": iso(dates[i])}
    return float(-dd[trough]), day(pk), day(trough), day(rec)


def metrics(r, b, dates):
    n = len(r)
    growth = np.prod(1.0 + r)
    ann = growth ** (A / n) - 1
    ex = r - RF_D
    down = np.sqrt(np.sum(np.minimum(ex, 0.0) ** 2) / n) * np.sqrt(A)
    mdd, pk, tr, rec = drawdown(r, dates)
    m = {
        "n": n,
        "mean": r.mean(),
        "stdev": r.std(ddof=1),
        "total_return": growth - 1,
        "annualized_return": ann,
        "annualized_return_arith": r.mean() * A,
        "annualized_volatility": r.std(ddof=1) * np.sqrt(A),
        "sharpe": ex.mean() / ex.std(ddof=1) * np.sqrt(A),
        "downside_deviation": down,
        "sortino": ex.mean() * A / down,
        "max_drawdown": mdd,
        "max_drawdown_peak": pk,
        "max_drawdown_trough": tr,
        "max_drawdown_recovery": rec,
        "calmar": ann / mdd,
        "skewness": stats.skew(r, bias=True),
        "excess_kurtosis": stats.kurtosis(r, fisher=True, bias=True),
        "var": [var_block(r, c) for c in CONFIDENCES],
    }
    if b is not None:
        reg = stats.linregress(b - RF_D, r - RF_D)   # OLS of excess returns: slope, intercept
        beta = np.cov(r, b, ddof=1)[0, 1] / np.var(b, ddof=1)
        assert abs(reg.slope - beta) < 1e-10 * abs(beta)
        active = r - b
        te = active.std(ddof=1) * np.sqrt(A)
        m.update({
            "beta": beta,
            "alpha_daily": reg.intercept,
            "alpha_annualized": (1 + reg.intercept) ** A - 1,
            "correlation": np.corrcoef(r, b)[0, 1],
            "tracking_error": te,
            "information_ratio": active.mean() * A / te,
        })
    return m


def period_returns(r, dates, periods):
    """dates: ordinals of the n + 1 closes.  Calendar years link the returns dated in the
    year; windows take the closes on or before the bounds."""
    out = []
    ret_years = np.array([dt.date.fromordinal(int(d)).year for d in dates[1:]])
    for y in sorted(set(ret_years.tolist())):
        sel = np.nonzero(ret_years == y)[0]
        out.append({"label": str(y), "start_close": iso(dates[sel[0]]),
                    "end_close": iso(dates[sel[-1] + 1]),
                    "total_return": np.prod(1.0 + r[sel]) - 1})
    for label, start, end in periods:
        s_ord = dates[0] if start is None else dt.date.fromisoformat(start).toordinal()
        e_ord = dates[-1] if end is None else dt.date.fromisoformat(end).toordinal()
        s = max(int(np.searchsorted(dates, s_ord, side="right")) - 1, 0)
        e = int(np.searchsorted(dates, e_ord, side="right")) - 1
        out.append({"label": label, "start": start, "end": end,
                    "start_close": iso(dates[s]), "end_close": iso(dates[e]),
                    "total_return": np.prod(1.0 + r[s:e]) - 1})
    return out


PERIODS = [("2023-Q4", "2023-09-30", "2023-12-31"), ("2023-H2", "2023-06-30", "2023-12-31"),
           ("1Y", "2023-03-15", "2024-03-15"), ("MAX", None, None)]


def iso(ordinal):
    return dt.date.fromordinal(int(ordinal)).isoformat()


# ---------------------------------------------------------------------------------------
# TWR, XIRR, attribution, rebalancing (from ANALYTICS.md)

def twr_case(name, values, flows):
    """values: [(date, V)], flows: [(date, CF)] (positive deposits)."""
    dates = np.array([dt.date.fromisoformat(d).toordinal() for d, _ in values])
    V = np.array([v for _, v in values], dtype=float)
    n = len(V)
    cf = np.zeros(n)
    inflow = np.zeros(n)
    outflow = np.zeros(n)
    for d, a in flows:
        i = int(np.nonzero(dates == dt.date.fromisoformat(d).toordinal())[0][0])
        cf[i] += a
        if a > 0:
            inflow[i] += a
        else:
            outflow[i] -= a
    days = int(dates[-1] - dates[0])
    res = {}
    for timing in ("START_OF_DAY", "END_OF_DAY", "SPLIT"):
        if timing == "START_OF_DAY":
            r = V[1:] / (V[:-1] + cf[1:]) - 1
        elif timing == "END_OF_DAY":
            r = (V[1:] - cf[1:]) / V[:-1] - 1
        else:
            r = (V[1:] + outflow[1:]) / (V[:-1] + inflow[1:]) - 1
        twr = np.prod(1 + r) - 1
        res[timing] = {"daily_returns": r, "twr": twr,
                       "annualized_twr": (1 + twr) ** (365 / days) - 1,
                       "annualized_twr_252": (1 + twr) ** (252 / len(r)) - 1}
    W = np.array([(dates[-1] - dt.date.fromisoformat(d).toordinal()) / days for d, _ in flows])
    C = np.array([a for _, a in flows], dtype=float)
    md = (V[-1] - V[0] - C.sum()) / (V[0] + (W * C).sum())
    res["MODIFIED_DIETZ"] = {"twr": md, "annualized_twr": (1 + md) ** (365 / days) - 1,
                             "annualized_twr_252": (1 + md) ** (252 / (n - 1)) - 1}
    return {"name": name, "values": [{"date": d, "value": v} for d, v in values],
            "flows": [{"date": d, "amount": a} for d, a in flows], "results": res}


def twr_cases():
    cases = []
    cases.append(twr_case("hand", [("2024-01-02", 1000.0), ("2024-01-03", 1010.0),
                                   ("2024-01-04", 1525.0), ("2024-01-05", 1320.0),
                                   ("2024-01-08", 1340.0)],
                          [("2024-01-04", 500.0), ("2024-01-05", -200.0),
                           ("2024-01-08", 300.0), ("2024-01-08", -310.0)]))
    # A year of values driven by a random walk with deposits and withdrawals, some on the
    # same day.
    rng = Rng(99)
    days = [d for d in US_CAL if dt.date(2023, 1, 3) <= d <= dt.date(2023, 12, 29)]
    flow_plan = {days[20]: [25000.0], days[45]: [-8000.0], days[90]: [12000.0, -3000.0],
                 days[130]: [-40000.0], days[170]: [5000.0], days[171]: [5000.0],
                 days[200]: [-1500.0], days[230]: [60000.0], days[248]: [-2500.0, 2500.0]}
    v = 250000.0
    values, flows = [(days[0].isoformat(), v)], []
    for d in days[1:]:
        fl = flow_plan.get(d, [])
        for a in fl:
            flows.append((d.isoformat(), a))
        v = round((v + sum(fl)) * (1 + 0.0004 + 0.009 * rng.normal()), 2)
        values.append((d.isoformat(), v))
    cases.append(twr_case("year_2023", values, flows))
    return cases


def subperiod_case():
    before = [100000.0, 104500.0, 131200.0, 97000.0, 99850.0]
    flow = [20000.0, 25000.0, -30000.0, 0.0]
    k = len(before) - 1
    twr = np.prod([before[i] / (before[i - 1] + flow[i - 1]) for i in range(1, k + 1)]) - 1
    return {"before": before, "flow": flow[:k], "twr": twr}


def xirr_case(name, flows):
    ords = np.array([dt.date.fromisoformat(d).toordinal() for d, _ in flows], dtype=float)
    amounts = np.array([a for _, a in flows], dtype=float)
    t = (ords - ords.min()) / 365.0

    def npv(r):
        return np.sum(amounts / (1.0 + r) ** t)
    case = {"name": name, "flows": [{"date": d, "amount": a} for d, a in flows]}
    if not (np.any(amounts > 0) and np.any(amounts < 0)):
        case["error"] = "NO_SIGN_CHANGE"
    elif np.sign(npv(-0.99)) == np.sign(npv(10.0)):
        case["error"] = "NO_ROOT"
    else:
        case["rate"] = optimize.brentq(npv, -0.99, 10.0, xtol=1e-15, rtol=1e-15, maxiter=500)
    return case


def xirr_cases():
    monthly = [("2022-01-03", -5000.0)]
    monthly += [(dt.date(2022 + (m // 12), m % 12 + 1, 3).isoformat(), -500.0)
                for m in range(1, 24)]
    monthly += [("2023-12-29", 19876.54)]
    return [
        # Microsoft's XIRR example (documented result 0.373362535).
        xirr_case("excel_doc", [("2008-01-01", -10000.0), ("2008-03-01", 2750.0),
                                ("2008-10-30", 4250.0), ("2009-02-15", 3250.0),
                                ("2009-04-01", 2750.0)]),
        xirr_case("loss", [("2021-01-04", -1000.0), ("2023-01-04", 900.0)]),
        xirr_case("monthly_savings", monthly),
        xirr_case("unsorted", [("2023-06-30", 3000.0), ("2022-01-10", -10000.0),
                               ("2024-02-01", 9100.0), ("2022-09-15", -2500.0)]),
        xirr_case("rate_8", [("2021-01-01", -100.0), ("2022-01-01", 900.0)]),
        xirr_case("all_negative", [("2021-01-01", -100.0), ("2022-01-01", -50.0)]),
        xirr_case("too_high", [("2021-01-01", -100.0), ("2022-01-01", 2000.0)]),
        xirr_case("near_total_loss", [("2021-01-01", -100.0), ("2021-01-31", 0.001)]),
    ]


def attribution_case(name, classes, model):
    wp = np.array([c[1] for c in classes])
    wb = np.array([c[2] for c in classes])
    Rp_i = np.array([c[3] for c in classes])
    Rb_i = np.array([c[4] for c in classes])
    Rp, Rb = wp @ Rp_i, wb @ Rb_i
    alloc = (wp - wb) * (Rb_i - Rb) if model == "BRINSON_FACHLER" else (wp - wb) * Rb_i
    sel = wb * (Rp_i - Rb_i)
    inter = (wp - wb) * (Rp_i - Rb_i)
    assert abs(alloc.sum() + sel.sum() + inter.sum() - (Rp - Rb)) < 1e-15
    return {"name": name, "model": model,
            "classes": [{"name": c[0], "portfolio_weight": c[1], "benchmark_weight": c[2],
                         "portfolio_return": c[3], "benchmark_return": c[4],
                         "allocation": alloc[i], "selection": sel[i], "interaction": inter[i],
                         "selection_with_interaction": wp[i] * (Rp_i[i] - Rb_i[i])}
                        for i, c in enumerate(classes)],
            "portfolio_return": Rp, "benchmark_return": Rb, "active_return": Rp - Rb,
            "total_allocation": alloc.sum(), "total_selection": sel.sum(),
            "total_interaction": inter.sum()}


def attribution_cases():
    simple = [("EQUITY", 0.70, 0.60, 0.125, 0.100), ("FIXED_INCOME", 0.30, 0.40, 0.031, 0.035)]
    four = [("US_EQUITY", 0.42, 0.45, 0.1834, 0.1612), ("INTL_EQUITY", 0.18, 0.15, -0.0421, 0.0127),
            ("FIXED_INCOME", 0.32, 0.40, 0.0415, 0.0388), ("CASH", 0.08, 0.0, 0.0502, 0.0502)]
    out = [attribution_case("BF_SIMPLE", simple, "BRINSON_FACHLER"),
           attribution_case("BHB_SIMPLE", simple, "BHB"),
           attribution_case("four_classes_bf", four, "BRINSON_FACHLER"),
           attribution_case("four_classes_bhb", four, "BHB")]
    # The worked example's published figures (ANALYTICS.md, in percent, rounded to 0.01).
    bf = out[0]
    published = {"portfolio_return": 9.68, "benchmark_return": 7.40, "active_return": 2.28}
    for key, pct in published.items():
        assert abs(bf[key] * 100 - pct) < 1e-9, key
    for c, (a, s, i) in zip(bf["classes"], [(0.26, 1.50, 0.25), (0.39, -0.16, 0.04)]):
        assert abs(c["allocation"] * 100 - a) < 1e-9
        assert abs(c["selection"] * 100 - s) < 1e-9
        assert abs(c["interaction"] * 100 - i) < 1e-9
    return out


def rebalance_case(name, positions, cash, cash_to_invest, mode, band_abs=0.05, band_rel=0.25):
    q = np.array([p[1] for p in positions], dtype=float)
    price = np.array([p[2] for p in positions], dtype=float)
    lot = np.array([p[3] for p in positions], dtype=float)
    target = np.array([p[4] for p in positions], dtype=float)
    V = np.sum(q * price) + cash + cash_to_invest
    w = q * price / V
    drift = w - target
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = drift / target
    breach = (np.abs(drift) > band_abs) | (np.abs(rel) > band_rel)
    tq = np.floor(target * V / (price * lot)) * lot
    trade = tq - q
    if mode == "BAND":
        trade = np.where(breach, trade, 0.0)
    notional = trade * price
    post_q = q + trade
    post_cash = cash + cash_to_invest - notional.sum()
    return {"name": name, "mode": mode, "cash": cash, "cash_to_invest": cash_to_invest,
            "band_abs": band_abs, "band_rel": band_rel, "total_value": V,
            "positions": [{"id": p[0], "quantity": p[1], "price": p[2], "lot": p[3],
                           "target": p[4], "current_weight": w[i], "drift_abs": drift[i],
                           "drift_rel": rel[i], "breach": bool(breach[i]),
                           "target_quantity": tq[i], "trade": trade[i],
                           "notional": notional[i], "post_weight": post_q[i] * price[i] / V}
                          for i, p in enumerate(positions)],
            "post_trade_cash": post_cash, "post_cash_weight": post_cash / V}


def rebalance_cases():
    book = [("AAA", 1200.0, 51.37, 1.0, 0.30), ("BBB", 300.0, 88.10, 1.0, 0.15),
            ("EUX", 900.0, 40.05, 10.0, 0.20), ("BOND", 40000.0, 1.0125, 1000.0, 0.25),
            ("OLD", 50.0, 12.0, 1.0, 0.0)]
    # Unbreached AAA sits above target while BBB breaches low: BAND buys BBB with cash that
    # is not there.
    tight = [("AAA", 540.0, 100.0, 1.0, 0.50), ("BBB", 360.0, 100.0, 1.0, 0.50)]
    return [rebalance_case("book_full", book, 15250.0, 10000.0, "FULL"),
            rebalance_case("book_band", book, 15250.0, 10000.0, "BAND"),
            rebalance_case("book_band_wide", book, 15250.0, 0.0, "BAND", 0.10, 0.50),
            rebalance_case("tight_band", tight, 10000.0, 0.0, "BAND")]


# ---------------------------------------------------------------------------------------
# Assembly

def series_json(s):
    out = {"calendar": s["calendar"], "note": s["note"],
           "dates": [d.isoformat() for d, _ in s["prices"]],
           "close": [c for _, c in s["prices"]],
           "dividends": [{"ex_date": d.isoformat(), "amount": a} for d, a in s["dividends"]]}
    if "split" in s:
        out["split"] = s["split"]
    return out


def build():
    data = build_dataset()
    names = ["BMK", "AAA", "BBB", "EUX", "SPLT", "IPO"]
    results = []
    for sid in names:
        for bench in ([None] if sid == "BMK" else [None, "BMK"]):
            for basis in ("TOTAL", "PRICE"):
                group = [data[sid]] + ([data[bench]] if bench else [])
                common, cols = aligned(group, basis)
                r = cols[0][2]
                b = cols[1][2] if bench else None
                res = {"series": sid, "benchmark": bench, "basis": basis,
                       "dates": {"first": iso(common[0]), "last": iso(common[-1]),
                                 "count": len(common)}}
                # Every return of the primary (total) basis, to pin down the series
                # construction; the price-basis metrics already depend on every return.
                if basis == "TOTAL":
                    res["dividends_per_date"] = [
                        {"date": iso(common[i]), "amount": cols[0][1][i]}
                        for i in np.nonzero(cols[0][1])[0]]
                    res["returns"] = r
                res["metrics"] = metrics(r, b, common)
                res["period_returns"] = period_returns(r, common, PERIODS)
                results.append(res)

    # Portfolio: the five securities and the benchmark aligned together (total basis).
    members = ["AAA", "BBB", "EUX", "SPLT", "IPO"]
    common, cols = aligned([data[m] for m in members] + [data["BMK"]], "TOTAL")
    R = np.array([c[2] for c in cols[:5]])
    P = np.array([c[0] for c in cols[:5]])
    D = np.array([c[1] for c in cols[:5]])
    w = np.array([0.25, 0.20, 0.15, 0.20, 0.10])
    C = np.cov(R, ddof=1)
    sigma2 = w @ C @ w
    Cw = C @ w
    daily = w @ R + (1 - w.sum()) * RF_D
    assert abs(daily.std(ddof=1) - math.sqrt(sigma2)) < 1e-12
    V0 = 1_000_000.0
    shares = np.floor(w * V0 / P[:, 0])
    cash = V0 - shares @ P[:, 0]
    values = [V0]
    cash_path = cash
    for t in range(1, P.shape[1]):
        cash_path = cash_path * (1 + RF_D) + shares @ D[:, t]
        values.append(shares @ P[:, t] + cash_path)
    values = np.array(values)
    bh = values[1:] / values[:-1] - 1
    bmk_r = cols[5][2]
    portfolio = {
        "members": members, "weights": w, "v0": V0,
        "dates": {"first": iso(common[0]), "last": iso(common[-1]), "count": len(common)},
        "covariance": C, "correlation": np.corrcoef(R),
        "volatilities": np.sqrt(np.diag(C) * A),
        "portfolio_volatility": math.sqrt(sigma2) * math.sqrt(A),
        "risk_contributions": w * Cw / sigma2,
        "marginal_contributions": Cw / math.sqrt(sigma2) * math.sqrt(A),
        "daily_rebalanced": {"returns": daily, "metrics": metrics(daily, bmk_r, common)},
        "buy_and_hold": {"shares": shares, "initial_cash": cash, "final_cash": cash_path,
                         "values": values, "returns": bh,
                         "metrics": metrics(bh, bmk_r, common),
                         "money_var": [{"confidence": v["confidence"],
                                        "historical": v["historical"] * values[-1],
                                        "cvar_historical": v["cvar_historical"] * values[-1]}
                                       for v in metrics(bh, None, common)["var"]]},
    }

    ppf = [1e-300, 1e-20, 1e-10, 1e-5, 0.001, 0.01, 0.02425, 0.025, 0.05, 0.1, 0.3, 0.425,
           0.5, 0.575, 0.7, 0.9, 0.95, 0.975, 0.99, 0.999, 1 - 1e-10]
    civil = ["1970-01-01", "1969-12-31", "2000-02-29", "2021-01-04", "2024-12-31",
             "2100-03-01", "1900-01-01"]
    return {
        "meta": {
            "generator": "test/analytics_ref/gen_reference.py",
            "numpy": np.__version__, "scipy": scipy.__version__,
            "conventions": "shared ANALYTICS.md: A=252, sample stdev, rf_d=(1+rf)^(1/252)-1, "
                           "VaR positive losses, p = 1 - confidence as 0.05 / 0.01",
            "alignment": "intersection of dates; returns recomputed on common dates; a "
                         "dividend counts on the first common date on or after its ex-date",
            "encoding": "non-finite numbers are the strings NaN, Infinity, -Infinity; "
                        "indices are positions in the wealth index (0 = base date)",
        },
        "rf_annual": RF_ANNUAL, "rf_daily": RF_D,
        "series": {k: series_json(data[k]) for k in names},
        "results": results,
        "portfolio": portfolio,
        "twr": twr_cases(),
        "twr_subperiod": subperiod_case(),
        "xirr": xirr_cases(),
        "attribution": attribution_cases(),
        "rebalance": rebalance_cases(),
        "norm_ppf": [{"p": p, "z": special.ndtri(p)} for p in ppf],
        "civil": [{"date": d, "day": dt.date.fromisoformat(d).toordinal()
                   - dt.date(1970, 1, 1).toordinal()} for d in civil],
    }


# ---------------------------------------------------------------------------------------
# JSON: lists of scalars on one line, non-finite numbers as strings

def plain(x):
    if isinstance(x, np.ndarray):
        return [plain(v) for v in x.tolist()]
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        return x
    return x


def dump(x, indent=0):
    pad = " " * indent
    if isinstance(x, dict):
        if not x:
            return "{}"
        items = [f'{pad} {json.dumps(k)}: {dump(v, indent + 1)}' for k, v in x.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(x, list):
        if all(not isinstance(v, (dict, list)) for v in x):
            return "[" + ", ".join(json.dumps(v) for v in x) + "]"
        return "[\n" + ",\n".join(pad + " " + dump(v, indent + 1) for v in x) + "\n" + pad + "]"
    return json.dumps(x)


# ---------------------------------------------------------------------------------------
# --check

def compare(a, b, path, errors, inputs):
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            errors.append(f"{path}: keys differ: {sorted(set(a) ^ set(b))}")
            return
        for k in a:
            if k in ("numpy", "scipy"):
                continue
            compare(a[k], b[k], f"{path}.{k}", errors,
                    inputs or k in ("series", "values", "flows"))
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
    ap.add_argument("--out", default=os.path.join(HERE, "reference.json"))
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
