"""The declared metric set: specs complete, names by Prometheus conventions, all exported."""

from __future__ import annotations

import re
import uuid
from collections import Counter as Tally
from typing import get_args

import pytest
from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from trademesh_observability import metrics
from trademesh_observability.metrics import (
    METRICS,
    REGISTRY,
    Kind,
    MetricSpec,
    declared_metric_names,
)

pytestmark = pytest.mark.unit

_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_BASE_UNITS = {"seconds", "bytes"}
_SPECS = {spec.name: spec for spec in METRICS}


def _declared_objects() -> dict[str, MetricWrapperBase]:
    return {
        name: value
        for name, value in vars(metrics).items()
        if isinstance(value, MetricWrapperBase) and not name.startswith("_")
    }


def _exported_name(metric: MetricWrapperBase) -> str:
    family = next(iter(metric.describe()))
    return f"{family.name}_total" if family.type == "counter" else family.name


def _spec_of(metric: MetricWrapperBase) -> MetricSpec:
    return _SPECS[_exported_name(metric)]


def test_declared_names_are_the_specs() -> None:
    assert declared_metric_names() == {spec.name for spec in METRICS}


def test_names_are_unique() -> None:
    duplicates = [name for name, n in Tally(spec.name for spec in METRICS).items() if n > 1]
    assert duplicates == []


@pytest.mark.parametrize("spec", METRICS, ids=lambda spec: spec.name)
def test_spec_is_complete(spec: MetricSpec) -> None:
    assert spec.kind in get_args(Kind)
    assert spec.help.strip() and spec.help.endswith(".")
    assert spec.unit.strip()
    assert spec.labels, "every metric is labelled at least by service"
    assert len(set(spec.labels)) == len(spec.labels)
    assert all(_SNAKE.match(label) for label in spec.labels)
    prefix = "faststream_" if spec.kind == "external" else "trademesh_"
    assert spec.name.startswith(prefix)
    if spec.kind != "external":
        assert spec.labels[0] == "service"


@pytest.mark.parametrize("spec", METRICS, ids=lambda spec: spec.name)
def test_name_follows_prometheus_conventions(spec: MetricSpec) -> None:
    assert _SNAKE.match(spec.name), spec.name
    if spec.kind == "counter":
        assert spec.name.endswith("_total")
    if spec.kind in ("gauge", "histogram"):
        assert not spec.name.endswith("_total")
    for suffix in ("_bucket", "_sum", "_count", "_created"):
        assert not spec.name.endswith(suffix)
    if spec.unit in _BASE_UNITS:
        assert spec.name.endswith(f"_{spec.unit}")
    for unit in _BASE_UNITS:
        if f"_{unit}" in spec.name:
            assert spec.unit == unit
    assert "_milliseconds" not in spec.name


def test_every_declared_object_matches_its_spec() -> None:
    objects = _declared_objects()
    own_specs = {spec.name for spec in METRICS if spec.kind != "external"}

    assert {_exported_name(m) for m in objects.values()} == own_specs
    for metric in objects.values():
        spec = _spec_of(metric)
        family = next(iter(metric.describe()))
        assert family.documentation == spec.help
        expected_type = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[spec.kind]
        assert isinstance(metric, expected_type)


def test_touched_metrics_are_exposed_with_help_and_type() -> None:
    service = f"unit-{uuid.uuid4().hex[:8]}"
    for metric in _declared_objects().values():
        spec = _spec_of(metric)
        child = metric.labels(**{label: service for label in spec.labels})
        if isinstance(child, Counter):
            child.inc()
        elif isinstance(child, Gauge):
            child.set(1)
        else:
            child.observe(0.01)

    text = generate_latest(REGISTRY).decode()

    for spec in METRICS:
        if spec.kind == "external":
            continue
        exposed_type = {"counter": "counter", "gauge": "gauge", "histogram": "histogram"}[spec.kind]
        assert f"# HELP {spec.name} {spec.help}\n" in text
        assert f"# TYPE {spec.name} {exposed_type}\n" in text
        sample = f"{spec.name}_count" if spec.kind == "histogram" else spec.name
        labels = ",".join(f'{label}="{service}"' for label in sorted(spec.labels))
        assert f"{sample}{{{labels}}} 1.0\n" in text


def test_registry_exports_only_declared_trademesh_metrics() -> None:
    declared = declared_metric_names()
    for family in REGISTRY.collect():
        exported = f"{family.name}_total" if family.type == "counter" else family.name
        if exported.startswith(("trademesh_", "faststream_")):
            assert exported in declared


def test_registry_has_process_collectors() -> None:
    names = {family.name for family in REGISTRY.collect()}
    assert "process_cpu_seconds" in names or "python_info" in names
