"""The strategy service's event subscribers: thin, they hand each event to the bot runtime."""

from __future__ import annotations

from typing import Any

from trademesh_bus import Bus, Delivery
from trademesh_events.marketdata import Bar
from trademesh_events.topics import MD_BARS, get_topic

from trademesh_strategy.config import Settings
from trademesh_strategy.engine import CONSUMES
from trademesh_strategy.runner import BotRuntime


def register_handlers(bus: Bus, runtime: BotRuntime, settings: Settings) -> None:
    """Subscribe to every consumed topic, one consumer group per topic.

    The subscriptions take no database from the bus: most bars concern no bot, and the runtime
    checks that with one cheap query before it opens a transaction. When an event does concern
    a bot, the runtime records its id in the inbox in the same transaction as the change, so a
    redelivered event changes nothing. A malformed message goes to `<topic>.dlq` (the bus does
    that) and the consumer goes on.
    """

    async def on_bar(event: Any, delivery: Delivery) -> None:
        assert isinstance(event, Bar)
        group = f"{settings.consumer_group}.{delivery.topic}"
        await runtime.on_bar(event, delivery.envelope.id, delivery.topic, group)

    async def on_order_event(event: Any, delivery: Delivery) -> None:
        group = f"{settings.consumer_group}.{delivery.topic}"
        await runtime.on_order_event(event, delivery.envelope.id, delivery.topic, group)

    for name in CONSUMES:
        bars = name == MD_BARS
        bus.subscribe(
            get_topic(name),
            group=f"{settings.consumer_group}.{name}",
            handler=on_bar if bars else on_order_event,
            db=None,
            # A new consumer group starts bars at the end of the topic: the retained history
            # means nothing to a live bot (it warms from the history API), and reading it all
            # would hold the first live bars back. Order events start at the beginning: a fill
            # must never be missed. Either way a group that has committed resumes where it was.
            from_beginning=not bars,
        )
