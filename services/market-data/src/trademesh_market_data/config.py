"""The market-data service's settings: one frozen class, validated at start."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from trademesh_config import ConsumerGroup, Port, SchemaName, ServiceName, ServiceSettings


class Settings(ServiceSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings."""

    service_name: ServiceName = "market-data"
    http_port: Port = 8100
    database_schema: SchemaName = "marketdata"
    consumer_group: ConsumerGroup = "market-data"
    replay_dir: Path = Field(
        Path(__file__).parent / "data",
        description="Folder of the files replay feeds may play (the bundled GOOG.csv by default).",
    )
    tick_tolerance_s: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="How far a tick may be older than the instrument's latest one and still be "
        "accepted; bars also stay open this long after their interval ends.",
    )
    tick_store: Literal["postgres", "questdb"] = Field(
        "postgres",
        description="Where ticks and bars are kept: the service's Postgres schema (embedded "
        "mode) or QuestDB (compose and Kubernetes).",
    )
    questdb_ilp_conf: SecretStr | None = Field(
        None,
        description="QuestDB ILP client configuration, e.g. http::addr=questdb:9000; (may hold "
        "a token: secret).",
    )
    questdb_pg_dsn: SecretStr | None = Field(
        None,
        description="QuestDB's Postgres-wire URL, e.g. postgresql://admin:quest@questdb:8812/qdb.",
    )
    store_buffer_rows: int = Field(
        1_000_000,
        ge=1000,
        description="Rows buffered for the tick store before dropping the oldest.",
    )
    store_batch_rows: int = Field(
        50_000,
        ge=1,
        le=1_000_000,
        description="Most rows per store write (COPY); fewer when the buffer holds fewer.",
    )
    store_flush_interval_s: float = Field(0.2, gt=0, le=60, description="Longest wait to write.")
    history_max_rows: int = Field(5000, ge=1, le=100_000, description="Largest history page.")

    @model_validator(mode="after")
    def _questdb_is_configured(self) -> Self:
        if self.tick_store == "questdb" and not (self.questdb_ilp_conf and self.questdb_pg_dsn):
            raise ValueError("tick_store=questdb needs questdb_ilp_conf and questdb_pg_dsn")
        return self
