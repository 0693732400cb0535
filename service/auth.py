"""Bearer tokens: stored as sha256 hashes, shown once at creation, revoked by name.

Every request presents one, so `lookup` remembers a found token for ``token_cache_s``
(per process and database; 2 s by default): a revocation takes effect at once in the
process that made it and within that time in the others (`micheck token revoke` from a
shell). Unknown tokens are never remembered (a flood of made-up ones fills nothing).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import weakref
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from micheck.errors import MicheckError
from micheck.storage.db import Database
from micheck.storage.models import Token, utcnow


@dataclass(frozen=True)
class Caller:
    """Who is calling; name None = anonymous (only possible with open reads)."""

    name: str | None
    admin: bool = False

    @property
    def sees_all(self) -> bool:
        return self.admin


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Database, name: str, *, admin: bool = False) -> str:
    """Returns the token; only its hash is stored, so this is the one time it is seen."""
    if not name or len(name) > 100 or not name.replace("-", "").replace("_", "").isalnum():
        raise MicheckError("token name must be 1-100 letters, digits, '-' or '_'")
    token = "mck_" + secrets.token_urlsafe(32)
    forget(db)
    with db.session() as s:
        row = s.get(Token, name)
        if row is not None and row.revoked_at is None:
            raise MicheckError(f"token {name!r} exists; revoke it first")
        if row is None:
            row = Token(name=name)
            s.add(row)
        row.sha256, row.admin, row.created_at, row.revoked_at = (
            hash_token(token), admin, utcnow(), None)
    return token


def revoke_token(db: Database, name: str) -> None:
    forget(db)
    with db.session() as s:
        row = s.get(Token, name)
        if row is None or row.revoked_at is not None:
            raise MicheckError(f"no active token named {name!r}")
        row.revoked_at = utcnow()


def set_limits(db: Database, name: str, *, max_queued: int | None = None,
               max_request_gmac: float | None = None, max_token_gmac: float | None = None,
               reset: bool = False) -> dict[str, float | None]:
    """An admin's per-token limits (None keeps a value; reset returns all to the settings');
    returns the token's limits, None meaning the settings' value."""
    import math

    given = {"max_queued": max_queued, "max_request_gmac": max_request_gmac,
             "max_token_gmac": max_token_gmac}
    for key, value in given.items():
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise MicheckError(f"{key} must be a positive finite number, got {value}")
    with db.session() as s:
        row = s.get(Token, name)
        if row is None or row.revoked_at is not None:
            raise MicheckError(f"no active token named {name!r}")
        for key, value in given.items():
            if reset:
                setattr(row, key, None)
            elif value is not None:
                setattr(row, key, value)
        return {key: getattr(row, key) for key in given}


_found: weakref.WeakKeyDictionary[Database, dict[str, tuple[float, Caller]]] = \
    weakref.WeakKeyDictionary()
_CACHE_MAX = 10_000


def forget(db: Database) -> None:
    """Drop what `lookup` remembers for this database (a revocation, a change of admin)."""
    _found.pop(db, None)


def lookup(db: Database, token: str, cache_s: float = 0.0) -> Caller | None:
    """The caller a presented token stands for; None if it is unknown or revoked. With
    ``cache_s``, a found token is remembered that long (module docstring)."""
    key = hash_token(token)
    now = time.monotonic()
    found = _found.get(db)
    if cache_s and found is not None:
        hit = found.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
    with db.session() as s:
        row = s.execute(_LOOKUP, {"sha256": key}).first()
    if row is None:
        return None
    caller = Caller(row.name, row.admin)
    if cache_s:
        found = _found.setdefault(db, {})
        if len(found) >= _CACHE_MAX:
            found.clear()
        found[key] = (now + cache_s, caller)
    return caller


# built once: building a statement costs more than running it (every request runs this)
_LOOKUP = select(Token.name, Token.admin).where(Token.sha256 == bindparam("sha256"),
                                                Token.revoked_at.is_(None)).limit(1)
