"""Views: the REST API's resources (an evaluation's status and progress, pages, workers,
problems, webhook deliveries, comparisons with a baseline)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from micheck.contract._base import _Model
from micheck.contract.request import Cost, EvaluationRequest
from micheck.verdicts import Verdict

# ---- service views (the REST API's resources) --------------------------------------------


class EvaluationStatus(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def finished(self) -> bool:
        return self in (EvaluationStatus.succeeded, EvaluationStatus.failed,
                        EvaluationStatus.canceled)


class Progress(_Model):
    steps_done: int = 0
    steps_total: int = 0
    current: str | None = None  # e.g. "training 12 critics"


class ErrorInfo(_Model):
    code: str
    message: str


class EvaluationView(_Model):
    id: str
    status: EvaluationStatus
    spec_hash: str
    request: EvaluationRequest
    progress: Progress = Field(default_factory=Progress)
    attempts: int = 0
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: ErrorInfo | None = None
    worker: str | None = None
    heartbeat_at: datetime | None = None
    deduplicated: bool = False
    passed: bool | None = None
    verdict: Verdict | None = None
    cost: Cost | None = None  # estimated before acceptance (micheck.budget)
    extends: str | None = Field(None, description=(
        "more seeds: the finished evaluation whose stored estimates this one pools with its "
        "new seeds (POST /v1/evaluations/{id}/seeds); null for a submitted spec"))
    report_link: str | None = Field(
        None, description="signed, expiring, read-only link to the HTML report: opens in a "
                          "browser without a token (set by the service)")


class EvaluationPage(_Model):
    items: list[EvaluationView]
    next_cursor: str | None = None


class WorkerView(_Model):
    """A worker at /v1/workers. Only admins see its real name, host, pid and what other
    owners run on it; others see `worker-N`, and `current_evaluation` only when it is theirs."""

    name: str
    device: str
    queue: str
    current_evaluation: str | None = None
    busy: bool = False
    host: str | None = None
    pid: int | None = None
    heartbeat_age_seconds: float | None = None
    state: Literal["live", "lost"] = Field("live", description=(
        "lost: no heartbeat for stale_after_s (its box went away without stopping it); "
        "listed until worker_forget_after_s"))
    gmac_per_s: float | None = Field(None, description="its device's measured throughput "
                                     "(micheck.workers.calibrate); null: not measured")
    step_overhead_s: float | None = Field(None, description="its measured fixed cost of a "
                                          "training step")
    plugins: list[str] = Field(default_factory=list, description=(
        "plug-in estimators installed beside it: 'name (distribution==version)'"))
    broken_plugins: list[str] | None = Field(None, description=(
        "admins: plug-ins that did not load, each with the reason"))


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error response."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class DeliveryAttempt(_Model):
    """One try at a webhook delivery: the receiver's status code, or why there was none."""

    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None


class DeliveryView(_Model):
    """A webhook delivery of one terminal state, with its log of tries."""

    id: str
    evaluation_id: str
    event: str  # evaluation.succeeded | evaluation.failed | evaluation.canceled
    url: str  # scheme, host and path only: a query string may hold a credential
    state: Literal["pending", "delivered", "gave_up"]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    log: list[DeliveryAttempt] = Field(default_factory=list)


class PointComparison(_Model):
    """One point against the baseline's same point (micheck.compare): Student's pooled t
    test of the per-seed values on the point's scale, and what Holm's step-down over the
    evaluation's points made of it."""

    test: str
    transform: str = "rows"
    t: int | None
    kind: Literal["ratio", "step"] = "ratio"
    t_from: int | None = None
    rho: float | None = None
    ratio: float | None
    baseline_ratio: float | None
    difference: float | None  # ratio - baseline_ratio (geometric means on the log scale)
    p_value: float | None = None  # two-sided, of the pooled t test; None: no test
    scale: Literal["linear", "log"] = "linear"
    ci_low: float | None = None  # rows stored before Holm: the 95% Welch interval
    ci_high: float | None = None
    verdict: str  # this run's: pass | fail | inconclusive
    baseline_verdict: str | None  # None: the baseline has no such point
    regression: Literal["regressed", "improved", "unchanged", "not_significant", "new",
                        "untested"]
    note: str = ""


class Comparison(_Model):
    evaluation_id: str
    baseline_id: str
    baseline_query: str | None = None
    regression: bool  # some point regressed
    alpha: float = 0.05  # family-wise error of the regression flags
    tested: int = 0  # points in the gated family (both runs with >= 2 finite seeds)
    method: str = ""
    points: list[PointComparison]
