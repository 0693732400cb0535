"""Load shedding (service/shed.py) on a real uvicorn server: requests past the in-flight
bound are answered at once, 503 (or 429 for one token's excess) with Retry-After, and
the requests in flight still complete. In-flight slots are held by clients that send
their headers and keep the body back, so no timing is involved."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from micheck.service import auth
from micheck.service.app import create_app

from tests.service.support import TINY_SPEC, wait_for


@pytest.fixture
def server(service_settings) -> Iterator[tuple[str, object]]:
    settings = service_settings.model_copy(update={"max_inflight": 3,
                                                   "max_inflight_per_token": 2})
    app = create_app(settings, run_reconciler=False, run_deliveries=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, timeout=20)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        srv.should_exit = True
        thread.join(20)


class Held:
    """A POST whose headers are sent and whose body is kept back: in flight until done()."""

    def __init__(self, url: str, token: str, seed: int):
        host, port = url.removeprefix("http://").split(":")
        self.body = json.dumps({**TINY_SPEC, "seeds": [seed]}).encode()
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.sendall(b"POST /v1/evaluations HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\n"
                          + f"Authorization: Bearer {token}\r\n".encode()
                          + f"Content-Length: {len(self.body)}\r\n\r\n".encode()
                          + self.body[:5])

    def done(self) -> int:
        self.sock.sendall(self.body[5:])
        status = int(self.sock.recv(65536).split(b" ", 2)[1])
        self.sock.close()
        return status


def _inflight(app) -> int:
    return next(m for m in _middlewares(app) if type(m).__name__ == "Shed").inflight


def _middlewares(app):
    node = app.middleware_stack
    while node is not None:
        yield node
        node = getattr(node, "app", None)


def test_past_the_bound_requests_are_shed_at_once_and_held_ones_complete(server):
    url, app = server
    alice = auth.create_token(app.state.db, "alice")
    bob = auth.create_token(app.state.db, "bob")
    with httpx.Client(base_url=url, timeout=30) as c:
        c.get("/healthz")  # builds the middleware stack
        held = [Held(url, alice, 1), Held(url, alice, 2)]
        wait_for(lambda: _inflight(app) == 2, timeout=20)
        # alice's third: her own bound (2) is reached -> 429, at once, with Retry-After
        r = c.get("/v1/evaluations", headers={"Authorization": f"Bearer {alice}"})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.headers["content-type"] == "application/problem+json"
        assert "MICHECK_MAX_INFLIGHT_PER_TOKEN" in r.json()["detail"]
        held.append(Held(url, bob, 3))
        wait_for(lambda: _inflight(app) == 3, timeout=20)
        # the process's bound (3) is reached: anyone's next request -> 503
        r = c.post("/v1/evaluations", json={**TINY_SPEC, "seeds": [4]},
                   headers={"Authorization": f"Bearer {bob}"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "MICHECK_MAX_INFLIGHT" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200  # health checks are never shed
        assert c.get("/readyz").status_code in (200, 503)
        assert [h.done() for h in held] == [202, 202, 202]  # admitted ones complete
        wait_for(lambda: _inflight(app) == 0, timeout=20)
        # the same keep-alive connection that was shed works once there is room
        r = c.post("/v1/evaluations", json={**TINY_SPEC, "seeds": [4]},
                   headers={"Authorization": f"Bearer {bob}"})
        assert r.status_code == 202, r.text
        metrics = c.get("/metrics", headers={"Authorization": f"Bearer {bob}"}).text
    assert 'micheck_shed_total{status="429"} 1.0' in metrics
    assert 'micheck_shed_total{status="503"} 1.0' in metrics
    with app.state.db.session() as s:  # the shed POST stored nothing
        from micheck.storage.models import Evaluation
        assert sorted(e.request["seeds"][0] for e in s.query(Evaluation)) == [1, 2, 3, 4]


def test_submissions_past_the_writer_queue_bound_get_503_at_once(server):
    """SQLite has one writer: a process's submissions take turns on a lock, and past
    max_waiting_writes waiting the next is answered 503 instead of queueing."""
    url, app = server
    db = app.state.db
    db.max_waiting_writes = 1
    bob = {"Authorization": f"Bearer {auth.create_token(app.state.db, 'bob')}"}
    results: list[int] = []
    db._writers.acquire()  # the one writer is busy
    try:
        waiting = threading.Thread(target=lambda: results.append(httpx.post(
            f"{url}/v1/evaluations", json={**TINY_SPEC, "seeds": [11]}, headers=bob,
            timeout=30).status_code))
        waiting.start()
        wait_for(lambda: db._waiting == 1, timeout=20)
        r = httpx.post(f"{url}/v1/evaluations", json={**TINY_SPEC, "seeds": [12]},
                       headers=bob, timeout=30)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "MICHECK_MAX_WAITING_WRITES" in r.json()["detail"]
    finally:
        db._writers.release()
    waiting.join(30)
    assert results == [202]
