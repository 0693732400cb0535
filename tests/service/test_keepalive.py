"""The service never resets a keep-alive connection after an error (#14): one HTTP/1.1
connection to a real uvicorn server gets a 422, 404, 413 (declared and chunked), a
503 (a full database) and a 500 (an unexpected failure), each followed by a request on
the same connection that is answered."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from micheck.service import auth

from tests.service.support import TINY_SPEC
from tests.service.test_storage_full import cap_database


@pytest.fixture
def server(app) -> Iterator[int]:
    """The app under uvicorn on a loopback port; yields the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical",
                                        lifespan="off", timeout_keep_alive=30))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    thread.join(10)


class OneConnection:
    """An http.client connection that must stay the same socket: http.client would open
    a new one silently after a close, so each answer checks the socket is still its own."""

    def __init__(self, port: int, token: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.connect()
        self.sock = self.conn.sock
        self.auth = {"Authorization": f"Bearer {token}"}

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, *, chunked: bool = False
                ) -> tuple[int, dict[str, str], bytes]:
        self.conn.request(method, path, body=iter([body]) if chunked and body else body,
                          headers={**self.auth, **(headers or {})}, encode_chunked=chunked)
        resp = self.conn.getresponse()
        data = resp.read()
        assert self.conn.sock is self.sock, f"{method} {path}: the server closed the connection"
        assert resp.getheader("connection", "").lower() != "close"
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def still_answers(self) -> None:
        status, _, body = self.request("GET", "/v1/evaluations?limit=1")
        assert status == 200, body

    def close(self) -> None:
        self.conn.close()


def _post(c: OneConnection, spec: dict, **kw) -> tuple[int, dict[str, str], bytes]:
    return c.request("POST", "/v1/evaluations", json.dumps(spec).encode(),
                     {"Content-Type": "application/json"}, **kw)


def test_errors_leave_the_keep_alive_connection_open(app, server):
    c = OneConnection(server, auth.create_token(app.state.db, "alice"))
    try:
        status, headers, _ = _post(c, {**TINY_SPEC, "seeds": [float("1e400")]})  # 1e400 = inf
        assert status == 422 and headers["content-type"] == "application/problem+json"
        c.still_answers()
        assert c.request("GET", "/v1/evaluations/" + "0" * 32)[0] == 404
        c.still_answers()
        big = {**TINY_SPEC, "label": "x" * (app.state.settings.max_payload_bytes + 10)}
        assert _post(c, big)[0] == 413  # declared length: refused before reading
        c.still_answers()
        assert _post(c, big, chunked=True)[0] == 413  # no length: refused once over
        c.still_answers()
        free = cap_database(app.state.db.engine, extra_pages=1)
        for i in range(200):
            status, headers, body = _post(c, {**TINY_SPEC, "seeds": [i, i + 1, i + 2],
                                              "labels": {f"k{j}": "v" * 150 for j in range(8)}})
            if status != 202:
                break
        assert status == 503 and headers["retry-after"], body
        c.still_answers()
        free()
        # an unexpected failure: the labels table is gone (a damaged database), so a
        # label filter fails inside SQLite
        with app.state.db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE evaluation_labels")
        status, headers, body = c.request("GET", "/v1/evaluations?label=k:v")
        assert status == 500 and headers["content-type"] == "application/problem+json", body
        assert b"Traceback" not in body and b"evaluation_labels" not in body
        c.still_answers()
        assert _post(c, {**TINY_SPEC, "seeds": [900, 901, 902]})[0] == 202
    finally:
        c.close()
