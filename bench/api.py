"""python -m bench.api [--rate R] [--requests N] [--out DIR] [--client-size] [--report]
                      [--load [--rates 20,50,100,200] [--seconds S]] [--profile] [--inprocess]

The service's own costs, not the engine's: submit and status latency over loopback, the
base (client) install's footprint, and the report page's render time. By default only the
latency part runs; --client-size / --report run those parts instead, --all runs all three.
--load: p50/p99 of POST and of GET, each open loop at every rate of --rates, against
`micheck up`'s parts (API process, embedded Redis, SQLite) while a worker trains (busy).
--profile: where a submission's time goes: the API in this process under cProfile (the
event loop and every thread-pool thread), fed by a load generator in another process.
--inprocess: --requests sequential POSTs, then GETs, through the ASGI app in this process
(no server, one request in flight): ms of wall and CPU per request, and a profile.
Each part merges its figures into OUT/api.json (submit figures keyed by rate).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
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


@dataclass
class LoadRun:
    latencies: list[float]
    statuses: list[int]
    wall_s: float


def open_loop(url: str, token: str, n: int, rate: float, method: str,
              path: Any, body: Any = None) -> LoadRun:
    """n requests at a fixed open-loop rate (request i leaves at t0 + i/rate whatever the
    earlier ones did); `path(i)` and `body(i)` give each one's target and JSON body."""

    async def go() -> tuple[list[tuple[float, int]], float]:
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits,
                                     headers={"Authorization": f"Bearer {token}"}) as c:
            t0 = time.perf_counter() + 0.05

            async def one(i: int) -> tuple[float, int]:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
                start = time.perf_counter()
                try:
                    r = await c.request(method, path(i), json=body(i) if body else None)
                except httpx.HTTPError:
                    return time.perf_counter() - start, 0
                return time.perf_counter() - start, r.status_code

            res = await asyncio.gather(*(one(i) for i in range(n)))
            return res, time.perf_counter() - t0

    res, wall = asyncio.run(go())
    return LoadRun([x for x, _ in res], [c for _, c in res], wall)


def _load_summary(run: LoadRun, rate: float) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in run.latencies)
    return {"rate_per_s": rate, "n": len(ms), "achieved_per_s": round(len(ms) / run.wall_s, 1),
            "p50_ms": round(pct(ms, 50), 1), "p99_ms": round(pct(ms, 99), 1),
            "max_ms": round(ms[-1], 1),
            "statuses": dict(sorted(Counter(str(c) for c in run.statuses).items()))}


# a job that keeps the worker training for the whole load run (canceled at the end)
BUSY_SPEC: dict[str, Any] = {**SPEC, "seeds": [10**6], "estimator": {
    **SPEC["estimator"], "train": {"batch_size": 64, "steps": 200_000, "eval_samples": 64}}}


