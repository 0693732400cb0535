"""Shed load instead of collapsing: a bound on the requests in flight in this API process.

Past ``max_inflight`` requests in flight, a new one is answered at once with 503 and
Retry-After; past ``max_inflight_per_token`` of one bearer token's, with 429. Both answers
are built here, before routing, parsing or a thread: a shed request costs the event loop
a few tens of microseconds, so the process keeps answering the requests it admitted in
time, and goodput stays near its peak however far the offered load goes beyond it.
Without the bound every request is admitted, queues for the thread pool and the
database, and at twice the saturating rate all of them answer late (issue 19 measured
p99 of 10-90 s, and throughput falling as load rose).

/healthz and /readyz are never shed: a health check must tell an overloaded process
from a dead one. The counts are per process (one event loop: no lock needed); `micheck
up` runs several API processes (``--api-workers``), each with its own bound.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

EXEMPT = frozenset({"/healthz", "/readyz"})
DRAIN_BYTES = 1 << 20  # a shed request's body is read (and dropped) up to this much


class Shed:
    def __init__(self, app: ASGIApp, max_inflight: int, max_per_token: int,
                 retry_after_s: int, on_shed=None):
        self.app, self.max, self.max_token = app, max_inflight, max_per_token
        self.retry_after = str(retry_after_s).encode()
        self.inflight = 0
        self.by_token: dict[bytes, int] = {}
        self.on_shed = on_shed  # called with the status of each shed request (metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            return await self.app(scope, receive, send)
        token = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = value
                break
        if self.inflight >= self.max:
            return await self._shed(scope, receive, send, 503,
                                    f"over {self.max} requests in flight in this API process "
                                    "(MICHECK_MAX_INFLIGHT): retry shortly")
        if token and self.by_token.get(token, 0) >= self.max_token:
            return await self._shed(scope, receive, send, 429,
                                    f"over {self.max_token} requests of this token in flight "
                                    "(MICHECK_MAX_INFLIGHT_PER_TOKEN): retry shortly")
        self.inflight += 1
        if token:
            self.by_token[token] = self.by_token.get(token, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
            if token:
                left = self.by_token[token] - 1
                if left:
                    self.by_token[token] = left
                else:
                    del self.by_token[token]

    async def _shed(self, scope: Scope, receive: Receive, send: Send, status: int,
                    detail: str) -> None:
        if self.on_shed is not None:
            self.on_shed(status)
        seen, more = 0, scope["method"] not in ("GET", "HEAD")
        while more and seen <= DRAIN_BYTES:  # keep-alive: the body must be off the socket
            msg: Message = await receive()
            if msg["type"] != "http.request":
                break
            seen += len(msg.get("body", b""))
            more = msg.get("more_body", False)
        title = "Service unavailable" if status == 503 else "Too many requests"
        body = json.dumps({"type": "about:blank", "title": title, "status": status,
                           "detail": detail, "instance": scope["path"]}).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()), (b"retry-after", self.retry_after),
            (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})
