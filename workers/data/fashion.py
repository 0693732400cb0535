"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package: four IDX files
(gzipped) in /usr/share/datasets/fashion-mnist, or in $MICHECK_FASHION_MNIST_DIR.

IDX layout: two zero bytes, a type code, the number of dimensions, then one
big-endian uint32 per dimension, then the values in row-major, big-endian order.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from micheck.errors import DataNotFound, SpecError
from micheck.settings import data_settings

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SIZES = {"train": 60_000, "test": 10_000}

# IDX type code -> big-endian numpy dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(blob: bytes, source: str = "IDX data") -> np.ndarray:
    """Decode one IDX file's bytes into an array in native byte order."""
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0:
        raise SpecError(f"{source}: not an IDX file (bad magic number)")
    code, ndim = blob[2], blob[3]
    if code not in _IDX_TYPES:
        raise SpecError(f"{source}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(blob) < header:
        raise SpecError(f"{source}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(blob, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[code])
    count = int(np.prod(shape, dtype=np.int64))
    if len(blob) != header + count * dtype.itemsize:
        raise SpecError(f"{source}: IDX header says shape {shape} ({count * dtype.itemsize} "
                        f"bytes) but the file holds {len(blob) - header}")
    data = np.frombuffer(blob, dtype=dtype, count=count, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file, gzipped or not (gzip files start with 1f 8b)."""
    blob = path.read_bytes()
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    return parse_idx(blob, str(path))


def data_dir() -> Path:
    return data_settings().fashion_mnist_dir.expanduser()


def find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def load(split: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The registry's loader (micheck.datasets): the configured directory's split."""
    return load_split(split)


def source(root: str | None = None) -> str:
    """What identifies the files behind the data (the memo key of workers.data)."""
    return str(data_dir())


def load_split(split: str, directory: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and uint8 labels (N,) of one split."""
    directory = directory or data_dir()
    stems = FILES[split]
    paths = [find(directory, stem) for stem in stems]
    if None in paths:
        missing = [s for s, p in zip(stems, paths, strict=True) if p is None]
        raise DataNotFound(
            f"Fashion-MNIST {split} files not found in {directory}: missing {missing} "
            "(.gz or plain). Install the Debian package `dataset-fashion-mnist` or set "
            "MICHECK_FASHION_MNIST_DIR")
    images, labels = (read_idx(p) for p in paths)
    n = SIZES[split]
    if images.shape != (n, 28, 28) or labels.shape != (n,) or images.dtype != np.uint8:
        raise SpecError(f"Fashion-MNIST {split} in {directory}: got images {images.shape} "
                        f"{images.dtype} and labels {labels.shape}, expected ({n}, 28, 28) "
                        f"uint8 and ({n},)")
    return images, labels.astype(np.uint8)
