"""Do micheck's verdicts keep their error rate on the ratios critics really produce?

Simulations, no training: per-seed numerator and denominator estimates are drawn from known
distributions (normal, lognormal up to CV 0.3 and beyond, heavy tails, correlated), the
truth is placed at a band edge, and the procedure decides. Three parts:

* `compare_methods`: the choice of interval (issue #18 item 2). For each candidate (the t
  interval on raw ratios, Fieller's interval for the ratio of means, the t interval on log
  ratios) and each scenario: how often the interval misses the truth on each side at a
  verdict's own level, relative to the allowance. Vectorised numpy, millions of draws.
* `sequential_wrong_rate`: the whole sequential procedure as micheck runs it (looks at 3, 6,
  12 seeds, alpha spent per look by `micheck.verdicts.spend`, Bonferroni over k decisions,
  each look deciding with `micheck.verdicts.judge`, decisions final once taken), for one
  point at a band edge: the rate of wrong passes (truth just outside) and wrong fails (just
  inside) against the decision's share alpha / k.
* `coverage_check`: the coverage test with power of tests/micheck/test_levels.py, and its
  operating characteristic (`coverage_power`): how often it passes a correct interval and
  fails a wrong one (z instead of t, df = n, a 90% level) over many random draws.

    python -m bench levels            # writes docs/bench/levels.{md,json}

The estimand of a log-scale point is the ratio of geometric means, exp(E log N - E log D)
(the centre of its interval); a simulated truth is placed on that scale. For lognormal
estimates with equal CVs it equals the ratio of means.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.report import publish
from micheck.verdicts import (
    ALPHA,
    Band,
    Interval,
    Scale,
    decision_level,
    judge,
    spend,
    student_t_interval,
    t_quantile,
)

OUT = Path(__file__).resolve().parent.parent / "docs" / "bench"

# (numerator, denominator) draws, shape (reps, n) each, for a truth `theta` on the
# geometric scale: exp(E log N - E log D) = theta
Draw = Callable[[np.random.Generator, int, int, float], tuple[np.ndarray, np.ndarray]]


def _lognormal(rng: np.random.Generator, median: float, cv: float, size: tuple[int, int],
               z: np.ndarray | None = None) -> np.ndarray:
    s = math.sqrt(math.log1p(cv * cv))
    z = rng.standard_normal(size) if z is None else z
    return median * np.exp(s * z)


def lognormal(cv_num: float, cv_den: float, corr: float = 0.0) -> Draw:
    """N and D lognormal with the given CVs and correlation of their logs."""
    def draw(rng: np.random.Generator, reps: int, n: int, theta: float):
        zd = rng.standard_normal((reps, n))
        zn = corr * zd + math.sqrt(1.0 - corr * corr) * rng.standard_normal((reps, n))
        return _lognormal(rng, theta, cv_num, (reps, n), zn), _lognormal(rng, 1.0, cv_den,
                                                                         (reps, n), zd)
    return draw


def heavy_log(df: float, scale_num: float, scale_den: float) -> Draw:
    """log N and log D with Student-t(df) noise (heavy, symmetric tails on the log scale)."""
    def draw(rng: np.random.Generator, reps: int, n: int, theta: float):
        return (theta * np.exp(scale_num * rng.standard_t(df, (reps, n))),
                np.exp(scale_den * rng.standard_t(df, (reps, n))))
    return draw


def heavy_linear(df: float, scale_num: float, scale_den: float) -> Draw:
    """N = theta + s t(df), D = 1 + s' t(df): heavy tails on the linear scale. The truth on
    the geometric scale is then only close to theta; `geometric_truth` computes it."""
    def draw(rng: np.random.Generator, reps: int, n: int, theta: float):
        return (theta + scale_num * theta * rng.standard_t(df, (reps, n)),
                1.0 + scale_den * rng.standard_t(df, (reps, n)))
    return draw


def normal(cv_num: float, cv_den: float) -> Draw:
    def draw(rng: np.random.Generator, reps: int, n: int, theta: float):
        return (rng.normal(theta, cv_num * theta, (reps, n)),
                rng.normal(1.0, cv_den, (reps, n)))
    return draw


# the scenarios of the level test: lognormal up to CV 0.3 (either side, correlated or not),
# heavy tails on the log scale, and the stress case (lognormal sigma = 1 ratios)
SCENARIOS: dict[str, Draw] = {
    "lognormal N, D CV 0.3": lognormal(0.3, 0.3),
    "lognormal N CV 0.3, D CV 0.05": lognormal(0.3, 0.05),
    "lognormal N CV 0.05, D CV 0.3": lognormal(0.05, 0.3),
    "lognormal N, D CV 0.3, corr 0.8": lognormal(0.3, 0.3, 0.8),
    "heavy tails: t3 on log N, log D (scale 0.15)": heavy_log(3, 0.15, 0.15),
    "lognormal ratio, sigma 1": lognormal(math.sqrt(math.e - 1.0), 0.0),
}
# beyond the level test: normal estimates (a small chance of a negative value at CV 0.3)
EXTRA_SCENARIOS: dict[str, Draw] = {
    "normal N, D CV 0.3": normal(0.3, 0.3),
    "heavy tails: t3 on N, D (linear, scale 0.1)": heavy_linear(3, 0.1, 0.1),
}


def geometric_truth(draw: Draw, theta: float, reps: int = 2_000_000, seed: int = 99) -> float:
    """exp(E log N - E log D) of `draw` at `theta`, by a large simulation (positives only)."""
    rng = np.random.default_rng(seed)
    num, den = draw(rng, reps, 1, theta)
    ok = (num > 0) & (den > 0)
    return float(np.exp(np.mean(np.log(num[ok])) - np.mean(np.log(den[ok]))))


# ---- part 1: which interval? ----------------------------------------------------------------


def _t_raw(num: np.ndarray, den: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    r = num / den
    n = r.shape[1]
    m, s = r.mean(1), r.std(1, ddof=1)
    return m - q * s / math.sqrt(n), m + q * s / math.sqrt(n)


def _fieller(num: np.ndarray, den: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Fieller's interval for mean(N) / mean(D) from paired draws (unbounded when the
    denominator's mean is not significantly away from 0 at this level)."""
    n = num.shape[1]
    nb, db = num.mean(1), den.mean(1)
    vnn, vdd = num.var(1, ddof=1) / n, den.var(1, ddof=1) / n
    vnd = ((num - nb[:, None]) * (den - db[:, None])).sum(1) / (n - 1) / n
    a = db * db - q * q * vdd
    b = -2.0 * (nb * db - q * q * vnd)
    c = nb * nb - q * q * vnn
    disc = b * b - 4.0 * a * c
    ok = (a > 0) & (disc >= 0)
    root = np.sqrt(np.where(ok, disc, 0.0))
    a_safe = np.where(ok, a, 1.0)
    return (np.where(ok, (-b - root) / (2 * a_safe), -np.inf),
            np.where(ok, (-b + root) / (2 * a_safe), np.inf))


