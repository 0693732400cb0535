"""Samplers of bmi's tasks (workers.data.bmi): the sampled law against the definitions, and
the Student-t's exact MI against a Monte Carlo average of its log density ratio."""

import math

import pytest
import torch
from micheck.workers.data import bmi, sample_spec

from micheck.contract import DatasetSpec
from micheck.datasets.bmi import DenseParams, SparseParams, StudentParams, student_correction


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _corr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.corrcoef(torch.cat([x, y], 1).double().T)


def _plug_in_gaussian_mi(x: torch.Tensor, y: torch.Tensor) -> float:
    c = torch.cov(torch.cat([x, y], 1).double().T)
    d = x.shape[1]
    ld = lambda m: float(torch.linalg.slogdet(m)[1])  # noqa: E731
    return 0.5 * (ld(c[:d, :d]) + ld(c[d:, d:]) - ld(c))


N = 100_000
# a sample correlation's standard deviation is at most ~1/sqrt(N) = 0.0032: 6 of them
TOL = 6 / math.sqrt(N)


def test_dense_sample_is_equicorrelated():
    p = DenseParams(dim=3, off_diag=0.5)
    x, y = bmi.sample_dense(N, p, generator=_gen(0))
    assert x.shape == y.shape == (N, 3) and x.dtype == torch.float32
    c = _corr(x, y)
    off = c[~torch.eye(6, dtype=torch.bool)]
    assert (off - 0.5).abs().max() < TOL
    spec = DatasetSpec(name="multinormal_dense", dim=3)
    assert _plug_in_gaussian_mi(x, y) == pytest.approx(spec.known_mi, abs=0.02)


def test_sparse_sample_has_k_correlated_pairs_and_nothing_else():
    p = SparseParams(dim=4, interacting=2, strength=2.0)
    x, y = bmi.sample_sparse(N, p, generator=_gen(1))
    c = _corr(x, y)
    want = torch.eye(8, dtype=torch.float64)
    for i in range(2):
        want[i, 4 + i] = want[4 + i, i] = 0.8
    assert (c - want).abs().max() < TOL
    assert x.var(0).sub(1).abs().max() < 0.02 and y.var(0).sub(1).abs().max() < 0.02
    assert _plug_in_gaussian_mi(x, y) == pytest.approx(-math.log(0.36), abs=0.02)


def test_half_cube_is_the_sparse_sample_through_a_bijection():
    p = SparseParams(dim=3, interacting=1, strength=1.5)
    x, y = bmi.sample_sparse(1000, p, generator=_gen(2))
    hx, hy = bmi.sample_half_cube_sparse(1000, p, generator=_gen(2))
    torch.testing.assert_close(hx, x * x.abs().sqrt())
    # inverse: sign(v) |v|^(2/3) gives the Gaussian sample back
    back = lambda v: v.sign() * v.abs().pow(2 / 3)  # noqa: E731
    torch.testing.assert_close(back(hx), x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(back(hy), y, rtol=1e-5, atol=1e-6)


def _log_t(z: torch.Tensor, nu: int) -> torch.Tensor:
    """ln density of a standard multivariate t_nu in k = z.shape[1] dimensions."""
    k = z.shape[1]
    return (math.lgamma((nu + k) / 2) - math.lgamma(nu / 2) - k / 2 * math.log(nu * math.pi)
            - (nu + k) / 2 * torch.log1p(z.square().sum(1) / nu))


@pytest.mark.parametrize(("d", "nu"), [(1, 1), (2, 3)])
def test_student_mi_matches_a_monte_carlo_of_its_density_ratio(d, nu):
    """I = E[ln p(x, y) - ln p(x) - ln p(y)]: the average over N draws lies within 6
    standard errors of the exact value (Arellano-Valle et al. 2013, via Czyz et al. 2023)."""
    n = 200_000
    x, y = bmi.sample_student(n, StudentParams(dim=d, dof=nu), generator=_gen(3))
    x, y = x.double(), y.double()
    ratio = _log_t(torch.cat([x, y], 1), nu) - _log_t(x, nu) - _log_t(y, nu)
    mean, se = float(ratio.mean()), float(ratio.std()) / math.sqrt(n)
    truth = student_correction(nu, d, d)
    assert se < 0.005
    assert abs(mean - truth) < 6 * se, (mean, truth, se)


def test_student_sample_is_uncorrelated_and_heavy_tailed():
    x, y = bmi.sample_student(N, StudentParams(dim=2, dof=5), generator=_gen(4))
    c = _corr(x, y)
    assert (c - torch.eye(4, dtype=torch.float64)).abs().max() < 2 * TOL
    # covariance of t_5 is nu / (nu - 2) = 5/3 per coordinate (4th moments exist)
    assert float(x.double().var(0).mean()) == pytest.approx(5 / 3, rel=0.05)


def test_asinh_student_is_the_student_sample_through_asinh():
    p = StudentParams(dim=2, dof=1)
    x, y = bmi.sample_student(500, p, generator=_gen(5))
    ax, ay = bmi.sample_asinh_student(500, p, generator=_gen(5))
    torch.testing.assert_close(ax, torch.asinh(x))
    torch.testing.assert_close(ay, torch.asinh(y))


def test_sample_spec_dispatches_by_entry():
    spec = DatasetSpec(name="asinh_student_identity", dim=3, dof=2)
    x, y = sample_spec(spec, 7, generator=_gen(6))
    assert x.shape == y.shape == (7, 3)
    gx, _ = sample_spec(DatasetSpec(name="gaussian", dim=2, mi=1.0), 7, generator=_gen(6))
    assert gx.shape == (7, 2)
