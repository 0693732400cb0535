"""The storage layer against real SQLite, and against PostgreSQL when
MICHECK_TEST_POSTGRES_URL is set (required when MICHECK_REQUIRE_ALL=1)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from micheck.contract import EvaluationRequest
from micheck.settings import Settings
from micheck.storage import store
from micheck.storage.db import Database
from micheck.storage.models import Base, Evaluation, utcnow
from tests.service.support import BACKENDS, TINY_SPEC, database_url, fake_engine


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    with database_url(request.param, tmp_path) as url:
        database = Database(Settings(var_dir=tmp_path, database_url=url))
        yield database
        database.dispose()


def _request(**over) -> EvaluationRequest:
    return EvaluationRequest.model_validate({**TINY_SPEC, **over})


def _new(db, **over) -> str:
    with db.session() as s:
        return store.create_evaluation(s, _request(**over), owner="alice", queue="cpu",
                                       job_timeout_s=600).id


def test_migration_matches_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_lifecycle_writes_results_once_with_provenance(db):
    eid = _new(db)
    with db.session() as s:
        c = store.claim(s, eid, "w1", max_attempts=3)
    assert c is not None and c.attempt == 1
    with db.session() as s:  # a second claim of a running evaluation is refused
        assert store.claim(s, eid, "w2", max_attempts=3) is None
    result = fake_engine()(c.request, device="cpu")
    with db.session() as s:
        assert store.finish_success(s, eid, 1, result)
    with db.session() as s:  # written once: a late duplicate finish is refused
        assert not store.finish_success(s, eid, 1, result)
    with db.session() as s:
        row = s.get(Evaluation, eid)
        assert row.status == "succeeded" and row.result_attempt == 1 and row.passed
        back = store.load_result(s, row)
    assert back.estimates == result.estimates and back.ratios == result.ratios
    assert back.provenance.device == "cpu" and back.provenance.seeds == [0, 1, 2]
    assert back.provenance.definition_versions == {"engine": "1"}


def test_superseded_attempt_cannot_write(db):
    eid = _new(db)
    with db.session() as s:
        store.claim(s, eid, "w1", 3)
    with db.session() as s:  # the reconciler gives attempt 1 up
        assert store.finish_attempt(s, eid, 1, status="queued", code="worker_lost", message="x")
    with db.session() as s:
        assert store.claim(s, eid, "w2", 3).attempt == 2
    res = fake_engine()(_request(), device="cpu")
    with db.session() as s:
        assert not store.finish_success(s, eid, 1, res)
        assert store.heartbeat(s, eid, 1) is None
        assert store.heartbeat(s, eid, 2) is False
    with db.session() as s:
        assert store.finish_success(s, eid, 2, res)
        assert s.get(Evaluation, eid).result_attempt == 2


def test_dedup_cancel_and_pagination(db):
    ids = [_new(db, seeds=[i]) for i in range(5)]
    with db.session() as s:
        assert store.find_duplicate(s, _request(seeds=[3]).spec_hash(), "alice").id == ids[3]
        assert store.find_duplicate(s, _request(seeds=[3]).spec_hash(), "bob") is None
        assert store.request_cancel(s, ids[0]) == "canceled"
        assert store.count_queued(s, "alice") == 4
    seen, cursor = [], None
    while True:
        with db.session() as s:
            rows, cursor = store.list_evaluations(s, owner="alice", limit=2, cursor=cursor)
        seen += [r.id for r in rows]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    with db.session() as s:
        rows, _ = store.list_evaluations(s, owner=None, status="canceled")
        assert [r.id for r in rows] == [ids[0]]
        with pytest.raises(ValueError):
            store.list_evaluations(s, owner=None, cursor="garbage!")


def test_stale_running_found(db):
    eid = _new(db)
    with db.session() as s:
        store.claim(s, eid, "w1", 3)
    with db.session() as s:
        s.get(Evaluation, eid).heartbeat_at = utcnow() - timedelta(minutes=5)
    with db.session() as s:
        assert [r.id for r in store.stale_running(s, timedelta(seconds=60))] == [eid]


def test_mi_gradient_rows_round_trip_with_their_rho(db):
    from micheck.workers.engine import evaluate

    spec = {"estimator": {"name": "mige", "params": {"samples": 60}},
            "dataset": {"name": "gaussian", "dim": 2},
            "tests": [{"kind": "mi_gradient", "rho": [0.0, 0.5]}], "seeds": [0, 1, 2],
            "max_seeds": 3}
    eid = _new(db, **spec)
    with db.session() as s:
        c = store.claim(s, eid, "w1", max_attempts=3)
    result = evaluate(c.request, device="cpu")
    with db.session() as s:
        assert store.finish_success(s, eid, 1, result)
    with db.session() as s:
        back = store.load_result(s, s.get(Evaluation, eid))
    assert back.ratios == result.ratios and {r.rho for r in back.ratios} == {0.0, 0.5}
    fields = ("seed", "rho", "gradient", "true_gradient", "true_mi")
    assert [[getattr(e, f) for f in fields] for e in back.estimates] == \
        [[getattr(e, f) for f in fields] for e in result.estimates]
    assert all(e.gradient is not None and e.true_gradient is not None for e in back.estimates)
    # MIGE estimates gradients only: no MI, which the store reads back as NaN (no finite value)
    assert all(e.mi_test is None for e in result.estimates)
    assert all(e.mi_test is None or math.isnan(e.mi_test) for e in back.estimates)


@pytest.mark.parametrize("lock", ["lock_owner", "admission_limits"])
def test_lock_owner_makes_count_then_insert_atomic(db, lock):
    """60 concurrent admissions with a limit of 50 on each backend: lock_owner (and
    admission_limits, which the submission route uses: the lock and the token's limits in
    one UPDATE ... RETURNING) serialises one owner's count and insert (PostgreSQL: the
    token row's lock; SQLite: the write lock), so exactly 50 get in."""
    from concurrent.futures import ThreadPoolExecutor

    from micheck.service.auth import create_token, set_limits

    create_token(db, "alice")
    set_limits(db, "alice", max_queued=50)  # the default below is 10: the row's value counts
    defaults = store.TokenLimits(10, 1e6, 1e6)

    def admit(seed: int) -> bool:
        with db.session() as s:
            if lock == "lock_owner":
                store.lock_owner(s, "alice")
                queued, _ = store.owner_load(s, "alice")
                limit = store.token_limits(s, "alice", defaults).max_queued
            else:
                limit = store.admission_limits(s, "alice", defaults).max_queued
                queued, _, in_rq = store.admission_load(s, "alice", "cpu")
                assert in_rq == 0  # none dispatched
            if queued >= limit:
                return False
            store.create_evaluation(s, _request(seeds=[seed]), owner="alice", queue="cpu",
                                    job_timeout_s=600)
            return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        admitted = list(pool.map(admit, range(60)))
    assert admitted.count(True) == 50
    with db.session() as s:
        assert store.count_queued(s, "alice") == 50


