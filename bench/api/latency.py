"""Submit and status latency over loopback: --requests POSTs of distinct tiny
submissions at --rate (open loop), then sequential GETs, plain and conditional (304),
against an API process with Redis and SQLite and no worker."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.api.common import WARMUP, body, summary, supervised, timed


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


def measure_get(url: str, token: str, ids: list[str], repeat: int = 200) -> dict[str, Any]:
    """Sequential GETs (one keep-alive connection): plain, then conditional answering 304."""
    with httpx.Client(base_url=url, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as c:
        plain = [timed(c, f"/v1/evaluations/{ids[k % len(ids)]}") for k in range(repeat)]
        etag = {"If-None-Match": plain[0][1].headers["ETag"]}
        cond = [timed(c, f"/v1/evaluations/{ids[0]}", headers=etag) for _ in range(repeat)]
    codes = Counter(str(r.status_code) for _, r in plain + cond)
    return {"get": summary([t for t, _ in plain]), "get_304": summary([t for t, _ in cond]),
            "status_counts": dict(sorted(codes.items()))}


def bench_submit(n: int, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="micheck-bench-") as tmp:
        # no worker, so every submission stays queued: lift the per-token queued cap (429)
        stack = supervised(Path(tmp) / "var", {"MICHECK_MAX_QUEUED_PER_TOKEN": str(n + 100)})
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
