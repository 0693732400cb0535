"""Markdown tables from the benchmark CSVs (pasted into docs/benchmarks.md)."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.reference import MI_LEVELS


def publish(out: Path, stem: str, result: dict, render: Callable[[dict], str], t0: float,
            load: tuple[float, ...]) -> dict:
    """A simulation benchmark's ending: its run time and the load average at its start and
    end added to `result`, written as `<stem>.json` and `<stem>.md` (render(result)) in
    `out`, and the markdown printed."""
    result = {**result, "seconds": round(time.perf_counter() - t0, 1),
              "loadavg_at_start": [round(x, 2) for x in load],
              "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    text = render(result)
    (out / f"{stem}.md").write_text(text)
    print(text)
    return result


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
