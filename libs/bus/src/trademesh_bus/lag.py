"""Consumer lag of the partitions this process holds, sampled on a timer into trademesh_bus_consumer_lag."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from trademesh_bus import metrics

log = logging.getLogger("trademesh.bus")

LAG_INTERVAL_S = 5.0

# (group, topic, partition) -> the offset after the last record handed to a handler.
Positions = Mapping[tuple[str, str, int], int]


def partition_lags(
    consumer: AIOKafkaConsumer, group: str, positions: Positions
) -> dict[TopicPartition, int]:
    """Per partition assigned to `consumer`: its end offset minus the next offset to hand over.

    Both are read from state this process already holds, with no request and no wait: the end
    offset is the high watermark of the partition's last fetch response (the consumer fetches
    all the time, so it is at most one fetch old), and `positions` holds, per (group, topic,
    partition), the offset after the last record handed to a handler (the bus records it). A
    partition not fetched yet, or with no record handed over since this process started, is
    left out: its lag is not known here. An earlier version awaited the consumer's position()
    and a ListOffsets request; under load a sample could then hold a service's shutdown for a
    request timeout.
    """
    lags: dict[TopicPartition, int] = {}
    for tp in sorted(consumer.assignment()):
        end = consumer.highwater(tp)
        position = positions.get((group, tp.topic, tp.partition))
        if end is None or position is None:
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
        positions: Positions,
        service: str,
        interval: float = LAG_INTERVAL_S,
    ) -> None:
        self._subscribers = subscribers
        self._positions = positions
        self.service = service
        self.interval = interval
        self._shown: set[tuple[str, int]] = set()

    def _consumers(self) -> list[tuple[str, AIOKafkaConsumer]]:
        # A subscriber makes a new consumer at each start: look it up at every sample.
        found = []
        for subscriber in self._subscribers():
            consumer = getattr(subscriber, "consumer", None)
            if isinstance(consumer, AIOKafkaConsumer):
                found.append((str(getattr(subscriber, "group_id", "") or ""), consumer))
        return found

    def sample(self) -> dict[tuple[str, int], int]:
        """One sample of every consumer, recorded; the lags by (topic, partition)."""
        now: dict[tuple[str, int], int] = {}
        for group, consumer in self._consumers():
            for tp, lag in partition_lags(consumer, group, self._positions).items():
                key = (tp.topic, tp.partition)
                # Two groups of one process on the same topic: the slower one tells.
                now[key] = max(lag, now.get(key, 0))
        for (topic, partition), lag in now.items():
            metrics.consumer_lag(self.service, topic, partition, lag)
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
                self.sample()
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
