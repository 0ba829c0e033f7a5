"""The execution service's settings: one frozen class, validated at start."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from trademesh_config import ConsumerGroup, Port, SchemaName, ServiceName, ServiceSettings
from trademesh_keystore import KeystoreSettings


class Settings(ServiceSettings, KeystoreSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings."""

    service_name: ServiceName = "execution"
    http_port: Port = 8400
    database_schema: SchemaName = "execution"
    consumer_group: ConsumerGroup = "execution"
    paper_slippage_bps: Decimal = Field(
        Decimal(0),
        ge=0,
        le=10_000,
        description="Paper venue: market and stop fills move this much.",
    )
    paper_fee_bps: Decimal = Field(
        Decimal(0), ge=0, le=10_000, description="Paper venue: fee on the filled notional."
    )
    paper_max_volume_share: Decimal | None = Field(
        None,
        gt=0,
        le=1,
        description="Paper venue: at most this share of a bar's volume fills (the rest stays open); "
        "unset: no cap.",
    )
    live_poll_interval_s: float = Field(
        0.5, gt=0, le=60, description="How often PENDING and UNKNOWN live orders are driven."
    )
    reconcile_interval_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="How often every exchange account is reconciled with its venue (also at "
        "start, when a venue answers again after being away, and on request).",
    )
    reconcile_lookback_h: float = Field(
        24.0,
        gt=0,
        le=24 * 7,
        description="How far back reconciliation compares the venue's trades with our fills "
        "(Binance answers one trade query with at most 24 hours).",
    )
    balance_refresh_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="An exchange account's balances are read from its venue and told to risk "
        "as its buying power after its fills, at most once per account this often (the last "
        "fill is always followed by a read), and at every reconciliation.",
    )
    live_streams: bool = Field(
        True,
        description="Follow each exchange account's orders on its venue's WebSocket stream "
        "where the venue has one (REST polling stays on, slower, as a safety net).",
    )
    equity_sample_interval_s: float = Field(
        60.0, gt=0, le=86_400, description="How often every account's equity is sampled."
    )
    keystore_transit_key: str = Field(
        "trademesh-execution", description="The transit key (created with derived=true)."
    )
