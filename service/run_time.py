"""The budget in time: a request's estimated run time on the device that will run it.

The queue's device is its slowest live worker that measured itself (the job may land on
any of them; RQ does not choose), or, while none has, the settings' assumed speed for
that queue (micheck.queue.assumed_speed). The estimate (micheck.budget.run_seconds) is
refused over the operator's per-request limit for that kind of device
(MICHECK_MAX_REQUEST_S_CPU, default 2 h; MICHECK_MAX_REQUEST_S_GPU) with a 422 that says
the estimate, the limit, the factor between them and what to change; the job timeout is
derived from the same estimate.

The live workers' measurements are read at most once per plugin_reports_ttl_s per
database (as the plug-in reports are: a query per submission was a quarter of its CPU).
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable
from datetime import timedelta

from micheck.service.problems import ProblemError

from micheck import budget
from micheck.budget import Speed
from micheck.contract import Cost, EvaluationRequest
from micheck.queue import assumed_speed
from micheck.settings import Settings
from micheck.storage import store
from micheck.storage.db import Database

_recent: weakref.WeakKeyDictionary[Database, tuple[float, list]] = weakref.WeakKeyDictionary()


def _measured(db: Database, settings: Settings) -> list[tuple[str, str, str, float, float]]:
    now = time.monotonic()
    hit = _recent.get(db)
    if hit is not None and now - hit[0] < settings.plugin_reports_ttl_s:
        return hit[1]
    with db.session() as s:
        rows = store.live_speeds(s, timedelta(seconds=settings.stale_after_s))
    _recent[db] = (now, rows)
    return rows


def queue_speed(db: Database, settings: Settings, queue: str) -> Speed:
    """The slowest measured live worker serving `queue`, else the queue's assumed speed."""
    speeds = [Speed(device, gmac, overhead, f"worker {name}")
              for name, device, queues, gmac, overhead in _measured(db, settings)
              if queue in queues.split(",") and gmac > 0]
    if not speeds:
        return assumed_speed(settings, queue)
    return min(speeds, key=lambda sp: (sp.gmac_per_s, -sp.step_overhead_s))


def limit_s(settings: Settings, speed: Speed) -> tuple[float, str]:
    """The per-request limit on this kind of device, and its setting's name."""
    if speed.kind == "cpu":
        return settings.max_request_s_cpu, "MICHECK_MAX_REQUEST_S_CPU"
    return settings.max_request_s_gpu, "MICHECK_MAX_REQUEST_S_GPU"


def duration(seconds: float) -> str:
    """3 s, 12 min, 68 h, 9 days: two significant figures at most."""
    for unit, size, above in (("days", 86400.0, 100 * 3600.0), ("h", 3600.0, 2 * 3600.0),
                              ("min", 60.0, 120.0)):
        if seconds >= above:
            return f"{float(f'{seconds / size:.2g}'):g} {unit}"
    return f"{float(f'{seconds:.2g}'):g} s"


def _fits(request: EvaluationRequest, speed: Speed, limit: float, field: str,
          value: object) -> bool:
    """Whether the request with `field` (dotted) set to `value` is valid and fits."""
    data = request.model_dump(mode="json")
    node = data
    *path, last = field.split(".")
    for key in path:
        node = node[key]
    node[last] = value
    try:
        changed = EvaluationRequest.model_validate(data)
    except ValueError:
        return False
    return budget.run_seconds(budget.estimate(changed), speed) <= limit


def _largest(request: EvaluationRequest, speed: Speed, limit: float, field: str, n: int,
             value: Callable[[int], object]) -> object | None:
    """The largest of value(0) < ... < value(n - 1) that fits (bisection: the estimate
    grows with each of these fields), or None."""
    if n <= 0 or not _fits(request, speed, limit, field, value(0)):
        return None
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(request, speed, limit, field, value(mid)):
            lo = mid
        else:
            hi = mid - 1
    return value(lo)


def suggestions(request: EvaluationRequest, speed: Speed, limit: float
                ) -> list[tuple[str, object]]:
    """(field, value): changes of one field each that bring the estimate under the limit."""
    out: list[tuple[str, object]] = []
    train, critic = request.estimator.train, request.estimator.critic
    found = _largest(request, speed, limit, "estimator.train.steps", train.steps - 1,
                     lambda i: i + 1)
    if found is not None:
        out.append(("estimator.train.steps", found))
    if request.dataset.is_image and request.estimator.entry.family != "generative":
        found = _largest(request, speed, limit, "estimator.critic.width",
                         round(critic.width * 100) - 1, lambda i: round((i + 1) / 100, 2))
        if found is not None:
            out.append(("estimator.critic.width", found))
    first = max(3, len(request.seeds))
    found = _largest(request, speed, limit, "max_seeds", request.seed_cap - first,
                     lambda i: first + i)
    if found is not None:
        out.append(("max_seeds", found))
    return out


def check(request: EvaluationRequest, cost: Cost, speed: Speed, settings: Settings) -> float:
    """The estimated seconds; 422 when they exceed the limit on the queue's device."""
    seconds = budget.run_seconds(cost, speed)
    limit, env = limit_s(settings, speed)
    if seconds <= limit:
        return seconds
    factor = seconds / limit
    fixes = suggestions(request, speed, limit)
    fix = " or ".join(f"`{field}: {value}`" for field, value in fixes) or \
        "fewer steps, seeds, rows or tests"
    raise ProblemError(
        422, f"estimated about {duration(seconds)} on {speed.device} "
             f"({speed.gmac_per_s:.3g} GMAC/s, {1000 * speed.step_overhead_s:.2g} ms a step: "
             f"{speed.source}), {factor:.{2 if factor < 10 else 0}f}x this server's limit of "
             f"{duration(limit)} per request ({env}); for example {fix}",
        errors=[{"field": fixes[0][0] if fixes else "body",
                 "message": f"about {duration(seconds)}, {factor:.3g}x the limit"}],
        estimate_s=round(seconds, 1), limit_s=limit, factor=round(factor, 2),
        device=speed.device, suggestions={field: value for field, value in fixes})


def with_time(cost: Cost, seconds: float, speed: Speed) -> Cost:
    """The cost as the view reports it: with the estimate and whose speed it used."""
    return cost.model_copy(update={"seconds": round(seconds, 1) if math.isfinite(seconds)
                                   else None,
                                   "device": f"{speed.device} ({speed.source})"})
