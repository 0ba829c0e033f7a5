"""/api/v1/instruments/rules: the precision, minimums and maxima risk checks orders against.

An instrument's rules come from three places: the venue's market info (the venue sync, at start,
every venue_rules_refresh_s, and on POST .../sync), an admin's override (PUT), and the platform's
default bounds (risk's settings: the largest quantity and price of an instrument whose venue
states none). Field by field, the admin's value wins where set, then the venue's, then the
default; the sync never changes an override, and deleting the override lets the venue's rules
apply again.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict
from trademesh_events.ids import InstrumentId
from trademesh_events.money import Amount
from trademesh_exchange.exchanges import UnknownExchange
from trademesh_http import ProblemError

from trademesh_risk.api.accounts import PositiveMoney
from trademesh_risk.api.deps import CallerDep, RuntimeDep, require
from trademesh_risk.config import ExchangeId
from trademesh_risk.engine import InstrumentRules, rules_in_force
from trademesh_risk.store import RuleLayer
from trademesh_risk.venue_rules import VenueRulesError

router = APIRouter(prefix="/instruments/rules", tags=["instruments"])

InstrumentQuery = Annotated[
    InstrumentId, Query(description="`venue:SYMBOL`, e.g. binance:BTC/USDT")
]


Source = Literal["venue", "admin", "default"]


class RulesIn(BaseModel):
    """An admin's override of an instrument's precision, minimums and maxima; a field left out
    (or null) is the venue's rule, if it has one, else the default."""

    model_config = ConfigDict(extra="forbid")

    instrument_id: InstrumentId
    price_step: PositiveMoney | None = None
    quantity_step: PositiveMoney | None = None
    min_quantity: PositiveMoney | None = None
    min_notional: PositiveMoney | None = None
    max_quantity: PositiveMoney | None = None
    max_price: PositiveMoney | None = None
    max_notional: PositiveMoney | None = None


class RuleValues(BaseModel):
    price_step: Amount | None
    quantity_step: Amount | None
    min_quantity: Amount | None
    min_notional: Amount | None
    max_quantity: Amount | None
    max_price: Amount | None
    max_notional: Amount | None


class RuleLayerOut(RuleValues):
    updated_at: datetime


class RulesOut(BaseModel):
    """The rules in force (`rules`), where each one came from (`sources`: venue, admin, or the
    platform's default), and the venue's and the admin's rules as stored (null: none)."""

    instrument_id: str
    rules: RuleValues
    sources: dict[str, Source]
    venue: RuleLayerOut | None
    admin: RuleLayerOut | None


class SyncedOut(BaseModel):
    exchange: str
    instruments: int
    changed: int
    skipped: int


class SyncOut(BaseModel):
    """Per exchange: instruments whose rules were written, how many of those changed, and the
    markets left out (their symbol is no instrument id, e.g. a swap's `BTC/USDT:USDT`)."""

    exchanges: list[SyncedOut]


def _values(rules: InstrumentRules) -> dict[str, Decimal | None]:
    return {spec.name: getattr(rules, spec.name) for spec in fields(InstrumentRules)}


def _layer(layer: RuleLayer | None) -> RuleLayerOut | None:
    if layer is None:
        return None
    return RuleLayerOut(**_values(layer.rules), updated_at=layer.updated_at)


@router.get(
    "",
    summary="An instrument's rules in force (the platform's default bounds included), and the "
    "venue's and the admin's",
)
async def get_rules(
    instrument_id: InstrumentQuery, caller: CallerDep, runtime: RuntimeDep
) -> RulesOut:
    layers = await runtime.store.rule_layers(instrument_id)
    venue, admin = layers.get("venue"), layers.get("admin")
    default = runtime.decider.instrument_bounds
    effective = rules_in_force(
        venue.rules if venue is not None else None,
        admin.rules if admin is not None else None,
        default,
    )
    assert effective is not None  # the default bounds are always there
    sources: dict[str, Source] = {}
    for name in _values(effective):
        if admin is not None and getattr(admin.rules, name) is not None:
            sources[name] = "admin"
        elif venue is not None and getattr(venue.rules, name) is not None:
            sources[name] = "venue"
        elif getattr(default, name) is not None:
            sources[name] = "default"
    return RulesOut(
        instrument_id=instrument_id,
        rules=RuleValues(**_values(effective)),
        sources=sources,
        venue=_layer(venue),
        admin=_layer(admin),
    )


@router.put("", summary="Override an instrument's precision, minimums and maxima (admin)")
async def put_rules(body: RulesIn, caller: CallerDep, runtime: RuntimeDep) -> RulesIn:
    require(caller, "admin")
    await runtime.store.put_rules(
        body.instrument_id,
        InstrumentRules(**body.model_dump(exclude={"instrument_id"}, exclude_none=True)),
    )
    return body


@router.delete(
    "",
    status_code=204,
    summary="Delete the admin's override: the venue's rules apply again (admin)",
)
async def delete_rules(
    instrument_id: InstrumentQuery, caller: CallerDep, runtime: RuntimeDep
) -> Response:
    require(caller, "admin")
    if not await runtime.store.delete_rules(instrument_id):
        raise ProblemError(404, "No override", f"No admin rules for {instrument_id}.")
    return Response(status_code=204)


@router.post(
    "/sync",
    summary="Load the venues' market info now (admin): the configured exchanges, or one",
    responses={502: {"description": "An exchange could not be reached or answered nonsense."}},
)
async def sync_rules(
    caller: CallerDep,
    runtime: RuntimeDep,
    exchange: Annotated[
        ExchangeId | None,
        Query(description="A ccxt exchange id; default: every one in venue_rules_exchanges."),
    ] = None,
) -> SyncOut:
    require(caller, "admin")
    exchanges = [exchange] if exchange is not None else list(runtime.venue_rules.exchanges)
    if not exchanges:
        raise ProblemError(
            409,
            "No exchange configured",
            "venue_rules_exchanges is empty: name an exchange with ?exchange=.",
        )
    synced: list[SyncedOut] = []
    failed: dict[str, str] = {}
    for name in exchanges:
        try:
            synced.append(SyncedOut(**asdict(await runtime.venue_rules.sync(name))))
        except UnknownExchange as exc:
            raise ProblemError(
                422, "Unknown exchange", str(exc), type="/problems/unknown-exchange"
            ) from None
        except VenueRulesError as exc:
            failed[name] = str(exc)
    if failed:
        raise ProblemError(
            502,
            "Venue unavailable",
            f"The market info of {', '.join(failed)} could not be loaded; their stored rules "
            "are unchanged.",
            type="/problems/venue-unavailable",
            failed=failed,
            synced=[s.model_dump() for s in synced],
        )
    return SyncOut(exchanges=synced)
