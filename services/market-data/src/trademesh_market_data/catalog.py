"""Instruments and feed configurations, as the API takes them and the service's schema keeps them."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from trademesh_db import Database
from trademesh_events.ids import InstrumentId, UtcDateTime
from trademesh_events.money import Amount
from trademesh_trading.timeframes import Timeframe


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReplayConfig(_Config):
    kind: Literal["replay"] = "replay"
    file: str = Field("GOOG.csv", description="A CSV or Parquet file in the replay folder.")
    data: Literal["ohlcv", "trades"] = "ohlcv"
    timeframe: str = Field("1d", description="Bar length of an OHLCV file.")
    speed: float | None = Field(
        None, gt=0, description="1 = real time, N = N times faster; null = as fast as possible."
    )

    @field_validator("file")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # A name, not a path: the API must not read arbitrary files of the server.
        if not value or "/" in value or "\\" in value or value.startswith("."):
            raise ValueError("a file name in the replay folder, without a path")
        return value


class SyntheticConfig(_Config):
    kind: Literal["synthetic"] = "synthetic"
    seed: int = 1
    start_price: Annotated[Amount, Field(gt=0)] = Decimal("100")
    drift: float = Field(0.0, ge=-10, le=10, description="Per year.")
    volatility: float = Field(0.6, gt=0, le=10, description="Per year.")
    rate: float = Field(10.0, gt=0, le=1_000_000, description="Ticks per second.")
    count: int | None = Field(None, ge=1, description="Stop after this many ticks.")
    realtime: bool = Field(True, description="Pace ticks at `rate` on the clock.")
    start: UtcDateTime | None = Field(None, description="First tick time (default: now).")


class CcxtConfig(_Config):
    kind: Literal["ccxt"] = "ccxt"
    exchange: str = Field(pattern=r"^[a-z0-9_]{2,32}$", description="A ccxt exchange id.")
    symbol: str = Field(min_length=3, max_length=64, description="A ccxt symbol, e.g. BTC/USDT.")
    use_websocket: bool = True
    poll_interval_s: float = Field(2.0, ge=0.1, le=3600)


FeedConfig = Annotated[ReplayConfig | SyntheticConfig | CcxtConfig, Field(discriminator="kind")]


class FeedCreate(_Config):
    instrument_id: InstrumentId
    timeframes: list[str] = Field(
        default_factory=lambda: ["1m"], min_length=1, max_length=8, description="Bars to build."
    )
    config: FeedConfig
    enabled: bool = True
    partial_every_s: float | None = Field(
        None,
        gt=0,
        le=86400,
        description="Also publish the bar in progress (final=false) at most this often, in "
        "seconds of tick time; null: final bars only.",
    )

    @field_validator("timeframes")
    @classmethod
    def _timeframes(cls, value: list[str]) -> list[str]:
        return [Timeframe.parse(label).label for label in dict.fromkeys(value)]

    @model_validator(mode="after")
    def _one_exchange_timeframe(self) -> Self:
        if isinstance(self.config, CcxtConfig) and len(self.timeframes) != 1:
            raise ValueError("a ccxt feed takes its bars from the exchange: give one timeframe")
        return self


class FeedRecord(BaseModel):
    feed_id: UUID
    instrument_id: str
    timeframes: list[str]
    config: FeedConfig
    enabled: bool
    created_at: datetime
    partial_every_s: float | None = None

    @property
    def kind(self) -> str:
        return self.config.kind


class Catalog:
    """The `instruments` and `feeds` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_feed(self, create: FeedCreate) -> FeedRecord:
        feed_id = uuid.uuid4()
        document = {
            "timeframes": create.timeframes,
            "partial_every_s": create.partial_every_s,
            "config": create.config.model_dump(mode="json"),
        }
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO instruments (instrument_id) VALUES ($1) ON CONFLICT DO NOTHING",
                create.instrument_id,
            )
            row = await conn.fetchrow(
                "INSERT INTO feeds (feed_id, kind, instrument_id, config, enabled) "
                "VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING *",
                feed_id,
                create.config.kind,
                create.instrument_id,
                json.dumps(document),
                create.enabled,
            )
        return _record(row)

    async def feed(self, feed_id: UUID) -> FeedRecord | None:
        row = await self.db.pool.fetchrow("SELECT * FROM feeds WHERE feed_id = $1", feed_id)
        return _record(row) if row is not None else None

    async def feeds(self, *, enabled_only: bool = False) -> list[FeedRecord]:
        rows = await self.db.pool.fetch(
            "SELECT * FROM feeds WHERE enabled OR NOT $1 ORDER BY feed_id", enabled_only
        )
        return [_record(row) for row in rows]

    async def feed_page(self, after: UUID | None, limit: int) -> list[FeedRecord]:
        """Up to `limit` feeds in id order, after the given one."""
        rows = await self.db.pool.fetch(
            "SELECT * FROM feeds WHERE feed_id > $1 ORDER BY feed_id LIMIT $2",
            after or UUID(int=0),
            limit,
        )
        return [_record(row) for row in rows]

    async def set_enabled(self, feed_id: UUID, enabled: bool) -> bool:
        status = await self.db.pool.execute(
            "UPDATE feeds SET enabled = $2, updated_at = now() WHERE feed_id = $1", feed_id, enabled
        )
        return bool(status == "UPDATE 1")

    async def delete_feed(self, feed_id: UUID) -> bool:
        status = await self.db.pool.execute("DELETE FROM feeds WHERE feed_id = $1", feed_id)
        return bool(status == "DELETE 1")

    async def instruments(self, after: str | None, limit: int) -> list[str]:
        rows = await self.db.pool.fetch(
            "SELECT instrument_id FROM instruments WHERE instrument_id > $1 "
            "ORDER BY instrument_id LIMIT $2",
            after or "",
            limit,
        )
        return [row["instrument_id"] for row in rows]

    async def has_instrument(self, instrument: str) -> bool:
        found = await self.db.pool.fetchval(
            "SELECT 1 FROM instruments WHERE instrument_id = $1", instrument
        )
        return found is not None


def _record(row: Any) -> FeedRecord:
    document = json.loads(row["config"])
    return FeedRecord(
        feed_id=row["feed_id"],
        instrument_id=row["instrument_id"],
        timeframes=document["timeframes"],
        partial_every_s=document.get("partial_every_s"),
        config=document["config"],
        enabled=row["enabled"],
        created_at=row["created_at"],
    )
