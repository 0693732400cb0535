"""The client where no package index has it: the service serves its own package as a wheel.

    GET /v1/client                                   307 to the wheel below (no token)
    GET /v1/client/micheck-<version>-py3-none-any.whl

The wheel is this installation's ``micheck`` package (the same files and metadata a
``pip wheel .`` of the same sources gives: every part, package data included), assembled
with ``zipfile`` on the first request of each process into ``<var_dir>/client/``. Its
base requirements are the client's (pydantic, pydantic-settings, httpx, pyyaml, jinja2); torch,
FastAPI and the rest stay behind extras, so a CI runner installs it in seconds::

    pip install "$MICHECK_URL/v1/client/micheck-0.1.0-py3-none-any.whl"

pip decides that a URL is a wheel from its file name, so give it the redirect's target
(the CI examples resolve it with one line of Python).

Wheel layout: PEP 427 (binary distribution format) with PEP 376/PEP 627 RECORD hashes
(sha256, unpadded urlsafe base64); zip entries carry a fixed timestamp so the same
sources always give the same bytes.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import threading
import zipfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse
from micheck.service.deps import SettingsDep
from micheck.service.problems import ProblemError

from micheck.contract import Problem
from micheck.settings import Settings

router = APIRouter(prefix="/v1/client", tags=["client"])
DIST = "micheck"
# the parts pyproject's package-dir maps into micheck from folders of their own; the
# packages inside micheck/ itself are found by walking it
MAPPED_PARTS = ("micheck.service", "micheck.workers", "micheck.clients")
# pyproject's [tool.setuptools.package-data]: files besides modules that ship in packages
PACKAGE_DATA = ("*.py", "*.ini", "*.mako", "*.html", "*.css", "*.yml", "*.yaml")
# pyproject's per-package data in sub-folders (tool.setuptools.package-data)
DATA_GLOBS = {"micheck.service": ("templates/*.html",),
              "micheck.render": ("templates/*.html", "templates/*.css")}
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_lock = threading.Lock()
_built: dict[Path, Path] = {}  # var dir -> wheel built by this process


def wheel_name(version: str) -> str:
    return f"{DIST}-{version}-py3-none-any.whl"


def _packages() -> list[tuple[str, Path]]:
    """(dotted name, directory) of every package of the installed micheck."""
    found: list[tuple[str, Path]] = []
    for root in ("micheck", *MAPPED_PARTS):
        spec = importlib.util.find_spec(root)
        if spec is None or not spec.submodule_search_locations:
            raise ProblemError(500, f"cannot find the installed package {root}")
        base = Path(next(iter(spec.submodule_search_locations)))
        for init in sorted(base.rglob("__init__.py")):
            rel = init.parent.relative_to(base).parts
            if "__pycache__" in rel:
                continue
            # a folder counts only when every folder between it and the root is a package
            if all((base.joinpath(*rel[:i]) / "__init__.py").exists() for i in range(len(rel))):
                found.append((".".join([root, *rel]), init.parent))
    return found


def _members() -> list[tuple[str, bytes]]:
    """(path in the wheel, content) of every module and package-data file."""
    out = []
    for package, directory in _packages():
        files = [f for f in directory.iterdir()
                 if f.is_file() and any(fnmatch.fnmatch(f.name, p) for p in PACKAGE_DATA)]
        for pattern in DATA_GLOBS.get(package, ()):
            files += [f for f in directory.glob(pattern) if f.is_file()]
        for f in sorted(set(files)):
            rel = f.relative_to(directory).as_posix()
            out.append((f"{package.replace('.', '/')}/{rel}", f.read_bytes()))
    return out


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
    return f"sha256={digest}"


def _metadata(dist: importlib.metadata.Distribution) -> tuple[str, str]:
    """The installed distribution's core metadata and console scripts."""
    meta = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if not meta or not re.search(r"^Requires-Dist: ", meta, re.M):
        raise ProblemError(500, "the installed micheck has no dependency metadata")
    scripts = (dist.read_text("entry_points.txt")
               or "[console_scripts]\nmicheck = micheck.cli:main\n")
    return meta, scripts


def build_wheel(dest: Path) -> Path:
    """Write this installation's wheel into ``dest`` (atomically) and return its path."""
    dist = importlib.metadata.distribution(DIST)
    version = dist.version
    meta, scripts = _metadata(dist)
    info = f"{DIST}-{version}.dist-info"
    files = _members()
    files += [(f"{info}/METADATA", meta.encode()),
              (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: micheck.service "
                                b"(served client)\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
              (f"{info}/entry_points.txt", scripts.encode())]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    files.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / wheel_name(version)
    tmp = dest / f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            entry = zipfile.ZipInfo(name, EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, data)
    os.replace(tmp, target)
    return target


def served_wheel(settings: Settings) -> Path:
    """The wheel for this process: built once per process (sources may have changed since
    the last start), then reused."""
    dest = Path(settings.var_dir) / "client"
    with _lock:
        path = _built.get(dest)
        if path is None or not path.exists():
            path = _built[dest] = build_wheel(dest)
        return path


@router.get("", operation_id="get_client", response_class=RedirectResponse, status_code=307,
            responses={307: {"description": "to the wheel of this service's version"},
                       500: {"model": Problem}})
def client(request: Request, settings: SettingsDep) -> RedirectResponse:
    """Where this service's client wheel is: pip needs that URL (it ends in .whl)."""
    path = served_wheel(settings)
    return RedirectResponse(str(request.url_for("client_wheel", filename=path.name)),
                            status_code=307)


@router.get("/{filename}", operation_id="get_client_wheel", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}},
                       404: {"model": Problem}, 500: {"model": Problem}})
def client_wheel(filename: str, settings: SettingsDep) -> FileResponse:
    """The wheel: ``pip install`` this URL (no token needed; the package is not secret)."""
    path = served_wheel(settings)
    if filename != path.name:
        raise ProblemError(404, f"this service serves {path.name}")
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)
