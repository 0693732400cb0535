"""From estimates to decided points: ratios per seed, intervals, bands, verdicts, diagnostics.

Torch-free: the workers call it on the estimates they trained; it is the one place where a
verdict is decided (by the rule in micheck.verdicts). Ratio arithmetic:

    per seed s:  r_s = I_s(numerator) / I_s(denominator)   (or / the task's true MI)
    per point:   the centre of the finite r_s on the point's scale (the mean; the geometric
                 mean on the log scale) and their simultaneous Student-t interval

Looks. The adaptive seed rule scores an evaluation once per round; each round is a look
that spends its share of alpha (micheck.verdicts.spend). A row decided (pass or fail) at
one look is final: later looks copy it and decide only what is still open, so a decision
is never taken back and never re-tested.

A ratio is undefined (None) when either estimate is non-finite or the denominator is within
1e-6 nats of 0. Baseline monotonicity is tested on paired steps: d_s = r_s(t_k) - r_s(t_k-1)
between neighbouring t of one baseline test, with the band [-tolerance, +inf).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from micheck import testkinds
from micheck.contract import (
    Diagnostic,
    Estimate,
    EvaluationRequest,
    EvaluationResult,
    Look,
    Ratio,
)
from micheck.plan import Measurement, Point, plan
from micheck.testkinds import ratio_of
from micheck.verdicts import (
    ALPHA,
    INTERVAL_METHODS,
    RESOLVABLE_BY_SEEDS,
    Band,
    Scale,
    Verdict,
    decision_level,
    judge,
    overall,
    spend,
    t_quantile,
)

__all__ = ["decision_count", "diagnostics", "extend", "futile", "look_record", "looks",
           "next_round",
           "next_seeds", "open_measurements", "added_seeds", "keyed_estimates", "replay", "planned_looks", "point_seeds", "ratio_of", "ratio_row", "score"]


def point_seeds(p: Point, estimates: dict[str, Estimate], seeds: Sequence[int]) -> list[int]:
    """The seeds for which all of a point's estimates exist (adaptive rounds may add
    seeds to some measurements only)."""
    return [s for s in seeds if all(m.key(s) in estimates for m in p.measurements)]


def _per_seed(p: Point, estimates: dict[str, Estimate], seeds: Sequence[int],
              true_mi: float | None) -> list[float | None]:
    kind = testkinds.get(p.test.kind)
    return [kind.value(p, estimates[p.numerator.key(s)],
                       None if p.denominator is None else estimates[p.denominator.key(s)],
                       true_mi) for s in seeds]


def _converged(p: Point, estimates: dict[str, Estimate], seeds: Sequence[int]) -> bool:
    return all(estimates[m.key(s)].converged is not False for m in p.measurements for s in seeds)


def _by_test(request: EvaluationRequest) -> list[tuple[testkinds.TestKind, list[Point]]]:
    """Each test's kind and points, in the request's order (so `points` order)."""
    out = []
    for test in request.tests:
        kind = testkinds.get(test.kind)
        out.append((kind, kind.points(test, request)))
    return out


def decision_count(request: EvaluationRequest) -> int:
    """How many pass/fail decisions an evaluation makes (the Bonferroni denominator): the
    sum of each test kind's count (its points but the exact ones, and its steps)."""
    return sum(kind.decisions(pts[0].test, pts) for kind, pts in _by_test(request) if pts)


def next_seeds(seeds: Sequence[int], cap: int) -> list[int]:
    """The adaptive seed rule's next round: double the seeds (up to `cap`) with the
    smallest integers above the largest seed so far that were not run."""
    count = min(cap, 2 * len(seeds)) - len(seeds)
    new: list[int] = []
    candidate = max(seeds) + 1
    while len(new) < count:
        if candidate not in seeds:
            new.append(candidate)
        candidate += 1
    return new


def looks(request: EvaluationRequest) -> int:
    """How many times the adaptive seed rule may look at the verdicts (seeds double each
    round, by :func:`next_seeds`, from len(seeds) up to the cap)."""
    seeds, count = list(request.seeds), 1
    while more := next_seeds(seeds, request.seed_cap):
        seeds, count = seeds + more, count + 1
    return count


