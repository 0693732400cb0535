"""Planning and the (X, Y) constructions (the ratio, interval and verdict arithmetic is
tested in tests/micheck/test_scoring.py and test_verdicts.py)."""


import pytest
import torch
from micheck.workers import selfconsistency as sc

from micheck.contract import EvaluationRequest


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


def test_every_kind_has_a_sampler_and_every_fetchable_data_set_a_fetcher():
    from micheck.workers.cli import FETCHERS

    from micheck import datasets, testkinds

    assert set(sc._SAMPLERS) == set(testkinds.names())
    assert set(FETCHERS) == {d.name.replace("_", "-") for d in datasets.entries()
                             if d.fetchable}


def test_a_new_kind_runs_end_to_end_as_one_entry_and_one_sampler():
    """A toy kind on vector tasks, I([X1, X2]; [Y1, Y2]) / I(X; Y) (additivity, ideal 2):
    its entry and its sampler are all the engine needs."""
    from micheck.workers.engine import evaluate
    from micheck.workers.trainer import CriticTask

    from micheck import testkinds
    from micheck.testkinds import TestKind

    class Doubled(TestKind):
        name, order, tolerance, ideal, title = "doubled", 60, 0.5, 2.0, "I(X1X2; Y1Y2)/I(X; Y)"
        critics = (2, 1)

        def points(self, test, request):
            return [sc.Point(test, None, sc.Measurement("doubled", None),
                             sc.Measurement("ground_truth", None))]

    def doubled(m, seed, data):
        one = sc.vector_sampler(data.dataset)

        def sample(g, n):
            (x1, y1), (x2, y2) = one(g, n), one(g, n)
            return torch.cat([x1, x2], 1), torch.cat([y1, y2], 1)

        d = 2 * data.dataset.dim
        return CriticTask(m.key(seed), seed, sample, sample, (d,), (d,),
                          eval_samples=data.eval_samples)

    testkinds.register(Doubled())
    sc.register_sampler("doubled")(doubled)
    try:
        req = EvaluationRequest.model_validate({
            "estimator": {"name": "nwj", "train": {"batch_size": 16, "steps": 5,
                                                   "eval_samples": 32}},
            "dataset": {"name": "gaussian", "dim": 2, "mi": 0.5},
            "tests": [{"kind": "doubled"}], "seeds": [0], "max_seeds": 1})
        result = evaluate(req, device="cpu")
    finally:
        testkinds._ENTRIES.pop("doubled")
        sc._SAMPLERS.pop("doubled")
    (row,) = result.ratios
    assert (row.test, row.ideal, row.band_low, row.band_high) == ("doubled", 2.0, 1.5, 2.5)
    assert {e.test for e in result.estimates} == {"doubled", "ground_truth"}


def test_noisy_class_ground_truth_tasks_carry_the_exact_channel_mi(tmp_path, monkeypatch):
    """CIFAR-10 from an operator's data root, noisy-class pairs: the task's truth is
    m I(C_X; C_Y) of the test split (balanced here: Eq. (1) of class_channel)."""
    import json

    from micheck.workers import data

    from micheck.datasets.class_channel import symmetric_channel_mi
    from tests.workers.data.support import write_cifar

    write_cifar(tmp_path / "cifar-10-batches-py", per_batch=20)
    monkeypatch.setenv("MICHECK_DATA_ROOTS", json.dumps({"lab": str(tmp_path)}))
    data.clear_cache()
    req = request([{"kind": "ground_truth"}], seeds=(0, 1),
                  dataset={"name": "cifar10", "data_root": "lab", "pairs": "noisy_class",
                           "class_noise": 0.35, "copies": 3})
    tasks, _ = sc.build_tasks(req)
    data.clear_cache()
    assert len(tasks) == 2
    truth = 3 * symmetric_channel_mi(10, 0.35)
    for task in tasks:
        assert task.true_mi == pytest.approx(truth, rel=1e-12)
        assert task.x_shape == task.y_shape == (9, 32, 32)
        x, y = task.train(torch.Generator().manual_seed(task.seed), 5)
        assert x.shape == y.shape == (5, 9, 32, 32)


def test_bmi_ground_truth_tasks_carry_the_tasks_own_mi():
    from micheck.datasets.bmi import sparse_mi

    req = request([{"kind": "ground_truth"}],
                  dataset={"name": "half_cube_multinormal_sparse", "dim": 5, "interacting": 3,
                           "strength": 1.5})
    (task,), _ = sc.build_tasks(req)
    assert task.true_mi == sparse_mi(3, 1.5) and req.dataset.mi == 2.0  # not the mi field
    assert task.x_shape == task.y_shape == (5,)
    x, y = task.train(torch.Generator().manual_seed(0), 6)
    assert x.shape == y.shape == (6, 5)
