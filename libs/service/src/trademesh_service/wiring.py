"""What every app factory starts from and ends with: logging and tracing set up, the bus, the
callers' token verifier kept current with auth's revocations, the database of the schema the
service owns and the readiness checks of both (`wire`); then the HTTP app with the service's
runtime, the about route and its API under /api/v1 (`service_app`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from trademesh_bus import Bus
from trademesh_config import ServiceSettings
from trademesh_db import Database
from trademesh_http import ReadinessCheck, TokenVerifier, create_http_app
from trademesh_http.revocations import follow_revocations
from trademesh_observability import metrics
from trademesh_observability.logging import configure_logging, get_logger
from trademesh_observability.tracing import configure_tracing

from trademesh_service.about import about_router
from trademesh_service.lifespan import Lifespan
from trademesh_service.manifest import ServiceManifest, service_manifest


@dataclass(frozen=True)
class Wiring:
    """The platform parts of one service, made by `wire`."""

    manifest: ServiceManifest
    log: Any
    bus: Bus
    #: The database of the schema the service owns; None for a service that owns none.
    db: Database | None
    #: The callers' token verifier; None where the service makes its own (auth).
    tokens: TokenVerifier | None
    #: The readiness checks so far (kafka, postgres); a service adds its own.
    readiness: dict[str, ReadinessCheck]

    @property
    def database(self) -> Database:
        """The database of a service that owns a schema (its manifest names one)."""
        if self.db is None:
            raise RuntimeError(f"{self.manifest.name} owns no schema: it has no database")
        return self.db


def wire(
    settings: ServiceSettings,
    module: str,
    *,
    session_role: str | None = None,
    verify_tokens: bool = True,
    auth_transport: httpx.AsyncBaseTransport | None = None,
) -> Wiring:
    """The platform parts of the service whose package holds `module` (pass `__name__`).

    Logging and tracing are configured for `settings.service_name`; the bus reports to the
    platform's metrics. With `verify_tokens` the callers' access tokens are verified against
    auth's JWKS (through `auth_transport` when given) and every process hears what auth revokes
    (a consumer group of its own), so a revoked API key or an ended session is refused here too,
    before its token expires. A service whose manifest names a schema gets its database
    (`session_role`: the role its connections SET ROLE to) and a Postgres readiness check.
    """
    manifest = service_manifest(module)
    service = settings.service_name
    configure_logging(service, level=settings.log_level, fmt=settings.log_format)
    configure_tracing(service)
    bus = Bus(settings, service, registry=metrics.REGISTRY)
    tokens: TokenVerifier | None = None
    if verify_tokens:
        options = {"transport": auth_transport} if auth_transport is not None else {}
        tokens = TokenVerifier.from_settings(settings, **options)
        follow_revocations(bus, tokens, settings.consumer_group)
    readiness: dict[str, ReadinessCheck] = {"kafka": bus.check_ready}
    db: Database | None = None
    if manifest.schema is not None:
        db = Database(
            settings.database_url.get_secret_value(),
            schema=getattr(settings, "database_schema", manifest.schema),
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
            session_role=session_role,
        )
        readiness["postgres"] = db.check_ready
    return Wiring(
        manifest=manifest,
        log=get_logger(manifest.module),
        bus=bus,
        db=db,
        tokens=tokens,
        readiness=readiness,
    )


def service_app(
    settings: ServiceSettings,
    wiring: Wiring,
    *,
    lifespan: Lifespan,
    runtime: object,
    api: APIRouter,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    **options: Any,
) -> FastAPI:
    """The service's HTTP app (trademesh_http.create_http_app): its readiness checks (the
    wiring's unless given), `lifespan`, `runtime` as app.state.runtime, the about route and
    `api` under /api/v1. `options` go to create_http_app (description, openapi, inputs, ...)."""
    options.setdefault("tokens", wiring.tokens)
    app = create_http_app(
        service=settings.service_name,
        readiness=wiring.readiness if readiness is None else readiness,
        lifespan=lifespan,
        ready_timeout_s=settings.ready_timeout_s,
        http=settings,
        title=f"trademesh {wiring.manifest.name}",
        **options,
    )
    app.state.runtime = runtime
    schema = wiring.db.schema if wiring.db is not None else None
    about = about_router(wiring.manifest, service=settings.service_name, schema=schema)
    app.include_router(about, prefix="/api/v1")
    app.include_router(api, prefix="/api/v1")
    return app
