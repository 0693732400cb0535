"""Report links that open in a browser: signed, expiring, read-only, no token in the URL.

    GET /v1/shared/{evaluation_id}/{expires}/{signature}/               the HTML report
    GET /v1/shared/{evaluation_id}/{expires}/{signature}/plots/{name}.png|.svg

``signature`` is HMAC-SHA256(secret, "report:{evaluation_id}:{expires}") in unpadded
base64url (RFC 2104; ``expires`` is a Unix time). The link grants exactly one thing:
reading that evaluation's report and its plots until ``expires``. A tampered link answers
403, an expired one 403, a link to a deleted evaluation 404. The secret is
``MICHECK_SHARE_SECRET``, or else a random one kept in ``<var_dir>/share-secret``;
changing it (``rotate_secret``, or deleting the file) revokes every link at once.

The expiry is rounded up to a whole hour, so the link in an evaluation's view (and the
view's ETag) stays the same between polls.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from micheck.service.deps import DBDep, SettingsDep
from micheck.service.problems import ProblemError
from micheck.service.report_pages import (
    HTML_HEADERS,
    evaluation_plot,
    images_mode,
    report_response,
)

from micheck.contract import EvaluationResult, EvaluationView, Problem
from micheck.settings import Settings
from micheck.storage import store
from micheck.storage.models import Evaluation

router = APIRouter(prefix="/v1/shared", tags=["reports"])
PROBLEMS = {s: {"model": Problem} for s in (403, 404, 409, 501)}
SECRET_FILE = "share-secret"
HOUR = 3600
# the link is the credential: keep it out of Referer headers and search indexes
_HEADERS = {**HTML_HEADERS, "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
IdP = Annotated[str, PathParam(max_length=64, pattern=r"^[0-9a-f]+$")]
ExpiresP = Annotated[int, PathParam(ge=0, le=2**40)]
SigP = Annotated[str, PathParam(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def secret(settings: Settings) -> bytes:
    """The HMAC key: the setting, else the var dir's file (created 0600 on first use)."""
    if settings.share_secret:
        return settings.share_secret.encode()
    path = Path(settings.var_dir) / SECRET_FILE
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return _create_secret(path)
    # every view carries a link: read the file again only when it changed (a rotation
    # replaces it: a new inode), not once per evaluation listed
    stamp = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
    cached = _cache.get("key")
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        return _create_secret(path)
    if not key:  # an empty file (made by hand) is no key
        return rotate_secret(settings)
    _cache["key"] = (stamp, key)
    return key


_cache: dict[str, tuple[tuple[str, int, int, int], bytes]] = {}


def _write_temp(path: Path, key: bytes) -> Path:
    """The key in a new temp file beside `path`, 0600, on disk: one name per writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return Path(tmp)


def _create_secret(path: Path) -> bytes:
    """Create the secret file unless another process does first; either way every
    process ends up with the one key the file holds. os.link makes the complete file
    appear under its name only if that name is free (no reader sees a partial key, no
    second writer replaces the first's key)."""
    key = secrets.token_urlsafe(32).encode()
    tmp = _write_temp(path, key)
    try:
        os.link(tmp, path)
        return key
    except FileExistsError:
        return path.read_bytes().strip()  # another process won: sign with its key
    finally:
        tmp.unlink(missing_ok=True)


def rotate_secret(settings: Settings) -> bytes:
    """Write a new random secret to the var dir: every link issued so far stops working.
    (With MICHECK_SHARE_SECRET set, change that setting instead.)"""
    path = Path(settings.var_dir) / SECRET_FILE
    key = secrets.token_urlsafe(32).encode()
    # atomic: a concurrent reader sees the old key or the new one
    os.replace(_write_temp(path, key), path)
    return key


def signature(settings: Settings, evaluation_id: str, expires: int) -> str:
    mac = hmac.new(secret(settings), f"report:{evaluation_id}:{expires}".encode(),
                   hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def share_path(settings: Settings, evaluation_id: str, *, now: float | None = None,
               ttl_s: int | None = None) -> str:
    """The link's path (relative to the service root), valid for at least ``ttl_s``."""
    ttl = settings.share_ttl_s if ttl_s is None else ttl_s
    expires = math.ceil(((time.time() if now is None else now) + ttl) / HOUR) * HOUR
    return f"/v1/shared/{evaluation_id}/{expires}/{signature(settings, evaluation_id, expires)}/"


def share_url(request: Request, settings: Settings, evaluation_id: str) -> str:
    """The absolute link as this request reached the service (proxy root path included)."""
    return str(request.base_url).rstrip("/") + share_path(settings, evaluation_id)


def with_link(view: EvaluationView, request: Request, settings: Settings) -> EvaluationView:
    return view.model_copy(update={"report_link": share_url(request, settings, view.id)})


def verify(settings: Settings, evaluation_id: str, expires: int, sig: str) -> None:
    """Raise 403 unless the signature is this server's and the link has not expired."""
    if not hmac.compare_digest(signature(settings, evaluation_id, expires), sig):
        raise ProblemError(403, "this report link is not valid (altered, or the server's "
                                "share secret changed): ask for a new one")
    if expires < time.time():
        raise ProblemError(403, "this report link has expired: ask for a new one")


def _load(db, evaluation_id: str) -> tuple[EvaluationView, EvaluationResult | None, int | None]:
    with db.session() as s:
        row = s.get(Evaluation, evaluation_id)
        if row is None:
            raise ProblemError(404, "no such evaluation")
        result = store.load_result(s, row) if row.status == store.OK else None
        return store.to_view(row), result, row.result_attempt


@router.get("/{evaluation_id}/{expires}/{sig}/", response_class=HTMLResponse,
            operation_id="get_shared_report",
            responses={200: {"content": {"text/html": {}}}, **PROBLEMS})
def shared_report(evaluation_id: IdP, expires: ExpiresP, sig: SigP, db: DBDep,
                  settings: SettingsDep) -> HTMLResponse:
    """One evaluation's HTML report through a signed link: no token needed."""
    verify(settings, evaluation_id, expires, sig)
    view, result, _ = _load(db, evaluation_id)
    return report_response(view, result, images=images_mode(), headers=_HEADERS)


def _shared_plot(evaluation_id: str, expires: int, sig: str, name: str, fmt: str, db,
                 settings: Settings) -> Response:
    verify(settings, evaluation_id, expires, sig)
    view, result, attempt = _load(db, evaluation_id)
    return evaluation_plot(evaluation_id, view, result, attempt, name, fmt)


NameP = Annotated[str, PathParam(max_length=64)]


@router.get("/{evaluation_id}/{expires}/{sig}/plots/{name}.png", response_class=Response,
            operation_id="get_shared_plot_png",
            responses={200: {"content": {"image/png": {}}}, **PROBLEMS})
def shared_plot_png(evaluation_id: IdP, expires: ExpiresP, sig: SigP, name: NameP, db: DBDep,
                    settings: SettingsDep) -> Response:
    return _shared_plot(evaluation_id, expires, sig, name, "png", db, settings)


@router.get("/{evaluation_id}/{expires}/{sig}/plots/{name}.svg", response_class=Response,
            operation_id="get_shared_plot_svg",
            responses={200: {"content": {"image/svg+xml": {}}}, **PROBLEMS})
def shared_plot_svg(evaluation_id: IdP, expires: ExpiresP, sig: SigP, name: NameP, db: DBDep,
                    settings: SettingsDep) -> Response:
    return _shared_plot(evaluation_id, expires, sig, name, "svg", db, settings)
