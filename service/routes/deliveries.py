"""The webhook delivery log of an evaluation: GET /v1/evaluations/{id}/deliveries."""

from __future__ import annotations

from fastapi import APIRouter
from micheck.service.deps import DBDep, Reader, SettingsDep, visible_evaluation

from micheck.contract import DeliveryView, Problem
from micheck.storage import deliveries
from micheck.storage.models import Evaluation

router = APIRouter(prefix="/v1/evaluations", tags=["webhooks"])
PROBLEMS = {s: {"model": Problem, "content": {"application/problem+json": {}}}
            for s in (401, 403, 404)}


@router.get("/{evaluation_id}/deliveries", operation_id="list_deliveries",
            response_model=list[DeliveryView],
            responses=PROBLEMS)
def list_deliveries(evaluation_id: str, db: DBDep, settings: SettingsDep,
                    caller: Reader) -> list[DeliveryView]:
    """Every webhook delivery of this evaluation (oldest first) with each try's outcome.
    URLs are shown without their query string; secrets never."""
    with db.session() as s:
        visible_evaluation(s.get(Evaluation, evaluation_id), caller, settings)
        return deliveries.list_deliveries(s, evaluation_id)
