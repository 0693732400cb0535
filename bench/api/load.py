"""--load: p50/p99 of POST and of GET, each open loop at every rate of --rates, against
`micheck up`'s parts (API process, embedded Redis, SQLite) while a worker trains (busy)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import httpx

from bench.api.common import SPEC, body, pct, show, supervised


@dataclass
class LoadRun:
    latencies: list[float]  # from the actual send
    statuses: list[int]
    wall_s: float
    behind: list[float] = field(default_factory=list)  # from the scheduled send


def open_loop(url: str, token: str, n: int, rate: float, method: str,
              path: Any, body: Any = None, procs: int = 1) -> LoadRun:
    """n requests at a fixed open-loop rate (request i leaves at t0 + i/rate whatever the
    earlier ones did); `path(i)` and `body(i)` give each one's target and JSON body. Each
    is timed from its actual send and from its scheduled one (which counts the
    generator's own lateness too). With ``procs`` > 1 the schedule is dealt to that many
    forked processes (request i to process i % procs, one shared t0): at hundreds of
    requests a second one Python process is the bottleneck, not the server."""
    t0_wall = time.time() + 0.3 + 0.05 * procs
    if procs <= 1:
        rows, end = _slice(url, token, range(n), rate, method, path, body, t0_wall)
    else:
        ctx = multiprocessing.get_context("fork")  # path and body are closures
        queue = ctx.Queue()

        def child(k: int) -> None:
            queue.put(_slice(url, token, range(k, n, procs), rate, method, path, body,
                             t0_wall))

        kids = [ctx.Process(target=child, args=(k,)) for k in range(procs)]
        for kid in kids:
            kid.start()
        parts = [queue.get() for _ in kids]
        for kid in kids:
            kid.join()
        rows = sorted(r for part, _ in parts for r in part)
        end = max(e for _, e in parts)
    return LoadRun([lat for _, lat, _, _ in rows], [c for _, _, _, c in rows],
                   end - t0_wall, [b for _, _, b, _ in rows])


def _slice(url: str, token: str, indices: range, rate: float, method: str, path: Any,
           body: Any, t0_wall: float) -> tuple[list[tuple[int, float, float, int]], float]:
    """(index, from send, from schedule, status) of each request of `indices`, and the
    wall-clock time the last one ended. Keep-alive connections driven by h11 (the
    protocol library uvicorn serves with), not httpx: httpx's per-request cost made the
    generator, not the server, the bottleneck at a few hundred requests a second."""
    host, _, port = url.removeprefix("http://").partition(":")
    auth = ("Authorization", f"Bearer {token}")

    async def go() -> list[tuple[int, float, float, int]]:
        idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, h11.Connection]] = []
        t0 = time.perf_counter() + (t0_wall - time.time())

        async def exchange(i: int) -> int:
            data = json.dumps(body(i)).encode() if body else b""
            if idle:
                reader, writer, conn = idle.pop()
            else:
                reader, writer = await asyncio.open_connection(host, int(port or 80))
                conn = h11.Connection(h11.CLIENT)
            headers = [("Host", host), auth, ("Content-Length", str(len(data)))]
            if body:
                headers.append(("Content-Type", "application/json"))
            writer.write(conn.send(h11.Request(method=method, target=path(i), headers=headers))
                         + conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage()))
            status = 0
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    chunk = await asyncio.wait_for(reader.read(65536), 60)
                    conn.receive_data(chunk)
                    if not chunk:
                        break
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
                idle.append((reader, writer, conn))
            else:
                writer.close()
            return status

        async def one(i: int) -> tuple[int, float, float, int]:
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            start = time.perf_counter()
            try:
                status = await exchange(i)
            except (OSError, asyncio.TimeoutError, h11.ProtocolError):
                status = 0
            end = time.perf_counter()
            return i, end - start, end - due, status

        rows = await asyncio.gather(*(one(i) for i in indices))
        for _, writer, _ in idle:
            writer.close()
        return rows

    rows = asyncio.run(go())
    return rows, time.time()


def load_summary(run: LoadRun, rate: float) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in run.latencies)
    return {"rate_per_s": rate, "n": len(ms), "achieved_per_s": round(len(ms) / run.wall_s, 1),
            "p50_ms": round(pct(ms, 50), 1), "p99_ms": round(pct(ms, 99), 1),
            "max_ms": round(ms[-1], 1),
            "statuses": dict(sorted(Counter(str(c) for c in run.statuses).items()))}


# a job that keeps the worker training for the whole load run (canceled at the end)
BUSY_SPEC: dict[str, Any] = {**SPEC, "seeds": [10**6], "estimator": {
    **SPEC["estimator"], "train": {"batch_size": 64, "steps": 200_000, "eval_samples": 64}}}


def start_busy(stack: Any) -> tuple[str, str]:
    """Start the stack's worker on BUSY_SPEC and wait until it trains; (token, its id)."""
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
    return token, busy


def bench_load(rates: list[float], seconds: float) -> dict[str, Any]:
    """POST then GET at each rate, open loop, with the worker busy training."""
    n_max = int(max(rates) * seconds) * 2 + 100
    with tempfile.TemporaryDirectory(prefix="micheck-load-") as tmp:
        stack = supervised(Path(tmp) / "var", {"MICHECK_MAX_QUEUED_PER_TOKEN": str(n_max),
                                           "MICHECK_TORCH_THREADS": "1",
                                           "MICHECK_MAX_REQUEST_S_CPU": "1e9"})  # BUSY_SPEC
        try:
            stack.start_api()
            token, busy = start_busy(stack)
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
                out[f"{rate:g}"] = {"post": load_summary(post, rate),
                                    "get": load_summary(get, rate)}
                show(f"load {rate:g}/s", out[f"{rate:g}"])
            with httpx.Client(base_url=stack.url, timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as c:
                v = c.get(f"/v1/evaluations/{busy}").json()
                out["busy_job_steps_done"] = v["progress"]["steps_done"]
                out["busy_job_status"] = v["status"]
                c.post(f"/v1/evaluations/{busy}/cancel")
        finally:
            stack.stop()
    return out
