"""The trend test (micheck.convergence) on simulated curves whose shape is known (issue #18
item 4). Deterministic: every curve comes from a fixed seed. Operating characteristics over
many more curves: docs/bench/convergence.md (`python -m bench convergence`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.convergence import STEPS, curves, moving_share, statistic_quantile
from micheck.convergence import (
    CHECKPOINTS,
    CRITICAL,
    MAX_CURVE_POINTS,
    WINDOW_POINTS,
    min_steps,
    plateau,
    thin,
    trend,
)

QUARTER = STEPS / 4


def test_a_curve_rising_2_percent_per_quarter_is_flagged():
    """At least 95% of curves still rising by 2% of their level per quarter of `steps` are
    called moving, with jitter of 0.5% of the level (AR 0.5) or 0.2% (AR 0.9)."""
    rng = np.random.default_rng(0)
    assert moving_share(rng, 2000, phi=0.5, jitter=0.005, rise_per_quarter=0.02) >= 0.95
    assert moving_share(rng, 2000, phi=0.9, jitter=0.002, rise_per_quarter=0.02) >= 0.95


@pytest.mark.parametrize("phi", [0.0, 0.7, 0.9])
def test_a_flat_curve_with_autocorrelated_jitter_is_rarely_flagged(phi):
    """At most 5% of flat curves are called moving, however strongly their jitter wanders
    (up to AR 0.92; the old test flagged 37-45% at AR 0.7-0.9)."""
    rng = np.random.default_rng(int(phi * 10))
    assert moving_share(rng, 4000, phi=phi, jitter=0.05) <= 0.05


def test_the_critical_value_is_the_calibrated_one():
    """CRITICAL restates the simulation's 95% quantile at phi = 0.92 (bench convergence)."""
    q = statistic_quantile(0.92, 40_000, seed=6)
    assert q == pytest.approx(CRITICAL, rel=0.04)


def test_too_short_a_run_never_converges():
    """A slow curve looks flat over a few steps: below the minimum share of the reference
    schedule, or with fewer points than the window, a critic is never converged."""
    flat = curves(np.random.default_rng(1), 1, phi=0.0, jitter=0.0)[0]
    assert plateau(flat, quarter=QUARTER).converged
    short = plateau(flat, quarter=QUARTER, min_steps=STEPS + 1)
    assert not short.converged and "fewer than" in short.detail
    few = plateau(flat[-(WINDOW_POINTS - 1):], quarter=QUARTER)
    assert not few.converged and "needs" in few.detail
    assert min_steps(1875) == 188  # 10% of MNIST's 2 epochs at batch 64


def test_the_20_step_critic_of_the_issue_is_not_converged():
    """SMILE, 20 steps, Adam 1e-4: 1% of the paper's 1,875 steps. Its curve may look flat;
    it decides nothing."""
    tiny = [(s, 0.01 * s) for s in range(1, 21)]
    p = plateau(tiny, quarter=5, min_steps=min_steps(1875))
    assert not p.converged


def test_a_negligible_but_significant_drift_is_a_plateau():
    """A perfectly smooth curve drifting 0.2% per quarter is significant but negligible."""
    every = STEPS // CHECKPOINTS
    c = [(s, 5.0 * (1 + 0.002 * (s - STEPS) / QUARTER)) for s in range(every, STEPS + 1,
                                                                       every)]
    p = plateau(c, quarter=QUARTER)
    assert p.converged and p.statistic > CRITICAL


def test_trend_by_hand():
    slope, se, phi = trend([1.0, 2.0, 3.0, 4.0, 5.0])
    assert slope == pytest.approx(1.0) and se == 0.0
    slope, se, phi = trend([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    assert phi == 0.0 and se > 0 and math.isfinite(slope)


def test_thin_keeps_the_last_point():
    c = [(s, float(s)) for s in range(1, 1001)]
    t = thin(c)
    assert len(t) <= MAX_CURVE_POINTS + 1 and t[-1] == c[-1] and t[0] == c[0]
