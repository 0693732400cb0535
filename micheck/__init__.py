"""micheck: self-consistency tests for mutual-information estimators.

The public API: the contract's models and the errors. `micheck.Client` (the HTTP
client) is imported lazily so that `import micheck` stays light.
"""

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

__version__ = "0.1.0"

__all__ = [
    "ApiError", "Client", "CriticSpec", "DataNotFound", "DatasetSpec", "EstimatorSpec",
    "EvaluationError", "EvaluationRequest", "EvaluationResult", "EvaluationStatus",
    "EvaluationView", "MicheckError", "SpecError", "TestSpec", "TrainSpec", "__version__",
]


def __getattr__(name: str):
    if name == "Client":
        from micheck.clients.client import Client

        return Client
    raise AttributeError(name)
