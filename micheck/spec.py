"""Reading evaluation specs (YAML or JSON) into the contract, with readable errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from micheck.contract import EvaluationRequest
from micheck.errors import SpecError


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; the contract is strict (no string
    to number), so read exponent floats as numbers, as YAML 1.2 and JSON do."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the field: 'estimator.train.steps: ...'."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "spec"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


def parse_spec(data: Any) -> EvaluationRequest:
    if not isinstance(data, dict):
        raise SpecError("spec must be a mapping with estimator, dataset and tests")
    try:
        return EvaluationRequest.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"invalid spec: {describe_validation_error(exc)}") from None


def load_spec(path: str | Path) -> EvaluationRequest:
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"spec file not found: {p}")
    text = p.read_text()
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.load(text, Loader=_Loader)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{p}: not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "parse error"
        raise SpecError(f"{p}: not valid YAML{where}: {problem}") from None
    return parse_spec(data)
