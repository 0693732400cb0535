"""micheck: self-consistency tests for mutual-information estimators.

The public API: the contract's models and the errors. `micheck.Client` and
`micheck.AsyncClient` (the HTTP clients) are imported lazily so that `import micheck`
stays light.
"""

from micheck._version import __version__
from micheck.contract import (
    CriticSpec,
    DatasetSpec,
    EstimatorSpec,
    EvaluationRequest,
    EvaluationResult,
    EvaluationStatus,
    EvaluationView,
    TestSpec,
    TrainSpec,
)
from micheck.errors import ApiError, DataNotFound, EvaluationError, MicheckError, SpecError

__all__ = [
    "ApiError", "AsyncClient", "Client", "CriticSpec", "DataNotFound", "DatasetSpec", "EstimatorSpec",
    "EvaluationError", "EvaluationRequest", "EvaluationResult", "EvaluationStatus",
    "EvaluationView", "MicheckError", "SpecError", "TestSpec", "TrainSpec", "__version__",
]


def __getattr__(name: str):
    if name in ("Client", "AsyncClient"):
        from micheck.clients import client

        return getattr(client, name)
    raise AttributeError(f"module 'micheck' has no attribute {name!r}")
