"""Which strategies exist: the built-ins, plus any a package declares as a `trademesh.strategies`
entry point (so `pip install my-strategies` adds them without touching the service)."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trademesh_trading.builtin import BUILTIN
from trademesh_trading.strategy import Strategy

log = logging.getLogger("trademesh.trading.registry")

ENTRY_POINT_GROUP = "trademesh.strategies"


class UnknownStrategy(KeyError):
    pass


class InvalidParameters(ValueError):
    """Parameters outside the strategy's schema; `errors` says where and why (no values)."""

    def __init__(self, strategy: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"invalid parameters for {strategy}")
        self.strategy = strategy
        self.errors = errors


class Parameter(BaseModel):
    """One parameter of a strategy, read from its JSON Schema: what `params` takes, for people
    (the schema itself stays the contract). Rules across parameters (fast below slow) are not
    here: the strategy's description states them, and creating it checks them."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: str = Field(description="JSON Schema type: integer, number, boolean, string, ...")
    required: bool = Field(description="True when it has no default.")
    default: Any = Field(None, description="The value when it is not given.")
    minimum: float | None = Field(None, description="Lowest value allowed (inclusive).")
    maximum: float | None = Field(None, description="Highest value allowed (inclusive).")
    exclusive_minimum: float | None = Field(None, description="Values must be above it.")
    exclusive_maximum: float | None = Field(None, description="Values must be below it.")
    choices: list[Any] | None = Field(None, description="The only values allowed, if listed.")
    description: str = ""

    def bounds(self) -> str:
        """The allowed range as text: `2 <= period <= 500`, `0 < k <= 10`, `one of a, b`; empty
        when the schema sets none."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        low = (
            f"{_number(self.exclusive_minimum)} < "
            if self.exclusive_minimum is not None
            else f"{_number(self.minimum)} <= "
            if self.minimum is not None
            else ""
        )
        high = (
            f" < {_number(self.exclusive_maximum)}"
            if self.exclusive_maximum is not None
            else f" <= {_number(self.maximum)}"
            if self.maximum is not None
            else ""
        )
        return f"{low}{self.name}{high}" if low or high else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def parameters_of(schema: dict[str, Any]) -> list[Parameter]:
    """The parameters of an object's JSON Schema (as pydantic writes it), in its order: an
    optional one (`anyOf` with null) reads `integer | null`, its bounds from the non-null part;
    an enum (inline or through `$defs`) lists its choices."""
    definitions: dict[str, Any] = schema.get("$defs", {})

    def resolved(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return {**definitions.get(ref.removeprefix("#/$defs/"), {}), **node}
        return node

    required = set(schema.get("required", []))
    found: list[Parameter] = []
    for name, raw in schema.get("properties", {}).items():
        node = resolved(raw)
        parts = [resolved(p) for p in node.get("anyOf", [node])]
        types: list[str] = []
        for part in parts:
            kind = part.get("type") or ("enum" if "enum" in part else "any")
            if kind not in types:
                types.append(str(kind))
        bounded = next((p for p in parts if p.get("type") != "null"), node)
        choices = bounded.get("enum", [bounded["const"]] if "const" in bounded else None)
        found.append(
            Parameter(
                name=name,
                type=" | ".join(types),
                required=name in required,
                default=node.get("default"),
                minimum=bounded.get("minimum"),
                maximum=bounded.get("maximum"),
                exclusive_minimum=bounded.get("exclusiveMinimum"),
                exclusive_maximum=bounded.get("exclusiveMaximum"),
                choices=choices,
                description=str(node.get("description", "")),
            )
        )
    return found


class StrategyRegistry:
    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._classes: dict[str, type[Strategy[Any]]] = {}
        for cls in BUILTIN:
            self.register(cls)
        if load_entry_points:
            self._load_entry_points()

    def register(self, cls: type[Strategy[Any]]) -> None:
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__name__} has no `name`")
        if not isinstance(getattr(cls, "config_class", None), type):
            raise TypeError(f"{cls.__name__} has no `config_class`")
        existing = self._classes.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"two strategies are named {name!r}")
        self._classes[name] = cls

    def _load_entry_points(self) -> None:
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = point.load()
                self.register(loaded)
            except Exception:
                # One broken plug-in must not take the built-ins (or the service) down with it.
                log.exception("strategy entry point failed to load", extra={"entry": point.name})

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[Strategy[Any]]:
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownStrategy(name) from None

    def schema(self, name: str) -> dict[str, Any]:
        """The JSON Schema of the strategy's parameters."""
        return self.get(name).config_class.model_json_schema()

    def describe(self, name: str) -> str:
        return (self.get(name).__doc__ or "").strip()

    def summary(self, name: str) -> str:
        """The first line of the strategy's description (`RSI cross, long only.`)."""
        return self.describe(name).partition("\n")[0].strip()

    def parameters(self, name: str) -> list[Parameter]:
        """The strategy's parameters one by one: type, default, bounds, description."""
        return parameters_of(self.schema(name))

    def create(self, name: str, parameters: dict[str, Any]) -> Strategy[Any]:
        """A strategy instance with validated parameters."""
        cls = self.get(name)
        try:
            config = cls.config_class.model_validate(parameters)
        except ValidationError as exc:
            errors = [
                {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_input=False, include_url=False)
            ]
            raise InvalidParameters(name, errors) from None
        return cls(config)
