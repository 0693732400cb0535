"""The `mi_gradient` test's worker side: dI/drho on the correlated Gaussian of paper 004 Sec. 4.

x, y in R^d with corr(x_i, y_j) = delta_ij rho (standard normal marginals), so

    I(rho) = -d/2 log(1 - rho^2)          dI/drho = d rho / (1 - rho^2)

(paper 004 Sec. 4; the same task as paper 002 Eq. 55). The test kind itself (points,
bands, the near-zero switch to an absolute error) is the entry `mi_gradient` of
`micheck.testkinds`; this module is its sampler and its learner, so its critics train in
the one loop (`workers.trainer.train`) and its rows come from `micheck.scoring`.

Samples are reparameterised, x = e1, y = rho e1 + sqrt(1 - rho^2) e2 (Cubic: y -> y^3),
so rho is a differentiable parameter: the sampler draws the noise (e1, e2) and the
learner maps it to (x, y) through rho.

* discriminative estimators (MINE, NWJ = MINE-f, ...): one critic is trained at each
  rho (`GradientLearner`, a `CriticLearner` whose batches are mapped through rho); dI/drho
  is then the gradient of the trained bound with respect to rho through the
  reparameterised held-out samples, the critic held fixed (paper 004 Sec. 4: "computed by
  backpropagation"; by the envelope theorem this is d/drho of sup_T bound at the optimal
  critic). The bound's value is the MI estimate.
* MIGE (workers.mige): its own estimate, grad H(Y) - grad H(X, Y) with SSGE scores
  (`train_mige`, the `gradient` family's counterpart of `train_critics`: no training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from micheck.workers.data.synthetic import Y_MAPS
from micheck.workers.mige import SSGEConfig, mi_surrogate
from micheck.workers.selfconsistency import TaskData, register_sampler
from micheck.workers.trainer import (
    CancelFn,
    CriticLearner,
    CriticTask,
    ProgressFn,
    TaskOutcome,
    Ticker,
    task_seed,
)
from torch import Tensor

from micheck.contract import EstimatorSpec
from micheck.plan import Measurement
from micheck.testkinds.builtin import NEAR_ZERO, analytic_gradient, analytic_mi

__all__ = ["NEAR_ZERO", "GradientLearner", "Reparameterised", "analytic_gradient",
           "analytic_mi", "mige_config", "sample_pairs", "train_mige"]


def _pairs(rho: Tensor, e1: Tensor, e2: Tensor, y_map: str) -> tuple[Tensor, Tensor]:
    r = rho.view(-1, 1, 1)
    return e1, Y_MAPS[y_map](r * e1 + torch.sqrt(1 - r * r) * e2)


def sample_pairs(rho: Tensor, noise: Tensor, cubic: bool) -> tuple[Tensor, Tensor]:
    """Reparameterised pairs: x = e1, y = rho e1 + sqrt(1 - rho^2) e2 (y^3 for Cubic).

    rho: (K,); noise: (K, 2, n, d). Returns x, y of shape (K, n, d), differentiable in rho.
    """
    return _pairs(rho, noise[:, 0], noise[:, 1], "cube" if cubic else "identity")


@dataclass(frozen=True)
class Reparameterised:
    """The sampler of one mi_gradient measurement: the noise (e1, e2) of n pairs, each
    (n, dim); `rho` maps it to (x, y), then the data set's `y_map` (Cubic: y -> y^3)
    (`GradientLearner`, `train_mige`)."""

    rho: float
    dim: int
    y_map: str = "identity"

    def __call__(self, g: torch.Generator, n: int, dtype: torch.dtype = torch.float32
                 ) -> tuple[Tensor, Tensor]:
        noise = torch.randn(2, n, self.dim, generator=g, dtype=dtype)
        return noise[0], noise[1]


class GradientLearner(CriticLearner):
    """Critics trained on the pairs of their rho; the final held-out pass also reads
    d(bound)/d(rho) through the reparameterised samples (module docstring)."""

    def __init__(self, tasks: list[CriticTask], est: EstimatorSpec, device: torch.device,
                 batched: bool) -> None:
        super().__init__(tasks, est, device, batched)
        samplers: list[Reparameterised] = [t.train for t in tasks]  # type: ignore[misc]
        self.rho = torch.tensor([s.rho for s in samplers], dtype=torch.float32, device=device)
        self.y_map = samplers[0].y_map
        if any(s.y_map != self.y_map for s in samplers):
            raise ValueError("one GradientLearner serves one task (Gaussian or Cubic)")

    def train_step(self, x: Tensor, y: Tensor, gens: list[torch.Generator]
                   ) -> tuple[Tensor, Tensor]:
        return super().train_step(*_pairs(self.rho, x, y, self.y_map), gens)

    @torch.no_grad()
    def held_out(self, x: Tensor, y: Tensor, gens: list[torch.Generator]) -> Tensor:
        return super().held_out(*_pairs(self.rho, x, y, self.y_map), gens)

    def final(self, x: Tensor, y: Tensor, gens: list[torch.Generator]) -> dict[str, Tensor]:
        with torch.enable_grad():
            rho = self.rho.clone().requires_grad_(True)
            values = self.bound.value(self.stack(*_pairs(rho, x, y, self.y_map)))
            # the critics are independent: the gradient of the sum is each one's own
            (grad,) = torch.autograd.grad(values.sum(), rho)
        return {"mi": values.detach(), "gradient": grad.detach()}


@register_sampler("mi_gradient")
def _task(m: Measurement, seed: int, data: TaskData) -> CriticTask:
    ds = data.dataset
    rho = m.rho if m.rho is not None else 0.0
    sampler = Reparameterised(rho, ds.dim, ds.entry.y_map or "identity")
    return CriticTask(m.key(seed), seed, sampler, sampler, (ds.dim,), (ds.dim,),
                      true_mi=analytic_mi(rho, ds.dim), eval_samples=data.eval_samples,
                      learner=GradientLearner)


# ---- MIGE: the gradient family's estimate (no training) ------------------------------------


def mige_config(params: dict) -> tuple[SSGEConfig, int, int]:
    """SSGE settings, projection size and sample count from a `mige` estimator's params."""
    cfg = SSGEConfig(n_eigen=int(params.get("n_eigen", 0)),
                     eigen_ratio=float(params.get("eigen_ratio", 0.99)),
                     bandwidth_scale=float(params.get("bandwidth_scale", 1.0)))
    return cfg, int(params.get("projection", 0)), int(params.get("samples", 1000))


