"""Named, versioned suites of evaluations: what a league table is measured on.

A suite is data: a name, an integer version and its points. A point is a partial
evaluation spec (data set, one test, seeds, the critic and training schedule) with the
estimator left to the caller, a stable id within the suite version, and the ratio row of
its result that the league reports (``row``: test kind, and transform or rho where the
test makes several rows). ``request_for`` completes a point with an estimator into the
request the service accepts, labelled with the suite, its version and the point id
(``labels_for``), so its evaluation can be found again by the league.

The service stores a suite's definition the first time it is used (``definition``; the
``suites`` table) and reads it back from there: the league of ``standard`` v1 is measured
on the points stored for v1, even if this module's entry changes later. Changing a
registered suite's points means a new version.

Built in:
    standard v1  the Table 3 cells of paper 002 (MNIST, data processing and additivity under
                 scaling, rotation, translation; quarter-width separable CNN critic, Adam
                 5e-4, 600 steps, until converged up to 1,875: bench/table3.py), the
                 Gaussian and Cubic staircase of Table 2 as ground truth at 2, 4, 6, 8 and
                 10 nats (d = 20, batch 64, lr 5e-4: bench/staircase.py), same-class MNIST
                 pairs with known MI m H(C) (m = 1, 2; Lee & Rhee 2024) and the MI-gradient
                 test of paper 004 at rho = 0.8, d = 8, 16, 32 (bench/gradient.py --paper)
    cpu v1       the standard suite's kinds at a schedule a 2-core CPU runs for every
                 built-in estimator in about an hour (docs/league.md, bench/league.py):
                 the Gaussian and Cubic staircase at 2, 6 and 10 nats (d = 20, as in
                 standard), MNIST pairs whose classes pass a symmetric noisy channel at
                 2 and 6 nats (1 and 3 copies at eps = 0.0489; 6,400 training images,
                 400 steps, until converged up to 1,600, 2,000 held-out pairs) and the
                 MI-gradient test at d = 8. No Table 3 cell and no image point at 10
                 nats: those need hours per estimator here (bench/table3.py,
                 docs/bench/table3.md and bench/images.py measure them)
    images v1    the noisy-channel MNIST pairs of cpu v1 further up: 4, 8 and 10 nats (2, 4,
                 5 copies at eps = 0.0489), the same schedule (cpu v1 has 2 and 6 nats)
    smoke v1     four small vector tasks, 50 steps: for tests and a first look

Torch-free and service-free: the client submits suites with it, the service stores and
reads them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from micheck.contract import EvaluationRequest, Ratio
from micheck.datasets.class_channel import noisy_pairs_for

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_POINT_ID = re.compile(r"^[a-z0-9][a-z0-9_.=/-]{0,119}$")

# the labels that tie an evaluation to a suite point (micheck.storage.league reads them)
SUITE_LABEL, VERSION_LABEL, POINT_LABEL = "suite", "suite_version", "suite_point"
SUITE_LABELS = (SUITE_LABEL, VERSION_LABEL, POINT_LABEL)


class RowSelector(BaseModel):
    """Which ratio row of a point's result the league reports: the first non-step row of
    test kind ``test`` (with this ``transform`` and ``rho`` when they are given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    test: str
    transform: str | None = None
    rho: float | None = None

    def matches(self, ratio: Ratio) -> bool:
        """Whether a stored ratio row is this point's row."""
        if ratio.kind == "step" or ratio.test != self.test:
            return False
        if self.transform is not None and ratio.transform != self.transform:
            return False
        return self.rho is None or (ratio.rho is not None
                                    and math.isclose(ratio.rho, self.rho, abs_tol=1e-9))


class SuitePoint(BaseModel):
    """One point of a suite: a partial request (everything but the estimator's name and
    params), its id and title, and the row the league reports."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=_POINT_ID.pattern)
    title: str
    spec: dict[str, Any]
    row: RowSelector


class Suite(BaseModel):
    """A named, versioned list of points; ``definition()`` is what the service stores."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=_NAME.pattern)
    version: int = Field(ge=1)
    title: str
    points: tuple[SuitePoint, ...]

    def definition(self) -> dict[str, Any]:
        """The suite as JSON data (stored once per name and version)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_definition(cls, data: Mapping[str, Any]) -> Suite:
        """A suite read back from its stored definition."""
        return cls.model_validate(dict(data))

    def point(self, point_id: str) -> SuitePoint:
        """The point with this id; KeyError naming the known ones otherwise."""
        for p in self.points:
            if p.id == point_id:
                return p
        raise KeyError(f"suite {self.name} v{self.version} has no point {point_id!r}")

    @property
    def point_ids(self) -> list[str]:
        return [p.id for p in self.points]


def labels_for(suite: Suite, point: SuitePoint) -> dict[str, str]:
    """The labels that mark an evaluation as this point's."""
    return {SUITE_LABEL: suite.name, VERSION_LABEL: str(suite.version), POINT_LABEL: point.id}


def request_for(suite: Suite, point: SuitePoint, estimator: str,
                params: Mapping[str, Any] | None = None,
                labels: Mapping[str, str] | None = None) -> EvaluationRequest:
    """The point completed with an estimator (name and params) into a validated request,
    labelled for the point (``labels``: more labels; they cannot replace the suite's).
    ValueError when the estimator does not fit the point (e.g. a gradient-only estimator
    on a ground-truth point) or a label would replace a suite label."""
    extra = dict(labels or {})
    clash = sorted(set(extra) & set(SUITE_LABELS))
    if clash:
        raise ValueError(f"labels {', '.join(clash)} are set by the suite")
    spec = {key: value for key, value in point.spec.items() if key != "estimator"}
    est = {**point.spec.get("estimator", {}), "name": estimator, "params": dict(params or {})}
    return EvaluationRequest.model_validate({
        **spec, "estimator": est, "label": f"suite {suite.name} v{suite.version} {point.id}",
        "labels": {**extra, **labels_for(suite, point)}})


def select_row(point: SuitePoint, ratios: Iterable[Ratio]) -> Ratio | None:
    """The row of a result this point reports, None when the result has none."""
    return next((r for r in ratios if point.row.matches(r)), None)


# ---- the registry ----------------------------------------------------------------------------

_SUITES: dict[tuple[str, int], Suite] = {}


def register(suite: Suite, *, replace: bool = False) -> Suite:
    """Add a suite version; ``replace`` allows overriding the same name and version."""
    key = (suite.name, suite.version)
    if key in _SUITES and not replace:
        raise ValueError(f"suite {suite.name} v{suite.version} is already registered")
    ids = suite.point_ids
    if len(set(ids)) != len(ids):
        raise ValueError(f"suite {suite.name}: point ids must be distinct")
    _SUITES[key] = suite
    return suite


def get(name: str, version: int | None = None) -> Suite:
    """A registered suite (its newest version when ``version`` is None); KeyError naming
    the known ones otherwise."""
    versions = sorted(v for n, v in _SUITES if n == name)
    if not versions:
        raise KeyError(f"unknown suite {name!r}; known: {', '.join(names())}")
    if version is None:
        version = versions[-1]
    if (name, version) not in _SUITES:
        raise KeyError(f"suite {name} has no version {version}; registered: "
                       f"{', '.join(map(str, versions))}")
    return _SUITES[(name, version)]


def names() -> list[str]:
    return sorted({n for n, _ in _SUITES})


def entries() -> list[Suite]:
    """Every registered suite version, by name then version."""
    return [_SUITES[k] for k in sorted(_SUITES)]


# ---- the built-in suites -----------------------------------------------------------------------

SEEDS = [0, 1, 2]
TABLE3_TRAIN = {"batch_size": 64, "steps": 600, "lr": 5e-4, "until_converged": True,
                "max_steps": 1875}
TABLE3_CRITIC = {"kind": "separable", "arch": "cnn", "width": 0.25}
VECTOR_TRAIN = {"batch_size": 64, "steps": 1000, "lr": 5e-4, "until_converged": True,
                "max_steps": 4000}
STAIRCASE_MI = (2, 4, 6, 8, 10)
STAIRCASE_DIM = 20
GRADIENT_DIMS, GRADIENT_RHO = (8, 16, 32), 0.8


def _point(pid: str, title: str, dataset: dict[str, Any], test: dict[str, Any],
           train: dict[str, Any], critic: dict[str, Any] | None = None,
           row: dict[str, Any] | None = None, seeds: list[int] = SEEDS) -> SuitePoint:
    est: dict[str, Any] = {"train": dict(train)}
    if critic:
        est["critic"] = dict(critic)
    return SuitePoint(id=pid, title=title, row=RowSelector(**(row or {"test": test["kind"]})),
                      spec={"dataset": dataset, "tests": [test], "seeds": list(seeds),
                            "estimator": est})


def _standard_v1() -> Suite:
    points = [_point(f"table3/{kind}/{tr}", f"Table 3: {kind} under random {tr} (MNIST)",
                     {"name": "mnist"}, {"kind": kind, "transform": tr}, TABLE3_TRAIN,
                     TABLE3_CRITIC, {"test": kind, "transform": tr})
              for kind in ("data_processing", "additivity")
              for tr in ("scaling", "rotation", "translation")]
    points += [_point(f"staircase/{name}/mi{mi}", f"{name.capitalize()} staircase: "
                      f"{mi} nats, d = {STAIRCASE_DIM}",
                      {"name": name, "dim": STAIRCASE_DIM, "mi": float(mi)},
                      {"kind": "ground_truth"}, VECTOR_TRAIN)
               for name in ("gaussian", "cubic") for mi in STAIRCASE_MI]
    points += [_point(f"pairs/mnist/copies{m}", f"same-class MNIST pairs, {m} cop"
                      f"{'y' if m == 1 else 'ies'}: I = {m} H(C)",
                      {"name": "mnist", "pairs": "same_class", "copies": m},
                      {"kind": "ground_truth"}, TABLE3_TRAIN, TABLE3_CRITIC)
               for m in (1, 2)]
    points += [_point(f"gradient/d{d}/rho{GRADIENT_RHO:g}",
                      f"dI/drho at rho = {GRADIENT_RHO:g}, d = {d} (correlated Gaussian)",
                      {"name": "gaussian", "dim": d},
                      {"kind": "mi_gradient", "rho": [GRADIENT_RHO]},
                      {"batch_size": 64, "steps": 1000, "lr": 5e-4, "eval_samples": 512},
                      row={"test": "mi_gradient", "rho": GRADIENT_RHO})
               for d in GRADIENT_DIMS]
    return Suite(name="standard", version=1, title="Table 3 cells, the Gaussian and Cubic "
                 "staircase, same-class MNIST pairs and the MI-gradient test",
                 points=tuple(points))


CPU_MI, CPU_IMAGE_MI = (2, 6, 10), (2, 6)
CPU_IMAGE_TRAIN = {"batch_size": 64, "steps": 400, "lr": 5e-4, "until_converged": True,
                   "max_steps": 1600, "eval_samples": 2000}
CPU_TRAIN_IMAGES = 6400


def _noisy_pairs(mi: int) -> SuitePoint:
    """MNIST pairs whose classes pass a symmetric noisy channel, planned to carry `mi` nats
    (micheck.datasets.class_channel.noisy_pairs_for), at the CPU image schedule."""
    plan = noisy_pairs_for(float(mi))
    return _point(f"pairs/mnist/noisy/mi{mi}", f"MNIST pairs through a noisy class channel: "
                  f"{plan.copies} cop{'y' if plan.copies == 1 else 'ies'} at eps = "
                  f"{plan.eps:.4f}, about {mi} nats",
                  {"name": "mnist", "pairs": "noisy_class", "class_noise": round(plan.eps, 6),
                   "copies": plan.copies, "train_size": CPU_TRAIN_IMAGES},
                  {"kind": "ground_truth"}, CPU_IMAGE_TRAIN, TABLE3_CRITIC)


def _images_v1() -> Suite:
    return Suite(name="images", version=1, title="noisy-channel MNIST pairs at 4, 8 and 10 "
                 "nats, cpu v1's image schedule", points=tuple(_noisy_pairs(mi)
                                                               for mi in (4, 8, 10)))


def _cpu_v1() -> Suite:
    points = [_point(f"staircase/{name}/mi{mi}", f"{name.capitalize()} staircase: "
                     f"{mi} nats, d = {STAIRCASE_DIM}",
                     {"name": name, "dim": STAIRCASE_DIM, "mi": float(mi)},
                     {"kind": "ground_truth"}, VECTOR_TRAIN)
              for name in ("gaussian", "cubic") for mi in CPU_MI]
    points += [_noisy_pairs(mi) for mi in CPU_IMAGE_MI]
    points.append(_point(f"gradient/d8/rho{GRADIENT_RHO:g}",
                         f"dI/drho at rho = {GRADIENT_RHO:g}, d = 8 (correlated Gaussian)",
                         {"name": "gaussian", "dim": 8},
                         {"kind": "mi_gradient", "rho": [GRADIENT_RHO]},
                         {"batch_size": 64, "steps": 1000, "lr": 5e-4, "eval_samples": 512},
                         row={"test": "mi_gradient", "rho": GRADIENT_RHO}))
    return Suite(name="cpu", version=1, title="the staircase, noisy-channel MNIST pairs and "
                 "the MI-gradient test at a schedule a 2-core CPU runs for every estimator",
                 points=tuple(points))


def _smoke_v1() -> Suite:
    train = {"batch_size": 32, "steps": 50, "lr": 5e-4, "eval_samples": 256}
    points = [_point(f"{name}/mi{mi}", f"{name} at {mi} nats, d = 4",
                     {"name": name, "dim": 4, "mi": float(mi)}, {"kind": "ground_truth"},
                     train) for name in ("gaussian", "cubic") for mi in (1, 2)]
    return Suite(name="smoke", version=1, title="four small vector tasks (tests, first looks)",
                 points=tuple(points))


register(_standard_v1())
register(_cpu_v1())
register(_images_v1())
register(_smoke_v1())
