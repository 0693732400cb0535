"""The mi_gradient test: analytic values, reparameterised samples, critics' gradients
through rho in the one training loop, its rows from micheck.scoring, and the engine."""

import math

import pytest
import torch
from micheck.workers.engine import evaluate
from micheck.workers.gradient import (
    NEAR_ZERO,
    analytic_gradient,
    analytic_mi,
    sample_pairs,
)
from micheck.workers.selfconsistency import build_tasks
from micheck.workers.trainer import train_critics

from micheck.contract import (
    DatasetSpec,
    Estimate,
    EstimatorSpec,
    EvaluationRequest,
    EvaluationResult,
    Ratio,
    TestSpec,
    TrainSpec,
)
from micheck.plan import plan
from micheck.render.table import ratio_table
from micheck.scoring import score
from micheck.verdicts import decision_level


def gradients(ds: DatasetSpec, rhos: list[float], seeds: list[int], est: EstimatorSpec):
    """(rho, seed) -> the trained task's outcome, through the engine's tasks and loop."""
    req = EvaluationRequest(estimator=est, dataset=ds,
                            tests=[TestSpec(kind="mi_gradient", rho=rhos)], seeds=seeds)
    tasks, by_key = build_tasks(req)
    out = train_critics(tasks, req.estimator, torch.device("cpu"))
    return {(by_key[t.key].rho, t.seed): out[t.key] for t in tasks}


@pytest.mark.parametrize("rho", [-0.8, -0.2, 0.0, 0.4, 0.95])
def test_analytic_gradient_is_the_derivative_of_the_analytic_mi(rho):
    h = 1e-6
    fd = (analytic_mi(rho + h, 7) - analytic_mi(rho - h, 7)) / (2 * h)
    assert analytic_gradient(rho, 7) == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_reparameterised_pairs_have_the_correlation_and_derivative():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 2, 20000, 2, generator=g)
    rho = torch.tensor([0.6], requires_grad=True)
    x, y = sample_pairs(rho, noise, cubic=False)
    corr = torch.corrcoef(torch.stack([x[0, :, 0], y[0, :, 0]]))[0, 1]
    assert corr.item() == pytest.approx(0.6, abs=0.02)
    assert y.std().item() == pytest.approx(1.0, abs=0.02)
    (grad,) = torch.autograd.grad(y.sum(), rho)  # d/drho sum(rho e1 + sqrt(1-rho^2) e2)
    expected = (noise[0, 0] - 0.6 / math.sqrt(1 - 0.36) * noise[0, 1]).sum()
    assert grad.item() == pytest.approx(expected.item(), rel=1e-3)


@pytest.mark.parametrize("name", ["infonce", "tuba"])
def test_a_trained_critics_gradient_follows_the_sign_and_scale_of_the_truth(name):
    """A property of the estimator, not of one trajectory: over four seeds every gradient
    has the truth's sign and the median lies within [0.5, 1.3] x the truth (measured on this
    CPU: InfoNCE 1.5-2.3, TUBA 1.3-1.9 against 1.875, seeds 0-3). NWJ is left out: its
    e^(T - 1) term makes single held-out values explode at this learning rate (-5e13 nats on
    one seed here), which is the estimator's variance, not the gradient test's."""
    ds = DatasetSpec(name="gaussian", dim=2)
    est = EstimatorSpec(name=name, train=TrainSpec(batch_size=64, steps=300, lr=5e-3,
                                                    eval_samples=512))
    seeds = [0, 1, 2, 3]
    out = gradients(ds, [-0.6, 0.0, 0.6], seeds, est)
    truth = analytic_gradient(0.6, 2)  # 1.875
    for rho, sign in ((0.6, 1.0), (-0.6, -1.0)):
        grads = sorted(sign * out[(rho, s)].gradient for s in seeds)
        assert all(g > 0 for g in grads), (rho, grads)
        median = 0.5 * (grads[1] + grads[2])
        assert 0.5 * truth < median < 1.3 * truth, (rho, grads)
    zero = sorted(abs(out[(0.0, s)].gradient) for s in seeds)
    assert zero[2] < 0.2 * truth  # by symmetry the truth is 0 at rho = 0
    assert all(not o.diverged and o.mi_test is not None for o in out.values())
    mis = sorted(out[(0.6, s)].mi_test for s in seeds)
    assert 0.5 * (mis[1] + mis[2]) == pytest.approx(analytic_mi(0.6, 2), abs=0.25)


