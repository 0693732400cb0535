"""micheck.compare: the Welch interval of a difference of mean ratios, and when a point
counts as regressed."""

from __future__ import annotations

import pytest

from micheck.compare import compare_point, t975, welch
from micheck.contract import Ratio


def _ratio(per_seed: list[float | None], passed: bool, **kw) -> Ratio:
    good = [v for v in per_seed if v is not None]
    return Ratio(**{"test": "additivity", "t": 14, "value": sum(good) / len(good),
                    "ci_low": None, "ci_high": None, "ideal": 2.0, "passed": passed,
                    "verdict": "pass" if passed else "fail",
                    "tolerance": 0.3, "per_seed": per_seed, **kw})


def test_welch_interval_by_hand():
    # means 2 and 3, unit variances, n = 3 each: se = sqrt(2/3), nu = 4, t = 2.776
    d, lo, hi = welch([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    half = 2.7764 * (2 / 3) ** 0.5
    assert d == pytest.approx(-1.0)
    assert (lo, hi) == (pytest.approx(-1 - half, abs=1e-3), pytest.approx(-1 + half, abs=1e-3))
    assert welch([1.0], [2.0, 3.0]) == (-1.5, None, None)
    assert welch([], [1.0]) == (None, None, None)
    assert t975(4) == pytest.approx(2.776, abs=1e-3)
    assert t975(0.5) == pytest.approx(12.706, abs=1e-3)  # below 1 df: clamped to 1
    assert t975(100) == pytest.approx(1.984, abs=1e-3)


def test_regression_needs_a_flip_beyond_seed_noise():
    base = _ratio([1.98, 2.01, 2.02], passed=True)
    worse = _ratio([1.41, 1.40, 1.43], passed=False)
    p = compare_point(worse, base)
    assert p.regression == "regressed" and p.ci_high < 0
    assert p.difference == pytest.approx(1.413333 - 2.003333, abs=1e-5)
    assert compare_point(base, worse).regression == "improved"
    # a flip that the seeds cannot tell from noise
    noisy_base = _ratio([1.5, 2.5, 2.1], passed=True)
    noisy_now = _ratio([1.2, 2.4, 1.6], passed=False)
    p = compare_point(noisy_now, noisy_base)
    assert p.regression == "not_significant" and p.ci_low < 0 < p.ci_high and p.note
    # one seed: no interval exists, the flip counts and says so
    p = compare_point(_ratio([1.4], passed=False), _ratio([2.0], passed=True))
    assert p.regression == "regressed" and p.ci_low is None and "no interval" in p.note
    # still inside the tolerance, but significantly further from the ideal 2
    p = compare_point(_ratio([1.80, 1.79, 1.81], True), base)
    assert p.regression == "regressed" and p.verdict == p.baseline_verdict == "pass"
    assert compare_point(_ratio([1.97, 2.04], True), base).regression == "unchanged"
    # a band (data processing under a transform: at most 1 + tol) has no single target:
    # moving within it is no regression, only a significant flip out of it is
    band = {"test": "data_processing", "t": None, "transform": "rotation", "ideal": 1.0,
            "note": "ideal: at most 1 (Table 3)", "tolerance": 0.15}
    low = _ratio([0.50, 0.52, 0.51], True, **band)
    assert compare_point(low, _ratio([0.90, 0.91, 0.92], True, **band)).regression \
        == "unchanged"
    assert compare_point(_ratio([1.30, 1.31, 1.29], False, **band), low).regression \
        == "regressed"
    # a point the baseline did not have
    p = compare_point(_ratio([2.0, 2.0], True, t=7), None)
    assert p.regression == "new" and p.baseline_verdict is None
