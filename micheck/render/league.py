"""The league as CSV (one line per JSON row, same fields, same order) and one point's
history as a plot: value and stored interval per code version, one line per estimator
config. matplotlib (the ``report`` extra) is
imported on first use, under the plots' lock (micheck.render.plots)."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from micheck.contract import League, LeagueHistory
from micheck.render.plots import _LOCK, FORMATS

COLUMNS = ("estimator", "params", "config", "point", "point_title", "test", "transform", "rho",
           "value", "ci_low", "ci_high", "ci_level", "ideal", "band_low", "band_high",
           "verdict", "reason", "seeds", "code_version", "evaluation_id", "created_at",
           "report")
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"]


def _cell(x: object) -> object:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    if isinstance(x, dict):
        import json

        return json.dumps(x, sort_keys=True)
    return x


def league_csv(league: League) -> str:
    """The league's rows as CSV: the JSON rows' fields (``params`` as JSON, times in ISO
    8601), one line per row, in the same order."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for row in league.rows:
        data = row.model_dump(mode="json")
        w.writerow([_cell(data[c]) for c in COLUMNS])
    return out.getvalue()


def history_plot(history: LeagueHistory, fmt: str = "png", *, dpi: int = 110) -> bytes:
    """The point's value over code versions (x: code versions in order of appearance),
    each config a line with its stored intervals as error bars."""
    if fmt not in FORMATS:
        raise KeyError(f"format {fmt!r}; use one of {sorted(FORMATS)}")
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    versions = list(dict.fromkeys(e.code_version for e in history.entries))
    configs = list(dict.fromkeys(e.config for e in history.entries))
    with _LOCK, matplotlib.rc_context({"svg.hashsalt": "micheck", "font.size": 9}):
        fig = Figure(figsize=(6.4, 4.0), dpi=dpi, layout="constrained")
        ax = fig.add_subplot()
        for i, cfg in enumerate(configs):
            pts = [e for e in history.entries if e.config == cfg and e.value is not None
                   and math.isfinite(e.value)]
            xs = [versions.index(e.code_version) for e in pts]
            color = _COLORS[i % len(_COLORS)]
            ax.plot(xs, [e.value for e in pts], "o-", color=color, label=cfg)
            bars: list[Any] = [(x, e) for x, e in zip(xs, pts, strict=True)
                               if e.ci_low is not None and e.ci_high is not None]
            if bars:
                ax.errorbar([x for x, _ in bars], [e.value for _, e in bars],
                            yerr=[[e.value - e.ci_low for _, e in bars],
                                  [e.ci_high - e.value for _, e in bars]],
                            fmt="none", ecolor=color, capsize=3)
        ax.set_xticks(range(len(versions)), versions, rotation=30, ha="right")
        ax.set_xlabel("code version")
        ax.set_ylabel("value (stored row)")
        ax.set_title(f"{history.suite} v{history.version}: {history.point}")
        ax.grid(True, alpha=0.3)
        if configs:
            ax.legend(loc="best", fontsize=8)
        buf = io.BytesIO()
        meta: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
        fig.savefig(buf, format=fmt, metadata=meta)
        return buf.getvalue()
