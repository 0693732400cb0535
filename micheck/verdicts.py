"""How a verdict follows from its evidence: bands, intervals and the three-valued rule.

Torch-free and numpy-free: the workers decide verdicts with it, the service stores what it
decided, the clients print, plot and write JUnit from the same fields. Nothing here parses a
message: every band, interval and reason is data.

The rule (an equivalence test, Schuirmann's two one-sided tests read as an interval):

    pass          the whole interval lies inside the band
    fail          the whole interval lies outside the band
    inconclusive  anything else, with a reason code and a one-line reason

The interval: each seed trains its critics from scratch and evaluates them on the whole
held-out split, giving one value per seed (a ratio of two per-seed estimates). Seeds are
independent and identically distributed, and each per-seed value carries both sources of
noise that exist (training from a random init and batches, and the finite held-out
evaluation), so a Student-t interval over the per-seed values covers both. The interval is
simultaneous over every decision of an evaluation (its points, its monotonicity steps and
every look of the adaptive seed rule): each is built at level 1 - alpha / (decisions x looks)
(Bonferroni), so the probability that *any* pass or fail of the evaluation is wrong is at
most alpha (0.05 by default) when the per-seed values are close to normal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from micheck import testkinds
from micheck.bands import Band

Verdict = Literal["pass", "fail", "inconclusive"]
ReasonCode = Literal[
    "inside_band",  # pass
    "outside_band",  # fail
    "straddles_band",  # the interval overlaps the band's edge: more seeds may decide it
    "too_few_seeds",  # fewer than MIN_SEEDS finite per-seed values
    "not_converged",  # a critic the value depends on had not reached a plateau
    "non_finite",  # a seed gave no finite value (diverged critic, zero denominator)
]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "inconclusive")

ALPHA = 0.05  # family-wise error rate of one evaluation's verdicts
MIN_SEEDS = 3  # a value that depends on training is never decided on fewer seeds
INTERVAL_METHOD = "student-t over seeds, Bonferroni-simultaneous"


# ---- the bands of each test: entries of the test-kind registry (micheck.testkinds) ---------

# Default half-widths of the bands, and the ideal value of each test's ratio (paper 002
# Sec. 4.2; baseline's depends on t), per test kind; a request's `tolerance` overrides them.
DEFAULT_TOLERANCE: dict[str, float] = {k.name: k.tolerance for k in testkinds.entries()}
IDEAL: dict[str, float | None] = {k.name: k.ideal for k in testkinds.entries()}


def ideal_of(kind: str, transform: str, t: int | None, height: int) -> float | None:
    """The ideal value of one point, or None where the property is a range (baseline)."""
    return testkinds.get(kind).ideal_of(transform, t, height)


def band_of(kind: str, transform: str, t: int | None, height: int, tol: float) -> Band:
    """The band a point's interval must lie in (the kind's entry: paper 002 Sec. 4.2,
    Table 3)."""
    return testkinds.get(kind).band_of(transform, t, height, tol)


def monotone_band(tol: float) -> Band:
    """Baseline monotonicity: r(t_k) - r(t_{k-1}) >= -tol, tested on paired per-seed steps."""
    return testkinds.get("baseline").step_band(tol)


# ---- intervals -----------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(x: float, df: float) -> float:
    """Student-t distribution function: 1 - I_{df/(df+x^2)}(df/2, 1/2) / 2 for x > 0."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + x * x))
    return 1.0 - tail if x >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df degrees of freedom (bisection on t_cdf)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    level: float
    n: int


def student_t_interval(values: Sequence[float], level: float) -> Interval | None:
    """Two-sided Student-t interval of the mean at `level`; None with fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile(0.5 + level / 2.0, n - 1) * math.sqrt(var / n)
    return Interval(mean, mean - half, mean + half, level, n)


def simultaneous_level(decisions: int, looks: int = 1, alpha: float = ALPHA) -> float:
    """Per-interval level that keeps the family-wise error at alpha (Bonferroni)."""
    return 1.0 - alpha / max(1, decisions * looks)


# ---- the rule -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason_code: ReasonCode
    reason: str  # one line; empty for a pass


def decide(interval: Interval | None, band: Band, *, finite: int, total: int,
           converged: bool = True, exact: bool = False) -> Decision:
    """Pass, fail or inconclusive for one point, from its interval and band.

    `finite`/`total`: seeds that gave a finite value / seeds run. `exact`: the value does
    not depend on training (e.g. I(X; X) / I(X; X)), so neither the seed count nor
    convergence matters.
    """
    if finite < total:
        return Decision("inconclusive", "non_finite",
                        f"{total - finite} of {total} seeds gave no finite value")
    if not converged and not exact:
        return Decision("inconclusive", "not_converged",
                        "a critic it depends on had not converged (train longer or set "
                        "train.until_converged)")
    if not exact and (interval is None or interval.n < MIN_SEEDS):
        n = 0 if interval is None else interval.n
        return Decision("inconclusive", "too_few_seeds",
                        f"{max(n, finite)} seed(s); pass or fail needs at least {MIN_SEEDS}")
    assert interval is not None
    lo, hi = interval.low, interval.high
    if band.contains(lo, hi):
        return Decision("pass", "inside_band", "")
    if band.excludes(lo, hi):
        return Decision("fail", "outside_band",
                        f"interval [{lo:.3f}, {hi:.3f}] lies outside the band {band.describe()}")
    return Decision("inconclusive", "straddles_band",
                    f"interval [{lo:.3f}, {hi:.3f}] overlaps the edge of the band "
                    f"{band.describe()}: more seeds would narrow it")


def overall(verdicts: Sequence[Verdict]) -> Verdict:
    """An evaluation fails if any point fails, passes if every point passes."""
    if any(v == "fail" for v in verdicts):
        return "fail"
    if verdicts and all(v == "pass" for v in verdicts):
        return "pass"
    return "inconclusive"


RESOLVABLE_BY_SEEDS: frozenset[str] = frozenset({"straddles_band", "too_few_seeds"})
