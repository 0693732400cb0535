"""The Gaussian and Cubic tasks of App. B.1 (Eq. 55)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from micheck.workers.data import (
    mi_from_rho,
    rho_from_mi,
    sample_cubic,
    sample_gaussian,
    sample_vectors,
)
from micheck.workers.data.synthetic import MAX_NATS_PER_DIM

from micheck.errors import SpecError


@given(nats_per_dim=st.floats(1e-6, MAX_NATS_PER_DIM), dim=st.integers(1, 256))
def test_mi_formula_round_trips(nats_per_dim: float, dim: int) -> None:
    mi = nats_per_dim * dim
    rho = rho_from_mi(mi, dim)
    assert 0 < rho < 1
    assert math.isclose(mi_from_rho(rho, dim), mi, rel_tol=1e-6)


def test_known_values() -> None:
    # The paper's 20-d tasks: MI 2, 4, 6, 8, 10 nats.
    assert math.isclose(rho_from_mi(2.0, 20), math.sqrt(1 - math.exp(-0.2)))
    assert math.isclose(mi_from_rho(0.5, 1), -0.5 * math.log(0.75))
    assert rho_from_mi(0.0, 20) == 0.0
    with pytest.raises(SpecError):
        mi_from_rho(1.0, 3)
    with pytest.raises(SpecError):
        rho_from_mi(-1.0, 3)
    with pytest.raises(SpecError, match="nats per dimension"):
        sample_gaussian(4, 1, 13.0)


@pytest.mark.parametrize("mi", [2.0, 10.0])
def test_empirical_correlation_matches_rho(mi: float) -> None:
    n, dim = 100_000, 20
    x, y = sample_gaussian(n, dim, mi, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (n, dim) and x.dtype == y.dtype == torch.float32
    rho = rho_from_mi(mi, dim)
    xc, yc = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    corr = (xc * yc).mean(0) / (xc.std(0) * yc.std(0))
    # Standard error of a sample correlation is (1 - rho^2) / sqrt(n); allow 5 of them.
    assert torch.allclose(corr, torch.full_like(corr, rho), atol=5 * (1 - rho**2) / n**0.5)
    # Unit marginals, and dimensions independent of each other.
    assert torch.allclose(y.double().std(0), torch.ones(dim, dtype=torch.float64), atol=0.02)
    cross = (xc[:, 0] * yc[:, 1]).mean() / (xc[:, 0].std() * yc[:, 1].std())
    assert abs(float(cross)) < 5 / n**0.5
    # Gaussian MI from the sample correlations (Eq. 55) recovers the target.
    est = float(-0.5 * torch.log1p(-corr**2).sum())
    assert math.isclose(est, mi, rel_tol=0.03)


def test_cubic_is_gaussian_cubed_and_seeded() -> None:
    gx, gy = sample_gaussian(1000, 5, 3.0, generator=torch.Generator().manual_seed(7))
    cx, cy = sample_cubic(1000, 5, 3.0, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(cx, gx)
    torch.testing.assert_close(cy, gy**3)
    again = sample_vectors("cubic", 1000, 5, 3.0, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(again[1], cy)
    other = sample_vectors("cubic", 1000, 5, 3.0, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(other[1], cy)


def test_device_and_unknown_name() -> None:
    x, y = sample_gaussian(8, 3, 1.0, device="cpu")
    assert x.device.type == "cpu" and y.shape == (8, 3)
    with pytest.raises(SpecError, match="not a vector task"):
        sample_vectors("mnist", 8, 3, 1.0)


def test_high_mi_keeps_its_noise_scale() -> None:
    # 200 nats over 20 dims: sigma = e^-10. Float32 rounding must not swamp it.
    dim, mi = 20, 200.0
    x, y = sample_gaussian(20_000, dim, mi, generator=torch.Generator().manual_seed(1))
    residual = y.double() - rho_from_mi(mi, dim) * x.double()
    assert math.isclose(float(residual.std()), math.exp(-mi / dim), rel_tol=0.02)
