"""/api/v1/feeds: configure feeds per instrument, start and stop them, see their state."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel
from trademesh_http import ProblemError
from trademesh_http.caller import get_admin
from trademesh_http.pagination import Page, PageDep, paginate

from trademesh_market_data.api.deps import CatalogDep, FeedsDep
from trademesh_market_data.catalog import FeedConfig, FeedCreate, FeedRecord, ReplayConfig
from trademesh_market_data.usecases.manager import FeedManager

# Feeds are the platform's, not a user's: only an admin (a verified access token with the admin
# role, checked here as well as at the gateway) reads or changes them. The history routes stay
# open to the services inside the cluster (strategy warms bots from them with no caller);
# NetworkPolicies keep them from anyone else, and the gateway asks for a signed-in user.
router = APIRouter(prefix="/feeds", tags=["feeds"], dependencies=[Depends(get_admin)])


class FeedOut(BaseModel):
    feed_id: UUID
    instrument_id: str
    timeframes: list[str]
    config: FeedConfig
    enabled: bool
    created_at: datetime
    partial_every_s: float | None = None
    state: str
    error: str | None = None
    published_ticks: int = 0
    published_bars: int = 0
    rejected: int = 0
    reconnects: int = 0


def _out(record: FeedRecord, feeds: FeedManager) -> FeedOut:
    handle = feeds.state(record.feed_id)
    runner = handle.runner if handle else None
    state = handle.state if handle else "stopped"
    # A replay is "finished" only once its row was disabled; a record read just before that
    # commit still says enabled, so the state, read later, decides.
    enabled = record.enabled and state != "finished"
    return FeedOut(
        **record.model_dump(exclude={"enabled"}),
        enabled=enabled,
        state=state,
        error=handle.error if handle else None,
        published_ticks=runner.published_ticks if runner else 0,
        published_bars=runner.published_bars if runner else 0,
        rejected=runner.rejections if runner else 0,
        reconnects=runner.reconnects if runner else 0,
    )


async def _record(catalog: CatalogDep, feed_id: UUID) -> FeedRecord:
    record = await catalog.feed(feed_id)
    if record is None:
        raise ProblemError(404, "Unknown feed", f"No feed {feed_id}.")
    return record


@router.post("", status_code=201, summary="Add a feed (started at once when enabled)")
async def add_feed(create: FeedCreate, catalog: CatalogDep, feeds: FeedsDep) -> FeedOut:
    if isinstance(create.config, ReplayConfig):
        try:
            feeds.replay_path(create.config.file)
        except FileNotFoundError as exc:
            raise ProblemError(422, "Unknown replay file", str(exc)) from None
    record = await catalog.add_feed(create)
    if record.enabled:
        feeds.start(record)
    return _out(record, feeds)


class FeedPage(Page[FeedOut]):
    pass


@router.get("", summary="Feeds and their state, in id order")
async def list_feeds(
    catalog: CatalogDep,
    feeds: FeedsDep,
    request: PageDep,
) -> FeedPage:
    after = request.after(UUID)
    records = await catalog.feed_page(after[0] if after else None, request.fetch)
    items, cursor = paginate(records, request, lambda record: (record.feed_id,))
    return FeedPage(items=[_out(record, feeds) for record in items], next_cursor=cursor)


@router.get("/{feed_id}", summary="One feed and its state")
async def get_feed(feed_id: UUID, catalog: CatalogDep, feeds: FeedsDep) -> FeedOut:
    return _out(await _record(catalog, feed_id), feeds)


@router.post("/{feed_id}/start", summary="Enable and start a feed")
async def start_feed(feed_id: UUID, catalog: CatalogDep, feeds: FeedsDep) -> FeedOut:
    record = await _record(catalog, feed_id)
    await catalog.set_enabled(feed_id, True)
    feeds.start(record)
    return _out(record.model_copy(update={"enabled": True}), feeds)


@router.post("/{feed_id}/stop", summary="Stop and disable a feed")
async def stop_feed(feed_id: UUID, catalog: CatalogDep, feeds: FeedsDep) -> FeedOut:
    record = await _record(catalog, feed_id)
    await catalog.set_enabled(feed_id, False)
    await feeds.stop(feed_id)
    return _out(record.model_copy(update={"enabled": False}), feeds)


@router.delete("/{feed_id}", status_code=204, summary="Stop and delete a feed")
async def delete_feed(feed_id: UUID, catalog: CatalogDep, feeds: FeedsDep) -> Response:
    await _record(catalog, feed_id)
    await feeds.stop(feed_id)
    await catalog.delete_feed(feed_id)
    return Response(status_code=204)
