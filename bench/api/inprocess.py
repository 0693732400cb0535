"""--inprocess: --requests sequential POSTs, then GETs, through the ASGI app in this
process (no server, one request in flight): ms of wall and CPU per request, and a
profile."""

from __future__ import annotations

import asyncio
import cProfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.api.common import WARMUP, body, bucket, profiled_thread_pool


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
                    by_lib[bucket(filename) if "/httpx/" not in filename else "httpx (client)"
                           ] += tt
                total = sum(by_lib.values())
                out["profiled_self_time_share"] = {k: round(v / total, 3)
                                                   for k, v in by_lib.most_common(12)}
            app.state.db.dispose()
        finally:
            redis.stop()
    return out
