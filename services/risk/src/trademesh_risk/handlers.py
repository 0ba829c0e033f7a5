"""The risk service's event subscribers: thin, they hand each event to the decider or the prices."""

from __future__ import annotations

import uuid
from typing import Any, assert_never

from trademesh_bus import Bus, Delivery, Route
from trademesh_db import Database
from trademesh_events.marketdata import Bar, Tick
from trademesh_events.orders import (
    AccountChanged,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusUnknown,
    OrderSubmitted,
)
from trademesh_events.topics import (
    MD_BARS,
    MD_BARS_TOPIC,
    MD_TICKS,
    MD_TICKS_TOPIC,
    ORDERS_EVENTS,
    ORDERS_EVENTS_TOPIC,
    ORDERS_INTENTS,
    ORDERS_INTENTS_TOPIC,
    OrderIntent,
    OrdersTopicEvent,
)
from trademesh_service import service_manifest

from trademesh_risk.config import Settings
from trademesh_risk.usecases.decider import Decider
from trademesh_risk.usecases.prices import PriceBook


def register_handlers(
    bus: Bus, decider: Decider, prices: PriceBook, settings: Settings, db: Database
) -> None:
    """Subscribe to every consumed topic.

    - orders.intents.v1 and orders.events.v1: one consumer group per topic, shared by the
      replicas (an account's events are on one partition, so in order); each handler runs in a
      transaction with the inbox entry, so a redelivered event changes nothing.
    - md.ticks.v1 and md.bars.v1: one consumer in a group per process, from the end of the
      topics, so that every replica knows every price (see prices.py); no transaction (last
      price wins).
    """
    if set(service_manifest(__name__).consumes) != {
        ORDERS_INTENTS,
        ORDERS_EVENTS,
        MD_TICKS,
        MD_BARS,
    }:
        raise RuntimeError(f"{settings.service_name}: handlers and the declared topics disagree")

    # A batch locks the accounts it touches first, all at once in id order: two batches (of
    # intents and of order events) that lock them as their records come would wait for each
    # other's locks until Postgres's deadlock timeout (a second) broke the tie. A batch of
    # intents is decided as a whole (on_intents locks, reads once, writes once).
    async def on_intents(received: list[tuple[OrderIntent, Delivery]], conn: Any) -> None:
        await decider.on_intents(conn, received)

    async def on_order_events(received: list[tuple[OrdersTopicEvent, Delivery]], conn: Any) -> None:
        await decider.lock_accounts(
            conn,
            [
                event.account_id
                for event, _ in received
                if isinstance(event, OrderFilled | AccountChanged)
            ],
        )
        for event, delivery in received:
            with delivery.traced():
                match event:
                    case OrderFilled():
                        await decider.on_fill(conn, event)
                    case OrderRejected() | OrderCanceled() | OrderExpired():
                        await decider.on_finished(conn, event)
                    case AccountChanged():
                        await decider.on_account(conn, event)
                    case OrderSubmitted() | OrderAccepted() | OrderStatusUnknown():
                        pass  # changes neither positions nor what counts as pending
                    case _:
                        assert_never(event)

    async def on_price(event: Tick | Bar, delivery: Delivery) -> None:
        match event:
            case Tick():
                prices.update(event.instrument_id, event.price, event.ts)
            case Bar():
                if event.final:
                    prices.update(event.instrument_id, event.close, event.close_time)
            case _:
                assert_never(event)

    # Intents are on the order path: their consumer asks the broker often. Order events (fills,
    # cancels) and prices are not waited for by an order: background consumers.
    bus.subscribe_batches(
        [ORDERS_INTENTS_TOPIC],
        group=f"{settings.consumer_group}.{ORDERS_INTENTS}",
        handler=on_intents,
        db=db,
    )
    bus.subscribe_batches(
        [ORDERS_EVENTS_TOPIC],
        group=f"{settings.consumer_group}.{ORDERS_EVENTS}",
        handler=on_order_events,
        db=db,
        background=True,
    )
    instance = uuid.uuid4().hex[:12]
    bus.subscribe_many(
        [Route(MD_TICKS_TOPIC, on_price), Route(MD_BARS_TOPIC, on_price)],
        group=f"{settings.consumer_group}.md.prices.{instance}",
        inbox=False,
        from_beginning=False,
        background=True,
    )
