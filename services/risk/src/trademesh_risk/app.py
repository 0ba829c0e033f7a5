"""The risk app factory: wires settings, database, bus, the decider, prices and the API; no work at import."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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

from trademesh_risk.api import api_router
from trademesh_risk.api.deps import Runtime
from trademesh_risk.config import Settings
from trademesh_risk.handlers import register_handlers
from trademesh_risk.store import RiskStore
from trademesh_risk.usecases.decider import Decider
from trademesh_risk.usecases.prices import PriceBook
from trademesh_risk.venue_rules import VenueRules

MIGRATIONS = Path(__file__).parent / "migrations"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _set(values: object) -> dict[str, str]:
    """A dataclass's fields that are set, as text (for the start log)."""
    return {k: str(v) for k, v in vars(values).items() if v is not None}


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = _utc_now,
    ccxt_config: Mapping[str, Mapping[str, Any]] | None = None,
    execution_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The service: intents decided on orders.intents.v1, exposure from orders.events.v1, prices
    from md.ticks.v1 and md.bars.v1, the venues' instrument rules loaded at start and every
    venue_rules_refresh_s, its API under /api/v1, and /health, /ready (Postgres and Kafka
    checked for real), /metrics. `ccxt_config` replaces the ccxt configuration of the exchanges
    it names (tests point ccxt at a local venue with it); `execution_transport` lets tests
    reach an in-process execution (which says whose an account is) instead of its URL."""
    configure_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    configure_tracing(settings.service_name)
    log = get_logger("trademesh_risk")
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
    store = RiskStore(database)
    prices = PriceBook(store)
    decider = Decider(
        db=database,
        store=store,
        prices=prices,
        outbox=bus.outbox,
        service=service,
        clock=clock,
        default_limits=settings.default_limits(),
        instrument_bounds=settings.instrument_bounds(),
    )
    venue_rules = VenueRules(
        store,
        settings.venue_rules_exchanges,
        refresh_s=settings.venue_rules_refresh_s,
        ccxt_config=ccxt_config,
    )
    register_handlers(bus, decider, prices, settings, database)
    accounts = AccountOwners.for_url(settings.execution_url, transport=execution_transport)

    async def show_kill_switch() -> None:
        engaged, _ = await store.global_switch()
        metrics.RISK_KILL_SWITCH.labels(service=service).set(1 if engaged else 0)

    lifespan = service_lifespan(
        settings,
        log=log,
        bus=bus,
        database=database,
        migrations=MIGRATIONS,
        relay_outbox=True,
        prepare=[prices.load, show_kill_switch],
        tasks=[prices.run, venue_rules.run],
        started=lambda: {
            "default_limits": _set(decider.default_limits),
            "instrument_bounds": _set(decider.instrument_bounds),
        },
        close=[accounts.aclose],
    )

    app = create_http_app(
        service=service,
        readiness=readiness,
        lifespan=lifespan,
        ready_timeout_s=settings.ready_timeout_s,
        http=settings,
        title="trademesh risk",
        tokens=tokens,
    )
    app.state.runtime = Runtime(
        settings=settings,
        bus=bus,
        db=database,
        store=store,
        decider=decider,
        prices=prices,
        venue_rules=venue_rules,
        accounts=accounts,
    )
    about = about_router(
        service_manifest(__name__), service=settings.service_name, schema=database.schema
    )
    app.include_router(about, prefix="/api/v1")
    app.include_router(api_router(), prefix="/api/v1")
    return app
