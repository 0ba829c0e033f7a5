"""Notify latency: OrderFilled events to a user's webhook, open loop, with notify killed -9
midway.

In one run on a fresh embedded Postgres and Tansu, on loopback:
- notify (`python -m trademesh_notify`) in a process of its own, as deployed (default settings,
  but for webhooks to loopback allowed, a master key, and the webhook rate limit lifted so that
  the offered rate is what is measured: 200/s to one channel is over its default);
- a webhook receiver in the bench's process (aiohttp), which notes when each delivery arrived and
  its `Trademesh-Delivery-Id`;
- a user (a test token) with one webhook channel for fills, made through notify's API.

Phases:
0. baseline, the bare path through the same hops, before notify starts: a relay process
   consumes a topic of its own (the services' consumer settings) and POSTs each message to the
   same receiver (aiohttp, no database). Messages are sent open loop at RATE/s for BASELINE_S.
   ratio = baseline p50 / notify's steady p50 (1.0 would mean notify adds nothing to the bus
   and the POST).
1. idle: the CPU time (user + system) of the notify process and of its Postgres backends (those
   whose application_name is notify's) over IDLE_S with nothing to send, in % of one core.
2. sparse: SPARSE_RATE fills/s for SPARSE_S (one at a time, the loop idle between them):
   scheduled -> received. A loop that polls shows its interval here, not under load.
3. latency: RATE OrderFilled events/s for DURATION_S on orders.events.v1 (keys: ACCOUNTS
   accounts of the user), open loop: event i is due at start + i / RATE, stamped with that time
   (its ce_time, which is also the time notify's latency metric counts from) and handed to a
   plain AIOKafkaProducer (acks=all, linger 0) without waiting for the ack. Latency = the
   receiver's arrival time - the scheduled time. At KILL_AT_S notify gets SIGKILL and is
   started again at once. The kill window is [KILL_AT_S - 0.5, KILL_AT_S + WINDOW_S): its figures
   are reported apart; the steady figures (the headline) are the rest, less the first WARM_S.
   Then the bench waits (at most DRAIN_S, while deliveries still arrive) for every event.
   events_per_s = events received over the time from the first one's schedule to the last
   one's arrival (a slow recovery lowers it).
   lost = events never received; doubled = events received more than once: raw, and after
   dropping repeats of a Trademesh-Delivery-Id as a receiver following the README does. Where
   the steady time goes is read from notify's rows (event time -> delivery written -> sent).

Knobs (environment): BENCH_RATE (200), BENCH_DURATION_S (30), BENCH_KILL_AT_S (10),
BENCH_WINDOW_S (15), BENCH_SPARSE_RATE (2), BENCH_SPARSE_S (10; 0 skips it), BENCH_WARM_S (2),
BENCH_ACCOUNTS (8), BENCH_IDLE_S (20; 0 skips it), BENCH_BASELINE_S (8; 0 skips it), BENCH_DRAIN_S (60), BENCH_NOTIFY_PYTHON (the interpreter
that runs notify: another checkout's venv measures its code), BENCH_PROFILE (a folder: py-spy
samples notify over the run, raw collapsed stacks).

Targets (a line says which are met): steady p50 <= 20 ms, p99 <= 100 ms, lost = 0, doubled
after dedup = 0. A raw double after the kill is inherent to at-least-once (killed between the
receiver's 2xx and the row's update): it is reported, not hidden.

Last line: BENCH notify_latency p50_ms=... p99_ms=... events_per_s=... lost=... doubled=...
ratio=... (doubled: after dedup; the raw count is on the line before)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import psutil
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from trademesh_events import orders
from trademesh_events.envelope import new_envelope
from trademesh_events.topics import ORDERS_EVENTS_TOPIC
from trademesh_infra.ports import free_port
from trademesh_infra.topics import ensure_topics, topic_plan
from trademesh_keystore import new_master_key
from trademesh_testing.infra import start_embedded
from trademesh_testing.samples import build_sample
from trademesh_testing.stats import ms_summary, pct, verdicts
from trademesh_testing.tokens import signer

RATE = float(os.environ.get("BENCH_RATE", "200"))
DURATION_S = float(os.environ.get("BENCH_DURATION_S", "30"))
KILL_AT_S = float(os.environ.get("BENCH_KILL_AT_S", "10"))
WINDOW_S = float(os.environ.get("BENCH_WINDOW_S", "15"))
SPARSE_RATE = float(os.environ.get("BENCH_SPARSE_RATE", "2"))
SPARSE_S = float(os.environ.get("BENCH_SPARSE_S", "10"))
WARM_S = float(os.environ.get("BENCH_WARM_S", "2"))
ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "8"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "20"))
BASELINE_S = float(os.environ.get("BENCH_BASELINE_S", "8"))
DRAIN_S = float(os.environ.get("BENCH_DRAIN_S", "60"))
NOTIFY_PYTHON = os.environ.get("BENCH_NOTIFY_PYTHON", sys.executable)
PROFILE = os.environ.get("BENCH_PROFILE")
BASELINE_TOPIC = "bench.notify.baseline"
IN_FLIGHT_S = 0.5  # the kill window starts this long before the kill: events in flight then
TARGETS = {"p50_ms": (20.0, "<="), "p99_ms": (100.0, "<="), "lost": (0, "<="), "doubled": (0, "<=")}


# ---- the webhook receiver ----------------------------------------------------------------------


@dataclass
class Receiver:
    """Notes each POST: its delivery id (or, for the baseline, its message id) and when."""

    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    last: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        now = time.time()
        key = (
            request.headers.get("Trademesh-Delivery-Id") or request.headers.get("X-Bench-Id") or ""
        )
        self.arrivals[key].append(now)
        self.last = time.monotonic()
        return web.Response(status=204)


async def serve_receiver(receiver: Receiver, port: int) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/{path:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


# ---- notify as a process of its own ------------------------------------------------------------


class Notify:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="bench-notify-", suffix=".log")[1])

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [NOTIFY_PYTHON, "-m", "trademesh_notify"],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()

    async def wait_ready(self, timeout: float = 90.0) -> float:
        began = time.monotonic()
        async with httpx.AsyncClient() as http:
            while time.monotonic() - began < timeout:
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/ready")).status_code == 200:
                        return time.monotonic() - began
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"notify did not become ready; its log: {self.log}")


def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile(pid: int, into: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` for `seconds` (raw collapsed stacks into `into`/notify.txt)."""
    into.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return spawn(
        [str(spy), "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
         "--rate", "200", "--format", "raw", "--nonblocking", "--output", str(into / "notify.txt")]
    )  # fmt: skip


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


