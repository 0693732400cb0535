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

from micheck import testkinds
from micheck.contract import EvaluationResult, EvaluationView, Ratio

ROW_TESTS = tuple(k.name for k in testkinds.entries() if k.images)  # plotted against t
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


_MARK = {"fail": ("X", "#d00", "FAIL"), "inconclusive": ("o", "#888", "inconclusive")}


def _ylimits(ratios: Sequence[Ratio]) -> tuple[float, float]:
    """A y-range set by the bands and the central values; wide intervals do not blow it up
    (they are clipped and marked instead)."""
    vals = [v for r in ratios for v in (r.value, r.band_low, r.band_high, r.ideal)
            if _finite(v)]
    if not vals:
        return -0.1, 1.1
    lo, hi = min(vals), max(vals)
    pad = 0.15 * max(hi - lo, 0.5)
    return lo - pad, hi + pad


def _errorbars(ax: Any, xs: Sequence[float], pts: Sequence[Ratio], color: str,
               ylim: tuple[float, float], label: str | None) -> None:
    """Each point's decided interval as an error bar, clipped to ylim (a triangle marks a
    clipped end), and a ring for a point that did not pass."""
    lo_lim, hi_lim = ylim
    for x, r in zip(xs, pts, strict=True):
        if not _finite(r.value):
            continue
        if _finite(r.ci_low) and _finite(r.ci_high):
            a, b = max(r.ci_low, lo_lim), min(r.ci_high, hi_lim)
            ax.plot([x, x], [a, b], "-", color=color, lw=1.4, alpha=0.8)
            if r.ci_low < lo_lim:
                ax.plot([x], [lo_lim], "v", color=color, ms=6)
            if r.ci_high > hi_lim:
                ax.plot([x], [hi_lim], "^", color=color, ms=6)
        if r.verdict in _MARK:
            marker, edge, _ = _MARK[r.verdict]
            ax.plot([x], [min(max(r.value, lo_lim), hi_lim)], marker, ms=11, mfc="none",
                    mec=edge, mew=1.5)
    ax.plot([], [], "|", color=color, ms=10, label=label)


def _bands(ax: Any, xs: Sequence[float], pts: Sequence[Ratio], ylim: tuple[float, float],
           half_width: float, label: str | None) -> None:
    """Each point's band, shaded around its x (open sides run to the plot's edge)."""
    for x, r in zip(xs, pts, strict=True):
        if r.band_low is None and r.band_high is None:
            continue
        lo = ylim[0] if r.band_low is None else r.band_low
        hi = ylim[1] if r.band_high is None else r.band_high
        ax.fill_between([x - half_width, x + half_width], [lo, lo], [hi, hi], color="0.8",
                        alpha=0.45, lw=0, label=label)
        label = None


def _verdict_legend(ax: Any, ratios: Sequence[Ratio]) -> None:
    for verdict, (marker, edge, text) in _MARK.items():
        if any(r.verdict == verdict for r in ratios):
            ax.plot([], [], marker, ms=11, mfc="none", mec=edge, mew=1.5, label=text)


def _rows(ax: Any, series: Series, test: str) -> None:
    height = max((r.request.dataset.height for _, r in series), default=28) or 28
    every: list[Ratio] = []
    for _, result in series:
        every += [r for r in result.ratios if r.test == test and r.transform == "rows"
                  and r.t is not None and r.kind == "ratio"]
    ylim = _ylimits(every)
    banded = False
    for i, (label, result) in enumerate(series):
        color = _COLORS[i % len(_COLORS)]
        pts = sorted((r for r in result.ratios if r.test == test and r.transform == "rows"
                      and r.t is not None and r.kind == "ratio"), key=lambda r: r.t or 0)
        if not pts:
            continue
        ts = [float(r.t or 0) for r in pts]
        dx = (i - (len(series) - 1) / 2) * height * 0.012
        if not banded:  # the bands of the first series (all series share a spec's tests)
            _bands(ax, ts, pts, ylim, height * 0.02 + 0.3, "band")
            banded = True
        mean = [r.value if _finite(r.value) else math.nan for r in pts]
        ax.plot([t + dx for t in ts], mean, "o-", color=color, lw=1.8, ms=4, label=label)
        _errorbars(ax, [t + dx for t in ts], pts, color, ylim,
                   "interval (simultaneous)" if i == 0 else None)
        nseeds = max(len(r.per_seed) for r in pts)
        for j in range(nseeds):
            sx = dx + (j - (nseeds - 1) / 2) * height * 0.004
            xs = [t + sx for t, r in zip(ts, pts, strict=True)
                  if j < len(r.per_seed) and _finite(r.per_seed[j])]
            ys = [r.per_seed[j] for r in pts if j < len(r.per_seed) and _finite(r.per_seed[j])]
            ax.plot(xs, [min(max(y, ylim[0]), ylim[1]) for y in ys], ".", color=color,
                    alpha=0.5, ms=4, label="per seed" if i == 0 and j == 0 else None)
    ideal = next((r.ideal for r in every if r.ideal is not None and test != "baseline"), None)
    if ideal is not None:
        ax.axhline(ideal, color="k", ls="--", lw=1, label=f"ideal = {ideal:g}")
    elif test == "baseline":
        ax.plot([0, height], [0, 1], ":", color="k", lw=1, label="guide 0 -> 1")
    _verdict_legend(ax, every)
    ax.set_xlim(-0.5, height + 0.5)
    ax.set_ylim(*ylim)
    ax.set_xlabel("rows used (t)")
    ax.set_ylabel("ratio")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)


