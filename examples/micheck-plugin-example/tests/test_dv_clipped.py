"""The example plug-in's own tests: its entry, its bound against analytic values, and a
short run of micheck's engine with it on the correlated Gaussian.

Run from this folder after `pip install -e .` beside micheck: `python -m pytest tests`.
"""

from __future__ import annotations

import math

import pytest
import torch
from micheck.workers.bounds import dv, make_bound
from micheck.workers.engine import evaluate
from micheck_plugin_example import ESTIMATOR
from micheck_plugin_example.bound import dv_clipped

from micheck.contract import EvaluationRequest
from micheck.estimators import plugins


def test_the_entry_point_registers_the_estimator() -> None:
    loaded = plugins.load(refresh=True)
    (entry,) = [e for e in loaded.entries if e.name == "dv_clipped"]
    assert entry.origin is not None and entry.origin.distribution == "micheck-plugin-example"
    assert entry.parse_params({}).model_dump() == {"clip": 10.0}
    with pytest.raises(ValueError, match="clip"):
        ESTIMATOR.parse_params({"clip": 0})


def test_wide_clip_is_dv_and_a_constant_critic_reads_zero() -> None:
    scores = torch.randn(3, 16, 16)
    assert torch.allclose(dv_clipped(scores, 100.0), dv(scores))
    assert torch.allclose(dv_clipped(torch.full((16, 16), 7.0), 1.0), torch.zeros(()))


def test_clipped_ratio_critic_value() -> None:
    # joint scores a > c are clipped to c; the product-of-marginals scores b < c are not
    n, a, b, c = 8, 5.0, 0.5, 2.0
    scores = torch.full((n, n), b).fill_diagonal_(a)
    assert dv_clipped(scores, c).item() == pytest.approx(c - b)


def test_the_engine_runs_it_on_a_gaussian() -> None:
    plugins.load(refresh=True)
    req = EvaluationRequest.model_validate({
        "estimator": {"name": "dv_clipped", "params": {"clip": 20.0},
                      "critic": {"hidden": 32, "embed_dim": 8},
                      "train": {"batch_size": 64, "steps": 150, "lr": 5e-3,
                                "eval_samples": 512}},
        "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
        "tests": [{"kind": "ground_truth"}], "seeds": [0], "max_seeds": 1})
    result = evaluate(req, device="cpu")
    assert result.provenance.plugin == "micheck-plugin-example==0.1.0"
    (est,) = result.estimates
    assert est.mi_test is not None and math.isfinite(est.mi_test) and 0.3 < est.mi_test < 1.3
    assert make_bound("dv_clipped", {}).name == "dv_clipped"
