"""`micheck run SPEC`: an evaluation in-process, no service."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from micheck.render import ProgressLine, ratio_table
from micheck.spec import load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an evaluation in-process (no service) and print ratios")
    p.add_argument("spec", help="evaluation spec, YAML or JSON")
    p.add_argument("--out", type=Path, help="write the full result (JSON) here")
    p.add_argument("--device", help="cuda, cuda:N or cpu (default: CUDA when present)")
    p.add_argument("--sequential", action="store_true",
                   help="train critics one after another instead of batched (for comparison)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    request = load_spec(args.spec)  # SpecError -> exit 2 before torch is imported
    from workers.engine import evaluate  # torch is heavy: import only to run

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
    return 0 if result.passed else 1
