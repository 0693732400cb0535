"""The HTTP API against real Redis and real SQLite (in-process ASGI client)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from micheck.service import auth
from micheck.service.app import create_app
from rq import Queue
from rq.serializers import JSONSerializer

from tests.service.support import TINY_SPEC


@pytest.fixture
def tokens(app):
    db = app.state.db
    return {n: {"Authorization": f"Bearer {auth.create_token(db, n, admin=n == 'root')}"}
            for n in ("alice", "bob", "root")}


def _spec(**over):
    return {**TINY_SPEC, **over}


def test_submit_queues_job_with_id_only(client, tokens, app):
    r = client.post("/v1/evaluations", json=_spec(), headers=tokens["alice"])
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and r.headers["location"] == f"/v1/evaluations/{body['id']}"
    jobs = Queue("cpu", connection=app.state.queue.redis, serializer=JSONSerializer).jobs
    assert len(jobs) == 1 and jobs[0].args == [body["id"]]
    assert jobs[0].func_name == "micheck.workers.job.run_evaluation"
    assert jobs[0].timeout >= app.state.settings.job_timeout_floor_s


def test_auth_missing_wrong_revoked_and_foreign(client, tokens, app):
    assert client.post("/v1/evaluations", json=_spec()).status_code == 401
    r = client.get("/v1/evaluations", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    eid = client.post("/v1/evaluations", json=_spec(), headers=tokens["alice"]).json()["id"]
    assert client.get(f"/v1/evaluations/{eid}", headers=tokens["bob"]).status_code == 403
    assert client.post(f"/v1/evaluations/{eid}/cancel", headers=tokens["bob"]).status_code == 403
    assert client.get(f"/v1/evaluations/{eid}", headers=tokens["root"]).status_code == 200
    assert client.get("/v1/evaluations", headers=tokens["bob"]).json()["items"] == []
    auth.revoke_token(app.state.db, "alice")
    assert client.get(f"/v1/evaluations/{eid}", headers=tokens["alice"]).status_code == 401


def test_open_reads(service_settings, tokens):
    service_settings.open_reads = True
    with TestClient(create_app(service_settings, run_reconciler=False)) as c:
        eid = c.post("/v1/evaluations", json=_spec(), headers=tokens["alice"]).json()["id"]
        assert c.get(f"/v1/evaluations/{eid}").status_code == 200
        assert c.post(f"/v1/evaluations/{eid}/cancel").status_code == 401


def test_validation_names_the_field(client, tokens):
    bad = _spec(estimator={"name": "infonce", "train": {"steps": 0}})
    r = client.post("/v1/evaluations", json=bad, headers=tokens["alice"])
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert "estimator.train.steps" in r.json()["detail"]
    assert r.json()["errors"][0]["field"] == "estimator.train.steps"
    r = client.post("/v1/evaluations", json=_spec(estimator={"name": "nope"}),
                    headers=tokens["alice"])
    assert r.status_code == 422 and "estimator.name" in r.json()["detail"]
    r = client.post("/v1/evaluations", content=b"{not json", headers={
        **tokens["alice"], "content-type": "application/json"})
    assert r.status_code == 422 and "Traceback" not in r.text


def test_server_limits(client, tokens, app):
    big = _spec(estimator={"name": "infonce", "train": {"steps": 10**6}})
    r = client.post("/v1/evaluations", json=big, headers=tokens["alice"])
    assert r.status_code == 422 and "estimator.train.steps" in r.json()["detail"]
    payload = json.dumps(_spec(label="x" * 100)) + " " * app.state.settings.max_payload_bytes
    r = client.post("/v1/evaluations", content=payload, headers={
        **tokens["alice"], "content-type": "application/json"})
    assert r.status_code == 413
    app.state.settings.max_queued_per_token = 2
    for seed in (1, 2):
        assert client.post("/v1/evaluations", json=_spec(seeds=[seed]),
                           headers=tokens["alice"]).status_code == 202
    r = client.post("/v1/evaluations", json=_spec(seeds=[3]), headers=tokens["alice"])
    assert r.status_code == 429 and r.json()["status"] == 429


def test_idempotency_and_dedup(client, tokens):
    h = {**tokens["alice"], "Idempotency-Key": "k1"}
    a = client.post("/v1/evaluations", json=_spec(), headers=h)
    b = client.post("/v1/evaluations", json=_spec(), headers=h)
    assert a.status_code == 202 and b.status_code == 200 and a.json()["id"] == b.json()["id"]
    assert client.post("/v1/evaluations", json=_spec(seeds=[7]), headers=h).status_code == 409
    # same spec without a key: the in-flight identical evaluation is returned, marked
    c = client.post("/v1/evaluations", json=_spec(), headers=tokens["alice"])
    assert c.status_code == 200 and c.json()["deduplicated"] and c.json()["id"] == a.json()["id"]
    d = client.post("/v1/evaluations", json=_spec(force=True), headers=tokens["alice"])
    assert d.status_code == 202 and d.json()["id"] != a.json()["id"]
    # another token does not see alice's evaluation, so it is not deduplicated for bob
    assert client.post("/v1/evaluations", json=_spec(), headers=tokens["bob"]).status_code == 202


def test_get_etag_results_cancel_and_list(client, tokens):
    eid = client.post("/v1/evaluations", json=_spec(), headers=tokens["alice"]).json()["id"]
    r = client.get(f"/v1/evaluations/{eid}", headers=tokens["alice"])
    etag = r.headers["etag"]
    r2 = client.get(f"/v1/evaluations/{eid}", headers={**tokens["alice"], "If-None-Match": etag})
    assert r2.status_code == 304
    r = client.get(f"/v1/evaluations/{eid}/results", headers=tokens["alice"])
    assert r.status_code == 409
    r = client.post(f"/v1/evaluations/{eid}/cancel", headers=tokens["alice"])
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert client.post(f"/v1/evaluations/{eid}/cancel", headers=tokens["alice"]).status_code == 409
    r = client.get(f"/v1/evaluations/{eid}", headers={**tokens["alice"], "If-None-Match": etag})
    assert r.status_code == 200 and r.headers["etag"] != etag
    for seed in range(1, 4):
        client.post("/v1/evaluations", json=_spec(seeds=[seed]), headers=tokens["alice"])
    page = client.get("/v1/evaluations?limit=2&status=queued", headers=tokens["alice"]).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(f"/v1/evaluations?limit=2&status=queued&cursor={page['next_cursor']}",
                      headers=tokens["alice"]).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert client.get("/v1/evaluations?estimator=cpc", headers=tokens["alice"]
                      ).json()["items"][0]["request"]["estimator"]["name"] == "infonce"
    assert client.get("/v1/evaluations?cursor=zz", headers=tokens["alice"]).status_code == 422
    assert client.get("/v1/evaluations/nope", headers=tokens["alice"]).status_code == 404


def test_mi_gradient_and_mige_over_the_api(client, tokens):
    mige = {e["name"]: e for e in client.get("/v1/estimators").json()}["mige"]
    assert mige["family"] == "gradient" and "Stein" in mige["source"]
    spec = {"estimator": {"name": "mige"}, "dataset": {"name": "gaussian", "dim": 5},
            "tests": [{"kind": "mi_gradient", "rho": [0.0, 0.5]}]}
    r = client.post("/v1/evaluations", json=spec, headers=tokens["alice"])
    assert r.status_code in (200, 201, 202), r.text
    bad = {**spec, "tests": [{"kind": "mi_gradient", "rho": [0.5, -1.0]}]}
    r = client.post("/v1/evaluations", json=bad, headers=tokens["alice"])
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert "|rho| < 1" in r.json()["detail"] and "Traceback" not in r.text


def test_catalog_health_metrics_workers(client, tokens):
    names = {e["name"] for e in client.get("/v1/estimators").json()}
    assert {"infonce", "nwj", "smile", "gm"} <= names
    assert "cifar10" in {d["name"] for d in client.get("/v1/datasets").json()}
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["redis"] == "ok"
    client.post("/v1/evaluations", json=_spec(), headers=tokens["alice"])
    text = client.get("/metrics", headers=tokens["bob"]).text
    assert 'micheck_evaluations{status="queued"} 1.0' in text
    assert 'micheck_submissions_total{outcome="created"} 1.0' in text
    assert ('micheck_http_request_duration_seconds_count{method="POST",'
            'route="/v1/evaluations",status="202"} 1.0') in text
    assert client.get("/v1/workers", headers=tokens["bob"]).json() == []


def test_redis_down_still_accepts_and_readyz_says_so(service_settings, tokens):
    service_settings.redis_url = "redis://127.0.0.1:1"
    with TestClient(create_app(service_settings, run_reconciler=False)) as c:
        r = c.post("/v1/evaluations", json=_spec(), headers=tokens["alice"])
        assert r.status_code == 202  # durable in SQL; the reconciler enqueues it later
        assert c.get("/readyz").status_code == 503


def test_service_imports_neither_torch_nor_workers(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from micheck.settings import Settings; from micheck.service.app import create_app; "
            "import micheck.service.cli, micheck.up, micheck.service.healthcheck; "
            f"create_app(Settings(var_dir={str(tmp_path)!r}, redis_url='redis://127.0.0.1:1'), "
            "run_reconciler=False); "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('micheck.workers')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_idempotency_key_reruns_after_cancel_or_failure(client, tokens, app):
    """A re-run CI job (same key) gets a fresh evaluation once the old one was canceled or
    failed; a queued or succeeded one is returned as it is."""
    from micheck.storage import store

    h = {**tokens["alice"], "Idempotency-Key": "ci-run-7-1"}
    first = client.post("/v1/evaluations", json=_spec(), headers=h).json()["id"]
    assert client.post("/v1/evaluations", json=_spec(), headers=h).json()["id"] == first
    client.post(f"/v1/evaluations/{first}/cancel", headers=tokens["alice"])
    r = client.post("/v1/evaluations", json=_spec(), headers=h)
    second = r.json()["id"]
    assert r.status_code == 202 and second != first and r.json()["status"] == "queued"
    assert client.post("/v1/evaluations", json=_spec(), headers=h).json()["id"] == second
    with app.state.db.session() as s:  # the worker's side: the attempt fails
        assert store.claim(s, second, "w1", 3) is not None
        assert store.finish_attempt(s, second, 1, status=store.FAILED, code="boom",
                                    message="engine failed")
    third = client.post("/v1/evaluations", json=_spec(), headers=h)
    assert third.status_code == 202 and third.json()["id"] not in (first, second)
    # the old evaluations keep their own state
    assert client.get(f"/v1/evaluations/{first}", headers=tokens["alice"]
                      ).json()["status"] == "canceled"
    # a different body under the key is still a conflict
    assert client.post("/v1/evaluations", json=_spec(seeds=[9]), headers=h).status_code == 409


def test_a_critic_block_is_checked_at_the_door(client, tokens):
    def submit(critic: dict, name: str = "infonce"):
        est = {**TINY_SPEC["estimator"], "name": name, "critic": critic}
        return client.post("/v1/evaluations", json=_spec(estimator=est),
                           headers=tokens["alice"])

    r = submit({"kind": "joint", "block": 3})  # batch_size 16
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert "critic.block 3 must divide train.batch_size 16" in r.json()["detail"]
    r = submit({"kind": "joint", "block": 4}, name="gm")
    assert r.status_code == 422 and "scores no pairs" in r.json()["detail"]
    r = submit({"kind": "joint", "block": 4})
    assert r.status_code == 202, r.text
    view = client.get(f"/v1/evaluations/{r.json()['id']}", headers=tokens["alice"]).json()
    assert view["request"]["estimator"]["critic"]["block"] == 4  # recorded as asked


def test_metrics_need_a_token_unless_opened(service_settings):
    app = create_app(service_settings, run_reconciler=False, run_deliveries=False)
    with TestClient(app) as c:
        r = c.get("/metrics")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        ok = c.get("/metrics", headers={
            "Authorization": f"Bearer {auth.create_token(app.state.db, 'scraper')}"})
        assert ok.status_code == 200 and "micheck_evaluations" in ok.text
    opened = create_app(service_settings.model_copy(update={"metrics_open": True}),
                        run_reconciler=False, run_deliveries=False)
    with TestClient(opened) as c:
        assert c.get("/metrics").status_code == 200


def test_head_answers_where_get_does(client, tokens):
    eid = client.post("/v1/evaluations", json=_spec(), headers=tokens["alice"]).json()["id"]
    for path in ("/healthz", "/v1/estimators", f"/v1/evaluations/{eid}", "/login",
                 "/openapi.json", "/docs"):
        get = client.get(path, headers=tokens["alice"])
        head = client.head(path, headers=tokens["alice"])
        assert (head.status_code, head.content) == (get.status_code, b""), path
        assert head.headers.get("content-length") == get.headers.get("content-length"), path
        assert head.headers.get("etag") == get.headers.get("etag"), path
    assert client.head(f"/v1/evaluations/{eid}").status_code == 401  # the same rules
