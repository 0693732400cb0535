"""The league table of every built-in estimator on a suite (issue 21): docs/league.md.

`python -m bench league [--suite cpu]` evaluates each estimator config (CONFIGS) on each
point of the suite that it applies to, exactly as `micheck suite run` would submit it
(micheck.suites.request_for, then workers.engine.evaluate), and keeps every result as a
record (docs/bench/league_records/<suite>-v<version>/<config>/<point>.json). Points
already recorded are not run again.

The table is then read the way the service reads it: the records are written into a fresh
SQLite database through the worker's own write path (create_evaluation, claim,
finish_success) and the league is micheck.storage.league.league_rows over it, so every
number in docs/league.md is a stored row, never recomputed. `--report-only` trains nothing:
it rebuilds the table from the committed records (the one command that reproduces it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from micheck import suites
from micheck.contract import EvaluationResult, League, LeagueRow, config_name
from micheck.settings import Settings
from micheck.storage import store
from micheck.storage.db import Database
from micheck.storage.league import league_rows

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# every built-in estimator with its default params, plus the configs the paper compares;
# `external` is left out: it runs a program the operator configures (MICHECK_EXTERNAL_...)
CONFIGS: list[tuple[str, dict]] = [
    ("infonce", {}), ("nwj", {}), ("dv", {}), ("mine", {}), ("smile", {"tau": 5.0}),
    ("smile", {"tau": "inf"}), ("js", {}), ("tuba", {}), ("alpha", {"alpha": 0.5}),
    ("gm", {}), ("mige", {}),
]
LEFT_OUT = {"external": "runs a program the operator configures "
                        "(MICHECK_EXTERNAL_ESTIMATORS); there is none to rank here"}
INFONCE_CEILING_BATCH = 64


def add_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--suite", default="cpu", help="suite name (default cpu)")
    sp.add_argument("--suite-version", type=int, default=0, help="0: the newest")
    sp.add_argument("--configs", default="", help="comma list of config names as in the "
                    "table, e.g. 'infonce,smile(tau=5.0)' (default all)")
    sp.add_argument("--points", default="", help="comma list of point ids (default all)")
    sp.add_argument("--docs", type=Path, default=DOCS, help="where the page goes")
    sp.add_argument("--report-only", action="store_true",
                    help="train nothing: rebuild the table from the records in --out")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name)


def records_dir(out: Path, suite: suites.Suite) -> Path:
    return out / "league_records" / f"{suite.name}-v{suite.version}"


def record_path(out: Path, suite: suites.Suite, config: str, point: str) -> Path:
    return records_dir(out, suite) / _safe(config) / f"{point.replace('/', '__')}.json"


def chosen(a: argparse.Namespace, suite: suites.Suite
           ) -> tuple[list[tuple[str, dict]], list[suites.SuitePoint]]:
    names = [c.strip() for c in a.configs.split(",") if c.strip()]
    known = {config_name(n, p): (n, p) for n, p in CONFIGS}
    unknown = [c for c in names if c not in known]
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; known: {list(known)}")
    configs = [known[c] for c in names] if names else list(CONFIGS)
    ids = [p.strip() for p in a.points.split(",") if p.strip()]
    points = [suite.point(i) for i in ids] if ids else list(suite.points)
    return configs, points


def run(a: argparse.Namespace, suite: suites.Suite) -> None:
    """Evaluate every (config, point) not yet recorded; a point a config does not apply to
    (e.g. MIGE on a ground-truth point) is skipped."""
    from micheck.workers.engine import evaluate

    configs, points = chosen(a, suite)
    for name, params in configs:
        cfg = config_name(name, params)
        for point in points:
            path = record_path(a.out, suite, cfg, point.id)
            if path.exists():
                continue
            try:
                req = suites.request_for(suite, point, name, params)
            except ValueError:
                continue  # does not apply: the table shows it as such
            t0 = time.perf_counter()
            result = evaluate(req)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(result.model_dump_json())
            row = suites.select_row(point, result.ratios)
            print(f"{cfg:>18} {point.id:<24} {row.verdict if row else '-':>12} "
                  f"{time.perf_counter() - t0:6.0f} s  load {os.getloadavg()[0]:.1f}",
                  flush=True)


def load(out: Path, suite: suites.Suite) -> list[EvaluationResult]:
    """The recorded results of the suite, in a fixed order."""
    return [EvaluationResult.model_validate_json(p.read_text())
            for p in sorted(records_dir(out, suite).glob("*/*.json"))]


def stored_league(results: list[EvaluationResult], suite: suites.Suite) -> League:
    """The league as the service serves it: the results stored through the worker's write
    path into a fresh SQLite database, read back by micheck.storage.league."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Settings(var_dir=Path(tmp), database_url=f"sqlite:///{tmp}/league.db"))
        try:
            for res in results:
                with db.write_session() as s:
                    row = store.create_evaluation(s, res.request, owner=None, queue="cpu",
                                                  job_timeout_s=3600)
                    eid = row.id
                with db.write_session() as s:
                    claim = store.claim(s, eid, "bench-league", max_attempts=1)
                    if claim is None or not store.finish_success(s, eid, claim.attempt, res):
                        raise RuntimeError(f"could not store the result of {res.request.label}")
            with db.session() as s:
                rows = league_rows(s, suite, owner=None)
        finally:
            db.dispose()
    return League(suite=suite.name, version=suite.version, title=suite.title,
                  stored_at=datetime.now(timezone.utc), points=[], rows=rows)


