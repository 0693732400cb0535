"""End to end: the API and workers as real processes (uvicorn, RQ SpawnWorker), the real
engine on a tiny vector task, real Redis and SQLite, everything over HTTP."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from redis import Redis

from micheck.up import Supervisor
from tests.service.support import TINY_SPEC, wait_for

FAST = {"MICHECK_HEARTBEAT_INTERVAL_S": "0.5", "MICHECK_PROGRESS_INTERVAL_S": "0.5",
        "MICHECK_CANCEL_POLL_S": "0.5", "MICHECK_STALE_AFTER_S": "3",
        "MICHECK_RECONCILE_INTERVAL_S": "1", "MICHECK_REQUEUE_GRACE_S": "1",
        "MICHECK_LOG_LEVEL": "INFO"}
# long enough to be killed in the middle: ~10 s of training here (100 steps took 1.5 s,
# so a poll could see the first progress only once the job had already finished)
LONGER = {**TINY_SPEC, "estimator": {**TINY_SPEC["estimator"],
                                     "train": {"batch_size": 16, "steps": 800,
                                               "eval_samples": 64}},
          "seeds": [0], "max_seeds": 1}  # one critic: the job's length stays ~10 s


@pytest.fixture
def stack(tmp_path: Path, redis_server: str):
    Redis.from_url(redis_server).flushall()
    st = Supervisor(tmp_path / "var", redis_url=redis_server, env=FAST)
    yield st
    st.stop()
    for log in sorted(st.log_dir.glob("*.log")):  # shown by pytest only when a test fails
        print(f"==== {log.name}\n{log.read_text()[-4000:]}")


def _client(st: Supervisor) -> httpx.Client:
    return httpx.Client(base_url=st.url, timeout=30,
                        headers={"Authorization": f"Bearer {st.token('e2e')}"})


def _view(c: httpx.Client, eid: str) -> dict:
    r = c.get(f"/v1/evaluations/{eid}")
    assert r.status_code == 200, r.text
    return r.json()


def _finished(c: httpx.Client, eid: str, timeout: float = 180) -> dict:
    return wait_for(lambda: (v := _view(c, eid))["status"] in
                    ("succeeded", "failed", "canceled") and v, timeout=timeout, every=0.3)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _horse(worker_pid: int) -> int:
    """The work horse: the worker's child running python (not redis, not the scheduler)."""
    def find():
        kids = [k for k in _children(worker_pid)
                if b"main_work_horse" in Path(f"/proc/{k}/cmdline").read_bytes()]
        return kids[0] if kids else None
    return wait_for(find, timeout=30)


def test_submit_over_http_and_get_ratios(stack: Supervisor):
    stack.start_api()
    stack.start_worker()
    with _client(stack) as c:
        r = c.post("/v1/evaluations", json=TINY_SPEC)
        assert r.status_code == 202, r.text
        eid = r.json()["id"]
        view = _finished(c, eid)
        assert view["status"] == "succeeded", view
        assert view["attempts"] == 1 and view["progress"]["steps_done"] > 0
        res = c.get(f"/v1/evaluations/{eid}/results").json()
        assert [x["test"] for x in res["ratios"]] == ["ground_truth"]
        assert res["ratios"][0]["value"] is not None
        assert res["estimates"][0]["true_mi"] == pytest.approx(1.0)
        assert res["provenance"]["device"].startswith("cpu")
        assert res["provenance"]["definition_versions"]["infonce"]
        workers = c.get("/v1/workers").json()
        assert len(workers) == 1 and workers[0]["device"] == "cpu"
        again = c.post("/v1/evaluations", json=TINY_SPEC)
        assert again.status_code == 200 and again.json()["deduplicated"]


def _kill_mid_job(stack: Supervisor, c: httpx.Client, *, whole_worker: bool) -> tuple[str, float]:
    """SIGKILL the job's process while it runs. The horse is SIGSTOPped as soon as it is seen
    running, so the kill lands mid-job however fast this machine trains (on an idle CPU the
    whole job can end between two polls)."""
    worker = stack.start_worker()
    eid = c.post("/v1/evaluations", json=LONGER).json()["id"]
    horse = _horse(worker.pid)
    wait_for(lambda: _view(c, eid)["status"] != "queued", timeout=120, every=0.05)
    os.kill(horse, signal.SIGSTOP)
    assert _view(c, eid)["status"] == "running", "the job ended before it could be stopped"
    killed_at = time.monotonic()
    os.kill(horse, signal.SIGKILL)
    if whole_worker:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        stack.start_worker()
    wait_for(lambda: _view(c, eid)["attempts"] == 2, timeout=60, every=0.1)
    return eid, time.monotonic() - killed_at


@pytest.mark.slow
@pytest.mark.parametrize("whole_worker", [False, True], ids=["job-process", "whole-worker"])
def test_sigkill_mid_job_is_retried_without_mixing(stack: Supervisor, whole_worker: bool):
    stack.start_api()
    with _client(stack) as c:
        eid, recovered_s = _kill_mid_job(stack, c, whole_worker=whole_worker)
        print(f"recovered (attempt 2 claimed) {recovered_s:.2f} s after SIGKILL")
        view = _finished(c, eid)
        print(f"attempt 2 started {view['started_at']}, finished {view['finished_at']}")
        assert view["status"] == "succeeded", view
        assert view["attempts"] == 2 and view["error"] is None
        res = c.get(f"/v1/evaluations/{eid}/results").json()
        assert len(res["estimates"]) == len(LONGER["seeds"])  # attempt 1 left nothing behind
    from micheck.storage.db import Database
    from micheck.storage.models import Result

    db = Database(stack.settings)
    with db.session() as s:
        assert [r.attempt for r in s.query(Result).filter_by(evaluation_id=eid)] == [2]
    db.dispose()


def test_redis_flushed_while_queued_is_recovered(stack: Supervisor):
    stack.start_api()
    with _client(stack) as c:
        eid = c.post("/v1/evaluations", json=TINY_SPEC).json()["id"]
        Redis.from_url(stack.redis_url).flushall()  # Redis lost everything; SQL did not
        stack.start_worker()
        view = _finished(c, eid)
        assert view["status"] == "succeeded", view
        assert view["attempts"] == 1


def test_micheck_up_demo(tmp_path: Path):
    """The README's one-machine command: embedded Redis, SQLite, API, CPU worker, demo."""
    import subprocess
    import sys

    import yaml

    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY_SPEC))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICHECK_")}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "micheck.cli", "up", "--demo", "--spec", str(spec),
                          "--var-dir", str(tmp_path / "var"), "--timeout", "240"],
                         env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "test" in out.stdout and "ground_truth" in out.stdout and "verdict" in out.stdout
    assert f"sqlite:///{tmp_path / 'var' / 'micheck.db'}" in out.stdout
    assert (tmp_path / "var" / "micheck.db").is_file()
