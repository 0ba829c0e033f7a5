"""configure_logging: one JSON object per line for structlog and stdlib, trace/request ids, redaction."""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from trademesh_observability.logging import (
    REDACTED,
    configure_logging,
    get_logger,
    redact_secrets,
    request_id_var,
)
from trademesh_observability.tracing import configure_tracing, get_tracer, use_traceparent

pytestmark = pytest.mark.unit

JsonLines = Callable[[], list[dict[str, Any]]]
SERVICE = "order-gateway"
CONSOLE_PASSWORD = f"pw-{uuid.uuid4().hex}"  # made at run time: not a committed secret


def _assert_recent_utc(timestamp: str) -> None:
    assert timestamp.endswith("Z"), timestamp
    parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - parsed) < timedelta(minutes=1)


class _TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- JSON lines ------------------------------------------------------------------------------


def test_structlog_line_is_one_json_object(log_stream: io.StringIO, json_lines: JsonLines) -> None:
    configure_logging(SERVICE, fmt="json", stream=log_stream)

    get_logger("trademesh.orders").info("order placed", client_order_id="c-1", qty=3)

    assert len(log_stream.getvalue().splitlines()) == 1
    [line] = json_lines()
    assert line["event"] == "order placed"
    assert line["service"] == SERVICE
    assert line["level"] == "info"
    assert line["logger"] == "trademesh.orders"
    assert line["client_order_id"] == "c-1"
    assert line["qty"] == 3
    _assert_recent_utc(line["timestamp"])


def test_stdlib_line_is_one_json_object(log_stream: io.StringIO, json_lines: JsonLines) -> None:
    configure_logging(SERVICE, fmt="json", stream=log_stream)

    logging.getLogger("uvicorn.error").warning("listening on %s:%d", "0.0.0.0", 8080)

    assert len(log_stream.getvalue().splitlines()) == 1
    [line] = json_lines()
    assert line["event"] == "listening on 0.0.0.0:8080"
    assert line["service"] == SERVICE
    assert line["level"] == "warning"
    assert line["logger"] == "uvicorn.error"
    _assert_recent_utc(line["timestamp"])


def test_stdlib_extra_fields_are_kept(log_stream: io.StringIO, json_lines: JsonLines) -> None:
    configure_logging(SERVICE, fmt="json", stream=log_stream)

    logging.getLogger("std").info("fill", extra={"fill_qty": 7})

    [line] = json_lines()
    assert line["fill_qty"] == 7


def test_level_filters_lower_levels(log_stream: io.StringIO, json_lines: JsonLines) -> None:
    configure_logging(SERVICE, level="warning", fmt="json", stream=log_stream)
    log = get_logger("t")

    log.info("dropped")
    logging.getLogger("std").debug("dropped too")
    log.error("kept")

    assert [line["event"] for line in json_lines()] == ["kept"]
    assert logging.getLogger().level == logging.WARNING


def test_noisy_and_server_loggers_are_tamed() -> None:
    logging.getLogger("uvicorn.access").addHandler(logging.NullHandler())
    logging.getLogger("uvicorn.access").propagate = False

    configure_logging(SERVICE, level="DEBUG", fmt="json", stream=io.StringIO())

    assert logging.getLogger("aiokafka").level == logging.WARNING
    assert logging.getLogger("asyncio").level == logging.WARNING
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream"):
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate is True


async def test_a_url_httpx_requests_is_never_logged(
    log_stream: io.StringIO, json_lines: JsonLines
) -> None:
    configure_logging(SERVICE, level="DEBUG", fmt="json", stream=log_stream)
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with httpx.AsyncClient(transport=transport) as client:
        answer = await client.post("https://api.example.org/bot123456:SECRET-token/sendMessage")

    assert answer.status_code == 200
    assert "SECRET-token" not in log_stream.getvalue()
    assert logging.getLogger("httpx").level == logging.WARNING


