"""The strategy registry: built-ins, parameter schemas and their parameters one by one, validation,
and entry-point plug-ins."""

from __future__ import annotations

from enum import StrEnum
from importlib.metadata import EntryPoint
from typing import Literal

import pytest
from pydantic import Field
from trademesh_trading import registry as registry_module
from trademesh_trading.builtin import RsiCross
from trademesh_trading.registry import (
    InvalidParameters,
    StrategyRegistry,
    UnknownStrategy,
    parameters_of,
)
from trademesh_trading.strategy import StrategyConfig

pytestmark = pytest.mark.unit


def test_the_built_ins_are_there_with_schemas_and_rules() -> None:
    registry = StrategyRegistry(load_entry_points=False)
    assert registry.names() == [
        "bollinger_reversion",
        "donchian_breakout",
        "rsi_cross",
        "sma_cross",
    ]
    schema = registry.schema("rsi_cross")
    assert set(schema["properties"]) == {"period", "oversold", "overbought"}
    assert schema["properties"]["period"]["minimum"] == 2
    assert "crosses *up*" in registry.describe("rsi_cross")


def test_create_validates_parameters_without_echoing_them() -> None:
    registry = StrategyRegistry(load_entry_points=False)
    strategy = registry.create("sma_cross", {"fast": 5, "slow": 50})
    assert strategy.config.fast == 5
    with pytest.raises(InvalidParameters) as raised:
        registry.create("sma_cross", {"fast": "secret-looking-value", "slow": 50})
    assert raised.value.errors[0]["loc"] == ["fast"]
    assert "secret-looking-value" not in str(raised.value.errors)
    with pytest.raises(UnknownStrategy):
        registry.create("martingale", {})


def test_entry_points_add_strategies_and_a_broken_one_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Plugin(RsiCross):
        name = "plugin_rsi"

    registry_module.__dict__["_TestPlugin"] = Plugin  # importable as module:attribute
    points = [
        EntryPoint("plugin_rsi", "trademesh_trading.registry:_TestPlugin", "trademesh.strategies"),
        EntryPoint("broken", "no_such_module_anywhere:Thing", "trademesh.strategies"),
    ]
    monkeypatch.setattr(registry_module, "entry_points", lambda group: points)
    try:
        registry = StrategyRegistry()
    finally:
        del registry_module.__dict__["_TestPlugin"]
    assert "plugin_rsi" in registry.names() and "broken" not in registry.names()
    assert registry.get("plugin_rsi") is Plugin


def test_parameters_state_type_default_and_bounds_from_the_schema() -> None:
    registry = StrategyRegistry(load_entry_points=False)
    sma = {p.name: p for p in registry.parameters("sma_cross")}
    assert list(sma) == ["fast", "slow", "short"]
    fast = sma["fast"]
    assert (fast.type, fast.default, fast.minimum, fast.maximum, fast.required) == (
        "integer", 10, 1, 1000, False,
    )  # fmt: skip
    assert fast.bounds() == "1 <= fast <= 1000"
    assert (sma["short"].type, sma["short"].default, sma["short"].bounds()) == (
        "boolean",
        False,
        "",
    )
    oversold = {p.name: p for p in registry.parameters("rsi_cross")}["oversold"]
    assert (oversold.exclusive_minimum, oversold.exclusive_maximum) == (0, 100)
    assert oversold.bounds() == "0 < oversold < 100"
    assert oversold.description == "Buy when RSI crosses up through it."


def test_the_summary_says_a_strategy_is_long_only_unless_told_to_short() -> None:
    registry = StrategyRegistry(load_entry_points=False)
    assert registry.summary("sma_cross") == "Moving-average crossover, long only unless `short`."
    assert registry.summary("rsi_cross") == "RSI cross, long only."


class _Mode(StrEnum):
    FAST = "fast"
    SLOW = "slow"


class _RichConfig(StrategyConfig):
    mode: _Mode = _Mode.FAST
    lookback: int | None = Field(None, ge=5, description="Bars to look back; none: all.")
    label: Literal["a", "b"] = "a"
    threshold: float = Field(gt=0.5)


def test_optional_enum_and_required_parameters_are_read_through_the_schema() -> None:
    found = {p.name: p for p in parameters_of(_RichConfig.model_json_schema())}
    assert (found["mode"].type, found["mode"].choices, found["mode"].default) == (
        "string", ["fast", "slow"], "fast",
    )  # fmt: skip
    assert found["mode"].bounds() == "one of fast, slow"
    lookback = found["lookback"]
    assert (lookback.type, lookback.minimum, lookback.default) == ("integer | null", 5, None)
    assert found["label"].choices == ["a", "b"]
    threshold = found["threshold"]
    assert threshold.required and threshold.bounds() == "0.5 < threshold"
