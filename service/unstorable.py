"""Text no database stores, refused at the door: a NUL character (PostgreSQL's text and
JSON types reject U+0000) or a lone surrogate (U+D800-U+DFFF: not Unicode scalar values,
so not encodable as UTF-8 and not serialisable as JSON).

JSON's ``\\u0000`` and ``\\udfff`` escapes put them into a request body; ``%00`` into a
query or a path. One app-wide dependency (`refuse`) runs before any route's parameters
are validated and answers 422 naming the first field that holds one, on SQLite as on
PostgreSQL, so the two stores accept the same requests and nothing later (a query, a
response, a webhook) ever meets such a string.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from micheck.service.problems import ProblemError

MAX_DEPTH = 64  # the contract nests a few levels; deeper JSON is refused by it anyway


def why_unstorable(text: str) -> str | None:
    """What makes ``text`` unstorable, or None."""
    if "\x00" in text:
        return "a NUL character (U+0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"a lone surrogate (U+{ord(text[exc.start]):04X})"
    return None


def _shown(part: object) -> str:
    return str(part).encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")


def find(value: Any, path: tuple[object, ...] = ()) -> tuple[str, str] | None:
    """(dotted field path, reason) of the first unstorable string in a JSON value (keys
    included), or None."""
    todo: list[tuple[Any, tuple[object, ...]]] = [(value, path)]
    while todo:
        v, p = todo.pop()
        if isinstance(v, str):
            why = why_unstorable(v)
            if why:
                return ".".join(_shown(x) for x in p) or "body", why
        elif isinstance(v, dict) and len(p) < MAX_DEPTH:
            items: list[tuple[Any, tuple[object, ...]]] = []
            for k, x in v.items():
                why = why_unstorable(k) if isinstance(k, str) else None
                if why:
                    return ".".join(_shown(x) for x in (*p, k)), f"{why} in its name"
                items.append((x, (*p, k)))
            todo.extend(reversed(items))
        elif isinstance(v, list) and len(p) < MAX_DEPTH:
            todo.extend(reversed([(x, (*p, i)) for i, x in enumerate(v)]))
    return None


def _refuse(field: str, why: str) -> ProblemError:
    message = f"contains {why}, which this service does not store"
    return ProblemError(422, f"{field}: {message}", errors=[{"field": field, "message": message}])


async def refuse(request: Request) -> None:
    """The app-wide dependency: path parameters, query parameters and a JSON body."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and (why := why_unstorable(value)):
            raise _refuse(name, why)
    for name, value in request.query_params.multi_items():
        why = why_unstorable(name) or why_unstorable(value)
        if why:
            raise _refuse(_shown(name), why)
    if request.method in ("POST", "PUT", "PATCH") and request.headers.get(
            "content-type", "").split(";")[0].strip().lower().endswith("json"):
        try:
            body = await request.json()  # Starlette caches it: FastAPI parses it once
        except ValueError:
            return  # not JSON: the route's own validation answers it
        found = find(body)
        if found:
            raise _refuse(*found)