def _rows(request: EvaluationRequest) -> tuple[list[Point], list[tuple[Point, Point]]]:
    """The points, and the (previous, current) points of every monotone step, in the order
    :func:`score` reports their rows (one plan: the steps hold the same point objects)."""
    by_test = _by_test(request)
    pts = [p for _, ps in by_test for p in ps]
    steps = [(prev, cur) for kind, ps in by_test if ps and kind.monotone(ps[0].test)
             for prev, cur in zip(ps, ps[1:], strict=False)]
    return pts, steps


def ratio_row(p: Point, values: list[float | None], band: Band, level: float, *,
              converged: bool, ideal: float | None, note: str = "", kind: str = "ratio",
              t_from: int | None = None, scale: Scale = "linear", look: int | None = None
              ) -> Ratio:
    """One decided row: the centre of the finite per-seed values on the point's scale, their
    simultaneous interval (none needed for an exact point: no spread) and the verdict
    against `band` (micheck.verdicts.judge)."""
    exact = kind == "ratio" and p.exact
    finite = [v for v in values if v is not None]
    interval, d = judge(values, band, level, scale=scale, converged=converged, exact=exact)
    if interval is not None:
        centre: float | None = interval.mean
    else:
        centre = math.fsum(finite) / len(finite) if finite else None
    lo = hi = None
    method = None
    if exact and finite:
        lo, hi, method = centre, centre, "exact: the numerator is the denominator"
    elif interval is not None:
        lo, hi, method = interval.low, interval.high, INTERVAL_METHODS[scale]
    return Ratio(test=p.test.kind, t=p.t, value=centre, ci_low=lo, ci_high=hi, ideal=ideal,
                 passed=d.verdict == "pass", tolerance=p.test.effective_tolerance,
                 per_seed=values, transform=testkinds.get(p.test.kind).row_transform(p),
                 note="; ".join(x for x in (note, d.reason) if x), kind=kind,
                 t_from=t_from, verdict=d.verdict, band_low=band.low, band_high=band.high,
                 ci_level=None if exact else level, ci_method=method,
                 reason_code=d.reason_code, reason=d.reason, seeds=len(finite), rho=p.rho,
                 scale=None if exact else scale, look=look)


def score(request: EvaluationRequest, estimates: dict[str, Estimate], seeds: Sequence[int],
          true_mi: float | None, *, alpha: float = ALPHA, look: int = 1,
          planned: int | None = None, previous: Sequence[Ratio] | None = None
          ) -> tuple[list[Ratio], Verdict]:
    """Every point and monotonicity step of `request`, decided at `look` (1-based) of
    `planned` looks (default: the adaptive rule's, :func:`looks`); and the overall verdict.

    `previous`: the rows of the last look (same order): those already decided are kept
    as they are. Each interval's level is the look's alpha share over the decisions
    (micheck.verdicts.decision_level)."""
    level = decision_level(decision_count(request), look,
                           planned if planned is not None else looks(request), alpha)
    out: list[Ratio] = []
    per_point: dict[int, tuple[list[int], list[float | None], bool]] = {}
    pts, steps = _rows(request)
    done = [r if r.verdict != "inconclusive" else None for r in previous or []]
    done += [None] * (len(pts) + len(steps) - len(done))
    for i, p in enumerate(pts):
        kind = testkinds.get(p.test.kind)
        ss = point_seeds(p, estimates, seeds)
        values = _per_seed(p, estimates, ss, true_mi)
        conv = _converged(p, estimates, ss)
        per_point[id(p)] = (ss, values, conv)
        out.append(done[i] or ratio_row(
            p, values, kind.point_band(p, request), level, converged=conv,
            ideal=kind.point_ideal(p, request), note=kind.note(p, request),
            scale=kind.scale_of(p), look=look))
    for j, (prev, cur) in enumerate(steps):
        s_prev, v_prev, c_prev = per_point[id(prev)]
        s_cur, v_cur, c_cur = per_point[id(cur)]
        by_seed = dict(zip(s_prev, v_prev, strict=True))
        diffs: list[float | None] = []
        for s, v in zip(s_cur, v_cur, strict=True):
            if s not in by_seed:
                continue
            a = by_seed[s]
            diffs.append(None if a is None or v is None else v - a)
        band = testkinds.get(cur.test.kind).step_band(cur.test.effective_tolerance)
        out.append(done[len(pts) + j] or ratio_row(
            cur, diffs, band, level, converged=c_prev and c_cur, ideal=None, kind="step",
            t_from=prev.t, look=look))
    return out, overall([r.verdict for r in out])


