"""Pipeline latency: bars replayed through market-data -> strategy -> risk -> execution (paper).

The platform as `make run` starts it (`trademesh up --no-demo`: embedded Postgres and Tansu,
every service a process of its own, outbox and inbox on, default settings) on ports of its own.
An admin (made by `trademesh user create`) opens a paper account and, per instrument, plays a
short warm-up replay and starts a bot: `rsi_cross` with period 2, oversold 30, overbought 70
(BENCH_RSI), which trades on about one bar in six of this data when its fills come back at once
(the default 14/30/70 trades on under 1% of bars). Its market orders go through risk (no limits
set: every check runs, every order is approved) to execution's paper venue, which fills a market
order on the instrument's next bar.

Data: 1-minute bars made from the bundled GOOG daily bars (played forwards then backwards, so a
file of any length stays continuous), written to a folder that market-data replays from
(TRADEMESH_REPLAY_DIR); replay feeds added through the gateway, each with the `speed` that makes
all of them together RATE bars/s. Two phases, one after the other:
- light: one instrument at LIGHT_RATE bars/s, the latency when nothing queues;
- load: RATE bars/s over FEEDS instruments, BARS bars in all. When the slower bar consumer
  (strategy's or execution's) is MAX_BACKLOG bars behind, the replay is stopped (the rate is not
  sustainable: latency would only grow with the length of the run), and the bench waits for what
  is in flight (at most DRAIN_S).

What is measured: the bench reads md.bars.v1 and the order topics itself (a consumer of no
group, asking the broker every OBSERVER_WAIT_MS) and joins each order by client_order_id, and to
its decision bar by the intent's decided_at (that bar's close time). All times are the host's
wall clock: a bar's publish time is its CloudEvents ce_time (set by market-data's publish_many
just before the send); then the intent's created_at (strategy decided), approved_at (risk), the
OrderAccepted ts (execution placed it on the paper venue), the fill's ce_time (execution wrote it
to its outbox), and for each event the time the bench received it ("on the bus", standing in for
the consuming service's own arrival: a service that reads it later shows that in its hop). An
order's latency is its decision bar's publish -> its fill received. The hops between are printed
with p50/p95/p99, and so is the part of "placed -> fill" spent waiting for the instrument's next
bar. Orders decided in a phase's first second are left out. bars_per_s is the bars each bar
consumer handled (committed offsets of strategy.md.bars.v1 and execution.md.bars.v1) over the time
from the first bar's publish until it had handled the last (or until the measure ended): the
lower of the two.

Baseline, in the same run on the same broker with the services' producer settings: messages sent
at RATE per second through three relay processes over four topics (consume, send on, nothing
else: the bus hops bar -> intent -> approval -> fill) to the bench's consumer. ratio = baseline
p50 / pipeline p50 (1.0 would mean the services add nothing to the bare bus).

Targets (T7): p50 <= 8 ms and p99 <= 25 ms at 1000 bars/s. The services, Postgres, Tansu and the
bench share the machine's cores.

Knobs: BENCH_RATE, BENCH_BARS, BENCH_FEEDS, BENCH_LIGHT_RATE, BENCH_LIGHT_BARS, BENCH_RSI
("period,oversold,overbought"), BENCH_LINGER_MS (the services' TRADEMESH_KAFKA_LINGER_MS; unset:
their default), BENCH_BASELINE_S, BENCH_MAX_BACKLOG, BENCH_DRAIN_S, BENCH_CSV (a file to append
each measured order's timestamps to).

Last line (the load phase): BENCH pipeline_latency p50_ms=... p95_ms=... p99_ms=...
bars_per_s=... ratio=...
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import os
import shutil
import struct
import sys
import tempfile
import time
import uuid
from asyncio.subprocess import DEVNULL
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import quantiles
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from trademesh_config import KafkaSettings
from trademesh_events.topics import (
    MD_BARS,
    ORDERS_APPROVED,
    ORDERS_DENIED,
    ORDERS_EVENTS,
    ORDERS_INTENTS,
)
from trademesh_testing.platform import ROOT, Platform, clean_env, free_offset

RATE = float(os.environ.get("BENCH_RATE", "1000"))
BARS = int(os.environ.get("BENCH_BARS", "20000"))
FEEDS = int(os.environ.get("BENCH_FEEDS", "4"))
LIGHT_RATE = float(os.environ.get("BENCH_LIGHT_RATE", "25"))
LIGHT_BARS = int(os.environ.get("BENCH_LIGHT_BARS", "300"))
RSI = [float(x) for x in os.environ.get("BENCH_RSI", "2,30,70").split(",")]
LINGER_MS = os.environ.get("BENCH_LINGER_MS")  # unset: the services' default
BASELINE_S = float(os.environ.get("BENCH_BASELINE_S", "5"))
MAX_BACKLOG = int(os.environ.get("BENCH_MAX_BACKLOG", "1000"))
DRAIN_S = float(os.environ.get("BENCH_DRAIN_S", "30"))
DUMP = os.environ.get("BENCH_CSV")  # a file to write each measured order's timestamps to
SKIP_S = 1.0  # orders decided in a phase's first second are not counted (connections warm up)
OBSERVER_WAIT_MS = 2  # the longest the bench's own consumer lets a fetch wait (see observer())
WARM_BARS = 60
TIMEFRAME, BAR_LENGTH = "1m", timedelta(minutes=1)
BAR_S = BAR_LENGTH.total_seconds()
START = datetime(2020, 1, 1, tzinfo=UTC)
FIRST_BAR = (START + WARM_BARS * BAR_LENGTH).timestamp()  # the open time of the first measured bar
GOOG = ROOT / "services/market-data/src/trademesh_market_data/data/GOOG.csv"
PASSWORD = "a long benchmark passphrase for the admin"
HOPS = 3  # processing hops between a bar and its fill: strategy, risk, execution
STAMP = struct.Struct("!d")
GROUPS = ("strategy.md.bars.v1", "execution.md.bars.v1")


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def pct(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return (values[0],) * 3 if values else (float("nan"),) * 3
    cuts = quantiles(values, n=100)
    return cuts[49], cuts[94], cuts[98]


# ---- data -------------------------------------------------------------------------------------


def write_files(folder: Path, names: list[str], bars: int) -> None:
    """Per name: `<name>-warm.csv` and `<name>.csv`, 1-minute bars in one run of time. The prices
    are GOOG's daily bars played forwards then backwards (open and close swapped), so a file of
    any length stays continuous and in GOOG's range; each file starts elsewhere in the series."""
    with GOOG.open() as handle:
        rows = [tuple(r[1:6]) for r in list(csv.reader(handle))[1:]]
    backwards = [(c, h, low, o, v) for o, h, low, c, v in reversed(rows)]
    cycle = rows + backwards
    for n, name in enumerate(names):
        series = [cycle[(n * 397 + i) % len(cycle)] for i in range(WARM_BARS + bars)]
        for file, part, first in (
            (f"{name}-warm.csv", series[:WARM_BARS], 0),
            (f"{name}.csv", series[WARM_BARS:], WARM_BARS),
        ):
            with (folder / file).open("w", newline="") as handle:
                out = csv.writer(handle)
                out.writerow(["timestamp", "open", "high", "low", "close", "volume"])
                for i, row in enumerate(part):
                    moment = START + (first + i) * BAR_LENGTH
                    out.writerow([moment.isoformat().replace("+00:00", "Z"), *row])


