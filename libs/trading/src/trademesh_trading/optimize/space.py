"""The search space of a strategy's parameters: from its JSON Schema (the registry's `schema()`),
narrowed or widened within the schema's bounds by the user's ranges, less the parameters fixed.

By default every integer and number parameter with both bounds in the schema is searched over
them. Booleans and enumerations change what the strategy is (long-only or not), so they are
searched only when named in the ranges (`choices`, or none given: all their values). A parameter
fixed by the user is not searched; one without bounds keeps its default unless given a range.
Rules across parameters (SMA cross's fast < slow) are the strategy's config validators: a trial
that breaks one is infeasible, and the search learns to avoid it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

Choice = StrictBool | StrictInt | float | str


class SpaceError(ValueError):
    """A search space that cannot be built; the message says which parameter and why."""


class SearchRange(BaseModel):
    """One parameter's search: a range (`low`..`high`, both included, with an optional `step`,
    or on a log scale) or a list of `choices`; nothing at all for every value of a boolean or
    an enumeration."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    low: StrictInt | float | None = Field(None, description="The smallest value tried.")
    high: StrictInt | float | None = Field(None, description="The largest value tried.")
    step: StrictInt | float | None = Field(None, gt=0, description="Values low + k * step only.")
    log: bool = Field(False, description="Sample on a log scale (low > 0, no step).")
    choices: list[Choice] | None = Field(
        None, min_length=1, max_length=1000, description="The values tried, instead of a range."
    )

    @model_validator(mode="after")
    def _shape(self) -> Self:
        ranged = self.low is not None or self.high is not None or self.step is not None
        if self.choices is not None and (ranged or self.log):
            raise ValueError("give either choices or a range (low, high, step, log), not both")
        if ranged and (self.low is None or self.high is None):
            raise ValueError("a range needs both low and high")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError("low must not be above high")
        if self.log and (self.step is not None or self.low is None or self.low <= 0):
            raise ValueError("a log range needs low > 0 and no step")
        return self

    @property
    def ranged(self) -> bool:
        return self.low is not None


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    step: int = 1
    log: bool = False

    def size(self) -> int:
        return len(range(self.low, self.high + 1, self.step))

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def size(self) -> int:
        if self.step is None:
            raise SpaceError("a grid needs a step for every number range")
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    def values(self) -> list[float]:
        count, step = self.size(), self.step or 0.0  # size() refuses a range without a step
        return [round(self.low + k * step, 12) for k in range(count)]


@dataclass(frozen=True)
class Choices:
    options: tuple[Choice, ...]

    def size(self) -> int:
        return len(self.options)

    def values(self) -> list[Choice]:
        return list(self.options)


Dimension = IntRange | FloatRange | Choices


def _bounds(prop: Mapping[str, Any], integer: bool) -> tuple[float | None, float | None]:
    """The schema's inclusive bounds of a number (an exclusive bound moved inwards)."""
    low: float | None = prop.get("minimum")
    high: float | None = prop.get("maximum")
    if "exclusiveMinimum" in prop:
        value = prop["exclusiveMinimum"]
        low = value + 1 if integer else math.nextafter(value, math.inf)
    if "exclusiveMaximum" in prop:
        value = prop["exclusiveMaximum"]
        high = value - 1 if integer else math.nextafter(value, -math.inf)
    return low, high


def _kind(prop: Mapping[str, Any]) -> str | None:
    if "enum" in prop:
        return "enum"
    kind = prop.get("type")
    return kind if kind in ("integer", "number", "boolean") else None


def _whole(name: str, value: float) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise SpaceError(f"{name}: an integer parameter needs whole numbers, not {value!r}")
    return int(value)


def _ranged(name: str, kind: str | None, prop: Mapping[str, Any], given: SearchRange) -> Dimension:
    if kind not in ("integer", "number"):
        raise SpaceError(f"{name}: only integer and number parameters take a range; give choices")
    assert given.low is not None and given.high is not None
    low, high = _bounds(prop, kind == "integer")
    if (low is not None and given.low < low) or (high is not None and given.high > high):
        raise SpaceError(
            f"{name}: the range {given.low:g}..{given.high:g} leaves the schema's bounds "
            f"{'-inf' if low is None else f'{low:g}'}..{'inf' if high is None else f'{high:g}'}"
        )
    if kind == "integer":
        first, last = _whole(name, given.low), _whole(name, given.high)
        step = 1 if given.step is None else _whole(name, given.step)
        return IntRange(first, first + (last - first) // step * step, step, given.log)
    if given.step is None:
        return FloatRange(float(given.low), float(given.high), None, given.log)
    count = math.floor((given.high - given.low) / given.step + 1e-9)
    top = round(given.low + count * given.step, 12)
    return FloatRange(float(given.low), float(top), float(given.step))


def _chosen(name: str, kind: str | None, prop: Mapping[str, Any], given: SearchRange) -> Choices:
    if given.choices is not None:
        if kind == "enum" and any(c not in prop["enum"] for c in given.choices):
            raise SpaceError(f"{name}: choices must be among {prop['enum']}")
        if kind == "boolean" and any(not isinstance(c, bool) for c in given.choices):
            raise SpaceError(f"{name}: a boolean's choices are true and false")
        return Choices(tuple(dict.fromkeys(given.choices)))
    if kind == "boolean":
        return Choices((False, True))
    if kind == "enum":
        return Choices(tuple(prop["enum"]))
    raise SpaceError(f"{name}: give a range (low, high) or choices")


def search_space(
    schema: Mapping[str, Any],
    fixed: Mapping[str, Any] | None = None,
    ranges: Mapping[str, SearchRange] | None = None,
) -> dict[str, Dimension]:
    """The dimensions searched, by parameter name, in the schema's order; SpaceError when a
    range names an unknown or fixed parameter, leaves the schema's bounds, or nothing is left
    to search."""
    fixed = fixed or {}
    ranges = ranges or {}
    props: Mapping[str, Mapping[str, Any]] = schema.get("properties", {})
    unknown = sorted(set(ranges) - set(props))
    if unknown:
        raise SpaceError(
            f"unknown parameter(s) {', '.join(unknown)}; the strategy has {', '.join(props)}"
        )
    both = sorted(set(ranges) & set(fixed))
    if both:
        raise SpaceError(f"{', '.join(both)}: fixed in params and searched in the space")
    space: dict[str, Dimension] = {}
    for name, prop in props.items():
        if name in fixed:
            continue
        kind = _kind(prop)
        given = ranges.get(name)
        if given is not None:
            space[name] = (
                _ranged(name, kind, prop, given)
                if given.ranged
                else _chosen(name, kind, prop, given)
            )
            continue
        if kind in ("integer", "number"):
            low, high = _bounds(prop, kind == "integer")
            if low is not None and high is not None:
                space[name] = (
                    IntRange(int(low), int(high)) if kind == "integer" else FloatRange(low, high)
                )
    if not space:
        raise SpaceError("nothing to search: every parameter is fixed or has no bounds")
    return space


MAX_GRID_POINTS = 100_000
"""The most points of a grid search's space (the grid sampler lists them all)."""


def grid_size(space: Mapping[str, Dimension]) -> int:
    """Points of the space's grid; SpaceError when a number range has no step or the grid has
    more than MAX_GRID_POINTS points."""
    size = math.prod(d.size() for d in space.values())
    if size > MAX_GRID_POINTS:
        raise SpaceError(f"the grid has {size} points; at most {MAX_GRID_POINTS}: use larger steps")
    return size
