"""The strategy registry: built-ins, parameter schemas, validation, and entry-point plug-ins."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from trademesh_trading import registry as registry_module
from trademesh_trading.builtin import RsiCross
from trademesh_trading.registry import InvalidParameters, StrategyRegistry, UnknownStrategy

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
