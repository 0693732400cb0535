"""`micheck suite run|list` against a real server on a loopback port (real SQLite and
Redis); evaluations run through the real job glue with the fake engine of
tests.service.support (the client is under test)."""

from __future__ import annotations

import json

import pytest
from micheck.clients.client import Client
from sqlalchemy import select

from micheck import suites
from micheck.cli import main
from micheck.storage.models import Evaluation, LabelRow
from tests.clients.support import Worker, run_queued
from tests.service.support import fake_engine


@pytest.fixture
def env(live_server, tokens, monkeypatch):
    monkeypatch.setenv("MICHECK_URL", live_server)
    monkeypatch.setenv("MICHECK_TOKEN", tokens["alice"])
    return live_server


def _labels(app) -> dict[str, dict[str, str]]:
    with app.state.db.session() as s:
        out: dict[str, dict[str, str]] = {}
        for row in s.scalars(select(LabelRow)):
            out.setdefault(row.evaluation_id, {})[row.key] = row.value
        return out


def test_run_submits_one_labelled_evaluation_per_point(app, env, capsys):
    assert main(["suite", "run", "smoke", "--estimator", "smile", "--param", "tau=5.0",
                 "--label", "team=x"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    smoke = suites.get("smoke")
    assert [line.split("\t")[0] for line in out] == smoke.point_ids
    labels = _labels(app)
    assert len(labels) == len(smoke.points)
    assert sorted(v["suite_point"] for v in labels.values()) == sorted(smoke.point_ids)
    assert all(v["suite"] == "smoke" and v["suite_version"] == "1" and v["team"] == "x"
               for v in labels.values())
    with app.state.db.session() as s:
        rows = list(s.scalars(select(Evaluation)))
    assert {r.estimator for r in rows} == {"smile"}
    assert {r.request["estimator"]["params"]["tau"] for r in rows} == {5.0}

    run_queued(app, fake_engine())
    assert main(["suite", "list", "--json"]) == 0
    listed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["name"], x["version"], x["stored_at"] is not None) for x in listed] == [
        ("cpu", 1, False), ("images", 1, False), ("smoke", 1, True), ("standard", 1, False)]


def test_run_wait_follows_every_evaluation(app, env, capsys):
    worker = Worker(app, fake_engine())
    worker.start()
    try:
        assert main(["suite", "run", "smoke", "--estimator", "infonce", "--wait",
                     "--timeout", "120", "--poll", "0.05", "--json"]) == 0
    finally:
        worker.halt.set()
        worker.join(30)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4 and {x["status"] for x in lines} == {"succeeded"}


def test_an_unlabelled_duplicate_is_run_again_for_the_league(app, env, tokens, capsys):
    smoke = suites.get("smoke")
    point = smoke.points[0]
    plain = suites.request_for(smoke, point, "infonce").model_copy(update={"labels": {}})
    with Client(env, tokens["alice"]) as c:
        first = c.submit(plain)
    run_queued(app, fake_engine())
    assert main(["suite", "run", "smoke", "--estimator", "infonce"]) == 0
    err = capsys.readouterr().err
    assert f"an identical evaluation {first.id} has no suite labels" in err
    labelled = [e for e, v in _labels(app).items() if v.get("suite_point") == point.id]
    assert len(labelled) == 1 and labelled[0] != first.id


def test_usage_errors(env, capsys):
    # MIGE estimates gradients only: no smoke point fits it
    assert main(["suite", "run", "smoke", "--estimator", "mige"]) == 2
    assert "skip gaussian/mi1" in capsys.readouterr().err
    assert main(["suite", "run", "smoke", "--estimator", "infonce", "--label",
                 "suite_point=x"]) == 2
    assert main(["suite", "run", "nope", "--estimator", "infonce"]) == 3  # 404 from server
    assert main(["suite", "run", "smoke", "--estimator", "infonce", "--param", "bad"]) == 2
