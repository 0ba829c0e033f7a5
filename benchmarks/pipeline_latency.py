"""Pipeline latency: live bars on md.bars.v1 -> strategy -> risk -> execution (paper), open loop.

The platform as `make run` starts it (`trademesh up --no-demo`: embedded Postgres and Tansu,
every service a process of its own, outbox and inbox on, default settings) on ports of its own.
An admin (made by `trademesh user create`) opens a paper account and, per instrument, plays a
60-bar warm-up replay through market-data (a replay feed added through the gateway: the bars are
stored, so bots can be created on them) and starts its bots. Then the bench itself publishes the
measured live bars on md.bars.v1 exactly as market-data would (the `Bar` event, final, with the
topic's encoding and key and a CloudEvents envelope from market-data), each instrument's bars
continuing its warm-up file minute by minute (prices: the bundled GOOG daily bars played forwards
then backwards, so a series of any length stays continuous). market-data does not store these
live bars; nothing asks for them, as bots keep their state in memory and only ask market-data's
history when they are rebuilt or miss a bar.

Open loop: bar i of a run is due at start + i / rate; it is stamped with that scheduled time (its
ce_time) and handed to a plain AIOKafkaProducer (acks=all, no idempotence, linger 0) without
waiting for the broker's ack (the acks are collected; failures are counted and reported). So a
slow platform cannot slow the offered rate down, and a bar's t0 is when it was due, not when a
busy generator got round to it (no coordinated omission). The generator's own lag (send time -
scheduled time) is reported: when it is large, the bench, not the platform, was the limit.

What is measured (all times are the host's wall clock):
- bar -> order placed (the headline): the decision bar's scheduled time -> the `ts` of the
  order's OrderAccepted (execution placed it on the paper venue). An order is joined to its
  decision bar by its intent's `decided_at` (that bar's close time) and to its events by
  client_order_id;
- next bar -> fill: the scheduled time of the bar the order filled on (its OrderFilled `ts` is
  that bar's open) -> the fill's ce_time. A market order waits for its instrument's next bar, so
  this is reported apart from the headline;
- the hops between, where the time goes: bar on the bus (the bench's own group-less consumer
  received it), bar -> intent (the intent's created_at), intent on the bus (outbox relay),
  intent -> approved (approved_at), approval on the bus, approval -> placed. "On the bus" is the
  bench's arrival time standing in for the consuming service's own arrival; the bench's consumer
  asks the broker as often as the services do (the platform's TRADEMESH_KAFKA_FETCH_MAX_WAIT_MS).
  Orders decided in a run's first second are left out (connections warm up).
- consumer lag, in seconds: for each consumer group that must keep up, the age of the oldest
  message it has not committed yet (its committed offset looked up in what the bench sent on
  md.bars.v1 and saw on the order topics). The groups are those the broker lists (Tansu lists a
  group once it has committed; the list is read again every 2 s of a run) whose name starts with
  GROUP_PREFIXES, on the WATCHED topics they have committed on or their name carries (today:
  strategy.md.bars.v1, execution.md.bars.v1, risk's per-process price group, and the order
  groups risk.orders.intents.v1, execution.orders.approved.v1, strategy/risk.orders.events.v1).
- CPU: what every process of the platform (and the bench itself) used while a run's bars were
  sent, in % of one core: the latency run's in full, each ramp step's busiest processes.

Phases, after setup (account, 4 + 20 instruments warmed up, their bots created):
0. idle: the CPU time (user + system) every process of the platform used over IDLE_S with no
   bars flowing and the bots in place (the `trademesh up` process tree: every service, Tansu,
   and the Postgres postmaster with its backends), over wall time, in % of one core. Measured
   before anything of the bench talks to the broker, with a per-process breakdown.
1. baseline, the bare bus through the same hops: three relay processes over four topics (each
   consumes, stamps its receive time and sends on; consumers with the services' fetch wait,
   producers with linger 0), messages sent open loop at BASELINE_RATE/s stamped with their
   scheduled time. Its figure is scheduled -> received by the third relay, the counterpart of
   bar -> placed (three produce-and-consume hops). ratio = baseline p50 / pipeline p50 (1.0
   would mean the services add nothing to the bare bus).
2. latency: RATE bars/s over INSTRUMENTS instruments for DURATION_S, one `rsi_cross` bot per
   instrument with period 2, oversold 30, overbought 70 (BENCH_RSI: it trades on about one bar
   in six of this data), its market orders through risk (default limits) to the paper venue.
   bar -> placed p50/p99 here are the headline. If a watched group falls MAX_LAG_S behind, the
   run stops early (the rate is not sustainable; the figures are those of a growing queue, and
   waiting out the whole run would only make the queue, and its drain, longer).
3. ramp, the same instruments and bots: steps of RAMP bars/s (STEP_S each, lag drained between
   steps) until one is not sustained (steps at or above a RATE the latency run did not sustain
   are known failures and not tried); if the first is not, the rate is halved down to RAMP_MIN;
   then one step between the best and the first failure. A step is sustained when, over its last
   fifth, every group's lag (median of the polls) is at most LAG_BOUND_S and at most
   LAG_GROWTH_S above its lag over the step's middle fifth (a background group, one no order
   waits for, gets twice and once its fetch wait more: its lag swings by that much), the
   generator offered at least 95 %
   of the rate, and no send failed. A step is cut short when a lag passes ABORT_LAG_S.
   max_bars_per_s = the highest sustained step.
4. many bots: BOTS_PER_INSTRUMENT bots on each of BOT_INSTRUMENTS instruments (rsi_cross
   14/30/70 by default, BENCH_BOT_RSI: it rarely trades, so this is strategy's evaluation rate),
   ramped the same way with BOT_RAMP, judged on the md.bars.v1 groups alone (when it does trade,
   all the bots of an instrument order on the same bar: a burst the order path's groups may take
   a second over, which is the ramp's business, not this figure's). bot_bars_per_s = the highest sustained step's bars/s x bots
   per instrument.

The services, Postgres, Tansu and the bench share the machine's cores: on a busy machine the
figures are noisy.

Knobs (environment): BENCH_RATE (500), BENCH_DURATION_S (30), BENCH_INSTRUMENTS (4),
BENCH_RSI ("2,30,70"), BENCH_RAMP ("500,1000,1500,2000,3000,4000"), BENCH_STEP_S (8),
BENCH_RAMP_MIN (5), BENCH_BOT_RAMP ("250,500,750,1000,1500,2000"), BENCH_BOT_INSTRUMENTS (20),
BENCH_BOTS_PER_INSTRUMENT (10), BENCH_BOT_RSI ("14,30,70"), BENCH_LAG_BOUND_S (0.5),
BENCH_LAG_GROWTH_S (0.2), BENCH_ABORT_LAG_S (2), BENCH_MAX_LAG_S (5), BENCH_DRAIN_S (240: the
longest wait for the consumers to catch up after a run, while they make progress),
BENCH_IDLE_S (20), BENCH_BASELINE_RATE (500), BENCH_BASELINE_S (10), BENCH_LINGER_MS (passed to
the services as TRADEMESH_KAFKA_LINGER_MS and used by the relays; unset: the services' default),
BENCH_FETCH_WAIT_MS (the order path's TRADEMESH_KAFKA_FETCH_MAX_WAIT_MS, relays' too; unset: the
platform's), BENCH_OBSERVER_WAIT_MS (250),
BENCH_SKIP (a comma list of phases to leave out: idle, baseline, latency, ramp, bots),
BENCH_DEADLINE_S (1200: the whole measure gives up after it), BENCH_CSV (a file to append each
measured order's timestamps to).

Targets (a line says which are met): p50 <= 15 ms, p99 <= 50 ms, max_bars_per_s >= 1000,
bot_bars_per_s >= 5000, idle_cpu_pct <= 15, ratio >= 0.4.

Last line: BENCH pipeline_latency p50_ms=... p99_ms=... max_bars_per_s=... bot_bars_per_s=...
idle_cpu_pct=... ratio=...
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from trademesh_config import KafkaSettings
from trademesh_events.envelope import new_envelope
from trademesh_events.marketdata import Bar
from trademesh_events.topics import (
    MD_BARS,
    ORDERS_APPROVED,
    ORDERS_DENIED,
    ORDERS_EVENTS,
    ORDERS_INTENTS,
    get_topic,
)
from trademesh_testing.platform import ROOT, Platform, clean_env, free_offset
from trademesh_testing.stats import ms_summary, pct, verdicts


def _floats(name: str, default: str) -> list[float]:
    return [float(x) for x in os.environ.get(name, default).split(",") if x.strip()]


RATE = float(os.environ.get("BENCH_RATE", "500"))
DURATION_S = float(os.environ.get("BENCH_DURATION_S", "30"))
INSTRUMENTS = int(os.environ.get("BENCH_INSTRUMENTS", "4"))
RSI = _floats("BENCH_RSI", "2,30,70")
RAMP = _floats("BENCH_RAMP", "500,1000,1500,2000,3000,4000")
STEP_S = float(os.environ.get("BENCH_STEP_S", "8"))
RAMP_MIN = float(os.environ.get("BENCH_RAMP_MIN", "5"))
BOT_RAMP = _floats("BENCH_BOT_RAMP", "250,500,750,1000,1500,2000")
BOT_INSTRUMENTS = int(os.environ.get("BENCH_BOT_INSTRUMENTS", "20"))
BOTS_PER_INSTRUMENT = int(os.environ.get("BENCH_BOTS_PER_INSTRUMENT", "10"))
BOT_RSI = _floats("BENCH_BOT_RSI", "14,30,70")
LAG_BOUND_S = float(os.environ.get("BENCH_LAG_BOUND_S", "0.5"))
LAG_GROWTH_S = float(os.environ.get("BENCH_LAG_GROWTH_S", "0.2"))
ABORT_LAG_S = float(os.environ.get("BENCH_ABORT_LAG_S", "2"))
MAX_LAG_S = float(os.environ.get("BENCH_MAX_LAG_S", "5"))
DRAIN_S = float(os.environ.get("BENCH_DRAIN_S", "240"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "20"))
BASELINE_RATE = float(os.environ.get("BENCH_BASELINE_RATE", "500"))
BASELINE_S = float(os.environ.get("BENCH_BASELINE_S", "10"))
FETCH_WAIT_MS = os.environ.get("BENCH_FETCH_WAIT_MS")  # unset: the platform's default
LINGER_MS = os.environ.get("BENCH_LINGER_MS")  # unset: the services' default
SKIP = {x.strip() for x in os.environ.get("BENCH_SKIP", "").split(",") if x.strip()}
DEADLINE_S = float(os.environ.get("BENCH_DEADLINE_S", "1200"))
DUMP = os.environ.get("BENCH_CSV")
# The fetch wait of the bench's own observers of the pipeline (not of the baseline's relays,
# which use the platform's). On the embedded broker (Tansu 0.6) every fetch takes its full wait
# and costs the broker about a millisecond of CPU whatever it returns, so observers asking as
# often as the order path would load the broker the platform is measured on. With a longer wait
# the hops are timed by the services' own timestamps (bar -> intent created -> approved ->
# placed), each including its bus hop; set it to the platform's wait to see the bus hops apart.
OBSERVER_WAIT_MS = int(os.environ.get("BENCH_OBSERVER_WAIT_MS", "250"))

# The consumer groups whose lag decides whether a rate is sustained: every group the broker
# lists whose name starts with one of GROUP_PREFIXES, on the WATCHED topics it has committed on
# or its name carries. The services name their groups `<service>.<topic>` today (risk's price
# group adds a per-process suffix); KNOWN_GROUPS stand in when the broker cannot list groups.
GROUP_PREFIXES = ("strategy.", "risk.", "execution.")
WATCHED = (MD_BARS, ORDERS_INTENTS, ORDERS_APPROVED, ORDERS_EVENTS)
KNOWN_GROUPS = (
    "strategy.md.bars.v1",
    "execution.md.bars.v1",
    "risk.orders.intents.v1",
    "execution.orders.approved.v1",
    "strategy.orders.events.v1",
    "risk.orders.events.v1",
)

# The groups an order waits for (they ask the broker every kafka_fetch_max_wait_ms); every
# other watched group is a background consumer, judged with its fetch wait as slack.
ORDER_PATH = ("strategy.md.bars.v1", "risk.orders.intents.v1", "execution.orders.approved.v1")
BACKGROUND_WAIT_S = (
    int(KafkaSettings.model_fields["kafka_background_fetch_max_wait_ms"].default) / 1000
)
SKIP_S = 1.0  # orders decided in a run's first second are not counted (connections warm up)
POLL_S = 0.5  # how often consumer lag is polled
STALL_S = 30.0  # a drain gives up when no watched group commits anything for this long
NOT_DRAINED = f"nothing committed for {STALL_S:g} s, or still behind after {DRAIN_S:g} s"
WARM_BARS = 60
TIMEFRAME, BAR_LENGTH = "1m", timedelta(minutes=1)
BAR_S = BAR_LENGTH.total_seconds()
START = datetime(2020, 1, 1, tzinfo=UTC)
GOOG = ROOT / "services/market-data/src/trademesh_market_data/data/GOOG.csv"
PASSWORD = "a long benchmark passphrase for the admin"
HOPS = 3  # produce-and-consume hops between a bar and its order placed: strategy, risk, execution
STAMP = struct.Struct("!d")
BARS_SPEC = get_topic(MD_BARS)

TARGETS = {  # name: (bound, "<=" or ">=")
    "p50_ms": (15.0, "<="),
    "p99_ms": (50.0, "<="),
    "max_bars_per_s": (1000.0, ">="),
    "bot_bars_per_s": (5000.0, ">="),
    "idle_cpu_pct": (15.0, "<="),
    "ratio": (0.4, ">="),
}


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---- data -------------------------------------------------------------------------------------


def goog_cycle() -> list[tuple[str, str, str, str, str]]:
    """GOOG's daily bars forwards then backwards (open and close swapped), a loop with no jump."""
    with GOOG.open() as handle:
        rows = [(r[1], r[2], r[3], r[4], r[5]) for r in list(csv.reader(handle))[1:]]
    backwards = [(c, h, low, o, v) for o, h, low, c, v in reversed(rows)]
    return rows + backwards


