"""OpenTelemetry tracing: the service's tracer provider, exporting over OTLP/HTTP when configured."""

from __future__ import annotations

import os
from collections.abc import Iterator
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

_OTLP_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


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
        if any(os.environ.get(var) for var in _OTLP_VARS):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
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
