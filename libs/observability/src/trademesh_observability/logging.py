"""structlog JSON logs (one object per line) with service, trace and request ids; secrets redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any, Literal, TextIO

import structlog
from opentelemetry import trace

request_id_var: ContextVar[str | None] = ContextVar("trademesh_request_id", default=None)

_SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "database_url",
    "master_key",
    "private_key",
    "credential",
)
REDACTED = "[REDACTED]"
_MAX_REDACT_DEPTH = 8
_DICT_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)
_HANDLER_NAME = "trademesh"


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _redacted(value: Any, depth: int = 0) -> Any:
    """A copy of value with secret-named keys masked, through nested mappings and sequences."""
    if depth > _MAX_REDACT_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and _is_secret_key(key)
            else _redacted(v, depth + 1)
            for key, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redacted(item, depth + 1) for item in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask the value of any key that names a secret (password, token, database_url, ...),
    also inside nested dicts and lists (a logged settings dict, a request body)."""
    for key in list(event):
        if key == "event":
            continue
        if _is_secret_key(key):
            event[key] = REDACTED
        elif isinstance(event[key], Mapping | list | tuple):
            event[key] = _redacted(event[key])
    return event


def add_trace_context(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    span = trace.get_current_span()
    context = span.get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", f"{context.trace_id:032x}")
        event.setdefault("span_id", f"{context.span_id:016x}")
    request_id = request_id_var.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _add_service(service: str) -> structlog.types.Processor:
    def processor(
        _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event.setdefault("service", service)
        return event

    return processor


def configure_logging(
    service: str,
    *,
    level: str = "INFO",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Send structlog and stdlib logging (uvicorn, faststream, aiokafka) through one formatter:
    JSON lines, or a pretty console when `fmt` is console or auto on a terminal. Idempotent."""
    stream = stream or sys.stderr
    pretty = fmt == "console" or (fmt == "auto" and stream.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
        add_trace_context,
        redact_secrets,
    ]
    renderer: structlog.types.Processor = (
        # Plain tracebacks: rich's pretty ones print frame locals, which can hold secrets.
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if pretty
        else structlog.processors.JSONRenderer()
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks as data, without frame locals: locals can hold secrets.
            _DICT_TRACEBACKS if not pretty else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx and httpcore log every request's URL at INFO (and headers at DEBUG): a URL may hold
    # a token (a user's webhook URL, the Telegram Bot API's /bot<token>/), so they log warnings
    # and up only, whatever the level.
    for noisy in ("aiokafka", "asyncio", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def _identity(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return event


def get_logger(name: str) -> Any:
    """A structlog logger: `log.info("order placed", client_order_id=...)`."""
    return structlog.stdlib.get_logger(name)
