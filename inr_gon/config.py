"""Shared plumbing of the outer layers: run-configuration dataclasses and command-line value types."""

from __future__ import annotations

import argparse
import dataclasses
import math

__all__ = ["RunConfig", "positive_int", "nonneg_int", "positive_float", "nonneg_float", "fraction"]


class RunConfig:
    """Mixin for a run-configuration ``@dataclass``: validation, and a plain-dict round trip
    (what checkpoints and ``config.json`` store)."""

    def _check(self, checks) -> None:
        """``checks``: ``(field name, ok, why)`` triples; the first failing one raises a one-line
        ``ValueError`` naming the field and its value."""
        for name, ok, why in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} {why}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Rebuild from :meth:`to_dict`'s output, ignoring keys this version does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _number(s: str, kind, ok, why: str):
    try:
        v = kind(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"must be {why}, got {s}")
    return v


def positive_int(s: str) -> int:
    return _number(s, int, lambda v: v >= 1, ">= 1")


def nonneg_int(s: str) -> int:
    return _number(s, int, lambda v: v >= 0, ">= 0")


def positive_float(s: str) -> float:
    return _number(s, float, lambda v: v > 0 and math.isfinite(v), "> 0")


def nonneg_float(s: str) -> float:
    return _number(s, float, lambda v: v >= 0 and math.isfinite(v), ">= 0")


def fraction(s: str) -> float:
    return _number(s, float, lambda v: 0 < v <= 1, "in (0, 1]")
