"""Has a critic converged? A trend test on its held-out training curve.

Torch-free. The trainer records the held-out estimate CHECKPOINTS times per `steps` on the
*same* fixed held-out batches (so the curve moves only when the critic does) and asks this
module whether the estimate has stopped moving:

    window    the checkpoints of the last half of the steps run, as WINDOW_POINTS values:
              at the first check exactly the last 40 checkpoints; after an extension the
              means of consecutive runs of them (so the window keeps spanning half the run
              and neighbouring values stay far enough apart in training to differ)
    drift     the least-squares slope over the window, in nats per quarter of `steps`
    noise     the curve's own fluctuation: the scatter of the window around its line. Critic
              curves wander (consecutive checkpoints share most of their training), so the
              slope's standard error is inflated for lag-1 autocorrelation of the residuals:
              se x sqrt((1 + phi) / (1 - phi)), phi the residuals' lag-1 autocorrelation with
              Kendall's small-sample bias correction (+ (1 + 3 phi) / n), capped at 0.97
    trend     moving when |drift| / se_inflated > CRITICAL *and* |drift| is more than
              REL_TOL of the estimate (or ABS_TOL nats) per quarter: a significant but
              negligible drift is a plateau

CRITICAL is calibrated by simulation (bench/convergence.py, `python -m bench convergence`):
the largest 95% quantile of the statistic over flat AR(1) curves with phi from 0 to PHI_MAX
= 0.92, so a flat curve, however strongly its jitter is autocorrelated up to 0.92, is called
moving at most 5% of the time (about 4% at 0.9). A curve still rising by 2% of its level per quarter is called
moving 99% of the time or more when its jitter is 0.5% of the level (AR 0.5), or 0.2% (AR
0.9); the larger the jitter, the larger the smallest drift the test can see
(docs/bench/convergence.md).

Never converged: a critic trained for fewer than `min_steps` (the engine passes
MIN_SCHEDULE_SHARE of the reference schedule: the paper's on images, 1,000 steps on vector
tasks), or with fewer than WINDOW_POINTS finite checkpoints: a slow curve looks flat over
a few steps, and a handful of points cannot show a trend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CHECKPOINTS = 80  # curve points per `steps` (one every steps // 80 steps)
WINDOW_POINTS = 40  # the trend test's window: the last 40 checkpoints
MIN_SCHEDULE_SHARE = 0.1  # a critic trained for less of the reference schedule never converges
PHI_MAX = 0.92  # the strongest lag-1 autocorrelation CRITICAL holds the level for
CRITICAL = 4.45  # 95% quantile of |t| at PHI_MAX, 40 points (bench/convergence.py)
REL_TOL = 0.01  # a drift below 1% of the estimate per quarter is negligible...
ABS_TOL = 0.01  # ... or below 0.01 nats per quarter
MAX_CURVE_POINTS = 400  # stored curves are thinned to at most this many points


@dataclass(frozen=True)
class Plateau:
    converged: bool
    drift: float  # nats per quarter of `steps` over the window (nan: not tested)
    allowed: float  # the negligible drift
    detail: str
    statistic: float = math.nan  # |drift| / its autocorrelation-inflated standard error


def trend(values: Sequence[float]) -> tuple[float, float, float]:
    """OLS slope per point of `values` (equally spaced), its standard error inflated for
    lag-1 autocorrelation, and the bias-corrected autocorrelation used."""
    n = len(values)
    mx = (n - 1) / 2.0
    my = math.fsum(values) / n
    sxx = math.fsum((i - mx) ** 2 for i in range(n))
    slope = math.fsum((i - mx) * (y - my) for i, y in enumerate(values)) / sxx
    resid = [y - my - slope * (i - mx) for i, y in enumerate(values)]
    ss = math.fsum(r * r for r in resid)
    if ss == 0.0:
        return slope, 0.0, 0.0
    r1 = math.fsum(a * b for a, b in zip(resid, resid[1:], strict=False)) / ss
    phi = min(0.97, max(0.0, r1 + (1.0 + 3.0 * r1) / n))  # Kendall's bias correction
    se = math.sqrt(ss / (n - 2) / sxx) * math.sqrt((1.0 + phi) / (1.0 - phi))
    return slope, se, phi


def plateau(curve: Sequence[tuple[int, float | None]], *, quarter: float, min_steps: int = 0
            ) -> Plateau:
    """The trend test on (step, estimate) pairs; `quarter`: a quarter of `steps`, in steps;
    `min_steps`: fewer steps run than this is never converged."""
    pts = [(s, v) for s, v in curve if v is not None and math.isfinite(v)]
    ran = curve[-1][0] if curve else 0
    if ran < min_steps:
        return Plateau(False, math.nan, 0.0, f"trained {ran} steps, fewer than the "
                       f"{min_steps} ({MIN_SCHEDULE_SHARE:.0%} of the reference schedule) a "
                       "converged critic needs")
    if len(pts) < WINDOW_POINTS:
        return Plateau(False, math.nan, 0.0, f"{len(pts)} finite checkpoints; a trend test "
                       f"needs {WINDOW_POINTS}")
    half = [(st, v) for st, v in pts if st > ran / 2] if ran else pts
    if len(half) < WINDOW_POINTS:
        half = pts[-WINDOW_POINTS:]
    group = len(half) // WINDOW_POINTS
    half = half[len(half) - group * WINDOW_POINTS:]
    window = [(half[i * group + group - 1][0],
               math.fsum(v for _, v in half[i * group:(i + 1) * group]) / group)
              for i in range(WINDOW_POINTS)]
    ys = [v for _, v in window]
    spacing = (window[-1][0] - window[0][0]) / (len(window) - 1) or 1.0
    slope, se, phi = trend(ys)
    drift = slope * quarter / spacing
    se_q = se * quarter / spacing
    level = math.fsum(ys) / len(ys)
    allowed = max(REL_TOL * abs(level), ABS_TOL)
    stat = math.inf if se_q == 0 and drift != 0 else 0.0 if se_q == 0 else abs(drift) / se_q
    moving = stat > CRITICAL and abs(drift) > allowed
    detail = (f"drift {drift:+.3f} nats per quarter over steps {window[0][0]}-{window[-1][0]}"
              f" (|t| {stat:.2f} against {CRITICAL} with autocorrelation {phi:.2f}; "
              f"negligible below {allowed:.3f})")
    return Plateau(not moving, drift, allowed, ("moving: " if moving else "flat: ") + detail,
                   stat)


def min_steps(reference_steps: int) -> int:
    """The fewest steps a converged critic can have trained."""
    return math.ceil(MIN_SCHEDULE_SHARE * reference_steps)


def thin(curve: list[tuple[int, float | None]], limit: int = MAX_CURVE_POINTS
         ) -> list[tuple[int, float | None]]:
    """At most `limit` points, evenly spaced, always keeping the last."""
    if len(curve) <= limit:
        return curve
    stride = math.ceil(len(curve) / limit)
    out = curve[::stride]
    if out[-1] != curve[-1]:
        out.append(curve[-1])
    return out
