"""The request/result models shared by the engine, the service and the client.

This module imports neither torch nor FastAPI: a CI pipeline installs it with the
client alone. Validation that needs no data lives here (so bad specs fail the same
way in the CLI, the API and the client); checks that need the data set (for example
a missing CIFAR-10 directory) happen in the engine.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from micheck.definitions import DATASETS, ESTIMATORS, canonical_estimator, definition_versions

TestKind = Literal["baseline", "independence", "data_processing", "additivity", "ground_truth"]
Transform = Literal["rows", "scaling", "rotation", "translation"]
IMAGE_TESTS = ("baseline", "independence", "data_processing", "additivity")

# Default pass/fail tolerances on a ratio, per test: |ratio - ideal| <= tolerance.
# baseline: each ratio may fall at most this much below the previous t (monotone)
# and must be within it of 0 at t=0. ground_truth: relative error of estimate/true MI.
DEFAULT_TOLERANCE: dict[str, float] = {
    "baseline": 0.1,
    "independence": 0.05,
    "data_processing": 0.15,
    "additivity": 0.3,
    "ground_truth": 0.1,
}
IDEAL: dict[str, float | None] = {
    "baseline": None,  # 0 at t=0, 1 at full height, non-decreasing in between
    "independence": 0.0,
    "data_processing": 1.0,
    "additivity": 2.0,
    "ground_truth": 1.0,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CriticSpec(_Model):
    """The network T(x, y). App. B.2 (CNN) for images, App. B.1 (MLP) for vectors."""

    kind: Literal["joint", "separable"] = "separable"
    arch: Literal["cnn", "mlp"] | None = Field(
        None, description="cnn for images, mlp for vectors when omitted")
    hidden: int = Field(256, ge=1, le=4096, description="MLP width (App. B.1: 256)")
    embed_dim: int = Field(32, ge=1, le=1024, description="separable critic's embedding size")
    width: float = Field(1.0, gt=0, le=4, description=(
        "CNN width multiplier: conv channels 64w, 128w and fc 1024w (App. B.2 is w=1; "
        "w=0.25 is ~15x cheaper, for CPU demos)"))


class TrainSpec(_Model):
    batch_size: int = Field(64, ge=2, le=4096)
    steps: int = Field(1000, ge=1, le=10_000_000)
    lr: float = Field(1e-4, gt=0, le=1.0)
    eval_samples: int = Field(
        2048, ge=2, description="held-out samples (test split) used for the reported estimate")


class EstimatorSpec(_Model):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    critic: CriticSpec = Field(default_factory=CriticSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        name = canonical_estimator(v.lower())
        if name not in ESTIMATORS:
            raise ValueError(f"unknown estimator {v!r}; known: {', '.join(sorted(ESTIMATORS))}")
        return name

    @model_validator(mode="after")
    def _params(self) -> EstimatorSpec:
        schema = ESTIMATORS[self.name].params
        unknown = set(self.params) - set(schema)
        if unknown:
            raise ValueError(f"{self.name} takes no parameter(s) {sorted(unknown)}; "
                             f"it takes {sorted(schema) or 'none'}")
        params = {k: s["default"] for k, s in schema.items() if "default" in s}
        params.update(self.params)
        if "tau" in params:
            params["tau"] = _parse_tau(params["tau"])
        if "alpha" in params and not 0.0 <= float(params["alpha"]) <= 1.0:
            raise ValueError("alpha must lie in [0, 1]")
        if "ema_rate" in params and not 0.0 < float(params["ema_rate"]) <= 1.0:
            raise ValueError("ema_rate must lie in (0, 1]")
        for key in ("iw_samples", "latent_dim"):
            if key in params and int(params[key]) < 1:
                raise ValueError(f"{key} must be >= 1")
        if "objective" in params and params["objective"] not in ("js", "direct"):
            raise ValueError("objective must be 'js' or 'direct'")
        self.params = params
        return self


def _parse_tau(v: Any) -> float | str:
    if isinstance(v, str):
        if v.strip().lower() in ("inf", "infinity", "+inf"):
            return "inf"
        try:
            v = float(v)
        except ValueError:
            raise ValueError(f"tau must be a number >= 0 or 'inf', got {v!r}") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"tau must be a number >= 0 or 'inf', got {v!r}")
    if math.isnan(v) or v < 0:
        raise ValueError(f"tau must be >= 0, got {v}")
    return "inf" if math.isinf(v) else float(v)


class DatasetSpec(_Model):
    name: Literal["mnist", "fashion_mnist", "cifar10", "gaussian", "cubic"]
    dim: int = Field(20, ge=1, le=4096, description="vector tasks: dimension d of x and y")
    mi: float = Field(2.0, gt=0, le=200, description="vector tasks: true MI in nats (Eq. 55)")
    data_dir: str | None = Field(None, description="cifar10: directory holding cifar-10-batches-py")
    train_size: int | None = Field(None, ge=2, description="use only the first N training images")

    @model_validator(mode="after")
    def _mi_per_dim(self) -> DatasetSpec:
        # beyond ~12 nats per dimension float32 noise swamps the Gaussian's noise scale
        if not self.is_image and self.mi / self.dim > 12:
            raise ValueError(f"mi/dim = {self.mi / self.dim:.1f} nats per dimension is above 12; "
                             "raise dim or lower mi")
        return self

    @property
    def is_image(self) -> bool:
        return DATASETS[self.name].kind == "image"

    @property
    def height(self) -> int:
        return DATASETS[self.name].shape[1] if self.is_image else 0


class TestSpec(_Model):
    __test__ = False  # not a pytest class

    kind: TestKind
    rows: list[int] | None = Field(
        None, description="t values: top rows kept in Y (default: a grid over the height)")
    offset: int = Field(3, ge=1, description="data_processing: h(Y) keeps t - offset rows")
    transform: Transform = Field(
        "rows", description="rows = mask all but the top t rows (Sec. 6.2); the others are "
                            "the Table 3 random transforms")
    tolerance: float | None = Field(None, gt=0)

    @property
    def effective_tolerance(self) -> float:
        return self.tolerance if self.tolerance is not None else DEFAULT_TOLERANCE[self.kind]


class EvaluationRequest(_Model):
    """One estimator, one data set, a list of tests, a list of seeds."""

    estimator: EstimatorSpec
    dataset: DatasetSpec
    tests: list[TestSpec] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=64)
    force: bool = Field(False, description="re-run even if an identical evaluation finished")
    label: str | None = Field(None, max_length=200)

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        if any(s < 0 for s in v):
            raise ValueError("seeds must be >= 0")
        return v

    @model_validator(mode="after")
    def _tests_fit_dataset(self) -> EvaluationRequest:
        ds = self.dataset
        for i, test in enumerate(self.tests):
            where = f"tests[{i}] ({test.kind})"
            if ds.is_image and test.kind == "ground_truth":
                raise ValueError(f"{where}: ground_truth needs a vector data set with known MI "
                                 "(gaussian or cubic)")
            if not ds.is_image and test.kind != "ground_truth":
                raise ValueError(f"{where}: {ds.name} is a vector task; only ground_truth applies")
            if test.rows is not None:
                if test.kind == "ground_truth" or test.transform != "rows":
                    raise ValueError(f"{where}: rows apply only to row-masking image tests")
                bad = [t for t in test.rows if not 0 <= t <= ds.height]
                if bad:
                    raise ValueError(f"{where}: rows {bad} outside 0..{ds.height} "
                                     f"(image height of {ds.name})")
                if not test.rows:
                    raise ValueError(f"{where}: rows must not be empty")
            if test.kind == "independence" and test.transform != "rows":
                raise ValueError(f"{where}: independence uses row masking only")
        if (self.estimator.critic.arch == "cnn") != ds.is_image and self.estimator.critic.arch:
            want = "cnn" if ds.is_image else "mlp"
            raise ValueError(f"critic arch {self.estimator.critic.arch!r} does not fit "
                             f"{ds.name}; use {want!r}")
        return self

    def canonical(self) -> dict[str, Any]:
        """The spec with every default filled in, minus fields that do not change results."""
        return self.model_dump(mode="json", exclude={"force", "label"})

    def spec_hash(self) -> str:
        """Deduplication key: canonical spec plus the definition versions it runs under."""
        payload = {"spec": self.canonical(),
                   "definitions": definition_versions(self.estimator.name)}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


# ---- results -----------------------------------------------------------------------------


class Estimate(_Model):
    """One trained critic (or generative model triple): an MI estimate in nats."""

    test: str  # the role: baseline, independence, data_processing, additivity, ground_truth
    t: int | None  # rows kept; None for transforms and vector tasks
    seed: int
    mi_train: float | None  # on training batches (last 10% of steps), nats; None if not finite
    mi_test: float | None  # on the held-out split, nats; None if not finite
    true_mi: float | None = None
    steps: int
    diverged: bool = False
    transform: str = "rows"


class Ratio(_Model):
    test: str
    t: int | None
    value: float | None  # mean over seeds
    ci_low: float | None  # 95% Student-t interval over seeds; None with one seed
    ci_high: float | None
    ideal: float | None
    passed: bool
    tolerance: float
    per_seed: list[float | None]
    transform: str = "rows"
    note: str = ""


class Diagnostic(_Model):
    code: Literal["cpc_ceiling", "diverged", "train_test_gap", "non_monotone",
                  "nonzero_independence", "info"]
    severity: Literal["info", "warning", "error"]
    message: str
    test: str | None = None
    t: int | None = None
    seed: int | None = None


class Provenance(_Model):
    definition_versions: dict[str, str]
    code_version: str
    seeds: list[int]
    device: str
    torch_version: str
    started_at: datetime
    finished_at: datetime
    wall_seconds: float


class EvaluationResult(_Model):
    request: EvaluationRequest
    estimates: list[Estimate]
    ratios: list[Ratio]
    diagnostics: list[Diagnostic]
    provenance: Provenance
    passed: bool


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


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error response."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
