"""The execution service's event subscribers: thin, they hand each event to the orders runtime."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trademesh_bus import Bus, Delivery
from trademesh_db import Database
from trademesh_events.marketdata import Bar, Tick
from trademesh_events.orders import OrderApproved, OrderDenied
from trademesh_events.topics import (
    MD_BARS,
    MD_BARS_TOPIC,
    MD_TICKS,
    MD_TICKS_TOPIC,
    ORDERS_APPROVED,
    ORDERS_APPROVED_TOPIC,
    ORDERS_DENIED,
    ORDERS_DENIED_TOPIC,
    ApprovedCommand,
    TopicSpec,
)
from trademesh_service import service_manifest

from trademesh_execution.config import Settings
from trademesh_execution.usecases.orders import Orders

MARKET_BATCH = 50


def register_handlers(bus: Bus, orders: Orders, settings: Settings, db: Database) -> None:
    """Subscribe to every consumed topic, one consumer group per topic (shared by replicas).

    - orders.approved.v1 (keyed by account): each command in a transaction with its inbox entry.
    - md.bars.v1 and md.ticks.v1 (keyed by instrument, so one replica fills an instrument's paper
      orders), one consumer for both: a batch at a time in one transaction, which keeps the bars
      and claims inbox entries only for records of instruments with working paper orders; a new
      group starts at the end of the topics (old prices fill nothing).
    - orders.denied.v1 (keyed by account): a background consumer keeping each denied order
      DENIED with its reason, a batch at a time in one statement (decision 0113); no order
      waits for it.
    """
    if set(service_manifest(__name__).consumes) != {
        ORDERS_APPROVED,
        ORDERS_DENIED,
        MD_TICKS,
        MD_BARS,
    }:
        raise RuntimeError(f"{settings.service_name}: handlers and the declared topics disagree")

    # A batch of approvals locks the paper markets of its instruments first, all at once in
    # order, as a batch of market data does: taken as the records come, two batches would wait
    # for each other's locks until Postgres's deadlock timeout (a second) broke the tie.
    # Every type of the topic goes to the orders runtime, which tells them apart.
    async def on_approved(received: list[tuple[ApprovedCommand, Delivery]], conn: Any) -> None:
        await orders.store.lock_markets(
            conn, [e.order.instrument_id for e, _ in received if isinstance(e, OrderApproved)]
        )
        await orders.on_approved_many(conn, received)

    async def on_denied(received: list[tuple[OrderDenied, Delivery]], conn: Any) -> None:
        await orders.on_denied_many(conn, [event for event, _ in received])

    market_group = f"{settings.consumer_group}.md"

    async def on_market(received: list[tuple[Bar | Tick, Delivery]], conn: Any) -> None:
        await orders.on_market(received, conn, market_group)

    # Typed as one: a list of the two would be inferred as TopicSpec[Event].
    market: Sequence[TopicSpec[Bar | Tick]] = [MD_BARS_TOPIC, MD_TICKS_TOPIC]

    bus.subscribe_batches(
        [ORDERS_APPROVED_TOPIC],
        group=f"{settings.consumer_group}.{ORDERS_APPROVED}",
        handler=on_approved,
        db=db,
    )
    bus.subscribe_batches(
        [ORDERS_DENIED_TOPIC],
        group=f"{settings.consumer_group}.{ORDERS_DENIED}",
        handler=on_denied,
        db=db,
        background=True,
    )
    bus.subscribe_batches(
        market,
        group=market_group,
        handler=on_market,
        db=db,
        inbox=False,  # the handler claims only what touches working orders
        from_beginning=False,
        # No order waits for it to be placed (approvals are read by the consumer above); a
        # resting order's fill does, on an idle broker by up to this consumer's fetch wait.
        background=True,
        # A batch locks its instruments' paper markets, which an approval of one of them waits
        # for: short batches (a background fetch brings half a second of bars at once).
        max_records=MARKET_BATCH,
    )
