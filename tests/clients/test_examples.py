"""The ready-to-copy CI jobs: valid against the official GitHub-workflow and GitLab-CI
schemas (the copies check-jsonschema ships, offline), the client installed from the
service, a `micheck submit` line the real CLI parser accepts, a fork guard that skips
with a message, and the files it writes published and kept."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import micheck
from micheck.cli import build_parser
from micheck.spec import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "examples"
SCHEMAS = {"github-actions.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci"}


def _doc(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


def _scripts(name: str) -> list[str]:
    doc = _doc(name)
    if name == "github-actions.yml":
        return [s["run"] for s in doc["jobs"]["self-consistency"]["steps"] if "run" in s]
    return doc["micheck"]["script"]


def _submit_args(name: str):
    (line,) = [s for s in _scripts(name) if s.startswith("micheck submit")]
    line = (line.replace("${{ github.run_id }}", "17").replace("${{ github.run_attempt }}", "2")
            .replace("$CI_PIPELINE_ID", "17").replace("$CI_JOB_ID", "99"))
    return build_parser().parse_args(shlex.split(line)[1:])  # drop "micheck"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_example_passes_its_official_schema(name):
    pytest.importorskip("check_jsonschema")
    run = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                          SCHEMAS[name], str(EXAMPLES / name)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_example_submits_and_keeps_every_report(name):
    scripts = "\n".join(_scripts(name))
    assert "pip install micheck" not in scripts  # no index has it: the service serves it
    assert "/v1/client" in scripts and 'pip install "$WHEEL"' in scripts
    args = _submit_args(name)
    assert args.command == "submit" and args.wait and args.timeout == 5400
    assert args.idempotency_key == ("gh-17-2" if name.startswith("github") else "gl-17-99")
    assert load_spec(EXAMPLES / args.spec).estimator.name == "smile"
    text = (EXAMPLES / name).read_text()
    for path in (args.junit, args.html, args.out):  # written, then kept as artifacts
        assert path is not None and text.count(str(path)) >= 2, path
    if name == "gitlab-ci.yml":
        job = _doc(name)["micheck"]
        assert job["artifacts"]["when"] == "always"
        assert job["artifacts"]["reports"]["junit"] == str(args.junit)


def test_github_publishes_checks_and_guards_every_step():
    doc = _doc("github-actions.yml")
    assert doc["permissions"]["checks"] == "write"
    steps = doc["jobs"]["self-consistency"]["steps"]
    assert steps[0]["id"] == "guard"
    assert all("steps.guard.outputs.ready == 'true'" in s["if"] for s in steps[1:])


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **env}, cwd=cwd, timeout=60)


def test_fork_guards_skip_with_a_message(tmp_path):
    """Run the guards as the runners would, without the secrets a fork's PR lacks."""
    out = tmp_path / "github_output"
    guard = _scripts("github-actions.yml")[0]
    run = _bash(guard, {"MICHECK_URL": "", "MICHECK_TOKEN": "", "GITHUB_OUTPUT": str(out)},
                tmp_path)
    assert run.returncode == 0 and "::notice title=micheck skipped::" in run.stdout
    assert out.read_text().strip() == "ready=false"
    run = _bash(guard, {"MICHECK_URL": "http://box:8000", "MICHECK_TOKEN": "mck_x",
                        "GITHUB_OUTPUT": str(out)}, tmp_path)
    assert run.returncode == 0 and out.read_text().strip().endswith("ready=true")

    guard = _scripts("gitlab-ci.yml")[0]
    run = _bash(guard, {"MICHECK_TOKEN": "mck_x"}, tmp_path)
    assert run.returncode == 77 and "micheck skipped" in run.stdout
    assert _doc("gitlab-ci.yml")["micheck"]["allow_failure"]["exit_codes"] == [77]
    assert _bash(guard, {"MICHECK_URL": "http://box:8000", "MICHECK_TOKEN": "mck_x"},
                 tmp_path).returncode == 0


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_install_line_finds_the_wheel_on_a_real_server(name, live_server, tmp_path):
    """The example's own line that turns $MICHECK_URL into the wheel's URL for pip."""
    (line,) = [s for s in "\n".join(_scripts(name)).splitlines()
               if s.strip().startswith("WHEEL=$(")]
    script = line.strip() + '\necho "$WHEEL"'
    env = {"MICHECK_URL": live_server + "/", "PYTHONPATH": os.pathsep.join(sys.path)}
    script = script.replace("python -c", f"{sys.executable} -c")
    run = subprocess.run(["bash", "-e", "-c", script],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60,
                         env={"PATH": os.environ["PATH"], **env})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{live_server}/v1/client/micheck-{micheck.__version__}-py3-none-any.whl"
