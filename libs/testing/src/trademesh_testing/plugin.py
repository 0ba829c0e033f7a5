"""pytest plugin (entry point `pytest11`): real-engine fixtures for integration tests, and the
fixtures every service's conftest would repeat (`make_settings`, `client`, `producer`).

Fixtures are lazy: a run of unit tests starts nothing.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from trademesh_infra.vault import DevVault

from trademesh_testing import secrets_guard
from trademesh_testing.accounts import AccountBook, book
from trademesh_testing.infra import (
    TEST_CONSUMER_SETTINGS,
    TestInfra,
    start_dev_vault,
    start_embedded,
    start_infra,
    start_questdb_container,
)
from trademesh_testing.logs import LogLines, captured_logs
from trademesh_testing.tokens import TokenSigner, signer

__all__ = ["TEST_CONSUMER_SETTINGS"]


def pytest_configure(config: pytest.Config) -> None:
    """The whole-suite log capture for secrets (secrets_guard) listens from the first test."""
    secrets_guard.install()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A secret in any log line of the run fails the run, naming the loggers (never the
    secret: only its first characters)."""
    findings = secrets_guard.GUARD.findings
    if not findings:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  {f.logger}: {f.excerpt}" for f in findings[:20]]
    message = f"secrets found in {len(findings)} log records:\n" + "\n".join(lines)
    if reporter is not None:
        reporter.write_sep("=", "secrets in the logs", red=True)
        reporter.write_line(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """The JSON lines logged during the test, as a service writes them (trademesh_testing.logs)."""
    with captured_logs() as lines:
        yield lines


@pytest.fixture(scope="session")
def infra() -> Iterator[TestInfra]:
    """The session's Postgres and Kafka-protocol broker (TRADEMESH_TEST_INFRA selects how)."""
    started = start_infra()
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="session")
def database_url(infra: TestInfra) -> str:
    return infra.database_url


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: TestInfra) -> str:
    return infra.kafka_bootstrap


@pytest.fixture(scope="session")
def platform_topics(infra: TestInfra) -> list[str]:
    """Every topic of the registry (and its .dlq) exists on the session's broker, as `trademesh
    infra up` makes them; returns their names. For tests of services that use the real topics."""
    from trademesh_infra.topics import ensure_topics, topic_plan

    plans = topic_plan()
    asyncio.run(ensure_topics(infra.kafka_bootstrap, plans))
    return [plan.name for plan in plans]


@pytest.fixture(scope="session")
def questdb_urls() -> Iterator[tuple[str, str]]:
    """(ILP client conf, PG-wire URL) of a QuestDB server: TRADEMESH_TEST_QUESTDB_ILP/_PG when
    set, a container when TRADEMESH_TEST_INFRA=containers; otherwise the test is skipped."""
    ilp = os.environ.get("TRADEMESH_TEST_QUESTDB_ILP")
    pg = os.environ.get("TRADEMESH_TEST_QUESTDB_PG")
    if ilp and pg:
        yield ilp, pg
        return
    if os.environ.get("TRADEMESH_TEST_INFRA") == "containers":
        ilp, pg, stop = start_questdb_container()
        try:
            yield ilp, pg
        finally:
            stop()
        return
    # A legitimate skip: QuestDB is not installable from PyPI, Debian or npm, so embedded mode
    # has none; the store's ILP bytes are checked without a server in unit tests.
    pytest.skip(
        "no QuestDB server here: set TRADEMESH_TEST_QUESTDB_ILP/PG or TRADEMESH_TEST_INFRA=containers"
    )


@pytest.fixture(scope="session")
def dev_vault() -> Iterator[DevVault]:
    """A Vault-compatible server (OpenBao dev mode, in memory) with a root token, for this session."""
    vault, close = start_dev_vault()
    try:
        yield vault
    finally:
        close()


@pytest.fixture
def private_infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestInfra]:
    """Engines of this test alone, for tests that stop and restart them (embedded mode only)."""
    started = start_embedded(tmp_path_factory.mktemp("private-infra"))
    try:
        yield started
    finally:
        started.close()


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def schema(database_url: str) -> AsyncIterator[str]:
    """A fresh Postgres schema for this test, dropped afterwards."""
    name = unique_name("t")
    yield name
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def topic_factory(kafka_bootstrap: str) -> AsyncIterator[TopicFactory]:
    """Creates uniquely named topics (and their .dlq) for this test: `await topic_factory("orders", 3)`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()

    async def create(prefix: str = "test", partitions: int = 1, *, name: str | None = None) -> str:
        topic = name or f"{prefix}.{uuid.uuid4().hex[:10]}.v1"
        await admin.create_topics([NewTopic(topic, partitions, 1), NewTopic(f"{topic}.dlq", 1, 1)])
        await _wait_for_topic(admin, topic)
        return topic

    try:
        yield create
    finally:
        await admin.close()


async def _wait_for_topic(admin: AIOKafkaAdminClient, topic: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if topic in await admin.list_topics():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"topic {topic} did not appear")


@pytest.fixture(scope="session")
def token_signer() -> TokenSigner:
    """The session's access-token signer (trademesh_testing.tokens): its JWKS is the one the
    settings of `service_settings` trust; `token_signer.bearer(user_id, role="viewer")`."""
    return signer()


@pytest.fixture(scope="session")
def account_book() -> AccountBook:
    """Who holds which account, answered as execution's `GET /api/v1/accounts/{id}` answers it
    (trademesh_testing.accounts): `create_app(..., execution_transport=account_book.transport)`
    and `account_book.open(user_id)` for risk's and strategy's tests."""
    return book()


@pytest.fixture
def service_settings(infra: TestInfra) -> Callable[..., Any]:
    """Factory of settings pointing at the test engines: `service_settings(MySettings, http_port=0)`.

    `auth_jwks` is the test signer's JWKS: tokens of `trademesh_testing.tokens.bearer(...)` are
    verified for real by the service under test."""
    return infra.settings


SettingsT = TypeVar("SettingsT")


class SettingsMaker(Protocol):
    def __call__(self, cls: type[SettingsT], /, **changes: Any) -> SettingsT: ...


@pytest.fixture
def make_settings(
    service_settings: Callable[..., Any], platform_topics: list[str]
) -> SettingsMaker:
    """Factory of a service's settings for one test: `make_settings(Settings, database_schema=schema)`
    is a `Settings` on the session's engines (the platform's topics created), on any free port,
    with a consumer group of this test's own; `changes` win. A service's conftest makes its
    `settings` fixture with it."""

    def make(cls: type[SettingsT], /, **changes: Any) -> SettingsT:
        made = service_settings(
            cls, http_port=0, consumer_group=f"test-{uuid.uuid4().hex[:10]}", **changes
        )
        assert isinstance(made, cls)
        return made

    return make


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the running service (its conftest's `app` fixture): migrations applied,
    consumers subscribed."""
    from trademesh_testing.http import app_client  # imported when asked for, as the producer's

    async with app_client(app) as http:
        yield http


@pytest.fixture
async def producer(settings: Any) -> AsyncIterator[Any]:
    """Another service's publisher (a trademesh_bus.Bus) on the broker of the conftest's
    `settings` fixture."""
    from trademesh_bus import Bus  # imported when asked for: a unit run loads no broker client

    bus = Bus(settings, "test-publisher", telemetry=False)
    await bus.start()
    yield bus
    await bus.stop()
