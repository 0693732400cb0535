"""What the service benchmarks share: the tiny request, percentiles, a stack of real
parts, the results file (docs/bench/api.json), and where a profile books its time."""

from __future__ import annotations

import contextlib
import cProfile
import json
import math
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
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



_BUCKETS = [("sqlalchemy", "SQLAlchemy"), ("sqlite3", "sqlite3 (C)"), ("/rq/", "RQ"),
            ("/redis/", "redis-py"), ("pydantic", "pydantic"), ("fastapi", "FastAPI"),
            ("starlette", "Starlette"), ("uvicorn", "uvicorn"), ("h11", "h11 (HTTP parsing)"),
            ("anyio", "anyio (thread pool)"), ("asyncio", "asyncio"), ("json", "json"),
            ("/micheck/", "micheck"), ("/service/", "micheck"), ("/workers/", "micheck"),
            ("threading", "threading (waits)"), ("logging", "logging"),
            ("prometheus", "prometheus-client")]


def bucket(filename: str) -> str:
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


def free_port() -> int:
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def timed(c: httpx.Client, url: str, **kw: Any) -> tuple[float, httpx.Response]:
    t = time.perf_counter()
    r = c.get(url, **kw)
    return time.perf_counter() - t, r


def supervised(var_dir: Path, env: dict[str, str] | None = None):
    from micheck.up import Supervisor  # the service extra: only the stack parts need it

    return Supervisor(var_dir, env={"MICHECK_LOG_LEVEL": "WARNING", **(env or {})})


def save(out: Path, keys: tuple[str, ...], value: Any) -> None:
    """Merge into out/api.json, so runs at several rates and of several parts add up."""
    path = out / "api.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def show(title: str, res: dict[str, Any]) -> None:
    print(f"== {title}")
    for k, v in res.items():
        print(f"  {k}: {json.dumps(v) if isinstance(v, dict | list) else v}")
