"""The parts of a micheck on one machine, started as processes and supervised.

`Supervisor` owns a var dir (its lock, var_dir/up.lock: micheck.up.lock), an embedded
redis-server unless given a Redis URL, the API process (uvicorn, ``--api-workers``
processes) and worker processes, each in its own session. `micheck up` drives it; tests
and benchmarks drive its parts themselves. What supervision means (restart with backoff,
handing a dead worker's evaluations back, the order of a stop): see micheck.up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from micheck import processes
from micheck.errors import MicheckError
from micheck.settings import Settings, environment
from micheck.up.lock import UpLock

BACKOFF_FIRST_S, BACKOFF_MAX_S, HEALTHY_AFTER_S = 0.5, 30.0, 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _say(msg: str) -> None:
    print(f"micheck up: {msg}", file=sys.stderr, flush=True)


@dataclass
class Child:
    """One supervised process and its restart state."""

    role: str  # "api", "worker0", ...
    args: list[str]
    log_name: str
    extra: list[str] = field(default_factory=list)  # a worker's extra arguments
    proc: subprocess.Popen | None = None
    name: str | None = None  # a worker's name (its row in the workers table)
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None  # set when it died: when to start it again
    restarts: int = 0
    history: list[str] = field(default_factory=list)


class Supervisor:
    """An API process and worker processes sharing one database and one Redis.

    Used by `micheck up` (which also supervises it) and by tests and benchmarks that
    drive its parts themselves.
    """

    def __init__(self, var_dir: Path, *, port: int | None = None, redis_url: str | None = None,
                 env: dict[str, str] | None = None, log_dir: Path | None = None,
                 adopt_orphans: bool = False):
        self.var_dir = Path(var_dir).resolve()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = log_dir or self.var_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.instance = secrets.token_hex(16)
        self.adopt_orphans = adopt_orphans
        self.lock = UpLock(self.var_dir)
        previous = self.lock.acquire()
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.children: list[Child] = []
        self._redis: processes.EmbeddedRedis | None = None
        self._redis_failures = 0
        self._redis_restart_at: float | None = None
        self._redis_started_at = 0.0
        self._stopped = False
        try:
            if redis_url is None:
                self._redis = processes.EmbeddedRedis(self.var_dir, log=self.log_dir / "redis.log")
                redis_url = self._redis.url
            self.redis_url = redis_url
            self.env = environment(MICHECK_VAR_DIR=str(self.var_dir), MICHECK_REDIS_URL=redis_url,
                                   MICHECK_QUEUE_ROUTING="cpu", MICHECK_INSTANCE_ID=self.instance,
                                   PYTHONUNBUFFERED="1", **(env or {}))
            self.settings = Settings(var_dir=self.var_dir, redis_url=redis_url,
                                     **({"database_url": self.env["MICHECK_DATABASE_URL"]}
                                        if self.env.get("MICHECK_DATABASE_URL") else {}))
            if not self.env.get("MICHECK_DATABASE_URL"):
                self._upgrade_own_database()
            orphaned_workers = self._clean_up_after(previous)
            if self._redis is not None:
                self._redis.start()
                self._redis_started_at = time.monotonic()
            self._record()
            for name in orphaned_workers:
                # Redis still holds their jobs as started: enqueue afresh (a duplicate job
                # finds the evaluation claimed or finished and does nothing)
                self._release(name, "its worker was left behind by a killed `up`")
        except BaseException:
            if self._redis is not None:
                self._redis.stop()
            self.lock.release()
            raise

    # ---- the lock file ------------------------------------------------------------------

    def _record(self) -> None:
        me = {"pid": os.getpid(), "start": processes.start_time(os.getpid())}
        kids = [{"role": c.role, "pid": c.proc.pid, "start": processes.start_time(c.proc.pid),
                 "name": c.name} for c in self.children if c.proc is not None]
        if self._redis is not None and self._redis.proc is not None:
            kids.append({"role": "redis", "pid": self._redis.proc.pid,
                         "start": processes.start_time(self._redis.proc.pid), "name": None})
        self.lock.write({"owner": me, "url": self.url, "instance": self.instance,
                         "children": kids})

    def _clean_up_after(self, previous: dict[str, Any]) -> list[str]:
        """The previous `up` on this var dir died without stopping (SIGKILL, power): stop
        what it left (workers first, their job processes die with them). Returns its
        workers' names, whose evaluations are handed back once Redis runs."""
        kids = previous.get("children") or []
        order = {"redis": 2, "api": 1}
        left = []
        for kid in sorted(kids, key=lambda k: order.get(k.get("role"), 0)):
            pid, start = kid.get("pid"), kid.get("start")
            if pid and processes.alive(pid, start):
                left.append(f"{kid.get('role')} {pid}")
                processes.terminate(pid, start, grace=5.0)
        if left:
            _say(f"stopped what a previous `up` on {self.var_dir} left running: "
                 + ", ".join(left))
        return [kid["name"] for kid in kids if kid.get("name")]

    def _upgrade_own_database(self) -> None:
        """The embedded SQLite file is this stack's own: bring its schema to this code's
        (Alembic, forward only) instead of refusing to start after a `git pull`. A database
        the operator names (MICHECK_DATABASE_URL) is never migrated silently."""
        from sqlalchemy import inspect as sa_inspect

        from micheck.storage import migrations
        from micheck.storage.db import make_engine

        engine = make_engine(self.settings.database_url)
        try:
            if "alembic_version" not in sa_inspect(engine).get_table_names():
                return  # a new database: the first process creates it
            current, head = migrations.current_revision(engine), migrations.head_revision()
            if current != head:
                migrations.upgrade(engine)
                _say(f"database schema upgraded from {current} to {head}")
        finally:
            engine.dispose()

    def _release(self, worker: str, why: str, *, enqueue: bool = True) -> None:
        """Hand a dead worker's running evaluations back to the queue (or fail them when
        their attempts are spent), without waiting for their heartbeats to go stale."""
        from micheck.storage import store
        from micheck.storage.db import Database

        try:
            db = Database(self.settings)
        except Exception as exc:
            _say(f"could not open the database to release worker {worker}: {exc}")
            return
        try:
            with db.session() as s:
                done = store.release_worker(s, worker, self.settings.max_attempts, why)
            for eid in done["retried"]:
                _say(f"evaluation {eid}: {why}; queued again")
            for eid in done["failed"]:
                _say(f"evaluation {eid}: {why}; its attempts are spent")
            if enqueue and done["retried"]:
                from micheck.queue import JobQueue, submit

                jq = JobQueue(self.settings)
                try:
                    for eid in done["retried"]:
                        submit(db, jq, eid)
                except Exception as exc:  # Redis down: the reconciler enqueues them later
                    _say(f"re-enqueue deferred to the reconciler: {type(exc).__name__}")
                finally:
                    jq.redis.close()
        finally:
            db.dispose()

    # ---- starting the parts ---------------------------------------------------------------

    def _spawn(self, args: list[str], log_name: str,
               parent_death: int = signal.SIGTERM) -> subprocess.Popen:
        log = open(self.log_dir / log_name, "ab")  # noqa: SIM115 (the child keeps it)
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "micheck.cli", *args], env=self.env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parents[2],
                # own session: a signal to up's process group reaches up alone, which then
                # stops the parts in order; the kernel signals them if `up` dies first
                start_new_session=True,
                preexec_fn=lambda: processes.die_with_parent(parent_death))
        finally:
            log.close()

    def _start(self, child: Child) -> subprocess.Popen:
        # a worker whose `up` died stops at once (its job with it; the next `up` hands the
        # evaluation back) rather than finishing the job unsupervised
        child.proc = self._spawn(child.args, child.log_name,
                                 signal.SIGKILL if child.name else signal.SIGTERM)
        child.started_at = time.monotonic()
        child.restart_at = None
        self._record()
        return child.proc

    def start_api(self, timeout: float = 60, workers: int = 1) -> None:
        """The API: uvicorn with ``workers`` processes on one port (each its own event
        loop, thread pool and in-flight bound; the kernel spreads connections)."""
        child = next((c for c in self.children if c.role == "api"), None)
        if child is None:
            child = Child("api", ["serve", "--host", "127.0.0.1", "--port", str(self.port),
                                  "--workers", str(max(1, workers))], "api.log")
            self.children.append(child)
        self.api = self._start(child)
        self.wait_api(timeout)

    def wait_api(self, timeout: float = 60) -> None:
        """Until the API this stack started answers /healthz with this run's instance id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api is None or self.api.poll() is not None:
                raise MicheckError(f"the API exited at start (port {self.port} taken?); "
                                   f"see {self.log_dir / 'api.log'}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = httpx.get(self.url + "/healthz", timeout=2)
                if r.status_code == 200 and r.json().get("instance") == self.instance:
                    return
            time.sleep(0.1)
        raise MicheckError(f"the API did not answer in {timeout} s")

    def wait_ready(self, timeout: float = 60) -> None:
        """Until /readyz of this stack's own API says database, Redis and a worker are up."""
        self.wait_api(timeout)
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = httpx.get(self.url + "/readyz", timeout=5)
                if r.status_code == 200:
                    return
                last = r.json().get("detail", "")
            if any(c.proc is not None and c.proc.poll() is not None for c in self.children):
                raise MicheckError(f"a part exited at start; see the logs in {self.log_dir}")
            time.sleep(0.2)
        raise MicheckError(f"the stack was not ready in {timeout} s: {last}")

    def start_worker(self, *extra: str) -> subprocess.Popen:
        n = sum(c.role.startswith("worker") for c in self.children)
        child = Child(f"worker{n}", [], f"worker{n}.log", extra=list(extra))
        self._name_worker(child)
        self.children.append(child)
        w = self._start(child)
        self.workers.append(w)
        return w

    def _name_worker(self, child: Child) -> None:
        # a fresh name per start: RQ refuses a name a killed worker still holds in Redis;
        # the box's name first, as a worker names itself (MICHECK_HOST_NAME)
        box = self.env.get("MICHECK_HOST_NAME") or socket.gethostname()
        child.name = f"{box}.cpu.{child.role}.{secrets.token_hex(3)}"
        child.args = ["worker", "--device", "cpu", "--queue", "cpu", "--name", child.name,
                      *child.extra]

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

    # ---- supervision ----------------------------------------------------------------------

    @staticmethod
    def backoff(failures: int) -> float:
        return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, failures - 1))

    def supervise_once(self) -> list[str]:
        """Notice dead parts, hand back a dead worker's evaluations, restart each part when
        its backoff has passed. Returns what it did (also said on stderr)."""
        did: list[str] = []
        now = time.monotonic()
        if self._redis is not None:
            did += self._supervise_redis(now)
        for child in self.children:
            p = child.proc
            if p is not None and p.poll() is None:
                if child.failures and now - child.started_at > HEALTHY_AFTER_S:
                    child.failures = 0
                continue
            if child.restart_at is None:  # it just died
                child.failures += 1
                child.restart_at = now + self.backoff(child.failures)
                code = p.returncode if p is not None else None
                msg = (f"{child.role} (pid {p.pid if p else '?'}) exited with {code}; "
                       f"restarting in {self.backoff(child.failures):g} s")
                _say(msg)
                did.append(msg)
                if self.adopt_orphans:
                    processes.kill_adopted(self._known_pids())
                if child.name:
                    self._release(child.name, f"worker {child.name} died ({code})")
            if now >= child.restart_at:
                if child.name:
                    self._name_worker(child)
                p = self._start(child)
                child.restarts += 1
                if child.role == "api":
                    self.api = p
                else:
                    self.workers = [w for w in self.workers if w.poll() is None] + [p]
                msg = f"{child.role} restarted (pid {p.pid})"
                _say(msg)
                did.append(msg)
        if self.adopt_orphans:
            processes.kill_adopted(self._known_pids())
        return did

    def _supervise_redis(self, now: float) -> list[str]:
        r = self._redis
        assert r is not None
        if r.proc is not None and r.proc.poll() is None:
            if self._redis_failures and now - self._redis_started_at > HEALTHY_AFTER_S:
                self._redis_failures = 0
            return []
        did = []
        if self._redis_restart_at is None:
            self._redis_failures += 1
            self._redis_restart_at = now + self.backoff(self._redis_failures)
            code = r.proc.returncode if r.proc is not None else None
            did.append(f"redis (pid {r.proc.pid if r.proc else '?'}) exited with {code}; "
                       f"restarting in {self.backoff(self._redis_failures):g} s")
            _say(did[-1])
        if now >= self._redis_restart_at:
            try:
                pid = r.start()
            except MicheckError as exc:
                self._redis_failures += 1
                self._redis_restart_at = now + self.backoff(self._redis_failures)
                did.append(f"redis restart failed ({exc}); next try in "
                           f"{self.backoff(self._redis_failures):g} s")
            else:
                self._redis_restart_at = None
                self._redis_started_at = time.monotonic()
                self._record()
                did.append(f"redis restarted (pid {pid})")
            _say(did[-1])
        return did

    def _known_pids(self) -> set[int]:
        known = {c.proc.pid for c in self.children if c.proc is not None}
        if self._redis is not None and self._redis.proc is not None:
            known.add(self._redis.proc.pid)
        return known

    # ---- stopping -------------------------------------------------------------------------

    @staticmethod
    def stop_process(p: subprocess.Popen, grace: float = 10) -> None:
        if p.poll() is not None:
            return
        # RQ: the first SIGTERM waits for the running job, a second one (> 1 s later: RQ
        # ignores a repeat within a second) kills the job; an idle worker exits at once
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(1.2)
            return
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(grace)
            return
        p.kill()
        p.wait()

    def stop(self) -> None:
        """Workers (their running evaluations go back to the queue), then the API, then
        Redis; then any orphan. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            for child in [c for c in self.children if c.name]:
                if child.proc is not None:
                    self.stop_process(child.proc)
                    self._release(child.name or "", f"worker {child.name} was stopped")
            for child in [c for c in self.children if not c.name]:
                if child.proc is not None:
                    self.stop_process(child.proc)
            for p in [*self.workers, *([self.api] if self.api else [])]:
                self.stop_process(p)  # any started outside the children list
            if self._redis is not None:
                self._redis.stop()
            if self.adopt_orphans:
                processes.kill_adopted(set())
        finally:
            self.lock.release()


