"""`micheck up`: the whole service on one machine, without root, supervised.

SQLite and an embedded redis-server under the var dir, the API on 127.0.0.1 and one CPU
worker, each its own process in its own session. `up` is their supervisor:

- a child that dies is restarted alone, with exponential backoff (0.5 s doubling to 30 s;
  reset once it has run 30 s); the others keep going. While Redis or the worker is down
  the API still serves reads and takes submissions into the database, and /readyz says
  503 naming the part that is down. A dead worker's running evaluation is handed back to
  the queue at once (its job process died with it: PR_SET_PDEATHSIG).
- `up` holds var_dir/up.lock (flock, plus its pid and start time, and every child's): a
  second `up` on the same var dir refuses to start while the first lives. When `up` dies
  (SIGKILL) the kernel stops its parts (PR_SET_PDEATHSIG: SIGTERM to the API and Redis,
  SIGKILL to the worker, whose job dies with it), and the next `up` stops whatever is
  still there and hands back the evaluations the dead workers were running.
- `up` waits for *its own* API: /healthz must echo this run's random instance id and the
  child must be alive, so an orphaned API on the same port is never taken for ready.
- SIGTERM, SIGINT or SIGHUP (to `up` or to its whole process group: the children are in
  their own sessions and only hear `up`) stop the worker (its running evaluation goes back
  to the queue), then the API, then Redis (which saves), and reap any adopted orphan
  (`up` is a child subreaper): nothing is left running and nothing stored is lost.

With --demo it submits a spec over HTTP, waits, prints the ratios and shuts down.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from micheck import processes
from micheck.errors import MicheckError
from micheck.settings import Settings
from micheck.up.lock import UpLock
from micheck.up.supervisor import Supervisor, _say, free_port

__all__ = ["Supervisor", "UpLock", "free_port", "register", "run_up"]
DEMO_SPEC = Path("examples") / "demo.yaml"  # relative to the current directory, else the repo


def demo_spec() -> Path:
    here = Path.cwd() / DEMO_SPEC
    return here if here.is_file() else Path(__file__).resolve().parents[2] / DEMO_SPEC


def _demo(stack: Supervisor, token: str, spec_path: Path, timeout: float) -> int:
    """Submit the demo spec over HTTP with the Python client, wait, print the ratios."""
    from micheck.clients.client import Client
    from micheck.render.table import ProgressLine, ratio_table
    from micheck.spec import load_spec

    request = load_spec(spec_path)
    started = time.monotonic()
    bar = ProgressLine(stream=sys.stdout)
    with Client(stack.url, token) as client:
        view = client.submit(request)
        print(f"submitted {spec_path.name} as evaluation {view.id}", flush=True)
        view = client.wait(view.id, timeout, poll=1.0, max_poll=2.0, progress=lambda v: bar.update(
            v.progress.steps_done, v.progress.steps_total, f"{v.status.value}:"))
        if view.status.value != "succeeded":
            err = view.error
            raise MicheckError(f"evaluation {view.id} {view.status.value}: "
                               f"{err.code if err else ''}: {err.message if err else ''}")
        result = client.results(view.id)
    print()
    print(ratio_table(result))
    print(f"demo wall time: {time.monotonic() - started:.0f} s from submission to verdict "
          f"({result.provenance.wall_seconds:.0f} s of training and evaluation)")
    print(f"stored in: {stack.settings.database_url} (evaluation {view.id})")
    print(f"while a stack runs (`micheck up --var-dir {stack.var_dir}`): "
          f"GET /v1/evaluations/{view.id}/results with the token in {stack.var_dir / 'token'}")
    return 0


def api_workers(asked: int | None, settings: Settings) -> int:
    """--api-workers, else MICHECK_API_WORKERS, else min(4, the CPU cores this process may
    use): one event loop per core keeps a request's CPU off the others' queues."""
    if asked:
        return asked
    if settings.api_workers:
        return settings.api_workers
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="API + embedded Redis + SQLite + one CPU worker, on this "
                                  "machine, no root, supervised")
    p.add_argument("--port", type=int, help="API port (default: a free one)")
    p.add_argument("--var-dir", help="where the database and Redis files go (default ./var)")
    p.add_argument("--api-workers", type=int, default=None,
                   help="API processes (default MICHECK_API_WORKERS, else min(4, CPU cores))")
    p.add_argument("--demo", action="store_true",
                   help="submit examples/demo.yaml, print its ratios, then shut down")
    p.add_argument("--spec", help="with --demo: submit this spec instead")
    p.add_argument("--timeout", type=float, default=3600, help="--demo: seconds to wait")
    p.set_defaults(func=run_up)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_up(args: argparse.Namespace) -> int:
    settings = Settings()
    var_dir = Path(args.var_dir) if args.var_dir else settings.var_dir
    state = {"phase": "starting", "signal": 0}

    def _on_signal(signum: int, _frame: Any) -> None:
        first = not state["signal"]
        state["signal"] = state["signal"] or signum
        # starting or in the demo: unwind at once; supervising: the loop sees the flag;
        # stopping: already on the way out, a repeat changes nothing
        if first and state["phase"] in ("starting", "demo"):
            raise KeyboardInterrupt

    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_signal)
    processes.become_subreaper()
    stack = None
    try:
        stack = Supervisor(var_dir, port=args.port, adopt_orphans=True,
                           redis_url=settings.redis_url
                           if settings.redis_url not in ("", "embedded") else None)
        token = stack.token()
        token_file = stack.var_dir / "token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        stack.start_api(workers=api_workers(args.api_workers, settings))
        stack.start_worker()
        stack.wait_ready()
        print(f"micheck is up: API {stack.url} (docs {stack.url}/docs), one CPU worker, "
              f"database {stack.settings.database_url}, Redis {stack.redis_url}; "
              f"admin token in {token_file}; logs in {stack.log_dir}", flush=True)
        print(f"export MICHECK_URL={stack.url} MICHECK_TOKEN={token}", flush=True)
        if args.demo:
            state["phase"] = "demo"
            return _demo(stack, token, Path(args.spec) if args.spec else demo_spec(), args.timeout)
        print("Ctrl-C stops everything.", flush=True)
        state["phase"] = "supervising"
        while not state["signal"]:
            stack.supervise_once()
            time.sleep(0.2)
        return 0
    except KeyboardInterrupt:
        return 130 if args.demo else 0  # an interrupted demo did not succeed
    finally:
        state["phase"] = "stopping"
        if stack is not None:
            _say("shutting down ...")
            stack.stop()
            _say("stopped")
