"""Liveness, readiness (database, Redis and a live worker) and Prometheus metrics."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request, Response
from micheck.service.deps import Credentials, DBDep, MetricsDep, QueueDep, SettingsDep, reader
from micheck.service.problems import ProblemError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from micheck.storage import store

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz")
def healthz(settings: SettingsDep) -> dict[str, str]:
    """The process answers. Under `micheck up` it also names its run (`instance`), so
    `up` never mistakes another stack's API on the same port for its own."""
    body = {"status": "ok"}
    if settings.instance_id:
        body["instance"] = settings.instance_id
    return body


@router.get("/readyz", operation_id="readyz", responses={503: {"description": "a part is down; the body says which"}})
def readyz(db: DBDep, jq: QueueDep, settings: SettingsDep) -> dict[str, str]:
    """200 when the database and Redis answer, a worker beat within stale_after_s (a box
    whose workers all stopped beating is named: "lost: box NAME ..."), and no
    write failed for lack of space in the last storage_full_retry_s (unless one succeeded
    since); otherwise 503 naming each part that is down. Reads and submissions still work
    while Redis or the workers are down (submissions wait in the database); reads work
    while the storage is full."""
    checks: dict[str, str] = {}
    try:
        with db.session() as s:
            s.execute(text("SELECT 1"))
            live, lost = store.boxes(
                store.recent_workers(s, timedelta(seconds=settings.worker_forget_after_s)),
                timedelta(seconds=settings.stale_after_s))
        checks["database"] = "ok"
        checks["workers"] = f"{live} live" if live else "down: no worker heartbeat within " \
                                                        f"{settings.stale_after_s:g} s"
        if lost:  # ready while any worker lives, but a box that went away is named
            checks["workers"] += "; lost: " + ", ".join(
                f"box {box} ({n} worker{'s' if n > 1 else ''}, no heartbeat for {age:.0f} s)"
                for box, (n, age) in lost.items())
    except Exception as exc:
        checks["database"] = f"down: {type(exc).__name__}"
        checks["workers"] = "unknown: the database is down"
    full = db.storage.full_for(settings.storage_full_retry_s)
    checks["storage"] = "ok" if full is None else \
        f"full: {db.storage.reason}; a write failed {full:.0f} s ago"
    try:
        jq.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"down: {type(exc).__name__}"
    down = sorted(k for k, v in checks.items() if not (v == "ok" or v.split(";")[0].endswith(
        " live")))
    if down:
        raise ProblemError(503, "not ready: " + ", ".join(f"{k} {checks[k]}" for k in down),
                           headers={"Retry-After": "5"}, down=down, **checks)
    return {"status": "ready", **checks}


async def _metrics_reader(request: Request, db: DBDep, settings: SettingsDep,
                          creds: Credentials) -> None:
    """A token (or the session cookie) unless the operator opened /metrics
    (MICHECK_METRICS_OPEN=1) or every read (MICHECK_OPEN_READS=1)."""
    if not settings.metrics_open:
        await reader(request, db, settings, creds)


@router.get("/metrics", operation_id="get_metrics", response_class=Response,
            dependencies=[Depends(_metrics_reader)],
            responses={401: {"description": "no token (MICHECK_METRICS_OPEN=1 opens it)"}})
def metrics(m: MetricsDep) -> Response:
    """Prometheus metrics of this API process."""
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
