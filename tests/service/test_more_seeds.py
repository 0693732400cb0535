"""More seeds for a finished evaluation over the API (POST /v1/evaluations/{id}/seeds),
against real SQLite and Redis, through the real job glue and the real engine (its critic
fit made deterministic: tests.service.support.deterministic_critics), and the client's
`micheck more-seeds` against a served API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from micheck.service import auth
from micheck.service.app import create_app
from micheck.workers.engine import evaluate

from tests.clients.support import run_queued
from tests.service.support import deterministic_critics

# one seed, capped at two: inconclusive for want of seeds when the first run ends
SPEC = {"estimator": {"name": "infonce", "train": {"batch_size": 64, "steps": 300}},
        "dataset": {"name": "gaussian", "dim": 2, "mi": 0.5},
        "tests": [{"kind": "ground_truth"}], "seeds": [0], "max_seeds": 2}


@pytest.fixture
def api(service_settings, monkeypatch):
    fits = deterministic_critics(monkeypatch)
    app = create_app(service_settings, run_reconciler=False, run_deliveries=False)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {auth.create_token(app.state.db, 'alice')}"
        yield app, c, fits


def _finished(app, c) -> str:
    r = c.post("/v1/evaluations", json=SPEC)
    assert r.status_code == 202, r.text
    assert run_queued(app, evaluate) == ["succeeded"]
    return r.json()["id"]


def test_more_seeds_pool_with_the_stored_estimates_and_decide(api):
    app, c, fits = api
    first = _finished(app, c)
    before = c.get(f"/v1/evaluations/{first}/results").json()
    assert before["verdict"] == "inconclusive" and before["seed_rounds"]["stop"] == "cap_reached"

    r = c.post(f"/v1/evaluations/{first}/seeds", json={"add": 2})
    assert r.status_code == 202, r.text
    child = r.json()
    assert child["extends"] == first and child["status"] == "queued"
    assert child["request"]["seeds"] == [0, 1, 2, 3] and child["cost"]["trainings"] == 2
    assert r.headers["location"] == f"/v1/evaluations/{child['id']}"
    # one chain of looks: the same evaluation cannot be extended twice
    again = c.post(f"/v1/evaluations/{first}/seeds", json={"add": 2})
    assert again.status_code == 409 and child["id"] in again.json()["detail"]
    assert again.headers["content-type"] == "application/problem+json"

    assert run_queued(app, evaluate) == ["succeeded"]
    assert fits == [[0], [1], [2, 3]]  # only the new seeds trained
    pooled = c.get(f"/v1/evaluations/{child['id']}/results").json()
    (row,) = pooled["ratios"]
    assert row["verdict"] == "pass" and row["seeds"] == 4 and row["look"] == 3
    assert [x["planned"] for x in pooled["seed_rounds"]["looks"]] == [True, True, False]
    assert pooled["provenance"]["seeds"] == [0, 1, 2, 3]
    # the first evaluation is unchanged, and its extension is no duplicate of a plain spec
    assert c.get(f"/v1/evaluations/{first}/results").json() == before
    plain = c.post("/v1/evaluations", json={**SPEC, "seeds": [0, 1, 2, 3], "max_seeds": 4})
    assert plain.status_code == 202 and plain.json()["id"] != child["id"]
    # decided: nothing left for more seeds
    done = c.post(f"/v1/evaluations/{child['id']}/seeds", json={"add": 2})
    assert done.status_code == 409 and "cannot change it" in done.json()["detail"]


def test_more_seeds_refusals_are_problems(api):
    app, c, _ = api
    first = _finished(app, c)
    queued = c.post("/v1/evaluations", json={**SPEC, "seeds": [5]}).json()["id"]
    other = auth.create_token(app.state.db, "bob")
    cases = [(f"/v1/evaluations/{first}/seeds", {"add": 0}, {}, 422),
             (f"/v1/evaluations/{first}/seeds", {"add": 65}, {}, 422),
             (f"/v1/evaluations/{first}/seeds", {"add": 2, "x": 1}, {}, 422),
             (f"/v1/evaluations/{first}/seeds", {}, {}, 422),
             (f"/v1/evaluations/{queued}/seeds", {"add": 2}, {}, 409),
             ("/v1/evaluations/nope/seeds", {"add": 2}, {}, 404),
             (f"/v1/evaluations/{first}/seeds", {"add": 2},
              {"Authorization": f"Bearer {other}"}, 403),
             (f"/v1/evaluations/{first}/seeds", {"add": 63}, {}, 422)]  # 65 seeds in all
    for path, body, headers, status in cases:
        r = c.post(path, json=body, headers=headers)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    # nothing was stored by the refusals: the first can still be extended
    assert c.post(f"/v1/evaluations/{first}/seeds", json={"add": 1}).status_code == 202