CYCLE = goog_cycle()


def file_name(instrument: str) -> str:
    return instrument.split(":")[1].split("/")[0].lower()


@dataclass
class Series:
    """One instrument's 1-minute bars: the warm-up file's, then the live ones, in one run."""

    instrument: str
    shift: int  # where in the GOOG loop it starts
    next_index: int = WARM_BARS  # the next live bar (0..WARM_BARS-1 are the warm-up file's)

    def row(self, index: int) -> tuple[str, str, str, str, str]:
        return CYCLE[(self.shift + index) % len(CYCLE)]

    def write_warm_up(self, folder: Path) -> None:
        with (folder / f"{file_name(self.instrument)}-warm.csv").open("w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["timestamp", "open", "high", "low", "close", "volume"])
            for i in range(WARM_BARS):
                moment = START + i * BAR_LENGTH
                out.writerow([moment.isoformat().replace("+00:00", "Z"), *self.row(i)])

    def take(self) -> Bar:
        """The next live bar (final), as market-data would publish it."""
        o, h, low, c, v = self.row(self.next_index)
        opened = START + self.next_index * BAR_LENGTH
        self.next_index += 1
        return Bar(
            instrument_id=self.instrument,
            timeframe=TIMEFRAME,
            open_time=opened,
            close_time=opened + BAR_LENGTH,
            open=Decimal(o),
            high=Decimal(h),
            low=Decimal(low),
            close=Decimal(c),
            volume=Decimal(v),
            final=True,
        )


# ---- the open-loop generator ------------------------------------------------------------------


@dataclass
class Run:
    """One open-loop run of the generator: what was offered, and how late the bench sent it."""

    rate: float
    planned: int
    started: float = 0.0  # wall time the first bar was due
    sent: int = 0
    lags_ms: list[float] = field(default_factory=list)  # send time - scheduled time
    ended: float = 0.0  # wall time the generator stopped
    cut_short: str | None = None

    @property
    def offered_rate(self) -> float:
        """Bars sent over the time they were due in (the rate the platform was offered)."""
        span = self.ended - self.started
        return self.sent / span if span > 0 else float("nan")

    def lag_line(self) -> str:
        p50, p99 = pct(self.lags_ms, 50, 99)
        top = max(self.lags_ms) if self.lags_ms else float("nan")
        return f"generator lag (ms): p50 {p50:.2f}, p99 {p99:.2f}, max {top:.2f}"


Payload = tuple[Bar, bytes, bytes, float]  # the bar, its key, its value, its open time


class Generator:
    """Publishes live bars on md.bars.v1 as market-data would, each at its scheduled time,
    without waiting for acks. Keeps, per bar, its scheduled time (for the latency joins) and,
    per acknowledged offset, when it was sent (for the consumer lag)."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=0
        )
        self.scheduled: dict[tuple[str, float], float] = {}  # (instrument, open) -> due (wall)
        self.sent_log: dict[int, list[tuple[int, float]]] = defaultdict(list)  # partition -> ...
        self.pending: set[asyncio.Future[Any]] = set()
        self.failures = 0
        self.first_error: str | None = None

    async def start(self) -> None:
        await self.producer.start()
        await self.producer.partitions_for(MD_BARS)  # metadata before the first timed send

    async def stop(self) -> None:
        await self.settle(30.0)
        await self.producer.stop()

    def _acked(self, sent_at: float, future: asyncio.Future[Any]) -> None:
        self.pending.discard(future)
        if future.cancelled() or future.exception() is not None:
            self.failures += 1
            self.first_error = self.first_error or repr(
                None if future.cancelled() else future.exception()
            )
            return
        meta = future.result()
        log = self.sent_log[meta.partition]
        if not log or log[-1][0] < meta.offset:
            log.append((meta.offset, sent_at))
        else:
            bisect.insort(log, (meta.offset, sent_at))

    async def settle(self, timeout: float) -> None:
        """Until every send so far is acknowledged or failed (at most `timeout`)."""
        if self.pending:
            await asyncio.wait(list(self.pending), timeout=timeout)

    @staticmethod
    def prepare(series: list[Series], rate: float, duration: float) -> list[Payload]:
        """The bars of a run, made and encoded before it starts: rate x duration of them, round
        robin over `series`."""
        bars = [series[i % len(series)].take() for i in range(round(rate * duration))]
        return [
            (bar, BARS_SPEC.key_of(bar), BARS_SPEC.encode(bar), bar.open_time.timestamp())
            for bar in bars
        ]

    async def run(
        self, series: list[Series], payloads: list[Payload], rate: float, stop: Callable[[], bool]
    ) -> Run:
        """Send `payloads` (prepared from `series`), bar i due at start + i / rate; stop early
        when `stop()` says so (asked every few milliseconds)."""
        planned = len(payloads)
        first = [s.next_index - len(range(k, planned, len(series))) for k, s in enumerate(series)]
        run = Run(rate, planned)
        lead = 0.05
        start_perf = time.perf_counter() + lead
        run.started = time.time() + lead
        checked = start_perf
        i = 0
        while i < planned:
            now = time.perf_counter()
            if now - checked > 0.005:
                checked = now
                if stop():
                    run.cut_short = "stopped"
                    break
            due = min(planned, int((now - start_perf) * rate) + 1)
            if due <= i:
                await asyncio.sleep(max(start_perf + i / rate - now, 0.0))
                continue
            for j in range(i, min(due, i + 256)):  # a bounded burst, then let the loop breathe
                bar, key, value, opened = payloads[j]
                scheduled = run.started + j / rate
                envelope = new_envelope(
                    bar, "market-data", time=datetime.fromtimestamp(scheduled, UTC)
                )
                sent_perf = time.perf_counter()
                future = await self.producer.send(
                    MD_BARS, value, key=key, headers=envelope.to_kafka_headers()
                )
                sent_at = run.started + (sent_perf - start_perf)
                self.pending.add(future)
                future.add_done_callback(lambda f, at=sent_at: self._acked(at, f))
                self.scheduled[(bar.instrument_id, opened)] = scheduled
                run.lags_ms.append((sent_perf - (start_perf + j / rate)) * 1000)
                run.sent += 1
                i = j + 1
            await asyncio.sleep(0)
        run.ended = time.time()
        for k, each in enumerate(series):  # the next run goes on from the first bar not sent
            each.next_index = first[k] + len(range(k, run.sent, len(series)))
        return run


# ---- what the bench sees on the bus ----------------------------------------------------------


def _ce_time(record: Any) -> float:
    return ts(dict(record.headers or [])["ce_time"].decode())


@dataclass
class Seen:
    """The order events of the run and the live bars' arrival at the bench, plus, per order
    topic partition, when each offset was seen (for the consumer lag)."""

    bars: dict[tuple[str, float], float] = field(default_factory=dict)  # -> arrival (wall)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    approved: dict[str, dict[str, float]] = field(default_factory=dict)
    denied: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    accepted: dict[str, float] = field(default_factory=dict)
    filled: dict[str, dict[str, float]] = field(default_factory=dict)
    precise: bool = True  # the observers ask as often as the order path (arrival times mean it)
    log: dict[tuple[str, int], list[tuple[int, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def take(self, record: Any, now: float) -> None:
        topic = record.topic
        if topic != MD_BARS:
            log = self.log[(topic, record.partition)]
            if not log or log[-1][0] < record.offset:
                # When the observer hears late, the message's own time (its producer stamped
                # it before the broker had it) stands in for its arrival: lag ages err long.
                log.append((record.offset, now if self.precise else _ce_time(record)))
        event = json.loads(record.value)
        kind = event.get("type")
        if topic == MD_BARS:
            self.bars.setdefault((event["instrument_id"], ts(event["open_time"])), now)
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
        elif kind == "trademesh.order.rejected":
            self.rejected[event["client_order_id"]] = event["reason"]
        elif kind == "trademesh.order.accepted":
            self.accepted[event["client_order_id"]] = ts(event["ts"])
        elif kind == "trademesh.order.filled" and float(event["leaves_qty"]) == 0:
            ce_time = ts(dict(record.headers or [])["ce_time"].decode())
            self.filled[event["client_order_id"]] = {
                "bar": ts(event["ts"]),
                "ce": ce_time,
                "seen": now,
            }


class Observer:
    """A consumer of every partition of `topics` from their ends (no group), feeding `seen`.

    It asks the broker as often as the services do (fetch_max_wait_ms). Tansu (0.6) gives, as a
    partition's end offset, one past the first record of the last batch rather than past its
    last record, so "from the end" may start inside the last batch: old records read again are
    harmless (no bar of theirs was scheduled by the bench; no order predates the bench)."""

    def __init__(self, bootstrap: str, topics: list[str], fetch_wait_ms: int, seen: Seen):
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=fetch_wait_ms,
        )
        self.topics = topics
        self.seen = seen
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer.topics()  # the cluster's metadata, for partitions_for_topic
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for tp in partitions:
            await self.consumer.position(tp)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self.stopping.is_set():
            batches = await self.consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batches.values():
                for record in records:
                    self.seen.take(record, now)

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)
        await self.consumer.stop()


# ---- consumer lag ------------------------------------------------------------------------------


class Lag:
    """The lag, in seconds, of the consumer groups that must keep up (see GROUP_PREFIXES)."""

    def __init__(
        self, bootstrap: str, sent: dict[int, list[tuple[int, float]]], seen: Seen
    ) -> None:
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.sent = sent  # the generator's: md.bars.v1 partition -> (offset, sent at)
        self.seen = seen
        self.partitions: list[TopicPartition] = []
        self.groups: dict[str, set[str]] = {}  # group -> the watched topics it consumes
        self.coordinator: dict[str, int] = {}
        self.progress = 0  # the watched groups' committed offsets, summed, at the last poll

    async def start(self) -> None:
        await self.admin.start()
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await reader.start()
        try:
            await reader.topics()
            self.partitions = [
                TopicPartition(topic, p)
                for topic in WATCHED
                for p in sorted(reader.partitions_for_topic(topic) or ())
            ]
        finally:
            await reader.stop()

    async def stop(self) -> None:
        await self.admin.close()

    async def discover(self) -> None:
        """The groups to watch: those the broker lists under GROUP_PREFIXES (KNOWN_GROUPS when it
        cannot list them), each on the watched topics it has committed offsets on or that its
        name carries (a listed group that has not committed yet is behind on all of them)."""
        try:
            listed = await self.admin.list_consumer_groups()
            names = {str(row[0]) for row in listed if str(row[0]).startswith(GROUP_PREFIXES)}
            by_name = True
        except Exception as exc:  # the known groups are enough to go on with
            print(f"  (the broker did not list its groups: {exc!r}; watching the known ones)")
            names, by_name = set(KNOWN_GROUPS), False
        self.groups = {}
        for name in sorted(names):
            offsets = await self._committed(name)
            topics = {tp.topic for tp, offset in offsets.items() if offset >= 0}
            if by_name:
                topics |= {topic for topic in WATCHED if topic in name}
            if topics:
                self.groups[name] = topics

    async def handled(self, topic: str) -> dict[str, int]:
        """Per group watched on `topic`, the messages of it that it committed, in all."""
        names = [g for g, topics in self.groups.items() if topic in topics]
        results = await asyncio.gather(*(self._committed(g) for g in names))
        return {
            name: sum(max(o, 0) for tp, o in offsets.items() if tp.topic == topic)
            for name, offsets in zip(names, results, strict=True)
        }

    async def _committed(self, group: str) -> dict[TopicPartition, int]:
        if group not in self.coordinator:
            self.coordinator[group] = await self.admin.find_coordinator(group)
        found = await self.admin.list_consumer_group_offsets(
            group, group_coordinator_id=self.coordinator[group], partitions=self.partitions
        )
        return {tp: meta.offset for tp, meta in found.items()}

    def _sent_before(self, topic: str, partition: int, committed: int) -> float | None:
        """When the oldest message at or after `committed` was sent (bars) or seen (orders)."""
        if topic == MD_BARS:
            log = self.sent.get(partition, [])
        else:
            log = self.seen.log.get((topic, partition), [])
        at = bisect.bisect_left(log, (max(committed, 0), float("-inf")))
        return log[at][1] if at < len(log) else None

    async def poll(self) -> dict[str, float]:
        """Each watched group's lag in seconds (0 when it has committed all the bench knows)."""
        names = list(self.groups)
        results = await asyncio.gather(*(self._committed(g) for g in names))
        now = time.time()
        lags: dict[str, float] = {}
        self.progress = 0
        for name, offsets in zip(names, results, strict=True):
            worst = 0.0
            for tp, offset in offsets.items():
                if tp.topic not in self.groups[name]:
                    continue
                self.progress += max(offset, 0)
                oldest = self._sent_before(tp.topic, tp.partition, offset)
                if oldest is not None:
                    worst = max(worst, now - oldest)
            lags[name] = worst
        return lags

    async def drain(self, timeout: float) -> bool:
        """Until every watched group has committed everything the bench knows of: False after
        `timeout`, or after STALL_S in which no group committed anything."""
        now = time.monotonic()
        deadline, moved, last = now + timeout, now, -1
        while now < deadline and now - moved < STALL_S:
            if all(v == 0.0 for v in (await self.poll()).values()):
                return True
            now = time.monotonic()
            if self.progress != last:
                moved, last = now, self.progress
            await asyncio.sleep(POLL_S)
        return False


# ---- a load run: the generator with the lag watched -------------------------------------------


@dataclass
class Step:
    rate: float
    run: Run
    samples: list[tuple[float, dict[str, float]]]  # (seconds into the run, lag by group)
    duration: float
    usage: Usage | None = None
    sustained: bool = False
    why: str = ""
    worst: dict[str, float] = field(default_factory=dict)

    def window(self, low: float, high: float) -> dict[str, float]:
        """Per group, the median lag over the polls in [low, high] of the run's duration."""
        picked = [
            lags for at, lags in self.samples if low * self.duration <= at <= high * self.duration
        ]
        groups = {g for lags in picked for g in lags}
        return {g: median(lags.get(g, 0.0) for lags in picked) for g in groups}

    def judge(self, failures: int) -> None:
        for _, lags in self.samples:
            for group, value in lags.items():
                self.worst[group] = max(self.worst.get(group, 0.0), value)
        reasons = [f"{failures} sends failed"] if failures else []
        if self.run.cut_short:  # the lag ran away: nothing more to judge
            reasons.append(f"cut short: {self.run.cut_short}")
        else:
            if self.run.offered_rate < 0.95 * self.rate:
                reasons.append(f"the generator offered only {self.run.offered_rate:.0f}/s")
            mid, end = self.window(0.4, 0.6), self.window(0.8, 1.0)
            if not end:
                reasons.append("no lag polls at its end")
            for group, value in sorted(end.items()):
                # A background consumer (one no order waits for) asks the broker only every
                # kafka_background_fetch_max_wait_ms, so its lag swings by about that much.
                slack = 0.0 if group.startswith(ORDER_PATH) else BACKGROUND_WAIT_S
                if value > LAG_BOUND_S + 2 * slack:
                    reasons.append(f"{group} {value:.2f} s behind")
                elif value - mid.get(group, 0.0) > LAG_GROWTH_S + slack:
                    before = mid.get(group, 0.0)
                    reasons.append(f"{group} falling behind ({before:.2f} -> {value:.2f} s)")
        self.sustained = not reasons
        self.why = "; ".join(reasons)


async def load(
    generator: Generator, lag: Lag, meter: CpuMeter, series: list[Series], rate: float,
    duration: float, abort_lag: float, judged: tuple[str, ...] = WATCHED,
) -> Step:  # fmt: skip
    """One open-loop run at `rate` with the lag of the groups on `judged` topics polled every
    POLL_S; cut short when one is more than `abort_lag` seconds behind. The platform's CPU is
    measured over the run."""
    payloads = generator.prepare(series, rate, duration)
    samples: list[tuple[float, dict[str, float]]] = []
    behind: tuple[str, float] | None = None  # the first group found more than abort_lag behind
    began = time.monotonic()
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal behind
        for n in itertools.count():
            if done.is_set():
                break
            if n and n % 4 == 0:  # a group that committed for the first time is listed now
                await lag.discover()
            lags = {
                group: value
                for group, value in (await lag.poll()).items()
                if lag.groups[group] & set(judged)
            }
            samples.append((time.monotonic() - began, lags))
            over = [(g, v) for g, v in lags.items() if v > abort_lag]
            behind = behind or (max(over, key=lambda gv: gv[1]) if over else None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), POLL_S)

    watcher = asyncio.create_task(watch())
    failures_before = generator.failures
    meter.begin()
    try:
        run = await generator.run(series, payloads, rate, lambda: behind is not None)
    finally:
        done.set()
        await asyncio.wait_for(watcher, 30)
    if behind is not None:
        run.cut_short = f"{behind[0]} {behind[1]:.1f} s behind"
    step = Step(rate, run, samples, duration, usage=meter.end())
    await generator.settle(30.0)
    step.judge(generator.failures - failures_before)
    return step