@pytest.mark.parametrize("name", ["nwj", "tuba"])
def test_blocked_critics_read_through_the_same_bound_in_the_gradient_test(name):
    """critic.block reaches the gradient test's critics and bound: blocks of the whole
    batch train and differentiate the same numbers as the full matrix; smaller blocks
    give other, finite ones."""
    ds = DatasetSpec(name="gaussian", dim=2)

    def run(block):
        est = EstimatorSpec(name=name, critic={"block": block},
                            train=TrainSpec(batch_size=32, steps=20, lr=5e-3, eval_samples=128))
        return gradients(ds, [-0.5, 0.5], [0], est)

    full, whole, small = run(None), run(32), run(8)
    for k, o in full.items():
        assert whole[k].gradient == pytest.approx(o.gradient, rel=1e-4, abs=1e-5)
        assert whole[k].mi_test == pytest.approx(o.mi_test, rel=1e-4, abs=1e-5)
        assert small[k].gradient != pytest.approx(o.gradient, rel=1e-3)
        assert math.isfinite(small[k].gradient) and math.isfinite(small[k].mi_test)


def _scored(rho: list[float], values: dict[tuple[float, int], float | None], dim: int = 2,
            seeds=(0, 1, 2)) -> list[Ratio]:
    """The rows micheck.scoring decides from given gradients, per (rho, seed)."""
    req = EvaluationRequest.model_validate({
        "estimator": {"name": "nwj"}, "dataset": {"name": "gaussian", "dim": dim},
        "tests": [{"kind": "mi_gradient", "rho": rho}], "seeds": list(seeds),
        "max_seeds": len(seeds)})
    estimates = {}
    for m in plan(req):
        for s in seeds:
            estimates[m.key(s)] = Estimate(
                test=m.role, t=None, seed=s, mi_train=None, mi_test=None, steps=1,
                transform=m.transform, rho=m.rho, gradient=values[(m.rho, s)],
                true_gradient=analytic_gradient(m.rho, dim))
    rows, _ = score(req, estimates, list(seeds), None)
    return rows


def test_rows_switch_to_absolute_error_near_zero_and_repeat_nothing():
    d = 4
    tol = TestSpec(kind="mi_gradient").effective_tolerance
    truth = analytic_gradient(0.5, d)
    rows = _scored([0.0, 0.5], {(0.0, 0): 0.02, (0.0, 1): -0.01, (0.0, 2): 0.0,
                                (0.5, 0): 1.02 * truth, (0.5, 1): 0.98 * truth,
                                (0.5, 2): truth}, dim=d)
    zero, half = rows  # one row per rho: no "integral" rows repeating them
    assert (zero.rho, zero.transform, zero.ideal) == (0.0, "gradient", 0.0)
    assert zero.per_seed == pytest.approx([0.02, -0.01, 0.0])
    band = tol * analytic_gradient(NEAR_ZERO, d)  # absolute band near rho = 0
    assert (zero.band_low, zero.band_high) == pytest.approx((-band, band))
    assert zero.verdict == "pass" and "absolute error" in zero.note
    assert half.per_seed == pytest.approx([1.02, 0.98, 1.0]) and half.value == pytest.approx(1.0)
    assert half.ci_low < 1.0 < half.ci_high and half.verdict == "pass"
    assert half.ci_level == pytest.approx(decision_level(2, 1, 1))  # two decisions, one look
    assert (half.band_low, half.band_high) == pytest.approx((1 - tol, 1 + tol))
    assert all(r.test == "mi_gradient" and r.t is None and r.kind == "ratio" for r in rows)


def test_rows_fail_outside_the_band_and_are_inconclusive_on_few_seeds():
    g = analytic_gradient(0.5, 2)
    (row,) = _scored([0.5], {(0.5, s): 0.3 * g * (1 + 0.01 * s) for s in range(3)})
    assert row.verdict == "fail" and row.reason_code == "outside_band"
    (row,) = _scored([0.5], {(0.5, 0): g, (0.5, 1): g}, seeds=(0, 1))
    assert row.verdict == "inconclusive" and row.reason_code == "too_few_seeds"


