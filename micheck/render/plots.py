"""Plots of a result in the style of paper 002's Figures 4-6 (and Fig. 2's staircase).

- ``baseline``, ``independence``, ``data_processing``, ``additivity``: ratio vs rows used
  (t), one line per series (the mean over seeds) with its 95% CI band, the seeds as
  points, the ideal as a dashed line (1 for data processing, 2 for additivity, 0 for
  independence) inside a grey band of +/- the tolerance; the baseline gets a dotted
  0 -> 1 guide (its ideal is 0 at t=0, 1 at full height, non-decreasing between).
- ``transforms``: the Table 3 tests (scaling, rotation, translation) as points with CIs.
- ``ground_truth``: the estimate (held-out; training as hollow points) per seed against
  the true MI, with the tolerance band.
- ``staircase``: estimate vs training step against the true MI, when a history is given.

matplotlib (the ``report`` extra) is imported on first use, with the Agg backend and no
pyplot (no global figure state); rendering holds a lock because matplotlib is not
thread-safe and the API renders from a thread pool.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence
from typing import Any

from micheck.contract import EvaluationResult, EvaluationView, Ratio

ROW_TESTS = ("baseline", "independence", "data_processing", "additivity")
TITLES = {"baseline": "Baseline: I(X; Y_t) / I(X; X)",
          "independence": "Independence: I(X; Y'_t) / I(X; X)",
          "data_processing": "Data processing: I([X,X]; [Y_t, Y_t-k]) / I(X; Y_t)",
          "additivity": "Additivity: I([X1,X2]; [Y1_t, Y2_t]) / I(X; Y_t)",
          "transforms": "Random transforms (Table 3)",
          "ground_truth": "Estimate vs true MI",
          "staircase": "Estimate vs training step"}
FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
History = Sequence[tuple[int, float, float]]  # (step, estimate, true MI) in nats
Series = Sequence[tuple[str, EvaluationResult]]

_LOCK = threading.Lock()
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"]


def series_label(item: EvaluationResult | EvaluationView) -> str:
    """SMILE(tau=5.0): the estimator and its parameters, as the paper's legends read."""
    est = item.request.estimator
    params = ", ".join(f"{k}={v}" for k, v in est.params.items() if k != "objective")
    return f"{est.name.upper()}({params})" if params else est.name.upper()


def available(result: EvaluationResult, *, history: History | None = None) -> list[str]:
    """The plot names that have data in this result, in reading order."""
    names = [k for k in ROW_TESTS
             if any(r.test == k and r.transform == "rows" and r.t is not None
                    for r in result.ratios)]
    if any(_is_transform(r) for r in result.ratios):
        names.append("transforms")
    if any(r.test == "ground_truth" for r in result.ratios):
        names.append("ground_truth")
    if history:
        names.append("staircase")
    return names


def render(result: EvaluationResult, name: str, fmt: str = "png", *,
           history: History | None = None, dpi: int = 110) -> bytes:
    """One plot as PNG or SVG bytes; KeyError for a name this result has no data for."""
    return render_series([(series_label(result), result)], name, fmt, history=history, dpi=dpi)


def render_series(series: Series, name: str, fmt: str = "png", *,
                  history: History | None = None, dpi: int = 110) -> bytes:
    """Several results on one plot (e.g. estimators on one data set), one line each."""
    if fmt not in FORMATS:
        raise KeyError(f"format {fmt!r}; use one of {sorted(FORMATS)}")
    if not any(name in available(r, history=history) for _, r in series):
        raise KeyError(f"no data for plot {name!r}")
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    with _LOCK, matplotlib.rc_context({"svg.hashsalt": "micheck", "font.size": 9}):
        fig = Figure(figsize=(6.4, 4.0), dpi=dpi, layout="constrained")
        ax = fig.add_subplot()
        if name in ROW_TESTS:
            _rows(ax, series, name)
        elif name == "transforms":
            _transforms(ax, series)
        elif name == "ground_truth":
            _ground_truth(ax, series)
        else:
            _staircase(ax, history or [])
        ax.set_title(TITLES[name])
        ax.grid(True, alpha=0.3)
        buf = io.BytesIO()
        meta: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
        fig.savefig(buf, format=fmt, metadata=meta)
        return buf.getvalue()


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _rows(ax: Any, series: Series, test: str) -> None:
    height = max((r.request.dataset.height for _, r in series), default=28) or 28
    tol, failed_labelled = None, False
    for i, (label, result) in enumerate(series):
        color = _COLORS[i % len(_COLORS)]
        pts = sorted((r for r in result.ratios
                      if r.test == test and r.transform == "rows" and r.t is not None),
                     key=lambda r: r.t or 0)
        if not pts:
            continue
        tol = pts[0].tolerance
        ts = [r.t for r in pts]
        mean = [r.value if _finite(r.value) else math.nan for r in pts]
        ax.plot(ts, mean, "o-", color=color, lw=1.8, ms=4, label=label)
        _ci(ax, pts, color)
        for r in pts:  # hollow red ring: a failed verdict at this t
            if not r.passed and _finite(r.value):
                ax.plot([r.t], [r.value], "o", ms=11, mfc="none", mec="#d00", mew=1.5,
                        label=None if failed_labelled else "FAIL")
                failed_labelled = True
        nseeds = max(len(r.per_seed) for r in pts)
        for j in range(nseeds):
            dx = (j - (nseeds - 1) / 2) * height * 0.006  # spread seeds a little to show each
            xs = [r.t + dx for r in pts if j < len(r.per_seed) and _finite(r.per_seed[j])]
            ys = [r.per_seed[j] for r in pts if j < len(r.per_seed) and _finite(r.per_seed[j])]
            ax.plot(xs, ys, ".", color=color, alpha=0.55, ms=5,
                    label="per seed" if i == 0 and j == 0 else None)
    ideal = {"independence": 0.0, "data_processing": 1.0, "additivity": 2.0}.get(test)
    if ideal is not None:
        ax.axhline(ideal, color="k", ls="--", lw=1, label=f"ideal = {ideal:g}")
        if tol is not None:
            ax.axhspan(ideal - tol, ideal + tol, color="0.85", alpha=0.6, lw=0,
                       label=f"tolerance +/- {tol:g}")
    else:
        ax.plot([0, height], [0, 1], ":", color="k", lw=1, label="guide 0 -> 1")
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
    ax.set_xlim(-0.5, height + 0.5)
    ax.set_xlabel("rows used (t)")
    ax.set_ylabel("ratio")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)


