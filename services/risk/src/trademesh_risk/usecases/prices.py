"""The last price of every instrument, in memory, saved to the schema now and then.

Every replica must see every price (an account's intents may concern any instrument), so the
price consumers use a consumer group of their own per process, from the end of the topics.
Prices arrive in order per instrument (one partition each): the last one received is the last
price, whatever its timestamp (a replay of old data is still the price the platform trades at).
A restarted process starts from the saved prices, so it can check orders before the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from decimal import Decimal

from trademesh_events.ids import InstrumentId
from trademesh_observability.logging import get_logger

from trademesh_risk.store import RiskStore

log = get_logger("trademesh_risk.prices")


class PriceBook:
    def __init__(self, store: RiskStore, *, save_interval: float = 1.0) -> None:
        self.store = store
        self.save_interval = save_interval
        self._prices: dict[InstrumentId, tuple[Decimal, datetime]] = {}
        self._unsaved: dict[InstrumentId, tuple[Decimal, datetime]] = {}

    async def load(self) -> None:
        saved = await self.store.load_prices()
        for instrument, value in saved.items():
            self._prices.setdefault(instrument, value)

    def update(self, instrument_id: InstrumentId, price: Decimal, ts: datetime) -> None:
        self._prices[instrument_id] = self._unsaved[instrument_id] = (price, ts)

    def get(self, instrument_id: InstrumentId) -> Decimal | None:
        found = self._prices.get(instrument_id)
        return found[0] if found is not None else None

    def of(self, instruments: set[InstrumentId]) -> dict[InstrumentId, Decimal]:
        return {i: p for i in instruments if (p := self.get(i)) is not None}

    async def save(self) -> None:
        unsaved, self._unsaved = self._unsaved, {}
        try:
            await self.store.save_prices(unsaved)
        except Exception:
            for instrument, value in unsaved.items():  # keep them for the next try
                self._unsaved.setdefault(instrument, value)
            raise

    async def run(self, stop: asyncio.Event) -> None:
        """Save new prices every save_interval until `stop`, and once more at the end."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.save_interval)
            try:
                await self.save()
            except Exception:
                log.warning("saving prices failed; will retry", exc_info=True)
