"""The lifespan's order of start and shutdown, with stand-ins for the bus and the database (the
services' own integration tests run it on the real engines)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from trademesh_service import service_lifespan

pytestmark = pytest.mark.unit


class Settings:
    service_name = "probe"
    http_port = 8123
    database_url = SecretStr("postgresql://nobody@127.0.0.1/none")
    database_migrate_on_start = True
    outbox_poll_interval_s = 1.0
    inbox_retention_h = 1.0
    outbox_retention_h = 1.0


class Recorder:
    """Stands for the bus and the database: records what the lifespan asks of it."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls, self.schema = name, calls, "probe"

    def __getattr__(self, method: str) -> Any:
        async def call() -> None:
            self.calls.append(f"{self.name}.{method}")

        return call


class Log:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.started: dict[str, Any] = {}

    def info(self, event: str, **fields: Any) -> None:
        self.calls.append(event)
        if event == "started":
            self.started = fields


def step(calls: list[str], name: str) -> Any:
    async def run() -> None:
        calls.append(name)

    return run


async def test_start_and_shutdown_run_in_the_documented_order() -> None:
    calls: list[str] = []
    log = Log(calls)

    async def task(stop: asyncio.Event) -> None:
        calls.append("task running")
        await stop.wait()
        calls.append("task stopped")

    lifespan = service_lifespan(
        Settings(),
        log=log,
        bus=Recorder("bus", calls),  # type: ignore[arg-type]
        database=Recorder("db", calls),  # type: ignore[arg-type]
        retention=False,
        prepare=[step(calls, "prepare")],
        begin=[step(calls, "begin")],
        tasks=[task],
        started=lambda: {"extra": 1},
        stopping=[step(calls, "stopping")],
        drain=[step(calls, "drain")],
        close=[step(calls, "close")],
    )
    async with lifespan(FastAPI()):
        await asyncio.sleep(0)
        calls.append("serving")
    assert calls == [
        "db.connect",
        "prepare",
        "bus.start",
        "begin",
        "started",
        "task running",
        "serving",
        "stopping",
        "task stopped",
        "drain",
        "bus.stop",
        "close",
        "db.close",
        "stopped",
    ]
    assert log.started == {"port": 8123, "extra": 1}


async def test_a_task_that_fails_or_hangs_does_not_stop_the_shutdown() -> None:
    calls: list[str] = []

    async def fails(stop: asyncio.Event) -> None:
        raise RuntimeError("broken")

    async def hangs(stop: asyncio.Event) -> None:
        await asyncio.Event().wait()

    lifespan = service_lifespan(
        Settings(),
        log=Log(calls),
        bus=Recorder("bus", calls),  # type: ignore[arg-type]
        tasks=[fails, hangs],
        stop_timeout_s=0.05,
    )
    async with lifespan(FastAPI()):
        await asyncio.sleep(0)
    assert calls == ["bus.start", "started", "bus.stop", "stopped"]


def test_migrations_without_a_database_are_refused() -> None:
    with pytest.raises(ValueError, match="need the service's database"):
        service_lifespan(
            Settings(),
            log=Log([]),
            bus=Recorder("bus", []),  # type: ignore[arg-type]
            relay_outbox=True,
        )
