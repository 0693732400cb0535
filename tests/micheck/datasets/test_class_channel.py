"""The symmetric class channel's MI (micheck.datasets.class_channel) against hand-computed values."""

import math

import pytest

from micheck.datasets.class_channel import (
    binary_entropy,
    channel_mi,
    noisy_pairs_for,
    symmetric_channel_mi,
)

LN10 = math.log(10)


def test_no_noise_is_ln_k_and_full_noise_is_zero():
    assert symmetric_channel_mi(10, 0.0) == pytest.approx(LN10, abs=1e-15)
    assert symmetric_channel_mi(10, 0.9) == pytest.approx(0.0, abs=1e-15)  # (K-1)/K
    assert symmetric_channel_mi(2, 0.5) == pytest.approx(0.0, abs=1e-15)
    assert symmetric_channel_mi(2, 0.0) == pytest.approx(math.log(2))


def test_hand_computed_points():
    # K = 10, eps = 0.1: ln 10 - H_b(0.1) - 0.1 ln 9
    hb = -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))
    assert hb == pytest.approx(0.325082973391448)
    assert symmetric_channel_mi(10, 0.1) == pytest.approx(2.302585092994046 - hb
                                                          - 0.1 * 2.1972245773362196)
    assert symmetric_channel_mi(10, 0.1) == pytest.approx(1.7578, abs=1e-4)
    # K = 2 is the binary symmetric channel: ln 2 - H_b(eps)
    assert symmetric_channel_mi(2, 0.11) == pytest.approx(math.log(2) - binary_entropy(0.11))
    # K = 4, eps = 0.5: ln 4 - ln 2 - 0.5 ln 3
    assert symmetric_channel_mi(4, 0.5) == pytest.approx(math.log(2) - 0.5 * math.log(3))


def test_monotone_decreasing_on_the_useful_range():
    for k in (2, 3, 10):
        grid = [i / 1000 * (k - 1) / k for i in range(1001)]
        values = [symmetric_channel_mi(k, e) for e in grid]
        assert all(a > b for a, b in zip(values, values[1:-1], strict=False))
        assert values[-1] == pytest.approx(0.0, abs=1e-12)


def test_out_of_range_noise_is_refused():
    with pytest.raises(ValueError, match=r"\[0, \(K-1\)/K\]"):
        symmetric_channel_mi(10, 0.95)
    with pytest.raises(ValueError, match="at least 2 classes"):
        symmetric_channel_mi(1, 0.0)


def test_joint_table_matches_the_closed_form_for_a_uniform_prior():
    for eps in (0.0, 0.05, 0.3, 0.7, 0.9):
        assert channel_mi([100] * 10, eps) == pytest.approx(symmetric_channel_mi(10, eps),
                                                            abs=1e-12)


def test_joint_table_with_unequal_classes():
    counts = [1, 3]
    # eps = 0: H(C)
    assert channel_mi(counts, 0.0) == pytest.approx(
        -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    # eps = 0.2, K = 2 by hand: q(0) = 0.25 * 0.8 + 0.75 * 0.2 = 0.35; I = H(Y) - H_b(0.2)
    hy = -(0.35 * math.log(0.35) + 0.65 * math.log(0.65))
    assert channel_mi(counts, 0.2) == pytest.approx(hy - binary_entropy(0.2))
    # an unbalanced prior carries less than the balanced one through the same channel
    assert channel_mi([50, 100, 150], 0.3) < symmetric_channel_mi(3, 0.3)


@pytest.mark.parametrize("target", [2.0, 4.0, 6.0, 8.0, 10.0])
def test_a_target_gets_the_fewest_copies_and_an_exact_truth(target):
    plan = noisy_pairs_for(target)
    assert plan.copies == math.ceil(target / LN10)
    assert 0.0 <= plan.eps < 0.9
    assert plan.mi == plan.copies * symmetric_channel_mi(10, plan.eps)  # exact, by (1)
    assert plan.mi == pytest.approx(target, abs=1e-9)


def test_targets_at_whole_copies_need_no_noise():
    for m in (1, 3, 5):
        plan = noisy_pairs_for(m * LN10)
        assert (plan.copies, plan.eps) == (m, 0.0)
        assert plan.mi == pytest.approx(m * LN10)


def test_hand_checked_plans():
    # 2 nats, one copy: at eps = 0.0489, H_b = 0.1476 + 0.0477 and eps ln 9 = 0.1074, so
    # ln 10 - H_b(eps) - eps ln 9 = 2.3026 - 0.3027 = 1.9999
    plan = noisy_pairs_for(2.0)
    assert plan.copies == 1 and plan.eps == pytest.approx(0.0489, abs=1e-4)
    # 10 nats: five copies of 2 nats each, the same eps
    assert noisy_pairs_for(10.0).eps == pytest.approx(plan.eps, abs=1e-12)
    with pytest.raises(ValueError, match="at most 16"):
        noisy_pairs_for(40.0)
    with pytest.raises(ValueError, match="positive"):
        noisy_pairs_for(0.0)
