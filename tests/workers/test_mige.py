"""SSGE scores and MIGE gradients against closed forms (paper 004 Sec. 2-4)."""

import math

import pytest
import torch
from micheck.workers.mige import (
    SSGEConfig,
    entropy_surrogate,
    mi_surrogate,
    random_projection,
    ssge,
)


def _rel_err(est: torch.Tensor, true: torch.Tensor) -> float:
    return float((est - true).pow(2).sum() / true.pow(2).sum())


def test_ssge_recovers_the_score_of_a_shifted_scaled_gaussian():
    g = torch.Generator().manual_seed(0)
    mu, s = torch.tensor([1.0, -2.0, 0.5]), 1.5
    x = mu + s * torch.randn(600, 3, generator=g)
    score = ssge(x)  # true score: -(x - mu) / s^2
    assert _rel_err(score, -(x - mu) / s**2) < 0.1


def test_ssge_at_new_points_uses_the_nystrom_extension():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(600, 2, generator=g)
    points = torch.tensor([[0.5, 0.0], [-0.5, 0.5], [0.0, -1.0]])
    assert _rel_err(ssge(x, points), -points) < 0.1


def test_fewer_eigenfunctions_smooth_more_but_stay_close():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(500, 4, generator=g)
    few = ssge(x, config=SSGEConfig(n_eigen=9))  # constant + linear + some quadratic
    assert _rel_err(few, -x) < 0.15


def test_an_orthonormal_projection_of_full_rank_changes_nothing():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 4, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    torch.testing.assert_close(ssge(x, projection=q), ssge(x))


def test_random_projection_has_unit_columns():
    r = random_projection(50, 8, torch.Generator().manual_seed(0))
    assert r.shape == (8, 50)
    torch.testing.assert_close(r.norm(dim=0), torch.ones(50))


def test_entropy_gradient_of_a_scaled_gaussian():
    # z = s e, e ~ N(0, I_d): H = d log s + const, so dH/ds = d / s
    g = torch.Generator().manual_seed(4)
    d, s = 3, torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    z = s * torch.randn(800, d, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad(entropy_surrogate(z), s)
    assert grad.item() == pytest.approx(d / 2.0, rel=0.1)


def _mige(d: int, rho: float, m: int, seed: int, projection: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    r = torch.tensor(rho, dtype=torch.float64, requires_grad=True)
    e = torch.randn(2, m, d, generator=g, dtype=torch.float64)
    y = r * e[0] + torch.sqrt(1 - r * r) * e[1]
    (grad,) = torch.autograd.grad(mi_surrogate(e[0], y, projection=projection, generator=g), r)
    return grad.item()


@pytest.mark.parametrize("rho", [0.3, 0.7, -0.5])
def test_mige_matches_the_analytic_gradient_of_a_small_gaussian(rho):
    d = 3
    est = _mige(d, rho, 600, seed=5)
    assert est == pytest.approx(d * rho / (1 - rho * rho), rel=0.1)


@pytest.mark.parametrize("seed", [0, 1])
def test_mige_is_within_ten_percent_at_the_released_results_hardest_point(seed):
    """Paper 004's Fig. 1 setting at d = 32, rho = 0.8 (MIGE's released toy result there:
    47.79 against the analytic 71.11, 0.67): ours stays within 10% of the truth
    (docs/bench/gradient_paper.md: 0.935 over 3 seeds, the seeds within 0.2 of each other)."""
    d, rho = 32, 0.8
    est = _mige(d, rho, 1000, seed=seed)
    assert est == pytest.approx(d * rho / (1 - rho * rho), rel=0.1)


def test_mige_is_near_zero_at_zero_correlation():
    assert abs(_mige(3, 0.0, 600, seed=6)) < 0.3


def test_mige_sees_x_when_it_depends_on_the_parameter():
    # x = a e1, y = e1 + e2: I = 1/2 log 2 for any a > 0, so dI/da = 0, while H(x) and
    # H(x, y) each move by d/a; the H(x) term must cancel them
    g = torch.Generator().manual_seed(7)
    a = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    e = torch.randn(2, 600, 2, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad(mi_surrogate(a * e[0], e[0] + e[1]), a)
    assert abs(grad.item()) < 0.15 * 2 / 1.5


def test_scalable_ssge_runs_in_the_projected_space_and_stays_finite():
    est = _mige(8, 0.5, 300, seed=8, projection=4)
    assert math.isfinite(est)
