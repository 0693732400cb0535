"""Downloading CIFAR-10 onto a box with internet: ``micheck data fetch cifar10``.

The official archive ``cifar-10-python.tar.gz`` (the ``cifar10_url`` setting) is streamed
into ``<root>/cifar-10-python.tar.gz.part``; a ``.part`` left by an interrupted run is
resumed with an HTTP Range request (a server that ignores Range answers 200 and the
download starts over). The finished file must have the MD5 the data set's page publishes
(the ``cifar10_md5`` setting); a file that does not is deleted and nothing is unpacked.
The archive is unpacked into a temporary folder beside the destination with tarfile's
``data`` filter (no absolute paths, no ``..``, no links or devices), its
``cifar-10-batches-py`` folder is checked to hold every batch file and renamed into
place, and the archive is deleted. ``<root>`` is a configured data root
(:func:`micheck.workers.data.cifar.configured_dir`), so what this writes is exactly what
:func:`micheck.workers.data.cifar.load_split` reads; a root that already holds the batch
files is left alone, whoever put them there.
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from micheck.workers.data import cifar

from micheck.errors import DataNotFound, FetchError, SpecError
from micheck.settings import data_settings

log = logging.getLogger(__name__)

ARCHIVE = "cifar-10-python.tar.gz"
TIMEOUT = httpx.Timeout(30.0)

# (bytes done, bytes in all or 0 when the server does not say, bytes done before this run)
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class Fetched:
    """What :func:`fetch_cifar10` did: where the batches are, and whether this run put them
    there (False: they were already in place)."""

    directory: Path
    downloaded: bool


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for split in cifar.FILES.values() for name in split)


def _content_range_start(value: str | None) -> int | None:
    """The first byte of ``Content-Range: bytes a-b/total``, or None when unparsable."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _int(value: str | None) -> int:
    """A size header as a number; 0 (unknown) when absent or garbled."""
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


def _content_range_total(value: str | None) -> int:
    return _int((value or "").rsplit("/", 1)[-1]) if "/" in (value or "") else 0


def download(url: str, part: Path, progress: Progress | None = None) -> None:
    """Stream `url` into `part`, resuming from what `part` already holds.

    Sends ``Range: bytes=<size>-`` when `part` is not empty: 206 from that offset appends,
    200 (a server that ignores Range) or a 206 from elsewhere starts over, 416 (the part is
    already whole, or longer than the file) starts over once without Range. A transfer cut
    short keeps `part` for the next run. Raises FetchError with one line (SpecError for a
    URL that is not http(s))."""
    have = part.stat().st_size if part.exists() else 0
    try:
        with httpx.Client(follow_redirects=True, timeout=TIMEOUT) as client:
            for attempt in range(2):
                # identity: the bytes on the wire are the file's, which Range counts
                headers = {"Accept-Encoding": "identity"}
                if have:
                    headers["Range"] = f"bytes={have}-"
                with client.stream("GET", url, headers=headers) as response:
                    if response.status_code == 416 and have and attempt == 0:
                        have = 0  # the .part is not a prefix we can extend: start over
                        continue
                    if response.status_code not in (200, 206):
                        raise FetchError(f"downloading {url}: HTTP {response.status_code} "
                                         f"{response.reason_phrase}".rstrip())
                    encoding = response.headers.get("content-encoding", "identity")
                    if encoding.lower() != "identity":
                        raise FetchError(f"downloading {url}: the server sent it "
                                         f"{encoding}-encoded; use another --url")
                    resumed = (response.status_code == 206 and have > 0 and _content_range_start(
                        response.headers.get("content-range")) == have)
                    if response.status_code == 206 and not resumed:
                        raise FetchError(f"downloading {url}: the server answered a range "
                                         "that was not asked for; delete "
                                         f"{part} and run again")
                    start = have if resumed else 0
                    total = (_content_range_total(response.headers.get("content-range"))
                             if resumed else _int(response.headers.get("content-length")))
                    if not resumed and have:
                        log.info("%s ignored the Range request: downloading from the start",
                                 url)
                    done = start
                    with open(part, "ab" if resumed else "wb") as out:
                        # iter_raw: every byte received reaches the file, even when the
                        # connection breaks mid-way (iter_bytes(n) would drop a partial block)
                        for block in response.iter_raw():
                            out.write(block)
                            done += len(block)
                            if progress is not None:
                                progress(done, total, start)
                    if total and done != total:
                        raise FetchError(f"downloading {url}: the connection closed after "
                                         f"{done} of {total} bytes; run again to resume")
                    return
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise SpecError(f"cannot download from {url!r}: {exc}") from None
    except httpx.HTTPError as exc:
        again = "; run again to resume" if part.exists() and part.stat().st_size else ""
        raise FetchError(f"downloading {url}: {type(exc).__name__}: {str(exc) or 'no detail'}"
                         f"{again}") from None