# ---- what the bench sees on the bus ----------------------------------------------------------


@dataclass
class Seen:
    """The events of the run: envelope times (ce_time) and arrival times at the observer."""

    bars: dict[tuple[str, float], tuple[float, float]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    approved: dict[str, dict[str, float]] = field(default_factory=dict)
    denied: dict[str, str] = field(default_factory=dict)
    accepted: dict[str, float] = field(default_factory=dict)
    filled: dict[str, dict[str, float]] = field(default_factory=dict)

    def take(self, topic: str, record: Any, now: float) -> None:
        ce_time = ts(dict(record.headers or [])["ce_time"].decode())
        event = json.loads(record.value)
        kind = event["type"]
        if topic == MD_BARS:
            opened = ts(event["open_time"])
            if opened >= FIRST_BAR:  # not a warm-up bar read again (see observer())
                self.bars[(event["instrument_id"], opened)] = (ce_time, now)
        elif kind == "trademesh.order.intent" and event.get("decided_at"):
            self.intents[event["client_order_id"]] = {
                "instrument": event["instrument_id"],
                "created": ts(event["created_at"]),
                "decided": ts(event["decided_at"]),
                "seen": now,
            }
        elif kind == "trademesh.order.approved":
            self.approved[event["order"]["client_order_id"]] = {
                "at": ts(event["approved_at"]),
                "seen": now,
            }
        elif kind == "trademesh.order.denied":
            self.denied[event["client_order_id"]] = event["reason"]
        elif kind == "trademesh.order.accepted":
            self.accepted[event["client_order_id"]] = ts(event["ts"])
        elif kind == "trademesh.order.filled" and float(event["leaves_qty"]) == 0:
            self.filled[event["client_order_id"]] = {
                "bar": ts(event["ts"]),
                "ce": ce_time,
                "seen": now,
            }


async def observer(bootstrap: str, topics: list[str]) -> AIOKafkaConsumer:
    """A consumer of every partition of `topics` from their ends (no group), asking often.

    Tansu (0.6) holds a fetch for a good part of its max wait however soon a record arrives (up
    to about half of it when probed with aiokafka: consumers left at the usual 500 ms see a
    record some 130 ms late at p50), hence the short wait here. It also gives, as a partition's
    end offset, one past the first record of the last batch rather than past its last record, so
    "from the end" may start inside the last batch (the warm-up bars, which Seen.take drops)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=OBSERVER_WAIT_MS,
    )
    await consumer.start()
    await consumer.topics()  # the cluster's metadata, for partitions_for_topic
    partitions = [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)
    return consumer


async def observe(consumer: AIOKafkaConsumer, seen: Seen, stop: asyncio.Event) -> None:
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=100)
        now = time.time()
        for tp, records in batches.items():
            for record in records:
                seen.take(tp.topic, record, now)


# ---- baseline: the bare bus through the same hops --------------------------------------------


def relay_main(bootstrap: str, source: str, target: str, linger_ms: int) -> None:
    """One hop of the baseline: consume `source`, send each message on to `target` unchanged."""

    async def run() -> None:
        consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"relay-{source}")
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=linger_ms
        )
        await consumer.start()
        await producer.start()
        try:
            async for record in consumer:
                await producer.send(target, record.value, key=record.key)
        finally:
            await consumer.stop()
            await producer.stop()

    asyncio.run(run())


async def baseline(bootstrap: str, linger_ms: int) -> list[float]:
    """Latencies (ms) of messages sent at RATE through three relay processes (four topics)."""
    topics = [f"bench.hop{n}.{uuid.uuid4().hex[:6]}" for n in range(HOPS + 1)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 1, 1) for t in topics])
    finally:
        await admin.close()
    relays = []
    for source, target in itertools.pairwise(topics):
        args = ["--relay", bootstrap, source, target, str(linger_ms)]
        relays.append(
            await asyncio.create_subprocess_exec(
                sys.executable, __file__, *args, stdout=DEVNULL, stderr=DEVNULL
            )
        )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=linger_ms
    )
    consumer = await observer(bootstrap, topics[-1:])
    await producer.start()
    latencies: list[float] = []
    try:
        # Until a message makes it through (the relays joined their groups and have positions).
        deadline = time.monotonic() + 60
        through = False
        while time.monotonic() < deadline and not through:
            await producer.send_and_wait(topics[0], STAMP.pack(time.time()), key=b"k")
            through = any((await consumer.getmany(timeout_ms=500)).values())
        if not through:
            raise RuntimeError("the baseline relays passed nothing on")
        await asyncio.sleep(1)
        await consumer.getmany(timeout_ms=100)
        stop = asyncio.Event()

        async def collect() -> None:
            while not stop.is_set():
                got = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for records in got.values():
                    for record in records:
                        latencies.append((now - STAMP.unpack(record.value)[0]) * 1000)

        collector = asyncio.create_task(collect())
        started = time.perf_counter()
        for n in range(int(RATE * BASELINE_S)):
            delay = started + n / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(topics[0], STAMP.pack(time.time()), key=b"k")
        await asyncio.sleep(3)
        stop.set()
        await collector
    finally:
        await producer.stop()
        await consumer.stop()
        for relay in relays:
            relay.terminate()
        for relay in relays:
            await relay.wait()
    return latencies


# ---- the platform ----------------------------------------------------------------------------


class Progress:
    """How far the bar consumers of strategy and execution have got (committed offsets)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.members: dict[str, AIOKafkaConsumer] = {}
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        for group in GROUPS:
            member = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False
            )
            await member.start()
            self.members[group] = member
        reader = self.members[GROUPS[0]]
        await reader.topics()
        self.partitions = [
            TopicPartition(MD_BARS, p) for p in sorted(reader.partitions_for_topic(MD_BARS) or ())
        ]

    async def committed(self) -> dict[str, int]:
        out = {}
        for group, member in self.members.items():
            out[group] = sum([await member.committed(tp) or 0 for tp in self.partitions])
        return out

    async def stop(self) -> None:
        for member in self.members.values():
            await member.stop()


