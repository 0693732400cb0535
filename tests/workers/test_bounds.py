"""The bounds against analytic truth: the optimal critic of a correlated Gaussian is
known in closed form, so each formula can be checked without training."""

import math

import pytest
import torch
from micheck.workers import bounds as E
from micheck.workers.data import sample_gaussian

DIM, MI = 5, 1.0


def optimal_scores(n: int, seed: int = 0) -> torch.Tensor:
    """scores[i, j] = log p(x_i, y_j) / p(x_i) p(y_j) for the App. B.1 Gaussian."""
    g = torch.Generator().manual_seed(seed)
    x, y = sample_gaussian(n, DIM, MI, generator=g)
    x, y = x.double(), y.double()
    rho = math.sqrt(1 - math.exp(-2 * MI / DIM))
    c = 1 - rho**2
    xx = (x**2).sum(-1, keepdim=True)
    yy = (y**2).sum(-1).unsqueeze(0)
    return -DIM / 2 * math.log(c) - (rho**2 * xx - 2 * rho * x @ y.T + rho**2 * yy) / (2 * c)


@pytest.fixture(scope="module")
def scores() -> torch.Tensor:
    return optimal_scores(1500)


@pytest.mark.parametrize("bound", [
    E.dv, lambda s: E.nwj(s + 1.0), lambda s: E.smile(s, math.inf), lambda s: E.smile(s, 5.0),
    lambda s: E.js_mi(s), lambda s: E.tuba(s, torch.tensor(0.0)),
    lambda s: E.alpha_bound(s, torch.tensor(0.0), 0.5),
])
def test_bounds_recover_true_mi_at_the_optimal_critic(scores, bound):
    assert float(bound(scores)) == pytest.approx(MI, abs=0.1)


def test_infonce_is_capped_by_log_batch():
    s = optimal_scores(8) * 50  # a very confident critic
    assert float(E.infonce(s)) <= math.log(8) + 1e-9
    assert float(E.infonce(optimal_scores(1500))) == pytest.approx(MI, abs=0.1)


def test_smile_with_infinite_tau_is_dv_and_clipping_touches_only_the_partition():
    s = torch.randn(3, 16, 16) * 4
    assert torch.allclose(E.smile(s, math.inf), E.dv(s))
    shifted = s.clone()
    shifted.diagonal(dim1=-2, dim2=-1).add_(100.0)  # joint term unclipped: moves 1:1
    assert torch.allclose(E.smile(shifted, 1.0) - E.smile(s, 1.0),
                          torch.full((3,), 100.0), atol=1e-4)


def test_alpha_bound_interpolates_tuba_and_column_infonce():
    s = torch.randn(4, 32, 32)
    b = torch.randn(4)
    assert torch.allclose(E.alpha_bound(s, b, 0.0), E.tuba(s, b), atol=1e-5)
    cols = s.transpose(-2, -1)
    assert torch.allclose(E.alpha_bound(s, b, 1.0), E.infonce(cols), atol=1e-5)


def test_bounds_are_zero_for_a_constant_critic():
    s = torch.zeros(2, 10, 10)
    for bound in (E.infonce, E.dv, lambda t: E.smile(t, 1.0), lambda t: E.nwj(t + 1.0)):
        assert torch.allclose(bound(s), torch.zeros(2), atol=1e-6)


def test_leading_dims_are_independent_critics():
    s = torch.randn(3, 12, 12)
    for bound in (E.infonce, E.nwj, E.dv, E.js_objective, lambda t: E.smile(t, 2.0)):
        stacked = bound(s)
        single = torch.stack([bound(s[k]) for k in range(3)])
        assert torch.allclose(stacked, single, atol=1e-6)


def test_mine_surrogate_has_the_bias_corrected_gradient():
    s = torch.randn(10, 10, requires_grad=True)
    state = E.MineState(ema=torch.tensor(2.0))
    E.mine_surrogate(s, state, rate=0.0).backward()  # rate 0: ema stays 2
    mask = ~torch.eye(10, dtype=torch.bool)
    expected = torch.eye(10) / 10 - mask * torch.exp(s.detach()) / (90 * 2.0)
    assert torch.allclose(s.grad, expected, atol=1e-6)


def test_every_registered_discriminative_estimator_has_a_bound():
    from micheck import estimators as registry

    scores = torch.randn(2, 8, 8)
    for entry in registry.entries():
        if entry.family != "discriminative":
            continue
        bound = E.make_bound(entry.name, {}, torch.zeros(2))
        assert bound.value(scores).shape == (2,)


def test_a_bound_is_registered_by_name_without_an_if_chain():
    from micheck.workers import bounds

    from micheck import estimators as registry
    from micheck.estimators import EstimatorEntry

    registry.register(EstimatorEntry("test_half_dv", "discriminative", "1", "0.5 x Eq. 3"))
    try:
        @bounds.register_bound("test_half_dv")
        def _half(params, lb):
            return bounds.Bound("test_half_dv", bounds.dv, lambda s: 0.5 * bounds.dv(s))

        s = torch.randn(8, 8)
        torch.testing.assert_close(E.make_bound("test_half_dv", {}).value(s), 0.5 * E.dv(s))
        with pytest.raises(ValueError, match="already registered"):
            bounds.register_bound("test_half_dv")(_half)
    finally:
        bounds._BOUNDS.pop("test_half_dv")
        registry._ENTRIES.pop("test_half_dv")
