"""The HTTP app factory every service uses: /health, /ready, /metrics, request ids, problem+json, tracing."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.routing import Match
from starlette.types import Lifespan
from trademesh_observability import metrics
from trademesh_observability.logging import request_id_var

from trademesh_http.problems import (
    install_problem_handlers,
    internal_error_response,
    problem_response,
)
from trademesh_http.tokens import TokenVerifier

ReadinessCheck = Callable[[], Awaitable[Any]]
REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_UNMATCHED = "<unmatched>"


def _route_template(request: Request) -> str:
    """The route's path template (/bots/{bot_id}), so metrics don't get one series per id."""
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", _UNMATCHED))
    return _UNMATCHED


async def _run_check(name: str, check: ReadinessCheck, timeout: float) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return name, f"no answer within {timeout:g}s"
    except Exception as exc:
        return name, type(exc).__name__
    return name, None


def create_http_app(
    *,
    service: str,
    version: str = "0.1.0",
    readiness: Mapping[str, ReadinessCheck] | None = None,
    lifespan: Lifespan[FastAPI] | None = None,
    ready_timeout_s: float = 2.0,
    registry: CollectorRegistry = metrics.REGISTRY,
    title: str | None = None,
    tokens: TokenVerifier | None = None,
) -> FastAPI:
    """A FastAPI app with the platform endpoints and middlewares; add the service's routers to it.

    /ready runs every readiness check (each a coroutine that raises when its dependency is not
    usable) concurrently under `ready_timeout_s`; it answers 503 problem+json naming the failing
    checks (by error type only: messages may carry connection strings).

    `tokens` verifies the callers' access tokens (trademesh_http.caller); without it every route
    that needs a caller answers 401.
    """
    checks = dict(readiness or {})
    app = FastAPI(title=title or f"trademesh {service}", version=version, lifespan=lifespan)
    app.state.tokens = tokens
    install_problem_handlers(app)

    @app.get("/health", tags=["platform"], summary="Liveness: the process serves requests")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get(
        "/ready",
        tags=["platform"],
        summary="Readiness: every dependency answers now",
        response_model=None,
    )
    async def ready(request: Request) -> Any:
        results = await asyncio.gather(
            *(_run_check(n, c, ready_timeout_s) for n, c in checks.items())
        )
        failing = {name: error for name, error in results if error is not None}
        for name, error in results:
            metrics.READY.labels(service=service, check=name).set(0 if error else 1)
        if failing:
            return problem_response(
                request,
                503,
                title="Not ready",
                detail="Failing checks: " + ", ".join(sorted(failing)),
                checks={name: ("ok" if error is None else error) for name, error in results},
            )
        return {"status": "ready", "service": service, "checks": {name: "ok" for name in checks}}

    @app.get("/metrics", tags=["platform"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        route = _route_template(request)
        started = time.perf_counter()
        status = 500
        try:
            try:
                response = await call_next(request)
            except Exception as exc:
                # Answered here rather than by Starlette's outermost handler so that the problem
                # and the log line still carry this request's id.
                response = internal_error_response(request, exc)
            status = response.status_code
        finally:
            elapsed = time.perf_counter() - started
            metrics.HTTP_REQUESTS.labels(
                service=service, method=request.method, route=route, status=str(status)
            ).inc()
            metrics.HTTP_DURATION.labels(
                service=service, method=request.method, route=route
            ).observe(elapsed)
            request_id_var.reset(token)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    FastAPIInstrumentor.instrument_app(app, excluded_urls="health,ready,metrics")
    return app
