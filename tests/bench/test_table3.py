"""bench/table3.py: the Table 3 and Figs 4-6 requests, records and the figs writer.

The writer is run on a stored engine result (docs/bench/demo_result.json, SMILE(5) on MNIST),
placed where `run` looks for done work, so nothing trains here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import table3
from bench.__main__ import parser
from micheck.contract import EvaluationResult

ROOT = Path(__file__).resolve().parents[2]
STORED = ROOT / "docs" / "bench" / "demo_result.json"


def _args(tmp_path: Path, *extra: str):
    a = parser().parse_args(["figs", "--out", str(tmp_path / "out"), "--docs",
                             str(tmp_path / "docs"), *extra])
    a.estimators = ["smile5"]
    a.rows = [int(x) for x in a.rows.split(",")] if a.rows else []
    return a


def test_table3_request_is_six_transform_tests_at_the_papers_schedule(tmp_path: Path) -> None:
    a = parser().parse_args(["table3"])
    req = table3.request("mine", a)
    assert {(t.kind, t.transform) for t in req.tests} == {
        (k, tr) for k in table3.TESTS for tr in table3.TRANSFORMS}
    assert req.estimator.train.steps == 1875 and req.estimator.train.lr == 1e-4
    assert req.estimator.train.batch_size == 64 and len(req.seeds) == 3


def test_figs_request_covers_the_rows_grid(tmp_path: Path) -> None:
    a = _args(tmp_path, "--rows", "0,7,14,28", "--lr", "5e-4")
    req = table3.request("smile5", a, figs=True)
    rows = {t.kind: t.rows for t in req.tests}
    assert rows == {"baseline": [0, 7, 14, 28], "data_processing": [7, 14, 28],
                    "additivity": [7, 14, 28]}
    assert req.estimator.train.lr == 5e-4
    assert table3.tag_of(a).endswith("_lr0.0005_seeds3_rows0-7-14-28")
    assert "rows" not in table3.tag_of(_args(tmp_path))


def test_figs_writer_reads_verdicts_from_stored_results(tmp_path: Path) -> None:
    a = _args(tmp_path, "--rows", "0,14,28")
    done = a.out / "figs" / table3.tag_of(a)
    done.mkdir(parents=True)
    shutil.copy(STORED, done / "smile5.json")
    table3.main_figs(a)

    stored = EvaluationResult.model_validate_json(STORED.read_text())
    data = json.loads((a.docs / "figs.json").read_text())
    points = data["points"]
    want = [(r.test, r.t, r.verdict) for r in stored.ratios
            if r.transform == "rows" and r.kind == "ratio"]
    assert [(p["test"], p["t"], p["verdict"]) for p in points] == want
    assert all(p["estimator"] == "SMILE(tau=5.0)" for p in points)
    assert data["meta"]["cost"]["smile5"]["critics"] == len(stored.estimates)
    md = (a.docs / "figs_table.md").read_text()
    for claim in table3.FIG_CLAIMS.values():
        assert claim in md
    for test in ("baseline", "additivity"):
        png = (a.docs / f"figs_{test}.png").read_bytes()
        assert png.startswith(b"\x89PNG")


def _table3_args(*extra: str):
    return parser().parse_args(["table3", *extra])


def test_block_goes_to_every_critic_and_not_to_gm() -> None:
    a = _table3_args("--critic", "joint", "--block", "16")
    for key in table3.ESTIMATORS:
        req = table3.request(key, a)
        critic = req.estimator.critic
        assert critic.kind == "joint" and critic.width == 0.25
        assert critic.block == (None if key == "gm" else 16), key
        assert req.estimator.train.batch_size == 64
    assert table3.tag_of(a) == "joint_b16_w0.25_s1875-1875_seeds3"


def test_without_block_requests_and_result_folders_are_as_before() -> None:
    a = _table3_args("--critic", "joint")
    assert all(table3.request(key, a).estimator.critic.block is None
               for key in table3.ESTIMATORS)
    assert table3.tag_of(a) == "joint_w0.25_s1875-1875_seeds3"  # earlier runs are found again


def test_report_only_trains_nothing_and_writes_what_is_there(tmp_path: Path) -> None:
    a = parser().parse_args(["table3", "--out", str(tmp_path / "out"), "--docs",
                             str(tmp_path / "docs"), "--report-only"])
    a.estimators, a.transforms = ["mine", "infonce"], []
    table3.main(a)  # nothing stored: writes an empty table, trains nothing
    data = json.loads((tmp_path / "docs" / "table3.json").read_text())
    assert data["cells"] == [] and data["meta"]["estimators"] == {}


def _split(result: EvaluationResult, seeds: set[int]) -> EvaluationResult:
    return result.model_copy(update={
        "estimates": [e for e in result.estimates if e.seed in seeds],
        "provenance": result.provenance.model_copy(update={"seeds": sorted(seeds)})})


def test_pool_rescores_runs_on_disjoint_seeds_as_one() -> None:
    from micheck.plan import Measurement
    from micheck.scoring import decision_count, look_record, score
    from micheck.verdicts import decision_level

    # a Table 3 request answered by two runs: seeds 0-1, then seed 2
    req = table3.request("smile5", parser().parse_args(["table3", "--seeds", "3"]))
    stored = EvaluationResult.model_validate_json(STORED.read_text())
    fake = []
    for e in stored.estimates[:1]:
        for m_test, tr in (("baseline", "rotation"), ("data_processing", "rotation"),
                           ("additivity", "rotation")):
            for seed, mi in ((0, 2.0), (1, 2.2), (2, 1.9)):
                factor = {"baseline": 1.0, "data_processing": 1.0, "additivity": 1.5}[m_test]
                fake.append(e.model_copy(update={"test": m_test, "t": None, "transform": tr,
                                                 "seed": seed, "mi_test": mi * factor,
                                                 "converged": True}))
    req = req.model_copy(update={"tests": [t for t in req.tests if t.transform == "rotation"],
                                 "seeds": [0, 1], "max_seeds": 2})
    # the first run as the engine would have stored it: two seeds, one look
    est = {Measurement(e.test, e.t, e.transform).key(e.seed): e for e in fake if e.seed < 2}
    rows, verdict = score(req, est, [0, 1], None)
    first = stored.model_copy(update={
        "request": req, "estimates": [e for e in fake if e.seed < 2], "ratios": rows,
        "verdict": verdict, "provenance": stored.provenance.model_copy(update={"seeds": [0, 1]}),
        "seed_rounds": stored.seed_rounds.model_copy(update={
            "looks": [look_record(req, rows, None, 1, 1, 2)]})})
    assert all(r.reason_code == "too_few_seeds" for r in rows)
    second = _split(first.model_copy(update={"estimates": fake}), {2})
    second = second.model_copy(update={"request": req.model_copy(update={"seeds": [2]})})
    pooled = table3.pool([first, second])
    assert pooled.provenance.seeds == [0, 1, 2] and pooled.seed_rounds.rounds == [[0, 1], [2]]
    add = next(r for r in pooled.ratios if r.test == "additivity")
    assert add.seeds == 3 and add.per_seed == pytest.approx([1.5, 1.5, 1.5])
    # the level pays for the look after the first run: the second look, past the one
    # planned, spends a share of the reserve
    assert add.look == 2 and [x.planned for x in pooled.seed_rounds.looks] == [True, False]
    assert add.ci_level == pytest.approx(decision_level(decision_count(req), 2, 1))
    with pytest.raises(ValueError, match="share seeds"):
        table3.pool([first, first])


def test_committed_table3_records_reproduce_every_cell() -> None:
    """Each committed Table 3 cell follows from the committed per-critic records alone: the
    rows recomputed from the per-seed estimates and the recorded looks
    (micheck.scoring.replay) are the stored rows, and the table's cells are those rows."""
    from micheck.scoring import replay

    tables = sorted((ROOT / "docs" / "bench").glob("table3*.json"))
    checked = 0
    for table in tables:
        doc = json.loads(table.read_text())
        kept = ROOT / "docs" / "bench" / "table3_records" / doc["meta"]["tag"]
        if not kept.is_dir():
            continue  # a table from before the records were kept (engine v2)
        results = {p.stem: EvaluationResult.model_validate_json(p.read_text())
                   for p in sorted(kept.glob("*.json"))}
        for key, res in results.items():
            rows, verdict = replay(res)
            assert (rows, verdict) == (res.ratios, res.verdict), key
        assert table3.records(results) == doc["cells"]
        checked += 1
    if checked == 0:
        pytest.skip("no Table 3 records committed yet")
