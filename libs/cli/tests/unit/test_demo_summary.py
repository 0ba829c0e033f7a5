"""The figures `trademesh up` shows, read from the services' real Prometheus exposition."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from trademesh_cli.demo import _counter_sum

pytestmark = pytest.mark.unit


def _exposition() -> str:
    registry = CollectorRegistry()
    decisions = Counter(
        "trademesh_risk_decisions", "d", ["service", "decision", "reason"], registry=registry
    )
    decisions.labels("risk", "approved", "").inc(3)
    decisions.labels("risk", "denied", "MAX_NOTIONAL").inc(2)
    decisions.labels("risk", "denied", "KILL_SWITCH").inc(1)
    # A family whose name starts with the other's: its samples must not be counted.
    Counter("trademesh_risk_decisions_late", "l", registry=registry).inc(40)
    Histogram("trademesh_risk_decide_seconds", "h", registry=registry).observe(0.01)
    return generate_latest(registry).decode()


def test_a_counter_is_summed_over_the_series_its_labels_select() -> None:
    text = _exposition()
    assert _counter_sum(text, "trademesh_risk_decisions_total", decision="denied") == 3
    assert _counter_sum(text, "trademesh_risk_decisions_total", decision="approved") == 3
    assert _counter_sum(text, "trademesh_risk_decisions_total") == 6


def test_a_family_missing_from_the_exposition_counts_zero() -> None:
    assert _counter_sum(_exposition(), "trademesh_execution_fills_total") == 0
    assert _counter_sum("", "trademesh_execution_fills_total") == 0
