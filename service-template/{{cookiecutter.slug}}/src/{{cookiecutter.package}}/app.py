{%- set produces = cookiecutter.produces.split(',')|map('trim')|select|list -%}
"""The {{ cookiecutter.slug }} app factory: wires settings, database, bus, handlers and the API; no work at import."""

from __future__ import annotations

{% if cookiecutter.owns_schema -%}
from pathlib import Path

{% endif -%}
from fastapi import FastAPI
from trademesh_service import service_app, service_lifespan, wire

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
    wiring = wire(settings, __name__)
    log, bus, db = wiring.log, wiring.bus, wiring.db
{%- if cookiecutter.owns_schema %}
    database = wiring.database
    store = ActivityStore(database)
{%- else %}
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
    return service_app(
        settings,
        wiring,
        lifespan=lifespan,
        runtime=Runtime(settings=settings, store=store, activity=activity, bus=bus, db=db),
        api=api_router(),
    )