async def idle_cpu(notify: Notify, database_url: str, seconds: float) -> tuple[float, float]:
    """% of one core used by notify's process and by its Postgres backends over `seconds`."""
    assert notify.process is not None
    conn = await asyncpg.connect(database_url)
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'trademesh-notify'"
        )
    finally:
        await conn.close()
    own = psutil.Process(notify.process.pid)
    backends = [psutil.Process(row["pid"]) for row in pids]
    began = time.monotonic()
    before = cpu_seconds(own), sum(cpu_seconds(b) for b in backends)
    await asyncio.sleep(seconds)
    wall = time.monotonic() - began
    after = cpu_seconds(own), sum(cpu_seconds(b) for b in backends)
    return 100 * (after[0] - before[0]) / wall, 100 * (after[1] - before[1]) / wall


# ---- the open-loop generator -------------------------------------------------------------------


@dataclass
class Sent:
    scheduled: dict[str, float] = field(default_factory=dict)  # event id -> due (wall time)
    lags_ms: list[float] = field(default_factory=list)
    failures: int = 0
    pending: set[asyncio.Future[Any]] = field(default_factory=set)

    def acked(self, future: asyncio.Future[Any]) -> None:
        self.pending.discard(future)
        if future.cancelled() or future.exception() is not None:
            self.failures += 1


