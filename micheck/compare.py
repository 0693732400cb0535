"""Regression against a baseline: each test point's mean ratio (over seeds) against the
same point of an earlier evaluation of the same spec.

For point p with per-seed ratios a (this run, n_a seeds) and b (baseline, n_b seeds), the
difference of means d = mean(a) - mean(b) gets a 95% Welch interval

    d +/- t_{0.975, nu} * sqrt(s_a^2 / n_a + s_b^2 / n_b),
    nu = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a - 1) + (s_b^2/n_b)^2/(n_b - 1))

(Welch 1947; nu rounded down, the conservative side, and s^2 the unbiased variance). A
change counts only when that interval excludes 0, i.e. when it is more than seed noise:

    regressed        significantly further from the point's ideal ratio than the baseline
                     (|mean(a) - ideal| > |mean(b) - ideal|), or, for points without one
                     ideal value (baseline rows between 0 and full height, which only must
                     rise; the Table 3 transforms' bands), a significant pass -> fail flip
    improved         the reverse
    unchanged        no significant change and the same verdict
    not_significant  the verdict flipped but the interval contains 0
    new              the baseline has no such point

With fewer than two finite seeds on a side there is no interval: only a pass -> fail flip
counts then (and says so). So a point can regress while still inside its tolerance: a
pipeline gates on "no worse than the baseline" even for an estimator that fails a test.
A verdict that is neither pass nor fail (three-valued verdicts: inconclusive) is no flip.
The evaluation regresses when any point does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from micheck.contract import Comparison, EvaluationResult, PointComparison, Ratio
from micheck.verdicts import t_quantile


def t975(df: float) -> float:
    """The two-sided 95% Student-t quantile (micheck.verdicts.t_quantile)."""
    return t_quantile(0.975, max(1.0, df))


def verdict_of(r: Ratio) -> str:
    """The point's three-valued verdict."""
    return r.verdict


def _finite(xs: Sequence[float | None]) -> list[float]:
    return [x for x in xs if x is not None and math.isfinite(x)]


def welch(a: Sequence[float], b: Sequence[float]
          ) -> tuple[float | None, float | None, float | None]:
    """mean(a) - mean(b) and its 95% Welch interval (None, None without two of each)."""
    if not a or not b:
        return None, None, None
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    d = ma - mb
    if len(a) < 2 or len(b) < 2:
        return d, None, None
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    nu = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t975(nu) * se
    return d, d - half, d + half


def _key(r: Ratio) -> tuple:
    return r.test, r.transform, r.t


def compare_point(cur: Ratio, base: Ratio | None) -> PointComparison:
    verdict = verdict_of(cur)
    a = _finite(cur.per_seed)
    if base is None:
        return PointComparison(test=cur.test, transform=cur.transform, t=cur.t,
                               ratio=cur.value, baseline_ratio=None, difference=None,
                               ci_low=None, ci_high=None, verdict=verdict,
                               baseline_verdict=None, regression="new")
    bverdict = verdict_of(base)
    d, lo, hi = welch(a, _finite(base.per_seed))
    flip = {("pass", "fail"): "regressed", ("fail", "pass"): "improved"}.get(
        (bverdict, verdict))
    note = ""
    significant = lo is not None and hi is not None and (lo > 0 or hi < 0)
    # a one-sided or two-sided band ("ideal: at most 1", "ideal: between 0 and 1", the
    # Table 3 transforms) has no single target to move away from: flips only
    banded = cur.note.startswith("ideal:")
    ideal = cur.ideal if cur.ideal is not None and cur.ideal == base.ideal and not banded \
        else None
    if d is None:
        regression = "unchanged" if flip is None else flip
        note = "no finite ratio on a side: only the verdicts are compared"
    elif lo is None:
        regression = "unchanged" if flip is None else flip
        note = "fewer than two finite seeds on a side: no interval, only a verdict flip counts"
    elif significant and ideal is not None and cur.value is not None \
            and base.value is not None:
        worse = abs(cur.value - ideal) > abs(base.value - ideal)
        regression = "regressed" if worse else "improved"
    elif significant and flip is not None:
        regression = flip
    elif flip is not None:
        regression = "not_significant"
        note = "the verdict flipped but the interval of the difference contains 0"
    else:
        regression = "unchanged"
    return PointComparison(test=cur.test, transform=cur.transform, t=cur.t, ratio=cur.value,
                           baseline_ratio=base.value, difference=d, ci_low=lo, ci_high=hi,
                           verdict=verdict, baseline_verdict=bverdict,
                           regression=regression, note=note)


def compare(result: EvaluationResult, baseline: EvaluationResult, *, evaluation_id: str,
            baseline_id: str, baseline_query: str | None = None) -> Comparison:
    base = {_key(r): r for r in baseline.ratios}
    points = [compare_point(r, base.get(_key(r))) for r in result.ratios]
    return Comparison(evaluation_id=evaluation_id, baseline_id=baseline_id,
                      baseline_query=baseline_query,
                      regression=any(p.regression == "regressed" for p in points),
                      points=points)
