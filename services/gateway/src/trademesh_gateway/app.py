"""The gateway app factory: wires settings, bus, upstream clients, limits and the API; no work at
import."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from fastapi import FastAPI
from trademesh_http.inputs import InputLimits
from trademesh_service import service_app, service_lifespan, wire

from trademesh_gateway.api import api_router
from trademesh_gateway.api.deps import Runtime
from trademesh_gateway.api.routes import serve_table
from trademesh_gateway.config import Settings
from trademesh_gateway.engine import Service
from trademesh_gateway.handlers import register_handlers
from trademesh_gateway.openapi import FETCH_TIMEOUT_S, Published
from trademesh_gateway.proxy import ApiKeys, Proxy, Upstreams
from trademesh_gateway.ratelimit import RateLimits
from trademesh_gateway.usecases.streams import EventHub

JWKS_PATH = "/.well-known/jwks.json"


def create_app(
    settings: Settings,
    *,
    transports: Mapping[Service, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The gateway: the public routes of the route table under /api/v1, the caller's event
    stream, /docs, and /health, /ready (auth's JWKS and Kafka checked for real); /metrics on a
    port of its own (settings.metrics_port), never on the public one.

    `transports` replaces the network to some services (tests reach in-process apps through
    `httpx.ASGITransport`); the JWKS is fetched through auth's transport too.
    """
    wiring = wire(settings, __name__, auth_transport=(transports or {}).get("auth"))
    log, bus, verifier = wiring.log, wiring.bus, wiring.tokens
    assert verifier is not None  # the gateway verifies every caller's token (verify_tokens)
    hub = EventHub(
        queue_size=settings.sse_queue_size,
        max_streams_per_user=settings.sse_max_streams_per_user,
        service=settings.service_name,
    )
    register_handlers(bus, hub, settings, wiring.db)
    upstreams = Upstreams(settings, transports)
    rate_limits = RateLimits(
        settings.rate_limit_storage_uri,
        settings.rate_limit_user,
        settings.rate_limit_ip,
        service=settings.service_name,
    )
    api_keys = ApiKeys(
        upstreams["auth"],
        margin_s=settings.api_key_cache_margin_s,
        size=settings.api_key_cache_size,
    )
    # What auth revokes is refused at once, and drops the API keys' cached tokens it covers.
    verifier.revocations.listen(api_keys.forget)
    proxy = Proxy(settings, upstreams, verifier, api_keys, rate_limits)

    async def auth_jwks() -> None:
        """The gateway cannot sign anyone in, nor verify a rotated key, without auth's JWKS."""
        response = await upstreams["auth"].get(JWKS_PATH)
        response.raise_for_status()
        if not response.json().get("keys"):
            raise ValueError("auth's JWKS holds no key")

    wiring.readiness["auth_jwks"] = auth_jwks
    if not settings.rate_limit_storage_uri.startswith(("memory://", "async+memory://")):
        wiring.readiness["rate_limit_storage"] = rate_limits.check

    lifespan = service_lifespan(settings, log=log, bus=bus, close=[upstreams.aclose])

    published = Published(
        lambda: app.openapi(),
        upstreams,
        ttl_s=settings.openapi_cache_s,
        timeout_s=min(FETCH_TIMEOUT_S, settings.upstream_timeout_s),
    )
    app = service_app(
        settings,
        wiring,
        lifespan=lifespan,
        runtime=Runtime(settings=settings, proxy=proxy, hub=hub, bus=bus, db=wiring.db),
        api=api_router(),
        description="The only public API of trademesh. Each route is described by the service "
        "that serves it. Errors are RFC 9457 problems (application/problem+json); every "
        "response carries X-Request-ID.",
        openapi=published.document,
        # The edge's body limit is the gateway's own, so that its setting governs both.
        inputs=InputLimits(max_body_bytes=settings.max_body_bytes),
    )
    serve_table(app, "/api/v1")  # the route table's routes, after the gateway's own
    return app
