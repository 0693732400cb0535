"""Liveness, readiness (database and Redis answer) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from micheck.service.deps import DBDep, MetricsDep, QueueDep
from micheck.service.problems import ProblemError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz")
def readyz(db: DBDep, jq: QueueDep) -> dict[str, str]:
    checks = {}
    try:
        with db.session() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        raise ProblemError(503, f"database unreachable: {type(exc).__name__}") from None
    try:
        jq.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        raise ProblemError(503, f"redis unreachable: {type(exc).__name__}") from None
    return {"status": "ready", **checks}


@router.get("/metrics", operation_id="get_metrics", response_class=Response)
def metrics(request: Request, m: MetricsDep) -> Response:
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
