"""The client served by the service (service/routes/client_dist.py): a wheel of this
installation, redirected to from /v1/client, with a correct RECORD and METADATA.
(tests/clients/test_install.py installs it with pip into a fresh environment.)"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from email.parser import Parser

from micheck.service.routes import client_dist

import micheck

WHEEL = f"micheck-{micheck.__version__}-py3-none-any.whl"


def test_client_redirects_to_a_valid_wheel_without_a_token(client, service_settings):
    r = client.get("/v1/client", follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == f"http://testserver/v1/client/{WHEEL}"
    r = client.get(f"/v1/client/{WHEEL}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    names = zf.namelist()
    for part in ("micheck/__init__.py", "micheck/clients/client.py", "micheck/clients/cli.py",
                 "micheck/service/app.py", "micheck/workers/engine.py",
                 "micheck/storage/migrations/script.py.mako",
                 "micheck/storage/migrations/versions/0001_initial_schema.py"):
        assert part in names, part
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    info = f"micheck-{micheck.__version__}.dist-info"
    # PEP 376 RECORD: every other file listed with its sha256 and size
    record = [line.split(",") for line in zf.read(f"{info}/RECORD").decode().splitlines()]
    assert {row[0] for row in record} == set(names)
    for name, digest, size in record:
        if name.endswith("RECORD"):
            assert digest == size == ""
            continue
        data = zf.read(name)
        want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
        assert digest == f"sha256={want}" and int(size) == len(data)
    meta = Parser().parsestr(zf.read(f"{info}/METADATA").decode())
    assert meta["Name"] == "micheck" and meta["Version"] == micheck.__version__
    base = {r.split(";")[0].split("<")[0].split(">")[0].split("=")[0].strip()
            for r in meta.get_all("Requires-Dist") if "extra ==" not in r}
    assert base == {"pydantic", "pydantic-settings", "httpx", "pyyaml", "jinja2"}  # no torch
    assert "micheck = micheck.cli:main" in zf.read(f"{info}/entry_points.txt").decode()
    assert "Root-Is-Purelib: true" in zf.read(f"{info}/WHEEL").decode()
    # same sources, same bytes (a restarted service serves an identical file)
    rebuilt = client_dist.build_wheel(service_settings.var_dir / "again")
    assert rebuilt.read_bytes() == r.content
    r = client.get("/v1/client/micheck-9.9.9-py3-none-any.whl")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