def train_mige(tasks: list[CriticTask], est: EstimatorSpec, device: torch.device, *,
               batched: bool = True, progress: ProgressFn | None = None,
               should_cancel: CancelFn | None = None, record_every: int = 0,
               progress_offset: int = 0, progress_total: int | None = None,
               min_steps: int = 0) -> dict[str, TaskOutcome]:
    """MIGE's dI/drho for each mi_gradient task: one batch of `samples` reparameterised
    pairs, float64, on the CPU (an M x M eigendecomposition; the GPU buys little at
    M ~ 1000). One progress unit per task; MIGE estimates no MI (mi_test None); nothing is
    trained, so `min_steps` does not apply."""
    cfg, projection, m = mige_config(est.params)
    ticker = Ticker(progress_total or len(tasks), progress, should_cancel, progress_offset)
    out = {}
    for i, task in enumerate(tasks):
        sampler = task.train
        if not isinstance(sampler, Reparameterised):
            raise ValueError(f"{est.name} estimates MI gradients only; {task.key} is not an "
                             "mi_gradient task")
        g = torch.Generator().manual_seed(task_seed(task.seed, task.key))
        rho = torch.tensor([sampler.rho], dtype=torch.float64, requires_grad=True)
        e1, e2 = sampler(g, m, torch.float64)
        x, y = _pairs(rho, e1[None], e2[None], sampler.y_map)
        (grad,) = torch.autograd.grad(mi_surrogate(x[0], y[0], cfg, projection, g), rho)
        value = float(grad.item())
        finite = math.isfinite(value)
        out[task.key] = TaskOutcome(task.key, None, None, not finite, 1,
                                    gradient=value if finite else None)
        ticker.tick(1, final=i == len(tasks) - 1)
    return out
