"""The audit app factory: wires settings, database (as the log's writer role), bus, handlers and the
API; no work at import."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_db import Database, migrate
from trademesh_http import ReadinessCheck, TokenVerifier, create_http_app
from trademesh_observability import metrics
from trademesh_observability.logging import configure_logging, get_logger
from trademesh_observability.tracing import configure_tracing

from trademesh_audit.api import api_router
from trademesh_audit.api.deps import Runtime
from trademesh_audit.config import Settings
from trademesh_audit.handlers import register_handlers
from trademesh_audit.store import WRITER_ROLE, AuditStore

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings) -> FastAPI:
    """The service: every order, bot and auth event appended to the hash-chained log, search and
    verification under /api/v1 (admins only), and /health, /ready (Postgres and Kafka checked for
    real), /metrics.

    Migrations run as the login user; the pool's connections then SET ROLE to the writer role,
    which cannot update, delete or truncate the log."""
    configure_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    configure_tracing(settings.service_name)
    log = get_logger("trademesh_audit")
    bus = Bus(settings, settings.service_name, registry=metrics.REGISTRY)
    readiness: dict[str, ReadinessCheck] = {"kafka": bus.check_ready}
    database = Database(
        settings.database_url.get_secret_value(),
        schema=settings.database_schema,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
        session_role=WRITER_ROLE,
    )
    store = AuditStore(database)
    readiness["postgres"] = database.check_ready
    register_handlers(bus, store, settings, database)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.database_migrate_on_start:
            # dbmate holds an advisory lock: replicas starting together migrate once.
            output = await asyncio.to_thread(
                migrate, settings.database_url.get_secret_value(), database.schema, [MIGRATIONS]
            )
            applied = output.count("Applied:")
            metrics.DB_MIGRATIONS_APPLIED.labels(service=settings.service_name).inc(applied)
            log.info("migrations applied", schema=database.schema, applied=applied)
        await database.connect()
        await bus.start()
        log.info("started", port=settings.http_port)
        try:
            yield
        finally:
            await bus.stop()
            await database.close()
            log.info("stopped")

    app = create_http_app(
        service=settings.service_name,
        readiness=readiness,
        lifespan=lifespan,
        ready_timeout_s=settings.ready_timeout_s,
        http=settings,
        title="trademesh audit",
        tokens=TokenVerifier.from_settings(settings),
    )
    app.state.runtime = Runtime(settings=settings, store=store, bus=bus, db=database)
    app.include_router(api_router(), prefix="/api/v1")
    return app
