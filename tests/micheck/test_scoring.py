"""Scoring (micheck.scoring): ratios per seed, simultaneous intervals, bands, verdicts."""

from __future__ import annotations

import pytest

from micheck.contract import Estimate, EvaluationRequest
from micheck.plan import plan
from micheck.scoring import (
    added_seeds,
    decision_count,
    diagnostics,
    extend,
    futile,
    keyed_estimates,
    look_record,
    looks,
    next_round,
    open_measurements,
    score,
)
from micheck.verdicts import decision_level, spend

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
    assert by(ratios, "additivity", 14).ci_level == pytest.approx(decision_level(5, 1, 1))
    assert decision_level(5, 1, 1) == pytest.approx(1 - 0.045 / 5)  # RESERVE kept back


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


def test_ground_truth_divides_by_the_true_mi():
    req = EvaluationRequest.model_validate({
        "estimator": {"name": "infonce"}, "dataset": {"name": "gaussian", "dim": 5, "mi": 2.0},
        "tests": [{"kind": "ground_truth"}], "seeds": [0, 1, 2], "max_seeds": 3})
    (m,) = plan(req)
    est = {m.key(s): Estimate(test="ground_truth", t=None, seed=s, mi_train=v, mi_test=v,
                              steps=1, converged=True) for s, v in enumerate([1.9, 1.92, 1.88])}
    (r,), verdict = score(req, est, req.seeds, 2.0)
    geometric = (1.9 * 1.92 * 1.88) ** (1 / 3) / 2.0  # the log scale's centre
    assert r.value == pytest.approx(geometric) and r.verdict == verdict == "pass"
    assert r.scale == "log" and r.look == 1
    assert r.band_low == pytest.approx(0.9) and r.band_high == pytest.approx(1.1)


def test_ratio_points_are_decided_on_the_log_scale_steps_on_the_linear():
    req, est = estimates()
    ratios, _ = score(req, est, req.seeds, None)
    add = by(ratios, "additivity", 14)
    assert add.scale == "log" and "log ratios" in add.ci_method
    assert add.ci_low > 0 and add.value == pytest.approx(
        (1.25 * 5.3 / 4.2 * 4.8 / 3.9 * 5.2 / 4.1) ** 0.25, rel=1e-6)
    assert by(ratios, "baseline", 14).scale == "linear"
    assert all(r.scale == "linear" for r in ratios if r.kind == "step")
    assert by(ratios, "baseline", 28).scale is None  # exact: no interval at all


def test_a_negative_estimate_leaves_a_log_point_inconclusive():
    values = {**VALUES, "additivity/rows/t=14": [5.0, -0.3, 4.8, 5.2]}
    req, est = estimates(values)
    add = by(score(req, est, req.seeds, None)[0], "additivity", 14)
    assert add.verdict == "inconclusive" and add.reason_code == "non_positive"


def test_a_decision_is_final_and_later_looks_spend_less():
    """Look 1 decides what it can; look 2 (more seeds) keeps those rows as they were and
    judges the rest at its own, smaller alpha share."""
    req = EvaluationRequest.model_validate({**SPEC, "max_seeds": 8})
    _, est = estimates()
    first, _ = score(req, est, req.seeds, None, look=1)
    assert looks(req) == 2 and first[0].look == 1
    assert by(first, "additivity", 14).ci_level == pytest.approx(decision_level(5, 1, 2))
    # look 2 sees other values for the additivity critics: the decided row does not move
    flipped = dict(est)
    for k in list(flipped):
        if k.startswith("additivity"):
            flipped[k] = flipped[k].model_copy(update={"mi_test": 8.0})
    second, _ = score(req, flipped, req.seeds, None, look=2, previous=first)
    assert by(second, "additivity", 14) == by(first, "additivity", 14)
    record = look_record(req, second, first, 2, 2, 8)
    assert record.alpha == pytest.approx(spend(2, 2)) and record.decided == 0


def _straddling(values, cap=16, seeds=8):
    req = EvaluationRequest.model_validate({
        **SPEC, "tests": [{"kind": "additivity", "rows": [14]}],
        "seeds": list(range(seeds)), "max_seeds": cap})
    est = {}
    for m in plan(req):
        for s in range(seeds):
            v = values[s] * 4.0 if m.role == "additivity" else 4.0
            est[m.key(s)] = Estimate(test=m.role, t=m.t, seed=s, mi_train=v, mi_test=v,
                                     steps=100, transform=m.transform, converged=True)
    return req, est


def test_seeds_stop_where_they_cannot_decide():
    """A point at the band's edge with a wide spread gets no more seeds (futile); one whose
    spread would let 16 seeds decide it does."""
    hopeless, est = _straddling([1.2, 2.6, 1.5, 2.4, 1.1, 2.9, 1.7, 2.2])
    (row,), _ = score(hopeless, est, hopeless.seeds, None)
    assert row.reason_code == "straddles_band" and futile(row, 16, 0.999)
    assert next_round(hopeless, [row], hopeless.seeds) == ([], [])
    close, est = _straddling([1.50, 1.75, 1.55, 1.70, 1.60, 1.66, 1.52, 1.72])
    (row,), _ = score(close, est, close.seeds, None)  # 1.62 [1.53, 1.72] against [1.7, 2.3]
    assert row.reason_code == "straddles_band" and not futile(row, 16, 0.999)
    assert next_round(close, [row], close.seeds)[0] == list(range(8, 16))


