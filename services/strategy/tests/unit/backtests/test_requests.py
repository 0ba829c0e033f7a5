"""What is submitted: a backtest's defaults and validation, a grid's, and the plain backtest of a
grid or an optimisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError
from trademesh_trading.backtest import Sizing

from trademesh_strategy.backtests.requests import BacktestRequest, GridRequest
from trademesh_strategy.optimizations import OptimizationRequest

pytestmark = pytest.mark.unit


def test_defaults_are_ten_thousand_cash_all_equity_and_no_costs(backtest: dict[str, Any]) -> None:
    request = BacktestRequest.model_validate(backtest)
    assert request.cash == Decimal(10_000)
    assert request.sizing == Sizing(kind="equity_pct", value=Decimal(100), step=Decimal(1))
    assert (request.slippage_bps, request.fee_bps) == (Decimal(0), Decimal(0))


def test_naive_datetimes_are_utc_and_others_are_converted(backtest: dict[str, Any]) -> None:
    request = BacktestRequest.model_validate(
        backtest | {"start": "2024-01-01T00:00:00", "end": "2024-06-01T02:00:00+02:00"}
    )
    assert request.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert request.start.tzinfo is UTC
    assert request.end == datetime(2024, 6, 1, tzinfo=UTC)
    assert request.end.utcoffset() == timedelta(0)
    aware = datetime(2024, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    assert BacktestRequest.model_validate(backtest | {"start": aware}).start == datetime(
        2024, 1, 1, tzinfo=UTC
    )


@pytest.mark.parametrize("end", ["2024-01-01T00:00:00Z", "2023-12-31T00:00:00Z"])
def test_an_end_not_after_the_start_is_refused(backtest: dict[str, Any], end: str) -> None:
    with pytest.raises(ValidationError, match="end must be after start"):
        BacktestRequest.model_validate(backtest | {"end": end})


@pytest.mark.parametrize(
    "change",
    [
        {"user_id": str(uuid4())},  # the owner is the caller, never the body
        {"status": "SUCCEEDED"},
        {"timeframe": "1x"},
        {"instrument_id": "no-venue"},
        {"cash": "0"},
        {"fee_bps": "-1"},
        {"slippage_bps": "-0.5"},
        {"sizing": {"kind": "equity_pct", "value": "100", "lots": 2}},
    ],
)
def test_bad_or_unknown_fields_are_refused(
    backtest: dict[str, Any], change: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        BacktestRequest.model_validate(backtest | change)


def test_the_timeframe_is_kept_as_its_label(backtest: dict[str, Any]) -> None:
    assert BacktestRequest.model_validate(backtest | {"timeframe": "15m"}).timeframe == "15m"


def test_a_grid_defaults_to_sharpe_and_its_base_is_a_backtest(backtest: dict[str, Any]) -> None:
    grid = GridRequest.model_validate(backtest | {"grid": {"fast": [2, 3]}})
    assert grid.rank_by == "sharpe"
    base = grid.base()
    assert type(base) is BacktestRequest
    assert base.model_dump() == BacktestRequest.model_validate(backtest).model_dump()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grid": {"fast": []}}, "has no values"),
        ({"grid": {}}, "at least 1 item"),
        ({"grid": {"fast": [2]}, "rank_by": "luck"}, "rank_by"),
        ({"grid": {"fast": [2]}, "owner": "me"}, "Extra inputs"),
    ],
)
def test_bad_grids_are_refused(
    backtest: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        GridRequest.model_validate(backtest | change)


def test_an_optimisations_base_is_the_backtest_without_its_search(backtest: dict[str, Any]) -> None:
    search = OptimizationRequest.model_validate(
        backtest | {"space": {"fast": {"low": 2, "high": 5}}, "trials": 7, "seed": 3}
    )
    base = search.base()
    assert type(base) is BacktestRequest
    assert base.model_dump() == BacktestRequest.model_validate(backtest).model_dump()
    plain = BacktestRequest.model_validate(backtest | {"fee_bps": "2"})
    assert plain.base() == plain
