"""micheck.processes with real processes: parent-death signals, pid identity, the embedded
redis-server as a plain child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from micheck import processes
from micheck.errors import MicheckError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl, /proc")


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes.alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_a_child_that_asked_dies_with_its_parent(tmp_path: Path):
    """A middle process starts a grandchild that asks for PR_SET_PDEATHSIG, then is killed:
    the grandchild (re-parented, in its own session) gets the signal and is gone."""
    pidfile = tmp_path / "grandchild"
    grandchild_code = (
        "import os, signal, time; from micheck.processes import die_with_parent; "
        f"die_with_parent(signal.SIGKILL); open({str(pidfile)!r}, 'w').write(str(os.getpid())); "
        "time.sleep(60)")
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {grandchild_code!r}], start_new_session=True)\n"
        "time.sleep(60)\n")
    middle = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())  # written once it has asked
    assert processes.alive(grandchild)
    middle.kill()
    middle.wait()
    assert _wait_gone(grandchild), "the grandchild outlived its parent"


def test_die_with_parent_exits_when_the_parent_is_already_gone():
    """The race: the expected parent died before the request (getppid() differs)."""
    p = subprocess.run([sys.executable, "-c", "from micheck.processes import die_with_parent; "
                        "import signal; die_with_parent(signal.SIGTERM, expected_parent=1); "
                        "print('still here')"], capture_output=True, text=True, timeout=30)
    assert p.returncode == -signal.SIGTERM and "still here" not in p.stdout


def test_start_time_tells_a_reused_pid_apart():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    started = processes.start_time(p.pid)
    assert started is not None and processes.alive(p.pid, started)
    assert not processes.alive(p.pid, started + 1)  # same pid, another process
    assert processes.terminate(p.pid, started, grace=5)
    p.wait()
    assert not processes.alive(p.pid) and processes.start_time(p.pid) is None
    assert not processes.terminate(p.pid, started)  # nothing to do


def test_embedded_redis_is_a_restartable_child(tmp_path: Path):
    from redis import Redis

    r = processes.EmbeddedRedis(tmp_path)
    pid = r.start()
    assert r.proc is not None and r.proc.pid == pid
    assert processes.children(os.getpid()).count(pid) == 1  # not a daemon: our child
    conn = Redis.from_url(r.url)
    conn.set("k", "v")
    with pytest.raises(MicheckError, match="already answers"):
        processes.EmbeddedRedis(tmp_path).start()
    os.kill(pid, signal.SIGKILL)  # crash: the socket file stays behind
    r.proc.wait()
    assert r.socket.exists()
    pid2 = r.start()  # same socket, stale file removed
    assert pid2 != pid and conn.ping()
    r.stop()  # SIGTERM: redis saves its snapshot
    assert not r.socket.exists() and not processes.alive(pid2)
    assert (tmp_path / "redis.db").is_file()
    r.start()
    conn2 = Redis.from_url(r.url)
    conn2.set("kept", "1")
    r.stop()
    r.start()
    assert Redis.from_url(r.url).get("kept") == b"1"  # survived a stop and start
    r.stop()
