"""Regression against a baseline: each point of an evaluation against the same point of an
earlier evaluation of the same spec, with the family of points held at 5%.

Pairing. A point is identified by everything that makes it a different number: test,
transform, kind (a ratio or a baseline monotonicity step), t, t_from, rho. Two rows pair
only when all of these agree (`identity`).

The test per point. H0: nothing changed, i.e. both runs' per-seed values come from one
distribution. Under H0 the two runs' seed variances are equal, so Student's pooled two-sample
t test (df = n_a + n_b - 2) is exact for normal values; it is run on the point's own scale
(log ratios for log-scale points, whose values are lognormal-like; micheck.verdicts). Welch's
test is not used: at the small levels a family of 14 points needs, its approximate degrees
of freedom make it liberal (simulated: 2.4x the level at 3 vs 5 seeds with unequal spreads,
4.2x at 16 vs 3), and a CI run with 3 seeds against a pooled 16-seed baseline is the common
case.

Regressed or improved. A significant change is a regression when it moves the point the
wrong way, judged from the two point estimates:

    points with one ideal value inside a two-sided band (data processing on rows: 1,
    additivity: 2, baseline at t = 0 and full height, independence, ground truth, gradient):
        further from the ideal (|m_a - ideal| > |m_b - ideal|)
    points whose property is a range (baseline rows in between, Table 3 transforms'
    one-sided data processing band, monotonicity steps): further outside the band; a move
    that stays inside the band (data processing under a transform from 0.90 to 0.60, both
    inside <= 1.15) is no regression

The p-value of a point for the regression family is the two-sided p-value when its change is
in the wrong direction and 1 otherwise; under H0 it is a valid p-value (the direction only
removes rejections), so Holm's step-down over the points (Holm 1979) keeps the chance that
any point of an unchanged estimator is flagged at or below alpha = 0.05, whatever the
dependence between points. "improved" is the same procedure on the right-direction changes
(reported, never gated on). Simulated in tests/micheck/test_compare.py over thousands of
synthetic evaluation pairs.

With fewer than two finite seeds on a side, or on a log-scale point with a non-positive
value, there is no test: only a pass -> fail verdict flip is reported, as such, and it is
not part of the gated family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from micheck.contract import Comparison, EvaluationResult, PointComparison, Ratio
from micheck.verdicts import ALPHA, Band, t_cdf

Identity = tuple[str, str, str, int | None, int | None, float | None]


def identity(r: Ratio) -> Identity:
    """What makes a row a different number: (test, transform, kind, t, t_from, rho)."""
    return r.test, r.transform, r.kind, r.t, r.t_from, r.rho


def scale_of(r: Ratio) -> str:
    """The scale a row was decided on (rows before engine v3 carry none: linear)."""
    return r.scale or "linear"


def _finite(xs: Sequence[float | None]) -> list[float]:
    return [x for x in xs if x is not None and math.isfinite(x)]


def _on_scale(values: list[float], scale: str) -> list[float] | None:
    if scale != "log":
        return values
    if any(v <= 0 for v in values):
        return None
    return [math.log(v) for v in values]


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def pooled_t(a: Sequence[float], b: Sequence[float]
             ) -> tuple[float, float, float, float] | None:
    """Student's two-sample t test: (mean(a) - mean(b), its standard error, df, two-sided
    p-value); None without two values on each side."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    ma, mb = _mean(a), _mean(b)
    ss = math.fsum((x - ma) ** 2 for x in a) + math.fsum((x - mb) ** 2 for x in b)
    df = na + nb - 2
    se = math.sqrt(ss / df * (1.0 / na + 1.0 / nb))
    d = ma - mb
    if se == 0.0:
        return d, 0.0, df, 1.0 if d == 0 else 0.0
    p = 2.0 * (1.0 - t_cdf(abs(d) / se, df))
    return d, se, df, min(1.0, max(0.0, p))


def badness(value: float, ideal: float | None, band: Band) -> float:
    """How far a point estimate is from what its property asks: the distance to the ideal
    where there is one inside a two-sided band, else the distance outside the band."""
    if ideal is not None and band.low is not None and band.high is not None:
        return abs(value - ideal)
    if band.high is not None and value > band.high:
        return value - band.high
    if band.low is not None and value < band.low:
        return band.low - value
    return 0.0


