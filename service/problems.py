"""Every error response is application/problem+json (RFC 9457), built here and only here.

Unexpected exceptions are logged with their traceback and answered with a bare 500:
a client never sees a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from micheck.errors import MicheckError, SpecError
from micheck.spec import describe_validation_error

log = logging.getLogger("micheck.api")
MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 406: "Not acceptable", 409: "Conflict",
          413: "Payload too large", 415: "Unsupported media type",
          422: "Invalid request", 429: "Too many requests", 500: "Internal server error",
          503: "Service unavailable"}


class ProblemError(Exception):
    def __init__(self, status: int, detail: str | None = None, *, title: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail or title or str(status))
        self.status, self.detail, self.headers, self.extra = status, detail, headers, extra
        self.title = title or TITLES.get(status, "Error")


def problem_response(request: Request, status: int, detail: str | None, *,
                     title: str | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title or TITLES.get(status, "Error"),
            "status": status, "detail": detail, "instance": request.url.path, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


class _Errors:
    """Adapts FastAPI's error list (locations start with 'body', 'query', ...) to
    micheck.spec.describe_validation_error, so the API names fields as the CLI does."""

    def __init__(self, errors: list[dict]):
        self._errors = [{**e, "loc": tuple(e.get("loc", ()))[1:]
                         if tuple(e.get("loc", ()))[:1] == ("body",) else tuple(e.get("loc", ()))}
                        for e in errors]

    def errors(self) -> list[dict]:
        return self._errors


def _fields(errors: list[dict]) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "body",
             "message": str(e.get("msg", "")).removeprefix("Value error, ")} for e in errors]


def install(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(request, exc.status, exc.detail, title=exc.title,
                                headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        wrapped = _Errors(list(exc.errors()))
        return problem_response(request, 422, describe_validation_error(wrapped),  # type: ignore[arg-type]
                                errors=_fields(wrapped.errors()))

    @app.exception_handler(ValidationError)
    async def _invalid_model(request: Request, exc: ValidationError) -> JSONResponse:
        return problem_response(request, 422, describe_validation_error(exc),
                                errors=_fields(exc.errors()))

    @app.exception_handler(SpecError)
    async def _spec(request: Request, exc: SpecError) -> JSONResponse:
        return problem_response(request, 422, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(request, exc.status_code, detail,
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(MicheckError)
    async def _micheck(request: Request, exc: MicheckError) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return problem_response(request, 500, str(exc))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "the server failed to handle this request; "
                                              "the error is in its log")
