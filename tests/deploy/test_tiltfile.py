"""The Tiltfile, evaluated by a real Starlark interpreter with Tilt's builtins recorded: every
service gets a live-updated image and a resource, every pinned infra chart a Helm release."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

# Tilt cannot be installed here: a Starlark interpreter (starlark-pyo3, of the deploy group)
# runs the Tiltfile instead. Under `make test` its absence is a failure, not a skip.
if (
    importlib.util.find_spec("starlark") is None
    and os.environ.get("TRADEMESH_REQUIRE_TOOLS") == "1"
):
    pytest.fail("starlark-pyo3 is not installed (the deploy dependency group)", pytrace=False)
starlark = pytest.importorskip("starlark", reason="starlark-pyo3, of the deploy dependency group")
pytest.importorskip("helm_python", reason="the deploy dependency group")

from trademesh_cli.deploy import render_chart  # noqa: E402

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TILTFILE = ROOT / "Tiltfile"
INFRA = ROOT / "charts" / "infra"
DEV_VALUES = ROOT / "charts" / "trademesh" / "values-dev.yaml"
SITE_PACKAGES = "/app/.venv/lib/python3.11/site-packages"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Tilt's `os` module, the part the Tiltfile uses, as a Starlark struct over Python functions.
_PRELUDE = "os = struct(getenv = _getenv, path = struct(dirname = _dirname, basename = _basename))"


@dataclass
class Fake:
    """A service that exists only for one evaluation: its files are answered by the fakes."""

    directory: str
    values: dict[str, Any]


@dataclass
class Run:
    """What one evaluation of the Tiltfile asked Tilt to do."""

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    def of(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for called, args, kwargs in self.calls if called == name]


def _evaluate(context: str = "k3d-trademesh", fakes: tuple[Fake, ...] = ()) -> Run:
    run = Run()
    fake_paths = {f"services/{fake.directory}/deploy/values.yaml": fake for fake in fakes}

    def record(name: str, result: Any = None) -> Callable[..., Any]:
        def builtin(*args: Any, **kwargs: Any) -> Any:
            run.calls.append((name, args, kwargs))
            return result(*args, **kwargs) if callable(result) else result

        return builtin

    def listdir(directory: str, recursive: bool = False) -> list[str]:
        fake = [str(ROOT / p) for p in fake_paths if p.startswith(directory + "/")]
        return list(_files(directory, recursive)) + fake

    def read_yaml(path: str) -> Any:
        relative = str(Path(path).resolve().relative_to(ROOT)) if Path(path).is_absolute() else path
        if relative in fake_paths:
            return fake_paths[relative].values
        return yaml.safe_load((ROOT / relative).read_text())

    def read_file(path: str) -> str:
        return (ROOT / path).read_text()

    def helm(chart: str, **kwargs: Any) -> str:
        return _rendered(tuple(kwargs["values"]))

    module = starlark.Module()
    for name, result in {
        "allow_k8s_contexts": None,
        "version_settings": None,
        "update_settings": None,
        "k8s_yaml": None,
        "k8s_resource": None,
        "local_resource": None,
        "watch_file": None,
        "local": "",
        "link": lambda url, name: {"link": url},
        "sync": lambda src, dest: {"sync": [src, dest]},
        "fall_back_on": lambda paths: {"fall_back_on": paths},
        "encode_yaml": lambda obj: yaml.safe_dump(obj),
        "encode_yaml_stream": lambda objs: yaml.safe_dump_all(objs),
        "decode_yaml_stream": _decoded,
        "helm": helm,
    }.items():
        module.add_callable(name, record(name, result))
    module.add_callable("k8s_context", lambda: context)
    module.add_callable("listdir", listdir)
    module.add_callable("read_yaml", read_yaml)
    module.add_callable("read_file", read_file)
    module.add_callable("_getenv", lambda name, default=None: default)
    module.add_callable("_dirname", lambda p: str(Path(p).parent))
    module.add_callable("_basename", lambda p: Path(p).name)

    extensions = {
        "ext://helm_resource": ["helm_resource", "helm_repo"],
        "ext://restart_process": ["docker_build_with_restart"],
        "ext://namespace": ["namespace_create"],
    }

    def load(name: str) -> Any:
        loaded = starlark.Module()
        for symbol in extensions[name]:
            loaded.add_callable(symbol, record(symbol))
        return loaded.freeze()

    dialect = starlark.Dialect.extended()
    dialect.enable_top_level_stmt = True
    globals_ = starlark.Globals.extended_by([starlark.LibraryExtension.StructType])
    starlark.eval(module, starlark.parse("prelude", _PRELUDE, dialect), globals_)
    ast = starlark.parse("Tiltfile", TILTFILE.read_text(), dialect)
    starlark.eval(module, ast, globals_, starlark.FileLoader(load))
    return run


@functools.cache
def _files(directory: str, recursive: bool) -> tuple[str, ...]:
    """Tilt's listdir: the files (not directories) under `directory`, as absolute paths."""
    base = ROOT / directory
    found = base.rglob("*") if recursive else base.iterdir()
    return tuple(str(p) for p in found if p.is_file())


