"""Installed distributions for the plug-in tests, without pip: a real ``*.dist-info``
folder (METADATA + entry_points.txt) in a temporary folder put on ``sys.path``, which
``importlib.metadata`` finds like any installed package.

``example_site`` installs the example plug-in of ``examples/micheck-plugin-example``
(its source on the path, its metadata from its pyproject's entry point);
``broken_site`` adds a distribution whose estimators raise, return NaN, return the
wrong shape, or do not load at all. ``isolated_registry`` puts the estimator registry,
the bounds and the loader's cache back as they were, so a test's plug-ins never leak
into another test (each real process loads its own).
"""

from __future__ import annotations

import contextlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from micheck import estimators
from micheck.estimators import plugins

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "micheck-plugin-example"
EXAMPLE_SRC = EXAMPLE / "src"
EXAMPLE_DIST = ("micheck-plugin-example", "0.1.0")
EXAMPLE_ENTRY_POINTS = {"dv_clipped": "micheck_plugin_example:ESTIMATOR"}

BROKEN_DIST = ("micheck-broken-plugins", "2.0.1")
BROKEN_MODULES = {
    "broken_plugins": '''
        """Entries of estimators whose bounds misbehave (bounds in broken_plugins_bound)."""
        from micheck.estimators import EstimatorEntry

        def _entry(name: str) -> EstimatorEntry:
            return EstimatorEntry(name, "discriminative", "1", f"{name}: broken on purpose",
                                  bound=f"broken_plugins_bound:{name}")

        BAD_RAISES, BAD_NAN, BAD_SHAPE, BAD_FACTORY = (
            _entry(n) for n in ("bad_raises", "bad_nan", "bad_shape", "bad_factory"))
        BAD_BOUND_IMPORT = EstimatorEntry("bad_bound_import", "discriminative", "1", "x",
                                          bound="broken_plugins_nowhere:make")
        NOT_AN_ENTRY = {"name": "bad_object"}
        WRONG_NAME = _entry("something_else")
        DV_TWIN = EstimatorEntry("dv", "discriminative", "9", "a built-in's name",
                                 bound="broken_plugins_bound:bad_nan")
    ''',
    "broken_plugins_bound": '''
        """Bounds that fail in each way a plug-in can fail."""
        import torch

        from micheck.workers.bounds import Bound, dv

        def _bound(name, fn):
            return lambda params, lb: Bound(name, fn, fn)

        def _raises(scores):
            raise RuntimeError("boom in the plug-in")

        bad_raises = _bound("bad_raises", _raises)
        bad_nan = _bound("bad_nan", lambda s: dv(s) * torch.nan)
        bad_shape = _bound("bad_shape", lambda s: s.mean(-1))

        def bad_factory(params, lb):
            raise ValueError("cannot build")
    ''',
    "broken_plugins_import": "raise ImportError('this plug-in needs a package not installed')\n",
}
BROKEN_ENTRY_POINTS = {
    "bad_raises": "broken_plugins:BAD_RAISES", "bad_nan": "broken_plugins:BAD_NAN",
    "bad_shape": "broken_plugins:BAD_SHAPE", "bad_factory": "broken_plugins:BAD_FACTORY",
    "bad_bound_import": "broken_plugins:BAD_BOUND_IMPORT",
    "bad_import": "broken_plugins_import:ESTIMATOR", "bad_object": "broken_plugins:NOT_AN_ENTRY",
    "bad_name": "broken_plugins:WRONG_NAME", "dv": "broken_plugins:DV_TWIN",
}


def write_dist(site: Path, dist: tuple[str, str], entry_points: dict[str, str],
               modules: dict[str, str] | None = None) -> Path:
    """A distribution installed in ``site``: its dist-info and its top-level modules."""
    name, version = dist
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{plugins.GROUP}]\n{lines}")
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(textwrap.dedent(source).lstrip())
    return info


def example_pythonpath(site: Path) -> str:
    """PYTHONPATH for a process that has the example plug-in installed (``site`` must
    hold its dist-info, see :func:`write_example`)."""
    return f"{site}:{EXAMPLE_SRC}"


def write_example(site: Path) -> None:
    write_dist(site, EXAMPLE_DIST, EXAMPLE_ENTRY_POINTS)


def write_broken(site: Path) -> None:
    write_dist(site, BROKEN_DIST, BROKEN_ENTRY_POINTS, BROKEN_MODULES)


@contextlib.contextmanager
def isolated_registry() -> Iterator[None]:
    """Everything registered inside is forgotten on the way out."""
    from micheck.workers import bounds  # torch: only where a test has it
    from micheck.workers import plugins as worker_plugins

    saved = (dict(estimators._ENTRIES), dict(estimators._ALIASES), dict(bounds._BOUNDS),
             dict(worker_plugins._FAILED), set(worker_plugins._READY), plugins._LOADED)
    try:
        yield
    finally:
        estimators._ENTRIES.clear()
        estimators._ENTRIES.update(saved[0])
        estimators._ALIASES.clear()
        estimators._ALIASES.update(saved[1])
        bounds._BOUNDS.clear()
        bounds._BOUNDS.update(saved[2])
        worker_plugins._FAILED.clear()
        worker_plugins._FAILED.update(saved[3])
        worker_plugins._READY.clear()
        worker_plugins._READY.update(saved[4])
        plugins._LOADED = saved[5]
        estimators.set_reported({})


def _site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *writers) -> Iterator[Path]:
    site = tmp_path / "site-packages"
    site.mkdir()
    for write in writers:
        write(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    loaded = set(sys.modules)
    with isolated_registry():
        plugins._LOADED = None
        yield site
    for mod in set(sys.modules) - loaded:  # the plug-ins' modules: imported afresh next time
        if mod.startswith(("micheck_plugin_example", "broken_plugins")):
            del sys.modules[mod]


@pytest.fixture
def example_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from _site(tmp_path, monkeypatch, write_example)


@pytest.fixture
def broken_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from _site(tmp_path, monkeypatch, write_example, write_broken)
