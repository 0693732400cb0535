"""The workers that beat recently, and what they are doing.

A worker whose heartbeat is older than stale_after_s is lost (the reconciler gives its
evaluation up after the same time): listed after the live ones with state "lost" until
worker_forget_after_s, so a box that went away shows as such (its host, to admins). Hosts, pids and the evaluations
other owners run are an admin's business: other callers see each worker's device, queue
and heartbeat, whether it is busy, and the id of an evaluation only if it is their own.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from micheck.service.deps import DBDep, Reader, SettingsDep
from sqlalchemy import select

from micheck.contract import WorkerView
from micheck.storage import store
from micheck.storage.models import Evaluation, utcnow

router = APIRouter(prefix="/v1", tags=["workers"])


@router.get("/workers", operation_id="list_workers")
def workers(db: DBDep, settings: SettingsDep, caller: Reader) -> list[WorkerView]:
    now = utcnow()
    with db.session() as s:
        recent = store.recent_workers(s, timedelta(seconds=settings.worker_forget_after_s))
        stale = settings.stale_after_s
        rows = sorted(recent, key=lambda r: (now - r.heartbeat_at).total_seconds() > stale)
        busy = [r.current_evaluation for r in rows if r.current_evaluation]
        owners = dict(s.execute(select(Evaluation.id, Evaluation.owner)
                                .where(Evaluation.id.in_(busy))).all()) if busy else {}
    out = []
    for i, r in enumerate(rows):
        report = r.plugins if isinstance(r.plugins, dict) else {}
        mine = r.current_evaluation is not None and caller.name is not None \
            and owners.get(r.current_evaluation) == caller.name
        out.append(WorkerView(
            name=r.name if caller.admin else f"worker-{i + 1}", device=r.device, queue=r.queue,
            current_evaluation=r.current_evaluation if caller.admin or mine else None,
            busy=r.current_evaluation is not None,
            host=r.host if caller.admin else None, pid=r.pid if caller.admin else None,
            heartbeat_age_seconds=round((now - r.heartbeat_at).total_seconds(), 3),
            state="lost" if (now - r.heartbeat_at).total_seconds() > stale else "live",
            gmac_per_s=r.gmac_per_s, step_overhead_s=r.step_overhead_s,
            plugins=[f"{p.get('name')} ({p.get('distribution')}=={p.get('distribution_version')})"
                     for p in report.get("estimators") or ()],
            broken_plugins=[f"{b.get('name')} ({b.get('distribution')}=={b.get('version')}): "
                            f"{b.get('reason')}" for b in report.get("broken") or ()]
            if caller.admin else None))
    return out
