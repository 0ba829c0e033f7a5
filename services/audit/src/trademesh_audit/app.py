"""The audit app factory: wires settings, keystore, database (as the log's writer role), bus,
handlers and the API; no work at import."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from trademesh_keystore import keystore_from
from trademesh_service import service_app, service_lifespan, wire

from trademesh_audit.api import api_router
from trademesh_audit.api.deps import Runtime
from trademesh_audit.config import Settings
from trademesh_audit.handlers import register_handlers
from trademesh_audit.keys import ChainKeys
from trademesh_audit.store import WRITER_ROLE, AuditStore
from trademesh_audit.usecases.checkpoints import CheckpointBook, Checkpointer
from trademesh_audit.usecases.log import AuditLog

MIGRATIONS = Path(__file__).parent / "migrations"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: Settings, *, clock: Callable[[], datetime] = _utc_now) -> FastAPI:
    """The service: every order, bot and auth event appended to the keyed hash chain, its head
    checkpointed to audit.checkpoints.v1, search and verification under /api/v1 (admins only),
    and /health, /ready (Postgres and Kafka checked for real), /metrics.

    Migrations run as the login user; the pool's connections then SET ROLE to the writer role,
    which cannot update, delete or truncate the log or its keys. The chain keys are opened (or
    the first one made) before the consumers start, so no event waits for them."""
    wiring = wire(settings, __name__, session_role=WRITER_ROLE)
    log, bus, database = wiring.log, wiring.bus, wiring.database
    keystore = keystore_from(settings)
    if keystore is None:
        raise ValueError(
            "audit seals its chain keys with the keystore: set TRADEMESH_KEYSTORE_KEYS and "
            "TRADEMESH_KEYSTORE_CURRENT_KEY, or TRADEMESH_KEYSTORE_VAULT_URL and _TOKEN"
        )
    keys = ChainKeys(database, keystore, clock=clock)
    store = AuditStore(database, lambda: keys.keyring)
    book = CheckpointBook(settings.database_schema)
    checkpointer = Checkpointer(store, keys, bus, chain=settings.database_schema, clock=clock)
    register_handlers(bus, AuditLog(store), book, settings, database)

    async def checkpoint_at_shutdown() -> None:
        # The rows since the last checkpoint are pinned before the service goes away.
        try:
            await asyncio.wait_for(checkpointer.checkpoint_if_grown(), 10)
        except Exception as exc:
            log.warning("no checkpoint at shutdown", error=type(exc).__name__)

    async def checkpoints(stop: asyncio.Event) -> None:
        await checkpointer.run(stop, settings.checkpoint_interval_s)

    lifespan = service_lifespan(
        settings,
        log=log,
        bus=bus,
        database=database,
        migrations=MIGRATIONS,
        prepare=[keys.ensure],  # the chain keys, before any event waits for them
        tasks=[checkpoints],
        started=lambda: {"keyed_from": keys.keyring.keyed_from},
        drain=[checkpoint_at_shutdown],
    )

    return service_app(
        settings,
        wiring,
        lifespan=lifespan,
        runtime=Runtime(
            settings=settings,
            store=store,
            keys=keys,
            book=book,
            checkpointer=checkpointer,
            bus=bus,
            db=database,
        ),
        api=api_router(),
    )
