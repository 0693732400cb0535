"""The convergence test's operating characteristic, and the calibration of its critical value.

`python -m bench convergence` simulates held-out training curves whose shape is known and
writes docs/bench/convergence.{md,json}:

* calibration: the 95% quantile of the trend statistic of micheck.convergence.trend over
  flat curves with AR(1) jitter, phi = 0 ... 0.92, on WINDOW_POINTS points; the largest is
  CRITICAL (micheck.convergence re-states it; tests/micheck/test_convergence.py checks the
  two agree within Monte Carlo error);
* size: how often a flat curve is called moving, per phi (at most 5% up to PHI_MAX = 0.92);
* power: how often a curve rising by 2% of its level per quarter of `steps` is called
  moving, per jitter size and autocorrelation; and the smallest drift seen 95% of the time.

Curves are drawn with numpy; the test itself is micheck.convergence.plateau, as the trainer
calls it (CHECKPOINTS points per `steps`, the last WINDOW_POINTS of them tested).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

from bench.report import publish
from micheck.convergence import CHECKPOINTS, CRITICAL, PHI_MAX, WINDOW_POINTS, plateau, trend

OUT = Path(__file__).resolve().parent.parent / "docs" / "bench"
STEPS = 800  # `steps` of the simulated runs: one checkpoint every 10 steps
LEVEL = 5.0  # nats: the curve's plateau


def ar1(rng: np.random.Generator, reps: int, n: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) jitter with marginal standard deviation `sd`, shape (reps, n)."""
    x = np.empty((reps, n))
    x[:, 0] = rng.standard_normal(reps) * sd
    innov = rng.standard_normal((reps, n)) * sd * math.sqrt(1.0 - phi * phi)
    for i in range(1, n):
        x[:, i] = phi * x[:, i - 1] + innov[:, i]
    return x


def curves(rng: np.random.Generator, reps: int, *, phi: float, jitter: float,
           rise_per_quarter: float = 0.0, steps: int = STEPS) -> list[list[tuple[int, float]]]:
    """`reps` curves of CHECKPOINTS points over `steps`: LEVEL, plus a linear rise of
    `rise_per_quarter` x LEVEL per quarter of `steps`, plus AR(1) jitter of `jitter` x LEVEL."""
    every = steps // CHECKPOINTS
    xs = np.arange(every, steps + 1, every)
    base = LEVEL * (1.0 + rise_per_quarter * (xs - steps) / (steps / 4))
    ys = base + ar1(rng, reps, len(xs), phi, jitter * LEVEL)
    return [list(zip(xs.tolist(), row, strict=True)) for row in ys.tolist()]


def moving_share(rng: np.random.Generator, reps: int, **kw) -> float:
    cs = curves(rng, reps, **kw)
    return sum(not plateau(c, quarter=STEPS / 4).converged for c in cs) / reps


def statistic_quantile(phi: float, reps: int, seed: int, q: float = 0.95) -> float:
    """The q-quantile of |slope| / se_inflated over flat AR(phi) windows."""
    rng = np.random.default_rng(seed)
    ys = ar1(rng, reps, WINDOW_POINTS, phi, 1.0).tolist()
    stats = []
    for row in ys:
        slope, se, _ = trend(row)
        stats.append(abs(slope) / se if se > 0 else 0.0)
    return float(np.quantile(stats, q))


def main(reps: int = 20_000, out: Path = OUT) -> dict:
    t0, load = time.perf_counter(), os.getloadavg()
    phis = [0.0, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.92]
    calib = {phi: statistic_quantile(phi, 5 * reps, seed=i) for i, phi in enumerate(phis)}
    rng = np.random.default_rng(1)
    size = {phi: moving_share(rng, reps, phi=phi, jitter=0.05) for phi in phis + [0.95]}
    power = {}
    for phi, jitter in ((0.0, 0.005), (0.5, 0.005), (0.5, 0.01), (0.9, 0.002), (0.9, 0.005),
                        (0.3, 0.02), (0.3, 0.1)):
        power[f"AR {phi}, jitter {jitter:.1%}"] = moving_share(
            rng, reps // 4, phi=phi, jitter=jitter, rise_per_quarter=0.02)
    detectable = {}
    for jitter in (0.005, 0.02, 0.05, 0.1):
        for rise in (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8):
            if moving_share(rng, 2000, phi=0.3, jitter=jitter, rise_per_quarter=rise) >= 0.95:
                detectable[f"{jitter:.1%}"] = rise
                break
        else:
            detectable[f"{jitter:.1%}"] = None
    result = {"critical_used": CRITICAL, "phi_max": PHI_MAX, "window_points": WINDOW_POINTS,
              "calibration_q95": {str(k): round(v, 3) for k, v in calib.items()},
              "calibrated_critical": round(max(v for k, v in calib.items() if k <= PHI_MAX), 3),
              "flat_called_moving": {str(k): v for k, v in size.items()},
              "rising_2pct_per_quarter_called_moving": power,
              "smallest_rise_seen_95pct_AR0.3": detectable, "reps": reps}
    return publish(out, "convergence", result, report, t0, load)


def report(r: dict) -> str:
    lines = ["# The convergence test (`python -m bench convergence`)", "",
             "Simulated held-out curves (numpy), judged by micheck.convergence.plateau as the "
             f"trainer calls it: {CHECKPOINTS} checkpoints per `steps`, the last "
             f"{r['window_points']} tested. Generated with `convergence.json` beside it.", "",
             "## Calibration", "",
             "95% quantile of |drift| / its autocorrelation-inflated standard error over flat "
             "AR(phi) curves:", "", "| phi | q95 |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in r["calibration_q95"].items()]
    lines += ["", f"Largest up to phi = {r['phi_max']}: **{r['calibrated_critical']}**; "
              f"micheck uses CRITICAL = {r['critical_used']}.", "",
              "## Flat curves called moving (jitter 5% of the level)", "",
              "| phi | share |", "|---|---|"]
    lines += [f"| {k} | {v:.1%} |" for k, v in r["flat_called_moving"].items()]
    lines += ["", "## Curves rising 2% of their level per quarter, called moving", "",
              "| jitter | share |", "|---|---|"]
    lines += [f"| {k} | {v:.1%} |" for k, v in r["rising_2pct_per_quarter_called_moving"].items()]
    lines += ["", "## The smallest rise per quarter caught 95% of the time (AR 0.3)", "",
              "The test can only see drift above the curve's own jitter: real critic curves "
              "(SMILE on MNIST) jitter by 8-15% of their level between checkpoints.", "",
              "| jitter (of the level) | rise per quarter |", "|---|---|"]
    lines += [f"| {k} | {'beyond 80%' if v is None else f'{v:.0%}'} |"
              for k, v in r["smallest_rise_seen_95pct_AR0.3"].items()]
    lines += ["", f"{r['reps']:,} curves per cell (power: a quarter of that); run time "
              f"{r['seconds']} s; load average at start {r['loadavg_at_start']}, at end "
              f"{r['loadavg_at_end']}.", ""]
    return "\n".join(lines)
