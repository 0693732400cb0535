"""Baselines over the API: GET /v1/evaluations/{id}/comparison, by id and by label query,
against real SQLite; evaluations end through the real job glue with an engine whose
ratios the test sets."""

from __future__ import annotations

from statistics import geometric_mean

import pytest
from fastapi.testclient import TestClient
from micheck.service import auth
from micheck.service.app import create_app

from tests.clients.support import run_queued
from tests.service.support import TINY_SPEC, fake_engine

SPEC = {**TINY_SPEC, "seeds": [0, 1, 2]}


def engine_with(per_seed: list[float], passed: bool):
    """fake_engine's result with this ground-truth ratio per seed (scored for real);
    `passed` states what the scoring is expected to decide."""
    base = fake_engine(steps=1, per_seed=per_seed)

    def evaluate(request, **kw):
        result = base(request, **kw)
        assert (result.verdict == "pass") == passed, result.ratios[0].reason
        return result

    return evaluate


@pytest.fixture
def api(service_settings):
    app = create_app(service_settings, run_reconciler=False, run_deliveries=False)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {auth.create_token(app.state.db, 'alice')}"
        yield app, c


def _run(app, c, spec: dict, per_seed: list[float], passed: bool) -> str:
    r = c.post("/v1/evaluations", json=spec)
    assert r.status_code in (200, 202), r.text
    run_queued(app, engine_with(per_seed, passed))
    return r.json()["id"]


def test_label_baseline_finds_the_latest_same_spec_run_and_flags_a_regression(api):
    app, c = api
    old = _run(app, c, {**SPEC, "labels": {"branch": "main"}}, [0.99, 1.0, 1.01], True)
    main = _run(app, c, {**SPEC, "labels": {"branch": "main"}, "force": True},
                [0.97, 0.98, 0.99], True)
    _run(app, c, {**SPEC, "labels": {"branch": "dev"}, "force": True}, [0.5, 0.5, 0.5], False)
    new = _run(app, c, {**SPEC, "labels": {"branch": "feature"}, "force": True,
                        "baseline": "branch:main"}, [0.61, 0.60, 0.62], False)
    assert len({old, main, new}) == 3
    r = c.get(f"/v1/evaluations/{new}/comparison")
    assert r.status_code == 200, r.text
    cmp = r.json()
    assert cmp["baseline_id"] == main and cmp["regression"] is True
    (point,) = cmp["points"]
    assert point["regression"] == "regressed"
    # ground truth is a log-scale row: its value is the geometric mean over seeds
    assert point["difference"] == pytest.approx(
        geometric_mean([0.61, 0.60, 0.62]) - geometric_mean([0.97, 0.98, 0.99]))
    assert point["p_value"] < 0.05 and (point["baseline_verdict"], point["verdict"]) == (
        "pass", "fail")
    # the report page shows it too
    page = c.get(f"/v1/evaluations/{new}/report").text
    assert "Against the baseline" in page and "REGRESSION at 1 point" in page
    assert f'href="../{main}/report"' in page and "(the latest with branch:main)" in page
    assert "Against the baseline" not in c.get(f"/v1/evaluations/{main}/report").text
    # by id, and a passing run compared with a passing baseline
    by_id = c.get(f"/v1/evaluations/{main}/comparison", params={"baseline": old}).json()
    assert by_id["baseline_id"] == old and by_id["regression"] is False
    assert by_id["points"][0]["regression"] == "unchanged"


def test_comparison_errors_are_problems(api):
    app, c = api
    done = _run(app, c, SPEC, [1.0, 1.0, 1.0], True)
    queued = c.post("/v1/evaluations", json={**SPEC, "seeds": [9],
                                             "baseline": "branch:main"}).json()["id"]
    cases = [(f"/v1/evaluations/{done}/comparison", {}, 422),  # the request named none
             (f"/v1/evaluations/{done}/comparison", {"baseline": "nope"}, 422),
             (f"/v1/evaluations/{done}/comparison", {"baseline": "branch:main"}, 404),
             (f"/v1/evaluations/{done}/comparison", {"baseline": "0" * 32}, 404),
             (f"/v1/evaluations/{queued}/comparison", {}, 409),
             ("/v1/evaluations/nope/comparison", {"baseline": "a:b"}, 404)]
    for path, params, status in cases:
        r = c.get(path, params=params)
        assert r.status_code == status, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    bad = c.post("/v1/evaluations", json={**SPEC, "baseline": "not a query"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "baseline"
