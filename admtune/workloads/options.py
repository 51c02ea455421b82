"""``[workload]`` options: each workload declares its keys as :class:`Opt` and gets, for an unknown
key or a bad value, one :class:`~admtune.errors.SpecError` sentence naming the key. A user's
workload plug-in can use the same: ``parse_options("mine", options, {"width": Opt(128, "int", low=1)})``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError


@dataclass(frozen=True)
class Opt:
    """One ``[workload]`` key: its default and what values it accepts."""

    default: Any
    kind: str = "float"               # float | int | bool | str | choice
    low: float | None = None
    high: float | None = None
    low_open: bool = False            # > low instead of ≥ low
    high_open: bool = False           # < high instead of ≤ high
    choices: tuple[str, ...] = ()
    help: str = ""

    def describe(self) -> str:
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return "a string"
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        noun = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"{noun} in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '≥'} {_fmt(self.low)}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '≤'} {_fmt(self.high)}"
        return noun

    def convert(self, value: Any) -> Any:
        """The checked value, or raise ValueError (the caller words the SpecError)."""
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError
        if self.kind == "str":
            if isinstance(value, str):
                return value
            raise ValueError
        if self.kind == "choice":
            if isinstance(value, str) and value in self.choices:
                return value
            raise ValueError
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError
        if self.kind == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise ValueError
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            raise ValueError
        return value


def _fmt(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:g}"


def parse_options(
    workload: str, options: Mapping[str, Any] | None, schema: Mapping[str, Opt]
) -> dict[str, Any]:
    """``options`` checked against ``schema`` with defaults filled in; SpecError names a bad key."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(schema))
    if unknown:
        known = ", ".join(sorted(schema)) or "none"
        raise SpecError(
            f"workload.{unknown[0]} is not an option of the {workload} workload (its options: {known})"
        )
    out: dict[str, Any] = {}
    for key, opt in schema.items():
        if key not in options:
            out[key] = opt.default
            continue
        try:
            out[key] = opt.convert(options[key])
        except (ValueError, TypeError):
            raise SpecError(
                f"workload.{key} must be {opt.describe()}, got {options[key]!r}"
            ) from None
    return out
