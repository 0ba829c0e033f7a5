"""terraform/: every file parses, envs wire the modules as declared, pins hold, topics stay in sync."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2
import pytest
import yaml
from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings
from trademesh_events.topics import TOPICS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
TF_FILES = sorted(p for p in TF.rglob("*.tf") if ".terraform" not in p.parts)
ENVS = ("dev", "prod")
REQUIRED_MODULES = {"network", "cluster", "kafka", "postgres"}
# Arguments of a module block that are Terraform's, not the module's variables.
META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each"}


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of strings and block labels; drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return hcl2.load(handle)


def blocks(folder: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Every labelled block of `kind` (module, variable, output) in a folder's .tf files."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.tf")):
        for entry in parse(path).get(kind, []):
            for label, body in entry.items():
                found[unquote(label)] = body
    return found


def module_calls(env: str) -> dict[str, dict[str, Any]]:
    return blocks(TF / "envs" / env, "module")


def module_dir(env: str, call: dict[str, Any]) -> Path:
    return (TF / "envs" / env / unquote(call["source"])).resolve()


def required_providers(folder: Path) -> dict[str, str]:
    """Provider name to version constraint, from the folder's terraform blocks."""
    found: dict[str, str] = {}
    for path in sorted(folder.glob("*.tf")):
        for terraform in parse(path).get("terraform", []):
            for group in terraform.get("required_providers", []):
                for name, spec in group.items():
                    if name != "__is_block__":
                        found[name] = unquote(spec.get("version", ""))
    return found


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def admits(constraint: str, version: str) -> bool:
    """Whether a Terraform constraint such as `>= 4.42, < 5.0` admits an exact version."""
    have = version_tuple(version)
    for clause in constraint.split(","):
        match = re.fullmatch(r"\s*(>=|<=|>|<|=|!=|~>)?\s*([0-9.]+)\s*", clause)
        assert match, f"unreadable constraint {constraint!r}"
        op, want = match.group(1) or "=", version_tuple(match.group(2))
        size = max(len(have), len(want))
        padded_have = have + (0,) * (size - len(have))
        padded_want = want + (0,) * (size - len(want))
        if op == "~>":
            upper = (*want[:-2], want[-2] + 1) if len(want) > 1 else (want[0] + 1,)
            ok = padded_have >= padded_want and have[: len(upper)] < upper
        else:
            ok = {
                "=": padded_have == padded_want,
                "!=": padded_have != padded_want,
                ">=": padded_have >= padded_want,
                "<=": padded_have <= padded_want,
                ">": padded_have > padded_want,
                "<": padded_have < padded_want,
            }[op]
        if not ok:
            return False
    return True


def topics_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("terraform_topics", TF / "topics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_the_modules_and_envs() -> None:
    assert {p.name for p in (TF / "envs").iterdir() if p.is_dir()} == set(ENVS)
    modules = {p.name for p in (TF / "modules").iterdir() if p.is_dir()}
    assert REQUIRED_MODULES | {"keyvault"} <= modules


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TF)))
def test_every_tf_file_parses(path: Path) -> None:
    parsed = parse(path)
    assert set(parsed) - {"__comments__"}, f"{path} declares nothing"


@pytest.mark.parametrize("env", ENVS)
def test_each_env_uses_the_four_modules(env: str) -> None:
    calls = module_calls(env)
    used = {module_dir(env, call).name for call in calls.values()}
    assert used >= REQUIRED_MODULES | {"keyvault"}, f"{env} lacks {REQUIRED_MODULES - used}"
    for name, call in calls.items():
        assert module_dir(env, call).is_dir(), f"{env}: module {name} has no {call['source']}"


@pytest.mark.parametrize("env", ENVS)
def test_module_arguments_are_the_modules_variables(env: str) -> None:
    for name, call in module_calls(env).items():
        variables = blocks(module_dir(env, call), "variable")
        passed = {k for k in call if k not in META_ARGUMENTS and not k.startswith("__")}
        unknown = passed - set(variables)
        assert not unknown, f"{env}: module {name} has no variable {sorted(unknown)}"
        required = {v for v, body in variables.items() if "default" not in body}
        missing = required - passed
        assert not missing, f"{env}: module {name} needs {sorted(missing)}"


@pytest.mark.parametrize("env", ENVS)
def test_module_outputs_used_by_an_env_exist(env: str) -> None:
    calls = module_calls(env)
    text = "\n".join(p.read_text() for p in sorted((TF / "envs" / env).glob("*.tf")))
    references = set(re.findall(r"\bmodule\.([a-z_]+)\.([a-z_]+)", text))
    assert references
    for module, output in sorted(references):
        assert module in calls, f"{env}: module.{module} is not declared"
        outputs = blocks(module_dir(env, calls[module]), "output")
        assert output in outputs, f"{env}: module {module} has no output {output}"


