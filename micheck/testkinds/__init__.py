"""The test-kind registry: what each self-consistency test *is* to the protocol, one entry each.

An entry (a :class:`TestKind`) holds everything the protocol knows about one kind of test:

- its ideal and bands (paper 002 Sec. 4.2): ``tolerance`` (the default half-width),
  ``ideal``, :meth:`~TestKind.ideal_of` / :meth:`~TestKind.band_of` per point, and
  whether its points form a monotone series (:meth:`~TestKind.monotone`, baseline);
- the data sets and estimators it applies to (:meth:`~TestKind.check`, called by the
  request's validation, so a misfit is refused at the door);
- its plan of measurements (:meth:`~TestKind.points`: which MI estimates a test needs and
  which ratios of them it reports) and how a measurement is keyed (the key seeds a critic);
- its per-seed value (:meth:`~TestKind.value`, a ratio by default), its decision count
  (the Bonferroni share) and its display order;
- its task generators (provenance and deduplication key) and its compute (``critics``).

Torch-free: the service validates and sizes requests with it, the client renders with it.
The samplers a kind needs live with the workers, registered by the kind's name
(:func:`micheck.workers.selfconsistency.register_sampler`). Adding a test kind is one
entry registered here (``register(MyKind())``) plus its sampler registered there, and a
test; nothing else branches on a kind's name.

A :class:`Measurement` is one MI estimate (an (X, Y) construction, trained per seed); a
:class:`Point` is one decided value, a ratio of two measurements (or of one and the known
truth). Denominators are shared across tests: the plan keeps each distinct measurement once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from micheck.bands import Band

if TYPE_CHECKING:  # annotations only: the contract imports this registry
    from micheck.contract import DatasetSpec, Estimate, EvaluationRequest, Ratio, TestSpec
    from micheck.verdicts import Scale

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True, order=True)
class Measurement:
    """One MI estimate a request needs: an (X, Y) construction of test kind ``role``."""

    role: str  # the test kind whose construction it is (baseline, additivity, ...)
    t: int | None  # rows kept (row masking); None for transforms and vector tasks
    transform: str = "rows"
    offset: int = 0  # data_processing: h(Y) keeps t - offset rows
    rho: float | None = None  # mi_gradient: the correlation it is trained at

    def key(self, seed: int) -> str:
        """Unique within an evaluation; with the seed, it seeds the critic's init and
        batches (so batching order, other tests or a retry never change a number)."""
        return get(self.role).key(self, seed)


@dataclass(frozen=True)
class Point:
    """One value to decide: numerator / denominator (or against the known truth)."""

    test: TestSpec
    t: int | None
    numerator: Measurement
    denominator: Measurement | None  # None: compared with the task's known truth
    rho: float | None = None

    @property
    def exact(self) -> bool:
        """I(X; X) / I(X; X): the numerator is the denominator, the ratio is 1 by
        construction (no spread, no seeds needed)."""
        return self.denominator is not None and self.numerator == self.denominator

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        return (self.numerator,) if self.denominator is None else (self.numerator,
                                                                   self.denominator)


def ratio_of(num: float | None, den: float | None) -> float | None:
    """num / den; None when either is missing or non-finite, or |den| < 1e-6 nats."""
    if num is None or den is None or not math.isfinite(num) or not math.isfinite(den):
        return None
    if abs(den) < 1e-6:
        return None
    return num / den


class TestKind:
    """Base of every entry. A subclass sets the class attributes and overrides what differs."""

    __test__ = False  # not a pytest class

    name: str = ""
    tolerance: float = 0.1  # default half-width of the band (a request's `tolerance` wins)
    ideal: float | None = None  # the ideal value of its ratio
    order: int = 99  # where its rows are listed (tables, reports)
    title: str = ""  # what a point is, e.g. "I(X; Y_t) / I(X; X)"
    # per point, the input multiplier of each critic it trains (numerator, denominator):
    # what micheck.budget counts
    critics: tuple[int, ...] = (1,)
    takes_rho: bool = False  # whether TestSpec.rho applies
    images: bool = False  # an image test: row masking over a t grid, or a Table 3 transform
    # the estimator families it can evaluate (micheck.estimators.Family)
    families: frozenset[str] = frozenset({"discriminative", "generative", "point"})
    # the scale of its points' intervals (micheck.verdicts): "log" for ratios of two
    # positive estimates with a positive ideal, "linear" for values that sit at or cross 0
    scale: Scale = "linear"

    # ---- what it applies to -----------------------------------------------------------

    def check(self, test: TestSpec, request: EvaluationRequest) -> None:
        """ValueError (one line, without the test's position) when `test` does not fit
        the request's data set or estimator."""
        if test.rho is not None and not self.takes_rho:
            raise ValueError(f"rho applies only to the {_named(lambda k: k.takes_rho)} test")
        family = _family(request)
        if family == "gradient" and family not in self.families:
            raise ValueError(f"{request.estimator.name} estimates MI gradients only; its one "
                             f"test is {_named(lambda k: 'gradient' in k.families)}")
        self.fits(test, request)
        if family not in self.families:
            raise ValueError(f"{request.estimator.name} ({family} estimator) cannot run "
                             f"this test: it needs one of {', '.join(sorted(self.families))}")

    def fits(self, test: TestSpec, request: EvaluationRequest) -> None:
        """The kind's own checks (data set, rows, offsets); ValueError on a misfit."""

    def generators(self, test: TestSpec, dataset: DatasetSpec) -> set[str]:
        """The task generators its samples come from (micheck.definitions.GENERATOR_VERSIONS):
        same-class pairs, a vector task's own, or row masking / the Table 3 transforms."""
        if dataset.pairs is not None:
            return {dataset.pairs}
        if not dataset.is_image:
            return {dataset.name}
        return {"rows" if test.transform == "rows" else "transforms"}

    # ---- its plan -----------------------------------------------------------------------

    def points(self, test: TestSpec, request: EvaluationRequest) -> list[Point]:
        raise NotImplementedError

    def default_rows(self, height: int) -> list[int]:
        """The t grid when a test names no rows: 0, H/4, H/2, 3H/4, H."""
        return [round(height * q / 4) for q in range(5)]

    def key(self, m: Measurement, seed: int) -> str:
        return "/".join([m.role, m.transform, f"t={m.t}", f"seed={seed}"])

    # ---- its bands ----------------------------------------------------------------------

    def ideal_of(self, transform: str, t: int | None, height: int) -> float | None:
        """The ideal value of one point, or None where the property is a range."""
        return self.ideal

    def band_of(self, transform: str, t: int | None, height: int, tol: float) -> Band:
        """The band a point's interval must lie in: the ideal +- tol."""
        ideal = self.ideal_of(transform, t, height)
        assert ideal is not None, f"{self.name} has no ideal at t={t}"
        return Band(ideal - tol, ideal + tol)

    def point_ideal(self, p: Point, request: EvaluationRequest) -> float | None:
        return self.ideal_of(p.test.transform, p.t, request.dataset.height)

    def point_band(self, p: Point, request: EvaluationRequest) -> Band:
        return self.band_of(p.test.transform, p.t, request.dataset.height,
                            p.test.effective_tolerance)

    def monotone(self, test: TestSpec) -> bool:
        """Whether neighbouring points of one test are also decided as steps that must
        not fall (each step a decision with :meth:`step_band`)."""
        return False

    def step_band(self, tol: float) -> Band:
        """A step r(t_k) - r(t_{k-1}) must be >= -tol (tested on paired per-seed steps)."""
        return Band(-tol, None)

    # ---- its values ---------------------------------------------------------------------

    def value(self, p: Point, num: Estimate, den: Estimate | None,
              true_mi: float | None) -> float | None:
        """One seed's value of a point: I(numerator) / I(denominator), or / the true MI.

        On a log-scale point a quotient over a non-positive denominator estimate is no
        ratio of information: it is reported as -|quotient| (<= 0), so the point is
        inconclusive with reason non_positive, as for a negative numerator. Two negative
        estimates would otherwise make a positive ratio that could decide a verdict (GM's
        Table 3 run read I(X; Y) at -31 to -13 nats under translation; engine v3)."""
        r = ratio_of(num.mi_test, true_mi if den is None else den.mi_test)
        below = den is not None and den.mi_test is not None and den.mi_test <= 0
        if r is not None and below and self.scale_of(p) == "log":
            return -abs(r)
        return r

    def row_transform(self, p: Point) -> str:
        """The `transform` its rows carry."""
        return p.test.transform

    def scale_of(self, p: Point) -> Scale:
        """The scale a point's interval is built on (fixed by the kind, never by data)."""
        return self.scale

    def note(self, p: Point, request: EvaluationRequest) -> str:
        """What a row states besides its verdict's reason (empty by default)."""
        return ""

    def decisions(self, test: TestSpec, points: list[Point]) -> int:
        """Its pass/fail decisions: every point but the exact ones, and the steps."""
        steps = max(0, len(points) - 1) if self.monotone(test) else 0
        return sum(1 for p in points if not p.exact) + steps

    def estimate_fields(self, m: Measurement, request: EvaluationRequest) -> dict[str, Any]:
        """Fields its estimate rows carry besides the common ones (e.g. rho)."""
        return {}

    def on_fail(self, row: Ratio) -> tuple[str, str] | None:
        """The warning (diagnostic code, message) a failed row of this kind adds, if any."""
        return None


def _family(request: EvaluationRequest) -> str:
    """The estimator's family; a plug-in this process does not know is discriminative."""
    est = request.estimator
    return est.entry.family if est.known else "discriminative"


def _named(which: Any) -> str:
    return " / ".join(k.name for k in entries() if which(k))


_ENTRIES: dict[str, TestKind] = {}


def register(kind: TestKind, *, replace: bool = False) -> TestKind:
    """Add a test kind; ``replace`` allows overriding an existing name."""
    if not _NAME.match(kind.name):
        raise ValueError(f"test kind name {kind.name!r} must match {_NAME.pattern}")
    if kind.name in _ENTRIES and not replace:
        raise ValueError(f"test kind {kind.name!r} is already registered")
    _ENTRIES[kind.name] = kind
    return kind


def get(name: str) -> TestKind:
    """The entry of a kind; KeyError naming the known ones otherwise."""
    try:
        return _ENTRIES[name]
    except KeyError:
        raise KeyError(f"unknown test kind {name!r}; known: {', '.join(_ENTRIES)}") from None


def entries() -> list[TestKind]:
    """Every kind, in display order."""
    return sorted(_ENTRIES.values(), key=lambda k: (k.order, k.name))


def names() -> list[str]:
    return [k.name for k in entries()]


def order(name: str) -> int:
    """Where rows of kind `name` are listed; unknown (stored, retired) kinds last."""
    kind = _ENTRIES.get(name)
    return 99 if kind is None else kind.order


from micheck.testkinds import builtin as _builtin  # noqa: E402, F401  (registers the paper's)
