"""An image staircase with known MI: same-class MNIST pairs (issue 12, Lee & Rhee 2024).

X and Y are two different MNIST images of one class drawn from k classes, m such pairs
stacked over channels; I(X; Y) = m H(C) with H(C) from the test split's class
frequencies (about log k; workers.data.pairs), an upper bound when labels are noisy.
Each (estimator, k, m) is one workers.engine.evaluate request with the ground_truth
test, so the numbers are the product's own: the held-out estimate over the known MI.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from micheck.workers.engine import evaluate

from micheck.contract import (
    CriticSpec,
    DatasetSpec,
    EstimatorSpec,
    EvaluationRequest,
    TestSpec,
    TrainSpec,
)

ESTIMATORS = {  # label -> (contract name, params)
    "CPC": ("infonce", {}), "NWJ": ("nwj", {}), "MINE": ("mine", {}),
    "SMILE(tau=5)": ("smile", {"tau": 5.0}), "JS": ("js", {}), "GM(VAE)": ("gm", {}),
}
FULL = {"ks": [2, 4, 6, 8, 10], "ms": [1, 2, 4], "estimators": list(ESTIMATORS),
        "steps": 3000, "batch": 64, "lr": 5e-4, "width": 1.0, "seeds": 1}
QUICK = {"ks": [2, 4, 10], "ms": [1, 2], "estimators": ["CPC", "SMILE(tau=5)"],
         "steps": 300, "batch": 64, "lr": 5e-4, "width": 0.25, "seeds": 1}


def add_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--image-estimators", default="",
                    help=f"comma list of {', '.join(ESTIMATORS)} (quick: CPC, SMILE(tau=5))")
    sp.add_argument("--image-steps", type=int, default=0, help="critic steps (quick: 300)")
    sp.add_argument("--ks", default="", help="comma list of class counts k (quick: 2,4,10)")
    sp.add_argument("--ms", default="", help="comma list of copies m (quick: 1,2)")


def schedule(a: argparse.Namespace) -> dict:
    s = dict(QUICK if a.quick else FULL)
    if a.image_estimators:
        s["estimators"] = [e.strip() for e in a.image_estimators.split(",") if e.strip()]
    if a.image_steps:
        s["steps"] = a.image_steps
    for key in ("ks", "ms"):
        if getattr(a, key):
            s[key] = [int(v) for v in getattr(a, key).split(",") if v.strip()]
    unknown = [e for e in s["estimators"] if e not in ESTIMATORS]
    if unknown:
        raise SystemExit(f"unknown estimator label(s) {unknown}; known: {list(ESTIMATORS)}")
    return s


def request(label: str, k: int, m: int, s: dict) -> EvaluationRequest:
    name, params = ESTIMATORS[label]
    return EvaluationRequest(
        estimator=EstimatorSpec(name=name, params=params,
                                critic=CriticSpec(kind="separable", width=s["width"]),
                                train=TrainSpec(batch_size=s["batch"], steps=s["steps"],
                                                lr=s["lr"], eval_samples=1024)),
        dataset=DatasetSpec(name="mnist", pairs="same_class", classes=list(range(k)), copies=m),
        tests=[TestSpec(kind="ground_truth")], seeds=list(range(s["seeds"])),
        max_seeds=s["seeds"])  # exactly these seeds: no adaptive rounds in a benchmark


def run(s: dict) -> list[dict]:
    rows = []
    for label in s["estimators"]:
        for m in s["ms"]:
            for k in s["ks"]:
                t0 = time.perf_counter()
                result = evaluate(request(label, k, m, s), device="cpu")
                for e in result.estimates:
                    rows.append({"estimator": label, "k": k, "m": m, "seed": e.seed,
                                 "estimate": e.mi_test, "train": e.mi_train, "truth": e.true_mi,
                                 "seconds": round(time.perf_counter() - t0, 1)})
                print(f"  {label} k={k} m={m}: {rows[-1]['estimate']} / {rows[-1]['truth']:.3f}"
                      f" nats, {rows[-1]['seconds']} s", flush=True)
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = sorted({r["m"] for r in rows})
    fig, axes = plt.subplots(1, len(ms), figsize=(4.2 * len(ms), 3.8), squeeze=False)
    for col, m in enumerate(ms):
        ax = axes[0][col]
        sel = [r for r in rows if r["m"] == m]
        truths = sorted({(r["k"], r["truth"]) for r in sel})
        ax.plot([t[0] for t in truths], [t[1] for t in truths], "k-", lw=1.2, label="m H(C)")
        for i, lab in enumerate(dict.fromkeys(r["estimator"] for r in sel)):
            pts = sorted((r["k"], r["estimate"]) for r in sel if r["estimator"] == lab
                         and r["estimate"] is not None)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=f"C{i}", label=lab)
        ax.set_title(f"m = {m} pair(s)", fontsize=9)
        ax.set_xlabel("classes k")
        ax.set_ylabel("MI (nats)")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(rows: list[dict], s: dict, wall: float, png: str) -> str:
    ks, ms = sorted({r["k"] for r in rows}), sorted({r["m"] for r in rows})
    head = "| estimator | m | " + " | ".join(f"k={k}" for k in ks) + " |"
    lines = [head, "|---|---|" + "---|" * len(ks)]
    for lab in dict.fromkeys(r["estimator"] for r in rows):
        for m in ms:
            cells = []
            for k in ks:
                r = next((r for r in rows if r["estimator"] == lab and r["m"] == m
                          and r["k"] == k), None)
                cells.append("-" if r is None or r["estimate"] is None else
                             f"{r['estimate']:.2f} / {r['truth']:.2f}")
            lines.append(f"| {lab} | {m} | " + " | ".join(cells) + " |")
    return "\n".join([
        "# Image staircase with known MI (same-class MNIST pairs)", "",
        "Generated by `python -m bench images` (bench/images.py); numbers in `images.json`.",
        "", f"Schedule: k in {ks}, m in {ms}, {s['steps']} steps, batch {s['batch']}, lr "
        f"{s['lr']}, separable CNN critic of width {s['width']}, seeds {s['seeds']}; wall "
        f"time {wall:.0f} s on the CPU (1 thread, niced, shared machine).", "",
        f"![estimate vs known MI]({png})", "",
        "Cells: held-out estimate / known MI m H(C) (nats; H(C) from the MNIST test split's "
        "class frequencies). The known MI assumes the class is recoverable from an image; "
        "label noise makes it an upper bound.", "", *lines, ""])


def main(a: argparse.Namespace) -> None:
    s = schedule(a)
    t0 = time.perf_counter()
    rows = run(s)
    wall = round(time.perf_counter() - t0, 1)
    stem = f"images{'_' + a.tag if a.tag else ''}"
    png = a.out / f"{stem}.png"
    plot(rows, png, f"same-class MNIST pairs: estimate vs m H(C); {s['steps']} steps")
    (a.out / f"{stem}.json").write_text(json.dumps({"schedule": s, "wall_seconds": wall,
                                                    "rows": rows}, indent=1))
    md = a.out / f"{stem}.md"
    body = markdown(rows, s, wall, png.name)
    marker = "<!-- comparison -->"
    if md.exists() and marker in md.read_text():
        body += "\n" + marker + md.read_text().split(marker, 1)[1]
    md.write_text(body)
    print(body)
