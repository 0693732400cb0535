"""Repository functions over the SQL tables: every status change is a guarded UPDATE.

A transition names the states it may leave from (and, for a worker, the attempt it
owns), so a worker that was declared lost cannot overwrite its successor's state, and
results are written once, in the same transaction that marks the evaluation finished.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from micheck.contract import (
    Cost,
    Diagnostic,
    ErrorInfo,
    Estimate,
    EvaluationRequest,
    EvaluationResult,
    EvaluationStatus,
    EvaluationView,
    Progress,
    Provenance,
    Ratio,
    stored_request,
)
from micheck.storage import deliveries
from micheck.storage.models import (
    DiagnosticRow,
    EstimateRow,
    Evaluation,
    IdempotencyKey,
    LabelRow,
    RatioRow,
    Result,
    Token,
    WorkerRow,
    utcnow,
)

Q, R = EvaluationStatus.queued.value, EvaluationStatus.running.value
OK, FAILED, CANCELED = (EvaluationStatus.succeeded.value, EvaluationStatus.failed.value,
                        EvaluationStatus.canceled.value)


def to_view(row: Evaluation, *, deduplicated: bool = False) -> EvaluationView:
    error = (ErrorInfo(code=row.error_code, message=row.error_message or "")
             if row.error_code else None)
    return EvaluationView(
        id=row.id, status=EvaluationStatus(row.status), spec_hash=row.spec_hash,
        request=stored_request(row.request),
        progress=Progress(steps_done=row.steps_done, steps_total=row.steps_total,
                          current=row.current),
        attempts=row.attempts, created_at=row.created_at, started_at=row.started_at,
        finished_at=row.finished_at, error=error, worker=row.worker,
        heartbeat_at=row.heartbeat_at, deduplicated=deduplicated,
        # a legacy row (verdict NULL) compared means, not intervals: never a pass now
        passed=(row.verdict == "pass") if row.verdict else (None if row.passed is None else False),
        verdict=row.verdict or (None if row.passed is None else "inconclusive"),
        cost=Cost.model_validate(row.cost) if row.cost else None)


# ---- submission ---------------------------------------------------------------------------


def create_evaluation(s: Session, request: EvaluationRequest, *, owner: str | None, queue: str,
                      job_timeout_s: int, cost: Cost | None = None) -> Evaluation:
    now = utcnow()
    row = Evaluation(
        cost_gmac=cost.gmac if cost else None,
        cost=cost.model_dump(mode="json") if cost else None,
        id=uuid.uuid4().hex, owner=owner, status=Q, spec_hash=request.spec_hash(),
        request=request.model_dump(mode="json", exclude={"webhook"}),
        estimator=request.estimator.name,
        dataset=request.dataset.name, label=request.label, queue=queue,
        job_timeout_s=job_timeout_s, attempts=0, cancel_requested=False, created_at=now,
        updated_at=now, steps_done=0, steps_total=0)
    s.add(row)
    s.flush()
    s.add_all(LabelRow(evaluation_id=row.id, key=k, value=v) for k, v in request.labels.items())
    if request.webhook is not None:
        deliveries.add_webhook(s, row.id, request.webhook.url, request.webhook.secret)
    return row


# The statements a submission runs, built once with bound parameters: building a
# SQLAlchemy statement costs several times what SQLite takes to run it (bench.api
# --inprocess).


def _duplicate_query(of_owner: bool) -> Select:
    q = select(Evaluation).where(Evaluation.spec_hash == bindparam("spec_hash"),
                                 Evaluation.status.in_([OK, Q, R]))
    if of_owner:
        q = q.where(Evaluation.owner == bindparam("owner"))
    # prefer a finished one: it answers at once
    return q.order_by((Evaluation.status == OK).desc(), Evaluation.created_at.desc()).limit(1)


_DUPLICATE_ANY, _DUPLICATE_OF = _duplicate_query(False), _duplicate_query(True)


def find_duplicate(s: Session, spec_hash: str, owner: str | None) -> Evaluation | None:
    """The newest identical evaluation that succeeded or is still in flight.

    ``owner`` None means every owner's evaluations are visible to the caller.
    """
    if owner is None:
        return s.scalars(_DUPLICATE_ANY, {"spec_hash": spec_hash}).first()
    return s.scalars(_DUPLICATE_OF, {"spec_hash": spec_hash, "owner": owner}).first()


def count_queued(s: Session, owner: str | None) -> int:
    return s.scalar(select(func.count()).select_from(Evaluation)
                    .where(Evaluation.owner == owner, Evaluation.status == Q)) or 0


@dataclass(frozen=True)
class TokenLimits:
    """A token's limits: the settings' values unless an admin raised them for it."""

    max_queued: int
    max_request_gmac: float
    max_token_gmac: float


def token_limits(s: Session, owner: str, defaults: TokenLimits) -> TokenLimits:
    row = s.get(Token, owner)
    if row is None:
        return defaults
    return TokenLimits(
        row.max_queued if row.max_queued is not None else defaults.max_queued,
        row.max_request_gmac if row.max_request_gmac is not None else defaults.max_request_gmac,
        row.max_token_gmac if row.max_token_gmac is not None else defaults.max_token_gmac)


def lock_owner(s: Session, owner: str) -> None:
    """Serialise this owner's admissions until the transaction ends.

    A write to the owner's token row: on PostgreSQL it takes that row's lock (the other
    transactions of the same owner wait; other owners do not), on SQLite the database's
    write lock. Counting after it sees every admission committed before, so a limit
    checked after it holds under any concurrency (no check-then-insert race)."""
    s.execute(update(Token).where(Token.name == owner).values(name=Token.name))


_tokens = Token.__table__
_LOCK_AND_LIMITS = (update(_tokens).where(_tokens.c.name == bindparam("owner"))
                    .values(name=_tokens.c.name)
                    .returning(_tokens.c.max_queued, _tokens.c.max_request_gmac,
                               _tokens.c.max_token_gmac))


def admission_limits(s: Session, owner: str, defaults: TokenLimits) -> TokenLimits:
    """`lock_owner` and `token_limits` in one statement (UPDATE ... RETURNING): the lock,
    and the token's limits read under it."""
    row = s.execute(_LOCK_AND_LIMITS, {"owner": owner}).first()
    if row is None:
        return defaults
    queued, request_gmac, token_gmac = row
    return TokenLimits(defaults.max_queued if queued is None else queued,
                       defaults.max_request_gmac if request_gmac is None else request_gmac,
                       defaults.max_token_gmac if token_gmac is None else token_gmac)


