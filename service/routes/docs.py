"""The published API description and its two viewers, usable without internet.

- ``/openapi.json``: FastAPI's schema, finished for client generators: every 4xx/5xx
  response is ``application/problem+json`` with the ``Problem`` schema (RFC 9457), every
  operation may answer 500, and estimator and data-set names are enums from the registry
  (micheck.estimators, micheck.datasets).
- ``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from this service:
  the assets ship in the ``fastapi-offline`` package (MIT; Swagger UI: Apache-2.0, ReDoc:
  MIT), a dependency of the ``service`` extra. No page reaches a CDN.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse
from micheck.service.problems import TITLES, ProblemError

from micheck import datasets, estimators
from micheck.contract import Problem

router = APIRouter(include_in_schema=False)
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
BODIES = {"text": {"type": "string"}, "image": {"type": "string", "format": "binary"},
          "application": {"type": "string", "format": "binary"}}  # non-JSON bodies
ENUMS = {"estimator": sorted([*estimators.names(), *estimators.aliases()]),
         "dataset": sorted(datasets.names())}


def _assets() -> Path:
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise ProblemError(501, "the API docs' assets need the fastapi-offline package "
                                "(pip install 'micheck[service]')", title="Not implemented")
    return Path(spec.origin).parent / "static"


@router.get("/docs/assets/{name}", operation_id="docs_asset")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise ProblemError(404, f"no asset {name!r}")
    return FileResponse(_assets() / name, media_type=ASSETS[name],
                        headers={"Cache-Control": "public, max-age=86400"})


@router.get("/docs", operation_id="docs_swagger", response_class=HTMLResponse)
def swagger() -> HTMLResponse:
    _assets()
    return get_swagger_ui_html(openapi_url="/openapi.json", title="micheck API",
                               swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                               swagger_css_url="/docs/assets/swagger-ui.css",
                               swagger_favicon_url="/docs/assets/favicon.png")


@router.get("/redoc", operation_id="docs_redoc", response_class=HTMLResponse)
def redoc() -> HTMLResponse:
    _assets()
    return get_redoc_html(openapi_url="/openapi.json", title="micheck API",
                          redoc_js_url="/docs/assets/redoc.standalone.js",
                          redoc_favicon_url="/docs/assets/favicon.png", with_google_fonts=False)


def _problem_response(code: str, old: dict[str, Any]) -> dict[str, Any]:
    description = old.get("description") or TITLES.get(int(code), "Error")
    if description in ("Validation Error", "Successful Response"):
        description = TITLES.get(int(code), "Error")
    return {"description": description,
            "content": {"application/problem+json": {"schema": PROBLEM_REF}}}


def finish_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Problem responses, enums from the registry, a schema for every non-JSON body (a
    string; binary for images); drops FastAPI's unused error models."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for path in schema.get("paths", {}).values():
        for op in path.values():
            responses = op.setdefault("responses", {})
            responses.setdefault("500", {})
            for response in responses.values():
                for media, content in response.get("content", {}).items():
                    if not content.get("schema") and not media.endswith("json"):
                        content["schema"] = BODIES.get(media.split("/")[0], BODIES["text"])
            for code in list(responses):
                if code[0] in "45":
                    responses[code] = _problem_response(code, responses[code])
            for param in op.get("parameters", []):
                if param.get("in") == "query" and param.get("name") in ENUMS:
                    param["schema"] = {"anyOf": [{"type": "string",
                                                  "enum": ENUMS[param["name"]]},
                                                 {"type": "null"}],
                                       "title": param["name"].title()}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    """Serve the docs pages and publish the finished schema (built once, then cached)."""
    app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish_schema(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
