"""The data sets: images for the self-consistency tests, vectors for ground-truth tests.

The engine's one entry point for images is :func:`load_images`; vector tasks are
sampled on demand with :func:`sample_vectors` (or the named samplers).

Decoded images stay in memory as uint8 (memoised per process and per source, so
repeated evaluations never re-read files); each call returns a fresh float32 copy,
so callers may modify what they get.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import torch
from micheck.workers.data import cifar, fashion, mnist
from micheck.workers.data.synthetic import (
    mi_from_rho,
    rho_from_mi,
    sample_cubic,
    sample_gaussian,
    sample_vectors,
)

from micheck.contract import DatasetSpec
from micheck.errors import SpecError

__all__ = [
    "load_images",
    "load_labels",
    "mi_from_rho",
    "rho_from_mi",
    "sample_cubic",
    "sample_gaussian",
    "sample_vectors",
]

Split = Literal["train", "test"]
IMAGE_SETS = ("mnist", "fashion_mnist", "cifar10")


def _source(name: str, root: str | None) -> str | None:
    """What identifies the files behind a data set, for the memo key."""
    if name == "cifar10":
        return str(cifar.configured_dir(root))
    if name == "fashion_mnist":
        return str(fashion.data_dir())
    return None  # mnist: the installed package and the cache dir are fixed per process


@functools.lru_cache(maxsize=6)
def _load_uint8(name: str, split: Split, root: str | None, source: str | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 (N, C, H, W) and labels as int64 (N,); ``source`` (the resolved
    location of ``root``) is part of the memo key only."""
    if name == "mnist":
        arrays = mnist.load_arrays()
        images, labels = arrays[f"{split}_x"], arrays[f"{split}_y"]
    elif name == "fashion_mnist":
        images, labels = fashion.load_split(split)
    else:
        images, labels = cifar.load_split(split, root)
    if images.ndim == 3:
        images = images[:, None]  # grey images get their channel axis
    return (torch.from_numpy(np.ascontiguousarray(images)),
            torch.from_numpy(labels.astype(np.int64)))


def _select(spec: DatasetSpec, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split not in ("train", "test"):
        raise SpecError(f"split must be 'train' or 'test', got {split!r}")
    if spec.name not in IMAGE_SETS:
        raise SpecError(f"{spec.name!r} is not an image data set (known: {', '.join(IMAGE_SETS)});"
                        " vector tasks are sampled with sample_vectors")
    images, labels = _load_uint8(spec.name, split, spec.data_root,
                                 _source(spec.name, spec.data_root))
    if split == "train" and spec.train_size is not None:
        if spec.train_size > images.shape[0]:
            raise SpecError(f"dataset.train_size = {spec.train_size} exceeds the "
                            f"{images.shape[0]} training images of {spec.name}")
        images, labels = images[: spec.train_size], labels[: spec.train_size]
    return images, labels


def load_images(spec: DatasetSpec, split: Split) -> torch.Tensor:
    """float32 images (N, C, H, W) in [0, 1] (byte / 255) of one split, on the CPU.

    ``spec.train_size`` keeps the first N training images. Raises DataNotFound when
    the files are missing and SpecError for a non-image data set.
    """
    images, _ = _select(spec, split)
    return images.to(torch.float32).div_(255.0)


def load_labels(spec: DatasetSpec, split: Split) -> torch.Tensor:
    """int64 class labels aligned with :func:`load_images` (same split, same train_size)."""
    return _select(spec, split)[1].clone()


def clear_cache() -> None:
    """Forget memoised images (tests, or a worker that must free memory)."""
    _load_uint8.cache_clear()
