"""Database engine and sessions; SQLite gets WAL so the API reads while a worker writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
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


class Database:
    """An engine plus a session factory; one per process."""

    def __init__(self, settings: Settings, *, migrate: bool = True):
        self.url = settings.database_url
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            ensure_schema(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        with self.sessions() as s, s.begin():
            yield s

    def dispose(self) -> None:
        self.engine.dispose()


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
