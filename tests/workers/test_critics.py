"""Critic blocks (``critic.block``): the blocked score tensor is the diagonal blocks of the
full matrix, each bound on it is the mean over blocks of the bound at batch size b (with
b = n: the full-matrix bound, the same numbers), and a trained blocked InfoNCE critic keeps
under its log b ceiling."""

from __future__ import annotations

import math

import pytest
import torch
from micheck.workers import bounds as E
from micheck.workers.critics import build_critic
from micheck.workers.data import sample_gaussian
from micheck.workers.stacked import Stack
from micheck.workers.trainer import CriticTask, train_critics

from micheck import estimators as registry
from micheck.contract import CriticSpec, EstimatorSpec

CPU = torch.device("cpu")
N = 16
DISCRIMINATIVE = [e.name for e in registry.entries() if e.family == "discriminative"
                  and e.name in E._BOUNDS]
# (critic spec, one sample's shape): every architecture, CNNs at a tiny width
CRITICS = [({"kind": "joint", "hidden": 16}, (5,)),
           ({"kind": "separable", "hidden": 16, "embed_dim": 8}, (5,)),
           ({"kind": "joint", "width": 0.0625}, (1, 12, 12)),
           ({"kind": "separable", "width": 0.0625, "embed_dim": 8}, (1, 12, 12))]
IDS = ["joint-mlp", "separable-mlp", "joint-cnn", "separable-cnn"]


def _stack(critic: dict, shape: tuple[int, ...], block: int | None, k: int = 2) -> Stack:
    """K critics whose weights depend on the member index only, not on the block."""
    spec = CriticSpec(**critic, block=block)
    modules = []
    for i in range(k):
        torch.manual_seed(100 + i)
        modules.append(build_critic(spec, shape, shape))
    return Stack(modules, 1e-3, CPU)


