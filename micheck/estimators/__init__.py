"""The estimator registry: what an estimator *is* to the protocol, one entry each.

An entry names the estimator (and its aliases), its family, the equation of paper 002
(Song & Ermon, ICLR 2020) or of its source that it implements, the version of that
definition, and a typed pydantic model of its parameters. The defaults are stated once,
in that model; every numeric field is bounded; types are strict (a bool is not a number,
a string is not a number) and non-finite floats are refused.

This module is torch-free: the service publishes the entries (``GET /v1/estimators``)
and validates requests with them, the client checks specs with them. The workers
register the bound of each entry next to its math (``micheck.workers.bounds.
register_bound``). Adding an estimator is one new module that calls :func:`register`
(and, on the worker side, one bound registered by name) plus its test.

The registration API is public so a module outside this repository can add an estimator:

    from micheck.estimators import EstimatorEntry, Params, register

    class MyParams(Params):
        beta: float = Field(1.0, gt=0, le=10)

    register(EstimatorEntry(name="mine2", family="discriminative", version="1",
                            definition="...", params_model=MyParams))

Bump ``version`` whenever a change would move a stored number (formula, default,
training signal): a stored result records the version it was computed under, and the
version is hashed into the deduplication key of every request that names the estimator.

Plug-ins: an installed distribution registers an estimator through the entry-point group
``micheck.estimators`` (:mod:`micheck.estimators.plugins`); its entry carries the
distribution's name and version (``origin``) and the dotted path of its bound (``bound``),
which only a worker's job process imports. A service without the plug-in installed knows
it from what live workers report (:func:`set_reported`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

# gradient: dI/dparam only; point: MI read from samples directly, no critic (bmi's
# point-estimator interface, estimate(x, y) -> float, or its external-program convention)
Family = Literal["discriminative", "generative", "gradient", "point"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Params(BaseModel):
    """Base of every params model: strict types, no extra keys, finite floats, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class NoParams(Params):
    """An estimator without parameters."""


@dataclass(frozen=True)
class Origin:
    """Where a plug-in estimator comes from: its installed distribution."""

    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class EstimatorEntry:
    name: str
    family: Family
    version: str
    definition: str  # the equation it implements, cited
    params_model: type[Params] = NoParams
    aliases: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    # plug-ins only: "module:attr" of the bound factory (imported in the worker's job
    # process, where torch is), and the distribution that installed it (set by the loader)
    bound: str | None = None
    origin: Origin | None = None

    @property
    def provider(self) -> str:
        """'built-in', or the plug-in's 'distribution==version'."""
        return "built-in" if self.origin is None else str(self.origin)

    @property
    def source(self) -> str:  # the name GET /v1/estimators has always used
        return self.definition

    def parse_params(self, params: Mapping[str, Any] | Params | None) -> Params:
        """The typed params; raises ValueError with one line per problem, each naming
        the parameter (`tau: ...`)."""
        if isinstance(params, self.params_model):
            return params
        if isinstance(params, Params):
            params = params.model_dump()
        params = dict(params or {})
        known = set(self.params_model.model_fields)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"{self.name} takes no parameter(s) {unknown}; "
                             f"it takes {sorted(known) or 'none'}")
        try:
            return self.params_model.model_validate(params)
        except ValidationError as exc:
            raise ValueError("; ".join(
                f"params.{'.'.join(str(p) for p in e['loc']) or '?'}: "
                f"{str(e['msg']).removeprefix('Value error, ')}"
                for e in exc.errors())) from None

    def params_schema(self) -> dict[str, Any]:
        """The params' JSON schema, generated from the model."""
        schema = self.params_model.model_json_schema()
        schema.pop("title", None)
        schema.setdefault("properties", {})
        schema["additionalProperties"] = False
        return schema


_ENTRIES: dict[str, EstimatorEntry] = {}
_ALIASES: dict[str, str] = {}
# plug-ins this process has not installed but live workers report (the service's view);
# replaced as a whole by set_reported, so a reader never sees half an update
_REPORTED: dict[str, EstimatorEntry] = {}


def valid_name(name: str) -> bool:
    """Whether ``name`` is spelled like an estimator name (lowercase, digits, '_')."""
    return bool(_NAME.match(name.lower()))


def register(entry: EstimatorEntry, *, replace: bool = False) -> EstimatorEntry:
    """Add an estimator to the registry; ``replace`` allows overriding an existing name."""
    for name in (entry.name, *entry.aliases):
        if not _NAME.match(name):
            raise ValueError(f"estimator name {name!r} must match {_NAME.pattern}")
        taken = _ALIASES.get(name, name if name in _ENTRIES else None)
        if taken is not None and not (replace and taken == entry.name):
            raise ValueError(f"estimator name {name!r} is already registered (by {taken!r})")
    if not issubclass(entry.params_model, Params):
        raise TypeError("params_model must subclass micheck.estimators.Params")
    _ENTRIES[entry.name] = entry
    _ALIASES.update({a: entry.name for a in entry.aliases})
    return entry


def canonical_name(name: str) -> str:
    """The registered name for a name or alias (case-insensitive); unknown names pass."""
    low = name.lower()
    return _ALIASES.get(low, low)


def get(name: str) -> EstimatorEntry:
    """The entry for a name or alias (registered here, else reported by a live worker);
    KeyError naming the known ones otherwise."""
    key = canonical_name(name)
    entry = _ENTRIES.get(key) or _REPORTED.get(key)
    if entry is None:
        known = sorted({*_ENTRIES, *_REPORTED})
        raise KeyError(f"unknown estimator {name!r}; known: {', '.join(known)}")
    return entry


def entries() -> list[EstimatorEntry]:
    """Every registered estimator, in registration order."""
    return list(_ENTRIES.values())


def is_registered(name: str) -> bool:
    """Whether this process registered ``name`` (built in or an installed plug-in)."""
    return canonical_name(name) in _ENTRIES


def set_reported(reported: Mapping[str, EstimatorEntry]) -> None:
    """Replace the plug-ins known only from live workers' reports (the service calls
    this before validating a submission); names registered here take precedence."""
    global _REPORTED
    _REPORTED = {k: v for k, v in reported.items() if k not in _ENTRIES}


def reported() -> list[EstimatorEntry]:
    return list(_REPORTED.values())


def names() -> list[str]:
    return list(_ENTRIES)


def aliases() -> list[str]:
    return list(_ALIASES)


from micheck.estimators import builtin as _builtin  # noqa: E402, F401  (registers the paper's)
