"""Browser pages: the evaluations list at ``/`` and a sign-in form that sets a cookie.

    GET  /          evaluations, newest first, filterable (status, estimator, dataset,
                    label key:value, created range), each linking to its report and CSV
    GET  /login     the sign-in form; POST /login takes a token and sets the session
                    cookie (HttpOnly, SameSite=Strict); POST /logout clears it

Templates are Jinja2 with autoescaping on (service/templates/). The cookie holds the
token itself (tokens are already random and stored hashed) and is honoured for GET and
HEAD only (service/deps.py), so the report and plot URLs load in a signed-in browser
without a token in the URL, and no write can ride on it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader
from micheck.service import auth
from micheck.service.deps import (
    SESSION_COOKIE,
    DBDep,
    SettingsDep,
    page_viewer,
    visible_owner,
)
from micheck.service.listing import parse_label_filters, parse_limit, parse_time
from micheck.service.problems import ProblemError

import micheck
from micheck.contract import EvaluationStatus
from micheck.definitions import canonical_estimator
from micheck.storage import deliveries, store

router = APIRouter(tags=["pages"], include_in_schema=False)
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).resolve().parent.parent
                                                / "templates"), autoescape=True)
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Cache-Control": "no-store", "Referrer-Policy": "same-origin"}
COOKIE_MAX_AGE = 7 * 86400


def _html(template: str, status: int = 200, **context: object) -> HTMLResponse:
    page = TEMPLATES.get_template(template).render(version=micheck.__version__, **context)
    return HTMLResponse(page, status_code=status, headers=HEADERS)


@router.get("/", operation_id="page_evaluations", response_class=HTMLResponse)
def evaluations_page(request: Request, db: DBDep, settings: SettingsDep) -> Response:
    """The evaluations this caller may see (a token in the Authorization header or the
    session cookie; anyone's with open reads), ``limit`` (default 50) a page."""
    caller = page_viewer(request, db, settings)
    if caller is None:
        return RedirectResponse("login", status_code=303)
    q = request.query_params
    status = q.get("status") or None
    if status and status not in {s.value for s in EvaluationStatus}:
        raise ProblemError(422, f"status: {status[:20]!r} is not a status")
    estimator = q.get("estimator", "").strip().lower() or None
    dataset = q.get("dataset", "").strip() or None
    label_items = [x.strip() for x in q.getlist("label") if x.strip()]
    labels = parse_label_filters(label_items)
    limit = parse_limit(q.get("limit", ""))
    after, before = (parse_time(q.get("created_after"), "created_after"),
                     parse_time(q.get("created_before"), "created_before"))
    with db.session() as s:
        try:
            rows, nxt = store.list_evaluations(
                s, owner=visible_owner(caller, settings),
                estimator=canonical_estimator(estimator) if estimator else None,
                dataset=dataset, status=status, limit=limit, cursor=q.get("cursor") or None,
                labels=labels, created_after=after, created_before=before)
        except ValueError as exc:
            raise ProblemError(422, f"cursor: {exc}") from None
        counts = deliveries.verdict_counts(s, [r.id for r in rows])
        views = [store.to_view(r) for r in rows]
    items = []
    for v in views:
        verdict = v.verdict if v.status == EvaluationStatus.succeeded else None
        items.append({
            "id": v.id, "status": v.status.value, "created": v.created_at.strftime(
                "%Y-%m-%d %H:%M:%S"), "estimator": v.request.estimator.name,
            "dataset": v.request.dataset.name, "label": v.request.label,
            "labels": sorted(v.request.labels.items()), "counts": counts.get(v.id),
            "verdict": None if verdict is None else verdict.upper(),
            "verdict_class": {"pass": "pass", "fail": "fail"}.get(verdict or "", "other"),
            "error": f"{v.error.code}: {v.error.message}"[:200] if v.error else None})
    kept = [(k, val) for k, val in q.multi_items() if k != "cursor" and val]
    next_url = "?" + urlencode([*kept, ("cursor", nxt)]) if nxt else None
    filters = {"status": status, "estimator": q.get("estimator"), "dataset": dataset,
               "label_text": " ".join(label_items), "created_after": q.get("created_after"),
               "created_before": q.get("created_before")}
    return _html("evaluations.html", rows=items, next_url=next_url, filters=filters,
                 statuses=[s.value for s in EvaluationStatus], who=caller.name)


@router.get("/login", operation_id="page_login_form", response_class=HTMLResponse)
def login_form() -> HTMLResponse:
    return _html("login.html")


def _same_origin(request: Request) -> bool:
    """A browser names the page a form was posted from; refuse other sites' forms."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


@router.post("/login", operation_id="page_login", response_class=HTMLResponse)
async def login(request: Request, db: DBDep) -> Response:
    if not _same_origin(request):
        raise ProblemError(403, "sign-in forms are accepted from this site only")
    if request.headers.get("content-type", "").split(";")[0].strip() != \
            "application/x-www-form-urlencoded":
        raise ProblemError(415, "post the sign-in form (application/x-www-form-urlencoded)")
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=5)
    token = (form.get("token") or [""])[0].strip()
    caller = auth.lookup(db, token) if token and len(token) <= 200 else None
    if caller is None:
        return _html("login.html", status=401, error="That token is unknown or revoked.")
    resp = RedirectResponse("./", status_code=303, headers=HEADERS)
    resp.set_cookie(SESSION_COOKIE, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True,
                    samesite="strict", secure=request.url.scheme == "https")
    return resp


@router.post("/logout", operation_id="page_logout")
def logout(request: Request) -> Response:
    if not _same_origin(request):
        raise ProblemError(403, "sign-out forms are accepted from this site only")
    resp = RedirectResponse("login", status_code=303, headers=HEADERS)
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return resp