def _band(r: Ratio) -> Band:
    return Band(r.band_low, r.band_high)


def holm(pvalues: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down: which hypotheses are rejected, family-wise error <= alpha."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    m = len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


def _direction(cur: Ratio, base: Ratio, m_cur: float, m_base: float) -> int:
    """+1 when the current point estimate is worse than the baseline's, -1 when better."""
    band = _band(cur)
    ideal = cur.ideal if cur.ideal == base.ideal else None
    worse, before = badness(m_cur, ideal, band), badness(m_base, ideal, band)
    return 1 if worse > before else -1 if worse < before else 0


def compare(result: EvaluationResult, baseline: EvaluationResult, *, evaluation_id: str,
            baseline_id: str, baseline_query: str | None = None,
            alpha: float = ALPHA) -> Comparison:
    base = {identity(r): r for r in baseline.ratios}
    rows: list[dict] = []
    family: list[int] = []  # rows with a test
    for r in result.ratios:
        b = base.get(identity(r))
        row: dict = {"test": r.test, "transform": r.transform, "t": r.t, "kind": r.kind,
                     "t_from": r.t_from, "rho": r.rho, "ratio": r.value, "verdict": r.verdict,
                     "scale": scale_of(r)}
        if b is None:
            rows.append({**row, "baseline_ratio": None, "baseline_verdict": None,
                         "regression": "new"})
            continue
        row.update(baseline_ratio=b.value, baseline_verdict=b.verdict)
        flip = {("pass", "fail"): "regressed", ("fail", "pass"): "improved"}.get(
            (b.verdict, r.verdict))
        scale = scale_of(r) if scale_of(r) == scale_of(b) else "linear"
        a_vals = _on_scale(_finite(r.per_seed), scale)
        b_vals = _on_scale(_finite(b.per_seed), scale)
        test = pooled_t(a_vals, b_vals) if a_vals is not None and b_vals is not None else None
        if test is None or r.ci_method is not None and r.ci_method.startswith("exact"):
            why = ("exact on both runs" if r.ci_method and r.ci_method.startswith("exact")
                   else "fewer than two finite seeds on a side" if a_vals is not None and
                   b_vals is not None else "a value <= 0 on a log-scale point")
            flipped = "" if flip is None else \
                f"; the verdict went {b.verdict} -> {r.verdict}"
            rows.append({**row, "regression": "untested",
                         "note": f"no test ({why}){flipped}; not part of the gated family"})
            continue
        d, se, df, p = test
        m_a, m_b = _mean(a_vals or []), _mean(b_vals or [])
        back = math.exp if scale == "log" else (lambda x: x)
        direction = _direction(r, b, back(m_a), back(m_b))
        row.update(difference=(back(m_a) - back(m_b)), p_value=p, df=df, direction=direction,
                   se=se, log_difference=d if scale == "log" else None)
        family.append(len(rows))
        rows.append(row)
    worse = holm([rows[i]["p_value"] if rows[i]["direction"] > 0 else 1.0 for i in family],
                 alpha)
    better = holm([rows[i]["p_value"] if rows[i]["direction"] < 0 else 1.0 for i in family],
                  alpha)
    m = len(family)
    for j, i in enumerate(family):
        row = rows[i]
        row["regression"] = "regressed" if worse[j] else "improved" if better[j] else \
            "not_significant" if row["verdict"] != row["baseline_verdict"] else "unchanged"
        row["note"] = (f"pooled t test on the {row['scale']} scale, df {row['df']}, "
                       f"p = {row['p_value']:.2g}; Holm over {m} point(s) at {alpha:g}")
    points = [PointComparison(
        test=x["test"], transform=x["transform"], t=x["t"], kind=x["kind"],
        t_from=x["t_from"], rho=x["rho"], ratio=x["ratio"],
        baseline_ratio=x["baseline_ratio"], difference=x.get("difference"),
        p_value=x.get("p_value"), scale=x["scale"], verdict=x["verdict"],
        baseline_verdict=x["baseline_verdict"], regression=x["regression"],
        note=x.get("note", "")) for x in rows]
    return Comparison(evaluation_id=evaluation_id, baseline_id=baseline_id,
                      baseline_query=baseline_query, alpha=alpha, tested=m,
                      method="pooled two-sample t per point on its scale, Holm over points",
                      regression=any(p.regression == "regressed" for p in points),
                      points=points)