def prepare(user: uuid.UUID, count: int) -> list[tuple[orders.OrderFilled, bytes, bytes]]:
    accounts = [uuid.uuid4() for _ in range(ACCOUNTS)]
    made = []
    for n in range(count):
        fill = build_sample(orders.OrderFilled, user_id=user, account_id=accounts[n % ACCOUNTS])
        assert isinstance(fill, orders.OrderFilled)
        made.append((fill, ORDERS_EVENTS_TOPIC.key_of(fill), ORDERS_EVENTS_TOPIC.encode(fill)))
    return made


async def generate(
    producer: AIOKafkaProducer,
    topic: str,
    payloads: list[tuple[orders.OrderFilled, bytes, bytes]],
    sent: Sent,
    at: dict[float, Any] | None = None,
    rate: float = RATE,
) -> float:
    """Send each payload at its scheduled time (start + i / rate), stamped with it; `at` maps a
    second of the run to a callable run (in a thread) when the schedule reaches it."""
    start = time.time() + 0.2
    actions = sorted((at or {}).items())
    for n, (fill, key, value) in enumerate(payloads):
        due = start + n / rate
        while actions and due - start >= actions[0][0]:
            _, action = actions.pop(0)
            asyncio.get_running_loop().run_in_executor(None, action)
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        envelope = new_envelope(fill, "execution", time=datetime.fromtimestamp(due, UTC))
        headers = envelope.to_kafka_headers()
        if topic == BASELINE_TOPIC:
            headers = [*headers, ("x_bench_id", str(envelope.id).encode())]
        future = await producer.send(topic, value, key=key, headers=headers)
        sent.lags_ms.append((time.time() - due) * 1000)
        sent.scheduled[str(envelope.id)] = due
        sent.pending.add(future)
        future.add_done_callback(sent.acked)
    return start


# ---- the baseline relay ------------------------------------------------------------------------


def relay_main(bootstrap: str, topic: str, url: str, fetch_wait_ms: int) -> None:
    """Consume `topic` and POST each message to `url`, its id in X-Bench-Id: the bus and the
    HTTP hop without notify's database."""

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"bench-relay-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_wait_ms,
            enable_auto_commit=True,
        )
        await consumer.start()
        async with aiohttp.ClientSession() as session:

            async def post(message_id: str, body: bytes) -> None:
                async with session.post(url, data=body, headers={"X-Bench-Id": message_id}) as r:
                    await r.read()

            posting: set[asyncio.Task[None]] = set()
            try:
                async for record in consumer:
                    ident = dict(record.headers).get("x_bench_id", b"").decode()
                    task = asyncio.create_task(post(ident, record.value or b""))
                    posting.add(task)
                    task.add_done_callback(posting.discard)
            finally:
                await consumer.stop()

    asyncio.run(run())


# ---- the whole measure -------------------------------------------------------------------------


@dataclass
class Result:
    p50: float = float("nan")
    p99: float = float("nan")
    events_per_s: float = float("nan")
    lost: int = -1
    doubled_raw: int = -1
    doubled: int = -1
    baseline_p50: float = float("nan")
    notes: list[str] = field(default_factory=list)


