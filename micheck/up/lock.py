"""var_dir/up.lock: one `micheck up` per var dir, and what the last one left running.

The flock is held for the life of `up` (the kernel drops it when the process dies, however
it dies); the file holds a JSON record of the owner and its children (pid and start
time), so the next `up` can stop what a killed one left behind.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from micheck import processes
from micheck.errors import MicheckError

LOCK_NAME = "up.lock"


class UpLock:
    """var_dir/up.lock: an flock held for the life of `up` (the kernel drops it when the
    process dies, however it dies) and a JSON record of the owner and its children."""

    def __init__(self, var_dir: Path):
        self.path = var_dir / LOCK_NAME
        self.fd: int | None = None

    def _read(self, fd: int) -> dict[str, Any]:
        raw = os.pread(fd, 1 << 20, 0)
        try:
            rec = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return {}
        return rec if isinstance(rec, dict) else {}

    def acquire(self) -> dict[str, Any]:
        """Returns the previous owner's record (empty when the last `up` ended cleanly)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            rec = self._read(fd)
            os.close(fd)
            raise MicheckError(self._busy(rec)) from None
        rec = self._read(fd)
        owner = rec.get("owner") or {}
        if owner.get("pid") and processes.alive(owner["pid"], owner.get("start")):
            # the lock was not honoured (a network file system?) but its owner lives
            os.close(fd)
            raise MicheckError(self._busy(rec))
        self.fd = fd
        return rec

    def _busy(self, rec: dict[str, Any]) -> str:
        owner = (rec.get("owner") or {}).get("pid", "?")
        return (f"micheck is already up on {self.path.parent} (pid {owner}, API "
                f"{rec.get('url', '?')}); stop it first or use another --var-dir")

    def write(self, rec: dict[str, Any]) -> None:
        if self.fd is None:
            return
        data = json.dumps(rec, indent=1).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        os.fsync(self.fd)

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # a clean stop leaves nothing to clean up
            os.close(self.fd)  # drops the flock
            self.fd = None
