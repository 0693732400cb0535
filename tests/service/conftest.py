import sys
from pathlib import Path

# `tests.service.support` must import under plain `pytest` too (python -m pytest adds the cwd)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from micheck.service.app import create_app  # noqa: E402

from tests.service.support import redis_server, service_settings  # noqa: E402, F401


@pytest.fixture
def app(service_settings):  # noqa: F811 (the fixture imported above)
    """The real app on this test's SQLite and Redis, without the background reconciler."""
    return create_app(service_settings, run_reconciler=False)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c
