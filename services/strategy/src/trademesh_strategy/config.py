"""The strategy service's settings: one frozen class, validated at start."""

from __future__ import annotations

from pydantic import Field, SecretStr
from trademesh_config import (
    ConsumerGroup,
    Port,
    SchemaName,
    ServiceName,
    ServiceSettings,
    ServiceUrl,
)


class Settings(ServiceSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings."""

    service_name: ServiceName = "strategy"
    http_port: Port = 8200
    database_schema: SchemaName = "strategy"
    consumer_group: ConsumerGroup = "strategy"
    market_data_url: ServiceUrl = Field(
        "http://127.0.0.1:8100",
        description="market-data's base URL: its history API warms bots and feeds backtests.",
    )
    execution_url: ServiceUrl = Field(
        "http://127.0.0.1:8400",
        description="execution's base URL: a bot starts only on its owner's account.",
    )
    market_data_timeout_s: float = Field(10.0, gt=0, le=300, description="Per history request.")
    bot_window: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Bars a bot's strategy sees in ctx.bars (at least its warm-up).",
    )
    rebuild_max_bars: int = Field(
        100_000,
        ge=1,
        le=10_000_000,
        description="Most bars replayed to rebuild a bot's strategy state after a restart; a bot "
        "that has seen more is rebuilt from its latest bars only.",
    )
    backtest_workers: int = Field(
        2, ge=1, le=64, description="Worker processes that run backtests (a grid runs across them)."
    )
    backtest_max_bars: int = Field(
        2_000_000, ge=1, description="Largest range, in bars, a submitted backtest may cover."
    )
    grid_max_combinations: int = Field(
        500, ge=1, le=100_000, description="Most parameter combinations in one grid search."
    )
    optimization_max_trials: int = Field(
        2_000,
        ge=1,
        le=1_000_000,
        description="Most trials of one optimisation, all its walk-forward folds together.",
    )
    backtest_poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often idle backtest workers look for queued backtests."
    )
    approval_link_key: SecretStr | None = Field(
        None,
        min_length=32,
        description="The HMAC key of the signed approve/reject links in notifications "
        "(TRADEMESH_APPROVAL_LINK_KEY, shared with notify; at least 32 characters). Unset: the "
        "links are off (answered 404) and owners decide through the API only.",
    )
    approval_sweep_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often pending approvals past their expiry expire."
    )
