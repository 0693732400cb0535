"""Reading evaluations back: the view of a row, a stored result, the listing with its
cursor, and the rows the reconciler looks at."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from micheck.contract import (
    Cost,
    Diagnostic,
    ErrorInfo,
    Estimate,
    EvaluationResult,
    EvaluationStatus,
    EvaluationView,
    Progress,
    Provenance,
    Ratio,
    stored_request,
)
from micheck.storage.models import (
    DiagnosticRow,
    EstimateRow,
    Evaluation,
    LabelRow,
    RatioRow,
    Result,
    utcnow,
)
from micheck.storage.statuses import Q, R


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
        cost=Cost.model_validate(row.cost) if row.cost else None, extends=row.extends)



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
            "seeds": x.seeds, "rho": x.rho, "scale": x.scale, "look": x.look}


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
        return when.astimezone(timezone.utc), eid  # OverflowError: not one we issued
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

