"""The server span of every request: named by route template, continuing the caller's trace."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from trademesh_http import create_http_app
from trademesh_observability.tracing import configure_tracing

from .conftest import make_client

pytestmark = pytest.mark.unit

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    configure_tracing("http-tests", exporter=exporter)
    return exporter


async def test_one_server_span_per_request_named_by_its_route(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    response = await client.get("/items/7", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200

    mine = [s for s in spans.get_finished_spans() if f"{s.context.trace_id:032x}" == TRACE_ID]
    assert [s.name for s in mine] == ["GET /items/{item_id}"]  # no receive/send spans
    [span] = mine
    assert span.kind == SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"


async def test_unmatched_and_platform_paths(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    await client.get("/nowhere", headers={"traceparent": TRACEPARENT})
    await client.get("/health", headers={"traceparent": TRACEPARENT})
    mine = [s for s in spans.get_finished_spans() if f"{s.context.trace_id:032x}" == TRACE_ID]
    # An unmatched path keeps the bare method (no path: ids would make a name per request);
    # /health, /ready and /metrics are not traced at all.
    assert [s.name for s in mine] == ["GET"]


async def test_a_route_under_a_prefix_names_the_span_with_the_whole_template(
    service: str, spans: InMemorySpanExporter
) -> None:
    router = APIRouter()

    @router.get("/bots/{bot_id}")
    async def bot(bot_id: str) -> dict[str, str]:
        return {"bot_id": bot_id}

    app = create_http_app(service=service)
    app.include_router(router, prefix="/api/v1")
    async with make_client(app) as client:
        await client.get("/api/v1/bots/b1", headers={"traceparent": TRACEPARENT})
    mine = [s for s in spans.get_finished_spans() if f"{s.context.trace_id:032x}" == TRACE_ID]
    assert [s.name for s in mine] == ["GET /api/v1/bots/{bot_id}"]
