"""A consumer process for the crash tests: applies Tick events through the inbox, and can SIGKILL
itself once, before or after its database transaction commits (always before the offset commit)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path
from typing import Any

from trademesh_bus import Bus, Delivery
from trademesh_config import KafkaSettings
from trademesh_db import Database
from trademesh_events.marketdata import Tick
from trademesh_events.topics import TopicSpec


class CrashingBus(Bus):
    def __init__(self, *args: Any, crash: str, marker: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crash = crash
        self.marker = marker

    def _crash_once(self, point: str) -> None:
        if self.crash == point and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    async def _apply(self, *args: Any) -> None:  # type: ignore[override]
        await super()._apply(*args)
        self._crash_once("after_db_commit")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument(
        "--crash", choices=["none", "before_db_commit", "after_db_commit"], default="none"
    )
    parser.add_argument("--marker", type=Path, required=True)
    args = parser.parse_args()

    settings = KafkaSettings()
    db = Database(os.environ["TRADEMESH_DATABASE_URL"], args.schema)
    await db.connect()
    spec = TopicSpec(
        name=args.topic, events=(Tick,), key_field="instrument_id", partitions=1, description="t"
    )
    bus = CrashingBus(
        settings, "crash-consumer", telemetry=False, crash=args.crash, marker=args.marker
    )

    async def handler(event: Any, delivery: Delivery) -> None:
        await db.pool.execute("INSERT INTO deliveries (event_id) VALUES ($1)", delivery.envelope.id)
        assert delivery.conn is not None
        await delivery.conn.execute(
            "INSERT INTO applied (event_id, trade_id) VALUES ($1, $2)",
            delivery.envelope.id,
            event.trade_id,
        )
        bus._crash_once("before_db_commit")

    bus.subscribe(spec, group=args.group, handler=handler, db=db)
    await bus.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await bus.stop()
    await db.close()


if __name__ == "__main__":
    asyncio.run(main())
