"""The `mi_gradient` test: estimated dI/drho on the correlated Gaussian of paper 004 Sec. 4.

x, y in R^d with corr(x_i, y_j) = delta_ij rho (standard normal marginals), so

    I(rho) = -d/2 log(1 - rho^2)          dI/drho = d rho / (1 - rho^2)

(paper 004 Sec. 4; the same task as paper 002 Eq. 55). Samples are reparameterised,
x = e1, y = rho e1 + sqrt(1 - rho^2) e2 (Cubic: y -> y^3), so rho is a differentiable
parameter of the sampler:

* discriminative estimators (MINE, NWJ = MINE-f, ...): one critic is trained at each
  rho, as for any MI estimate; dI/drho is then the gradient of the trained bound with
  respect to rho through the reparameterised held-out samples, the critic held fixed
  (paper 004 Sec. 4: "computed by backpropagation"; by the envelope theorem this is
  d/drho of sup_T bound at the optimal critic). The bound's value is the MI estimate.
* MIGE (workers.mige): its own estimate, grad H(Y) - grad H(X, Y) with SSGE scores.

For each rho the test reports the ratio estimate / analytic (ideal 1). Near rho = 0,
where the analytic gradient vanishes and a ratio is meaningless, it reports the absolute
error estimate - analytic (ideal 0) for |rho| < NEAR_ZERO, held to the absolute tolerance
the ratio test has at |rho| = NEAR_ZERO (tolerance * dI/drho(NEAR_ZERO)), so the criterion
is continuous at the switch. Verdicts follow micheck.verdicts: a Student-t interval over
seeds, simultaneous over every decision of the evaluation, against the band ideal +-
tolerance (pass inside, fail wholly outside, else inconclusive; more seeds while that is
for want of seeds, up to the request's seed cap). It also integrates the estimated gradient from rho = 0 with
the trapezoid rule over the requested grid and compares it with the same rule applied
to the analytic gradient (so quadrature error cancels; the analytic MI is in the note).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from micheck.workers.bounds import critic_bound
from micheck.workers.critics import build_critic
from micheck.workers.mige import SSGEConfig, mi_surrogate
from micheck.workers.stacked import Stack
from micheck.workers.trainer import (
    EVAL_SEED_OFFSET,
    TRAIN_TAIL,
    VECTOR_EVAL_SAMPLES,
    Ticker,
    task_seed,
)
from torch import Tensor

from micheck.contract import (
    DEFAULT_RHO,
    DatasetSpec,
    Diagnostic,
    Estimate,
    EstimatorSpec,
    EvaluationRequest,
    Ratio,
    TestSpec,
)
from micheck.scoring import looks
from micheck.verdicts import (
    ALPHA,
    INTERVAL_METHOD,
    RESOLVABLE_BY_SEEDS,
    Band,
    Verdict,
    decide,
    overall,
    simultaneous_level,
    student_t_interval,
)

NEAR_ZERO = 0.1  # below this |rho| the absolute error replaces the ratio
ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


def analytic_mi(rho: float, dim: int) -> float:
    """I(rho) = -d/2 log(1 - rho^2) nats (paper 004 Sec. 4; paper 002 Eq. 55)."""
    return -0.5 * dim * math.log1p(-rho * rho)


def analytic_gradient(rho: float, dim: int) -> float:
    """dI/drho = d rho / (1 - rho^2) (paper 004 Sec. 4)."""
    return dim * rho / (1.0 - rho * rho)


def trapezoid_from_zero(rhos: list[float], grads: list[float], at_zero: float = 0.0
                        ) -> dict[float, float]:
    """I(rho) - I(0) by the trapezoid rule over {0} U rhos, on each side of 0 separately.

    dI/drho at 0 is `at_zero` unless 0 is among `rhos` (then its value there); the true
    gradient at 0 is 0 for any d, since I is even in rho.
    """
    values = dict(zip(rhos, grads, strict=True))
    values.setdefault(0.0, at_zero)
    out: dict[float, float] = {}
    for sign in (1.0, -1.0):
        side = sorted((r for r in values if r * sign > 0), key=abs)
        total, prev = 0.0, 0.0
        for r in side:
            total += 0.5 * (values[prev] + values[r]) * (r - prev)
            out[r] = total
            prev = r
    if 0.0 in rhos:
        out[0.0] = 0.0
    return out


@dataclass
class GradientOutcome:
    rho: float
    seed: int
    gradient: float | None  # estimated dI/drho
    mi_test: float | None  # the bound's held-out value (discriminative); None for MIGE
    mi_train: float | None = None
    steps: int = 0
    diverged: bool = False


def rhos_of(test: TestSpec) -> list[float]:
    return sorted(set(test.rho if test.rho is not None else DEFAULT_RHO))


def _key(rho: float, seed: int) -> str:
    return f"mi_gradient/rho={rho:g}/seed={seed}"


def sample_pairs(rho: Tensor, noise: Tensor, cubic: bool) -> tuple[Tensor, Tensor]:
    """Reparameterised pairs: x = e1, y = rho e1 + sqrt(1 - rho^2) e2 (y^3 for Cubic).

    rho: (K,); noise: (K, 2, n, d). Returns x, y of shape (K, n, d), differentiable in rho.
    """
    r = rho.view(-1, 1, 1)
    x = noise[:, 0]
    y = r * x + torch.sqrt(1 - r * r) * noise[:, 1]
    return x, (y.pow(3) if cubic else y)


def _noise(gens: list[torch.Generator], n: int, dim: int, dtype: torch.dtype = torch.float32
           ) -> Tensor:
    return torch.stack([torch.randn(2, n, dim, generator=g, dtype=dtype) for g in gens])


def mige_config(params: dict) -> tuple[SSGEConfig, int, int]:
    """SSGE settings, projection size and sample count from a `mige` estimator's params."""
    cfg = SSGEConfig(n_eigen=int(params.get("n_eigen", 0)),
                     eigen_ratio=float(params.get("eigen_ratio", 0.99)),
                     bandwidth_scale=float(params.get("bandwidth_scale", 1.0)))
    return cfg, int(params.get("projection", 0)), int(params.get("samples", 1000))