@dataclass
class Phase:
    name: str
    instruments: list[str]
    rate: float
    bars: int
    feeds: list[str] = field(default_factory=list)
    handled: list[tuple[float, dict[str, int]]] = field(default_factory=list)  # polled
    stopped_at: int | None = None  # bars published when the replay was stopped (backlog)
    left: tuple[int, int] | None = None  # (bars, orders) still in flight when the wait ended


def check(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:300]}")
    return response.json() if response.content else None


async def set_up(http: httpx.AsyncClient, admin: dict[str, str], phases: list[Phase]) -> None:
    """A paper account; per instrument a warm-up replay (stored before its bot starts) and an
    RSI-cross bot trading it."""
    period, oversold, overbought = int(RSI[0]), RSI[1], RSI[2]
    account = check(
        await http.post(
            "/api/v1/accounts",
            json={"name": "bench", "venue": "paper", "cash": "1000000000"},
            headers=admin,
        ),
        "paper account",
    )["account_id"]
    instruments = [i for phase in phases for i in phase.instruments]
    for instrument in instruments:
        config = {"kind": "replay", "file": f"{file_name(instrument)}-warm.csv",
                  "timeframe": TIMEFRAME}  # fmt: skip
        body = {"instrument_id": instrument, "timeframes": [TIMEFRAME], "config": config}
        check(await http.post("/api/v1/feeds", json=body, headers=admin), "warm-up feed")
    for instrument in instruments:
        deadline = time.monotonic() + 60
        while True:
            params: dict[str, str | int] = {"instrument": instrument, "timeframe": TIMEFRAME,
                      "start": "2000-01-01", "end": "2100-01-01", "limit": WARM_BARS}  # fmt: skip
            got = await http.get("/api/v1/ohlcv", params=params, headers=admin)
            if got.status_code == 200 and len(got.json()["items"]) >= WARM_BARS:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"warm-up bars of {instrument} not stored: {got.text}")
            await asyncio.sleep(0.3)
    for instrument in instruments:
        bot = {
            "strategy": "rsi_cross",
            "params": {"period": period, "oversold": oversold, "overbought": overbought},
            "instrument_id": instrument,
            "timeframe": TIMEFRAME,
            "account_id": account,
            "sizing": {"kind": "quantity", "value": "1"},
            "capital": "1000000",
        }
        check(await http.post("/api/v1/bots", json=bot, headers=admin), "bot")


