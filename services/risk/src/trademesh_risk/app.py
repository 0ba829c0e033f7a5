"""The risk app factory: wires settings, database, bus, the decider, prices and the API; no work at import."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from trademesh_http.accounts import AccountOwners
from trademesh_observability import metrics
from trademesh_service import service_app, service_lifespan, wire

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
    wiring = wire(settings, __name__)
    log, bus, database = wiring.log, wiring.bus, wiring.database
    service = settings.service_name
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

    return service_app(
        settings,
        wiring,
        lifespan=lifespan,
        runtime=Runtime(
            settings=settings,
            bus=bus,
            db=database,
            store=store,
            decider=decider,
            prices=prices,
            venue_rules=venue_rules,
            accounts=accounts,
        ),
        api=api_router(),
    )
