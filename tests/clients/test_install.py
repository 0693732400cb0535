"""The client where no package index has it: pip installs the wheel the service serves
(service/routes/client_dist.py) from its URL into a fresh virtual environment, where
`micheck` runs without torch and submits to the same service."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

import micheck

WHEEL = f"micheck-{micheck.__version__}-py3-none-any.whl"


def _base_requirements_dir(tmp: Path) -> Path:
    """The served wheel's base requirements, closed over their own, taken from this
    environment into one directory (the test reads no package index)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = ["micheck"]
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(req.name)
            if name not in seen:
                seen.add(name)
                todo.append(name)
    out = tmp / "deps"
    out.mkdir()
    for name in sorted(seen):
        dist = importlib.metadata.distribution(name)
        site = Path(dist.locate_file(""))
        for top in {Path(str(f)).parts[0] for f in dist.files or [] if ".." not in str(f)}:
            if (site / top).exists() and not (out / top).exists():
                (out / top).symlink_to(site / top)
    assert not (out / "torch").exists()
    return out


@pytest.mark.slow
def test_pip_installs_the_served_wheel_into_a_fresh_venv(live_server, tokens, tmp_path):
    """pip fetches the wheel from the live service; in the fresh environment `micheck`
    works with the base requirements alone (no torch) and submits to that service."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py, exe = venv / "bin" / "python", venv / "bin" / "micheck"
    wheel_url = f"{live_server}/v1/client/{WHEEL}"
    run = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                          wheel_url], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(_base_requirements_dir(tmp_path)),
           "HOME": str(tmp_path), "MICHECK_URL": live_server, "MICHECK_TOKEN": tokens["alice"]}
    check = subprocess.run([str(py), "-m", "pip", "check"], capture_output=True, text=True,
                           env=env, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr  # base requirements suffice
    code = ("import sys, micheck; from micheck import AsyncClient, Client; "
            "assert micheck.__file__.startswith(sys.prefix), micheck.__file__; "
            "print(Client().estimators()[0]['name']); "
            "assert 'torch' not in sys.modules and 'fastapi' not in sys.modules")
    run = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "infonce", run.stderr
    run = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0 and "submit" in run.stdout
    spec = tmp_path / "spec.yaml"
    spec.write_text("estimator: {name: infonce, train: {steps: 5, batch_size: 8, "
                    "eval_samples: 64}}\n"
                    "dataset: {name: gaussian, dim: 2, mi: 1.0}\ntests: [{kind: ground_truth}]\n")
    run = subprocess.run([str(exe), "submit", str(spec)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 0 and len(run.stdout.strip()) == 32, run.stderr
    run = subprocess.run([str(exe), "serve"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)  # a part without its extra says which
    assert run.returncode == 2 and "pip install 'micheck[service]'" in run.stderr
