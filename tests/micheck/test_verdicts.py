"""The verdict rule and its intervals (micheck.verdicts), against known values."""

from __future__ import annotations

import math
import random

import pytest

from micheck.exits import exit_code
from micheck.verdicts import (
    Band,
    Interval,
    band_of,
    decide,
    overall,
    simultaneous_level,
    student_t_interval,
    t_cdf,
    t_quantile,
)

# two-sided 95% and 99% Student-t quantiles from standard tables
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 29: 2.045}
T995 = {2: 9.925, 4: 4.604, 10: 3.169}


@pytest.mark.parametrize("df,q", T975.items())
def test_t_quantile_975(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-3)


@pytest.mark.parametrize("df,q", T995.items())
def test_t_quantile_995(df, q):
    assert t_quantile(0.995, df) == pytest.approx(q, abs=1e-3)


def test_t_cdf_symmetry_and_normal_limit():
    assert t_cdf(0.0, 5) == pytest.approx(0.5)
    assert t_cdf(-1.3, 7) == pytest.approx(1 - t_cdf(1.3, 7))
    assert t_cdf(1.959964, 1e7) == pytest.approx(0.975, abs=1e-5)  # the normal limit
    assert t_quantile(0.025, 4) == pytest.approx(-2.776, abs=1e-3)


def test_interval_matches_textbook():
    iv = student_t_interval([1.0, 2.0, 3.0], 0.95)
    assert iv is not None
    half = 4.303 * 1.0 / math.sqrt(3)
    assert (iv.mean, iv.low, iv.high) == pytest.approx((2.0, 2.0 - half, 2.0 + half), abs=1e-3)
    assert student_t_interval([1.0], 0.95) is None


def test_interval_covers_at_its_level():
    """Normal samples of 3: the 95% interval covers the mean about 95% of the time."""
    rng = random.Random(0)
    hits = 0
    trials = 4000
    for _ in range(trials):
        iv = student_t_interval([rng.gauss(1.0, 0.3) for _ in range(3)], 0.95)
        hits += iv.low <= 1.0 <= iv.high
    assert 0.935 <= hits / trials <= 0.965


def test_bonferroni_level():
    assert simultaneous_level(20) == pytest.approx(0.9975)
    assert simultaneous_level(10, looks=2) == pytest.approx(0.9975)
    assert simultaneous_level(0) == pytest.approx(0.95)


def iv(lo, hi, n=5):
    return Interval((lo + hi) / 2, lo, hi, 0.95, n)


def test_pass_fail_inconclusive_from_the_interval():
    band = Band(1.7, 2.3)
    assert decide(iv(1.8, 2.2), band, finite=5, total=5).verdict == "pass"
    assert decide(iv(0.9, 1.4), band, finite=5, total=5).verdict == "fail"
    d = decide(iv(1.5, 2.0), band, finite=5, total=5)
    assert d.verdict == "inconclusive" and d.reason_code == "straddles_band"
    assert "[1.500, 2.000]" in d.reason and "[1.7, 2.3]" in d.reason


def test_a_wide_interval_around_the_ideal_is_not_a_pass():
    # the demo's old bug: mean 1.12 inside tolerance, interval [-1.2, 3.4] -> was PASS
    d = decide(iv(-1.2, 3.4), Band(0.85, 1.15), finite=5, total=5)
    assert d.verdict == "inconclusive"


def test_fewer_than_three_seeds_never_decide():
    d = decide(iv(1.99, 2.01, n=2), Band(1.7, 2.3), finite=2, total=2)
    assert d.verdict == "inconclusive" and d.reason_code == "too_few_seeds"
    # ... unless the value does not depend on training
    exact = decide(iv(1.0, 1.0, n=2), Band(0.9, 1.1), finite=2, total=2, exact=True)
    assert exact.verdict == "pass"


def test_not_converged_and_non_finite_are_inconclusive():
    assert decide(iv(1.8, 2.2), Band(1.7, 2.3), finite=5, total=5,
                  converged=False).reason_code == "not_converged"
    assert decide(iv(1.8, 2.2), Band(1.7, 2.3), finite=4, total=5).reason_code == "non_finite"


def test_one_sided_bands():
    dp = band_of("data_processing", "rotation", None, 28, 0.15)
    assert (dp.low, dp.high) == (None, 1.15)
    assert decide(iv(0.2, 0.9), dp, finite=5, total=5).verdict == "pass"
    assert decide(iv(1.2, 1.5), dp, finite=5, total=5).verdict == "fail"
    step = Band(-0.1, None)
    assert decide(iv(-0.05, 0.4), step, finite=5, total=5).verdict == "pass"


