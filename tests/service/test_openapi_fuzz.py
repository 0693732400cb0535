"""Property-based run of the published OpenAPI schema (schemathesis): no input, valid or
not, makes the API answer 5xx. Real Redis and SQLite behind it; bounded examples."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")
from micheck.service import auth  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402


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
