"""Self-contained HTML reports: one evaluation, or several side by side.

The pages are Jinja2 templates (micheck/render/templates/report*.html, autoescaped: every
piece of user text is escaped by the template, never by hand); this module prepares
their rows. No external assets: the CSS is inline, and the plots are either ``data:``
URIs (offline files, ``images="embed"``, needs matplotlib) or relative URLs to the
API's plot endpoints (``images="url"``, the served page).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, Template

import micheck
from micheck import testkinds
from micheck.contract import Comparison, EvaluationResult, EvaluationView, Ratio
from micheck.render.junit import case_name, expectation, miss

Images = Literal["embed", "url", "none"]
PlotUrl = Callable[[str, str], str]  # (plot name, format) -> URL
DASH = "\u2013"  # shown where a number is missing


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
                       autoescape=True, keep_trailing_newline=True)


def _template(name: str) -> Template:
    return _env().get_template(name)


def _page(template: str, title: str, started: float, **context: Any) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return _template(template).render(
        title=title, version=micheck.__version__, now=now,
        elapsed=lambda: f"{(time.perf_counter() - started) * 1000:.0f}", **context)


def _num(x: float | None, digits: int = 3) -> str:
    return DASH if x is None else f"{x:.{digits}f}"


def _curves(result: EvaluationResult) -> list[dict[str, Any]]:
    """Each critic's held-out estimate against step, as an inline SVG polyline, with the
    plateau test's answer: the evidence behind `not_converged`."""
    rows = []
    for est in sorted(result.estimates, key=lambda x: (x.test, x.transform, x.t or -1, x.seed)):
        pts = [(s, v) for s, v in est.curve if v is not None]
        if len(pts) < 2:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x0, x1 = min(xs), max(xs) or 1
        y0, y1 = min(ys), max(ys)
        span = (y1 - y0) or 1.0
        rows.append({
            "points": " ".join(f"{160 * (x - x0) / max(1, x1 - x0):.1f},"
                               f"{38 - 36 * (y - y0) / span:.1f}" for x, y in pts),
            "converged": est.converged, "seed": est.seed, "last": _num(ys[-1]),
            "state": {True: "converged", False: "not converged", None: "-"}[est.converged],
            "where": f"{est.test} {est.transform}" + ("" if est.t is None else f" t={est.t}"),
            "convergence": est.convergence})
    return rows


def _sort_key(r: Ratio) -> tuple:
    return (testkinds.order(r.test), r.test, r.transform, -1 if r.t is None else r.t,
            r.rho or 0.0)


def _ratio_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    rows = []
    for r in sorted(result.ratios, key=_sort_key):
        m = miss(r)
        rows.append({
            "cls": {"pass": "pass", "fail": "fail"}.get(r.verdict, "other"),
            "test": r.test + (" step" if r.kind == "step" else ""), "transform": r.transform,
            "t": f"{r.t_from}\u2192{r.t}" if r.kind == "step" else DASH if r.t is None else r.t,
            "value": _num(r.value),
            "ci": DASH if r.ci_low is None else f"[{_num(r.ci_low)}, {_num(r.ci_high)}]",
            "level": None if r.ci_level is None else f"{100 * r.ci_level:.4g}%",
            "seeds": ", ".join(_num(v) for v in r.per_seed), "band": expectation(r),
            "reason": f"{r.reason_code or ''}: {r.reason}" if r.reason else "",
            "verdict": r.verdict.upper() + (f" (by {m:.3f})" if r.verdict == "fail" and m
                                            else "")})
    return rows


def verdict_table(result: EvaluationResult) -> str:
    """The verdict table of one result, as an HTML fragment."""
    return str(_template("report_macros.html").module.verdict_table(_ratio_rows(result)))


