"""Markdown tables from the benchmark CSVs (pasted into docs/benchmarks.md)."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from bench.reference import MI_LEVELS


def _cell(ours: str, paper: str) -> str:
    v = float(ours)
    text = "diverged" if not math.isfinite(v) or abs(v) > 1e3 else f"{v:.2f}"
    return f"{text} ({float(paper):.2f})" if paper else text


def staircase_markdown(path: Path) -> str:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    head = "| metric | estimator | task | " + " | ".join(f"I={m}" for m in MI_LEVELS) + " |"
    lines = [head, "|" + "---|" * (3 + len(MI_LEVELS))]
    for r in rows:
        cells = [_cell(r[f"ours_{m}"], r[f"paper_{m}"]) for m in MI_LEVELS]
        lines.append(f"| {r['metric']} | {r['estimator']} | {r['task']} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(staircase_markdown(Path(sys.argv[1])))
