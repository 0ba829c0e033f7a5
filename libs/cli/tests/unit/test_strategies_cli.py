"""`trademesh strategies list` and `describe`: the registry's strategies and their parameters."""

from __future__ import annotations

import json

import pytest
from trademesh_cli.main import app
from trademesh_trading.registry import StrategyRegistry
from typer.testing import CliRunner

pytestmark = pytest.mark.unit

BUILT_IN = ("bollinger_reversion", "donchian_breakout", "rsi_cross", "sma_cross")


def test_list_names_every_strategy_with_its_summary_and_defaults() -> None:
    result = CliRunner().invoke(app, ["strategies", "list"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    for name in BUILT_IN:
        assert name in text
    assert "long only unless `short`" in text
    assert "fast=10" in text and "slow=20" in text and "short=false" in text


def test_list_as_json_is_the_registry() -> None:
    result = CliRunner().invoke(app, ["strategies", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = {s["name"]: s for s in json.loads(result.stdout)}
    assert set(BUILT_IN) <= set(listed)
    registry = StrategyRegistry()
    assert listed["rsi_cross"]["summary"] == registry.summary("rsi_cross")
    assert listed["rsi_cross"]["parameters"] == [
        p.model_dump(mode="json") for p in registry.parameters("rsi_cross")
    ]


def test_describe_gives_the_rules_and_each_parameters_type_default_and_range() -> None:
    result = CliRunner().invoke(app, ["strategies", "describe", "sma_cross"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "fast crosses *above* slow" in text  # the rules, as the docstring states them
    assert "1 <= fast <= 1000" in text and "2 <= slow <= 5000" in text
    assert "Fast SMA period." in text  # each parameter's meaning (long ones wrap in the table)
    for cell in ("integer", "boolean", "false"):
        assert cell in text


def test_describe_as_json_has_the_schema_too() -> None:
    result = CliRunner().invoke(app, ["strategies", "describe", "rsi_cross", "--json"])
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert described["schema"] == StrategyRegistry().schema("rsi_cross")
    period = next(p for p in described["parameters"] if p["name"] == "period")
    assert (period["type"], period["default"], period["minimum"], period["maximum"]) == (
        "integer", 14, 2, 500,
    )  # fmt: skip


def test_describe_of_an_unknown_strategy_names_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["strategies", "describe", "martingale"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "unknown strategy 'martingale'" in text and "sma_cross" in text
