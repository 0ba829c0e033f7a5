"""terraform/: every file parses, the envs call the stack, the stack wires the modules, pins hold, topics stay in sync."""

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
STACK = TF / "modules" / "stack"
# Every root module or module that calls modules: the envs (one call, the stack) and the stack.
CALLERS = {**{f"envs/{env}": TF / "envs" / env for env in ENVS}, "modules/stack": STACK}
REQUIRED_MODULES = {"network", "cluster", "kafka", "postgres"}
STACK_MODULES = REQUIRED_MODULES | {"keyvault", "platform"}
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


def module_calls(folder: Path) -> dict[str, dict[str, Any]]:
    return blocks(folder, "module")


def module_dir(folder: Path, call: dict[str, Any]) -> Path:
    return (folder / unquote(call["source"])).resolve()


def stack_call(env: str) -> dict[str, Any]:
    """The env's call of modules/stack, with its arguments."""
    folder = TF / "envs" / env
    calls = [c for c in module_calls(folder).values() if module_dir(folder, c) == STACK]
    assert len(calls) == 1, f"{env} calls modules/stack {len(calls)} times"
    return calls[0]


def modules_under(folder: Path) -> set[Path]:
    """The modules a folder calls, and theirs."""
    found: set[Path] = set()
    for call in module_calls(folder).values():
        child = module_dir(folder, call)
        found |= {child} | modules_under(child)
    return found


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
    assert STACK_MODULES | {"stack"} <= modules


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TF)))
def test_every_tf_file_parses(path: Path) -> None:
    parsed = parse(path)
    assert set(parsed) - {"__comments__"}, f"{path} declares nothing"


@pytest.mark.parametrize("env", ENVS)
def test_each_env_is_a_thin_root_calling_the_stack(env: str) -> None:
    folder = TF / "envs" / env
    calls = module_calls(folder)
    assert [module_dir(folder, c) for c in calls.values()] == [STACK], f"{env}: {sorted(calls)}"
    assert unquote(stack_call(env)["environment"]) == env
    # The wiring is the stack's: an env declares no resource of its own.
    for path in sorted(folder.glob("*.tf")):
        assert not parse(path).get("resource"), f"{path.relative_to(TF)} declares resources"
    assert {"azurerm", "helm", "kubernetes"} <= set(blocks(folder, "provider"))


def test_the_stack_uses_the_modules() -> None:
    calls = module_calls(STACK)
    used = {module_dir(STACK, call).name for call in calls.values()}
    assert used >= STACK_MODULES, f"the stack lacks {sorted(STACK_MODULES - used)}"
    for name, call in calls.items():
        assert module_dir(STACK, call).is_dir(), f"stack: module {name} has no {call['source']}"
    # Providers are configured in the roots alone (a module with providers cannot be removed).
    assert not blocks(STACK, "provider")


@pytest.mark.parametrize("caller", CALLERS)
def test_module_arguments_are_the_modules_variables(caller: str) -> None:
    folder = CALLERS[caller]
    calls = module_calls(folder)
    assert calls
    for name, call in calls.items():
        variables = blocks(module_dir(folder, call), "variable")
        passed = {k for k in call if k not in META_ARGUMENTS and not k.startswith("__")}
        unknown = passed - set(variables)
        assert not unknown, f"{caller}: module {name} has no variable {sorted(unknown)}"
        required = {v for v, body in variables.items() if "default" not in body}
        missing = required - passed
        assert not missing, f"{caller}: module {name} needs {sorted(missing)}"


@pytest.mark.parametrize("caller", CALLERS)
def test_variables_used_are_declared(caller: str) -> None:
    folder = CALLERS[caller]
    text = "\n".join(p.read_text() for p in sorted(folder.glob("*.tf")))
    used = set(re.findall(r"\bvar\.([a-z_]+)", text))
    assert used
    unknown = used - set(blocks(folder, "variable"))
    assert not unknown, f"{caller}: undeclared variables {sorted(unknown)}"


@pytest.mark.parametrize("caller", CALLERS)
def test_module_outputs_used_exist(caller: str) -> None:
    folder = CALLERS[caller]
    calls = module_calls(folder)
    text = "\n".join(p.read_text() for p in sorted(folder.glob("*.tf")))
    references = set(re.findall(r"\bmodule\.([a-z_]+)\.([a-z_]+)", text))
    assert references
    for module, output in sorted(references):
        assert module in calls, f"{caller}: module.{module} is not declared"
        outputs = blocks(module_dir(folder, calls[module]), "output")
        assert output in outputs, f"{caller}: module {module} has no output {output}"