def _applies(suite: suites.Suite, point: suites.SuitePoint, name: str, params: dict) -> bool:
    try:
        suites.request_for(suite, point, name, params)
    except ValueError:
        return False
    return True


def _num(x: float | None, nd: int = 2) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.{nd}f}" if abs(x) < 1e4 else f"{x:.1e}"


def _cell(r: LeagueRow) -> str:
    if r.verdict is None:
        return "no row"
    ci = f" [{_num(r.ci_low)}, {_num(r.ci_high)}]" if r.ci_low is not None else ""
    return f"{_num(r.value)}{ci} {r.verdict}"


def nats(res: EvaluationResult) -> tuple[float | None, float | None, float | None]:
    """A ground-truth point's mean held-out estimate over seeds (nats), its seeds' standard
    deviation and the known MI, from the per-critic records."""
    vals = [e.mi_test for e in res.estimates if e.mi_test is not None
            and e.test == "ground_truth" and math.isfinite(e.mi_test)]
    truth = next((e.true_mi for e in res.estimates if e.true_mi is not None), None)
    if not vals:
        return None, None, truth
    sd = statistics.stdev(vals) if len(vals) > 1 else None
    return statistics.fmean(vals), sd, truth


def _config_of(res: EvaluationResult) -> str:
    """A result's config as the league names it: the stored params (defaults filled in)."""
    return config_name(res.request.estimator.name, dict(res.request.estimator.params))


def _columns(results: list[EvaluationResult]
             ) -> tuple[list[str], dict[str, tuple[str, dict]], dict[str, str]]:
    """The configs with records, in CONFIGS order (a config matches the entry with its name
    whose params it includes), each with the name and params that submit it, and its
    column label (the CONFIGS entry's name: the stored params hold every default too)."""
    def rank(res: EvaluationResult) -> int:
        est = res.request.estimator
        for i, (name, params) in enumerate(CONFIGS):
            if name == est.name and all(est.params.get(k) == v for k, v in params.items()):
                return i
        return len(CONFIGS)

    out: dict[str, tuple[int, str, dict]] = {}
    for res in results:
        est = res.request.estimator
        out.setdefault(_config_of(res), (rank(res), est.name, dict(est.params)))
    order = sorted(out, key=lambda c: (out[c][0], c))
    labels = {c: config_name(*CONFIGS[out[c][0]]) if out[c][0] < len(CONFIGS) else c
              for c in order}
    return order, {c: (out[c][1], out[c][2]) for c in order}, labels


