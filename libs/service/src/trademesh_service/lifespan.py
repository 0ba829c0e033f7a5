"""The lifespan every service runs: migrate, connect, start the bus, run the outbox relay, the
retention and the service's own tasks, and at shutdown stop them within a time limit.

A service passes what is its own as steps at fixed points, so that a fix to the order of start
and shutdown is made here once:

    migrate (dbmate, when settings.database_migrate_on_start) -> database.connect -> prepare
    -> bus.start -> begin -> tasks (outbox relay, retention, the service's) -> "started"
    ... serving ...
    stopping -> tasks told to stop, awaited up to stop_timeout_s -> drain -> bus.stop -> close
    -> database.close -> "stopped"
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI
from pydantic import SecretStr
from trademesh_bus import Bus, OutboxRelay, Retention
from trademesh_db import Database, migrate
from trademesh_observability import metrics

Step = Callable[[], Awaitable[object]]
Task = Callable[[asyncio.Event], Coroutine[Any, Any, object]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class LifespanSettings(Protocol):
    """The settings the lifespan reads (trademesh_config.ServiceSettings has them all)."""

    @property
    def service_name(self) -> str: ...
    @property
    def http_port(self) -> int: ...
    @property
    def database_url(self) -> SecretStr: ...
    @property
    def database_migrate_on_start(self) -> bool: ...
    @property
    def outbox_poll_interval_s(self) -> float: ...
    @property
    def inbox_retention_h(self) -> float: ...
    @property
    def outbox_retention_h(self) -> float: ...


def service_lifespan(
    settings: LifespanSettings,
    *,
    log: Any,
    bus: Bus,
    database: Database | None = None,
    migrations: Path | None = None,
    relay_outbox: bool = False,
    retention: bool = True,
    prepare: Sequence[Step] = (),
    begin: Sequence[Step] = (),
    tasks: Sequence[Task] = (),
    started: Callable[[], Mapping[str, object]] | None = None,
    stopping: Sequence[Step] = (),
    stop_timeout_s: float = 10.0,
    drain: Sequence[Step] = (),
    close: Sequence[Step] = (),
) -> Lifespan:
    """The lifespan of a service on `bus` and, where it owns a schema, `database`.

    - `migrations`: the service's migration folder, applied before the database connects
      (dbmate holds an advisory lock: replicas starting together migrate once).
    - `relay_outbox`: publish what the service writes to its outbox (trademesh_bus.outbox);
      `retention`: prune its inbox and outbox (trademesh_bus.retention). Both need `database`.
    - `prepare`: steps after the database connects and before the bus starts (what the first
      consumed event needs); `begin`: steps once the bus runs.
    - `tasks`: each runs until the stop event is set, after the relay and the retention.
    - `started`: extra fields of the "started" log line, asked once everything runs.
    - at shutdown, `stopping` steps first; then the tasks are told to stop and awaited for at most
      `stop_timeout_s` (what they raise is not re-raised: shutdown goes on); `drain` steps
      before the bus stops, `close` steps after it and before the database closes.
    """
    if database is None and (migrations is not None or relay_outbox):
        raise ValueError("migrations and the outbox relay need the service's database")
    service = settings.service_name

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if database is not None:
            if migrations is not None and settings.database_migrate_on_start:
                output = await asyncio.to_thread(
                    migrate,
                    settings.database_url.get_secret_value(),
                    database.schema,
                    [migrations],
                )
                applied = output.count("Applied:")
                metrics.DB_MIGRATIONS_APPLIED.labels(service=service).inc(applied)
                log.info("migrations applied", schema=database.schema, applied=applied)
            await database.connect()
        for step in prepare:
            await step()
        await bus.start()
        for step in begin:
            await step()
        stop = asyncio.Event()
        runs: list[Task] = []
        if database is not None and relay_outbox:
            relay = OutboxRelay(database, bus, poll_interval=settings.outbox_poll_interval_s)
            runs.append(relay.run)
        if database is not None and retention:
            runs.append(Retention.from_settings(database, settings).run)
        running = [asyncio.create_task(run(stop)) for run in (*runs, *tasks)]
        log.info("started", port=settings.http_port, **(started() if started else {}))
        try:
            yield
        finally:
            for step in stopping:
                await step()
            stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*running, return_exceptions=True), stop_timeout_s
                )
            for step in drain:
                await step()
            await bus.stop()
            for step in close:
                await step()
            if database is not None:
                await database.close()
            log.info("stopped")

    return lifespan