def admission_load(s: Session, owner: str | None, queue: str) -> tuple[int, float, int]:
    """`owner_load` plus how many of the owner's evaluations are in RQ on `queue` (running,
    or queued and dispatched), in one query: a submission that finds its owner's turns on
    that queue all taken needs no dispatch pass (the end of one of them starts the next)."""
    stmt = _ADMISSION_LOAD if owner is not None else _admission_load(Evaluation.owner.is_(None))
    queued, gmac, in_rq = s.execute(stmt, {"owner": owner, "queue": queue}).one()
    return int(queued), float(gmac), int(in_rq)


def _admission_load(whose: ColumnElement[bool]) -> Select:
    in_rq = and_(Evaluation.queue == bindparam("queue"),
                 or_(Evaluation.status == R, Evaluation.rq_job_id.is_not(None)))
    return select(func.coalesce(func.sum(case((Evaluation.status == Q, 1), else_=0)), 0),
                  func.coalesce(func.sum(Evaluation.cost_gmac), 0.0),
                  func.coalesce(func.sum(case((in_rq, 1), else_=0)), 0)
                  ).where(whose, Evaluation.status.in_([Q, R]))


_ADMISSION_LOAD = _admission_load(Evaluation.owner == bindparam("owner"))


def owner_load(s: Session, owner: str | None) -> tuple[int, float]:
    """(queued evaluations, estimated GMAC of queued and running ones) of an owner, in
    one query."""
    queued, gmac = s.execute(
        select(func.coalesce(func.sum(case((Evaluation.status == Q, 1), else_=0)), 0),
               func.coalesce(func.sum(Evaluation.cost_gmac), 0.0))
        .where(Evaluation.owner == owner, Evaluation.status.in_([Q, R]))).one()
    return int(queued), float(gmac)


