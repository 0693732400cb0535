"""Scoring (micheck.scoring): ratios per seed, simultaneous intervals, bands, verdicts."""

from __future__ import annotations

import pytest

from micheck.contract import Estimate, EvaluationRequest
from micheck.plan import plan
from micheck.scoring import decision_count, diagnostics, looks, score
from micheck.verdicts import simultaneous_level

SPEC = {"estimator": {"name": "smile", "params": {"tau": 5.0}},
        "dataset": {"name": "mnist"},
        "tests": [{"kind": "baseline", "rows": [0, 14, 28]},
                  {"kind": "additivity", "rows": [14]}],
        "seeds": [0, 1, 2, 3], "max_seeds": 4}

# per measurement: the held-out estimate of each seed (nats)
VALUES = {"baseline/rows/t=0": [0.01, 0.0, 0.02, 0.01],
          "baseline/rows/t=14": [4.0, 4.2, 3.9, 4.1],
          "baseline/rows/t=28": [5.0, 5.1, 4.9, 5.0],
          "additivity/rows/t=14": [5.0, 5.3, 4.8, 5.2]}  # ratio ~1.25: additivity fails


def estimates(values=VALUES, converged=True):
    req = EvaluationRequest.model_validate(SPEC)
    out = {}
    for m in plan(req):
        prefix = "/".join(m.key(0).split("/")[:3])
        for seed, v in enumerate(values[prefix]):
            out[m.key(seed)] = Estimate(test=m.role, t=m.t, seed=seed, mi_train=v, mi_test=v,
                                        steps=100, transform=m.transform, converged=converged)
    return req, out


def by(ratios, test, t, kind="ratio"):
    return next(r for r in ratios if r.test == test and r.t == t and r.kind == kind)


def test_points_steps_and_verdicts():
    req, est = estimates()
    ratios, verdict = score(req, est, req.seeds, None)
    assert verdict == "fail"
    full = by(ratios, "baseline", 28)
    assert full.verdict == "pass" and full.ci_low == full.ci_high == 1.0 and full.ci_level is None
    assert by(ratios, "baseline", 0).verdict == "pass"
    assert by(ratios, "baseline", 14).verdict == "pass"  # ~0.81, inside [-0.1, 1.1]
    add = by(ratios, "additivity", 14)
    assert add.verdict == "fail" and add.band_low == pytest.approx(1.7)
    assert add.ci_high < add.band_low and add.reason_code == "outside_band"
    steps = [r for r in ratios if r.kind == "step"]
    assert [(r.t_from, r.t) for r in steps] == [(0, 14), (14, 28)]
    assert all(r.verdict == "pass" and r.band_high is None for r in steps)


def test_intervals_are_simultaneous():
    req, est = estimates()
    # points: t=0, t=14, additivity (t=28 is exact), steps: 2 -> 5 decisions, one look
    assert decision_count(req) == 5 and looks(req) == 1
    ratios, _ = score(req, est, req.seeds, None)
    assert by(ratios, "additivity", 14).ci_level == pytest.approx(simultaneous_level(5))


def test_looks_count_the_adaptive_rounds():
    req = EvaluationRequest.model_validate({**SPEC, "seeds": [0, 1, 2], "max_seeds": 12})
    assert looks(req) == 3  # 3 -> 6 -> 12


def test_unconverged_critic_makes_its_points_inconclusive():
    req, est = estimates(converged=False)
    ratios, verdict = score(req, est, req.seeds, None)
    assert verdict == "inconclusive"
    assert {r.reason_code for r in ratios if not r.ci_method or "exact" not in r.ci_method} \
        == {"not_converged"}
    assert any(d.code == "not_converged" for d in diagnostics(req, list(est.values()), ratios))


def test_a_diverged_seed_is_inconclusive_not_dropped():
    values = {**VALUES, "additivity/rows/t=14": [5.0, float("nan"), 4.8, 5.2]}
    req, est = estimates(values)
    add = by(score(req, est, req.seeds, None)[0], "additivity", 14)
    assert add.verdict == "inconclusive" and add.reason_code == "non_finite"
    assert add.per_seed[1] is None


def test_a_falling_baseline_fails_its_step():
    values = {**VALUES, "baseline/rows/t=14": [5.0, 5.0, 5.05, 4.95],
              "baseline/rows/t=28": [4.0, 4.1, 3.9, 4.0]}
    req, est = estimates(values)
    ratios, _ = score(req, est, req.seeds, None)
    step = by(ratios, "baseline", 28, kind="step")
    assert step.verdict == "fail" and step.value == pytest.approx(1 - 1.25, abs=0.01)
