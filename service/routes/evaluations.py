"""Submit, inspect, list and cancel evaluations."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from micheck.service.deps import (
    DBDep,
    MetricsDep,
    QueueDep,
    Reader,
    SettingsDep,
    Writer,
    visible_evaluation,
    visible_owner,
)
from micheck.service.limits import check_limits, default_limits
from micheck.service.plugins import LivePlugins
from micheck.service.plugins import require as require_estimator
from micheck.service.problems import ProblemError
from micheck.service.routes import exports
from micheck.service.routes.share import with_link
from micheck.service.webhooks import TargetRefused, check_target
from sqlalchemy.exc import IntegrityError

from micheck import budget
from micheck.contract import (
    MAX_LABELS,
    EvaluationPage,
    EvaluationRequest,
    EvaluationResult,
    EvaluationStatus,
    EvaluationView,
    Problem,
)
from micheck.definitions import canonical_estimator
from micheck.queue import dispatch, job_timeout
from micheck.settings import Settings
from micheck.storage import deliveries, store
from micheck.storage.models import Evaluation

log = logging.getLogger("micheck.api")
router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])
PROBLEMS = {s: {"model": Problem, "content": {"application/problem+json": {}}}
            for s in (401, 403, 404, 409, 413, 422, 429)}


class _KeyMoved(Exception):
    """A concurrent retry moved the Idempotency-Key to its new evaluation first."""


def _view_response(view: EvaluationView, status: int, request: Request,
                   settings: Settings) -> JSONResponse:
    view = with_link(view, request, settings)
    return JSONResponse(view.model_dump(mode="json"), status_code=status,
                        headers={"Location": f"/v1/evaluations/{view.id}"})


@router.post("", operation_id="submit_evaluation", status_code=202,
             response_model=EvaluationView,
             responses={200: {"model": EvaluationView,
                              "description": "an identical evaluation (deduplicated) or an "
                                             "Idempotency-Key replay"}, **PROBLEMS})
def create(plugins: LivePlugins, body: EvaluationRequest, request: Request, db: DBDep,
           jq: QueueDep, settings: SettingsDep, caller: Writer, metrics: MetricsDep,
           background: BackgroundTasks,
           idempotency_key: Annotated[str | None, Header(max_length=200)] = None
           ) -> JSONResponse:
    """Queue an evaluation (202). An identical finished or in-flight evaluation is
    returned instead (200, deduplicated=true) unless the request sets force. A repeated
    Idempotency-Key returns its evaluation (200) while it is queued, running or succeeded;
    after a cancel or a failure it starts a new one (a re-run CI job gets a fresh try).

    Everything is checked before anything is stored: the contract (strict, bounded,
    finite), this server's limits, the estimated compute (micheck.budget) per request and
    per token, and the token's queue, the latter two atomically (admission_limits locks
    the owner). The response body is built inside the transaction, so nothing fails after
    the commit. A plug-in estimator is accepted while a live worker reports it (422 otherwise)."""
    require_estimator(body.estimator.name, plugins)
    cost = budget.estimate(body)
    check_limits(body, settings)  # the compute budget: below, with the token's limits
    if body.webhook is not None:
        try:
            check_target(body.webhook.url, settings.webhooks_allow_private)
        except TargetRefused as exc:
            raise ProblemError(422, f"webhook.url: {exc}",
                               errors=[{"field": "webhook.url", "message": str(exc)}]) from None
    body_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    owner = caller.name or ""
    try:
        with db.session() as s:
            stale: str | None = None  # the key's canceled or failed evaluation
            if idempotency_key:
                prior = store.get_idempotent(s, owner, idempotency_key)
                if prior is not None:
                    if prior.body_sha256 != body_hash:
                        raise ProblemError(409, "this Idempotency-Key was used with a "
                                                "different request body")
                    row = s.get(Evaluation, prior.evaluation_id)
                    if store.replayable(row):
                        metrics.submissions.labels("idempotent_replay").inc()
                        return _view_response(store.to_view(row), 200,  # type: ignore[arg-type]
                                              request, settings)
                    stale = prior.evaluation_id  # a CI retry: run it again

            def remember(evaluation_id: str) -> None:
                if not idempotency_key:
                    return
                if stale is None:
                    store.put_idempotent(s, owner, idempotency_key, body_hash, evaluation_id)
                elif not store.repoint_idempotent(s, owner, idempotency_key, stale,
                                                  evaluation_id):
                    raise _KeyMoved

            if not body.force:
                dup = store.find_duplicate(s, body.spec_hash(), visible_owner(caller, settings))
                if dup is not None:
                    if body.webhook is not None:  # notified when (or since) it ends
                        deliveries.add_webhook(s, dup.id, body.webhook.url,
                                               body.webhook.secret)
                    remember(dup.id)
                    metrics.submissions.labels("deduplicated").inc()
                    return _view_response(store.to_view(dup, deduplicated=True), 200,
                                          request, settings)
            # the owner's lock, held to the commit: the checks below are atomic
            limits = store.admission_limits(s, owner, default_limits(settings))
            check_limits(body, settings, cost, limits)
            queue = settings.queue_for(body.dataset.is_image)
            queued, gmac, in_rq = store.admission_load(s, caller.name, queue)
            if queued >= limits.max_queued:
                raise ProblemError(429, f"token {caller.name!r} already has "
                                        f"{limits.max_queued} queued evaluations "
                                        "(MICHECK_MAX_QUEUED_PER_TOKEN)",
                                   headers={"Retry-After": "60"})
            if gmac + cost.gmac > limits.max_token_gmac:
                raise ProblemError(429, f"token {caller.name!r} has {gmac:g} GMAC queued or "
                                        f"running; this request's {cost.gmac:g} GMAC would "
                                        f"exceed its budget of {limits.max_token_gmac:g} GMAC "
                                        "(MICHECK_MAX_TOKEN_GMAC)",
                                   headers={"Retry-After": "60"})
            row = store.create_evaluation(s, body, owner=caller.name, queue=queue,
                                          job_timeout_s=job_timeout(body, settings, queue, cost),
                                          cost=cost)
            remember(row.id)
            # built here, inside the transaction: a failure rolls back instead of a 5xx
            # after the commit
            response = _view_response(store.to_view(row), 202, request, settings)
    except (IntegrityError, _KeyMoved):
        # a concurrent request with the same Idempotency-Key won the insert: replay it
        with db.session() as s:
            prior = store.get_idempotent(s, owner, idempotency_key or "")
            if prior is None or prior.body_sha256 != body_hash:
                raise ProblemError(409, "conflicting concurrent request") from None
            return _view_response(store.to_view(s.get(Evaluation, prior.evaluation_id)), 200,
                                  request, settings)
    db.storage.note_written()  # space was found: /readyz stops reporting storage full
    # the row is committed: the caller needs no more. After the response is sent, put the
    # owner's next evaluation on RQ (fair scheduling: one per owner and queue at a time),
    # unless the owner's turns on that queue were all taken when it was admitted: then the
    # end of one of those jobs dispatches it (queue.after_job), or else the reconciler
    if in_rq < settings.dispatch_per_token:
        background.add_task(_dispatch, db, jq, caller.name)
    metrics.submissions.labels("created").inc()
    return response


def _dispatch(db, jq, owner: str | None) -> None:
    try:
        dispatch(db, jq, owner)
    except Exception as exc:  # the row is durable; the reconciler enqueues it later
        log.warning("evaluation stored but not enqueued (%s); the reconciler will retry", exc)


@router.get("", operation_id="list_evaluations", response_model=EvaluationPage,
            responses=PROBLEMS)
def list_(request: Request, db: DBDep, settings: SettingsDep, caller: Reader,
          estimator: str | None = None, dataset: str | None = None,
          status: EvaluationStatus | None = None,
          limit: Annotated[int, Query(ge=1, le=200)] = 50,
          cursor: Annotated[str | None, Query(max_length=500)] = None,
          label: Annotated[list[str], Query(max_length=300, description=(
              "key:value; repeat for several (all must match)"))] = [],  # noqa: B006
          created_after: datetime | None = None,
          created_before: datetime | None = None) -> EvaluationPage:
    """Newest first; pass next_cursor back as cursor for the next page. Filters combine:
    label (key:value, repeatable), status, estimator, dataset, created_after (inclusive)
    and created_before (exclusive); times are ISO 8601, UTC when they name no zone."""
    with db.session() as s:
        try:
            rows, nxt = store.list_evaluations(
                s, owner=visible_owner(caller, settings),
                estimator=canonical_estimator(estimator.lower()) if estimator else None,
                dataset=dataset, status=status.value if status else None, limit=limit,
                cursor=cursor, labels=parse_label_filters(label),
                created_after=_aware(created_after), created_before=_aware(created_before))
        except ValueError as exc:
            raise ProblemError(422, f"cursor: {exc}") from None
        return EvaluationPage(items=[with_link(store.to_view(r), request, settings)
                                     for r in rows], next_cursor=nxt)


def parse_label_filters(items: list[str]) -> list[tuple[str, str]]:
    """``key:value`` strings as pairs; 422 for one without a colon, or too many."""
    if len(items) > MAX_LABELS:
        raise ProblemError(422, f"label: at most {MAX_LABELS} label filters")
    out = []
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ProblemError(422, f"label: {item[:80]!r} is not key:value",
                               errors=[{"field": "label", "message": "key:value"}])
        out.append((key, value))
    return out


def _aware(t: datetime | None) -> datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=timezone.utc)


@router.get("/{evaluation_id}", operation_id="get_evaluation",
            response_model=EvaluationView,
            responses={304: {"description": "unchanged since the ETag sent"}, **PROBLEMS})
def get(evaluation_id: str, request: Request, db: DBDep, settings: SettingsDep,
        caller: Reader) -> Response:
    """Status and progress. Poll with If-None-Match: an unchanged evaluation answers 304."""
    with db.session() as s:
        row = visible_evaluation(s.get(Evaluation, evaluation_id), caller, settings)
        body = with_link(store.to_view(row), request, settings).model_dump_json().encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    inm = request.headers.get("if-none-match", "")
    if etag in {t.strip().removeprefix("W/") for t in inm.split(",")} or inm.strip() == "*":
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


@router.get("/{evaluation_id}/results", operation_id="get_results",
            response_model=EvaluationResult,
            responses={200: {"content": {"text/csv": {}}}, **PROBLEMS})
def results(evaluation_id: str, request: Request, db: DBDep, settings: SettingsDep,
            caller: Reader) -> EvaluationResult | Response:
    """Every estimate and ratio with its CI and verdict, and their provenance
    (``Accept: text/csv``: the rows of results.csv instead)."""
    if exports.wants_csv(request.headers.get("accept", "")):
        return exports.csv_response(db, evaluation_id, caller, settings)
    with db.session() as s:
        row = visible_evaluation(s.get(Evaluation, evaluation_id), caller, settings)
        if row.status != store.OK:
            why = f": {row.error_code}: {row.error_message}" if row.error_code else ""
            raise ProblemError(409, f"evaluation is {row.status}{why}", status_value=row.status)
        return store.load_result(s, row)


@router.post("/{evaluation_id}/cancel", operation_id="cancel_evaluation",
             response_model=EvaluationView, responses=PROBLEMS)
def cancel(evaluation_id: str, request: Request, db: DBDep, jq: QueueDep,
           settings: SettingsDep, caller: Writer) -> EvaluationView:
    """Queued: canceled at once. Running: the worker stops between training steps."""
    with db.session() as s:
        row = s.get(Evaluation, evaluation_id)
        if row is None:
            raise ProblemError(404, "no such evaluation")
        if not caller.admin and row.owner != caller.name:
            raise ProblemError(403, "only the token that submitted it (or an admin) may cancel")
        if EvaluationStatus(row.status).finished:
            raise ProblemError(409, f"evaluation already {row.status}")
        job_id = row.rq_job_id
        now = store.request_cancel(s, evaluation_id)
    if now == store.CANCELED:
        jq.cancel(job_id)  # a running job is not touched: the worker polls the flag
        with contextlib.suppress(Exception):  # its turn passes to the owner's next
            dispatch(db, jq, row.owner)
    with db.session() as s:
        view = store.to_view(s.get(Evaluation, evaluation_id, populate_existing=True))
    return with_link(view, request, settings)
