"""The Grafana dashboards and the alert rules: well-formed, and reading only declared metrics."""

from __future__ import annotations

import re

import pytest
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry
from trademesh_observability.metrics import METRICS, REGISTRY
from trademesh_testing.promql import (
    GRAFANA_BUILTINS,
    dashboard_queries,
    dashboards,
    metric_names,
    panels,
    rule_queries,
    variables_of,
)

pytestmark = pytest.mark.unit

_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _faststream_kinds() -> dict[str, str]:
    """The type of each metric FastStream's Prometheus middleware exports, by exported name."""
    registry = CollectorRegistry()
    KafkaPrometheusMiddleware(registry=registry, app_name="types")
    return {
        (f"{f.name}_total" if f.type == "counter" else f.name): f.type for f in registry.collect()
    }


def queryable_names() -> set[str]:
    """Series names a query may read: the declared metrics (a histogram as its _bucket, _sum
    and _count series), the process and platform collectors on the same registry, and `up`."""
    external = _faststream_kinds()
    names = {"up"}
    for spec in METRICS:
        kind = external[spec.name] if spec.kind == "external" else spec.kind
        if kind == "histogram":
            names |= {spec.name + suffix for suffix in _HISTOGRAM_SERIES}
        else:
            names.add(spec.name)
    for family in REGISTRY.collect():
        if family.name.startswith(("process_", "python_")):
            names |= {sample.name for sample in family.samples}
    return names


def test_every_external_metric_is_one_faststream_exports() -> None:
    declared = {spec.name for spec in METRICS if spec.kind == "external"}
    assert declared <= set(_faststream_kinds()), declared - set(_faststream_kinds())


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        (
            'sum by (service, le) (rate(a_bucket{route!~"/x|/y", s=~"$service"}[$__rate_interval]))',
            {"a_bucket"},
        ),
        ("histogram_quantile(0.99, sum without (pod) (rate(b_bucket[5m:1m])))", {"b_bucket"}),
        ("a / on (service) group_left (check) b offset 1h30m > bool 0.5e3", {"a", "b"}),
        ("max(a) by (job) or vector(0) unless c and ignoring (x) d", {"a", "c", "d"}),
        ('count({__name__="named", job="by"}) - sum_over_time(e[1d] @ start())', {"named", "e"}),
        ("topk(5, f) * -Inf + NaN", {"f"}),
        ('label_replace(g, "dst", \'$1\', `src`, "(.*)")', {"g"}),
        ("rule:recorded:rate5m", {"rule:recorded:rate5m"}),
    ],
)
def test_metric_names_are_read_past_promql_syntax(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_metric_names_refuse_what_is_not_promql() -> None:
    with pytest.raises(ValueError, match="unexpected"):
        metric_names("sum(a) # b")
    with pytest.raises(ValueError, match="unbalanced"):
        metric_names("sum(a{x='y'}")


def test_there_are_the_three_dashboards() -> None:
    assert set(dashboards()) == {"platform.json", "trading.json", "kafka.json"}


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_dashboard_is_importable_grafana_json(name: str) -> None:
    board = dashboards()[name]
    assert board["uid"] and len(board["uid"]) <= 40, "Grafana uids are at most 40 characters"
    assert board["title"].startswith("trademesh")
    assert 36 <= board["schemaVersion"] <= 41
    assert "id" not in board or board["id"] is None, "an id pins the dashboard to one Grafana"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    everything = list(panels(board)) + [p for p in board["panels"] if p["type"] == "row"]
    ids = [panel["id"] for panel in everything]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels(board):
        assert panel["title"] and panel.get("description"), panel
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        # No data source uid of one installation: the ${datasource} variable everywhere.
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            used = variables_of(target["expr"]) - set(GRAFANA_BUILTINS)
            assert used <= set(variables), (panel["title"], used - set(variables))
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_uids_are_unique() -> None:
    uids = [board["uid"] for board in dashboards().values()]
    assert len(uids) == len(set(uids))


def test_every_panel_and_rule_reads_only_declared_metrics() -> None:
    allowed = queryable_names()
    unknown = {
        query.where: sorted(metric_names(query.expr) - allowed)
        for query in dashboard_queries() + rule_queries()
        if metric_names(query.expr) - allowed
    }
    assert not unknown, f"not declared in trademesh_observability.metrics: {unknown}"
    assert all(metric_names(query.expr) for query in dashboard_queries() + rule_queries())


def test_the_queries_cover_what_the_issue_asks_for() -> None:
    read = {n for query in dashboard_queries() for n in metric_names(query.expr)}
    wanted = {
        "trademesh_http_requests_total",
        "trademesh_http_request_duration_seconds_bucket",
        "trademesh_ready",
        "trademesh_md_bars_out_total",
        "trademesh_strategy_intents_total",
        "trademesh_risk_decisions_total",
        "trademesh_execution_fills_total",
        "trademesh_execution_realised_pnl",
        "trademesh_execution_equity",
        "trademesh_bus_published_total",
        "faststream_received_processed_messages_total",
        "trademesh_bus_consumer_lag",
        "trademesh_bus_dlq_total",
    }
    assert wanted <= read, wanted - read


def test_query_variables_read_declared_metrics() -> None:
    allowed = queryable_names()
    for name, board in dashboards().items():
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            found = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
            assert found, (name, variable["definition"])
            assert metric_names(found[1]) <= allowed, (name, variable["definition"])
            assert variable["query"]["query"] == variable["definition"], name
