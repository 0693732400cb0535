"""Helpers of the data tests: CIFAR-10 files written in the exact cifar-10-batches-py format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from micheck.workers.data import cifar

PER_BATCH = 4


def make_images(n: int, offset: int) -> np.ndarray:
    """(n, 3, 32, 32) uint8 whose value encodes image, channel, row and column."""
    i, c, r, w = np.meshgrid(np.arange(n) + offset, np.arange(3), np.arange(32), np.arange(32),
                             indexing="ij")
    return ((i * 11 + c * 80 + r * 3 + w) % 256).astype(np.uint8)


def write_cifar(root: Path, str_keys: bool = False,
                per_batch: int = PER_BATCH) -> dict[str, np.ndarray]:
    """Batches like the real ones: protocol 2 dicts, data uint8 (N, 3072), labels a list.
    Image j of batch k has label (k + j) % 10 and first byte ((k per_batch + j) 11) % 256."""
    root.mkdir(parents=True, exist_ok=True)
    written: dict[str, np.ndarray] = {}
    for k, name in enumerate([*cifar.FILES["train"], *cifar.FILES["test"]]):
        images = make_images(per_batch, offset=k * per_batch)
        # The real layout: 1024 red values row by row, then green, then blue.
        flat = np.concatenate([images[:, 0].reshape(per_batch, -1),
                               images[:, 1].reshape(per_batch, -1),
                               images[:, 2].reshape(per_batch, -1)], axis=1)
        batch = {b"batch_label": f"batch {k}".encode(), b"data": flat,
                 b"labels": [(k + j) % 10 for j in range(per_batch)],
                 b"filenames": [f"img{j}.png".encode() for j in range(per_batch)]}
        if str_keys:  # what the original Python 2 files give when read as latin1
            batch = {key.decode(): value for key, value in batch.items()}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = images
    return written
