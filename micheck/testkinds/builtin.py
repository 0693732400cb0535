"""The test kinds of paper 002 Sec. 4.2 / 6.2 (Song & Ermon, ICLR 2020) and paper 004's
MI-gradient test, one entry each.

With X an image and Y_t its top t rows (bottom rows zeroed, App. B.2):

  baseline          I(X; Y_t) / I(X; X)                                  ideal: 0 at t=0, rising to 1
  independence      I(X; Y'_t) / I(X; X), Y' from an independent image   ideal 0
  data_processing   I([X, X]; [Y_t, Y_{t-offset}]) / I(X; Y_t)           ideal 1
  additivity        I([X1, X2]; [Y1_t, Y2_t]) / I(X; Y_t), X1, X2 indep.  ideal 2
  ground_truth      estimate / true MI (Gaussian, Cubic; App. B.1 Eq. 55) ideal 1
  mi_gradient       estimated / analytic dI/drho (paper 004 Sec. 4)       ideal 1

With a Table 3 transform instead of row masking, Y = T(X) for a random scaling, rotation
or translation. Denominators are shared: I(X; Y_t) serves data processing and additivity
at the same t, and I(X; X) (baseline at full height) every baseline and independence point.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from micheck.bands import Band
from micheck.testkinds import Measurement, Point, TestKind, _family, ratio_of, register

if TYPE_CHECKING:
    from micheck.contract import DatasetSpec, Estimate, EvaluationRequest, Ratio, TestSpec


def _rows_fit(test: TestSpec, ds: DatasetSpec) -> None:
    if test.rows is None:
        return
    if test.transform != "rows":
        raise ValueError("rows apply only to row-masking image tests")
    bad = [t for t in test.rows if not 0 <= t <= ds.height]
    if bad:
        raise ValueError(f"rows {bad} outside 0..{ds.height} (image height of {ds.name})")
    if not test.rows:
        raise ValueError("rows must not be empty")


class _ImageKind(TestKind):
    """A test on images: row masking over a t grid, or one Table 3 transform."""

    images = True
    full_grid = False  # the default grid starts at t = 0 (else at H/4)

    def fits(self, test: TestSpec, request: EvaluationRequest) -> None:
        ds = request.dataset
        if ds.pairs is not None:
            raise ValueError("known-MI pairs (same_class, noisy_class): only ground_truth "
                             "applies")
        if not ds.is_image:
            raise ValueError(f"{ds.name} is a vector task; only ground_truth applies")
        _rows_fit(test, ds)

    def default_rows(self, height: int) -> list[int]:
        grid = super().default_rows(height)
        return grid if self.full_grid else grid[1:]

    def points(self, test: TestSpec, request: EvaluationRequest) -> list[Point]:
        h = request.dataset.height
        if test.transform != "rows":
            return [self.transform_point(test, h)]
        return [self.row_point(test, t, h)
                for t in sorted(set(test.rows or self.default_rows(h)))]

    def row_point(self, test: TestSpec, t: int, height: int) -> Point:
        raise NotImplementedError

    def transform_point(self, test: TestSpec, height: int) -> Point:
        """Y = T(X): the kind's construction under the transform / the view I(X; T(X))."""
        return Point(test, None, Measurement(self.name, None, test.transform),
                     Measurement("baseline", None, test.transform))


class Baseline(_ImageKind):
    name, order, tolerance, ideal = "baseline", 0, 0.1, None
    title = "I(X; Y_t) / I(X; X)"
    critics = (1, 1)
    full_grid = True

    def ideal_of(self, transform: str, t: int | None, height: int) -> float | None:
        if transform != "rows":
            return None
        return 0.0 if t == 0 else 1.0 if t == height else None

    def band_of(self, transform: str, t: int | None, height: int, tol: float) -> Band:
        """0 at t = 0, 1 at full height, between 0 and 1 in between (data processing: Y_t
        is a function of X); under a Table 3 transform the view T(X) keeps at most all of
        X's information: [0 - tol, 1 + tol] (paper 002 Sec. 4.2, Table 3)."""
        if self.ideal_of(transform, t, height) is None:
            return Band(-tol, 1.0 + tol)
        return super().band_of(transform, t, height, tol)

    def monotone(self, test: TestSpec) -> bool:
        return test.transform == "rows"

    def on_fail(self, row: Ratio) -> tuple[str, str] | None:
        if row.kind != "step":
            return None
        return "non_monotone", f"baseline falls from t={row.t_from} to t={row.t}: {row.reason}"

    def row_point(self, test: TestSpec, t: int, height: int) -> Point:
        return Point(test, t, Measurement("baseline", t), Measurement("baseline", height))

    def transform_point(self, test: TestSpec, height: int) -> Point:
        return Point(test, None, Measurement("baseline", None, test.transform),
                     Measurement("baseline", height))


