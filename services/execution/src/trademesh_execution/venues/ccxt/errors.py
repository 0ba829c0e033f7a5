"""ccxt's failures as the venue's errors, and what the venue's calls and its order stream share in
telling what ccxt did: texts redacted and bounded, malformed records counted and logged.

Errors (`venue_error`, from `trademesh_exchange.errors.classify`): ccxt.RequestTimeout (an HTTP
504 or Binance -1007 too) is VenueTimeout. ccxt.NetworkError (ExchangeNotAvailable,
DDoSProtection, RateLimitExceeded, InvalidNonce) and the other OperationFailed are
VenueUnavailable, except on submit and cancel when the connection broke after it was made (the
request may have been delivered): VenueTimeout. ccxt.BadResponse and any non-ccxt exception out
of ccxt (its parsers choking on an answer) are MalformedResponse. ccxt.DuplicateOrderId, or a
refusal whose text says "duplicate order", is DuplicateOrder; every other ccxt.ExchangeError
(InvalidOrder, InsufficientFunds, BadRequest, AuthenticationError, OperationRejected,
OrderNotFound on cancel, ...) is VenueRejected. Binance keeps client order ids unique among open
orders only, so an order that filled at once could be placed twice by a blind resend: after a
VenueUnavailable on submit, look the order up before sending it again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from trademesh_exchange.errors import Failure, classify
from trademesh_exchange.guards import is_placeholder

from trademesh_execution.venues.base import (
    DuplicateOrder,
    MalformedResponse,
    VenueError,
    VenueRejected,
    VenueTimeout,
    VenueUnavailable,
)
from trademesh_execution.venues.ccxt.reports import MAX_TEXT

log = logging.getLogger("trademesh.execution.ccxt")


def venue_error(
    exc: BaseException, *, sending: bool = False, redact: Callable[[str], str] = str
) -> VenueError:
    """The VenueError of an exception out of ccxt (see the module docstring). `sending`: the
    call changes the venue's state (submit, cancel), so a possibly delivered request is a
    timeout rather than "unavailable"."""
    text = redact(f"{type(exc).__name__}: {exc}")[:MAX_TEXT]
    if isinstance(exc, VenueError):
        return exc
    found = classify(exc)
    if found.failure is Failure.TIMED_OUT:
        return VenueTimeout(text)
    if found.failure is Failure.BAD_RESPONSE:
        return MalformedResponse(text)
    if found.failure in (Failure.UNREACHABLE, Failure.TRY_AGAIN):
        if sending and found.may_have_been_delivered:
            return VenueTimeout(text)
        return VenueUnavailable(text)
    if found.duplicate:
        return DuplicateOrder(text)
    if found.failure in (Failure.CONFIGURATION, Failure.REFUSED):
        if found.may_have_been_delivered:  # ccxt reports a body cut off as an ExchangeError
            return VenueTimeout(text) if sending else VenueUnavailable(text)
        return VenueRejected(text)
    if found.failure is Failure.OTHER:
        return VenueUnavailable(text)
    return MalformedResponse(text)  # ccxt choked on what the venue answered


class Translator:
    """What ccxt did, in the venue's terms, for the venue's calls and its order stream alike:
    texts with the account's secrets masked and bounded, exceptions out of ccxt as VenueErrors,
    and malformed records counted (`malformed_records`) and logged."""

    def __init__(self, venue: str, redact: Callable[[str], str]) -> None:
        self.venue = venue
        self.redact = redact
        self.malformed_records = 0

    def text(self, text: str) -> str:
        return self.redact(text)[:MAX_TEXT]

    def record(self, raw: Any) -> str:
        """A record for a log: what the exchange sent (ccxt keeps it as `info`), redacted."""
        if isinstance(raw, dict) and "info" in raw:
            raw = raw["info"]
        return self.text(repr(raw))[:300]

    def malformed(self, what: str, raw: Any, reason: str) -> None:
        """Count and log a record that failed validation."""
        self.malformed_records += 1
        log.warning(
            "malformed %s from the venue",
            what,
            extra={"venue": self.venue, "reason": self.text(reason), "record": self.record(raw)},
        )

    def skip(self, what: str, raw: Any, exc: MalformedResponse) -> None:
        """Count and log a record that failed validation, unless its parser guard did."""
        if is_placeholder(raw):
            return  # counted and reported by the parser guard already
        self.malformed(what, raw, str(exc))

    def error(self, exc: BaseException, *, sending: bool = False) -> VenueError:
        return venue_error(exc, sending=sending, redact=self.redact)

    @asynccontextmanager
    async def translated(self, action: str, *, sending: bool = False) -> AsyncIterator[None]:
        """Every exception out of ccxt as a VenueError with a redacted text, ccxt's own exception
        not chained (its text and traceback are not ours to vouch for)."""
        try:
            yield
        except VenueError:
            raise
        except Exception as exc:
            error = self.error(exc, sending=sending)
            log.info(
                "venue call failed",
                extra={"venue": self.venue, "action": action, "error": type(error).__name__},
            )
            raise error from None
