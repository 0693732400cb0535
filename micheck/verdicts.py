"""How a verdict follows from its evidence: bands, intervals, the level of each look, and the
three-valued rule.

Torch-free and numpy-free: the workers decide verdicts with it, the service stores what it
decided, the clients print, plot and write JUnit from the same fields. Nothing here parses a
message: every band, interval and reason is data.

The rule (an equivalence test, Schuirmann's two one-sided tests read as an interval):

    pass          the whole interval lies inside the band
    fail          the whole interval lies outside the band
    inconclusive  anything else, with a reason code and a one-line reason

The interval. Each seed trains its critics from scratch and evaluates them on the whole
held-out split, giving one value per seed, so seeds are independent and identically
distributed and each value carries both sources of noise (training, and the finite held-out
pass). A point's interval is a Student-t interval over those per-seed values, on one of two
scales fixed by the kind of point (never chosen from the data):

    log      points whose value is a ratio of two positive MI estimates (or of one and the
             true MI) with a positive ideal: data processing, additivity, ground truth. The
             interval is exp of the t interval of log r_s = log N_s - log D_s: it is exact
             when numerator and denominator are lognormal (any CVs, any correlation), so the
             skew that dividing two noisy estimates produces costs no level; its centre is
             the geometric mean of the ratios. A seed whose ratio is <= 0 (a negative MI
             estimate) leaves the point inconclusive (`non_positive`).
    linear   points whose value crosses or sits at 0: baseline rows, independence,
             monotonicity steps, MI-gradient rows; a t interval of the mean.

Simulated in tests/micheck/test_levels.py and bench/levels.py: the t interval on raw ratios
loses its level under skew (lognormal sigma = 1 ratios: 52x the allowance at a band edge);
Fieller's interval for the ratio of means keeps it only when numerator and denominator are
normal, and at 3 seeds is unbounded for most draws; the log-scale interval keeps it in
every lognormal and heavy-tailed case simulated.

The level. Every interval of an evaluation is simultaneous over its decisions (points and
monotonicity steps) and its looks (each time the adaptive rule decides again after adding
seeds): a look spends a share of alpha (`spend`, alpha spending over looks: half of it at the
first look, where 3 seeds leave 2 degrees of freedom and alpha is dearest), split equally
over the decisions (Bonferroni), so the probability that *any* pass or fail of the evaluation
is wrong is at most alpha (0.05 by default) whatever the dependence between points and looks.
A decision, once taken, is final: later looks decide only what is still open. RESERVE of
alpha is kept for looks added after the planned ones (more seeds for a finished evaluation).

Holm's step-down is not used across verdicts: a three-valued point always has one true
hypothesis (inside or outside the band), so deciding a point frees no alpha for the others
(Shaffer's count of possibly true hypotheses stays at the number of points) and the
step-down reduces to this Bonferroni split. The regression gate (micheck.compare), where
each point has one null hypothesis, uses Holm.
"""

from __future__ import annotations

import functools
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
    "non_positive",  # log-scale point: a seed's ratio is <= 0 (a negative MI estimate)
]
Scale = Literal["linear", "log"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "inconclusive")

ALPHA = 0.05  # family-wise error rate of one evaluation's verdicts
MIN_SEEDS = 3  # a value that depends on training is never decided on fewer seeds
INTERVAL_METHOD = "student-t over seeds, Bonferroni-simultaneous"  # rows before engine v3
INTERVAL_METHODS: dict[str, str] = {
    "linear": "student-t over seeds; alpha spent over looks, Bonferroni over decisions",
    "log": "student-t on log ratios (geometric mean); alpha spent over looks, Bonferroni "
           "over decisions",
}

RESERVE = 0.1  # share of alpha kept for looks after the planned ones (more seeds, later)


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


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df degrees of freedom (bisection on t_cdf;
    memoised: an evaluation asks for few distinct levels and seed counts)."""
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
    mean: float  # the centre: the mean, or on the log scale the geometric mean
    low: float
    high: float
    level: float
    n: int
    scale: Scale = "linear"


def student_t_interval(values: Sequence[float], level: float) -> Interval | None:
    """Two-sided Student-t interval of the mean at `level`; None with fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile(0.5 + level / 2.0, n - 1) * math.sqrt(var / n)
    return Interval(mean, mean - half, mean + half, level, n)


def log_t_interval(values: Sequence[float], level: float) -> Interval | None:
    """exp of the Student-t interval of the mean of log(values): an interval for the
    geometric mean, exact for lognormal values. None with fewer than 2 values; every value
    must be > 0 (ValueError otherwise)."""
    if any(v <= 0 for v in values):
        raise ValueError("the log-scale interval needs positive values")
    iv = student_t_interval([math.log(v) for v in values], level)
    if iv is None:
        return None
    return Interval(math.exp(iv.mean), math.exp(iv.low), math.exp(iv.high), level, iv.n,
                    "log")


