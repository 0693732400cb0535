"""The `python -m bench` entry point: subcommands and their --quick flag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import parser

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    for name in ("staircase", "mnist", "speed", "gradient", "images", "table3", "figs", "all"):
        assert name in out


@pytest.mark.parametrize("name", ["staircase", "mnist", "speed", "gradient", "images", "all"])
def test_each_subcommand_has_quick(name: str) -> None:
    args = parser().parse_args([name, "--quick"])
    assert args.quick and args.threads == 1


def test_unknown_staircase_label_is_one_clear_message(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "bench", "staircase", "--estimators", "FOO",
                          "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0
    assert "unknown estimator label" in res.stderr and "Traceback" not in res.stderr


def test_missing_data_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "MICHECK_MNIST_FILE": str(tmp_path / "absent.pkl.gz"),
           "MICHECK_CACHE_DIR": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-m", "bench", "mnist", "--quick", "--out",
                          str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
    assert "absent.pkl.gz is missing" in res.stderr and "./scripts/setup" in res.stderr
