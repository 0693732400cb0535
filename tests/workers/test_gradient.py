"""The mi_gradient test: analytic values, quadrature, reparameterised samples, critics'
gradients through rho, ratio rows and the engine's dispatch."""

import math

import pytest
import torch
from micheck.workers.engine import evaluate
from micheck.workers.gradient import (
    NEAR_ZERO,
    GradientOutcome,
    analytic_gradient,
    analytic_mi,
    critic_gradients,
    ratio_rows,
    sample_pairs,
    trapezoid_from_zero,
)

from micheck.contract import (
    DatasetSpec,
    EstimatorSpec,
    EvaluationRequest,
    EvaluationResult,
    TestSpec,
    TrainSpec,
)


@pytest.mark.parametrize("rho", [-0.8, -0.2, 0.0, 0.4, 0.95])
def test_analytic_gradient_is_the_derivative_of_the_analytic_mi(rho):
    h = 1e-6
    fd = (analytic_mi(rho + h, 7) - analytic_mi(rho - h, 7)) / (2 * h)
    assert analytic_gradient(rho, 7) == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_trapezoid_from_zero_is_exact_for_a_linear_gradient_on_both_sides():
    rhos = [-0.6, -0.2, 0.3, 0.5, 0.9]
    out = trapezoid_from_zero(rhos, [2 * r for r in rhos])  # I = rho^2
    assert out == pytest.approx({r: r * r for r in rhos})
    with_zero = trapezoid_from_zero([0.0, 0.5], [1.0, 2.0])  # the estimate at 0 is used
    assert with_zero == pytest.approx({0.0: 0.0, 0.5: 0.75})


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
    out = critic_gradients(ds, [-0.6, 0.0, 0.6], seeds, est, torch.device("cpu"))
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
        return critic_gradients(ds, [-0.5, 0.5], [0], est, torch.device("cpu"))

    full, whole, small = run(None), run(32), run(8)
    for k, o in full.items():
        assert whole[k].gradient == pytest.approx(o.gradient, rel=1e-4, abs=1e-5)
        assert whole[k].mi_test == pytest.approx(o.mi_test, rel=1e-4, abs=1e-5)
        assert small[k].gradient != pytest.approx(o.gradient, rel=1e-3)
        assert math.isfinite(small[k].gradient) and math.isfinite(small[k].mi_test)


def _outcomes(values: dict[tuple[float, int], float | None]):
    return {k: GradientOutcome(k[0], k[1], v, None) for k, v in values.items()}


def test_ratio_rows_switch_to_absolute_error_near_zero_and_integrate():
    d, seeds = 4, [0, 1, 2]
    test = TestSpec(kind="mi_gradient", rho=[0.0, 0.5])
    tol = test.effective_tolerance
    truth = analytic_gradient(0.5, d)
    outcomes = _outcomes({(0.0, 0): 0.02, (0.0, 1): -0.01, (0.0, 2): 0.0,
                          (0.5, 0): 1.02 * truth, (0.5, 1): 0.98 * truth, (0.5, 2): truth})
    integrals = {s: trapezoid_from_zero([0.0, 0.5], [outcomes[(0.0, s)].gradient,
                                                     outcomes[(0.5, s)].gradient])
                 for s in seeds}
    rows = ratio_rows(test, d, seeds, outcomes, integrals, level=0.95)
    zero, half, integral = rows
    assert (zero.rho, zero.transform, zero.ideal) == (0.0, "gradient", 0.0)
    assert zero.per_seed == pytest.approx([0.02, -0.01, 0.0])
    band = tol * analytic_gradient(NEAR_ZERO, d)  # absolute band near rho = 0
    assert (zero.band_low, zero.band_high) == pytest.approx((-band, band))
    assert zero.verdict == "pass" and "absolute error" in zero.note
    assert half.per_seed == pytest.approx([1.02, 0.98, 1.0]) and half.value == pytest.approx(1.0)
    assert half.ci_low < 1.0 < half.ci_high and half.verdict == "pass" and half.ci_level == 0.95
    assert (half.band_low, half.band_high) == pytest.approx((1 - tol, 1 + tol))
    ref = 0.5 * truth * 0.5  # trapezoid of the analytic gradient from 0 (gradient 0) to 0.5
    assert integral.transform == "integral" and integral.rho == 0.5
    assert integral.per_seed[0] == pytest.approx((0.02 + 1.02 * truth) * 0.25 / ref)
    assert all(r.test == "mi_gradient" and r.t is None for r in rows)


def test_rows_fail_outside_the_band_and_are_inconclusive_on_few_seeds():
    test = TestSpec(kind="mi_gradient", rho=[0.5])
    g = analytic_gradient(0.5, 2)
    biased = _outcomes({(0.5, s): 0.3 * g * (1 + 0.01 * s) for s in range(3)})
    (row, _) = ratio_rows(test, 2, [0, 1, 2], biased, {}, level=0.95)
    assert row.verdict == "fail" and row.reason_code == "outside_band"
    (row, _) = ratio_rows(test, 2, [0, 1], _outcomes({(0.5, 0): g, (0.5, 1): g}), {},
                          level=0.95)
    assert row.verdict == "inconclusive" and row.reason_code == "too_few_seeds"


def test_a_missing_seed_makes_the_row_inconclusive():
    test = TestSpec(kind="mi_gradient", rho=[0.5])
    rows = ratio_rows(test, 2, [0, 1], _outcomes({(0.5, 0): analytic_gradient(0.5, 2),
                                                  (0.5, 1): None}), {0: {}, 1: {}}, level=0.95)
    assert rows[0].verdict == "inconclusive" and rows[0].per_seed[1] is None
    assert rows[0].reason_code == "non_finite"


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
    assert {r.rho for r in result.ratios if r.transform == "integral"} == {0.4, 0.8}
    assert grads[0.8].verdict in ("pass", "inconclusive") and grads[0.8].seeds == 3
    e = next(e for e in result.estimates if e.rho == 0.8 and e.seed == 1)
    assert e.true_gradient == pytest.approx(analytic_gradient(0.8, 3))
    assert e.true_mi == pytest.approx(analytic_mi(0.8, 3)) and e.mi_test is not None
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
    assert [r.test for r in result.ratios] == ["ground_truth", "mi_gradient", "mi_gradient"]
    assert {e.test for e in result.estimates} == {"ground_truth", "mi_gradient"}
    assert result.request == req