@functools.cache
def _rendered(values: tuple[str, ...]) -> str:
    """The umbrella chart as `helm template` prints it (rendered once per values list)."""
    return yaml.safe_dump_all(render_chart(ROOT, [ROOT / v for v in values]))


@functools.cache
def _decoded(text: str) -> list[Any]:
    """Tilt's decode_yaml_stream (the interpreter copies the result, so sharing it is safe)."""
    return [document for document in yaml.load_all(text, Loader=_LOADER) if document]


def _services() -> dict[str, dict[str, Any]]:
    """Each service directory's deploy entry (one per services/*/deploy/values.yaml)."""
    entries = {}
    for path in sorted(ROOT.glob("services/*/deploy/values.yaml")):
        ((name, entry),) = yaml.safe_load(path.read_text()).items()
        entries[path.parent.parent.name] = {"name": name, **entry}
    return entries


def _libs() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("libs/*/pyproject.toml"))


@pytest.fixture(scope="module")
def run() -> Run:
    return _evaluate()


def test_every_service_gets_an_image_with_live_update_into_its_virtualenv(run: Run) -> None:
    services = _services()
    assert services, "services/*/deploy/values.yaml"
    builds = {args[0]: kwargs for args, kwargs in run.of("docker_build_with_restart")}
    assert set(builds) == {entry["image"]["repository"] for entry in services.values()}
    for directory, entry in services.items():
        build = builds[entry["image"]["repository"]]
        module = entry["module"]
        dockerfile = (ROOT / "services" / "Dockerfile").read_text()
        # The live-update paths are where the services' Dockerfile installs the workspace.
        assert "python:3.11" in dockerfile and "UV_PROJECT_ENVIRONMENT=/app/.venv" in dockerfile
        assert re.search(r"^FROM .* AS runtime$", dockerfile, re.M), directory
        assert "--no-editable" in dockerfile, "site-packages holds a copy, not a link to src/"
        assert build["dockerfile_contents"].startswith(dockerfile)
        assert build["build_args"] == {"SERVICE": directory, "PORT": str(entry["port"])}
        assert "FROM runtime AS tilt-dev" in build["dockerfile_contents"]
        assert build["entrypoint"] == ["python", "-m", module]
        syncs = [step["sync"] for step in build["live_update"] if "sync" in step]
        assert [f"services/{directory}/src/{module}", f"{SITE_PACKAGES}/{module}"] in syncs
        for lib in _libs():
            assert [f"libs/{lib}/src", SITE_PACKAGES] in syncs
        for source, _ in syncs:
            assert (ROOT / source).is_dir(), source
        (fallback,) = [
            step["fall_back_on"] for step in build["live_update"] if "fall_back_on" in step
        ]
        assert {"uv.lock", "pyproject.toml", f"services/{directory}/pyproject.toml"} <= set(
            fallback
        )
        others = {f"services/{d}/src" for d in services if d != directory}
        assert set(build["ignore"]) == others


def test_every_service_is_a_resource_and_the_gateway_is_forwarded(run: Run) -> None:
    resources = {args[0]: kwargs for args, kwargs in run.of("k8s_resource") if args}
    for entry in _services().values():
        resource = resources[entry["name"]]
        assert resource["labels"] == ["services"]
        assert "kube-prometheus-stack" in resource["resource_deps"]
        forwards = resource["port_forwards"]
        assert forwards == (
            [f"{entry['port']}:{entry['port']}"] if entry["name"] == "gateway" else []
        )
    assert resources["gateway"]["port_forwards"] == ["8000:8000"]
    # Each service's own objects (ServiceMonitor, ServiceAccount, ...) are claimed with it.
    assert "gateway:servicemonitor" in resources["gateway"]["objects"]


