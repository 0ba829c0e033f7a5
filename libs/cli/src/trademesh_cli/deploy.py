"""Deployment files derived from the services and the topic registry: the umbrella chart's
dependencies and values, compose's service blocks and Prometheus targets, the kustomize base
rendered from the chart and the overlays' image tags.

Each service's one values entry is services/<name>/deploy/values.yaml; everything here is made
from those entries, so that adding a service is that entry plus `make manifests`. The generated
parts of hand-written files sit between `# >>> generated` and `# <<< generated` lines.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trademesh_cli.project import ServiceEntry, discover_services

CHART_VERSION = "0.1.0"
RELEASE = "trademesh"
NAMESPACE = "trademesh"
# rpk's image for the topic Job: the Redpanda release charts/infra/versions.yaml installs (a
# test checks that they agree).
RPK_IMAGE = "docker.redpanda.com/redpandadata/redpanda:v26.2.7"
START = "# >>> generated"
END = "# <<< generated"
_REGION = re.compile(
    rf"^([ \t]*){re.escape(START)}[^\n]*\n(.*?)^[ \t]*{re.escape(END)}[^\n]*$", re.M | re.S
)


class DeployError(Exception):
    """A service's deploy entry, or a generated region, is not what the generator expects."""


@dataclass(frozen=True)
class Generated:
    """One file the generator owns (wholly or in its marked regions) and its expected text."""

    path: Path
    text: str


def service_values(root: Path) -> dict[str, dict[str, Any]]:
    """Each service's deploy/values.yaml entry, by service name, checked against its pyproject."""
    entries: dict[str, dict[str, Any]] = {}
    for service in discover_services(root):
        assert service.path is not None
        path = service.path / "deploy" / "values.yaml"
        if not path.is_file():
            raise DeployError(f"{path.relative_to(root)} is missing: every service has one")
        document = yaml.safe_load(path.read_text()) or {}
        if list(document) != [service.name]:
            raise DeployError(
                f"{path.relative_to(root)} must hold one entry named {service.name!r}, "
                f"found {sorted(document)}"
            )
        entry = document[service.name]
        _check_entry(service, entry, path.relative_to(root))
        entries[service.name] = entry
    return entries


def _check_entry(service: ServiceEntry, entry: dict[str, Any], where: Path) -> None:
    if entry.get("port") != service.port:
        raise DeployError(f"{where}: port {entry.get('port')} != pyproject's {service.port}")
    if entry.get("module") != service.module:
        raise DeployError(f"{where}: module {entry.get('module')} != pyproject's {service.module}")
    if entry.get("schema") != service.schema:
        raise DeployError(f"{where}: schema {entry.get('schema')} != pyproject's {service.schema}")
    metrics_port = (entry.get("metrics") or {}).get("port")
    if metrics_port != service.metrics_port:
        raise DeployError(
            f"{where}: metrics.port {metrics_port} != pyproject's metrics_port "
            f"{service.metrics_port}"
        )


def replace_regions(text: str, bodies: Iterable[str], where: str) -> str:
    """`text` with its generated regions' contents replaced by `bodies`, in order; each body is
    indented like its region's opening marker."""
    bodies = list(bodies)
    regions = list(_REGION.finditer(text))
    if len(regions) != len(bodies):
        raise DeployError(
            f"{where}: expected {len(bodies)} generated regions, found {len(regions)}"
        )
    out, last = [], 0
    for match, body in zip(regions, bodies, strict=True):
        indent = match.group(1)
        lines = [indent + line if line else line for line in body.rstrip("\n").split("\n")]
        out.append(text[last : match.start(2)])
        out.append("\n".join(lines) + "\n" if body.strip() else "")
        last = match.end(2)
    out.append(text[last:])
    return "".join(out)


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