def test_configure_is_idempotent(log_stream: io.StringIO, json_lines: JsonLines) -> None:
    configure_logging("first", fmt="json", stream=io.StringIO())
    configure_logging(SERVICE, fmt="json", stream=log_stream)
    configure_logging(SERVICE, fmt="json", stream=log_stream)

    get_logger("t").info("once")
    logging.getLogger("std").info("once too")

    assert [(line["event"], line["service"]) for line in json_lines()] == [
        ("once", SERVICE),
        ("once too", SERVICE),
    ]
    named = [h for h in logging.getLogger().handlers if h.get_name() == "trademesh"]
    assert len(named) == 1


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(SERVICE, fmt="json")

    get_logger("t").info("to stderr")

    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err.strip().splitlines()[-1])["event"] == "to stderr"


def test_bound_contextvars_are_merged(log_stream: io.StringIO, json_lines: JsonLines) -> None:
    configure_logging(SERVICE, fmt="json", stream=log_stream)
    structlog.contextvars.bind_contextvars(bot_id="bot-7")

    get_logger("t").info("tick")
    logging.getLogger("std").info("std tick")

    assert [line["bot_id"] for line in json_lines()] == ["bot-7", "bot-7"]


# --- trace and request ids -------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_tracing")
def test_trace_and_span_ids_inside_a_span(log_stream: io.StringIO, json_lines: JsonLines) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing(SERVICE, exporter=exporter)
    configure_logging(SERVICE, fmt="json", stream=log_stream)

    with get_tracer("test").start_as_current_span("place-order") as span:
        get_logger("t").info("inside")
        logging.getLogger("std").info("inside std")
        context = span.get_span_context()
    get_logger("t").info("outside")

    [finished] = exporter.get_finished_spans()
    assert finished.context.trace_id == context.trace_id
    inside, inside_std, outside = json_lines()
    for line in (inside, inside_std):
        assert line["trace_id"] == f"{context.trace_id:032x}"
        assert line["span_id"] == f"{context.span_id:016x}"
        assert len(line["trace_id"]) == 32 and len(line["span_id"]) == 16
    assert "trace_id" not in outside
    assert "span_id" not in outside


def test_a_traceparent_in_use_gives_its_trace_and_span_ids(
    log_stream: io.StringIO, json_lines: JsonLines
) -> None:
    # What a batch handler does for one record, or execution for an order's later event.
    configure_logging(SERVICE, fmt="json", stream=log_stream)
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]

    with use_traceparent(f"00-{trace_id}-{span_id}-01"):
        get_logger("t").info("order filled", client_order_id="c-1")
    with use_traceparent(None):
        get_logger("t").info("no trace")

    inside, without = json_lines()
    assert (inside["trace_id"], inside["span_id"]) == (trace_id, span_id)
    assert "trace_id" not in without


def test_no_trace_ids_without_a_span(log_stream: io.StringIO, json_lines: JsonLines) -> None:
    configure_logging(SERVICE, fmt="json", stream=log_stream)

    get_logger("t").info("no span")

    [line] = json_lines()
    assert "trace_id" not in line
    assert "span_id" not in line


def test_request_id_from_context_var(log_stream: io.StringIO, json_lines: JsonLines) -> None:
    configure_logging(SERVICE, fmt="json", stream=log_stream)
    log = get_logger("t")

    log.info("before")
    token = request_id_var.set("req-42")
    try:
        log.info("during")
        logging.getLogger("std").info("during std")
    finally:
        request_id_var.reset(token)
    log.info("after")

    before, during, during_std, after = json_lines()
    assert "request_id" not in before
    assert during["request_id"] == "req-42"
    assert during_std["request_id"] == "req-42"
    assert "request_id" not in after


# --- redaction ------------------------------------------------------------------------------

