"""CIFAR-10 loader on small files written in the exact cifar-10-batches-py format."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from micheck.workers import data
from micheck.workers.data import cifar
from pydantic import ValidationError

from micheck.contract import DatasetSpec
from micheck.errors import DataNotFound, SpecError
from tests.workers.data.support import PER_BATCH, write_cifar


@pytest.fixture(autouse=True)
def _fresh_memo():
    data.clear_cache()
    yield
    data.clear_cache()


def _roots(monkeypatch: pytest.MonkeyPatch, **roots: Path) -> None:
    """Configure named data roots the way an operator does (MICHECK_DATA_ROOTS)."""
    monkeypatch.setenv("MICHECK_DATA_ROOTS", json.dumps({k: str(v) for k, v in roots.items()}))


@pytest.mark.parametrize("give_parent", [True, False])
def test_round_trip(tmp_path: Path, give_parent: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    batches = tmp_path / "cifar-10-batches-py"
    written = write_cifar(batches)
    _roots(monkeypatch, lab=tmp_path if give_parent else batches)
    spec = DatasetSpec(name="cifar10", data_root="lab")
    train, test = data.load_images(spec, "train"), data.load_images(spec, "test")
    assert train.shape == (5 * PER_BATCH, 3, 32, 32) and test.shape == (PER_BATCH, 3, 32, 32)
    expected = np.concatenate([written[n] for n in cifar.FILES["train"]])
    np.testing.assert_array_equal((train * 255).round().to(torch.uint8).numpy(), expected)
    # Channel order: channel 0 is red; pixel (row 2, col 5) of image 0 is 2*3 + 5.
    assert round(float(train[0, 0, 2, 5]) * 255) == 11
    assert round(float(train[0, 2, 0, 0]) * 255) == 160
    labels = data.load_labels(spec, "train")
    assert labels.dtype == torch.int64 and labels[:PER_BATCH].tolist() == [0, 1, 2, 3]
    small = data.load_images(spec.model_copy(update={"train_size": 6}), "train")
    torch.testing.assert_close(small, train[:6])


def test_python2_style_str_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = write_cifar(tmp_path, str_keys=True)
    _roots(monkeypatch, old=tmp_path)
    images, labels = cifar.load_split("test", "old")
    np.testing.assert_array_equal(images, written["test_batch"])
    assert labels.tolist() == [5, 6, 7, 8]


def test_env_and_default_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path / "env" / "cifar-10-batches-py")
    monkeypatch.setenv("MICHECK_DATA_DIR", str(tmp_path / "env"))
    assert data.load_images(DatasetSpec(name="cifar10"), "test").shape[0] == PER_BATCH
    monkeypatch.delenv("MICHECK_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cifar.configured_dir() == (tmp_path / "home" / ".cache" / "micheck" / "data")


def test_missing_data_names_root_and_files_never_the_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _roots(monkeypatch, nope=tmp_path / "nope", partial=tmp_path / "partial")
    spec = DatasetSpec(name="cifar10", data_root="nope")
    with pytest.raises(DataNotFound) as err:
        data.load_images(spec, "train")
    message = str(err.value)
    assert "data root 'nope'" in message and str(tmp_path) not in message
    assert "data_batch_1" in message and "test_batch" in message
    # One file missing: the message says which.
    write_cifar(tmp_path / "partial")
    (tmp_path / "partial" / "data_batch_3").unlink()
    with pytest.raises(DataNotFound, match="missing: data_batch_3") as err:
        cifar.batches_dir("partial")
    assert str(tmp_path) not in str(err.value)
    monkeypatch.setenv("MICHECK_DATA_DIR", str(tmp_path / "default"))
    with pytest.raises(DataNotFound, match="default data root") as err:
        cifar.batches_dir()
    assert str(tmp_path) not in str(err.value)


def test_unknown_root_and_server_paths_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _roots(monkeypatch)
    with pytest.raises(SpecError, match="'elsewhere' is not configured"):
        data.load_images(DatasetSpec(name="cifar10", data_root="elsewhere"), "train")
    for bad in ({"data_dir": "/etc"}, {"data_root": "/etc"}, {"data_root": "../x"},
                {"data_root": "a\x00b"}, {"data_root": "x" * 60_000}):
        with pytest.raises(ValidationError):
            DatasetSpec.model_validate({"name": "cifar10", **bad})


def test_malformed_batches(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]},
                                  protocol=2))
    with pytest.raises(SpecError, match=r"not a CIFAR-10 batch: data is uint8 \(2, 100\)"):
        cifar.read_batch(path)
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(SpecError, match="1 labels for 2 images"):
        cifar.read_batch(path)
    path.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(SpecError, match="not a dict"):
        cifar.read_batch(path)


class _Evil:
    def __reduce__(self):
        import subprocess
        return (subprocess.call, (["true"],))


def test_tampered_batch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path)
    _roots(monkeypatch, t=tmp_path)
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps({b"data": _Evil()}, protocol=2))
    with pytest.raises(SpecError, match=r"refusing to load global (subprocess|commands)\.call"):
        data.load_images(DatasetSpec(name="cifar10", data_root="t"), "train")
