"""Fault injection against `micheck up` as a user runs it: a real supervisor process, its
embedded redis-server, the API (uvicorn), an RQ SpawnWorker and its job processes
training real critics, all over HTTP.

Each test kills parts mid-job (the worker, the job process, Redis, `up` itself) and
asserts that every evaluation reaches exactly one terminal state with exactly one stored
result, that the API kept answering throughout, and that no process is left behind.
Processes are found by what they inherited: every process of a stack carries
MICHECK_VAR_DIR=<its var dir> in its environment (daemons and orphans included).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from micheck.settings import Settings
from micheck.storage.db import Database
from micheck.storage.models import Evaluation, Result
from tests.service.support import TINY_SPEC, wait_for

ROOT = Path(__file__).resolve().parents[2]
FAST = {"MICHECK_HEARTBEAT_INTERVAL_S": "0.5", "MICHECK_PROGRESS_INTERVAL_S": "0.3",
        "MICHECK_CANCEL_POLL_S": "0.5", "MICHECK_STALE_AFTER_S": "4",
        "MICHECK_RECONCILE_INTERVAL_S": "1", "MICHECK_REQUEUE_GRACE_S": "1",
        "MICHECK_TORCH_THREADS": "1", "MICHECK_LOG_LEVEL": "INFO"}


def spec(seed: int, steps: int = 600) -> dict:
    """Long enough to be killed in the middle (~5-10 s of training here)."""
    return {**TINY_SPEC, "seeds": [seed], "estimator": {**TINY_SPEC["estimator"], "train": {
        "batch_size": 16, "steps": steps, "eval_samples": 64}}}


# ---- the processes of a stack ---------------------------------------------------------------


def stack_processes(var_dir: Path) -> dict[int, str]:
    """pid -> command line of every live process whose environment names this var dir (or,
    for redis-server, which writes its title over its environment, whose working directory
    or command line does)."""
    mark = f"MICHECK_VAR_DIR={var_dir}".encode() + b"\0"
    found = {}
    for d in Path("/proc").glob("[0-9]*"):
        pid = int(d.name)
        if pid == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if mark not in (d / "environ").read_bytes() + b"\0" and f"{var_dir}/" not in cmd \
                    and os.readlink(d / "cwd") != str(var_dir):
                continue
            if (d / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            found[pid] = cmd
        except (OSError, IndexError):
            continue
    return found


def role(cmdline: str) -> str:
    for key, name in (("main_work_horse", "job"), ("micheck.cli up", "up"), ("redis-server", "redis"),
                      ("micheck.cli serve", "api"), ("micheck.cli worker", "worker")):
        if key in cmdline:
            return name
    return "other"


def pids_of(var_dir: Path, which: str) -> list[int]:
    return sorted(p for p, cmd in stack_processes(var_dir).items() if role(cmd) == which)


def one_pid(var_dir: Path, which: str, timeout: float = 60) -> int:
    return wait_for(lambda: (p := pids_of(var_dir, which)) and len(p) == 1 and p[0],
                    timeout=timeout, every=0.05)


# ---- a `micheck up` process -------------------------------------------------------------------


class Up:
    def __init__(self, var_dir: Path, port: int | None = None):
        self.var_dir = var_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith("MICHECK_")}
        env.update(FAST, MICHECK_VAR_DIR=str(var_dir))
        args = [sys.executable, "-m", "micheck.cli", "up", "--var-dir", str(var_dir)]
        if port:
            args += ["--port", str(port)]
        self.out = var_dir.parent / f"up-{time.monotonic_ns()}.out"
        self.out_f = open(self.out, "w")  # noqa: SIM115 (closed in wait())
        # its own process group, as in a terminal: killpg reaches `up` and whatever shares it
        self.proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=self.out_f,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.url = self.token = ""

    def ready(self, timeout: float = 120) -> Up:
        """Once `up` says so; the URL and token are read from the line it prints to paste."""
        def parsed():
            assert self.proc.poll() is None, self.text()
            return re.search(r"micheck is up: API (\S+) ", self.text())
        self.url = wait_for(parsed, timeout=timeout, every=0.1).group(1)
        self.token = (self.var_dir / "token").read_text().strip()
        return self

    def export_line(self) -> str | None:
        m = re.search(r"^export MICHECK_URL=(\S+) MICHECK_TOKEN=(\S+)$", self.text(), re.M)
        return m and f"{m.group(1)} {m.group(2)}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {self.token}"})

    def text(self) -> str:
        return self.out.read_text()

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.out_f.close()


@pytest.fixture
def var_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "var"
    d.mkdir()
    yield d
    # whatever a failed test left: stop it so later tests are not disturbed
    for pid in stack_processes(d):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for log in sorted((d / "logs").glob("*.log")):  # pytest shows this when a test fails
        print(f"==== {log.name}\n{log.read_text()[-3000:]}")
    for out in sorted(tmp_path.glob("up-*.out")):
        print(f"==== {out.name}\n{out.read_text()[-3000:]}")


class Prober(threading.Thread):
    """Asks the API every 0.1 s (a status read and /readyz) while parts are killed."""

    def __init__(self, up: Up, eid: str):
        super().__init__(daemon=True)
        self.up, self.eid = up, eid
        self.failures: list[str] = []
        self.ready_codes: list[tuple[int, str]] = []
        self.halt = threading.Event()
        self.reads = 0

    def run(self) -> None:
        with self.up.client() as c:
            while not self.halt.wait(0.1):
                try:
                    r = c.get(f"/v1/evaluations/{self.eid}", timeout=5)
                    if r.status_code != 200:
                        self.failures.append(f"GET {r.status_code}")
                    self.reads += 1
                    rz = c.get("/readyz", timeout=5)
                    self.ready_codes.append((rz.status_code, rz.text))
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


def view(c: httpx.Client, eid: str) -> dict:
    r = c.get(f"/v1/evaluations/{eid}")
    assert r.status_code == 200, r.text
    return r.json()


def running_with_progress(c: httpx.Client, eid: str, attempt: int, timeout: float = 120) -> None:
    wait_for(lambda: (v := view(c, eid))["status"] == "running" and v["attempts"] == attempt
             and v["progress"]["steps_done"] > 0, timeout=timeout, every=0.1)


def finished(c: httpx.Client, eid: str, timeout: float = 180) -> dict:
    return wait_for(lambda: (v := view(c, eid))["status"] in ("succeeded", "failed", "canceled")
                    and v, timeout=timeout, every=0.2)


def results_per_attempt(var_dir: Path) -> dict[str, list[int]]:
    """Exactly-once, read from the database itself: evaluation id -> attempts with a result."""
    db = Database(Settings(var_dir=var_dir, database_url=f"sqlite:///{var_dir / 'micheck.db'}"))
    try:
        with db.session() as s:
            out: dict[str, list[int]] = {e.id: [] for e in s.query(Evaluation)}
            for r in s.query(Result).order_by(Result.attempt):
                out[r.evaluation_id].append(r.attempt)
            return out
    finally:
        db.dispose()


def gone(pids: list[int] | set[int], timeout: float = 15) -> bool:
    return wait_for(lambda: not any(Path(f"/proc/{p}").exists() and
                                    (Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1]
                                     .split()[0] != "Z") for p in pids) or None,
                    timeout=timeout, every=0.05) or True


# ---- the tests ------------------------------------------------------------------------------


@pytest.mark.slow
def test_worker_job_and_redis_deaths_are_isolated(var_dir: Path):
    """#14 item 1: a SIGKILLed worker took the API and Redis down and left its job training
    as an orphan; a SIGKILLed redis-server made the worker quit and `up` stop everything."""
    up = Up(var_dir).ready()
    with up.client() as c:
        e1 = c.post("/v1/evaluations", json=spec(1)).json()["id"]
        probe = Prober(up, e1)
        probe.start()

        # 1. the worker dies mid-job: its job process dies with it, the rest stays up
        running_with_progress(c, e1, 1)
        worker, job = one_pid(var_dir, "worker"), one_pid(var_dir, "job")
        api, redis = one_pid(var_dir, "api"), one_pid(var_dir, "redis")
        os.kill(worker, signal.SIGKILL)
        assert gone([job], timeout=5), "the job process outlived its worker"
        running_with_progress(c, e1, 2)  # handed back at once, run by the restarted worker
        new_worker = one_pid(var_dir, "worker")
        assert new_worker != worker
        assert (pids_of(var_dir, "api"), pids_of(var_dir, "redis")) == ([api], [redis])

        # 2. Redis dies mid-job: restarted; the worker reconnects instead of quitting;
        # submissions are taken meanwhile (the database holds them)
        os.kill(redis, signal.SIGKILL)
        e2 = c.post("/v1/evaluations", json=spec(2, steps=300))
        assert e2.status_code == 202, e2.text
        wait_for(lambda: pids_of(var_dir, "redis") not in ([], [redis]), timeout=30)
        assert finished(c, e1)["status"] == "succeeded"
        e2 = e2.json()["id"]

        # 3. the job process dies: retried by the same worker
        running_with_progress(c, e2, 1)
        os.kill(one_pid(var_dir, "job"), signal.SIGKILL)
        assert finished(c, e2)["status"] == "succeeded"
        assert pids_of(var_dir, "worker") == [new_worker], "the worker did not survive"
        assert pids_of(var_dir, "api") == [api]
        probe.stop()
    assert probe.reads > 20 and not probe.failures, probe.failures[:5]
    # /readyz was honest while Redis was down, and ready again after
    assert any(code == 503 and "redis" in text for code, text in probe.ready_codes), \
        probe.ready_codes[:3]
    assert probe.ready_codes[-1][0] == 200
    assert {e1: 2, e2: 2} == {e: view_attempts(up, e) for e in (e1, e2)}

    pids = set(stack_processes(var_dir))
    os.killpg(up.proc.pid, signal.SIGTERM)  # what a terminal or a supervisor sends
    assert up.wait() == 0, up.text()
    assert gone(pids) and stack_processes(var_dir) == {}
    assert results_per_attempt(var_dir) == {e1: [2], e2: [2]}


def view_attempts(up: Up, eid: str) -> int:
    with up.client() as c:
        v = view(c, eid)
        assert v["status"] == "succeeded" and v["error"] is None, v
        return v["attempts"]


@pytest.mark.slow
def test_killed_up_leaves_nothing_and_its_successor_finishes_the_work(var_dir: Path):
    """#14 item 1: after a SIGKILL of `up`, API, worker and Redis ran on as orphans; a
    second `up` reported ready on the orphaned API and, exiting, killed the shared Redis;
    SIGINT to the process group left the embedded redis-server running."""
    from micheck.up import free_port

    port = free_port()
    first = Up(var_dir, port).ready()
    with first.client() as c:
        eid = c.post("/v1/evaluations", json=spec(3)).json()["id"]
        running_with_progress(c, eid, 1)
    before = set(stack_processes(var_dir))
    assert {role(cmd) for cmd in stack_processes(var_dir).values()} >= {
        "up", "api", "worker", "job", "redis"}

    # a second `up` on a live var dir refuses, and disturbs nothing
    second = Up(var_dir)
    assert second.wait(60) == 3  # micheck's exit status for a service-side error
    assert "already up" in second.text() and "Traceback" not in second.text()
    assert before <= set(stack_processes(var_dir))

    os.kill(first.proc.pid, signal.SIGKILL)
    first.wait()
    # its parts got SIGTERM from the kernel (the job SIGKILL); none runs on
    assert gone(before, timeout=30), stack_processes(var_dir)

    third = Up(var_dir, port).ready()  # same port: it must find its own API, not another
    with third.client() as c:
        assert c.get("/readyz").status_code == 200
        v = finished(c, eid)
        assert v["status"] == "succeeded" and v["attempts"] == 2, v
    after = set(stack_processes(var_dir))
    assert not (after & before)
    # #9 item 10: the line a user pastes to point the client at this stack
    assert third.export_line() == f"{third.url} {third.token}"
    os.killpg(third.proc.pid, signal.SIGINT)  # Ctrl-C in a terminal
    assert third.wait() == 0, third.text()
    assert gone(after) and stack_processes(var_dir) == {}
    assert results_per_attempt(var_dir) == {eid: [2]}