def to_dispatch(s: Session, per_owner: int, owner: str | None = None,
                all_owners: bool = False) -> list[Evaluation]:
    """Fair scheduling: the queued evaluations to put on RQ now, at most ``per_owner``
    per (owner, queue) in RQ at a time (waiting there or running), oldest first.

    Marks each one dispatched (``rq_job_id`` = a placeholder until the job id is known),
    so a concurrent call does not pick it again; a placeholder whose enqueue failed
    looks like a lost job to the reconciler, which enqueues it again."""
    # one grouped query: per (owner, queue), how many are in RQ and how many wait
    dispatched = or_(Evaluation.status == R, Evaluation.rq_job_id.is_not(None))
    load = select(Evaluation.owner, Evaluation.queue,
                  func.sum(case((dispatched, 1), else_=0)),
                  func.sum(case((dispatched, 0), else_=1))
                  ).where(Evaluation.status.in_([Q, R])
                          ).group_by(Evaluation.owner, Evaluation.queue)
    if not all_owners:
        load = load.where(Evaluation.owner == owner)
    out: list[Evaluation] = []
    for who, queue, in_rq, waiting in s.execute(load).all():
        free = per_owner - int(in_rq or 0)
        if free <= 0 or not waiting:
            continue
        mine = and_(Evaluation.owner == who if who is not None else Evaluation.owner.is_(None),
                    Evaluation.queue == queue)
        rows = list(s.scalars(select(Evaluation).where(
            mine, Evaluation.status == Q, Evaluation.rq_job_id.is_(None))
            .order_by(Evaluation.created_at, Evaluation.id).limit(free)))
        for row in rows:
            if s.execute(update(Evaluation).where(Evaluation.id == row.id,
                                                  Evaluation.rq_job_id.is_(None))
                         .values(rq_job_id=f"dispatching:{row.id}"[:64])).rowcount == 1:
                out.append(row)
    return out


def get_idempotent(s: Session, owner: str, key: str) -> IdempotencyKey | None:
    return s.get(IdempotencyKey, (owner, key))


def put_idempotent(s: Session, owner: str, key: str, body_sha256: str, evaluation_id: str) -> None:
    s.add(IdempotencyKey(owner=owner, key=key, body_sha256=body_sha256,
                         evaluation_id=evaluation_id, created_at=utcnow()))
    s.flush()


def replayable(row: Evaluation | None) -> bool:
    """Whether an Idempotency-Key replay returns this evaluation: a succeeded, queued or
    running one, yes; a canceled or failed one (or a deleted one), no: a CI retry with the
    same key then starts a new evaluation."""
    return row is not None and row.status in (OK, Q, R)


def repoint_idempotent(s: Session, owner: str, key: str, old_evaluation_id: str,
                       new_evaluation_id: str) -> bool:
    """Move a key from a canceled/failed evaluation to its successor; False when a
    concurrent retry moved it first (a guarded UPDATE, like the status transitions)."""
    res = s.execute(update(IdempotencyKey)
                    .where(IdempotencyKey.owner == owner, IdempotencyKey.key == key,
                           IdempotencyKey.evaluation_id == old_evaluation_id)
                    .values(evaluation_id=new_evaluation_id, created_at=utcnow()))
    return res.rowcount == 1


def set_enqueued(s: Session, evaluation_id: str, rq_job_id: str) -> None:
    s.execute(update(Evaluation).where(Evaluation.id == evaluation_id, Evaluation.status == Q)
              .values(rq_job_id=rq_job_id, enqueued_at=utcnow()))


# ---- the worker's side --------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    request: EvaluationRequest
    attempt: int


def claim(s: Session, evaluation_id: str, worker: str, max_attempts: int) -> Claim | None:
    """queued -> running for one more attempt; None if someone else has it or it ended."""
    now = utcnow()
    res = s.execute(update(Evaluation)
                    .where(Evaluation.id == evaluation_id, Evaluation.status == Q,
                           Evaluation.cancel_requested.is_(False),
                           Evaluation.attempts < max_attempts)
                    .values(status=R, attempts=Evaluation.attempts + 1, worker=worker,
                            heartbeat_at=now, started_at=now, updated_at=now, steps_done=0,
                            current="starting"))
    row = s.get(Evaluation, evaluation_id, populate_existing=True)
    if res.rowcount != 1 or row is None:
        return None
    return Claim(stored_request(row.request), row.attempts)


def heartbeat(s: Session, evaluation_id: str, attempt: int,
              progress: Progress | None = None) -> bool | None:
    """Refresh the attempt's heartbeat (and progress); returns cancel_requested, or None
    when this attempt no longer owns the evaluation."""
    values: dict = {"heartbeat_at": utcnow()}
    if progress is not None:
        values.update(steps_done=progress.steps_done, steps_total=progress.steps_total,
                      current=(progress.current or "")[:200] or None, updated_at=utcnow())
    res = s.execute(update(Evaluation).where(Evaluation.id == evaluation_id,
                                             Evaluation.status == R,
                                             Evaluation.attempts == attempt).values(**values))
    if res.rowcount != 1:
        return None
    return bool(s.scalar(select(Evaluation.cancel_requested)
                         .where(Evaluation.id == evaluation_id)))


