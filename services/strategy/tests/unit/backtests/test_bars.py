"""The bars cache: one fetch per range shared by concurrent askers, failures not kept, bounded in
ranges, bars and time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from trademesh_events.marketdata import Bar

from trademesh_strategy.backtests.bars import BarsCache, BarsKey

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def key(name: str) -> BarsKey:
    return (f"test:{name}", "1d", T0, T0 + timedelta(days=30))


class Fetcher:
    """A fetch of `bars` that waits for `release` (set at once when made `released`)."""

    def __init__(self, bars: list[Bar], *, fail: bool, released: bool) -> None:
        self.calls = 0
        self.bars = bars
        self.fail = fail
        self.release = asyncio.Event()
        if released:
            self.release.set()

    async def __call__(self) -> list[Bar]:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError("market-data went away")
        return self.bars


MakeFetcher = Callable[..., Fetcher]


@pytest.fixture
def fetcher(daily_bars: Callable[..., list[Bar]]) -> MakeFetcher:
    """`fetcher(count=10, fail=False, released=False)`: a Fetcher of `count` bars."""

    def make(count: int = 10, *, fail: bool = False, released: bool = False) -> Fetcher:
        return Fetcher(daily_bars(count), fail=fail, released=released)

    return make


async def test_concurrent_askers_of_a_range_share_one_fetch(fetcher: MakeFetcher) -> None:
    cache = BarsCache(max_bars=1000)
    fetch = fetcher()
    waiting = [asyncio.create_task(cache.get(key("a"), fetch)) for _ in range(3)]
    await asyncio.sleep(0)
    fetch.release.set()
    got = await asyncio.gather(*waiting)
    assert fetch.calls == 1
    assert got[0] is got[1] is got[2]
    assert await cache.get(key("a"), fetch) is got[0]
    assert fetch.calls == 1


async def test_a_failed_fetch_is_not_kept_and_a_cancelled_asker_leaves_it_to_others(
    fetcher: MakeFetcher,
) -> None:
    cache = BarsCache(max_bars=1000)
    with pytest.raises(RuntimeError):
        await cache.get(key("a"), fetcher(fail=True, released=True))
    assert len(cache) == 0
    assert len(await cache.get(key("a"), fetcher(released=True))) == 10

    slow = fetcher()
    first = asyncio.create_task(cache.get(key("b"), slow))
    second = asyncio.create_task(cache.get(key("b"), slow))
    await asyncio.sleep(0)
    first.cancel()
    slow.release.set()
    assert len(await second) == 10
    assert slow.calls == 1


async def test_the_cache_is_bounded_in_ranges_bars_and_time(fetcher: MakeFetcher) -> None:
    now = [0.0]
    cache = BarsCache(max_bars=25, max_entries=2, ttl_s=60, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        await cache.get(key(name), fetcher(10, released=True))
    assert len(cache) == 2  # at most two ranges

    await cache.get(key("big"), fetcher(20, released=True))
    assert len(cache) == 1  # 10 + 20 bars > 25: the least recently used range went

    now[0] = 61.0
    cache.prune()
    assert len(cache) == 0  # expired

    again = fetcher(10, released=True)
    await cache.get(key("big"), again)
    assert again.calls == 1
