"""The strategy service's event subscribers: thin, they hand each event to the bot runtime."""

from __future__ import annotations

import asyncpg
from trademesh_bus import Bus, Delivery, Route
from trademesh_events.marketdata import Bar
from trademesh_events.orders import AccountChanged
from trademesh_events.topics import (
    MD_BARS,
    MD_BARS_TOPIC,
    ORDERS_DENIED,
    ORDERS_DENIED_TOPIC,
    ORDERS_EVENTS,
    ORDERS_EVENTS_TOPIC,
)
from trademesh_service import service_manifest

from trademesh_strategy.config import Settings
from trademesh_strategy.usecases.runner import BotRuntime, OrderUpdate


def register_handlers(bus: Bus, runtime: BotRuntime, settings: Settings) -> None:
    """Subscribe to every consumed topic: bars in one consumer group, order events in another.

    Bars come a batch at a time. The subscriptions take no database from the bus: most bars
    concern no bot, and the runtime checks that with one cheap query per batch before it opens
    a transaction. When an event does concern
    a bot, the runtime records its id in the inbox in the same transaction as the change, so a
    redelivered event changes nothing. A malformed message goes to `<topic>.dlq` (the bus does
    that) and the consumer goes on.
    """

    bars_group = f"{settings.consumer_group}.{MD_BARS}"

    async def on_bars(
        received: list[tuple[Bar, Delivery]], _conn: asyncpg.Connection | None
    ) -> None:
        await runtime.on_bars(
            [(bar, d.envelope.id, d.topic, d.traceparent) for bar, d in received], bars_group
        )

    # Every type of both topics goes to the runtime, which tells them apart (match).
    async def on_order_event(event: OrderUpdate | AccountChanged, delivery: Delivery) -> None:
        match event:
            case AccountChanged():
                return  # an account's buying power: nothing a bot keeps
            case _:
                group = f"{settings.consumer_group}.{delivery.topic}"
                await runtime.on_order_event(event, delivery.envelope.id, delivery.topic, group)

    if set(service_manifest(__name__).consumes) != {MD_BARS, ORDERS_EVENTS, ORDERS_DENIED}:
        raise RuntimeError(f"{settings.service_name}: handlers and the declared topics disagree")
    # A new consumer group starts bars at the end of the topic: the retained history means
    # nothing to a live bot (it warms from the history API), and reading it all would hold the
    # first live bars back. Order events start at the beginning: a fill must never be missed.
    # Either way a group that has committed resumes where it was.
    bus.subscribe_batches([MD_BARS_TOPIC], group=bars_group, handler=on_bars, from_beginning=False)
    # One consumer for both order topics (an idle consumer costs fetches); the inbox entries
    # stay per topic (on_order_event), as they were when each topic had a group of its own.
    bus.subscribe_many(
        [Route(ORDERS_EVENTS_TOPIC, on_order_event), Route(ORDERS_DENIED_TOPIC, on_order_event)],
        group=f"{settings.consumer_group}.orders",
        background=True,
    )