# ---- latency joins ---------------------------------------------------------------------------


@dataclass
class Orders:
    """The orders decided on bars scheduled in a window, with their hops in ms."""

    intents: int = 0
    approved: int = 0
    denied: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    placed: list[float] = field(default_factory=list)  # bar -> placed
    fills: list[float] = field(default_factory=list)  # next bar -> fill
    hops: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    rows: list[list[Any]] = field(default_factory=list)


def join(seen: Seen, generator: Generator, start: float, end: float, names: set[str]) -> Orders:
    """Orders whose decision bar (of `names`) was due in [start + SKIP_S, end]."""
    out = Orders()
    for coid, intent in seen.intents.items():
        if intent["instrument"] not in names:
            continue
        t0 = generator.scheduled.get((intent["instrument"], intent["decided"] - BAR_S))
        if t0 is None or not start + SKIP_S <= t0 <= end:
            continue
        out.intents += 1
        if coid in seen.denied:
            reason = seen.denied[coid]
            out.denied[reason] = out.denied.get(reason, 0) + 1
        if coid in seen.rejected:
            out.rejected += 1
        approved, placed = seen.approved.get(coid), seen.accepted.get(coid)
        if approved is None:
            continue
        out.approved += 1
        if placed is None:
            continue
        out.placed.append((placed - t0) * 1000)
        bar_seen = seen.bars.get((intent["instrument"], intent["decided"] - BAR_S))
        steps: dict[str, float | None]
        if seen.precise:
            steps = {
                "bar on the bus (md.bars.v1)": None if bar_seen is None else bar_seen - t0,
                "bar -> intent (strategy)": intent["created"] - t0,
                "intent on the bus (outbox relay)": intent["seen"] - intent["created"],
                "intent -> approved (risk)": approved["at"] - intent["seen"],
                "approval on the bus (outbox relay)": approved["seen"] - approved["at"],
                "approval -> placed (execution)": placed - approved["seen"],
            }
        else:  # the observers hear late: the services' own timestamps, each with its bus hop
            steps = {
                "bar -> intent created (strategy)": intent["created"] - t0,
                "intent -> approved (relay, risk)": approved["at"] - intent["created"],
                "approved -> placed (relay, execution)": placed - approved["at"],
            }
        fill = seen.filled.get(coid)
        next_due = (
            None if fill is None else generator.scheduled.get((intent["instrument"], fill["bar"]))
        )
        if fill is not None and next_due is not None:
            out.fills.append((fill["ce"] - next_due) * 1000)
            if seen.precise:
                steps["fill on the bus (outbox relay)"] = fill["seen"] - fill["ce"]
        for name, value in steps.items():
            if value is not None:
                out.hops[name].append(value * 1000)
        out.rows.append(
            [coid, t0, bar_seen, intent["created"], intent["seen"], approved["at"],
             approved["seen"], placed, next_due, None if fill is None else fill["ce"]]
        )  # fmt: skip
    return out


