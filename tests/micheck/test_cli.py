"""The micheck dispatcher: a missing optional package is one line naming the extra."""

import sys

import pytest

from micheck.cli import EXIT_USAGE, main


def test_a_missing_extra_is_one_line_not_a_traceback(monkeypatch, capsys):
    # the client-only install has the service package but not uvicorn
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` fail
    assert main(["serve", "--port", "0"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err == "micheck serve: needs uvicorn (pip install 'micheck[service]')"


def test_other_import_errors_are_not_swallowed(monkeypatch):
    import micheck.cli as cli

    def broken(_args):
        import not_a_micheck_dependency  # noqa: F401

    parser = cli.build_parser()
    args = parser.parse_args(["status", "x"])
    args.func = broken
    monkeypatch.setattr(cli, "build_parser", lambda: type("P", (), {
        "parse_args": lambda self, argv: args})())
    with pytest.raises(ModuleNotFoundError):
        main(["status", "x"])
