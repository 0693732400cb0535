"""Results: what the engine computed (estimates, decided ratios, diagnostics, provenance)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from micheck.contract._base import _Model
from micheck.contract.request import EvaluationRequest
from micheck.exits import exit_code
from micheck.verdicts import ReasonCode, Scale, Verdict


class Estimate(_Model):
    """One trained critic (or generative model triple): an MI estimate in nats.

    `curve`: the held-out estimate at checkpoints during training, as (step, nats) pairs,
    on the same fixed held-out batches each time; `converged` is the plateau test's answer
    on it (micheck.convergence), None for rows stored before curves existed.
    """

    test: str  # the role: baseline, independence, data_processing, additivity, ground_truth
    t: int | None  # rows kept; None for transforms and vector tasks
    seed: int
    mi_train: float | None  # on training batches (last 10% of steps), nats; None if not finite
    mi_test: float | None  # on the held-out split, nats; None if not finite
    true_mi: float | None = None
    steps: int
    diverged: bool = False
    transform: str = "rows"
    curve: list[tuple[int, float | None]] = Field(default_factory=list)
    converged: bool | None = None
    convergence: str = ""  # one line: what the plateau test saw
    # mi_gradient only: the correlation, the estimated and the analytic dI/drho
    rho: float | None = None
    gradient: float | None = None
    true_gradient: float | None = None


class Ratio(_Model):
    """One decided point: a ratio (or, for baseline monotonicity, a step between two t).

    The verdict follows from `ci_low`/`ci_high` against `band_low`/`band_high` by the rule
    in micheck.verdicts: pass inside, fail wholly outside, inconclusive otherwise (with
    `reason_code` and a one-line `reason`).
    """

    test: str
    t: int | None
    value: float | None  # mean over seeds
    ci_low: float | None  # the interval the verdict was decided on; None with < 2 seeds
    ci_high: float | None
    ideal: float | None
    passed: bool  # verdict == "pass" (kept for clients of API v1)
    tolerance: float
    per_seed: list[float | None]
    transform: str = "rows"
    note: str = ""
    kind: Literal["ratio", "step"] = "ratio"  # step: r(t) - r(t_from), baseline monotonicity
    t_from: int | None = None
    rho: float | None = None  # mi_gradient: the correlation of this row
    verdict: Verdict = "inconclusive"
    band_low: float | None = None
    band_high: float | None = None
    ci_level: float | None = None  # e.g. 0.9975 for 20 decisions at alpha 0.05
    ci_method: str | None = Field(None, max_length=100)  # the stored column's width
    reason_code: ReasonCode | Literal["legacy"] | None = None
    reason: str = ""
    seeds: int = 0  # seeds that contributed
    scale: Scale | None = None  # the interval's scale (micheck.verdicts); None before v3
    look: int | None = None  # the look that decided it (or last judged it); None before v3

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        # rows stored before verdicts were three-valued carry only `passed` (mean within
        # tolerance, interval ignored): they are shown as inconclusive, never as pass
        if isinstance(data, dict) and "verdict" not in data and "passed" in data:
            data = {**data, "verdict": "inconclusive", "passed": False, "reason_code": "legacy",
                    "reason": "stored before verdicts were decided on intervals"}
        return data


class Diagnostic(_Model):
    code: Literal["cpc_ceiling", "diverged", "train_test_gap", "non_monotone",
                  "nonzero_independence", "not_converged", "negative_estimate", "info"]
    severity: Literal["info", "warning", "error"]
    message: str
    test: str | None = None
    t: int | None = None
    seed: int | None = None


class Look(_Model):
    """One look of the adaptive seed rule: the evaluation scored with the seeds so far,
    spending `alpha` (micheck.verdicts.spend) split over its decisions (each interval at
    `level`); rows decided at a look are final."""

    look: int  # 1-based
    seeds: int  # distinct seeds trained so far (the undecided rows' measurements have all)
    alpha: float
    level: float
    decided: int  # rows that got their pass or fail at this look
    open: int  # rows still inconclusive after it
    planned: bool = True  # False: a look added later (more seeds for a finished evaluation)


class SeedRounds(_Model):
    """What the adaptive seed rule did."""

    rounds: list[list[int]] = Field(default_factory=list)  # seeds trained in each round
    cap: int = 0
    stop: Literal["conclusive", "cap_reached", "not_resolvable_by_seeds", "single_round",
                  "futile"] = "single_round"
    note: str = ""
    looks: list[Look] = Field(default_factory=list)  # empty for results before engine v3
    # how many looks the adaptive rule planned (micheck.scoring.looks of the submitted
    # spec): the alpha shares of looks not taken stay available to later looks (more seeds)
    planned_looks: int | None = None


class Provenance(_Model):
    """What a result was computed with. A plug-in estimator's distribution and version are
    in ``definition_versions`` under ``plugin`` (``dist==version``) and in ``plugin``."""

    definition_versions: dict[str, str]
    code_version: str
    seeds: list[int]
    device: str
    torch_version: str
    started_at: datetime
    finished_at: datetime
    wall_seconds: float

    @property
    def plugin(self) -> str | None:
        """The plug-in estimator's 'distribution==version'; None for a built-in."""
        return self.definition_versions.get("plugin")


class EvaluationResult(_Model):
    request: EvaluationRequest
    estimates: list[Estimate]
    ratios: list[Ratio]  # points and baseline monotonicity steps (kind="step")
    diagnostics: list[Diagnostic]
    provenance: Provenance
    passed: bool  # verdict == "pass"
    verdict: Verdict = "inconclusive"
    alpha: float | None = None  # family-wise error rate of the verdicts
    seed_rounds: SeedRounds = Field(default_factory=SeedRounds)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "verdict" not in data:
            data = {**data, "verdict": "inconclusive", "passed": False}
        return data

    def spec_hash(self) -> str:
        """The request's deduplication key, from the versions this result recorded where
        this process does not know the estimator (a plug-in installed on the worker)."""
        req = self.request
        return req.spec_hash() if req.estimator.known else req.spec_hash(
            dict(self.provenance.definition_versions))

    def inconclusive_reasons(self) -> list[str | None]:
        """The reason codes of the inconclusive points (what the exit code maps)."""
        return [r.reason_code for r in self.ratios if r.verdict == "inconclusive"]

    def exit_code(self, inconclusive: str = "exit4", training_failure: str = "fail") -> int:
        """The exit of a command that waited for this result (micheck.verdicts.exit_code)."""
        return exit_code(self.verdict, inconclusive, reasons=self.inconclusive_reasons(),
                         training_failure=training_failure)

    def counts(self) -> dict[str, int]:
        """How many points passed, failed and were inconclusive."""
        out = {"pass": 0, "fail": 0, "inconclusive": 0}
        for r in self.ratios:
            out[r.verdict] += 1
        return out
