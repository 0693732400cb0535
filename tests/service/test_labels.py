"""Labels on submissions and the listing filters (label, status, estimator, time), over
the HTTP API against real SQLite and Redis."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from micheck.service import auth
from micheck.service.app import create_app
from sqlalchemy import update

from micheck.contract import EvaluationRequest
from micheck.storage.models import Evaluation
from tests.service.support import TINY_SPEC


@pytest.fixture
def app(service_settings):
    return create_app(service_settings, run_reconciler=False, run_deliveries=False)


@pytest.fixture
def alice(app):
    return {"Authorization": f"Bearer {auth.create_token(app.state.db, 'alice')}"}


def _ids(client, alice, **params) -> list[str]:
    r = client.get("/v1/evaluations", params=params, headers=alice)
    assert r.status_code == 200, r.text
    return [v["id"] for v in r.json()["items"]]


def test_labels_do_not_change_the_dedup_key():
    plain = EvaluationRequest.model_validate(TINY_SPEC)
    tagged = EvaluationRequest.model_validate({**TINY_SPEC, "label": "x",
                                               "labels": {"git_sha": "abc", "branch": "main"},
                                               "webhook": {"url": "https://example.org/h"}})
    assert plain.spec_hash() == tagged.spec_hash()
    assert tagged.labels == {"git_sha": "abc", "branch": "main"} and tagged.label == "x"


@pytest.mark.parametrize("labels, field", [
    ({f"k{i}": "v" for i in range(17)}, "at most 16"),
    ({"bad key": "v"}, "label key"),
    ({"": "v"}, "label key"),
    ({"k": "v" * 201}, "longer than 200"),
    ({"k:v": "v"}, "label key"),
])
def test_bad_labels_are_422_naming_the_field(client, alice, labels, field):
    r = client.post("/v1/evaluations", json={**TINY_SPEC, "labels": labels}, headers=alice)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == "labels" and field in r.json()["detail"]


def test_listing_filters_by_label_status_estimator_and_time(client, alice, app):
    def submit(seed: int, labels: dict, estimator: str = "infonce") -> str:
        spec = {**TINY_SPEC, "seeds": [seed], "labels": labels, "label": f"run {seed}",
                "estimator": {**TINY_SPEC["estimator"], "name": estimator}}
        r = client.post("/v1/evaluations", json=spec, headers=alice)
        assert r.status_code == 202, r.text
        assert r.json()["request"]["labels"] == labels and r.json()["request"]["label"]
        return r.json()["id"]

    a = submit(1, {"branch": "main", "git_sha": "aaa"})
    b = submit(2, {"branch": "main", "git_sha": "bbb"})
    c = submit(3, {"branch": "dev", "git_sha": "aaa"}, estimator="nwj")
    # spread the creation times: a two days ago, b yesterday, c now
    now = datetime.now(timezone.utc)
    with app.state.db.session() as s:
        for eid, days in ((a, 2), (b, 1)):
            s.execute(update(Evaluation).where(Evaluation.id == eid)
                      .values(created_at=now - timedelta(days=days)))
    client.post(f"/v1/evaluations/{b}/cancel", headers=alice)

    assert _ids(client, alice, label="branch:main") == [b, a]
    assert _ids(client, alice, label=["branch:main", "git_sha:aaa"]) == [a]
    assert _ids(client, alice, label="git_sha:aaa") == [c, a]
    assert _ids(client, alice, label="branch:nope") == []
    assert _ids(client, alice, status="canceled") == [b]
    assert _ids(client, alice, estimator="NWJ") == [c]
    after = (now - timedelta(hours=36)).isoformat()
    assert _ids(client, alice, created_after=after) == [c, b]
    assert _ids(client, alice, created_after=after, created_before=(
        now - timedelta(hours=1)).isoformat()) == [b]
    # a naive time is read as UTC
    naive = (now - timedelta(hours=36)).replace(tzinfo=None).isoformat()
    assert _ids(client, alice, created_after=naive) == [c, b]
    # label filters page like the rest
    page = client.get("/v1/evaluations", params={"label": "branch:main", "limit": 1},
                      headers=alice).json()
    assert [v["id"] for v in page["items"]] == [b] and page["next_cursor"]
    rest = client.get("/v1/evaluations", params={"label": "branch:main", "limit": 1,
                                                 "cursor": page["next_cursor"]},
                      headers=alice).json()
    assert [v["id"] for v in rest["items"]] == [a] and rest["next_cursor"] is None


def test_bad_filters_are_422(client, alice):
    for params in ({"label": "no-colon"}, {"label": ":v"}, {"created_after": "yesterday"},
                   {"status": "done"}, {"label": [f"k{i}:v" for i in range(17)]}):
        r = client.get("/v1/evaluations", params=params, headers=alice)
        assert r.status_code == 422, params
        assert r.headers["content-type"] == "application/problem+json"