CAPTIONS = {
    "baseline": "Should rise from 0 (no rows) to 1 (all rows) without falling; dotted: a linear "
                "0 to 1 guide. Band: 95% CI over seeds; dots: seeds.",
    "independence": "Y from an independent image: should stay at 0 (grey: tolerance).",
    "data_processing": "Adding a processed copy of Y adds no information: ideal 1 "
                       "(grey: tolerance; red rings: FAIL).",
    "additivity": "Two independent pairs hold twice the information: ideal 2 "
                  "(grey: tolerance; red rings: FAIL).",
    "transforms": "Ratios under the random transforms of Table 3, with 95% CIs.",
    "ground_truth": "Bars: mean held-out estimate; dots: seeds (hollow: training); dashed: "
                    "the true MI with its tolerance band.",
    "staircase": "Training estimate against the true MI, which steps up during training.",
}


def _figures(names: list[str], images: Images, render: Callable[[str], bytes] | None,
             plot_url: PlotUrl | None) -> list[dict[str, str]]:
    from micheck.render.plots import TITLES

    if images == "none":
        return []
    figs = []
    for name in names:
        fig = {"name": name, "alt": TITLES.get(name, name), "caption": CAPTIONS.get(name, "")}
        if images == "url":
            assert plot_url is not None
            fig.update(src=plot_url(name, "png"), svg=plot_url(name, "svg"))
        else:
            assert render is not None
            fig["src"] = "data:image/png;base64," + base64.b64encode(render(name)).decode()
        figs.append(fig)
    return figs


def _plot_names(result: EvaluationResult, images: Images) -> tuple[list[str], str]:
    """The plots to show, or none with the reason (matplotlib missing for an offline file)."""
    if images == "embed":
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return [], "Plots need matplotlib: pip install 'micheck[report]'."
    from micheck.render.plots import available

    return available(result), ""


def _diagnostics(result: EvaluationResult) -> list[dict[str, str]]:
    return [{"severity": d.severity, "code": d.code, "message": d.message,
             "where": ", ".join(f"{k}={v}" for k, v in (("test", d.test), ("t", d.t),
                                                         ("seed", d.seed)) if v is not None)}
            for d in result.diagnostics]


def _estimates(result: EvaluationResult) -> list[dict[str, Any]]:
    return [{"test": x.test, "transform": x.transform, "t": DASH if x.t is None else x.t,
             "seed": x.seed, "train": _num(x.mi_train, 4), "test_mi": _num(x.mi_test, 4),
             "true_mi": _num(x.true_mi, 3), "steps": x.steps, "diverged": x.diverged}
            for x in sorted(result.estimates, key=lambda x: (x.test, x.transform, x.t or 0,
                                                              x.seed))]


def _provenance(result: EvaluationResult, view: EvaluationView | None
                ) -> list[tuple[str, object]]:
    p = result.provenance
    pairs: list[tuple[str, object]] = [
        ("definition versions", ", ".join(f"{k} v{v}" for k, v in
                                          sorted(p.definition_versions.items()))),
        ("code version", p.code_version), ("seeds", ", ".join(map(str, p.seeds))),
        ("device", p.device), ("torch", p.torch_version),
        ("started", p.started_at.isoformat(timespec="seconds")),
        ("finished", p.finished_at.isoformat(timespec="seconds")),
        ("wall time", f"{p.wall_seconds:.1f} s"), ("spec hash", result.spec_hash())]
    if view is not None:
        pairs += [("evaluation id", view.id), ("attempts", view.attempts),
                  ("worker", view.worker),
                  ("submitted", view.created_at.isoformat(timespec="seconds"))]
    return pairs


def spec_text(result: EvaluationResult) -> str:
    """The request, one top-level key (and one test) per line: short enough to read."""
    lines = []
    for key, value in result.request.model_dump(mode="json").items():
        if key == "tests":
            lines.append("tests:")
            lines += [f"  - {json.dumps(t, separators=(', ', ': '))}" for t in value]
        else:
            lines.append(f"{key}: {json.dumps(value, separators=(', ', ': '))}")
    return "\n".join(lines)


def title_of(item: EvaluationResult | EvaluationView) -> str:
    from micheck.render.plots import series_label

    return item.request.label or f"{series_label(item)} on {item.request.dataset.name}"