def chart_files(root: Path, entries: dict[str, dict[str, Any]]) -> list[Generated]:
    """The umbrella chart's Chart.yaml (its dependencies) and values.yaml (ports and entries)."""
    chart = root / "charts" / "trademesh" / "Chart.yaml"
    head = chart.read_text().split("\ndependencies:", 1)[0]
    dependencies = [
        {
            "name": "trademesh-service",
            "alias": name,
            "version": CHART_VERSION,
            "repository": "file://../service",
            "condition": f"{name}.enabled",
        }
        for name in entries
    ]
    chart_text = f"{head}\n{_dump({'dependencies': dependencies})}"
    values = root / "charts" / "trademesh" / "values.yaml"
    ports = _dump({"services": {name: entry["port"] for name, entry in entries.items()}})
    blocks = "\n".join(_dump({name: entry}) for name, entry in entries.items())
    values_text = replace_regions(values.read_text(), [ports, blocks], str(values))
    return [Generated(chart, chart_text), Generated(values, values_text)]


def compose_file(root: Path, entries: dict[str, dict[str, Any]]) -> Generated:
    """docker-compose.yml with every service's URL in the shared environment and one block per
    service, in its two generated regions."""
    path = root / "docker-compose.yml"
    urls = "".join(
        f"{url_variable(name)}: http://{name}:{entry['port']}\n" for name, entry in entries.items()
    )
    blocks = "\n".join(compose_service(name, entry) for name, entry in entries.items())
    return Generated(path, replace_regions(path.read_text(), [urls, blocks], str(path)))


def url_variable(service: str) -> str:
    """The setting that names a service's base URL, as the chart's svc.urlVar makes it."""
    return f"TRADEMESH_{service.upper().replace('-', '_')}_URL"


def compose_service(name: str, entry: dict[str, Any]) -> str:
    """A service's compose block (YAML text: it uses the file's `x-service` anchors, which a YAML
    dump cannot write): the shared parts, then its image, build, port and own env. A metrics
    port of its own is exposed to the network (Prometheus) and not published on the host."""
    port = entry["port"]
    metrics_port = (entry.get("metrics") or {}).get("port")
    env = {
        key: value
        for key, value in (entry.get("env") or {}).items()
        if key not in ("TRADEMESH_SERVICE_NAME", "OTEL_SERVICE_NAME")
    }
    if metrics_port:
        env["TRADEMESH_METRICS_PORT"] = metrics_port
    lines = [
        f"{name}:",
        "  <<: *service",
        f"  image: {entry['image']['repository']}:${{TRADEMESH_TAG:-dev}}",
        "  build:",
        "    context: .",
        "    dockerfile: services/Dockerfile",
        "    args:",
        f"      SERVICE: {name}",
        f'      PORT: "{port}"',
        "  environment:",
        "    <<: *service-env",
        f"    TRADEMESH_SERVICE_NAME: {name}",
        f"    OTEL_SERVICE_NAME: {name}",
        f'    TRADEMESH_HTTP_PORT: "{port}"',
        *(f"    {key}: {yaml.safe_dump(str(value)).splitlines()[0]}" for key, value in env.items()),
        "  expose:",
        f'    - "{port}"',
        *([f'    - "{metrics_port}"'] if metrics_port else []),
        "  ports:",  # on loopback only: the host reaches each API, the network does not
        f'    - "127.0.0.1:{port}:{port}"',
    ]
    return "\n".join(lines) + "\n"


PROMETHEUS = Path("deploy") / "compose" / "prometheus" / "prometheus.yml"


def prometheus_config(root: Path, entries: dict[str, dict[str, Any]]) -> Generated:
    """Compose's Prometheus config with one target per service, labelled with its name, where it
    serves /metrics: its metrics port if it has one of its own, else its HTTP port."""
    path = root / PROMETHEUS
    targets = "".join(
        f'- targets: ["{name}:{(entry.get("metrics") or {}).get("port") or entry["port"]}"]\n'
        f"  labels: {{service: {name}}}\n"
        for name, entry in entries.items()
    )
    return Generated(path, replace_regions(path.read_text(), [targets], str(path)))


