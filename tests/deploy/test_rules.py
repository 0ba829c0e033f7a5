"""The alert rules: promtool accepts them, its unit test of every alert passes, and each alert
tells the operator what to look at."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from trademesh_testing.promql import RULES, rules

RULE_TESTS = RULES.with_name("trademesh.rules.test.yaml")
# The alerts the platform promises (service down, error rate, consumer lag growing, DLQ
# non-empty, kill switch, daily loss limit, reconciliation discrepancy, notifications dropped),
# by the names the rule file gives them.
REQUIRED = {
    "TrademeshServiceDown",
    "TrademeshServiceNotReady",
    "TrademeshHighErrorRate",
    "TrademeshConsumerLagGrowing",
    "TrademeshDeadLetters",
    "TrademeshKillSwitchEngaged",
    "TrademeshDailyLossLimitHit",
    "TrademeshReconciliationDiscrepancy",
    "TrademeshNotificationsDropped",
}


def _promtool(require_tool: Callable[[str, str], str], *args: str) -> None:
    promtool = require_tool("promtool", "Prometheus' rule checker, from Debian's prometheus")
    done = subprocess.run(
        [promtool, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.integration
def test_promtool_checks_the_rules(require_tool: Callable[[str, str], str]) -> None:
    _promtool(require_tool, "check", "rules", RULES.name)


@pytest.mark.integration
def test_promtool_unit_tests_of_the_rules_pass(require_tool: Callable[[str, str], str]) -> None:
    _promtool(require_tool, "test", "rules", RULE_TESTS.name)


@pytest.mark.unit
def test_the_issues_alerts_are_there() -> None:
    assert {rule.get("alert") for rule in rules()} >= REQUIRED


@pytest.mark.unit
@pytest.mark.parametrize("rule", rules(), ids=lambda rule: str(rule.get("alert")))
def test_alert_has_severity_summary_and_description(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Trademesh")
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["annotations"]["summary"].strip()
    assert len(rule["annotations"]["description"]) > 80, "say what to look at"


@pytest.mark.unit
def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases: dict[str, list[list[Any]]] = {}
    for group in yaml.safe_load(Path(RULE_TESTS).read_text())["tests"]:
        for check in group.get("alert_rule_test", []):
            cases.setdefault(check["alertname"], []).append(check["exp_alerts"])
    for rule in rules():
        expected = cases.get(rule["alert"], [])
        assert any(expected), f"{rule['alert']}: no case where it fires"
        assert not all(expected), f"{rule['alert']}: no case where it stays quiet"