def look_record(request: EvaluationRequest, rows: Sequence[Ratio],
                previous: Sequence[Ratio] | None, look: int, planned: int, seeds: int,
                alpha: float = ALPHA) -> Look:
    """What one look did: its alpha, its level, the rows it decided, those left open."""
    before = {i for i, r in enumerate(previous or []) if r.verdict != "inconclusive"}
    decided = sum(1 for i, r in enumerate(rows) if r.verdict != "inconclusive"
                  and i not in before)
    return Look(look=look, seeds=seeds, alpha=spend(look, planned, alpha),
                level=decision_level(decision_count(request), look, planned, alpha),
                decided=decided, open=sum(r.verdict == "inconclusive" for r in rows),
                planned=look <= planned)


def planned_looks(result: EvaluationResult) -> int:
    """How many looks a stored result's adaptive rule planned: recorded since engine v3.1,
    else the looks of its request (right for a result that extends nothing)."""
    return result.seed_rounds.planned_looks or looks(result.request)


def extend(request: EvaluationRequest, estimates: dict[str, Estimate], seeds: Sequence[int],
           true_mi: float | None, previous: Sequence[Ratio], looks_so_far: Sequence[Look],
           *, alpha: float = ALPHA, planned: int | None = None
           ) -> tuple[list[Ratio], Verdict, Look]:
    """One more look at a finished evaluation with more seeds (pooled with its stored
    estimates): rows decided before stay as they were, the rest are judged with every
    seed at the next look's alpha (micheck.verdicts.spend: a planned look's share if the
    evaluation stopped before its planned looks, else a share of the reserve). The level
    holds when the seeds added were not chosen from the values seen."""
    if planned is None:  # `request` is the submitted spec
        planned = looks(request)
    look = len(looks_so_far) + 1
    rows, verdict = score(request, estimates, seeds, true_mi, alpha=alpha, look=look,
                          planned=planned, previous=previous)
    return rows, verdict, look_record(request, rows, previous, look, planned, len(seeds),
                                      alpha)


def replay(result: EvaluationResult) -> tuple[list[Ratio], Verdict]:
    """The rows and verdict of a stored result recomputed from its per-seed estimates alone:
    each recorded look again, with the seeds of the rounds up to it, decided rows kept (how
    a reader checks a stored table without trusting its rows). Needs the looks (engine v3)."""
    request = result.request
    found = result.seed_rounds.looks
    if not found:
        raise ValueError("the result records no looks (scored before engine v3)")
    planned = planned_looks(result)
    estimates = keyed_estimates(request, result.estimates)
    true_mi = next((e.true_mi for e in result.estimates if e.true_mi is not None), None)
    seeds: list[int] = []
    rows: list[Ratio] | None = None
    verdict: Verdict = "inconclusive"
    for look, new in enumerate(result.seed_rounds.rounds, start=1):
        seeds += [s for s in new if s not in seeds]
        rows, verdict = score(request, estimates, seeds, true_mi, alpha=result.alpha or ALPHA,
                              look=look, planned=planned, previous=rows)
    return rows or [], verdict


FUTILITY = 2.0  # a row stops getting seeds when its projected half-width at the cap exceeds
# FUTILITY x the distance its centre must clear (the nearer of a pass and a fail)


def futile(row: Ratio, cap: int, level: float) -> bool:
    """Would more seeds, up to `cap`, almost surely leave this inconclusive row undecided?

    Judged from its own values once it has 6 or more (the spread of 3 is too rough): the
    half-width its interval would have at `cap` seeds and the last planned look's level,
    with today's spread, against the distance its centre must clear to pass (inside the
    band by the half-width) or to fail (outside it). Stopping a row early can only leave it
    inconclusive; it never makes a decision, so it costs no level."""
    if row.verdict != "inconclusive" or row.reason_code != "straddles_band":
        return False
    scale = row.scale or "linear"
    vals = [v for v in row.per_seed if v is not None]
    if len(vals) < 6 or len(vals) >= cap or (scale == "log" and any(v <= 0 for v in vals)):
        return False
    xs = [math.log(v) for v in vals] if scale == "log" else vals
    m = math.fsum(xs) / len(xs)
    sd = math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    half = t_quantile(0.5 + level / 2.0, cap - 1) * sd / math.sqrt(cap)

    def on_scale(edge: float | None) -> float | None:
        if edge is None or scale != "log":
            return edge
        return math.log(edge) if edge > 0 else -math.inf

    lo, hi = on_scale(row.band_low), on_scale(row.band_high)
    inside = (lo is None or m >= lo) and (hi is None or m <= hi)
    if inside:
        need = min(m - lo if lo is not None else math.inf, hi - m if hi is not None else math.inf)
    else:
        need = max(lo - m if lo is not None and m < lo else 0.0,
                   m - hi if hi is not None and m > hi else 0.0)
    return half > FUTILITY * need


