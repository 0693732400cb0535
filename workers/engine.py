"""The engine's one entry point: evaluate(request) -> EvaluationResult.

Called in-process by `micheck run` and by the RQ job (workers.job). It plans the
measurements a request needs (workers.selfconsistency), trains all of their critics
(or generative models) for every seed as stacked models in one trainer, and turns
held-out estimates into ratios, confidence intervals, verdicts and diagnostics.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import datetime, timezone

import torch
from micheck.workers import gradient
from micheck.workers import selfconsistency as sc
from micheck.workers.data import load_images, load_labels
from micheck.workers.data.pairs import same_class_sampler
from micheck.workers.generative import train_gm
from micheck.workers.trainer import CriticTask, train_critics

from micheck.contract import (
    Diagnostic,
    Estimate,
    EvaluationRequest,
    EvaluationResult,
    Progress,
    Provenance,
    Ratio,
)
from micheck.definitions import DATASETS, code_version, definition_versions


def pick_device(device: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU. Nothing assumes a GPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_tasks(request: EvaluationRequest) -> tuple[list[CriticTask], dict[str, sc.Measurement]]:
    """One CriticTask per (measurement, seed), and which measurement each key is."""
    ds = request.dataset
    measurements = sc.plan(request)
    tasks: list[CriticTask] = []
    by_key: dict[str, sc.Measurement] = {}
    if ds.is_image:
        train, test = load_images(ds, "train"), load_images(ds, "test")
        image_shape = DATASETS[ds.name].shape
    if ds.pairs is not None:  # same-class image pairs: known MI (workers.data.pairs)
        classes = ds.classes or list(range(DATASETS[ds.name].classes))
        train_pairs, _ = same_class_sampler(train, load_labels(ds, "train"), classes, ds.copies)
        test_pairs, pair_mi = same_class_sampler(test, load_labels(ds, "test"), classes,
                                                 ds.copies)
        shape = (image_shape[0] * ds.copies, *image_shape[1:])
    for m in measurements:
        for seed in request.seeds:
            key = m.key(seed)
            by_key[key] = m
            if ds.pairs is not None:
                tasks.append(CriticTask(key, seed, train_pairs, test_pairs, shape, shape,
                                        true_mi=pair_mi))
            elif ds.is_image:
                xs, ys = sc.shapes(m, image_shape)
                tasks.append(CriticTask(key, seed, sc.image_sampler(train, m),
                                        sc.image_sampler(test, m), xs, ys))
            else:
                sampler = sc.vector_sampler(ds)
                tasks.append(CriticTask(key, seed, sampler, sampler, (ds.dim,), (ds.dim,),
                                        true_mi=ds.mi))
    return tasks, by_key


def evaluate(request: EvaluationRequest, *, device: str | None = None,
             progress: Callable[[Progress], None] | None = None,
             should_cancel: Callable[[], bool] | None = None,
             batched: bool = True) -> EvaluationResult:
    """Run every test of `request` for every seed; raises SpecError/DataNotFound for
    input only the data can reject, Canceled when should_cancel() turns true."""
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    dev = pick_device(device)
    # mi_gradient tests (workers.gradient) run apart; the others go through the plan below
    grad_est: list[Estimate] = []
    grad_ratios: list[Ratio] = []
    grad_diag: list[Diagnostic] = []
    if any(t.kind == "mi_gradient" for t in request.tests):
        def grad_report(done: int, total: int) -> None:
            if progress is not None:
                progress(Progress(steps_done=done, steps_total=total, current="mi_gradient"))
        grad_est, grad_ratios, grad_diag = gradient.run(
            request, dev, progress=grad_report, should_cancel=should_cancel, batched=batched)
    whole, request = request, request.model_copy(
        update={"tests": [t for t in request.tests if t.kind != "mi_gradient"]})
    tasks, by_key = build_tasks(request) if request.tests else ([], {})
    est = request.estimator
    label = f"training {len(tasks)} {'model triples' if est.name == 'gm' else 'critics'}"
    report = None
    if progress is not None:
        def report(done: int, total: int) -> None:
            progress(Progress(steps_done=done, steps_total=total, current=label))
        if tasks:
            report(0, len(tasks) * est.train.steps)
    train = train_gm if est.name == "gm" else train_critics
    outcomes = train(tasks, est, dev, batched=batched, progress=report,
                     should_cancel=should_cancel) if tasks else {}

    true_mi = request.dataset.mi if not request.dataset.is_image else next(
        (t.true_mi for t in tasks if t.true_mi is not None), None)  # same-class pairs
    estimates = {}
    for task in tasks:
        m, o = by_key[task.key], outcomes[task.key]
        estimates[task.key] = Estimate(
            test=m.role, t=m.t, seed=task.seed, mi_train=o.mi_train,
            mi_test=o.mi_test, true_mi=task.true_mi, steps=o.steps, diverged=o.diverged,
            transform=m.transform)
    ratio_list = sc.ratios(request, estimates, true_mi) + grad_ratios
    est_list = list(estimates.values())
    diagnostics = sc.diagnostics(request, est_list, ratio_list) + grad_diag
    est_list += grad_est
    finished = datetime.now(timezone.utc)
    return EvaluationResult(
        request=whole, estimates=est_list, ratios=ratio_list, diagnostics=diagnostics,
        provenance=Provenance(
            definition_versions=definition_versions(est.name, whole.generators()),
            code_version=_code_version(),
            seeds=list(request.seeds), device=_device_name(dev), torch_version=torch.__version__,
            started_at=started, finished_at=finished,
            wall_seconds=round(time.perf_counter() - t0, 3)),
        passed=all(r.passed for r in ratio_list) and not any(e.diverged for e in est_list))


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    return code_version()


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} threads)"
