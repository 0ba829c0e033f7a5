"""What a test logged, as the services write it: JSON lines through the project's own logging
configuration (service, trace and span ids, redaction), read back as dicts."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from trademesh_observability.logging import configure_logging


class LogLines:
    """The lines logged since the capture began, each parsed from its JSON."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._stream.getvalue().splitlines() if line.strip()]

    def named(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        """The lines whose message is `event` and whose fields have the given values."""
        return [
            line
            for line in self.all()
            if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
        ]


@contextmanager
def captured_logs(service: str = "test", level: str = "INFO") -> Iterator[LogLines]:
    """Log as a service does (configure_logging, JSON) into memory for the block; the logging
    configuration before it is put back afterwards."""
    root = logging.getLogger()
    level_before, handlers_before = root.level, list(root.handlers)
    structlog_before = structlog.get_config()
    stream = io.StringIO()
    configure_logging(service, level=level, fmt="json", stream=stream)
    try:
        yield LogLines(stream)
    finally:
        for handler in list(root.handlers):
            if handler not in handlers_before:
                root.removeHandler(handler)
        for handler in handlers_before:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level_before)
        structlog.configure(**structlog_before)
