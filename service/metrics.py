"""Prometheus metrics, one registry per app (so tests can build many apps)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("micheck.metrics")


class _StateCollector(Collector):
    """Reads evaluation counts and queue lengths at scrape time (the DB is the truth)."""

    def __init__(self, statuses: Callable[[], dict[str, int]],
                 queues: Callable[[], dict[str, int]]):
        self._statuses, self._queues = statuses, queues

    def collect(self) -> Iterable[GaugeMetricFamily]:
        ev = GaugeMetricFamily("micheck_evaluations", "evaluations by status", labels=["status"])
        q = GaugeMetricFamily("micheck_queue_length", "RQ jobs waiting", labels=["queue"])
        try:
            for status, n in self._statuses().items():
                ev.add_metric([status], n)
            for name, n in self._queues().items():
                q.add_metric([name], n)
        except Exception as exc:  # a scrape must not fail because Redis is down
            log.warning("metrics: %s", exc)
        yield ev
        yield q


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.submissions = Counter("micheck_submissions", "POST /v1/evaluations by outcome",
                                   ["outcome"], registry=self.registry)
        self.shed = Counter("micheck_shed", "requests answered 503/429 at once, over the "
                            "in-flight bound (service/shed.py)", ["status"],
                            registry=self.registry)
        self.latency = Histogram("micheck_http_request_duration_seconds", "request latency",
                                 ["method", "route", "status"], registry=self.registry,
                                 buckets=(.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))

    def watch(self, statuses: Callable[[], dict[str, int]],
              queues: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_StateCollector(statuses, queues))
