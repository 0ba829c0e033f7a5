{%- set produces = cookiecutter.produces.split(',')|map('trim')|select|list -%}
"""The {{ cookiecutter.slug }} app factory: wires settings, database, bus, handlers and the API; no work at import."""

from __future__ import annotations

{% if cookiecutter.owns_schema -%}
from pathlib import Path

{% endif -%}
from fastapi import FastAPI
from trademesh_bus import Bus
from trademesh_db import Database
from trademesh_http import ReadinessCheck, TokenVerifier, create_http_app
from trademesh_http.revocations import follow_revocations
from trademesh_observability import metrics
from trademesh_observability.logging import configure_logging, get_logger
from trademesh_observability.tracing import configure_tracing
from trademesh_service import about_router, service_lifespan, service_manifest

from {{ cookiecutter.package }}.api import api_router
from {{ cookiecutter.package }}.api.deps import Runtime
from {{ cookiecutter.package }}.config import Settings
from {{ cookiecutter.package }}.handlers import register_handlers
from {{ cookiecutter.package }}.store import ActivityStore
from {{ cookiecutter.package }}.usecases.activity import ActivityLog
{%- if cookiecutter.owns_schema %}

MIGRATIONS = Path(__file__).parent / "migrations"
{%- endif %}


def create_app(settings: Settings) -> FastAPI:
    """The service: consumers on its input topics, its API under /api/v1, and /health, /ready
    (Postgres and Kafka checked for real), /metrics."""
    configure_logging(settings.service_name, level=settings.log_level, fmt=settings.log_format)
    configure_tracing(settings.service_name)
    log = get_logger("{{ cookiecutter.package }}")
    bus = Bus(settings, settings.service_name, registry=metrics.REGISTRY)
    # Every process hears what auth revokes (its own consumer group): a revoked API key or an
    # ended session is refused here too, before its token expires.
    tokens = TokenVerifier.from_settings(settings)
    follow_revocations(bus, tokens, settings.consumer_group)
    readiness: dict[str, ReadinessCheck] = {"kafka": bus.check_ready}
{%- if cookiecutter.owns_schema %}
    database = Database(
        settings.database_url.get_secret_value(),
        schema=settings.database_schema,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
    )
    db: Database | None = database
    store = ActivityStore(database)
    readiness["postgres"] = database.check_ready
{%- else %}
    db: Database | None = None
    store = ActivityStore()
{%- endif %}
    activity = ActivityLog(
        store,
{%- if produces %}
        bus,
{%- endif %}
{%- if cookiecutter.owns_schema %}
        database,
{%- endif %}
    )
    register_handlers(bus, activity, settings, db)
    # Migrate, connect, start the bus, {% if cookiecutter.owns_schema %}{% if produces %}relay the outbox, {% endif %}prune the inbox and outbox, {% endif %}and stop
    # all of it in time at shutdown (trademesh_service.lifespan); the service's own steps and
    # tasks go in as arguments.
    lifespan = service_lifespan(
        settings,
        log=log,
        bus=bus,
{%- if cookiecutter.owns_schema %}
        database=database,
        migrations=MIGRATIONS,
{%- if produces %}
        relay_outbox=True,
{%- endif %}
{%- endif %}
    )
    app = create_http_app(
        service=settings.service_name,
        readiness=readiness,
        lifespan=lifespan,
        ready_timeout_s=settings.ready_timeout_s,
        http=settings,
        title="trademesh {{ cookiecutter.slug }}",
        tokens=tokens,
    )
    app.state.runtime = Runtime(settings=settings, store=store, activity=activity, bus=bus, db=db)
    about = about_router(
        service_manifest(__name__), service=settings.service_name, schema=db.schema if db else None
    )
    app.include_router(about, prefix="/api/v1")
    app.include_router(api_router(), prefix="/api/v1")
    return app
