"""The sample event-logger: consumes every topic and logs each event (what `make run` starts until services exist)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import Field
from trademesh_bus import Bus, Delivery
from trademesh_config import ServiceSettings, load_settings
from trademesh_db import Database
from trademesh_events.topics import TOPICS
from trademesh_http.app import create_http_app
from trademesh_http.server import serve
from trademesh_observability.logging import configure_logging, get_logger
from trademesh_observability.metrics import REGISTRY
from trademesh_observability.tracing import configure_tracing


class EventLoggerSettings(ServiceSettings):
    service_name: str = "event-logger"
    http_port: int = Field(8099, ge=0, le=65535)


def create_app(settings: EventLoggerSettings) -> FastAPI:
    """The app: one consumer per topic that logs what it sees, and the standard HTTP endpoints."""
    configure_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    configure_tracing(settings.service_name)
    log = get_logger("trademesh.event_logger")
    # Only used for its readiness check: this process owns no tables.
    db = Database(settings.database_url.get_secret_value(), schema="event_logger")
    bus = Bus(settings, settings.service_name, registry=REGISTRY)

    async def log_event(event: Any, delivery: Delivery) -> None:
        log.info(
            "event",
            topic=delivery.topic,
            partition=delivery.partition,
            offset=delivery.offset,
            ce_type=delivery.envelope.type,
            ce_id=str(delivery.envelope.id),
            ce_source=delivery.envelope.source,
        )

    for spec in TOPICS:
        bus.subscribe(
            spec,
            group=f"{settings.service_name}.{spec.name}",
            handler=log_event,
            from_beginning=False,
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await bus.start()
        try:
            yield
        finally:
            await bus.stop()

    return create_http_app(
        service=settings.service_name,
        readiness={"postgres": db.check_ready, "kafka": bus.check_ready},
        lifespan=lifespan,
        ready_timeout_s=settings.ready_timeout_s,
        http=settings,
    )


def main() -> None:
    settings = load_settings(EventLoggerSettings)
    serve(create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