def _data(shape: tuple[int, ...], k: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(k, N, *shape, generator=g)
    y = 0.8 * x + 0.6 * torch.randn(k, N, *shape, generator=g)
    return x, y


def _bounds(name: str, blocked: bool) -> E.Bound:
    # a non-zero learned baseline, so TUBA's and I_alpha's broadcasting is exercised
    base = torch.tensor([0.3, -0.2])
    est = EstimatorSpec(name=name, critic={"block": N if blocked else None},
                        train={"batch_size": N})
    return E.critic_bound(est, lambda: base)


@pytest.mark.parametrize(("critic", "shape"), CRITICS, ids=IDS)
def test_a_block_of_the_whole_batch_gives_the_full_matrix_bound(critic, shape):
    x, y = _data(shape)
    full = _stack(critic, shape, None)(x, y)
    whole = _stack(critic, shape, N)(x, y)
    assert full.shape == (2, N, N) and whole.shape == (2, 1, N, N)
    torch.testing.assert_close(whole[:, 0], full)
    for name in DISCRIMINATIVE:
        plain, blocked = _bounds(name, False), _bounds(name, True)
        torch.testing.assert_close(blocked.value(whole), plain.value(full), msg=name)
        for _ in range(2):  # MINE's moving average: the same after each step
            torch.testing.assert_close(blocked.objective(whole), plain.objective(full),
                                       msg=name)
        if plain.state.ema is not None:
            torch.testing.assert_close(blocked.state.ema.squeeze(-1), plain.state.ema)


@pytest.mark.parametrize(("critic", "shape"), CRITICS, ids=IDS)
def test_blocks_are_the_diagonal_blocks_and_bounds_average_over_them(critic, shape):
    b = 4
    x, y = _data(shape)
    full = _stack(critic, shape, None)(x, y)
    blocked = _stack(critic, shape, b)(x, y)
    assert blocked.shape == (2, N // b, b, b)
    for m in range(N // b):
        s = slice(m * b, (m + 1) * b)
        torch.testing.assert_close(blocked[:, m], full[:, s, s])
    for name in DISCRIMINATIVE:
        est = EstimatorSpec(name=name, critic={"block": b}, train={"batch_size": N})
        base = torch.tensor([0.3, -0.2])
        bound = E.critic_bound(est, lambda base=base: base)
        # the bound at batch size b on each block alone, then the mean over blocks
        per_block = torch.stack([E.make_bound(name, est.params, base).value(blocked[:, m])
                                 for m in range(N // b)], -1).mean(-1)
        torch.testing.assert_close(bound.value(blocked), per_block, msg=name)
        if name == "infonce":
            assert (per_block <= math.log(b) + 1e-6).all()
    # MINE's moving average tracks E_Q[e^T] over all n(b-1) within-block pairs, per critic
    mine = E.critic_bound(EstimatorSpec(name="mine", critic={"block": b},
                                        train={"batch_size": N}))
    mine.objective(blocked)
    off = ~torch.eye(b, dtype=torch.bool)
    pairs = blocked.detach()[:, :, off]  # (K, m, b(b-1))
    torch.testing.assert_close(mine.state.ema.squeeze(-1), pairs.exp().mean((-2, -1)))


def test_infonce_of_every_block_is_at_most_log_b():
    b = 4
    scores = torch.full((3, N // b, b, b), -30.0)
    scores.diagonal(dim1=-2, dim2=-1).fill_(30.0)  # a perfect critic
    bound = E.make_bound("infonce", {}, blocks=True)
    torch.testing.assert_close(bound.value(scores), torch.full((3,), math.log(b)))


def test_a_block_must_divide_the_batch():
    critic = build_critic(CriticSpec(kind="joint", hidden=8, block=5), (3,), (3,))
    with pytest.raises(ValueError, match="block 5 does not divide the batch of 16"):
        critic(torch.randn(1, N, 3), torch.randn(1, N, 3))


DIM = 5


def _gaussian(mi: float):
    def sampler(g: torch.Generator, n: int):
        return sample_gaussian(n, DIM, mi, generator=g)
    return sampler


@pytest.mark.parametrize("name", ["mine", "tuba", "infonce"])
def test_the_trainer_reads_blocked_scores_through_one_bound(name):
    """Training values, the curve and the held-out pass: blocks of the whole batch give
    the full-matrix numbers (MINE's moving average and TUBA's baseline included)."""
    def run(block: int | None):
        est = EstimatorSpec(name=name, critic={"kind": "joint", "hidden": 16, "block": block},
                            train={"batch_size": 16, "steps": 12, "lr": 1e-3,
                                   "eval_samples": 64})
        tasks = [CriticTask("t", 0, _gaussian(1.0), _gaussian(1.0), (DIM,), (DIM,))]
        return train_critics(tasks, est, CPU)

    full, whole = run(None), run(16)
    for key, o in full.items():
        w = whole[key]
        assert w.mi_test == pytest.approx(o.mi_test, rel=1e-4, abs=1e-5)
        assert w.mi_train == pytest.approx(o.mi_train, rel=1e-4, abs=1e-5)
        assert [v for _, v in w.curve] == pytest.approx([v for _, v in o.curve], rel=1e-4,
                                                        abs=1e-5)


@pytest.mark.slow
def test_trained_blocked_infonce_stays_under_log_b_and_near_full_at_small_mi():
    """A joint MLP critic at n = 64: block 8 against all n^2 pairs. At 0.25 nats the
    ceiling log 8 = 2.08 is far and both read about the same; at 6 nats blocked InfoNCE
    reaches its ceiling log 8 and stays under it (the full matrix's is log 64 = 4.16)."""
    def run(block: int | None, mi: float) -> float:
        est = EstimatorSpec(name="infonce", critic={"kind": "joint", "hidden": 32,
                                                    "block": block},
                            train={"batch_size": 64, "steps": 200, "lr": 1e-3,
                                   "eval_samples": 2048})
        out = train_critics([CriticTask("g", 0, _gaussian(mi), _gaussian(mi), (DIM,), (DIM,))],
                            est, CPU)
        return out["g"].mi_test

    small_full, small_blocked = run(None, 0.25), run(8, 0.25)
    assert small_blocked == pytest.approx(small_full, abs=0.1)
    assert 0.1 < small_blocked <= math.log(8)
    assert math.log(8) - 0.4 < run(8, 6.0) <= math.log(8) + 1e-6
