"""The filters of a listing, read the same way by GET /v1/evaluations and the / page:
label filters (key:value), the created range (ISO 8601, UTC when no zone is named) and
the page size. Every malformed value is a 422 naming its parameter."""

from __future__ import annotations

from datetime import datetime, timezone

from micheck.service.problems import ProblemError

from micheck.contract import MAX_LABELS

MAX_LIMIT = 200


def parse_label_filters(items: list[str]) -> list[tuple[str, str]]:
    """``key:value`` strings as pairs; 422 for one without a colon, or too many."""
    if len(items) > MAX_LABELS:
        raise ProblemError(422, f"label: at most {MAX_LABELS} label filters")
    out = []
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ProblemError(422, f"label: {item[:80]!r} is not key:value",
                               errors=[{"field": "label", "message": "key:value"}])
        out.append((key, value))
    return out


def utc(t: datetime | None, name: str) -> datetime | None:
    """An aware time in UTC (a naive one is taken as UTC); 422 when it has no UTC
    equivalent (9999-12-31T23:59:59-14:00 is after the last representable instant)."""
    if t is None:
        return None
    try:
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise ProblemError(422, f"{name}: {t.isoformat()} is outside the range of times "
                                "this service stores (years 1 to 9999 in UTC)",
                           errors=[{"field": name, "message": "out of range"}]) from None


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 query value as an aware UTC time."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ProblemError(422, f"{name}: {value[:40]!r} is not an ISO 8601 time") from None
    return utc(t, name)


def parse_limit(value: str, default: int = 50) -> int:
    """A page size from 1 to MAX_LIMIT (its digits are checked before int() reads them:
    Python refuses to convert more than 4300 digits)."""
    value = value.strip() or str(default)
    if not (value.isdigit() and len(value) <= 3 and 1 <= int(value) <= MAX_LIMIT):
        raise ProblemError(422, f"limit: a whole number from 1 to {MAX_LIMIT}",
                           errors=[{"field": "limit", "message": f"1 to {MAX_LIMIT}"}])
    return int(value)
