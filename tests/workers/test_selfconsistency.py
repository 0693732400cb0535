"""Planning and the (X, Y) constructions (the ratio, interval and verdict arithmetic is
tested in tests/micheck/test_scoring.py and test_verdicts.py)."""


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