def render(league: League, results: list[EvaluationResult], suite: suites.Suite,
           command: str) -> str:
    shown, params, label = _columns(results)
    cells = {(r.config, r.point): r for r in league.rows}
    by = {(_config_of(r), r.request.labels.get(suites.POINT_LABEL)): r for r in results}
    lines = [f"# League: suite {suite.name} v{suite.version}", "",
             f"{suite.title}. Generated by `{command}` (bench/league.py) from the records in "
             f"docs/bench/league_records/{suite.name}-v{suite.version}/ (one engine result "
             "per estimator config and point, with its request, per-critic estimates, "
             "looks and provenance). The records are stored through the worker's write path "
             "into a fresh SQLite database and the table is the service's league read "
             "(`GET /v1/league?suite=" + suite.name + "`), so every cell is a stored row.", "",
             "Each cell: the reported row's value (estimate / known MI for ground truth; "
             "estimated / analytic gradient for mi_gradient) with the interval its verdict "
             "was decided on, and the verdict (pass: the interval lies inside the band; "
             "fail: wholly outside; otherwise inconclusive). `n/a`: the estimator cannot "
             "run that test (MIGE estimates only gradients; GM has no gradient readout). "
             + "; ".join(f"`{k}` is left out: {v}" for k, v in LEFT_OUT.items()) + ".", ""]
    lines += ["Columns, with the params stored in each record (defaults filled in): "
              + "; ".join(f"`{label[c]}` = `{c}`" for c in shown) + ".", ""]
    labelled = set(label.values())
    unrun = [config_name(n, q) for n, q in CONFIGS if config_name(n, q) not in labelled
             and any(_applies(suite, p, n, q) for p in suite.points)]
    if unrun:
        lines += ["Not run on this suite (no records): " + ", ".join(f"`{c}`" for c in unrun)
                  + ".", ""]
    lines += ["| point | " + " | ".join(label[c] for c in shown) + " |",
              "|---" * (len(shown) + 1) + "|"]
    for p in suite.points:
        out = [_cell(cells[(c, p.id)]) if (c, p.id) in cells
               else "not run" if _applies(suite, p, *params[c]) else "n/a" for c in shown]
        lines.append(f"| {p.id} | " + " | ".join(out) + " |")
    decided = [r for r in league.rows if r.verdict in ("pass", "fail")]
    reasons: dict[str, int] = {}
    for r in league.rows:
        if r.verdict == "inconclusive":
            res = by.get((r.config, r.point))
            stored = suites.select_row(suite.point(r.point), res.ratios) if res else None
            key = (stored.reason_code if stored else None) or "-"
            reasons[key] = reasons.get(key, 0) + 1
    lines += ["", f"Decided: {len(decided)} of {len(league.rows)} cells "
              f"({sum(r.verdict == 'pass' for r in decided)} pass, "
              f"{sum(r.verdict == 'fail' for r in decided)} fail)."]
    if reasons:
        lines += ["", "Why the rest are inconclusive (cells per stored reason code; the "
                  "report of each record gives the full reason):", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])]
    # estimates in nats beside the truth, and where InfoNCE's ceiling binds
    gt = [p for p in suite.points if p.row.test == "ground_truth"]
    if gt:
        ceiling = math.log(INFONCE_CEILING_BATCH)
        lines += ["", "## Estimates in nats against the known MI", "",
                  "Mean held-out estimate over seeds (± their standard deviation) / known "
                  f"MI. InfoNCE cannot exceed log(batch) = log {INFONCE_CEILING_BATCH} = "
                  f"{ceiling:.3f} nats: a truth above it is marked *, where the ceiling "
                  "binds.", ""]
        lines += ["| point | truth | " + " | ".join(label[c] for c in shown) + " |",
                  "|---" * (len(shown) + 2) + "|"]
        for p in gt:
            truth = None
            out = []
            for c in shown:
                res = by.get((c, p.id))
                if res is None:
                    out.append("not run" if _applies(suite, p, *params[c]) else "n/a")
                    continue
                m, sd, truth = nats(res)
                out.append(f"{_num(m)} ± {_num(sd)}" if sd is not None else _num(m))
            mark = " *" if truth is not None and truth > ceiling else ""
            lines.append(f"| {p.id} | {_num(truth)}{mark} | " + " | ".join(out) + " |")
    # cost and provenance
    wall = sum(r.provenance.wall_seconds for r in results)
    devices = sorted({r.provenance.device for r in results})
    codes = sorted({r.provenance.code_version for r in results})
    lines += ["", "## Cost and provenance", "",
              f"{len(results)} evaluations, {wall / 60:.0f} min of wall time in all on "
              f"{', '.join(devices)}; code version(s) {', '.join(codes)}. Per config "
              "(minutes):", ""]
    per: dict[str, float] = {}
    for (c, _), res in by.items():
        per[c] = per.get(c, 0.0) + res.provenance.wall_seconds / 60
    lines.append(", ".join(f"{label[c]} {per[c]:.1f}" for c in shown if c in per) + ".")
    return "\n".join(lines) + "\n"


def page_name(suite: suites.Suite) -> str:
    """docs/league.md for the cpu suite (the league table), league_<suite>.md otherwise."""
    return "league.md" if suite.name == "cpu" else f"league_{suite.name}.md"


def main(a: argparse.Namespace) -> None:
    suite = suites.get(a.suite, a.suite_version or None)
    t0, load0 = time.perf_counter(), os.getloadavg()
    if not a.report_only:
        run(a, suite)
    results = load(a.out, suite)
    if not results:
        raise SystemExit(f"no records in {records_dir(a.out, suite)}")
    league = stored_league(results, suite)
    command = f"python -m bench league --suite {suite.name} --report-only"
    text = render(league, results, suite, command)
    a.docs.mkdir(parents=True, exist_ok=True)
    (a.docs / page_name(suite)).write_text(text)
    print(text)
    print(json.dumps({"seconds": round(time.perf_counter() - t0, 1),
                      "loadavg_at_start": [round(x, 2) for x in load0],
                      "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}))