def test_baseline_bands_depend_on_t():
    assert band_of("baseline", "rows", 0, 28, 0.1) == Band(-0.1, 0.1)
    assert band_of("baseline", "rows", 28, 28, 0.1) == Band(0.9, 1.1)
    assert band_of("baseline", "rows", 14, 28, 0.1) == Band(-0.1, 1.1)
    assert band_of("additivity", "rows", 14, 28, 0.3) == Band(1.7, 2.3)


def test_overall_and_exit_codes():
    assert overall(["pass", "pass"]) == "pass"
    assert overall(["pass", "inconclusive"]) == "inconclusive"
    assert overall(["inconclusive", "fail"]) == "fail"
    assert [exit_code(v) for v in ("pass", "fail", "inconclusive")] == [0, 1, 4]
    assert exit_code("inconclusive", "pass") == 0 and exit_code("inconclusive", "fail") == 1


def test_alpha_spent_over_looks_never_exceeds_alpha():
    from micheck.verdicts import ALPHA, RESERVE, spend

    assert spend(1, 1) == pytest.approx(ALPHA * (1 - RESERVE))
    assert [spend(k, 3) for k in (1, 2, 3)] == pytest.approx(
        [x * ALPHA * (1 - RESERVE) for x in (0.5, 0.25, 0.25)])
    for planned in (1, 2, 3, 5):
        planned_total = sum(spend(k, planned) for k in range(1, planned + 1))
        assert planned_total == pytest.approx(ALPHA * (1 - RESERVE))
        assert sum(spend(k, planned) for k in range(1, planned + 60)) <= ALPHA
    with pytest.raises(ValueError):
        spend(0, 3)


def test_decision_level_splits_a_looks_alpha_over_decisions():
    from micheck.verdicts import decision_level, spend

    assert decision_level(22, 1, 3) == pytest.approx(1 - spend(1, 3) / 22)
    assert decision_level(0, 1, 1) == pytest.approx(1 - spend(1, 1))


def test_log_scale_interval_is_the_geometric_mean_interval():
    from micheck.verdicts import interval, log_t_interval

    values = [1.5, 2.0, 2.8]
    iv = log_t_interval(values, 0.95)
    logs = student_t_interval([math.log(v) for v in values], 0.95)
    assert iv.scale == "log" and iv.n == 3
    assert (iv.mean, iv.low, iv.high) == pytest.approx(
        (math.exp(logs.mean), math.exp(logs.low), math.exp(logs.high)))
    assert interval(values, 0.95, "log") == iv
    assert interval(values, 0.95).scale == "linear"
    with pytest.raises(ValueError):
        log_t_interval([1.0, -0.1, 2.0], 0.95)


def test_judge_leaves_a_non_positive_log_point_inconclusive():
    from micheck.verdicts import judge

    iv, d = judge([1.9, -0.2, 2.1], Band(1.7, 2.3), 0.99, scale="log")
    assert iv is None and d.verdict == "inconclusive" and d.reason_code == "non_positive"
    iv, d = judge([1.95, 2.0, 2.05], Band(1.7, 2.3), 0.95, scale="log")
    assert d.verdict == "pass" and iv.scale == "log"
    iv, d = judge([None, 2.0, 2.05], Band(1.7, 2.3), 0.95, scale="log")
    assert d.reason_code == "non_finite"
    _, d = judge([1.0, 1.0], Band(0.9, 1.1), 0.95, exact=True)
    assert d.verdict == "pass"


def test_training_failures_keep_failing_whatever_inconclusive_maps_to():
    """--inconclusive pass|fail maps only evidence short of a decision; a diverged or
    unconverged critic exits 1 unless --training-failure says otherwise."""
    assert exit_code("inconclusive", "pass", reasons=["straddles_band"]) == 0
    assert exit_code("inconclusive", "pass", reasons=["too_few_seeds"]) == 0
    assert exit_code("inconclusive", "pass", reasons=["non_finite"]) == 1
    assert exit_code("inconclusive", "pass", reasons=["not_converged", "straddles_band"]) == 1
    assert exit_code("inconclusive", "exit4", reasons=["non_positive"]) == 1
    assert exit_code("inconclusive", "pass", reasons=["not_converged"],
                     training_failure="pass") == 0
    assert exit_code("inconclusive", "exit4", reasons=["not_converged"],
                     training_failure="exit4") == 4
    assert exit_code("inconclusive", "pass", reasons=["straddles_band", "not_converged"],
                     training_failure="exit4") == 4
    assert exit_code("inconclusive", reasons=["straddles_band"]) == 4
    assert exit_code("pass", "fail", reasons=["not_converged"]) == 0