def test_a_missing_gradient_makes_the_row_inconclusive():
    (row,) = _scored([0.5], {(0.5, 0): analytic_gradient(0.5, 2), (0.5, 1): None},
                     seeds=(0, 1))
    assert row.verdict == "inconclusive" and row.per_seed[1] is None
    assert row.reason_code == "non_finite"


def test_stored_integral_rows_still_read_back_and_render():
    """Results stored before the integral rows were dropped keep them: they read back and
    print like any other row."""
    req = EvaluationRequest.model_validate({
        "estimator": {"name": "mige"}, "dataset": {"name": "gaussian", "dim": 2},
        "tests": [{"kind": "mi_gradient", "rho": [0.5]}], "seeds": [0]})
    row = {"test": "mi_gradient", "t": None, "value": 1.01, "ci_low": None, "ci_high": None,
           "ideal": 1.0, "passed": False, "tolerance": 0.2, "per_seed": [1.01],
           "transform": "integral", "rho": 0.5, "verdict": "inconclusive",
           "reason_code": "too_few_seeds", "note": "rho=0.5: MI integrated from rho=0"}
    stored = {"request": req.model_dump(mode="json"), "estimates": [], "ratios": [row],
              "diagnostics": [], "passed": False, "verdict": "inconclusive",
              "provenance": {"definition_versions": {"engine": "2"}, "code_version": "x",
                             "seeds": [0], "device": "cpu", "torch_version": "x",
                             "started_at": "2024-01-01T00:00:00Z",
                             "finished_at": "2024-01-01T00:00:01Z", "wall_seconds": 1.0}}
    result = EvaluationResult.model_validate(stored)
    assert result.ratios[0].transform == "integral"
    assert "rho=0.5" in ratio_table(result)


def test_engine_runs_mige_and_reports_every_row():
    req = EvaluationRequest.model_validate({
        "estimator": {"name": "mige", "params": {"samples": 400}},
        "dataset": {"name": "gaussian", "dim": 3},
        "tests": [{"kind": "mi_gradient", "rho": [0.0, 0.4, 0.8]}], "seeds": [0, 1, 2],
        "max_seeds": 3})
    seen = []
    result = evaluate(req, device="cpu", progress=seen.append)
    grads = {r.rho: r for r in result.ratios if r.transform == "gradient"}
    assert sorted(grads) == [0.0, 0.4, 0.8]
    assert grads[0.4].value == pytest.approx(1.0, abs=0.1)
    assert grads[0.8].value == pytest.approx(1.0, abs=0.1)
    assert abs(grads[0.0].value) < 0.3
    assert len(result.ratios) == 3  # one row per rho, nothing repeated
    assert grads[0.8].verdict in ("pass", "inconclusive") and grads[0.8].seeds == 3
    e = next(e for e in result.estimates if e.rho == 0.8 and e.seed == 1)
    assert e.true_gradient == pytest.approx(analytic_gradient(0.8, 3))
    assert e.true_mi == pytest.approx(analytic_mi(0.8, 3))
    assert e.mi_test is None and e.gradient is not None  # MIGE estimates gradients only
    assert result.provenance.definition_versions["mige"] == "1"
    assert seen[-1].steps_done == seen[-1].steps_total == 9
    EvaluationResult.model_validate_json(result.model_dump_json())


def test_engine_runs_gradient_and_ground_truth_tests_in_one_request():
    req = EvaluationRequest.model_validate({
        "estimator": {"name": "nwj", "train": {"batch_size": 16, "steps": 20,
                                               "eval_samples": 32}},
        "dataset": {"name": "gaussian", "dim": 2, "mi": 0.5},
        "tests": [{"kind": "ground_truth"}, {"kind": "mi_gradient", "rho": [0.5]}],
        "seeds": [0], "max_seeds": 2})
    result = evaluate(req, device="cpu")
    assert result.seed_rounds.rounds[0] == [0]
    assert [r.test for r in result.ratios] == ["ground_truth", "mi_gradient"]
    assert {e.test for e in result.estimates} == {"ground_truth", "mi_gradient"}
    assert result.request == req
