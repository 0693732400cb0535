"""SQL tables. The database is the source of truth for requests, status and results.

Results are stored per attempt (results.attempt); an evaluation points at the attempt
whose numbers it reports, so a crashed attempt's leftovers never mix with a retry's.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware out (SQLite would otherwise drop the zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Token(Base):
    __tablename__ = "tokens"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # an admin's per-token raise of the settings' limits (None: the settings' value)
    max_queued: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_request_gmac: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_token_gmac: Mapped[float | None] = mapped_column(Float, nullable=True)


class Evaluation(Base):
    __tablename__ = "evaluations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    request: Mapped[dict] = mapped_column(JSON)
    estimator: Mapped[str] = mapped_column(String(32), index=True)
    dataset: Mapped[str] = mapped_column(String(32), index=True)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    queue: Mapped[str] = mapped_column(String(64))
    job_timeout_s: Mapped[int] = mapped_column(Integer)
    rq_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    steps_total: Mapped[int] = mapped_column(Integer, default=0)
    current: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    cost_gmac: Mapped[float | None] = mapped_column(Float, nullable=True)  # micheck.budget
    cost: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # more seeds: the evaluation whose stored estimates this one pools (0020)
    extends: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)

    __table_args__ = (Index("ix_evaluations_created_id", "created_at", "id"),)


class Result(Base):
    """One attempt's finished output and the provenance of every number under it."""

    __tablename__ = "results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[str] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    definition_versions: Mapped[dict] = mapped_column(JSON)
    code_version: Mapped[str] = mapped_column(String(100))
    seeds: Mapped[list] = mapped_column(JSON)
    device: Mapped[str] = mapped_column(String(64))
    torch_version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    wall_seconds: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)  # NULL: legacy
    alpha: Mapped[float | None] = mapped_column(Float, nullable=True)
    seed_rounds: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    __table_args__ = (UniqueConstraint("evaluation_id", "attempt"),)


class EstimateRow(Base):
    __tablename__ = "estimates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="CASCADE"),
                                           index=True)
    test: Mapped[str] = mapped_column(String(32))
    t: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seed: Mapped[int] = mapped_column(Integer)
    mi_train: Mapped[float | None] = mapped_column(Float, nullable=True)
    mi_test: Mapped[float | None] = mapped_column(Float, nullable=True)
    true_mi: Mapped[float | None] = mapped_column(Float, nullable=True)
    steps: Mapped[int] = mapped_column(Integer)
    diverged: Mapped[bool] = mapped_column(Boolean, default=False)
    transform: Mapped[str] = mapped_column(String(32), default="rows")
    curve: Mapped[list | None] = mapped_column(JSON, nullable=True)
    converged: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    convergence: Mapped[str] = mapped_column(Text, default="")
    rho: Mapped[float | None] = mapped_column(Float, nullable=True)  # mi_gradient (0012)
    gradient: Mapped[float | None] = mapped_column(Float, nullable=True)
    true_gradient: Mapped[float | None] = mapped_column(Float, nullable=True)


class RatioRow(Base):
    __tablename__ = "ratios"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="CASCADE"),
                                           index=True)
    test: Mapped[str] = mapped_column(String(32))
    t: Mapped[int | None] = mapped_column(Integer, nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    ideal: Mapped[float | None] = mapped_column(Float, nullable=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    tolerance: Mapped[float] = mapped_column(Float)
    per_seed: Mapped[list] = mapped_column(JSON)
    transform: Mapped[str] = mapped_column(String(32), default="rows")
    note: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default="ratio")
    t_from: Mapped[int | None] = mapped_column(Integer, nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)  # NULL: legacy
    band_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    band_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_level: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_method: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reason_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    seeds: Mapped[int] = mapped_column(Integer, default=0)
    rho: Mapped[float | None] = mapped_column(Float, nullable=True)  # mi_gradient (0012)
    scale: Mapped[str | None] = mapped_column(String(8), nullable=True)  # linear | log (0014)
    look: Mapped[int | None] = mapped_column(Integer, nullable=True)  # deciding look (0014)


class DiagnosticRow(Base):
    __tablename__ = "diagnostics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="CASCADE"),
                                           index=True)
    code: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    test: Mapped[str | None] = mapped_column(String(32), nullable=True)
    t: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    body_sha256: Mapped[str] = mapped_column(String(64))
    evaluation_id: Mapped[str] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkerRow(Base):
    __tablename__ = "workers"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    device: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    current_evaluation: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # micheck.estimators.plugins.report(): {"estimators": [...], "broken": [...]}
    plugins: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # micheck.workers.calibrate, measured at start (0019); NULL: not (yet) measured
    gmac_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    step_overhead_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    calibrated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    calibration: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class LabelRow(Base):
    """One label of an evaluation; (key, value) indexed for listing filters."""

    __tablename__ = "evaluation_labels"
    evaluation_id: Mapped[str] = mapped_column(
        ForeignKey("evaluations.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    __table_args__ = (Index("ix_evaluation_labels_key_value", "key", "value"),)


class WebhookRow(Base):
    """A receiver to notify when an evaluation ends (kept out of the shown request)."""

    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[str] = mapped_column(
        ForeignKey("evaluations.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryRow(Base):
    """One notification of one terminal state to one webhook, retried until delivered or
    given up; ``payload`` is the exact body that is signed and sent on every try."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    evaluation_id: Mapped[str] = mapped_column(
        ForeignKey("evaluations.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # pending | delivered | gave_up
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)


class DeliveryAttemptRow(Base):
    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)


class SuiteRow(Base):
    """A suite's definition (micheck.suites) as it was when first used (0021): the league
    of (name, version) is measured on these points, whatever the code says later."""

    __tablename__ = "suites"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
