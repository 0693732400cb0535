"""The published OpenAPI (service/routes/docs.py) is one a standard generator can use: a
client generated from /openapi.json by openapi-python-client submits and reads an
evaluation against the real app (real SQLite and Redis, the real job glue), and parses
errors into Problem objects. /docs and /redoc load nothing from outside the service."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from micheck.service import auth

from micheck import estimators
from tests.clients.support import run_queued
from tests.service.support import TINY_SPEC, fake_engine

CONFIG = """\
post_hooks: []
package_name_override: micheck_api
content_type_overrides:
  image/png: application/octet-stream
  image/svg+xml: application/octet-stream
"""


def test_every_route_names_its_operation(app):
    """An explicit operationId on every route, the unpublished pages too: a generated
    client's method names never change with a path."""
    from fastapi.routing import APIRoute

    def api_routes(routes):  # FastAPI keeps an included router as one entry
        for r in routes:
            if isinstance(r, APIRoute):
                yield r
            elif hasattr(r, "original_router"):
                yield from api_routes(r.original_router.routes)

    routes = list(api_routes(app.routes))
    assert len(routes) > 30 and not [r.path for r in routes if not r.operation_id]


def test_operations_problems_and_enums(client):
    schema = client.get("/openapi.json").json()
    listed = [op for path in schema["paths"].values() for op in path.values()]
    ops = {op["operationId"]: op for op in listed}
    assert len(ops) == len(listed)  # every operation has its own id
    assert {"submit_evaluation", "get_evaluation", "list_evaluations", "cancel_evaluation",
            "get_results", "get_report", "get_shared_report", "get_client", "get_results_csv",
            "get_comparison", "list_deliveries"} <= set(ops)
    for name, op in ops.items():
        errors = {c: r for c, r in op["responses"].items() if c[0] in "45"}
        assert "500" in errors, name
        for code, response in errors.items():
            assert response["content"] == {"application/problem+json": {
                "schema": {"$ref": "#/components/schemas/Problem"}}}, (name, code)
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance"} <= set(problem["properties"])
    names = schema["components"]["schemas"]["EstimatorSpec"]["properties"]["name"]["enum"]
    assert set(estimators.names()) <= set(names) and "cpc" in names  # aliases are accepted too
    dataset = schema["components"]["schemas"]["DatasetSpec"]["properties"]["name"]["enum"]
    assert "mnist" in dataset and "cifar10" in dataset
    kinds = schema["components"]["schemas"]["TestSpec"]["properties"]["kind"]["enum"]
    assert "additivity" in kinds
    (estimator,) = [p for p in ops["list_evaluations"]["parameters"] if p["name"] == "estimator"]
    assert estimator["schema"]["anyOf"][0]["enum"] == names
    assert "HTTPValidationError" not in schema["components"]["schemas"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_local_assets(client, page):
    html = client.get(page)
    assert html.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', html.text) + re.findall(
        r"url: '([^']+)'", html.text)
    assert urls and not [u for u in urls if "://" in u or u.startswith("//")], urls
    assets = [u for u in urls if u.startswith("/docs/assets/")]
    assert assets
    for url in assets:
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) > 1000, url
    assert "fonts.googleapis" not in html.text and "cdn" not in html.text.lower()
    assert client.get("/docs/assets/secrets.txt").status_code == 404


def test_generated_client_round_trips_an_evaluation(client, app, tmp_path, monkeypatch):
    pytest.importorskip("openapi_python_client")
    (tmp_path / "openapi.json").write_text(json.dumps(client.get("/openapi.json").json()))
    (tmp_path / "config.yaml").write_text(CONFIG)
    run = subprocess.run([sys.executable, "-m", "openapi_python_client", "generate", "--path",
                          str(tmp_path / "openapi.json"), "--config",
                          str(tmp_path / "config.yaml"), "--meta", "none", "--output-path",
                          str(tmp_path / "micheck_api")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARNING" not in run.stdout + run.stderr  # every operation was understood
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in [m for m in sys.modules if m == "micheck_api" or m.startswith("micheck_api.")]:
        monkeypatch.delitem(sys.modules, mod)
    api = importlib.import_module("micheck_api")
    ev = importlib.import_module("micheck_api.api.evaluations")
    for op in ("submit_evaluation", "get_evaluation", "get_results", "list_evaluations",
               "cancel_evaluation"):
        importlib.import_module(f"micheck_api.api.evaluations.{op}")
    models = importlib.import_module("micheck_api.models")

    token = auth.create_token(app.state.db, "gen")
    gen = api.AuthenticatedClient(base_url="http://testserver", token=token)
    gen.set_httpx_client(TestClient(app, headers={"Authorization": f"Bearer {token}"}))

    body = models.EvaluationRequest.from_dict(TINY_SPEC)
    assert body.estimator.name == models.EstimatorSpecName.INFONCE
    sent = ev.submit_evaluation.sync_detailed(client=gen, body=body, idempotency_key="gen-1")
    assert sent.status_code == 202
    view = sent.parsed
    assert isinstance(view, models.EvaluationView)
    assert view.status == models.EvaluationStatus.QUEUED and view.report_link

    run_queued(app, fake_engine(steps=3))
    done = ev.get_evaluation.sync(evaluation_id=view.id, client=gen)
    assert done.status == models.EvaluationStatus.SUCCEEDED and done.id == view.id
    result = ev.get_results.sync(evaluation_id=view.id, client=gen)
    assert isinstance(result, models.EvaluationResult)
    assert result.provenance.seeds == [0, 1, 2] and result.request.dataset.name.value == "gaussian"
    (ratio,) = result.ratios
    assert ratio.test == "ground_truth" and ratio.value == pytest.approx(0.95)
    page = ev.list_evaluations.sync(client=gen, estimator=models.ListEvaluationsEstimatorType0
                                    .INFONCE)
    assert [v.id for v in page.items] == [view.id]

    # errors arrive as Problem objects, not None
    missing = ev.get_evaluation.sync(evaluation_id="nope", client=gen)
    assert isinstance(missing, models.Problem) and missing.status == 404
    finished = ev.cancel_evaluation.sync(evaluation_id=view.id, client=gen)
    assert isinstance(finished, models.Problem) and finished.status == 409
    assert "already succeeded" in finished.detail
