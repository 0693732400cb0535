"""Plots and HTML reports of finished evaluations (rendered by clients.plots/report).

    GET /v1/evaluations/{id}/plots/{name}.png|.svg   one plot (names: clients.plots.available)
    GET /v1/evaluations/{id}/report[?embed=true]     HTML page; embed inlines the plots
    GET /v1/compare?ids=a,b,c[&embed=true]            several evaluations side by side
    GET /v1/compare/plots/{name}.png|.svg?ids=a,b,c  one plot with a line per evaluation

Reads need what every read needs (a token, the session cookie, or MICHECK_OPEN_READS=1;
``embed=true`` makes a page that stands alone). Headers, plot rendering and its cache:
micheck.service.report_pages (shared with the signed links of routes/share.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from micheck.service.auth import Caller
from micheck.service.deps import DBDep, Reader, SettingsDep, visible_owner
from micheck.service.problems import ProblemError
from micheck.service.report_pages import (
    HTML_HEADERS,
    evaluation_plot,
    images_mode,
    plot_response,
    report_response,
)
from micheck.service.routes.comparisons import comparison_or_none

from micheck.contract import EvaluationResult, EvaluationView, Problem
from micheck.render import report
from micheck.settings import Settings
from micheck.storage import store
from micheck.storage.models import Evaluation

router = APIRouter(prefix="/v1", tags=["reports"])
PROBLEMS = {s: {"model": Problem, "content": {"application/problem+json": {}}}
            for s in (401, 403, 404, 409, 422, 501)}
MAX_COMPARE = 12
EmbedQ = Annotated[bool, Query(description="inline the plots as data: URIs (a file that "
                                            "stands alone); default: links to the plot URLs")]


def _load(db, evaluation_id: str, caller: Caller, settings: Settings
          ) -> tuple[EvaluationView, EvaluationResult | None, int | None]:
    """The view, the result when it succeeded, and the result's attempt (a cache key)."""
    with db.session() as s:
        row = s.get(Evaluation, evaluation_id)
        if row is None:
            raise ProblemError(404, f"no such evaluation: {evaluation_id}")
        owner = visible_owner(caller, settings)
        if owner is not None and row.owner != owner:
            raise ProblemError(403, "this evaluation belongs to another token")
        view = store.to_view(row)
        result = store.load_result(s, row) if row.status == store.OK else None
        return view, result, row.result_attempt


def _one_plot(evaluation_id: str, name: str, fmt: str, db, settings: Settings,
              caller: Caller) -> Response:
    view, result, attempt = _load(db, evaluation_id, caller, settings)
    return evaluation_plot(evaluation_id, view, result, attempt, name, fmt)


@router.get("/evaluations/{evaluation_id}/plots/{name}.png", operation_id="get_plot_png",
            response_class=Response,
            responses={200: {"content": {"image/png": {}}}, **PROBLEMS})
def plot_png(evaluation_id: str, name: str, db: DBDep, settings: SettingsDep,
             caller: Reader) -> Response:
    """A plot of a succeeded evaluation, e.g. ``additivity.png`` (see the report page)."""
    return _one_plot(evaluation_id, name, "png", db, settings, caller)


@router.get("/evaluations/{evaluation_id}/plots/{name}.svg", operation_id="get_plot_svg",
            response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}, **PROBLEMS})
def plot_svg(evaluation_id: str, name: str, db: DBDep, settings: SettingsDep,
             caller: Reader) -> Response:
    return _one_plot(evaluation_id, name, "svg", db, settings, caller)


@router.get("/evaluations/{evaluation_id}/report", operation_id="get_report",
            response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {}}}, **PROBLEMS})
def report_page(evaluation_id: str, db: DBDep, settings: SettingsDep, caller: Reader,
                embed: EmbedQ = False) -> HTMLResponse:
    """Spec, verdict table, plots, diagnostics and provenance of one evaluation (a status
    page while it has no result)."""
    view, result, _ = _load(db, evaluation_id, caller, settings)
    comparison = (comparison_or_none(db, evaluation_id, visible_owner(caller, settings))
                  if result is not None and view.request.baseline else None)
    return report_response(view, result, images=images_mode(embed), comparison=comparison)


def _ids(ids: str) -> list[str]:
    out = list(dict.fromkeys(i.strip() for i in ids.split(",") if i.strip()))
    if not out or len(out) > MAX_COMPARE:
        raise ProblemError(422, f"ids: give 1 to {MAX_COMPARE} evaluation ids, comma-separated",
                           errors=[{"field": "ids", "message": "1 to 12 ids"}])
    return out


def _entries(ids: list[str], db, settings: Settings, caller: Caller
             ) -> tuple[list[report.Entry], tuple]:
    entries, key = [], []
    for eid in ids:
        view, result, attempt = _load(db, eid, caller, settings)
        entries.append(report.Entry(view, result, link=f"evaluations/{eid}/report"))
        key.append((eid, attempt))
    return entries, tuple(key)


IdsQ = Annotated[str, Query(max_length=2000, description="comma-separated evaluation ids")]


@router.get("/compare", operation_id="compare_report", response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {}}}, **PROBLEMS})
def compare_page(ids: IdsQ, db: DBDep, settings: SettingsDep, caller: Reader,
                 embed: EmbedQ = False) -> HTMLResponse:
    """Several evaluations (e.g. estimators on one data set) side by side."""
    from urllib.parse import quote

    id_list = _ids(ids)
    entries, _ = _entries(id_list, db, settings, caller)
    q = quote(",".join(id_list), safe=",")
    page = report.render_compare(entries, images=images_mode(embed),
                                 plot_url=lambda name, fmt: f"compare/plots/{name}.{fmt}?ids={q}")
    return HTMLResponse(page, headers=HTML_HEADERS)


def _compareplot_response(ids: str, name: str, fmt: str, db, settings: Settings,
                  caller: Caller) -> Response:
    entries, key = _entries(_ids(ids), db, settings, caller)
    series = report.compare_series(entries)
    if not series:
        raise ProblemError(409, "none of these evaluations has succeeded yet")
    return plot_response(("compare", key, name, fmt), series, name, fmt)


@router.get("/compare/plots/{name}.png", operation_id="get_compare_plot_png",
            response_class=Response,
            responses={200: {"content": {"image/png": {}}}, **PROBLEMS})
def compare_plot_png(name: str, ids: IdsQ, db: DBDep, settings: SettingsDep,
                     caller: Reader) -> Response:
    return _compareplot_response(ids, name, "png", db, settings, caller)


@router.get("/compare/plots/{name}.svg", operation_id="get_compare_plot_svg",
            response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}, **PROBLEMS})
def compare_plot_svg(name: str, ids: IdsQ, db: DBDep, settings: SettingsDep,
                     caller: Reader) -> Response:
    return _compareplot_response(ids, name, "svg", db, settings, caller)
