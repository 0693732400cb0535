"""Two boxes, one queue: the second box of deploy/README.md ("Adding a second box"), started
from that section's own lines, and the first box lost mid-job.

One PostgreSQL (scripts/test's throwaway server) and one Redis (a redis-server child of
the test); an API process; two worker groups as two boxes, each its own process group
with its own var dir, host name (MICHECK_HOST_NAME) and data root. Box A takes the job
and is SIGKILLed as a whole group while it trains; the evaluation then finishes on box B
exactly once (one result, from attempt 2), and /readyz and /v1/workers name box A lost.
Processes of a box are found by what they inherited: MICHECK_VAR_DIR=<its var dir>.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from micheck.settings import Settings
from micheck.storage.db import Database
from micheck.storage.models import Evaluation, Result
from micheck.up import free_port
from tests.e2e.test_faults import spec, stack_processes
from tests.service.support import postgres_database, wait_for

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "deploy" / "README.md"
# the test's own timers (not the README's business): a lost box is noticed in seconds
FAST = {"MICHECK_HEARTBEAT_INTERVAL_S": "0.5", "MICHECK_PROGRESS_INTERVAL_S": "0.3",
        "MICHECK_CANCEL_POLL_S": "0.5", "MICHECK_STALE_AFTER_S": "4",
        "MICHECK_RECONCILE_INTERVAL_S": "1", "MICHECK_REQUEUE_GRACE_S": "1",
        "MICHECK_TORCH_THREADS": "1", "MICHECK_WORKER_CALIBRATION": "false",
        "MICHECK_QUEUE_ROUTING": "cpu", "MICHECK_LOG_LEVEL": "INFO"}


def readme_block(marker: str) -> list[str]:
    """The lines of the first fenced block after the `<!-- marker` comment in the README."""
    text = README.read_text()
    m = re.search(rf"<!-- {re.escape(marker)}\b.*?-->\s*```\w*\n(.*?)```", text, re.S)
    assert m, f"deploy/README.md has no block after <!-- {marker} -->"
    return [line for line in m.group(1).splitlines() if line.strip()]


def second_box_env(values: dict[str, str]) -> dict[str, str]:
    """The README's environment for a second box, each value replaced by this machine's:
    the README must name exactly the settings a box needs (the test supplies each)."""
    named = dict(line.split("=", 1) for line in readme_block("second-box-env"))
    assert set(named) == set(values), (set(named) ^ set(values))
    for key, value in named.items():  # the README's examples are valid settings
        Settings(**{key.removeprefix("MICHECK_").lower(): value})
    return values


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICHECK_")}
    return {**env, **FAST, "PYTHONUNBUFFERED": "1", **extra}


class Box:
    """A box's workers: the README's command, in a process group of their own."""

    def __init__(self, tmp: Path, name: str, database_url: str, redis_url: str):
        self.name, self.var = name, tmp / name / "var"
        (tmp / name / "data").mkdir(parents=True)
        self.var.mkdir(parents=True)
        self.env = second_box_env({
            "MICHECK_DATABASE_URL": database_url, "MICHECK_REDIS_URL": redis_url,
            "MICHECK_HOST_NAME": name, "MICHECK_VAR_DIR": str(self.var),
            "MICHECK_DATA_DIR": str(tmp / name / "data")})
        (command,) = readme_block("second-box-command")
        argv = shlex.split(command)
        assert argv[0] == "micheck"
        self.log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([sys.executable, "-m", "micheck.cli", *argv[1:]],
                                     env=_env(self.env), cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def processes(self) -> dict[int, str]:
        return stack_processes(self.var)

    def kill_group(self) -> None:
        """SIGKILL the box's whole process group, as a power cut would end it."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        for pid in self.processes():  # whatever a failed test left
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def cluster(tmp_path: Path, redis_server: str) -> Iterator[dict]:
    from redis import Redis

    Redis.from_url(redis_server).flushall()
    with postgres_database() as url:
        base = {"MICHECK_DATABASE_URL": url, "MICHECK_REDIS_URL": redis_server}
        var = tmp_path / "api" / "var"
        var.mkdir(parents=True)
        # the first box's schema, once (deploy/README.md step 1)
        subprocess.run([sys.executable, "-m", "micheck.cli", "db", "upgrade"], check=True,
                       env=_env({**base, "MICHECK_VAR_DIR": str(var)}), cwd=ROOT,
                       capture_output=True, timeout=120)
        port = free_port()
        api_log = open(tmp_path / "api.log", "wb")  # noqa: SIM115
        api = subprocess.Popen([sys.executable, "-m", "micheck.cli", "serve", "--port",
                                str(port)], env=_env({**base, "MICHECK_VAR_DIR": str(var)}),
                               cwd=ROOT, stdout=api_log, stderr=subprocess.STDOUT,
                               start_new_session=True)
        boxes: list[Box] = []
        db = Database(Settings(var_dir=var, database_url=url, redis_url=redis_server))
        try:
            from micheck.service import auth

            token = auth.create_token(db, "ops", admin=True)
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                  headers={"Authorization": f"Bearer {token}"})
            wait_for(lambda: _answers(client), timeout=60, every=0.2)
            yield {"url": url, "redis": redis_server, "tmp": tmp_path, "client": client,
                   "boxes": boxes, "db": db}
            client.close()
        finally:
            for box in boxes:
                box.stop()
            api.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                api.wait(30)
            api_log.close()
            db.dispose()
            for log in sorted(tmp_path.glob("*.log")):  # pytest shows this on a failure
                print(f"==== {log.name}\n{log.read_text(errors='replace')[-3000:]}")


