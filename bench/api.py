"""python -m bench.api [--rate R] [--requests N] [--out DIR] [--client-size] [--report]

The service's own costs, not the engine's: submit and status latency over loopback, the
base (client) install's footprint, and the report page's render time. By default only the
latency part runs; --client-size / --report run those parts instead, --all runs all three.
Each part merges its figures into OUT/api.json (submit figures keyed by rate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "bench"
# the smallest valid request (as tests/service/support.TINY_SPEC): a worker finishes it in seconds
SPEC: dict[str, Any] = {
    "estimator": {"name": "infonce", "critic": {"kind": "separable"},
                  "train": {"batch_size": 16, "steps": 20, "eval_samples": 64}},
    "dataset": {"name": "gaussian", "dim": 2, "mi": 1.0},
    "tests": [{"kind": "ground_truth"}], "seeds": [0]}
WARMUP = 5


def body(i: int) -> dict[str, Any]:
    """Request i: only the seed differs, so each one is a new evaluation (no dedup)."""
    return {**SPEC, "seeds": [i]}


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile: always one of the measured values."""
    s = sorted(xs)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def summary(xs: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in xs]
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 2),
            "p90_ms": round(pct(ms, 90), 2), "p99_ms": round(pct(ms, 99), 2),
            "max_ms": round(max(ms), 2)}


@dataclass
class SubmitRun:
    latencies: list[float]  # from the actual send
    behind: list[float]  # from the scheduled send: includes the client's own lateness
    statuses: list[int]
    ids: list[str]


def measure_submit(url: str, token: str, n: int, rate: float, first_seed: int = 0) -> SubmitRun:
    """POST n distinct evaluations at a fixed open-loop rate: request i leaves at t0 + i/rate
    whether or not earlier ones have answered, so a slow server shows up as latency, not as
    a lower rate."""

    async def go() -> list[tuple[float, float, int, str]]:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits,
                                     headers={"Authorization": f"Bearer {token}"}) as c:
            t0 = time.perf_counter() + 0.05

            async def one(i: int) -> tuple[float, float, int, str]:
                due = t0 + i / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                start = time.perf_counter()
                try:
                    r = await c.post("/v1/evaluations", json=body(first_seed + i))
                except httpx.HTTPError:
                    return time.perf_counter() - start, time.perf_counter() - due, 0, ""
                end = time.perf_counter()
                ok = r.headers.get("content-type", "").endswith("json")
                return end - start, end - due, r.status_code, ok and r.json().get("id") or ""

            return await asyncio.gather(*(one(i) for i in range(n)))

    lat, behind, statuses, ids = zip(*asyncio.run(go()), strict=True)
    return SubmitRun(list(lat), list(behind), list(statuses), list(ids))


def _timed(c: httpx.Client, url: str, **kw: Any) -> tuple[float, httpx.Response]:
    t = time.perf_counter()
    r = c.get(url, **kw)
    return time.perf_counter() - t, r


