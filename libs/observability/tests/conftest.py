"""Fixtures that undo what configure_logging / configure_tracing do to process-global state."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util._once import Once

_TOUCHED_LOGGERS = (
    "aiokafka",
    "asyncio",
    "httpx",
    "httpcore",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "faststream",
)
_OTEL_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put the root logger, the loggers configure_logging adjusts and structlog back as they were."""
    root = logging.getLogger()
    root_level = root.level
    root_handlers = list(root.handlers)
    saved = {
        name: (lg.level, list(lg.handlers), lg.propagate)
        for name in _TOUCHED_LOGGERS
        for lg in [logging.getLogger(name)]
    }
    structlog.contextvars.clear_contextvars()
    yield
    for handler in list(root.handlers):
        if handler not in root_handlers:
            root.removeHandler(handler)
    root.setLevel(root_level)
    for name, (level, handlers, propagate) in saved.items():
        lg = logging.getLogger(name)
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def _reset_global_tracer_provider() -> None:
    # The OpenTelemetry API lets a process set the global provider only once; tests need a fresh one.
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.shutdown()
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def fresh_tracing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No global tracer provider and no OTEL_* variables during the test; afterwards the provider
    of before is back, untouched: modules of other packages bound their tracers to it when they
    were imported (trademesh_bus's), and later tests in this process attach exporters to it."""
    for var in _OTEL_VARS:
        monkeypatch.delenv(var, raising=False)
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE)
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    yield
    _reset_global_tracer_provider()  # the test's own provider, shut down
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def json_lines(log_stream: io.StringIO) -> Callable[[], list[dict[str, Any]]]:
    """Parse every line written to `log_stream` as one JSON object (fails if one is not)."""

    def parse() -> list[dict[str, Any]]:
        return [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]

    return parse
