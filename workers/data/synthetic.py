"""The vector tasks of Song & Ermon (2020), App. B.1.

Gaussian: each of the d dimensions is an independent pair (x_i, y_i) of standard
normals with correlation rho, so I(X; Y) = -d/2 log(1 - rho^2) nats (Eq. 55).
Cubic: the same pairs with y -> y^3; an invertible map of Y leaves the MI unchanged.
"""

from __future__ import annotations

import math

import torch

from micheck.datasets.builtin import MAX_NATS_PER_DIM
from micheck.errors import SpecError


def mi_from_rho(rho: float, dim: int) -> float:
    """Eq. 55: the true MI in nats of d independent pairs with correlation rho."""
    if not -1.0 < rho < 1.0:
        raise SpecError(f"correlation must lie in (-1, 1), got {rho}")
    return -0.5 * dim * math.log1p(-rho * rho)


def rho_from_mi(mi: float, dim: int) -> float:
    """Inverse of Eq. 55: the (positive) correlation that gives ``mi`` nats over ``dim`` pairs."""
    if dim < 1:
        raise SpecError(f"dim must be >= 1, got {dim}")
    if mi < 0:
        raise SpecError(f"mi must be >= 0, got {mi}")
    # rho^2 = 1 - exp(-2 I / d); -expm1 keeps precision for small I.
    return math.sqrt(-math.expm1(-2.0 * mi / dim))


def sample_gaussian(n: int, dim: int, mi: float, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n joint samples (x, y), each float32 (n, dim), with I(X; Y) = mi nats."""
    if mi / dim > MAX_NATS_PER_DIM:
        raise SpecError(f"mi = {mi} nats over dim = {dim} is {mi / dim:.3g} nats per dimension; "
                        f"float32 samples support at most {MAX_NATS_PER_DIM:g} (raise dim)")
    rho = rho_from_mi(mi, dim)
    sigma = math.exp(-mi / dim)  # = sqrt(1 - rho^2), without the cancellation
    # Draw on the generator's device (torch requires it), then move.
    where = generator.device if generator is not None else device
    noise = torch.randn(2, n, dim, generator=generator, device=where, dtype=torch.float32)
    x, y = noise[0], rho * noise[0] + sigma * noise[1]
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


def sample_cubic(n: int, dim: int, mi: float, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The Cubic task: sample_gaussian with y -> y^3 (same MI)."""
    x, y = sample_gaussian(n, dim, mi, generator=generator, device=device)
    return x, y.pow(3)


# the map of Y of each vector task built on the Gaussian (micheck.datasets: `y_map`)
Y_MAPS = {"identity": lambda y: y, "cube": lambda y: y.pow(3)}