def measure_get(url: str, token: str, ids: list[str], repeat: int = 200) -> dict[str, Any]:
    """Sequential GETs (one keep-alive connection): plain, then conditional answering 304."""
    with httpx.Client(base_url=url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as c:
        plain = [_timed(c, f"/v1/evaluations/{ids[k % len(ids)]}") for k in range(repeat)]
        etag = {"If-None-Match": plain[0][1].headers["ETag"]}
        cond = [_timed(c, f"/v1/evaluations/{ids[0]}", headers=etag) for _ in range(repeat)]
    codes = Counter(str(r.status_code) for _, r in plain + cond)
    return {"get": summary([t for t, _ in plain]), "get_304": summary([t for t, _ in cond]),
            "status_counts": dict(sorted(codes.items()))}


def _stack(var_dir: Path, env: dict[str, str] | None = None):
    from micheck.up import Stack  # the service extra: only the stack parts need it

    return Stack(var_dir, env={"MICHECK_LOG_LEVEL": "WARNING", **(env or {})})


def bench_submit(n: int, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="micheck-bench-") as tmp:
        # no worker, so every submission stays queued: lift the per-token queued cap (429)
        stack = _stack(Path(tmp) / "var", {"MICHECK_MAX_QUEUED_PER_TOKEN": str(n + 100)})
        try:
            stack.start_api()
            token = stack.token("bench")
            # first requests pay for lazy imports and connection set-up; not what we measure
            measure_submit(stack.url, token, WARMUP, rate, first_seed=n)
            run = measure_submit(stack.url, token, n, rate)
            gets = measure_get(stack.url, token, [i for i in run.ids if i])
        finally:
            stack.stop()
    non_202 = sum(s != 202 for s in run.statuses)
    return {"rate_per_s": rate, "requests": n, "non_202": non_202,
            "distinct_ids": len(set(run.ids)), "submit": summary(run.latencies),
            "submit_from_schedule": summary(run.behind), **gets}


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


def bench_report(repeat: int = 10, timeout: float = 600) -> dict[str, Any]:
    """Render time of a finished evaluation's report page and of the plots it links to."""
    with tempfile.TemporaryDirectory(prefix="micheck-report-") as tmp:
        stack = _stack(Path(tmp) / "var")
        try:
            stack.start_api()
            stack.start_worker()
            with httpx.Client(base_url=stack.url, timeout=120, headers={
                    "Authorization": f"Bearer {stack.token('bench')}"}) as c:
                t0 = time.perf_counter()
                eid = c.post("/v1/evaluations", json=SPEC).json()["id"]
                while (status := c.get(f"/v1/evaluations/{eid}").json()["status"]) in (
                        "queued", "running"):
                    if time.perf_counter() - t0 > timeout:
                        raise TimeoutError(f"evaluation {eid} still {status} after {timeout} s")
                    time.sleep(0.5)
                if status != "succeeded":
                    raise RuntimeError(f"evaluation {eid} {status}")
                done_s = time.perf_counter() - t0
                page = f"/v1/evaluations/{eid}/report"
                first, r = _timed(c, page)
                r.raise_for_status()
                rest = [_timed(c, page)[0] for _ in range(repeat)]
                plots: dict[str, Any] = {}
                for src in re.findall(r'<img src="([^"]+\.png)"', r.text):
                    url = r.url.join(src)
                    p_first, p = _timed(c, str(url))
                    p.raise_for_status()
                    again = [_timed(c, str(url))[0] for _ in range(repeat)]
                    plots[src] = {"first_ms": round(p_first * 1000, 1), "bytes": len(p.content),
                                  "cached_median_ms": round(statistics.median(again) * 1000, 2)}
                # embed=true draws every plot into the page itself
                emb = [_timed(c, page, params={"embed": "true"})[0] for _ in range(3)]
        finally:
            stack.stop()
    return {"evaluation_done_s": round(done_s, 1), "report_bytes": len(r.content),
            "report_first_ms": round(first * 1000, 1),
            "report_median_ms": round(statistics.median(rest) * 1000, 2),
            "report_embed_median_ms": round(statistics.median(emb) * 1000, 1), "plots": plots}


def _save(out: Path, keys: tuple[str, ...], value: Any) -> None:
    """Merge into out/api.json, so runs at several rates and of several parts add up."""
    path = out / "api.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def _show(title: str, res: dict[str, Any]) -> None:
    print(f"== {title}")
    for k, v in res.items():
        print(f"  {k}: {json.dumps(v) if isinstance(v, dict | list) else v}")


def run(a: argparse.Namespace) -> None:
    everything = getattr(a, "all_parts", False)
    if everything or not (a.client_size or a.report):
        res = bench_submit(a.requests, a.rate)
        _show(f"submit: {a.requests} POSTs at {a.rate:g}/s, then GETs (times in ms)", res)
        _save(a.out, ("submit", f"{a.rate:g}"), res)
    if everything or a.client_size:
        res = client_footprint()
        _show("client: base install (no extras) in a fresh venv", res)
        _save(a.out, ("client",), res)
    if everything or a.report:
        res = bench_report()
        _show("report: a finished TINY evaluation's page and plots", res)
        _save(a.out, ("report",), res)
    print(f"written {a.out / 'api.json'}")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=float, default=20.0, help="submissions per second (20)")
    p.add_argument("--requests", type=int, default=500, help="submissions (500)")
    p.add_argument("--client-size", action="store_true", help="the base install's footprint")
    p.add_argument("--report", action="store_true", help="report page and plot render time")
    p.add_argument("--all", dest="all_parts", action="store_true", help="all three parts")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(p)
    p.add_argument("--out", type=Path, default=OUT, help=f"results dir (default {OUT})")
    run(p.parse_args(argv))


if __name__ == "__main__":
    main()
