"""The notify app factory: wires settings, database, bus, handlers and the API; no work at import."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from trademesh_service import service_app, service_lifespan, wire

from trademesh_notify.api import api_router
from trademesh_notify.api.deps import Runtime
from trademesh_notify.config import Settings
from trademesh_notify.handlers import register_handlers
from trademesh_notify.store import ActivityStore
from trademesh_notify.usecases.activity import ActivityLog

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings) -> FastAPI:
    """The service: consumers on its input topics, its API under /api/v1, and /health, /ready
    (Postgres and Kafka checked for real), /metrics."""
    wiring = wire(settings, __name__)
    log, bus, db = wiring.log, wiring.bus, wiring.db
    database = wiring.database
    store = ActivityStore(database)
    activity = ActivityLog(
        store,
        database,
    )
    register_handlers(bus, activity, settings, db)
    # Migrate, connect, start the bus, prune the inbox and outbox, and stop
    # all of it in time at shutdown (trademesh_service.lifespan); the service's own steps and
    # tasks go in as arguments.
    lifespan = service_lifespan(
        settings,
        log=log,
        bus=bus,
        database=database,
        migrations=MIGRATIONS,
    )
    return service_app(
        settings,
        wiring,
        lifespan=lifespan,
        runtime=Runtime(settings=settings, store=store, activity=activity, bus=bus, db=db),
        api=api_router(),
    )
