"""Plug-in estimators: installed distributions that register through an entry point.

A distribution declares, in its ``pyproject.toml``::

    [project.entry-points."micheck.estimators"]
    dv_clipped = "my_package:ESTIMATOR"

where ``ESTIMATOR`` (or a function of no arguments returning it) is an
:class:`~micheck.estimators.EstimatorEntry` whose name is the entry point's name, whose
family is ``discriminative`` and whose ``bound`` names the worker-side factory
(``"my_package.bound:make"``, a ``micheck.workers.bounds.BoundFactory``), or whose family
is ``point`` and whose ``bound`` names a factory of the entry's params returning an object
with ``estimate(x, y) -> float`` (bmi's point-estimator interface: ``x``, ``y`` numpy
arrays of shape (n, dim), the MI in nats; micheck.workers.point). The module
holding the entry must not import torch: the worker's parent process and, where the
plug-in is installed there too, the service load it; only the job process imports the
bound.

:func:`load` is the one loader. It never raises: a plug-in that fails to import, names
itself differently, takes a built-in's name or is not an entry becomes a
:class:`Broken` record with a one-line reason, and the other plug-ins load. A loaded
entry records its distribution and version (``EstimatorEntry.origin``), which the
provenance of every result computed with it carries.

The report a worker stores in its ``workers`` row (:func:`report`) lists each loaded
plug-in with its params' JSON schema; a service that has not installed the plug-in
rebuilds an entry from it (:func:`entry_from_report`) to check a submission's
parameter names and fill in their defaults. Their types are checked by the worker
against the plug-in's own strict model.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, create_model

from micheck import estimators
from micheck.estimators import EstimatorEntry, Origin, Params

GROUP = "micheck.estimators"


@dataclass(frozen=True)
class Broken:
    """A plug-in that could not be loaded, and why (one line)."""

    name: str
    distribution: str
    version: str
    reason: str


@dataclass(frozen=True)
class Loaded:
    entries: tuple[EstimatorEntry, ...]
    broken: tuple[Broken, ...]


_LOCK = threading.Lock()
_LOADED: Loaded | None = None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"[:500]


def _entry_of(ep: md.EntryPoint, origin: Origin) -> EstimatorEntry:
    obj = ep.load()
    if callable(obj) and not isinstance(obj, EstimatorEntry):
        obj = obj()
    if not isinstance(obj, EstimatorEntry):
        raise TypeError(f"{ep.value} is a {type(obj).__name__}, not a "
                        "micheck.estimators.EstimatorEntry (or a function returning one)")
    if obj.name != ep.name:
        raise ValueError(f"the entry point is named {ep.name!r} but its entry {obj.name!r}")
    if obj.family not in ("discriminative", "point"):
        raise ValueError(f"family {obj.family!r}: plug-ins are discriminative estimators "
                         "(a bound on the critic's score matrix) or point estimators "
                         "(estimate(x, y) -> nats, bmi's interface)")
    if not obj.bound or ":" not in obj.bound:
        raise ValueError("bound must name the worker-side factory as 'module:attribute'")
    current = estimators._ENTRIES.get(obj.name)
    if current is not None and current.origin != origin:
        raise ValueError(f"the name {obj.name!r} is taken by {current.provider}")
    entry = dataclasses.replace(obj, origin=origin)
    estimators.register(entry, replace=current is not None)
    return entry


def load(*, refresh: bool = False) -> Loaded:
    """Load every installed plug-in of the ``micheck.estimators`` group once per process
    (``refresh``: look again) and register its entry; never raises."""
    global _LOADED
    with _LOCK:
        if _LOADED is not None and not refresh:
            return _LOADED
        done: list[EstimatorEntry] = []
        broken: list[Broken] = []
        try:
            points = sorted(md.entry_points(group=GROUP), key=lambda e: e.name)
        except Exception as exc:  # a corrupt metadata directory on the path
            points = []
            broken.append(Broken("?", "?", "?", f"reading entry points: {_one_line(exc)}"))
        for ep in points:
            dist = ep.dist
            origin = Origin(dist.name if dist else "?", dist.version if dist else "?")
            try:
                done.append(_entry_of(ep, origin))
            except Exception as exc:  # noqa: BLE001  any failure of foreign code is data
                broken.append(Broken(ep.name, origin.distribution, origin.version,
                                     _one_line(exc)))
        _LOADED = Loaded(tuple(done), tuple(broken))
        return _LOADED


def report(loaded: Loaded) -> dict[str, Any]:
    """What a worker tells the service about its plug-ins (JSON)."""
    return {
        "estimators": [{
            "name": e.name, "family": e.family, "version": e.version,
            "definition": e.definition, "aliases": list(e.aliases),
            "params": e.params_schema(), "distribution": e.origin.distribution,
            "distribution_version": e.origin.version,
        } for e in loaded.entries if e.origin is not None],
        "broken": [dataclasses.asdict(b) for b in loaded.broken],
    }


_TYPES: dict[str, type] = {"number": float, "integer": int, "boolean": bool, "string": str}
_BOUNDS = {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt",
           "exclusiveMaximum": "lt", "minLength": "min_length", "maxLength": "max_length"}
_PLAIN = {"type", "default", "description", "title", "enum", *_BOUNDS}


def _field(spec: Mapping[str, Any], required: bool) -> tuple[Any, Any]:
    """A pydantic field for one property of a params schema: typed and bounded where the
    schema is a plain number, integer, boolean or string (what pydantic writes for such a
    field), Any otherwise (e.g. a union: the worker's own model checks it)."""
    default = ... if required else spec.get("default", ...)
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in _TYPES or set(spec) - _PLAIN:
        return Any, Field(default)
    typ: Any = _TYPES[kind]
    if isinstance(spec.get("enum"), list) and spec["enum"]:
        typ = Literal[tuple(spec["enum"])]
    return typ, Field(default, **{arg: spec[key] for key, arg in _BOUNDS.items()
                                  if key in spec})


def entry_from_report(item: Mapping[str, Any]) -> EstimatorEntry:
    """A plug-in's entry rebuilt from a worker's report: the same name, version,
    definition and origin; a params model built from the reported JSON schema: unknown
    names refused, defaults filled in, plain numbers, integers, booleans and strings
    typed and bounded as the plug-in declared them; anything richer is left to the
    worker, which validates with the plug-in's own model."""
    schema = item.get("params") or {}
    props = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    fields = {key: _field(spec, key in required) for key, spec in props.items()}
    model = create_model(f"Reported_{item['name']}", __base__=Params, **fields)
    return EstimatorEntry(
        name=item["name"], family=item.get("family", "discriminative"),
        version=str(item["version"]), definition=item.get("definition", ""),
        params_model=model, aliases=tuple(item.get("aliases") or ()),
        origin=Origin(item["distribution"], item["distribution_version"]),
        extra={"params_schema": schema})
