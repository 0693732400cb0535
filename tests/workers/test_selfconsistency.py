"""Planning, pair constructions and the ratio/CI/verdict arithmetic."""

import math

import pytest
import torch
from micheck.workers import selfconsistency as sc

from micheck.contract import Estimate, EvaluationRequest


def request(tests, seeds=(0,), dataset=None):
    return EvaluationRequest.model_validate({
        "estimator": {"name": "smile"}, "dataset": dataset or {"name": "mnist"},
        "tests": tests, "seeds": list(seeds)})


def test_plan_shares_denominators_across_tests():
    req = request([{"kind": "baseline", "rows": [0, 14, 28]},
                   {"kind": "data_processing", "rows": [14, 28]},
                   {"kind": "additivity", "rows": [14]}], seeds=[0, 1])
    plan = sc.plan(req)
    assert [(m.role, m.t) for m in plan] == [
        ("additivity", 14), ("baseline", 0), ("baseline", 14), ("baseline", 28),
        ("data_processing", 14), ("data_processing", 28)]
    pts = sc.points(req)
    dp = [p for p in pts if p.test.kind == "data_processing"]
    assert [p.denominator for p in dp] == [sc.Measurement("baseline", 14),
                                           sc.Measurement("baseline", 28)]
    assert all(p.denominator == sc.Measurement("baseline", 28)
               for p in pts if p.test.kind == "baseline")


def test_default_rows_grid_and_transform_points():
    req = request([{"kind": "independence"}, {"kind": "additivity", "transform": "rotation"}])
    pts = sc.points(req)
    assert [p.t for p in pts if p.test.kind == "independence"] == [0, 7, 14, 21, 28]
    (rot,) = [p for p in pts if p.test.kind == "additivity"]
    assert rot.numerator == sc.Measurement("additivity", None, "rotation")
    assert rot.denominator == sc.Measurement("baseline", None, "rotation")


def _images(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g)


def test_constructions_follow_the_paper():
    imgs = _images()
    g = torch.Generator().manual_seed(1)
    x, y = sc.image_sampler(imgs, sc.Measurement("baseline", 10))(g, 4)
    assert torch.equal(y[..., :10, :], x[..., :10, :]) and (y[..., 10:, :] == 0).all()
    x, y = sc.image_sampler(imgs, sc.Measurement("data_processing", 10, "rows", 3))(g, 4)
    assert x.shape == (4, 2, 28, 28) and torch.equal(x[:, 0], x[:, 1])
    assert torch.equal(y[:, 1, :7], x[:, 0, :7]) and (y[:, 1, 7:] == 0).all()
    assert torch.equal(y[:, 0, :10], x[:, 0, :10])
    x, y = sc.image_sampler(imgs, sc.Measurement("additivity", 28))(g, 64)
    assert torch.equal(x, y) and not torch.equal(x[:, 0], x[:, 1])
    x, y = sc.image_sampler(imgs, sc.Measurement("independence", 28))(g, 64)
    assert not torch.equal(x, y)  # Y comes from another draw


def test_mean_ci_uses_student_t():
    mean, lo, hi = sc.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert hi - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-4)
    assert sc.mean_ci([5.0]) == (5.0, None, None)


def _est(test, t, seed, mi):
    return Estimate(test=test, t=t, seed=seed, mi_train=mi, mi_test=mi, steps=1)


def test_ratios_and_verdicts():
    req = request([{"kind": "baseline", "rows": [0, 14, 28]},
                   {"kind": "additivity", "rows": [14]}], seeds=[0, 1])
    vals = {("baseline", 0): 0.0, ("baseline", 14): 2.0, ("baseline", 28): 4.0,
            ("additivity", 14): 2.2}
    ests = {}
    for seed in (0, 1):
        for (role, t), mi in vals.items():
            m = sc.Measurement(role, t)
            jitter = 1 + 0.02 * seed if role == "additivity" else 1.0
            ests[m.key(seed)] = _est(role, t, seed, mi * jitter)
    out = {(r.test, r.t): r for r in sc.ratios(req, ests, None)}
    assert out[("baseline", 0)].value == 0.0 and out[("baseline", 0)].passed
    assert out[("baseline", 14)].value == pytest.approx(0.5)
    assert out[("baseline", 28)].value == pytest.approx(1.0)
    add = out[("additivity", 14)]
    assert add.value == pytest.approx(1.111) and add.ideal == 2.0 and not add.passed
    assert add.ci_low < add.value < add.ci_high


def test_baseline_that_falls_fails_monotonicity():
    req = request([{"kind": "baseline", "rows": [7, 14, 28]}])
    vals = {7: 3.0, 14: 1.0, 28: 4.0}
    ests = {sc.Measurement("baseline", t).key(0): _est("baseline", t, 0, v)
            for t, v in vals.items()}
    out = {r.t: r for r in sc.ratios(req, ests, None)}
    assert out[7].passed and not out[14].passed and "falls" in out[14].note


def test_ground_truth_ratio_against_true_mi():
    req = request([{"kind": "ground_truth"}], seeds=[0],
                  dataset={"name": "gaussian", "dim": 5, "mi": 2.0})
    ests = {sc.Measurement("ground_truth", None).key(0): _est("ground_truth", None, 0, 1.9)}
    (r,) = sc.ratios(req, ests, 2.0)
    assert r.value == pytest.approx(0.95) and r.passed


def test_a_missing_estimate_fails_the_point():
    req = request([{"kind": "independence", "rows": [14]}])
    ests = {sc.Measurement("independence", 14).key(0): _est("independence", 14, 0, 0.0),
            sc.Measurement("baseline", 28).key(0): Estimate(
                test="baseline", t=28, seed=0, mi_train=None, mi_test=None, steps=1,
                diverged=True)}
    (r,) = sc.ratios(req, ests, None)
    assert r.value is None and not r.passed
