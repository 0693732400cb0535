"""The plan of an evaluation: which MI estimates it needs and which ratios it reports.

Torch-free (the service sizes jobs with it, the workers train what it lists). A request is
planned into *measurements*, the distinct MI estimates it needs, each an (X, Y) construction
of paper 002 Sec. 4.2 / App. B.2; a *point* is a ratio of two of them (or of one and the
true MI). With X an image and Y_t its top t rows (bottom rows zeroed):

  baseline          I(X; Y_t) / I(X; X)                                  ideal: 0 at t=0, rising to 1
  independence      I(X; Y'_t) / I(X; X), Y' from an independent image   ideal 0
  data_processing   I([X, X]; [Y_t, Y_{t-offset}]) / I(X; Y_t)           ideal 1
  additivity        I([X1, X2]; [Y1_t, Y2_t]) / I(X; Y_t), X1, X2 indep.  ideal 2
  ground_truth      estimate / true MI (Gaussian, Cubic; App. B.1 Eq. 55) ideal 1

Denominators are shared: I(X; Y_t) serves data processing and additivity at the same t,
and I(X; X) = baseline at full height serves every baseline and independence point.
"""

from __future__ import annotations

from dataclasses import dataclass

from micheck.contract import EvaluationRequest, TestSpec


@dataclass(frozen=True, order=True)
class Measurement:
    role: str  # baseline | independence | data_processing | additivity | ground_truth
    t: int | None  # rows kept (row masking); None for transforms and vector tasks
    transform: str = "rows"
    offset: int = 0  # data_processing: h(Y) keeps t - offset rows

    def key(self, seed: int) -> str:
        parts = [self.role, self.transform, f"t={self.t}"]
        if self.role == "data_processing" and self.transform == "rows":
            parts.append(f"offset={self.offset}")
        return "/".join(parts + [f"seed={seed}"])


@dataclass(frozen=True)
class Point:
    """One ratio to report: numerator / denominator (or / true MI)."""

    test: TestSpec
    t: int | None
    numerator: Measurement
    denominator: Measurement | None  # None: divide by the task's true MI


def default_rows(kind: str, height: int) -> list[int]:
    grid = [round(height * q / 4) for q in range(5)]  # 0, H/4, H/2, 3H/4, H
    return grid if kind in ("baseline", "independence") else grid[1:]


def points(request: EvaluationRequest) -> list[Point]:
    h = request.dataset.height
    full = Measurement("baseline", h)
    out: list[Point] = []
    for test in request.tests:
        if test.kind == "ground_truth":
            out.append(Point(test, None, Measurement("ground_truth", None), None))
            continue
        if test.transform != "rows":
            view = Measurement("baseline", None, test.transform)
            num = Measurement(test.kind, None, test.transform)
            out.append(Point(test, None, view if test.kind == "baseline" else num,
                             full if test.kind == "baseline" else view))
            continue
        for t in sorted(set(test.rows or default_rows(test.kind, h))):
            if test.kind in ("baseline", "independence"):
                out.append(Point(test, t, Measurement(test.kind, t), full))
            else:
                offset = test.offset if test.kind == "data_processing" else 0
                out.append(Point(test, t, Measurement(test.kind, t, "rows", offset),
                                 Measurement("baseline", t)))
    return out


def plan(request: EvaluationRequest) -> list[Measurement]:
    """The distinct measurements a request needs (denominators shared across tests)."""
    needed = set()
    for p in points(request):
        needed.add(p.numerator)
        if p.denominator is not None:
            needed.add(p.denominator)
    return sorted(needed, key=lambda m: (m.role, m.transform, m.t if m.t is not None else -1,
                                         m.offset))