def _is_transform(r: Ratio) -> bool:
    """A Table 3 row (mi_gradient rows use transform for gradient/integral: not plotted here)."""
    return r.transform != "rows" and r.test != "mi_gradient"


def _transforms(ax: Any, series: Series) -> None:
    keys = sorted({(r.test, r.transform) for _, res in series for r in res.ratios
                   if _is_transform(r) and r.kind == "ratio"})
    every = [r for _, res in series for r in res.ratios if _is_transform(r)]
    ylim = _ylimits(every)
    width = 0.8 / max(len(series), 1)
    first = {(r.test, r.transform): r for r in (series[0][1].ratios if series else [])}
    if all(k in first for k in keys):
        _bands(ax, list(range(len(keys))), [first[k] for k in keys], ylim, 0.45, "band")
    for i, (label, result) in enumerate(series):
        by = {(r.test, r.transform): r for r in result.ratios if _is_transform(r)}
        xs, pts = [], []
        for k, key in enumerate(keys):
            r = by.get(key)
            if r is None or not _finite(r.value):
                continue
            xs.append(k + (i - (len(series) - 1) / 2) * width)
            pts.append(r)
        color = _COLORS[i % len(_COLORS)]
        ax.plot(xs, [r.value for r in pts], "o", color=color, label=label)
        _errorbars(ax, xs, pts, color, ylim, None)
    _verdict_legend(ax, every)
    ax.set_xticks(range(len(keys)), [f"{t}\n{tr}" for t, tr in keys])
    ax.set_ylim(*ylim)
    ax.set_ylabel("ratio")
    ax.legend(loc="best", fontsize=8)


def _truth(result: Any) -> float:
    """The true MI a ground_truth row was scored against: what its estimates recorded
    (same- and noisy-class pairs, bmi's tasks), else the request's ``dataset.mi``."""
    recorded = [e.true_mi for e in result.estimates
                if e.test == "ground_truth" and e.true_mi is not None]
    return float(recorded[0]) if recorded else float(result.request.dataset.mi)


def _ground_truth(ax: Any, series: Series) -> None:
    # colours follow the series' position, so one evaluation has one colour on every plot
    have = [(i, label, res) for i, (label, res) in enumerate(series)
            if any(r.test == "ground_truth" for r in res.ratios)]
    trues = {_truth(res) for _, _, res in have}
    nats = len(trues) == 1  # one true MI: plot nats; several: plot estimate / true MI
    for x, (i, label, result) in enumerate(have):
        color = _COLORS[i % len(_COLORS)]
        ests = [e for e in result.estimates if e.test == "ground_truth"]
        scale = 1.0 if nats else 1.0 / _truth(result)
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
    true = next(iter(trues)) if nats else 1.0
    ax.axhline(true, color="k", ls="--", lw=1, label=f"true MI = {true:g} nats" if nats
               else "ideal ratio = 1")
    if ratio is not None and ratio.band_low is not None and ratio.band_high is not None:
        ax.axhspan(true * ratio.band_low, true * ratio.band_high, color="0.85", alpha=0.6,
                   lw=0, label=f"band [{ratio.band_low:g}, {ratio.band_high:g}] x truth")
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
