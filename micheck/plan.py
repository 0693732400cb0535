"""The plan of an evaluation: which MI estimates it needs and which values it decides.

Torch-free (the service sizes jobs with it, the workers train what it lists). A request is
planned into *measurements*, the distinct MI estimates it needs (each an (X, Y)
construction of paper 002 Sec. 4.2 / App. B.2, or paper 004's correlated Gaussian at one
rho); a *point* is a ratio of two of them (or of one and the known truth). Each test's
points come from its kind's registry entry (micheck.testkinds); denominators are shared:
I(X; Y_t) serves data processing and additivity at the same t, and I(X; X) = baseline at
full height serves every baseline and independence point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from micheck import testkinds
from micheck.testkinds import Measurement, Point

if TYPE_CHECKING:
    from micheck.contract import EvaluationRequest

__all__ = ["Measurement", "Point", "default_rows", "plan", "points"]


def default_rows(kind: str, height: int) -> list[int]:
    """The t grid of a row-masking test that names no rows."""
    return testkinds.get(kind).default_rows(height)


def points(request: EvaluationRequest) -> list[Point]:
    """Every point of every test, in the request's order of tests."""
    return [p for test in request.tests for p in testkinds.get(test.kind).points(test, request)]


def plan(request: EvaluationRequest) -> list[Measurement]:
    """The distinct measurements a request needs (denominators shared across tests)."""
    return sorted({m for p in points(request) for m in p.measurements}, key=_order)


def _order(m: Measurement) -> tuple:
    return (m.role, m.transform, m.t if m.t is not None else -1, m.offset,
            m.rho if m.rho is not None else 0.0)
