"""MIGE: the Mutual Information Gradient Estimator (Wen et al., ICLR 2020, paper 004).

MIGE does not estimate I(X; Y); it estimates the *gradient* of I with respect to the
parameters psi of a reparameterised sampler, through entropy gradients

    grad I(x; z) = grad H(z) - grad H(x, z)            (paper 004 Eq. 10; H(x) fixed)
    grad H(z)    = -E[ grad_z log q(z) . dz/dpsi ]      (Eq. 9, 11 and App. A Eq. 19-21)

where the score grad_z log q(z) of the (implicit) sample distribution is estimated
from the samples themselves with the Spectral Stein Gradient Estimator (SSGE, Shi,
Sun & Zhu 2018, as summarised in paper 004 Sec. 2, Eq. 4-7). The score is treated as
a constant ("stop gradient", the Roeder et al. 2017 trick the paper adapts in Sec. 3),
so :func:`entropy_surrogate` is a scalar whose autograd gradient is the estimate.

What the garbled text forced us to derive (from the definitions, not transcribed):

* Eq. 4's Monte Carlo form: (1/M) K psi = mu psi over the samples x_1..x_M, so with the
  Gram matrix's eigenpairs K u_j = lambda_j u_j the eigenvalues are mu_j = lambda_j / M
  and orthonormality in L2(q), (1/M) sum_m psi_j(x_m)^2 = 1, gives psi_j(x_m) =
  sqrt(M) u_jm. The Nystrom extension is then psi_j(x) = (1 / (M mu_j)) sum_m k(x, x_m)
  psi_j(x_m) = (sqrt(M) / lambda_j) sum_m u_jm k(x, x_m). (The extracted text shows
  "sqrt(M) sum u_jm k(x, x_m)"; the 1/lambda_j factor is required by Eq. 4 itself.)
* Eq. 6 is the derivative of that extension; Eq. 7's beta_ij = -(1/M) sum_m d psi_j /
  dx_i (x_m) follows from Stein's identity (Eq. 3) with h = psi_j, since
  beta_ij = E_q[g_i psi_j] for an orthonormal basis.
* The RBF kernel is k(x, x') = exp(-||x - x'||^2 / (2 sigma^2)); the median heuristic
  sets sigma to the median pairwise distance of the samples (Shi et al. 2018's choice).
* J: either a fixed number of the largest eigenvalues or, as the paper's App. "threshold
  0.94" suggests, the smallest J whose eigenvalues hold that fraction of the trace.
* Scalable SSGE (Sec. 2, Eq. 8): the kernel is evaluated on random projections R x with
  R a k x D matrix with unit-length columns, distances rescaled by sqrt(D / k), so
  ||x - x'||^2 ~ (D/k) ||R (x - x')||^2. Its gradient in the original space is the chain
  rule through R: grad_x k = -(D/k) R^T R (x - x') k / sigma^2. The score is still
  returned in the original D dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SSGEConfig:
    """How SSGE estimates a score.

    n_eigen: J, the number of largest eigenvalues kept (0: use eigen_ratio instead).
    eigen_ratio: keep the smallest J whose eigenvalues sum to this fraction of the trace.
    bandwidth_scale: sigma = scale * median pairwise distance (1: the plain heuristic).
    projection: k of the random projection (Scalable SSGE); 0 means none. Ignored when
        k >= the input dimension.
    jitter: added to the Gram matrix's diagonal before the eigendecomposition.
    """

    n_eigen: int = 0
    eigen_ratio: float = 0.99
    bandwidth_scale: float = 1.0
    projection: int = 0
    jitter: float = 1e-6


def median_bandwidth(samples: Tensor, scale: float = 1.0) -> Tensor:
    """sigma = scale * median of the pairwise Euclidean distances (i != j)."""
    d2 = torch.cdist(samples, samples).pow(2)
    m = samples.shape[0]
    off = d2[~torch.eye(m, dtype=torch.bool, device=samples.device)]
    return scale * off.median().clamp_min(1e-12).sqrt()


def random_projection(dim: int, k: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32) -> Tensor:
    """A k x dim Gaussian random matrix with unit-length columns (Bingham & Mannila 2001,
    as paper 004 Sec. 2 describes R)."""
    r = torch.randn(k, dim, generator=generator, dtype=dtype)
    return r / r.norm(dim=0, keepdim=True)


def ssge(samples: Tensor, points: Tensor | None = None, config: SSGEConfig | None = None,
         projection: Tensor | None = None) -> Tensor:
    """The SSGE estimate of grad_x log q(x) at `points` (default: the samples themselves).

    samples: (M, D) i.i.d. draws from q. points: (N, D). projection: a (k, D) matrix R
    for Scalable SSGE (see :func:`random_projection`), or None. Returns (N, D).
    Implements paper 004 Eq. 4-7 (Shi et al. 2018 Eq. 11-17 in their notation), with
    the normalisations derived in the module docstring. Computed in float64.
    """
    cfg = config or SSGEConfig()
    s = samples.detach().to(torch.float64)
    x = s if points is None else points.detach().to(torch.float64)
    m, dim = s.shape
    if projection is not None:
        r = projection.to(torch.float64)
        c = dim / r.shape[0]  # Eq. 8: ||x1 - x2||^2 ~ (D / k) ||R x1 - R x2||^2
        ps, px = s @ r.T * math.sqrt(c), x @ r.T * math.sqrt(c)
    else:
        ps, px = s, x
    sigma = median_bandwidth(ps, cfg.bandwidth_scale)
    gram = torch.exp(-torch.cdist(ps, ps).pow(2) / (2 * sigma**2))
    gram = gram + cfg.jitter * torch.eye(m, dtype=gram.dtype)
    lam, u = torch.linalg.eigh(gram)  # ascending
    lam, u = lam.flip(0), u.flip(1)
    j = _n_eigen(lam, cfg)
    lam, u = lam[:j], u[:, :j]
    # beta_j = -(1/M) sum_m' grad psi_j(x_m'), with grad psi_j(x) = sqrt(M)/lambda_j
    # sum_m u_jm grad_x k(x, x_m) and grad_x k(x, x_m) = -A (x - x_m) k(x, x_m) / sigma^2
    # (A = I, or (D/k) R^T R under the projection). Summing over m' and m:
    # G = sum_m' sum_m K_m'm u_jm (x_m' - x_m) = S^T (K U) - S^T (colsum(K) * U).
    ku = gram @ u
    g = s.T @ ku - s.T @ (gram.sum(0, keepdim=True).T * u)  # (D, J)
    if projection is not None:
        g = (dim / r.shape[0]) * (r.T @ (r @ g))
    beta = g * (math.sqrt(m) / (m * sigma**2)) / lam  # (D, J)
    k_xs = torch.exp(-torch.cdist(px, ps).pow(2) / (2 * sigma**2))  # (N, M)
    psi = (k_xs @ u) * (math.sqrt(m) / lam)  # Nystrom: (N, J)
    return (psi @ beta.T).to(samples.dtype)


def _n_eigen(lam: Tensor, cfg: SSGEConfig) -> int:
    if cfg.n_eigen > 0:
        return min(cfg.n_eigen, lam.numel())
    positive = lam.clamp_min(0)
    share = positive.cumsum(0) / positive.sum()
    return int((share < cfg.eigen_ratio).sum().item()) + 1


def entropy_surrogate(z: Tensor, config: SSGEConfig | None = None,
                      projection: Tensor | None = None) -> Tensor:
    """A scalar whose gradient w.r.t. whatever z depends on is MIGE's estimate of grad H(z).

    z: (M, D) reparameterised samples (a function of the parameters). Paper 004 Eq. 11 /
    App. B step 3: grad H = -(1/M) sum_i (dz_i/dpsi)^T score(z_i), the score estimated by
    SSGE on the same samples and held constant.
    """
    score = ssge(z, config=config, projection=projection)
    return -(score.detach() * z).sum(-1).mean()


def mi_surrogate(x: Tensor, y: Tensor, config: SSGEConfig | None = None,
                 projection: int = 0, generator: torch.Generator | None = None) -> Tensor:
    """A scalar whose gradient is MIGE's estimate of grad I(X; Y) = grad H(X) + grad H(Y)
    - grad H(X, Y) (paper 004 Eq. 10, 12; App. B step 4). x, y: (M, Dx), (M, Dy).

    H(X) is included, so x may depend on the parameters too (its term vanishes when it
    does not). projection > 0 uses Scalable SSGE with k = projection for every input whose
    dimension exceeds k (one R per entropy, drawn from `generator`).
    """
    def surrogate(z: Tensor) -> Tensor:
        r = None
        if 0 < projection < z.shape[1]:
            r = random_projection(z.shape[1], projection, generator)
        return entropy_surrogate(z, config, r)

    total = surrogate(y) - surrogate(torch.cat([x, y], 1))
    if x.requires_grad:
        total = total + surrogate(x)
    return total