def _answers(c: httpx.Client) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return c.get("/healthz").status_code == 200
    return False


def _workers(c: httpx.Client) -> list[dict]:
    r = c.get("/v1/workers")
    assert r.status_code == 200, r.text
    return r.json()


def _live_on(c: httpx.Client, box: str) -> bool:
    return any(w["host"] == box and w["state"] == "live" for w in _workers(c))


def _view(c: httpx.Client, eid: str) -> dict:
    r = c.get(f"/v1/evaluations/{eid}")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_lost_box_s_evaluation_finishes_on_the_other_box_exactly_once(cluster):
    c, boxes, tmp = cluster["client"], cluster["boxes"], cluster["tmp"]
    a = Box(tmp, "box-a", cluster["url"], cluster["redis"])
    boxes.append(a)
    wait_for(lambda: _live_on(c, "box-a"), timeout=120, every=0.2)
    assert c.get("/readyz").json()["workers"] == "1 live"

    r = c.post("/v1/evaluations", json=spec(seed=41, steps=1500))
    assert r.status_code == 202, r.text
    eid = r.json()["id"]
    wait_for(lambda: (v := _view(c, eid))["status"] == "running"
             and (v["worker"] or "").startswith("box-a."), timeout=120, every=0.1)

    b = Box(tmp, "box-b", cluster["url"], cluster["redis"])  # joins the queue mid-job
    boxes.append(b)
    wait_for(lambda: _live_on(c, "box-b"), timeout=120, every=0.2)
    v = wait_for(lambda: (v := _view(c, eid))["progress"]["steps_done"] > 0 and v,
                 timeout=120, every=0.1)
    assert v["status"] == "running" and v["worker"].startswith("box-a.") and v["attempts"] == 1

    a.kill_group()
    # its job process was in a process group of its own (RQ's): it died with its worker
    wait_for(lambda: not a.processes(), timeout=30, every=0.1)

    done = wait_for(lambda: (v := _view(c, eid))["status"] in ("succeeded", "failed",
                                                                 "canceled") and v,
                    timeout=300, every=0.2)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2 and done["worker"].startswith("box-b."), done
    with cluster["db"].session() as s:  # exactly once, read from PostgreSQL itself
        results = [r.attempt for r in s.query(Result).filter_by(evaluation_id=eid)]
        assert results == [2]
        assert s.get(Evaluation, eid).result_attempt == 2

    ready = c.get("/readyz")
    assert ready.status_code == 200, ready.text  # box B still serves the queue
    assert re.fullmatch(r"1 live; lost: box box-a \(1 worker, no heartbeat for \d+ s\)",
                        ready.json()["workers"]), ready.json()
    states = {(w["host"], w["state"]) for w in _workers(c)}
    assert states == {("box-a", "lost"), ("box-b", "live")}, states
