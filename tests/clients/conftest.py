"""Fixtures of the client tests (helpers in tests/clients/support.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from micheck.contract import EvaluationResult
from tests.clients.support import free_port, load_result, with_reports
from tests.service.support import redis_server, service_settings  # noqa: F401


@pytest.fixture(scope="session")
def mnist_result() -> EvaluationResult:
    return load_result("mnist")


@pytest.fixture(scope="session")
def gaussian_result() -> EvaluationResult:
    return load_result("gaussian")


@pytest.fixture(scope="session")
def gaussian_pass_result() -> EvaluationResult:
    return load_result("gaussian_pass")


@pytest.fixture
def app(service_settings):  # noqa: F811
    from micheck.service.app import create_app

    return with_reports(create_app(service_settings, run_reconciler=False))


@pytest.fixture
def tokens(app) -> dict[str, str]:
    from micheck.service import auth

    return {n: auth.create_token(app.state.db, n, admin=n == "root")
            for n in ("alice", "bob", "root")}


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app served by uvicorn on a loopback port (a real server, real sockets)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
