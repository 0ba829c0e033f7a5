"""ccxt's answers as the venue's: orders, trades, order-stream updates and balances, validated.

Statuses (`venue_status`): ccxt's "open" (and "canceling") is ACCEPTED, PARTIALLY_FILLED or
FILLED by the filled quantity; "closed" is FILLED when all of it filled, otherwise CANCELED (the
order ended short: what filled is in `filled`); "canceled", "expired" and "rejected" map to
themselves. Anything else is a MalformedResponse. A submit answered without a status (an
exchange that only acknowledges) is ACCEPTED; a cancel answered without one is looked up.

Untrusted answers. Every number becomes a Decimal as the exchange wrote it
(`trademesh_exchange.parsing`) and is checked (finite; quantities non-negative; prices positive;
filled within the order's quantity; the order's symbol, quantity and client id when they are
known); a failing answer is a MalformedResponse. A record ccxt's guarded parser could not read is
a placeholder (`trademesh_exchange.guards`), which fails here with the guard's reason.

Balances. `balances_from_ccxt` reads ccxt's unified balance structure (`fetch_balance`; Binance
spot: `GET /api/v3/account`, its `free` and `locked` per asset): one entry per currency code with
`free`, `used` and `total` (ccxt works out the third from the other two). Every currency's three
figures must be there, be finite and not negative, and add up (free + used = total, up to the
noise of ccxt's floats); a currency code must look like one. One bad entry fails the whole answer
(MalformedResponse), rather than leaving a currency out: a snapshot with a currency missing would
read as none of it. The numbers go through ccxt's floats like every other answer here, exact for
up to 15 significant digits (Binance's 8 decimals of any balance under ten million).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from trademesh_events.orders import OrderStatus, Side
from trademesh_exchange.guards import MALFORMED, is_placeholder
from trademesh_exchange.parsing import BadValue, parse_decimal, time_or_none

from trademesh_execution.engine import Liquidity
from trademesh_execution.venues.base import (
    Balance,
    MalformedResponse,
    VenueBalances,
    VenueReport,
    VenueTrade,
    VenueUpdate,
)

MAX_TEXT = 1000  # the longest text of a venue error or a logged reason
_MAX_ID = 128
_WORKING = frozenset({"open", "canceling"})
_ENDED: Mapping[str, OrderStatus] = {
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def checked_decimal(
    value: Any, name: str, *, positive: bool = False, signed: bool = False
) -> Decimal:
    """An exchange number as a Decimal, checked (see `trademesh_exchange.parsing`): finite, not
    negative (unless `signed`), and not zero when `positive`; MalformedResponse if not."""
    try:
        return parse_decimal(value, name, positive=positive, signed=signed)
    except BadValue as exc:
        raise MalformedResponse(str(exc)) from None


def _optional(value: Any, name: str, **checks: bool) -> Decimal | None:
    return None if value is None else checked_decimal(value, name, **checks)


def _identifier(value: Any, name: str) -> str | None:
    """An exchange id as a string (ints are accepted: Binance's are numbers); None if absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedResponse(f"{name} is not an id: {value!r}"[:MAX_TEXT])
    text = str(value)
    if len(text) > _MAX_ID:
        raise MalformedResponse(f"{name} is longer than {_MAX_ID} characters")
    return text


def _fees(raw: Mapping[str, Any]) -> tuple[Decimal | None, str | None]:
    """The sum of a ccxt order's or trade's fees and their currency; (None, None) when there are
    none or they are in several currencies."""
    entries = raw.get("fees")
    if not entries:
        entries = [raw.get("fee")] if raw.get("fee") is not None else []
    if not isinstance(entries, list):
        raise MalformedResponse(f"fees are not a list: {entries!r}"[:MAX_TEXT])
    totals: dict[str, Decimal] = {}
    for entry in entries:
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise MalformedResponse(f"a fee is not an object: {entry!r}"[:MAX_TEXT])
        if entry.get("cost") is None:
            continue
        cost = checked_decimal(entry.get("cost"), "fee", signed=True)  # a rebate is a negative fee
        currency = entry.get("currency")
        if not isinstance(currency, str) or not 1 <= len(currency) <= 16:
            raise MalformedResponse(f"fee currency {currency!r} is not a currency code")
        totals[currency] = totals.get(currency, Decimal(0)) + cost
    if len(totals) != 1:
        return None, None
    ((currency, total),) = totals.items()
    return total, currency


def venue_status(status: Any, filled: Decimal, amount: Decimal) -> OrderStatus:
    """The state machine's status of a ccxt order status with `filled` of `amount` filled."""
    if status in _WORKING:
        if filled == 0:
            return OrderStatus.ACCEPTED
        return OrderStatus.FILLED if filled >= amount else OrderStatus.PARTIALLY_FILLED
    if status == "closed":
        return OrderStatus.FILLED if filled >= amount else OrderStatus.CANCELED
    if isinstance(status, str) and status in _ENDED:
        return _ENDED[status]
    raise MalformedResponse(f"unknown order status {status!r}"[:MAX_TEXT])


def _checked(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise MalformedResponse(f"the {what} is not an object: {raw!r}"[:MAX_TEXT])
    if is_placeholder(raw):
        raise MalformedResponse(str(raw[MALFORMED]))
    return raw


def _their_client_id(raw: Mapping[str, Any]) -> str | None:
    info = raw.get("info")
    original = info.get("origClientOrderId") if isinstance(info, dict) else None
    if original not in (None, ""):  # Binance's cancel answer: the order's own client id
        return _identifier(original, "origClientOrderId")
    return _identifier(raw.get("clientOrderId"), "clientOrderId")


def report_from_ccxt(
    raw: Any,
    *,
    now: datetime,
    client_order_id: str | None = None,
    symbol: str | None = None,
    quantity: Decimal | None = None,
    acknowledgement: bool = False,
) -> VenueReport:
    """A ccxt order structure as a VenueReport, validated; MalformedResponse if it fails.

    Known facts are checked against it: the order's `client_order_id` (a different one means it
    is another order), `symbol` and `quantity`. `acknowledgement`: the answer to a submit, for
    which a missing status and filled quantity mean an accepted order with nothing filled."""
    order = _checked(raw, "order")
    venue_order_id = _identifier(order.get("id"), "id")
    if venue_order_id is None:
        raise MalformedResponse("the order has no id")
    theirs = _their_client_id(order)
    if client_order_id is not None and theirs not in (None, client_order_id):
        raise MalformedResponse(f"asked for order {client_order_id}, the venue answered {theirs}")
    got_symbol = order.get("symbol")
    if symbol is not None and got_symbol is not None and got_symbol != symbol:
        raise MalformedResponse(f"asked about {symbol}, the venue answered about {got_symbol!r}")

    amount = _optional(order.get("amount"), "amount", positive=True)
    filled = _optional(order.get("filled"), "filled")
    remaining = _optional(order.get("remaining"), "remaining")
    if amount is None:
        amount = quantity
    if amount is None and filled is not None and remaining is not None:
        amount = filled + remaining
    if amount is None or not amount > 0:
        raise MalformedResponse("the order's amount is missing")
    if quantity is not None and amount != quantity:
        raise MalformedResponse(f"the venue's order is for {amount}, the service's for {quantity}")
    if filled is None:
        if remaining is not None:
            filled = amount - remaining
        elif acknowledgement:
            filled = Decimal(0)
        else:
            raise MalformedResponse("the order's filled quantity is missing")
    if not Decimal(0) <= filled <= amount:
        raise MalformedResponse(f"filled {filled} is not within 0..{amount}")

    status_text = order.get("status")
    if status_text is None and acknowledgement:
        status_text = "open"
    status = venue_status(status_text, filled, amount)

    avg_price: Decimal | None = None
    if filled > 0:
        avg_price = _optional(order.get("average"), "average", positive=True)
        if avg_price is None:
            cost = _optional(order.get("cost"), "cost", positive=True)
            if cost is None:
                raise MalformedResponse("the order filled but has no average price")
            avg_price = cost / filled
    fee, fee_currency = _fees(order)
    times = (time_or_none(order.get(k)) for k in ("lastUpdateTimestamp", "lastTradeTimestamp"))
    ts = max((t for t in times if t is not None), default=None) or time_or_none(
        order.get("timestamp")
    )
    return VenueReport(
        client_order_id=theirs or client_order_id,
        venue_order_id=venue_order_id,
        status=status,
        filled=filled,
        avg_price=avg_price,
        remaining=amount - filled,
        fee=fee,
        fee_currency=fee_currency,
        ts=ts or now,
    )


def trade_from_ccxt(raw: Any, *, symbol: str | None = None) -> VenueTrade:
    """A ccxt trade structure (of the account) as a VenueTrade, validated."""
    trade = _checked(raw, "trade")
    trade_id = _identifier(trade.get("id"), "id")
    venue_order_id = _identifier(trade.get("order"), "order")
    if trade_id is None or venue_order_id is None:
        raise MalformedResponse("the trade has no id or no order id")
    got_symbol = trade.get("symbol")
    if symbol is not None and got_symbol != symbol:
        raise MalformedResponse(f"a trade of {got_symbol!r} among those of {symbol}")
    side: Side
    if trade.get("side") == "buy":
        side = "buy"
    elif trade.get("side") == "sell":
        side = "sell"
    else:
        raise MalformedResponse(f"trade side {trade.get('side')!r} is neither buy nor sell")
    ts = time_or_none(trade.get("timestamp"))
    if ts is None:
        raise MalformedResponse(f"trade time {trade.get('timestamp')!r} does not parse")
    role = trade.get("takerOrMaker")
    liquidity: Liquidity | None = None
    if role == "maker":
        liquidity = "maker"
    elif role == "taker":
        liquidity = "taker"
    fee, fee_currency = _fees(trade)
    return VenueTrade(
        trade_id=trade_id,
        client_order_id=_identifier(trade.get("clientOrderId"), "clientOrderId"),
        venue_order_id=venue_order_id,
        side=side,
        quantity=checked_decimal(trade.get("amount"), "amount", positive=True),
        price=checked_decimal(trade.get("price"), "price", positive=True),
        fee=fee,
        fee_currency=fee_currency,
        ts=ts,
        liquidity=liquidity,
    )


def updates_from_ccxt(order: Any, trades: Sequence[Any], *, now: datetime) -> list[VenueUpdate]:
    """The VenueUpdates of one order update on ccxt's stream: `order` is the ccxt order structure
    ccxt parsed from one message, `trades` the account's executions of that order ccxt parsed
    from the same message (ccxt trade structures); MalformedResponse if they fail validation.

    The report is the order as `report_from_ccxt` reads it, but without a fee: a stream's order
    message gives its last execution's fee, not the order's (see the `stream` module); each
    trade carries its own. Each trade gets the order's client order id (Binance's execution
    carries it in the order's fields only) and must be of the order and within what it filled.
    One update per trade (Binance reports one execution a message; an exchange reporting
    several at once gives each its own update, all with the order after the message), or one
    without a trade."""
    raw = _checked(order, "order update")
    report = report_from_ccxt({**raw, "fee": None, "fees": []}, now=now)
    executions = []
    for entry in trades:
        trade = trade_from_ccxt(entry)
        if trade.venue_order_id != report.venue_order_id:
            raise MalformedResponse(
                f"execution {trade.trade_id} is of order {trade.venue_order_id}, "
                f"not of {report.venue_order_id}"
            )
        if trade.quantity > report.filled:
            raise MalformedResponse(
                f"execution {trade.trade_id} of {trade.quantity} is more than the order's "
                f"filled {report.filled}"
            )
        executions.append(replace(trade, client_order_id=report.client_order_id))
    if not executions:
        return [VenueUpdate(report=report, trade=None)]
    return [VenueUpdate(report=report, trade=trade) for trade in executions]


_BALANCE_KEYS = frozenset({"info", "timestamp", "datetime", "free", "used", "total", "debt"})
_CURRENCY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
MAX_CURRENCIES = 10_000
# How far free + used may be from total: the noise of ccxt's floats, relative to the total.
_BALANCE_NOISE = Decimal("1e-12")


def balances_from_ccxt(raw: Any, *, now: datetime) -> VenueBalances:
    """A ccxt balance structure (`fetch_balance`) as VenueBalances, validated; MalformedResponse
    if any currency's entry fails (see the module docstring)."""
    if not isinstance(raw, dict):
        raise MalformedResponse(f"the balances are not an object: {raw!r}"[:MAX_TEXT])
    codes = [k for k in raw if k not in _BALANCE_KEYS]
    if len(codes) > MAX_CURRENCIES:
        raise MalformedResponse(f"{len(codes)} currencies: more than {MAX_CURRENCIES}")
    currencies: dict[str, Balance] = {}
    for code in codes:
        if not isinstance(code, str) or not _CURRENCY.match(code):
            raise MalformedResponse(f"{code!r} is not a currency code"[:MAX_TEXT])
        entry = raw[code]
        if not isinstance(entry, dict):
            raise MalformedResponse(f"the balance of {code} is not an object: {entry!r}"[:MAX_TEXT])
        free = checked_decimal(entry.get("free"), f"{code} free")
        used = checked_decimal(entry.get("used"), f"{code} used")
        total = checked_decimal(entry.get("total"), f"{code} total")
        if abs(free + used - total) > total * _BALANCE_NOISE:
            raise MalformedResponse(
                f"{code}: free {free} and used {used} do not make total {total}"
            )
        currencies[code] = Balance(free=free, used=used, total=total)
    return VenueBalances(currencies=currencies, ts=time_or_none(raw.get("timestamp")) or now)