async def measure(result: Result) -> None:
    infra = start_embedded(Path(tempfile.mkdtemp(prefix="bench-notify-")))
    receiver = Receiver()
    receiver_port, notify_port = free_port(), free_port()
    runner = await serve_receiver(receiver, receiver_port)
    keys = signer()
    master = new_master_key().get_secret_value()
    service_env = infra.service_env()
    env = {
        **service_env,
        "TRADEMESH_HTTP_PORT": str(notify_port),
        "TRADEMESH_DATABASE_SCHEMA": "notify",
        "TRADEMESH_AUTH_JWKS": keys.jwks_json(),
        "TRADEMESH_AUTH_ISSUER": keys.issuer,
        "TRADEMESH_AUTH_AUDIENCE": keys.audience,
        "TRADEMESH_LOG_LEVEL": "WARNING",
        "TRADEMESH_KEYSTORE_KEYS": json.dumps({"bench": master}),
        "TRADEMESH_KEYSTORE_CURRENT_KEY": "bench",
        "TRADEMESH_WEBHOOK_ALLOWED_ADDRESS_KINDS": '["loopback"]',
        "TRADEMESH_DELIVERY_RATE_LIMITS": '{"webhook": "100000/second"}',
    }
    notify = Notify(env, notify_port)
    relay: subprocess.Popen[bytes] | None = None
    spy: subprocess.Popen[bytes] | None = None
    producer = AIOKafkaProducer(
        bootstrap_servers=infra.kafka_bootstrap, acks="all", enable_idempotence=False, linger_ms=0
    )
    try:
        await ensure_topics(infra.kafka_bootstrap, topic_plan())
        fetch_wait = int(service_env.get("TRADEMESH_KAFKA_FETCH_MAX_WAIT_MS", "10"))
        await producer.start()
        user = uuid.uuid4()

        if BASELINE_S > 0:
            admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
            await admin.start()
            partitions = len(await producer.partitions_for(ORDERS_EVENTS_TOPIC.name))
            await admin.create_topics([NewTopic(BASELINE_TOPIC, partitions, 1)])
            await admin.close()
            url = f"http://127.0.0.1:{receiver_port}/baseline"
            relay = spawn([sys.executable, __file__, "--relay", infra.kafka_bootstrap, BASELINE_TOPIC, url, str(fetch_wait)])  # fmt: skip
            await until_relayed(producer, receiver, user)  # its consumer has joined its group
            base = Sent()
            payloads = prepare(user, round(RATE * BASELINE_S))
            await generate(producer, BASELINE_TOPIC, payloads, base)
            await wait_for(receiver, base, 10.0)
            latencies = [
                (receiver.arrivals[i][0] - due) * 1000
                for i, due in base.scheduled.items()
                if receiver.arrivals.get(i)
            ]
            latencies = latencies[round(RATE * 1) :]  # its first second: connections warm up
            print(f"[baseline] consume + POST, no database ({RATE:g}/s): {ms_summary(latencies)}")
            result.baseline_p50 = pct(latencies, 50)[0]
            relay.terminate()
            relay.wait(timeout=10)
            relay = None

        notify.start()
        print(f"notify ready in {await notify.wait_ready():.1f} s ({NOTIFY_PYTHON})")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{notify_port}") as http:
            made = await http.post(
                "/api/v1/notify/channels",
                json={"url": f"http://127.0.0.1:{receiver_port}/hook", "events": ["fill"]},
                headers=keys.bearer(user, role="trader"),
            )
            made.raise_for_status()
            channel = made.json()["id"]

        if IDLE_S > 0:
            await asyncio.sleep(2)
            own, backends = await idle_cpu(notify, infra.database_url, IDLE_S)
            print(
                f"[idle] over {IDLE_S:g} s: notify {own:.2f} % of a core, its Postgres "
                f"backends {backends:.2f} %"
            )
            result.notes.append(f"idle: notify {own:.2f} %, its Postgres backends {backends:.2f} %")

        if SPARSE_S > 0:
            receiver.arrivals.clear()
            sparse = Sent()
            await generate(
                producer, ORDERS_EVENTS_TOPIC.name, prepare(user, round(SPARSE_RATE * SPARSE_S)),
                sparse, rate=SPARSE_RATE,
            )  # fmt: skip
            await wait_for(receiver, sparse, 10.0, channel)
            latencies = [
                (receiver.arrivals[f"{i}:{channel}"][0] - due) * 1000
                for i, due in sparse.scheduled.items()
                if receiver.arrivals.get(f"{i}:{channel}")
            ]
            print(f"[sparse] {SPARSE_RATE:g} fills/s for {SPARSE_S:g} s: {ms_summary(latencies)}")
            result.notes.append(f"sparse ({SPARSE_RATE:g}/s): " + ms_summary(latencies))

        receiver.arrivals.clear()
        payloads = prepare(user, round(RATE * DURATION_S))
        sent = Sent()
        if PROFILE:
            assert notify.process is not None
            spy = profile(notify.process.pid, Path(PROFILE), min(KILL_AT_S, DURATION_S) - 1)
        restart: dict[str, float] = {}

        def kill_and_restart() -> None:
            restart["killed"] = time.time()
            notify.kill()
            notify.start()
            deadline = time.time() + 90
            while time.time() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{notify_port}/ready").status_code == 200:
                        restart["ready"] = time.time()
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)

        print(
            f"[latency] {RATE:g} fills/s for {DURATION_S:g} s, open loop; notify killed -9 at "
            f"{KILL_AT_S:g} s and started again"
        )
        start = await generate(
            producer, ORDERS_EVENTS_TOPIC.name, payloads, sent, {KILL_AT_S: kill_and_restart}
        )
        await notify.wait_ready()
        if "ready" in restart:
            after = restart["ready"] - restart["killed"]
            print(f"[latency] notify restarted: ready {after:.1f} s after the kill")
        print(f"[latency] generator lag (ms): {ms_summary(sent.lags_ms)}")
        await wait_for(receiver, sent, DRAIN_S, channel)
        report_run(result, receiver, sent, start, channel)
        await hops(infra.database_url, start)
        notify.log.unlink()  # kept when the run failed
    finally:
        notify.stop()
        if spy is not None:
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
        if relay is not None:
            relay.kill()
        await producer.stop()
        await runner.cleanup()
        infra.close()


