"""The self-consistency tests of paper 002 (Sec. 4.2, Sec. 6.2, App. B.2) as data.

A request is planned into *measurements*: the distinct MI estimates it needs, each
an (X, Y) construction. A test point is a ratio of two of them (or of one and the
true MI). With X an image and Y_t its top t rows (bottom rows zeroed, App. B.2):

  baseline          I(X; Y_t) / I(X; X)                                  ideal: 0 at t=0, rising to 1
  independence      I(X; Y'_t) / I(X; X), Y' from an independent image   ideal 0
  data_processing   I([X, X]; [Y_t, Y_{t-offset}]) / I(X; Y_t)           ideal 1
  additivity        I([X1, X2]; [Y1_t, Y2_t]) / I(X; Y_t), X1, X2 indep.  ideal 2
  ground_truth      estimate / true MI (Gaussian, Cubic; App. B.1 Eq. 55) ideal 1

With a Table 3 transform instead of row masking, Y = T(X) for a random scaling,
rotation or translation, and h(Y) = T'(Y) a second, independent draw.
Concatenation stacks over channels ([., .] in the paper).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from micheck.workers.data import sample_gaussian
from micheck.workers.data.transforms import (
    mask_rows,
    random_rotation,
    random_scaling,
    random_translation,
)
from torch import Tensor

from micheck.contract import (
    IDEAL,
    DatasetSpec,
    Diagnostic,
    Estimate,
    EvaluationRequest,
    Ratio,
    TestSpec,
)

Sampler = Callable[[torch.Generator, int], tuple[Tensor, Tensor]]

TRANSFORMS = {"scaling": random_scaling, "rotation": random_rotation,
              "translation": random_translation}


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


# ---- (X, Y) constructions --------------------------------------------------------------


def _view(m: Measurement, x: Tensor, g: torch.Generator, t: int | None = None) -> Tensor:
    if m.transform == "rows":
        return mask_rows(x, m.t if t is None else t)
    return TRANSFORMS[m.transform](x, g)


def image_sampler(images: Tensor, m: Measurement) -> Sampler:
    """Draws n (X, Y) pairs of measurement m from an image split (N, C, H, W)."""
    count = images.shape[0]

    def draw(g: torch.Generator, n: int) -> Tensor:
        return images[torch.randint(count, (n,), generator=g)]

    def sample(g: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        x = draw(g, n)
        if m.role == "baseline":
            return x, _view(m, x, g)
        if m.role == "independence":
            return x, _view(m, draw(g, n), g)
        if m.role == "data_processing":
            y = _view(m, x, g)
            if m.transform == "rows":
                processed = mask_rows(x, max(0, (m.t or 0) - m.offset))
            else:
                processed = TRANSFORMS[m.transform](y, g)
            return torch.cat([x, x], 1), torch.cat([y, processed], 1)
        if m.role == "additivity":
            x2 = draw(g, n)
            return torch.cat([x, x2], 1), torch.cat([_view(m, x, g), _view(m, x2, g)], 1)
        raise ValueError(f"{m.role} is not an image measurement")

    return sample


def shapes(m: Measurement, image_shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    c, h, w = image_shape
    double = m.role in ("data_processing", "additivity")
    s = (2 * c if double else c, h, w)
    return s, s


def vector_sampler(ds: DatasetSpec) -> Sampler:
    """Gaussian / Cubic pairs of App. B.1 at the data set's true MI."""

    def sample(g: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        x, y = sample_gaussian(n, ds.dim, ds.mi, generator=g)
        return (x, y**3) if ds.name == "cubic" else (x, y)

    return sample


# ---- ratios, intervals, verdicts ---------------------------------------------------------

# two-sided 95% Student-t quantiles t_{0.975, df}, df = 1..30; 1.96 beyond
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def mean_ci(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """Mean and 95% Student-t confidence interval over seeds (None with one value)."""
    if not values:
        return None, None, None
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, None, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = (_T975[n - 2] if n - 1 <= len(_T975) else 1.96) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or not math.isfinite(num) or not math.isfinite(den):
        return None
    if abs(den) < 1e-6:
        return None
    return num / den


def ratios(request: EvaluationRequest, estimates: dict[str, Estimate],
           true_mi: float | None) -> list[Ratio]:
    """One Ratio per test point, with its CI over seeds and its verdict."""
    out: list[Ratio] = []
    last_baseline: dict[int, float] = {}  # per test index: previous ratio, for monotonicity
    h = request.dataset.height
    for p in points(request):
        per_seed = []
        for seed in request.seeds:
            num = estimates[p.numerator.key(seed)].mi_test
            den = true_mi if p.denominator is None else estimates[p.denominator.key(seed)].mi_test
            per_seed.append(_ratio(num, den))
        good = [v for v in per_seed if v is not None]
        value, lo, hi = mean_ci(good)
        tol = p.test.effective_tolerance
        ideal, passed, note = _verdict(p, value, tol, h, last_baseline)
        if len(good) < len(per_seed):
            passed = False
            note = (note + "; " if note else "") + "a seed gave no finite ratio"
        out.append(Ratio(test=p.test.kind, t=p.t, value=value, ci_low=lo, ci_high=hi,
                         ideal=ideal, passed=passed, tolerance=tol, per_seed=per_seed,
                         transform=p.test.transform, note=note))
    return out


def _verdict(p: Point, value: float | None, tol: float, height: int,
             last: dict[int, float]) -> tuple[float | None, bool, str]:
    kind = p.test.kind
    if value is None:
        return IDEAL[kind], False, "no finite estimate"
    if kind == "baseline":
        key = id(p.test)
        if p.test.transform != "rows":
            return None, -tol <= value <= 1 + tol, "ideal: between 0 and 1"
        ideal = 0.0 if p.t == 0 else 1.0 if p.t == height else None
        ok = value <= 1 + tol and (ideal is None or abs(value - ideal) <= tol)
        prev = last.get(key)
        note = ""
        if prev is not None and value < prev - tol:
            ok, note = False, f"falls from {prev:.3f} at a smaller t (should not decrease)"
        last[key] = value if prev is None else max(prev, value)
        return ideal, ok, note
    if kind == "data_processing" and p.test.transform != "rows":
        return 1.0, value <= 1 + tol, "ideal: at most 1 (Table 3)"
    ideal = IDEAL[kind]
    assert ideal is not None
    return ideal, abs(value - ideal) <= tol, ""


def diagnostics(request: EvaluationRequest, estimates: list[Estimate],
                ratio_list: list[Ratio]) -> list[Diagnostic]:
    """What a user must see besides the verdicts."""
    out: list[Diagnostic] = []
    n = request.estimator.train.batch_size
    for e in estimates:
        where = {"test": e.test, "t": e.t, "seed": e.seed}
        if e.diverged:
            out.append(Diagnostic(code="diverged", severity="error", **where,
                                  message="training produced a non-finite value (NaN/inf)"))
            continue
        if request.estimator.name == "infonce" and max(e.mi_train or 0, e.mi_test or 0) \
                >= math.log(n) - 0.1:
            out.append(Diagnostic(code="cpc_ceiling", severity="warning", **where,
                                  message=f"InfoNCE at its ceiling log({n}) = {math.log(n):.2f}"
                                          " nats: the estimate cannot grow; use a larger batch"))
        if e.mi_train is not None and e.mi_test is not None:
            gap = e.mi_train - e.mi_test
            if abs(gap) > max(0.5, 0.25 * abs(e.mi_train)):
                out.append(Diagnostic(code="train_test_gap", severity="warning", **where,
                                      message=f"train {e.mi_train:.3f} vs test {e.mi_test:.3f} "
                                              "nats: the critic overfits the training split"))
    for r in ratio_list:
        if r.passed:
            continue
        if r.test == "baseline":
            out.append(Diagnostic(code="non_monotone", severity="warning", test=r.test, t=r.t,
                                  message=r.note or f"baseline ratio {r.value} off its ideal"))
        elif r.test == "independence":
            out.append(Diagnostic(code="nonzero_independence", severity="warning", test=r.test,
                                  t=r.t, message=f"independent Y gave ratio {r.value}, not 0"))
    return out
