"""`micheck serve` on its own with the embedded Redis (#9 item 10): the redis-server it
starts is its child and stops with it, however it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from micheck import processes
from micheck.up import free_port
from tests.service.support import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_serve_never_leaves_its_redis_behind(tmp_path: Path, how: signal.Signals):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICHECK_")}
    env.update(MICHECK_VAR_DIR=str(tmp_path), MICHECK_LOG_LEVEL="WARNING")
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "micheck.cli", "serve", "--port", str(port)],
                         env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def up() -> bool:
            assert p.poll() is None, p.stderr.read().decode() if p.stderr else ""
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json().get(
                    "redis") == "ok"
            except httpx.HTTPError:
                return False
        wait_for(up, timeout=60, every=0.1)
        redis = [k for k in processes.children(p.pid)
                 if b"redis-server" in Path(f"/proc/{k}/cmdline").read_bytes()]
        assert len(redis) == 1, "the embedded redis-server is not serve's child"
        p.send_signal(how)
        p.wait(30)
        deadline = time.monotonic() + 15
        while processes.alive(redis[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not processes.alive(redis[0]), "redis-server outlived micheck serve"
        if how == signal.SIGTERM:
            # uvicorn shuts down, serve stops redis (its socket goes), then uvicorn re-raises
            # the signal it caught so that the exit status tells how it ended
            assert p.returncode in (0, -signal.SIGTERM)
            assert not (tmp_path / "redis.sock").exists()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
