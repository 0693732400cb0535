"""Suites and the league table.

    GET /v1/suites                     every suite version: the code's registry and those
                                       stored on this server
    GET /v1/suites/{name}              one suite version (default: the newest), stored on
                                       first use (``micheck suite run`` reads it from here)
    GET /v1/league?suite=&version=     one row per (estimator config, suite point) from
                                       the latest succeeded evaluation labelled for the
                                       point (``Accept: text/csv``: the CSV)
    GET /v1/league.csv                 the same rows as CSV
    GET /v1/league/history             one point's value over code versions (JSON)
    GET /v1/league/history.png         the same, plotted (needs matplotlib: 501 without)

A suite version's definition is stored the first time it is used (micheck.storage.suites)
and read from the database from then on; the league's numbers are the stored ratio rows
(micheck.storage.league), never recomputed. Unknown suite names and points are 422 (the
query names the field), an unknown version of a known suite 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from micheck.service.deps import DBDep, Reader, SettingsDep, visible_owner
from micheck.service.problems import ProblemError
from micheck.service.routes.exports import wants_csv

from micheck import suites as registry
from micheck.contract import League, LeagueHistory, Problem, SuitePointView, SuiteView
from micheck.definitions import canonical_estimator
from micheck.render.league import league_csv
from micheck.storage.db import Database
from micheck.storage.league import league_rows, point_history
from micheck.storage.suites import stored_suite, stored_versions, use_suite
from micheck.suites import Suite

router = APIRouter(prefix="/v1", tags=["league"])
PROBLEMS = {s: {"model": Problem, "content": {"application/problem+json": {}}}
            for s in (401, 403, 404, 422)}
CSV_MEDIA = "text/csv; charset=utf-8"
SuiteQ = Annotated[str, Query(max_length=32, description="suite name, e.g. standard")]
VersionQ = Annotated[int | None, Query(ge=1, le=1_000_000, description=(
    "suite version (default: the newest registered or stored)"))]


def _unknown_suite(name: str) -> ProblemError:
    known = ", ".join(registry.names()) or "none"
    return ProblemError(422, f"suite: no suite named {name[:40]!r}; known: {known}",
                        errors=[{"field": "suite", "message": "unknown suite"}])


def resolve_suite(db: Database, name: str, version: int | None, *, status: int = 422
                  ) -> tuple[Suite, datetime]:
    """The stored definition of (name, version), storing the registry's entry on first
    use; ``version`` None: the newest version registered or stored. An unknown name is a
    ``status`` problem (422 for a query, 404 for a path), an unknown version 404."""
    with db.session() as s:
        stored = [v for n, v, _ in stored_versions(s) if n == name]
        registered = [x.version for x in registry.entries() if x.name == name]
        if not stored and not registered:
            if status == 404:
                raise ProblemError(404, f"no suite named {name[:40]!r}")
            raise _unknown_suite(name)
        if version is None:
            version = max([*stored, *registered])
        found = stored_suite(s, name, version)
        if found is None:
            if version not in registered:
                raise ProblemError(404, f"suite {name} has no version {version} (stored: "
                                        f"{stored or 'none'}, registered: {registered})")
            found = use_suite(s, registry.get(name, version))
        return found


def _points(suite: Suite) -> list[SuitePointView]:
    return [SuitePointView(id=p.id, title=p.title, spec=p.spec,
                           row=p.row.model_dump(mode="json", exclude_none=True))
            for p in suite.points]


def _view(suite: Suite, stored_at: datetime | None) -> SuiteView:
    return SuiteView(name=suite.name, version=suite.version, title=suite.title,
                     points=_points(suite), stored_at=stored_at)


@router.get("/suites", operation_id="list_suites", response_model=list[SuiteView],
            responses=PROBLEMS)
def list_suites(db: DBDep, caller: Reader) -> list[SuiteView]:
    """Every suite version: those stored on this server (as stored) and those registered
    in this code and not yet used (``stored_at`` null), by name then version."""
    out: dict[tuple[str, int], SuiteView] = {}
    with db.session() as s:
        for name, version, at in stored_versions(s):
            found = stored_suite(s, name, version)
            if found is not None:
                out[(name, version)] = _view(found[0], at)
    for suite in registry.entries():
        out.setdefault((suite.name, suite.version), _view(suite, None))
    return [out[k] for k in sorted(out)]


@router.get("/suites/{name}", operation_id="get_suite", response_model=SuiteView,
            responses=PROBLEMS)
def get_suite(name: str, db: DBDep, caller: Reader, version: VersionQ = None) -> SuiteView:
    """One suite version as stored (stored now if this is its first use): the points a
    submission of it runs, each a partial request without the estimator."""
    suite, at = resolve_suite(db, name, version, status=404)
    return _view(suite, at)


def league_of(db: Database, name: str, version: int | None, owner: str | None) -> League:
    """The league of a suite version for this reader (``owner`` None: everyone's)."""
    suite, at = resolve_suite(db, name, version)
    with db.session() as s:
        rows = league_rows(s, suite, owner=owner)
    return League(suite=suite.name, version=suite.version, title=suite.title, stored_at=at,
                  points=_points(suite), rows=rows)


def _csv(league: League) -> Response:
    return Response(league_csv(league), media_type=CSV_MEDIA, headers={
        "Content-Disposition": f'attachment; filename="league-{league.suite}-'
                               f'v{league.version}.csv"'})


@router.get("/league", operation_id="get_league", response_model=League,
            responses={200: {"content": {"text/csv": {}}}, **PROBLEMS})
def league(request: Request, suite: SuiteQ, db: DBDep, settings: SettingsDep, caller: Reader,
           version: VersionQ = None) -> League | Response:
    """One row per (estimator config, suite point): the stored ratio row (value, interval,
    verdict, reason), code version and evaluation id of the latest succeeded evaluation
    labelled for the point (``suite``, ``suite_version``, ``suite_point``). Failed,
    canceled and unfinished evaluations never count. ``Accept: text/csv``: the CSV."""
    result = league_of(db, suite, version, visible_owner(caller, settings))
    if wants_csv(request.headers.get("accept", "")):
        return _csv(result)
    return result


@router.get("/league.csv", operation_id="get_league_csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}, **PROBLEMS})
def league_as_csv(suite: SuiteQ, db: DBDep, settings: SettingsDep, caller: Reader,
                  version: VersionQ = None) -> Response:
    """The league's rows as CSV (micheck.render.league: the JSON rows' fields)."""
    return _csv(league_of(db, suite, version, visible_owner(caller, settings)))


def history_of(db: Database, name: str, version: int | None, point: str, estimator: str,
               owner: str | None) -> LeagueHistory:
    """One point's value for one estimator over code versions (micheck.storage.league)."""
    suite, _ = resolve_suite(db, name, version)
    if point not in suite.point_ids:
        raise ProblemError(422, f"point: suite {suite.name} v{suite.version} has no point "
                                f"{point[:120]!r}",
                           errors=[{"field": "point", "message": "unknown point"}])
    name_ = canonical_estimator(estimator.strip().lower())
    with db.session() as s:
        entries = point_history(s, suite, point, name_, owner=owner)
    return LeagueHistory(suite=suite.name, version=suite.version, point=point,
                         estimator=name_, entries=entries)


PointQ = Annotated[str, Query(max_length=120, description="a point id of the suite")]
EstimatorQ = Annotated[str, Query(max_length=64, description="estimator name")]


@router.get("/league/history", operation_id="get_league_history",
            response_model=LeagueHistory, responses=PROBLEMS)
def history(suite: SuiteQ, point: PointQ, estimator: EstimatorQ, db: DBDep,
            settings: SettingsDep, caller: Reader, version: VersionQ = None) -> LeagueHistory:
    """The point's value, interval and verdict per code version and estimator config: the
    latest succeeded evaluation of each, oldest code version first."""
    return history_of(db, suite, version, point, estimator, visible_owner(caller, settings))


@router.get("/league/history.png", operation_id="get_league_history_png",
            response_class=Response,
            responses={200: {"content": {"image/png": {}}}, 501: PROBLEMS[422], **PROBLEMS})
def history_png(suite: SuiteQ, point: PointQ, estimator: EstimatorQ, db: DBDep,
                settings: SettingsDep, caller: Reader, version: VersionQ = None) -> Response:
    """The history plotted: value and stored interval per code version, one line per
    config (501 when the server has no matplotlib)."""
    from micheck.service.report_pages import has_matplotlib

    data = history_of(db, suite, version, point, estimator, visible_owner(caller, settings))
    if not has_matplotlib():
        raise ProblemError(501, "plots need matplotlib on the server "
                                "(pip install 'micheck[report]')", title="Not implemented")
    from micheck.render.league import history_plot

    return Response(history_plot(data, "png"), media_type="image/png",
                    headers={"Cache-Control": "private, no-cache"})