def _comparison(c: Comparison | None) -> dict[str, Any] | None:
    if c is None:
        return None
    from micheck.render.comparison import ci_text, num, point_name

    return {"baseline_id": c.baseline_id, "baseline_query": c.baseline_query,
            "regressed": sum(p.regression == "regressed" for p in c.points),
            "points": [{"name": point_name(p), "baseline": num(p.baseline_ratio),
                        "now": num(p.ratio), "difference": num(p.difference), "ci": ci_text(p),
                        "baseline_verdict": p.baseline_verdict or "-", "verdict": p.verdict,
                        "regression": p.regression, "note": p.note} for p in c.points]}


def render_report(result: EvaluationResult, *, view: EvaluationView | None = None,
                  images: Images = "embed", plot_url: PlotUrl | None = None,
                  history: Sequence[tuple[int, float, float]] | None = None,
                  comparison: Comparison | None = None) -> str:
    """The HTML page for one evaluation. ``images="url"`` needs ``plot_url``; by default
    the plot URLs are relative (``plots/NAME.png``), right for the served page. With a
    ``comparison``, a section shows every point against the baseline's."""
    started = time.perf_counter()
    plot_url = plot_url or (lambda name, fmt: f"plots/{name}.{fmt}")
    names, why = _plot_names(result, images)
    if history and images == "embed" and not why:
        names.append("staircase")

    def render(name: str) -> bytes:
        from micheck.render.plots import render as render_plot

        return render_plot(result, name, "png", history=history)

    from micheck.render.plots import series_label

    req = result.request
    counts = result.counts()
    title = title_of(result)
    sub = (f"{series_label(result)} on {req.dataset.name} \u00b7 seeds "
           f"{', '.join(map(str, req.seeds))} \u00b7 {req.estimator.train.steps} steps, "
           f"batch {req.estimator.train.batch_size} \u00b7 {counts['pass']} pass, "
           f"{counts['fail']} fail, {counts['inconclusive']} inconclusive of "
           f"{len(result.ratios)} checks")
    return _page("report.html", f"micheck: {title}", started, heading=title,
                 verdict=result.verdict, sub=sub, ratio_rows=_ratio_rows(result),
                 curves=_curves(result), comparison=_comparison(comparison),
                 figs=[] if why else _figures(names, images, render, plot_url), why=why,
                 diagnostics=_diagnostics(result), estimates=_estimates(result),
                 spec=spec_text(result), provenance=_provenance(result, view))


@dataclass
class Entry:
    """One column of a comparison: a finished result, or a view that has none (yet)."""

    view: EvaluationView | None
    result: EvaluationResult | None
    link: str | None = None  # where its own report lives, if served


def render_compare(entries: Sequence[Entry], *, images: Images = "embed",
                   plot_url: PlotUrl | None = None) -> str:
    """Several evaluations side by side: overview, verdict matrix, overlaid plots.

    ``images="url"`` needs ``plot_url`` (the served page points it at /v1/compare/plots)."""
    from micheck.render.plots import ROW_TESTS

    started = time.perf_counter()
    if images == "url" and plot_url is None:
        raise ValueError("images='url' needs plot_url")
    done = [(i, x.result) for i, x in enumerate(entries) if x.result is not None]
    labels = compare_labels(entries)
    matrix = []
    for case in case_order([r for _, res in done for r in res.ratios]):
        cells: list[dict[str, str] | None] = []
        for x in entries:
            r = next((r for r in (x.result.ratios if x.result else []) if case_name(r) == case),
                     None)
            cells.append(None if r is None else {
                "cls": {"pass": "pass", "fail": "fail"}.get(r.verdict, "other"),
                "value": _num(r.value), "verdict": r.verdict.upper(),
                "ci": "" if r.ci_low is None else f"[{_num(r.ci_low)}, {_num(r.ci_high)}]"})
        matrix.append((case, cells))
    names = sorted({n for _, res in done for n in _plot_names(res, images)[0]},
                   key=lambda n: (ROW_TESTS + ("transforms", "ground_truth")).index(n))
    why = next((w for _, res in done for w in [_plot_names(res, images)[1]] if w), "")
    series = compare_series(entries)

    def render(name: str) -> bytes:
        from micheck.render.plots import render_series

        return render_series(series, name, "png")

    return _page("report_compare.html", f"micheck: comparison of {len(entries)} evaluations",
                 started, columns=[{"label": labels[i], "link": x.link}
                                   for i, x in enumerate(entries)],
                 overview=list(_overview(entries).items()), matrix=matrix, why=why,
                 figs=[] if why else _figures(names, images, render, plot_url))


