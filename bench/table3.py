"""Table 3 of paper 002 (MNIST, random transforms) and Figures 4-6, on the engine.

Each estimator is one `workers.engine.evaluate` request: data processing and additivity under
random scaling, rotation and translation (Table 3), or the rows grid of Figs 4-6, with the
verdict machinery of micheck.verdicts: per-seed ratios, a simultaneous Student-t interval,
pass / fail / inconclusive against the band. Each result is kept as JSON under
<out>/table3/<tag>/ (or figs/), so estimators run in separate processes and a rerun skips
what is done. The table puts our mean and interval beside the paper's number.
"""

from __future__ import annotations

import json
import math
import time
from argparse import Namespace
from pathlib import Path

from bench import reference
from micheck.contract import EvaluationRequest, EvaluationResult, SeedRounds

# our key -> (estimator name, params, the paper's Table 3 label)
ESTIMATORS = {
    "infonce": ("infonce", {}, "CPC"),
    "mine": ("mine", {}, "MINE"),
    "gm": ("gm", {}, "GM(VAE)"),
    "smile5": ("smile", {"tau": 5.0}, "SMILE(tau=5.0)"),
    "smileinf": ("smile", {"tau": "inf"}, "SMILE(tau=inf)"),
}
TRANSFORMS = ("scaling", "rotation", "translation")
TESTS = ("data_processing", "additivity")
FIG_ROWS = [0, 4, 8, 12, 16, 20, 24, 28]


# What paper 002 Sec. 6.2 (p. 8-9) says of its Figures 4-6 (MNIST); the figures' numbers are not
# in the text, so the claims are compared with our verdicts, not numbers.
FIG_CLAIMS = {
    "baseline": "Most methods (except GM) predict zero MI when X and Y are independent (t = 0); "
                "the estimate is non-decreasing with t, with different slopes (Fig. 4).",
    "data_processing": "With t2 = t1 - 3 the ratio should be about 1; all methods except MINE "
                       "and GM perform well; MINE performs poorly on MNIST (Fig. 5).",
    "additivity": "The ratio should be 2; no discriminative method works except when t is very "
                  "small; for large t the ratio converges to 1; GM performs near perfectly at "
                  "every t (Fig. 6).",
}


def first_seed(a: Namespace) -> int:
    return int(getattr(a, "first_seed", 0) or 0)


def fig_rows(a: Namespace) -> list[int]:
    return list(getattr(a, "rows", None) or FIG_ROWS)


def request(key: str, a: Namespace, figs: bool = False) -> EvaluationRequest:
    name, params, _ = ESTIMATORS[key]
    if figs:
        rows = fig_rows(a)
        # data processing compares t with t - 3 (Sec. 6.2): rows below 4 have no such pair
        tests = [{"kind": "baseline", "rows": rows},
                 {"kind": "data_processing", "rows": [r for r in rows if r >= 4]},
                 {"kind": "additivity", "rows": [r for r in rows if r >= 1]}]
    else:
        chosen = getattr(a, "transforms", None) or TRANSFORMS
        tests = [{"kind": k, "transform": tr} for tr in chosen for k in TESTS]
    train = {"batch_size": 64, "steps": a.steps, "lr": a.lr,
             "until_converged": a.max_steps > a.steps, "max_steps": a.max_steps}
    if a.eval_samples:
        train["eval_samples"] = a.eval_samples
    critic = {"kind": a.critic, "arch": "cnn", "width": a.width}
    if getattr(a, "block", 0) and name != "gm":  # GM trains likelihood models, no pairs
        critic["block"] = a.block
    return EvaluationRequest.model_validate({
        "estimator": {"name": name, "params": params, "critic": critic, "train": train},
        "dataset": {"name": "mnist", **({"train_size": a.train_size} if a.train_size else {})},
        "tests": tests, "seeds": list(range(first_seed(a), first_seed(a) + a.seeds)),
        "max_seeds": max(a.seeds, getattr(a, "max_seeds", 0) or 0),
        "label": f"bench {'figs' if figs else 'table3'} {key}"})


def tag_of(a: Namespace) -> str:
    lr = "" if a.lr == 1e-4 else f"_lr{a.lr:g}"
    rows = "" if fig_rows(a) == FIG_ROWS else "_rows" + "-".join(map(str, fig_rows(a)))
    block = f"_b{a.block}" if getattr(a, "block", 0) else ""
    chosen = list(getattr(a, "transforms", None) or TRANSFORMS)
    if chosen != list(TRANSFORMS):
        block += "_" + "-".join(chosen)
    cap = getattr(a, "max_seeds", 0) or 0
    seeds = f"_seeds{a.seeds}" + (f"-{cap}" if cap > a.seeds else "") + \
        (f"_from{first_seed(a)}" if first_seed(a) else "")
    return a.tag or (f"{a.critic}{block}_w{a.width:g}_s{a.steps}-{a.max_steps}{lr}"
                     f"{seeds}{rows}")


