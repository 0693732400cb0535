"""A result as CSV: one row per (test point, seed), for pandas and spreadsheets.

Each row names its point (test, transform, t), its seed, that seed's ratio and the two
estimates it divides, as the request's plan defines them (micheck.plan, from the test
kinds' entries: paper 002 Sec. 4.2, 6.2, App. B.2; paper 004 Sec. 4 for mi_gradient, whose
values are gradients against the analytic dI/drho). With Y_t the top t rows of X and T a
Table 3 transform:

    ground_truth            I_hat(X; Y) / true I(X; Y)
    baseline, rows          I_hat(X; Y_t) / I_hat(X; X)
    independence, rows      I_hat(X; Y'_t) / I_hat(X; X)
    data_processing, rows   I_hat([X, X]; [Y_t, Y_{t-offset}]) / I_hat(X; Y_t)
    additivity, rows        I_hat([X1, X2]; [Y1_t, Y2_t]) / I_hat(X; Y_t)
    baseline, transform     I_hat(X; T(X)) / I_hat(X; X)
    other, transform        I_hat(the test's pair under T) / I_hat(X; T(X))
"""

from __future__ import annotations

import csv
import io
import math

from micheck import testkinds
from micheck.contract import Estimate, EvaluationRequest, EvaluationResult, Ratio
from micheck.plan import points

COLUMNS = ("evaluation_id", "estimator", "dataset", "test", "transform", "t", "seed",
           "ratio", "numerator_mi", "denominator_mi", "denominator", "numerator_mi_train",
           "steps", "diverged", "point_ratio", "point_ci_low", "point_ci_high", "ideal",
           "tolerance", "verdict", "note")


def _key(test: str, t: int | None, transform: str, seed: int,
         rho: float | None = None) -> tuple:
    return test, t, transform, seed, rho  # rho: mi_gradient rows, one per correlation


def operands(ratio: Ratio, request: EvaluationRequest
             ) -> tuple[tuple[str, int | None, str], tuple[str, int | None, str] | None]:
    """(numerator, denominator) of a row as (role, t, transform), from the request's plan
    (micheck.plan); denominator None = the known truth. A row the plan no longer makes (a
    retired kind of row, e.g. mi_gradient's stored "integral" rows) reads its own
    (test, t, transform) against the truth."""
    for p in points(request):
        kind = testkinds.get(p.test.kind)
        if (p.test.kind, p.t, kind.row_transform(p), p.rho) == (ratio.test, ratio.t,
                                                                 ratio.transform, ratio.rho):
            num, den = p.numerator, p.denominator
            return ((num.role, num.t, num.transform),
                    None if den is None else (den.role, den.t, den.transform))
    return (ratio.test, ratio.t, ratio.transform), None


def _verdict(r: Ratio) -> str:
    return r.verdict


def _cell(x: object) -> object:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    if isinstance(x, bool):
        return "true" if x else "false"
    return x


def results_csv(result: EvaluationResult, evaluation_id: str = "") -> str:
    req = result.request
    est: dict[tuple, Estimate] = {_key(e.test, e.t, e.transform, e.seed, e.rho): e
                                  for e in result.estimates}
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in result.ratios:
        if r.kind == "step":  # a monotonicity step is the difference of two rows above
            continue
        num_k, den_k = operands(r, req)
        # the seeds this point was computed on (adaptive rounds may add seeds to some
        # points only), in the order of its per-seed values
        seeds = [s for s in result.provenance.seeds if _key(*num_k, s, r.rho) in est
                 and (den_k is None or _key(*den_k, s) in est)]
        for i, seed in enumerate(seeds):
            num = est.get(_key(*num_k, seed, r.rho))
            den = est.get(_key(*den_k, seed)) if den_k else None
            den_mi = (num.true_mi if num else None) if den_k is None else \
                (den.mi_test if den else None)
            den_name = "true_mi" if den_k is None else \
                f"{den_k[0]}/{den_k[2]}/t={'-' if den_k[1] is None else den_k[1]}"
            w.writerow([_cell(x) for x in (
                evaluation_id, req.estimator.name, req.dataset.name, r.test, r.transform,
                r.t, seed, r.per_seed[i] if i < len(r.per_seed) else None,
                num.mi_test if num else None, den_mi, den_name,
                num.mi_train if num else None, num.steps if num else None,
                num.diverged if num else None, r.value, r.ci_low, r.ci_high, r.ideal,
                r.tolerance, _verdict(r), r.note)])
    return out.getvalue()
