"""The estimator registry: what an estimator *is* to the protocol, one entry each.

An entry names the estimator (and its aliases), its family, the equation of paper 002
(Song & Ermon, ICLR 2020) or of its source that it implements, the version of that
definition, and a typed pydantic model of its parameters. The defaults are stated once,
in that model; every numeric field is bounded; types are strict (a bool is not a number,
a string is not a number) and non-finite floats are refused.

This module is torch-free: the service publishes the entries (``GET /v1/estimators``)
and validates requests with them, the client checks specs with them. The workers
register the bound of each entry next to its math (``micheck.workers.estimators.
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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

Family = Literal["discriminative", "generative", "gradient"]  # gradient: dI/dparam only
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Params(BaseModel):
    """Base of every params model: strict types, no extra keys, finite floats, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class NoParams(Params):
    """An estimator without parameters."""


@dataclass(frozen=True)
class EstimatorEntry:
    name: str
    family: Family
    version: str
    definition: str  # the equation it implements, cited
    params_model: type[Params] = NoParams
    aliases: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

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
    """The entry for a name or alias; KeyError naming the known ones otherwise."""
    entry = _ENTRIES.get(canonical_name(name))
    if entry is None:
        raise KeyError(f"unknown estimator {name!r}; known: {', '.join(sorted(_ENTRIES))}")
    return entry


def entries() -> list[EstimatorEntry]:
    """Every registered estimator, in registration order."""
    return list(_ENTRIES.values())


def names() -> list[str]:
    return list(_ENTRIES)


def aliases() -> list[str]:
    return list(_ALIASES)


from micheck.estimators import builtin as _builtin  # noqa: E402, F401  (registers the paper's)
