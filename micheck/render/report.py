"""Self-contained HTML reports: one evaluation, or several side by side.

No external assets: the CSS is inline, and the plots are either ``data:`` URIs (offline
files, ``images="embed"``, needs matplotlib) or relative URLs to the API's plot endpoints
(``images="url"``, the served page). Every piece of user text goes through html.escape.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import micheck
from micheck import testkinds
from micheck.contract import Comparison, EvaluationResult, EvaluationView, Ratio
from micheck.render.junit import case_name, expectation, miss

Images = Literal["embed", "url", "none"]
PlotUrl = Callable[[str, str], str]  # (plot name, format) -> URL

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;
background:#f5f6f8}
main{max-width:1180px;margin:0 auto;padding:20px 28px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #d8dce3;
padding-bottom:4px}
.sub{color:#5a6270;margin:0 0 12px}.badge{display:inline-block;padding:2px 10px;border-radius:12px;
font-weight:600;font-size:13px;vertical-align:middle;margin-left:8px}
.pass{background:#dff3e4;color:#17652f}.fail{background:#fbe1e1;color:#9d1c1c}
.other{background:#e8eaf0;color:#444}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0001;font-size:13px}
th,td{padding:5px 10px;border-bottom:1px solid #e6e8ec;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td{background:#fff6f6}tr.fail td.verdict{color:#9d1c1c;font-weight:600}
tr.pass td.verdict{color:#17652f;font-weight:600}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:14px}
figure{margin:0;background:#fff;padding:8px;box-shadow:0 1px 2px #0001}
figure img{width:100%;height:auto;display:block}figcaption{font-size:12px;color:#5a6270}
img.broken{min-height:60px;border:1px dashed #c33}
pre{background:#fff;padding:10px;overflow:auto;white-space:pre-wrap;font-size:12px;box-shadow:0 1px 2px #0001}
.diag li{margin:3px 0}.sev{font-weight:600;text-transform:uppercase;font-size:11px}
.warning{color:#9a5b00}.error{color:#9d1c1c}.info{color:#375a9e}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;background:#fff;padding:10px;
box-shadow:0 1px 2px #0001;margin:0}dt{color:#5a6270}dd{margin:0;word-break:break-all}
footer{color:#8a909c;font-size:12px;margin-top:30px}a{color:#1f5fbf}
"""
# Marks each image with its natural size once loaded (and flags broken ones), so a person
# sees a missing plot and a headless browser test can read the sizes from the DOM.
_IMG_EVENTS = ('onload="this.dataset.size=this.naturalWidth+\'x\'+this.naturalHeight" '
               'onerror="this.dataset.size=\'0x0\';this.classList.add(\'broken\')"')


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(x: float | None, digits: int = 3) -> str:
    return "&ndash;" if x is None else f"{x:.{digits}f}"


def _page(title: str, body: str, started: float) -> str:
    ms = (time.perf_counter() - started) * 1000
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{e(title)}</title><style>{CSS}</style></head><body><main>{body}"
            f"<footer>micheck {e(micheck.__version__)} &middot; generated {now} in "
            f"{ms:.0f} ms</footer></main></body></html>\n")


def _verdict_badge(verdict: str | None, text: str | None = None) -> str:
    cls = {"pass": "pass", "fail": "fail"}.get(verdict or "", "other")
    return f'<span class="badge {cls}">{e(text or (verdict or "-").upper())}</span>'


