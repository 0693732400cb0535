"""MNIST self-consistency at a CPU scale (paper 002 Sec. 6.2, Figures 4-6, Table 3).

Each estimator is one workers.engine.evaluate request (separable CNN critic, or the
VAE triple for GM) with the three tests over the top-t-rows construction, and
optionally the Table 3 transforms. Each result is kept as JSON under <out>/mnist/,
so estimators can be run in separate processes; the table and the figure are built
from every result present.
"""

from __future__ import annotations

import csv
import json
import time
from argparse import Namespace
from pathlib import Path

from micheck.workers.engine import evaluate

from bench import reference
from micheck.contract import (
    CriticSpec,
    DatasetSpec,
    EstimatorSpec,
    EvaluationRequest,
    EvaluationResult,
    TestSpec,
    TrainSpec,
)

# our key -> (contract name, params, the paper's Table 3 label)
ESTIMATORS = {
    "infonce": ("infonce", {}, "CPC"),
    "mine": ("mine", {}, "MINE"),
    "smile5": ("smile", {"tau": 5.0}, "SMILE(tau=5.0)"),
    "smileinf": ("smile", {"tau": "inf"}, "SMILE(tau=inf)"),
    "gm": ("gm", {}, "GM(VAE)"),
}
TRANSFORMS = ("scaling", "rotation", "translation")


def request(key: str, steps: int, rows: list[int], train_size: int, table3: bool,
            batch: int = 64) -> EvaluationRequest:
    name, params, _ = ESTIMATORS[key]
    tests = [TestSpec(kind="baseline", rows=rows),
             TestSpec(kind="data_processing", rows=rows),
             TestSpec(kind="additivity", rows=rows)]
    if table3:
        tests += [TestSpec(kind=k, transform=tr) for tr in TRANSFORMS
                  for k in ("data_processing", "additivity")]
    return EvaluationRequest(
        estimator=EstimatorSpec(name=name, params=params, critic=CriticSpec(kind="separable"),
                                train=TrainSpec(batch_size=batch, steps=steps, lr=1e-4,
                                                eval_samples=4 * batch)),
        dataset=DatasetSpec(name="mnist", train_size=train_size), tests=tests, seeds=[0],
        label=f"bench mnist {key}")


def run_one(key: str, steps: int, rows: list[int], train_size: int, table3: bool,
            out: Path, batched: bool) -> EvaluationResult:
    req = request(key, steps, rows, train_size, table3)
    t0 = time.perf_counter()
    result = evaluate(req, device="cpu", batched=batched)
    print(f"mnist {key}: {len(result.estimates)} models x {steps} steps in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    (out / "mnist").mkdir(parents=True, exist_ok=True)
    (out / "mnist" / f"{key}.json").write_text(result.model_dump_json(indent=1))
    return result


def load_results(out: Path) -> dict[str, EvaluationResult]:
    results = {}
    for key in ESTIMATORS:
        path = out / "mnist" / f"{key}.json"
        if path.is_file():
            results[key] = EvaluationResult.model_validate_json(path.read_text())
    return results


def ratio_rows(results: dict[str, EvaluationResult]) -> list[dict[str, object]]:
    rows = []
    for key, res in results.items():
        steps = res.request.estimator.train.steps
        for r in res.ratios:
            rows.append({"estimator": key, "test": r.test, "transform": r.transform, "t": r.t,
                         "ratio": None if r.value is None else round(r.value, 3),
                         "ideal": r.ideal, "passed": r.passed, "steps": steps})
        for e in res.estimates:
            rows.append({"estimator": key, "test": f"estimate:{e.test}", "transform": e.transform,
                         "t": e.t, "ratio": None if e.mi_test is None else round(e.mi_test, 3),
                         "ideal": None, "passed": not e.diverged, "steps": steps})
    return rows


def table3_rows(results: dict[str, EvaluationResult]) -> list[dict[str, object]]:
    paper = reference.table3()
    rows = []
    for key, res in results.items():
        label = ESTIMATORS[key][2]
        for r in res.ratios:
            if r.transform == "rows" or r.test == "baseline":
                continue
            ref = paper.get((r.test, r.transform), {}).get(label)
            rows.append({"estimator": label, "test": r.test, "transform": r.transform,
                         "ours": None if r.value is None else round(r.value, 2), "paper": ref,
                         "diff": None if r.value is None or ref is None
                         else round(r.value - ref, 2)})
    return rows


def plot(results: dict[str, EvaluationResult], path: Path) -> None:
    """Figures 4-6 in one row: baseline, data processing and additivity ratios vs t."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tests = [("baseline", None, "Fig. 4: I(X;Y_t)/I(X;X)"),
             ("data_processing", 1.0, "Fig. 5: data processing"),
             ("additivity", 2.0, "Fig. 6: additivity")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, (test, ideal, title) in zip(axes, tests, strict=True):
        for i, (key, res) in enumerate(results.items()):
            pts = sorted((r.t, r.value) for r in res.ratios
                         if r.test == test and r.transform == "rows" and r.value is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{i}",
                        label=ESTIMATORS[key][2])
        if ideal is not None:
            ax.axhline(ideal, color="k", ls="--", lw=0.8)
        else:
            ax.plot([0, 28], [0, 1], color="k", ls="--", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("rows t")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write(rows: list[dict[str, object]], path: Path) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(a: Namespace) -> None:
    keys = [k.strip() for k in a.mnist_estimators.split(",") if k.strip()] or \
        (["infonce", "smileinf"] if a.quick else list(ESTIMATORS))
    unknown = [k for k in keys if k not in ESTIMATORS]
    if unknown:
        raise SystemExit(f"unknown MNIST estimator(s) {unknown}; known: {list(ESTIMATORS)}")
    steps = a.mnist_steps or (15 if a.quick else 40)
    rows = [14, 28] if a.quick else [7, 14, 28]
    out = a.out if not a.quick else a.out / "quick"
    for key in keys:
        # batched=False: on a CPU the vmapped CNN is slower than a plain loop (docs, speed)
        run_one(key, steps, rows, train_size=2000 if a.quick else 10000,
                table3=a.table3, out=out, batched=False)
    results = load_results(out)
    _write(ratio_rows(results), out / "mnist_ratios.csv")
    _write(table3_rows(results), out / "mnist_table3.csv")
    plot(results, out / "mnist_figs4-6.png")
    for key, res in results.items():
        line = ", ".join(f"{r.test[:4]}{'' if r.t is None else r.t}"
                         f"{'' if r.transform == 'rows' else '/' + r.transform[:5]}="
                         f"{'nan' if r.value is None else f'{r.value:.2f}'}" for r in res.ratios)
        print(f"{key:9} {line}")
    print(json.dumps(table3_rows(results)) if a.table3 else "", end="")
    print(f"written {out}/mnist_*")
