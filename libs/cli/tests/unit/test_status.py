"""`trademesh status` finds each process's URL and where it serves /metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trademesh_cli.project import ServiceEntry, run_file
from trademesh_cli.status import _processes

pytestmark = pytest.mark.unit

SERVICES = [
    ServiceEntry(name="auth", module="trademesh_auth", port=8500),
    ServiceEntry(
        name="gateway", module="trademesh_gateway", port=8000, replicas=2, metrics_port=8090
    ),
]


def test_without_a_running_platform_the_registered_ports_are_used() -> None:
    assert _processes(SERVICES, 10, None) == [
        ("auth", "http://127.0.0.1:8510", "http://127.0.0.1:8510"),
        ("gateway", "http://127.0.0.1:8010", "http://127.0.0.1:8100"),
        ("gateway-2", "http://127.0.0.1:8011", "http://127.0.0.1:8101"),
    ]


def test_the_running_platforms_list_wins_and_an_older_one_has_metrics_on_its_url(
    tmp_path: Path,
) -> None:
    path = run_file(tmp_path)
    path.parent.mkdir(parents=True)
    rows = [
        {"name": "gateway", "url": "http://127.0.0.1:9000", "metrics_url": "http://127.0.0.1:9090"},
        {"name": "risk", "url": "http://127.0.0.1:9300"},  # written before metrics_url existed
    ]
    path.write_text(json.dumps(rows))
    assert _processes(SERVICES, 0, tmp_path) == [
        ("gateway", "http://127.0.0.1:9000", "http://127.0.0.1:9090"),
        ("risk", "http://127.0.0.1:9300", "http://127.0.0.1:9300"),
    ]
