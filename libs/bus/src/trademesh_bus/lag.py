"""Consumer lag of the partitions this process holds, sampled on a timer into trademesh_bus_consumer_lag."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from trademesh_bus import metrics

log = logging.getLogger("trademesh.bus")

LAG_INTERVAL_S = 5.0
_POSITION_TIMEOUT_S = 1.0
_SAMPLE_TIMEOUT_S = 10.0


async def partition_lags(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """Per partition assigned to `consumer`: its end offset minus the consumer's position.

    Both come from the consumer's own state, with no request to the broker: the end offset is
    the high watermark of the partition's last fetch response (the consumer fetches all the
    time, so it is at most one fetch old), the position the next record it hands to the
    handler (FastStream commits each record after its handler, so the committed offset is at
    most one behind). An earlier version asked the broker (ListOffsets) and held the
    consumer's shutdown for a request timeout under load. A partition not fetched yet, or
    whose position is not known yet, is left out.
    """
    lags: dict[TopicPartition, int] = {}
    for tp in sorted(consumer.assignment()):
        end = consumer.highwater(tp)
        if end is None:
            continue
        try:
            position = await asyncio.wait_for(consumer.position(tp), _POSITION_TIMEOUT_S)
        except (IllegalStateError, TimeoutError):
            continue
        # Tansu's end offset can stop short of a batch the consumer has read: never below 0.
        lags[tp] = max(end - position, 0)
    return lags


class LagSampler:
    """Every `interval` seconds, the lag of each partition the subscribers' consumers hold, as
    trademesh_bus_consumer_lag{service, topic, partition}; a partition no longer held (a
    rebalance moved it to another replica) loses its series."""

    def __init__(
        self,
        subscribers: Callable[[], Iterable[object]],
        service: str,
        interval: float = LAG_INTERVAL_S,
    ) -> None:
        self._subscribers = subscribers
        self.service = service
        self.interval = interval
        self._shown: set[tuple[str, int]] = set()

    def _consumers(self) -> list[AIOKafkaConsumer]:
        # A subscriber makes a new consumer at each start: look it up at every sample.
        found = (getattr(sub, "consumer", None) for sub in self._subscribers())
        return [c for c in found if isinstance(c, AIOKafkaConsumer)]

    async def sample(self) -> dict[tuple[str, int], int]:
        """One sample of every consumer, recorded; the lags by (topic, partition)."""
        now: dict[tuple[str, int], int] = {}
        failed = False
        for consumer in self._consumers():
            try:
                lags = await asyncio.wait_for(partition_lags(consumer), _SAMPLE_TIMEOUT_S)
            except (KafkaError, TimeoutError) as exc:
                log.debug("consumer lag not sampled: %s", type(exc).__name__)
                failed = True
                continue
            for tp, lag in lags.items():
                key = (tp.topic, tp.partition)
                # Two groups of one process on the same topic: the slower one tells.
                now[key] = max(lag, now.get(key, 0))
        for (topic, partition), lag in now.items():
            metrics.consumer_lag(self.service, topic, partition, lag)
        if failed:
            # The broker did not answer: what is not known now keeps its last value, rather
            # than vanish and come back.
            self._shown |= now.keys()
        else:
            for key in self._shown - now.keys():
                metrics.consumer_lag_gone(self.service, *key)
            self._shown = set(now)
        return now

    def clear(self) -> None:
        for key in self._shown:
            metrics.consumer_lag_gone(self.service, *key)
        self._shown = set()

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            try:
                await self.sample()
            except Exception:
                log.warning("sampling the consumer lag failed; will retry", exc_info=True)
            await asyncio.sleep(self.interval)


async def stop_sampler(task: asyncio.Task[None] | None, sampler: LagSampler | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if sampler is not None:
        sampler.clear()
