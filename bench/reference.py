"""The paper's published numbers (Table 2 and Table 3), read from the shared reference dir.

The directory is ``$MICHECK_REFERENCE_DIR`` when set, else ``shared/reference`` found by
walking up from this file (the repo lives beside ``shared/`` in the workspace).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from micheck.errors import DataNotFound

ENV = "MICHECK_REFERENCE_DIR"
TABLE2 = "song_ermon_table2.csv"
TABLE3 = "song_ermon_table3.csv"
MI_LEVELS = (2, 4, 6, 8, 10)


def reference_dir() -> Path:
    if os.environ.get(ENV):
        path = Path(os.environ[ENV]).expanduser()
        if not (path / TABLE2).is_file():
            raise DataNotFound(f"{ENV}={path} holds no {TABLE2}")
        return path
    here = Path(__file__).resolve()
    for parent in here.parents:
        for candidate in (parent / "shared" / "reference", parent / "reference"):
            if (candidate / TABLE2).is_file():
                return candidate
    raise DataNotFound(f"cannot find {TABLE2}: set {ENV} to the directory holding the "
                       "paper's reference tables (e.g. /work/shared/reference)")


def table2() -> dict[tuple[str, str, str], list[float]]:
    """(metric, estimator label, task) -> values at MI 2, 4, 6, 8, 10 (joint critic)."""
    out = {}
    with open(reference_dir() / TABLE2, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["metric"], row["estimator"], row["task"])
            out[key] = [float(row[f"mi_{m}"]) for m in MI_LEVELS]
    return out


def table3() -> dict[tuple[str, str], dict[str, float]]:
    """(test, transform) -> {estimator label: ratio} for the MNIST Table 3 transforms."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    with open(reference_dir() / TABLE3, newline="") as f:
        for row in csv.DictReader(f):
            key = (row.pop("test"), row.pop("transform"))
            row.pop("ideal", None)
            out[key] = {k: float(v) for k, v in row.items()}
    return out