def _ci(ax: Any, pts: list[Ratio], color: str) -> None:
    have = [r for r in pts if _finite(r.ci_low) and _finite(r.ci_high)]
    if len(have) >= 2:
        ax.fill_between([r.t for r in have], [r.ci_low for r in have],
                        [r.ci_high for r in have], color=color, alpha=0.18, lw=0,
                        label="95% CI")
    for r in have if len(have) < 2 else []:
        ax.errorbar([r.t], [r.value], yerr=[[r.value - r.ci_low], [r.ci_high - r.value]],
                    color=color, capsize=4, fmt="o", ms=4)


def _is_transform(r: Ratio) -> bool:
    """A Table 3 row (mi_gradient rows use transform for gradient/integral: not plotted here)."""
    return r.transform != "rows" and r.test != "mi_gradient"


def _transforms(ax: Any, series: Series) -> None:
    keys = sorted({(r.test, r.transform) for _, res in series for r in res.ratios
                   if _is_transform(r)})
    width = 0.8 / max(len(series), 1)
    for i, (label, result) in enumerate(series):
        by = {(r.test, r.transform): r for r in result.ratios if _is_transform(r)}
        for k, key in enumerate(keys):
            r = by.get(key)
            if r is None or not _finite(r.value):
                continue
            x = k + (i - (len(series) - 1) / 2) * width
            err = ([[r.value - r.ci_low], [r.ci_high - r.value]]
                   if _finite(r.ci_low) and _finite(r.ci_high) else None)
            ax.errorbar([x], [r.value], yerr=err, fmt="o" if r.passed else "X", capsize=4,
                        color=_COLORS[i % len(_COLORS)], label=label if k == 0 else None)
    ax.axhline(1.0, color="k", ls="--", lw=1, label="1 (upper ideal)")
    ax.set_xticks(range(len(keys)), [f"{t}\n{tr}" for t, tr in keys])
    ax.set_ylabel("ratio")
    ax.legend(loc="best", fontsize=8)


def _ground_truth(ax: Any, series: Series) -> None:
    # colours follow the series' position, so one evaluation has one colour on every plot
    have = [(i, label, res) for i, (label, res) in enumerate(series)
            if any(r.test == "ground_truth" for r in res.ratios)]
    trues = {res.request.dataset.mi for _, _, res in have}
    nats = len(trues) == 1  # one true MI: plot nats; several: plot estimate / true MI
    for x, (i, label, result) in enumerate(have):
        color = _COLORS[i % len(_COLORS)]
        ests = [e for e in result.estimates if e.test == "ground_truth"]
        scale = 1.0 if nats else 1.0 / result.request.dataset.mi
        test = [e.mi_test * scale for e in ests if _finite(e.mi_test)]
        if test:
            ax.bar([x], [sum(test) / len(test)], width=0.6, color=color, alpha=0.35,
                   label=f"{label}: mean")
        for j, e in enumerate(ests):
            dx = (j - (len(ests) - 1) / 2) * 0.1
            if _finite(e.mi_test):
                ax.plot([x + dx], [e.mi_test * scale], "o", color=color, ms=6,
                        label="held-out, per seed" if x == 0 and j == 0 else None)
            if _finite(e.mi_train):
                ax.plot([x + dx], [e.mi_train * scale], "o", mfc="none", mec=color, ms=6,
                        label="training, per seed" if x == 0 and j == 0 else None)
    ratio = next((r for _, _, res in have for r in res.ratios if r.test == "ground_truth"), None)
    tol = ratio.tolerance if ratio else 0.1
    true = next(iter(trues)) if nats else 1.0
    ax.axhline(true, color="k", ls="--", lw=1, label=f"true MI = {true:g} nats" if nats
               else "ideal ratio = 1")
    ax.axhspan(true * (1 - tol), true * (1 + tol), color="0.85", alpha=0.6, lw=0,
               label=f"tolerance +/- {100 * tol:g}%")
    ax.set_xticks(range(len(have)), [label for _, label, _ in have])
    ax.set_ylabel("MI estimate (nats)" if nats else "estimate / true MI")
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.legend(loc="best", fontsize=8)


def _staircase(ax: Any, history: History) -> None:
    steps = [h[0] for h in history]
    ax.plot(steps, [h[1] for h in history], "-", lw=0.8, color=_COLORS[0], alpha=0.8,
            label="estimate")
    ax.step(steps, [h[2] for h in history], where="post", color="k", lw=1.2, label="true MI")
    ax.set_xlabel("training step")
    ax.set_ylabel("MI (nats)")
    ax.legend(loc="best", fontsize=8)
