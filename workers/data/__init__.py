"""The data sets: images for the self-consistency tests, vectors for ground-truth tests.

Each data set is an entry of ``micheck.datasets`` whose ``loader`` ("module:attribute")
this package resolves (:func:`loader`): an image module's ``load(split, root)`` returns
uint8 images and labels (its optional ``source(root)`` names the files behind them, for
the memo key), a vector task's sampler draws ``(x, y)`` on demand. The engine's one entry
point for images is :func:`load_images`; vector tasks are sampled with
:func:`sample_spec` (:func:`sample_vectors` for the tasks drawn at a given MI).

Decoded images stay in memory as uint8 (memoised per process and per source, so
repeated evaluations never re-read files); each call returns a fresh float32 copy,
so callers may modify what they get.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from micheck.workers.data.synthetic import (
    mi_from_rho,
    rho_from_mi,
    sample_cubic,
    sample_gaussian,
)

from micheck import datasets
from micheck.contract import DatasetSpec
from micheck.errors import SpecError

__all__ = [
    "load_images",
    "load_labels",
    "loader",
    "mi_from_rho",
    "rho_from_mi",
    "sample_cubic",
    "sample_gaussian",
    "sample_spec",
    "sample_vectors",
]

Split = Literal["train", "test"]


def loader(name: str) -> Callable[..., Any]:
    """A data set's loader (its registry entry's "module:attribute"), imported here."""
    module, _, attr = datasets.get(name).loader.partition(":")
    return getattr(importlib.import_module(module), attr)


def _source(name: str, root: str | None) -> str | None:
    """What identifies the files behind a data set, for the memo key (None: fixed per
    process, e.g. an installed package's file)."""
    module = importlib.import_module(datasets.get(name).loader.partition(":")[0])
    source = getattr(module, "source", None)
    return None if source is None else source(root)


@functools.lru_cache(maxsize=6)
def _load_uint8(name: str, split: Split, root: str | None, source: str | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 (N, C, H, W) and labels as int64 (N,); ``source`` (the resolved
    location of ``root``) is part of the memo key only."""
    images, labels = loader(name)(split, root)
    if images.ndim == 3:
        images = images[:, None]  # grey images get their channel axis
    return (torch.from_numpy(np.ascontiguousarray(images)),
            torch.from_numpy(labels.astype(np.int64)))


def _select(spec: DatasetSpec, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split not in ("train", "test"):
        raise SpecError(f"split must be 'train' or 'test', got {split!r}")
    known = [d.name for d in datasets.entries() if d.is_image]
    if spec.name not in known:
        raise SpecError(f"{spec.name!r} is not an image data set (known: {', '.join(known)});"
                        " vector tasks are sampled with sample_vectors")
    images, labels = _load_uint8(spec.name, split, spec.data_root,
                                 _source(spec.name, spec.data_root))
    if split == "train" and spec.train_size is not None:
        if spec.train_size > images.shape[0]:
            raise SpecError(f"dataset.train_size = {spec.train_size} exceeds the "
                            f"{images.shape[0]} training images of {spec.name}")
        images, labels = images[: spec.train_size], labels[: spec.train_size]
    return images, labels


def sample_vectors(name: str, n: int, dim: int, mi: float,
                   generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs of a vector task (its registry entry's sampler) at I(X; Y) = mi nats."""
    try:
        entry = datasets.get(name)
    except KeyError as exc:
        raise SpecError(exc.args[0]) from None
    if entry.is_image:
        known = ", ".join(d.name for d in datasets.entries() if not d.is_image)
        raise SpecError(f"{name!r} is not a vector task; known: {known}")
    return loader(name)(n, dim, mi, generator=generator, device=device)


def sample_spec(spec: DatasetSpec, n: int, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs of the request's vector task: at its ``mi`` (Eq. 55 tasks,
    :func:`sample_vectors`) or at its own typed params (bmi's tasks: ``mi_of`` set)."""
    entry = spec.entry
    if entry.mi_of is None:
        return sample_vectors(spec.name, n, spec.dim, spec.mi, generator=generator,
                              device=device)
    if entry.is_image:
        raise SpecError(f"{spec.name!r} is not a vector task")
    return loader(spec.name)(n, spec.typed_params, generator=generator, device=device)


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
