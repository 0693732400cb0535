"""python -m bench.api [--rate R] [--requests N] [--out DIR] [--client-size] [--report]
                      [--load [--rates 20,50,100,200] [--seconds S]] [--profile] [--inprocess]

The service's own costs, not the engine's: submit and status latency over loopback, the
base (client) install's footprint, and the report page's render time. By default only the
latency part runs; --client-size / --report run those parts instead, --all runs all three.
--overload: shedding under twice the saturating rate, with an independent generator too.
--load: p50/p99 of POST and of GET, each open loop at every rate of --rates, against
`micheck up`'s parts (API process, embedded Redis, SQLite) while a worker trains (busy).
--profile: where a submission's time goes: the API in this process under cProfile (the
event loop and every thread-pool thread), fed by a load generator in another process.
--inprocess: --requests sequential POSTs, then GETs, through the ASGI app in this process
(no server, one request in flight): ms of wall and CPU per request, and a profile.
Each part merges its figures into OUT/api.json (submit figures keyed by rate).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.api.common import OUT, WARMUP, body, pct, save, show, summary
from bench.api.footprint import client_footprint
from bench.api.inprocess import inprocess_submit
from bench.api.latency import SubmitRun, bench_submit, measure_get, measure_submit
from bench.api.load import BUSY_SPEC, LoadRun, bench_load, load_summary, open_loop
from bench.api.overload import bench_overload
from bench.api.profile import profile_submit
from bench.api.report import bench_report

__all__ = ["BUSY_SPEC", "WARMUP", "LoadRun", "SubmitRun", "bench_load", "bench_report",
           "bench_overload", "bench_submit", "body", "client_footprint", "inprocess_submit", "load_summary",
           "measure_get", "measure_submit", "open_loop", "pct", "profile_submit", "summary"]


def run(a: argparse.Namespace) -> None:
    everything = getattr(a, "all_parts", False)
    if a.load:
        rates = [float(x) for x in a.rates.split(",") if x.strip()]
        res = bench_load(rates, a.seconds)
        save(a.out, ("load",), res)
    if a.overload:
        res = bench_overload([float(x) for x in a.post_rates.split(",") if x.strip()],
                             [float(x) for x in a.get_rates.split(",") if x.strip()],
                             a.seconds, a.api_workers)
        save(a.out, ("overload",), res)
    if a.profile:
        res = profile_submit()
        show("profile: POST /v1/evaluations at 100/s, API under cProfile", res)
        save(a.out, ("profile",), res)
    if a.inprocess:
        res = inprocess_submit(a.requests)
        show(f"in-process: {a.requests} sequential POSTs then GETs through the ASGI app", res)
        save(a.out, ("inprocess",), res)
    if a.load or a.profile or a.inprocess or a.overload:
        print(f"written {a.out / 'api.json'}")
        return
    if everything or not (a.client_size or a.report):
        res = bench_submit(a.requests, a.rate)
        show(f"submit: {a.requests} POSTs at {a.rate:g}/s, then GETs (times in ms)", res)
        save(a.out, ("submit", f"{a.rate:g}"), res)
    if everything or a.client_size:
        res = client_footprint()
        show("client: base install (no extras) in a fresh venv", res)
        save(a.out, ("client",), res)
    if everything or a.report:
        res = bench_report()
        show("report: a finished TINY evaluation's page and plots", res)
        save(a.out, ("report",), res)
    print(f"written {a.out / 'api.json'}")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=float, default=20.0, help="submissions per second (20)")
    p.add_argument("--requests", type=int, default=500, help="submissions (500)")
    p.add_argument("--client-size", action="store_true", help="the base install's footprint")
    p.add_argument("--report", action="store_true", help="report page and plot render time")
    p.add_argument("--all", dest="all_parts", action="store_true", help="all three parts")
    p.add_argument("--load", action="store_true", help="POST and GET p50/p99 at each of "
                   "--rates with the worker busy")
    p.add_argument("--rates", default="20,50,100,200", help="--load: requests per second")
    p.add_argument("--seconds", type=float, default=5.0, help="--load: seconds per rate")
    p.add_argument("--overload", action="store_true", help="shedding: goodput and p99 at "
                   "rising rates up to twice the saturating one, a job running and a core "
                   "loaded, with this bench's generator and bench/openloop.py")
    p.add_argument("--post-rates", default="100,200,300,400", help="--overload: POSTs/s")
    p.add_argument("--get-rates", default="250,500,750,1000", help="--overload: GETs/s")
    p.add_argument("--api-workers", type=int, default=None,
                   help="--overload: API processes (default: micheck up's)")
    p.add_argument("--profile", action="store_true", help="where a POST's time goes (cProfile)")
    p.add_argument("--inprocess", action="store_true", help="--requests sequential POSTs and "
                   "GETs through the ASGI app in this process: ms per request, and a profile")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(p)
    p.add_argument("--out", type=Path, default=OUT, help=f"results dir (default {OUT})")
    run(p.parse_args(argv))
