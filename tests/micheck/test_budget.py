"""The compute budget (micheck.budget): a blocked critic is costed by the pairs it scores."""

from __future__ import annotations

import pytest

from micheck import budget
from micheck.contract import CriticSpec, EvaluationRequest


def _request(critic: dict) -> EvaluationRequest:
    return EvaluationRequest.model_validate({
        "estimator": {"name": "smile", "critic": critic, "train": {"batch_size": 64}},
        "dataset": {"name": "mnist"}, "tests": [{"kind": "additivity",
                                                 "transform": "rotation"}]})


@pytest.mark.parametrize("block", [8, 16, 64])
def test_a_blocked_joint_cnn_costs_n_times_b_trunk_passes(block):
    full = CriticSpec(kind="joint", width=0.25)
    blocked = CriticSpec(kind="joint", width=0.25, block=block)
    n, shape = 64, (1, 28, 28)
    # conv1 runs once per x and per y either way; what follows runs once per scored pair
    first, rest = budget._cnn(2, 28, 28, 1, 0.25)
    assert budget.critic_forward_macs(full, shape, 1, n) == n * first + n * n * rest
    assert budget.critic_forward_macs(blocked, shape, 1, n) == n * first + n * block * rest
    cost_full = budget.estimate(_request({"kind": "joint", "width": 0.25}))
    cost = budget.estimate(_request({"kind": "joint", "width": 0.25, "block": block}))
    assert cost.trainings == cost_full.trainings
    ratio = cost.gmac / cost_full.gmac
    assert ratio == pytest.approx(block / n, rel=0.05) if block < n else ratio == 1.0


def test_blocks_on_a_separable_critic_save_only_dot_products():
    n = 64
    full = budget.critic_forward_macs(CriticSpec(kind="separable"), (5,), 1, n)
    blocked = budget.critic_forward_macs(CriticSpec(kind="separable", block=8), (5,), 1, n)
    assert full - blocked == n * (n - 8) * 32  # embed_dim 32


def _gt(dataset: dict, estimator: dict | None = None,
        test: dict | None = None) -> EvaluationRequest:
    return EvaluationRequest.model_validate({
        "estimator": estimator or {"name": "infonce", "train": {"batch_size": 64}},
        "dataset": dataset, "tests": [test or {"kind": "ground_truth"}]})


def test_copies_of_image_pairs_cost_their_channels():
    one = budget.estimate(_gt({"name": "mnist", "pairs": "same_class", "copies": 1}))
    five = budget.estimate(_gt({"name": "mnist", "pairs": "same_class", "copies": 5}))
    assert five.trainings == one.trainings and five.critic_steps == one.critic_steps
    # only conv1 sees the channels: more than one copy's cost, less than five times it
    assert one.gmac < five.gmac < 5 * one.gmac
    first1, _ = budget._cnn(1, 28, 28, 32, 1.0)
    first5, _ = budget._cnn(5, 28, 28, 32, 1.0)
    assert first5 == 5 * first1


def test_estimators_that_train_nothing_are_costed_by_their_held_out_work():
    mige = _gt({"name": "gaussian", "dim": 8}, {
        "name": "mige", "train": {"batch_size": 64, "eval_samples": 512}},
        {"kind": "mi_gradient", "rho": [0.5, 0.8]})
    cost = budget.estimate(mige)
    assert cost.trainings == 0 and cost.critic_steps == 0 and cost.train_gmac == 0
    # two score estimates (H(Y), H(X, Y)) of n^2 kernel entries over the joint's 2d coordinates
    want = 2 * mige.seed_cap * (2 * 512 ** 2 * 2 * 8) / 1e9
    assert cost.gmac == pytest.approx(want, rel=1e-3)
