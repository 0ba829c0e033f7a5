"""OpenTelemetry tracing: the service's tracer provider, exporting over OTLP/HTTP when configured."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import (
    SERVICE_NAME,
    SERVICE_VERSION,
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

_OTLP_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class WhileExporting(Sampler):
    """The provider's own sampler once an exporter is attached; until then no span is recorded.

    A recorded span costs its attributes, events and a processor call per span (a few dozen
    microseconds on a small request, several spans each) even when nothing exports it. A span
    that is not recorded still has its ids, from its parent or new: logs carry trace_id and
    span_id, and the trace context still travels to the next service (marked not sampled).
    """

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate
        self.exporting = False

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if not self.exporting:
            parent = trace.get_current_span(parent_context).get_span_context()
            return SamplingResult(Decision.DROP, None, parent.trace_state)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"WhileExporting{{{self.delegate.get_description()}}}"


def _exporting(provider: TracerProvider) -> None:
    if isinstance(provider.sampler, WhileExporting):
        provider.sampler.exporting = True


def configure_tracing(
    service: str, *, version: str = "0.1.0", exporter: SpanExporter | None = None
) -> TracerProvider:
    """Install (once) the global tracer provider.

    Resource attributes come from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES (read by the SDK),
    defaulting the service name to `service`. Spans are exported over OTLP/HTTP only when an OTLP
    endpoint variable is set; `exporter` (tests pass an in-memory one) is attached synchronously.
    Calling again returns the installed provider and attaches a newly given exporter to it.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        # Our defaults first; OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME override them.
        resource = Resource.create({SERVICE_NAME: service, SERVICE_VERSION: version}).merge(
            OTELResourceDetector().detect()
        )
        provider = TracerProvider(resource=resource)
        # OTEL_TRACES_SAMPLER's sampler (the SDK's default), gated; before any tracer exists.
        provider.sampler = WhileExporting(provider.sampler)
        if any(os.environ.get(var) for var in _OTLP_VARS):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _exporting(provider)
        trace.set_tracer_provider(provider)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        _exporting(provider)
    return provider


def get_tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


@contextmanager
def use_traceparent(traceparent: str | None) -> Iterator[None]:
    """Within this block the trace of `traceparent` (a W3C traceparent header) is the current
    one: what is logged there carries its trace and span ids, and what is published or written
    to the outbox travels under it. For work done for one record of a batch, or for an order
    long after the message it came with (a fill a later bar causes). None changes nothing."""
    if not traceparent:
        yield
        return
    token = otel_context.attach(propagate.extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        otel_context.detach(token)
