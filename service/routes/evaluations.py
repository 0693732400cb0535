"""Submit, inspect, list and cancel evaluations."""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from micheck.service.auth import Caller
from micheck.service.deps import (
    DBDep,
    MetricsDep,
    QueueDep,
    Reader,
    SettingsDep,
    Writer,
    visible_owner,
)
from micheck.service.limits import check_limits
from micheck.service.problems import ProblemError
from sqlalchemy.exc import IntegrityError

from micheck.contract import (
    EvaluationPage,
    EvaluationRequest,
    EvaluationResult,
    EvaluationStatus,
    EvaluationView,
    Problem,
)
from micheck.definitions import canonical_estimator
from micheck.queue import job_timeout, submit
from micheck.storage import store
from micheck.storage.models import Evaluation

log = logging.getLogger("micheck.api")
router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])
PROBLEMS = {s: {"model": Problem, "content": {"application/problem+json": {}}}
            for s in (401, 403, 404, 409, 413, 422, 429)}


def _view_response(view: EvaluationView, status: int) -> JSONResponse:
    return JSONResponse(view.model_dump(mode="json"), status_code=status,
                        headers={"Location": f"/v1/evaluations/{view.id}"})


def _visible(row: Evaluation | None, caller: Caller, settings) -> Evaluation:
    if row is None:
        raise ProblemError(404, "no such evaluation")
    owner = visible_owner(caller, settings)
    if owner is not None and row.owner != owner:
        raise ProblemError(403, "this evaluation belongs to another token")
    return row


@router.post("", status_code=202, response_model=EvaluationView,
             responses={200: {"model": EvaluationView,
                              "description": "an identical evaluation (deduplicated) or an "
                                             "Idempotency-Key replay"}, **PROBLEMS})
def create(body: EvaluationRequest, db: DBDep, jq: QueueDep, settings: SettingsDep,
           caller: Writer, metrics: MetricsDep, background: BackgroundTasks,
           idempotency_key: Annotated[str | None, Header(max_length=200)] = None
           ) -> JSONResponse:
    """Queue an evaluation (202). An identical finished or in-flight evaluation is
    returned instead (200, deduplicated=true) unless the request sets force."""
    check_limits(body, settings)
    body_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    owner = caller.name or ""
    try:
        with db.session() as s:
            if idempotency_key:
                prior = store.get_idempotent(s, owner, idempotency_key)
                if prior is not None:
                    if prior.body_sha256 != body_hash:
                        raise ProblemError(409, "this Idempotency-Key was used with a "
                                                "different request body")
                    metrics.submissions.labels("idempotent_replay").inc()
                    return _view_response(store.to_view(s.get(Evaluation, prior.evaluation_id)),
                                          200)
            if not body.force:
                dup = store.find_duplicate(s, body.spec_hash(), visible_owner(caller, settings))
                if dup is not None:
                    if idempotency_key:
                        store.put_idempotent(s, owner, idempotency_key, body_hash, dup.id)
                    metrics.submissions.labels("deduplicated").inc()
                    return _view_response(store.to_view(dup, deduplicated=True), 200)
            if store.count_queued(s, caller.name) >= settings.max_queued_per_token:
                raise ProblemError(429, f"token {caller.name!r} already has "
                                        f"{settings.max_queued_per_token} queued evaluations "
                                        "(MICHECK_MAX_QUEUED_PER_TOKEN)",
                                   headers={"Retry-After": "60"})
            queue = settings.queue_for(body.dataset.is_image)
            row = store.create_evaluation(s, body, owner=caller.name, queue=queue,
                                          job_timeout_s=job_timeout(body, settings, queue))
            if idempotency_key:
                store.put_idempotent(s, owner, idempotency_key, body_hash, row.id)
            view = store.to_view(row)
    except IntegrityError:
        # a concurrent request with the same Idempotency-Key won the insert: replay it
        with db.session() as s:
            prior = store.get_idempotent(s, owner, idempotency_key or "")
            if prior is None or prior.body_sha256 != body_hash:
                raise ProblemError(409, "conflicting concurrent request") from None
            return _view_response(store.to_view(s.get(Evaluation, prior.evaluation_id)), 200)
    # the row is committed: the caller needs no more; enqueue after the response is sent
    background.add_task(_enqueue, db, jq, view.id)
    metrics.submissions.labels("created").inc()
    return _view_response(view, 202)


def _enqueue(db, jq, evaluation_id: str) -> None:
    try:
        submit(db, jq, evaluation_id)
    except Exception as exc:  # the row is durable; the reconciler enqueues it later
        log.warning("evaluation %s stored but not enqueued (%s); the reconciler will retry",
                    evaluation_id, exc)


@router.get("", response_model=EvaluationPage, responses=PROBLEMS)
def list_(db: DBDep, settings: SettingsDep, caller: Reader,
          estimator: str | None = None, dataset: str | None = None,
          status: EvaluationStatus | None = None,
          limit: Annotated[int, Query(ge=1, le=200)] = 50,
          cursor: Annotated[str | None, Query(max_length=500)] = None) -> EvaluationPage:
    """Newest first; pass next_cursor back as cursor for the next page."""
    with db.session() as s:
        try:
            rows, nxt = store.list_evaluations(
                s, owner=visible_owner(caller, settings),
                estimator=canonical_estimator(estimator.lower()) if estimator else None,
                dataset=dataset, status=status.value if status else None, limit=limit,
                cursor=cursor)
        except ValueError as exc:
            raise ProblemError(422, f"cursor: {exc}") from None
        return EvaluationPage(items=[store.to_view(r) for r in rows], next_cursor=nxt)


@router.get("/{evaluation_id}", response_model=EvaluationView,
            responses={304: {"description": "unchanged since the ETag sent"}, **PROBLEMS})
def get(evaluation_id: str, request: Request, db: DBDep, settings: SettingsDep,
        caller: Reader) -> Response:
    """Status and progress. Poll with If-None-Match: an unchanged evaluation answers 304."""
    with db.session() as s:
        row = _visible(s.get(Evaluation, evaluation_id), caller, settings)
        body = store.to_view(row).model_dump_json().encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    inm = request.headers.get("if-none-match", "")
    if etag in {t.strip().removeprefix("W/") for t in inm.split(",")} or inm.strip() == "*":
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


@router.get("/{evaluation_id}/results", response_model=EvaluationResult, responses=PROBLEMS)
def results(evaluation_id: str, db: DBDep, settings: SettingsDep,
            caller: Reader) -> EvaluationResult:
    """Every estimate and ratio with its CI and verdict, and their provenance."""
    with db.session() as s:
        row = _visible(s.get(Evaluation, evaluation_id), caller, settings)
        if row.status != store.OK:
            why = f": {row.error_code}: {row.error_message}" if row.error_code else ""
            raise ProblemError(409, f"evaluation is {row.status}{why}", status_value=row.status)
        return store.load_result(s, row)


@router.post("/{evaluation_id}/cancel", response_model=EvaluationView, responses=PROBLEMS)
def cancel(evaluation_id: str, db: DBDep, jq: QueueDep, settings: SettingsDep,
           caller: Writer) -> EvaluationView:
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
    with db.session() as s:
        return store.to_view(s.get(Evaluation, evaluation_id, populate_existing=True))
