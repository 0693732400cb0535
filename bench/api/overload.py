"""--overload: shed, don't collapse (issue 19). The service as `micheck up` runs it (its
API processes, embedded Redis, SQLite), with a job training on its worker and another
process loading one core, driven open loop at rising rates: POSTs of distinct tiny
submissions, then GETs of one evaluation's status.

Each rate is measured twice, one after the other: by this bench's generator (httpx,
bench.api.load.open_loop) and by the independent one (bench/openloop.py: standard
library only, its own HTTP client). Both time each request from its *scheduled* send.
Per rate: goodput (2xx answers per second), the status counts (503/429 are shed), p50
and p99 of the 2xx answers, and the load average (1, 5, 15 min) before and after.

The saturating rate is the one whose goodput peaked; the run then offers twice that rate
(when the list does not hold it already) and reports goodput there as a share of the
peak, and the p99 of what was answered. Figures only mean something beside their load
average: this 2-core box is shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.api.common import ROOT, SPEC, body, pct, show, supervised
from bench.api.load import LoadRun, open_loop, start_busy

OPENLOOP = ROOT / "bench" / "openloop.py"
GENERATORS = 4  # this bench's generator processes (httpx): one falls behind at ~100/s here
# another process, loading one core for the whole run (and not a moment longer)
BURNER = ("import signal\nfrom micheck.processes import die_with_parent\n"
          "die_with_parent(signal.SIGKILL)\nwhile True:\n    pass\n")


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _ms(xs: list[float]) -> dict[str, float | None]:
    s = sorted(x * 1000 for x in xs)
    return {"p50": round(pct(s, 50), 1) if s else None, "p99": round(pct(s, 99), 1) if s
            else None, "max": round(s[-1], 1) if s else None}


def summarise(run: LoadRun, rate: float) -> dict[str, Any]:
    """This bench's generator, in the independent one's terms (from the scheduled send)."""
    good = [b for b, c in zip(run.behind, run.statuses, strict=True) if 200 <= c < 300]
    answered = [b for b, c in zip(run.behind, run.statuses, strict=True) if c]
    return {"offered_per_s": rate, "requests": len(run.statuses), "wall_s": round(run.wall_s, 2),
            "achieved_per_s": round(len(answered) / run.wall_s, 1),
            "goodput_per_s": round(len(good) / run.wall_s, 1),
            "statuses": dict(sorted(Counter(str(c) for c in run.statuses).items())),
            "answered_ms": _ms(answered), "2xx_ms": _ms(good)}


def _independent(url: str, token: str, rate: float, seconds: float,
                 post_body: str | None) -> dict[str, Any]:
    args = [sys.executable, str(OPENLOOP), url, "--rate", f"{rate:g}", "--seconds",
            f"{seconds:g}", "--header", f"Authorization: Bearer {token}"]
    if post_body is not None:
        args += ["--method", "POST", "--body", post_body]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds * 10 + 120)
    if out.returncode:
        raise RuntimeError(f"openloop failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def bench_overload(post_rates: list[float], get_rates: list[float], seconds: float,
                   api_workers: int | None = None, independent: bool = True
                   ) -> dict[str, Any]:
    from micheck.settings import Settings
    from micheck.up import api_workers as default_workers

    workers = api_workers or default_workers(None, Settings())
    with tempfile.TemporaryDirectory(prefix="micheck-overload-") as tmp:
        stack = supervised(Path(tmp) / "var", {
            "MICHECK_MAX_QUEUED_PER_TOKEN": "100000000", "MICHECK_MAX_TOKEN_GMAC": "1e15",
            "MICHECK_MAX_REQUEST_S_CPU": "1e9",  # BUSY_SPEC trains for the whole run
            "MICHECK_TORCH_THREADS": "1"})
        burner = None
        try:
            stack.start_api(workers=workers)
            token, busy = start_busy(stack)
            with httpx.Client(base_url=stack.url, timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as c:
                target = c.post("/v1/evaluations", json=body(10**9)).json()["id"]
            burner = subprocess.Popen([sys.executable, "-c", BURNER])
            # warm-up: every API process's lazy imports and first-query plans
            open_loop(stack.url, token, 200, 50, "POST", lambda i: "/v1/evaluations",
                      lambda i: body(2 * 10**9 + i))
            out: dict[str, Any] = {"api_workers": workers, "busy_worker": True,
                                   "burner": "one process spinning on one core",
                                   "seconds_per_rate": seconds, "cores": os.cpu_count(),
                                   "post": {}, "get": {}}
            seed = [0]

            def measure(method: str, rate: float) -> dict[str, Any]:
                n = int(rate * seconds)
                first = seed[0]
                seed[0] += 2 * n
                before = _loadavg()
                if method == "post":
                    run = open_loop(stack.url, token, n, rate, "POST",
                                    lambda i: "/v1/evaluations", lambda i: body(first + i),
                                    procs=GENERATORS)
                else:
                    run = open_loop(stack.url, token, n, rate, "GET",
                                    lambda i: f"/v1/evaluations/{target}", procs=GENERATORS)
                res = {"bench": {**summarise(run, rate), "loadavg_before": before,
                                 "loadavg_after": _loadavg()}}
                if independent:
                    template = json.dumps({**SPEC, "seeds": [0]}).replace(
                        "[0]", f"[{first + n}@I@]")
                    res["openloop"] = _independent(
                        stack.url + ("/v1/evaluations" if method == "post"
                                     else f"/v1/evaluations/{target}"),
                        token, rate, seconds, template if method == "post" else None)
                show(f"overload {method.upper()} {rate:g}/s", res)
                return res

            for method, rates in (("post", post_rates), ("get", get_rates)):
                if not rates:
                    continue
                for rate in rates:
                    out[method][f"{rate:g}"] = measure(method, rate)
                peak_rate = max(rates, key=lambda r: out[method][f"{r:g}"]["bench"][
                    "goodput_per_s"])
                double = 2 * peak_rate
                if f"{double:g}" not in out[method]:
                    out[method][f"{double:g}"] = measure(method, double)
                peak = out[method][f"{peak_rate:g}"]["bench"]["goodput_per_s"]
                at2 = out[method][f"{double:g}"]
                out[f"{method}_verdict"] = {
                    "saturating_per_s": peak_rate, "peak_goodput_per_s": peak,
                    "twice_per_s": double,
                    "goodput_share_at_twice": round(at2["bench"]["goodput_per_s"] / peak, 3),
                    "p99_answered_ms_at_twice": at2["bench"]["answered_ms"]["p99"],
                    "openloop_goodput_share_at_twice": round(
                        at2["openloop"]["goodput_per_s"] / peak, 3) if independent else None,
                    "openloop_p99_answered_ms_at_twice":
                        at2["openloop"]["answered_ms"]["p99"] if independent else None}
            with httpx.Client(base_url=stack.url, timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as c:
                v = c.get(f"/v1/evaluations/{busy}").json()
                out["busy_job_status"] = v["status"]
                out["busy_job_steps_done"] = v["progress"]["steps_done"]
                c.post(f"/v1/evaluations/{busy}/cancel")
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
            stack.stop()
    return out
