"""What the service accepts: estimators and data sets, with parameter schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from micheck.contract import DatasetSpec, EvaluationRequest
from micheck.definitions import DATASETS, ENGINE_VERSION, ESTIMATORS

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.get("/estimators", operation_id="list_estimators")
def estimators() -> list[dict[str, Any]]:
    return [{"name": d.name, "family": d.family, "version": d.version, "source": d.source,
             "aliases": list(d.aliases), "engine_version": ENGINE_VERSION,
             "params": {"type": "object", "properties": d.params, "additionalProperties": False}}
            for d in ESTIMATORS.values()]


@router.get("/datasets", operation_id="list_datasets")
def datasets() -> list[dict[str, Any]]:
    schema = DatasetSpec.model_json_schema()
    return [{"name": d.name, "kind": d.kind, "shape": list(d.shape), "source": d.source,
             "params": schema} for d in DATASETS.values()]


@router.get("/schema/evaluation-request", operation_id="get_request_schema")
def request_schema() -> dict[str, Any]:
    return EvaluationRequest.model_json_schema()