def pending_orders(seen: Seen, names: set[str]) -> int:
    """Orders of `names` on their way: neither denied nor rejected, and not yet placed. (Fills
    are not waited for: an order placed after its instrument's last bar fills in the next run,
    and when execution's market clock is ahead, only on a later bar than the bench has sent.)"""
    count = 0
    for coid, intent in seen.intents.items():
        if intent["instrument"] not in names or coid in seen.denied or coid in seen.rejected:
            continue
        if coid not in seen.approved or coid not in seen.accepted:
            count += 1
    return count


# ---- baseline: the bare bus through the same hops --------------------------------------------


def relay_main(bootstrap: str, source: str, target: str, linger_ms: int, fetch_wait: int) -> None:
    """One hop of the baseline: consume `source`, append the receive time, send to `target`."""

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            source,
            bootstrap_servers=bootstrap,
            group_id=f"relay-{source}",
            fetch_max_wait_ms=fetch_wait,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=linger_ms
        )
        await consumer.start()
        await producer.start()
        try:
            async for record in consumer:
                value = record.value + STAMP.pack(time.time())
                await producer.send(target, value, key=record.key)
        finally:
            await consumer.stop()
            await producer.stop()

    asyncio.run(run())


async def baseline(bootstrap: str, linger_ms: int, fetch_wait: int) -> dict[str, list[float]]:
    """Latencies (ms) of messages sent open loop at BASELINE_RATE through three relay processes
    over four topics of the bus topics' partition count, keyed like four instruments."""
    partitions = BARS_SPEC.partitions
    topics = [f"bench.hop{n}.{uuid.uuid4().hex[:6]}" for n in range(HOPS + 1)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    finally:
        await admin.close()
    relays = []
    for source, target in itertools.pairwise(topics):
        args = ["--relay", bootstrap, source, target, str(linger_ms), str(fetch_wait)]
        relays.append(
            await asyncio.create_subprocess_exec(
                sys.executable, __file__, *args, stdout=DEVNULL, stderr=DEVNULL
            )
        )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=0
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=fetch_wait
    )
    await producer.start()
    await consumer.start()
    keys = [f"bench:B{n}/USD".encode() for n in range(4)]
    out: dict[str, list[float]] = defaultdict(list)
    try:
        await consumer.topics()
        last = [TopicPartition(topics[-1], p) for p in range(partitions)]
        consumer.assign(last)
        await consumer.seek_to_end(*last)
        # Until a message of every key makes it through (the relays joined their groups).
        deadline = time.monotonic() + 90
        through: set[bytes] = set()
        while time.monotonic() < deadline and len(through) < len(keys):
            for key in keys:
                await producer.send_and_wait(topics[0], STAMP.pack(time.time()), key=key)
            got = await consumer.getmany(timeout_ms=500)
            through |= {r.key for records in got.values() for r in records}
        if len(through) < len(keys):
            raise RuntimeError("the baseline relays passed nothing on")
        await asyncio.sleep(1)
        await consumer.getmany(timeout_ms=200)
        stop = asyncio.Event()

        async def collect() -> None:
            while not stop.is_set():
                got = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for records in got.values():
                    for record in records:
                        stamps = [STAMP.unpack_from(record.value, 8 * k)[0] for k in range(4)]
                        if stamps[0] < begun + SKIP_S:
                            continue
                        out["message -> 3rd relay (3 hops)"].append((stamps[3] - stamps[0]) * 1000)
                        for k in range(1, 4):
                            out[f"hop {k}"].append((stamps[k] - stamps[k - 1]) * 1000)
                        out["message -> bench (4 hops)"].append((now - stamps[0]) * 1000)

        begun = time.time()
        collector = asyncio.create_task(collect())
        count = round(BASELINE_RATE * BASELINE_S)
        start_perf = time.perf_counter() + 0.05
        start_wall = begun + 0.05
        futures = []
        i = 0
        while i < count:
            now = time.perf_counter()
            due = min(count, int((now - start_perf) * BASELINE_RATE) + 1)
            if due <= i:
                await asyncio.sleep(max(start_perf + i / BASELINE_RATE - now, 0.0))
                continue
            for j in range(i, due):
                value = STAMP.pack(start_wall + j / BASELINE_RATE)
                futures.append(await producer.send(topics[0], value, key=keys[j % len(keys)]))
            i = due
            await asyncio.sleep(0)
        if futures:
            await asyncio.wait(futures, timeout=30)
        failed = sum(1 for f in futures if not f.done() or f.exception() is not None)
        if failed:
            print(f"  baseline: {failed} sends failed")
        deadline = time.monotonic() + 30
        while len(out["message -> 3rd relay (3 hops)"]) < count * 0.99 - BASELINE_RATE * SKIP_S:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(collector, 10)
    finally:
        await producer.stop()
        await consumer.stop()
        for relay in relays:
            relay.terminate()
        for relay in relays:
            await relay.wait()
    return out


