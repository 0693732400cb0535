"""The suite registry (micheck.suites): the standard suite's points are the benchmarks'
specs, each point completes into a valid request labelled for it, definitions round-trip
as data, and a point reports the one row it names."""

from __future__ import annotations

import math

import pytest

from micheck import suites
from micheck.contract import Ratio


def test_standard_v1_holds_the_issue_21_points():
    st = suites.get("standard", 1)
    ids = st.point_ids
    assert [i for i in ids if i.startswith("table3/")] == [
        f"table3/{k}/{t}" for k in ("data_processing", "additivity")
        for t in ("scaling", "rotation", "translation")]
    assert [i for i in ids if i.startswith("staircase/")] == [
        f"staircase/{n}/mi{m}" for n in ("gaussian", "cubic") for m in (2, 4, 6, 8, 10)]
    assert "pairs/mnist/copies1" in ids and "gradient/d32/rho0.8" in ids
    assert len(set(ids)) == len(ids) == 21


def test_table3_points_use_the_bench_schedule():
    st = suites.get("standard")
    req = suites.request_for(st, st.point("table3/additivity/rotation"), "smile", {"tau": 5.0})
    train, critic = req.estimator.train, req.estimator.critic
    assert (train.batch_size, train.steps, train.lr, train.until_converged,
            train.max_steps) == (64, 600, 5e-4, True, 1875)
    assert (critic.kind, critic.arch, critic.width) == ("separable", "cnn", 0.25)
    assert req.dataset.name == "mnist"
    assert [(t.kind, t.transform) for t in req.tests] == [("additivity", "rotation")]
    stair = suites.request_for(st, st.point("staircase/cubic/mi8"), "infonce")
    assert (stair.dataset.name, stair.dataset.dim, stair.dataset.mi) == ("cubic", 20, 8.0)
    pairs = suites.request_for(st, st.point("pairs/mnist/copies2"), "infonce")
    assert (pairs.dataset.pairs, pairs.dataset.copies) == ("same_class", 2)
    grad = suites.request_for(st, st.point("gradient/d16/rho0.8"), "mine")
    assert grad.tests[0].kind == "mi_gradient" and grad.tests[0].rho == [0.8]
    assert grad.dataset.dim == 16


def test_every_point_makes_a_labelled_request():
    for suite in suites.entries():
        for point in suite.points:
            req = suites.request_for(suite, point, "infonce", labels={"team": "x"})
            assert req.labels == {"team": "x", "suite": suite.name,
                                  "suite_version": str(suite.version), "suite_point": point.id}
            assert req.estimator.name == "infonce"


def test_a_gradient_only_estimator_fits_the_gradient_points_only():
    st = suites.get("standard")
    fits = []
    for point in st.points:
        try:
            suites.request_for(st, point, "mige")
            fits.append(point.id)
        except ValueError:
            pass
    assert fits == [p for p in st.point_ids if p.startswith("gradient/")]


def test_suite_labels_cannot_be_replaced():
    st = suites.get("smoke")
    with pytest.raises(ValueError, match="set by the suite"):
        suites.request_for(st, st.points[0], "infonce", labels={"suite_point": "other"})


def test_definition_round_trips_as_data():
    st = suites.get("standard")
    again = suites.Suite.from_definition(st.definition())
    assert again == st and again.definition() == st.definition()


def _ratio(test: str, transform: str = "rows", rho: float | None = None,
           kind: str = "ratio") -> Ratio:
    return Ratio(test=test, t=None, value=1.0, ci_low=None, ci_high=None, ideal=1.0,
                 passed=False, tolerance=0.1, per_seed=[], transform=transform, rho=rho,
                 kind=kind)


def test_a_point_reports_the_row_it_names():
    st = suites.get("standard")
    rows = [_ratio("data_processing", "scaling"), _ratio("additivity", "scaling"),
            _ratio("mi_gradient", rho=0.5), _ratio("mi_gradient", rho=0.8)]
    assert suites.select_row(st.point("table3/additivity/scaling"), rows) is rows[1]
    assert suites.select_row(st.point("table3/additivity/rotation"), rows) is None
    picked = suites.select_row(st.point("gradient/d8/rho0.8"), rows)
    assert picked is not None and math.isclose(picked.rho or 0, 0.8)
    assert suites.select_row(st.point("staircase/gaussian/mi2"),
                             [_ratio("ground_truth", kind="step")]) is None


def test_registry_versions(monkeypatch):
    monkeypatch.setattr(suites, "_SUITES", dict(suites._SUITES))
    smoke = suites.get("smoke")
    with pytest.raises(ValueError, match="already registered"):
        suites.register(smoke)
    suites.register(smoke.model_copy(update={"version": 2}))
    assert suites.get("smoke").version == 2 and suites.get("smoke", 1) is smoke
    with pytest.raises(KeyError, match="no version 7"):
        suites.get("smoke", 7)
    with pytest.raises(KeyError, match="unknown suite"):
        suites.get("nope")


def test_cpu_v1_points_carry_their_known_mi():
    """The CPU league suite: the staircase at 2, 6, 10 nats, noisy-channel MNIST pairs whose
    (copies, eps) carry 2 and 6 nats exactly under a uniform prior, and the gradient test."""
    from micheck.datasets.class_channel import symmetric_channel_mi

    st = suites.get("cpu", 1)
    assert [p.id for p in st.points if p.id.startswith("staircase/")] == [
        f"staircase/{n}/mi{m}" for n in ("gaussian", "cubic") for m in (2, 6, 10)]
    pairs = [p for p in st.points if p.id.startswith("pairs/")]
    assert [p.id for p in pairs] == ["pairs/mnist/noisy/mi2", "pairs/mnist/noisy/mi6"]
    for p, target in zip(pairs, (2.0, 6.0), strict=True):
        ds = p.spec["dataset"]
        mi = ds["copies"] * symmetric_channel_mi(10, ds["class_noise"])
        assert math.isclose(mi, target, rel_tol=1e-5), (p.id, mi)
        req = suites.request_for(st, p, "infonce")
        assert req.dataset.train_size == suites.CPU_TRAIN_IMAGES
        assert req.estimator.train.until_converged and req.estimator.train.max_steps == 1600
    assert st.point("gradient/d8/rho0.8").row.rho == 0.8


def test_images_v1_carries_cpu_v1s_image_points_further_up():
    from micheck.datasets.class_channel import symmetric_channel_mi

    cpu, images = suites.get("cpu", 1), suites.get("images", 1)
    assert images.point_ids == [f"pairs/mnist/noisy/mi{m}" for m in (4, 8, 10)]
    for p, target, copies in zip(images.points, (4.0, 8.0, 10.0), (2, 4, 5), strict=True):
        ds = p.spec["dataset"]
        assert ds["copies"] == copies
        assert math.isclose(ds["copies"] * symmetric_channel_mi(10, ds["class_noise"]),
                            target, rel_tol=1e-5)
        # the same schedule and critic as cpu v1's image points
        assert p.spec["estimator"] == cpu.point("pairs/mnist/noisy/mi2").spec["estimator"]
