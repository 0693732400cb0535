"""Suite definitions as stored data: written the first time a suite version is used,
read back from then on (the league never rebuilds a suite from today's code)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from micheck.storage.models import SuiteRow
from micheck.suites import Suite


def stored_suite(s: Session, name: str, version: int) -> tuple[Suite, datetime] | None:
    """The stored definition of (name, version) and when it was stored; None if never used."""
    row = s.get(SuiteRow, (name, version))
    if row is None:
        return None
    return Suite.from_definition(row.definition), row.created_at


def use_suite(s: Session, suite: Suite) -> tuple[Suite, datetime]:
    """The stored definition of the suite's (name, version), storing ``suite`` first when
    there is none. A definition already stored wins over ``suite``; two first uses at once
    store one (the loser of the insert reads the winner's)."""
    found = stored_suite(s, suite.name, suite.version)
    if found is not None:
        return found
    try:
        with s.begin_nested():
            s.add(SuiteRow(name=suite.name, version=suite.version,
                           definition=suite.definition()))
    except IntegrityError:
        pass
    found = stored_suite(s, suite.name, suite.version)
    assert found is not None
    return found


def stored_versions(s: Session) -> list[tuple[str, int, datetime]]:
    """(name, version, stored_at) of every stored suite, by name then version."""
    return [(r.name, r.version, r.created_at)
            for r in s.scalars(select(SuiteRow).order_by(SuiteRow.name, SuiteRow.version))]
