"""The base models of the contract: strict requests, extra fields refused everywhere."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Request(_Model):
    """Base of the request models: validation complete at the door. Strict types (a bool
    is not a number, a string is not a number), non-finite floats refused, every number
    bounded, so everything accepted can run and be stored."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
