"""/api/v1/instruments and /api/v1/ohlcv: what has data, and its history resampled by the store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel
from trademesh_events.ids import InstrumentId
from trademesh_events.money import Amount
from trademesh_http import ProblemError
from trademesh_http.pagination import Page, PageDep, paginate
from trademesh_trading.timeframes import Timeframe

from trademesh_market_data.api.deps import CatalogDep, RuntimeDep, StoreDep
from trademesh_market_data.tickstore import Ohlcv

router = APIRouter(tags=["history"])


def _as_utc(moment: datetime) -> datetime:
    # A date or a time without an offset means UTC, as everywhere in the platform.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


QueryTime = Annotated[datetime, AfterValidator(_as_utc)]


class InstrumentPage(Page[str]):
    pass


class OhlcvPage(BaseModel):
    instrument_id: str
    timeframe: str
    items: list[Ohlcv]
    next_start: datetime | None = None  # pass as `start` for the next page


class LastPrice(BaseModel):
    instrument_id: str
    ts: datetime
    price: Amount


@router.get("/instruments", summary="Instruments with a feed, in id order")
async def list_instruments(
    catalog: CatalogDep,
    request: PageDep,
) -> InstrumentPage:
    after = request.after(str)
    ids = await catalog.instruments(after[0] if after else None, request.fetch)
    items, cursor = paginate(ids, request, lambda instrument: (instrument,))
    return InstrumentPage(items=items, next_cursor=cursor)


async def _known(catalog: CatalogDep, instrument: str) -> None:
    if not await catalog.has_instrument(instrument):
        raise ProblemError(404, "Unknown instrument", f"No instrument {instrument!r}.")


@router.get("/ohlcv", summary="OHLCV bars of an instrument, resampled in the database")
async def ohlcv(
    runtime: RuntimeDep,
    catalog: CatalogDep,
    store: StoreDep,
    instrument: Annotated[InstrumentId, Query(description="e.g. binance:BTC/USDT")],
    timeframe: Annotated[str, Query(description="e.g. 1m, 5m, 1h, 1d, 1w")],
    start: Annotated[QueryTime, Query(description="First bar opening at or after (UTC).")],
    end: Annotated[QueryTime, Query(description="Bars opening before (UTC).")],
    limit: Annotated[int | None, Query(ge=1, description="Page size.")] = None,
) -> OhlcvPage:
    try:
        tf = Timeframe.parse(timeframe)
    except ValueError as exc:
        raise ProblemError(422, "Invalid timeframe", str(exc)) from None
    if end <= start:
        raise ProblemError(422, "Invalid range", "end must be after start.")
    most = runtime.settings.history_max_rows
    if limit is not None and limit > most:
        raise ProblemError(422, "Page too large", f"limit must be at most {most}.")
    await _known(catalog, instrument)
    size = limit or most
    bars = await store.ohlcv(instrument, tf, start, end, size + 1)
    more = len(bars) > size
    return OhlcvPage(
        instrument_id=instrument,
        timeframe=tf.label,
        items=bars[:size],
        next_start=bars[size].open_time if more else None,
    )


@router.get("/prices/last", summary="The latest price of an instrument")
async def last_price(
    catalog: CatalogDep,
    store: StoreDep,
    instrument: Annotated[InstrumentId, Query(description="e.g. binance:BTC/USDT")],
) -> LastPrice:
    await _known(catalog, instrument)
    found = await store.last_price(instrument)
    if found is None:
        raise ProblemError(404, "No price yet", f"No tick or bar of {instrument!r} stored yet.")
    return LastPrice(instrument_id=instrument, ts=found[0], price=found[1])
