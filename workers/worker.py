"""`micheck worker`: an RQ SpawnWorker on one queue (or several), bound to one device.

SpawnWorker starts a fresh interpreter per job instead of forking: CUDA state does not
survive fork. This parent process never imports torch; it only dequeues, heartbeats its
row in the workers table and runs the reconciler now and then. At start a child process
measures the device (micheck.workers.calibrate; a box reuses its last measurement of the
same device for calibration_ttl_s) and the numbers go into the row, where the service
reads them to bound a request's time and size its job timeout.

Lifetimes: a job process dies with its worker (it asks for PR_SET_PDEATHSIG at start,
see `micheck.workers.job`), so a killed worker never leaves training behind. When Redis
goes away the worker does not quit: it waits for Redis with exponential backoff
(tenacity), lets a running job finish, registers again and goes on dequeuing.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError
from rq.worker import SpawnWorker
from sqlalchemy import delete
from tenacity import Retrying, retry_if_exception_type, wait_exponential

from micheck.errors import SpecError
from micheck.estimators import plugins
from micheck.queue import JobQueue, reconcile
from micheck.settings import Settings, set_worker_device, set_worker_pid
from micheck.storage import store
from micheck.storage.db import Database
from micheck.storage.models import Evaluation, WorkerRow, utcnow

log = logging.getLogger("micheck.worker")


def resolve_device(device: str | None, queues: list[str], settings: Settings) -> str:
    if device:
        if device != "cpu" and not (device == "cuda" or (device.startswith("cuda:")
                                                          and device[5:].isdigit())):
            raise SpecError(f"--device: expected cpu, cuda or cuda:N, got {device!r}")
        return device
    if queues == [settings.cpu_queue]:
        return "cpu"
    # CUDA_VISIBLE_DEVICES narrows what the job sees; its first GPU is cuda:0 there
    return "cuda:0"


class _Housekeeper(threading.Thread):
    """Heartbeats the workers row and runs the reconciler periodically."""

    def __init__(self, db: Database, jq: JobQueue, name: str, settings: Settings):
        super().__init__(daemon=True, name="micheck-housekeeper")
        self.db, self.jq, self.name_, self.settings = db, jq, name, settings
        self.halt = threading.Event()

    def run(self) -> None:
        last_reconcile = 0.0
        tick = min(self.settings.heartbeat_interval_s, self.settings.reconcile_interval_s)
        elapsed = 0.0
        while not self.halt.wait(tick):
            elapsed += tick
            try:
                with self.db.session() as s:
                    row = s.get(WorkerRow, self.name_)
                    if row is not None:
                        row.heartbeat_at = utcnow()
                if elapsed - last_reconcile >= self.settings.reconcile_interval_s:
                    last_reconcile = elapsed
                    done = reconcile(self.db, self.jq)
                    if any(done.values()):
                        log.warning("reconciler: %s", done)
            except Exception as exc:
                log.warning("housekeeping failed: %s", exc)


def _horse_killed(db: Database, name: str, settings: Settings):
    """Runs in the parent when a job's process died without reporting (OOM kill, SIGKILL):
    the attempt is given up at once rather than after the heartbeat goes stale."""

    def handler(job: Any, retpid: int, ret_val: int, rusage: Any) -> None:
        eid = job.args[0] if job.args else None
        signal_no = os.WTERMSIG(ret_val) if ret_val and os.WIFSIGNALED(ret_val) else None
        how = f"signal {signal_no}" if signal_no else f"status {ret_val}"
        try:
            with db.session() as s:
                row = s.get(Evaluation, eid)
                if row is None or row.status != store.R or row.worker != name:
                    return
                attempt = row.attempts
                retry = attempt < settings.max_attempts
                msg = (f"the job process of worker {name} died ({how}) during attempt "
                       f"{attempt}" + ("; retrying" if retry else f"; gave up after {attempt}"))
                store.finish_attempt(s, eid, attempt, status=store.Q if retry else store.FAILED,
                                     code="worker_killed", message=msg)
            log.warning("evaluation %s: %s", eid, msg)
        except Exception as exc:
            log.warning("could not record the death of job %s: %s", eid, exc)

    return handler


class MicheckWorker(SpawnWorker):
    """SpawnWorker that remembers whether it was asked to stop, so a work loop that ended
    for another reason (Redis went away) is told apart from a shutdown."""

    stop_asked = False

    def request_stop(self, signum: int, frame: Any) -> None:
        self.stop_asked = True
        super().request_stop(signum, frame)

    def request_force_stop(self, signum: int, frame: Any) -> None:
        self.stop_asked = True
        super().request_force_stop(signum, frame)


def _stop_now(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def wait_for_redis(jq: JobQueue, *, max_wait_s: float = 10.0) -> None:
    """Ping until Redis answers, backing off exponentially up to `max_wait_s` between tries."""
    for attempt in Retrying(retry=retry_if_exception_type((RedisError, OSError)),
                            wait=wait_exponential(multiplier=0.2, max=max_wait_s),
                            before_sleep=lambda st: log.warning(
                                "Redis unreachable (%s); retrying in %.1f s", st.outcome.exception()
                                if st.outcome else "?", st.next_action.sleep if st.next_action
                                else 0), reraise=True):
        with attempt:
            jq.redis.ping()


def _wait_for_horse(worker: SpawnWorker) -> None:
    """A job that outlived its worker loop (Redis vanished mid-job) finishes first: one
    job at a time, and its exit status is collected."""
    pid = getattr(worker, "_horse_pid", 0)
    if pid:
        with contextlib.suppress(ChildProcessError):
            log.warning("waiting for job process %s to finish before reconnecting", pid)
            os.waitpid(pid, 0)


def plugin_report() -> dict[str, Any]:
    """The plug-in estimators installed beside this worker, as its row reports them
    (micheck.estimators.plugins: torch-free, never raises)."""
    loaded = plugins.load()
    for b in loaded.broken:
        log.warning("plug-in estimator %s (%s==%s) did not load: %s", b.name, b.distribution,
                    b.version, b.reason)
    if loaded.entries:
        log.info("plug-in estimators: %s", ", ".join(f"{e.name} ({e.provider})"
                                                     for e in loaded.entries))
    return plugins.report(loaded)


CALIBRATION_TIMEOUT_S = 300.0


def _calibration_file(settings: Settings, device: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in settings.host_name)
    return settings.var_dir / f"calibration-{safe}-{device.replace(':', '')}.json"


def calibration(settings: Settings, device: str) -> dict[str, Any]:
    """The device's measurement: this box's last one when it is younger than
    calibration_ttl_s and was made with the same torch and thread count, else a new one,
    by ``python -m micheck.workers.calibrate`` in a child process (this one never imports
    torch). Raises on a failed measurement."""
    path = _calibration_file(settings, device)
    torch_version = importlib.metadata.version("torch")
    try:
        kept = json.loads(path.read_text())
        fresh = time.time() - path.stat().st_mtime < settings.calibration_ttl_s
        if fresh and kept.get("torch_dist") == torch_version and \
                kept.get("torch_threads_setting") == settings.torch_threads:
            return {**kept, "reused": True}
    except (OSError, ValueError, AttributeError):
        pass
    run = subprocess.run(
        [sys.executable, "-m", "micheck.workers.calibrate", "--device", device,
         "--seconds", str(settings.calibration_seconds)],
        capture_output=True, text=True, timeout=CALIBRATION_TIMEOUT_S)  # dies with us
    if run.returncode != 0:
        raise RuntimeError(f"exit {run.returncode}: {run.stderr.strip()[-500:]}")
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    measured.update(torch_dist=torch_version, torch_threads_setting=settings.torch_threads)
    with contextlib.suppress(OSError):  # a read-only var dir only costs a re-measurement
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(measured))
        os.replace(tmp, path)
    return measured


class _Calibrator(threading.Thread):
    """Measures the device once, off the work loop, and writes it into the worker's row;
    until it has, the service assumes the settings' throughput for this worker."""

    def __init__(self, db: Database, settings: Settings, name: str, device: str):
        super().__init__(daemon=True, name="micheck-calibrate")
        self.db, self.settings, self.name_, self.device = db, settings, name, device

    def run(self) -> None:
        try:
            measured = calibration(self.settings, self.device)
            with self.db.session() as s:
                store.record_calibration(s, self.name_, measured)
            log.info("worker %s: %s measured at %.1f GMAC/s, %.2f ms a step%s", self.name_,
                     self.device, measured["gmac_per_s"], 1000 * measured["step_overhead_s"],
                     " (this box's last measurement)" if measured.get("reused") else "")
        except Exception as exc:
            log.warning("worker %s: could not measure %s (%s); the service assumes the "
                        "settings' throughput for it", self.name_, self.device, exc)


