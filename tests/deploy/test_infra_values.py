"""Our values for the upstream infrastructure charts (charts/infra): they parse, every component is
pinned to an exact version, production Redpanda is replicated, and the addresses agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from trademesh_cli.deploy import merge  # Helm's values layering

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "charts" / "infra"
UMBRELLA = ROOT / "charts" / "trademesh"
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
# Each component the platform needs, as the charts that may provide it.
REQUIRED = {
    "kafka": {"redpanda"},
    "ticks": {"questdb"},
    "postgres operator": {"cloudnative-pg"},
    "postgres cluster": {"cluster"},
    "metrics and dashboards": {"kube-prometheus-stack"},
    "logs": {"loki"},
    "log shipping": {"alloy", "promtail"},
    "traces": {"tempo", "jaeger"},
}
NAMESPACES = {"infra": "trademesh-infra", "observability": "monitoring"}


class _StrictLoader(yaml.SafeLoader):
    """A loader that refuses a key given twice (PyYAML keeps the last one silently)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
    duplicated = {key for key in keys if keys.count(key) > 1}
    if duplicated:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {duplicated}", node.start_mark
        )
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _load(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_StrictLoader)


def _versions() -> dict[str, Any]:
    versions: dict[str, Any] = _load(INFRA / "versions.yaml")
    return versions


def _release(name: str) -> dict[str, Any]:
    (release,) = [r for r in _versions()["releases"] if r["name"] == name]
    found: dict[str, Any] = release
    return found


def _values(name: str, *, prod: bool = False) -> dict[str, Any]:
    """A release's values as Helm layers them: maps merge key by key, the rest is replaced."""
    release = _release(name)
    merged: dict[str, Any] = {}
    for file in release["values"] + (release.get("prodValues", []) if prod else []):
        merged = merge(merged, _load(INFRA / file) or {})
    return merged


def _service_host(release: dict[str, Any], service: str | None = None) -> str:
    return f"{service or release['name']}.{release['namespace']}.svc.cluster.local"


def test_every_values_file_parses_without_duplicate_keys() -> None:
    files = sorted(INFRA.glob("*.yaml"))
    assert len(files) > 1
    for path in files:
        assert isinstance(_load(path), dict), path.name


def test_every_component_is_pinned_to_an_exact_version_with_existing_values() -> None:
    versions = _versions()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", versions["checked"])
    repos = {repo["name"]: repo["url"] for repo in versions["repositories"]}
    assert all(url.startswith("https://") for url in repos.values())
    charts = {release["chart"] for release in versions["releases"]}
    for component, candidates in REQUIRED.items():
        assert charts & candidates, f"no chart provides {component}"
    referenced = set()
    installed: list[str] = []
    for release in versions["releases"]:
        name = release["name"]
        assert EXACT_VERSION.match(str(release["version"])), f"{name}: pin an exact version"
        assert release["repo"] in repos, name
        assert release["namespace"] == NAMESPACES[release["group"]], name
        for file in release["values"] + release.get("prodValues", []):
            assert (INFRA / file).is_file(), f"{name}: {file}"
            referenced.add(file)
        # Installed in list order: a release depends only on releases above it.
        assert set(release["dependsOn"]) <= set(installed), name
        installed.append(name)
    assert len(installed) == len(set(installed))
    unused = {p.name for p in INFRA.glob("*-values*.yaml")} - referenced
    assert not unused, f"values files no release uses: {unused}"


def test_prod_redpanda_has_three_brokers_replication_three_and_a_write_majority_of_two() -> None:
    prod = _values("redpanda", prod=True)
    cluster = prod["config"]["cluster"]
    brokers = prod["statefulset"]["replicas"]
    replication = cluster["default_topic_replications"]
    assert brokers == 3
    assert replication == 3
    # Redpanda has no min.insync.replicas: Raft acknowledges an acks=all write once a majority
    # of the replicas has it, and minimum_topic_replications keeps every topic at 3 replicas.
    assert cluster["minimum_topic_replications"] == replication
    assert replication // 2 + 1 == 2, "min ISR"
    assert prod["tls"]["enabled"] is True
    assert prod["auth"]["sasl"]["enabled"] is True
    assert prod["auth"]["sasl"]["secretRef"], "SASL users come from a Secret"
    assert prod["statefulset"]["podAntiAffinity"]["type"] == "hard"
    dev = _values("redpanda")
    assert dev["statefulset"]["replicas"] == 1
    assert dev["config"]["cluster"]["auto_create_topics_enabled"] is False


