"""The IDX reader on hand-made files, and Fashion-MNIST from the Debian package."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from micheck.workers import data
from micheck.workers.data import fashion

from micheck.contract import DatasetSpec
from micheck.errors import DataNotFound, SpecError


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize(("dtype", "code"), [(np.uint8, 0x08), (np.int8, 0x09),
                                             (np.int16, 0x0B), (np.int32, 0x0C),
                                             (np.float32, 0x0D), (np.float64, 0x0E)])
def test_parse_idx_types_and_byte_order(dtype: type, code: int) -> None:
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = fashion.parse_idx(idx_bytes(array, code))
    assert out.shape == (2, 3, 4) and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, array)


def test_parse_idx_rejects_bad_files() -> None:
    good = idx_bytes(np.arange(6, dtype=np.uint8), 0x08)
    with pytest.raises(SpecError, match="magic"):
        fashion.parse_idx(b"\x01" + good[1:], "f")
    with pytest.raises(SpecError, match="type code 0x07"):
        fashion.parse_idx(good[:2] + b"\x07" + good[3:], "f")
    with pytest.raises(SpecError, match="holds 5"):
        fashion.parse_idx(good[:-1], "f")
    with pytest.raises(SpecError, match="truncated"):
        fashion.parse_idx(good[:6], "f")


def _write_split(directory: Path, split: str, n: int, compress: bool) -> np.ndarray:
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    for stem, array in zip(fashion.FILES[split], (images, labels), strict=True):
        blob = idx_bytes(array, 0x08)
        if compress:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(blob))
        else:
            (directory / stem).write_bytes(blob)
    return images


def test_env_dir_plain_and_gzipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion, "SIZES", {"train": 12, "test": 4})
    train = _write_split(tmp_path, "train", 12, compress=True)
    test = _write_split(tmp_path, "test", 4, compress=False)
    monkeypatch.setenv("MICHECK_FASHION_MNIST_DIR", str(tmp_path))
    data.clear_cache()
    try:
        x = data.load_images(DatasetSpec(name="fashion_mnist"), "train")
        np.testing.assert_array_equal((x[:, 0] * 255).round().to(torch.uint8).numpy(), train)
        assert data.load_images(DatasetSpec(name="fashion_mnist"), "test").shape == (4, 1, 28, 28)
        np.testing.assert_array_equal(fashion.load_split("test")[0], test)
    finally:
        data.clear_cache()


def test_missing_files_name_the_directory(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICHECK_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFound, match=r"nowhere.*train-images-idx3-ubyte"):
        data.load_images(DatasetSpec(name="fashion_mnist"), "train")


def _installed() -> bool:
    return all((Path(fashion.DEFAULT_DIR) / f"{stem}.gz").is_file()
               for stems in fashion.FILES.values() for stem in stems)


@pytest.fixture
def debian_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MICHECK_FASHION_MNIST_DIR", raising=False)
    if not _installed():
        reason = f"Debian package dataset-fashion-mnist not installed ({fashion.DEFAULT_DIR})"
        if os.environ.get("MICHECK_REQUIRE_ALL") == "1":
            pytest.fail(f"{reason}, and MICHECK_REQUIRE_ALL=1")
        pytest.skip(reason)


def test_real_fashion_mnist(debian_files: None) -> None:
    spec = DatasetSpec(name="fashion_mnist")
    data.clear_cache()
    train, test = data.load_images(spec, "train"), data.load_images(spec, "test")
    assert train.shape == (60_000, 1, 28, 28) and test.shape == (10_000, 1, 28, 28)
    assert float(train.min()) == 0.0 and float(train.max()) == 1.0
    # Fashion-MNIST is balanced: 6000 / 1000 images per class.
    assert torch.bincount(data.load_labels(spec, "train")).tolist() == [6000] * 10
    assert torch.bincount(data.load_labels(spec, "test")).tolist() == [1000] * 10
    # Not MNIST by mistake: clothes cover far more of the frame than digits do.
    assert float((train > 0).float().mean()) > 0.4
    data.clear_cache()