def bench_load(rates: list[float], seconds: float) -> dict[str, Any]:
    """POST then GET at each rate, open loop, with the worker busy training."""
    n_max = int(max(rates) * seconds) * 2 + 100
    with tempfile.TemporaryDirectory(prefix="micheck-load-") as tmp:
        stack = _stack(Path(tmp) / "var", {"MICHECK_MAX_QUEUED_PER_TOKEN": str(n_max),
                                           "MICHECK_TORCH_THREADS": "1"})
        try:
            stack.start_api()
            stack.start_worker()
            token = stack.token("bench")
            with httpx.Client(base_url=stack.url, timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as c:
                busy = c.post("/v1/evaluations", json=BUSY_SPEC).json()["id"]
                t0 = time.perf_counter()
                while c.get(f"/v1/evaluations/{busy}").json()["progress"]["steps_done"] == 0:
                    if time.perf_counter() - t0 > 300:
                        raise TimeoutError("the busy job did not start training in 300 s")
                    time.sleep(0.5)
            # warm-up: lazy imports, connection set-up, first-query plans
            open_loop(stack.url, token, 20, 20, "POST", lambda i: "/v1/evaluations",
                      lambda i: body(n_max + i))
            out: dict[str, Any] = {"busy_worker": True, "seconds_per_rate": seconds}
            seed = 0
            for rate in rates:
                n = int(rate * seconds)
                first = seed
                post = open_loop(stack.url, token, n, rate, "POST",
                                 lambda i: "/v1/evaluations",
                                 lambda i, first=first: body(first + i))
                seed += n
                with httpx.Client(base_url=stack.url, timeout=60, headers={
                        "Authorization": f"Bearer {token}"}) as c:
                    ids = [v["id"] for v in c.get("/v1/evaluations",
                                                  params={"limit": 200}).json()["items"]]
                get = open_loop(stack.url, token, n, rate, "GET",
                                lambda i, ids=ids: f"/v1/evaluations/{ids[i % len(ids)]}")
                out[f"{rate:g}"] = {"post": _load_summary(post, rate),
                                    "get": _load_summary(get, rate)}
                _show(f"load {rate:g}/s", out[f"{rate:g}"])
            with httpx.Client(base_url=stack.url, timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as c:
                v = c.get(f"/v1/evaluations/{busy}").json()
                out["busy_job_steps_done"] = v["progress"]["steps_done"]
                out["busy_job_status"] = v["status"]
                c.post(f"/v1/evaluations/{busy}/cancel")
        finally:
            stack.stop()
    return out


def _client_process(url: str, token: str, n: int, rate: float) -> subprocess.Popen:
    code = ("import sys; from bench.api import open_loop, body; "
            f"r = open_loop({url!r}, {token!r}, {n}, {rate}, 'POST', "
            "lambda i: '/v1/evaluations', lambda i: body(10**7 + i)); "
            "print(sum(c == 202 for c in r.statuses))")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)


# where a module's time is booked: the first matching fragment of its file path
_BUCKETS = [("sqlalchemy", "SQLAlchemy"), ("sqlite3", "sqlite3 (C)"), ("/rq/", "RQ"),
            ("/redis/", "redis-py"), ("pydantic", "pydantic"), ("fastapi", "FastAPI"),
            ("starlette", "Starlette"), ("uvicorn", "uvicorn"), ("h11", "h11 (HTTP parsing)"),
            ("anyio", "anyio (thread pool)"), ("asyncio", "asyncio"), ("json", "json"),
            ("/micheck/", "micheck"), ("/service/", "micheck"), ("/workers/", "micheck"),
            ("threading", "threading (waits)"), ("logging", "logging"),
            ("prometheus", "prometheus-client")]


def _bucket(filename: str) -> str:
    for frag, name in _BUCKETS:
        if frag in filename:
            return name
    return "other" if filename not in ("~", "") else "builtins (C)"


@contextlib.contextmanager
def profiled_thread_pool(profs: list[cProfile.Profile]) -> Iterator[None]:
    """While inside: every call anyio runs in its thread pool (FastAPI's sync handlers and
    dependencies) is profiled by a per-thread cProfile on that thread's CPU clock, appended
    to `profs` on the thread's first call."""
    import anyio.to_thread

    local = threading.local()
    original = anyio.to_thread.run_sync

    async def run_sync(func: Any, *args: Any, **kw: Any) -> Any:
        def profiled(*a: Any) -> Any:
            prof = getattr(local, "prof", None)
            if prof is None:
                prof = local.prof = cProfile.Profile(time.thread_time)
                profs.append(prof)
            prof.enable()
            try:
                return func(*a)
            finally:
                prof.disable()
        return await original(profiled, *args, **kw)

    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]
    try:
        yield
    finally:
        anyio.to_thread.run_sync = original  # type: ignore[assignment]


