"""The league read from stored results: for each (estimator config, suite point) the ratio
row of the latest succeeded evaluation labelled for that point (micheck.suites labels),
with its interval, verdict, reason and code version as stored; and one point's value over
code versions. Nothing is recomputed: failed, canceled and unfinished evaluations never
count, and the rows are those the worker wrote."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from micheck.contract import (
    HistoryEntry,
    LeagueRow,
    Ratio,
    config_name,
    stored_request,
)
from micheck.storage.models import Evaluation, LabelRow, RatioRow, Result
from micheck.storage.reads import _ratio_fields
from micheck.storage.statuses import OK
from micheck.suites import POINT_LABEL, SUITE_LABEL, VERSION_LABEL, Suite, select_row


def _labelled(key: str, value: str):
    return (select(LabelRow.evaluation_id)
            .where(LabelRow.evaluation_id == Evaluation.id, LabelRow.key == key,
                   LabelRow.value == value).exists())


def point_evaluations(s: Session, suite: Suite, *, owner: str | None,
                      point: str | None = None, estimator: str | None = None
                      ) -> list[tuple[Evaluation, str]]:
    """The succeeded evaluations labelled for this suite version (and ``point``,
    ``estimator`` when given) with the point each is labelled for, oldest first;
    ``owner`` None: every owner's."""
    point_label = select(LabelRow.value).where(LabelRow.evaluation_id == Evaluation.id,
                                               LabelRow.key == POINT_LABEL).scalar_subquery()
    q = (select(Evaluation, point_label)
         .where(Evaluation.status == OK, _labelled(SUITE_LABEL, suite.name),
                _labelled(VERSION_LABEL, str(suite.version))))
    if point is not None:
        q = q.where(_labelled(POINT_LABEL, point))
    if owner is not None:
        q = q.where(Evaluation.owner == owner)
    if estimator is not None:
        q = q.where(Evaluation.estimator == estimator)
    q = q.order_by(Evaluation.created_at, Evaluation.id)
    known = set(suite.point_ids)
    return [(row, pid) for row, pid in s.execute(q) if pid in known]


def _config(row: Evaluation) -> tuple[str, dict]:
    est = stored_request(row.request).estimator
    return est.name, dict(est.params)


def _results(s: Session, rows: Sequence[Evaluation]) -> dict[str, tuple[Result, list[Ratio]]]:
    """Each evaluation's reported result (its result attempt) and ratio rows, by id."""
    attempts = {r.id: r.result_attempt for r in rows}
    results = {res.evaluation_id: res for res in s.scalars(
        select(Result).where(Result.evaluation_id.in_(list(attempts))))
        if res.attempt == attempts[res.evaluation_id]}
    ratios: dict[int, list[Ratio]] = {res.id: [] for res in results.values()}
    if ratios:
        for x in s.scalars(select(RatioRow).where(RatioRow.result_id.in_(list(ratios)))
                           .order_by(RatioRow.id)):
            ratios[x.result_id].append(Ratio.model_validate(_ratio_fields(x)))
    return {eid: (res, ratios[res.id]) for eid, res in results.items()}


def _latest(pairs: list[tuple[Evaluation, str]]) -> dict[tuple[str, str], Evaluation]:
    """(config key, point) -> the latest evaluation of the pairs (given oldest first)."""
    out: dict[tuple[str, str], Evaluation] = {}
    for row, pid in pairs:
        name, params = _config(row)
        out[(name + json.dumps(params, sort_keys=True), pid)] = row
    return out


def league_rows(s: Session, suite: Suite, *, owner: str | None) -> list[LeagueRow]:
    """One row per (estimator config, point) in the suite's point order, configs by name:
    the stored ratio row of the latest succeeded evaluation for it."""
    latest = _latest(point_evaluations(s, suite, owner=owner))
    results = _results(s, list(latest.values()))
    order = {pid: i for i, pid in enumerate(suite.point_ids)}
    out = []
    for (_cfg, pid), row in sorted(latest.items(), key=lambda kv: (order[kv[0][1]], kv[0][0])):
        if row.id not in results:  # a succeeded row always has its result; be safe
            continue
        res, ratios = results[row.id]
        point = suite.point(pid)
        name, params = _config(row)
        r = select_row(point, ratios)
        out.append(LeagueRow(
            estimator=name, params=params, config=config_name(name, params), point=pid,
            point_title=point.title, test=point.row.test,
            transform=r.transform if r else point.row.transform,
            rho=r.rho if r else point.row.rho, value=r.value if r else None,
            ci_low=r.ci_low if r else None, ci_high=r.ci_high if r else None,
            ci_level=r.ci_level if r else None, ideal=r.ideal if r else None,
            band_low=r.band_low if r else None, band_high=r.band_high if r else None,
            verdict=r.verdict if r else None,
            reason=r.reason if r else "the stored result has no row for this point",
            seeds=r.seeds if r else 0, code_version=res.code_version, evaluation_id=row.id,
            created_at=row.created_at, report=f"v1/evaluations/{row.id}/report"))
    return out


def point_history(s: Session, suite: Suite, point: str, estimator: str, *,
                  owner: str | None) -> list[HistoryEntry]:
    """One point's value for one estimator over code versions: per (config, code version)
    the latest succeeded evaluation, ordered by when that code version first appeared."""
    pairs = point_evaluations(s, suite, owner=owner, point=point, estimator=estimator)
    results = _results(s, [row for row, _ in pairs])
    latest: dict[tuple[str, str], HistoryEntry] = {}
    first_seen: dict[tuple[str, str], tuple] = {}
    p = suite.point(point)
    for row, _ in pairs:
        if row.id not in results:
            continue
        res, ratios = results[row.id]
        name, params = _config(row)
        cfg = config_name(name, params)
        r = select_row(p, ratios)
        key = (cfg, res.code_version)
        first_seen.setdefault(key, (row.created_at, row.id))
        latest[key] = HistoryEntry(
            config=cfg, params=params, code_version=res.code_version,
            value=r.value if r else None, ci_low=r.ci_low if r else None,
            ci_high=r.ci_high if r else None, verdict=r.verdict if r else None,
            evaluation_id=row.id, created_at=row.created_at)
    return [latest[k] for k in sorted(latest, key=lambda k: (first_seen[k], k))]
