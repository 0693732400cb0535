"""Regression against a baseline: GET /v1/evaluations/{id}/comparison[?baseline=...]."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from micheck.service.deps import DBDep, Reader, SettingsDep, visible_owner
from micheck.service.problems import ProblemError

from micheck.compare import compare
from micheck.contract import Comparison, Problem
from micheck.storage import store
from micheck.storage.baselines import find_baseline
from micheck.storage.models import Evaluation

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])
PROBLEMS = {s: {"model": Problem, "content": {"application/problem+json": {}}}
            for s in (401, 403, 404, 409, 422)}


@router.get("/{evaluation_id}/comparison", operation_id="get_comparison",
            response_model=Comparison, responses=PROBLEMS)
def comparison(evaluation_id: str, db: DBDep, settings: SettingsDep, caller: Reader,
               baseline: Annotated[str | None, Query(max_length=1000, description=(
                   "an evaluation id or labels 'k:v,k2:v2'; default: the request's "
                   "baseline"))] = None) -> Comparison:
    """Every point against the baseline's, paired by its full identity: the difference of
    the points' values, a pooled two-sample t test on the point's scale, and a regression
    verdict per point with Holm's procedure over the points (see micheck.compare)."""
    owner = visible_owner(caller, settings)
    with db.session() as s:
        row = s.get(Evaluation, evaluation_id)
        if row is None:
            raise ProblemError(404, "no such evaluation")
        if owner is not None and row.owner != owner:
            raise ProblemError(403, "this evaluation belongs to another token")
        query = baseline or row.request.get("baseline")
        if not query:
            raise ProblemError(422, "no baseline: the request named none; pass ?baseline=",
                               errors=[{"field": "baseline", "message": "required"}])
        if row.status != store.OK:
            raise ProblemError(409, f"evaluation is {row.status}", status_value=row.status)
        try:
            base = find_baseline(s, row, query, owner=owner)
        except ValueError as exc:
            raise ProblemError(422, str(exc), errors=[{"field": "baseline",
                                                       "message": str(exc)}]) from None
        if base is None:
            raise ProblemError(404, f"no baseline matches {query!r} (a succeeded evaluation "
                                    "of the same spec, created before this one)")
        if base.status != store.OK:
            raise ProblemError(409, f"baseline {base.id} is {base.status}",
                               status_value=base.status)
        return compare(store.load_result(s, row), store.load_result(s, base),
                       evaluation_id=row.id, baseline_id=base.id,
                       baseline_query=None if query == base.id else query)


def comparison_or_none(db, evaluation_id: str, owner: str | None) -> Comparison | None:
    """The comparison with the baseline the request named, for the report page; None when
    it named none or none is found (the page then shows no comparison section)."""
    with db.session() as s:
        row = s.get(Evaluation, evaluation_id)
        query = row.request.get("baseline") if row is not None else None
        if not query or row.status != store.OK:
            return None
        base = find_baseline(s, row, query, owner=owner)
        if base is None or base.status != store.OK:
            return None
        return compare(store.load_result(s, row), store.load_result(s, base),
                       evaluation_id=row.id, baseline_id=base.id,
                       baseline_query=None if query == base.id else query)
