"""The workers table: who is alive (by heartbeat), what live workers report, and
handing a dead worker's evaluations back."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from micheck.storage.models import Evaluation, WorkerRow, utcnow
from micheck.storage.statuses import CANCELED, FAILED, Q, R
from micheck.storage.transitions import finish_attempt


def live_workers(s: Session, stale_after: timedelta) -> list[WorkerRow]:
    """Workers whose heartbeat is younger than `stale_after` (the same threshold after
    which the reconciler gives a running evaluation up): older ones are gone."""
    cutoff = utcnow() - stale_after
    return list(s.scalars(select(WorkerRow).where(WorkerRow.heartbeat_at >= cutoff)
                          .order_by(WorkerRow.name)))


def recent_workers(s: Session, forget_after: timedelta) -> list[WorkerRow]:
    """Workers that beat within `forget_after`, live or lost, in name order: a worker whose
    box died keeps its row (nothing stopped it) until a starting worker forgets it."""
    cutoff = utcnow() - forget_after
    return list(s.scalars(select(WorkerRow).where(WorkerRow.heartbeat_at >= cutoff)
                          .order_by(WorkerRow.name)))


def boxes(rows: list[WorkerRow], stale_after: timedelta) -> tuple[int, dict[str, tuple[int, float]]]:
    """(live workers, {box: (its lost workers, seconds since the last beat of any)}) over
    `rows`, for the boxes none of whose workers is live (a box = a worker row's host)."""
    now = utcnow()
    live_boxes, lost = set(), {}
    live = 0
    for r in rows:
        age = (now - r.heartbeat_at).total_seconds()
        if age <= stale_after.total_seconds():
            live += 1
            live_boxes.add(r.host)
        else:
            n, youngest = lost.get(r.host, (0, age))
            lost[r.host] = (n + 1, min(youngest, age))
    return live, {h: v for h, v in sorted(lost.items()) if h not in live_boxes}


def live_plugin_reports(s: Session, stale_after: timedelta) -> list[tuple[str, dict]]:
    """(worker name, plug-in report) of each live worker that reported plug-ins
    (micheck.estimators.plugins.report), in name order."""
    cutoff = utcnow() - stale_after
    rows = s.execute(select(WorkerRow.name, WorkerRow.plugins)
                     .where(WorkerRow.heartbeat_at >= cutoff, WorkerRow.plugins.is_not(None))
                     .order_by(WorkerRow.name)).all()
    return [(name, report) for name, report in rows if isinstance(report, dict)]


def live_speeds(s: Session, stale_after: timedelta) -> list[tuple[str, str, str, float, float]]:
    """(name, device, queues, GMAC/s, step overhead s) of each live worker that measured its
    device (micheck.workers.calibrate), in name order; ``queues`` is comma-separated."""
    cutoff = utcnow() - stale_after
    rows = s.execute(select(WorkerRow.name, WorkerRow.device, WorkerRow.queue,
                            WorkerRow.gmac_per_s, WorkerRow.step_overhead_s)
                     .where(WorkerRow.heartbeat_at >= cutoff, WorkerRow.gmac_per_s.is_not(None),
                            WorkerRow.step_overhead_s.is_not(None))
                     .order_by(WorkerRow.name)).all()
    return [(n, d, q, float(g), float(o)) for n, d, q, g, o in rows]


def record_calibration(s: Session, name: str, measured: dict) -> bool:
    """Store a worker's measurement in its row; False when the row is gone."""
    return s.execute(update(WorkerRow).where(WorkerRow.name == name).values(
        gmac_per_s=float(measured["gmac_per_s"]),
        step_overhead_s=float(measured["step_overhead_s"]),
        calibrated_at=utcnow(), calibration=measured)).rowcount == 1


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
