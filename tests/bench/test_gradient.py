"""`python -m bench gradient` end to end at a toy schedule, and its summary statistics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gradient import grid, summarise

ROOT = Path(__file__).resolve().parents[2]


def test_grid_is_symmetric_and_contains_zero():
    assert grid(0.3, 0.9) == [-0.9, -0.6, -0.3, 0.0, 0.3, 0.6, 0.9]


def test_summary_reads_ratios_at_the_largest_rho_and_the_seed_spread():
    rows = [{"estimator": "E", "d": 2, "rho": r, "seed": s, "gradient": g * t, "true_gradient": t,
             "mi": 1.0, "true_mi": 2.0}
            for r, t in ((0.5, 1.0), (-0.9, -3.0))
            for s, g in ((0, 0.8), (1, 1.0))]
    (row,) = summarise(rows)
    assert row["grad_ratio_at_max_rho"] == pytest.approx(0.9)
    assert row["mean_abs_grad_error"] == pytest.approx(0.1)
    assert row["seed_spread"] == pytest.approx(0.1414, abs=1e-3)
    assert row["mi_ratio_at_max_rho"] == pytest.approx(0.5) and row["max_rho"] == 0.9


def test_bench_gradient_writes_json_markdown_and_figure(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "gradient", "--quick", "--dims", "2", "--grad-steps",
         "5", "--samples", "40", "--out", str(tmp_path)], cwd=ROOT, capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "gradient_quick.json").read_text())
    assert {r["estimator"] for r in data["rows"]} == {"MINE", "MINE-f", "MIGE"}
    assert len(data["rows"]) == 3 * 7 * 2  # estimators x rho grid x seeds
    assert (tmp_path / "gradient_quick.png").stat().st_size > 10_000
    md = (tmp_path / "gradient_quick.md").read_text()
    assert "| MIGE | 2 |" in md and "gradient_quick.png" in md


def test_trapezoid_from_zero_is_exact_for_a_linear_gradient_on_both_sides():
    from bench.gradient import trapezoid_from_zero

    rhos = [-0.6, -0.2, 0.3, 0.5, 0.9]
    out = trapezoid_from_zero(rhos, [2 * r for r in rhos])  # I = rho^2
    assert out == pytest.approx({r: r * r for r in rhos})
    with_zero = trapezoid_from_zero([0.0, 0.5], [1.0, 2.0])  # the estimate at 0 is used
    assert with_zero == pytest.approx({0.0: 0.0, 0.5: 0.75})