def profile_submit(n: int = 600, rate: float = 100.0) -> dict[str, Any]:
    """The API in this process (uvicorn, real SQLite and Redis) under cProfile: the event
    loop thread and, by wrapping anyio's thread pool, every sync handler and dependency.
    Times are CPU time of each thread (time.thread_time), not wall time: waits for the
    SQLite write lock or a socket do not count, so the total is what one request costs the
    CPU. Returns self-time per library, the top C functions and micheck's own functions by
    cumulative time."""
    import pstats

    import uvicorn
    from micheck.service.app import create_app

    from micheck.processes import EmbeddedRedis
    from micheck.settings import Settings

    with tempfile.TemporaryDirectory(prefix="micheck-prof-") as tmp:
        var = Path(tmp) / "var"
        redis = EmbeddedRedis(var)
        redis.start()
        profs: list[cProfile.Profile] = []
        patched = contextlib.ExitStack()
        try:
            settings = Settings(var_dir=var, redis_url=redis.url, queue_routing="cpu",
                                max_queued_per_token=n + 100, log_level="WARNING")
            app = create_app(settings, run_reconciler=False)
            from micheck.service import auth

            token = auth.create_token(app.state.db, "bench")
            port = _free_port()
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                   log_level="warning", access_log=False))
            loop_prof = cProfile.Profile(time.thread_time)

            def serve() -> None:
                loop_prof.enable()
                try:
                    server.run()
                finally:
                    loop_prof.disable()

            patched.enter_context(profiled_thread_pool(profs))
            th = threading.Thread(target=serve, daemon=True)
            th.start()
            while not server.started:
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port}"
            # one request alone first (it creates the share-link secret); the first requests'
            # lazy imports are booked too (< 5% at n=600)
            httpx.post(url + "/v1/evaluations", json=body(10**8), timeout=60,
                       headers={"Authorization": f"Bearer {token}"}).raise_for_status()
            t0 = time.perf_counter()
            client = _client_process(url, token, n, rate)
            accepted = int((client.communicate()[0] or "0").strip() or 0)
            wall = time.perf_counter() - t0
            server.should_exit = True
            th.join(30)
        finally:
            patched.close()
            redis.stop()
    stats = pstats.Stats(loop_prof)
    for p in profs:
        stats.add(p)
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    by_lib: Counter[str] = Counter()
    for (filename, _, _), (_, _, tt, _, _) in raw.items():
        by_lib[_bucket(filename)] += tt
    c_top = sorted(((tt, name) for (fn, _, name), (_, _, tt, _, _) in raw.items()
                    if fn == "~"), reverse=True)[:8]
    top = sorted(((ct, f"{Path(fn).name}:{line} {name}") for (fn, line, name), (_, _, _, ct, _)
                  in raw.items() if "micheck" in fn or "/service/" in fn or "/workers/" in fn),
                 reverse=True)[:12]
    return {"requests": n, "rate_per_s": rate, "accepted": accepted, "wall_s": round(wall, 1),
            "cpu_ms_per_request": round(total / max(1, n) * 1000, 2),
            "self_time_share": {k: round(v / total, 3) for k, v in by_lib.most_common(14)},
            "c_functions_ms_per_request": {name: round(tt / max(1, n) * 1000, 3)
                                           for tt, name in c_top},
            "micheck_cumulative_ms_per_request": {name: round(ct / max(1, n) * 1000, 2)
                                                  for ct, name in top}}


