"""From estimates to decided points: ratios per seed, intervals, bands, verdicts, diagnostics.

Torch-free: the workers call it on the estimates they trained; it is the one place where a
verdict is decided (by the rule in micheck.verdicts). Ratio arithmetic:

    per seed s:  r_s = I_s(numerator) / I_s(denominator)   (or / the task's true MI)
    per point:   mean of the finite r_s and its simultaneous Student-t interval

A ratio is undefined (None) when either estimate is non-finite or the denominator is within
1e-6 nats of 0. Baseline monotonicity is tested on paired steps: d_s = r_s(t_k) - r_s(t_k-1)
between neighbouring t of one baseline test, with the band [-tolerance, +inf).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from micheck.contract import Diagnostic, Estimate, EvaluationRequest, Ratio
from micheck.plan import Point, points
from micheck.verdicts import (
    ALPHA,
    INTERVAL_METHOD,
    Band,
    Interval,
    Verdict,
    band_of,
    decide,
    ideal_of,
    monotone_band,
    overall,
    simultaneous_level,
    student_t_interval,
)


def ratio_of(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or not math.isfinite(num) or not math.isfinite(den):
        return None
    if abs(den) < 1e-6:
        return None
    return num / den


def _exact(p: Point) -> bool:
    """I(X; X) / I(X; X): the numerator is the denominator, the ratio is 1 by construction."""
    return p.denominator is not None and p.numerator == p.denominator


def point_seeds(p: Point, estimates: dict[str, Estimate], seeds: Sequence[int]) -> list[int]:
    """The seeds for which both of a point's estimates exist (adaptive rounds may add
    seeds to some measurements only)."""
    return [s for s in seeds if p.numerator.key(s) in estimates
            and (p.denominator is None or p.denominator.key(s) in estimates)]


def _per_seed(p: Point, estimates: dict[str, Estimate], seeds: Sequence[int],
              true_mi: float | None) -> list[float | None]:
    out = []
    for s in seeds:
        num = estimates[p.numerator.key(s)].mi_test
        den = true_mi if p.denominator is None else estimates[p.denominator.key(s)].mi_test
        out.append(ratio_of(num, den))
    return out


def _converged(p: Point, estimates: dict[str, Estimate], seeds: Sequence[int]) -> bool:
    keys = [p.numerator.key(s) for s in seeds]
    if p.denominator is not None:
        keys += [p.denominator.key(s) for s in seeds]
    return all(estimates[k].converged is not False for k in keys)


def decision_count(request: EvaluationRequest) -> int:
    """How many pass/fail decisions an evaluation makes (the Bonferroni denominator)."""
    pts = points(request)
    steps = sum(max(0, len(g) - 1) for g in _baseline_groups(pts).values())
    return sum(1 for p in pts if not _exact(p)) + steps


def looks(request: EvaluationRequest) -> int:
    """How many times the adaptive seed rule may look at the verdicts (seeds double each
    round, from len(seeds) up to the cap)."""
    n, cap, count = len(request.seeds), request.seed_cap, 1
    while n < cap:
        n, count = min(cap, 2 * n), count + 1
    return count


def _baseline_groups(pts: list[Point]) -> dict[int, list[Point]]:
    groups: dict[int, list[Point]] = {}
    for p in pts:
        if p.test.kind == "baseline" and p.test.transform == "rows":
            groups.setdefault(id(p.test), []).append(p)
    return groups


def _ratio_row(p: Point, values: list[float | None], seeds: int, band: Band, level: float, *,
               converged: bool, exact: bool, ideal: float | None, kind: str = "ratio",
               t_from: int | None = None) -> Ratio:
    finite = [v for v in values if v is not None]
    if exact:  # no spread to estimate: the value is the same on every seed
        interval = Interval(finite[0], finite[0], finite[0], 1.0, len(finite)) if finite \
            else None
    else:
        interval = student_t_interval(finite, level)
    d = decide(interval, band, finite=len(finite), total=len(values), converged=converged,
               exact=exact)
    mean = math.fsum(finite) / len(finite) if finite else None
    lo = hi = None
    method = None
    if exact and finite:
        lo, hi, method = mean, mean, "exact: the numerator is the denominator"
    elif interval is not None:
        lo, hi, method = interval.low, interval.high, INTERVAL_METHOD
    return Ratio(test=p.test.kind, t=p.t, value=mean, ci_low=lo, ci_high=hi, ideal=ideal,
                 passed=d.verdict == "pass", tolerance=p.test.effective_tolerance,
                 per_seed=values, transform=p.test.transform, note=d.reason, kind=kind,
                 t_from=t_from, verdict=d.verdict, band_low=band.low, band_high=band.high,
                 ci_level=None if exact else level, ci_method=method,
                 reason_code=d.reason_code, reason=d.reason, seeds=len(finite))


def score(request: EvaluationRequest, estimates: dict[str, Estimate], seeds: Sequence[int],
          true_mi: float | None, *, alpha: float = ALPHA) -> tuple[list[Ratio], Verdict]:
    """Every point and monotonicity step of `request`, decided; and the overall verdict."""
    pts = points(request)
    h = request.dataset.height
    level = simultaneous_level(decision_count(request), looks(request), alpha)
    out: list[Ratio] = []
    per_point: dict[int, tuple[list[int], list[float | None], bool]] = {}
    for i, p in enumerate(pts):
        ss = point_seeds(p, estimates, seeds)
        values = _per_seed(p, estimates, ss, true_mi)
        conv = _converged(p, estimates, ss)
        per_point[i] = (ss, values, conv)
        tol = p.test.effective_tolerance
        out.append(_ratio_row(p, values, len(ss), band_of(p.test.kind, p.test.transform, p.t,
                                                          h, tol), level,
                              converged=conv, exact=_exact(p),
                              ideal=ideal_of(p.test.kind, p.test.transform, p.t, h)))
    index = {id(p): i for i, p in enumerate(pts)}
    for group in _baseline_groups(pts).values():
        for prev, cur in zip(group, group[1:], strict=False):
            s_prev, v_prev, c_prev = per_point[index[id(prev)]]
            s_cur, v_cur, c_cur = per_point[index[id(cur)]]
            by_seed = dict(zip(s_prev, v_prev, strict=True))
            diffs: list[float | None] = []
            for s, v in zip(s_cur, v_cur, strict=True):
                if s not in by_seed:
                    continue
                a = by_seed[s]
                diffs.append(None if a is None or v is None else v - a)
            out.append(_ratio_row(cur, diffs, len(diffs), monotone_band(cur.test.effective_tolerance),
                                  level, converged=c_prev and c_cur, exact=False, ideal=None,
                                  kind="step", t_from=prev.t))
    return out, overall([r.verdict for r in out])


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
        if e.converged is False:
            out.append(Diagnostic(code="not_converged", severity="warning", **where,
                                  message=f"held-out estimate still moving after {e.steps} "
                                          f"steps: {e.convergence}"))
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
        if r.verdict != "fail":
            continue
        if r.kind == "step":
            out.append(Diagnostic(code="non_monotone", severity="warning", test=r.test, t=r.t,
                                  message=f"baseline falls from t={r.t_from} to t={r.t}: "
                                          f"{r.reason}"))
        elif r.test == "independence":
            out.append(Diagnostic(code="nonzero_independence", severity="warning", test=r.test,
                                  t=r.t, message=f"independent Y gave ratio {r.value:.3f}, not 0"))
    return out
