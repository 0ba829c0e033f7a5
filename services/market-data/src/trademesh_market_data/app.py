"""The market-data app factory: wires settings, database, bus, tick store, feeds and the API; no work at import."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from trademesh_events.marketdata import Bar, Tick
from trademesh_service import service_app, service_lifespan, wire

from trademesh_market_data.api import api_router
from trademesh_market_data.api.deps import Runtime
from trademesh_market_data.catalog import Catalog
from trademesh_market_data.clock import Clock, SystemClock
from trademesh_market_data.config import Settings
from trademesh_market_data.handlers import register_handlers
from trademesh_market_data.questdb import QuestDbTickStore
from trademesh_market_data.tickstore import PostgresTickStore, TickStore
from trademesh_market_data.usecases.manager import FeedManager
from trademesh_market_data.writer import BufferedWriter

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """The service: its feeds (enabled ones start with it), its API under /api/v1, and /health,
    /ready (Postgres and Kafka checked for real), /metrics."""
    wiring = wire(settings, __name__)
    log, bus, database = wiring.log, wiring.bus, wiring.database
    service = settings.service_name
    questdb: QuestDbTickStore | None = None
    store: TickStore
    if settings.tick_store == "questdb":
        assert settings.questdb_ilp_conf is not None and settings.questdb_pg_dsn is not None
        questdb = QuestDbTickStore(
            settings.questdb_ilp_conf.get_secret_value(), settings.questdb_pg_dsn.get_secret_value()
        )
        store = questdb
        wiring.readiness["questdb"] = questdb.check_ready
    else:
        store = PostgresTickStore(database)
    ticks_writer = BufferedWriter[Tick](
        store.write_ticks,
        service=service,
        table="ticks",
        capacity=settings.store_buffer_rows,
        batch_size=settings.store_batch_rows,
        flush_interval=settings.store_flush_interval_s,
    )
    bars_writer = BufferedWriter[Bar](
        store.write_bars,
        service=service,
        table="bars",
        capacity=settings.store_buffer_rows,
        batch_size=1000,
        flush_interval=settings.store_flush_interval_s,
    )
    catalog = Catalog(database)
    feeds = FeedManager(
        db=database,
        bus=bus,
        ticks_writer=ticks_writer,
        bars_writer=bars_writer,
        clock=clock or SystemClock(),
        service=service,
        replay_dir=settings.replay_dir,
        tolerance=timedelta(seconds=settings.tick_tolerance_s),
    )
    register_handlers(bus, settings)

    async def start_enabled_feeds() -> None:
        for record in await catalog.feeds(enabled_only=True):
            feeds.start(record)

    lifespan = service_lifespan(
        settings,
        log=log,
        bus=bus,
        database=database,
        migrations=MIGRATIONS,
        retention=False,  # no inbox or outbox: it consumes nothing and publishes directly
        prepare=[questdb.connect] if questdb is not None else [],  # creates its missing tables
        begin=[start_enabled_feeds],
        tasks=[ticks_writer.run, bars_writer.run],
        # The feeds stop first; then the writers flush what the feeds left, and end.
        stopping=[feeds.stop_all],
        stop_timeout_s=30,
        close=[questdb.close] if questdb is not None else [],
    )

    return service_app(
        settings,
        wiring,
        lifespan=lifespan,
        runtime=Runtime(
            settings=settings, bus=bus, db=database, catalog=catalog, store=store, feeds=feeds
        ),
        api=api_router(),
    )
