"""Samplers of bmi's tasks (Czyz et al., NeurIPS 2023), whose definitions, exact MI and the
reason the ``benchmark-mi`` package is not used are in ``micheck.datasets.bmi``.

Each sampler is ``sample(n, params, generator=, device=) -> (x, y)``, float32 (n, dim) each,
drawn on the generator's device in a fixed order (pinned by sample hashes in
tests/workers/data/test_generators.py; versions in micheck.definitions.GENERATOR_VERSIONS):

  dense     one-factor form of the equicorrelation matrix: with u ~ N(0, 1) shared and
            e ~ N(0, I_2d), z = sqrt(rho) u + sqrt(1 - rho) e has unit variances and every
            covariance rho (rho >= 0), so (X, Y) = (z_1..d, z_d+1..2d) is exactly N(0, S).
  sparse    the first k pairs are the correlated Gaussian of Eq. 55 at rho = s^2/(1 + s^2)
            (``workers.data.synthetic.sample_gaussian``, reused), the other d - k
            coordinates of X and of Y independent N(0, 1): bmi's latent model after each
            coordinate is scaled to unit variance (which changes no MI).
  student   t = z / sqrt(g / nu), z ~ N(0, I_2d), g ~ chi^2_nu (a sum of nu squared
            normals, nu an integer as in bmi), one g per sample shared by X and Y.
  transforms x |x|^(1/2) (bmi's half-cube) and asinh, coordinate-wise on X and Y.
"""

from __future__ import annotations

import math

import torch
from micheck.workers.data.synthetic import mi_from_rho, sample_gaussian
from torch import Tensor

from micheck.datasets.bmi import DenseParams, SparseParams, StudentParams, sparse_rho

Device = torch.device | str | None


def _where(generator: torch.Generator | None, device: Device) -> Device:
    return generator.device if generator is not None else device


def _moved(x: Tensor, y: Tensor, device: Device) -> tuple[Tensor, Tensor]:
    return (x.to(device), y.to(device)) if device is not None else (x, y)


def sample_dense(n: int, params: DenseParams, generator: torch.Generator | None = None,
                 device: Device = None) -> tuple[Tensor, Tensor]:
    """multinormal-dense-d-d-rho: every pair of the 2d coordinates has correlation rho."""
    d, rho = params.dim, params.off_diag
    noise = torch.randn(n, 2 * d + 1, generator=generator, device=_where(generator, device),
                        dtype=torch.float32)
    z = math.sqrt(rho) * noise[:, :1] + math.sqrt(1.0 - rho) * noise[:, 1:]
    return _moved(z[:, :d], z[:, d:], device)


def sample_sparse(n: int, params: SparseParams, generator: torch.Generator | None = None,
                  device: Device = None) -> tuple[Tensor, Tensor]:
    """multinormal-sparse-d-d-k-s: k correlated pairs (rho = s^2 / (1 + s^2)), the rest
    independent."""
    d, k = params.dim, params.interacting
    rho = sparse_rho(params.strength)
    xk, yk = sample_gaussian(n, k, mi_from_rho(rho, k), generator=generator)
    rest = torch.randn(2, n, d - k, generator=generator, device=xk.device,
                       dtype=torch.float32)
    return _moved(torch.cat([xk, rest[0]], 1), torch.cat([yk, rest[1]], 1), device)


def half_cube(x: Tensor) -> Tensor:
    """x |x|^(1/2), a bijection of the real line (bmi's half-cube map)."""
    return x * x.abs().sqrt()


def sample_half_cube_sparse(n: int, params: SparseParams,
                            generator: torch.Generator | None = None,
                            device: Device = None) -> tuple[Tensor, Tensor]:
    """half_cube-multinormal-sparse-d-d-k-s: the sparse task through x |x|^(1/2)."""
    x, y = sample_sparse(n, params, generator=generator, device=device)
    return half_cube(x), half_cube(y)


def sample_student(n: int, params: StudentParams, generator: torch.Generator | None = None,
                   device: Device = None) -> tuple[Tensor, Tensor]:
    """student-identity-d-d-nu: multivariate Student-t, identity dispersion."""
    d, nu = params.dim, params.dof
    where = _where(generator, device)
    z = torch.randn(n, 2 * d, generator=generator, device=where, dtype=torch.float64)
    g = torch.randn(n, nu, generator=generator, device=where, dtype=torch.float64)
    t = (z / (g.square().sum(1, keepdim=True) / nu).sqrt()).to(torch.float32)
    return _moved(t[:, :d], t[:, d:], device)


def sample_asinh_student(n: int, params: StudentParams,
                         generator: torch.Generator | None = None,
                         device: Device = None) -> tuple[Tensor, Tensor]:
    """asinh-student-identity-d-d-nu: the Student task through asinh."""
    x, y = sample_student(n, params, generator=generator, device=device)
    return torch.asinh(x), torch.asinh(y)
