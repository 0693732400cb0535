"""Status transitions: every change is a guarded UPDATE.

A transition names the states it may leave from (and, for a worker, the attempt it
owns), so a worker that was declared lost cannot overwrite its successor's state, and
results are written once, in the same transaction that marks the evaluation finished.
A terminal transition writes the webhook delivery rows in the same transaction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from micheck.contract import EvaluationRequest, EvaluationResult, Progress, stored_request
from micheck.storage import deliveries
from micheck.storage.models import DiagnosticRow, EstimateRow, Evaluation, RatioRow, Result, utcnow
from micheck.storage.statuses import CANCELED, FAILED, OK, Q, R


@dataclass(frozen=True)
class Claim:
    request: EvaluationRequest
    attempt: int
    extends: str | None = None  # more seeds: the evaluation whose estimates it pools


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
    return Claim(stored_request(row.request), row.attempts, row.extends)


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