@pytest.mark.parametrize("env", ENVS)
def test_provider_versions_are_pinned_and_fit_the_modules(env: str) -> None:
    pins = required_providers(TF / "envs" / env)
    assert {"azurerm", "helm", "kubernetes", "random"} <= set(pins)
    for name, pin in pins.items():
        assert re.fullmatch(r"= \d+\.\d+\.\d+", pin), f"{env}: {name} is {pin!r}, not an exact pin"
    for call in module_calls(env).values():
        folder = module_dir(env, call)
        for name, constraint in required_providers(folder).items():
            assert name in pins, f"{env} does not pin {name}, which {folder.name} needs"
            version = pins[name].removeprefix("= ")
            assert admits(constraint, version), f"{folder.name} wants {name} {constraint}"


def test_version_constraints_are_read_right() -> None:
    assert admits(">= 4.42, < 5.0", "4.55.0")
    assert not admits(">= 4.42, < 5.0", "5.0.0")
    assert not admits(">= 4.42, < 5.0", "4.41.9")
    assert admits("~> 3.0", "3.9.1") and not admits("~> 3.0", "4.0.0")
    assert admits("= 2.38.0", "2.38.0") and not admits("= 2.38.0", "2.38.1")


def test_topics_json_is_generated_from_the_registry() -> None:
    script = topics_script()
    assert (TF / "topics.json").read_text() == script.render(), (
        "terraform/topics.json is stale: run .venv/bin/python terraform/topics.py"
    )


def test_event_hubs_cover_every_registry_topic_and_dlq() -> None:
    hubs = {
        t["name"]: t["partitions"] for t in json.loads((TF / "topics.json").read_text())["topics"]
    }
    expected = {spec.name: spec.partitions for spec in TOPICS} | {spec.dlq: 1 for spec in TOPICS}
    assert hubs == expected


@pytest.mark.parametrize("env", ENVS)
def test_each_env_gives_the_kafka_module_the_generated_topics(env: str) -> None:
    main = parse(TF / "envs" / env / "main.tf")
    local_topics = next(entry["topics"] for entry in main["locals"] if "topics" in entry)
    assert "topics.json" in local_topics and "jsondecode" in local_topics
    kafka = next(c for c in module_calls(env).values() if module_dir(env, c).name == "kafka")
    assert kafka["topics"] == "${local.topics}"


def test_the_kafka_module_makes_one_event_hub_per_topic() -> None:
    main = parse(TF / "modules" / "kafka" / "main.tf")
    hubs = [
        body
        for entry in main["resource"]
        for kind, named in entry.items()
        if unquote(kind) == "azurerm_eventhub"
        for body in named.values()
    ]
    assert len(hubs) == 1
    hub = hubs[0]
    assert hub["for_each"] == "${local.topics}"
    assert hub["partition_count"] == "${each.value.partitions}"
    locals_ = next(entry for entry in main["locals"] if "topics" in entry)
    assert "var.topics" in locals_["topics"]


def test_prod_keeps_the_secure_defaults_that_checkov_skips_rely_on() -> None:
    variables = blocks(TF / "envs" / "prod", "variable")
    assert variables["private_cluster"]["default"] is True
    assert unquote(variables["aks_sku_tier"]["default"]) == "Standard"
    assert variables["postgres_geo_redundant_backup"]["default"] is True
    assert variables["postgres_high_availability"]["default"] is True
    assert variables["operator_ip_ranges"]["default"] == []


def test_the_charts_and_values_files_the_envs_install_exist() -> None:
    assert (ROOT / "charts" / "trademesh" / "Chart.yaml").is_file()
    for env in ENVS:
        assert (ROOT / "charts" / "trademesh" / f"values-{env}.yaml").is_file()
    versions = yaml.safe_load((ROOT / "charts" / "infra" / "versions.yaml").read_text())
    releases = {r["name"]: r for r in versions["releases"]}
    repositories = {r["name"] for r in versions["repositories"]}
    platform = blocks(TF / "modules" / "platform", "variable")
    defaults = [unquote(n) for n in platform["infra_releases"]["default"]]
    for env in ENVS:
        env_default = [
            unquote(n) for n in blocks(TF / "envs" / env, "variable")["infra_releases"]["default"]
        ]
        assert env_default == defaults
    assert "redpanda" not in defaults, "Event Hubs is the Kafka in Azure"
    for name in defaults:
        assert name in releases, f"{name} is not in charts/infra/versions.yaml"
        release = releases[name]
        assert release["repo"] in repositories
        for values in release["values"] + release.get("prodValues", []):
            assert (ROOT / "charts" / "infra" / values).is_file(), values


def test_no_secret_is_written_in_terraform() -> None:
    files = sorted(p for p in TF.rglob("*") if p.is_file() and ".terraform" not in p.parts)
    literal = re.compile(
        r"(?i)(SharedAccessKey=|AccountKey=|-----BEGIN [A-Z ]*PRIVATE KEY|"
        r"\b\w*(password|secret|token|access_key)\w*\s*=\s*\"[^\"$]+\"|"
        r"postgres(ql)?://[^:@/\s\"]+:[^@$\s\"]+@)"
    )
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "pragma: allowlist secret" in line:  # reviewed: a Secret's name, not a value
                continue
            assert not literal.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
    with default_settings():
        found = SecretsCollection()
        for path in files:
            found.scan_file(str(path))
    assert not found.json(), found.json()
