"""Checks over the whole test session."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest


def redis_servers_under(base: Path) -> list[int]:
    """Live redis-server processes whose working directory (redis chdirs to its `dir`) is
    under `base`: those this test session started."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "comm").read_text().strip() != "redis-server":  # it rewrites its argv
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if cwd == base or base in cwd.parents:
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="session", autouse=True)
def no_redis_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After every other session fixture's teardown (this one is set up first): no
    redis-server started by the tests may remain. Any that does is killed, and the session
    errors, naming it."""
    base = tmp_path_factory.getbasetemp().resolve()
    yield
    left = redis_servers_under(base)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"redis-server processes left behind by the tests (killed now): {left}"