def test_more_seeds_train_only_what_the_open_rows_read():
    """Of the additivity point (open: too few seeds) and the baseline rows (decided), only
    the additivity point's two measurements are trained again; stored estimates key back
    to the measurements they came from; added seeds start above every seed run."""
    req = EvaluationRequest.model_validate({**SPEC, "seeds": [0, 1, 2], "max_seeds": 3})
    values = {**VALUES, "additivity/rows/t=14": [5.0, 9.0, 6.0, 0.0]}  # spread: undecided
    _, est = estimates(values)
    est = {k: v for k, v in est.items() if v.seed < 3}
    rows, _ = score(req, est, req.seeds, None)
    add = by(rows, "additivity", 14)
    assert add.verdict == "inconclusive" and add.reason_code in ("too_few_seeds",
                                                                 "straddles_band")
    assert all(r.verdict != "inconclusive" for r in rows if r is not add)
    wanted = open_measurements(req, rows)
    assert sorted(m.key(0) for m in wanted) == ["additivity/rows/t=14/seed=0",
                                                "baseline/rows/t=14/seed=0"]
    assert keyed_estimates(req, list(est.values())) == est
    assert added_seeds([0, 1, 5], 3) == [6, 7, 8]
    # one more look with two more seeds on the additivity point: the decided rows stay
    more = dict(est)
    for seed in (3, 4):
        for m in wanted:
            v = 5.0 if m.role == "additivity" else 4.0
            more[m.key(seed)] = Estimate(test=m.role, t=m.t, seed=seed, mi_train=v, mi_test=v,
                                         steps=100, transform=m.transform, converged=True)
    first_look = look_record(req, rows, None, 1, 1, 3)
    again, _, record = extend(req, more, [0, 1, 2, 3, 4], None, rows, [first_look])
    assert [r for r in again if r is not by(again, "additivity", 14)] == \
        [r for r in rows if r is not add]
    assert by(again, "additivity", 14).seeds == 5 and by(again, "additivity", 14).look == 2
    assert record.look == 2 and not record.planned and record.alpha == pytest.approx(
        spend(2, 1))


def test_a_look_after_an_early_stop_spends_the_planned_share_not_taken():
    """An evaluation that decided everything at its first of three planned looks leaves the
    shares of looks 2 and 3 unspent: more seeds later take look 2's share (still within
    alpha in all), not the reserve; and replay reads the planned count from the record."""
    req = EvaluationRequest.model_validate({**SPEC, "seeds": [0, 1, 2], "max_seeds": 12})
    assert looks(req) == 3
    _, est = estimates()
    est = {k: v for k, v in est.items() if v.seed < 3}
    rows, _ = score(req, est, req.seeds, None, look=1)
    first = look_record(req, rows, None, 1, looks(req), 3)
    _, _, second = extend(req, est, [0, 1, 2], None, rows, [first])
    assert second.look == 2 and second.planned and second.alpha == pytest.approx(spend(2, 3))
    assert spend(1, 3) + spend(2, 3) + spend(3, 3) + spend(4, 3) + spend(5, 3) <= 0.05


def test_a_negative_held_out_estimate_is_named_per_critic():
    """SMILE(inf) on Table 3 read -2.13 nats for one critic: the diagnostic names it (test,
    seed), so a user sees which critic made its point non_positive."""
    req, est = estimates()
    key = next(k for k in est if k.startswith("additivity") and k.endswith("seed=2"))
    est[key] = est[key].model_copy(update={"mi_test": -2.13})
    rows, _ = score(req, est, req.seeds, None)
    diags = diagnostics(req, list(est.values()), rows)
    (neg,) = [d for d in diags if d.code == "negative_estimate"]
    assert (neg.test, neg.seed) == ("additivity", 2) and "-2.130" in neg.message
    assert by(rows, "additivity", 14).reason_code == "non_positive"


def test_two_negative_estimates_make_no_ratio_of_information():
    """A log-scale ratio over a non-positive denominator estimate counts as non-positive:
    -31 / -13 nats is 2.4 as a quotient, and must not decide a verdict (engine v3)."""
    from micheck import testkinds
    from micheck.contract import Estimate

    def est(mi: float) -> Estimate:
        return Estimate(test="data_processing", t=None, seed=0, mi_train=mi, mi_test=mi,
                        true_mi=None, steps=1000, diverged=False, transform="translation")

    kind = testkinds.get("data_processing")
    assert kind.scale == "log"
    p = object.__new__(testkinds.Point)
    assert kind.value(p, est(-31.0), est(-13.0), None) == pytest.approx(-31 / 13)
    assert kind.value(p, est(31.0), est(13.0), None) == pytest.approx(31 / 13)
    assert kind.value(p, est(31.0), est(0.0), None) is None  # |den| < 1e-6: no value
    from micheck.verdicts import Band, judge

    _, d = judge([2.3, 2.4, -31 / 13], Band(None, 1.15), 0.99, scale="log")
    assert d.reason_code == "non_positive" and d.verdict == "inconclusive"
