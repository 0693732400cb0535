"""The house rules of ARCHITECTURE.md, checked: one installed name, imports flowing one way,
the environment read in one place.

Imports are read from the source with `ast` (function-level imports included), so a rule
breaks here the moment a forbidden import is written, whether or not it runs.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# folder in the repo -> the installed package it becomes (pyproject's package-dir)
PARTS = {"micheck": "micheck", "service": "micheck.service", "workers": "micheck.workers",
         "clients": "micheck.clients"}

# the torch-free protocol: every part imports it, it imports no part and no heavy library
PROTOCOL = {"micheck.contract", "micheck.definitions", "micheck.errors", "micheck.verdicts",
            "micheck.plan", "micheck.spec", "micheck.estimators", "micheck.budget",
            "micheck.scoring", "micheck.convergence", "micheck.compare", "micheck.testkinds",
            "micheck.bands", "micheck.datasets", "micheck.exits", "micheck._version",
            "micheck.suites"}
SHARED = {"micheck.settings", "micheck.storage", "micheck.queue", "micheck.render"}
ENTRY_POINTS = {"micheck", "micheck.cli", "micheck.up", "micheck.up.lock",
                "micheck.up.supervisor"}  # may reach every part, lazily


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PARTS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _typing_only(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:`: imports for annotations only, never run (a registry names the
    contract's types that way, while the contract imports the registry)."""
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _walk(tree: ast.AST):
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(c for c in ast.iter_child_nodes(node) if not _typing_only(c))


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)
    return found


def _home(module: str) -> str:
    """The layer a module belongs to: a part, a shared home, the protocol or an entry point."""
    for prefix in ("micheck.service", "micheck.workers", "micheck.clients", "micheck.storage",
                   "micheck.render", "micheck.estimators", "micheck.contract",
                   "micheck.testkinds", "micheck.datasets"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    return module


def _is(module: str, prefixes: set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


FORBIDDEN: list[tuple[set[str], set[str], str]] = [
    (PROTOCOL, {"torch", "fastapi", "sqlalchemy", "starlette", "rq", "redis", "numpy",
                "micheck.service", "micheck.workers", "micheck.clients", "micheck.storage",
                "micheck.render", "micheck.queue", "micheck.settings"},
     "the protocol imports no heavy library and no part"),
    ({"micheck.workers"}, {"micheck.service", "micheck.clients", "fastapi"},
     "workers do not import the service or the client"),
    ({"micheck.service"}, {"micheck.clients", "micheck.workers", "torch"},
     "the service imports neither the client nor the workers"),
    ({"micheck.clients"}, {"micheck.service", "micheck.workers", "micheck.storage", "torch",
                           "fastapi", "sqlalchemy"},
     "the client imports only the protocol and rendering"),
    (SHARED, {"micheck.service", "micheck.workers", "micheck.clients", "torch", "fastapi"},
     "shared homes import no part"),
]


@pytest.mark.parametrize("sources,targets,rule", FORBIDDEN, ids=[r[2] for r in FORBIDDEN])
def test_forbidden_imports(sources, targets, rule):
    bad = []
    for module, path in MODULES.items():
        if not _is(module, sources) or module in ENTRY_POINTS:
            continue
        for name in _imports(path, module):
            if _is(name, targets) and not _is(name, sources & targets):
                bad.append(f"{module} imports {name}")
    assert not bad, f"{rule}: " + "; ".join(sorted(bad))


def test_no_import_cycles_between_homes():
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        if module in ENTRY_POINTS:
            continue
        src = _home(module)
        for name in _imports(path, module):
            if name in MODULES or any(name.startswith(m + ".") for m in ("micheck",)):
                dst = _home(name if name in MODULES else name.rpartition(".")[0])
                if dst != src and dst in {_home(m) for m in MODULES}:
                    graph.setdefault(src, set()).add(dst)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(h for h in graph if h in reach(h))
    assert not cycles, f"homes on an import cycle: {cycles}"


def test_environment_read_only_in_settings():
    pattern = re.compile(r"os\.environ|os\.getenv|getenv\(")
    allowed = {"micheck.settings"}
    bad = [m for m, p in MODULES.items() if m not in allowed and pattern.search(p.read_text())]
    assert not bad, f"only micheck.settings reads the environment; also: {sorted(bad)}"


def test_one_installed_top_level_name(tmp_path):
    """The wheel the project builds installs exactly one top-level import name."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("micheck-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if ".dist-info/" not in n.split("/")[0] + "/"}
    top = {n for n in top if not n.endswith(".dist-info")}
    assert top == {"micheck"}, top
    for part in ("service/app.py", "workers/engine.py", "clients/client.py",
                 "storage/migrations/versions/0001_initial_schema.py"):
        assert f"micheck/{part}" in names
    meta = importlib.metadata.distribution("micheck")
    assert meta.metadata["Name"] == "micheck"


def test_the_protocol_does_not_reach_back_into_the_package_root():
    """`micheck/__init__` imports the contract; a protocol module that imported it back
    (e.g. for __version__: micheck._version has it) would be a circle through the root."""
    bad = []
    for module, path in MODULES.items():
        if not _is(module, PROTOCOL):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in _walk(tree):
            if isinstance(node, ast.Import) and any(a.name == "micheck" for a in node.names):
                bad.append(f"{module}: import micheck")
            if isinstance(node, ast.ImportFrom) and node.module == "micheck" and any(
                    a.name == "__version__" for a in node.names):
                bad.append(f"{module}: from micheck import __version__")
    assert not bad, bad
