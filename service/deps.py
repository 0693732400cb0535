"""FastAPI dependencies: the app's settings, database and queue, and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from micheck.service import auth
from micheck.service.metrics import Metrics
from micheck.service.problems import ProblemError

from micheck.queue import JobQueue
from micheck.settings import Settings
from micheck.storage.db import Database
from micheck.storage.models import Evaluation

# the trivial dependencies are `async def`: a sync one costs a thread-pool hop per request
_bearer = HTTPBearer(auto_error=False, description="a token from `micheck token create`")
# Set by the sign-in form (routes/pages.py): HttpOnly, SameSite=Strict. Accepted for GET
# and HEAD only, so a page never needs the token in its URL and no write rides on a cookie.
SESSION_COOKIE = "micheck_session"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="micheck"'}


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _db(request: Request) -> Database:
    return request.app.state.db


async def _queue(request: Request) -> JobQueue:
    return request.app.state.queue


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(_settings)]
DBDep = Annotated[Database, Depends(_db)]
QueueDep = Annotated[JobQueue, Depends(_queue)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _cache_s(request: Request) -> float:
    return request.app.state.settings.token_cache_s


def _presented(request: Request, db: Database,
               creds: HTTPAuthorizationCredentials | None) -> auth.Caller | None:
    if creds is None:
        return None
    caller = auth.lookup(db, creds.credentials, _cache_s(request))
    if caller is None:
        raise ProblemError(401, "the bearer token is unknown or revoked", headers=_CHALLENGE)
    return caller


def cookie_caller(request: Request, db: Database) -> auth.Caller | None:
    """The caller the session cookie stands for, on a GET or HEAD; None otherwise (an
    unknown or revoked cookie counts as none: the page asks to sign in again)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or request.method not in ("GET", "HEAD"):
        return None
    return auth.lookup(db, token, _cache_s(request))


def page_caller(request: Request, db: Database) -> auth.Caller | None:
    """Who is viewing a page: a bearer token if one is sent (401 if it is bad), else the
    session cookie, else None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return _presented(request, db, HTTPAuthorizationCredentials(
            scheme="Bearer", credentials=token.strip()))
    return cookie_caller(request, db)


def page_viewer(request: Request, db: Database, settings: Settings) -> auth.Caller | None:
    """Who views a page (page_caller), anyone with open reads; None: send them to sign in."""
    caller = page_caller(request, db)
    if caller is None and settings.open_reads:
        return auth.Caller(None)
    return caller


# `async def`, run on the event loop: a found token is remembered (auth.lookup), so most
# requests query nothing here, and a sync dependency costs a thread-pool hop per request
async def reader(request: Request, db: DBDep, settings: SettingsDep,
                 creds: Credentials) -> auth.Caller:
    """Who reads: a bearer token, else the session cookie (GET), else anyone with open
    reads; 401 otherwise."""
    caller = _presented(request, db, creds) or cookie_caller(request, db)
    if caller is None:
        if not settings.open_reads:
            raise ProblemError(401, "this endpoint needs a bearer token", headers=_CHALLENGE)
        return auth.Caller(None)
    return caller


async def _writer(request: Request, db: DBDep, creds: Credentials) -> auth.Caller:
    caller = _presented(request, db, creds)
    if caller is None:
        raise ProblemError(401, "writes need a bearer token", headers=_CHALLENGE)
    return caller


Reader = Annotated[auth.Caller, Depends(reader)]
Writer = Annotated[auth.Caller, Depends(_writer)]


def visible_owner(caller: auth.Caller, settings: Settings) -> str | None:
    """The owner filter for reads: None = everyone's evaluations."""
    if caller.admin or settings.open_reads:
        return None
    return caller.name


def visible_evaluation(row: Evaluation | None, caller: auth.Caller,
                       settings: Settings) -> Evaluation:
    """The evaluation row if this caller may read it: 404 when it does not exist, 403 when
    it belongs to another token."""
    if row is None:
        raise ProblemError(404, "no such evaluation")
    owner = visible_owner(caller, settings)
    if owner is not None and row.owner != owner:
        raise ProblemError(403, "this evaluation belongs to another token")
    return row