def run(a: Namespace, figs: bool = False) -> Path:
    """Evaluate every estimator not yet done; returns the directory of results."""
    from micheck.workers.engine import evaluate

    out = a.out / ("figs" if figs else "table3") / tag_of(a)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for key in a.estimators:
        budget = getattr(a, "budget_s", 0) or 0
        if budget and time.perf_counter() - started > budget:
            print(f"{key}: not started (--budget-s {budget:g} spent)", flush=True)
            continue
        path = out / f"{key}.json"
        if path.exists():
            print(f"{key}: done before ({path})", flush=True)
            continue
        if getattr(a, "report_only", False):
            print(f"{key}: not run (--report-only)", flush=True)
            continue
        req = request(key, a, figs)
        t0 = time.perf_counter()
        last = [0.0]

        def show(p, key=key, t0=t0, last=last):
            now = time.perf_counter()
            if now - last[0] > 30:
                last[0] = now
                print(f"  {key}: {p.current} {p.steps_done}/{p.steps_total} "
                      f"({now - t0:.0f} s)", flush=True)

        result = evaluate(req, progress=show)
        path.write_text(result.model_dump_json())
        print(f"{key}: {result.verdict} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def pool(results: list[EvaluationResult]) -> EvaluationResult:
    """Runs of one spec on disjoint seeds as one result: the first run, then one more look
    per later run (micheck.scoring.extend, as `micheck more-seeds` does on the service).

    Each seed trains its own critics and a critic depends only on (seed, measurement), so the
    union of the runs' estimates is what one run over all their seeds would have trained.
    Rows the earlier looks decided stay decided; the rest are judged with every seed at the
    next look's share of alpha, so the pooled verdict pays for every look taken."""
    from micheck.plan import Measurement
    from micheck.scoring import extend, planned_looks

    first = results[0]
    rows, verdict = first.ratios, first.verdict
    looks = list(first.seed_rounds.looks)
    seeds = list(first.provenance.seeds)
    estimates = {Measurement(e.test, e.t, e.transform).key(e.seed): e for e in first.estimates}
    for r in results[1:]:
        if set(r.provenance.seeds) & set(seeds):
            raise ValueError(f"runs share seeds: {sorted(set(r.provenance.seeds) & set(seeds))}")
        if r.request.model_copy(update={"seeds": first.request.seeds,
                                        "max_seeds": first.request.max_seeds,
                                        "label": first.request.label}).spec_hash() \
                != first.request.spec_hash():
            raise ValueError("runs of different specs cannot be pooled")
        for e in r.estimates:
            if e.transform == "rows":
                raise ValueError("pooling is for the transform tests of Table 3")
            estimates[Measurement(e.test, e.t, e.transform).key(e.seed)] = e
        seeds += list(r.provenance.seeds)
        rows, verdict, look = extend(first.request, estimates, seeds, None, rows, looks,
                                     alpha=first.alpha or 0.05, planned=planned_looks(first))
        looks.append(look)
    every = [e for r in results for e in r.estimates]
    prov = first.provenance.model_copy(update={
        "seeds": sorted(seeds), "wall_seconds": sum(r.provenance.wall_seconds for r in results)})
    rounds = SeedRounds(rounds=[list(r.provenance.seeds) for r in results], cap=len(seeds),
                        stop="conclusive" if all(x.verdict != "inconclusive" for x in rows)
                        else "cap_reached", looks=looks, planned_looks=planned_looks(first),
                        note=f"{len(results)} runs pooled: seeds {sorted(seeds)}")
    return first.model_copy(update={
        "estimates": every, "ratios": rows, "verdict": verdict,
        "passed": verdict == "pass", "provenance": prov, "seed_rounds": rounds,
        "diagnostics": [d for r in results for d in r.diagnostics]})


def load(out: Path) -> dict[str, EvaluationResult]:
    return {p.stem: EvaluationResult.model_validate_json(p.read_text())
            for p in sorted(out.glob("*.json")) if p.stem in ESTIMATORS}


def _paper() -> dict[tuple[str, str], dict[str, float]]:
    return reference.table3()


def records(results: dict[str, EvaluationResult]) -> list[dict]:
    """One record per (estimator, test, transform): ours with its interval, the paper's."""
    paper = _paper()
    out = []
    for key, res in results.items():
        label = ESTIMATORS[key][2]
        steps = [e.steps for e in res.estimates]
        for r in res.ratios:
            if r.transform == "rows" or r.kind != "ratio":
                continue
            p = paper.get((r.test, r.transform), {}).get(label)
            inside = (p is not None and r.ci_low is not None and r.ci_high is not None
                      and r.ci_low <= p <= r.ci_high)
            out.append({
                "estimator": label, "test": r.test, "transform": r.transform,
                "mean": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high,
                "width": None if r.ci_low is None or r.ci_high is None
                else r.ci_high - r.ci_low, "scale": r.scale, "look": r.look,
                "ci_level": r.ci_level, "verdict": r.verdict, "reason": r.reason,
                "band_low": r.band_low, "band_high": r.band_high, "seeds": r.seeds,
                "per_seed": r.per_seed, "steps_mean": round(sum(steps) / len(steps)),
                "steps_max": max(steps), "converged": sum(bool(e.converged) for e in
                                                         res.estimates),
                "critics": len(res.estimates),
                "critic": _critic_label(res),
                "paper": p, "paper_inside_ci": inside,
                "wall_seconds": res.provenance.wall_seconds, "device": res.provenance.device,
                "code_version": res.provenance.code_version})
    return out


def _critic_label(res: EvaluationResult) -> str:
    c = res.request.estimator.critic
    block = f", blocks of {c.block}" if c.block else ""
    return f"{c.kind} CNN, width {c.width:g}{block}"


def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.2f}"


