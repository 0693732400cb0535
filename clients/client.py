"""The HTTP client of the micheck service: contract models in, contract models out.

Imports neither torch nor FastAPI (a CI job installs only httpx, pydantic and pyyaml).

    from micheck import Client
    with Client("http://gpu-box:8000", token="mck_...") as c:
        view = c.submit(request)                 # EvaluationView (queued, or deduplicated)
        view = c.wait(view.id, timeout=3600)     # polls with backoff, 304s while unchanged
        result = c.results(view.id)              # EvaluationResult: estimates, ratios, verdicts

``AsyncClient`` has the same methods as coroutines (``list`` is an async iterator).
URL and token default to the environment variables MICHECK_URL and MICHECK_TOKEN; with
neither a URL argument nor MICHECK_URL, the client talks to http://127.0.0.1:8000 (a
service on this machine, as `micheck up` starts it). That default is for local use only:
`micheck submit` refuses to guess and asks for --url or MICHECK_URL.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx
from micheck.clients.errors import (
    ApiError,
    RateLimited,
    ServerError,
    Unreachable,
    WaitTimeout,
    error_from_response,
    retry_after,
)
from pydantic import BaseModel, TypeAdapter, ValidationError

import micheck
from micheck.contract import (
    Comparison,
    EvaluationPage,
    EvaluationRequest,
    EvaluationResult,
    EvaluationView,
    League,
    SuiteView,
    WorkerView,
)
from micheck.settings import ClientSettings
from micheck.spec import parse_spec

DEFAULT_URL = "http://127.0.0.1:8000"
_RETRY_STATUS = {502, 503, 504}  # a proxy or a restarting server: worth another try
M = TypeVar("M", bound=BaseModel)
# label filters: {"branch": "main"} or [("branch", "main"), ...]; all must match
Labels = dict[str, str] | Sequence[tuple[str, str]] | None
Progress = Callable[[EvaluationView], None]


def _env_url(base_url: str | None) -> str:
    return (base_url or ClientSettings().url or DEFAULT_URL).rstrip("/")


def _as_request(request: EvaluationRequest | dict[str, Any], force: bool | None
                ) -> EvaluationRequest:
    req = request if isinstance(request, EvaluationRequest) else parse_spec(request)
    if force is not None and force != req.force:
        req = req.model_copy(update={"force": force})
    return req


def _parse(model: type[M] | TypeAdapter, response: httpx.Response) -> Any:
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_json(response.content)
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ApiError(f"unexpected response from {response.request.url}: {exc.error_count()} "
                       f"field(s) do not match the contract (client and server versions "
                       f"differ?)", response.status_code) from None


class _Waiter:
    """The polling schedule of wait(): back to ``poll`` when the status changes, then 1.5x
    longer each time up to ``max_poll``; never sooner than the server's Retry-After, never
    past the deadline."""

    def __init__(self, eid: str, timeout: float, poll: float, max_poll: float):
        self.eid, self.poll, self.max_poll = eid, poll, max_poll
        self.deadline = time.monotonic() + timeout
        self.timeout, self.interval = timeout, poll
        self.last: EvaluationView | None = None

    def seen(self, view: EvaluationView, hint: float | None) -> float | None:
        """Record a poll; the delay before the next, or None when the evaluation ended."""
        if view.status.finished:
            return None
        # progress moves on every heartbeat, so only a new status resets the schedule: a
        # long run settles at one poll per max_poll seconds
        moved = self.last is None or view.status != self.last.status
        self.last = view
        self.interval = self.poll if moved else min(self.interval * 1.5, self.max_poll)
        return self.delay(hint)

    def failed(self, exc: ApiError) -> float:
        """A transient error while polling: back off, unless it is not transient."""
        if not isinstance(exc, (Unreachable, ServerError, RateLimited)):
            raise exc
        hint = exc.retry_after if isinstance(exc, RateLimited) else None
        self.interval = min(self.interval * 2, self.max_poll)
        return self.delay(hint)

    def delay(self, hint: float | None) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            state = f"still {self.last.status.value}" if self.last else "no answer"
            p = self.last.progress if self.last else None
            where = f", {p.steps_done}/{p.steps_total} steps" if p and p.steps_total else ""
            raise WaitTimeout(f"evaluation {self.eid}: {state}{where} after {self.timeout:g} s "
                              "(it goes on running; wait again or cancel it)", self.last)
        return min(max(self.interval, hint or 0.0), left)


class _Core:
    """What the sync and async clients share: headers, the ETag cache, error mapping."""

    def __init__(self, base_url: str | None, token: str | None, retries: int):
        self.base_url = _env_url(base_url)
        token = token if token is not None else ClientSettings().token or None
        self.headers = {"Accept": "application/json",
                        "User-Agent": f"micheck-client/{micheck.__version__}"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.retries = retries
        self._etags: OrderedDict[str, tuple[str, EvaluationView]] = OrderedDict()

    def _conditional(self, eid: str) -> dict[str, str]:
        cached = self._etags.get(eid)
        return {"If-None-Match": cached[0]} if cached else {}

    def _view_from(self, eid: str, response: httpx.Response) -> EvaluationView:
        if response.status_code == 304 and eid in self._etags:
            self._etags.move_to_end(eid)
            return self._etags[eid][1]
        view = _parse(EvaluationView, response)
        if etag := response.headers.get("etag"):
            self._etags[eid] = (etag, view)
            while len(self._etags) > 256:
                self._etags.popitem(last=False)
        return view

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def _unreachable(self, exc: httpx.HTTPError) -> Unreachable:
        return Unreachable(f"cannot reach the micheck service at {self.base_url}: "
                           f"{type(exc).__name__}: {exc or 'no answer'} (is it running? "
                           "set --url or MICHECK_URL)")

    @staticmethod
    def _submit_args(request: EvaluationRequest, key: str | None) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        return {"json": request.model_dump(mode="json"), "headers": headers}

    @staticmethod
    def _list_params(estimator: str | None, dataset: str | None, status: str | None,
                     page_size: int, cursor: str | None, labels: Labels = None,
                     created_after: datetime | None = None,
                     created_before: datetime | None = None) -> list[tuple[str, str]]:
        params = {"estimator": estimator, "dataset": dataset, "status": status,
                  "limit": page_size, "cursor": cursor,
                  "created_after": created_after.isoformat() if created_after else None,
                  "created_before": created_before.isoformat() if created_before else None}
        out = [(k, str(v)) for k, v in params.items() if v is not None]
        pairs = labels.items() if isinstance(labels, dict) else labels or []
        return out + [("label", f"{k}:{v}") for k, v in pairs]


_WORKERS = TypeAdapter(list[WorkerView])
_DICTS = TypeAdapter(list[dict[str, Any]])
_SUITES = TypeAdapter(list[SuiteView])


class Client(_Core):
    """Synchronous client. ``http`` lets tests pass an in-process client (e.g. FastAPI's
    TestClient); otherwise one httpx.Client is opened and reused."""

    def __init__(self, base_url: str | None = None, token: str | None = None, *,
                 timeout: float = 30.0, retries: int = 2, http: httpx.Client | None = None):
        super().__init__(base_url or (str(http.base_url) if http else None), token, retries)
        self._own = http is None
        self.http = http or httpx.Client(base_url=self.base_url, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self.http.close()

    def _request(self, method: str, path: str, *, retry: bool | None = None,
                 **kw: Any) -> httpx.Response:
        """One call; GETs (and keyed submits) are retried on no answer or a 502/503/504."""
        retry = method == "GET" if retry is None else retry
        headers = {**self.headers, **kw.pop("headers", {})}
        for attempt in range(self.retries + 1 if retry else 1):
            wait = 0.5 * 2 ** attempt
            try:
                response = self.http.request(method, path, headers=headers, **kw)
            except httpx.HTTPError as exc:
                if attempt >= self.retries or not retry:
                    raise self._unreachable(exc) from None
            else:
                if response.status_code not in _RETRY_STATUS or attempt >= self.retries \
                        or not retry:
                    return self._check(response)
                wait = min(retry_after(response) or wait, 10.0)
            time.sleep(wait)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def submit(self, request: EvaluationRequest | dict[str, Any],
               idempotency_key: str | None = None, *, force: bool | None = None
               ) -> EvaluationView:
        """Queue an evaluation. An identical one already done or in flight comes back
        instead (``deduplicated`` true) unless ``force``. A keyed submit is safe to retry."""
        req = _as_request(request, force)
        r = self._request("POST", "/v1/evaluations", retry=bool(idempotency_key),
                          **self._submit_args(req, idempotency_key))
        return _parse(EvaluationView, r)

    def get(self, evaluation_id: str) -> EvaluationView:
        """Status and progress; unchanged since the last call costs the server a 304."""
        r = self._request("GET", f"/v1/evaluations/{evaluation_id}",
                          headers=self._conditional(evaluation_id))
        return self._view_from(evaluation_id, r)

    def wait(self, evaluation_id: str, timeout: float = 3600.0, *, poll: float = 1.0,
             max_poll: float = 15.0, progress: Progress | None = None) -> EvaluationView:
        """Poll until the evaluation ends (any final status); raises WaitTimeout."""
        w = _Waiter(evaluation_id, timeout, poll, max_poll)
        while True:
            try:
                r = self._request("GET", f"/v1/evaluations/{evaluation_id}",
                                  headers=self._conditional(evaluation_id))
                view = self._view_from(evaluation_id, r)
                if progress is not None:
                    progress(view)
                delay = w.seen(view, retry_after(r))
                if delay is None:
                    return view
            except ApiError as exc:
                delay = w.failed(exc)
            time.sleep(delay)

    def results(self, evaluation_id: str) -> EvaluationResult:
        """Estimates, ratios with CIs and verdicts, provenance. Conflict until succeeded."""
        return _parse(EvaluationResult,
                      self._request("GET", f"/v1/evaluations/{evaluation_id}/results"))

    def list(self, estimator: str | None = None, dataset: str | None = None,
             status: str | None = None, *, labels: Labels = None,
             created_after: datetime | None = None, created_before: datetime | None = None,
             page_size: int = 50) -> Iterator[EvaluationView]:
        """Every matching evaluation, newest first, fetching pages as it goes. ``labels``
        must all match; the created range is [created_after, created_before)."""
        cursor: str | None = None
        while True:
            r = self._request("GET", "/v1/evaluations", params=self._list_params(
                estimator, dataset, status, page_size, cursor, labels, created_after,
                created_before))
            page = _parse(EvaluationPage, r)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def comparison(self, evaluation_id: str, baseline: str | None = None) -> Comparison:
        """Every point against the baseline's (default: the one the request named): the
        difference with its interval and a regression verdict per point and overall."""
        params = {"baseline": baseline} if baseline else {}
        return _parse(Comparison, self._request(
            "GET", f"/v1/evaluations/{evaluation_id}/comparison", params=params))

    def cancel(self, evaluation_id: str) -> EvaluationView:
        return _parse(EvaluationView, self._request(
            "POST", f"/v1/evaluations/{evaluation_id}/cancel"))

    def more_seeds(self, evaluation_id: str, add: int) -> EvaluationView:
        """Add `add` seeds to a succeeded evaluation: a new evaluation (``extends`` = this
        one) that trains them for the rows still undecided and pools them with the stored
        estimates. Not retried: a second call after a lost answer gets 409 naming the one
        the first made."""
        return _parse(EvaluationView, self._request(
            "POST", f"/v1/evaluations/{evaluation_id}/seeds", json={"add": add}))

    def estimators(self) -> list[dict[str, Any]]:
        return _parse(_DICTS, self._request("GET", "/v1/estimators"))

    def datasets(self) -> list[dict[str, Any]]:
        return _parse(_DICTS, self._request("GET", "/v1/datasets"))

    def workers(self) -> list[WorkerView]:
        return _parse(_WORKERS, self._request("GET", "/v1/workers"))

    def suites(self) -> list[SuiteView]:
        """Every suite version the server has stored or registered."""
        return _parse(_SUITES, self._request("GET", "/v1/suites"))

    def suite(self, name: str, version: int | None = None) -> SuiteView:
        """One suite version as the server stored it (stored on this first use)."""
        params = {} if version is None else {"version": version}
        return _parse(SuiteView, self._request("GET", f"/v1/suites/{name}", params=params))

    def league(self, suite: str, version: int | None = None) -> League:
        """One row per (estimator config, suite point), from stored results."""
        params: dict[str, Any] = {"suite": suite}
        if version is not None:
            params["version"] = version
        return _parse(League, self._request("GET", "/v1/league", params=params))

    def report_html(self, evaluation_id: str, *, embed: bool = True) -> str:
        """The server's HTML report; ``embed`` inlines the plots so the file stands alone."""
        return self._request("GET", f"/v1/evaluations/{evaluation_id}/report",
                             params={"embed": str(embed).lower()},
                             headers={"Accept": "text/html"}).text

    def compare_html(self, evaluation_ids: list[str], *, embed: bool = True) -> str:
        return self._request("GET", "/v1/compare", params={
            "ids": ",".join(evaluation_ids), "embed": str(embed).lower()},
            headers={"Accept": "text/html"}).text

    def plot(self, evaluation_id: str, name: str, fmt: str = "png") -> bytes:
        return self._request("GET", f"/v1/evaluations/{evaluation_id}/plots/{name}.{fmt}",
                             headers={"Accept": "*/*"}).content


