"""Labels and webhook rows in SQL (SQLite, and PostgreSQL when MICHECK_TEST_POSTGRES_URL
is set): every terminal transition writes its deliveries, claims lease them, tries are
logged."""

from __future__ import annotations

import json
from datetime import timedelta

from micheck.storage import deliveries, store
from micheck.storage.models import utcnow
from tests.service.support import fake_engine
from tests.service.test_store import _request, db  # noqa: F401 (the backend fixture)

HOOK = {"url": "https://hooks.example.org/micheck?key=k1", "secret": "0123456789"}


def _new(db, seed: int, **over) -> str:  # noqa: F811
    with db.session() as s:
        return store.create_evaluation(s, _request(seeds=[seed], webhook=HOOK, **over),
                                       owner="alice", queue="cpu", job_timeout_s=600).id


def _events(db, eid: str) -> list[str]:  # noqa: F811
    with db.session() as s:
        return [d.event for d in deliveries.list_deliveries(s, eid)]


def test_every_terminal_transition_writes_a_delivery(db):  # noqa: F811
    ok, failed, canceled, lost, retried = (_new(db, i) for i in range(5))
    result = fake_engine(steps=1)(_request(seeds=[0, 1, 2], max_seeds=3))
    with db.session() as s:
        assert store.to_view(s.get(store.Evaluation, ok)).request.webhook is None  # not shown
        for eid in (ok, failed, retried):
            store.claim(s, eid, "w", 3)
        assert store.finish_success(s, ok, 1, result)
        assert store.finish_attempt(s, failed, 1, status=store.FAILED, code="x", message="y")
        assert store.finish_attempt(s, retried, 1, status=store.Q, code=None, message=None)
        assert store.request_cancel(s, canceled) == store.CANCELED
        assert store.fail_queued(s, lost, "lost", "never ran")
        # a transition that does not happen writes nothing
        assert not store.fail_queued(s, ok, "lost", "again")
    assert _events(db, ok) == ["evaluation.succeeded"]
    assert _events(db, failed) == ["evaluation.failed"]
    assert _events(db, canceled) == ["evaluation.canceled"]
    assert _events(db, lost) == ["evaluation.failed"]
    assert _events(db, retried) == []  # back in the queue: not terminal
    with db.session() as s:
        (d,) = deliveries.list_deliveries(s, ok)
        assert d.url == "https://hooks.example.org/micheck" and d.state == "pending"
        due = deliveries.claim_due(s, lease=timedelta(minutes=1))
    body = json.loads(next(x.payload for x in due if x.id == d.id))
    assert body["evaluation"]["verdicts"] == {"pass": 1, "fail": 0, "inconclusive": 0}
    assert body["evaluation"]["passed"] is True and body["delivery_id"] == d.id


def test_claims_lease_and_tries_are_logged(db):  # noqa: F811
    eid = _new(db, 1)
    with db.session() as s:
        store.request_cancel(s, eid)
    with db.session() as s:
        (first,) = deliveries.claim_due(s, lease=timedelta(minutes=1))
    with db.session() as s:  # leased: nobody else gets it meanwhile
        assert deliveries.claim_due(s, lease=timedelta(minutes=1)) == []
    with db.session() as s:
        state = deliveries.record_try(s, first.id, delivered=False, status_code=503,
                                      error="HTTP 503", duration_ms=12,
                                      next_attempt_at=utcnow() - timedelta(seconds=1))
        assert state == "pending"
    with db.session() as s:
        (again,) = deliveries.claim_due(s, lease=timedelta(minutes=1))
        assert again.id == first.id and again.attempts == 1
        assert deliveries.record_try(s, again.id, delivered=False, status_code=None,
                                     error="timeout", duration_ms=5000,
                                     next_attempt_at=None) == "gave_up"
    with db.session() as s:
        (d,) = deliveries.list_deliveries(s, eid)
        assert d.state == "gave_up" and d.attempts == 2 and d.next_attempt_at is None
        assert [(a.status_code, a.error) for a in d.log] == [(503, "HTTP 503"),
                                                             (None, "timeout")]
        assert deliveries.claim_due(s, lease=timedelta(minutes=1)) == []


def test_labels_are_rows_that_filter(db):  # noqa: F811
    a = _new(db, 1, labels={"branch": "main", "sha": "x"})
    b = _new(db, 2, labels={"branch": "main", "sha": "y"})
    _new(db, 3)
    with db.session() as s:
        def ids(**kw) -> list[str]:
            return [r.id for r in store.list_evaluations(s, owner="alice", **kw)[0]]

        assert ids(labels=[("branch", "main")]) == [b, a]
        assert ids(labels=[("branch", "main"), ("sha", "x")]) == [a]
        assert ids(labels=[("sha", "main")]) == []
        assert deliveries.labels_of(s, a) == {"branch": "main", "sha": "x"}
