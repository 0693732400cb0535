"""Idempotency-Key rows: one key per owner points at one evaluation; a key whose
evaluation was canceled or failed is re-pointed to a fresh one (a re-run CI job)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from micheck.storage.models import Evaluation, IdempotencyKey, utcnow
from micheck.storage.statuses import OK, Q, R


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

