"""The gateway's published OpenAPI document: each route of the table described by the service
that serves it, under the gateway's path, with the gateway's own errors and credentials.

The gateway's FastAPI document alone knows a forwarded route only by its path: it forwards bytes
and never sees the service's models. The services publish theirs at /openapi.json; `Published`
fetches them when the gateway's document is first asked for, keeps them `ttl_s`, and `describe`
(pure) places each route's upstream operation (its parameters, request body and responses) under
the gateway's path. A service that does not answer leaves its routes as the gateway alone can
describe them, so /openapi.json never fails because a service is down.

Schemas keep their names where that is unambiguous: a name that every service using it (and the
gateway, if it has one) defines alike stays as it is (`Problem`); a name they define differently
becomes `<service>.<name>` (`execution.AccountOut`, `risk.AccountOut`), references included.
Only the schemas the published operations refer to are taken.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
from pydantic.json_schema import models_json_schema
from trademesh_observability.logging import get_logger

from trademesh_gateway.api.orders import ManualOrder, OrderAccepted
from trademesh_gateway.engine import ROUTES, Route, Service
from trademesh_gateway.proxy import Upstreams

log = get_logger("trademesh_gateway.openapi")

Document = dict[str, Any]
SCHEMAS = "#/components/schemas/"
PROBLEM_JSON = "application/problem+json"
#: A service whose document could not be fetched is asked again after this long at most.
RETRY_S = 30.0
#: How long fetching one service's document may take: /openapi.json waits for it.
FETCH_TIMEOUT_S = 5.0

SECURITY_SCHEMES: Document = {
    "accessToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "ApiKey tmk_…",
    },
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
FORWARDED_SERVICES: tuple[Service, ...] = tuple(
    dict.fromkeys(route.service for route in ROUTES if route.local is None)
)


# ---- the document ------------------------------------------------------------------------------


def describe(local: Document, upstream: Mapping[Service, Document | None]) -> Document:
    """The published document: `local` (the gateway's own FastAPI document) with its security
    schemes, each forwarded route described by its service's operation in `upstream` (a service
    missing or None: as `local` has it), the gateway's own routes by their models, and every
    table route's errors as the gateway may answer them."""
    document = copy.deepcopy(local)
    components = document.setdefault("components", {})
    components["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    _describe_local_routes(document, schemas)
    found: dict[Route, tuple[Service, Document]] = {}
    for route in ROUTES:
        source = upstream.get(route.service)
        if route.local is None and source is not None:
            operation = _upstream_operation(route, source)
            if operation is not None:
                found[route] = (route.service, operation)
    used = {
        service: _closure(
            {name for s, operation in found.values() if s == service for name in _refs(operation)},
            (upstream[service] or {}).get("components", {}).get("schemas", {}),
        )
        for service in {service for service, _ in found.values()}
    }
    names = _schema_names(schemas, used)
    for service, service_schemas in used.items():
        for name, schema in service_schemas.items():
            schemas[names[service][name]] = _renamed(schema, names[service])
    for route in ROUTES:
        operation = document["paths"]["/api/v1" + route.path][route.method.lower()]
        if route in found:
            service, theirs = found[route]
            _place(operation, route, _renamed(theirs, names[service]))
        elif route.local is None:
            operation["description"] = operation.get("description", "") + (
                f" The {route.service} service's own description was unavailable when this "
                "document was made: the parameters, body and answers are not described."
            )
        responses = {**gateway_errors(route), **operation["responses"]}  # the service's first
        operation["responses"] = dict(sorted(responses.items()))
    return document


def gateway_errors(route: Route) -> dict[str, Document]:
    """The answers the gateway itself may give on `route` before, or instead of, the service's:
    each an RFC 9457 problem."""
    forwarded = route.local is None
    notes: dict[str, str] = {}
    if not route.public:
        notes["401"] = "No credential, or one that is not valid (an access token or API key)."
        notes["403"] = "The credential's role or scopes do not allow this route."
    notes["404"] = "No such resource, or another user's."
    if route.method in ("POST", "PUT", "PATCH"):
        notes["413"] = "The request body is larger than the gateway takes."
    notes["4XX"] = "Another client error" + (", as the service answers it." if forwarded else ".")
    notes["429"] = "Too many requests from this user or address (see Retry-After)."
    if forwarded:
        notes["502"] = f"The {route.service} service could not answer."
    notes["503"] = "The service, or one the gateway checks the request with, cannot answer now."
    if forwarded:
        notes["504"] = f"The {route.service} service did not answer in time."
    problem = {PROBLEM_JSON: {"schema": {"$ref": SCHEMAS + "Problem"}}}
    return {code: {"description": note, "content": problem} for code, note in notes.items()}


def _describe_local_routes(document: Document, schemas: dict[str, Any]) -> None:
    """The routes of the table the gateway serves itself, by their models."""
    _, defined = models_json_schema(
        [(ManualOrder, "validation"), (OrderAccepted, "serialization")],
        ref_template=SCHEMAS + "{model}",
    )
    schemas.update(defined.get("$defs", {}))
    for route in ROUTES:
        if route.local != "submit_order":
            continue
        operation = document["paths"]["/api/v1" + route.path][route.method.lower()]
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": SCHEMAS + "ManualOrder"}}},
        }
        operation["responses"] = {
            "200": {
                "description": "This client_order_id was sent before with this body: the order "
                "as it is now, as GET /api/v1/orders/{client_order_id} answers it.",
                "headers": {"Location": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "202": {
                "description": "Accepted for risk's decision, which arrives as an event.",
                "headers": {"Location": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": {"$ref": SCHEMAS + "OrderAccepted"}}},
            },
            "409": {
                "description": "The client_order_id names another order (another body).",
                "content": {PROBLEM_JSON: {"schema": {"$ref": SCHEMAS + "Problem"}}},
            },
            "422": {
                "description": "The order is not valid.",
                "content": {PROBLEM_JSON: {"schema": {"$ref": SCHEMAS + "Problem"}}},
            },
        }


def _upstream_operation(route: Route, document: Document) -> Document | None:
    """The service's own operation `route` is forwarded to, its path parameters named as the
    gateway names them (and those the gateway's path fixes left out: strategy serves the bot
    actions as one `/bots/{bot_id}/{action}`); None when the service's document lacks it."""
    path = "/api/v1" + (route.upstream or route.path)
    ours = path.split("/")
    best: tuple[int, str] | None = None
    for template, operations in document.get("paths", {}).items():
        theirs = template.split("/")
        if len(theirs) != len(ours) or route.method.lower() not in operations:
            continue
        if all(t == o or _param(t) for t, o in zip(theirs, ours, strict=True)):
            params = sum(1 for t in theirs if _param(t))
            if best is None or params < best[0]:
                best = (params, template)
    if best is None:
        return None
    template = best[1]
    operation = document["paths"][template][route.method.lower()]
    renamed: dict[str, str | None] = {}
    for theirs, mine in zip(template.split("/"), ours, strict=True):
        name = _param(theirs)
        if name is not None:
            renamed[name] = _param(mine)  # None: our path fixes its value
    parameters = []
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path":
            name = renamed.get(parameter.get("name", ""))
            if name is None:
                continue
            parameter = {**parameter, "name": name}
        parameters.append(parameter)
    found = {
        key: operation[key]
        for key in ("description", "requestBody", "responses")
        if key in operation
    }
    return {**found, "parameters": parameters}


def _param(segment: str) -> str | None:
    match = re.fullmatch(r"{(\w+)}", segment)
    return match.group(1) if match else None


def _place(operation: Document, route: Route, theirs: Document) -> None:
    """The service's parameters, body and answers on the gateway's operation, which keeps its
    own summary, tags, operation id and security (the gateway's credentials)."""
    operation["parameters"] = theirs["parameters"]
    operation.pop("requestBody", None)
    if "requestBody" in theirs:
        operation["requestBody"] = theirs["requestBody"]
    operation["responses"] = theirs.get("responses") or operation["responses"]
    if theirs.get("description"):
        operation["description"] = f"{operation.get('description', '')}\n\n{theirs['description']}"


# ---- schema names and references -------------------------------------------------------------


def _walk_refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_refs(item)
    elif isinstance(value, str) and value.startswith(SCHEMAS):
        yield value[len(SCHEMAS) :]


def _refs(value: Any) -> set[str]:
    """The schema names `value` refers to (`$ref`s, and discriminator mappings)."""
    return set(_walk_refs(value))


def _renamed(value: Any, names: Mapping[str, str]) -> Any:
    """`value` with its schema references renamed by `names`."""
    if isinstance(value, dict):
        return {key: _renamed(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, names) for item in value]
    if isinstance(value, str) and value.startswith(SCHEMAS):
        name = value[len(SCHEMAS) :]
        return SCHEMAS + names.get(name, name)
    return value


def _closure(roots: set[str], schemas: Mapping[str, Any]) -> dict[str, Any]:
    """The schemas `roots` name, and those they refer to, transitively."""
    taken: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in taken or name not in schemas:
            continue
        taken[name] = schemas[name]
        todo.extend(_refs(schemas[name]))
    return taken


def _schema_names(
    local: Mapping[str, Any], used: Mapping[Service, Mapping[str, Any]]
) -> dict[Service, dict[str, str]]:
    """Each service's schema names in the published document. A name keeps its own when one
    definition has it, or when all its definitions are alike and refer only to names that keep
    theirs (alike definitions referring to a name renamed per service would differ once
    renamed); otherwise each service's becomes `<service>.<name>` (the gateway's own keep
    theirs)."""
    definitions: dict[str, list[Any]] = {}
    for schemas in (local, *used.values()):
        for name, schema in schemas.items():
            definitions.setdefault(name, []).append(schema)
    texts = {n: {json.dumps(d, sort_keys=True) for d in ds} for n, ds in definitions.items()}
    shared = {name for name, seen in texts.items() if len(seen) == 1}
    changed = True
    while changed:
        changed = False
        for name in list(shared):
            if len(definitions[name]) > 1 and not _refs(definitions[name][0]) <= shared:
                shared.discard(name)
                changed = True
    return {
        service: {name: name if name in shared else f"{service}.{name}" for name in schemas}
        for service, schemas in used.items()
    }


# ---- fetching and caching -------------------------------------------------------------------------


class Published:
    """The published document, made from the services' documents as last fetched: each kept
    `ttl_s`, or `RETRY_S` at most when the service did not give one (its routes then are as the
    gateway alone describes them)."""

    def __init__(
        self,
        local: Callable[[], Document],
        upstreams: Upstreams,
        *,
        ttl_s: float,
        timeout_s: float = FETCH_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._local = local
        self._upstreams = upstreams
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._fetched: dict[Service, tuple[Document | None, float]] = {}
        self._document: Document | None = None
        self._lock = asyncio.Lock()

    async def document(self) -> Document:
        if self._document is not None and not self._stale():
            return self._document
        async with self._lock:  # one fetch of each service at a time, however many ask
            stale = self._stale()
            if self._document is None or stale:
                documents = await asyncio.gather(*(self._fetch(s) for s in stale))
                for service, fetched in zip(stale, documents, strict=True):
                    keep = self._ttl_s if fetched is not None else min(self._ttl_s, RETRY_S)
                    self._fetched[service] = (fetched, self._clock() + keep)
                upstream = {service: doc for service, (doc, _) in self._fetched.items()}
                try:
                    self._document = describe(self._local(), upstream)
                except Exception:
                    # A service's document this module cannot read (a backstop: fetching checks
                    # only its outline) must not take the gateway's down with it.
                    log.exception("upstream openapi unreadable")
                    self._document = describe(self._local(), {})
            return self._document

    def _stale(self) -> list[Service]:
        now = self._clock()
        return [
            service
            for service in FORWARDED_SERVICES
            if service not in self._fetched or now >= self._fetched[service][1]
        ]

    async def _fetch(self, service: Service) -> Document | None:
        """The service's OpenAPI document, or None when it gives none (down, slow, not one)."""
        try:
            response = await self._upstreams[service].get("/openapi.json", timeout=self._timeout_s)
            document = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("upstream openapi unavailable", service=service, error=type(exc).__name__)
            return None
        if not (
            isinstance(document, dict)
            and str(document.get("openapi", "")).startswith("3.")
            and isinstance(document.get("paths"), dict)
        ):
            log.warning("upstream openapi unavailable", service=service, error="not a document")
            return None
        return document