def _finite(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


def finish_success(s: Session, evaluation_id: str, attempt: int, result: EvaluationResult) -> bool:
    """Write the attempt's results and mark it succeeded, atomically; False if the attempt
    was superseded (the caller's transaction must then be rolled back)."""
    now = utcnow()
    res = s.execute(update(Evaluation).where(Evaluation.id == evaluation_id,
                                             Evaluation.status == R,
                                             Evaluation.attempts == attempt)
                    .values(status=OK, finished_at=now, updated_at=now, heartbeat_at=now,
                            result_attempt=attempt, passed=result.passed,
                            verdict=result.verdict, error_code=None,
                            error_message=None, current="done",
                            steps_done=Evaluation.steps_total))
    if res.rowcount != 1:
        return False
    p = result.provenance
    r = Result(evaluation_id=evaluation_id, attempt=attempt, passed=result.passed,
               definition_versions=p.definition_versions, code_version=p.code_version,
               seeds=p.seeds, device=p.device, torch_version=p.torch_version,
               started_at=p.started_at, finished_at=p.finished_at, wall_seconds=p.wall_seconds,
               verdict=result.verdict, alpha=result.alpha,
               seed_rounds=result.seed_rounds.model_dump(mode="json"))
    s.add(r)
    s.flush()
    s.add_all(EstimateRow(result_id=r.id, **{**e.model_dump(), "mi_train": _finite(e.mi_train),
                                             "mi_test": _finite(e.mi_test),
                                             "curve": [[st, _finite(v)] for st, v in e.curve]})
              for e in result.estimates)
    s.add_all(RatioRow(result_id=r.id, **{**x.model_dump(), "value": _finite(x.value),
                                          "ci_low": _finite(x.ci_low),
                                          "ci_high": _finite(x.ci_high),
                                          "band_low": _finite(x.band_low),
                                          "band_high": _finite(x.band_high),
                                          "per_seed": [_finite(v) for v in x.per_seed]})
              for x in result.ratios)
    s.add_all(DiagnosticRow(result_id=r.id, **d.model_dump()) for d in result.diagnostics)
    deliveries.on_terminal(s, evaluation_id)
    return True


def finish_attempt(s: Session, evaluation_id: str, attempt: int | None, *, status: str,
                   code: str | None, message: str | None) -> bool:
    """running -> failed/canceled, or back to queued for a retry. ``attempt`` None: any."""
    now = utcnow()
    cond = [Evaluation.id == evaluation_id, Evaluation.status == R]
    if attempt is not None:
        cond.append(Evaluation.attempts == attempt)
    values: dict = {"status": status, "updated_at": now, "error_code": code,
                    "error_message": message}
    if status == Q:
        # keep rq_job_id: RQ's own retry re-runs that job; enqueued_at restarts the
        # reconciler's grace period so it does not enqueue a second copy meanwhile
        values.update(worker=None, enqueued_at=now, current="retrying")
    else:
        values.update(finished_at=now)
    done = s.execute(update(Evaluation).where(*cond).values(**values)).rowcount == 1
    if done and status != Q:
        deliveries.on_terminal(s, evaluation_id)
    return done


def fail_queued(s: Session, evaluation_id: str, code: str, message: str) -> bool:
    now = utcnow()
    done = s.execute(update(Evaluation).where(Evaluation.id == evaluation_id,
                                              Evaluation.status == Q)
                     .values(status=FAILED, error_code=code, error_message=message,
                             finished_at=now, updated_at=now)).rowcount == 1
    if done:
        deliveries.on_terminal(s, evaluation_id)
    return done


def request_cancel(s: Session, evaluation_id: str) -> str:
    """queued -> canceled at once; running -> flagged (the worker stops between steps)."""
    now = utcnow()
    if s.execute(update(Evaluation).where(Evaluation.id == evaluation_id, Evaluation.status == Q)
                 .values(status=CANCELED, cancel_requested=True, finished_at=now,
                         updated_at=now, error_code="canceled",
                         error_message="canceled before it started")).rowcount == 1:
        deliveries.on_terminal(s, evaluation_id)
    s.execute(update(Evaluation).where(Evaluation.id == evaluation_id, Evaluation.status == R)
              .values(cancel_requested=True, updated_at=now))
    return s.scalar(select(Evaluation.status).where(Evaluation.id == evaluation_id))


# ---- reading results ----------------------------------------------------------------------


def load_result(s: Session, row: Evaluation) -> EvaluationResult:
    r = s.scalars(select(Result).where(Result.evaluation_id == row.id,
                                       Result.attempt == row.result_attempt)).one()

    def nan(x: float | None) -> float:
        return float("nan") if x is None else x

    estimates = [Estimate(test=e.test, t=e.t, seed=e.seed, mi_train=nan(e.mi_train),
                          mi_test=nan(e.mi_test), true_mi=e.true_mi, steps=e.steps,
                          diverged=e.diverged, transform=e.transform,
                          curve=[tuple(p) for p in e.curve or []], converged=e.converged,
                          convergence=e.convergence or "", rho=e.rho, gradient=e.gradient,
                          true_gradient=e.true_gradient)
                 for e in s.scalars(select(EstimateRow).where(EstimateRow.result_id == r.id)
                                    .order_by(EstimateRow.id))]
    ratios = [Ratio.model_validate(_ratio_fields(x))
              for x in s.scalars(select(RatioRow).where(RatioRow.result_id == r.id)
                                 .order_by(RatioRow.id))]
    diagnostics = [Diagnostic(code=d.code, severity=d.severity, message=d.message, test=d.test,
                              t=d.t, seed=d.seed)
                   for d in s.scalars(select(DiagnosticRow).where(DiagnosticRow.result_id == r.id)
                                      .order_by(DiagnosticRow.id))]
    prov = Provenance(definition_versions=r.definition_versions, code_version=r.code_version,
                      seeds=r.seeds, device=r.device, torch_version=r.torch_version,
                      started_at=r.started_at, finished_at=r.finished_at,
                      wall_seconds=r.wall_seconds)
    extra = {} if r.verdict is None else {
        "verdict": r.verdict, "alpha": r.alpha,
        **({"seed_rounds": r.seed_rounds} if r.seed_rounds else {})}
    return EvaluationResult.model_validate({
        "request": stored_request(row.request), "estimates": estimates,
        "ratios": ratios, "diagnostics": diagnostics, "provenance": prov,
        "passed": r.passed and r.verdict == "pass", **extra})


def _ratio_fields(x: RatioRow) -> dict:
    """A stored ratio row as the model's fields; a legacy row (verdict NULL) leaves the
    verdict out, so the model reads it as inconclusive (legacy)."""
    fields = {"test": x.test, "t": x.t, "value": x.value, "ci_low": x.ci_low,
              "ci_high": x.ci_high, "ideal": x.ideal, "passed": x.passed,
              "tolerance": x.tolerance, "per_seed": x.per_seed, "transform": x.transform,
              "note": x.note}
    if x.verdict is None:
        return fields
    return {**fields, "kind": x.kind, "t_from": x.t_from, "verdict": x.verdict,
            "band_low": x.band_low, "band_high": x.band_high, "ci_level": x.ci_level,
            "ci_method": x.ci_method, "reason_code": x.reason_code, "reason": x.reason,
            "seeds": x.seeds, "rho": x.rho}


def encode_cursor(row: Evaluation) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on a cursor this service did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, eid = json.loads(raw)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or not isinstance(eid, str) or len(eid) > 32:
            raise ValueError("not an issued cursor")  # naive times cannot be compared
        return when, eid
    except Exception as exc:  # any garbage is the same client error
        raise ValueError("cursor is not one this service issued") from exc


def list_evaluations(s: Session, *, owner: str | None, estimator: str | None = None,
                     dataset: str | None = None, status: str | None = None, limit: int = 50,
                     cursor: str | None = None, labels: Sequence[tuple[str, str]] = (),
                     created_after: datetime | None = None,
                     created_before: datetime | None = None
                     ) -> tuple[list[Evaluation], str | None]:
    """Newest first; ``owner`` None lists every owner's. Every (key, value) in ``labels``
    must match; the created range is [created_after, created_before)."""
    q = select(Evaluation)
    for key, value in labels:
        q = q.where(select(LabelRow.evaluation_id)
                    .where(LabelRow.evaluation_id == Evaluation.id, LabelRow.key == key,
                           LabelRow.value == value).exists())
    if created_after is not None:
        q = q.where(Evaluation.created_at >= created_after)
    if created_before is not None:
        q = q.where(Evaluation.created_at < created_before)
    if owner is not None:
        q = q.where(Evaluation.owner == owner)
    if estimator:
        q = q.where(Evaluation.estimator == estimator)
    if dataset:
        q = q.where(Evaluation.dataset == dataset)
    if status:
        q = q.where(Evaluation.status == status)
    if cursor:
        created, eid = decode_cursor(cursor)
        q = q.where(or_(Evaluation.created_at < created,
                        and_(Evaluation.created_at == created, Evaluation.id < eid)))
    rows = list(s.scalars(q.order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
                          .limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)


# ---- what the reconciler looks at ---------------------------------------------------------


def stale_running(s: Session, older_than: timedelta) -> list[Evaluation]:
    cutoff = utcnow() - older_than
    return list(s.scalars(select(Evaluation).where(Evaluation.status == R,
                                                   Evaluation.heartbeat_at < cutoff)))


def queued_before(s: Session, older_than: timedelta) -> list[Evaluation]:
    """Dispatched (put on RQ) queued evaluations older than the grace period; those not
    yet dispatched wait for their turn (to_dispatch)."""
    cutoff = utcnow() - older_than
    return list(s.scalars(select(Evaluation).where(
        Evaluation.status == Q, Evaluation.rq_job_id.is_not(None),
        or_(Evaluation.enqueued_at.is_(None), Evaluation.enqueued_at < cutoff),
        Evaluation.updated_at < cutoff)))


# ---- workers ------------------------------------------------------------------------------


def live_workers(s: Session, stale_after: timedelta) -> list[WorkerRow]:
    """Workers whose heartbeat is younger than `stale_after` (the same threshold after
    which the reconciler gives a running evaluation up): older ones are gone."""
    cutoff = utcnow() - stale_after
    return list(s.scalars(select(WorkerRow).where(WorkerRow.heartbeat_at >= cutoff)
                          .order_by(WorkerRow.name)))


def live_plugin_reports(s: Session, stale_after: timedelta) -> list[tuple[str, dict]]:
    """(worker name, plug-in report) of each live worker that reported plug-ins
    (micheck.estimators.plugins.report), in name order."""
    cutoff = utcnow() - stale_after
    rows = s.execute(select(WorkerRow.name, WorkerRow.plugins)
                     .where(WorkerRow.heartbeat_at >= cutoff, WorkerRow.plugins.is_not(None))
                     .order_by(WorkerRow.name)).all()
    return [(name, report) for name, report in rows if isinstance(report, dict)]


def worker_alive(s: Session, name: str, stale_after: timedelta) -> bool | None:
    """Whether the worker beat within `stale_after`; None when it has no row."""
    beat = s.scalar(select(WorkerRow.heartbeat_at).where(WorkerRow.name == name))
    if beat is None:
        return None
    return bool(s.scalar(select(func.count()).select_from(WorkerRow).where(
        WorkerRow.name == name, WorkerRow.heartbeat_at >= utcnow() - stale_after)))


def count_live_workers(s: Session, stale_after: timedelta) -> int:
    cutoff = utcnow() - stale_after
    return s.scalar(select(func.count()).select_from(WorkerRow)
                    .where(WorkerRow.heartbeat_at >= cutoff)) or 0


def release_worker(s: Session, worker: str, max_attempts: int, why: str) -> dict[str, list[str]]:
    """A worker is known dead (its supervisor reaped it and its job processes): give each
    attempt it was running up now instead of after stale_after_s, retrying (queued) while
    attempts remain, and forget its row. Attempts are never refunded: an attempt number is
    used once, so a late write from it could never pass for its successor's."""
    out: dict[str, list[str]] = {"retried": [], "failed": [], "canceled": []}
    for eid, attempt, cancel in s.execute(
            select(Evaluation.id, Evaluation.attempts, Evaluation.cancel_requested).where(
                Evaluation.status == R, Evaluation.worker == worker)).all():
        msg = f"{why} during attempt {attempt}"
        if cancel:  # its owner asked to stop it: that is what happened
            if finish_attempt(s, eid, attempt, status=CANCELED, code="canceled",
                              message=f"canceled on request ({msg})"):
                out["canceled"].append(eid)
        elif attempt < max_attempts:
            if finish_attempt(s, eid, attempt, status=Q, code="worker_lost",
                              message=msg + "; retrying"):
                out["retried"].append(eid)
        elif finish_attempt(s, eid, attempt, status=FAILED, code="worker_lost",
                            message=f"{msg}; gave up after {attempt} attempts"):
            out["failed"].append(eid)
    s.execute(delete(WorkerRow).where(WorkerRow.name == worker))
    return out
