"""An outbox relay process that dies (SIGKILL) after the broker acknowledged the batch and before
the rows are marked published: the window in which a real relay crash duplicates events."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg
from trademesh_bus import Bus, OutboxRelay
from trademesh_config import KafkaSettings
from trademesh_db import Database


class CrashingRelay(OutboxRelay):
    async def _after_publish(self, rows: list[asyncpg.Record]) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


async def main(schema: str) -> None:
    db = Database(os.environ["TRADEMESH_DATABASE_URL"], schema)
    await db.connect()
    bus = Bus(KafkaSettings(), "crash-relay", telemetry=False)
    await bus.start()
    await CrashingRelay(db, bus).relay_once()
    raise SystemExit("the relay should have been killed after publishing")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
