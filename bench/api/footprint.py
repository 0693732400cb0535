"""--client-size: the base (client) install's footprint: pip install the package with no
extras into a fresh venv, and what a CI job imports."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.api.common import ROOT


def _pip_dists(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    return {d["name"]: d["version"] for d in json.loads(out)}


def _du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return round(int(out.stdout.split()[0]) / 1024, 1)


def client_footprint(repeat: int = 5) -> dict[str, Any]:
    """pip install the base package (no extras) into a fresh venv; what does a CI job get?"""
    with tempfile.TemporaryDirectory(prefix="micheck-client-") as tmp_s:
        tmp = Path(tmp_s)
        # pip builds in the source tree (egg-info, build/): build a clean copy instead
        src = tmp / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
            ".git", "var", "data", "out", "docs", "tests", "build", "dist", "*.egg-info",
            "__pycache__", ".venv", ".*_cache"))
        subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
        py = tmp / "venv" / "bin" / "python"
        site = py.parent.parent / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" \
            / "site-packages"
        before_mib, before = _du_mib(site), _pip_dists(py)
        t = time.perf_counter()
        pip = subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(src)],
                             capture_output=True, text=True)
        if pip.returncode:  # otherwise its warnings (missing extra index dirs) are noise
            raise RuntimeError(f"pip install failed:\n{pip.stderr[-3000:]}")
        install_s = time.perf_counter() - t
        added = {k: v for k, v in _pip_dists(py).items() if before.get(k) != v}
        top = sorted({p.name.removesuffix(".py") for p in site.iterdir()
                      if not p.name.endswith((".dist-info", ".pth")) and p.name not in
                      ("__pycache__", "_distutils_hack", "pip", "setuptools", "pkg_resources")})

        def probe(code: str) -> subprocess.CompletedProcess[str]:
            # cwd=tmp: nothing of the repo checkout may leak onto sys.path
            return subprocess.run([str(py), "-c", code], cwd=tmp, capture_output=True,
                                  text=True, env={"PATH": str(py.parent)})

        torch = probe("import torch")
        # each run a fresh interpreter: the import time a CI job pays, with warm file caches
        runs = [probe("import sys, time; t = time.perf_counter(); from micheck import Client; "
                      "print(time.perf_counter() - t, Client.__module__, sorted({m.split('.')[0] "
                      "for m in sys.modules} & {'torch', 'fastapi', 'numpy'}))")
                for _ in range(repeat)]
        times = [float(r.stdout.split()[0]) for r in runs if r.returncode == 0]
        total_mib = _du_mib(site)
    return {"site_packages_mib": total_mib, "added_mib": round(total_mib - before_mib, 1),
            "install_s": round(install_s, 1), "distributions": added,
            "top_level": top, "import_torch_fails": torch.returncode != 0,
            "client_import_ok": len(times) == repeat,
            "client_import": (runs[0].stdout or runs[0].stderr[-300:]).strip(),
            "client_import_ms": {"first": round(times[0] * 1000, 1),
                                 "median": round(statistics.median(times) * 1000, 1)}
            if times else None}
