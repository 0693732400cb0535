"""The restricted unpickler and the atomic cache writer."""

from __future__ import annotations

import io
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
from micheck.workers.data._io import cache_dir, safe_load, write_npz_atomic

from micheck.errors import SpecError


class _RunsCommand:
    """Pickles to a call of os.system: what a tampered data file would contain."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.sentinel}",))


def test_refuses_arbitrary_callables(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    blob = pickle.dumps({b"data": _RunsCommand(sentinel)}, protocol=2)
    with pytest.raises(SpecError, match=r"refusing to load global (posix|os)\.system"):
        safe_load(io.BytesIO(blob), source="evil.pkl")
    assert not sentinel.exists()


def test_refuses_codecs_encode_other_than_latin1() -> None:
    # _codecs.encode is allowed only for the latin1 spelling of bytes objects.
    blob = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R."
    with pytest.raises(SpecError, match="refusing _codecs.encode"):
        safe_load(io.BytesIO(blob), source="odd.pkl")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_round_trips_numpy_arrays_and_containers(protocol: int) -> None:
    data = np.arange(24, dtype=np.uint8).reshape(2, 12)
    obj = {b"data": data, b"labels": [1, 2], "name": "x", b"raw": b"\x00\xff",
           "f": np.linspace(0, 1, 5, dtype=np.float32)}
    out = safe_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)), source="ok.pkl")
    assert out.keys() == obj.keys()
    np.testing.assert_array_equal(out[b"data"], data)
    assert out[b"data"].dtype == np.uint8
    assert out[b"labels"] == [1, 2] and out[b"raw"] == b"\x00\xff" and out["name"] == "x"
    np.testing.assert_array_equal(out["f"], obj["f"])


def test_truncated_pickle_is_a_spec_error() -> None:
    blob = pickle.dumps({b"data": np.zeros(10, np.uint8)}, protocol=2)
    with pytest.raises(SpecError, match="cut.pkl"):
        safe_load(io.BytesIO(blob[:20]), source="cut.pkl")


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MICHECK_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("MICHECK_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "micheck"


def test_concurrent_writers_leave_one_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "cache.npz"
    arrays = {i: np.full((256, 256), i, np.uint8) for i in range(6)}
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_while_writing() -> None:
        while not stop.is_set():
            if target.exists():
                try:  # must never see a partial or mixed file
                    with np.load(target) as npz:
                        seen.extend(np.unique(npz["x"]).tolist())
                except BaseException as exc:  # reported below
                    errors.append(exc)

    reader = threading.Thread(target=read_while_writing)
    reader.start()
    writers = [threading.Thread(target=write_npz_atomic, args=(target,), kwargs={"x": a})
               for a in arrays.values()]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert not errors
    assert set(seen) <= set(arrays)
    with np.load(target) as npz:
        assert int(npz["x"][0, 0]) in arrays
    assert sorted(p.name for p in target.parent.iterdir()) == ["cache.npz"]  # no temp files
    assert (target.stat().st_mode & 0o777) == 0o644
