"""A band: the values a property allows (paper 002 Sec. 4.2's ideal, widened by a tolerance).

Its own module because two homes need it: the test kinds (``micheck.testkinds``) say which
band each point must lie in, and the verdict rule (``micheck.verdicts``) decides against it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Band:
    """The values a property allows; None is an open side (a one-sided band)."""

    low: float | None
    high: float | None

    def contains(self, lo: float, hi: float) -> bool:
        return (self.low is None or lo >= self.low) and (self.high is None or hi <= self.high)

    def excludes(self, lo: float, hi: float) -> bool:
        return (self.low is not None and hi < self.low) or (self.high is not None and lo > self.high)

    def describe(self) -> str:
        if self.low is None and self.high is None:
            return "any value"
        if self.low is None:
            return f"<= {self.high:g}"
        if self.high is None:
            return f">= {self.low:g}"
        return f"[{self.low:g}, {self.high:g}]"
