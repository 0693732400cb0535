"""A full disk (#14): a submission that cannot be stored is a 503 with Retry-After, nothing
of it is stored, reads go on, /readyz names the storage, and it all recovers once there is
space again. Real SQLite, really full: its max_page_count makes SQLite answer SQLITE_FULL
("database or disk is full"), the very error a full disk gives it."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from micheck.service import auth
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from micheck.storage.db import storage_full
from micheck.storage.models import Evaluation, IdempotencyKey, LabelRow
from micheck.up import free_port
from tests.service.support import TINY_SPEC, wait_for

ROOT = Path(__file__).resolve().parents[2]

UNCAPPED = 1_073_741_823  # SQLite's largest max_page_count


def cap_database(engine, extra_pages: int) -> Callable[[], None]:
    """Let the database grow by `extra_pages` pages at most, on every connection; returns
    the function that frees the space again."""
    with engine.connect() as c:
        cap = [c.exec_driver_sql("PRAGMA page_count").scalar() + extra_pages]

    def _cap(dbapi_conn, _record) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {cap[0]}")

    event.listen(engine, "connect", _cap)
    engine.dispose()  # pooled connections: reconnect under the cap

    def free() -> None:
        cap[0] = UNCAPPED
        engine.dispose()

    return free


def _count(s, model) -> int:
    return s.scalar(select(func.count()).select_from(model))


def test_full_database_is_a_503_with_nothing_stored_and_readyz_says_so(app, client):
    token = {"Authorization": f"Bearer {auth.create_token(app.state.db, 'alice')}"}
    free = cap_database(app.state.db.engine, extra_pages=2)
    accepted, answer = 0, None
    for i in range(200):  # fill it up: labels take space; the cap is reached within a few
        r = client.post("/v1/evaluations", headers={**token, "Idempotency-Key": f"k{i}"},
                        json={**TINY_SPEC, "seeds": [i + 10, i + 11, i + 12],
                              "labels": {f"l{j}": "x" * 100 for j in range(10)}})
        if r.status_code != 202:
            answer = r
            break
        accepted += 1
    assert answer is not None, "the capped database never filled up"
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == str(app.state.settings.storage_full_retry_s)
    assert "storage full" in answer.json()["detail"]
    assert accepted >= 1
    with app.state.db.session() as s:  # nothing half-stored: rows of the accepted ones only
        assert _count(s, Evaluation) == accepted
        assert _count(s, LabelRow) == 10 * accepted
        assert _count(s, IdempotencyKey) == accepted
        assert s.get(IdempotencyKey, ("alice", f"k{accepted}")) is None
    # reads go on; readiness names the storage
    assert client.get("/v1/evaluations", headers=token).json()["items"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "storage" in ready.json()["down"]
    assert ready.json()["storage"].startswith("full: the database or its disk is full")
    # space again: the same Idempotency-Key is a fresh submission, readiness recovers
    free()
    r = client.post("/v1/evaluations", headers={**token, "Idempotency-Key": f"k{accepted}"},
                    json={**TINY_SPEC, "seeds": [accepted + 10, accepted + 11, accepted + 12],
                          "labels": {f"l{j}": "x" * 100 for j in range(10)}})
    assert r.status_code == 202, r.text
    assert client.get("/readyz").json()["storage"] == "ok"


def test_readyz_forgets_a_full_disk_after_the_retry_time(app, client):
    app.state.settings.storage_full_retry_s = 1
    app.state.db.storage.note_full("no space left on the device")
    assert client.get("/readyz").json()["storage"].startswith("full: no space left")
    app.state.db.storage._full_at -= 1.5  # as if 1.5 s had passed
    assert client.get("/readyz").json()["storage"] == "ok"


def test_storage_full_recognises_sqlite_postgres_and_enospc():
    sqlite_full = sqlite3.OperationalError("database or disk is full")
    wrapped = OperationalError("INSERT ...", {}, sqlite_full)
    assert storage_full(wrapped) == "the database or its disk is full"

    class DiskFull(Exception):  # psycopg.errors.DiskFull carries its SQLSTATE like this
        sqlstate = "53100"

    assert storage_full(OperationalError("INSERT ...", {}, DiskFull())) == \
        "the database server's disk is full"
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("writing share-secret") from exc
    except RuntimeError as chained:
        assert storage_full(chained) == "no space left on the device"
    assert storage_full(OperationalError("SELECT", {}, sqlite3.OperationalError("locked"))) is None
    assert storage_full(OSError(errno.EACCES, "denied")) is None


def _can_mount_tmpfs() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="no unprivileged user+mount namespaces "
                    "here (unshare -rm): the max_page_count test above covers the service")
def test_a_real_full_filesystem_under_micheck_serve(tmp_path: Path, redis_server: str):
    """`micheck serve` with its var dir (SQLite database, WAL) on a 1 MiB tmpfs, mounted in
    a user+mount namespace (no root needed): POSTs until the filesystem is full (ENOSPC,
    which SQLite reports as SQLITE_FULL), then a 503 with Retry-After, /readyz naming the
    storage, reads still answered; after space is freed, submissions are accepted again."""
    var = tmp_path / "var"
    var.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICHECK_")}
    env.update(MICHECK_VAR_DIR=str(var), MICHECK_REDIS_URL=redis_server,
               MICHECK_LOG_LEVEL="WARNING")
    port = free_port()
    script = ('set -e; mount -t tmpfs -o size=1m tmpfs "$MICHECK_VAR_DIR"; '
              f'"{sys.executable}" -m micheck.cli token create alice > "{tmp_path}/token"; '
              # most of the rest, to be freed later: the database has ~150 KB to grow in
              'dd if=/dev/zero of="$MICHECK_VAR_DIR/filler" bs=1k count=700 2>/dev/null; '
              f'exec "{sys.executable}" -m micheck.cli serve --port {port}')
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed below)
    p = subprocess.Popen(["unshare", "-rm", "sh", "-c", script], env=env, cwd=ROOT,
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert p.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).is_success
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, every=0.1)
        token = (tmp_path / "token").read_text().split()[-1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            codes = []
            for i in range(300):
                r = c.post("/v1/evaluations", json={
                    **TINY_SPEC, "seeds": [i, i + 1, i + 2],
                    "labels": {f"l{j}": "x" * 150 for j in range(10)}})
                codes.append(r.status_code)
                if r.status_code != 202:
                    break
            assert codes[-1] == 503 and set(codes[:-1]) == {202}, (codes, r.text)
            assert r.headers["retry-after"] and "storage full" in r.json()["detail"]
            ready = c.get("/readyz").json()
            assert "storage" in ready["down"] and ready["storage"].startswith("full"), ready
            listed = c.get("/v1/evaluations", params={"limit": 200}).json()["items"]
            assert len(listed) == len(codes) - 1  # every accepted one, nothing of the last
            # free the space (the filler, seen through the server's mount namespace)
            (Path(f"/proc/{p.pid}/root") / str(var).lstrip("/") / "filler").unlink()
            r = c.post("/v1/evaluations", json={**TINY_SPEC, "seeds": [900, 901, 902]})
            assert r.status_code == 202, r.text
            assert c.get("/readyz").json()["storage"] == "ok"
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
