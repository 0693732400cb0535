"""Submit, inspect, list and cancel evaluations."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from micheck.service import submission
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
from micheck.service.listing import MAX_LIMIT, parse_label_filters, utc
from micheck.service.plugins import LivePlugins
from micheck.service.problems import ProblemError
from micheck.service.routes import exports
from micheck.service.routes.share import with_link

from micheck.contract import (
    EvaluationPage,
    EvaluationRequest,
    EvaluationResult,
    EvaluationStatus,
    EvaluationView,
    MoreSeeds,
    Problem,
)
from micheck.definitions import canonical_estimator
from micheck.queue import dispatch
from micheck.settings import Settings
from micheck.storage import store
from micheck.storage.models import Evaluation

log = logging.getLogger("micheck.api")
router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])
PROBLEMS = {s: {"model": Problem, "content": {"application/problem+json": {}}}
            for s in (401, 403, 404, 409, 413, 422, 429)}


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
           ) -> Response:
    """Queue an evaluation (202). An identical finished or in-flight evaluation is
    returned instead (200, deduplicated=true) unless the request sets force. A repeated
    Idempotency-Key returns its evaluation (200) while it is queued, running or succeeded;
    after a cancel or a failure it starts a new one (a re-run CI job gets a fresh try).

    Everything is checked before anything is stored: the contract (strict, bounded,
    finite), this server's limits, the estimated compute (micheck.budget) per request and
    per token, and the token's queue, the latter two atomically (admission_limits locks
    the owner). The response body is built inside the transaction, so nothing fails after
    the commit. A plug-in estimator is accepted while a live worker reports it (422 otherwise)."""
    submission.check_before_storing(body, settings, plugins)
    done = submission.admit(db, settings, caller, body, idempotency_key,
                            lambda view, status: _view_response(view, status, request, settings))
    # the row is committed: the caller needs no more. After the response is sent, put the
    # owner's next evaluation on RQ (fair scheduling: one per owner and queue at a time)
    if done.dispatch:
        background.add_task(_dispatch, db, jq, caller.name)
    metrics.submissions.labels(done.outcome).inc()
    return done.response


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
          limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
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
                created_after=utc(created_after, "created_after"),
                created_before=utc(created_before, "created_before"))
        except ValueError as exc:
            raise ProblemError(422, f"cursor: {exc}") from None
        return EvaluationPage(items=[with_link(store.to_view(r), request, settings)
                                     for r in rows], next_cursor=nxt)


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


@router.post("/{evaluation_id}/seeds", operation_id="add_seeds", status_code=202,
             response_model=EvaluationView, responses=PROBLEMS)
def add_seeds(evaluation_id: str, body: MoreSeeds, request: Request, db: DBDep, jq: QueueDep,
              settings: SettingsDep, caller: Writer, metrics: MetricsDep,
              background: BackgroundTasks) -> Response:
    """More seeds for a succeeded evaluation whose verdicts are inconclusive for want of
    seeds (202: a new evaluation, `extends` = this one). It trains only the new seeds, only
    for the rows still open, pools them with the stored per-seed estimates and decides
    again at the level that counts every look (its result records them in
    `seed_rounds.looks`). 409 when the evaluation has not succeeded, has nothing more seeds
    can decide, or was extended already (add seeds to the extension: looks form a chain)."""
    done = submission.more_seeds(db, settings, caller, evaluation_id, body.add,
                                 lambda view, status: _view_response(view, status, request,
                                                                     settings))
    if done.dispatch:
        background.add_task(_dispatch, db, jq, caller.name)
    metrics.submissions.labels("more_seeds").inc()
    return done.response


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
