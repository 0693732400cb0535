"""Database engine and sessions; SQLite gets WAL so the API reads while a worker writes."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from micheck.settings import Settings


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


SQLITE_FULL = 13  # sqlite3.OperationalError.sqlite_errorcode: "database or disk is full"
PG_DISK_FULL = "53100"  # PostgreSQL SQLSTATE disk_full (psycopg.errors.DiskFull)


def storage_full(exc: BaseException) -> str | None:
    """Why `exc` means the storage is out of space, or None if it does not.

    SQLite's SQLITE_FULL (a full disk, or the database at its max_page_count), PostgreSQL's
    SQLSTATE 53100 (disk_full), or an OSError ENOSPC/EDQUOT (a file under var_dir). Looks
    through SQLAlchemy's wrapper (``.orig``) and the exception chain."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return "no space left on the device"
        if getattr(e, "sqlite_errorcode", None) == SQLITE_FULL or (
                type(e).__name__ == "OperationalError" and "database or disk is full" in str(e)):
            return "the database or its disk is full"
        if getattr(e, "sqlstate", None) == PG_DISK_FULL or getattr(e, "pgcode", None) == PG_DISK_FULL:
            return "the database server's disk is full"
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]
    return None


class StorageState:
    """The last time a write failed for lack of space, remembered for `hold_s` seconds
    (or until a write succeeds): /readyz reports storage as full meanwhile. A failed write
    is the only sure sign, since a write probe that fits in pages the database already has
    succeeds on a full disk. Per process, like the engine."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._full_at: float | None = None
        self.reason = ""

    def note_full(self, reason: str) -> None:
        with self._lock:
            self._full_at, self.reason = time.monotonic(), reason

    def note_written(self) -> None:
        with self._lock:
            self._full_at = None

    def full_for(self, hold_s: float) -> float | None:
        """Seconds since the last failed write if within `hold_s`, else None."""
        with self._lock:
            if self._full_at is None:
                return None
            age = time.monotonic() - self._full_at
            return age if age < hold_s else None


class WritersBusy(Exception):
    """More writers of this process wait for SQLite than the bound allows: answer 503 now
    rather than queue (service: Retry-After)."""


class Database:
    """An engine plus a session factory; one per process."""

    def __init__(self, settings: Settings, *, migrate: bool = True):
        self.url = settings.database_url
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.storage = StorageState()
        self._writers = threading.Lock()
        self._waiting_lock = threading.Lock()
        self._waiting = 0
        self._flock_fd: int | None = None
        self.max_waiting_writes = settings.max_waiting_writes
        if migrate:
            ensure_schema(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        with self.sessions() as s, s.begin():
            yield s

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A transaction that will write, on the hot path (a submission). On SQLite the
        writers of this process take turns on a lock, and each takes the database's write
        lock when it begins (BEGIN IMMEDIATE): otherwise a burst of writers upgrades read
        transactions into writes and sleeps in SQLite's busy handler (backing off to
        100 ms a try), and goodput falls as the load rises. PostgreSQL locks rows: a plain
        session. Past ``max_waiting_writes`` writers already waiting, raises WritersBusy:
        the queue for the one writer SQLite allows is the bottleneck to shed at."""
        if not self.url.startswith("sqlite"):
            with self.session() as s:
                yield s
            return
        with self._waiting_lock:
            if self._waiting >= self.max_waiting_writes:
                raise WritersBusy(self._waiting)
            self._waiting += 1
        try:
            self._writers.acquire()
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        try:
            with self._across_processes(), self.sessions() as s, s.begin():
                s.execute(text("BEGIN IMMEDIATE"))  # pysqlite then begins nothing itself
                yield s
        finally:
            self._writers.release()

    @contextmanager
    def _across_processes(self) -> Iterator[None]:
        """The API processes of one box take turns too: an flock beside the database file
        hands the turn over at once (the kernel wakes the next), where SQLite's busy
        handler polls with sleeps of up to 100 ms."""
        if self._flock_fd is None:
            path = self.url.split("///", 1)[-1]
            if not path or path == ":memory:":
                yield
                return
            self._flock_fd = os.open(path + ".writers", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._flock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._flock_fd, fcntl.LOCK_UN)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._flock_fd is not None:
            os.close(self._flock_fd)
            self._flock_fd = None


def ensure_schema(engine: Engine) -> None:
    """Create the schema on an empty database; never touch a populated one silently."""
    from micheck.storage.migrations import current_revision, head_revision, upgrade

    if "alembic_version" not in inspect(engine).get_table_names():
        upgrade(engine)
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        from micheck.errors import MicheckError

        raise MicheckError(f"database schema is at {current}, this code needs {head}: "
                           "run `micheck db upgrade`")
