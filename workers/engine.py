"""The engine's one entry point: evaluate(request) -> EvaluationResult.

Called in-process by `micheck run` and by the RQ job (workers.job). It plans the
measurements a request needs (micheck.plan, from each test kind's registry entry), builds
one task per measurement and seed with the kind's sampler (workers.selfconsistency),
trains them all as stacked models in the one loop (workers.trainer; the estimator's
family picks the learner: critics, GM's model triples, or MIGE's untrained estimate), and
has micheck.scoring turn held-out estimates into decided rows and diagnostics. While
verdicts are inconclusive for want of seeds, it trains more seeds (micheck.scoring's
doubling rule, up to request.seed_cap), only for the measurements those rows need.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import datetime, timezone

import torch
from micheck.workers import gradient, plugins, point
from micheck.workers.generative import train_gm
from micheck.workers.selfconsistency import TaskData, build_tasks
from micheck.workers.trainer import CriticTask, TaskOutcome, train_critics

from micheck import convergence, testkinds
from micheck.contract import (
    Diagnostic,
    Estimate,
    EstimatorSpec,
    EvaluationRequest,
    EvaluationResult,
    Look,
    Progress,
    Provenance,
    Ratio,
    SeedRounds,
)
from micheck.definitions import code_version, definition_versions
from micheck.errors import SpecError
from micheck.plan import Measurement
from micheck.scoring import (
    diagnostics,
    extend,
    keyed_estimates,
    look_record,
    looks,
    next_round,
    open_measurements,
    planned_looks,
    score,
)
from micheck.verdicts import ALPHA, RESOLVABLE_BY_SEEDS, Verdict

__all__ = ["build_tasks", "evaluate", "pick_device", "with_plugin"]

Fit = Callable[..., dict[str, TaskOutcome]]
# per estimator family: how its tasks are fitted, what each fits (progress label), and
# whether a task costs train.steps progress units (trained) or one (estimated directly)
FAMILIES: dict[str, tuple[Fit, str, bool]] = {
    "discriminative": (train_critics, "critics", True),
    "generative": (train_gm, "model triples", True),
    "gradient": (gradient.train_mige, "gradient estimates", False),
    "point": (point.fit_points, "point estimates", False),
}


def pick_device(device: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU. Nothing assumes a GPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def with_plugin(request: EvaluationRequest) -> EvaluationRequest:
    """The request with its estimator resolved here: a plug-in's bound loaded and its
    params validated by the plug-in's own strict model (a service without the plug-in
    only checked their names). SpecError / PluginFailed otherwise."""
    est = request.estimator
    entry = plugins.prepare(est.name)
    if entry.origin is None:
        return request
    try:
        params = entry.parse_params(est.params).model_dump(mode="json")
    except ValueError as exc:
        raise SpecError(f"estimator {entry.name} ({entry.provider}): {exc}") from None
    return request.model_copy(update={"estimator": est.model_copy(update={"params": params})})


def evaluate(request: EvaluationRequest, *, device: str | None = None,
             progress: Callable[[Progress], None] | None = None,
             should_cancel: Callable[[], bool] | None = None,
             batched: bool = True, prior: EvaluationResult | None = None) -> EvaluationResult:
    """Run every test of `request`; add seeds while verdicts are inconclusive for want of
    them (up to request.seed_cap); raises SpecError/DataNotFound for input only the data can
    reject, Canceled when should_cancel() turns true.

    With `prior` (a finished evaluation of the same spec), this is one more look at it
    (`micheck more-seeds`): `request.seeds` are the prior's seeds and the new ones; only
    the new seeds are trained, only for the measurements of the rows still undecided for
    want of seeds, and they are pooled with the prior's stored estimates
    (micheck.scoring.extend: rows decided before stay, the rest are judged at the level
    that counts every look)."""
    if prior is not None:
        return _more_seeds(request, prior, device=device, progress=progress,
                           should_cancel=should_cancel, batched=batched)
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    request = with_plugin(request)
    dev = pick_device(device)
    est = request.estimator
    fit, what, trained = FAMILIES[est.entry.family]
    data = TaskData(request, dev)
    seeds = list(request.seeds)
    tasks, by_key = build_tasks(request, data=data)
    true_mi = data.true_mi  # vector tasks and same-class pairs (the test split's)
    rounds: list[list[int]] = []
    estimates: dict[str, Estimate] = {}
    looks_done: list[Look] = []
    ratio_list: list[Ratio] | None = None
    planned = looks(request)
    done = 0
    total = _units(tasks, est, trained)
    while True:
        rounds.append(sorted({t.seed for t in tasks}))
        label = f"round {len(rounds)}: training {len(tasks)} {what}"
        report = None
        if progress is not None:
            def report(d: int, t: int, label: str = label) -> None:
                progress(Progress(steps_done=d, steps_total=t, current=label))
            report(done, total)
        outcomes = fit(tasks, est, dev, batched=batched, progress=report,
                       should_cancel=should_cancel, progress_offset=done, progress_total=total,
                       min_steps=convergence.min_steps(request.reference_steps))
        for task in tasks:
            estimates[task.key] = _estimate(request, by_key[task.key], task,
                                            outcomes[task.key])
            done += outcomes[task.key].steps
        total = max(total, done)
        before = ratio_list
        ratio_list, verdict = score(request, estimates, seeds, true_mi, look=len(rounds),
                                    planned=planned, previous=before)
        looks_done.append(look_record(request, ratio_list, before, len(rounds), planned,
                                      len(seeds)))
        new_seeds, measurements = next_round(request, ratio_list, seeds)
        if not new_seeds:
            break
        seeds += new_seeds
        tasks, more = build_tasks(request, new_seeds, measurements, data)
        by_key.update(more)
        total = done + _units(tasks, est, trained)
    stop = _stop_reason(request, ratio_list, seeds, len(rounds))
    est_list = list(estimates.values())
    return _result(request, est_list, ratio_list, diagnostics(request, est_list, ratio_list),
                   verdict, rounds, stop, dev, started, t0, looks_done, planned)


def _more_seeds(request: EvaluationRequest, prior: EvaluationResult, *, device: str | None,
                progress: Callable[[Progress], None] | None,
                should_cancel: Callable[[], bool] | None, batched: bool) -> EvaluationResult:
    """evaluate(request, prior=...): train the new seeds of the open rows, pool, look once."""
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    base = with_plugin(prior.request)  # the spec the prior was scored with (its looks)
    if not prior.seed_rounds.looks:
        raise SpecError("this evaluation was scored before looks were recorded (engine v3): "
                        "its level cannot be carried on; submit it again")
    old = list(prior.provenance.seeds)
    new = [s for s in request.seeds if s not in set(old)]
    if not new:
        raise SpecError("more seeds: no new seed to train")
    dev = pick_device(device)
    est = base.estimator
    fit, what, trained = FAMILIES[est.entry.family]
    try:
        estimates = keyed_estimates(base, prior.estimates)
    except ValueError as exc:
        raise SpecError(f"more seeds: {exc}") from None
    measurements = open_measurements(base, prior.ratios)
    data = TaskData(base, dev)
    tasks, by_key = build_tasks(base, new, measurements, data)
    total = _units(tasks, est, trained)
    label = f"more seeds: training {len(tasks)} {what}"
    report = None
    if progress is not None:
        def report(d: int, t: int) -> None:
            progress(Progress(steps_done=d, steps_total=t, current=label))
        report(0, total)
    outcomes = fit(tasks, est, dev, batched=batched, progress=report,
                   should_cancel=should_cancel, progress_offset=0, progress_total=total,
                   min_steps=convergence.min_steps(base.reference_steps))
    for task in tasks:
        estimates[task.key] = _estimate(base, by_key[task.key], task, outcomes[task.key])
    seeds = old + new
    planned = planned_looks(prior)
    rows, verdict, look = extend(base, estimates, seeds, data.true_mi, prior.ratios,
                                 prior.seed_rounds.looks, alpha=prior.alpha or ALPHA,
                                 planned=planned)
    est_list = list(estimates.values())
    rounds = [*prior.seed_rounds.rounds, new]
    stop = _stop_reason(request, rows, seeds, len(rounds))
    result = _result(request, est_list, rows, diagnostics(base, est_list, rows), verdict,
                     rounds, stop, dev, started, t0, [*prior.seed_rounds.looks, look], planned)
    return result.model_copy(update={"seed_rounds": result.seed_rounds.model_copy(update={
        "note": f"{result.seed_rounds.note}; {len(new)} seeds added to a finished evaluation "
                f"(look {look.look}, alpha {look.alpha:.3g} from the reserve of looks "
                "beyond the plan)" if not look.planned else
                f"{result.seed_rounds.note}; {len(new)} seeds added (look {look.look})"})})


def _units(tasks: list[CriticTask], est: EstimatorSpec, trained: bool) -> int:
    """Progress units of a round: critic steps, or one per directly estimated task."""
    return len(tasks) * (est.train.steps if trained else 1)


def _estimate(request: EvaluationRequest, m: Measurement, task: CriticTask, o: TaskOutcome
              ) -> Estimate:
    """The stored row of one trained task; its test kind adds its own fields (rho, ...)."""
    return Estimate(**{
        "test": m.role, "t": m.t, "seed": task.seed, "mi_train": o.mi_train,
        "mi_test": o.mi_test, "true_mi": task.true_mi, "steps": o.steps,
        "diverged": o.diverged, "transform": m.transform, "curve": o.curve,
        "converged": o.converged, "convergence": o.convergence, "gradient": o.gradient,
        **testkinds.get(m.role).estimate_fields(m, request)})


def _result(request: EvaluationRequest, estimates: list[Estimate], ratios: list[Ratio],
            diags: list[Diagnostic], verdict: Verdict, rounds: list[list[int]],
            stop: tuple[str, str], dev: torch.device, started: datetime, t0: float,
            looks_done: list[Look], planned: int) -> EvaluationResult:
    finished = datetime.now(timezone.utc)
    all_seeds = sorted({s for r in rounds for s in r})
    return EvaluationResult(
        request=request, estimates=estimates, ratios=ratios, diagnostics=diags,
        provenance=Provenance(
            definition_versions=definition_versions(request.estimator.name,
                                                    request.generators(),
                                                    request.dataset.name),
            code_version=_code_version(), seeds=all_seeds, device=_device_name(dev),
            torch_version=torch.__version__, started_at=started, finished_at=finished,
            wall_seconds=round(time.perf_counter() - t0, 3)),
        passed=verdict == "pass", verdict=verdict, alpha=ALPHA,
        seed_rounds=SeedRounds(rounds=rounds, cap=request.seed_cap, stop=stop[0], note=stop[1],
                               looks=looks_done, planned_looks=planned))


def _stop_reason(request: EvaluationRequest, ratios: list[Ratio], seeds: list[int],
                 n_rounds: int) -> tuple[str, str]:
    open_ = [r for r in ratios if r.verdict == "inconclusive"]
    if not open_:
        return "conclusive", f"every verdict conclusive with {len(seeds)} seeds"
    if any(r.reason_code in RESOLVABLE_BY_SEEDS for r in open_) and len(seeds) >= request.seed_cap:
        return "cap_reached", (f"{len(open_)} verdict(s) still inconclusive at the seed cap "
                               f"({request.seed_cap}); raise max_seeds, or add seeds to this "
                               "evaluation (micheck more-seeds), to decide them")
    if any(r.reason_code in RESOLVABLE_BY_SEEDS for r in open_):
        return "futile", (f"{len(open_)} verdict(s) inconclusive; the seeds left before the "
                          f"cap ({request.seed_cap}) would not decide them at their spread "
                          "(micheck.scoring.futile)")
    if n_rounds == 1 and request.seed_cap <= len(request.seeds):
        return "single_round", "max_seeds = len(seeds): no seeds added"
    return "not_resolvable_by_seeds", (f"{len(open_)} verdict(s) inconclusive for reasons more "
                                       "seeds cannot remove (not converged, non-finite)")


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    return code_version()


code_version()  # pinned when the engine is imported: the code that runs is the code then


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} threads)"