def test_release_worker_hands_back_a_dead_workers_attempts(db):
    from micheck.storage.models import WorkerRow

    retry, spent, cancel, other = (_new(db, seeds=[i]) for i in range(4))
    with db.session() as s:
        for eid in (retry, spent, cancel):
            store.claim(s, eid, "w1", 3)
        store.claim(s, other, "w2", 3)
        s.get(Evaluation, spent).attempts = 3
        store.request_cancel(s, cancel)
        for name, age in (("w1", 0), ("w2", 0), ("w3", 120)):
            s.add(WorkerRow(name=name, device="cpu", queue="cpu", host="h", pid=1,
                            heartbeat_at=utcnow() - timedelta(seconds=age)))
    with db.session() as s:
        assert [w.name for w in store.live_workers(s, timedelta(seconds=60))] == ["w1", "w2"]
        done = store.release_worker(s, "w1", 3, "worker w1 died")
    assert done == {"retried": [retry], "failed": [spent], "canceled": [cancel]}
    with db.session() as s:
        rows = {e: s.get(Evaluation, e) for e in (retry, spent, cancel, other)}
        assert [rows[e].status for e in (retry, spent, cancel, other)] == [
            "queued", "failed", "canceled", "running"]
        assert rows[retry].attempts == 1 and rows[retry].error_code == "worker_lost"
        assert "gave up after 3" in rows[spent].error_message
        assert store.count_live_workers(s, timedelta(seconds=60)) == 1  # w1's row is gone
        # a late write from the released attempt cannot land
        assert store.heartbeat(s, retry, 1) is None


def test_every_interval_method_fits_its_column():
    """PostgreSQL refuses a string longer than its column (SQLite stores it): each method
    the verdicts write fits the ratios table's ci_method column."""
    from micheck.storage.models import RatioRow
    from micheck.verdicts import INTERVAL_METHOD, INTERVAL_METHODS

    width = RatioRow.__table__.c.ci_method.type.length
    assert all(len(m) <= width for m in [INTERVAL_METHOD, *INTERVAL_METHODS.values()])
