"""Suites and the league over the HTTP API, on real SQLite and Redis: evaluations run
through the real job glue (tests.clients.support.run_queued) with tests.service.support's
fake engine (made-up estimates, the real scoring), so every league number is a stored row."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re

import pytest
from fastapi.testclient import TestClient
from micheck.service import auth
from micheck.service.app import create_app

from micheck import suites
from micheck.errors import SpecError
from tests.clients.support import run_queued
from tests.service.support import fake_engine


@pytest.fixture
def app(service_settings):
    return create_app(service_settings, run_reconciler=False, run_deliveries=False)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture
def alice(app):
    return {"Authorization": f"Bearer {auth.create_token(app.state.db, 'alice')}"}


@pytest.fixture
def registry(monkeypatch):
    """The suite registry, restored after the test (tests may register versions)."""
    monkeypatch.setattr(suites, "_SUITES", dict(suites._SUITES))
    return suites


def engine(code_version: str = "test", **kw):
    """fake_engine whose results record ``code_version``."""
    inner = fake_engine(**kw)

    def evaluate(request, **k):
        res = inner(request, **k)
        prov = res.provenance.model_copy(update={"code_version": code_version})
        return res.model_copy(update={"provenance": prov})

    return evaluate


def submit(client, headers, point_id: str, estimator: str = "infonce", params=None,
           suite: str = "smoke", version: int | None = None, force: bool = True) -> str:
    st = suites.get(suite, version)
    req = suites.request_for(st, st.point(point_id), estimator, params)
    body = {**req.model_dump(mode="json"), "force": force}
    r = client.post("/v1/evaluations", json=body, headers=headers)
    assert r.status_code in (200, 202), r.text
    return r.json()["id"]


def league(client, headers, **params) -> dict:
    r = client.get("/v1/league", params={"suite": "smoke", **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_latest_succeeded_wins_failed_and_canceled_do_not(app, client, alice):
    first = submit(client, alice, "gaussian/mi1")
    run_queued(app, engine(per_seed=[0.95, 0.96, 0.94]))
    second = submit(client, alice, "gaussian/mi1")
    run_queued(app, engine(per_seed=[1.0, 1.01, 0.99]))
    failed = submit(client, alice, "gaussian/mi1")
    run_queued(app, engine(fail=SpecError("boom")))
    canceled = submit(client, alice, "gaussian/mi1")
    assert client.post(f"/v1/evaluations/{canceled}/cancel", headers=alice).status_code == 200
    statuses = {e: client.get(f"/v1/evaluations/{e}", headers=alice).json()["status"]
                for e in (first, second, failed, canceled)}
    assert statuses == {first: "succeeded", second: "succeeded", failed: "failed",
                        canceled: "canceled"}

    body = league(client, alice)
    assert body["suite"] == "smoke" and body["version"] == 1
    (row,) = body["rows"]
    assert row["evaluation_id"] == second and row["point"] == "gaussian/mi1"
    stored = client.get(f"/v1/evaluations/{second}/results", headers=alice).json()
    (ratio,) = stored["ratios"]
    assert (row["value"], row["ci_low"], row["ci_high"], row["verdict"], row["reason"]) == (
        ratio["value"], ratio["ci_low"], ratio["ci_high"], ratio["verdict"], ratio["reason"])
    assert row["code_version"] == "test" and row["estimator"] == "infonce"
    assert row["report"] == f"v1/evaluations/{second}/report"


def test_two_estimator_configs_give_two_rows(app, client, alice):
    submit(client, alice, "cubic/mi2", "smile", {"tau": 1.0})
    submit(client, alice, "cubic/mi2", "smile", {"tau": 5.0})
    submit(client, alice, "gaussian/mi2", "smile", {"tau": 5.0})
    run_queued(app, engine())
    rows = league(client, alice)["rows"]
    assert len(rows) == 3
    cubic = [r["config"] for r in rows if r["point"] == "cubic/mi2"]
    assert len(set(cubic)) == 2 and all(c.startswith("smile(") for c in cubic)
    assert sorted(r["params"]["tau"] for r in rows if r["point"] == "cubic/mi2") == [1.0, 5.0]
    # rows in the suite's point order
    order = suites.get("smoke").point_ids
    assert [order.index(r["point"]) for r in rows] == sorted(order.index(r["point"])
                                                             for r in rows)


def test_the_stored_definition_is_what_the_league_reports(app, client, alice, registry):
    submit(client, alice, "gaussian/mi1")
    run_queued(app, engine())
    before = league(client, alice)  # first use: smoke v1 stored now
    smoke = registry.get("smoke", 1)
    # the code changes afterwards: v1 edited in place (it should not be) and a v2 added
    edited = smoke.model_copy(update={"title": "edited", "points": smoke.points[2:]})
    registry.register(edited, replace=True)
    v2 = smoke.model_copy(update={"version": 2, "title": "v2", "points": smoke.points[:1]})
    registry.register(v2)

    again = league(client, alice, version=1)
    assert again["title"] == before["title"] != "edited"
    assert [p["id"] for p in again["points"]] == smoke.point_ids
    assert again["rows"] == before["rows"] and len(again["rows"]) == 1
    newest = league(client, alice)  # no version: the newest, stored on this first use
    assert newest["version"] == 2 and newest["rows"] == []
    listed = {(s["name"], s["version"]): s for s in
              client.get("/v1/suites", headers=alice).json()}
    assert listed[("smoke", 1)]["title"] == before["title"]
    assert listed[("smoke", 1)]["stored_at"] is not None
    assert listed[("standard", 1)]["stored_at"] is None  # not used yet


def test_csv_matches_json(app, client, alice):
    submit(client, alice, "gaussian/mi1")
    submit(client, alice, "cubic/mi1", "smile", {"tau": 5.0})
    run_queued(app, engine())
    rows = league(client, alice)["rows"]
    by_accept = client.get("/v1/league", params={"suite": "smoke"},
                           headers={**alice, "Accept": "text/csv"})
    by_path = client.get("/v1/league.csv", params={"suite": "smoke", "version": 1},
                         headers=alice)
    assert by_accept.status_code == by_path.status_code == 200
    assert by_accept.headers["content-type"].startswith("text/csv")
    assert by_accept.text == by_path.text
    lines = list(csv.DictReader(io.StringIO(by_path.text)))
    assert len(lines) == len(rows) == 2
    for line, row in zip(lines, rows, strict=True):
        assert line["evaluation_id"] == row["evaluation_id"]
        assert line["config"] == row["config"] and line["point"] == row["point"]
        assert float(line["value"]) == row["value"]
        assert float(line["ci_low"]) == row["ci_low"] and line["verdict"] == row["verdict"]


def test_page_renders_sorts_and_escapes(app, client, alice, registry):
    smoke = registry.get("smoke", 1)
    evil = smoke.points[0].model_copy(update={"title": "<script>alert(1)</script>"})
    registry.register(smoke.model_copy(update={
        "name": "evil", "title": "<b>bold</b>", "points": (evil,)}))
    st = registry.get("evil")
    req = suites.request_for(st, evil, "infonce")
    r = client.post("/v1/evaluations", json=req.model_dump(mode="json"), headers=alice)
    eid = r.json()["id"]
    run_queued(app, engine())
    page = client.get("/league", params={"suite": "evil"}, headers=alice)
    assert page.status_code == 200, page.text
    html = page.text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert f'href="v1/evaluations/{eid}/report"' in html
    assert "v1/league/history.png?suite=evil&amp;version=1&amp;point=" in html
    # the one inline script is the one the CSP allows by its hash
    (script,) = re.findall(r"<script>(.*?)</script>", html, re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in page.headers["content-security-policy"]
    assert client.get("/league", params={"suite": "nope"}, headers=alice).status_code == 422


def test_history_over_code_versions(app, client, alice):
    for code, value in (("1.0", 0.9), ("1.1", 1.0), ("1.1", 1.02)):
        submit(client, alice, "gaussian/mi2")
        run_queued(app, engine(code, per_seed=[value] * 3))
    q = {"suite": "smoke", "point": "gaussian/mi2", "estimator": "InfoNCE"}
    r = client.get("/v1/league/history", params=q, headers=alice)
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert [e["code_version"] for e in entries] == ["1.0", "1.1"]
    assert entries[0]["value"] == pytest.approx(0.9) and entries[1]["value"] == \
        pytest.approx(1.02)  # the latest at 1.1
    png = client.get("/v1/league/history.png", params=q, headers=alice)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("path,params,status,field", [
    ("/v1/league", {"suite": "nope"}, 422, "suite"),
    ("/v1/league.csv", {"suite": "nope"}, 422, "suite"),
    ("/v1/league", {"suite": "smoke", "version": 9}, 404, None),
    ("/v1/suites/nope", {}, 404, None),
    ("/v1/league/history", {"suite": "smoke", "point": "nope", "estimator": "infonce"}, 422,
     "point"),
    ("/v1/league/history", {"suite": "nope", "point": "x", "estimator": "infonce"}, 422,
     "suite"),
])
def test_unknown_suites_and_points_are_problems(client, alice, path, params, status, field):
    r = client.get(path, params=params, headers=alice)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if field:
        assert r.json()["errors"][0]["field"] == field


def test_get_suite_stores_it_on_first_use(client, alice):
    r = client.get("/v1/suites/standard", headers=alice)
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == 1 and len(body["points"]) == 21 and body["stored_at"]
    again = client.get("/v1/suites/standard", params={"version": 1}, headers=alice).json()
    assert again == body


def test_the_real_engine_rows_reach_the_league(app, client, alice, monkeypatch):
    """The smoke suite through the real engine (plan, scoring, storage), its critic fit
    replaced by a deterministic one: every point gets its stored ground-truth row."""
    from micheck.workers.engine import evaluate

    from tests.service.support import deterministic_critics

    deterministic_critics(monkeypatch)
    ids = {p: submit(client, alice, p) for p in suites.get("smoke").point_ids}
    run_queued(app, evaluate)
    rows = league(client, alice)["rows"]
    assert {r["point"]: r["evaluation_id"] for r in rows} == ids
    assert all(r["test"] == "ground_truth" and r["value"] == pytest.approx(1.01, abs=0.01)
               for r in rows)
