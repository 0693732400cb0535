"""Fidelity on the Gaussian/Cubic staircase (paper 002 Sec. 6.1, App. B.1, Table 2).

One critic per (estimator, task, seed) is trained for 5 blocks of `steps_per_block`
steps; block b draws its batches at true MI 2(b+1) nats (d = 20). Statistics per block
are taken over the training estimates of its last `tail` steps (full mode: the last
1000 of each 4000), after the critic has had most of the block to adapt:
bias = |mean - I|, variance = variance over those steps, MSE = mean (estimate - I)^2.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from micheck.workers.bounds import training_key
from micheck.workers.data import sample_gaussian
from micheck.workers.generative import train_gm
from micheck.workers.trainer import CriticTask

from bench import reference
from bench.mixed import Job, train_mixed
from micheck.contract import CriticSpec, EstimatorSpec, TrainSpec

DIM, BATCH, LR = 20, 64, 5e-4
LEVELS = reference.MI_LEVELS


@dataclass(frozen=True)
class Entry:
    label: str  # the paper's row label (reference CSV), or ours for MINE / JS
    name: str
    params: tuple[tuple[str, object], ...] = ()


ENTRIES = [Entry("CPC", "infonce"), Entry("NWJ", "nwj"),
           Entry("SMILE(tau=1.0)", "smile", (("tau", 1.0),)),
           Entry("SMILE(tau=5.0)", "smile", (("tau", 5.0),)),
           Entry("SMILE(tau=10.0)", "smile", (("tau", 10.0),)),
           Entry("SMILE(tau=inf)", "smile", (("tau", "inf"),)),
           Entry("MINE", "mine"), Entry("JS", "js"), Entry("GM(flow)", "gm")]
BY_LABEL = {e.label: e for e in ENTRIES}
DISCRIMINATIVE = [e.label for e in ENTRIES if e.name != "gm"]
QUICK = ["CPC", "NWJ", "SMILE(tau=1.0)", "SMILE(tau=inf)", "GM(flow)"]


def spec(entry: Entry, kind: str, steps: int) -> EstimatorSpec:
    return EstimatorSpec(name=entry.name, params=dict(entry.params),
                         critic=CriticSpec(kind=kind, arch="mlp"),
                         train=TrainSpec(batch_size=BATCH, steps=steps, lr=LR, eval_samples=BATCH))


def staircase_task(task: str, label: str, seed: int, steps_per_block: int) -> CriticTask:
    """A CriticTask whose sampler climbs MI 2, 4, ..., 10 nats, one block at a time."""

    def at(mi: float):
        def sample(g: torch.Generator, n: int):
            x, y = sample_gaussian(n, DIM, mi, generator=g)
            return (x, y**3) if task == "cubic" else (x, y)
        return sample

    samplers = [at(float(m)) for m in LEVELS]
    # keyed by how the critic trains, not by the label: SMILE(tau) for every tau and JS
    # then draw the same initialisation and batches, alone or sharing a critic (bench.mixed)
    entry = BY_LABEL[label]
    key = f"staircase/{task}/{training_key(entry.name, dict(entry.params))}"
    return CriticTask(key, seed, samplers[0], samplers[-1], (DIM,), (DIM,),
                      schedule=lambda s: samplers[min(s // steps_per_block, len(LEVELS) - 1)])


def run(kind: str, labels: list[str], tasks: list[str], steps_per_block: int, seeds: list[int],
        batched: bool = True, device: str = "cpu") -> tuple[dict[tuple[str, str, int], list[float]],
                                                             dict[str, float]]:
    """Histories keyed (label, task, seed), and the wall time of each part."""
    steps = steps_per_block * len(LEVELS)
    histories: dict[tuple[str, str, int], list[float]] = {}
    times: dict[str, float] = {}
    disc = [lab for lab in labels if BY_LABEL[lab].name != "gm"]
    if disc:
        keys = [(lab, task, seed) for lab in disc for task in tasks for seed in seeds]
        jobs = [Job(spec(BY_LABEL[lab], kind, steps), staircase_task(task, lab, seed,
                                                                        steps_per_block))
                for lab, task, seed in keys]
        t0 = time.perf_counter()
        for key, hist in zip(keys, train_mixed(jobs, device, batched), strict=True):
            histories[key] = hist
        times["discriminative"] = time.perf_counter() - t0
    if "GM(flow)" in labels:
        keys = [("GM(flow)", task, seed) for task in tasks for seed in seeds]
        gm_tasks = [staircase_task(task, lab, seed, steps_per_block) for lab, task, seed in keys]
        t0 = time.perf_counter()
        out = train_gm(gm_tasks, spec(BY_LABEL["GM(flow)"], kind, steps), torch.device(device),
                       batched=batched, record_every=1)
        times["gm"] = time.perf_counter() - t0
        for key, t in zip(keys, gm_tasks, strict=True):
            histories[key] = out[t.key].history
    return histories, times


def block_stats(history: list[float], steps_per_block: int, tail: int) -> list[dict[str, float]]:
    """bias (absolute and signed), variance and MSE of each block's last `tail` estimates."""
    out = []
    for b, mi in enumerate(LEVELS):
        end = (b + 1) * steps_per_block
        vals = torch.tensor(history[end - tail:end], dtype=torch.float64)
        finite = vals[torch.isfinite(vals)]
        if finite.numel() < 2:
            out.append({"mi": mi, "mean": math.nan, "bias": math.nan, "signed_bias": math.nan,
                        "var": math.nan, "mse": math.nan})
            continue
        mean = finite.mean().item()
        out.append({"mi": mi, "mean": mean, "bias": abs(mean - mi), "signed_bias": mean - mi,
                    "var": finite.var(unbiased=False).item(),
                    "mse": (finite - mi).pow(2).mean().item()})
    return out