def _curves(result: EvaluationResult) -> str:
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
        path = " ".join(f"{160 * (x - x0) / max(1, x1 - x0):.1f},{38 - 36 * (y - y0) / span:.1f}"
                        for x, y in pts)
        state = {True: "converged", False: "not converged", None: "-"}[est.converged]
        where = f"{est.test} {est.transform}" + ("" if est.t is None else f" t={est.t}")
        rows.append(
            f'<tr class="{"pass" if est.converged else "fail"}"><td>{e(where)}</td>'
            f'<td class="num">{est.seed}</td><td><svg class="curve" width="160" height="40" '
            f'viewBox="0 0 160 40" role="img" aria-label="held-out estimate against step">'
            f'<polyline fill="none" stroke="currentColor" points="{path}"/></svg></td>'
            f'<td class="num">{_num(ys[-1])}</td><td>{e(state)}<br><small>'
            f"{e(est.convergence)}</small></td></tr>")
    if not rows:
        return "<p>No training curves were stored for this evaluation.</p>"
    return ('<table class="curves"><thead><tr><th>critic</th><th>seed</th>'
            "<th>held-out estimate vs step</th><th>last</th><th>plateau test</th></tr></thead>"
            f'<tbody>{"".join(rows)}</tbody></table>')


def _sort_key(r: Ratio) -> tuple:
    return (testkinds.order(r.test), r.test, r.transform, -1 if r.t is None else r.t,
            r.rho or 0.0)


def verdict_table(result: EvaluationResult) -> str:
    rows = []
    for r in sorted(result.ratios, key=_sort_key):
        ci = "&ndash;" if r.ci_low is None else f"[{_num(r.ci_low)}, {_num(r.ci_high)}]"
        if r.ci_level is not None:
            ci += f"<br><small>{100 * r.ci_level:.4g}%</small>"
        seeds = ", ".join(_num(v) for v in r.per_seed)
        m = miss(r)
        verdict = r.verdict.upper() + (f" (by {m:.3f})" if r.verdict == "fail" and m else "")
        note = f"<br><small>{e(r.reason_code or '')}: {e(r.reason)}</small>" if r.reason else ""
        t = f"{r.t_from}&rarr;{r.t}" if r.kind == "step" else "&ndash;" if r.t is None else r.t
        cls = {"pass": "pass", "fail": "fail"}.get(r.verdict, "other")
        rows.append(
            f'<tr class="{cls}"><td>{e(r.test)}{" step" if r.kind == "step" else ""}</td>'
            f'<td>{e(r.transform)}</td><td class="num">{t}</td>'
            f'<td class="num">{_num(r.value)}</td><td class="num">{ci}</td>'
            f'<td class="num">{seeds}</td><td>{e(expectation(r))}{note}</td>'
            f'<td class="verdict">{verdict}</td></tr>')
    return ('<table class="verdicts"><thead><tr><th>test</th><th>transform</th><th>t</th>'
            "<th>value</th><th>interval</th><th>per seed</th><th>band</th>"
            f'<th>verdict</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


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


def _figure(name: str, src: str, alt: str, extra: str = "") -> str:
    caption = CAPTIONS.get(name, "")
    return (f'<figure><img src="{e(src)}" alt="{e(alt)}" data-plot="{e(name)}" loading="eager" '
            f"{_IMG_EVENTS}><figcaption>{e(caption)}{extra}</figcaption></figure>")


def _plots(names: list[str], images: Images, render: Callable[[str], bytes] | None,
           plot_url: PlotUrl | None) -> str:
    from micheck.render.plots import TITLES

    if images == "none" or not names:
        return "<p>No plots.</p>"
    figs = []
    for name in names:
        if images == "url":
            assert plot_url is not None
            svg = f' &middot; <a href="{e(plot_url(name, "svg"))}">SVG</a>'
            figs.append(_figure(name, plot_url(name, "png"), TITLES.get(name, name), svg))
        else:
            assert render is not None
            data = base64.b64encode(render(name)).decode()
            figs.append(_figure(name, f"data:image/png;base64,{data}", TITLES.get(name, name)))
    return f'<div class="plots">{"".join(figs)}</div>'


def _plot_names(result: EvaluationResult, images: Images) -> tuple[list[str], str]:
    """The plots to show, or none with the reason (matplotlib missing for an offline file)."""
    if images == "embed":
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return [], "<p>Plots need matplotlib: pip install 'micheck[report]'.</p>"
    from micheck.render.plots import available

    return available(result), ""


def _diagnostics(result: EvaluationResult) -> str:
    if not result.diagnostics:
        return "<p>None.</p>"
    items = []
    for d in result.diagnostics:
        where = ", ".join(f"{k}={v}" for k, v in (("test", d.test), ("t", d.t), ("seed", d.seed))
                          if v is not None)
        items.append(f'<li><span class="sev {e(d.severity)}">{e(d.severity)}</span> '
                     f"<code>{e(d.code)}</code> {e(d.message)}"
                     f"{f' <small>({e(where)})</small>' if where else ''}</li>")
    return f'<ul class="diag">{"".join(items)}</ul>'


def _estimates(result: EvaluationResult) -> str:
    rows = "".join(
        f'<tr><td>{e(x.test)}</td><td>{e(x.transform)}</td>'
        f'<td class="num">{"&ndash;" if x.t is None else x.t}</td><td class="num">{x.seed}</td>'
        f'<td class="num">{_num(x.mi_train, 4)}</td><td class="num">{_num(x.mi_test, 4)}</td>'
        f'<td class="num">{_num(x.true_mi, 3)}</td><td class="num">{x.steps}</td>'
        f'<td>{"yes" if x.diverged else ""}</td></tr>'
        for x in sorted(result.estimates, key=lambda x: (x.test, x.transform, x.t or 0, x.seed)))
    return ("<details><summary>Every estimate (nats)</summary><table><thead><tr><th>role</th>"
            "<th>transform</th><th>t</th><th>seed</th><th>train</th><th>held-out</th>"
            "<th>true MI</th><th>steps</th><th>diverged</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></details>")


def _dl(pairs: Sequence[tuple[str, object]]) -> str:
    return "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in pairs
                            if v not in (None, "")) + "</dl>"


