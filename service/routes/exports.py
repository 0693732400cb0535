"""A finished evaluation's numbers as CSV: GET /v1/evaluations/{id}/results.csv (also
GET /v1/evaluations/{id}/results with ``Accept: text/csv``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from micheck.service.deps import DBDep, Reader, SettingsDep, visible_evaluation
from micheck.service.problems import ProblemError

from micheck.contract import Problem
from micheck.render.export import results_csv
from micheck.storage import store
from micheck.storage.models import Evaluation

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])
PROBLEMS = {s: {"model": Problem, "content": {"application/problem+json": {}}}
            for s in (401, 403, 404, 409)}
MEDIA = "text/csv; charset=utf-8"


def wants_csv(accept: str) -> bool:
    """True when the Accept header prefers text/csv to JSON (q-values honoured)."""
    best: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        best[media.lower()] = max(q, best.get(media.lower(), 0.0))
    csv_q = best.get("text/csv", 0.0)
    json_q = max(best.get("application/json", 0.0), best.get("*/*", 0.0),
                 best.get("application/*", 0.0))
    return csv_q > 0 and csv_q >= json_q and "text/csv" in best


def csv_response(db, evaluation_id: str, caller, settings) -> Response:
    with db.session() as s:
        row = visible_evaluation(s.get(Evaluation, evaluation_id), caller, settings)
        if row.status != store.OK:
            why = f": {row.error_code}: {row.error_message}" if row.error_code else ""
            raise ProblemError(409, f"evaluation is {row.status}{why}", status_value=row.status)
        result = store.load_result(s, row)
    return Response(results_csv(result, evaluation_id), media_type=MEDIA, headers={
        "Content-Disposition": f'attachment; filename="micheck-{evaluation_id}.csv"'})


@router.get("/{evaluation_id}/results.csv", operation_id="get_results_csv",
            response_class=Response,
            responses={200: {"content": {"text/csv": {}}}, **PROBLEMS})
def results_as_csv(evaluation_id: str, db: DBDep, settings: SettingsDep,
                   caller: Reader) -> Response:
    """One row per (test point, seed): ratio, the two estimates it divides, steps, and the
    point's interval and verdict (see micheck.render.export for the columns)."""
    return csv_response(db, evaluation_id, caller, settings)
