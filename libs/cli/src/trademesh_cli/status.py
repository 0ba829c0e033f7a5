"""`trademesh status`: each service's readiness, the consumer lag per group and topic, the demo bot."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from trademesh_cli.demo import load_state
from trademesh_cli.project import ServiceEntry, run_file


@dataclass(frozen=True)
class Readiness:
    name: str
    url: str
    state: str  # ready, not ready (with the failing checks), down
    detail: str = ""
    metrics_url: str = ""  # where its /metrics is served (the gateway's: a port of its own)


@dataclass(frozen=True)
class Lag:
    group: str
    topic: str
    lag: int  # messages on the topic the group has not committed yet
    partitions: int


def _processes(
    services: list[ServiceEntry], offset: int, home: Path | None
) -> list[tuple[str, str, str]]:
    """(name, url, metrics url) of every process: as the running `trademesh up` listed them
    (its --replicas included), else every registered service and replica on its ports
    (+ `offset`)."""
    if home is not None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            rows = json.loads(run_file(home).read_text())
            return [
                (str(row["name"]), str(row["url"]), str(row.get("metrics_url", row["url"])))
                for row in rows
            ]

    out = []
    for entry in services:
        for replica in range(entry.replicas):
            name = entry.name if replica == 0 else f"{entry.name}-{replica + 1}"
            url = f"http://127.0.0.1:{entry.port + offset + replica}"
            if entry.metrics_port is not None:
                metrics = f"http://127.0.0.1:{entry.metrics_port + offset + replica}"
            else:
                metrics = url
            out.append((name, url, metrics))
    return out


def readiness(
    services: list[ServiceEntry], offset: int = 0, home: Path | None = None
) -> list[Readiness]:
    """GET /ready of every service process."""
    out: list[Readiness] = []
    with httpx.Client(timeout=2.0) as http:
        for name, url, metrics in _processes(services, offset, home):
            metrics_url = f"{metrics}/metrics"
            try:
                response = http.get(f"{url}/ready")
            except httpx.HTTPError:
                out.append(Readiness(name, url, "down", metrics_url=metrics_url))
                continue
            if response.status_code == 200:
                out.append(Readiness(name, url, "ready", metrics_url=metrics_url))
            else:
                checks = response.json().get("checks", {}) if response.content else {}
                failing = ", ".join(k for k, v in checks.items() if v != "ok")
                out.append(Readiness(name, url, "not ready", failing, metrics_url))
    return out


async def consumer_lag(
    bootstrap: str,
    security: Mapping[str, Any] | None = None,
    topics: Sequence[str] | None = None,
) -> list[Lag]:
    """For every consumer group: per topic it has committed on, end offsets minus committed
    (the registry's topics, or `topics`).

    A group named `<service group>.<topic>` (with `.<instance>` after it where every replica
    reads everything: ticks for risk, the gateway's event stream) reads that topic; a group
    whose name holds no topic (one consumer for several topics, e.g. `execution.md`) is asked
    for its committed offsets on every topic, and the topics it has any on are its own.
    Committed offsets are read the way the consumers read them (OffsetFetch through a group
    coordinator): Tansu does not answer the admin client's version of that request. End offsets
    are checked against the partition's last records (`_true_ends`).
    """
    from trademesh_events.topics import TOPICS

    names = [spec.name for spec in TOPICS] if topics is None else list(topics)
    known = sorted(names, key=len, reverse=True)
    tls_sasl = dict(security or {})  # aiokafka's TLS/SASL arguments (bus client_security)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **tls_sasl)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **tls_sasl)
    # Fetches the records at the listed ends. A consumer of its own: an assigned consumer keeps
    # the metadata of its assigned topics only, and `reader` must know every topic's partitions.
    tail = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50, **tls_sasl
    )
    await admin.start()
    await reader.start()
    await tail.start()
    true_ends: dict[TopicPartition, int] = {}
    try:
        await reader.topics()  # the cluster's metadata, for partitions_for_topic
        groups = sorted(str(g[0]) for g in await admin.list_consumer_groups())
        out: list[Lag] = []
        for group in groups:
            named = next((t for t in known if f".{t}." in f"{group}."), None)
            member = AIOKafkaConsumer(
                bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **tls_sasl
            )
            await member.start()
            try:
                for topic in [named] if named is not None else known:
                    partitions = [
                        TopicPartition(topic, p)
                        for p in sorted(reader.partitions_for_topic(topic) or ())
                    ]
                    if not partitions:
                        continue
                    committed = [await member.committed(tp) for tp in partitions]
                    if named is None and all(done is None for done in committed):
                        continue  # not a topic of this group
                    ends = await _true_ends(tail, partitions, true_ends)
                    lag = sum(
                        max(ends[tp] - (done or 0), 0)
                        for tp, done in zip(partitions, committed, strict=True)
                    )
                    out.append(Lag(group, topic, lag, len(partitions)))
            finally:
                await member.stop()
        return out
    finally:
        await tail.stop()
        await reader.stop()
        await admin.close()


async def _true_ends(
    tail: AIOKafkaConsumer, partitions: list[TopicPartition], known: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The offset after each partition's last record (remembered in `known` for the call).

    The end offset a broker lists is not trusted as it is: Tansu answers the base offset of the
    last batch plus one, not the offset after its last record (20 records produced in one batch
    after 0 are listed as ending at 1, not 20), so a group that has read only the first record
    of a batch would show no lag. A fetch from the listed end's record returns that whole batch,
    whose last record gives the real end; on Kafka and Redpanda it returns the record before the
    listed end, and the end stays as listed. One small fetch per partition with records."""
    wanted = [tp for tp in partitions if tp not in known]
    if wanted:
        listed = await tail.end_offsets(wanted)
        for tp in wanted:
            end = listed[tp]
            if end > 0:
                tail.assign([tp])
                tail.seek(tp, end - 1)
                fetched = await tail.getmany(tp, timeout_ms=2000)
                end = max([end, *(record.offset + 1 for record in fetched.get(tp, []))])
            known[tp] = end
    return {tp: known[tp] for tp in partitions}


def demo_bot(home: Path, gateway: str) -> dict[str, str] | None:
    """The demo bot as the gateway shows it to its owner, or None without a demo."""
    state = load_state(home)
    if state is None:
        return None
    try:
        response = httpx.get(
            f"{gateway}/api/v1/bots/{state.bot_id}",
            headers={"X-API-Key": state.api_key},
            timeout=3.0,
        )
    except httpx.HTTPError:
        return {"bot_id": state.bot_id, "state": "unknown (gateway down)"}
    if response.status_code != 200:
        return {"bot_id": state.bot_id, "state": f"unknown ({response.status_code})"}
    bot = response.json()
    return {
        "bot_id": state.bot_id,
        "name": str(bot.get("name")),
        "state": str(bot.get("state")),
        "instrument": str(bot.get("instrument_id")),
        "last bar": str(bot.get("last_bar_time")),
    }


def lag_now(bootstrap: str, security: Mapping[str, Any] | None = None) -> list[Lag]:
    return asyncio.run(consumer_lag(bootstrap, security))
