"""The risk service's settings: one frozen class, validated at start."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, field_validator
from trademesh_config import (
    ConsumerGroup,
    Port,
    SchemaName,
    ServiceName,
    ServiceSettings,
    ServiceUrl,
)
from trademesh_exchange.exchanges import known_exchange

from trademesh_risk.engine import InstrumentRules, Limits

ExchangeId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}$")]


def _off_is_none(value: Any) -> Any:
    """`off` (any case) turns a default limit off: said explicitly, never by leaving it empty."""
    if isinstance(value, str) and value.strip().lower() == "off":
        return None
    return value


Amount = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
DefaultLimit = Annotated[Amount | None, BeforeValidator(_off_is_none)]


class Settings(ServiceSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings."""

    service_name: ServiceName = "risk"
    http_port: Port = 8300
    database_schema: SchemaName = "risk"
    consumer_group: ConsumerGroup = "risk"
    execution_url: ServiceUrl = Field(
        "http://127.0.0.1:8400",
        description="execution's base URL: it keeps accounts and says whose an account is.",
    )
    venue_rules_exchanges: list[ExchangeId] = Field(
        default_factory=list,
        description=(
            "The ccxt exchange ids whose public market info (price and quantity steps, minimum "
            "quantity and notional) is loaded into the instrument rules, at start and every "
            "venue_rules_refresh_s. Empty (the default, e.g. offline tests) fetches nothing; a "
            "deployment trading on Binance sets TRADEMESH_VENUE_RULES_EXCHANGES='[\"binance\"]'."
        ),
    )
    venue_rules_refresh_s: float = Field(
        3600.0,
        ge=60,
        le=7 * 86400,
        description="How often the venue rules are loaded again (venues change them rarely).",
    )

    # Every account's limits unless an admin gives it others (see the decision record on default
    # risk limits). Sized for a paper account of about 100,000 in the quote currency.
    default_max_order_notional: DefaultLimit = Field(
        Decimal(100_000),
        description=(
            "The largest order, quantity x price (limit price, else last price), in the quote "
            "currency: a new paper account's whole cash. `off` for no default."
        ),
    )
    default_max_order_quantity: DefaultLimit = Field(
        Decimal(1_000_000),
        description=(
            "The largest quantity of one order, of any instrument. Under the notional default it "
            "binds only below 0.10 a unit, or when a made-up limit price hides an order's size. "
            "`off` for no default."
        ),
    )
    default_price_collar_bps: DefaultLimit = Field(
        Decimal(1_000),
        description=(
            "How far (in basis points) a limit or stop price may be from the last price: 10%, "
            "which every misplaced decimal point (10x, 1/10) is beyond. `off` for no default."
        ),
    )
    instrument_max_quantity: Amount = Field(
        Decimal(10) ** 12,
        description=(
            "The largest quantity of an order of an instrument whose venue states none (and no "
            "admin set one). No setting turns it off."
        ),
    )
    instrument_max_price: Amount = Field(
        Decimal(10) ** 12,
        description=(
            "The largest limit or stop price of an instrument whose venue states none (and no "
            "admin set one), in its quote currency; above any price a unit of anything trades "
            "at, even in currencies of many digits. No setting turns it off."
        ),
    )

    def default_limits(self) -> Limits:
        """The limits every account has unless an admin sets others for it."""
        return Limits(
            max_order_notional=self.default_max_order_notional,
            max_order_quantity=self.default_max_order_quantity,
            price_collar_bps=self.default_price_collar_bps,
        )

    def instrument_bounds(self) -> InstrumentRules:
        """The maxima of an instrument whose venue and admin set none."""
        return InstrumentRules(
            max_quantity=self.instrument_max_quantity, max_price=self.instrument_max_price
        )

    @field_validator("venue_rules_exchanges")
    @classmethod
    def _known_to_ccxt(cls, exchanges: list[str]) -> list[str]:
        # A typo would otherwise only show up as a failing sync an hour later. (ccxt is imported
        # only when needed, by known_exchange: importing it takes seconds.)
        if not exchanges:
            return exchanges
        unknown = [e for e in exchanges if not known_exchange(e)]
        if unknown:
            raise ValueError(f"not ccxt exchange ids: {', '.join(unknown)}")
        if len(set(exchanges)) != len(exchanges):
            raise ValueError("an exchange is named twice")
        return exchanges
