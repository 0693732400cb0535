"""/healthz, /readyz and /v1/workers against the real app, real SQLite and real Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from micheck.service import auth
from micheck.service.app import create_app

from micheck.storage.models import WorkerRow, utcnow
from tests.service.support import TINY_SPEC


@pytest.fixture
def tokens(app):
    return {n: {"Authorization": f"Bearer {auth.create_token(app.state.db, n, admin=n == 'root')}"}
            for n in ("alice", "bob", "root")}


def _worker(app, name: str, *, age_s: float = 0.0, running: str | None = None) -> None:
    with app.state.db.session() as s:
        s.add(WorkerRow(name=name, device="cpu", queue="cpu", host="gpu-box-7", pid=4242,
                        started_at=utcnow(), heartbeat_at=utcnow() - timedelta(seconds=age_s),
                        current_evaluation=running))


def test_healthz_names_the_instance_only_when_set(service_settings):
    with TestClient(create_app(service_settings, run_reconciler=False)) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
    service_settings.instance_id = "run-1234"
    with TestClient(create_app(service_settings, run_reconciler=False)) as c:
        assert c.get("/healthz").json() == {"status": "ok", "instance": "run-1234"}


def test_readyz_names_what_is_down(app, client):
    r = client.get("/readyz")  # no worker has ever beaten
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["down"] == ["workers"] and body["redis"] == "ok" and body["database"] == "ok"
    assert "workers down" in body["detail"] and r.headers["retry-after"] == "5"
    _worker(app, "w-stale", age_s=app.state.settings.stale_after_s + 5)
    assert client.get("/readyz").json()["down"] == ["workers"]  # a stale one does not count
    _worker(app, "w-live")
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "database": "ok", "workers": "1 live", "storage": "ok",
                        "redis": "ok"}  # w-stale's box has a live worker: not lost
    with app.state.db.session() as s:  # a second box whose only worker stopped beating
        s.add(WorkerRow(name="w-b", device="cpu", queue="cpu", host="box-b", pid=1,
                        started_at=utcnow(), heartbeat_at=utcnow() - timedelta(seconds=70)))
    r = client.get("/readyz")
    assert r.status_code == 200  # a worker lives: still ready
    assert r.json()["workers"] == "1 live; lost: box box-b (1 worker, no heartbeat for 70 s)"


def test_readyz_with_redis_down_names_redis(service_settings):
    service_settings.redis_url = "redis://127.0.0.1:1"
    with TestClient(create_app(service_settings, run_reconciler=False)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["down"] == ["redis", "workers"]
        assert r.json()["redis"].startswith("down: ")


def test_workers_hide_other_owners_work_and_list_lost_ones_last(app, client, tokens):
    mine = client.post("/v1/evaluations", json=TINY_SPEC, headers=tokens["alice"]).json()["id"]
    theirs = client.post("/v1/evaluations", json={**TINY_SPEC, "seeds": [5]},
                         headers=tokens["bob"]).json()["id"]
    _worker(app, "box.cuda0.11", running=mine)
    _worker(app, "box.cuda1.12", running=theirs)
    _worker(app, "box.cuda2.13", age_s=app.state.settings.stale_after_s + 1)  # lost
    _worker(app, "box.cuda3.14", age_s=app.state.settings.worker_forget_after_s + 1)  # old

    admin = client.get("/v1/workers", headers=tokens["root"]).json()
    assert [(w["name"], w["current_evaluation"], w["host"], w["pid"], w["busy"], w["state"])
            for w in admin] == [
        ("box.cuda0.11", mine, "gpu-box-7", 4242, True, "live"),
        ("box.cuda1.12", theirs, "gpu-box-7", 4242, True, "live"),
        ("box.cuda2.13", None, "gpu-box-7", 4242, False, "lost")]

    alice = client.get("/v1/workers", headers=tokens["alice"]).json()
    assert [(w["name"], w["current_evaluation"], w["host"], w["pid"], w["busy"]) for w in alice][
        :2] == [("worker-1", mine, None, None, True), ("worker-2", None, None, None, True)]
    assert "box." not in str(alice) and theirs not in str(alice)
    bob = client.get("/v1/workers", headers=tokens["bob"]).json()
    assert [w["current_evaluation"] for w in bob] == [None, theirs, None]
