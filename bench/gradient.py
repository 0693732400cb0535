"""Paper 004 Fig. 1 analogue: estimated MI and dI/drho against rho on the correlated Gaussian.

x, y in R^d, corr(x_i, y_j) = delta_ij rho, d = 5, 10, 20 (paper 004 Sec. 4). MINE (the
DV bound trained with the moving-average gradient) and MINE-f (NWJ) train one critic per
(rho, seed) and differentiate the trained bound with respect to rho through the
reparameterised held-out samples; MIGE estimates dI/drho directly (workers.gradient). Every
(estimator, d) is one `mi_gradient` evaluation through the engine (workers.engine.evaluate).
The top row plots each MI estimate (MIGE: its gradient integrated from rho = 0 with the
trapezoid rule, which the paper does not draw), the bottom row dI/drho, thin lines one
per seed, thick the mean, black the truth -d/2 log(1 - rho^2) and d rho / (1 - rho^2).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch
from micheck.workers.engine import evaluate
from micheck.workers.gradient import analytic_gradient, analytic_mi

from bench.reference import MIGE_RELEASED, MIGE_RELEASED_RHO
from micheck.contract import (
    CriticSpec,
    DatasetSpec,
    EstimatorSpec,
    EvaluationRequest,
    TestSpec,
    TrainSpec,
)

LABELS = {"MINE": "mine", "MINE-f": "nwj", "MIGE": "mige"}
FULL = {"dims": [5, 10, 20], "rho_step": 0.15, "rho_max": 0.9, "seeds": 2, "steps": 1000,
        "batch": 64, "lr": 5e-4, "samples": 1000, "critic": "separable"}
QUICK = {"dims": [5], "rho_step": 0.3, "rho_max": 0.9, "seeds": 2, "steps": 150,
         "batch": 32, "lr": 5e-4, "samples": 300, "critic": "separable"}


def add_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--dims", default="", help="comma list of d (default 5,10,20; quick: 5)")
    sp.add_argument("--grad-steps", type=int, default=0,
                    help="critic steps per (rho, seed) (default 1000; quick: 150)")
    sp.add_argument("--grad-seeds", type=int, default=0, help="seeds (default 2)")
    sp.add_argument("--samples", type=int, default=0,
                    help="MIGE samples M per estimate (default 1000; quick: 300)")
    sp.add_argument("--paper", action="store_true",
                    help="the setting of MIGE's released toy results: d = 8, 16, 32 at "
                         "rho = 0.8, 3 seeds, beside their numbers (gradient_paper.*)")
    sp.add_argument("--grad-critic", choices=["separable", "joint"], default="",
                    help="critic of MINE and MINE-f (default separable: a joint critic scores "
                         "n^2 pairs per step, ~15x the CPU time)")


def grid(step: float, top: float) -> list[float]:
    n = round(top / step)
    return [round(k * step, 6) for k in range(-n, n + 1)]


def schedule(a: argparse.Namespace) -> dict:
    s = dict(QUICK if a.quick else FULL)
    if getattr(a, "paper", False):
        s.update(dims=sorted(MIGE_RELEASED["analytic"]), seeds=3)
    if a.dims:
        s["dims"] = [int(d) for d in a.dims.split(",") if d.strip()]
    for key, attr in (("steps", "grad_steps"), ("seeds", "grad_seeds"), ("samples", "samples")):
        if getattr(a, attr):
            s[key] = getattr(a, attr)
    if a.grad_critic:
        s["critic"] = a.grad_critic
    s["rhos"] = [MIGE_RELEASED_RHO] if getattr(a, "paper", False) else \
        grid(s["rho_step"], s["rho_max"])
    return s


def paper_markdown(rows: list[dict], s: dict, times: dict[str, float]) -> tuple[str, list]:
    """Ours (mean and range over seeds) beside MIGE's released numbers at rho = 0.8."""
    rho = MIGE_RELEASED_RHO
    table = []
    for label in ("analytic", *LABELS):
        for d in s["dims"]:
            ref = MIGE_RELEASED[label].get(d)
            if label == "analytic":
                ours = [analytic_gradient(rho, d)]
            else:
                ours = [r["gradient"] for r in rows if r["estimator"] == label and r["d"] == d
                        and r["rho"] == rho and r["gradient"] is not None]
            mean = statistics.fmean(ours) if ours else None
            table.append({"estimator": label, "d": d, "released": ref, "ours": mean,
                          "ours_min": min(ours) if ours else None,
                          "ours_max": max(ours) if ours else None,
                          "ours_ratio": None if mean is None else mean / analytic_gradient(rho, d),
                          "released_ratio": None if ref is None
                          else ref / analytic_gradient(rho, d)})
    lines = ["| estimator | d | released | released / analytic | ours (seeds: min-max) | "
             "ours / analytic |", "|---|---|---|---|---|---|"]
    for t in table:
        spread = "" if t["ours_min"] is None or t["ours_min"] == t["ours_max"] else \
            f" ({t['ours_min']:.2f}-{t['ours_max']:.2f})"
        lines.append(f"| {t['estimator']} | {t['d']} | {_fmt(t['released'])} | "
                     f"{_fmt(t['released_ratio'])} | {_fmt(t['ours'])}{spread} | "
                     f"{_fmt(t['ours_ratio'])} |")
    total = sum(times.values())
    return "\n".join([
        "# dI/drho at rho = 0.8 beside MIGE's released toy results", "",
        "Generated by `python -m bench gradient --paper` (bench/gradient.py); numbers in "
        "`gradient_paper.json`; the released values are in `bench/reference.py` "
        "(`MIGE_RELEASED`).", "",
        f"x, y in R^d, corr(x_i, y_i) = {rho}; seeds {s['seeds']}; MINE and MINE-f: "
        f"{s['critic']} MLP critic, {s['steps']} Adam steps at lr {s['lr']}, batch "
        f"{s['batch']}, gradient through the reparameterised held-out samples; MIGE: "
        f"M = {s['samples']} samples (SSGE, RBF kernel, median bandwidth, 99% of the trace). "
        f"Wall time {total:.0f} s on the CPU (1 thread): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + ".", "",
        *lines, ""]), table