# ---- the platform's CPU -------------------------------------------------------------------------


def platform_processes(platform: Platform) -> dict[int, tuple[str, psutil.Process]]:
    """Every process of the platform, by pid, with a label: the `trademesh up` process tree
    (services, Tansu) and the Postgres postmaster's (pg_ctl detaches it from the tree)."""
    labels = {int(str(row["pid"])): name for name, row in platform.processes().items()}
    roots = [platform.proc.pid]
    pidfile = platform.home / "postgres" / "data" / "postmaster.pid"
    if pidfile.exists():
        roots.append(int(pidfile.read_text().splitlines()[0]))
    found: dict[int, tuple[str, psutil.Process]] = {}
    for root in roots:
        try:
            top = psutil.Process(root)
            members = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in members:
            try:
                label = labels.get(proc.pid)
                if label is None:
                    parents = [labels.get(p.pid) for p in proc.parents()]
                    label = next((x for x in parents if x), None) or proc.name()
                    label = "trademesh up" if proc.pid == platform.proc.pid else label
                found[proc.pid] = (label, proc)
            except psutil.NoSuchProcess:
                continue
    return found


def cpu_seconds(proc: psutil.Process) -> float | None:
    try:
        times = proc.cpu_times()
    except psutil.NoSuchProcess:
        return None
    return float(times.user + times.system)