def file_name(instrument: str) -> str:
    return instrument.split(":")[1].split("/")[0].lower()


async def caught_up(progress: Progress, bars: int, timeout: float = 120.0) -> None:
    """Until both bar consumers have handled `bars` bars in all (the warm-up replays)."""
    deadline = time.monotonic() + timeout
    while min((await progress.committed()).values()) < bars:
        if time.monotonic() > deadline:
            raise RuntimeError("the services did not handle the warm-up bars")
        await asyncio.sleep(0.5)


async def play(
    http: httpx.AsyncClient,
    admin: dict[str, str],
    phase: Phase,
    progress: Progress,
    seen: Seen,
) -> None:
    """Replay the phase's files at its rate, then wait until both bar consumers have handled
    every bar and every order that can fill has filled (a market order fills on a later bar:
    one placed after its instrument's last bar never does). Stops the replay when the slower
    consumer is MAX_BACKLOG bars behind, and stops waiting DRAIN_S after the replay ended."""
    start = await progress.committed()
    speed = BAR_S * phase.rate / len(phase.instruments)
    for instrument in phase.instruments:
        config = {"kind": "replay", "file": f"{file_name(instrument)}.csv",
                  "timeframe": TIMEFRAME, "speed": speed}  # fmt: skip
        body = {"instrument_id": instrument, "timeframes": [TIMEFRAME], "config": config}
        feed = check(await http.post("/api/v1/feeds", json=body, headers=admin), "feed")
        phase.feeds.append(feed["feed_id"])
    names = set(phase.instruments)
    ended: float | None = None  # when the replay ended (played out or stopped)
    while True:
        await asyncio.sleep(0.5)
        committed = await progress.committed()
        handled = {g: committed[g] - start[g] for g in GROUPS}
        phase.handled.append((time.time(), handled))
        last_bar: dict[str, float] = {}
        for (instrument, _), (ce_time, _) in seen.bars.items():
            if instrument in names:
                last_bar[instrument] = max(last_bar.get(instrument, 0.0), ce_time)
        published = sum(k[0] in names for k in seen.bars)
        backlog = published - min(handled.values())
        if ended is None and published >= phase.bars:
            ended = time.monotonic()
        elif ended is None and backlog > MAX_BACKLOG:
            for feed_id in phase.feeds:
                check(await http.post(f"/api/v1/feeds/{feed_id}/stop", headers=admin), "stop")
            phase.stopped_at = sum(k[0] in names for k in seen.bars)
            print(f"  replay stopped after {phase.stopped_at} bars: {backlog} bars behind")
            ended = time.monotonic()
            continue
        pending = [
            coid
            for coid, intent in seen.intents.items()
            if intent["instrument"] in names
            and coid not in seen.filled
            and coid not in seen.denied
            and seen.accepted.get(coid, 0.0) < last_bar.get(intent["instrument"], 0.0)
        ]
        if ended is not None and backlog <= 0 and not pending:
            return
        if ended is not None and time.monotonic() - ended > DRAIN_S:
            phase.left = (backlog, len(pending))
            print(f"  after {DRAIN_S:g} s still {backlog} bars and {len(pending)} orders in flight")
            return