@pytest.mark.parametrize("env", ENVS)
def test_each_env_forwards_the_stack_outputs(env: str) -> None:
    stack_outputs = blocks(STACK, "output")
    env_outputs = blocks(TF / "envs" / env, "output")
    # host and the CA certificate are for the env's providers, not outputs of the env.
    assert set(env_outputs) == set(stack_outputs) - {"host", "cluster_ca_certificate"}
    for name, body in env_outputs.items():
        assert body["value"] == f"${{module.stack.{name}}}", f"{env}: output {name}"
        if stack_outputs[name].get("sensitive"):
            assert body.get("sensitive") is True, f"{env}: output {name} must be sensitive"
    assert stack_outputs["host"]["sensitive"] is True
    assert stack_outputs["cluster_ca_certificate"]["sensitive"] is True


@pytest.mark.parametrize("env", ENVS)
def test_provider_versions_are_pinned_and_fit_the_modules(env: str) -> None:
    folder = TF / "envs" / env
    pins = required_providers(folder)
    assert {"azurerm", "helm", "kubernetes", "random"} <= set(pins)
    for name, pin in pins.items():
        assert re.fullmatch(r"= \d+\.\d+\.\d+", pin), f"{env}: {name} is {pin!r}, not an exact pin"
    modules = modules_under(folder)
    assert {STACK} | {TF / "modules" / name for name in STACK_MODULES} <= modules
    for module in sorted(modules):
        for name, constraint in required_providers(module).items():
            assert name in pins, f"{env} does not pin {name}, which {module.name} needs"
            version = pins[name].removeprefix("= ")
            assert admits(constraint, version), f"{module.name} wants {name} {constraint}"


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


def test_the_stack_gives_the_kafka_module_the_generated_topics() -> None:
    main = parse(STACK / "main.tf")
    local_topics = next(entry["topics"] for entry in main["locals"] if "topics" in entry)
    assert "topics.json" in local_topics and "jsondecode" in local_topics
    calls = module_calls(STACK).values()
    kafka = next(c for c in calls if module_dir(STACK, c).name == "kafka")
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


# What checkov's skips in modules/cluster and modules/postgres rely on: prod sets them in its
# call of the stack, and the stack has no default for them (an env cannot leave them out).
PROD_SECURE = {
    "private_cluster": True,
    "aks_sku_tier": "Standard",
    "postgres_geo_redundant_backup": True,
    "postgres_high_availability": True,
}


def test_prod_keeps_the_secure_values_that_checkov_skips_rely_on() -> None:
    call = stack_call("prod")
    for name, value in PROD_SECURE.items():
        assert unquote(call.get(name)) == value, f"prod sets {name} = {call.get(name)!r}"
    stack_variables = blocks(STACK, "variable")
    for name in PROD_SECURE:
        assert "default" not in stack_variables[name], f"the stack defaults {name}"
    assert blocks(TF / "envs" / "prod", "variable")["operator_ip_ranges"]["default"] == []
    assert call["operator_ip_ranges"] == "${var.operator_ip_ranges}"
    # The public API server of dev stays limited to operator_ip_ranges.
    validations = stack_variables["private_cluster"]["validation"]
    assert any("var.operator_ip_ranges" in v["condition"] for v in validations)


def test_the_charts_and_values_files_the_envs_install_exist() -> None:
    assert (ROOT / "charts" / "trademesh" / "Chart.yaml").is_file()
    for env in ENVS:
        environment = unquote(stack_call(env)["environment"])
        assert (ROOT / "charts" / "trademesh" / f"values-{environment}.yaml").is_file()
    versions = yaml.safe_load((ROOT / "charts" / "infra" / "versions.yaml").read_text())
    releases = {r["name"]: r for r in versions["releases"]}
    repositories = {r["name"] for r in versions["repositories"]}
    platform = blocks(TF / "modules" / "platform", "variable")
    defaults = [unquote(n) for n in platform["infra_releases"]["default"]]
    stack_default = [unquote(n) for n in blocks(STACK, "variable")["infra_releases"]["default"]]
    assert stack_default == defaults
    for env in ENVS:
        assert "infra_releases" not in stack_call(env), f"{env} installs other releases"
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
