"""The auth app factory: wires settings, database, bus, handlers and the API; no work at import."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI
from trademesh_http.revocations import REVOCATIONS_PATH, Revocations, follow_revocations
from trademesh_http.tokens import TokenVerifier
from trademesh_keystore import keystore_from
from trademesh_service import service_app, service_lifespan, wire

from trademesh_auth.api import api_router
from trademesh_auth.api.deps import Runtime
from trademesh_auth.api.sessions import wellknown
from trademesh_auth.config import Settings
from trademesh_auth.handlers import register_handlers
from trademesh_auth.signing import SigningKeys
from trademesh_auth.store import AuthStore
from trademesh_auth.usecases.users import Users

MIGRATIONS = Path(__file__).parent / "migrations"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: Settings, *, clock: Callable[[], datetime] = _utc_now) -> FastAPI:
    """The service: users, sessions and API keys under /api/v1, the JWKS, auth.events.v1
    through the outbox, and /health, /ready (Postgres and Kafka checked for real), /metrics."""
    # Auth makes its own token verifier, on its own JWKS (below).
    wiring = wire(settings, __name__, verify_tokens=False)
    log, bus, database = wiring.log, wiring.bus, wiring.database
    keystore = keystore_from(settings)
    if keystore is None:
        raise ValueError(
            "auth seals its token signing keys with the keystore: set TRADEMESH_KEYSTORE_KEYS "
            "and TRADEMESH_KEYSTORE_CURRENT_KEY, or TRADEMESH_KEYSTORE_VAULT_URL and _TOKEN"
        )
    store = AuthStore(database)
    keys = SigningKeys(
        database, keystore, clock=clock, access_ttl=timedelta(seconds=settings.access_ttl_s)
    )
    revocations = Revocations()
    users = Users(
        db=database,
        store=store,
        outbox=bus.outbox,
        keys=keys,
        settings=settings,
        clock=clock,
        revocations=revocations,
    )
    register_handlers(bus)

    async def refresh_signing_keys(stop: asyncio.Event) -> None:
        await keys.run(stop, settings.signing_key_refresh_s)

    lifespan = service_lifespan(
        settings,
        log=log,
        bus=bus,
        database=database,
        migrations=MIGRATIONS,
        relay_outbox=True,
        prepare=[keys.ensure],
        tasks=[refresh_signing_keys],
    )

    app = service_app(
        settings,
        wiring,
        lifespan=lifespan,
        runtime=Runtime(
            settings=settings, store=store, users=users, keys=keys, bus=bus, db=database
        ),
        api=api_router(),
    )
    # Auth verifies its own access tokens like every service, against its JWKS, fetched from
    # itself in-process: so cheap that an unknown kid may refetch at once (a rotation is seen
    # as soon as it is made; other services refetch at most every few seconds).
    app.state.tokens = tokens = TokenVerifier(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        jwks_url="http://auth.internal/.well-known/jwks.json",
        transport=httpx.ASGITransport(app=app),
        min_refetch_interval_s=0.0,
        revocations_url=f"http://auth.internal{REVOCATIONS_PATH}",
        revocations=revocations,
    )
    # What another replica of auth revokes is refused here too (what this one revokes, at once).
    follow_revocations(bus, tokens, settings.consumer_group)
    app.include_router(wellknown)
    return app
