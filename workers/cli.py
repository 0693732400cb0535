"""Worker subcommands of `micheck`: run (an evaluation in-process, no service) and worker."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from micheck.render.table import ProgressLine, ratio_table
from micheck.spec import load_spec
from micheck.verdicts import INCONCLUSIVE_POLICIES, exit_code


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an evaluation in-process (no service) and print ratios")
    p.add_argument("spec", help="evaluation spec, YAML or JSON")
    p.add_argument("--out", type=Path, help="write the full result (JSON) here")
    p.add_argument("--device", help="cuda, cuda:N or cpu (default: CUDA when present)")
    p.add_argument("--sequential", action="store_true",
                   help="train critics one after another instead of batched (for comparison)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--inconclusive", choices=INCONCLUSIVE_POLICIES, default="exit4",
                   help="exit code of an inconclusive verdict: 4 (default), or as a pass or "
                        "a fail")
    p.set_defaults(func=run)

    p = sub.add_parser("worker", help="run an evaluation worker (RQ SpawnWorker)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu for the CPU queue, "
                                    "else cuda:0 of CUDA_VISIBLE_DEVICES)")
    p.add_argument("--queue", action="append",
                   help="queue(s) to serve, in priority order (repeat or comma-separate; "
                        "default: the GPU queue)")
    p.add_argument("--name", help="worker name shown at /v1/workers (default host.device.pid)")
    p.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    p.set_defaults(func=worker)


def run(args: argparse.Namespace) -> int:
    request = load_spec(args.spec)  # SpecError -> exit 2 before torch is imported
    from micheck.workers.engine import evaluate  # torch is heavy: import only to run

    bar = None if args.quiet else ProgressLine()
    result = evaluate(
        request, device=args.device, batched=not args.sequential,
        progress=None if bar is None else (lambda p: bar.update(p.steps_done, p.steps_total,
                                                                p.current or "")))
    print(ratio_table(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(result.model_dump_json(indent=2))
        print(f"results written to {args.out}", file=sys.stderr)
    return exit_code(result.verdict, args.inconclusive)


def worker(args: argparse.Namespace) -> int:
    from micheck.workers.worker import run_worker

    from micheck.settings import Settings, configure_logging

    settings = Settings()
    configure_logging(settings)
    queues = [q for item in args.queue or [] for q in item.split(",") if q] or None
    run_worker(settings, device=args.device, queues=queues, name=args.name, burst=args.burst)
    return 0
