"""The generative estimator I_GM (paper 002, Eq. 9):

    I_GM = E_P[ log p_theta(x, y) - log p_phi(x) - log p_psi(y) ],

with three models fitted by maximum likelihood to samples of (x, y), x and y.
Vectors use RealNVP flows (App. B.1: 5 affine coupling layers, each a 2 x 100 ReLU
MLP; exact log-density). Images use VAEs (App. B.2: the critic's conv stack as
encoder with 2 x latent outputs for 10 Gaussians, a 2 x 400 MLP decoder with
Bernoulli outputs); log-likelihoods are the importance-weighted bound with
`iw_samples` samples (Burda et al. 2016), trained on the ELBO (one sample).

The three models of every (test, t, seed) are trained in stacks grouped by input
shape, like the critics (workers.stacked). Reparameterisation noise is an input,
drawn from each task's own generator, so batched and sequential runs agree.
"""

from __future__ import annotations

import math

import torch
from micheck.workers.critics import ConvEncoder, mlp, stacked_mlp
from micheck.workers.stacked import Stack
from micheck.workers.trainer import (
    CancelFn,
    CriticTask,
    Learner,
    ProgressFn,
    TaskOutcome,
    task_seed,
    train,
)
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from micheck.contract import EstimatorSpec
from micheck.errors import SpecError
from micheck.estimators.builtin import GMParams

LOG_2PI = math.log(2 * math.pi)