def interval(values: Sequence[float], level: float, scale: Scale = "linear"
             ) -> Interval | None:
    """The interval of one point on its scale (see the module docstring)."""
    return log_t_interval(values, level) if scale == "log" else \
        student_t_interval(values, level)


def simultaneous_level(decisions: int, looks: int = 1, alpha: float = ALPHA) -> float:
    """Per-interval level with alpha split equally over decisions x looks (Bonferroni); the
    rule of rows stored before engine v3, kept to read them."""
    return 1.0 - alpha / max(1, decisions * looks)


def spend(look: int, planned: int, alpha: float = ALPHA) -> float:
    """The alpha a look spends (1-based `look`; `planned` looks of the adaptive rule).

    The planned looks share (1 - RESERVE) alpha: half at the first look, then halving, the
    last planned look taking what is left (1 look: all; 2: 1/2, 1/2; 3: 1/2, 1/4, 1/4).
    The first look gets the most because its intervals rest on the fewest seeds: at 3 seeds
    (2 degrees of freedom) the t quantile grows like alpha^(-1/2), at 12 like alpha^(-1/11),
    so alpha buys width where seeds are few. Looks after the planned ones (more seeds added
    to a finished evaluation) spend RESERVE alpha / 2^e for the e-th extra look. The sum over
    all looks never exceeds alpha, so any sequence of looks keeps the family-wise level
    (union bound; no assumption on how looks depend on each other)."""
    if look < 1 or planned < 1:
        raise ValueError("looks are counted from 1")
    main = alpha * (1.0 - RESERVE)
    if look > planned:
        return alpha * RESERVE * 0.5 ** (look - planned)
    if planned == 1:
        return main
    return main * (0.5 ** look if look < planned else 0.5 ** (planned - 1))


def decision_level(decisions: int, look: int, planned: int, alpha: float = ALPHA) -> float:
    """The two-sided level of each interval at `look`: its alpha share split equally over
    the evaluation's decisions (Bonferroni)."""
    return 1.0 - spend(look, planned, alpha) / max(1, decisions)


# ---- the rule -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason_code: ReasonCode
    reason: str  # one line; empty for a pass


def decide(interval: Interval | None, band: Band, *, finite: int, total: int,
           converged: bool = True, exact: bool = False, non_positive: int = 0) -> Decision:
    """Pass, fail or inconclusive for one point, from its interval and band.

    `finite`/`total`: seeds that gave a finite value / seeds run. `exact`: the value does
    not depend on training (e.g. I(X; X) / I(X; X)), so neither the seed count nor
    convergence matters. `non_positive`: seeds whose ratio is <= 0 on a log-scale point.
    """
    if finite < total:
        return Decision("inconclusive", "non_finite",
                        f"{total - finite} of {total} seeds gave no finite value")
    if non_positive:
        return Decision("inconclusive", "non_positive",
                        f"{non_positive} of {total} seeds gave a ratio <= 0 (a negative MI "
                        "estimate); this point's interval is on the log scale")
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


def judge(values: Sequence[float | None], band: Band, level: float, *, scale: Scale = "linear",
          converged: bool = True, exact: bool = False) -> tuple[Interval | None, Decision]:
    """One point decided from its per-seed values (None: a seed gave no finite value): the
    interval on the point's scale at `level`, and the rule's decision. The one place where
    values become a verdict (micheck.scoring builds its rows with it)."""
    finite = [v for v in values if v is not None]
    non_positive = sum(1 for v in finite if v <= 0) if scale == "log" else 0
    iv: Interval | None
    if exact:  # no spread to estimate: the value is the same on every seed
        iv = Interval(finite[0], finite[0], finite[0], 1.0, len(finite)) if finite else None
    elif non_positive:
        iv = None
    else:
        iv = interval(finite, level, scale)
    return iv, decide(iv, band, finite=len(finite), total=len(values), converged=converged,
                      exact=exact, non_positive=non_positive)


def overall(verdicts: Sequence[Verdict]) -> Verdict:
    """An evaluation fails if any point fails, passes if every point passes."""
    if any(v == "fail" for v in verdicts):
        return "fail"
    if verdicts and all(v == "pass" for v in verdicts):
        return "pass"
    return "inconclusive"


RESOLVABLE_BY_SEEDS: frozenset[str] = frozenset({"straddles_band", "too_few_seeds"})
