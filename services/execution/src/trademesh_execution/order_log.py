"""One log line per change of an order (submitted, accepted, filled, rejected, canceled,
expired, unknown), under the order's own trace (docs/architecture.md, Observability)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, assert_never

from trademesh_events.ids import BotId
from trademesh_events.orders import (
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusUnknown,
    OrderSubmitted,
)
from trademesh_events.topics import OrderLifecycleEvent
from trademesh_observability.logging import get_logger
from trademesh_observability.tracing import use_traceparent

log = get_logger("trademesh_execution.orders")


def log_order_events(
    events: Iterable[OrderLifecycleEvent], traceparent: str | None, bot_id: BotId | None = None
) -> None:
    """A line for each event, within the trace the order was placed under (`traceparent`): a
    fill a later bar causes is logged in the order's trace, not in the bar's."""
    with use_traceparent(traceparent):
        for event in events:
            _log(event, bot_id)


def _log(event: OrderLifecycleEvent, bot_id: BotId | None) -> None:
    ids: dict[str, Any] = {
        "client_order_id": event.client_order_id,
        "account_id": str(event.account_id),
        "instrument_id": event.instrument_id,
        "venue_order_id": event.venue_order_id,
    }
    if bot_id is not None:
        ids["bot_id"] = str(bot_id)
    match event:
        case OrderFilled():
            log.info(
                "order filled",
                **ids,
                trade_id=event.trade_id,
                side=event.side,
                price=str(event.last_price),
                quantity=str(event.last_qty),
                fee=str(event.fee),
                fee_currency=event.fee_currency,
                filled=str(event.cum_qty),
                leaves=str(event.leaves_qty),
            )
        case OrderSubmitted():
            log.info("order submitted", **ids)
        case OrderAccepted():
            log.info("order accepted", **ids)
        case OrderRejected():
            log.info("order rejected", **ids, reason=event.reason)
        case OrderCanceled():
            log.info("order canceled", **ids, reason=event.reason)
        case OrderExpired():
            log.info("order expired", **ids)
        case OrderStatusUnknown():
            log.warning("order status unknown", **ids, reason=event.reason)
        case _:
            assert_never(event)
