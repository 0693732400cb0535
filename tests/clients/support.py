"""Helpers for the client tests: recorded real results, the real app in-process, and a
real server on a loopback port with a worker thread running the real job glue.

The result fixtures were written by the real engine (fixtures/regenerate.py, 3 seeds each):
- gaussian_result.json: InfoNCE at batch 16 on a 5-nat Gaussian (ceiling log 16): FAIL
- gaussian_pass_result.json: InfoNCE, 300 steps, tolerance 0.2: ground_truth PASS
- mnist_result.json: SMILE(tau=5), quarter-width CNN, 150 steps, 512 MNIST images, all
  four image tests; labelled "<b>tiny</b> & mnist" (escaping)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from micheck.contract import EvaluationRequest, EvaluationResult, Progress

FIXTURES = Path(__file__).parent / "fixtures"


def load_result(name: str) -> EvaluationResult:
    return EvaluationResult.model_validate_json((FIXTURES / f"{name}_result.json").read_text())


def replay_engine(recorded: EvaluationResult, *, steps: int = 4, delay: float = 0.0):
    """An engine that re-issues a recorded real result for the submitted request, with
    progress and cancel checks between its steps (the client is under test, not it)."""

    def evaluate(request: EvaluationRequest, *, device=None, progress=None, should_cancel=None):
        from micheck.errors import Canceled

        for i in range(steps):
            if should_cancel and should_cancel():
                raise Canceled("canceled between steps")
            if progress:
                progress(Progress(steps_done=i + 1, steps_total=steps, current="replay"))
            time.sleep(delay)
        now = datetime.now(timezone.utc)
        prov = recorded.provenance.model_copy(update={"finished_at": now})
        return recorded.model_copy(update={"request": request, "provenance": prov})

    return evaluate


def with_reports(app):
    """The app with the reports router, unless service/app.py includes it already."""
    from micheck.service.routes import reports
    from starlette.routing import NoMatchFound

    try:  # app.routes may hold included routers whole, so ask by name
        app.url_path_for("compare_page")
    except NoMatchFound:
        app.include_router(reports.router)
    return app


def run_queued(app, engine: Callable, *, limit: int = 100) -> list[str]:
    """Run every queued evaluation now, through the real job glue (workers.job.execute)."""
    from micheck.workers.job import execute
    from sqlalchemy import select

    from micheck.storage.models import Evaluation

    db, settings = app.state.db, app.state.settings
    with db.session() as s:
        ids = list(s.scalars(select(Evaluation.id).where(Evaluation.status == "queued")
                             .order_by(Evaluation.created_at).limit(limit)))
    return [execute(eid, engine, settings, db) for eid in ids]


class Worker(threading.Thread):
    """Polls the database for queued evaluations and runs them (a stand-in for the RQ
    worker process, so the tests need no subprocesses)."""

    def __init__(self, app, engine: Callable):
        super().__init__(daemon=True, name="test-worker")
        self.app, self.engine, self.halt = app, engine, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            if not run_queued(self.app, self.engine, limit=1):
                self.halt.wait(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