@dataclass
class Usage:
    """CPU used over a window, in % of one core: the platform's by process label, the bench's."""

    wall: float
    by_label: dict[str, float]
    counts: dict[str, int]
    gone: int
    bench: float

    @property
    def total(self) -> float:
        return sum(self.by_label.values())

    def top(self, n: int = 4) -> str:
        busiest = sorted(self.by_label.items(), key=lambda kv: -kv[1])[:n]
        return ", ".join(f"{label} {used:.0f}" for label, used in busiest)


class CpuMeter:
    """The CPU time every process of the platform (and the bench itself) used between begin()
    and end(). A process born in the window counts whole (a Postgres backend, say); one that
    ended in it is left out (counted in `gone`)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.before: dict[int, float | None] = {}
        self.began = self.wall0 = 0.0
        self.own0: float | None = None

    def begin(self) -> None:
        found = platform_processes(self.platform)
        self.before = {pid: cpu_seconds(proc) for pid, (_, proc) in found.items()}
        self.own0 = cpu_seconds(psutil.Process())
        self.began, self.wall0 = time.time(), time.monotonic()

    def end(self) -> Usage:
        wall = time.monotonic() - self.wall0
        after = platform_processes(self.platform)
        used: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        for pid, (label, proc) in after.items():
            now = cpu_seconds(proc)
            if now is None:
                continue
            then = self.before.get(pid)
            if then is None:
                try:
                    then = 0.0 if proc.create_time() >= self.began else now
                except psutil.NoSuchProcess:
                    continue
            used[label] += 100 * (now - then) / wall
            counts[label] += 1
        own = cpu_seconds(psutil.Process())
        bench = 100 * (own - self.own0) / wall if own is not None and self.own0 is not None else 0.0
        return Usage(wall, dict(used), dict(counts), len(set(self.before) - set(after)), bench)


def print_usage(tag: str, usage: Usage) -> None:
    for label, used in sorted(usage.by_label.items(), key=lambda kv: -kv[1]):
        many = f" ({usage.counts[label]} processes)" if usage.counts[label] > 1 else ""
        print(f"[{tag}]   {label:28s} {used:6.2f} % of a core{many}")
    if usage.gone:
        print(f"[{tag}]   ({usage.gone} processes ended in the window; their time is not counted)")
    print(
        f"[{tag}] the whole platform: {usage.total:.2f} % of one core "
        f"(the bench itself: {usage.bench:.1f} %)"
    )


async def idle_cpu(meter: CpuMeter, seconds: float) -> float:
    """The platform's CPU time over `seconds` with nothing flowing, in % of one core."""
    meter.begin()
    await asyncio.sleep(seconds)
    usage = meter.end()
    print(
        f"[idle] {sum(usage.counts.values())} processes, {usage.wall:.1f} s, no bars flowing, "
        "bots in place, nothing of the bench connected"
    )
    print_usage("idle", usage)
    return usage.total


# ---- setup -------------------------------------------------------------------------------------


async def call(http: httpx.AsyncClient, method: str, url: str, what: str, **kw: Any) -> Any:
    """A request through the gateway, waiting out its per-user rate limit (429) for up to 60 s."""
    deadline = time.monotonic() + 60
    while True:
        response = await http.request(method, url, **kw)
        if response.status_code == 429 and time.monotonic() < deadline:
            await asyncio.sleep(float(response.headers.get("Retry-After", "1") or 1))
            continue
        if response.status_code >= 300:
            raise RuntimeError(f"{what}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None


async def set_up(
    http: httpx.AsyncClient, admin: dict[str, str], bots: list[tuple[Series, list[float], int]]
) -> None:
    """A paper account; per instrument a warm-up replay (stored before its bots start) and
    `count` rsi_cross bots with `params` (period, oversold, overbought)."""
    paper = {"name": "bench", "venue": "paper", "cash": "1000000000"}
    made = await call(http, "POST", "/api/v1/accounts", "account", json=paper, headers=admin)
    account = made["account_id"]
    for series, _, _ in bots:
        config = {"kind": "replay", "file": f"{file_name(series.instrument)}-warm.csv",
                  "timeframe": TIMEFRAME}  # fmt: skip
        body = {"instrument_id": series.instrument, "timeframes": [TIMEFRAME], "config": config}
        await call(http, "POST", "/api/v1/feeds", "warm-up feed", json=body, headers=admin)
    for series, _, _ in bots:
        deadline = time.monotonic() + 120
        while True:
            params: dict[str, str | int] = {"instrument": series.instrument, "timeframe": TIMEFRAME,
                      "start": "2000-01-01", "end": "2100-01-01", "limit": WARM_BARS}  # fmt: skip
            got = await call(http, "GET", "/api/v1/ohlcv", "history", params=params, headers=admin)
            if len(got["items"]) >= WARM_BARS:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"warm-up bars of {series.instrument} not stored")
            await asyncio.sleep(0.3)
    gate = asyncio.Semaphore(4)

    async def create(series: Series, params: list[float]) -> None:
        period, oversold, overbought = int(params[0]), params[1], params[2]
        bot = {
            "strategy": "rsi_cross",
            "params": {"period": period, "oversold": oversold, "overbought": overbought},
            "instrument_id": series.instrument,
            "timeframe": TIMEFRAME,
            "account_id": account,
            "sizing": {"kind": "quantity", "value": "1"},
            "capital": "1000000",
        }
        async with gate:
            await call(http, "POST", "/api/v1/bots", "bot", json=bot, headers=admin)

    await asyncio.wait_for(
        asyncio.gather(*(create(s, p) for s, p, n in bots for _ in range(n))), 600
    )