async def until_relayed(producer: AIOKafkaProducer, receiver: Receiver, user: uuid.UUID) -> None:
    """Probes through the baseline relay every 0.2 s until one arrives (at most 60 s)."""
    deadline = time.monotonic() + 60
    probe = Sent()
    while time.monotonic() < deadline:
        await generate(producer, BASELINE_TOPIC, prepare(user, 1), probe)
        await asyncio.sleep(0.2)
        if any(receiver.arrivals.get(i) for i in probe.scheduled):
            receiver.arrivals.clear()
            return
    raise RuntimeError("the baseline relay received nothing in 60 s")


async def wait_for(receiver: Receiver, sent: Sent, timeout: float, channel: str = "") -> None:
    """Until every event sent arrived, or nothing arrived for `timeout` seconds."""
    if sent.pending:
        await asyncio.wait(list(sent.pending), timeout=30)
    suffix = f":{channel}" if channel else ""
    while True:
        missing = [i for i in sent.scheduled if not receiver.arrivals.get(i + suffix)]
        if not missing or time.monotonic() - receiver.last > timeout:
            return
        await asyncio.sleep(0.2)


def in_window(offset: float) -> bool:
    """Whether an event due `offset` seconds into the run is in the kill window: from IN_FLIGHT_S
    before the kill (those in flight when it came) to WINDOW_S after it."""
    return KILL_AT_S - IN_FLIGHT_S <= offset < KILL_AT_S + WINDOW_S


