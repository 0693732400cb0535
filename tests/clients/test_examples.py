"""The ready-to-copy CI jobs: valid YAML, client-only install, a `micheck submit` line the
real CLI parser accepts, and the JUnit file they publish is the one it writes."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from micheck.cli import build_parser
from micheck.spec import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "examples"


def _steps(name: str) -> list[str]:
    doc = yaml.safe_load((EXAMPLES / name).read_text())
    if name == "github-actions.yml":
        return [s["run"] for s in doc["jobs"]["self-consistency"]["steps"] if "run" in s]
    return doc["micheck"]["script"]


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_example(name):
    steps = _steps(name)
    assert "pip install micheck" in steps  # the client alone: no extras, no torch
    (line,) = [s for s in steps if s.startswith("micheck submit")]
    argv = shlex.split(line.replace("${{ github.run_id }}", "1"))[1:]  # drop "micheck"
    args = build_parser().parse_args(argv)
    assert args.command == "submit" and args.wait and args.timeout == 5400
    assert args.idempotency_key
    assert load_spec(EXAMPLES / args.spec).estimator.name == "smile"
    text = (EXAMPLES / name).read_text()
    assert text.count(str(args.junit)) >= 3  # written, published as a report, kept
