"""One classification of what an exception out of ccxt says happened, for every caller to map
to what it does about it (execution's venue errors, the feed's retries, risk's market load).

`classify` answers three facts:

- `failure`, by ccxt's class (ccxt's hierarchy, most specific first): `TIMED_OUT`
  (RequestTimeout: asked, no answer in time), `UNREACHABLE` (another NetworkError: the exchange
  could not be reached, or said it is down, rate limiting, or that the request's time was off),
  `BAD_RESPONSE` (BadResponse: it answered with something ccxt cannot read), `TRY_AGAIN` (another
  OperationFailed: the exchange's own "failed, try again", e.g. Binance's -1001 on a 503),
  `CONFIGURATION` (AuthenticationError, BadSymbol, NotSupported: refused for how the caller is
  set up, which no retry changes), `REFUSED` (another ExchangeError: the exchange refused this
  request), `OTHER` (another ccxt error), and for exceptions that are not ccxt's, `TRANSPORT` (an
  OSError or TimeoutError ccxt did not wrap) and `UNREADABLE` (anything else: ccxt's own code
  choked on what the exchange answered).
- `transport`, what the exception's chain (its causes and contexts) says of the connection:
  `NOT_CONNECTED` when the first transport failure in it is a failure to resolve or to connect
  (nothing was sent), `BROKEN` when it is any other of aiohttp's (ccxt's HTTP client) or an
  OSError (the server hung up, the answer was cut off: the request may have been delivered),
  None when there is none. ccxt reports a body cut off mid-transfer as an ExchangeError caused
  by aiohttp's error: `REFUSED` with a transport.
- `duplicate`: ccxt's DuplicateOrderId, or an error whose text says "duplicate order" (how
  exchanges word it where ccxt has no mapping).

ccxt is imported on the first classification, not with this module (see the package).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from trademesh_exchange.parsing import MAX_TEXT


class Failure(StrEnum):
    """What an exception out of ccxt says happened (see the module docstring)."""

    TIMED_OUT = "timed_out"
    UNREACHABLE = "unreachable"
    BAD_RESPONSE = "bad_response"
    TRY_AGAIN = "try_again"
    CONFIGURATION = "configuration"
    REFUSED = "refused"
    OTHER = "other"
    TRANSPORT = "transport"
    UNREADABLE = "unreadable"


class Transport(StrEnum):
    """What an exception's chain says of the connection: never made, or broken once made."""

    NOT_CONNECTED = "not_connected"
    BROKEN = "broken"


CCXT_FAILURES = frozenset(Failure) - {Failure.TRANSPORT, Failure.UNREADABLE}
"""The failures that are ccxt's own exceptions."""


@dataclass(frozen=True)
class Classified:
    """An exception out of ccxt, classified (see the module docstring)."""

    failure: Failure
    transport: Transport | None
    duplicate: bool

    @property
    def from_ccxt(self) -> bool:
        """The exception is one of ccxt's."""
        return self.failure in CCXT_FAILURES

    @property
    def may_have_been_delivered(self) -> bool:
        """The connection broke after it was made: the request may have reached the exchange."""
        return self.transport is Transport.BROKEN


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception's causes (or, without one, contexts), nearest first, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc.__cause__ or exc.__context__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _from_aiohttp(exc: BaseException, name: str | None = None) -> bool:
    """An exception of aiohttp (ccxt's HTTP client), of the class `name` when given."""
    return any(
        cls.__module__.startswith("aiohttp") and (name is None or cls.__name__ == name)
        for cls in type(exc).__mro__
    )


def _transport(exc: BaseException) -> Transport | None:
    for cause in exception_chain(exc):
        if isinstance(cause, socket.gaierror) or _from_aiohttp(cause, "ClientConnectorError"):
            return Transport.NOT_CONNECTED
        if _from_aiohttp(cause) or isinstance(cause, OSError):
            return Transport.BROKEN
    return None


def _failure(exc: BaseException) -> Failure:
    import ccxt

    if isinstance(exc, ccxt.RequestTimeout):
        return Failure.TIMED_OUT
    if isinstance(exc, ccxt.NetworkError):
        return Failure.UNREACHABLE
    if isinstance(exc, ccxt.BadResponse):
        return Failure.BAD_RESPONSE
    if isinstance(exc, ccxt.OperationFailed):
        return Failure.TRY_AGAIN
    if isinstance(exc, ccxt.AuthenticationError | ccxt.BadSymbol | ccxt.NotSupported):
        return Failure.CONFIGURATION
    if isinstance(exc, ccxt.ExchangeError):
        return Failure.REFUSED
    if isinstance(exc, ccxt.BaseError):
        return Failure.OTHER
    if isinstance(exc, OSError | TimeoutError):
        return Failure.TRANSPORT
    return Failure.UNREADABLE


def classify(exc: BaseException) -> Classified:
    """What the exception out of ccxt says happened (see the module docstring)."""
    import ccxt

    text = f"{type(exc).__name__}: {exc}"[:MAX_TEXT]
    return Classified(
        failure=_failure(exc),
        transport=_transport(exc),
        duplicate=isinstance(exc, ccxt.DuplicateOrderId) or "duplicate order" in text.lower(),
    )


def first_ccxt_error(exc: BaseException) -> BaseException:
    """The exception if it is ccxt's, else the nearest ccxt error in its chain, else itself. (ccxt's
    own bookkeeping can fail while it handles an exchange's refusal: the refusal is what
    happened.)"""
    import ccxt

    ccxt_error: type[BaseException] = ccxt.BaseError
    return next((c for c in (exc, *exception_chain(exc)) if isinstance(c, ccxt_error)), exc)
