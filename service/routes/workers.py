"""The workers that reported recently, and what they are doing."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from micheck.service.deps import DBDep, Reader, SettingsDep
from sqlalchemy import select

from micheck.contract import WorkerView
from micheck.storage.models import WorkerRow, utcnow

router = APIRouter(prefix="/v1", tags=["workers"])


@router.get("/workers", operation_id="list_workers")
def workers(db: DBDep, settings: SettingsDep, _caller: Reader) -> list[WorkerView]:
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.worker_forget_after_s)
    with db.session() as s:
        rows = s.scalars(select(WorkerRow).where(WorkerRow.heartbeat_at >= cutoff)
                         .order_by(WorkerRow.name)).all()
        return [WorkerView(name=r.name, device=r.device, queue=r.queue,
                           current_evaluation=r.current_evaluation,
                           heartbeat_age_seconds=round((now - r.heartbeat_at).total_seconds(), 3))
                for r in rows]
