"""Which strategies exist: the built-ins, plus any a package declares as a `trademesh.strategies`
entry point (so `pip install my-strategies` adds them without touching the service)."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

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
