"""docker-compose.yml: the Compose Specification, every service and topic in it, and its configs."""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import os
import re
import subprocess
import uuid
from collections.abc import Callable
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hvac
import jsonschema
import pytest
import yaml
from pydantic import SecretStr
from trademesh_cli.project import ServiceEntry, discover_services
from trademesh_infra.topics import topic_plan
from trademesh_infra.vault import DevVault, bao_binary
from trademesh_keystore import Keystore, KeystoreError, KeystoreSettings, keystore_from
from trademesh_keystore.vault import VaultTransitMasterKey

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_DIR = ROOT / "deploy" / "compose"
TOPICS_SCRIPT = COMPOSE_DIR / "redpanda" / "topics.sh"
RULES = ROOT / "charts" / "trademesh" / "files" / "rules" / "trademesh.rules.yaml"
DASHBOARDS = ROOT / "charts" / "trademesh" / "files" / "dashboards"
PROFILES = ("infra", "observability", "services")
# Compose's ${NAME}, ${NAME:-default}, ${NAME-default} and its escaped dollar, $$.
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")
_TOPICS_REGION = re.compile(r"^# >>> generated[^\n]*\n(?P<body>.*?)^# <<< generated", re.M | re.S)


@functools.cache
def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _service(name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def _interpolate(value: object) -> str:
    """A value as compose reads it with no variable set: every variable needs a default."""

    def default(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("default") is None:
            raise AssertionError(f"{match.group(0)} has no default in docker-compose.yml")
        return match.group("default")

    return _VARIABLE.sub(default, str(value))


def _environment(name: str) -> dict[str, str]:
    env = _service(name).get("environment") or {}
    assert isinstance(env, dict), f"{name}: environment is written as a map"
    return {key: _interpolate(value) for key, value in env.items()}


def _mounts(name: str) -> dict[str, Path]:
    """The service's bind mounts of repository files: container path -> repository path."""
    mounts = {}
    for volume in _service(name).get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def _host_port(url_or_address: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url_or_address if "://" in url_or_address else f"//{url_or_address}")
    return parts.hostname, parts.port


def _redpanda_internal() -> str:
    """The Kafka address Redpanda advertises to the containers: its `internal` listener."""
    for arg in _service("redpanda")["command"]:
        if arg.startswith("--advertise-kafka-addr="):
            listeners = dict(item.split("://") for item in arg.split("=", 1)[1].split(","))
            return listeners["internal"]
    raise AssertionError("redpanda advertises no Kafka listener")


def _entries() -> list[ServiceEntry]:
    entries = discover_services(ROOT)
    assert entries, "no service found under services/"
    return entries


def _values(entry: ServiceEntry) -> dict[str, Any]:
    assert entry.path is not None
    document = yaml.safe_load((entry.path / "deploy" / "values.yaml").read_text())
    entry_values: dict[str, Any] = document[entry.name]
    return entry_values


def _compose_spec_schema(require_tool: Callable[[str, str], str]) -> dict[str, Any]:
    """The Compose Specification's JSON schema, as check-jsonschema (PyPI) vendors it."""
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or not spec.submodule_search_locations:
        require_tool("check-jsonschema", "it ships the Compose Specification's JSON schema")
        pytest.fail("check-jsonschema is on PATH but not importable by the tests' interpreter")
    package = Path(next(iter(spec.submodule_search_locations)))
    schema: dict[str, Any] = json.loads(
        (package / "builtin_schemas" / "vendor" / "compose-spec.json").read_text()
    )
    return schema


@pytest.mark.unit
def test_compose_file_follows_the_compose_specification(
    require_tool: Callable[[str, str], str],
) -> None:
    schema = _compose_spec_schema(require_tool)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(_compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors
    )


@pytest.mark.unit
def test_every_service_is_in_the_services_profile_with_its_port() -> None:
    in_compose = {
        name
        for name, service in _compose()["services"].items()
        if (service.get("labels") or {}).get("org.trademesh.role") == "service"
    }
    assert in_compose == {e.name for e in _entries()}, "compose's services and services/ differ"
    for entry in _entries():
        service, env = _service(entry.name), _environment(entry.name)
        assert "services" in service["profiles"], entry.name
        assert service["build"] == {
            "context": ".",
            "dockerfile": "services/Dockerfile",
            "args": {"SERVICE": entry.name, "PORT": str(entry.port)},
        }
        image = _values(entry)["image"]["repository"]
        assert _interpolate(service["image"]).startswith(f"{image}:"), entry.name
        assert env["TRADEMESH_HTTP_PORT"] == str(entry.port), entry.name
        assert env["TRADEMESH_SERVICE_NAME"] == env["OTEL_SERVICE_NAME"] == entry.name
        # A metrics port of its own (the gateway's) is exposed to Prometheus, never published.
        own = [str(entry.metrics_port)] if entry.metrics_port else []
        assert service["expose"] == [str(entry.port), *own], entry.name
        if entry.metrics_port:
            assert env["TRADEMESH_METRICS_PORT"] == str(entry.metrics_port), entry.name
        assert service["ports"] == [f"127.0.0.1:{entry.port}:{entry.port}"], entry.name
        assert service["read_only"] is True and "/tmp" in service["tmpfs"], entry.name
        assert service["cap_drop"] == ["ALL"], entry.name
        # Healthy means ready: the check asks /ready on the service's own port.
        check = service["healthcheck"]["test"]
        assert check[:2] == ["CMD", "python"] and "/ready" in check[-1], entry.name
        assert "TRADEMESH_HTTP_PORT" in check[-1], entry.name


@pytest.mark.unit
def test_each_profile_starts_what_it_needs() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        profiles = service.get("profiles", [])
        assert profiles and set(profiles) <= set(PROFILES), f"{name}: profiles {profiles}"
        for needed in service.get("depends_on", {}):
            missing = set(profiles) - set(services[needed].get("profiles", []))
            assert not missing, f"{name} needs {needed}, which is not in profile(s) {missing}"


@pytest.mark.unit
def test_every_mounted_file_is_in_the_repository() -> None:
    for name in _compose()["services"]:
        for target, source in _mounts(name).items():
            assert source.exists(), f"{name} mounts {source.relative_to(ROOT)} at {target}"


@pytest.mark.unit
@pytest.mark.parametrize("name", [e.name for e in discover_services(ROOT)])
def test_service_settings_load_from_the_compose_environment(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's own Settings class accepts its compose environment, and every address in
    it names a container of this file on the port that container listens on."""
    entry = next(e for e in _entries() if e.name == name)
    for key in list(os.environ):
        if key.startswith(("TRADEMESH_", "OTEL_")):
            monkeypatch.delenv(key)
    env = _environment(name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = importlib.import_module(f"{entry.module}.config").Settings()

    ports = {e.name: e.port for e in _entries()}
    assert settings.service_name == name and settings.http_port == entry.port
    assert settings.http_host == "0.0.0.0"
    assert settings.log_format == "json"
    assert settings.kafka_idempotence is True
    assert settings.kafka_bootstrap == _redpanda_internal()
    database = urlsplit(settings.database_url.get_secret_value())
    postgres = _environment("postgres")
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert (database.username, database.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    assert database.path == f"/{postgres['POSTGRES_DB']}"
    assert "sslmode=disable" in database.query, "dbmate asks for TLS unless told otherwise"
    assert settings.auth_jwks_url == f"http://auth:{ports['auth']}/.well-known/jwks.json"
    for field, value in settings.model_dump().items():
        if field.endswith("_url") and isinstance(value, str) and value.startswith("http"):
            host, port = _host_port(value)
            if field == "public_url":  # the gateway as a browser on the host reaches it
                gateway = _compose()["services"]["gateway"]
                assert (
                    f"127.0.0.1:{port}:{ports['gateway']}" in gateway["ports"]
                    and host == "localhost"
                )
            elif host in ports:
                assert port == ports[host], f"{field}={value}: {host} listens on {ports[host]}"
            else:
                assert host in _compose()["services"], f"{field}={value}: no such container"
    host, port = _host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (host, port) == ("jaeger", 4318)
    assert _environment("jaeger")["COLLECTOR_OTLP_ENABLED"] == "true"
    if isinstance(settings, KeystoreSettings):
        assert keystore_from(settings) is not None, f"{name} seals secrets: it needs a master key"
        init = _environment("openbao-init")
        assert settings.keystore_transit_key in init["TRADEMESH_TRANSIT_KEYS"].split()
        assert settings.keystore_vault_token is not None
        assert settings.keystore_vault_token.get_secret_value() == init["TRADEMESH_TRANSIT_TOKEN"]
        assert _host_port(settings.keystore_vault_url or "") == ("openbao", 8200)
    if getattr(settings, "tick_store", None) == "questdb":
        ilp = settings.questdb_ilp_conf.get_secret_value()
        address = re.search(r"addr=([^;]+);", ilp)
        assert address is not None and _host_port(address.group(1)) == ("questdb", 9000)
        pg = urlsplit(settings.questdb_pg_dsn.get_secret_value())
        questdb = _environment("questdb")
        assert (pg.hostname, pg.port) == ("questdb", 8812)
        assert (pg.username, pg.password) == (questdb["QDB_PG_USER"], questdb["QDB_PG_PASSWORD"])


@pytest.mark.unit
def test_every_registered_topic_and_its_dlq_is_created() -> None:
    region = _TOPICS_REGION.search(TOPICS_SCRIPT.read_text())
    assert region is not None, f"{TOPICS_SCRIPT.relative_to(ROOT)} has no topics region"
    # The registry sets no cleanup policy: delete, Kafka's default, set explicitly.
    expected = "".join(
        f"topic {p.name} {p.partitions} {p.retention_ms} delete\n" for p in topic_plan()
    )
    assert region.group("body") == expected, (
        f"the topics in {TOPICS_SCRIPT.relative_to(ROOT)} differ from the registry; "
        f"the region should read:\n{expected}"
    )
    topics = _service("topics")
    assert topics["image"] == _service("redpanda")["image"]
    assert topics["entrypoint"][-1] in _mounts("topics")
    assert _mounts("topics")[topics["entrypoint"][-1]] == TOPICS_SCRIPT
    assert _environment("topics")["TRADEMESH_KAFKA_BROKERS"] == _redpanda_internal()


def _prometheus() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(
        (COMPOSE_DIR / "prometheus" / "prometheus.yml").read_text()
    )
    return config


@pytest.mark.unit
def test_prometheus_scrapes_every_service() -> None:
    (job,) = [j for j in _prometheus()["scrape_configs"] if j["job_name"] == "trademesh"]
    # The rules and dashboards read `service` from the metrics, and `up` from the target label.
    assert job["honor_labels"] is True
    targets = {
        target: group.get("labels", {})
        for group in job["static_configs"]
        for target in group["targets"]
    }
    for entry in _entries():
        assert job["metrics_path"] == _values(entry)["metrics"]["path"]
        # Where it serves /metrics: the gateway on its metrics port, not its public one.
        address = f"{entry.name}:{entry.metrics_port or entry.port}"
        assert address in targets, f"Prometheus does not scrape {address}"
        assert targets[address] == {"service": entry.name}
    assert len(targets) == len(_entries()), f"targets of no service: {sorted(targets)}"
    mounts = _mounts("prometheus")
    assert mounts["/etc/prometheus/prometheus.yml"] == COMPOSE_DIR / "prometheus" / "prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in _service("prometheus")["command"]


@pytest.mark.unit
def test_the_services_trust_the_containers_but_not_the_hosts_connections() -> None:
    """auth counts failed logins by the client the gateway names: it believes the containers'
    address range. The host's connections to a published port come from the bridge's own
    address, which no service believes, so a client on the host names nobody but itself."""
    (pool,) = _compose()["networks"]["default"]["ipam"]["config"]
    subnet, containers = ip_network(pool["subnet"]), ip_network(pool["ip_range"])
    bridge = ip_address(pool["gateway"])
    assert containers.subnet_of(subnet) and bridge in subnet and bridge not in containers
    for entry in _entries():
        assert "networks" not in _service(entry.name), "every container on the default network"
        trusted = [
            ip_network(n.strip())
            for n in _environment(entry.name)["TRADEMESH_TRUSTED_PROXIES"].split(",")
        ]
        assert trusted == [containers], entry.name


@pytest.mark.integration
def test_prometheus_config_passes_promtool(
    require_tool: Callable[[str, str], str], tmp_path: Path
) -> None:
    promtool = require_tool("promtool", "Debian's prometheus package")
    if not RULES.is_file():
        pytest.fail(
            f"{RULES.relative_to(ROOT)} is missing: compose mounts it as Prometheus's alert rules"
        )
    config = _prometheus()
    mounts = _mounts("prometheus")
    # The rule files as the container sees them, read here from the repository files mounted there.
    local = []
    for path in config.get("rule_files", []):
        assert path in mounts, f"rule file {path} is not mounted into the prometheus container"
        local.append(str(mounts[path]))
    assert RULES in [Path(path) for path in local], "the alert rules are not among rule_files"
    config["rule_files"] = local
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.unit
def test_grafana_and_the_log_pipeline_point_at_the_stack() -> None:
    provisioning = COMPOSE_DIR / "grafana" / "provisioning"
    assert _mounts("grafana")["/etc/grafana/provisioning"] == provisioning
    datasources = yaml.safe_load((provisioning / "datasources" / "datasources.yaml").read_text())
    by_uid = {d["uid"]: d for d in datasources["datasources"]}
    assert set(by_uid) == {"prometheus", "loki", "jaeger"}
    listening = {"prometheus": 9090, "loki": 3100, "jaeger": 16686}
    for uid, source in by_uid.items():
        assert source["type"] == uid
        assert _host_port(source["url"]) == (uid, listening[uid])
    assert [d["uid"] for d in datasources["datasources"] if d.get("isDefault")] == ["prometheus"]
    for field in by_uid["loki"]["jsonData"]["derivedFields"]:
        assert field["datasourceUid"] in by_uid
    assert by_uid["jaeger"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] in by_uid

    providers = yaml.safe_load((provisioning / "dashboards" / "trademesh.yaml").read_text())
    (provider,) = providers["providers"]
    assert _mounts("grafana")[provider["options"]["path"]] == DASHBOARDS
    assert list(DASHBOARDS.glob("*.json")), f"no dashboard in {DASHBOARDS.relative_to(ROOT)}"

    loki = yaml.safe_load((COMPOSE_DIR / "loki" / "loki.yaml").read_text())
    promtail = yaml.safe_load((COMPOSE_DIR / "promtail" / "promtail.yaml").read_text())
    (client,) = promtail["clients"]
    assert _host_port(client["url"]) == ("loki", loki["server"]["http_listen_port"])
    (scrape,) = promtail["scrape_configs"]
    project = f"com.docker.compose.project={_compose()['name']}"
    assert scrape["docker_sd_configs"][0]["filters"][0]["values"] == [project]


def _run_init(env: dict[str, str]) -> str:
    bao = Path(bao_binary())
    done = subprocess.run(
        ["sh", str(COMPOSE_DIR / "openbao" / "init.sh")],
        env={"PATH": f"{bao.parent}:{os.environ['PATH']}", "HOME": env["HOME"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.integration
def test_openbao_init_keeps_the_keystore_keys_across_a_restart(
    dev_vault: DevVault, tmp_path: Path
) -> None:
    """init.sh against a real OpenBao dev server: the keys it makes seal with the services'
    token (and no other key does); after the server forgot them (a restart), the backups bring
    them back and what was sealed opens again. The mount is this test's own: the server is the
    session's."""
    init = _environment("openbao-init")
    mount = f"transit-{uuid.uuid4().hex[:8]}"
    token = f"{init['TRADEMESH_TRANSIT_TOKEN']}-{mount}"
    env = {
        **{k: v for k, v in init.items() if k.startswith("TRADEMESH_")},
        "BAO_ADDR": dev_vault.url,
        "BAO_TOKEN": dev_vault.root_token,
        "TRADEMESH_TRANSIT_MOUNT": mount,
        "TRADEMESH_TRANSIT_TOKEN": token,
        "TRADEMESH_TRANSIT_BACKUPS": str(tmp_path),
        "HOME": str(tmp_path),
    }
    keys = init["TRADEMESH_TRANSIT_KEYS"].split()
    root = hvac.Client(url=dev_vault.url, token=dev_vault.root_token)

    def keystore(key: str) -> Keystore:
        client = hvac.Client(url=dev_vault.url, token=token)
        return Keystore(VaultTransitMasterKey(client, key, mount=mount))

    try:
        assert "created" in _run_init(env)
        sealed = {key: keystore(key).seal(SecretStr(key), aad={"key": key}) for key in keys}
        root.secrets.transit.create_key("not-the-services", derived=True, mount_point=mount)
        with pytest.raises(KeystoreError, match="denied"):
            keystore("not-the-services").seal(SecretStr("x"), aad={})

        root.sys.disable_secrets_engine(path=mount)
        root.auth.token.revoke(token)
        assert "restored" in _run_init(env)
        for key, secret in sealed.items():
            assert keystore(key).open(secret, aad={"key": key}).get_secret_value() == key
    finally:
        root.sys.disable_secrets_engine(path=mount)
        root.sys.delete_policy(f"trademesh-keystore-{mount}")
        with contextlib.suppress(hvac.exceptions.VaultError):
            root.auth.token.revoke(token)
