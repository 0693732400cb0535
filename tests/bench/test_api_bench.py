"""bench.api's latency part against a real stack (uvicorn API process, Redis, SQLite), tiny N."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from bench.api import measure_get, measure_submit, pct, summary
from micheck.up import Supervisor
from tests.service.support import redis_server  # noqa: F401 (the fixture)


@pytest.fixture
def stack(tmp_path: Path, redis_server: str) -> Iterator[Supervisor]:  # noqa: F811
    Redis.from_url(redis_server).flushall()
    # latency, not shedding (tests/service/test_shed.py): no bound on a shared, busy box
    st = Supervisor(tmp_path / "var", redis_url=redis_server,
                    env={"MICHECK_MAX_QUEUED_PER_TOKEN": "100", "MICHECK_LOG_LEVEL": "WARNING",
                         "MICHECK_MAX_INFLIGHT": "1000", "MICHECK_MAX_INFLIGHT_PER_TOKEN": "1000",
                         "MICHECK_MAX_WAITING_WRITES": "1000"})
    yield st
    st.stop()


def test_pct_is_nearest_rank() -> None:
    xs = [float(x) for x in range(1, 101)]
    assert (pct(xs, 50), pct(xs, 90), pct(xs, 99), pct(xs, 100)) == (50.0, 90.0, 99.0, 100.0)
    assert pct([3.0], 99) == 3.0


def test_submit_and_get_latency_on_a_real_stack(stack: Supervisor) -> None:
    stack.start_api()
    token = stack.token("bench")
    run = measure_submit(stack.url, token, n=20, rate=50)
    assert run.statuses == [202] * 20
    assert len(set(run.ids)) == 20 and all(run.ids)  # distinct bodies: nothing deduplicated
    assert all(0 < x < 30 and math.isfinite(x) for x in run.latencies)
    # open loop: the answer comes after the scheduled send, so this is never smaller
    assert all(b >= lat - 1e-3 for b, lat in zip(run.behind, run.latencies, strict=True))
    s = summary(run.latencies)
    assert s["n"] == 20 and 0 < s["median_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
    # 20 requests at 50/s take 0.38 s to send; a stalled server would not fit in that
    assert s["median_ms"] < 5000

    gets = measure_get(stack.url, token, run.ids, repeat=20)
    assert gets["status_counts"] == {"200": 20, "304": 20}
    for part in ("get", "get_304"):
        g = gets[part]
        assert 0 < g["median_ms"] <= g["p90_ms"] <= g["p99_ms"] <= g["max_ms"]
        assert math.isfinite(g["max_ms"])


def test_open_loop_post_then_get_summary(stack: Supervisor) -> None:
    from bench.api import body, load_summary, open_loop

    stack.start_api()
    token = stack.token("bench")
    post = open_loop(stack.url, token, 12, 40, "POST", lambda i: "/v1/evaluations",
                     lambda i: body(1000 + i))
    assert post.statuses == [202] * 12 and post.wall_s >= 11 / 40
    s = load_summary(post, 40)
    assert s["n"] == 12 and s["statuses"] == {"202": 12}
    assert 0 < s["p50_ms"] <= s["p99_ms"] <= s["max_ms"] and 0 < s["achieved_per_s"] <= 45
    get = open_loop(stack.url, token, 12, 40, "GET", lambda i: "/v1/evaluations?limit=1")
    assert get.statuses == [200] * 12


def test_profile_books_the_submission_path(tmp_path: Path) -> None:
    from bench.api import profile_submit

    res = profile_submit(n=30, rate=30)
    assert res["accepted"] == 30 and res["cpu_ms_per_request"] > 0
    assert 0.9 <= sum(res["self_time_share"].values()) <= 1.0001  # shares of the whole
    assert any(k.endswith(" create") for k in res["micheck_cumulative_ms_per_request"])


def test_inprocess_cost_per_request() -> None:
    """--inprocess on a tiny N: every POST accepted and every GET answered (it asserts
    both), times positive, and the profile names the submission handler."""
    from bench.api import inprocess_submit

    res = inprocess_submit(8)
    assert res["requests"] == 8
    for key in ("post_wall_ms", "post_cpu_ms", "get_wall_ms", "get_cpu_ms"):
        assert 0 < res[key] < 5000 and math.isfinite(res[key])
    assert any(name.endswith(" create") for name in res["profiled_cumulative_ms_per_post"])
    assert 0.8 < sum(res["profiled_self_time_share"].values()) <= 1.0 + 1e-6  # top 12 libraries
