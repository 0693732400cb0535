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


def test_hints_name_the_extra_that_installs_the_package():
    """EXTRA_PACKAGES mirrors pyproject's extras (import names), and a hint names the
    command's own extra first: `micheck worker` without redis asks for micheck[worker]."""
    import re
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from micheck.cli import BASE_PACKAGES, EXTRA_PACKAGES, install_hint

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml")
                            .read_text())["project"]
    import_name = {"pyyaml": "yaml", "psycopg[binary]": "psycopg"}

    def names(reqs: list[str]) -> set[str]:
        out = set()
        for req in reqs:
            dist = re.split(r"[<>=!~;\s]", req, maxsplit=1)[0]
            out.add(import_name.get(dist, dist.replace("-", "_")))
        return out

    assert names(project["dependencies"]) == BASE_PACKAGES
    for extra, packages in EXTRA_PACKAGES.items():
        assert names(project["optional-dependencies"][extra]) - BASE_PACKAGES == packages
    assert install_hint("redis", "worker") == "pip install 'micheck[worker]'"
    assert install_hint("redis", "serve") == "pip install 'micheck[service]'"
    assert install_hint("torch", "up") == "pip install 'micheck[worker]'"
    assert install_hint("matplotlib", "report") == "pip install 'micheck[report]'"
    assert "reinstall micheck" in install_hint("httpx", "submit")
    assert install_hint("not_ours", "submit") is None


def test_worker_without_rq_names_the_worker_extra(monkeypatch, capsys):
    import micheck.cli as cli

    def needs_rq(_args):
        raise ModuleNotFoundError("No module named 'rq'", name="rq")

    args = cli.build_parser().parse_args(["worker", "--burst"])
    args.func = needs_rq
    monkeypatch.setattr(cli, "build_parser", lambda: type("P", (), {
        "parse_args": lambda self, argv: args})())
    assert main(["worker", "--burst"]) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == ("micheck worker: needs rq "
                                               "(pip install 'micheck[worker]')")