def trapezoid_from_zero(rhos: list[float], grads: list[float], at_zero: float = 0.0
                        ) -> dict[float, float]:
    """I(rho) - I(0) by the trapezoid rule over {0} U rhos, on each side of 0 separately
    (MIGE's MI curve in the figure: it estimates gradients only).

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


def _spec(name: str, s: dict) -> EstimatorSpec:
    if name == "mige":
        return EstimatorSpec(name=name, params={"samples": s["samples"]})
    return EstimatorSpec(name=name, critic=CriticSpec(kind=s["critic"], arch="mlp"),
                         train=TrainSpec(batch_size=s["batch"], steps=s["steps"], lr=s["lr"],
                                         eval_samples=8 * s["batch"]))


def run(s: dict) -> tuple[list[dict], dict[str, float]]:
    """One row per (estimator, d, rho, seed): gradient and MI estimates, and their truths."""
    rows: list[dict] = []
    times: dict[str, float] = {}
    seeds = list(range(s["seeds"]))
    for d in s["dims"]:
        ds = DatasetSpec(name="gaussian", dim=d)
        for label, name in LABELS.items():
            t0 = time.perf_counter()
            request = EvaluationRequest(estimator=_spec(name, s), dataset=ds, seeds=seeds,
                                        tests=[TestSpec(kind="mi_gradient", rho=s["rhos"])],
                                        max_seeds=len(seeds))
            result = evaluate(request, device="cpu")
            out = {(e.rho, e.seed): e for e in result.estimates}
            times[f"{label} d={d}"] = round(time.perf_counter() - t0, 1)
            for seed in seeds:
                grads = [out[(r, seed)].gradient for r in s["rhos"]]
                finite = all(g is not None and math.isfinite(g) for g in grads)
                integral = trapezoid_from_zero(s["rhos"], [float(g or 0.0) for g in grads]) \
                    if finite else {}
                for rho, g in zip(s["rhos"], grads, strict=True):
                    o = out[(rho, seed)]
                    rows.append({"estimator": label, "d": d, "rho": rho, "seed": seed,
                                 "gradient": g, "true_gradient": analytic_gradient(rho, d),
                                 "mi": o.mi_test if name != "mige" else integral.get(rho),
                                 "true_mi": analytic_mi(rho, d), "diverged": o.diverged})
            print(f"  {label} d={d}: {times[f'{label} d={d}']} s", flush=True)
    return rows, times


def summarise(rows: list[dict]) -> list[dict]:
    """Per (estimator, d): mean ratio of the gradient at |rho| = max, mean |ratio - 1| over
    |rho| >= 0.3, the seed spread (sd over seeds / truth, averaged over rho) and the MI
    ratio at the largest rho."""
    out = []
    keys = list(dict.fromkeys((r["estimator"], r["d"]) for r in rows))
    for lab, d in keys:
        mine = [r for r in rows if r["estimator"] == lab and r["d"] == d
                and r["gradient"] is not None]
        top = max(abs(r["rho"]) for r in mine)

        def ratio(r: dict) -> float:
            return r["gradient"] / r["true_gradient"]

        at_top = [ratio(r) for r in mine if abs(r["rho"]) == top]
        mid = [abs(ratio(r) - 1) for r in mine if abs(r["rho"]) >= 0.3]
        spreads = []
        for rho in sorted({r["rho"] for r in mine if abs(r["rho"]) >= 0.3}):
            vals = [ratio(r) for r in mine if r["rho"] == rho]
            if len(vals) > 1:
                spreads.append(statistics.stdev(vals))
        mi_top = [r["mi"] / r["true_mi"] for r in mine if abs(r["rho"]) == top
                  and r["mi"] is not None]
        out.append({"estimator": lab, "d": d, "grad_ratio_at_max_rho": _mean(at_top),
                    "mean_abs_grad_error": _mean(mid), "seed_spread": _mean(spreads),
                    "mi_ratio_at_max_rho": _mean(mi_top), "max_rho": top})
    return out


def _mean(v: list[float]) -> float | None:
    return round(sum(v) / len(v), 4) if v else None


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({r["d"] for r in rows})
    fig, axes = plt.subplots(2, len(dims), figsize=(4.2 * len(dims), 6.4), squeeze=False)
    colours = {"MINE": "C0", "MINE-f": "C1", "MIGE": "C2"}
    for col, d in enumerate(dims):
        rhos = sorted({r["rho"] for r in rows if r["d"] == d})
        fine = [k / 200 for k in range(-199, 200) if abs(k / 200) <= max(rhos) + 1e-9]
        for row, (field, truth) in enumerate((("mi", analytic_mi),
                                              ("gradient", analytic_gradient))):
            ax = axes[row][col]
            for lab, colour in colours.items():
                sel = [r for r in rows if r["d"] == d and r["estimator"] == lab]
                seeds = sorted({r["seed"] for r in sel})
                for seed in seeds:
                    pts = sorted((r["rho"], r[field]) for r in sel if r["seed"] == seed
                                 and r[field] is not None)
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colour, lw=0.5,
                            alpha=0.35)
                means = []
                for rho in rhos:
                    vals = [r[field] for r in sel if r["rho"] == rho and r[field] is not None]
                    if vals:
                        means.append((rho, sum(vals) / len(vals)))
                style = "--" if (lab == "MIGE" and field == "mi") else "-"
                name = "MIGE (integrated)" if (lab == "MIGE" and field == "mi") else lab
                ax.plot([p[0] for p in means], [p[1] for p in means], style, color=colour,
                        lw=1.6, label=name)
            ax.plot(fine, [truth(r, d) for r in fine], color="k", lw=1.0, label="true")
            ax.set_title(f"d = {d}: {'MI (nats)' if field == 'mi' else 'dI/drho'}", fontsize=9)
            ax.set_xlabel("rho")
            if col == 0:
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(summary: list[dict], s: dict, times: dict[str, float], png: str) -> str:
    lines = ["| estimator | d | dI/drho ratio at |rho| = max | mean abs(ratio - 1), |rho| >= 0.3 "
             "| seed spread of the ratio | MI ratio at |rho| = max |", "|---|---|---|---|---|---|"]
    for r in summary:
        cells = [_fmt(r[k]) for k in ("grad_ratio_at_max_rho", "mean_abs_grad_error",
                                      "seed_spread", "mi_ratio_at_max_rho")]
        lines.append(f"| {r['estimator']} | {r['d']} | " + " | ".join(cells) + " |")
    total = sum(times.values())
    return "\n".join([
        "# MI gradient benchmark (paper 004 Fig. 1 analogue)", "",
        "Generated by `python -m bench gradient` (bench/gradient.py); numbers in "
        "`gradient.json`.", "",
        f"Schedule: d in {s['dims']}, rho in {s['rhos'][0]}..{s['rhos'][-1]} step "
        f"{s['rho_step']}, seeds {s['seeds']}; MINE and MINE-f: {s['critic']} MLP critic, "
        f"{s['steps']} Adam steps at lr {s['lr']}, batch {s['batch']}, one critic per "
        f"(rho, seed), gradient averaged over 8 held-out batches; MIGE: M = {s['samples']} "
        "samples, RBF kernel with median bandwidth, eigenvalues holding 99% of the trace. "
        f"Wall time {total:.0f} s on the CPU (1 thread, niced, shared machine): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + ".", "",
        f"![estimated MI and dI/drho against rho]({png})", "",
        "Ratios are estimate / truth (ideal 1), means over seeds; the seed spread is the "
        "standard deviation over seeds of the gradient ratio, averaged over |rho| >= 0.3.", "",
        *lines, ""])


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def main(a: argparse.Namespace) -> None:
    s = schedule(a)
    t0 = time.perf_counter()
    rows, times = run(s)
    wall = round(time.perf_counter() - t0, 1)
    if getattr(a, "paper", False):
        body, table = paper_markdown(rows, s, times)
        meta = {"schedule": s, "seconds": times, "wall_seconds": wall,
                "threads": torch.get_num_threads(), "load_average": os.getloadavg(),
                "table": table, "rows": rows}
        (a.out / "gradient_paper.json").write_text(json.dumps(meta, indent=1))
        md = a.out / "gradient_paper.md"
        marker = "<!-- comparison -->"
        if md.exists() and marker in md.read_text():
            body += "\n" + marker + md.read_text().split(marker, 1)[1]
        md.write_text(body)
        print(body)
        return
    summary = summarise(rows)
    tag = a.tag or ("quick" if a.quick else "")
    stem = f"gradient{'_' + tag if tag else ''}"
    png = a.out / f"{stem}.png"
    plot(rows, png, f"MINE, MINE-f (NWJ) and MIGE on the correlated Gaussian; "
                    f"{s['seeds']} seeds, {s['steps']} critic steps")
    meta = {"schedule": s, "seconds": times, "wall_seconds": wall,
            "threads": torch.get_num_threads(), "summary": summary, "rows": rows}
    (a.out / f"{stem}.json").write_text(json.dumps(meta, indent=1))
    md = a.out / f"{stem}.md"
    body = markdown(summary, s, times, png.name)
    marker = "<!-- comparison -->"
    if md.exists() and marker in md.read_text():
        # keep the hand-written comparison with the paper below the marker
        body += "\n" + marker + md.read_text().split(marker, 1)[1]
    md.write_text(body)
    print(body)
    print(f"wall time {wall} s; written {a.out}/{stem}.*")
