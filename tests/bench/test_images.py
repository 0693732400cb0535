"""`python -m bench images`: request construction, argument errors and the report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.images import QUICK, markdown, plot, request

ROOT = Path(__file__).resolve().parents[2]


def test_each_cell_is_a_ground_truth_request_on_same_class_pairs():
    req = request("SMILE(tau=5)", 4, 2, QUICK)
    assert req.dataset.pairs == "same_class" and req.dataset.classes == [0, 1, 2, 3]
    assert req.dataset.copies == 2 and [t.kind for t in req.tests] == ["ground_truth"]
    assert req.estimator.name == "smile" and req.estimator.params["tau"] == 5.0


def test_unknown_estimator_label_is_one_clear_message(tmp_path: Path):
    res = subprocess.run([sys.executable, "-m", "bench", "images", "--image-estimators", "FOO",
                          "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0 and "unknown estimator label" in res.stderr
    assert "Traceback" not in res.stderr


def test_report_table_and_figure(tmp_path: Path):
    rows = [{"estimator": "CPC", "k": k, "m": 1, "seed": 0, "estimate": 0.9 * t, "truth": t}
            for k, t in ((2, 0.69), (4, 1.38))]
    md = markdown(rows, QUICK, 12.0, "images.png")
    assert "| CPC | 1 | 0.62 / 0.69 | 1.24 / 1.38 |" in md
    plot(rows, tmp_path / "f.png", "t")
    assert (tmp_path / "f.png").stat().st_size > 5_000
