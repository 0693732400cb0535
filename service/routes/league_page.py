"""The league page: GET /league?suite=standard[&version=1].

A table with one line per suite point and one column per estimator config; each cell is
the stored row's value, interval and verdict, linked to its evaluation's report, with a
link to the point's history plot. Clicking a column header sorts the lines by it (a few
lines of inline script, allowed by its hash in the page's Content-Security-Policy; the
table reads in point order without it). Jinja2, autoescaped (service/templates/).
"""

from __future__ import annotations

import base64
import hashlib
import math
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from micheck.service.deps import DBDep, SettingsDep, page_viewer, visible_owner
from micheck.service.problems import ProblemError
from micheck.service.routes.league import league_of
from micheck.service.routes.pages import CSP, HEADERS, TEMPLATES

import micheck
from micheck.contract import League, LeagueRow

router = APIRouter(tags=["pages"], include_in_schema=False)

# sorts tbody rows by the clicked header's column (data-sort on each cell; blanks last)
SORT_JS = """document.querySelectorAll('table.league th[data-col]').forEach(function (th) {
  th.addEventListener('click', function () {
    var col = +th.dataset.col, body = th.closest('table').tBodies[0];
    var up = th.dataset.dir !== 'asc'; th.dataset.dir = up ? 'asc' : 'desc';
    var key = function (tr) { var v = tr.cells[col].dataset.sort; return v === undefined ? '' : v; };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
      if (x === '' || y === '') { return (x === '') - (y === ''); }
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return up ? c : -c;
    }).forEach(function (tr) { body.appendChild(tr); });
  });
});"""
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SORT_JS.encode()).digest()).decode()
PAGE_HEADERS = {**HEADERS, "Content-Security-Policy":
                CSP + f"; script-src 'sha256-{SCRIPT_HASH}'"}


def _num(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _cell(row: LeagueRow, suite: str, version: int) -> dict[str, object]:
    """One table cell: the row's value, interval, verdict and links."""
    verdict = row.verdict or ""
    interval = (f"[{_num(row.ci_low)}, {_num(row.ci_high)}]"
                if row.ci_low is not None and row.ci_high is not None else "")
    history = "v1/league/history.png?" + urlencode({
        "suite": suite, "version": version, "point": row.point, "estimator": row.estimator})
    return {"value": _num(row.value), "interval": interval, "verdict": verdict,
            "verdict_class": {"pass": "pass", "fail": "fail"}.get(verdict, "other"),
            "sort": "" if row.value is None or not math.isfinite(row.value) else
            repr(row.value), "report": row.report, "history": history,
            "code_version": row.code_version, "reason": row.reason,
            "evaluation_id": row.evaluation_id}


def table(league: League) -> tuple[list[str], list[dict[str, object]]]:
    """(configs, lines): one line per point, its cells by config (None: no result yet)."""
    configs = sorted({r.config for r in league.rows})
    by_key = {(r.point, r.config): r for r in league.rows}
    lines = []
    for p in league.points:
        cells = []
        for cfg in configs:
            row = by_key.get((p.id, cfg))
            cells.append(None if row is None else _cell(row, league.suite, league.version))
        lines.append({"id": p.id, "title": p.title, "cells": cells})
    return configs, lines


@router.get("/league", operation_id="page_league", response_class=HTMLResponse)
def league_page(request: Request, db: DBDep, settings: SettingsDep) -> Response:
    """The league of ``suite`` (default standard) at ``version`` (default the newest) for
    this caller (a token or the session cookie; anyone's with open reads)."""
    caller = page_viewer(request, db, settings)
    if caller is None:
        return RedirectResponse("login", status_code=303)
    q = request.query_params
    name = (q.get("suite") or "standard").strip()
    version_text = (q.get("version") or "").strip()
    if version_text and not (version_text.isdigit() and len(version_text) <= 7
                             and int(version_text) >= 1):
        raise ProblemError(422, "version: a whole number from 1",
                           errors=[{"field": "version", "message": "1 or more"}])
    if len(name) > 32:
        raise ProblemError(422, "suite: at most 32 characters")
    league = league_of(db, name, int(version_text) if version_text else None,
                       visible_owner(caller, settings))
    configs, lines = table(league)
    page = TEMPLATES.get_template("league.html").render(
        version=micheck.__version__, league=league, configs=configs, lines=lines,
        who=caller.name, script=Markup(SORT_JS),  # noqa: S704 (a constant, hashed in the CSP)
        csv_link="v1/league.csv?" + urlencode({"suite": league.suite,
                                               "version": league.version}))
    return HTMLResponse(page, headers=PAGE_HEADERS)
