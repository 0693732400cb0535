"""Webhook rows: receivers per evaluation, one delivery per (terminal state, receiver),
and the log of every try.

A delivery row is written in the transaction that makes the evaluation terminal
(``store`` calls `on_terminal`), so a notification is never lost between the status
change and a crash; the API process's delivery loop (service/webhooks.py) sends due rows.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from micheck.contract import DeliveryAttempt, DeliveryView
from micheck.storage.models import (
    DeliveryAttemptRow,
    DeliveryRow,
    Evaluation,
    LabelRow,
    RatioRow,
    Result,
    WebhookRow,
    utcnow,
)

PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "gave_up"
TERMINAL = ("succeeded", "failed", "canceled")


def add_webhook(s: Session, evaluation_id: str, url: str, secret: str | None) -> WebhookRow:
    """Attach a receiver; one attached to an evaluation that has ended is notified now."""
    hook = WebhookRow(evaluation_id=evaluation_id, url=url, secret=secret, created_at=utcnow())
    s.add(hook)
    s.flush()
    row = s.get(Evaluation, evaluation_id)
    if row is not None and row.status in TERMINAL:
        _deliver_to(s, row, hook)
    return hook


def on_terminal(s: Session, evaluation_id: str) -> int:
    """One pending delivery per receiver of an evaluation that just ended; returns how many."""
    hooks = list(s.scalars(select(WebhookRow).where(WebhookRow.evaluation_id == evaluation_id)))
    if not hooks:
        return 0
    row = s.get(Evaluation, evaluation_id, populate_existing=True)
    if row is None:
        return 0
    for hook in hooks:
        _deliver_to(s, row, hook)
    return len(hooks)


def _deliver_to(s: Session, row: Evaluation, hook: WebhookRow) -> None:
    now = utcnow()
    delivery_id = uuid.uuid4().hex
    body = {"event": f"evaluation.{row.status}", "delivery_id": delivery_id,
            "sent_for": now.isoformat(), "evaluation": summary(s, row)}
    s.add(DeliveryRow(id=delivery_id, webhook_id=hook.id, evaluation_id=row.id,
                      event=body["event"], payload=json.dumps(body, separators=(",", ":")),
                      state=PENDING, attempts=0, created_at=now, next_attempt_at=now))
    s.flush()


def labels_of(s: Session, evaluation_id: str) -> dict[str, str]:
    return dict(s.execute(select(LabelRow.key, LabelRow.value)
                          .where(LabelRow.evaluation_id == evaluation_id)
                          .order_by(LabelRow.key)).all())


def verdict_counts(s: Session, evaluation_ids: list[str]) -> dict[str, dict[str, int]]:
    """{evaluation id: {"pass": n, "fail": n, "inconclusive": n}} over the decided points of
    its reported attempt (a legacy row, verdict NULL, counts as inconclusive)."""
    if not evaluation_ids:
        return {}
    q = (select(Result.evaluation_id, RatioRow.verdict, func.count())
         .join(RatioRow, RatioRow.result_id == Result.id)
         .join(Evaluation, (Evaluation.id == Result.evaluation_id)
               & (Evaluation.result_attempt == Result.attempt))
         .where(Result.evaluation_id.in_(evaluation_ids))
         .group_by(Result.evaluation_id, RatioRow.verdict))
    out: dict[str, dict[str, int]] = {}
    for eid, verdict, n in s.execute(q):
        counts = out.setdefault(eid, {"pass": 0, "fail": 0, "inconclusive": 0})
        counts[verdict if verdict in ("pass", "fail") else "inconclusive"] += n
    return out


def summary(s: Session, row: Evaluation) -> dict:
    """What a receiver gets: enough to act on without calling back (which it may)."""
    error = {"code": row.error_code, "message": row.error_message} if row.error_code else None

    def iso(t: datetime | None) -> str | None:
        return t.isoformat() if t else None

    base = f"/v1/evaluations/{row.id}"
    return {"id": row.id, "status": row.status, "passed": row.verdict == "pass",
            "verdict": row.verdict,
            "estimator": row.estimator, "dataset": row.dataset, "spec_hash": row.spec_hash,
            "label": row.label, "labels": labels_of(s, row.id),
            "verdicts": verdict_counts(s, [row.id]).get(row.id),
            "attempts": row.attempts, "created_at": iso(row.created_at),
            "started_at": iso(row.started_at), "finished_at": iso(row.finished_at),
            "error": error,
            "links": {"self": base, "results": f"{base}/results", "report": f"{base}/report",
                      "csv": f"{base}/results.csv"}}


# ---- the delivery loop's side ------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    id: str
    url: str
    secret: str | None
    payload: str
    event: str
    attempts: int
    created_at: datetime


def claim_due(s: Session, *, lease: timedelta, limit: int = 20,
              give_up_after: timedelta | None = None) -> list[Due]:
    """Pending deliveries whose time has come, each leased (its next_attempt_at pushed past
    the try) by a guarded UPDATE, so two API processes never send the same one at once.
    One created longer than ``give_up_after`` ago is given up instead (with a logged
    try saying so), whatever its tries did: the horizon holds even for a delivery whose
    tries never got recorded."""
    now = utcnow()
    if give_up_after is not None:
        expired = s.execute(select(DeliveryRow.id).where(
            DeliveryRow.state == PENDING, DeliveryRow.next_attempt_at <= now,
            DeliveryRow.created_at < now - give_up_after).limit(limit)).scalars().all()
        for delivery_id in expired:
            if s.execute(update(DeliveryRow).where(DeliveryRow.id == delivery_id,
                                                   DeliveryRow.state == PENDING)
                         .values(state=GAVE_UP, next_attempt_at=None)).rowcount == 1:
                s.add(DeliveryAttemptRow(delivery_id=delivery_id, at=now, error=(
                    f"gave up: no delivery within {give_up_after.total_seconds():g} s of "
                    "the evaluation's end")))
    rows = s.execute(select(DeliveryRow, WebhookRow)
                     .join(WebhookRow, WebhookRow.id == DeliveryRow.webhook_id)
                     .where(DeliveryRow.state == PENDING, DeliveryRow.next_attempt_at <= now)
                     .order_by(DeliveryRow.next_attempt_at).limit(limit)).all()
    out = []
    for d, hook in rows:
        won = s.execute(update(DeliveryRow)
                        .where(DeliveryRow.id == d.id, DeliveryRow.state == PENDING,
                               DeliveryRow.next_attempt_at == d.next_attempt_at)
                        .values(next_attempt_at=now + lease)).rowcount == 1
        if won:
            out.append(Due(d.id, hook.url, hook.secret, d.payload, d.event, d.attempts,
                           d.created_at))
    return out


def record_try(s: Session, delivery_id: str, *, delivered: bool, status_code: int | None,
               error: str | None, duration_ms: int | None,
               next_attempt_at: datetime | None) -> str:
    """Log one try and move the delivery on: delivered, retried at next_attempt_at, or
    (next_attempt_at None and not delivered) given up. Returns the new state."""
    now = utcnow()
    s.add(DeliveryAttemptRow(delivery_id=delivery_id, at=now, status_code=status_code,
                             error=error[:2000] if error else None, duration_ms=duration_ms))
    state = DELIVERED if delivered else PENDING if next_attempt_at is not None else GAVE_UP
    s.execute(update(DeliveryRow).where(DeliveryRow.id == delivery_id)
              .values(state=state, attempts=DeliveryRow.attempts + 1,
                      next_attempt_at=None if state != PENDING else next_attempt_at,
                      delivered_at=now if delivered else None))
    return state


def shown_url(url: str) -> str:
    """Scheme, host, port and path: a query string or fragment may carry a credential."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}{p.path}"


def list_deliveries(s: Session, evaluation_id: str) -> list[DeliveryView]:
    rows = s.execute(select(DeliveryRow, WebhookRow.url)
                     .join(WebhookRow, WebhookRow.id == DeliveryRow.webhook_id)
                     .where(DeliveryRow.evaluation_id == evaluation_id)
                     .order_by(DeliveryRow.created_at, DeliveryRow.id)).all()
    logs: dict[str, list[DeliveryAttempt]] = {}
    if rows:
        for a in s.scalars(select(DeliveryAttemptRow)
                           .where(DeliveryAttemptRow.delivery_id.in_([d.id for d, _ in rows]))
                           .order_by(DeliveryAttemptRow.id)):
            logs.setdefault(a.delivery_id, []).append(DeliveryAttempt(
                at=a.at, status_code=a.status_code, error=a.error, duration_ms=a.duration_ms))
    return [DeliveryView(id=d.id, evaluation_id=d.evaluation_id, event=d.event,
                         url=shown_url(url), state=d.state, attempts=d.attempts,
                         created_at=d.created_at, next_attempt_at=d.next_attempt_at,
                         delivered_at=d.delivered_at, log=logs.get(d.id, []))
            for d, url in rows]
