"""--profile: where a submission's time goes. The API in this process under cProfile
(the event loop and every thread-pool thread), fed by a load generator in another
process."""

from __future__ import annotations

import contextlib
import cProfile
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.api.common import ROOT, body, bucket, free_port, profiled_thread_pool
from bench.api.load import open_loop  # noqa: F401 (the generator process imports it)


def _client_process(url: str, token: str, n: int, rate: float) -> subprocess.Popen:
    code = ("import sys; from bench.api import open_loop, body; "
            f"r = open_loop({url!r}, {token!r}, {n}, {rate}, 'POST', "
            "lambda i: '/v1/evaluations', lambda i: body(10**7 + i)); "
            "print(sum(c == 202 for c in r.statuses))")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)


# where a module's time is booked: the first matching fragment of its file path
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
                                max_queued_per_token=n + 100, log_level="WARNING",
                                max_inflight=100_000,  # costs, not shedding
                                max_inflight_per_token=100_000, max_waiting_writes=100_000)
            app = create_app(settings, run_reconciler=False)
            from micheck.service import auth

            token = auth.create_token(app.state.db, "bench")
            port = free_port()
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
        by_lib[bucket(filename)] += tt
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