def _check_members(archive: tarfile.TarFile, source: str) -> None:
    """Refuse anything but folders and regular files under cifar-10-batches-py/ (the data
    filter refuses links, devices, absolute paths and ``..`` again on extraction)."""
    for member in archive.getmembers():
        name = member.name
        parts = Path(name).parts
        if (name.startswith("/") or ".." in parts or not parts or parts[0] != cifar.SUBDIR
                or not (member.isfile() or member.isdir())):
            raise FetchError(f"{source}: refusing archive member {name!r} (expected only "
                             f"files under {cifar.SUBDIR}/)")


def unpack(archive_path: Path, root: Path) -> Path:
    """Unpack a verified cifar-10-python.tar.gz so that ``root/cifar-10-batches-py`` holds
    the batch files; the folder appears whole or not at all."""
    target = root / cifar.SUBDIR
    with tempfile.TemporaryDirectory(dir=root, prefix=".cifar-10-unpack-") as tmp:
        try:
            with tarfile.open(archive_path, "r:gz") as archive:
                _check_members(archive, ARCHIVE)
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(tmp, filter="data")
                else:  # pragma: no cover - Python < 3.10.12: the member check above stands in
                    archive.extractall(tmp)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise FetchError(f"{ARCHIVE} could not be unpacked: {exc}") from None
        unpacked = Path(tmp) / cifar.SUBDIR
        if not _complete(unpacked):
            raise FetchError(f"{ARCHIVE} holds no complete {cifar.SUBDIR} folder")
        unpacked.rename(target)
    return target


def fetch_cifar10(root: str | None = None, *, url: str | None = None, md5: str | None = None,
                  progress: Progress | None = None) -> Fetched:
    """Put CIFAR-10 into a configured data root (`root` names one of MICHECK_DATA_ROOTS;
    None: MICHECK_DATA_DIR) and return where its batches are.

    Does nothing when the root already holds the batch files (directly or in
    cifar-10-batches-py). Otherwise downloads `url` (default: the ``cifar10_url`` setting)
    with resumption, checks its MD5 against `md5` (default: ``cifar10_md5``), unpacks it
    and deletes the archive (a ``.part`` that already has the MD5, left by a run stopped
    while unpacking, is unpacked without a download). Raises FetchError (one line) for
    network, HTTP, checksum and disk errors, SpecError for an unknown root name, a
    malformed MD5 or a URL that is not http(s)."""
    settings = data_settings()
    url = url or settings.cifar10_url
    md5 = (md5 or settings.cifar10_md5).lower()
    if len(md5) != 32 or not set(md5) <= set("0123456789abcdef"):
        raise SpecError(f"an MD5 is 32 hexadecimal digits, not {md5!r}")
    base = cifar.configured_dir(root)
    try:
        return Fetched(cifar.batches_dir(root), downloaded=False)
    except DataNotFound:
        pass
    target = base / cifar.SUBDIR
    if target.exists():
        missing = [n for s in cifar.FILES.values() for n in s if not (target / n).is_file()]
        raise FetchError(f"{target} exists but is incomplete (missing: {', '.join(missing)}); "
                         "move it away and run again")
    part = base / f"{ARCHIVE}.part"
    try:
        base.mkdir(parents=True, exist_ok=True)
        if not (part.is_file() and md5_of(part) == md5):
            download(url, part, progress)
        got = md5_of(part)
        if got != md5:
            part.unlink()
            raise FetchError(f"{ARCHIVE} from {url} has MD5 {got}, expected {md5}; deleted it, "
                             "nothing was unpacked")
        directory = unpack(part, base)
        part.unlink()
    except OSError as exc:
        where = exc.filename or base
        raise FetchError(f"cannot write CIFAR-10 to {where}: {exc.strerror or exc}") from None
    log.info("CIFAR-10: %s verified (md5 %s) and unpacked to %s", url, md5, directory)
    return Fetched(directory, downloaded=True)