def inprocess_submit(n: int = 300, *, profile: bool = True) -> dict[str, Any]:
    """One request at a time through the ASGI app in this process (httpx ASGITransport:
    no sockets, no server), real SQLite and Redis: n POSTs of distinct tiny submissions,
    then n GETs of their status. Wall and CPU (time.process_time, every thread) per
    request; a POST's background enqueue is inside its time (the transport waits for the
    app to return). With `profile`, a second pass of n POSTs under cProfile gives
    micheck's functions by cumulative time per request. Quiet enough to run while other
    work runs: one process, one request in flight."""
    import pstats

    from micheck.service import auth
    from micheck.service.app import create_app

    from micheck.processes import EmbeddedRedis
    from micheck.settings import Settings

    async def drive(app: Any, token: str, seeds: range, get: bool) -> tuple[float, float,
                                                                            list[str]]:
        transport = httpx.ASGITransport(app=app)
        ids: list[str] = []
        async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                     headers={"Authorization": f"Bearer {token}"}) as c:
            w0, c0 = time.perf_counter(), time.process_time()
            for i in seeds:
                r = await c.post("/v1/evaluations", json=body(i))
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            w1, c1 = time.perf_counter(), time.process_time()
            post = ((w1 - w0) / len(seeds), (c1 - c0) / len(seeds))
            if get:
                for eid in ids:
                    r = await c.get(f"/v1/evaluations/{eid}")
                    assert r.status_code == 200, r.text
                w2, c2 = time.perf_counter(), time.process_time()
                ids = [f"{(w2 - w1) / len(ids) * 1000:.2f}", f"{(c2 - c1) / len(ids) * 1000:.2f}"]
        return post[0], post[1], ids

    with tempfile.TemporaryDirectory(prefix="micheck-inproc-") as tmp:
        var = Path(tmp) / "var"
        redis = EmbeddedRedis(var)
        redis.start()
        try:
            settings = Settings(var_dir=var, redis_url=redis.url, queue_routing="cpu",
                                max_queued_per_token=3 * n + 100, max_token_gmac=1e12,
                                log_level="WARNING")
            app = create_app(settings, run_reconciler=False)
            token = auth.create_token(app.state.db, "bench")
            asyncio.run(drive(app, token, range(10**8, 10**8 + WARMUP), False))  # lazy imports
            wall, cpu, get = asyncio.run(drive(app, token, range(n), True))
            out: dict[str, Any] = {
                "requests": n, "post_wall_ms": round(wall * 1000, 2),
                "post_cpu_ms": round(cpu * 1000, 2), "get_wall_ms": float(get[0]),
                "get_cpu_ms": float(get[1])}
            if profile:


                # CPU time of each thread: waits (the loop for the pool, a lock) do not count
                profs = [cProfile.Profile(time.thread_time)]  # the loop; then each pool thread
                with profiled_thread_pool(profs):
                    profs[0].enable()
                    asyncio.run(drive(app, token, range(n, 2 * n), False))
                    profs[0].disable()
                stats = pstats.Stats(profs[0])
                for extra in profs[1:]:
                    stats.add(extra)
                raw = stats.stats  # type: ignore[attr-defined]
                top = sorted(((ct, f"{Path(fn).name}:{line} {name}")
                              for (fn, line, name), (_, _, _, ct, _) in raw.items()
                              if ("micheck" in fn or "/service/" in fn) and "bench" not in fn),
                             reverse=True)[:25]
                out["profiled_cumulative_ms_per_post"] = {name: round(ct / n * 1000, 2)
                                                          for ct, name in top}
                by_lib: Counter[str] = Counter()
                for (filename, _, _), (_, _, tt, _, _) in raw.items():
                    by_lib[_bucket(filename) if "/httpx/" not in filename else "httpx (client)"
                           ] += tt
                total = sum(by_lib.values())
                out["profiled_self_time_share"] = {k: round(v / total, 3)
                                                   for k, v in by_lib.most_common(12)}
            app.state.db.dispose()
        finally:
            redis.stop()
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


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
    from micheck.up import Supervisor  # the service extra: only the stack parts need it

    return Supervisor(var_dir, env={"MICHECK_LOG_LEVEL": "WARNING", **(env or {})})


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
    if a.load:
        rates = [float(x) for x in a.rates.split(",") if x.strip()]
        res = bench_load(rates, a.seconds)
        _save(a.out, ("load",), res)
    if a.profile:
        res = profile_submit()
        _show("profile: POST /v1/evaluations at 100/s, API under cProfile", res)
        _save(a.out, ("profile",), res)
    if a.inprocess:
        res = inprocess_submit(a.requests)
        _show(f"in-process: {a.requests} sequential POSTs then GETs through the ASGI app", res)
        _save(a.out, ("inprocess",), res)
    if a.load or a.profile or a.inprocess:
        print(f"written {a.out / 'api.json'}")
        return
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
    p.add_argument("--load", action="store_true", help="POST and GET p50/p99 at each of "
                   "--rates with the worker busy")
    p.add_argument("--rates", default="20,50,100,200", help="--load: requests per second")
    p.add_argument("--seconds", type=float, default=5.0, help="--load: seconds per rate")
    p.add_argument("--profile", action="store_true", help="where a POST's time goes (cProfile)")
    p.add_argument("--inprocess", action="store_true", help="--requests sequential POSTs and "
                   "GETs through the ASGI app in this process: ms per request, and a profile")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(p)
    p.add_argument("--out", type=Path, default=OUT, help=f"results dir (default {OUT})")
    run(p.parse_args(argv))


if __name__ == "__main__":
    main()
