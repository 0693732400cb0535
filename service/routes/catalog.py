"""What the service accepts: estimators and data sets, with parameter schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from micheck.service.plugins import LivePlugins, catalog_row

from micheck import datasets as dataset_registry
from micheck import estimators as registry
from micheck.contract import DatasetSpec, EvaluationRequest
from micheck.definitions import ENGINE_VERSION

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.get("/estimators", operation_id="list_estimators")
def estimators(plugins: LivePlugins) -> list[dict[str, Any]]:
    """Every estimator a submission may name: the built-ins, then the plug-ins live workers
    report. Each with its definition (the equation it implements), version, the JSON
    schema of its params, and its origin: 'built-in', or the plug-in's distribution and
    version (``workers``: how many live workers have it)."""
    rows = [(e, None) for e in registry.entries()]
    rows += [(lp.entry, lp) for _, lp in sorted(plugins.items())]
    return [{"name": e.name, "family": e.family, "version": e.version, "source": e.definition,
             "definition": e.definition, "aliases": list(e.aliases),
             "engine_version": ENGINE_VERSION, **catalog_row(e, lp)}
            for e, lp in rows]


@router.get("/datasets", operation_id="list_datasets")
def datasets() -> list[dict[str, Any]]:
    schema = DatasetSpec.model_json_schema()
    return [{"name": d.name, "kind": d.kind, "shape": list(d.shape), "source": d.source,
             "version": d.version, "params": schema} for d in dataset_registry.entries()]


@router.get("/schema/evaluation-request", operation_id="get_request_schema")
def request_schema() -> dict[str, Any]:
    return EvaluationRequest.model_json_schema()
