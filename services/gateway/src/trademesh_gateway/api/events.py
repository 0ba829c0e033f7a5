"""GET /api/v1/events/stream: the caller's own events as server-sent events.

sse-starlette's EventSourceResponse: it sends the heartbeat (a comment line every
sse_heartbeat_s, so proxies keep the connection and the client sees it alive), notices a client
that went away, and stops the generator when the server shuts down.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from trademesh_gateway.api.deps import RuntimeDep
from trademesh_gateway.engine import Route

router = APIRouter(prefix="/events", tags=["events"])

STREAM_ROUTE = Route("GET", "/events/stream", "execution", "viewer", "Your events, as they come")


@router.get(
    "/stream",
    summary="Your order events, denials and bot state changes, as server-sent events",
    description="Any signed-in user; only the caller's own events. Each event's `event` field "
    "is its type (e.g. trademesh.order.filled), `id` its event id, `data` a JSON object with "
    "topic, type, id, time and the event. A comment line comes every few seconds when idle.",
    response_class=EventSourceResponse,
    openapi_extra={"security": [{"accessToken": []}, {"apiKey": []}, {"apiKeyHeader": []}]},
)
async def stream(request: Request, runtime: RuntimeDep) -> EventSourceResponse:
    proxy = runtime.proxy
    await proxy.rate_limits.hit_ip(proxy.client_address(request))
    caller = await proxy.authenticate(request)
    await proxy.rate_limits.hit_user(str(caller.user_id))
    proxy.authorise(STREAM_ROUTE, caller)
    hub = runtime.hub
    user = caller.user_id
    hub.admit(user)  # a 429 problem now, rather than a stream that ends at once

    async def events() -> AsyncIterator[ServerSentEvent]:
        async with hub.subscribe(user) as queue:
            yield ServerSentEvent(comment="connected")
            while True:
                item = await queue.get()
                data: dict[str, Any] = {
                    "topic": item.topic,
                    "type": item.type,
                    "id": item.id,
                    **item.data,
                }
                yield ServerSentEvent(data=json.dumps(data), event=item.type, id=item.id)

    return EventSourceResponse(events(), ping=runtime.settings.sse_heartbeat_s)