def summarise(phase: Phase, seen: Seen) -> tuple[list[float], float]:
    """Print the phase's figures; (bar -> fill latencies in ms, bars/s processed)."""
    names = set(phase.instruments)
    bars = {k: v for k, v in seen.bars.items() if k[0] in names}
    publish = sorted(ce for ce, _ in bars.values())
    first, last = publish[0], publish[-1]
    published_rate = (len(publish) - 1) / (last - first) if last > first else float("nan")
    # Handled: every published bar, by the first poll that saw it so (or what it had handled
    # by the last poll, if it never got there).
    processed = {}
    for group in GROUPS:
        done = next(((t, h[group]) for t, h in phase.handled if h[group] >= len(publish)), None)
        at, count = done or (phase.handled[-1][0], phase.handled[-1][1][group])
        processed[group] = count / (at - first)
    hops: dict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    rows: list[list[str | float]] = []
    for coid, fill in seen.filled.items():
        intent = seen.intents.get(coid)
        if intent is None or intent["instrument"] not in names:
            continue
        approved, accepted = seen.approved.get(coid), seen.accepted.get(coid)
        bar = bars.get((intent["instrument"], intent["decided"] - BAR_S))
        fill_bar = bars.get((intent["instrument"], fill["bar"]))
        if approved is None or accepted is None or bar is None or fill_bar is None:
            continue
        t0 = bar[0]
        if t0 - first < SKIP_S:
            continue
        totals.append((fill["seen"] - t0) * 1000)
        wait = max(fill_bar[0] - accepted, 0.0)
        rows.append(
            [phase.name, coid, t0, bar[1], intent["created"], intent["seen"], approved["at"],
             approved["seen"], accepted, fill_bar[0], fill["ce"], fill["seen"]]
        )  # fmt: skip
        steps = {
            "bar on the bus (md.bars.v1)": bar[1] - t0,
            "bar -> intent (strategy)": intent["created"] - t0,
            "intent on the bus (outbox relay)": intent["seen"] - intent["created"],
            "intent -> approved (risk)": approved["at"] - intent["seen"],
            "approval on the bus (outbox relay)": approved["seen"] - approved["at"],
            "approval -> placed (execution)": accepted - approved["seen"],
            "placed -> fill (execution)": fill["ce"] - accepted,
            "  of which waiting for a next bar": wait,
            "fill on the bus (outbox relay)": fill["seen"] - fill["ce"],
            "bar -> fill, less the next-bar wait": fill["seen"] - t0 - wait,
        }
        for name, value in steps.items():
            hops[name].append(value * 1000)
    print(
        f"[{phase.name}] {len(phase.instruments)} instrument(s), replay at {phase.rate:g} bars/s: "
        f"{len(publish)} bars published at {published_rate:.0f}/s; handled at "
        + ", ".join(f"{rate:.0f}/s by {g.split('.')[0]}" for g, rate in processed.items())
    )
    intents = [c for c, i in seen.intents.items() if i["instrument"] in names]
    print(
        f"[{phase.name}] orders: {len(intents)} intents, "
        f"{sum(c in seen.approved for c in intents)} approved, "
        f"{sum(c in seen.denied for c in intents)} denied, "
        f"{sum(c in seen.filled for c in intents)} filled; {len(totals)} measured"
    )
    print(f"[{phase.name}] {'hop (ms)':38s} {'p50':>9s} {'p95':>9s} {'p99':>9s}")
    for name, values in hops.items():
        p50, p95, p99 = pct(values)
        print(f"[{phase.name}] {name:38s} {p50:9.2f} {p95:9.2f} {p99:9.2f}")
    if DUMP:
        with open(DUMP, "a", newline="") as handle:
            csv.writer(handle).writerows(rows)
    p50, p95, p99 = pct(totals)
    print(f"[{phase.name}] {'bar -> fill on the bus':38s} {p50:9.2f} {p95:9.2f} {p99:9.2f}")
    return totals, min(processed.values())