def _provenance(result: EvaluationResult, view: EvaluationView | None) -> str:
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
    return _dl(pairs)


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


def _comparison(c: Comparison | None) -> str:
    if c is None:
        return ""
    from micheck.render.comparison import comparison_html

    return f"<h2>Against the baseline</h2>{comparison_html(c)}"


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
    sub = (f"{e(series_label(result))} on {e(req.dataset.name)} &middot; seeds "
           f"{e(', '.join(map(str, req.seeds)))} &middot; {req.estimator.train.steps} steps, "
           f"batch {req.estimator.train.batch_size} &middot; {counts['pass']} pass, "
           f"{counts['fail']} fail, {counts['inconclusive']} inconclusive of "
           f"{len(result.ratios)} checks")
    body = (f"<h1>{e(title)}{_verdict_badge(result.verdict)}</h1><p class=sub>{sub}</p>"
            f"<h2>Verdicts</h2>{verdict_table(result)}"
            f"<h2>Training curves</h2>{_curves(result)}"
            f"{_comparison(comparison)}"
            f"<h2>Plots</h2>{why or _plots(names, images, render, plot_url)}"
            f"<h2>Diagnostics</h2>{_diagnostics(result)}"
            f"<h2>Estimates</h2>{_estimates(result)}"
            f"<h2>Spec</h2><pre>{e(spec_text(result))}</pre>"
            f"<h2>Provenance</h2>{_provenance(result, view)}")
    return _page(f"micheck: {title}", body, started)


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
    done = [(i, x.result) for i, x in enumerate(entries) if x.result is not None]
    labels = compare_labels(entries)
    head = "".join(f"<th>{_entry_title(x, labels[i])}</th>" for i, x in enumerate(entries))
    overview = "".join(
        f"<tr><th>{e(k)}</th>" + "".join(f"<td>{v}</td>" for v in vals) + "</tr>"
        for k, vals in _overview(entries).items())
    cases = case_order([r for _, res in done for r in res.ratios])
    matrix = []
    for case in cases:
        cells = []
        for x in entries:
            r = next((r for r in (x.result.ratios if x.result else []) if case_name(r) == case),
                     None)
            if r is None:
                cells.append("<td>&ndash;</td>")
                continue
            ci = "" if r.ci_low is None else f"<br><small>[{_num(r.ci_low)}, {_num(r.ci_high)}]</small>"
            cls = {"pass": "pass", "fail": "fail"}.get(r.verdict, "other")
            cells.append(f'<td class="num {cls}">{_num(r.value)} '
                         f'{r.verdict.upper()}{ci}</td>')
        matrix.append(f"<tr><th>{e(case)}</th>{''.join(cells)}</tr>")
    names = sorted({n for _, res in done for n in _plot_names(res, images)[0]},
                   key=lambda n: (ROW_TESTS + ("transforms", "ground_truth")).index(n))
    why = next((w for _, res in done for w in [_plot_names(res, images)[1]] if w), "")
    series = compare_series(entries)

    def render(name: str) -> bytes:
        from micheck.render.plots import render_series

        return render_series(series, name, "png")

    if images == "url" and plot_url is None:
        raise ValueError("images='url' needs plot_url")
    body = (f"<h1>Comparison of {len(entries)} evaluations</h1>"
            f"<h2>Overview</h2><table><thead><tr><th></th>{head}</tr></thead>"
            f"<tbody>{overview}</tbody></table>"
            f"<h2>Verdicts</h2><table class=verdicts><thead><tr><th>check</th>{head}</tr>"
            f"</thead><tbody>{''.join(matrix) or '<tr><td>no results yet</td></tr>'}</tbody>"
            f"</table><h2>Plots</h2>{why or _plots(names, images, render, plot_url)}")
    return _page(f"micheck: comparison of {len(entries)} evaluations", body, started)


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
    body = (f"<h1>{e(title)}{_verdict_badge(None, view.status.value)}</h1>"
            f"<p class=sub>No result{' yet: reload to follow it' if not view.status.finished else ''}"
            f".</p>{_dl(pairs)}")
    return _page(f"micheck: {title}", body, started)