class Independence(_ImageKind):
    name, order, tolerance, ideal = "independence", 1, 0.05, 0.0
    title = "I(X; Y'_t) / I(X; X), Y' from an independent image"
    critics = (1, 1)
    full_grid = True

    def fits(self, test: TestSpec, request: EvaluationRequest) -> None:
        super().fits(test, request)
        if test.transform != "rows":
            raise ValueError("independence uses row masking only")

    def row_point(self, test: TestSpec, t: int, height: int) -> Point:
        return Point(test, t, Measurement("independence", t), Measurement("baseline", height))

    def on_fail(self, row: Ratio) -> tuple[str, str] | None:
        return "nonzero_independence", f"independent Y gave ratio {row.value:.3f}, not 0"


class _Paired(_ImageKind):
    """Two copies stacked over channels, against I(X; Y_t) at the same t."""

    critics = (2, 1)

    def offset(self, test: TestSpec) -> int:
        return 0

    def row_point(self, test: TestSpec, t: int, height: int) -> Point:
        return Point(test, t, Measurement(self.name, t, "rows", self.offset(test)),
                     Measurement("baseline", t))


class DataProcessing(_Paired):
    name, order, tolerance, ideal = "data_processing", 2, 0.15, 1.0
    scale = "log"  # a ratio of two positive MI estimates
    title = "I([X, X]; [Y_t, Y_{t-offset}]) / I(X; Y_t)"

    def fits(self, test: TestSpec, request: EvaluationRequest) -> None:
        super().fits(test, request)
        ds = request.dataset
        if test.offset >= ds.height:
            raise ValueError(f"offset {test.offset} must be below the image height "
                             f"{ds.height} of {ds.name}")

    def offset(self, test: TestSpec) -> int:
        return test.offset

    def key(self, m: Measurement, seed: int) -> str:
        if m.transform != "rows":
            return super().key(m, seed)
        return "/".join([m.role, m.transform, f"t={m.t}", f"offset={m.offset}", f"seed={seed}"])

    def band_of(self, transform: str, t: int | None, height: int, tol: float) -> Band:
        """Under a transform one-sided: h(Y) = T'(Y) adds nothing, the ratio is <= 1 + tol."""
        if transform != "rows":
            return Band(None, 1.0 + tol)
        return super().band_of(transform, t, height, tol)


class Additivity(_Paired):
    name, order, tolerance, ideal = "additivity", 3, 0.3, 2.0
    scale = "log"  # a ratio of two positive MI estimates
    title = "I([X1, X2]; [Y1_t, Y2_t]) / I(X; Y_t), X1 and X2 independent"


class GroundTruth(TestKind):
    name, order, tolerance, ideal = "ground_truth", 4, 0.1, 1.0
    scale = "log"  # a positive estimate over the positive true MI
    title = ("estimate / true MI (Gaussian and Cubic: App. B.1 Eq. 55; same- and "
             "noisy-class pairs)")

    def fits(self, test: TestSpec, request: EvaluationRequest) -> None:
        ds = request.dataset
        if ds.is_image and ds.pairs is None:
            raise ValueError("ground_truth needs a data set with known MI (a vector task, "
                             "or images with pairs: same_class or noisy_class)")
        if test.rows is not None:
            raise ValueError("rows apply only to row-masking image tests")

    def points(self, test: TestSpec, request: EvaluationRequest) -> list[Point]:
        return [Point(test, None, Measurement("ground_truth", None), None)]


# ---- the MI-gradient test (paper 004 Sec. 4) -----------------------------------------------

# the correlations tested when a request names none (paper 004 Fig. 1 spans (-1, 1))
DEFAULT_RHO = (-0.9, -0.7, -0.5, -0.3, 0.0, 0.3, 0.5, 0.7, 0.9)
NEAR_ZERO = 0.1  # below this |rho| the absolute error replaces the ratio


def analytic_mi(rho: float, dim: int) -> float:
    """I(rho) = -d/2 log(1 - rho^2) nats (paper 004 Sec. 4; paper 002 Eq. 55)."""
    return -0.5 * dim * math.log1p(-rho * rho)


