"""The hints the command line prints name it as a reader can run it: the workspace's wrapper."""

from __future__ import annotations

from pathlib import Path

import pytest
from trademesh_cli.main import app
from trademesh_cli.project import cli_command
from typer.testing import CliRunner

pytestmark = pytest.mark.unit


def _workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["libs/*"]\n')
    (root / "trademesh").write_text("#!/bin/sh\n")
    return root


def test_at_the_root_the_hint_is_dot_slash_trademesh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_workspace(tmp_path / "ws"))
    assert cli_command() == "./trademesh"


def test_below_the_root_the_hint_climbs_to_the_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(tmp_path / "ws")
    (root / "services" / "risk").mkdir(parents=True)
    monkeypatch.chdir(root / "services" / "risk")
    assert cli_command() == "../../trademesh"


def test_outside_a_workspace_the_hint_is_the_bare_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_command() == "trademesh"


def test_no_broker_hint_names_the_wrapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _workspace(tmp_path / "ws")
    monkeypatch.chdir(root)
    monkeypatch.delenv("TRADEMESH_KAFKA_BOOTSTRAP", raising=False)
    result = CliRunner().invoke(app, ["events", "tail", "md.ticks.v1", "--home", str(root / "h")])
    assert result.exit_code == 2
    assert "no broker: run `./trademesh infra up`" in result.output
