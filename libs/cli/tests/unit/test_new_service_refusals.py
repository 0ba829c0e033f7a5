"""`trademesh new-service` refuses bad input with a clear message and writes nothing."""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path

import pytest
from trademesh_cli.main import app
from trademesh_cli.scaffold import (
    ScaffoldError,
    ServiceSpec,
    check,
    new_service,
    next_free_port,
    render,
)
from typer.testing import CliRunner

from ..conftest import snapshot

pytestmark = pytest.mark.unit


def _add_service(
    root: Path, name: str, port: int, replicas: int = 1, metrics_port: int | None = None
) -> None:
    folder = root / "services" / name
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [project]
        name = "trademesh-{name}"
        version = "0.1.0"
        [tool.trademesh.service]
        name = "{name}"
        module = "trademesh_{name.replace("-", "_")}"
        port = {port}
        replicas = {replicas}
        """)
        + (f"metrics_port = {metrics_port}\n" if metrics_port else "")
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("pricing demo", "lowercase letters, digits and single dashes"),
        ("Pricing", "lowercase letters"),
        ("pricing_demo", "single dashes"),
        ("pricing--demo", "single dashes"),
        ("-pricing", "starting with a letter"),
        ("9lives", "starting with a letter"),
        ("p", "2-30"),
        ("a" * 31, "2-30"),
        ("class", "Python keyword"),
        ("async", "Python keyword"),
        ("match", "Python keyword"),
        ("events", "clashes with the library trademesh_events"),
        ("testing", "clashes with the library trademesh_testing"),
        ("workspace", "reserved"),
    ],
)
def test_a_bad_name_is_refused_and_nothing_is_written(
    workspace: Path, name: str, reason: str
) -> None:
    before = snapshot(workspace)
    with pytest.raises(ScaffoldError, match=reason):
        new_service(ServiceSpec(slug=name), workspace, update_lock=False)
    assert snapshot(workspace) == before


def test_an_existing_service_name_is_refused(workspace: Path) -> None:
    _add_service(workspace, "pricing-demo", 8100)
    before = snapshot(workspace)
    with pytest.raises(ScaffoldError, match="already exists"):
        new_service(ServiceSpec(slug="pricing-demo"), workspace, update_lock=False)
    assert snapshot(workspace) == before


def test_a_taken_port_is_refused_with_the_next_free_one(workspace: Path) -> None:
    _add_service(workspace, "alpha", 8100, replicas=2)
    with pytest.raises(ScaffoldError, match="port 8101 is used by alpha; free: 8102"):
        check(ServiceSpec(slug="beta", port=8101), workspace)
    assert check(ServiceSpec(slug="beta"), workspace).port == 8102


def test_another_services_metrics_port_is_taken_too(workspace: Path) -> None:
    _add_service(workspace, "gateway", 8000, replicas=2, metrics_port=8090)
    with pytest.raises(ScaffoldError, match="port 8091 is used by gateway"):
        check(ServiceSpec(slug="beta", port=8091), workspace)


def test_unknown_topics_are_refused(workspace: Path) -> None:
    with pytest.raises(ScaffoldError, match=re.escape("unknown topic 'md.candles.v1'")):
        check(ServiceSpec(slug="beta", consumes=("md.candles.v1",)), workspace)
    with pytest.raises(ScaffoldError, match="unknown topic 'nope'"):
        check(ServiceSpec(slug="beta", produces=("nope",)), workspace)


def test_every_problem_is_named_at_once(workspace: Path) -> None:
    with pytest.raises(ScaffoldError) as raised:
        check(ServiceSpec(slug="class", port=80, consumes=("x",), description="a\nb"), workspace)
    message = str(raised.value)
    for part in ("Python keyword", "port 80", "unknown topic 'x'", "one line"):
        assert part in message


def test_ports_start_at_8100_and_follow_the_highest(workspace: Path) -> None:
    assert check(ServiceSpec(slug="beta"), workspace).port == 8100
    _add_service(workspace, "alpha", 8120, replicas=3)
    assert next_free_port([]) == 8100
    assert check(ServiceSpec(slug="beta"), workspace).port == 8123


def test_the_command_prints_the_reason_and_exits_2(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    result = CliRunner().invoke(app, ["new-service", "class"])
    assert result.exit_code == 2
    assert "Python keyword" in result.output
    result = CliRunner().invoke(app, ["new-service", "beta", "--consumes", "md.ticks.v1,nope"])
    assert result.exit_code == 2
    assert "unknown topic 'nope'" in result.output
    result = CliRunner().invoke(app, ["new-service", "x[/]y"])  # rich markup in the input
    assert result.exit_code == 2
    assert "invalid service name 'x[/]y'" in result.output
    assert snapshot(workspace) == before


@pytest.mark.parametrize("description", ["uses {{ cookiecutter.slug }}", "a {% raw %} b"])
def test_a_description_with_template_syntax_is_refused(workspace: Path, description: str) -> None:
    with pytest.raises(ScaffoldError, match="must not contain"):
        check(ServiceSpec(slug="beta", description=description), workspace)


def test_a_description_with_quotes_survives_into_the_manifest(
    workspace: Path, tmp_path: Path
) -> None:
    description = "Says \"hi\" \\ and 'bye'"
    spec = check(ServiceSpec("beta", description), workspace)
    target = render(spec, workspace / "service-template", tmp_path)
    pyproject = tomllib.loads((target / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == description
    # The about route states it from the manifest the package ships (the link to pyproject.toml).
    shipped = target / "src" / "trademesh_beta" / "pyproject.toml"
    assert shipped.is_symlink()
    assert tomllib.loads(shipped.read_text())["project"]["description"] == description