async def warm_up_handled(bootstrap: str, bars: int, timeout: float = 120.0) -> None:
    """Until every watched group on md.bars.v1 (strategy's and execution's among them) has
    committed `bars` bars in all: the warm-up replays (the groups joined md.bars.v1 at its end,
    before any bar)."""
    lag = Lag(bootstrap, {}, Seen())
    await lag.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            await lag.discover()
            handled = await lag.handled(MD_BARS)
            services = {g.split(".")[0] for g, n in handled.items() if n >= bars}
            if {"strategy", "execution"} <= services and min(handled.values()) >= bars:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"of {bars} warm-up bars the services handled {handled}")
            await asyncio.sleep(0.5)
    finally:
        await lag.stop()


# ---- phases ------------------------------------------------------------------------------------


def print_orders(tag: str, orders: Orders) -> None:
    denied = ", ".join(f"{n} {r}" for r, n in sorted(orders.denied.items())) or "none"
    print(
        f"[{tag}] orders: {orders.intents} intents, {orders.approved} approved, denied: {denied}, "
        f"{orders.rejected} rejected, {len(orders.placed)} placed, {len(orders.fills)} filled"
    )
    print(f"[{tag}] hop (ms)")
    for name, values in orders.hops.items():
        print(f"[{tag}]   {name:34s} {ms_summary(values)}")
    print(f"[{tag}] {'bar -> order placed (ms)':36s} {ms_summary(orders.placed)}")
    print(f"[{tag}] {'next bar -> fill (ms)':36s} {ms_summary(orders.fills)}")


async def settle_between(lag: Lag, seen: Seen, generator: Generator, names: set[str]) -> bool:
    """Until the groups have drained (see Lag.drain) and the orders in flight have landed (at
    most 10 s more: by then an order not placed never will be)."""
    drained = await lag.drain(DRAIN_S)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not pending_orders(seen, names):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.3)  # the last events' way to the bench
    return drained


async def latency_phase(
    generator: Generator, lag: Lag, meter: CpuMeter, seen: Seen, series: list[Series],
    bars_seen: Observer,
) -> tuple[Orders, bool]:  # fmt: skip
    names = {s.instrument for s in series}
    print(
        f"[latency] {RATE:g} bars/s over {len(series)} instruments for {DURATION_S:g} s "
        f"(open loop; watching {len(lag.groups)} groups)"
    )
    step = await load(generator, lag, meter, series, RATE, DURATION_S, MAX_LAG_S)
    drained = await settle_between(lag, seen, generator, names)
    await bars_seen.stop()
    run = step.run
    print(
        f"[latency] offered {run.sent} bars at {run.offered_rate:.0f}/s; {run.lag_line()}; "
        f"{generator.failures} sends failed"
    )
    worst = ", ".join(f"{g} {v:.2f}" for g, v in sorted(step.worst.items()))
    print(f"[latency] worst consumer lag (s): {worst}")
    if run.cut_short:
        print(
            f"[latency] cut short after {run.ended - run.started:.1f} s: {run.cut_short} "
            f"(BENCH_MAX_LAG_S {MAX_LAG_S:g}): {RATE:g} bars/s is not sustainable here, and the "
            "figures below are those of a queue that grew"
        )
    elif not step.sustained:
        print(f"[latency] not sustained: {step.why}")
    if not drained:
        print(f"[latency] the consumers did not catch up after the run ({NOT_DRAINED})")
    if step.usage is not None:
        print(f"[latency] CPU while the bars were sent ({step.usage.wall:.1f} s):")
        print_usage("latency", step.usage)
    orders = join(seen, generator, run.started, run.ended, names)
    print_orders("latency", orders)
    return orders, step.sustained


async def ramp(
    tag: str,
    generator: Generator,
    lag: Lag,
    meter: CpuMeter,
    seen: Seen,
    series: list[Series],
    rates: list[float],
    failing: float | None = None,
    judged: tuple[str, ...] = WATCHED,
) -> tuple[float, str]:
    """The highest sustained rate of `rates`, going up until a step is not sustained; when the
    first is not (or `failing`, a rate already seen not sustained here, is below every step),
    halving down to RAMP_MIN; then one step between the best and the first failure. 0 when no
    step was sustained. With it, bar -> placed at that rate, as a phrase. Only the groups on
    `judged` topics decide whether a step is sustained."""
    names = {s.instrument for s in series}
    print(f"[{tag}] {len(series)} instruments, steps of {STEP_S:g} s, {len(lag.groups)} groups")
    if not await lag.drain(DRAIN_S):
        print(f"[{tag}] skipped: the consumers did not catch up ({NOT_DRAINED})")
        return 0.0, ""
    latency: dict[float, str] = {}

    async def attempt(rate: float) -> bool:
        step = await load(generator, lag, meter, series, rate, STEP_S, ABORT_LAG_S, judged)
        drained = await settle_between(lag, seen, generator, names)
        orders = join(seen, generator, step.run.started, step.run.ended, names)
        p50, p99 = pct(orders.placed, 50, 99)
        worst = max(step.worst.values(), default=0.0)
        verdict = "sustained" if step.sustained else f"NOT sustained ({step.why})"
        run = step.run
        offered = (
            f"cut short after {run.ended - run.started:.1f} s"
            if run.cut_short
            else f"offered {run.offered_rate:6.0f}/s"
        )
        print(
            f"[{tag}] {rate:6.0f} bars/s: {offered}, worst lag {worst:6.2f} s, bar -> placed "
            f"p50 {p50:.1f} ms p99 {p99:.1f} ms (n={len(orders.placed)}), generator lag p99 "
            f"{pct(run.lags_ms, 99)[0]:.1f} ms: {verdict}"
        )
        if step.usage is not None:
            print(
                f"[{tag}]         CPU (% of a core): platform {step.usage.total:.0f} "
                f"({step.usage.top()}), bench {step.usage.bench:.0f}"
            )
        latency[rate] = f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (n={len(orders.placed)})"
        if not drained:
            raise TimeoutError(f"the consumers did not catch up after the step ({NOT_DRAINED})")
        return step.sustained

    best, failed_at = 0.0, failing
    if failing is not None:
        print(f"[{tag}] ({failing:g} bars/s was not sustained in the latency run)")
    try:
        for rate in [r for r in rates if failing is None or r < failing]:
            if not await attempt(rate):
                failed_at = rate
                break
            best = rate
        if best == 0.0 and (failed_at or rates):
            rate = (failed_at or rates[0]) / 2
            while rate >= RAMP_MIN:
                if await attempt(rate):
                    best = rate
                    break
                failed_at, rate = rate, rate / 2
        if failed_at is not None and 0 < best < 0.75 * failed_at:
            between = round((best + failed_at) / 2)
            if await attempt(between):
                best = between
    except TimeoutError as exc:
        print(f"[{tag}] ramp ended: {exc}")
    print(f"[{tag}] highest sustained: {best:g} bars/s")
    return best, latency.get(best, "")


# ---- the whole measure -------------------------------------------------------------------------


@dataclass
class Result:
    p50: float = float("nan")
    p99: float = float("nan")
    max_bars: float = float("nan")
    bot_bars: float = float("nan")
    idle_pct: float = float("nan")
    baseline_p50: float = float("nan")
    notes: list[str] = field(default_factory=list)


