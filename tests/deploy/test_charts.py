"""The Helm charts and the kustomize tree: they render offline with dev and prod values, every
object passes the Kubernetes schema, every service is in them, and the generated files are fresh."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

helm_python = pytest.importorskip("helm_python", reason="the deploy dependency group")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="the deploy group")

from trademesh_cli.deploy import (  # noqa: E402
    built_umbrella,
    generate,
    is_hook,
    render_chart,
    stale,
)
from trademesh_cli.project import discover_services  # noqa: E402

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
UMBRELLA = ROOT / "charts" / "trademesh"
KUBERNETES = "1.30"
VALUES = {
    "default": [],
    "dev": [UMBRELLA / "values-dev.yaml"],
    "prod": [UMBRELLA / "values-prod.yaml"],
}
# Custom resources of the Prometheus operator: no schema for them ships with kubernetes-validate.
CUSTOM = {"ServiceMonitor", "PrometheusRule"}


def _services() -> list[str]:
    return [s.name for s in discover_services(ROOT)]


@pytest.fixture(scope="module", params=sorted(VALUES))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render_chart(ROOT, VALUES[request.param])


def _of(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_every_object_passes_the_kubernetes_schema(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    for document in objects:
        if document["kind"] in CUSTOM:
            assert document["apiVersion"] == "monitoring.coreos.com/v1"
            assert document["spec"], document["metadata"]["name"]
            continue
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_every_service_is_deployed_probed_and_tested(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    deployments, services = _of(objects, "Deployment"), _of(objects, "Service")
    tests = {o["metadata"]["name"] for o in objects if o["kind"] == "Pod" and is_hook(o)}
    for entry in discover_services(ROOT):
        deployment = deployments[entry.name]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"].startswith(f"ghcr.io/trademesh/{entry.name}:")
        assert container["ports"][0]["containerPort"] == entry.port
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert services[entry.name]["spec"]["ports"][0]["port"] == entry.port
        assert f"{entry.name}-test-ready" in tests
        env = {e["name"]: e for e in container["env"]}
        assert env["TRADEMESH_HTTP_PORT"]["value"] == str(entry.port)
        assert env["TRADEMESH_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
        assert env["TRADEMESH_AUTH_JWKS_URL"]["value"] == ("http://auth:8500/.well-known/jwks.json")
        assert len(env) == len(container["env"]), "an environment variable is set twice"
    for name, monitor in _of(objects, "ServiceMonitor").items():
        (endpoint,) = monitor["spec"]["endpoints"]
        # The rules query up{job="trademesh"} and group by the metrics' own `service` label.
        assert endpoint["honorLabels"] is True, name
        assert {"targetLabel": "job", "replacement": "trademesh"} in endpoint["relabelings"]
        # Where the service serves /metrics: the gateway on its metrics port, not its public one.
        own_port = next(e.metrics_port for e in discover_services(ROOT) if e.name == name)
        assert endpoint["port"] == ("metrics" if own_port else "http"), name
        assert endpoint["path"] == "/metrics"


def _container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (container,) = _of(objects, "Deployment")[name]["spec"]["template"]["spec"]["containers"]
    return container


def test_the_gateways_metrics_have_a_port_of_their_own_that_only_prometheus_reaches(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    (gateway,) = [e for e in discover_services(ROOT) if e.name == "gateway"]
    assert gateway.metrics_port is not None
    container = _container(objects, "gateway")
    assert {"name": "metrics", "containerPort": gateway.metrics_port, "protocol": "TCP"} in (
        container["ports"]
    )
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TRADEMESH_METRICS_PORT"] == str(gateway.metrics_port)
    ports = {p["name"]: p for p in _of(objects, "Service")["gateway"]["spec"]["ports"]}
    assert ports["metrics"]["port"] == gateway.metrics_port
    assert ports["metrics"]["targetPort"] == "metrics"
    (monitor,) = [m for n, m in _of(objects, "ServiceMonitor").items() if n == "gateway"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    # The metrics port admits the monitoring namespace only, and the API port does not.
    rules = _of(objects, "NetworkPolicy")["gateway"]["spec"]["ingress"]
    by_port = {rule["ports"][0]["port"]: rule["from"] for rule in rules}
    monitoring = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    assert by_port["metrics"] == [monitoring]
    assert monitoring not in by_port["http"]
    # An internal service keeps /metrics on its HTTP port, which Prometheus may reach.
    (risk,) = _of(objects, "NetworkPolicy")["risk"]["spec"]["ingress"]
    assert monitoring in risk["from"] and risk["ports"][0]["port"] == "http"
    assert "TRADEMESH_METRICS_PORT" not in {e["name"] for e in _container(objects, "risk")["env"]}


def test_every_service_trusts_the_pod_network_for_the_client_address(tmp_path: Path) -> None:
    """auth counts failed logins by the client the gateway names, and the gateway by the client
    the ingress controller names: both run as pods, so every service believes the pod network
    (k3s's by default), and an operator sets theirs once."""
    for name, container in ((n, _container(render_chart(ROOT), n)) for n in _services()):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["TRADEMESH_TRUSTED_PROXIES"] == "10.42.0.0/16", name
    path = tmp_path / "network.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "global": {"trustedProxies": ["10.244.0.0/16", "fd00:10::/56"]},
                "gateway": {"trustedProxies": ["10.244.0.0/16", "192.168.10.0/24"]},
                "audit": {"trustedProxies": []},
            }
        )
    )
    objects = render_chart(ROOT, [path])

    def trusted(name: str) -> str | None:
        env = {e["name"]: e.get("value") for e in _container(objects, name)["env"]}
        return env.get("TRADEMESH_TRUSTED_PROXIES")

    assert trusted("auth") == "10.244.0.0/16,fd00:10::/56"
    assert trusted("gateway") == "10.244.0.0/16,192.168.10.0/24"  # its ingress on the nodes
    assert trusted("audit") is None  # [] trusts nobody