def report_run(result: Result, receiver: Receiver, sent: Sent, start: float, channel: str) -> None:
    steady: list[float] = []
    window: list[float] = []
    times = Counter({i: len(receiver.arrivals.get(f"{i}:{channel}", [])) for i in sent.scheduled})
    for event_id, due in sent.scheduled.items():
        arrived = receiver.arrivals.get(f"{event_id}:{channel}")
        if not arrived:
            continue
        latency = (arrived[0] - due) * 1000
        offset = due - start
        if in_window(offset):
            window.append(latency)
        elif offset >= WARM_S:
            steady.append(latency)
    result.lost = sum(1 for n in times.values() if n == 0)
    result.doubled_raw = sum(1 for n in times.values() if n > 1)
    # What a receiver keeps after dropping repeats of a Trademesh-Delivery-Id: one delivery per
    # id; an event is still doubled if it came under two ids.
    ids_of: dict[str, set[str]] = defaultdict(set)
    for key, got in receiver.arrivals.items():
        if got:
            ids_of[key.partition(":")[0]].add(key)
    result.doubled = sum(1 for i in sent.scheduled if len(ids_of.get(i, ())) > 1)
    firsts = [got[0] for got in receiver.arrivals.values() if got]
    span = max(firsts) - min(sent.scheduled.values()) if firsts else float("nan")
    result.events_per_s = len(firsts) / span if span else float("nan")
    result.p50, result.p99 = pct(steady, 50, 99)
    print(
        f"[latency] steady (first {WARM_S:g} s and the kill window left out): {ms_summary(steady)}"
    )
    print(
        f"[latency] kill window [{KILL_AT_S - IN_FLIGHT_S:g}, {KILL_AT_S + WINDOW_S:g}) s: "
        f"{ms_summary(window)}"
    )
    late = [(due - start) for i, due in sent.scheduled.items()
            if receiver.arrivals.get(f"{i}:{channel}")
            and (receiver.arrivals[f"{i}:{channel}"][0] - due) > 0.1]  # fmt: skip
    if late:
        print(
            f"[latency] events later than 100 ms were scheduled between {min(late):.1f} s and "
            f"{max(late):.1f} s of the run"
        )
    print(
        f"[latency] sent {len(sent.scheduled)} ({sent.failures} sends failed), received "
        f"{sum(times.values())} deliveries of {sum(1 for n in times.values() if n)} events; lost "
        f"{result.lost}; doubled raw {result.doubled_raw} (the same delivery id twice: a kill "
        f"between the receiver's 2xx and the row's update), after dedup {result.doubled}"
    )


async def hops(database_url: str, start: float) -> None:
    """Where the steady time goes, from notify's own rows: the event's time -> the delivery
    written (the consumer's transaction), and written -> marked sent (the loop and the POST)."""
    conn = await asyncpg.connect(database_url)
    try:
        if not await conn.fetchval(
            "SELECT true FROM information_schema.columns WHERE table_schema = 'notify' "
            "AND table_name = 'deliveries' AND column_name = 'event_time'"
        ):
            print("[hops] not measured: this notify keeps no event time")
            return
        rows = await conn.fetch(
            "SELECT extract(epoch FROM event_time) AS due, "
            "1000 * extract(epoch FROM created_at - event_time) AS consumed, "
            "1000 * extract(epoch FROM sent_at - created_at) AS sent "
            "FROM notify.deliveries WHERE status = 'sent'"
        )
    finally:
        await conn.close()
    steady = [
        r for r in rows
        if float(r["due"]) - start >= WARM_S and not KILL_AT_S <= float(r["due"]) - start < KILL_AT_S + WINDOW_S
    ]  # fmt: skip
    print("[hops] steady, from notify's rows (ms):")
    print(
        f"[hops]   event time -> delivery written  {ms_summary([float(r['consumed']) for r in steady])}"
    )
    print(
        f"[hops]   written -> marked sent          {ms_summary([float(r['sent']) for r in steady])}"
    )


def report(result: Result) -> None:
    ratio = result.baseline_p50 / result.p50 if result.p50 > 0 else float("nan")
    figures = {
        "p50_ms": result.p50,
        "p99_ms": result.p99,
        "lost": result.lost,
        "doubled": result.doubled,
    }
    for note in result.notes:
        print(note)
    print("targets: " + "; ".join(verdicts(TARGETS, figures)))
    print(f"doubled_raw={result.doubled_raw}")
    print(
        f"BENCH notify_latency p50_ms={result.p50:.2f} p99_ms={result.p99:.2f} "
        f"events_per_s={result.events_per_s:.0f} lost={result.lost} doubled={result.doubled} "
        f"ratio={ratio:.3f}"
    )


def main() -> None:
    print(f"{os.cpu_count()} cores, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    result = Result()
    asyncio.run(measure(result))
    report(result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--relay", nargs=4, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.relay is not None:
        bootstrap, topic, url, fetch_wait = options.relay
        relay_main(bootstrap, topic, url, int(fetch_wait))
    else:
        main()