async def measure(
    platform: Platform, bootstrap: str, linger_ms: int, fetch_wait: int, email: str,
    latency_series: list[Series], bot_series: list[Series], result: Result,
) -> None:  # fmt: skip
    async with httpx.AsyncClient(base_url=platform.url(8000), timeout=30.0) as http:
        login = await call(
            http, "POST", "/api/v1/auth/login", "login", json={"email": email, "password": PASSWORD}
        )
        admin = {"Authorization": f"Bearer {login['access_token']}"}
        began = time.monotonic()
        plan = [(s, RSI, 1) for s in latency_series]
        plan += [(s, BOT_RSI, BOTS_PER_INSTRUMENT) for s in bot_series]
        await set_up(http, admin, plan)
    await warm_up_handled(bootstrap, WARM_BARS * len(plan))
    print(
        f"setup: {len(plan)} instruments warmed up, "
        f"{len(latency_series) + BOTS_PER_INSTRUMENT * len(bot_series)} bots, "
        f"in {time.monotonic() - began:.0f} s"
    )

    meter = CpuMeter(platform)
    if "idle" not in SKIP:
        await asyncio.sleep(3)  # what the bots' creation set going settles
        result.idle_pct = await idle_cpu(meter, IDLE_S)

    if "baseline" not in SKIP:
        print(
            f"[baseline] the bare bus: {HOPS} relay processes over {HOPS + 1} topics, "
            f"{BASELINE_RATE:g}/s open loop for {BASELINE_S:g} s (fetch wait {fetch_wait} ms, "
            f"linger {linger_ms} ms)"
        )
        base = await baseline(bootstrap, linger_ms, fetch_wait)
        for name, values in base.items():
            print(f"[baseline]   {name:34s} {ms_summary(values)}")
        result.baseline_p50 = pct(base["message -> 3rd relay (3 hops)"], 50)[0]

    seen = Seen()
    generator = Generator(bootstrap)
    await generator.start()
    observer_wait = OBSERVER_WAIT_MS
    seen.precise = observer_wait <= fetch_wait
    orders_seen = Observer(
        bootstrap,
        [ORDERS_INTENTS, ORDERS_APPROVED, ORDERS_DENIED, ORDERS_EVENTS],
        observer_wait,
        seen,
    )
    await orders_seen.start()
    lag = Lag(bootstrap, generator.sent_log, seen)
    await lag.start()
    failing: float | None = None  # a rate the latency run found not sustained
    try:
        await lag.discover()
        watched = [f"{group} ({' '.join(sorted(t))})" for group, t in lag.groups.items()]
        print(f"watched groups: {', '.join(watched)}")
        if "latency" not in SKIP:
            bars_seen = Observer(bootstrap, [MD_BARS], observer_wait, seen)
            await bars_seen.start()
            orders, sustained = await latency_phase(
                generator, lag, meter, seen, latency_series, bars_seen
            )
            failing = None if sustained else RATE
            result.p50, result.p99 = pct(orders.placed, 50, 99)
            if DUMP:
                dump(DUMP, orders.rows)
        if "ramp" not in SKIP:
            await lag.discover()
            result.max_bars, at_best = await ramp(
                "ramp", generator, lag, meter, seen, latency_series, RAMP, failing
            )
            if result.max_bars:
                result.notes.append(
                    f"bar -> placed at {result.max_bars:g} bars/s (the highest sustained): "
                    + at_best
                )
        if "bots" not in SKIP:
            await lag.discover()
            # Judged on the bar consumers alone: the figure is strategy's evaluation rate (the
            # bots' rare orders come ten at a time, one per bot of an instrument; the order
            # path's capacity is the ramp's).
            best, _ = await ramp(
                "bots", generator, lag, meter, seen, bot_series, BOT_RAMP, judged=(MD_BARS,)
            )
            result.bot_bars = best * BOTS_PER_INSTRUMENT
        if generator.failures:
            print(
                f"{generator.failures} bar sends failed in all; the first: {generator.first_error}"
            )
    finally:
        await orders_seen.stop()
        await lag.stop()
        await generator.stop()


def dump(path: str, rows: list[list[Any]]) -> None:
    with open(path, "a", newline="") as handle:
        csv.writer(handle).writerows(rows)


def report(result: Result) -> None:
    ratio = result.baseline_p50 / result.p50 if result.p50 > 0 else float("nan")
    figures = {
        "p50_ms": result.p50,
        "p99_ms": result.p99,
        "max_bars_per_s": result.max_bars,
        "bot_bars_per_s": result.bot_bars,
        "idle_cpu_pct": result.idle_pct,
        "ratio": ratio,
    }
    for note in result.notes:
        print(note)
    print("targets: " + "; ".join(verdicts(TARGETS, figures)))
    print(
        f"BENCH pipeline_latency p50_ms={result.p50:.2f} p99_ms={result.p99:.2f} "
        f"max_bars_per_s={result.max_bars:.0f} bot_bars_per_s={result.bot_bars:.0f} "
        f"idle_cpu_pct={result.idle_pct:.1f} ratio={ratio:.3f}"
    )


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    replay = folder / "replay"
    replay.mkdir()
    latency_series = [Series(f"bench:S{n}/USD", n * 397) for n in range(INSTRUMENTS)]
    bot_series = [Series(f"bench:M{n:02d}/USD", 211 + n * 173) for n in range(BOT_INSTRUMENTS)]
    for series in latency_series + bot_series:
        series.write_warm_up(replay)
    extra = {"TRADEMESH_REPLAY_DIR": str(replay)}
    if LINGER_MS is not None:
        extra["TRADEMESH_KAFKA_LINGER_MS"] = LINGER_MS
    if FETCH_WAIT_MS is not None:
        extra["TRADEMESH_KAFKA_FETCH_MAX_WAIT_MS"] = FETCH_WAIT_MS
    linger = int(
        LINGER_MS
        if LINGER_MS is not None
        else KafkaSettings.model_fields["kafka_linger_ms"].default
    )
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    print(f"{os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    started = time.monotonic()
    platform = Platform(folder / "home", free_offset(), "--no-demo", env=clean_env(**extra))
    result = Result()
    ok = False
    try:
        platform.wait_for(r"gateway:.*OpenAPI", 180)
        print(f"platform up in {time.monotonic() - started:.0f} s")
        made = platform.trademesh(
            "user", "create", "--admin", "--email", email, "--password-stdin", stdin=PASSWORD
        )
        if made.returncode != 0:
            raise RuntimeError(made.stdout + made.stderr)
        bootstrap = platform.setting("TRADEMESH_KAFKA_BOOTSTRAP")
        try:
            fetch_wait = int(platform.setting("TRADEMESH_KAFKA_FETCH_MAX_WAIT_MS"))
        except AssertionError:  # not in infra.env: the services use the setting's default
            fetch_wait = int(KafkaSettings.model_fields["kafka_fetch_max_wait_ms"].default)
        args = (platform, bootstrap, linger, fetch_wait, email, latency_series, bot_series)
        try:
            asyncio.run(asyncio.wait_for(measure(*args, result), DEADLINE_S))
        except TimeoutError:
            print(
                f"gave up after {DEADLINE_S:g} s (BENCH_DEADLINE_S): what it did not measure is nan"
            )
        ok = True
    finally:
        output = platform.stop()
        if "exited with" in output or not ok:
            print(output[-3000:])
        print(f"total {time.monotonic() - started:.0f} s")
    if ok:
        shutil.rmtree(folder, ignore_errors=True)  # kept, with the services' logs, when it failed
    report(result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--relay", nargs=5, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.relay is not None:
        bootstrap, source, target, linger, fetch_wait = options.relay
        relay_main(bootstrap, source, target, int(linger), int(fetch_wait))
    else:
        main()
