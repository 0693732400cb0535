"""Plain-text views of results and progress, shared by every CLI command."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from micheck.contract import EvaluationResult, Ratio
from micheck.render.junit import case_name


def _num(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _interval(r: Ratio) -> str:
    return "-" if r.ci_low is None else f"[{_num(r.ci_low)}, {_num(r.ci_high)}]"


def _band(r: Ratio) -> str:
    lo = "-inf" if r.band_low is None else f"{r.band_low:g}"
    hi = "+inf" if r.band_high is None else f"{r.band_high:g}"
    return "-" if r.band_low is None and r.band_high is None else f"[{lo}, {hi}]"


def _t(r: Ratio) -> str:
    if r.kind == "step":
        return f"{r.t_from}->{r.t}"
    if r.rho is not None:
        return f"rho={r.rho:g}"
    return "-" if r.t is None else str(r.t)


def ratio_table(result: EvaluationResult) -> str:
    """The decided points as an aligned table (value, interval, band, verdict), the reasons
    of the ones that did not pass, diagnostics, and the overall verdict."""
    level = next((r.ci_level for r in result.ratios if r.ci_level is not None), None)
    ci_head = "CI" if level is None else f"{100 * level:.4g}% CI"
    header = ("test", "transform", "t", "value", ci_head, "band", "seeds", "verdict")
    rows = [header]
    for r in result.ratios:
        test = r.test + (" (step)" if r.kind == "step" else "")
        rows.append((test, r.transform, _t(r), _num(r.value), _interval(r), _band(r),
                     str(r.seeds), r.verdict.upper()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    est, prov = result.request.estimator, result.provenance
    lines.insert(0, f"{est.name} {est.params or ''} on {result.request.dataset.name}, "
                    f"seeds {prov.seeds}, {est.train.steps} steps, "
                    f"device {prov.device}, {prov.wall_seconds:.1f} s")
    for r in result.ratios:
        if r.verdict != "pass" and r.reason:
            lines.append(f"{r.verdict.upper():12} {case_name(r)} {r.reason_code}: {r.reason}")
    lines += diagnostic_lines(result)
    rounds = result.seed_rounds
    if rounds.rounds:
        lines.append(f"seeds: {len(prov.seeds)} in {len(rounds.rounds)} round(s), "
                     f"cap {rounds.cap}: {rounds.note}")
    counts = result.counts()
    alpha = "" if result.alpha is None else (
        f"; intervals simultaneous at family-wise error {result.alpha:g}")
    lines.append(f"verdict: {result.verdict.upper()} ({counts['pass']} pass, {counts['fail']} "
                 f"fail, {counts['inconclusive']} inconclusive{alpha})")
    return "\n".join(lines)


def diagnostic_lines(result: EvaluationResult) -> list[str]:
    """One line per distinct diagnostic, naming where it fired: `test t=14 seeds 0,1,2`
    per (test, t), so twelve critics at InfoNCE's ceiling are one line, not twelve."""
    groups: dict[tuple[str, str, str], dict[tuple[str | None, int | None], list[int]]] = {}
    for d in result.diagnostics:
        where = groups.setdefault((d.severity, d.code, d.message), {})
        seeds = where.setdefault((d.test, d.t), [])
        if d.seed is not None:
            seeds.append(d.seed)
    lines = []
    for (severity, code, message), where in groups.items():
        parts = []
        for (test, t), seeds in where.items():
            part = " ".join(x for x in (test, None if t is None else f"t={t}") if x)
            if seeds:
                part += f" seed{'s' if len(seeds) > 1 else ''} " + ",".join(map(str, seeds))
            if part:
                parts.append(part)
        place = f" ({'; '.join(parts)})" if parts else ""
        lines.append(f"{severity.upper():7} {code}: {message}{place}")
    return lines


class ProgressLine:
    """A progress bar on a terminal; a plain line every few seconds in CI logs.

    Counts are training steps unless `unit` says otherwise; with `scale` > 1 they are
    shown divided by it, to one decimal (bytes as MB: ``unit="MB", scale=10**6``).
    `start` is the count already done when the bar begins (a resumed download): the ETA
    uses the rate since then."""

    def __init__(self, stream: TextIO = sys.stderr, every: float = 5.0, unit: str = "steps",
                 scale: int = 1, start: int = 0) -> None:
        self.stream, self.every = stream, every
        self.unit, self.scale, self.start = unit, scale, start
        self.tty = stream.isatty()
        self._last, self._t0 = 0.0, time.monotonic()
        self._state: str | None = None

    def update(self, done: int, total: int, label: str = "") -> None:
        """One progress report; with no step count yet (queued, starting) the label alone,
        once per change: never "0/0 steps"."""
        now = time.monotonic()
        if total <= 0:
            text = label.rstrip(": ") or "waiting"
            if text != self._state:
                self._state = text
                self.stream.write(("\r" if self.tty else "") + text + "\n")
                self.stream.flush()
            return
        if not self.tty and now - self._last < self.every and done < total:
            return
        self._last = now
        frac = done / total if total else 0.0
        rate_done = done - self.start
        eta = (now - self._t0) / rate_done * (total - done) if rate_done > 0 else 0.0
        count = (f"{done}/{total}" if self.scale == 1
                 else f"{done / self.scale:.1f}/{total / self.scale:.1f}")
        text = f"{label} {count} {self.unit} ({100 * frac:.0f}%, eta {eta:.0f} s)"
        if self.tty:
            bar = "#" * int(30 * frac)
            self.stream.write(f"\r[{bar:<30}] {text}")
            if done >= total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
