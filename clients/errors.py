"""Typed errors of the HTTP client, each carrying the server's problem message.

    MicheckError                        (micheck.errors)
    ├── ApiError                        the service answered with a problem, or not at all
    │   ├── Unreachable                 no answer: connection refused, DNS, timeout
    │   ├── Unauthorized        401     token missing, unknown or revoked
    │   ├── Forbidden           403     the evaluation belongs to another token
    │   ├── NotFound            404
    │   ├── Conflict            409     results not ready, Idempotency-Key reused, already finished
    │   ├── RateLimited         429     .retry_after (seconds) from the Retry-After header
    │   ├── ValidationFailed    413/422 .field, .fields; also a SpecError, so the CLI exits 2
    │   └── ServerError         5xx
    └── WaitTimeout                     wait() ran out of time; .view holds the last status seen

``error_from_response`` turns a problem+json response into the matching class.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from micheck.errors import ApiError, MicheckError, SpecError

__all__ = ["ApiError", "Conflict", "Forbidden", "NotFound", "RateLimited", "ServerError",
           "Unauthorized", "Unreachable", "ValidationFailed", "WaitTimeout",
           "error_from_response"]


class Unreachable(ApiError):
    """The service did not answer (connection refused, name not resolved, timed out)."""


class Unauthorized(ApiError):
    pass


class Forbidden(ApiError):
    pass


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class RateLimited(ApiError):
    def __init__(self, message: str, status: int | None = None, problem: dict | None = None,
                 retry_after: float | None = None):
        super().__init__(message, status, problem)
        self.retry_after = retry_after


_FIELD = re.compile(r"^([A-Za-z_][\w]*(?:\.[\w]+)*): ")


class ValidationFailed(ApiError, SpecError):
    """The server rejected the request's content; ``field`` names the first bad field."""

    def __init__(self, message: str, status: int | None = None, problem: dict | None = None):
        super().__init__(message, status, problem)
        errors = (problem or {}).get("errors") or []
        self.fields: list[str] = [str(e.get("field")) for e in errors
                                  if isinstance(e, dict) and e.get("field")]
        if not self.fields:  # a limit check's detail reads "estimator.train.steps: 20 exceeds"
            named = _FIELD.match(str((problem or {}).get("detail") or ""))
            self.fields = [named.group(1)] if named else []
        self.field: str | None = self.fields[0] if self.fields else None


class ServerError(ApiError):
    pass


class WaitTimeout(MicheckError):
    """wait() gave up; the evaluation goes on running on the server."""

    def __init__(self, message: str, view: Any = None):
        super().__init__(message)
        self.view = view


_BY_STATUS: dict[int, type[ApiError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound,
                                         409: Conflict, 413: ValidationFailed,
                                         422: ValidationFailed, 429: RateLimited}


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the delta-seconds form; an HTTP date is ignored)."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_from_response(response: httpx.Response) -> ApiError:
    """The typed error for a non-2xx response; the message is the problem's detail."""
    try:
        problem = response.json()
        if not isinstance(problem, dict):
            problem = {}
    except ValueError:
        problem = {}
    status = response.status_code
    detail = problem.get("detail") or problem.get("title") or response.reason_phrase or "error"
    where = f"{response.request.method} {response.request.url.path}"
    message = f"{status} {detail} ({where})"
    if status == 429:
        return RateLimited(message, status, problem, retry_after=retry_after(response))
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(message, status, problem)
