"""The notify service's event subscribers: thin, they hand each event to a use case."""

from __future__ import annotations

from typing import assert_never

from trademesh_bus import Bus, Delivery, Route
from trademesh_db import Database
from trademesh_events import orders, risk
from trademesh_events.topics import (
    BOTS_EVENTS_TOPIC,
    ORDERS_DENIED_TOPIC,
    ORDERS_DISCREPANCIES_TOPIC,
    ORDERS_EVENTS_TOPIC,
    RISK_EVENTS_TOPIC,
    BotEvent,
    OrdersTopicEvent,
)
from trademesh_service import service_manifest

from trademesh_notify.config import Settings
from trademesh_notify.usecases.deliveries import Deliveries


def register_handlers(
    bus: Bus, deliveries: Deliveries, settings: Settings, db: Database | None
) -> None:
    """Subscribe to every consumed topic with one consumer in one consumer group.

    Each batch runs in one transaction with its inbox entries, and writes the events'
    deliveries in it (a redelivered event writes nothing). A message that fails validation goes
    to `<topic>.dlq` (the bus does that) and the consumer goes on. The group reads a topic from
    its beginning when it has no committed offset: AccountChanged from history tells the owners
    of accounts, and a channel is never sent an event older than itself (DeliveryStore.enqueue).
    """
    if db is None:
        raise RuntimeError(f"{settings.service_name}: deliveries need the service's database")

    async def on_order_event(event: OrdersTopicEvent, delivery: Delivery) -> None:
        assert delivery.conn is not None  # a transactional subscription (db given below)
        match event:
            case orders.OrderFilled() | orders.OrderRejected():
                await deliveries.enqueue(event, delivery.envelope, delivery.conn)
            case orders.AccountChanged():
                await deliveries.learn_owner(event, delivery.conn)
            case (
                orders.OrderSubmitted()
                | orders.OrderAccepted()
                | orders.OrderCanceled()
                | orders.OrderExpired()
                | orders.OrderStatusUnknown()
            ):
                pass  # of no kind a user subscribes to
            case _:
                assert_never(event)

    async def on_event(
        event: orders.OrderDenied
        | orders.DiscrepancyDetected
        | BotEvent
        | risk.TradingStateChanged,
        delivery: Delivery,
    ) -> None:
        assert delivery.conn is not None
        await deliveries.enqueue(event, delivery.envelope, delivery.conn)

    routes = [
        Route(ORDERS_EVENTS_TOPIC, on_order_event),
        Route(ORDERS_DENIED_TOPIC, on_event),
        Route(ORDERS_DISCREPANCIES_TOPIC, on_event),
        Route(BOTS_EVENTS_TOPIC, on_event),
        Route(RISK_EVENTS_TOPIC, on_event),
    ]
    if {route.topic.name for route in routes} != set(service_manifest(__name__).consumes):
        raise RuntimeError(f"{settings.service_name}: handlers and the declared topics disagree")
    bus.subscribe_many(routes, group=settings.consumer_group, db=db)
