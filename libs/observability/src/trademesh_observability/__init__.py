"""Logging (structlog JSON), OpenTelemetry tracing, and the one declared set of Prometheus metrics."""
