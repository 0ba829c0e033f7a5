"""`trademesh up --only` names services that exist, or stops before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from trademesh_cli.main import app
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