class AsyncClient(_Core):
    """The asyncio twin of Client (``http`` may be an httpx.AsyncClient on an ASGI app)."""

    def __init__(self, base_url: str | None = None, token: str | None = None, *,
                 timeout: float = 30.0, retries: int = 2, http: httpx.AsyncClient | None = None):
        super().__init__(base_url or (str(http.base_url) if http else None), token, retries)
        self._own = http is None
        self.http = http or httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own:
            await self.http.aclose()

    async def _request(self, method: str, path: str, *, retry: bool | None = None,
                       **kw: Any) -> httpx.Response:
        retry = method == "GET" if retry is None else retry
        headers = {**self.headers, **kw.pop("headers", {})}
        for attempt in range(self.retries + 1 if retry else 1):
            wait = 0.5 * 2 ** attempt
            try:
                response = await self.http.request(method, path, headers=headers, **kw)
            except httpx.HTTPError as exc:
                if attempt >= self.retries or not retry:
                    raise self._unreachable(exc) from None
            else:
                if response.status_code not in _RETRY_STATUS or attempt >= self.retries \
                        or not retry:
                    return self._check(response)
                wait = min(retry_after(response) or wait, 10.0)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def submit(self, request: EvaluationRequest | dict[str, Any],
                     idempotency_key: str | None = None, *, force: bool | None = None
                     ) -> EvaluationView:
        req = _as_request(request, force)
        r = await self._request("POST", "/v1/evaluations", retry=bool(idempotency_key),
                                **self._submit_args(req, idempotency_key))
        return _parse(EvaluationView, r)

    async def get(self, evaluation_id: str) -> EvaluationView:
        r = await self._request("GET", f"/v1/evaluations/{evaluation_id}",
                                headers=self._conditional(evaluation_id))
        return self._view_from(evaluation_id, r)

    async def wait(self, evaluation_id: str, timeout: float = 3600.0, *, poll: float = 1.0,
                   max_poll: float = 15.0, progress: Progress | None = None) -> EvaluationView:
        w = _Waiter(evaluation_id, timeout, poll, max_poll)
        while True:
            try:
                r = await self._request("GET", f"/v1/evaluations/{evaluation_id}",
                                        headers=self._conditional(evaluation_id))
                view = self._view_from(evaluation_id, r)
                if progress is not None:
                    progress(view)
                delay = w.seen(view, retry_after(r))
                if delay is None:
                    return view
            except ApiError as exc:
                delay = w.failed(exc)
            await asyncio.sleep(delay)

    async def results(self, evaluation_id: str) -> EvaluationResult:
        return _parse(EvaluationResult,
                      await self._request("GET", f"/v1/evaluations/{evaluation_id}/results"))

    async def list(self, estimator: str | None = None, dataset: str | None = None,
                   status: str | None = None, *, labels: Labels = None,
                   created_after: datetime | None = None,
                   created_before: datetime | None = None, page_size: int = 50
                   ) -> AsyncIterator[EvaluationView]:
        cursor: str | None = None
        while True:
            r = await self._request("GET", "/v1/evaluations", params=self._list_params(
                estimator, dataset, status, page_size, cursor, labels, created_after,
                created_before))
            page = _parse(EvaluationPage, r)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def cancel(self, evaluation_id: str) -> EvaluationView:
        return _parse(EvaluationView, await self._request(
            "POST", f"/v1/evaluations/{evaluation_id}/cancel"))

    async def more_seeds(self, evaluation_id: str, add: int) -> EvaluationView:
        return _parse(EvaluationView, await self._request(
            "POST", f"/v1/evaluations/{evaluation_id}/seeds", json={"add": add}))

    async def estimators(self) -> list[dict[str, Any]]:
        return _parse(_DICTS, await self._request("GET", "/v1/estimators"))

    async def datasets(self) -> list[dict[str, Any]]:
        return _parse(_DICTS, await self._request("GET", "/v1/datasets"))

    async def workers(self) -> list[WorkerView]:
        return _parse(_WORKERS, await self._request("GET", "/v1/workers"))
