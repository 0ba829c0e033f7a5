"""Live venues: the `Venue` interface the execution runtime drives, and its ccxt implementation.

The paper venue is not here: it is pure matching in `trademesh_execution.engine`.
"""

from __future__ import annotations

from trademesh_execution.venues.base import (
    Balance,
    DuplicateOrder,
    MalformedResponse,
    StreamUnsupported,
    Venue,
    VenueBalances,
    VenueError,
    VenueRejected,
    VenueReport,
    VenueTimeout,
    VenueTrade,
    VenueUnavailable,
    VenueUpdate,
    split_instrument,
)
from trademesh_execution.venues.ccxt import CcxtVenue, symbol_of

__all__ = [
    "Balance",
    "CcxtVenue",
    "DuplicateOrder",
    "MalformedResponse",
    "StreamUnsupported",
    "Venue",
    "VenueBalances",
    "VenueError",
    "VenueRejected",
    "VenueReport",
    "VenueTimeout",
    "VenueTrade",
    "VenueUnavailable",
    "VenueUpdate",
    "split_instrument",
    "symbol_of",
]
