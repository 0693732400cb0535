"""bench/league.py: every estimator config on a suite, the table read back through the
service's own storage (a real SQLite database) and rebuilt from the records alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import league
from bench.__main__ import parser
from micheck import suites
from micheck.contract import EvaluationResult

ROOT = Path(__file__).resolve().parents[2]


def _args(tmp_path: Path, *extra: str):
    return parser().parse_args(["league", "--out", str(tmp_path / "out"), "--docs",
                                str(tmp_path / "docs"), *extra])


def test_league_trains_stores_and_rebuilds_the_same_table(tmp_path: Path) -> None:
    a = _args(tmp_path, "--suite", "smoke", "--configs", "infonce,mige",
              "--points", "gaussian/mi1,gaussian/mi2")
    league.main(a)
    smoke = suites.get("smoke")
    recs = sorted(league.records_dir(a.out, smoke).glob("*/*.json"))
    # MIGE estimates gradients only: no ground-truth record for it, n/a in the table
    assert [p.relative_to(league.records_dir(a.out, smoke)).as_posix() for p in recs] == [
        "infonce/gaussian__mi1.json", "infonce/gaussian__mi2.json"]
    page = a.docs / league.page_name(smoke)
    text = page.read_text()
    results = league.load(a.out, smoke)
    stored = league.stored_league(results, smoke)
    assert {(r.config, r.point) for r in stored.rows} == {
        ("infonce", "gaussian/mi1"), ("infonce", "gaussian/mi2")}
    for r, res in zip(sorted(stored.rows, key=lambda r: r.point),
                      sorted(results, key=lambda x: x.request.labels["suite_point"]),
                      strict=True):
        row = suites.select_row(smoke.point(r.point), res.ratios)
        assert row is not None and (r.value, r.ci_low, r.ci_high, r.verdict) == (
            row.value, row.ci_low, row.ci_high, row.verdict)
        assert r.code_version == res.provenance.code_version
        assert f"| {r.point} | {league._cell(r)} |" in text
    assert "| cubic/mi1 | not run |" in text  # applicable, not in --points
    # the records alone rebuild the same page: nothing trains with --report-only
    page.unlink()
    league.main(_args(tmp_path, "--suite", "smoke", "--report-only"))
    assert page.read_text() == text


@pytest.mark.parametrize(("name", "version"), [("cpu", 1), ("images", 1)])
def test_committed_league_is_rebuilt_from_its_records(tmp_path: Path, name: str,
                                                      version: int) -> None:
    """Each committed league page (docs/league.md for cpu) follows from the committed records
    (the one command it names), and each record's rows follow from its per-critic estimates
    and looks."""
    from micheck.scoring import replay

    suite = suites.get(name, version)
    kept = league.records_dir(ROOT / "docs" / "bench", suite)
    page = ROOT / "docs" / league.page_name(suite)
    if not kept.is_dir() or not page.exists():
        pytest.skip(f"no {name} league committed yet")
    for path in sorted(kept.glob("*/*.json")):
        res = EvaluationResult.model_validate_json(path.read_text())
        assert replay(res) == (res.ratios, res.verdict), path
    a = parser().parse_args(["league", "--suite", name, "--report-only", "--out",
                             str(ROOT / "docs" / "bench"), "--docs", str(tmp_path)])
    league.main(a)
    assert (tmp_path / page.name).read_text() == page.read_text()
