"""micheck.render.table: the ratio table's diagnostics, one line per distinct finding."""

from __future__ import annotations

from pathlib import Path

from micheck.contract import Diagnostic, EvaluationResult
from micheck.render.table import diagnostic_lines, ratio_table

STORED = Path(__file__).resolve().parents[3] / "docs" / "bench" / "demo_result.json"


def test_repeated_diagnostics_are_one_line_naming_each_place():
    result = EvaluationResult.model_validate_json(STORED.read_text())
    ceiling = "InfoNCE at its ceiling"
    result.diagnostics = (
        [Diagnostic(code="cpc_ceiling", severity="warning", message=ceiling, test=test, t=t,
                    seed=seed) for test, t in (("baseline", 14), ("additivity", 14))
         for seed in (0, 1, 2)]
        + [Diagnostic(code="diverged", severity="error", message="NaN", test="baseline", t=28,
                      seed=4),
           Diagnostic(code="info", severity="info", message="whole run")])
    assert diagnostic_lines(result) == [
        "WARNING cpc_ceiling: InfoNCE at its ceiling (baseline t=14 seeds 0,1,2; "
        "additivity t=14 seeds 0,1,2)",
        "ERROR   diverged: NaN (baseline t=28 seed 4)",
        "INFO    info: whole run",
    ]
    table = ratio_table(result)
    assert table.count("cpc_ceiling") == 1 and "verdict:" in table.splitlines()[-1]
