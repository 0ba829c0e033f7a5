"""`trademesh up --only` names services that exist, or stops before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from trademesh_cli.main import app
from trademesh_cli.supervisor import parse_replicas
from typer.testing import CliRunner

pytestmark = pytest.mark.unit


def test_only_with_an_unknown_service_exits_2_before_starting_anything(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    home = workspace / "home"
    result = CliRunner().invoke(app, ["up", "--only", "nope", "--home", str(home)])
    assert result.exit_code == 2
    assert "unknown service(s): nope; known: event-logger" in result.output
    assert not home.exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("strategy", "is not NAME=COUNT"),
        ("strategy=two", "is not NAME=COUNT"),
        ("risk=0", "between 1 and 9 replicas"),
        ("risk=12", "between 1 and 9 replicas"),
    ],
)
def test_replicas_that_do_not_parse_exit_2_before_starting_anything(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, spec: str, message: str
) -> None:
    monkeypatch.chdir(workspace)
    home = workspace / "home"
    result = CliRunner().invoke(app, ["up", "--replicas", spec, "--home", str(home)])
    assert result.exit_code == 2
    assert message in result.output
    assert not home.exists()


def test_replicas_of_an_unknown_service_exit_2_before_starting_anything(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    home = workspace / "home"
    result = CliRunner().invoke(app, ["up", "--replicas", "strategy=2", "--home", str(home)])
    assert result.exit_code == 2
    assert "--replicas names unknown service(s): strategy" in result.output
    assert not home.exists()


def test_an_unknown_restart_policy_exits_2(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)
    result = CliRunner().invoke(app, ["up", "--restart", "sometimes"])
    assert result.exit_code == 2
    assert "always, never" in result.output


def test_replica_counts_parse() -> None:
    assert parse_replicas("strategy=2, risk=3,") == {"strategy": 2, "risk": 3}
    assert parse_replicas(None) == {}
