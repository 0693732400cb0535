"""Variational MI bounds as pure functions of a critic's score matrix.

``scores[..., i, j] = T(x_i, y_j)`` for a batch of n joint samples (x_i, y_i): the
diagonal holds samples of P(X, Y), the off-diagonal n(n-1) pairs stand for the
product of marginals P(X)P(Y). Leading dimensions are batch dimensions (one per
stacked critic), so one call scores every critic of an evaluation. All values are
in nats. Equation numbers refer to Song & Ermon, ICLR 2020 (paper 002) unless a
function says otherwise; Poole et al. 2019 is "On Variational Bounds of MI".

Each estimator has a *training objective* (maximised by the trainer) and a *value*
(what is reported). They coincide except for MINE (bias-corrected gradient), SMILE
(the paper trains its critic as a JS classifier, Sec. 5) and JS.

Each bound is registered by its estimator's name with ``register_bound`` next to its
math (the protocol entry, with the typed params, lives in ``micheck.estimators``);
``make_bound`` looks it up, so there is no if-chain to extend.

Blocked scores (``critic.block = b``, a CPU approximation of a joint critic). A joint
critic (App. B.2: x and y stacked over channels, one output) costs one network pass per
scored pair, n^2 per batch. With blocks the critic splits the batch of n into m = n/b
blocks of b consecutive samples and scores only the b x b pairs within each block:
``scores[..., k, i, j] = T(x_{kb+i}, y_{kb+j})``, shape (..., m, b, b), n*b passes. The
bounds are unchanged: ``make_bound(..., blocks=True)`` (``critic_bound`` for a spec)
applies each one to every block (the block index is one more leading dimension) and
reports the mean over blocks. So a blocked estimate is exactly the estimator at batch
size b, averaged over the m independent batches of a step (with b = n: the full-matrix
bound, the same numbers). Per estimator:

- InfoNCE (Eq. 5): b - 1 negatives per positive; the ceiling is log b, not log n.
- NWJ (Eq. 4), JS (its marginal softplus term), TUBA, I_alpha: the product-of-marginals
  terms are means, so the blocked value averages them over the n(b-1) within-block pairs
  instead of n(n-1): the same expectation, more variance. I_alpha's m(y) averages over
  the b (leave-one-out: b - 1) x's of y's block.
- DV / MINE's value (Eq. 3), SMILE (Eq. 17): log E_Q[e^T] (clipped for SMILE) is taken
  over each block's b(b-1) pairs and the logs are averaged, as at batch size b: the
  log of a smaller sample mean, so the upward bias of the batch-b estimator (Jensen);
  SMILE's clip bounds it.
- MINE's training surrogate: the moving average of E_Q[e^T] tracks the mean over all
  n(b-1) within-block pairs of a step (one average per critic, as without blocks), and
  the objective is the mean over blocks, i.e. the surrogate on those pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor
from torch.nn.functional import softplus

from micheck import estimators as registry
from micheck.contract import EstimatorSpec
from micheck.estimators import Params
from micheck.estimators.builtin import AlphaParams, MineParams, SmileParams


def _offdiag_mask(scores: Tensor) -> Tensor:
    n = scores.shape[-1]
    return ~torch.eye(n, dtype=torch.bool, device=scores.device)


def diag_mean(scores: Tensor) -> Tensor:
    """E_P[T]: the mean of the joint samples' scores."""
    return scores.diagonal(dim1=-2, dim2=-1).mean(-1)


def offdiag_logmeanexp(scores: Tensor) -> Tensor:
    """log E_Q[e^T] over the n(n-1) off-diagonal (product-of-marginals) pairs."""
    n = scores.shape[-1]
    masked = scores.masked_fill(~_offdiag_mask(scores), float("-inf"))
    return torch.logsumexp(masked.flatten(-2), dim=-1) - math.log(n * (n - 1))


def infonce(scores: Tensor) -> Tensor:
    """CPC / InfoNCE, Eq. 5 with f = e^T: mean_i log( e^{T_ii} / (1/n) sum_j e^{T_ij} ).

    Never exceeds log n (the batch size): its well-known ceiling.
    """
    n = scores.shape[-1]
    return (diag_mean(scores) - torch.logsumexp(scores, dim=-1).mean(-1)) + math.log(n)


def nwj(scores: Tensor) -> Tensor:
    """NWJ / MINE-f, Lemma 3 (Eq. 4): E_P[T] - E_Q[e^{T-1}]."""
    return diag_mean(scores) - torch.exp(offdiag_logmeanexp(scores) - 1.0)


def dv(scores: Tensor) -> Tensor:
    """Donsker-Varadhan, Lemma 2 (Eq. 3): E_P[T] - log E_Q[e^T]. MINE's bound."""
    return diag_mean(scores) - offdiag_logmeanexp(scores)


def smile(scores: Tensor, tau: float) -> Tensor:
    """SMILE, Eq. 17: E_P[T] - log E_Q[clip(e^T, e^-tau, e^tau)].

    Only the partition term is clipped (Eq. 16 applied to the log ratio); tau = inf
    gives DV exactly.
    """
    clipped = scores if math.isinf(tau) else scores.clamp(-tau, tau)
    return diag_mean(scores) - offdiag_logmeanexp(clipped)