def _entry_title(x: Entry, label: str) -> str:
    text = e(label)
    return f'<a href="{e(x.link)}">{text}</a>' if x.link else text


def _overview(entries: Sequence[Entry]) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {k: [] for k in (
        "title", "dataset", "seeds", "training", "status", "verdict", "device", "wall time",
        "definitions", "evaluation id")}
    for x in entries:
        item = x.result or x.view
        req = item.request if item else None
        p = x.result.provenance if x.result else None
        t = req.estimator.train if req else None
        status = x.view.status.value if x.view else "succeeded"
        rows["title"].append(e(title_of(item)) if item else "&ndash;")
        rows["dataset"].append(e(req.dataset.name) if req else "&ndash;")
        rows["seeds"].append(e(", ".join(map(str, req.seeds))) if req else "&ndash;")
        rows["training"].append(f"{t.steps} steps, batch {t.batch_size}, lr {t.lr:g}"
                                if t else "&ndash;")
        err = f"<br><small>{e(x.view.error.message)}</small>" if x.view and x.view.error else ""
        rows["status"].append(e(status) + err)
        rows["verdict"].append(_verdict_badge(x.result.verdict) if x.result
                               else _verdict_badge(None, "no result"))
        rows["device"].append(e(p.device) if p else "&ndash;")
        rows["wall time"].append(f"{p.wall_seconds:.1f} s" if p else "&ndash;")
        rows["definitions"].append(e(", ".join(f"{k} v{v}" for k, v in
                                               sorted(p.definition_versions.items())))
                                   if p else "&ndash;")
        rows["evaluation id"].append(e(x.view.id) if x.view else "&ndash;")
    return rows


def case_order(ratios: Sequence[Ratio]) -> list[str]:
    seen: dict[str, tuple] = {}
    for r in sorted(ratios, key=_sort_key):
        seen.setdefault(case_name(r), _sort_key(r))
    return list(seen)
