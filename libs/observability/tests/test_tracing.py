"""configure_tracing: one global provider, OTLP export only when an endpoint is configured."""

from __future__ import annotations

import pytest
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from trademesh_observability.tracing import configure_tracing, get_tracer

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("fresh_tracing")]


def _exporters(provider: TracerProvider) -> list[SpanExporter]:
    """The exporters behind the provider's span processors (SDK internals, no public accessor)."""
    found: list[SpanExporter] = []
    for processor in provider._active_span_processor._span_processors:
        if isinstance(processor, BatchSpanProcessor):
            found.append(processor._batch_processor._exporter)
        elif isinstance(processor, SimpleSpanProcessor):
            found.append(processor.span_exporter)
    return found


def test_installs_a_global_sdk_provider() -> None:
    provider = configure_tracing("risk")

    assert isinstance(provider, TracerProvider)
    assert trace.get_tracer_provider() is provider


def test_without_endpoint_no_otlp_exporter() -> None:
    provider = configure_tracing("risk")

    assert provider._active_span_processor._span_processors == ()
    assert not any(isinstance(e, OTLPSpanExporter) for e in _exporters(provider))


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_with_endpoint_an_otlp_batch_exporter(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:9")

    provider = configure_tracing("risk")

    processors = provider._active_span_processor._span_processors
    assert len(processors) == 1
    assert isinstance(processors[0], BatchSpanProcessor)
    assert isinstance(_exporters(provider)[0], OTLPSpanExporter)


def test_empty_endpoint_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")

    provider = configure_tracing("risk")

    assert _exporters(provider) == []


def test_given_exporter_receives_spans_synchronously() -> None:
    exporter = InMemorySpanExporter()
    provider = configure_tracing("risk", exporter=exporter)

    with get_tracer("test").start_as_current_span("check-limits"):
        pass

    assert _exporters(provider) == [exporter]
    [span] = exporter.get_finished_spans()
    assert span.name == "check-limits"
    assert span.resource.attributes[SERVICE_NAME] == "risk"


def test_without_exporter_spans_are_not_recorded_but_keep_their_ids() -> None:
    configure_tracing("risk")

    tracer = get_tracer("test")
    with (
        tracer.start_as_current_span("outer") as outer,
        tracer.start_as_current_span("inner") as inner,
    ):
        pass

    assert not outer.is_recording()
    assert outer.get_span_context().is_valid  # the logs' trace_id and span_id
    assert inner.get_span_context().trace_id == outer.get_span_context().trace_id
    assert not outer.get_span_context().trace_flags.sampled


def test_without_exporter_a_remote_parent_trace_continues() -> None:
    configure_tracing("risk")
    parent = propagate.extract(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    )

    with get_tracer("test").start_as_current_span("child", context=parent) as child:
        carried: dict[str, str] = {}
        propagate.inject(carried)

    assert not child.is_recording()
    assert child.get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert carried["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")


def test_an_exporter_attached_later_records_from_then_on() -> None:
    configure_tracing("risk")
    with get_tracer("test").start_as_current_span("before") as before:
        pass
    exporter = InMemorySpanExporter()

    configure_tracing("risk", exporter=exporter)
    with get_tracer("test").start_as_current_span("after") as after:
        pass

    assert not before.is_recording() and after.get_span_context().trace_flags.sampled
    assert [s.name for s in exporter.get_finished_spans()] == ["after"]


def test_resource_names_service_and_version() -> None:
    provider = configure_tracing("risk", version="1.2.3")

    assert provider.resource.attributes[SERVICE_NAME] == "risk"
    assert provider.resource.attributes[SERVICE_VERSION] == "1.2.3"


def test_otel_service_name_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "risk-canary")

    provider = configure_tracing("risk")

    assert provider.resource.attributes[SERVICE_NAME] == "risk-canary"


def test_otel_resource_attributes_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")

    provider = configure_tracing("risk")

    assert provider.resource.attributes["deployment.environment"] == "staging"


def test_service_name_in_otel_resource_attributes_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=risk-from-env")

    provider = configure_tracing("risk")

    assert provider.resource.attributes[SERVICE_NAME] == "risk-from-env"


def test_second_call_reuses_provider_and_adds_exporter() -> None:
    first_exporter = InMemorySpanExporter()
    second_exporter = InMemorySpanExporter()

    first = configure_tracing("risk", exporter=first_exporter)
    second = configure_tracing("other", exporter=second_exporter)

    assert second is first
    assert second.resource.attributes[SERVICE_NAME] == "risk"
    with get_tracer("test").start_as_current_span("twice"):
        pass
    assert [s.name for s in first_exporter.get_finished_spans()] == ["twice"]
    assert [s.name for s in second_exporter.get_finished_spans()] == ["twice"]


def test_reuses_a_provider_set_elsewhere() -> None:
    own = TracerProvider()
    trace.set_tracer_provider(own)

    assert configure_tracing("risk") is own


def test_get_tracer_uses_the_global_provider() -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("risk", exporter=exporter)

    with get_tracer("trademesh.test").start_as_current_span("outer") as outer:
        assert outer.get_span_context().is_valid
        with get_tracer("trademesh.test").start_as_current_span("inner"):
            pass

    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["inner"].parent is not None
    assert spans["inner"].parent.span_id == spans["outer"].context.span_id