def mige_gradients(ds: DatasetSpec, rhos: list[float], seeds: list[int], params: dict,
                   ticker: Ticker | None = None) -> dict[tuple[float, int], GradientOutcome]:
    """MIGE's dI/drho at each (rho, seed): one batch of `samples` reparameterised pairs,
    float64, on the CPU (an M x M eigendecomposition; the GPU buys little at M ~ 1000)."""
    cfg, projection, m = mige_config(params)
    out = {}
    for seed in seeds:
        for rho in rhos:
            g = torch.Generator().manual_seed(task_seed(seed, _key(rho, seed)))
            r = torch.tensor([rho], dtype=torch.float64, requires_grad=True)
            x, y = sample_pairs(r, _noise([g], m, ds.dim, torch.float64), ds.name == "cubic")
            surrogate = mi_surrogate(x[0], y[0], cfg, projection, g)
            (grad,) = torch.autograd.grad(surrogate, r)
            value = float(grad.item())
            finite = math.isfinite(value)
            out[(rho, seed)] = GradientOutcome(rho, seed, value if finite else None, None,
                                               steps=1, diverged=not finite)
            if ticker is not None:
                ticker.tick(1, final=rho == rhos[-1] and seed == seeds[-1])
    return out


def critic_gradients(ds: DatasetSpec, rhos: list[float], seeds: list[int], est: EstimatorSpec,
                     device: torch.device, ticker: Ticker | None = None, batched: bool = True,
                     ) -> dict[tuple[float, int], GradientOutcome]:
    """Train one critic per (rho, seed) on that rho's samples (all in one stack), then
    differentiate its held-out bound with respect to rho (module docstring)."""
    points = [(rho, seed) for seed in seeds for rho in rhos]
    seeds_of = [task_seed(seed, _key(rho, seed)) for rho, seed in points]
    modules = []
    for s in seeds_of:
        torch.manual_seed(s)  # init depends on the (rho, seed) alone
        modules.append(build_critic(est.critic, (ds.dim,), (ds.dim,)))
    stack = Stack(modules, est.train.lr, device, batched=batched)
    bound = critic_bound(est, lambda: stack.param("log_baseline"))
    gens = [torch.Generator().manual_seed(s) for s in seeds_of]
    rho_t = torch.tensor([p[0] for p in points], dtype=torch.float32, device=device)
    cubic = ds.name == "cubic"
    steps, n = est.train.steps, est.train.batch_size
    tail_start = steps - max(1, int(math.ceil(steps * TRAIN_TAIL)))
    tails = torch.zeros(len(points), dtype=torch.float64)
    diverged = torch.zeros(len(points), dtype=torch.bool)
    for step in range(steps):
        x, y = sample_pairs(rho_t, _noise(gens, n, ds.dim).to(device), cubic)
        scores = stack(x, y)
        objective = bound.objective(scores)
        stack.step(objective)
        diverged |= ~torch.isfinite(objective.detach()).cpu()
        if step >= tail_start:
            tails += bound.value(scores.detach()).cpu().double()
        if ticker is not None:
            ticker.tick(len(points), final=step == steps - 1)
    mi_train = tails / (steps - tail_start)
    eval_gens = [torch.Generator().manual_seed(s + EVAL_SEED_OFFSET) for s in seeds_of]
    batches = max(1, (est.train.eval_samples or VECTOR_EVAL_SAMPLES) // n)
    grad_sum = torch.zeros(len(points), dtype=torch.float64)
    value_sum = torch.zeros(len(points), dtype=torch.float64)
    for _ in range(batches):
        r = rho_t.clone().requires_grad_(True)
        x, y = sample_pairs(r, _noise(eval_gens, n, ds.dim).to(device), cubic)
        values = bound.value(stack(x, y))
        (grad,) = torch.autograd.grad(values.sum(), r)  # critics independent: per-point grads
        grad_sum += grad.detach().cpu().double()
        value_sum += values.detach().cpu().double()
    out = {}
    for k, (rho, seed) in enumerate(points):
        g, v, t = (float(grad_sum[k] / batches), float(value_sum[k] / batches),
                   float(mi_train[k].detach()))
        bad = bool(diverged[k]) or not all(math.isfinite(z) for z in (g, v, t))
        out[(rho, seed)] = GradientOutcome(
            rho, seed, g if math.isfinite(g) else None, v if math.isfinite(v) else None,
            t if math.isfinite(t) else None, steps, bad)
    return out


@dataclass
class GradientResult:
    estimates: list[Estimate]
    ratios: list[Ratio]
    diagnostics: list[Diagnostic]
    rounds: list[list[int]]
    verdict: Verdict
    seeds: list[int] = field(default_factory=list)


def _tests(request: EvaluationRequest) -> list[TestSpec]:
    return [t for t in request.tests if t.kind == "mi_gradient"]


def decisions(request: EvaluationRequest) -> int:
    """Pass/fail decisions of the gradient tests: one per rho, one per integrated |rho| >=
    NEAR_ZERO (the Bonferroni count, shared with the other tests of the request)."""
    return sum(len(rhos_of(t)) + sum(1 for r in rhos_of(t) if abs(r) >= NEAR_ZERO)
               for t in _tests(request))


def _units(request: EvaluationRequest, n_seeds: int) -> int:
    """Progress units: critic steps, or one per MIGE batch."""
    rhos = {r for t in _tests(request) for r in rhos_of(t)}
    units = len(rhos) * n_seeds
    return units if request.estimator.name == "mige" else units * request.estimator.train.steps


def run(request: EvaluationRequest, device: torch.device, *, progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None, batched: bool = True, extra_decisions: int = 0,
        alpha: float = ALPHA) -> GradientResult:
    """Every mi_gradient test of `request`: estimates, decided rows and diagnostics.

    Seeds double (new seeds only) while a row is inconclusive for want of seeds, up to
    request.seed_cap. `extra_decisions`: the request's other decisions, so that the
    simultaneous level covers all of them."""
    ds, est = request.dataset, request.estimator
    tests = _tests(request)
    rhos = sorted({r for t in tests for r in rhos_of(t)})
    level = simultaneous_level(decisions(request) + extra_decisions, looks(request), alpha)
    seeds, new = [], list(request.seeds)
    outcomes: dict[tuple[float, int], GradientOutcome] = {}
    rounds: list[list[int]] = []
    ticker = Ticker(_units(request, len(new)), progress, should_cancel)
    while new:
        rounds.append(new)
        seeds += new
        if est.name == "mige":
            outcomes.update(mige_gradients(ds, rhos, new, est.params, ticker))
        else:
            outcomes.update(critic_gradients(ds, rhos, new, est, device, ticker, batched))
        integrals = {seed: _integral(rhos, outcomes, seed) for seed in seeds}
        ratios = [row for t in tests for row in ratio_rows(t, ds.dim, seeds, outcomes,
                                                           integrals, level)]
        want = any(r.verdict == "inconclusive" and r.reason_code in RESOLVABLE_BY_SEEDS
                   for r in ratios)
        count = min(request.seed_cap, 2 * len(seeds)) - len(seeds) if want else 0
        new, candidate = [], max(seeds) + 1
        while len(new) < count:
            if candidate not in seeds:
                new.append(candidate)
            candidate += 1
        ticker.total += _units(request, len(new))
    estimates = []
    for seed in seeds:
        for rho in rhos:
            o = outcomes[(rho, seed)]
            mi = o.mi_test if est.name != "mige" else integrals[seed].get(rho)
            estimates.append(Estimate(
                test="mi_gradient", t=None, seed=seed, mi_train=o.mi_train, mi_test=mi,
                true_mi=analytic_mi(rho, ds.dim), steps=o.steps, diverged=o.diverged,
                transform="gradient", rho=rho, gradient=o.gradient,
                true_gradient=analytic_gradient(rho, ds.dim)))
    diagnostics = [Diagnostic(code="diverged", severity="error", test="mi_gradient", seed=e.seed,
                              message=f"rho={e.rho:g}: training or the gradient produced a "
                                      "non-finite value (NaN/inf)")
                   for e in estimates if e.diverged]
    if est.name == "mige":
        diagnostics.append(Diagnostic(
            code="info", severity="info", test="mi_gradient",
            message="MIGE estimates gradients only; its MI values are the integrated "
                    "gradient from rho = 0 (trapezoid rule over the requested rho grid)"))
    return GradientResult(estimates, ratios, diagnostics, rounds,
                          overall([r.verdict for r in ratios]), sorted(seeds))


def _integral(rhos: list[float], outcomes: dict[tuple[float, int], GradientOutcome],
              seed: int) -> dict[float, float]:
    grads = [outcomes[(r, seed)].gradient for r in rhos]
    if any(g is None for g in grads):
        return {}
    return trapezoid_from_zero(rhos, [float(g) for g in grads if g is not None])


def ratio_rows(test: TestSpec, dim: int, seeds: list[int],
               outcomes: dict[tuple[float, int], GradientOutcome],
               integrals: dict[int, dict[float, float]], level: float) -> list[Ratio]:
    """Decided rows, one per rho (transform "gradient") and one per |rho| >= NEAR_ZERO for
    the integrated MI (transform "integral"); per_seed holds each seed's value."""
    tol = test.effective_tolerance
    rhos = rhos_of(test)
    truth_integral = trapezoid_from_zero(rhos, [analytic_gradient(r, dim) for r in rhos])
    out = []
    for rho in rhos:
        truth = analytic_gradient(rho, dim)
        ests = [outcomes[(rho, s)].gradient for s in seeds]
        if abs(rho) < NEAR_ZERO:
            per_seed = [None if g is None else g - truth for g in ests]
            band = tol * analytic_gradient(NEAR_ZERO, dim)
            out.append(_row(rho, "gradient", per_seed, 0.0, band, tol, level,
                            f"rho={rho:g}: absolute error of dI/drho (analytic {truth:.3g}; "
                            f"|rho| < {NEAR_ZERO}, a ratio would divide by ~0; band +-"
                            f"{band:.3g} = tolerance x dI/drho at |rho| = {NEAR_ZERO})"))
        else:
            per_seed = [None if g is None else g / truth for g in ests]
            out.append(_row(rho, "gradient", per_seed, 1.0, tol, tol, level,
                            f"rho={rho:g}: estimated / analytic dI/drho ({truth:.3g})"))
    for rho in rhos:
        if abs(rho) < NEAR_ZERO:
            continue
        ref = truth_integral[rho]
        per_seed = [integrals[s][rho] / ref if rho in integrals.get(s, {}) else None
                    for s in seeds]
        out.append(_row(rho, "integral", per_seed, 1.0, tol, tol, level,
                        f"rho={rho:g}: MI integrated from rho=0 / the same quadrature of the "
                        f"analytic gradient ({ref:.3g} nats; analytic MI "
                        f"{analytic_mi(rho, dim):.3g})"))
    return out


def _row(rho: float, kind: str, per_seed: list[float | None], ideal: float, half: float,
         tol: float, level: float, note: str) -> Ratio:
    """One row decided by micheck.verdicts: band ideal +- half, interval over seeds."""
    finite = [v for v in per_seed if v is not None]
    band = Band(ideal - half, ideal + half)
    interval = student_t_interval(finite, level)
    d = decide(interval, band, finite=len(finite), total=len(per_seed))
    mean = sum(finite) / len(finite) if finite else None
    return Ratio(test="mi_gradient", t=None, value=mean,
                 ci_low=None if interval is None else interval.low,
                 ci_high=None if interval is None else interval.high, ideal=ideal,
                 passed=d.verdict == "pass", tolerance=tol, per_seed=per_seed, transform=kind,
                 note=note if not d.reason else f"{note}; {d.reason}", verdict=d.verdict,
                 band_low=band.low, band_high=band.high,
                 ci_level=None if interval is None else level,
                 ci_method=None if interval is None else INTERVAL_METHOD,
                 reason_code=d.reason_code, reason=d.reason, seeds=len(finite), rho=rho)
