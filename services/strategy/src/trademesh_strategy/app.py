"""The strategy app factory: wires settings, database, bus, bots, backtests and the API; no work at import."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_http import ReadinessCheck, TokenVerifier, create_http_app
from trademesh_http.accounts import AccountOwners
from trademesh_http.revocations import follow_revocations
from trademesh_observability import metrics
from trademesh_observability.logging import configure_logging, get_logger
from trademesh_observability.tracing import configure_tracing
from trademesh_service import about_router, service_lifespan, service_manifest
from trademesh_trading.registry import StrategyRegistry

from trademesh_strategy.api import api_router
from trademesh_strategy.api.deps import Runtime
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
    configure_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    configure_tracing(settings.service_name)
    route_optuna_logs()
    log = get_logger("trademesh_strategy")
    service = settings.service_name
    bus = Bus(settings, service, registry=metrics.REGISTRY)
    # Every process hears what auth revokes (its own consumer group): a revoked API key or an
    # ended session is refused here too, before its token expires.
    tokens = TokenVerifier.from_settings(settings)
    follow_revocations(bus, tokens, settings.consumer_group)
    database = Database(
        settings.database_url.get_secret_value(),
        schema=settings.database_schema,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
    )
    readiness: dict[str, ReadinessCheck] = {
        "kafka": bus.check_ready,
        "postgres": database.check_ready,
    }
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
        tasks=[worker.run, optimizer.run],
        stop_timeout_s=30,
        close=[market.close, accounts.aclose],
    )

    app = create_http_app(
        service=service,
        readiness=readiness,
        lifespan=lifespan,
        ready_timeout_s=settings.ready_timeout_s,
        http=settings,
        title="trademesh strategy",
        tokens=tokens,
    )
    app.state.runtime = Runtime(
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
    )
    about = about_router(
        service_manifest(__name__), service=settings.service_name, schema=database.schema
    )
    app.include_router(about, prefix="/api/v1")
    app.include_router(api_router(), prefix="/api/v1")
    return app
