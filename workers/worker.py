"""`micheck worker`: an RQ SpawnWorker on one queue (or several), bound to one device.

SpawnWorker starts a fresh interpreter per job instead of forking: CUDA state does not
survive fork. This parent process never imports torch; it only dequeues, heartbeats its
row in the workers table and runs the reconciler now and then.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Any

from rq.worker import SpawnWorker
from sqlalchemy import delete

from micheck.errors import SpecError
from micheck.queue import JobQueue, reconcile
from micheck.settings import Settings, set_worker_device
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


def run_worker(settings: Settings, *, device: str | None = None, queues: list[str] | None = None,
               name: str | None = None, burst: bool = False) -> None:
    queues = queues or [settings.gpu_queue]
    device = resolve_device(device, queues, settings)
    set_worker_device(device)  # read by the spawned job process
    db = Database(settings)
    jq = JobQueue(settings)
    jq.redis.ping()
    name = name or f"{socket.gethostname()}.{device.replace(':', '')}.{os.getpid()}"
    with db.session() as s:
        # forget this host's rows that stopped beating long ago (crashed earlier runs)
        stale = utcnow() - timedelta(seconds=settings.worker_forget_after_s)
        s.execute(delete(WorkerRow).where(WorkerRow.heartbeat_at < stale))
        s.merge(WorkerRow(name=name, device=device, queue=",".join(queues),
                          host=socket.gethostname(), pid=os.getpid(), started_at=utcnow(),
                          heartbeat_at=utcnow(), current_evaluation=None))
    keeper = _Housekeeper(db, jq, name, settings)
    keeper.start()
    try:
        reconcile(db, jq)
    except Exception as exc:
        log.warning("initial reconcile failed: %s", exc)
    worker = SpawnWorker([jq.queue(q) for q in queues], connection=jq.redis, name=name,
                         serializer=jq.serializer,
                         work_horse_killed_handler=_horse_killed(db, name, settings))
    log.info("worker %s on %s, queues %s", name, device, queues)
    try:
        worker.work(burst=burst, logging_level="INFO", with_scheduler=False)
    finally:
        keeper.halt.set()
        with db.session() as s:
            s.execute(delete(WorkerRow).where(WorkerRow.name == name))
        db.dispose()