async def measure(platform: Platform, bootstrap: str, linger_ms: int, email: str) -> None:
    light = Phase("light", ["bench:L0/USD"], LIGHT_RATE, LIGHT_BARS)
    load = Phase("load", [f"bench:S{n}/USD" for n in range(FEEDS)], RATE, BARS // FEEDS * FEEDS)

    print(f"baseline: the bare bus, {HOPS} relay processes over {HOPS + 1} topics, {RATE:g}/s")
    base = await baseline(bootstrap, linger_ms)
    b50, b95, b99 = pct(base)
    print(f"[baseline] {'message -> last topic (ms)':38s} {b50:9.2f} {b95:9.2f} {b99:9.2f}")

    seen = Seen()
    progress = Progress(bootstrap)
    await progress.start()
    async with httpx.AsyncClient(base_url=platform.url(8000), timeout=30.0) as http:
        login = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        admin = {"Authorization": f"Bearer {check(login, 'login')['access_token']}"}
        await set_up(http, admin, [light, load])
        await caught_up(progress, WARM_BARS * (len(light.instruments) + len(load.instruments)))
        consumer = await observer(
            bootstrap, [MD_BARS, ORDERS_INTENTS, ORDERS_APPROVED, ORDERS_DENIED, ORDERS_EVENTS]
        )
        stop = asyncio.Event()
        watcher = asyncio.create_task(observe(consumer, seen, stop))
        try:
            for phase in (light, load):
                print(f"{phase.name}: replaying {phase.bars} bars at {phase.rate:g} bars/s ...")
                await play(http, admin, phase, progress, seen)
        finally:
            stop.set()
            await watcher
            await consumer.stop()
            await progress.stop()
    summarise(light, seen)
    totals, processed = summarise(load, seen)
    p50, p95, p99 = pct(totals)
    if load.stopped_at is not None:
        print(
            f"{RATE:g} bars/s is not sustainable here: the load figures are those of a queue that "
            f"grew until the replay was stopped ({MAX_BACKLOG} bars, BENCH_MAX_BACKLOG)"
        )
    met = p50 <= 8 and p99 <= 25 and load.stopped_at is None
    print(f"targets (p50 <= 8 ms, p99 <= 25 ms at {RATE:g} bars/s): {'met' if met else 'not met'}")
    print(
        f"BENCH pipeline_latency p50_ms={p50:.2f} p95_ms={p95:.2f} p99_ms={p99:.2f} "
        f"bars_per_s={processed:.0f} ratio={b50 / p50:.3f}"
    )


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    replay = folder / "replay"
    replay.mkdir()
    write_files(replay, ["l0"], LIGHT_BARS)
    write_files(replay, [f"s{n}" for n in range(FEEDS)], BARS // FEEDS)
    extra = {"TRADEMESH_REPLAY_DIR": str(replay)}
    if LINGER_MS is not None:
        extra["TRADEMESH_KAFKA_LINGER_MS"] = LINGER_MS
    default = KafkaSettings.model_fields["kafka_linger_ms"].default
    linger = int(LINGER_MS) if LINGER_MS is not None else int(default)
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    started = time.monotonic()
    platform = Platform(folder / "home", free_offset(), "--no-demo", env=clean_env(**extra))
    try:
        platform.wait_for(r"gateway:.*OpenAPI", 180)
        print(f"platform up in {time.monotonic() - started:.0f} s ({os.cpu_count()} cores)")
        made = platform.trademesh(
            "user", "create", "--admin", "--email", email, "--password-stdin", stdin=PASSWORD
        )
        if made.returncode != 0:
            raise RuntimeError(made.stdout + made.stderr)
        settings = (folder / "home" / "infra.env").read_text().splitlines()
        env = dict(line.split("=", 1) for line in settings if "=" in line)
        bootstrap = env["TRADEMESH_KAFKA_BOOTSTRAP"].strip("'")
        asyncio.run(measure(platform, bootstrap, linger, email))
    finally:
        output = platform.stop()
        if "exited with" in output:
            print(output[-3000:])
    shutil.rmtree(folder, ignore_errors=True)  # kept, with the services' logs, when it failed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relay", nargs=4, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.relay is not None:
        bootstrap, source, target, linger = options.relay
        relay_main(bootstrap, source, target, int(linger))
    else:
        main()