def compare_labels(entries: Sequence[Entry]) -> list[str]:
    """One legend label per column: the estimator, numbered where two would read the same."""
    from micheck.render.plots import series_label

    labels = [series_label(x.result or x.view) if (x.result or x.view) else "?" for x in entries]
    return [f"{lab} #{i + 1}" if labels.count(lab) > 1 else lab for i, lab in enumerate(labels)]


def compare_series(entries: Sequence[Entry]) -> list[tuple[str, EvaluationResult]]:
    """The (label, result) pairs a comparison plots: the columns that have a result."""
    labels = compare_labels(entries)
    return [(labels[i], x.result) for i, x in enumerate(entries) if x.result is not None]


def render_status(view: EvaluationView) -> str:
    """The page for an evaluation without a result yet (or ever): status, progress, error."""
    started = time.perf_counter()
    p = view.progress
    pct = f" ({100 * p.steps_done / p.steps_total:.0f}%)" if p.steps_total else ""
    pairs: list[tuple[str, object]] = [
        ("status", view.status.value), ("progress", f"{p.steps_done}/{p.steps_total} steps{pct}"
                                        if p.steps_total else ""),
        ("current", p.current), ("attempts", view.attempts), ("worker", view.worker),
        ("submitted", view.created_at.isoformat(timespec="seconds")),
        ("error", f"{view.error.code}: {view.error.message}" if view.error else "")]
    title = title_of(view)
    return _page("report_status.html", f"micheck: {title}", started, heading=title,
                 status=view.status.value, finished=view.status.finished, pairs=pairs)


def _overview(entries: Sequence[Entry]) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "title", "dataset", "seeds", "training", "status", "verdict", "device", "wall time",
        "definitions", "evaluation id")}
    for x in entries:
        item = x.result or x.view
        req = item.request if item else None
        p = x.result.provenance if x.result else None
        t = req.estimator.train if req else None
        rows["title"].append({"text": title_of(item) if item else DASH})
        rows["dataset"].append({"text": req.dataset.name if req else DASH})
        rows["seeds"].append({"text": ", ".join(map(str, req.seeds)) if req else DASH})
        rows["training"].append({"text": f"{t.steps} steps, batch {t.batch_size}, lr {t.lr:g}"
                                 if t else DASH})
        rows["status"].append({"text": x.view.status.value if x.view else "succeeded",
                               "small": x.view.error.message if x.view and x.view.error
                               else None})
        rows["verdict"].append({"badge": True, "verdict": x.result.verdict} if x.result
                               else {"badge": True, "verdict": None, "text": "no result"})
        rows["device"].append({"text": p.device if p else DASH})
        rows["wall time"].append({"text": f"{p.wall_seconds:.1f} s" if p else DASH})
        rows["definitions"].append({"text": ", ".join(
            f"{k} v{v}" for k, v in sorted(p.definition_versions.items())) if p else DASH})
        rows["evaluation id"].append({"text": x.view.id if x.view else DASH})
    return rows


def case_order(ratios: Sequence[Ratio]) -> list[str]:
    seen: dict[str, tuple] = {}
    for r in sorted(ratios, key=_sort_key):
        seen.setdefault(case_name(r), _sort_key(r))
    return list(seen)
