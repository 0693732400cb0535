"""The plateau test (micheck.convergence) on curves whose shape is known."""

from __future__ import annotations

import math
import random

from micheck.convergence import MAX_CURVE_POINTS, plateau, thin


def curve(f, steps=1000, points=40, noise=0.0, seed=0):
    rng = random.Random(seed)
    return [(s, f(s) + rng.gauss(0, noise)) for s in range(steps // points, steps + 1,
                                                          steps // points)]


def test_a_rising_curve_has_not_converged():
    p = plateau(curve(lambda s: 2.0 * s / 1000))  # still climbing linearly
    assert not p.converged and p.drift > 0.4


def test_a_saturated_curve_has_converged():
    p = plateau(curve(lambda s: 2.0 * (1 - math.exp(-s / 80)), noise=0.01))
    assert p.converged, p.detail


def test_noise_is_not_mistaken_for_movement():
    p = plateau(curve(lambda s: 1.0, noise=0.2), batch_se=0.1)
    assert p.converged, p.detail


def test_a_slow_rise_beyond_the_noise_is_caught():
    p = plateau(curve(lambda s: 1.0 + 0.5 * s / 1000, noise=0.01), batch_se=0.01)
    assert not p.converged, p.detail


def test_too_few_points():
    assert not plateau([(1, 0.5), (2, 0.6)]).converged
    assert not plateau([(1, None), (2, float("nan")), (3, 1.0), (4, 1.0)]).converged


def test_thin_keeps_the_last_point():
    c = [(s, float(s)) for s in range(1, 1001)]
    t = thin(c)
    assert len(t) <= MAX_CURVE_POINTS + 1 and t[-1] == c[-1] and t[0] == c[0]