def _log_t(num: np.ndarray, den: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    pos = ((num > 0) & (den > 0)).all(1)
    lr = np.log(np.where((num > 0) & (den > 0), num / den, 1.0))
    n = lr.shape[1]
    m, s = lr.mean(1), lr.std(1, ddof=1)
    lo, hi = np.exp(m - q * s / math.sqrt(n)), np.exp(m + q * s / math.sqrt(n))
    return np.where(pos, lo, -np.inf), np.where(pos, hi, np.inf)  # non-positive: no decision


METHODS: dict[str, Callable[[np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray]]] = {
    "t on ratios": _t_raw, "Fieller": _fieller, "t on log ratios": _log_t}


def _mean_truth(draw: Draw, theta: float, reps: int = 2_000_000, seed: int = 98) -> float:
    rng = np.random.default_rng(seed)
    num, den = draw(rng, reps, 1, theta)
    return float(num.mean() / den.mean())


def compare_methods(reps: int = 400_000, seeds: Sequence[int] = (3, 6, 12), k: int = 22,
                    looks: int = 3, seed: int = 1) -> list[dict]:
    """Each interval's miss rate on each side at the first look's level of an evaluation
    with k decisions and `looks` planned looks, relative to the allowance (1.0 = exactly
    the promised rate; above 1 breaks the promise). Each method is judged against its own
    estimand: the ratio of means for t on ratios and Fieller, the ratio of geometric means
    for the log scale."""
    rng = np.random.default_rng(seed)
    gamma = spend(1, looks) / k / 2.0  # one side's allowance
    rows = []
    theta = 2.0
    for name, draw in {**SCENARIOS, **EXTRA_SCENARIOS}.items():
        truths = {"mean": _mean_truth(draw, theta), "geometric": geometric_truth(draw, theta)}
        for n in seeds:
            q = t_quantile(1.0 - gamma, n - 1)
            num, den = draw(rng, reps, n, theta)
            row = {"scenario": name, "seeds": n, "allowance": gamma}
            for method, fn in METHODS.items():
                lo, hi = fn(num, den, q)
                truth = truths["geometric" if method == "t on log ratios" else "mean"]
                finite = np.isfinite(lo) & np.isfinite(hi)
                row[method] = {
                    "below": round(float(np.mean(hi < truth)) / gamma, 2),  # missed low
                    "above": round(float(np.mean(lo > truth)) / gamma, 2),  # missed high
                    "median_width": round(float(np.median(hi[finite] - lo[finite])), 3)
                    if finite.any() else None,
                    "unbounded": round(float(1.0 - finite.mean()), 3),
                }
            rows.append(row)
    return rows


# ---- part 2: the sequential procedure as micheck runs it ---------------------------------------


@dataclass
class WrongRates:
    scenario: str
    edge: str  # which edge the truth sits at
    reps: int
    wrong_pass: int  # truth just outside the band, the procedure said pass
    wrong_fail: int  # truth just inside the band, the procedure said fail
    share: float  # the decision's share of alpha: alpha / k
    seeds_used: float  # mean seeds at the look that decided (or the last look)

    def rate(self, which: str) -> float:
        return (self.wrong_pass if which == "pass" else self.wrong_fail) / self.reps


def sequential_decisions(values: np.ndarray, band: Band, *, k: int, schedule: Sequence[int],
                         scale: Scale, alpha: float = ALPHA,
                         judge_fn: Callable = judge) -> tuple[list[str], float]:
    """Run micheck's sequential rule on per-seed values (reps, max(schedule)): at look l the
    first schedule[l] values are judged at decision_level(k, l, len(schedule)); the first
    pass or fail is final. Returns each replicate's verdict and the mean seeds used."""
    planned = len(schedule)
    levels = [decision_level(k, look, planned, alpha) for look in range(1, planned + 1)]
    out, used = [], 0
    for row in values.tolist():
        verdict, n_used = "inconclusive", schedule[-1]
        for n, level in zip(schedule, levels, strict=True):
            _, d = judge_fn(row[:n], band, level, scale=scale)
            if d.verdict != "inconclusive":
                verdict, n_used = d.verdict, n
                break
        out.append(verdict)
        used += n_used
    return out, used / max(1, len(out))


def ratio_mean_truth(draw: Draw, theta: float, reps: int = 2_000_000, seed: int = 97) -> float:
    """E[N / D] of `draw` at `theta`: the estimand of the t interval on raw ratios."""
    rng = np.random.default_rng(seed)
    num, den = draw(rng, reps, 1, theta)
    return float(np.mean(num / den))


def sequential_wrong_rate(name: str, draw: Draw, *, k: int = 22, reps: int = 20_000,
                          schedule: Sequence[int] = (3, 6, 12), band: Band = Band(1.7, 2.3),
                          edge: str = "high", seed: int = 0, eps: float = 1e-9,
                          judge_fn: Callable = judge, estimand: str = "geometric",
                          scale: Scale = "log") -> WrongRates:
    """Wrong decisions of the sequential procedure at one edge of `band`: the truth just
    outside it (a pass is wrong) and just inside (a fail is wrong). `estimand`: what the
    truth is, "geometric" (ratio of geometric means: the log scale's) or "mean_ratio"
    (E[N / D]: the t interval on raw ratios')."""
    at = band.high if edge == "high" else band.low
    assert at is not None
    out_sign = 1.0 if edge == "high" else -1.0
    counts = {}
    used = 0.0
    for side, sign in (("outside", out_sign), ("inside", -out_sign)):
        target = at * (1.0 + sign * eps)
        # theta scales N: the truth is theta x its value at theta = 1
        base = geometric_truth(draw, 1.0) if estimand == "geometric" else \
            ratio_mean_truth(draw, 1.0)
        rng = np.random.default_rng([seed, 0 if side == "outside" else 1])
        num, den = draw(rng, reps, schedule[-1], target / base)
        verdicts, u = sequential_decisions(num / den, band, k=k, schedule=schedule,
                                           scale=scale, judge_fn=judge_fn)
        used += u / 2
        counts[side] = verdicts
    return WrongRates(name, edge, reps, counts["outside"].count("pass"),
                      counts["inside"].count("fail"), ALPHA / k, used)


def judge_t_on_ratios(values: Sequence[float | None], band: Band, level: float, *,
                      scale: Scale = "linear", **_: object):
    """The rule before engine v3 (t interval on raw ratios), for comparison."""
    return judge(values, band, level, scale="linear")


# ---- part 3: a coverage test with power -----------------------------------------------------

IntervalFn = Callable[[Sequence[float], float], Interval | None]


def t_on_logs(values: Sequence[float], level: float) -> Interval | None:
    """The correct interval (what micheck.verdicts.interval does on the log scale)."""
    from micheck.verdicts import interval
    return interval(values, level, "log")


def z_on_logs(values: Sequence[float], level: float) -> Interval | None:
    """Wrong: a normal quantile instead of Student's t."""
    iv = student_t_interval([math.log(v) for v in values], level)
    if iv is None:
        return None
    n = len(values)
    half_t = iv.high - iv.mean
    q_t, q_z = t_quantile(0.5 + level / 2, n - 1), t_quantile(0.5 + level / 2, 1e9)
    half = half_t * q_z / q_t
    return Interval(math.exp(iv.mean), math.exp(iv.mean - half), math.exp(iv.mean + half),
                    level, n, "log")


def df_n_on_logs(values: Sequence[float], level: float) -> Interval | None:
    """Wrong: n degrees of freedom instead of n - 1."""
    iv = student_t_interval([math.log(v) for v in values], level)
    if iv is None:
        return None
    n = len(values)
    half = (iv.high - iv.mean) * t_quantile(0.5 + level / 2, n) / t_quantile(0.5 + level / 2,
                                                                                n - 1)
    return Interval(math.exp(iv.mean), math.exp(iv.mean - half), math.exp(iv.mean + half),
                    level, n, "log")


def level90_on_logs(values: Sequence[float], level: float) -> Interval | None:
    """Wrong: a 90% interval whatever level is asked for."""
    return t_on_logs(values, 0.90)


WRONG_INTERVALS: dict[str, IntervalFn] = {"z instead of t": z_on_logs, "df = n": df_n_on_logs,
                                          "90% level": level90_on_logs}

# the coverage test's design: ratios of lognormal estimates (both CV 0.3, a noisy
# denominator) over 3 seeds, at the level a verdict has at the first of 3 looks with 22
# decisions; each side's misses must stay at or below COVERAGE_MAX_MISSES of COVERAGE_REPS
COVERAGE_REPS = 20_000
COVERAGE_SEEDS = 3
COVERAGE_LEVEL = decision_level(22, 1, 3)  # 1 - 0.0225 / 22
COVERAGE_ALLOWANCE = (1.0 - COVERAGE_LEVEL) / 2.0  # one side's nominal miss rate


def coverage_threshold(reps: int = COVERAGE_REPS, p: float = COVERAGE_ALLOWANCE,
                       tail: float = 0.0025) -> int:
    """The smallest c with P(Binomial(reps, p) > c) <= tail: a correct interval's misses on
    one side exceed it with probability at most `tail` (two sides: at most 2 x tail)."""
    mean = reps * p
    pmf = math.exp(-mean)  # Poisson approximation, accurate for small p
    cdf, c = pmf, 0
    while 1.0 - cdf > tail:
        c += 1
        pmf *= mean / c
        cdf += pmf
    return c


COVERAGE_MAX_MISSES = coverage_threshold()


def coverage_misses(fn: IntervalFn, seed: int, reps: int = COVERAGE_REPS,
                    n: int = COVERAGE_SEEDS, level: float = COVERAGE_LEVEL) -> tuple[int, int]:
    """Misses of `fn`'s interval below and above the truth on lognormal ratios."""
    rng = np.random.default_rng(seed)
    num, den = lognormal(0.3, 0.3)(rng, reps, n, 1.0)
    values = (num / den).tolist()
    below = above = 0
    for row in values:
        iv = fn(row, level)
        assert iv is not None
        below += iv.high < 1.0
        above += iv.low > 1.0
    return below, above


def coverage_check(fn: IntervalFn, seed: int) -> bool:
    """The coverage test: True when neither side misses more than allowed."""
    below, above = coverage_misses(fn, seed)
    return below <= COVERAGE_MAX_MISSES and above <= COVERAGE_MAX_MISSES


def coverage_power(draws: int = 200, reps: int = COVERAGE_REPS) -> dict[str, float]:
    """How often the coverage test passes, over `draws` random seeds, for the correct
    interval and for each wrong one (the design's operating characteristic)."""
    out = {}
    for name, fn in {"correct (t on log ratios)": t_on_logs, **WRONG_INTERVALS}.items():
        passed = sum(coverage_check(fn, 10_000 + d) for d in range(draws))
        out[name] = passed / draws
    return out


# ---- the benchmark ----------------------------------------------------------------------------


def main(reps: int = 20_000, draws: int = 200, out: Path = OUT) -> dict:
    t0 = time.perf_counter()
    load = os.getloadavg()
    methods = compare_methods()
    seq = []
    for name, draw in SCENARIOS.items():
        for edge in ("high", "low"):
            new = sequential_wrong_rate(name, draw, reps=reps, edge=edge)
            # E[N / D] does not exist with t tails on the log scale (no moment generating
            # function): the v2 rule has no estimand there
            old = None if name.startswith("heavy tails: t3 on log") else sequential_wrong_rate(
                name, draw, reps=reps, edge=edge, judge_fn=judge_t_on_ratios,
                estimand="mean_ratio", scale="linear")
            seq.append({"scenario": name, "edge": edge, "reps": reps, "share": new.share,
                        "log_wrong_pass": new.rate("pass"), "log_wrong_fail": new.rate("fail"),
                        "log_seeds_used": round(new.seeds_used, 2),
                        "t_ratio_wrong_pass": old.rate("pass") if old else None,
                        "t_ratio_wrong_fail": old.rate("fail") if old else None})
    power = coverage_power(draws)
    result = {"methods": methods, "sequential": seq, "coverage_power": power,
              "coverage_design": {"reps": COVERAGE_REPS, "seeds": COVERAGE_SEEDS,
                                  "level": COVERAGE_LEVEL, "max_misses": COVERAGE_MAX_MISSES,
                                  "allowance_per_side": COVERAGE_ALLOWANCE, "draws": draws}}
    return publish(out, "levels", result, report, t0, load)


def report(r: dict) -> str:
    lines = ["# Do the verdicts keep their level? (`python -m bench levels`)", "",
             "Generated from `levels.json` (same folder). No training: per-seed estimates "
             "are drawn from the distributions named, the truth sits at a band edge.", "",
             "## 1. Which interval (first look of 3, 22 decisions; one side's allowance "
             f"{r['methods'][0]['allowance']:.2e})", "",
             "Miss rate on each side / allowance (1.0 = the promised rate; above 1.0 breaks "
             "it), median width, share of unbounded intervals. Each method against its own "
             "estimand (ratio of means; ratio of geometric means for the log scale). Monte "
             "Carlo error: 400,000 draws give about 200 misses at the allowance, so a ratio "
             "has a standard error of about 0.07 (1.15 is 2 standard errors).", "",
             "| scenario | seeds | t on ratios below/above | Fieller below/above (unbounded)"
             " | t on log ratios below/above | widths t / Fieller / log |",
             "|---|---|---|---|---|---|"]
    for row in r["methods"]:
        t, f, g = row["t on ratios"], row["Fieller"], row["t on log ratios"]
        lines.append(
            f"| {row['scenario']} | {row['seeds']} | {t['below']} / {t['above']} | "
            f"{f['below']} / {f['above']} ({f['unbounded']:.0%}) | {g['below']} / {g['above']}"
            f" | {t['median_width']} / {f['median_width']} / {g['median_width']} |")
    lines += ["", "## 2. The sequential procedure (looks at 3, 6, 12 seeds; 22 decisions; "
              "band [1.7, 2.3])", "",
              "Rate of wrong decisions per point at the edge named: a pass with the truth just "
              "outside, a fail with it just inside. The promise: at most the decision's share "
              f"alpha / 22 = {r['sequential'][0]['share']:.2e}.", "",
              "The engine v2 rule (t interval on raw ratios, against its own estimand E[N/D]) "
              "beside it.", "",
              "| scenario | edge | log scale: wrong pass | wrong fail | mean seeds | t on "
              "ratios (engine v2): wrong pass | wrong fail |", "|---|---|---|---|---|---|---|"]
    def fmt(x: float | None) -> str:
        return "n/a (E[N/D] infinite)" if x is None else f"{x:.2e}"

    for row in r["sequential"]:
        lines.append(f"| {row['scenario']} | {row['edge']} | {row['log_wrong_pass']:.2e} | "
                     f"{row['log_wrong_fail']:.2e} | {row['log_seeds_used']} | "
                     f"{fmt(row['t_ratio_wrong_pass'])} | {fmt(row['t_ratio_wrong_fail'])} |")
    d = r["coverage_design"]
    lines += ["", "## 3. The coverage test's power", "",
              f"Design: {d['reps']:,} draws of {d['seeds']} lognormal ratios (numerator and "
              f"denominator CV 0.3), level {d['level']:.6f}; each side may miss at most "
              f"{d['max_misses']} times (allowance {d['allowance_per_side']:.2e} per side). "
              f"Share of {d['draws']} random runs in which the test passes:", "",
              "| interval | passes |", "|---|---|"]
    for name, share in r["coverage_power"].items():
        lines.append(f"| {name} | {share:.1%} |")
    lines += ["", f"Run time {r['seconds']} s; load average at start {r['loadavg_at_start']}, "
              f"at end {r['loadavg_at_end']}.", ""]
    return "\n".join(lines)
