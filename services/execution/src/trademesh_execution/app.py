"""The execution app factory: wires settings, database, bus, the orders runtime and the API; no work at import."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from trademesh_keystore import keystore_from
from trademesh_service import service_app, service_lifespan, wire
from trademesh_trading.fills import FillModel

from trademesh_execution.api import api_router
from trademesh_execution.api.deps import Runtime
from trademesh_execution.book_metrics import BookMetrics
from trademesh_execution.config import Settings
from trademesh_execution.credentials import CredentialVault
from trademesh_execution.handlers import register_handlers
from trademesh_execution.store import ExecutionStore
from trademesh_execution.streams import OrderStreams
from trademesh_execution.usecases.balances import BalanceRefresher
from trademesh_execution.usecases.equity import EquitySampler
from trademesh_execution.usecases.live import LiveOrders, VenueFactory, ccxt_venue
from trademesh_execution.usecases.orders import Orders
from trademesh_execution.usecases.reconcile import Reconciler

MIGRATIONS = Path(__file__).parent / "migrations"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = _utc_now,
    venue_factory: VenueFactory | None = None,
) -> FastAPI:
    """The service: approved orders placed on their account's venue (the paper venue, or a live
    one through ccxt: sent by the live driver, followed on the venue's order stream where it has
    one and polled otherwise, reconciled at start, every reconcile_interval_s and on reconnect,
    its account's venue balances told to risk after its fills and at every reconciliation),
    paper fills from md.bars.v1 and md.ticks.v1, every order change on orders.events.v1 and every
    discrepancy on orders.discrepancies.v1 through the outbox, its API under /api/v1, and
    /health, /ready (Postgres and Kafka checked for real), /metrics."""
    wiring = wire(settings, __name__)
    log, bus, database = wiring.log, wiring.bus, wiring.database
    service = settings.service_name
    store = ExecutionStore(database)
    orders = Orders(
        db=database,
        store=store,
        outbox=bus.outbox,
        fill_model=FillModel(
            slippage_bps=settings.paper_slippage_bps,
            fee_bps=settings.paper_fee_bps,
            max_volume_share=settings.paper_max_volume_share,
        ),
        service=service,
        clock=clock,
    )
    credentials = CredentialVault(keystore_from(settings))
    sampler = EquitySampler(database, clock=clock, interval=settings.equity_sample_interval_s)
    book_metrics = BookMetrics(database, service)
    live = LiveOrders(
        db=database,
        store=store,
        outbox=bus.outbox,
        credentials=credentials,
        venue_factory=venue_factory or ccxt_venue,
        service=service,
        clock=clock,
        poll_interval=settings.live_poll_interval_s,
    )
    balances = BalanceRefresher(
        db=database,
        store=store,
        outbox=bus.outbox,
        live=live,
        service=service,
        clock=clock,
        interval=timedelta(seconds=settings.balance_refresh_s),
    )
    reconciler = Reconciler(
        db=database,
        store=store,
        live=live,
        clock=clock,
        interval=timedelta(seconds=settings.reconcile_interval_s),
        lookback=timedelta(hours=settings.reconcile_lookback_h),
        balances=balances,
    )
    streams = OrderStreams(db=database, store=store, live=live, on_connect=reconciler.request)
    register_handlers(bus, orders, settings, database)

    lifespan = service_lifespan(
        settings,
        log=log,
        bus=bus,
        database=database,
        migrations=MIGRATIONS,
        relay_outbox=True,
        tasks=[
            sampler.run,
            book_metrics.run,
            live.run,  # its first rounds redo what a crash left
            reconciler.run,
            balances.run,
            *([streams.run] if settings.live_streams else []),
        ],
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
            orders=orders,
            credentials=credentials,
            equity=sampler,
            live=live,
            reconciler=reconciler,
            streams=streams,
            balances=balances,
        ),
        api=api_router(),
    )
