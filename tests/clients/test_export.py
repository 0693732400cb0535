"""CSV export: micheck.render.export on recorded real results, and the served
results.csv / Accept: text/csv, parsed back with the csv module."""

from __future__ import annotations

import csv
import io
import math

import pytest
from fastapi.testclient import TestClient
from micheck.clients.client import Client

from micheck.render.export import COLUMNS, operands, results_csv
from tests.clients.support import replay_engine, run_queued
from tests.service.support import TINY_SPEC


def _rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


def test_one_row_per_point_and_seed_whose_ratio_is_its_quotient(mnist_result):
    rows = _rows(results_csv(mnist_result, "e1"))
    seeds = mnist_result.provenance.seeds
    points = [r for r in mnist_result.ratios if r.kind == "ratio"]  # steps are derived rows
    assert len(rows) == len(points) * len(seeds)
    steps = {e.steps for e in mnist_result.estimates}
    for ratio in points:
        mine = [r for r in rows if r["test"] == ratio.test and r["t"] == str(ratio.t)
                and r["transform"] == ratio.transform]
        assert [int(r["seed"]) for r in mine] == seeds
        for r, per_seed in zip(mine, ratio.per_seed, strict=True):
            assert r["evaluation_id"] == "e1" and r["estimator"] == "smile"
            assert r["dataset"] == "mnist" and int(r["steps"]) in steps
            assert float(r["ratio"]) == pytest.approx(per_seed, rel=1e-12, abs=1e-15)
            # the ratio is the quotient of the two estimates the row names
            assert float(r["numerator_mi"]) / float(r["denominator_mi"]) == pytest.approx(
                per_seed, rel=1e-9, abs=1e-12)
            assert r["verdict"] == ratio.verdict
            assert float(r["point_ratio"]) == pytest.approx(ratio.value)


def test_ground_truth_divides_by_the_true_mi(gaussian_result):
    rows = _rows(results_csv(gaussian_result))
    assert len(rows) == len(gaussian_result.request.seeds)
    for r, est in zip(rows, gaussian_result.estimates, strict=True):
        assert r["denominator"] == "true_mi" and r["test"] == "ground_truth"
        assert float(r["denominator_mi"]) == est.true_mi
        assert float(r["numerator_mi"]) == pytest.approx(est.mi_test)
        assert r["t"] == ""  # None is an empty cell


def test_operands_match_the_engines_plan():
    """The export's numerator/denominator mapping is the engine's plan (micheck.plan)."""
    from micheck.contract import EvaluationRequest, Ratio
    from micheck.plan import points

    req = EvaluationRequest.model_validate({
        "estimator": {"name": "smile"}, "dataset": {"name": "mnist"}, "seeds": [0],
        "tests": [{"kind": k, "transform": tr} for k in ("baseline", "independence",
                                                          "data_processing", "additivity")
                  for tr in ("rows", "scaling", "rotation") if k != "independence"
                  or tr == "rows"]})
    pts = points(req)
    assert len(pts) > 10
    for p in pts:
        ratio = Ratio(test=p.test.kind, t=p.t, value=None, ci_low=None, ci_high=None,
                      ideal=None, passed=False, tolerance=0.1, per_seed=[None],
                      transform=p.test.transform)
        num, den = operands(ratio, req)
        assert num == (p.numerator.role, p.numerator.t, p.numerator.transform)
        assert den == (p.denominator.role, p.denominator.t, p.denominator.transform)


def test_served_csv_and_content_negotiation(app, tokens, mnist_result):
    from tests.clients.test_reports_api import MNIST_SPEC

    with TestClient(app) as tc:
        c = Client(token=tokens["alice"], http=tc, retries=0)
        spec = {**MNIST_SPEC, "tests": mnist_result.request.model_dump(mode="json")["tests"]}
        eid = c.submit(spec).id
        run_queued(app, replay_engine(mnist_result))
        queued = c.submit(TINY_SPEC).id
        auth = {"Authorization": f"Bearer {tokens['alice']}"}
        r = tc.get(f"/v1/evaluations/{eid}/results.csv", headers=auth)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert f"micheck-{eid}.csv" in r.headers["content-disposition"]
        rows = _rows(r.text)
        points = [x for x in mnist_result.ratios if x.kind == "ratio"]
        assert len(rows) == len(points) * len(mnist_result.provenance.seeds)
        assert {row["evaluation_id"] for row in rows} == {eid}
        assert all(math.isfinite(float(row["ratio"])) for row in rows)
        neg = tc.get(f"/v1/evaluations/{eid}/results", headers={**auth,
                                                                 "Accept": "text/csv"})
        assert neg.headers["content-type"].startswith("text/csv") and neg.text == r.text
        js = tc.get(f"/v1/evaluations/{eid}/results",
                    headers={**auth, "Accept": "application/json, text/csv;q=0.5"})
        assert js.headers["content-type"] == "application/json" and js.json()["ratios"]
        assert tc.get(f"/v1/evaluations/{eid}/results", headers=auth).json()["ratios"]
        busy = tc.get(f"/v1/evaluations/{queued}/results.csv", headers=auth)
        assert busy.status_code == 409 and busy.json()["status_value"] == "queued"
        assert tc.get("/v1/evaluations/nope/results.csv", headers=auth).status_code == 404
        bob = {"Authorization": f"Bearer {tokens['bob']}"}
        assert tc.get(f"/v1/evaluations/{eid}/results.csv", headers=bob).status_code == 403
