"""Scale-out: `trademesh up --replicas strategy=2,risk=2,execution=2` runs two processes of
each consuming service in one consumer group per topic. The partitions split between the two;
every account's orders are still handled in the order their bots asked for them; nothing is
done twice; and when one replica of each dies (and stays down: `--restart never`), the other
takes its partitions over and the trading goes on. On Kubernetes the same code grows the same
way, by replicas of a Deployment."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from trademesh_testing.platform import Platform, clean_env, free_offset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCALED = ("strategy", "risk", "execution")
BARS = 300  # the first 300 days of GOOG.csv, replayed as GOOG-head.csv
# Topics each scaled service reads in a group shared by its replicas.
SHARED_TOPICS = {
    "strategy": "md.bars.v1",
    "risk": "orders.intents.v1",
    "execution": "orders.approved.v1",
}
ASSIGNED = re.compile(r"assigned to partitions: \((.*)\)")


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory, trading: Any) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("scale")
    replays = trading.replay_folder(base / "replays", BARS)
    env = clean_env(TRADEMESH_REGISTRATION="open", TRADEMESH_REPLAY_DIR=str(replays))
    running = Platform(
        base / "home",
        free_offset(),
        "--no-demo",
        "--replicas",
        ",".join(f"{name}=2" for name in SCALED),
        "--restart",
        "never",
        env=env,
    )
    try:
        running.wait_for(r"gateway:.*OpenAPI", 180)
        yield running
    finally:
        running.stop()


def assignment(log: Path, topic: str) -> set[int]:
    """The partitions of `topic` the process writing `log` was last given by its group."""
    latest: set[int] = set()
    for line in log.read_text(errors="replace").splitlines():
        found = ASSIGNED.search(line)
        if found and f"topic='{topic}'" in found.group(1):
            latest = {
                int(p) for t, p in re.findall(r"topic='([^']+)', partition=(\d+)", found.group(1))
                if t == topic
            }  # fmt: skip
    return latest


def assignments(platform: Platform, service: str) -> tuple[set[int], set[int]]:
    logs = platform.home / "logs"
    topic = SHARED_TOPICS[service]
    return assignment(logs / f"{service}.log", topic), assignment(logs / f"{service}-2.log", topic)


@pytest.mark.timeout(600)
def test_two_replicas_split_the_partitions_and_the_survivor_carries_on(
    scaled: Platform, trading: Any
) -> None:
    platform = scaled
    processes = platform.processes()
    assert {f"{name}-2" for name in SCALED} <= set(processes), processes
    assert len({row["pid"] for row in processes.values()}) == len(processes)

    # Both replicas of each service hold partitions of its shared topics, and never the same.
    def split(service: str) -> bool:
        first, second = assignments(platform, service)
        return bool(first and second and not first & second and len(first | second) == 6)

    for service in SCALED:
        deadline = time.monotonic() + 60
        while not split(service):
            assert time.monotonic() < deadline, (service, assignments(platform, service))
            time.sleep(0.5)

    load = trading.start(
        platform,
        instruments=2,
        bots_per_instrument=2,
        bars_per_s=20,
        file="GOOG-head.csv",
        bars=BARS,
    )
    accounts = [uuid.UUID(a) for a in load.accounts]

    def orders_so_far() -> int:
        found = trading.rows(
            platform,
            "SELECT count(*) AS n FROM execution.orders WHERE account_id = ANY($1)",
            accounts,
        )
        return int(found[0]["n"])

    deadline = time.monotonic() + 120
    while orders_so_far() < 100:
        assert time.monotonic() < deadline, "the bots' first orders never reached execution"
        time.sleep(0.5)

    # One replica of each dies and stays down; the other takes every partition over.
    for service in SCALED:
        platform.kill(f"{service}-2")
    killed_at = trading.rows(platform, "SELECT now() AS t")[0]["t"]
    for service in SCALED:
        deadline = time.monotonic() + 90
        while assignments(platform, service)[0] != set(range(6)):
            assert time.monotonic() < deadline, (service, assignments(platform, service))
            time.sleep(0.5)

    trading.settle(platform, load, timeout=300)
    orders = trading.check(platform, load)
    assert orders >= 200, orders
    # The survivors carried on: every account got orders after the kill.
    later = trading.rows(
        platform,
        "SELECT o.account_id, count(*) AS n FROM execution.orders o JOIN ("
        "  SELECT client_order_id, min(at) AS first FROM execution.order_history"
        "  GROUP BY client_order_id) h USING (client_order_id)"
        " WHERE o.account_id = ANY($1) AND h.first > $2 GROUP BY o.account_id",
        accounts,
        killed_at,
    )
    assert {r["account_id"] for r in later} == set(accounts), later
    # Each account's orders reached execution in the order its bot asked for them (the bar
    # they were decided on), across the split and the takeover. Denied ones are left out: they
    # come on their own topic, through a background consumer.
    placed = trading.rows(
        platform,
        "SELECT o.account_id, b.bar_time, min(h.seq) AS first FROM execution.orders o"
        " JOIN execution.order_history h USING (client_order_id)"
        " JOIN strategy.bot_orders b USING (client_order_id)"
        " WHERE o.account_id = ANY($1) AND o.status <> 'DENIED'"
        " GROUP BY o.account_id, o.client_order_id, b.bar_time",
        accounts,
    )
    for account in accounts:
        mine = [r for r in placed if r["account_id"] == account]
        by_arrival = [r["bar_time"] for r in sorted(mine, key=lambda r: r["first"])]
        assert by_arrival == sorted(by_arrival), f"{account}: orders out of bar order"
    assert "exited with" in "".join(platform.lines)  # the kills were seen as such