def open_measurements(request: EvaluationRequest, ratios: Sequence[Ratio], *,
                      cap: int | None = None, level: float | None = None) -> list[Measurement]:
    """The measurements that the rows of :func:`score` still inconclusive for want of
    seeds read (with `cap` and `level`: only the rows not :func:`futile` at them)."""
    pts, steps = _rows(request)
    depends = [(p,) for p in pts] + steps  # the points each row of score() reads
    want = {m for row, ps in zip(ratios, depends, strict=False)
            if row.verdict == "inconclusive" and row.reason_code in RESOLVABLE_BY_SEEDS
            and (cap is None or level is None or not futile(row, cap, level))
            for p in ps for m in p.measurements}
    return sorted(want, key=lambda m: m.key(0))


def next_round(request: EvaluationRequest, ratios: Sequence[Ratio], seeds: Sequence[int],
               *, alpha: float = ALPHA) -> tuple[list[int], list[Measurement]]:
    """The adaptive seed rule: new seeds (:func:`next_seeds`), and the measurements they
    must train, for the rows of :func:`score` still inconclusive for want of seeds and not
    :func:`futile`; nothing when no more seeds can help."""
    if len(seeds) >= request.seed_cap:
        return [], []
    n_looks = looks(request)
    last = decision_level(decision_count(request), n_looks, n_looks, alpha)
    want = open_measurements(request, ratios, cap=request.seed_cap, level=last)
    if not want:
        return [], []
    return next_seeds(seeds, request.seed_cap), want


def added_seeds(seeds: Sequence[int], add: int) -> list[int]:
    """`add` seeds for a finished evaluation: the smallest integers above every seed it ran."""
    top = max(seeds)
    return list(range(top + 1, top + 1 + add))


def keyed_estimates(request: EvaluationRequest, estimates: Sequence[Estimate]
                    ) -> dict[str, Estimate]:
    """Stored estimates keyed as :func:`score` reads them (each measurement's key for its
    seed): an estimate row names its measurement by (test, t, transform, rho). Estimates no
    measurement of `request` matches are left out; ValueError when two of its measurements
    share that shape (two data-processing tests at one t with different offsets)."""
    by_shape: dict[tuple, Measurement] = {}
    for m in plan(request):
        shape = (m.role, m.t, m.transform, m.rho)
        if shape in by_shape:
            raise ValueError(f"two measurements of {m.role} at t={m.t} ({m.transform}) cannot "
                             "be told apart in stored estimates")
        by_shape[shape] = m
    out: dict[str, Estimate] = {}
    for e in estimates:
        m = by_shape.get((e.test, e.t, e.transform, e.rho))
        if m is not None:
            out[m.key(e.seed)] = e
    return out


def diagnostics(request: EvaluationRequest, estimates: list[Estimate],
                ratio_list: list[Ratio]) -> list[Diagnostic]:
    """What a user must see besides the verdicts."""
    out: list[Diagnostic] = []
    n = request.estimator.train.batch_size
    for e in estimates:
        where = {"test": e.test, "t": e.t, "seed": e.seed}
        if e.diverged:
            what = "training" if e.rho is None else f"rho={e.rho:g}: training or the gradient"
            out.append(Diagnostic(code="diverged", severity="error", **where,
                                  message=f"{what} produced a non-finite value (NaN/inf)"))
            continue
        if e.mi_test is not None and e.mi_test < 0:
            out.append(Diagnostic(code="negative_estimate", severity="warning", **where,
                                  message=f"held-out estimate {e.mi_test:.3f} nats is negative "
                                          "(MI is not): the bound's partition term blew up on "
                                          "held-out pairs or the critic overfits; a ratio "
                                          "judged on the log scale that reads it is "
                                          "inconclusive (non_positive)"))
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
        said = testkinds.get(r.test).on_fail(r) if r.verdict == "fail" else None
        if said is not None:
            code, message = said
            out.append(Diagnostic(code=code, severity="warning", test=r.test, t=r.t,
                                  message=message))
    return out
