"""No input, valid or not, makes the API answer 5xx, on SQLite and on PostgreSQL.

A property-based run of the published OpenAPI schema (schemathesis, bounded examples),
plus every case a hostile user found (issue 19), each checked to answer 4xx, store
nothing and leave the keep-alive connection usable. Real Redis behind it."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from micheck.service.app import create_app

from micheck.settings import Settings
from micheck.storage.models import Evaluation, LabelRow, WebhookRow
from tests.service.support import BACKENDS, TINY_SPEC, database_url

schemathesis = pytest.importorskip("schemathesis")
from micheck.service import auth  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402


@pytest.fixture(params=BACKENDS)
def app(request, service_settings: Settings):
    """The real app on a fresh SQLite file or PostgreSQL database."""
    with database_url(request.param, service_settings.var_dir) as url:
        application = create_app(service_settings.model_copy(update={"database_url": url}),
                                 run_reconciler=False, run_deliveries=False)
        yield application
        application.state.db.dispose()


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture
def bearer(app):
    return {"Authorization": f"Bearer {auth.create_token(app.state.db, 'fuzz', admin=True)}"}


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_server_errors(case, bearer):
    response = case.call(headers=bearer)
    if case.path == "/readyz" and response.status_code == 503:
        # /readyz's documented answer while a part is down (this app has no worker)
        assert response.json()["down"] == ["workers"]
        return
    case.validate_response(response, checks=[not_a_server_error])


PUBLIC = "http://93.184.215.14"  # a public address: checked, never sent to (no delivery loop)
BODIES = {  # field -> what the request adds to TINY_SPEC
    "labels.k": {"labels": {"k": "\udfff"}},
    "label": {"label": "release\x00"},
    "labels.k2": {"labels": {"k2": "a\x00b"}},
    "webhook.url": {"webhook": {"url": f"{PUBLIC}/\x00"}},
    "webhook.secret": {"webhook": {"url": f"{PUBLIC}/", "secret": "12345678\x00"}},
    "label ": {"label": "\ud800 lone high"},
}
QUERIES = [
    "/v1/evaluations?created_before=9999-12-31T23:59:59-14:00",
    "/v1/evaluations?created_after=0001-01-01T00:00:00%2B00:01",
    "/?created_before=9999-12-31T23:59:59-14:00",
    "/?created_after=0001-01-01T00:00:00%2B00:01",
    "/?limit=" + "9" * 4301,
    "/v1/evaluations?limit=" + "9" * 4301,
    "/v1/evaluations?estimator=%00",
    "/v1/evaluations?label=k:%00",
    "/v1/evaluations/%00",
    "/v1/evaluations?cursor=" + "WyI5OTk5LTEyLTMxVDIzOjU5OjU5LTE0OjAwIiwgImEiXQ",
]


def _nothing_stored(app) -> None:
    with app.state.db.session() as s:
        for model in (Evaluation, LabelRow, WebhookRow):
            assert s.query(model).count() == 0, model.__tablename__


@pytest.mark.parametrize("field", list(BODIES))
def test_unstorable_text_is_refused_at_the_door_naming_the_field(app, bearer, field):
    """NUL and lone surrogates: 422 naming the field, on both stores, nothing stored."""
    with TestClient(app) as c:
        body = json.dumps({**TINY_SPEC, **BODIES[field]})  # json escapes them: \\u0000
        r = c.post("/v1/evaluations", content=body,
                   headers={**bearer, "Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == field.strip()
        assert field.strip() in r.json()["detail"]
        assert c.get("/healthz").status_code == 200  # the same connection, still usable
    _nothing_stored(app)


@pytest.mark.parametrize("path", QUERIES)
def test_listed_queries_answer_4xx(app, bearer, path):
    with TestClient(app) as c:
        r = c.get(path, headers=bearer)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:300])
        assert c.get("/healthz").status_code == 200