def analytic_gradient(rho: float, dim: int) -> float:
    """dI/drho = d rho / (1 - rho^2) (paper 004 Sec. 4)."""
    return dim * rho / (1.0 - rho * rho)


class MiGradient(TestKind):
    """dI/drho on the correlated Gaussian, x, y in R^d with corr(x_i, y_j) = delta_ij rho:
    I(rho) = -d/2 log(1 - rho^2), dI/drho = d rho / (1 - rho^2) (paper 004 Sec. 4).

    One point per rho: estimated / analytic dI/drho (ideal 1). Near rho = 0, where the
    analytic gradient vanishes and a ratio is meaningless, the absolute error estimate -
    analytic (ideal 0) for |rho| < NEAR_ZERO, held to the absolute tolerance the ratio has
    at |rho| = NEAR_ZERO (tolerance x dI/drho(NEAR_ZERO)), so the criterion is continuous
    at the switch. Each measurement is one critic trained at its rho (or one MIGE
    estimate); the workers differentiate its held-out bound through the reparameterised
    samples (micheck.workers.gradient).
    """

    name, order, tolerance, ideal = "mi_gradient", 5, 0.2, 1.0
    title = "estimated / analytic dI/drho (paper 004 Sec. 4)"
    takes_rho = True
    families = frozenset({"discriminative", "gradient"})

    def fits(self, test: TestSpec, request: EvaluationRequest) -> None:
        if request.dataset.entry.y_map is None:  # not built on the correlated Gaussian
            raise ValueError("mi_gradient runs on the correlated Gaussian of paper 004 "
                             "(dataset gaussian or cubic, any dim)")
        if _family(request) == "generative":
            raise ValueError(f"{request.estimator.name} cannot run mi_gradient (not "
                             "implemented for the generative estimator)")

    def generators(self, test: TestSpec, dataset: DatasetSpec) -> set[str]:
        return {"mi_gradient"}

    @staticmethod
    def rhos(test: TestSpec) -> list[float]:
        return sorted(set(test.rho if test.rho is not None else DEFAULT_RHO))

    def points(self, test: TestSpec, request: EvaluationRequest) -> list[Point]:
        return [Point(test, None, Measurement(self.name, None, "gradient", rho=r), None, rho=r)
                for r in self.rhos(test)]

    def key(self, m: Measurement, seed: int) -> str:
        return f"mi_gradient/rho={m.rho:g}/seed={seed}"

    @staticmethod
    def _near_zero(p: Point) -> bool:
        return abs(p.rho or 0.0) < NEAR_ZERO

    def point_ideal(self, p: Point, request: EvaluationRequest) -> float | None:
        return 0.0 if self._near_zero(p) else 1.0

    def point_band(self, p: Point, request: EvaluationRequest) -> Band:
        tol = p.test.effective_tolerance
        if self._near_zero(p):
            half = tol * analytic_gradient(NEAR_ZERO, request.dataset.dim)
            return Band(-half, half)
        return Band(1.0 - tol, 1.0 + tol)

    def value(self, p: Point, num: Estimate, den: Estimate | None,
              true_mi: float | None) -> float | None:
        g, truth = num.gradient, num.true_gradient
        if g is None or truth is None or not math.isfinite(g):
            return None
        return g - truth if self._near_zero(p) else ratio_of(g, truth)

    def row_transform(self, p: Point) -> str:
        return "gradient"

    def note(self, p: Point, request: EvaluationRequest) -> str:
        rho, dim = p.rho or 0.0, request.dataset.dim
        truth = analytic_gradient(rho, dim)
        if self._near_zero(p):
            band = p.test.effective_tolerance * analytic_gradient(NEAR_ZERO, dim)
            return (f"rho={rho:g}: absolute error of dI/drho (analytic {truth:.3g}; |rho| < "
                    f"{NEAR_ZERO}, a ratio would divide by ~0; band +-{band:.3g} = tolerance "
                    f"x dI/drho at |rho| = {NEAR_ZERO})")
        return f"rho={rho:g}: estimated / analytic dI/drho ({truth:.3g})"

    def estimate_fields(self, m: Measurement, request: EvaluationRequest) -> dict[str, Any]:
        rho, dim = m.rho or 0.0, request.dataset.dim
        return {"rho": rho, "true_mi": analytic_mi(rho, dim),
                "true_gradient": analytic_gradient(rho, dim)}


for _kind in (Baseline(), Independence(), DataProcessing(), Additivity(), GroundTruth(),
              MiGradient()):
    register(_kind)
