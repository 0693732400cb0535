"""The engine's one entry point: evaluate(request) -> EvaluationResult.

Called in-process by `micheck run` and by the RQ job (workers.job). It plans the
measurements a request needs (micheck.plan), trains all of their critics (or generative
models) for every seed as stacked models in one trainer (workers.trainer), and has
micheck.scoring turn held-out estimates into ratios, intervals, verdicts and diagnostics.
While verdicts are inconclusive for want of seeds, it trains more seeds (doubling, up to
request.seed_cap), only for the measurements those points need, batched together.
The mi_gradient test (workers.gradient) runs apart, with the same verdict rule.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import datetime, timezone

import torch
from micheck.workers import gradient, plugins
from micheck.workers import selfconsistency as sc
from micheck.workers.data import load_images, load_labels
from micheck.workers.data.pairs import same_class_sampler
from micheck.workers.generative import train_gm
from micheck.workers.trainer import VECTOR_EVAL_SAMPLES, CriticTask, train_critics

from micheck.contract import (
    Diagnostic,
    Estimate,
    EvaluationRequest,
    EvaluationResult,
    Progress,
    Provenance,
    Ratio,
    SeedRounds,
)
from micheck.definitions import DATASETS, code_version, definition_versions
from micheck.errors import SpecError
from micheck.plan import Measurement, plan
from micheck.scoring import decision_count, diagnostics, next_round, score
from micheck.verdicts import ALPHA, RESOLVABLE_BY_SEEDS, Verdict, overall


def pick_device(device: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU. Nothing assumes a GPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_tasks(request: EvaluationRequest, seeds: list[int] | None = None,
                measurements: list[Measurement] | None = None
                ) -> tuple[list[CriticTask], dict[str, Measurement]]:
    """One CriticTask per (measurement, seed), and which measurement each key is.

    Defaults: every measurement of the plan, every seed of the request."""
    ds = request.dataset
    measurements = plan(request) if measurements is None else measurements
    seeds = list(request.seeds) if seeds is None else seeds
    tasks: list[CriticTask] = []
    by_key: dict[str, Measurement] = {}
    ev = request.estimator.train.eval_samples
    if ds.is_image:
        train, test = load_images(ds, "train"), load_images(ds, "test")
        image_shape = DATASETS[ds.name].shape
        eval_samples = min(ev, test.shape[0]) if ev else test.shape[0]
    else:
        eval_samples = ev or VECTOR_EVAL_SAMPLES
    if ds.pairs is not None:  # same-class image pairs: known MI (workers.data.pairs)
        classes = ds.classes or list(range(DATASETS[ds.name].classes))
        train_pairs, _ = same_class_sampler(train, load_labels(ds, "train"), classes, ds.copies)
        test_pairs, pair_mi = same_class_sampler(test, load_labels(ds, "test"), classes,
                                                 ds.copies)
        shape = (image_shape[0] * ds.copies, *image_shape[1:])
    for m in measurements:
        for seed in seeds:
            key = m.key(seed)
            by_key[key] = m
            if ds.pairs is not None:  # held out: random pairs of the test split
                tasks.append(CriticTask(key, seed, train_pairs, test_pairs, shape, shape,
                                        true_mi=pair_mi, eval_samples=eval_samples))
            elif ds.is_image:
                xs, ys = sc.shapes(m, image_shape)
                tasks.append(CriticTask(key, seed, sc.image_sampler(train, m),
                                        sc.image_sampler(test, m), xs, ys,
                                        eval_samples=eval_samples,
                                        evaluation=sc.image_sampler(test, m, walk=True)))
            else:
                sampler = sc.vector_sampler(ds)
                tasks.append(CriticTask(key, seed, sampler, sampler, (ds.dim,), (ds.dim,),
                                        true_mi=ds.mi, eval_samples=eval_samples))
    return tasks, by_key


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
             batched: bool = True) -> EvaluationResult:
    """Run every test of `request`; add seeds while verdicts are inconclusive for want of
    them (up to request.seed_cap); raises SpecError/DataNotFound for input only the data can
    reject, Canceled when should_cancel() turns true."""
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    request = with_plugin(request)
    dev = pick_device(device)
    whole, request = request, request.model_copy(
        update={"tests": [t for t in request.tests if t.kind != "mi_gradient"]})
    grad = gradient.GradientResult([], [], [], [], "inconclusive")
    if len(request.tests) < len(whole.tests):
        def grad_report(d: int, t: int) -> None:
            if progress is not None:
                progress(Progress(steps_done=d, steps_total=t, current="mi_gradient"))
        # both parts share one family-wise alpha (Bonferroni over all their decisions)
        grad = gradient.run(whole, dev, progress=grad_report, should_cancel=should_cancel,
                            batched=batched, extra_decisions=decision_count(request))
    if not request.tests:
        return _result(whole, grad.estimates, grad.ratios, grad.diagnostics, grad.verdict,
                       grad.rounds, _stop_reason(whole, grad.ratios, grad.seeds,
                                                 len(grad.rounds)), dev, started, t0)
    est = request.estimator
    train = train_gm if est.entry.family == "generative" else train_critics
    true_mi = request.dataset.mi if not request.dataset.is_image else None
    seeds = list(request.seeds)
    tasks, by_key = build_tasks(request)
    if request.dataset.pairs is not None:  # same-class pairs: the known MI of the test split
        true_mi = tasks[0].true_mi
    classic, grads = decision_count(request), gradient.decisions(whole)
    alpha = ALPHA * classic / (classic + grads) if grads else ALPHA
    rounds: list[list[int]] = []
    estimates: dict[str, Estimate] = {}
    done = 0
    total = len(tasks) * est.train.steps
    while True:
        rounds.append(sorted({t.seed for t in tasks}))
        label = (f"round {len(rounds)}: training {len(tasks)} "
                 f"{'model triples' if est.name == 'gm' else 'critics'}")
        report = None
        if progress is not None:
            def report(d: int, t: int, label: str = label) -> None:
                progress(Progress(steps_done=d, steps_total=t, current=label))
            report(done, total)
        outcomes = train(tasks, est, dev, batched=batched, progress=report,
                         should_cancel=should_cancel, progress_offset=done,
                         progress_total=total)
        for task in tasks:
            m, o = by_key[task.key], outcomes[task.key]
            estimates[task.key] = Estimate(
                test=m.role, t=m.t, seed=task.seed, mi_train=o.mi_train, mi_test=o.mi_test,
                true_mi=task.true_mi, steps=o.steps, diverged=o.diverged, transform=m.transform,
                curve=o.curve, converged=o.converged, convergence=o.convergence)
            done += o.steps
        total = max(total, done)
        ratio_list, verdict = score(request, estimates, seeds, true_mi, alpha=alpha)
        new_seeds, measurements = next_round(request, ratio_list, seeds)
        if not new_seeds:
            break
        seeds += new_seeds
        tasks, more = build_tasks(request, new_seeds, measurements)
        by_key.update(more)
        total = done + len(tasks) * est.train.steps
    stop = _stop_reason(request, ratio_list, seeds, len(rounds))
    est_list = list(estimates.values())
    diags = diagnostics(request, est_list, ratio_list)
    if grad.ratios:
        verdict = overall([verdict, grad.verdict])
    return _result(whole, est_list + grad.estimates, ratio_list + grad.ratios,
                   diags + grad.diagnostics, verdict, rounds, stop, dev, started, t0,
                   seeds=sorted(set(seeds) | set(grad.seeds)))


def _result(request: EvaluationRequest, estimates: list[Estimate], ratios: list[Ratio],
            diags: list[Diagnostic], verdict: Verdict, rounds: list[list[int]],
            stop: tuple[str, str], dev: torch.device, started: datetime, t0: float,
            seeds: list[int] | None = None) -> EvaluationResult:
    finished = datetime.now(timezone.utc)
    all_seeds = sorted(seeds if seeds is not None else {s for r in rounds for s in r})
    return EvaluationResult(
        request=request, estimates=estimates, ratios=ratios, diagnostics=diags,
        provenance=Provenance(
            definition_versions=definition_versions(request.estimator.name,
                                                    request.generators()),
            code_version=_code_version(), seeds=all_seeds, device=_device_name(dev),
            torch_version=torch.__version__, started_at=started, finished_at=finished,
            wall_seconds=round(time.perf_counter() - t0, 3)),
        passed=verdict == "pass", verdict=verdict, alpha=ALPHA,
        seed_rounds=SeedRounds(rounds=rounds, cap=request.seed_cap, stop=stop[0], note=stop[1]))


def _stop_reason(request: EvaluationRequest, ratios: list[Ratio], seeds: list[int],
                 n_rounds: int) -> tuple[str, str]:
    open_ = [r for r in ratios if r.verdict == "inconclusive"]
    if not open_:
        return "conclusive", f"every verdict conclusive with {len(seeds)} seeds"
    if any(r.reason_code in RESOLVABLE_BY_SEEDS for r in open_) and len(seeds) >= request.seed_cap:
        return "cap_reached", (f"{len(open_)} verdict(s) still inconclusive at the seed cap "
                               f"({request.seed_cap}); raise max_seeds to decide them")
    if n_rounds == 1 and request.seed_cap <= len(request.seeds):
        return "single_round", "max_seeds = len(seeds): no seeds added"
    return "not_resolvable_by_seeds", (f"{len(open_)} verdict(s) inconclusive for reasons more "
                                       "seeds cannot remove (not converged, non-finite)")


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    return code_version()


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} threads)"
