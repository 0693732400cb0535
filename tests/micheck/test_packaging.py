"""The package is ready to publish: its sdist and wheel pass `twine check`, and the wheel
the service serves (service/routes/client_dist.py) holds the same files as the one
setuptools builds from the same sources."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_sdist_and_wheel_pass_twine_check_and_match_the_served_wheel(tmp_path):
    pytest.importorskip("twine")
    pytest.importorskip("fastapi")
    from micheck.service.routes.client_dist import build_wheel

    out = tmp_path / "dist"
    # PEP 517 hooks in a child (setuptools reads and rewrites sys.argv inside them)
    build = ("from setuptools import build_meta as b; "
             f"b.build_sdist({str(out)!r}); b.build_wheel({str(out)!r})")
    subprocess.run([sys.executable, "-c", build], cwd=ROOT, check=True, capture_output=True,
                   timeout=300)
    (sdist,), (wheel,) = out.glob("micheck-*.tar.gz"), out.glob("micheck-*.whl")
    run = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(sdist),
                          str(wheel)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.count("PASSED") == 2, run.stdout + run.stderr

    served = build_wheel(tmp_path / "served")
    assert served.name == wheel.name

    def files(path: Path) -> set[str]:
        return {n for n in zipfile.ZipFile(path).namelist() if ".dist-info/" not in n}

    assert files(served) == files(wheel)