def table_md(recs: list[dict]) -> str:
    labels = [ESTIMATORS[k][2] for k in ESTIMATORS if any(r["estimator"] == ESTIMATORS[k][2]
                                                          for r in recs)]
    head = "| test | transform | " + " | ".join(labels) + " |"
    lines = [head, "|" + "---|" * (2 + len(labels))]
    for test in TESTS:
        for tr in TRANSFORMS:
            cells = []
            for lab in labels:
                r = next((x for x in recs if x["estimator"] == lab and x["test"] == test
                          and x["transform"] == tr), None)
                if r is None:
                    cells.append("-")
                    continue
                mark = "" if r["paper_inside_ci"] else " *"
                cells.append(f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] "
                             f"{r['verdict']} ({_fmt(r['paper'])}){mark}")
            lines.append(f"| {test} | {tr} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(recs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = [ESTIMATORS[k][2] for k in ESTIMATORS]
    fig = Figure(figsize=(11, 4.2))
    for i, test in enumerate(TESTS):
        ax = fig.add_subplot(1, 2, i + 1)
        for j, tr in enumerate(TRANSFORMS):
            for k, lab in enumerate(labels):
                r = next((x for x in recs if x["estimator"] == lab and x["test"] == test
                          and x["transform"] == tr), None)
                if r is None or r["mean"] is None:
                    continue
                x = j + (k - 2) * 0.15
                color = f"C{k}"
                lo = r["ci_low"] if r["ci_low"] is not None else r["mean"]
                hi = r["ci_high"] if r["ci_high"] is not None else r["mean"]
                ax.plot([x, x], [max(lo, -0.5), min(hi, 4.0)], "-", color=color, lw=2)
                ax.plot([x], [r["mean"]], "o", color=color, ms=5,
                        label=lab if j == 0 else None)
                if r["paper"] is not None:
                    ax.plot([x], [r["paper"]], "_", color="k", ms=12, mew=2,
                            label="paper" if j == 0 and k == 0 else None)
        ideal = 1.0 if test == "data_processing" else 2.0
        ax.axhline(ideal, color="k", ls="--", lw=0.8)
        ax.set_xticks(range(3), TRANSFORMS)
        ax.set_title(f"{test} (ideal {'<= 1' if ideal == 1 else '2'})")
        ax.set_ylim(-0.2, 3.0)
        ax.grid(True, alpha=0.3)
        if i == 0 and recs:
            ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(a: Namespace) -> None:
    out = run(a)
    results = load(out)
    for extra in getattr(a, "pool", None) or ():  # more seeds of the same spec, run apart
        for key, more in load(Path(extra)).items():
            if key in results:
                results[key] = pool([results[key], more])
    recs = records(results)
    docs = a.docs
    docs.mkdir(parents=True, exist_ok=True)
    meta = {"tag": tag_of(a), "critic": a.critic, "width": a.width,
            "block": getattr(a, "block", 0) or None, "steps": a.steps,
            "max_steps": a.max_steps, "lr": a.lr, "seeds": a.seeds,
            "transforms": list(getattr(a, "transforms", None) or TRANSFORMS),
            "estimators": {k: {"wall_seconds": r.provenance.wall_seconds,
                               "verdict": r.verdict, "device": r.provenance.device}
                           for k, r in results.items()},
            "cost": {k: cost(r) for k, r in results.items()}}
    decided = [r for r in recs if r["verdict"] != "inconclusive"]
    meta["decided"] = {"cells": len(decided), "of": len(recs),
                       "widest_decided": max((r["width"] for r in decided
                                              if r["width"] is not None), default=None)}
    (docs / "table3.json").write_text(json.dumps({"meta": meta, "cells": recs}, indent=1))
    # the per-critic records behind every cell: micheck.scoring.replay recomputes the rows
    kept = docs / "table3_records" / tag_of(a)
    kept.mkdir(parents=True, exist_ok=True)
    for key, res in results.items():
        (kept / f"{key}.json").write_text(res.model_dump_json())
    plot(recs, docs / "table3.png")
    md = table_md(recs)
    (docs / "table3_table.md").write_text(md + "\n")
    print(md)
    print(f"written {docs}/table3.json, table3.png, table3_table.md")


def fig_records(results: dict[str, EvaluationResult]) -> list[dict]:
    """One record per (estimator, test, t) of the Figs 4-6 grid: mean, interval, verdict."""
    out = []
    for key, res in results.items():
        for r in res.ratios:
            if r.transform != "rows" or r.kind != "ratio":
                continue
            out.append({"estimator": ESTIMATORS[key][2], "test": r.test, "t": r.t,
                        "mean": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high,
                        "ci_level": r.ci_level, "band_low": r.band_low,
                        "band_high": r.band_high, "verdict": r.verdict,
                        "reason_code": r.reason_code, "seeds": r.seeds,
                        "per_seed": r.per_seed})
    return out


def figs_md(recs: list[dict]) -> str:
    """Per test: the paper's claim, then one row per t with each estimator's cell."""
    labels = list(dict.fromkeys(r["estimator"] for r in recs))
    parts = []
    for test, claim in FIG_CLAIMS.items():
        rows = sorted({r["t"] for r in recs if r["test"] == test})
        parts += [f"### {test}", "", f"Paper: {claim}", "",
                  "| t | " + " | ".join(labels) + " |", "|" + "---|" * (1 + len(labels))]
        for t in rows:
            cells = []
            for lab in labels:
                r = next((x for x in recs if x["estimator"] == lab and x["test"] == test
                          and x["t"] == t), None)
                cells.append("-" if r is None else f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, "
                             f"{_fmt(r['ci_high'])}] {r['verdict']}")
            parts.append(f"| {t} | " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def main_figs(a: Namespace) -> None:
    """Figs 4-6: the rows grid per estimator, one plot per test with every estimator on it."""
    from micheck.render.plots import available, render_series, series_label

    out = run(a, figs=True)
    results = load(out)
    if not results:
        raise SystemExit(f"no results under {out}")
    recs = fig_records(results)
    docs = a.docs
    docs.mkdir(parents=True, exist_ok=True)
    series = [(series_label(r), r) for r in results.values()]
    for test in FIG_CLAIMS:
        if any(test in available(r) for _, r in series):
            (docs / f"figs_{test}.png").write_bytes(render_series(series, test))
    meta = {"tag": tag_of(a), "critic": a.critic, "width": a.width,
            "block": getattr(a, "block", 0) or None, "steps": a.steps,
            "max_steps": a.max_steps, "lr": a.lr, "seeds": a.seeds, "rows": fig_rows(a),
            "cost": {k: cost(r) for k, r in results.items()}}
    (docs / "figs.json").write_text(json.dumps({"meta": meta, "points": recs}, indent=1))
    md = figs_md(recs)
    (docs / "figs_table.md").write_text(md + "\n")
    print(md)
    print(f"written {docs}/figs.json, figs_table.md, figs_*.png")


def cost(result: EvaluationResult) -> dict:
    """Where the time to a verdict went: critics, steps, cost per step, seed rounds."""
    steps = [e.steps for e in result.estimates]
    wall = result.provenance.wall_seconds
    cells = [r for r in result.ratios if r.transform != "rows" and r.kind == "ratio"]
    decided = sum(r.verdict != "inconclusive" for r in cells)
    return {"wall_seconds": wall, "cells_decided": decided, "cells": len(cells),
            "seconds_per_decided_cell": round(wall / decided, 1) if decided else None, "critics": len(steps), "critic_steps": sum(steps),
            "steps_min": min(steps), "steps_max": max(steps),
            "ms_per_critic_step": round(1000 * wall / max(1, sum(steps)), 2),
            "converged": sum(bool(e.converged) for e in result.estimates),
            "rounds": [len(r) for r in result.seed_rounds.rounds],
            "seeds": len(result.provenance.seeds), "stop": result.seed_rounds.stop,
            "verdict": result.verdict, "counts": result.counts(),
            "device": result.provenance.device}