def test_the_producers_are_idempotent_with_acks_all_on_redpanda() -> None:
    broker = (ROOT / "libs" / "bus" / "src" / "trademesh_bus" / "broker.py").read_text()
    assert '"acks": "all"' in broker
    umbrella = _load(UMBRELLA / "values.yaml")
    assert umbrella["global"]["env"]["TRADEMESH_KAFKA_IDEMPOTENCE"] == "true"


def test_the_platform_addresses_match_the_releases() -> None:
    umbrella = _load(UMBRELLA / "values.yaml")
    env = umbrella["global"]["env"]
    redpanda = _release("redpanda")
    assert env["TRADEMESH_KAFKA_BOOTSTRAP"] == f"{_service_host(redpanda)}:9093"
    dev_url = urlsplit(_load(UMBRELLA / "values-dev.yaml")["devSecrets"]["databaseUrl"])
    postgres = _release("postgres-cluster")
    cluster_name = _values("postgres-cluster")["fullnameOverride"]
    assert cluster_name == "trademesh-postgres"
    assert dev_url.hostname == _service_host(postgres, f"{cluster_name}-rw")
    assert dev_url.port == 5432
    assert dev_url.path == "/" + _values("postgres-cluster")["cluster"]["initdb"]["database"]


def test_traces_go_to_the_otlp_http_receiver() -> None:
    tracing = ROOT / "libs" / "observability" / "src" / "trademesh_observability" / "tracing.py"
    assert "otlp.proto.http" in tracing.read_text(), "the services export OTLP over HTTP"
    tempo = _release("tempo")
    http = _values("tempo")["tempo"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    endpoint = urlsplit(
        _load(UMBRELLA / "values.yaml")["global"]["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    )
    assert endpoint.hostname == _service_host(tempo)
    assert endpoint.port == int(http.rsplit(":", 1)[1]) == 4318


def test_grafana_loads_the_umbrella_dashboards_and_queries_loki_and_tempo() -> None:
    values = _values("kube-prometheus-stack")
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    umbrella = _load(UMBRELLA / "values.yaml")
    assert umbrella["dashboards"]["labels"] == {sidecar["label"]: sidecar["labelValue"]}
    assert {sidecar["label"]: sidecar["labelValue"]} == {"grafana_dashboard": "1"}
    assert sidecar["searchNamespace"] == "ALL"
    sources = {s["uid"]: s for s in values["grafana"]["additionalDataSources"]}
    assert urlsplit(sources["loki"]["url"]).hostname == _service_host(_release("loki"))
    assert urlsplit(sources["tempo"]["url"]).hostname == _service_host(_release("tempo"))
    # Logs link to traces through the trace id the services log.
    (derived,) = sources["loki"]["jsonData"]["derivedFields"]
    assert derived["datasourceUid"] == "tempo"
    assert re.search(derived["matcherRegex"], '{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}')
    alloy = _values("alloy")["alloy"]["configMap"]["content"]
    assert f"http://{_service_host(_release('loki'))}:3100/loki/api/v1/push" in alloy


def test_prometheus_selects_the_monitors_and_rules_of_the_platform_namespaces() -> None:
    spec = _values("kube-prometheus-stack")["prometheus"]["prometheusSpec"]
    for kind in ("serviceMonitor", "podMonitor", "rule"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False
        assert spec[f"{kind}Selector"] == {}
        (expression,) = spec[f"{kind}NamespaceSelector"]["matchExpressions"]
        assert expression["key"] == "kubernetes.io/metadata.name"
        assert {"trademesh", "trademesh-infra", "monitoring"} <= set(expression["values"])


# Keys whose value would be the credential itself (not the name of a Secret or of its key).
_CREDENTIAL_KEYS = {
    "password",
    "adminpassword",
    "secretaccesskey",
    "connectionstring",
    "storagekey",
}


def _credentials(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [k for k, v in node.items() if k.lower() in _CREDENTIAL_KEYS and v]
        return found + [c for v in node.values() for c in _credentials(v)]
    if isinstance(node, list):
        return [c for v in node for c in _credentials(v)]
    return []


def test_no_credential_is_written_in_the_production_values() -> None:
    for release in _versions()["releases"]:
        for file in release.get("prodValues", []):
            assert not _credentials(_load(INFRA / file)), file
    grafana = _values("kube-prometheus-stack", prod=True)["grafana"]
    assert grafana["admin"]["existingSecret"]
    assert "adminPassword" not in grafana
