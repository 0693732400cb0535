"""The RQ job: run one evaluation that the database holds, by id.

RQ passes only the id. The job claims the evaluation (queued -> running, one more
attempt), runs the engine with progress and cancel wired to the database, and writes
the result once, in the transaction that marks it succeeded. A job that finds the
evaluation already claimed or finished does nothing: duplicates in Redis are harmless.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from rq.timeouts import JobTimeoutException

from micheck.contract import EvaluationRequest, EvaluationResult, Progress
from micheck.errors import Canceled, DataNotFound, PluginFailed, SpecError
from micheck.processes import die_with_parent
from micheck.settings import Settings
from micheck.storage import store
from micheck.storage.db import Database
from micheck.storage.models import Evaluation, WorkerRow

log = logging.getLogger("micheck.job")
Engine = Callable[..., EvaluationResult]


def worker_name() -> str:
    settings = Settings()
    return settings.worker_id or f"{settings.host_name}.{os.getpid()}"


def run_evaluation(evaluation_id: str) -> str:
    """RQ entry point (enqueued as "micheck.workers.job.run_evaluation"); returns the final status.

    RQ's SpawnWorker starts this process in its own process group, so a signal to the
    worker's group does not reach it and a killed worker would leave it training as an
    orphan: it asks the kernel for SIGKILL when its worker dies (and exits at once if the
    worker is already gone).
    """
    worker_pid = Settings().worker_pid
    if worker_pid:
        die_with_parent(signal.SIGKILL, expected_parent=worker_pid)
    from micheck.workers.engine import evaluate  # imports torch: only in the work horse

    return execute(evaluation_id, evaluate)


class _Beat(threading.Thread):
    """Writes heartbeat + latest progress every interval and reads the cancel flag, so the
    engine's progress() and should_cancel() never wait on the database."""

    def __init__(self, db: Database, eid: str, attempt: int, settings: Settings):
        super().__init__(daemon=True, name=f"heartbeat-{eid}")
        self.db, self.eid, self.attempt = db, eid, attempt
        self.interval = min(settings.heartbeat_interval_s,
                            settings.progress_interval_s or settings.heartbeat_interval_s,
                            settings.cancel_poll_s or settings.heartbeat_interval_s)
        self.progress: Progress | None = None
        self.cancel = False
        self.lost = False  # the reconciler gave this attempt up: stop wasting the device
        self._halt = threading.Event()

    def beat(self) -> None:
        p, self.progress = self.progress, None
        try:
            with self.db.session() as s:
                flag = store.heartbeat(s, self.eid, self.attempt, p)
        except Exception as exc:  # a DB hiccup must not kill the training
            log.warning("heartbeat for %s failed: %s", self.eid, exc)
            return
        if flag is None:
            self.lost = True
        else:
            self.cancel = flag

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def _set_current(db: Database, name: str, eid: str | None) -> None:
    try:
        with db.session() as s:
            row = s.get(WorkerRow, name)
            if row is not None:
                row.current_evaluation = eid
    except Exception as exc:
        log.warning("could not update worker %s: %s", name, exc)


def execute(evaluation_id: str, evaluate: Engine, settings: Settings | None = None,
            db: Database | None = None) -> str:
    """Claim, run, record. ``evaluate`` has workers.engine.evaluate's signature."""
    settings = settings or Settings()
    own_db = db is None
    db = db or Database(settings)
    name = worker_name()
    try:
        with db.session() as s:
            claim = store.claim(s, evaluation_id, name, settings.max_attempts)
        if claim is None:
            return _unclaimable(db, evaluation_id, settings)
        if settings.torch_threads:
            import torch  # the job process only: the worker parent never imports torch

            torch.set_num_threads(settings.torch_threads)
        _set_current(db, name, evaluation_id)
        beat = _Beat(db, evaluation_id, claim.attempt, settings)
        beat.start()
        try:
            return _run(db, evaluation_id, claim, evaluate, beat, settings)
        finally:
            beat.stop()
            _set_current(db, name, None)
    finally:
        if own_db:
            db.dispose()


def _unclaimable(db: Database, eid: str, settings: Settings) -> str:
    with db.session() as s:
        row = s.get(Evaluation, eid)
        if row is None:
            log.warning("evaluation %s does not exist; dropping its job", eid)
            return "missing"
        if row.status == store.Q and row.attempts >= settings.max_attempts:
            store.fail_queued(s, eid, "retries_exhausted",
                              f"gave up after {row.attempts} attempts; last error: "
                              f"{row.error_code}: {row.error_message}")
            return store.FAILED
        return row.status  # running elsewhere or finished: nothing to do


def _run(db: Database, eid: str, claim: store.Claim, evaluate: Engine, beat: _Beat,
         settings: Settings) -> str:
    attempt = claim.attempt

    def progress(p: Progress) -> None:
        beat.progress = p

    def should_cancel() -> bool:
        return beat.cancel or beat.lost

    def end(status: str, code: str | None, message: str | None) -> str:
        with db.session() as s:
            if not store.finish_attempt(s, eid, attempt, status=status, code=code,
                                        message=message):
                return "superseded"
        return status

    device = settings.device or None
    request: EvaluationRequest = claim.request
    extra: dict[str, Any] = {}
    try:
        if claim.extends is not None:  # more seeds: pooled with the stored estimates
            extra["prior"] = _prior(db, claim.extends)
        result = evaluate(request, device=device, progress=progress, should_cancel=should_cancel,
                          **extra)
    except Canceled as exc:
        if beat.lost:
            return "superseded"
        return end(store.CANCELED, "canceled", str(exc) or "canceled on request")
    except DataNotFound as exc:
        return end(store.FAILED, "data_not_found", str(exc))
    except SpecError as exc:
        return end(store.FAILED, "invalid_spec", str(exc))
    except PluginFailed as exc:  # deterministic: a retry would fail the same way
        return end(store.FAILED, "plugin_failed", str(exc))
    except JobTimeoutException:
        return end(store.FAILED, "timeout", f"the run exceeded its job timeout of "
                                            f"{_timeout_of(db, eid)} s")
    except Exception as exc:
        what = f"{type(exc).__name__}: {exc}"[:2000]
        log.exception("evaluation %s attempt %s crashed", eid, attempt)
        if attempt < settings.max_attempts:
            end(store.Q, "crashed", f"attempt {attempt} crashed ({what}); retrying")
            raise  # RQ's Retry runs the job again; the DB says queued meanwhile
        return end(store.FAILED, "crashed", f"attempt {attempt} of {attempt} crashed: {what}")
    with db.session() as s:
        if not store.finish_success(s, eid, attempt, result):
            log.warning("evaluation %s: attempt %s finished after being superseded; "
                        "its results are dropped", eid, attempt)
            return "superseded"
    return store.OK


def _prior(db: Database, evaluation_id: str) -> EvaluationResult:
    """The stored result an evaluation with more seeds extends (SpecError if it has none:
    the service only accepts extensions of succeeded evaluations, which keep their result)."""
    with db.session() as s:
        row = s.get(Evaluation, evaluation_id)
        if row is None or row.status != store.OK or row.result_attempt is None:
            raise SpecError(f"more seeds: evaluation {evaluation_id} has no stored result")
        return store.load_result(s, row)


def _timeout_of(db: Database, eid: str) -> Any:
    with db.session() as s:
        row = s.get(Evaluation, eid)
        return row.job_timeout_s if row else "?"