def coupling_mask(dim: int, layer: int) -> Tensor:
    """1 marks the coordinates that layer ``layer`` keeps (and conditions on).

    Even layers split by parity, odd layers into halves, alternating which half is kept.
    Parity masks alone are not enough for the joint flow over [x; y]: for even d, x_i and
    y_i = index d + i share a parity, so they would always be updated together and never
    condition on each other, and log p(x, y) could not express their dependence (I_GM = 0).
    The half masks condition y on x and x on y.
    """
    idx = torch.arange(dim)
    if layer % 2 == 0:
        keep = idx % 2 == (layer // 2) % 2
    else:
        keep = (idx < dim // 2) if (layer // 2) % 2 == 0 else (idx >= dim // 2)
    return keep.float()


class RealNVP(nn.Module):
    """Affine coupling flow (Dinh et al. 2016) with a standard normal base; forward(x)
    returns log p(x) per sample. Stacks natively (workers.stacked): x is (K, n, dim)."""

    stacks_natively = True

    def __init__(self, dim: int, layers: int = 5, hidden: int = 100) -> None:
        super().__init__()
        for k in range(layers):
            self.register_buffer(f"mask{k}", coupling_mask(dim, k))
        self.nets = nn.ModuleList(stacked_mlp(dim, hidden, 2 * dim) for _ in range(layers))
        # tanh-bounded log-scales, starting at 0; (K, layers, 1, dim) broadcasts over n
        self.scale = nn.Parameter(torch.zeros(1, layers, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        z, logdet = x, torch.zeros(x.shape[:-1], device=x.device)
        for k, net in enumerate(self.nets):
            m = getattr(self, f"mask{k}")
            s, t = net(z * m).chunk(2, dim=-1)
            s = torch.tanh(s) * self.scale[:, k].exp() * (1 - m)
            z = m * z + (1 - m) * (z * s.exp() + t)
            logdet = logdet + s.sum(-1)
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1) + logdet


class VAE(nn.Module):
    """forward(x, eps) returns the importance-weighted bound on log p(x) per sample,
    with eps of shape (samples, n, latent); one sample gives the ELBO."""

    def __init__(self, channels: int, height: int, width: int, latent: int = 10,
                 hidden: int = 400, scale: float = 1.0) -> None:
        super().__init__()
        self.latent = latent
        self.enc = ConvEncoder(channels, height, width, 2 * latent, scale)
        self.dec = mlp(latent, hidden, channels * height * width)

    def forward(self, x: Tensor, eps: Tensor) -> Tensor:
        mu, log_sigma = self.enc(x).chunk(2, dim=-1)
        log_sigma = log_sigma.clamp(-8.0, 4.0)
        z = mu + log_sigma.exp() * eps  # (S, n, latent)
        target = x.flatten(-3).expand(eps.shape[0], -1, -1)
        log_px_z = -F.binary_cross_entropy_with_logits(self.dec(z), target,
                                                       reduction="none").sum(-1)
        log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
        log_qz = -0.5 * (eps.pow(2) + LOG_2PI).sum(-1) - log_sigma.sum(-1)
        return torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(eps.shape[0])


def _joint(x: Tensor, y: Tensor) -> Tensor:
    # images: stack over channels (App. B.2); vectors: concatenate
    return torch.cat([x, y], dim=-3 if x.dim() >= 4 else -1)


def _params(est: EstimatorSpec) -> GMParams:
    """GM's typed params (micheck.estimators.builtin.GMParams: defaults stated there)."""
    params = est.typed_params
    if not isinstance(params, GMParams):
        raise SpecError(f"{est.name} is not the GM estimator")
    return params


class _Models:
    """The stacked models of one role ('xy', 'x' or 'y') for a set of tasks."""

    def __init__(self, role: str, tasks: list[CriticTask], est: EstimatorSpec,
                 device: torch.device, batched: bool) -> None:
        self.role = role
        self.image = len(tasks[0].x_shape) == 3
        self.latent = _params(est).latent_dim
        mods = []
        for t in tasks:
            torch.manual_seed(task_seed(t.seed, f"{t.stream_key}/{role}"))
            shape = self.shape(t)
            mods.append(VAE(*shape, latent=self.latent, scale=est.critic.width) if self.image
                        else RealNVP(shape[0]))
        self.stack = Stack(mods, est.train.lr, device, batched=batched)

    def shape(self, t: CriticTask) -> tuple[int, ...]:
        if self.role == "x":
            return t.x_shape
        if self.role == "y":
            return t.y_shape
        return (t.x_shape[0] + t.y_shape[0], *t.x_shape[1:])

    def pick(self, x: Tensor, y: Tensor) -> Tensor:
        return x if self.role == "x" else y if self.role == "y" else _joint(x, y)

    def log_prob(self, x: Tensor, y: Tensor, gens: list[torch.Generator], samples: int
                 ) -> Tensor:
        data = self.pick(x, y)
        if not self.image:
            return self.stack(data)
        k, n = data.shape[:2]
        eps = torch.stack([torch.randn(samples, n, self.latent, generator=g) for g in gens])
        return self.stack(data, eps.to(data.device))


class GMLearner(Learner):
    """GM (paper 002 Eq. 9): p(x, y), p(x) and p(y) fitted by maximum likelihood, stacked
    over tasks; the value is E[log p(x, y) - log p(x) - log p(y)], with the importance-
    weighted bound (iw_samples) on held-out batches and one sample while training."""

    def __init__(self, tasks: list[CriticTask], est: EstimatorSpec, device: torch.device,
                 batched: bool) -> None:
        self.tasks, self.k = tasks, len(tasks)
        self.roles = [_Models(r, tasks, est, device, batched) for r in ("xy", "x", "y")]
        self.iw = _params(est).iw_samples

    def train_step(self, x: Tensor, y: Tensor, gens: list[torch.Generator]
                   ) -> tuple[Tensor, Tensor]:
        logps = [m.log_prob(x, y, gens, 1) for m in self.roles]  # each (K, n)
        for m, lp in zip(self.roles, logps, strict=True):
            m.stack.step(lp.mean(-1))
        mi = (logps[0] - logps[1] - logps[2]).detach().mean(-1)
        return mi, torch.isfinite(mi)

    @torch.no_grad()
    def held_out(self, x: Tensor, y: Tensor, gens: list[torch.Generator]) -> Tensor:
        lp = [m.log_prob(x, y, gens, self.iw) for m in self.roles]
        return (lp[0] - lp[1] - lp[2]).mean(-1)

    def stacks(self) -> list[Stack]:
        return [m.stack for m in self.roles]


def train_gm(tasks: list[CriticTask], est: EstimatorSpec, device: torch.device, *,
             batched: bool = True, progress: ProgressFn | None = None,
             should_cancel: CancelFn | None = None, progress_offset: int = 0,
             progress_total: int | None = None, record_every: int = 0, min_steps: int = 0
             ) -> dict[str, TaskOutcome]:
    """Fit p(x, y), p(x), p(y) for every task; report Eq. 9 on train and test batches."""
    return train(tasks, est, device, GMLearner, batched=batched, progress=progress,
                 should_cancel=should_cancel, record_every=record_every,
                 progress_offset=progress_offset, progress_total=progress_total,
                 min_steps=min_steps)
