"""micheck.up's lock file and supervision, with real processes (no worker: fast)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from micheck import processes
from micheck.errors import MicheckError
from micheck.up import Supervisor, UpLock


def test_a_live_lock_refuses_a_second_owner(tmp_path: Path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from micheck.up import UpLock\n"
        f"lock = UpLock(Path({str(tmp_path)!r})); lock.acquire()\n"
        "lock.write({'owner': {'pid': 1, 'start': -1}, 'url': 'http://x'}); print('held', flush=True)\n"
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(MicheckError, match=r"already up on .* \(pid 1, API http://x\)"):
        UpLock(tmp_path).acquire()
    holder.kill()  # the kernel drops the flock with the process
    holder.wait()
    lock = UpLock(tmp_path)
    assert lock.acquire() == {"owner": {"pid": 1, "start": -1}, "url": "http://x"}  # what it left
    lock.release()
    assert UpLock(tmp_path).acquire() == {}  # a clean release leaves nothing to clean up


def test_a_recorded_live_owner_refuses_even_without_flock(tmp_path: Path):
    """Where flock is not honoured, the recorded owner pid (and its start time) decides."""
    (tmp_path / "up.lock").write_text(json.dumps(
        {"owner": {"pid": os.getppid(), "start": processes.start_time(os.getppid())}}))
    with pytest.raises(MicheckError, match="already up"):
        UpLock(tmp_path).acquire()


def test_stack_restarts_a_dead_api_and_redis_and_stops_clean(tmp_path: Path):
    st = Supervisor(tmp_path / "var", env={"MICHECK_LOG_LEVEL": "WARNING"})
    try:
        with pytest.raises(MicheckError, match="already up"):
            Supervisor(tmp_path / "var")
        st.start_api()
        assert st.api is not None and st._redis is not None and st._redis.proc is not None
        api, redis = st.api.pid, st._redis.proc.pid
        record = json.loads((st.var_dir / "up.lock").read_text())
        assert {c["role"]: c["pid"] for c in record["children"]} == {"api": api, "redis": redis}
        os.kill(api, signal.SIGKILL)
        os.kill(redis, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                st.api.pid != api and st._redis.proc.pid != redis):
            st.supervise_once()
            time.sleep(0.1)
        assert st.api.pid != api and st._redis.proc.pid != redis
        st.wait_api()  # the new API answers with this stack's instance id
        record = json.loads((st.var_dir / "up.lock").read_text())
        assert {c["role"]: c["pid"] for c in record["children"]} == {
            "api": st.api.pid, "redis": st._redis.proc.pid}
        assert Supervisor.backoff(1) == 0.5 and Supervisor.backoff(3) == 2.0 and Supervisor.backoff(99) == 30
    finally:
        st.stop()
    assert not processes.alive(st.api.pid) and not st._redis.socket.exists()
    assert (st.var_dir / "up.lock").read_text() == ""


def test_up_refuses_to_report_another_stacks_api(tmp_path: Path):
    """Two stacks, one port: the second API cannot bind, and the second stack must say so
    instead of taking the first one's answers for its own."""
    first = Supervisor(tmp_path / "a", env={"MICHECK_LOG_LEVEL": "WARNING"})
    try:
        first.start_api()
        second = Supervisor(tmp_path / "b", port=first.port, env={"MICHECK_LOG_LEVEL": "WARNING"})
        try:
            with pytest.raises(MicheckError, match="exited at start|did not answer"):
                second.start_api(timeout=30)
        finally:
            second.stop()
    finally:
        first.stop()


def test_up_brings_its_own_sqlite_schema_to_this_code(tmp_path: Path, capsys):
    """A var dir from an older checkout (schema behind) is upgraded, not refused; a database
    the operator names is left to `micheck db upgrade`."""
    from sqlalchemy import create_engine

    from micheck.settings import Settings
    from micheck.storage import migrations

    var = tmp_path / "var"
    var.mkdir()
    url = Settings(var_dir=var).database_url
    engine = create_engine(url)
    migrations.upgrade(engine, "0002")  # an old stack's database
    assert migrations.current_revision(engine) == "0002"
    st = Supervisor(var, env={"MICHECK_LOG_LEVEL": "WARNING"})
    try:
        assert migrations.current_revision(engine) == migrations.head_revision()
        assert "database schema upgraded from 0002" in capsys.readouterr().err
    finally:
        st.stop()

    named = tmp_path / "named.db"
    engine = create_engine(f"sqlite:///{named}")
    migrations.upgrade(engine, "0002")
    st = Supervisor(tmp_path / "var2", env={"MICHECK_DATABASE_URL": f"sqlite:///{named}",
                                       "MICHECK_LOG_LEVEL": "WARNING"})
    try:
        assert migrations.current_revision(engine) == "0002"
    finally:
        st.stop()