OVERLAYS = Path("k8s") / "overlays"
# The image tag each kustomize overlay runs: k3s-dev the images built locally (compose's and
# Tilt's tag), prod the released ones, tagged with the umbrella chart's appVersion.
OVERLAY_TAGS: dict[str, str | None] = {"k3s-dev": "dev", "prod": None}  # None: appVersion


def overlay_images(root: Path, entries: dict[str, dict[str, Any]]) -> list[Generated]:
    """Each overlay's kustomization.yaml with every service's image at the overlay's tag."""
    chart = yaml.safe_load((root / "charts" / "trademesh" / "Chart.yaml").read_text())
    files: list[Generated] = []
    for overlay, tag in OVERLAY_TAGS.items():
        path = root / OVERLAYS / overlay / "kustomization.yaml"
        images = [
            {"name": entry["image"]["repository"], "newTag": tag or str(chart["appVersion"])}
            for entry in entries.values()
        ]
        files.append(Generated(path, replace_regions(path.read_text(), [_dump(images)], str(path))))
    return files


# Checks the topic Job does not meet on purpose (checkov reads these; on the Job and its pod).
_TOPIC_JOB_SKIPS = {
    "checkov.io/skip1": "CKV_K8S_43=The rpk image is pinned by version tag, the same Redpanda "
    "release charts/infra/versions.yaml installs",
    "checkov.io/skip2": "CKV_K8S_15=A pinned version tag is immutable: IfNotPresent",
}


TOPICS_SCRIPT = Path("deploy") / "compose" / "redpanda" / "topics.sh"


def topics_script(root: Path) -> Generated:
    """deploy/compose/redpanda/topics.sh with every registered topic and its DLQ: the one
    script that creates the topics, for compose's `topics` container and the Kubernetes Job."""
    from trademesh_infra.topics import topic_plan  # the one plan embedded mode provisions too

    path = root / TOPICS_SCRIPT
    # The registry sets no cleanup policy: delete, Kafka's default, is set explicitly.
    body = "".join(f"topic {p.name} {p.partitions} {p.retention_ms} delete\n" for p in topic_plan())
    return Generated(path, replace_regions(path.read_text(), [body], str(path)))


def topic_job(root: Path, script: Generated) -> Generated:
    """k8s/base/topics-job.yaml: `script` in a ConfigMap, and a Job that runs it with rpk."""
    labels = {"app.kubernetes.io/part-of": "trademesh", "app.kubernetes.io/name": "topics"}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "trademesh-topics-script", "namespace": NAMESPACE, "labels": labels},
        "data": {"topics.sh": script.text},
    }

    def setting(name: str, key: str) -> dict[str, Any]:
        ref = {"configMapKeyRef": {"name": "trademesh-topics", "key": key}}
        return {"name": name, "valueFrom": ref}

    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "trademesh-topics",
            "namespace": NAMESPACE,
            "labels": labels,
            "annotations": _TOPIC_JOB_SKIPS,
        },
        "spec": {
            "backoffLimit": 10,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels, "annotations": _TOPIC_JOB_SKIPS},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "rpk",
                            "image": RPK_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["/bin/bash", "/scripts/topics.sh"],
                            "env": [
                                {"name": "HOME", "value": "/tmp"},  # noqa: S108 - rpk's config
                                setting("TRADEMESH_KAFKA_BROKERS", "brokers"),
                                setting("TRADEMESH_TOPIC_REPLICAS", "replicas"),
                            ],
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "64Mi"},
                                "limits": {"cpu": "200m", "memory": "128Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - rpk's config
                                {"name": "script", "mountPath": "/scripts", "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
                        {"name": "script", "configMap": {"name": "trademesh-topics-script"}},
                    ],
                },
            },
        },
    }
    header = (
        "# Generated by `make manifests` from deploy/compose/redpanda/topics.sh and the topic\n"
        "# registry: do not edit.\n"
    )
    text = header + "---\n" + _dump(config_map) + "---\n" + _dump(job)
    return Generated(root / "k8s" / "base" / "topics-job.yaml", text)


