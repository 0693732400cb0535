"""Has a critic converged? The plateau test on its held-out training curve.

Torch-free. The trainer records the held-out estimate every few steps on the *same* fixed
held-out batches (so the curve moves only when the critic does), and asks this module
whether the estimate has stopped moving over the last part of training:

    window   the checkpoints in the last WINDOW (25%) of the steps run, at least 4 of them
    drift    the least-squares slope over the window times the window's length in steps:
             how far the estimate moved over the last quarter of training
    noise    the standard error of the estimate at the last checkpoint (spread of the
             per-batch values over the fixed batches / sqrt(batches)), and the residual
             scatter of the window around its line

Converged when |drift| <= max(2 x noise, REL_TOL x |estimate|, ABS_TOL): the estimate moved
less over the last quarter than its own evaluation noise, or less than 2% of its value.
A curve that is still rising (an under-trained critic) fails; a noisy flat one passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WINDOW = 0.25  # the last quarter of the steps run
MIN_POINTS = 4
REL_TOL = 0.02
ABS_TOL = 0.01  # nats
CHECKPOINTS = 40  # curve points per `steps` (more when training is extended)
MAX_CURVE_POINTS = 400  # stored curves are thinned to at most this many points


@dataclass(frozen=True)
class Plateau:
    converged: bool
    drift: float  # nats over the window
    allowed: float
    detail: str


def plateau(curve: Sequence[tuple[int, float | None]], batch_se: float = 0.0) -> Plateau:
    """The plateau test on (step, estimate) pairs."""
    pts = [(s, v) for s, v in curve if v is not None and math.isfinite(v)]
    if len(pts) < MIN_POINTS:
        return Plateau(False, math.nan, 0.0, f"{len(pts)} finite checkpoints, need {MIN_POINTS}")
    last_step = pts[-1][0]
    start = last_step - WINDOW * last_step
    window = [p for p in pts if p[0] >= start]
    if len(window) < MIN_POINTS:
        window = pts[-MIN_POINTS:]
    xs = [float(s) for s, _ in window]
    ys = [v for _, v in window]
    n = len(window)
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    slope = 0.0 if sxx == 0 else math.fsum((x - mx) * (y - my) for x, y in
                                          zip(xs, ys, strict=True)) / sxx
    span = xs[-1] - xs[0]
    drift = slope * span
    resid = [y - (my + slope * (x - mx)) for x, y in zip(xs, ys, strict=True)]
    scatter = math.sqrt(math.fsum(r * r for r in resid) / max(1, n - 2))
    noise = max(batch_se, scatter)
    allowed = max(2.0 * noise, REL_TOL * abs(ys[-1]), ABS_TOL)
    ok = abs(drift) <= allowed
    detail = (f"moved {drift:+.3f} nats over steps {int(xs[0])}-{int(xs[-1])} "
              f"({'within' if ok else 'beyond'} {allowed:.3f}: 2 x noise {noise:.3f}, "
              f"{REL_TOL:.0%} of {ys[-1]:.3f})")
    return Plateau(ok, drift, allowed, detail)


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
