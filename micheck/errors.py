"""micheck's exceptions. Every one the user can meet derives from MicheckError:

    MicheckError
    ├── SpecError            a spec or request is invalid (CLI exit 2, HTTP 422)
    │   └── DataNotFound     the data set's files are missing (names the path expected)
    ├── EvaluationError      the engine failed while running a valid spec
    │   └── Canceled         a cancel request was honoured between training steps
    ├── FetchError           `micheck data fetch` could not download, verify or unpack a data set
    └── ApiError             the service answered with a problem (clients.errors refines it)

The CLI maps SpecError to exit code 2, ApiError, FetchError and timeouts to 3, and prints one
line instead of a traceback.
"""

from __future__ import annotations


class MicheckError(Exception):
    """Base of all micheck errors."""


class SpecError(MicheckError, ValueError):
    """The evaluation spec is invalid; the message names the field."""


class DataNotFound(SpecError):
    """A data set's files are not where they are expected."""


class EvaluationError(MicheckError):
    """A valid evaluation failed while running."""


class Canceled(EvaluationError):
    """The evaluation was canceled on request."""


class FetchError(MicheckError):
    """A data set could not be downloaded, verified or unpacked (network, HTTP status,
    checksum, disk); the message says what to do."""


class ApiError(MicheckError):
    """The service answered with an error (see clients.errors for the subclasses)."""

    def __init__(self, message: str, status: int | None = None, problem: dict | None = None):
        super().__init__(message)
        self.status = status
        self.problem = problem or {}
