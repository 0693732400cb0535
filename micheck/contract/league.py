"""The league: suites as the API shows them, one row per (estimator config, suite point)
read from stored results, and one point's value over code versions.

A row's numbers are those of the stored ratio row of the latest succeeded evaluation
labelled for the point (micheck.suites labels; micheck.storage.league reads them): nothing
here is recomputed when read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from micheck.contract._base import _Model
from micheck.verdicts import Verdict


def config_name(estimator: str, params: dict[str, Any]) -> str:
    """An estimator config as one readable key: ``smile(tau=5.0)``, or the name alone."""
    if not params:
        return estimator
    return f"{estimator}(" + ", ".join(f"{k}={params[k]}" for k in sorted(params)) + ")"


class SuitePointView(_Model):
    id: str
    title: str
    spec: dict[str, Any] = Field(description="the partial request: everything but the "
                                             "estimator's name and params")
    row: dict[str, Any] = Field(description="which ratio row of the result is reported")


class SuiteView(_Model):
    """A suite version; ``stored_at`` is when its definition was first stored (None: not
    used yet on this server, shown from the code's registry)."""

    name: str
    version: int
    title: str
    points: list[SuitePointView]
    stored_at: datetime | None = None


class LeagueRow(_Model):
    estimator: str
    params: dict[str, Any]
    config: str = Field(description="estimator and params as one key (config_name)")
    point: str
    point_title: str
    test: str
    transform: str | None = None
    rho: float | None = None
    value: float | None = Field(description="the stored row's mean over seeds")
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = None
    ideal: float | None = None
    band_low: float | None = None
    band_high: float | None = None
    verdict: Verdict | None = Field(description="None when the result has no such row")
    reason: str = ""
    seeds: int = 0
    code_version: str
    evaluation_id: str
    created_at: datetime
    report: str = Field(description="the evaluation's report page, relative to the API root")


class League(_Model):
    suite: str
    version: int
    title: str
    stored_at: datetime
    points: list[SuitePointView]
    rows: list[LeagueRow]


class HistoryEntry(_Model):
    """A point's value in the latest succeeded evaluation of one config at one code
    version."""

    config: str
    params: dict[str, Any]
    code_version: str
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    verdict: Verdict | None = None
    evaluation_id: str
    created_at: datetime


class LeagueHistory(_Model):
    suite: str
    version: int
    point: str
    estimator: str
    entries: list[HistoryEntry] = Field(description="oldest code version first")