def render_chart(
    root: Path, values_files: Iterable[Path] = (), *, namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    """The umbrella chart rendered offline (helm-python-sdk) with `values_files` layered on its
    values.yaml, as Kubernetes objects; `helm test` hooks included."""
    try:
        import helm_python
    except ImportError as missing:  # pragma: no cover - depends on the install
        raise DeployError(
            "helm-python-sdk is not installed: `make manifests` installs the deploy group"
        ) from missing
    values: dict[str, Any] = {}
    for path in values_files:
        values = merge(values, yaml.safe_load(path.read_text()) or {})
    with built_umbrella(root) as umbrella, helm_python.Chart.load(umbrella) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=namespace)
    objects: list[dict[str, Any]] = []
    for template in sorted(rendered):
        if template.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(rendered[template]):
            if document:
                objects.append(document)
    return objects


@contextmanager
def built_umbrella(root: Path) -> Iterator[Path]:
    """A scratch copy of the umbrella chart with its dependencies built (`helm dependency
    build`, offline: they are the local charts/service), so that nothing is left in the repo."""
    import helm_python

    with tempfile.TemporaryDirectory(prefix="trademesh-chart-") as scratch:
        charts = Path(scratch) / "charts"
        shutil.copytree(root / "charts" / "service", charts / "service")
        shutil.copytree(
            root / "charts" / "trademesh",
            charts / "trademesh",
            ignore=shutil.ignore_patterns("charts", "Chart.lock"),
        )
        helm_python.dependency_build(charts / "trademesh")
        yield charts / "trademesh"


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's values layering: maps merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def is_hook(document: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (document.get("metadata", {}).get("annotations") or {})


def base_manifests(
    root: Path, render: Callable[..., list[dict[str, Any]]] = render_chart
) -> Generated:
    """k8s/base/trademesh.yaml: the chart with its own values, without `helm test` hooks."""
    objects = [doc for doc in render(root) if not is_hook(doc)]
    header = (
        "# Rendered from charts/trademesh with its values.yaml by `make manifests`: do not edit.\n"
        "# A test fails when this file and the chart disagree.\n"
    )
    text = header + "".join("---\n" + _dump(doc) for doc in objects)
    return Generated(root / "k8s" / "base" / "trademesh.yaml", text)


def generate(root: Path, *, with_manifests: bool = True) -> list[Generated]:
    """Every generated file's expected text. The chart files come first: the manifests are
    rendered from the chart as it will be written."""
    entries = service_values(root)
    files = chart_files(root, entries)
    if (root / "docker-compose.yml").exists():
        files.append(compose_file(root, entries))
    files.append(prometheus_config(root, entries))
    files += overlay_images(root, entries)
    script = topics_script(root)
    files += [script, topic_job(root, script)]
    if with_manifests:
        with tempfile.TemporaryDirectory(prefix="trademesh-root-") as scratch:
            # Render the chart as written by this run, not as it is on disk.
            copy = Path(scratch)
            shutil.copytree(root / "charts", copy / "charts")
            for item in files:
                rel = item.path.relative_to(root)
                if rel.parts[0] == "charts":
                    (copy / rel).write_text(item.text)
            rendered = base_manifests(copy)
        files.append(Generated(root / "k8s" / "base" / "trademesh.yaml", rendered.text))
    return files


def stale(root: Path, files: list[Generated]) -> list[Path]:
    """The generated files whose committed text differs from what the generator makes."""
    return [f.path for f in files if not f.path.exists() or f.path.read_text() != f.text]


def write(files: list[Generated]) -> list[Path]:
    """Writes the files that changed; returns them."""
    changed = []
    for item in files:
        if not item.path.exists() or item.path.read_text() != item.text:
            item.path.parent.mkdir(parents=True, exist_ok=True)
            item.path.write_text(item.text)
            changed.append(item.path)
    return changed