def js_objective(scores: Tensor) -> Tensor:
    """f-GAN lower bound on the Jensen-Shannon divergence (Deep InfoMax's objective):
    E_P[-softplus(-T)] - E_Q[softplus(T)], i.e. logistic regression of joint vs marginal
    whose optimum is T = log dP/dQ (paper 003's JSD critic; Song & Ermon Sec. 5)."""
    mask = _offdiag_mask(scores)
    joint = -softplus(-scores.diagonal(dim1=-2, dim2=-1)).mean(-1)
    marginal = (softplus(scores) * mask).sum((-2, -1)) / mask.sum()
    return joint - marginal


def js_mi(scores: Tensor) -> Tensor:
    """MI read from a JS-trained critic: NWJ at T + 1, since the JS optimum is T = log r
    while NWJ's optimum is log r + 1 (Lemma 3; Poole et al. 2019 Sec. 2.3)."""
    return nwj(scores + 1.0)


def tuba(scores: Tensor, log_baseline: Tensor) -> Tensor:
    """TUBA (Poole et al. 2019 Eq. 8) with a constant baseline a = e^b:
    E_P[T] - E_Q[e^T] / a - log a + 1. With b = 1 this is NWJ."""
    return diag_mean(scores) - torch.exp(offdiag_logmeanexp(scores) - log_baseline) \
        - log_baseline + 1.0


def alpha_bound(scores: Tensor, log_baseline: Tensor, alpha: float) -> Tensor:
    """Interpolated bound I_alpha (Poole et al. 2019 Eq. 11), between InfoNCE (alpha=1)
    and TUBA (alpha=0):

        1 + E[log e^{T(x1,y)} / m(y)] - E[e^{T(x',y)} / m'(y)],
        m(y) = alpha * mean_k e^{T(x_k, y)} + (1 - alpha) * a.

    For y_i the joint term's K samples are the whole batch (x_i among them); the
    marginal term uses the leave-one-out set {x_k : k != i}, each of which is
    independent of y_i. Columns index y: scores[..., k, i] = T(x_k, y_i).
    """
    n = scores.shape[-1]
    cols = scores.transpose(-2, -1)  # cols[..., i, k] = T(x_k, y_i)
    b = log_baseline.unsqueeze(-1) if log_baseline.dim() else log_baseline
    mask = _offdiag_mask(scores)

    def log_interp(log_mean: Tensor) -> Tensor:
        if alpha == 1.0:
            return log_mean
        if alpha == 0.0:
            return b.expand_as(log_mean)
        return torch.logaddexp(log_mean + math.log(alpha), b + math.log1p(-alpha))

    log_m = log_interp(torch.logsumexp(cols, -1) - math.log(n))
    joint = (scores.diagonal(dim1=-2, dim2=-1) - log_m).mean(-1)
    loo = cols.masked_fill(~mask, float("-inf"))
    log_m_loo = log_interp(torch.logsumexp(loo, -1) - math.log(n - 1))
    ratio = torch.exp(cols - log_m_loo.unsqueeze(-1)).masked_fill(~mask, 0.0)
    marginal = ratio.sum((-2, -1)) / mask.sum()
    return 1.0 + joint - marginal


@dataclass
class MineState:
    """MINE's exponential moving average of the partition function E_Q[e^T]. With
    ``blocks`` the last leading dimension of the scores indexes blocks: the average
    tracks the mean partition over them (one per critic)."""

    ema: Tensor | None = None
    blocks: bool = False


def mine_surrogate(scores: Tensor, state: MineState, rate: float) -> Tensor:
    """A surrogate whose gradient is MINE's bias-corrected gradient (Belghazi et al.
    2018, Sec. 3.2, Algorithm 1): grad E_P[T] - grad E_Q[e^T] / ema(E_Q[e^T]).
    Its value is not an MI estimate; the value reported is dv()."""
    partition = torch.exp(offdiag_logmeanexp(scores))
    with torch.no_grad():
        batch = partition.detach()
        if state.blocks:
            batch = batch.mean(-1, keepdim=True)
        state.ema = batch if state.ema is None else (1 - rate) * state.ema + rate * batch
    return diag_mean(scores) - partition / state.ema


@dataclass
class Bound:
    """An estimator: what the critic is trained on, and what is reported."""

    name: str
    objective: Callable[[Tensor], Tensor]
    value: Callable[[Tensor], Tensor]
    uses_baseline: bool = False
    state: MineState = field(default_factory=MineState)
    blocks: bool = False  # scores (..., m, b, b): the mean over the m blocks is reported


BaselineFn = Callable[[], Tensor]
BoundFactory = Callable[[Params, "BaselineFn | None"], Bound]
_BOUNDS: dict[str, BoundFactory] = {}


