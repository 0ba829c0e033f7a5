"""The HTTP app factory every service uses: /health, /ready, /metrics, request ids, problem+json, tracing."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send
from trademesh_observability import metrics
from trademesh_observability.logging import request_id_var

from trademesh_http.docs import serve_docs
from trademesh_http.inputs import InputGuard, InputLimits
from trademesh_http.problems import (
    document_problems,
    install_problem_handlers,
    internal_error_response,
    problem_response,
)
from trademesh_http.serving import ServingSettings, metrics_apart, trust_proxies
from trademesh_http.tokens import TokenVerifier

ReadinessCheck = Callable[[], Awaitable[Any]]
OpenApiSource = Callable[[], Awaitable[dict[str, Any]]]
REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()
_UNMATCHED = "<unmatched>"
_ROUTE_TEMPLATE_KEY = "trademesh.route_template"
_UNTRACED = frozenset({"/health", "/ready", "/metrics"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _UNTRACED


def name_route(scope: MutableMapping[str, Any], template: str | None) -> None:
    """For a route that dispatches further by itself (the gateway's one catch-all route finds
    the route of its table): `template` is what the request's metrics and server span are named
    after, rather than the catch-all's own path; None when it found no route."""
    scope[_ROUTE_TEMPLATE_KEY] = template or _UNMATCHED
    span = trace.get_current_span()
    if span.is_recording():
        method = scope.get("method", "HTTP")
        span.update_name(f"{method} {template}" if template else str(method))
        if template:
            span.set_attribute("http.route", template)


def route_template(scope: Scope) -> str:
    """The matched route's full path template (/api/v1/bots/{bot_id}), so that metrics don't
    get one series per id; `<unmatched>` when no route matched; what `name_route` gave.

    FastAPI (0.165) leaves the matched APIRoute in the scope, but a route of an included router
    keeps its own path, without the prefixes it was included under: those are the leading
    segments of the request's path that the route's own template does not cover.
    """
    named = scope.get(_ROUTE_TEMPLATE_KEY)
    if isinstance(named, str):
        return named
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str):
        return _UNMATCHED
    own = template.count("/")
    segments = str(scope.get("path", "")).split("/")
    if own == 0 or len(segments) <= own:
        return template
    return "/".join(segments[: len(segments) - own]) + template


class RequestContext:
    """Every request's id (a sane incoming X-Request-ID, else a new one: in the log context and
    the response), its count and latency by route template, and a problem for an unhandled
    error. A plain ASGI middleware: Starlette's BaseHTTPMiddleware runs the app in a task of its
    own and streams the response through a queue, which costs more than a small route."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_KEY:
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        raw_id = request_id.encode("latin-1")
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message = {
                    **message,
                    "headers": [*message.get("headers", ()), (_REQUEST_ID_KEY, raw_id)],
                }
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if responded:
                    raise
                # Answered here rather than by Starlette's outermost handler so that the problem
                # and the log line still carry this request's id.
                response = internal_error_response(Request(scope), exc)
                await response(scope, receive, send_with_id)
        finally:
            # The router leaves the matched route in the scope: its template (/bots/{bot_id}),
            # so that metrics don't get one series per id.
            route = route_template(scope)
            method = scope["method"]
            metrics.HTTP_REQUESTS.labels(
                service=self.service, method=method, route=route, status=str(status)
            ).inc()
            metrics.HTTP_DURATION.labels(service=self.service, method=method, route=route).observe(
                time.perf_counter() - started
            )
            request_id_var.reset(token)


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
    description: str = "",
    tokens: TokenVerifier | None = None,
    openapi: OpenApiSource | None = None,
    inputs: InputLimits | None = None,
    http: ServingSettings | None = None,
) -> FastAPI:
    """A FastAPI app with the platform endpoints and middlewares; add the service's routers to it.

    /ready runs every readiness check (each a coroutine that raises when its dependency is not
    usable) concurrently under `ready_timeout_s`; it answers 503 problem+json naming the failing
    checks (by error type only: messages may carry connection strings).

    `tokens` verifies the callers' access tokens (trademesh_http.caller); without it every route
    that needs a caller answers 401.

    The OpenAPI document (app.openapi()) describes errors as they are answered: problem+json
    (`document_problems`). `openapi` replaces it at /openapi.json (and in /docs, /redoc) with a
    document that takes I/O to make (the gateway's holds its services' documents). /docs and
    /redoc load their scripts and styles from the app itself (trademesh_http.docs): no CDN.

    `http` (the service's settings) says whose X-Forwarded-For to believe (`trusted_proxies`:
    `request.client` is then the client they name) and where /metrics is served: with a
    `metrics_port`, on a server of its own (trademesh_http.serving), and not by this app.
    """
    checks = dict(readiness or {})
    metrics_port = http.metrics_port if http is not None else None
    if http is not None and metrics_port is not None:
        lifespan = metrics_apart(lifespan, registry, http.http_host, metrics_port)
    # FastAPI's own OpenTelemetry server spans (FastAPI >= 0.165): the caller's trace context
    # continued, named "<method> <route template>"; sent wherever the tracer provider that
    # trademesh_observability.tracing installs sends them. No spans per dependency, endpoint
    # and serialisation (they would double the spans of a small request), no OTel metrics (the
    # service's Prometheus metrics say it) and no OTel log records of exceptions (our logs do).
    app = FastAPI(
        title=title or f"trademesh {service}",
        version=version,
        description=description,
        lifespan=lifespan,
        openapi_url=None if openapi else "/openapi.json",
        docs_url=None,  # serve_docs: FastAPI's own pages load their assets from a CDN
        redoc_url=None,
        telemetry={
            "tracing": True,
            "operation_spans": False,
            "metrics": False,
            "logs": False,
            "exclude": _untraced,
        },
    )
    app.state.tokens = tokens
    install_problem_handlers(app)

    def openapi_document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi_document  # type: ignore[method-assign]
    if openapi is not None:
        _serve_openapi(app, openapi)
    serve_docs(app)

    @app.get("/health", tags=["platform"], summary="Liveness: the process serves requests")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get(
        "/ready",
        tags=["platform"],
        summary="Readiness: every dependency answers now",
        response_model=None,
        responses={503: {"description": "Not ready: the failing checks, by name"}},
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

    if metrics_port is None:

        @app.get(
            "/metrics", tags=["platform"], summary="Prometheus metrics", include_in_schema=False
        )
        async def metrics_endpoint() -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(InputGuard, limits=inputs)  # bounded bodies, no NUL: trademesh_http.inputs
    app.add_middleware(RequestContext, service=service)
    if http is not None:
        trust_proxies(app, http.trusted_proxies)  # outermost: every layer sees the client
    return app


def _serve_openapi(app: FastAPI, source: OpenApiSource) -> None:
    """/openapi.json from `source` (FastAPI's own reads app.openapi(), which cannot wait for
    I/O)."""

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json() -> JSONResponse:
        return JSONResponse(await source())
