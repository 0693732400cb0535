"""Every error response is application/problem+json (RFC 9457), built here and only here.

Unexpected exceptions are logged with their traceback and answered with a bare 500:
a client never sees a stack trace. Storage out of space (a full disk or database) is a
503 with Retry-After, remembered for /readyz. Every error is answered inside the app
(`CatchAll`), never re-raised to the server, so the connection stays open for the next
request on it (uvicorn closes a keep-alive connection when the app raises after its
response).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from micheck.errors import MicheckError, SpecError
from micheck.spec import describe_validation_error
from micheck.storage.db import WritersBusy, storage_full

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

    @app.exception_handler(WritersBusy)
    async def _busy(request: Request, exc: WritersBusy) -> JSONResponse:
        retry = request.app.state.settings.shed_retry_after_s
        request.app.state.metrics.shed.labels("503").inc()
        return problem_response(request, 503, f"{exc} submissions already wait for the "
                                "database in this API process (MICHECK_MAX_WAITING_WRITES): "
                                "retry shortly", headers={"Retry-After": str(retry)})

    # DBAPIError and OSError: a full disk is a 503; anything else of theirs a 500
    app.add_exception_handler(DBAPIError, _storage_or_crash)  # type: ignore[arg-type]
    app.add_exception_handler(OSError, _storage_or_crash)  # type: ignore[arg-type]
    # last resort (an error in a middleware outside CatchAll): Starlette answers it, then
    # re-raises it to the server
    app.add_exception_handler(Exception, _crash)


def _crash(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "the server failed to handle this request; "
                                          "the error is in its log")


def _storage_or_crash(request: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After when the storage is out of space (the transaction was rolled
    back: nothing of the request is stored), remembered for /readyz; else a 500."""
    reason = storage_full(exc)
    if reason is None:
        return _crash(request, exc)
    state = request.app.state
    state.db.storage.note_full(reason)
    retry = state.settings.storage_full_retry_s
    log.error("%s %s: storage full: %s", request.method, request.url.path, exc)
    return problem_response(request, 503, f"storage full ({reason}); nothing was stored, "
                                          f"retry in {retry} s", headers={"Retry-After": str(retry)})


class CatchAll:
    """Answers an exception that escaped the routes' handlers with the 500 (or 503) above,
    and does not re-raise it: the connection stays usable. Once a response has started
    there is nothing to answer with, and the exception goes on to the server."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:
                raise
            request = Request(scope, receive)
            response = (_storage_or_crash(request, exc) if isinstance(exc, DBAPIError | OSError)
                        else _crash(request, exc))
            await response(scope, receive, send)
