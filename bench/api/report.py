"""--report: the report page's render time, and the plots it links to, of a finished
tiny evaluation."""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.api.common import SPEC, supervised, timed


def bench_report(repeat: int = 10, timeout: float = 600) -> dict[str, Any]:
    """Render time of a finished evaluation's report page and of the plots it links to."""
    with tempfile.TemporaryDirectory(prefix="micheck-report-") as tmp:
        stack = supervised(Path(tmp) / "var")
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
                first, r = timed(c, page)
                r.raise_for_status()
                rest = [timed(c, page)[0] for _ in range(repeat)]
                plots: dict[str, Any] = {}
                for src in re.findall(r'<img src="([^"]+\.png)"', r.text):
                    url = r.url.join(src)
                    p_first, p = timed(c, str(url))
                    p.raise_for_status()
                    again = [timed(c, str(url))[0] for _ in range(repeat)]
                    plots[src] = {"first_ms": round(p_first * 1000, 1), "bytes": len(p.content),
                                  "cached_median_ms": round(statistics.median(again) * 1000, 2)}
                # embed=true draws every plot into the page itself
                emb = [timed(c, page, params={"embed": "true"})[0] for _ in range(3)]
        finally:
            stack.stop()
    return {"evaluation_done_s": round(done_s, 1), "report_bytes": len(r.content),
            "report_first_ms": round(first * 1000, 1),
            "report_median_ms": round(statistics.median(rest) * 1000, 2),
            "report_embed_median_ms": round(statistics.median(emb) * 1000, 1), "plots": plots}
