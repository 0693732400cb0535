"""The contract: requests, results and views shared by the engine, the service and the client.

Imports neither torch nor FastAPI: a CI pipeline installs it with the client alone. One module
per concept: `request` (what a user asks for, validated at the door; `Cost`), `result` (what
the engine computed), `view` (the REST API's resources), `league` (suites and league
rows). Everything is re-exported here, so `from micheck.contract import X` works for
every X.
"""

from __future__ import annotations

from micheck.contract.league import (  # noqa: F401
    HistoryEntry,
    League,
    LeagueHistory,
    LeagueRow,
    SuitePointView,
    SuiteView,
    config_name,
)
from micheck.contract.request import (  # noqa: F401
    DATA_ROOT_PATTERN,
    DEFAULT_MAX_SEEDS,
    DEFAULT_RHO,
    DEFAULT_TOLERANCE,
    ESTIMATOR_NAMES,
    GRADIENT_ONLY,
    IDEAL,
    IMAGE_TESTS,
    MAX_LABELS,
    MAX_SEED,
    VECTOR_SETS,
    Cost,
    CriticSpec,
    DatasetSpec,
    EstimatorSpec,
    EvaluationRequest,
    MoreSeeds,
    Row,
    Seed,
    TestKind,
    TestSpec,
    TrainSpec,
    Transform,
    WebhookSpec,
    _construct,
    parse_baseline,
    stored_request,
)
from micheck.contract.result import (  # noqa: F401
    Diagnostic,
    Estimate,
    EvaluationResult,
    Look,
    Provenance,
    Ratio,
    ReasonCode,
    SeedRounds,
    Verdict,
)
from micheck.contract.view import (  # noqa: F401
    Comparison,
    DeliveryAttempt,
    DeliveryView,
    ErrorInfo,
    EvaluationPage,
    EvaluationStatus,
    EvaluationView,
    PointComparison,
    Problem,
    Progress,
    WorkerView,
)
