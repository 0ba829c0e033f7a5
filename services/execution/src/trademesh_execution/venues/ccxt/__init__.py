"""The live venue on ccxt: orders on any ccxt exchange by client order id, and the account's
order updates on the exchange's private stream where ccxt has one.

- `rest`: `CcxtVenue`, what is sent and asked over REST (submit, cancel, fetch, open orders,
  recent trades, balances), with the secrets, rate limits and markets it holds.
- `stream`: its order stream (ccxt.pro), every update taken in once as ccxt parses it.
- `reports`: ccxt's answers as the venue's reports, trades, updates and balances, validated.
- `errors`: ccxt's failures as VenueErrors, and the counting and logging of malformed records.

What ccxt-specific work is not the venue's own (parsing untrusted numbers, classifying ccxt's
failures, redaction, parser guards, the markets and rate limiter the venues of an exchange
share) is in `trademesh_exchange`.
"""

from __future__ import annotations

from trademesh_execution.venues.ccxt.errors import venue_error
from trademesh_execution.venues.ccxt.reports import (
    balances_from_ccxt,
    report_from_ccxt,
    trade_from_ccxt,
    updates_from_ccxt,
    venue_status,
)
from trademesh_execution.venues.ccxt.rest import CcxtVenue, symbol_of

__all__ = [
    "CcxtVenue",
    "balances_from_ccxt",
    "report_from_ccxt",
    "symbol_of",
    "trade_from_ccxt",
    "updates_from_ccxt",
    "venue_error",
    "venue_status",
]
