"""python -m bench {staircase,mnist,speed,api,gradient,images,league,all} [--quick] ...: see docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from micheck.errors import MicheckError

OUT = Path(__file__).resolve().parent.parent / "docs" / "bench"


def _list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def cmd_staircase(a: argparse.Namespace) -> None:
    from bench import staircase as st

    labels = _list(a.estimators) if a.estimators else (st.QUICK if a.quick else
                                                        [e.label for e in st.ENTRIES])
    unknown = [lab for lab in labels if lab not in st.BY_LABEL]
    if unknown:
        sys.exit(f"unknown estimator label(s) {unknown}; known: {list(st.BY_LABEL)}")
    spb = a.steps_per_block or (150 if a.quick else 4000)
    tail = a.tail or max(2, spb // 4)
    tasks = _list(a.tasks) if a.tasks else (["gaussian"] if a.quick else ["gaussian", "cubic"])
    seeds = list(range(a.seeds))
    histories, times = st.run(a.critic, labels, tasks, spb, seeds, batched=not a.sequential)
    stats = st.summarise(histories, spb, tail)
    rows = st.table_rows(stats)
    tag = a.tag or f"{a.critic}{'_quick' if a.quick else ''}"
    st.write_csv(rows, a.out / f"staircase_{tag}.csv")
    st.plot(histories, spb, a.out / f"staircase_{tag}.png",
            f"{a.critic} critic, {spb} steps per MI level, {len(seeds)} seed(s)")
    meta = {"critic": a.critic, "steps_per_block": spb, "tail": tail, "tasks": tasks,
            "seeds": seeds, "labels": labels, "batched": not a.sequential,
            "seconds": {k: round(v, 1) for k, v in times.items()},
            "threads": torch.get_num_threads()}
    (a.out / f"staircase_{tag}.json").write_text(json.dumps(meta, indent=1))
    print(f"staircase: {a.critic} critic, {spb} steps/block, stats over the last {tail} "
          f"steps of each block, seeds {seeds}; cells are ours (paper, joint critic)")
    print(st.format_table(rows))
    print(f"wall time: {meta['seconds']}; written {a.out}/staircase_{tag}.*")


def cmd_mnist(a: argparse.Namespace) -> None:
    from bench import mnist

    mnist.main(a)


def cmd_speed(a: argparse.Namespace) -> None:
    from bench import speed

    speed.main(a)


def cmd_table3(a: argparse.Namespace) -> None:
    """Table 3 of paper 002 (MNIST transforms) with intervals and verdicts, beside the paper."""
    from bench import table3

    a.estimators = _list(a.table3_estimators) or list(table3.ESTIMATORS)
    a.transforms = _list(a.transforms)
    unknown = [t for t in a.transforms if t not in table3.TRANSFORMS]
    if unknown:
        sys.exit(f"unknown transform(s) {unknown}; known: {list(table3.TRANSFORMS)}")
    table3.main(a)


def cmd_figs(a: argparse.Namespace) -> None:
    """Figs 4-6 of paper 002 (MNIST ratio vs rows t) with intervals and verdicts."""
    from bench import table3

    a.estimators = _list(a.table3_estimators) or list(table3.ESTIMATORS)
    a.rows = [int(x) for x in _list(a.rows)]
    table3.main_figs(a)


def cmd_api(a: argparse.Namespace) -> None:
    from bench import api

    api.run(a)


def cmd_gradient(a: argparse.Namespace) -> None:
    """paper 004 Fig. 1: MI and dI/drho against rho for MINE, MINE-f and MIGE"""
    from bench import gradient

    gradient.main(a)


def cmd_images(a: argparse.Namespace) -> None:
    """same-class MNIST pairs with known MI: estimate vs m H(C) for k classes, m copies"""
    from bench import images

    images.main(a)


def cmd_league(a: argparse.Namespace) -> None:
    """Every built-in estimator on a suite (default cpu): the league table, docs/league.md"""
    from bench import league

    league.main(a)


def cmd_all(a: argparse.Namespace) -> None:
    for name, fn in (("staircase", cmd_staircase), ("mnist", cmd_mnist), ("speed", cmd_speed)):
        t0 = time.perf_counter()
        print(f"==== {name} ====", flush=True)
        fn(a)
        print(f"==== {name}: {time.perf_counter() - t0:.0f} s ====", flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--quick", action="store_true", help="a few minutes on a 2-core CPU")
        sp.add_argument("--out", type=Path, default=OUT, help=f"results dir (default {OUT})")
        sp.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a "
                        "shared 2-core machine, 2 threads stall each other; 0: torch default)")
        sp.add_argument("--tag", default="", help="suffix of the output files")

    def staircase_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--critic", choices=["separable", "joint"], default="separable")
        sp.add_argument("--estimators", default="", help="comma list of labels, e.g. "
                        "'CPC,NWJ,SMILE(tau=1.0),GM(flow)' (default: all; quick: 5)")
        sp.add_argument("--tasks", default="", help="gaussian,cubic (quick: gaussian)")
        sp.add_argument("--steps-per-block", type=int, default=0, help="4000 (quick: 150)")
        sp.add_argument("--tail", type=int, default=0, help="steps per block in the stats "
                        "(default: the last quarter)")
        sp.add_argument("--seeds", type=int, default=1)
        sp.add_argument("--sequential", action="store_true", help="train critics one by one")

    def mnist_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--mnist-estimators", default="", help="comma list: infonce, mine, "
                        "smile5, smileinf, gm (default all; quick: infonce,smileinf)")
        sp.add_argument("--mnist-steps", type=int, default=0, help="critic steps (quick: 15)")
        sp.add_argument("--table3", action="store_true", help="also the Table 3 transforms")

    def speed_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--parts", default="", help="comma list of: peak, gaussian, mnist, "
                        "blocks, growth, memory, profile (default all)")

    for name, fn, adders in (("staircase", cmd_staircase, [staircase_args]),
                             ("mnist", cmd_mnist, [mnist_args]),
                             ("speed", cmd_speed, [speed_args]),
                             ("all", cmd_all, [staircase_args, mnist_args, speed_args])):
        sp = sub.add_parser(name, help=(fn.__doc__ or name))
        common(sp)
        for add in adders:
            add(sp)
        sp.set_defaults(fn=fn)
    for name, fn in (("table3", cmd_table3), ("figs", cmd_figs)):
        sp = sub.add_parser(name, help=fn.__doc__)
        common(sp)
        sp.add_argument("--table3-estimators", default="",
                        help="comma list of: infonce, mine, gm, smile5, smileinf (default all)")
        sp.add_argument("--critic", choices=["separable", "joint"], default="separable")
        sp.add_argument("--width", type=float, default=0.25, help="CNN width (App. B.2: 1)")
        sp.add_argument("--block", type=int, default=0,
                        help="score the pairs within blocks of this many samples (critic."
                             "block: n*b critic passes instead of n^2; the estimators become "
                             "those at batch size b, e.g. InfoNCE's ceiling log b); 0: all "
                             "n^2 pairs")
        sp.add_argument("--steps", type=int, default=1875,
                        help="critic steps (App. B.2: 2 epochs of 60k at batch 64 = 1875)")
        sp.add_argument("--max-steps", type=int, default=1875,
                        help="> --steps: train on until the plateau test passes, up to this")
        sp.add_argument("--seeds", type=int, default=3)
        sp.add_argument("--max-seeds", type=int, default=0,
                        help="> --seeds: the adaptive rule adds seeds (doubling) to what is "
                             "still undecided, up to this many; 0: exactly --seeds")
        sp.add_argument("--budget-s", type=float, default=0,
                        help="start no further estimator after this many seconds (0: none)")
        sp.add_argument("--first-seed", type=int, default=0, help="seeds first .. first + "
                        "seeds - 1 (more seeds for a stored run: see table3.pool)")
        sp.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (App. B.2: 1e-4)")
        sp.add_argument("--eval-samples", type=int, default=0, help="0: the whole test split")
        sp.add_argument("--train-size", type=int, default=0, help="0: all 60k training images")
        sp.add_argument("--docs", type=Path, default=OUT, help="where table3.json/.md go")
        sp.add_argument("--report-only", action="store_true",
                        help="train nothing: write the docs from the results already in --out")
        if name == "table3":
            sp.add_argument("--pool", action="append", default=[], metavar="DIR",
                            help="a results dir of the same spec on other seeds (--first-seed):"
                            " pooled with this one's, per estimator, and rescored")
            sp.add_argument("--transforms", default="", help="comma list of: scaling, "
                            "rotation, translation (default all)")
        if name == "figs":
            sp.add_argument("--rows", default="", help="comma list of t (default "
                            "0,4,...,28 as in Figs 4-6)")
        sp.set_defaults(fn=fn)
    from bench import api  # httpx only: cheap to import for --help

    sp = sub.add_parser("api", help="submit/status latency, client footprint, report render "
                        "time (the service, not the engine)")
    common(sp)
    api.add_args(sp)
    sp.set_defaults(fn=cmd_api)
    from bench import gradient  # torch and micheck.workers, already imported above

    sp = sub.add_parser("gradient", help=cmd_gradient.__doc__)
    common(sp)
    gradient.add_args(sp)
    sp.set_defaults(fn=cmd_gradient)
    from bench import images

    sp = sub.add_parser("images", help=cmd_images.__doc__)
    common(sp)
    images.add_args(sp)
    sp.set_defaults(fn=cmd_images)

    from bench import league

    sp = sub.add_parser("league", help=cmd_league.__doc__)
    common(sp)
    league.add_args(sp)
    sp.set_defaults(fn=cmd_league)

    sp = sub.add_parser("levels", help=cmd_levels.__doc__)
    common(sp)
    sp.add_argument("--reps", type=int, default=20_000, help="draws per edge and side")
    sp.add_argument("--draws", type=int, default=200,
                    help="random runs of the coverage test per interval")
    sp.set_defaults(fn=cmd_levels)

    sp = sub.add_parser("convergence", help=cmd_convergence.__doc__)
    common(sp)
    sp.add_argument("--reps", type=int, default=20_000, help="curves per cell")
    sp.set_defaults(fn=cmd_convergence)
    return p


def cmd_convergence(a: argparse.Namespace) -> None:
    """The convergence test's calibration and operating characteristic (simulated curves)"""
    from bench import convergence

    convergence.main(reps=a.reps, out=a.out)


def cmd_levels(a: argparse.Namespace) -> None:
    """Do verdicts keep their level on skewed, noisy ratios? (simulation, no training)"""
    from bench import levels

    levels.main(reps=a.reps, draws=a.draws, out=a.out)


def main(argv: list[str] | None = None) -> None:
    a = parser().parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    try:
        a.fn(a)
    except MicheckError as exc:  # a missing data set or an invalid spec: one line, no traceback
        sys.exit(f"python -m bench {a.cmd}: {exc}")


if __name__ == "__main__":
    main()
