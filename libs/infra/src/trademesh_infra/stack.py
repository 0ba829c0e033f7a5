"""The embedded stack under one home folder (`.trademesh/`): start, stop, status and the settings it hands to services."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from trademesh_infra.kafka import EmbeddedKafka
from trademesh_infra.postgres import EmbeddedPostgres

KAFKA_ENV = "TRADEMESH_KAFKA_BOOTSTRAP"
DATABASE_ENV = "TRADEMESH_DATABASE_URL"
APPROVAL_LINK_KEY_ENV = "TRADEMESH_APPROVAL_LINK_KEY"

# Consumer timings for the embedded broker: Tansu completes a group join only after the session
# timeout of a departed member, so short timeouts make restarts and tests fast on loopback.
EMBEDDED_CONSUMER_SETTINGS = {
    "TRADEMESH_KAFKA_SESSION_TIMEOUT_MS": "3000",
    "TRADEMESH_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "TRADEMESH_KAFKA_REBALANCE_TIMEOUT_MS": "3000",
    # Tansu holds an empty fetch and looks for new records again only at half the remaining
    # wait, so a record waits up to half of it at every consumer hop: keep it short.
    "TRADEMESH_KAFKA_FETCH_MAX_WAIT_MS": "10",
}


def default_home() -> Path:
    """`TRADEMESH_HOME`, else `.trademesh/` in the current directory."""
    return Path(os.environ.get("TRADEMESH_HOME") or Path.cwd() / ".trademesh").resolve()


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    mode: str  # "embedded" or "external"
    running: bool
    address: str


@dataclass
class Stack:
    """Embedded Postgres + Tansu, unless TRADEMESH_DATABASE_URL / TRADEMESH_KAFKA_BOOTSTRAP point elsewhere."""

    home: Path = field(default_factory=default_home)
    retention_ms: int = 7 * 24 * 3600 * 1000
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def __post_init__(self) -> None:
        self.postgres = EmbeddedPostgres(self.home / "postgres" / "data")
        self.kafka = EmbeddedKafka(self.home / "kafka")
        saved = self.home / "kafka" / "port"
        if saved.exists() and saved.read_text().strip().isdigit():
            self.kafka.port = int(saved.read_text().strip())

    @property
    def external_kafka(self) -> str | None:
        return self.environ.get(KAFKA_ENV) or None

    @property
    def external_database(self) -> str | None:
        return self.environ.get(DATABASE_ENV) or None

    @property
    def env_file(self) -> Path:
        return self.home / "infra.env"

    def up(self) -> dict[str, str]:
        """Start what is embedded, create every topic, write and return the services' settings."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.external_database is None:
            self.postgres.start()
        if self.external_kafka is None:
            if self.kafka.port and not self.kafka.is_running():
                from trademesh_infra.ports import port_open

                if port_open(self.kafka.host, self.kafka.port):
                    self.kafka.port = 0  # taken by something else: pick a new one
            self.kafka.start()
            (self.home / "kafka" / "port").write_text(str(self.kafka.port))
        from trademesh_infra.topics import ensure_topics, topic_plan

        settings = self.service_env()
        settings.update(self.master_key_env())
        settings.update(self.approval_link_key_env())
        asyncio.run(ensure_topics(settings[KAFKA_ENV], topic_plan(self.retention_ms)))
        # The file holds the local master key: readable by its owner only.
        self.env_file.touch(mode=0o600, exist_ok=True)
        self.env_file.chmod(0o600)
        # Shell-quoted: `set -a; . infra.env` reads the JSON keyring as one value.
        self.env_file.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in settings.items()))
        return settings

    def master_key_env(self) -> dict[str, str]:
        """The keystore master key the services seal secrets with (auth's signing keys,
        execution's exchange credentials, audit's chain keys): none when the environment names
        one already (a local keyring or Vault transit); else a local keyring made once, kept in
        <home>/keystore.json (mode 0600) so that what was sealed opens again after a restart."""
        if os.environ.get("TRADEMESH_KEYSTORE_KEYS") or os.environ.get(
            "TRADEMESH_KEYSTORE_VAULT_URL"
        ):
            return {}
        path = self.home / "keystore.json"
        if not path.exists():
            path.touch(mode=0o600)
            key = base64.b64encode(secrets.token_bytes(32)).decode()
            path.write_text(json.dumps({"current": "local-1", "keys": {"local-1": key}}))
        keyring = json.loads(path.read_text())
        return {
            "TRADEMESH_KEYSTORE_KEYS": json.dumps(keyring["keys"], separators=(",", ":")),
            "TRADEMESH_KEYSTORE_CURRENT_KEY": keyring["current"],
        }

    def approval_link_key_env(self) -> dict[str, str]:
        """The HMAC key of the signed approval links (strategy checks them, notify makes them):
        none when the environment names one already; else made once and kept in
        <home>/approval-link.key (mode 0600), so links sent before a restart still work."""
        if os.environ.get(APPROVAL_LINK_KEY_ENV):
            return {}
        path = self.home / "approval-link.key"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(32))
        return {APPROVAL_LINK_KEY_ENV: path.read_text().strip()}

    def service_env(self) -> dict[str, str]:
        """The settings a service needs to use this stack."""
        env: dict[str, str] = {}
        env[DATABASE_ENV] = self.external_database or self.postgres.url()
        if self.external_kafka is None:
            env[KAFKA_ENV] = self.kafka.bootstrap
            env["TRADEMESH_KAFKA_IDEMPOTENCE"] = "false"
            # Defaults for the embedded broker: a value the environment sets wins (to trade a
            # hop's latency for idle CPU, say: TRADEMESH_KAFKA_FETCH_MAX_WAIT_MS).
            env.update({k: os.environ.get(k, v) for k, v in EMBEDDED_CONSUMER_SETTINGS.items()})
        else:
            env[KAFKA_ENV] = self.external_kafka
        return env

    def down(self) -> None:
        if self.external_kafka is None:
            self.kafka.stop()
        if self.external_database is None:
            self.postgres.stop()
        self.env_file.unlink(missing_ok=True)

    def status(self) -> list[ComponentStatus]:
        from trademesh_infra.ports import port_open

        rows = []
        if self.external_database is None:
            running = self.postgres.is_running()
            if running and self.postgres.port == 0 and self.postgres.port_file.exists():
                self.postgres.port = int(self.postgres.port_file.read_text())
            rows.append(
                ComponentStatus(
                    "postgres", "embedded", running, self.postgres.url() if running else "-"
                )
            )
        else:
            rows.append(
                ComponentStatus("postgres", "external", True, _redact(self.external_database))
            )
        if self.external_kafka is None:
            running = self.kafka.is_running()
            rows.append(
                ComponentStatus(
                    "kafka (tansu)", "embedded", running, self.kafka.bootstrap if running else "-"
                )
            )
        else:
            host, _, port = self.external_kafka.split(",")[0].rpartition(":")
            rows.append(
                ComponentStatus(
                    "kafka", "external", port_open(host, int(port)), self.external_kafka
                )
            )
        return rows


def _redact(url: str) -> str:
    """Drop the password from a URL before showing it."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in creds else url
