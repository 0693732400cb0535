"""The point family (workers.point): bmi's external-program convention and its
point-estimator interface, through the real engine against a task's analytic MI."""

from __future__ import annotations

import csv
import json
import sys
import textwrap

import numpy as np
import pytest
from micheck.workers import plugins
from micheck.workers.engine import evaluate
from micheck.workers.point import write_samples

from micheck import estimators
from micheck.contract import EvaluationRequest
from micheck.errors import PluginFailed, SpecError
from micheck.estimators import EstimatorEntry

# Gaussian MI from the sample correlation of each coordinate pair (the Gaussian task is
# coordinate-wise correlated): I = -1/2 sum_i log(1 - r_i^2). Reads bmi's CSV.
PROGRAM = textwrap.dedent("""
    import csv, math, sys
    path, dx, dy = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == [f"X{i}" for i in range(dx)] + [f"Y{i}" for i in range(dy)], rows[0]
    data = [[float(v) for v in r] for r in rows[1:]]
    n, total = len(data), 0.0
    for i in range(dx):
        a = [r[i] for r in data]; b = [r[dx + i] for r in data]
        ma, mb = sum(a) / n, sum(b) / n
        cov = sum((u - ma) * (v - mb) for u, v in zip(a, b))
        va = sum((u - ma) ** 2 for u in a); vb = sum((v - mb) ** 2 for v in b)
        total += -0.5 * math.log(1 - cov * cov / (va * vb))
    print(total)
""")


def corr_mi(x: np.ndarray, y: np.ndarray) -> float:
    """The same estimator in bmi's point-estimator interface."""
    r = np.array([np.corrcoef(x[:, i], y[:, i])[0, 1] for i in range(x.shape[1])])
    return float(-0.5 * np.log(1 - r * r).sum())


class CorrEstimator:
    def __init__(self, params: dict):
        self.params = params

    def estimate(self, x, y) -> float:
        return corr_mi(np.asarray(x), np.asarray(y))


def _request(name: str, **params) -> EvaluationRequest:
    return EvaluationRequest.model_validate({
        "estimator": {"name": name, "params": params},
        "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
        "tests": [{"kind": "ground_truth"}], "seeds": [0, 1, 2], "max_seeds": 3})


@pytest.fixture
def programs(tmp_path, monkeypatch):
    script = tmp_path / "corr_mi.py"
    script.write_text(PROGRAM)
    fail = tmp_path / "fail.py"
    fail.write_text("import sys\nprint('no luck', file=sys.stderr)\nsys.exit(3)\n")
    words = tmp_path / "words.py"
    words.write_text("print('about two nats')\n")
    table = {"corr": [sys.executable, str(script), "{path}", "{dim_x}", "{dim_y}"],
             "fails": [sys.executable, str(fail)], "words": [sys.executable, str(words)]}
    monkeypatch.setenv("MICHECK_EXTERNAL_ESTIMATORS", json.dumps(table))


def test_samples_are_written_in_bmis_csv_convention(tmp_path):
    x, y = np.arange(6.0).reshape(3, 2), np.array([[0.5], [1.5], [2.5]])
    write_samples(tmp_path / "s.csv", x, y)
    with (tmp_path / "s.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["X0", "X1", "Y0"]
    assert np.allclose(np.array(rows[1:], dtype=float), np.hstack([x, y]))


def test_an_external_program_is_scored_against_the_known_mi(programs):
    result = evaluate(_request("external", program="corr", samples=4000), device="cpu")
    assert len(result.estimates) == 3 and all(e.steps == 1 for e in result.estimates)
    assert all(abs(e.mi_test - 1.0) < 0.1 for e in result.estimates)
    (row,) = result.ratios
    assert row.verdict == "pass" and 0.95 < row.value < 1.05
    assert result.provenance.definition_versions["external"] == "1"


def test_a_python_point_estimator_plugs_in_like_bmis(monkeypatch):
    entry = EstimatorEntry("corr_point", "point", "1", "test: Gaussian MI from correlations",
                           bound="tests.workers.test_point:CorrEstimator")
    estimators.register(entry, replace=True)
    monkeypatch.setitem(plugins._POINT, "corr_point", CorrEstimator)
    try:
        result = evaluate(_request("corr_point"), device="cpu")
    finally:
        estimators._ENTRIES.pop("corr_point", None)
    (row,) = result.ratios
    assert row.verdict == "pass" and 0.95 < row.value < 1.05


def test_programs_fail_the_evaluation_with_their_reason(programs):
    with pytest.raises(SpecError, match="no external program 'nope'.*configured: corr"):
        evaluate(_request("external", program="nope"), device="cpu")
    with pytest.raises(PluginFailed, match="exited 3: no luck"):
        evaluate(_request("external", program="fails", samples=16), device="cpu")
    with pytest.raises(PluginFailed, match="not one number"):
        evaluate(_request("external", program="words", samples=16), device="cpu")


def test_a_point_estimator_cannot_run_the_gradient_test():
    with pytest.raises(ValueError, match="point estimator"):
        EvaluationRequest.model_validate({
            "estimator": {"name": "external", "params": {"program": "corr"}},
            "dataset": {"name": "gaussian", "dim": 2},
            "tests": [{"kind": "mi_gradient", "rho": [0.5]}]})