def summarise(histories: dict[tuple[str, str, int], list[float]], steps_per_block: int,
              tail: int) -> dict[tuple[str, str], list[dict[str, float]]]:
    """Per (label, task): block statistics averaged over seeds."""
    grouped: dict[tuple[str, str], list[list[dict[str, float]]]] = {}
    for (lab, task, _seed), hist in histories.items():
        grouped.setdefault((lab, task), []).append(block_stats(hist, steps_per_block, tail))
    out = {}
    for key, runs in grouped.items():
        out[key] = [{m: sum(r[b][m] for r in runs) / len(runs) for m in runs[0][b]}
                    for b in range(len(LEVELS))]
    return out


def table_rows(stats: dict[tuple[str, str], list[dict[str, float]]]) -> list[dict[str, object]]:
    """Table 2's layout: one row per (metric, estimator, task), ours / paper / difference."""
    paper = reference.table2()
    rows = []
    for metric in ("bias", "var", "mse"):
        for (lab, task), blocks in stats.items():
            ref = paper.get((metric, lab, task))
            row: dict[str, object] = {"metric": metric, "estimator": lab, "task": task}
            for b, mi in enumerate(LEVELS):
                ours = blocks[b][metric]
                row[f"ours_{mi}"] = round(ours, 3)
                row[f"paper_{mi}"] = "" if ref is None else ref[b]
                row[f"diff_{mi}"] = "" if ref is None else round(ours - ref[b], 3)
            rows.append(row)
    return rows


def write_csv(rows: list[dict[str, object]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def format_table(rows: list[dict[str, object]]) -> str:
    """Text table: each cell 'ours (paper)'."""
    head = f"{'metric':6} {'estimator':16} {'task':8} " + " ".join(f"{'I=' + str(m):>15}"
                                                                    for m in LEVELS)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = []
        for m in LEVELS:
            p = r[f"paper_{m}"]
            cells.append(f"{r[f'ours_{m}']:>7.2f} ({p:>5})" if p != "" else
                         f"{r[f'ours_{m}']:>7.2f}        ")
        lines.append(f"{r['metric']:6} {r['estimator']:16} {r['task']:8} " + " ".join(cells))
    return "\n".join(lines)


def plot(histories: dict[tuple[str, str, int], list[float]], steps_per_block: int,
         path: Path, title: str) -> None:
    """Figure-2 style: training estimates over the staircase, one panel per estimator."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(k[0] for k in histories))
    tasks = list(dict.fromkeys(k[1] for k in histories))
    fig, axes = plt.subplots(len(tasks), len(labels), figsize=(2.2 * len(labels), 2.2 * len(tasks)),
                             sharex=True, sharey=True, squeeze=False)
    steps = steps_per_block * len(LEVELS)
    truth = [LEVELS[min(s // steps_per_block, len(LEVELS) - 1)] for s in range(steps)]
    for (lab, task, seed), hist in histories.items():
        ax = axes[tasks.index(task)][labels.index(lab)]
        ax.plot(hist, lw=0.3, alpha=0.6, color=f"C{seed % 10}")
        ax.plot(truth, color="k", lw=1)
        ax.set_title(f"{lab}\n{task}", fontsize=7)
        ax.set_ylim(-1, 14)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
