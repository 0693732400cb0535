# ruff: noqa: F811  (pytest fixtures imported from tests.service.support)
"""The RQ job glue (workers.job) against real SQLite, with a stand-in engine.

The real engine runs in tests/e2e; here the stand-in lets each failure mode be forced.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.service under plain pytest

from micheck.workers.job import execute

from micheck.contract import EvaluationRequest
from micheck.errors import DataNotFound
from micheck.storage import store
from micheck.storage.db import Database
from micheck.storage.models import Evaluation
from tests.service.support import (  # noqa: F401
    TINY_SPEC,
    fake_engine,
    redis_server,
    service_settings,
    wait_for,
)


@pytest.fixture
def db(service_settings):
    d = Database(service_settings)
    yield d
    d.dispose()


def _new(db) -> str:
    with db.session() as s:
        return store.create_evaluation(s, EvaluationRequest.model_validate(TINY_SPEC),
                                       owner="alice", queue="cpu", job_timeout_s=60).id


def _row(db, eid) -> Evaluation:
    with db.session() as s:
        return s.get(Evaluation, eid)


def test_success_writes_result_and_progress(db, service_settings):
    eid = _new(db)
    assert execute(eid, fake_engine(steps=4, delay=0.05), service_settings, db) == "succeeded"
    row = _row(db, eid)
    assert row.status == "succeeded" and row.attempts == 1 and row.steps_done == 4
    with db.session() as s:
        assert store.load_result(s, row).ratios[0].value == pytest.approx(0.95)
    # a duplicate delivery of the same job does nothing
    assert execute(eid, fake_engine(), service_settings, db) == "succeeded"
    assert _row(db, eid).attempts == 1


def test_torch_threads_setting_reaches_the_engine(db, service_settings):
    import torch

    seen = []
    engine = fake_engine(steps=1)

    def evaluate(request, **kw):
        seen.append(torch.get_num_threads())
        return engine(request, **kw)

    before = torch.get_num_threads()
    try:
        settings = service_settings.model_copy(update={"torch_threads": 1})
        assert execute(_new(db), evaluate, settings, db) == "succeeded"
    finally:
        torch.set_num_threads(before)
    assert seen == [1]


def test_bad_input_fails_without_retry(db, service_settings):
    eid = _new(db)
    engine = fake_engine(fail=DataNotFound("cifar10: no cifar-10-batches-py in /nowhere"))
    assert execute(eid, engine, service_settings, db) == "failed"
    row = _row(db, eid)
    assert (row.error_code, row.attempts) == ("data_not_found", 1)
    assert "/nowhere" in row.error_message


def test_crash_is_retried_then_fails(db, service_settings):
    eid = _new(db)
    boom = fake_engine(fail=RuntimeError("CUDA error: out of memory"))
    for attempt in range(1, service_settings.max_attempts):
        with pytest.raises(RuntimeError):  # re-raised so RQ's Retry runs it again
            execute(eid, boom, service_settings, db)
        row = _row(db, eid)
        assert (row.status, row.error_code, row.attempts) == ("queued", "crashed", attempt)
    assert execute(eid, boom, service_settings, db) == "failed"
    row = _row(db, eid)
    assert row.attempts == service_settings.max_attempts and "out of memory" in row.error_message
    # one more delivery (e.g. from the reconciler) cannot run it a fourth time
    assert execute(eid, fake_engine(), service_settings, db) == "failed"


def test_cancel_between_steps(db, service_settings):
    eid = _new(db)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "s", execute(eid, fake_engine(steps=400, delay=0.02), service_settings, db)))
    t.start()
    wait_for(lambda: _row(db, eid).steps_done > 0)
    with db.session() as s:
        assert store.request_cancel(s, eid) == "running"
    t.join(timeout=20)
    assert out["s"] == "canceled"
    row = _row(db, eid)
    assert row.status == "canceled" and row.result_attempt is None


def test_superseded_attempt_drops_its_results(db, service_settings):
    eid = _new(db)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "s", execute(eid, fake_engine(steps=100, delay=0.02), service_settings, db)))
    t.start()
    wait_for(lambda: _row(db, eid).status == "running")
    with db.session() as s:  # what the reconciler does to a lost attempt
        store.finish_attempt(s, eid, 1, status="queued", code="worker_lost", message="lost")
    t.join(timeout=20)
    assert out["s"] == "superseded"
    row = _row(db, eid)
    assert row.status == "queued" and row.result_attempt is None