def register(db: Database, settings: Settings, name: str, device: str,
             queues: list[str]) -> None:
    """This worker's row: what it serves and the plug-in estimators installed beside it
    (the service accepts a plug-in's name while a live worker reports it)."""
    report = plugin_report()
    with db.session() as s:
        # forget this host's rows that stopped beating long ago (crashed earlier runs)
        stale = utcnow() - timedelta(seconds=settings.worker_forget_after_s)
        s.execute(delete(WorkerRow).where(WorkerRow.heartbeat_at < stale))
        s.merge(WorkerRow(name=name, device=device, queue=",".join(queues),
                          host=settings.host_name, pid=os.getpid(), started_at=utcnow(),
                          heartbeat_at=utcnow(), current_evaluation=None, plugins=report))


def run_worker(settings: Settings, *, device: str | None = None, queues: list[str] | None = None,
               name: str | None = None, burst: bool = False) -> None:
    queues = queues or [settings.gpu_queue]
    device = resolve_device(device, queues, settings)
    if settings.worker_nice:  # inherited by the job processes and the calibration
        with contextlib.suppress(OSError):
            os.nice(max(0, settings.worker_nice - os.nice(0)))
    set_worker_device(device)  # read by the spawned job process
    set_worker_pid(os.getpid())  # a job process exits when this one is gone
    db = Database(settings)
    jq = JobQueue(settings)
    signal.signal(signal.SIGTERM, _stop_now)  # until RQ installs its own handlers
    wait_for_redis(jq)
    name = name or f"{settings.host_name}.{device.replace(':', '')}.{os.getpid()}"
    register(db, settings, name, device, queues)
    if settings.worker_calibration:
        _Calibrator(db, settings, name, device).start()
    keeper = _Housekeeper(db, jq, name, settings)
    keeper.start()
    try:
        reconcile(db, jq)
    except Exception as exc:
        log.warning("initial reconcile failed: %s", exc)
    log.info("worker %s on %s, queues %s", name, device, queues)
    try:
        while True:
            worker = MicheckWorker([jq.queue(q) for q in queues], connection=jq.redis,
                                   name=name, serializer=jq.serializer,
                                   work_horse_killed_handler=_horse_killed(db, name, settings))
            started = time.monotonic()
            try:
                worker.work(burst=burst, logging_level="INFO", with_scheduler=False)
            except RedisError as exc:  # e.g. in RQ's teardown, with Redis gone
                log.warning("worker loop lost Redis: %s", exc)
            if worker.stop_asked or burst:
                break
            # RQ's loop ended on an error (Redis went away): reconnect, do not quit
            signal.signal(signal.SIGTERM, _stop_now)
            signal.signal(signal.SIGINT, _stop_now)
            _wait_for_horse(worker)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))  # no busy loop
            wait_for_redis(jq)
            with contextlib.suppress(RedisError):  # our own stale registration
                jq.redis.delete(worker.key)
            log.warning("worker %s: Redis is back; registering again", name)
    finally:
        keeper.halt.set()
        with db.session() as s:
            s.execute(delete(WorkerRow).where(WorkerRow.name == name))
        db.dispose()