def test_every_pinned_infra_chart_is_installed_with_its_values(run: Run) -> None:
    versions = yaml.safe_load((INFRA / "versions.yaml").read_text())
    installs = {args[0]: (args[1], kwargs) for args, kwargs in run.of("helm_resource")}
    repos = {args[0] for args, _ in run.of("helm_repo")}
    assert repos == {repo["name"] for repo in versions["repositories"]}
    assert set(installs) == {release["name"] for release in versions["releases"]}
    for release in versions["releases"]:
        chart, kwargs = installs[release["name"]]
        assert chart == f"{release['repo']}/{release['chart']}"
        assert kwargs["namespace"] == release["namespace"]
        flags = kwargs["flags"]
        assert flags[flags.index("--version") + 1] == release["version"]
        values = [flags[i + 1] for i, flag in enumerate(flags) if flag == "--values"]
        assert values == [f"charts/infra/{name}" for name in release["values"]]
        assert set(release["dependsOn"]) <= set(kwargs["resource_deps"])
        assert kwargs["labels"] == [release["group"]]


def test_the_ui_forwards_and_the_umbrella_chart_with_dev_values(run: Run) -> None:
    forwards = {args[0]: kwargs["serve_cmd"] for args, kwargs in run.of("local_resource")}
    assert "service/kube-prometheus-stack-grafana 3000:80" in forwards["grafana-ui"]
    assert "service/redpanda-console 8080:8080" in forwards["redpanda-console-ui"]
    (helm_call,) = run.of("helm")
    assert helm_call[0] == ("charts/trademesh",)
    assert helm_call[1]["values"] == ["charts/trademesh/values-dev.yaml"]
    assert helm_call[1]["namespace"] == "trademesh"
    assert ("helm dependency build charts/trademesh",) in [args for args, _ in run.of("local")]


def test_the_topics_job_runs_before_the_services_and_everything_has_a_namespace(run: Run) -> None:
    resources = {
        kwargs.get("new_name", args[0] if args else None): (args, kwargs)
        for args, kwargs in run.of("k8s_resource")
    }
    documents = yaml.safe_load_all((ROOT / "k8s" / "base" / "topics-job.yaml").read_text())
    (job,) = [d for d in documents if d["kind"] == "Job"]
    args, topics = resources["topics"]
    assert args == (job["metadata"]["name"],)
    assert "redpanda" in topics["resource_deps"]
    for entry in _services().values():
        assert "topics" in resources[entry["name"]][1]["resource_deps"]
    applied = [obj for (objects,), _ in run.of("encode_yaml_stream") for obj in objects]
    assert {obj["kind"] for obj in applied} >= {"Deployment", "Job", "ConfigMap", "Secret"}
    for obj in applied:
        assert obj["metadata"]["namespace"] == "trademesh", obj["metadata"]["name"]
        assert "helm.sh/hook" not in (obj["metadata"].get("annotations") or {})


def test_the_dev_postgres_login_is_the_one_of_the_dev_database_url(run: Run) -> None:
    url = yaml.safe_load(DEV_VALUES.read_text())["devSecrets"]["databaseUrl"]
    user, password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)
    (secret,) = [args[0] for args, _ in run.of("encode_yaml") if args[0]["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "trademesh-postgres-credentials"
    assert secret["stringData"] == {"username": user, "password": password}
    cluster = yaml.safe_load((INFRA / "postgres-cluster-values.yaml").read_text())
    assert cluster["cluster"]["initdb"]["secret"]["name"] == "trademesh-postgres-credentials"
    assert cluster["cluster"]["initdb"]["owner"] == user


def test_a_new_service_needs_no_edit_of_the_tiltfile() -> None:
    fake = Fake(
        "pricing-demo",
        {
            "pricing-demo": {
                "image": {"repository": "ghcr.io/trademesh/pricing-demo"},
                "module": "trademesh_pricing_demo",
                "port": 8700,
            }
        },
    )
    run = _evaluate(fakes=(fake,))
    builds = {args[0]: kwargs for args, kwargs in run.of("docker_build_with_restart")}
    assert builds["ghcr.io/trademesh/pricing-demo"]["entrypoint"][-1] == "trademesh_pricing_demo"
    assert builds["ghcr.io/trademesh/pricing-demo"]["build_args"]["SERVICE"] == "pricing-demo"
    assert "pricing-demo" in {args[0] for args, _ in run.of("k8s_resource") if args}
    text = TILTFILE.read_text()
    for entry in _services().values():
        if entry["name"] != "gateway":  # the one public API, forwarded by name
            assert f"'{entry['name']}'" not in text


def test_only_local_clusters_are_allowed() -> None:
    assert _evaluate("k3d-trademesh").of("allow_k8s_contexts") == [(("k3d-trademesh",), {})]
    assert _evaluate("default").of("allow_k8s_contexts") == [(("default",), {})]
    assert _evaluate("aks-trademesh-prod").of("allow_k8s_contexts") == []
