"""CIFAR-10 from a directory in the ``cifar-10-batches-py`` format.

Each batch file is a pickle of a dict with b"data" (uint8 ndarray [N, 3072]: the
1024 red values of a 32x32 image row by row, then green, then blue) and b"labels"
(a list of ints). Nothing ships the data set, so the directory is the operator's
configuration: a named root of $MICHECK_DATA_ROOTS picked by the spec's data_root,
else $MICHECK_DATA_DIR, else ~/.cache/micheck/data. Either the batches directory
itself or its parent may be configured; ``micheck data fetch cifar10``
(:mod:`micheck.workers.data.fetch`) downloads and unpacks the official archive there.
A request never names a server path, and errors name the root, never the path (no
existence oracle for callers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from micheck.workers.data._io import safe_load

from micheck.errors import DataNotFound, SpecError
from micheck.settings import data_settings

SUBDIR = "cifar-10-batches-py"
FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}


def configured_dir(root: str | None = None) -> Path:
    """The directory of a named data root, or of the default one (not yet checked)."""
    settings = data_settings()
    if root is None:
        return Path(settings.data_dir).expanduser().resolve()
    if root not in settings.data_roots:
        known = ", ".join(sorted(settings.data_roots)) or "none"
        raise SpecError(f"dataset.data_root {root!r} is not configured on this server "
                        f"(configured: {known})")
    return Path(settings.data_roots[root]).expanduser().resolve()


def source(root: str | None = None) -> str:
    """What identifies the files behind the data (the memo key of workers.data)."""
    return str(configured_dir(root))


def _root_name(root: str | None) -> str:
    return f"data root {root!r} (MICHECK_DATA_ROOTS)" if root else \
        "the default data root (MICHECK_DATA_DIR)"


def batches_dir(root: str | None = None) -> Path:
    """The directory that holds the batch files; DataNotFound when there is none.

    The message names the root and the files, not the server path."""
    base = configured_dir(root)
    for candidate in (base, base / SUBDIR):
        if all((candidate / name).is_file() for split in FILES.values() for name in split):
            return candidate
    candidate = base / SUBDIR if (base / SUBDIR).is_dir() else base
    wanted = [n for split in FILES.values() for n in split]
    missing = [n for n in wanted if not (candidate / n).is_file()]
    raise DataNotFound(
        f"CIFAR-10 not found in {_root_name(root)}: expected the files {', '.join(wanted)} "
        f"in it or in its {SUBDIR} folder (missing: {', '.join(missing)}). The operator "
        "unpacks cifar-10-python.tar.gz there, or runs `micheck data fetch cifar10`")


def _field(batch: dict[Any, Any], key: str) -> Any:
    # The original Python 2 pickles have str keys when read with latin1, files written
    # by Python 3 have bytes keys; accept both.
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise KeyError(key)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    with open(path, "rb") as f:
        batch = safe_load(f, source=path.name)
    try:
        if not isinstance(batch, dict):
            raise TypeError(f"a {type(batch).__name__}, not a dict")
        data, labels = _field(batch, "data"), _field(batch, "labels")
        data = np.asarray(data)
        labels = np.asarray(labels, dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise TypeError(f"data is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
        if labels.shape != (data.shape[0],):
            raise TypeError(f"{labels.shape[0]} labels for {data.shape[0]} images")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise TypeError("labels outside 0..9")
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"{path.name} is not a CIFAR-10 batch: {exc}") from None
    # Row-major [N, 3072] = [N, channel, row, column]: a reshape, no transpose.
    return data.reshape(-1, 3, 32, 32), labels


def load_split(split: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 3, 32, 32) and int64 labels of one split, batches concatenated."""
    directory = batches_dir(root)
    parts = [read_batch(directory / name) for name in FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels
