"""The notify service's event subscribers: thin, they hand each event to a use case."""

from __future__ import annotations

from typing import assert_never

from trademesh_bus import Bus, Delivery
from trademesh_db import Database
from trademesh_events import orders, risk
from trademesh_events.topics import (
    ORDERS_DENIED_TOPIC,
    ORDERS_EVENTS_TOPIC,
    RISK_EVENTS_TOPIC,
    OrdersTopicEvent,
)
from trademesh_service import service_manifest

from trademesh_notify.config import Settings
from trademesh_notify.usecases.deliveries import Deliveries


def register_handlers(
    bus: Bus, deliveries: Deliveries, settings: Settings, db: Database | None
) -> None:
    """Subscribe to every consumed topic, one consumer group per topic.

    Each handler runs in one transaction with the inbox entry, and writes the event's
    deliveries in it (a redelivered event writes nothing). A message that fails validation goes
    to `<topic>.dlq` (the bus does that) and the consumer goes on.
    """
    if db is None:
        raise RuntimeError(f"{settings.service_name}: deliveries need the service's database")

    async def on_order_event(event: OrdersTopicEvent, delivery: Delivery) -> None:
        assert delivery.conn is not None  # a transactional subscription (db given below)
        match event:
            case orders.OrderFilled():
                await deliveries.enqueue(event, delivery.envelope, delivery.conn)
            case (
                orders.OrderSubmitted()
                | orders.OrderAccepted()
                | orders.OrderRejected()
                | orders.OrderCanceled()
                | orders.OrderExpired()
                | orders.OrderStatusUnknown()
                | orders.AccountChanged()
            ):
                pass  # not sent yet: rejections come with a later increment
            case _:
                assert_never(event)

    async def on_denial(event: orders.OrderDenied, delivery: Delivery) -> None:
        assert delivery.conn is not None
        await deliveries.enqueue(event, delivery.envelope, delivery.conn)

    async def on_risk_event(event: risk.TradingStateChanged, delivery: Delivery) -> None:
        pass  # trading state changes are sent by a later increment (their owner is per account)

    topics = (ORDERS_EVENTS_TOPIC, ORDERS_DENIED_TOPIC, RISK_EVENTS_TOPIC)
    if {topic.name for topic in topics} != set(service_manifest(__name__).consumes):
        raise RuntimeError(f"{settings.service_name}: handlers and the declared topics disagree")
    group = settings.consumer_group
    bus.subscribe(
        ORDERS_EVENTS_TOPIC,
        group=f"{group}.{ORDERS_EVENTS_TOPIC.name}",
        handler=on_order_event,
        db=db,
    )
    bus.subscribe(
        ORDERS_DENIED_TOPIC, group=f"{group}.{ORDERS_DENIED_TOPIC.name}", handler=on_denial, db=db
    )
    bus.subscribe(
        RISK_EVENTS_TOPIC, group=f"{group}.{RISK_EVENTS_TOPIC.name}", handler=on_risk_event, db=db
    )