def register_bound(name: str, *, replace: bool = False
                   ) -> Callable[[BoundFactory], BoundFactory]:
    """Register the Bound of the registry entry ``name`` (micheck.estimators).

    The decorated factory takes the entry's typed params and the learned log baseline
    (a function returning the current one per stacked critic, or None) and returns a
    Bound. Public: a module outside this repository registers its bound the same way.
    """
    def deco(factory: BoundFactory) -> BoundFactory:
        entry = registry.get(name)  # KeyError: register the protocol entry first
        if entry.name in _BOUNDS and not replace:
            raise ValueError(f"a bound for {entry.name!r} is already registered")
        _BOUNDS[entry.name] = factory
        return factory
    return deco


def training_key(name: str, params: Mapping[str, Any]) -> str:
    """Estimators with equal keys train a critic identically (same objective, same
    optimiser state): given the same seed and data, one critic serves them all.
    SMILE at any tau and JS all train the JS classifier (Sec. 5)."""
    if name == "js" or (name == "smile" and params.get("objective", "js") == "js"):
        return "js"
    rest = ",".join(f"{k}={params[k]}" for k in sorted(params) if k != "tau" or name != "smile")
    return f"{name}({rest})" if rest else name


def make_bound(name: str, params: Mapping[str, Any] | Params,
               log_baseline: Tensor | BaselineFn | None = None, *,
               blocks: bool = False) -> Bound:
    """The Bound of a registered estimator, built by the factory registered for it.

    ``params`` are validated by the entry's params model (defaults filled in).
    ``log_baseline`` is the learned constant b of TUBA / I_alpha, one per stacked critic:
    a tensor, or a function returning the current one (read at every call).
    ``blocks``: the scores are blocked, (..., m, b, b) (module docstring); the Bound's
    objective and value are the mean over blocks of the registered bound on each block.
    """
    entry = registry.get(name)
    factory = _BOUNDS.get(entry.name)
    if factory is None:
        raise ValueError(f"no discriminative bound registered for {entry.name!r} "
                         f"({entry.family}); registered: {', '.join(sorted(_BOUNDS))}")
    lb = log_baseline if log_baseline is None or callable(log_baseline) else (
        lambda: log_baseline)
    if not blocks:
        return factory(entry.parse_params(params), lb)
    # one baseline per critic, broadcast over its blocks
    block_lb = None if lb is None else (lambda: lb().unsqueeze(-1))
    bound = factory(entry.parse_params(params), block_lb)
    bound.state.blocks = True
    objective, value = bound.objective, bound.value
    return replace(bound, objective=lambda s: objective(s).mean(-1),
                   value=lambda s: value(s).mean(-1), blocks=True)


def critic_bound(spec: EstimatorSpec, log_baseline: Tensor | BaselineFn | None = None
                 ) -> Bound:
    """The Bound that reads the scores of ``build_critic(spec.critic, ...)``: blocked when
    the critic is (``critic.block``). Training, the curve and the held-out estimate all
    go through it, so they agree."""
    return make_bound(spec.name, spec.params, log_baseline, blocks=spec.critic.block is not None)


def _fixed(name: str, objective: Callable[[Tensor], Tensor],
           value: Callable[[Tensor], Tensor]) -> None:
    register_bound(name)(lambda _params, _lb: Bound(name, objective, value))


_fixed("infonce", infonce, infonce)  # Eq. 5
_fixed("nwj", nwj, nwj)  # Lemma 3 / Eq. 4
_fixed("dv", dv, dv)  # Lemma 2 / Eq. 3
_fixed("js", js_objective, js_mi)  # JS critic, read with NWJ at T + 1


@register_bound("mine")
def _mine(params: Params, _lb: BaselineFn | None) -> Bound:
    """DV's value, trained with MINE's moving-average corrected gradient."""
    assert isinstance(params, MineParams)
    bound = Bound("mine", dv, dv)
    rate = params.ema_rate
    bound.objective = lambda s: mine_surrogate(s, bound.state, rate)
    return bound


@register_bound("smile")
def _smile(params: Params, _lb: BaselineFn | None) -> Bound:
    """Eq. 17's value; the critic trains as a JS classifier unless objective='direct'."""
    assert isinstance(params, SmileParams)
    tau = math.inf if params.tau == "inf" else float(params.tau)
    value = lambda s: smile(s, tau)  # noqa: E731
    return Bound("smile", js_objective if params.objective == "js" else value, value)


def _need_baseline(name: str, lb: BaselineFn | None) -> BaselineFn:
    if lb is None:
        raise ValueError(f"{name} needs a learned log_baseline tensor")
    return lb


@register_bound("tuba")
def _tuba(params: Params, lb: BaselineFn | None) -> Bound:
    base = _need_baseline("tuba", lb)
    fn = lambda s: tuba(s, base())  # noqa: E731
    return Bound("tuba", fn, fn, uses_baseline=True)


@register_bound("alpha")
def _alpha(params: Params, lb: BaselineFn | None) -> Bound:
    assert isinstance(params, AlphaParams)
    base, a = _need_baseline("alpha", lb), params.alpha
    fn = lambda s: alpha_bound(s, base(), a)  # noqa: E731
    return Bound("alpha", fn, fn, uses_baseline=True)
