"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from micheck.service import problems, shed, unstorable, webhooks
from micheck.service.metrics import Metrics
from micheck.service.routes import (
    catalog,
    client_dist,
    comparisons,
    deliveries,
    docs,
    evaluations,
    exports,
    health,
    league,
    league_page,
    pages,
    reports,
    share,
    workers,
)
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import micheck
from micheck.queue import JobQueue, reconcile
from micheck.settings import Settings
from micheck.storage.db import Database
from micheck.storage.models import Evaluation

log = logging.getLogger("micheck.api")


class _BodyLimit:
    """413 for a body over the limit, whether or not it announces its length."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._reject(scope, receive, send)
        if length is not None or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        # no declared length (chunked): read it here, up to the limit, then replay it
        chunks: list[Message] = []
        seen, more = 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            seen += len(msg.get("body", b""))
            if seen > self.limit:
                return await self._reject(scope, receive, send)
            chunks.append(msg)
            more = msg.get("more_body", False)

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        return await self.app(scope, replay, send)

    def _detail(self) -> str:
        return f"request body over {self.limit} bytes (MICHECK_MAX_PAYLOAD_BYTES)"

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import Request

        resp = problems.problem_response(Request(scope, receive), 413, self._detail())
        await resp(scope, receive, send)


class _Head:
    """HEAD answers wherever GET does (RFC 9110: the same headers, no body). The route
    runs as a GET; the body is dropped here (uvicorn would drop it too, it knows the
    request was a HEAD) and Content-Length stays the GET's."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headless(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headless)


class _Timing:
    """Request latency by method, route template and status, into the app's metrics. Plain
    ASGI: Starlette's BaseHTTPMiddleware costs a task group and two streams per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            route = scope.get("route")  # the router puts it in this very scope
            self.metrics.latency.labels(scope["method"], getattr(route, "path", "other"),
                                        str(status)).observe(time.perf_counter() - start)


def create_app(settings: Settings | None = None, *, run_reconciler: bool = True,
               run_deliveries: bool = True) -> FastAPI:
    """The API. Its lifespan runs the reconciler and the webhook delivery loop."""
    settings = settings or Settings()
    if settings.open_reads:
        log.warning("MICHECK_OPEN_READS is on: anyone who reaches this API reads every "
                    "owner's evaluations without a token. Share single reports with signed "
                    "links instead unless this network is closed.")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if run_reconciler:
            tasks.append(asyncio.create_task(_reconcile_forever(app)))
        if run_deliveries:
            tasks.append(asyncio.create_task(webhooks.deliver_forever(app.state.db,
                                                                      app.state.settings)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            app.state.db.dispose()

    app = FastAPI(title="micheck", version=micheck.__version__, lifespan=lifespan,
                  dependencies=[Depends(unstorable.refuse)],  # NUL, lone surrogates: 422
                  docs_url=None, redoc_url=None,  # served by routes.docs, with local assets
                  description="Self-consistency evaluation of mutual-information estimators "
                              "(Song & Ermon, ICLR 2020). Every error is application/problem+json. "
                              "The client installs from this service: "
                              "`pip install <this URL>/v1/client/micheck-<version>-py3-none-any.whl` "
                              "(GET /v1/client redirects there).")
    app.state.settings = settings
    app.state.db = Database(settings)
    app.state.queue = JobQueue(settings)
    app.state.metrics = Metrics()
    app.state.metrics.watch(lambda: _status_counts(app.state.db), app.state.queue.lengths)
    problems.install(app)
    for r in (evaluations.router, exports.router, comparisons.router, deliveries.router,
              catalog.router, workers.router, health.router, reports.router, pages.router,
              share.router, client_dist.router, league.router, league_page.router):
        app.include_router(r)
    docs.install(app)

    app.add_middleware(problems.CatchAll)  # innermost: the timing below sees its 500s
    app.add_middleware(_Timing, metrics=app.state.metrics)
    app.add_middleware(_BodyLimit, limit=settings.max_payload_bytes)
    app.add_middleware(_Head)
    # outermost: a shed request costs no parsing, routing or thread
    app.add_middleware(shed.Shed, max_inflight=settings.max_inflight,
                       max_per_token=settings.max_inflight_per_token,
                       retry_after_s=settings.shed_retry_after_s,
                       on_shed=lambda status: app.state.metrics.shed.labels(str(status)).inc())
    return app


def _status_counts(db: Database) -> dict[str, int]:
    with db.session() as s:
        rows = s.execute(select(Evaluation.status, func.count()).group_by(Evaluation.status))
        counts = {status: 0 for status in ("queued", "running", "succeeded", "failed", "canceled")}
        counts.update({status: n for status, n in rows})
        return counts


async def _reconcile_forever(app: FastAPI) -> None:
    """At start, then every reconcile_interval_s: off the event loop, errors logged."""
    settings: Settings = app.state.settings
    while True:
        try:
            done = await asyncio.to_thread(reconcile, app.state.db, app.state.queue)
            if any(done.values()):
                log.warning("reconciler: %s", done)
        except Exception as exc:
            log.warning("reconciler pass failed: %s", exc)
        await asyncio.sleep(settings.reconcile_interval_s)
