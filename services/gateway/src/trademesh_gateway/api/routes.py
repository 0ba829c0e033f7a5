"""The proxied routes: one catch-all route that finds a request's route in the table
(engine.INDEX), so that an unknown path is a 404 problem and a known path with another method a
405; and one documented FastAPI route per entry of engine.ROUTES, so that /docs lists exactly the
table. The catch-all comes first and serves every request: FastAPI's router tries a path against
its routes one regular expression at a time, and against the whole table that cost more than a
third of the gateway's own work per request. The catch-all is a plain Starlette route on the
app's own router: it takes no parameters to solve, and FastAPI's included-router matching and
dependency solving around it cost a tenth of the gateway's CPU per request (decision 0123).

Every request goes through the same steps, in this order: the per-IP limit (before anything is
spent on the request), the body size (413), the credential (401), the per-user limit (429), the
route's role and scope (403), the gateway's ownership checks (404), then the service.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute
from trademesh_http import ProblemError
from trademesh_http.app import name_route

from trademesh_gateway.api.deps import get_runtime
from trademesh_gateway.api.orders import submit_order
from trademesh_gateway.engine import INDEX, ROUTES, Route
from trademesh_gateway.proxy import check_owned

_ROLE_NOTE = {
    "public": "Public: no credential needed.",
    "viewer": "Any signed-in user (viewer, trader, admin).",
    "trader": "Role trader or admin.",
    "admin": "Role admin.",
}
_OWNERSHIP_NOTE = {
    "none": "",
    "caller": " Scoped to the caller: only their own resources.",
    "service": " Another user's resource is a 404.",
    "account": " The account must be the caller's (else 404).",
}


def _openapi(route: Route) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in route.params
        ]
    }
    if route.method in ("POST", "PUT", "PATCH"):
        extra["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    if not route.public:
        extra["security"] = [{"accessToken": []}, {"apiKey": []}, {"apiKeyHeader": []}]
    return extra


async def _serve(request: Request, route: Route) -> Response:
    runtime = await get_runtime(request)
    proxy = runtime.proxy
    await proxy.rate_limits.hit_ip(proxy.client_address(request))
    body = await proxy.read_body(request)
    if route.public:
        return await proxy.forward(request, route, None, body)
    caller = await proxy.authenticate(request)
    await proxy.rate_limits.hit_user(str(caller.user_id))
    proxy.authorise(route, caller)
    await check_owned(proxy, route, request, caller, body)
    if route.local == "submit_order":
        return await submit_order(runtime, caller, body)
    response = await proxy.forward(request, route, caller, body)
    if caller.by_key and proxy.refused_as_revoked(response):
        # The service refused before doing anything: exchange the key again and send the
        # request once more (auth refuses a revoked key; a new role is checked again).
        caller = await proxy.authenticate(request, fresh=True)
        proxy.authorise(route, caller)
        response = await proxy.forward(request, route, caller, body)
    proxy.answered(route, request, response)
    return response


async def dispatch(request: Request) -> Response:
    """Every request under /api/v1: its route from the table, then the route's steps."""
    path = "/" + request.path_params["rest"]
    found = INDEX.find(request.method, path)
    if found is None:
        name_route(request.scope, None)
        allowed = INDEX.methods(path)
        if allowed:
            raise ProblemError(405, headers={"Allow": ", ".join(allowed)})
        raise ProblemError(404, detail=f"No route {request.method} /api/v1{path}.")
    route, params = found
    request.scope["path_params"] = params
    name_route(request.scope, "/api/v1" + route.path)
    return await _serve(request, route)


def _endpoint(route: Route) -> Any:
    async def endpoint(request: Request) -> Response:
        return await _serve(request, route)

    endpoint.__name__ = (
        f"{route.method.lower()}_{route.path}".replace("/", "_")
        .replace("{", "")
        .replace("}", "")
        .replace("-", "_")
    )
    return endpoint


def serve_table(app: FastAPI, prefix: str) -> None:
    """The catch-all that serves every request under `prefix` that the gateway's own routes
    (included before) do not, then the table's documented routes (never reached: the catch-all
    serves them)."""
    app.router.routes.append(
        StarletteRoute(
            prefix + "/{rest:path}",
            dispatch,
            methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            include_in_schema=False,
        )
    )
    app.include_router(_documented(), prefix=prefix)


def _documented() -> APIRouter:
    """The table's routes, for the OpenAPI document and /docs: the catch-all serves them."""
    out = APIRouter()
    for route in ROUTES:
        out.add_api_route(
            route.path,
            _endpoint(route),
            methods=[route.method],
            summary=route.summary,
            description=f"{_ROLE_NOTE[route.min_role]}{_OWNERSHIP_NOTE[route.ownership]} "
            f"Served by {route.service}.",
            tags=[route.service],
            response_class=Response,
            openapi_extra=_openapi(route),
        )
    return out