SECRET_KEYS = [
    "password",
    "db_password",
    "passwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "Authorization",
    "cookie",
    "database_url",
    "DATABASE_URL",
    "master_key",
    "private_key",
    "credentials",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys_are_redacted(key: str, log_stream: io.StringIO, json_lines: JsonLines) -> None:
    configure_logging(SERVICE, fmt="json", stream=log_stream)
    value = f"VALUE-OF-{key.upper()}-9f3a"

    get_logger("t").info("structlog", **{key: value})
    logging.getLogger("std").info("stdlib", extra={key: value})

    assert value not in log_stream.getvalue()
    assert [line[key] for line in json_lines()] == [REDACTED, REDACTED]


def test_redaction_keeps_other_keys_and_the_event() -> None:
    event = {"event": "token refreshed", "password": "pw", "symbol": "AAPL", "qty": 1}

    result = redact_secrets(None, "info", event)

    assert result == {"event": "token refreshed", "password": REDACTED, "symbol": "AAPL", "qty": 1}


def test_secret_str_value_never_appears(log_stream: io.StringIO, json_lines: JsonLines) -> None:
    configure_logging(SERVICE, fmt="json", stream=log_stream)
    secret = SecretStr("hunter2-plaintext")

    get_logger("t").info("connecting", dsn=secret, settings={"dsn": secret})
    logging.getLogger("std").info("connecting to %s", secret)

    output = log_stream.getvalue()
    assert "hunter2-plaintext" not in output
    structlog_line, stdlib_line = json_lines()
    assert structlog_line["dsn"] == "SecretStr('**********')"
    assert structlog_line["settings"] == {"dsn": "SecretStr('**********')"}
    assert stdlib_line["event"] == "connecting to **********"


def test_nested_secret_keys_are_redacted(log_stream: io.StringIO) -> None:
    configure_logging(SERVICE, fmt="json", stream=log_stream)

    get_logger("t").info(
        "settings loaded", settings={"database_url": "postgresql://u:NESTED-PW@db/x"}
    )

    assert "NESTED-PW" not in log_stream.getvalue()


# --- exceptions -----------------------------------------------------------------------------


# Joined at run time so that the value never appears in source lines a traceback may quote.
_LOCAL_PARTS = ("LOCAL", "VARIABLE", "VALUE", "77")
LOCAL_VALUE = "-".join(_LOCAL_PARTS)


def _fail_with_local() -> None:
    local_secret = "-".join(_LOCAL_PARTS)
    raise ValueError(f"boom at {len(local_secret)}")


@pytest.mark.parametrize("via", ["structlog", "stdlib"])
def test_exception_traceback_without_locals(
    via: str, log_stream: io.StringIO, json_lines: JsonLines
) -> None:
    configure_logging(SERVICE, fmt="json", stream=log_stream)

    try:
        _fail_with_local()
    except ValueError:
        if via == "structlog":
            get_logger("t").exception("order failed")
        else:
            logging.getLogger("std").exception("order failed")

    [line] = json_lines()
    assert line["event"] == "order failed"
    assert line["level"] == "error"
    [exc] = line["exception"]
    assert exc["exc_type"] == "ValueError"
    assert exc["exc_value"] == "boom at 23"
    frame_names = [frame["name"] for frame in exc["frames"]]
    assert "_fail_with_local" in frame_names
    assert all("locals" not in frame for frame in exc["frames"])
    assert LOCAL_VALUE not in log_stream.getvalue()
    assert "exc_info" not in line


# --- formats --------------------------------------------------------------------------------


def test_console_format_is_human_text(log_stream: io.StringIO) -> None:
    configure_logging(SERVICE, fmt="console", stream=log_stream)

    get_logger("t").info("order placed", qty=3, password=CONSOLE_PASSWORD)

    output = log_stream.getvalue()
    [line] = output.splitlines()
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
    assert "order placed" in line
    assert "qty" in line
    assert CONSOLE_PASSWORD not in output
    assert REDACTED in output


def test_auto_format_is_json_on_a_non_tty(log_stream: io.StringIO, json_lines: JsonLines) -> None:
    assert not log_stream.isatty()
    configure_logging(SERVICE, fmt="auto", stream=log_stream)

    get_logger("t").info("auto")

    [line] = json_lines()
    assert line["event"] == "auto"


def test_auto_format_is_console_on_a_tty() -> None:
    stream = _TtyStream()
    configure_logging(SERVICE, fmt="auto", stream=stream)

    get_logger("t").info("auto tty")

    output = stream.getvalue()
    assert "auto tty" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


def test_console_exception_does_not_show_locals() -> None:
    stream = _TtyStream()
    configure_logging(SERVICE, fmt="auto", stream=stream)

    try:
        _fail_with_local()
    except ValueError:
        get_logger("t").exception("order failed")

    output = stream.getvalue()
    assert "ValueError" in output
    assert LOCAL_VALUE not in output


def test_stderr_isatty_is_consulted_for_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _TtyStream()
    monkeypatch.setattr(sys, "stderr", fake)

    configure_logging(SERVICE)
    get_logger("t").info("hello tty")

    output = fake.getvalue()
    assert "hello tty" in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])
