"""Plain-text views of results and progress, shared by every CLI command."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from micheck.contract import EvaluationResult, Ratio


def _num(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ci(r: Ratio) -> str:
    return "-" if r.ci_low is None else f"[{_num(r.ci_low)}, {_num(r.ci_high)}]"


def ratio_table(result: EvaluationResult) -> str:
    """The ratios as an aligned table, then diagnostics and the overall verdict."""
    header = ("test", "transform", "t", "ratio", "95% CI", "ideal", "tol", "verdict")
    rows = [header]
    for r in result.ratios:
        where = f"rho={r.rho:g}" if r.rho is not None else "-" if r.t is None else str(r.t)
        rows.append((r.test, r.transform, where, _num(r.value),
                     _ci(r), _num(r.ideal, 2) if r.ideal is not None else "(see note)",
                     _num(r.tolerance, 2), "PASS" if r.passed else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    est = result.request.estimator
    lines.insert(0, f"{est.name} {est.params or ''} on {result.request.dataset.name}, "
                    f"seeds {result.request.seeds}, {est.train.steps} steps, "
                    f"device {result.provenance.device}, {result.provenance.wall_seconds:.1f} s")
    for d in result.diagnostics:
        where = " ".join(f"{k}={v}" for k, v in (("test", d.test), ("t", d.t), ("seed", d.seed))
                         if v is not None)
        lines.append(f"{d.severity.upper():7} {d.code}: {d.message} {where}".rstrip())
    lines.append(f"verdict: {'PASS' if result.passed else 'FAIL'}")
    return "\n".join(lines)


class ProgressLine:
    """A progress bar on a terminal; a plain line every few seconds in CI logs."""

    def __init__(self, stream: TextIO = sys.stderr, every: float = 5.0) -> None:
        self.stream, self.every = stream, every
        self.tty = stream.isatty()
        self._last, self._t0 = 0.0, time.monotonic()

    def update(self, done: int, total: int, label: str = "") -> None:
        now = time.monotonic()
        if not self.tty and now - self._last < self.every and done < total:
            return
        self._last = now
        frac = done / total if total else 0.0
        eta = (now - self._t0) / frac * (1 - frac) if frac > 0 else 0.0
        text = f"{label} {done}/{total} steps ({100 * frac:.0f}%, eta {eta:.0f} s)"
        if self.tty:
            bar = "#" * int(30 * frac)
            self.stream.write(f"\r[{bar:<30}] {text}")
            if done >= total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
