"""The strategy app factory: wires settings, database, bus, bots, backtests and the API; no work at import."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI
from trademesh_http.accounts import AccountOwners
from trademesh_service import service_app, service_lifespan, wire
from trademesh_trading.registry import StrategyRegistry

from trademesh_strategy.api import api_router
from trademesh_strategy.api.deps import Runtime
from trademesh_strategy.approvals import ApprovalStore
from trademesh_strategy.backtests.store import BacktestStore
from trademesh_strategy.backtests.worker import BacktestWorker
from trademesh_strategy.config import Settings
from trademesh_strategy.handlers import register_handlers
from trademesh_strategy.history import MarketData
from trademesh_strategy.optimizations import (
    OptimizationStore,
    OptimizationWorker,
    route_optuna_logs,
)
from trademesh_strategy.store import BotStore
from trademesh_strategy.usecases.approvals import ApprovalDesk
from trademesh_strategy.usecases.runner import BotRuntime

MIGRATIONS = Path(__file__).parent / "migrations"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings,
    *,
    market_transport: httpx.AsyncBaseTransport | None = None,
    execution_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = _utc_now,
    registry: StrategyRegistry | None = None,
) -> FastAPI:
    """The service: bots on md.bars.v1 and orders.events.v1, backtest workers, its API under
    /api/v1, and /health, /ready (Postgres and Kafka checked for real), /metrics.

    `market_transport` and `execution_transport` let tests reach in-process market-data and
    execution apps instead of their URLs;
    `registry` lets tests add strategies (a real service loads entry points)."""
    wiring = wire(settings, __name__)
    route_optuna_logs()
    log, bus, database = wiring.log, wiring.bus, wiring.database
    service = settings.service_name
    strategies = registry or StrategyRegistry()
    market = MarketData(
        settings.market_data_url,
        transport=market_transport,
        timeout=settings.market_data_timeout_s,
    )
    bots = BotStore(database)
    accounts = AccountOwners.for_url(settings.execution_url, transport=execution_transport)
    runtime = BotRuntime(
        db=database,
        store=bots,
        registry=strategies,
        market=market,
        outbox=bus.outbox,
        service=service,
        clock=clock,
        window=settings.bot_window,
        rebuild_max_bars=settings.rebuild_max_bars,
        approvals=ApprovalStore(database),
    )
    approvals = ApprovalDesk(
        db=database,
        store=runtime.approvals,
        bots=bots,
        runtime=runtime,
        outbox=bus.outbox,
        clock=clock,
        sweep_interval_s=settings.approval_sweep_interval_s,
    )
    backtests = BacktestStore(database)
    worker = BacktestWorker(
        db=database,
        store=backtests,
        market=market,
        registry=strategies,
        settings=settings,
        service=service,
    )
    optimizations = OptimizationStore(database)
    optimizer = OptimizationWorker(
        store=optimizations,
        backtests=worker,
        registry=strategies,
        settings=settings,
    )
    register_handlers(bus, runtime, settings)

    lifespan = service_lifespan(
        settings,
        log=log,
        bus=bus,
        database=database,
        migrations=MIGRATIONS,
        relay_outbox=True,
        prepare=[runtime.resume_all],  # before consuming: the first bars find warm sessions
        tasks=[worker.run, optimizer.run, approvals.run],
        stop_timeout_s=30,
        close=[market.close, accounts.aclose],
    )

    return service_app(
        settings,
        wiring,
        lifespan=lifespan,
        runtime=Runtime(
            settings=settings,
            bus=bus,
            db=database,
            registry=strategies,
            market=market,
            bots=bots,
            runtime=runtime,
            backtests=backtests,
            accounts=accounts,
            optimizations=optimizations,
            approvals=approvals,
        ),
        api=api_router(),
    )
