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
