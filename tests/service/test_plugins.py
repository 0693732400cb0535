# ruff: noqa: F811  (pytest fixtures imported from tests.plugin_dists)
"""Plug-in estimators at the API, on the real app, SQLite and Redis: a worker registers
with the example plug-in installed beside it (its real registration code, run in this
process with a registry of its own, as in its own process), and the service lists the
plug-in, accepts its name while that worker is live and refuses it otherwise."""

from __future__ import annotations

from datetime import timedelta

import pytest
from micheck.service import auth

from micheck import estimators
from micheck.storage.models import WorkerRow, utcnow
from tests.plugin_dists import broken_site, example_site, isolated_registry  # noqa: F401
from tests.service.support import TINY_SPEC

PLUGIN_SPEC = {**TINY_SPEC, "estimator": {**TINY_SPEC["estimator"], "name": "dv_clipped",
                                          "params": {"clip": 5.0}}}


@pytest.fixture
def alice(app):
    return {"Authorization": f"Bearer {auth.create_token(app.state.db, 'alice')}"}


@pytest.fixture
def root(app):
    return {"Authorization": f"Bearer {auth.create_token(app.state.db, 'root', admin=True)}"}


def _register_worker(app, name: str) -> None:
    from micheck.workers.worker import register  # the worker's own code (no torch)

    with isolated_registry():  # the worker's process: what it loads stays there
        register(app.state.db, app.state.settings, name, "cpu", ["cpu"])


def _age(app, name: str, seconds: float) -> None:
    with app.state.db.session() as s:
        s.get(WorkerRow, name).heartbeat_at = utcnow() - timedelta(seconds=seconds)


def test_a_plugin_is_listed_and_accepted_while_a_live_worker_has_it(app, client, alice,
                                                                     example_site):
    r = client.post("/v1/evaluations", json=PLUGIN_SPEC, headers=alice)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    detail = r.json()["detail"]
    assert detail.startswith("estimator.name: no live worker has the estimator 'dv_clipped': "
                             "it is not built "
                             "in (alpha, dv, external, gm, infonce, js, mige, mine, nwj, smile, tuba)")
    assert "plug-ins on live workers: none" in detail
    assert r.json()["errors"][0]["field"] == "estimator.name"
    listed = {e["name"]: e for e in client.get("/v1/estimators").json()}
    assert "dv_clipped" not in listed and listed["smile"]["origin"] == "built-in"
    assert listed["smile"]["distribution"] is None

    _register_worker(app, "w1")
    assert not estimators.is_registered("dv_clipped")  # the service never loads it
    listed = {e["name"]: e for e in client.get("/v1/estimators").json()}
    row = listed["dv_clipped"]
    assert row["origin"] == "micheck-plugin-example==0.1.0" and row["workers"] == 1
    assert (row["distribution"], row["distribution_version"], row["version"]) == (
        "micheck-plugin-example", "0.1.0", "1")
    assert row["params"]["properties"]["clip"]["default"] == 10.0
    assert "Donsker-Varadhan" in row["definition"]

    r = client.post("/v1/evaluations", json=PLUGIN_SPEC, headers=alice)
    assert r.status_code == 202, r.text
    assert r.json()["request"]["estimator"]["params"] == {"clip": 5.0}
    typo = {**PLUGIN_SPEC, "estimator": {**PLUGIN_SPEC["estimator"], "params": {"clp": 1.0}}}
    r = client.post("/v1/evaluations", json=typo, headers=alice)
    assert r.status_code == 422 and "dv_clipped takes no parameter(s) ['clp']" in r.text
    wrong = {**PLUGIN_SPEC, "estimator": {**PLUGIN_SPEC["estimator"], "params": {"clip": 0}}}
    r = client.post("/v1/evaluations", json=wrong, headers=alice)  # the plug-in's own bound
    assert r.status_code == 422 and "params.clip: Input should be greater than 0" in r.text
    defaults = {**PLUGIN_SPEC, "estimator": {**PLUGIN_SPEC["estimator"], "params": {}}}
    r = client.post("/v1/evaluations", json=defaults, headers=alice)
    assert r.status_code == 202 and r.json()["request"]["estimator"]["params"] == {"clip": 10.0}

    _age(app, "w1", app.state.settings.stale_after_s + 1)  # the worker is gone
    r = client.post("/v1/evaluations", json={**PLUGIN_SPEC, "force": True}, headers=alice)
    assert r.status_code == 422 and "no live worker has the estimator 'dv_clipped'" in r.text
    assert "dv_clipped" not in {e["name"] for e in client.get("/v1/estimators").json()}
    # what was accepted stays readable without the plug-in anywhere
    eid = client.get("/v1/evaluations", headers=alice).json()["items"][0]["id"]
    assert client.get(f"/v1/evaluations/{eid}", headers=alice).status_code == 200


def test_a_typo_of_a_builtin_gets_the_same_clear_422(client, alice):
    spec = {**TINY_SPEC, "estimator": {**TINY_SPEC["estimator"], "name": "infonse"}}
    r = client.post("/v1/evaluations", json=spec, headers=alice)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("estimator.name: no live worker has the estimator "
                                         "'infonse'")


def test_workers_show_their_plugins_and_admins_why_some_did_not_load(app, client, alice, root,
                                                                     broken_site):
    _register_worker(app, "w1")
    (mine,) = client.get("/v1/workers", headers=alice).json()
    assert "dv_clipped (micheck-plugin-example==0.1.0)" in mine["plugins"]
    assert "bad_nan (micheck-broken-plugins==2.0.1)" in mine["plugins"]
    assert mine["broken_plugins"] is None  # reasons are for admins
    (theirs,) = client.get("/v1/workers", headers=root).json()
    assert sorted(theirs["broken_plugins"])[0] == (
        "bad_import (micheck-broken-plugins==2.0.1): ImportError: this plug-in needs a "
        "package not installed")
    assert len(theirs["broken_plugins"]) == 4
    listed = {e["name"]: e["origin"] for e in client.get("/v1/estimators").json()}
    assert listed["dv"] == "built-in" and listed["bad_nan"] == "micheck-broken-plugins==2.0.1"
    assert "bad_import" not in listed


def test_live_plugin_reports_are_reused_within_their_ttl(app, client, alice, example_site):
    """One query per TTL, not per submission: a worker registered meanwhile is seen once
    the reports are older than plugin_reports_ttl_s."""
    app.state.settings.plugin_reports_ttl_s = 3600.0
    assert client.post("/v1/evaluations", json=PLUGIN_SPEC, headers=alice).status_code == 422
    _register_worker(app, "w1")
    r = client.post("/v1/evaluations", json=PLUGIN_SPEC, headers=alice)
    assert r.status_code == 422, "the reports read before the worker came are reused"
    app.state.settings.plugin_reports_ttl_s = 0.0
    r = client.post("/v1/evaluations", json=PLUGIN_SPEC, headers=alice)
    assert r.status_code == 202, r.text