def test_pods_run_as_non_root_on_a_read_only_filesystem_with_limits(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    for name, deployment in _of(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"]["cpu"], name
            assert container["resources"]["limits"]["memory"], name


def test_prod_scales_the_consumers_with_budgets_and_dev_makes_its_secrets() -> None:
    prod = render_chart(ROOT, VALUES["prod"])
    deployments = _of(prod, "Deployment")
    for name in ("strategy", "risk", "execution"):
        assert deployments[name]["spec"]["replicas"] == 2
    assert set(_of(prod, "PodDisruptionBudget")) >= {"strategy", "risk", "execution", "gateway"}
    assert "gateway" in _of(prod, "HorizontalPodAutoscaler")
    assert "replicas" not in deployments["gateway"]["spec"]  # the autoscaler owns the count
    assert not _of(prod, "Secret")
    # Prod talks to Redpanda over TLS with SASL, trusting Redpanda's CA from a mounted Secret.
    (container,) = deployments["risk"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["TRADEMESH_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["TRADEMESH_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "password"
    ca_file = env["TRADEMESH_KAFKA_SSL_CAFILE"]["value"]
    (mount,) = [m for m in container["volumeMounts"] if ca_file.startswith(m["mountPath"])]
    volumes = {v["name"]: v for v in deployments["risk"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mount["name"]]["secret"]["secretName"] == "trademesh-kafka-ca"
    dev = render_chart(ROOT, VALUES["dev"])
    secrets = _of(dev, "Secret")
    assert set(secrets) == {"trademesh-database", "trademesh-keystore", "trademesh-approval-links"}
    assert len(secrets["trademesh-approval-links"]["stringData"]["key"]) >= 32
    assert secrets["trademesh-database"]["stringData"]["url"].startswith("postgresql://")
    assert not _of(render_chart(ROOT), "Secret")


def test_dashboards_and_rules_ship_as_configmaps_and_a_prometheus_rule() -> None:
    objects = render_chart(ROOT)
    dashboards = sorted((UMBRELLA / "files" / "dashboards").glob("*.json"))
    assert dashboards, "charts/trademesh/files/dashboards/ holds the Grafana dashboards"
    maps = _of(objects, "ConfigMap")
    for path in dashboards:
        config_map = maps[f"trademesh-dashboard-{path.stem}"]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["data"][path.name] == path.read_text().rstrip("\n")
    (rule,) = _of(objects, "PrometheusRule").values()
    rules_file = yaml.safe_load((UMBRELLA / "files" / "rules" / "trademesh.rules.yaml").read_text())
    assert rule["spec"] == rules_file and rule["spec"]["groups"]


def test_key_vault_secrets_are_synced_and_mounted_by_every_pod(tmp_path: Path) -> None:
    # terraform/ installs the chart with these values (modules/platform).
    secrets = [
        {
            "object": "database-url",
            "secret": "trademesh-database",
            "key": "url",
        },  # pragma: allowlist secret
        {
            "object": "keystore-keys",
            "secret": "trademesh-keystore",
            "key": "keys",
        },  # pragma: allowlist secret
        {"object": "keystore-current", "secret": "trademesh-keystore", "key": "current"},
    ]
    vault = {"enabled": True, "name": "kv-tm", "tenantId": "t", "clientId": "c", "secrets": secrets}
    path = tmp_path / "vault.yaml"
    path.write_text(yaml.safe_dump({"global": {"azureKeyVault": vault}}))
    objects = render_chart(ROOT, [*VALUES["prod"], path])
    (provider,) = _of(objects, "SecretProviderClass").values()
    synced = {
        (s["secretName"], d["key"]): d["objectName"]
        for s in provider["spec"]["secretObjects"]
        for d in s["data"]
    }
    assert synced == {(s["secret"], s["key"]): s["object"] for s in secrets}
    for name, deployment in _of(objects, "Deployment").items():
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        assert any(v.get("csi", {}).get("driver") == "secrets-store.csi.k8s.io" for v in volumes)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["azure.workload.identity/use"] == "true", name
    path.write_text(yaml.safe_dump({"global": {"azureKeyVault": {"enabled": True}}}))
    with pytest.raises(helm_python.HelmError):
        render_chart(ROOT, [path])


def test_bad_values_are_refused_by_the_schemas(tmp_path: Path) -> None:
    for bad in (
        {"risk": {"port": "8300"}},
        {"global": {"env": {"not-a-variable": "x"}}},
        {"devSecrets": {"enabled": True, "databaseUrl": "mysql://x"}},
        {"strategy": {"secretEnv": [{"name": "X"}]}},
        {"global": {"trustedProxies": ["the gateway"]}},
        {"auth": {"trustedProxies": "10.42.0.0/16"}},
        {"gateway": {"metrics": {"port": "9100"}}},
    ):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(helm_python.HelmError):
            render_chart(ROOT, [path])


def test_the_charts_lint_clean() -> None:
    with built_umbrella(ROOT) as umbrella:
        for chart, values in ((ROOT / "charts" / "service", []), (umbrella, ["dev", "prod"])):
            for layer in [None, *values]:
                given = yaml.safe_load(VALUES[layer][0].read_text()) if layer else None
                report = helm_python.lint(
                    chart, given, strict=True, kube_version=f"v{KUBERNETES}.0"
                )
                problems = [m for m in report["messages"] if m["severity"] >= 2]
                assert not problems and not report["errors"], (chart.name, layer, report)


def test_generated_files_are_fresh() -> None:
    old = stale(ROOT, generate(ROOT))
    assert not old, f"stale: {[str(p.relative_to(ROOT)) for p in old]}: run `make manifests`"


def test_adding_a_service_is_one_values_entry(tmp_path: Path) -> None:
    # A copy of what the generator reads, plus a service folder that has only its pyproject and
    # its deploy/values.yaml: after generation the chart deploys it and compose runs it.
    for rel in ("charts", "k8s", "deploy"):
        shutil.copytree(ROOT / rel, tmp_path / rel)
    if (ROOT / "docker-compose.yml").exists():
        shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for name in _services():
        folder = ROOT / "services" / name
        (tmp_path / "services" / name / "deploy").mkdir(parents=True)
        shutil.copy(folder / "pyproject.toml", tmp_path / "services" / name)
        shutil.copy(folder / "deploy" / "values.yaml", tmp_path / "services" / name / "deploy")
    new = tmp_path / "services" / "pricing"
    (new / "deploy").mkdir(parents=True)
    (new / "pyproject.toml").write_text(
        '[project]\nname = "trademesh-pricing"\nversion = "0.1.0"\n'
        '[tool.trademesh.service]\nname = "pricing"\nmodule = "trademesh_pricing"\nport = 8700\n'
    )
    entry = yaml.safe_load((ROOT / "services" / "audit" / "deploy" / "values.yaml").read_text())
    entry = entry["audit"] | {"port": 8700, "module": "trademesh_pricing", "schema": None}
    entry["image"] = {"repository": "ghcr.io/trademesh/pricing", "tag": ""}
    (new / "deploy" / "values.yaml").write_text(yaml.safe_dump({"pricing": entry}))

    files = generate(tmp_path)
    assert stale(tmp_path, files)
    for item in files:
        item.path.write_text(item.text)
    objects = render_chart(tmp_path)
    assert "pricing" in _of(objects, "Deployment")
    gateway = _of(objects, "Deployment")["gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "TRADEMESH_PRICING_URL", "value": "http://pricing:8700"} in gateway["env"]
    manifests = (tmp_path / "k8s" / "base" / "trademesh.yaml").read_text()
    assert "name: pricing" in manifests
    # The overlays run its image at their tag, and compose's Prometheus scrapes it.
    chart = yaml.safe_load((tmp_path / "charts" / "trademesh" / "Chart.yaml").read_text())
    for overlay, tag in (("k3s-dev", "dev"), ("prod", chart["appVersion"])):
        kustomization = tmp_path / "k8s" / "overlays" / overlay / "kustomization.yaml"
        images = yaml.safe_load(kustomization.read_text())["images"]
        assert {"name": "ghcr.io/trademesh/pricing", "newTag": tag} in images, overlay
    prometheus = yaml.safe_load((tmp_path / "deploy/compose/prometheus/prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "trademesh"]
    assert {"targets": ["pricing:8700"], "labels": {"service": "pricing"}} in job["static_configs"]
    if (tmp_path / "docker-compose.yml").exists():
        compose = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
        assert compose["services"]["pricing"]["build"] == {
            "context": ".",
            "dockerfile": "services/Dockerfile",
            "args": {"SERVICE": "pricing", "PORT": "8700"},
        }


def _kustomize_objects(folder: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        if path.is_dir():
            objects += _kustomize_objects(path)
        else:
            assert path.is_file(), f"{folder}: {resource} is missing"
            objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return objects


def _selects(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    return all(labels.get(k) == v for k, v in (term.split("=") for term in selector.split(",")))


def _json_patch_path_exists(document: dict[str, Any], path: str) -> None:
    # The parent of an `add .../-` (or the field of a replace) must exist in the target.
    node: Any = document
    for part in path.strip("/").split("/")[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    assert isinstance(node, list | dict), path


def _field(node: Any, path: str) -> list[Any]:
    """The values a kustomize field path names: keys, `*` (every item) and `[name=x]`."""
    found = [node]
    for part in path.split("."):
        step: list[Any] = []
        for item in found:
            if part == "*":
                step += item
            elif part.startswith("[") and part.endswith("]"):
                key, _, value = part[1:-1].partition("=")
                step += [entry for entry in item if entry.get(key) == value]
            elif isinstance(item, dict) and part in item:
                step.append(item[part])
        found = step
    return found


def _check_replacement(objects: list[dict[str, Any]], replacement: dict[str, Any]) -> None:
    # kustomize fails on a source or a target field that is not there (no `create` here).
    source = replacement["source"]
    (value,) = _field(_of(objects, source["kind"])[source["name"]], source["fieldPath"])
    for target in replacement["targets"]:
        select = target["select"]
        matched = [
            o
            for o in _of(objects, select["kind"]).values()
            if _selects(select.get("labelSelector"), o["metadata"].get("labels") or {})
        ]
        assert matched, select
        for document in matched:
            for path in target["fieldPaths"]:
                assert _field(document, path), (document["metadata"]["name"], path)
    if source["kind"] == "ConfigMap" and source["name"] == "trademesh-network":
        # What an operator sets for the pod network must be something the services accept.
        from trademesh_config import HttpSettings

        assert HttpSettings(trusted_proxies=value).trusted_proxies


@pytest.mark.parametrize("overlay", ["k3s-dev", "prod"])
def test_kustomize_overlays_reference_what_exists_and_validate(overlay: str) -> None:
    # No kustomize binary runs here (CI's charts workflow runs `kubectl kustomize`): this checks
    # what can be checked without it.
    folder = ROOT / "k8s" / "overlays" / overlay
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objects = _kustomize_objects(folder)
    for document in objects:
        if document["kind"] not in CUSTOM:
            kubernetes_validate.validate(document, KUBERNETES, strict=True)
    deployments = _of(objects, "Deployment")
    images = {
        c["image"].split(":")[0]
        for d in deployments.values()
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert {i["name"] for i in kustomization["images"]} == images
    for replica in kustomization.get("replicas", []):
        assert replica["name"] in deployments
    for patch in kustomization.get("patches", []):
        body = yaml.safe_load((folder / patch["path"]).read_text()) if "path" in patch else None
        if isinstance(body, dict):  # a strategic merge patch names its target
            assert body["metadata"]["name"] in _of(objects, body["kind"]), patch
            continue
        target = patch["target"]
        matched = [
            o
            for o in _of(objects, target["kind"]).values()
            if o["metadata"]["name"] == target.get("name", o["metadata"]["name"])
            and _selects(target.get("labelSelector"), o["metadata"].get("labels") or {})
        ]
        assert matched, patch
        for operation in body or yaml.safe_load(patch["patch"]):
            for document in matched:
                _json_patch_path_exists(document, operation["path"])
    for replacement in kustomization.get("replacements", []):
        _check_replacement(objects, replacement)
    for generator in kustomization.get("secretGenerator", []):
        for env in generator.get("envs", []):
            assert (folder / env).is_file()
    assert set(_services()) <= set(deployments)


def test_the_topic_job_runs_the_rpk_of_the_installed_redpanda() -> None:
    versions = yaml.safe_load((ROOT / "charts" / "infra" / "versions.yaml").read_text())
    (redpanda,) = [r for r in versions["releases"] if r["name"] == "redpanda"]
    script, job = yaml.safe_load_all((ROOT / "k8s" / "base" / "topics-job.yaml").read_text())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(f":v{redpanda['version']}")
    # The Job runs compose's script, as generated: one way to create the topics.
    compose_script = (ROOT / "deploy" / "compose" / "redpanda" / "topics.sh").read_text()
    assert script["data"]["topics.sh"] == compose_script
    assert container["command"] == ["/bin/bash", "/scripts/topics.sh"]
