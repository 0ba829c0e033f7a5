"""RFC 9457 problem details (application/problem+json) for every error; no stack trace reaches a client."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from trademesh_observability.logging import request_id_var

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("trademesh.http")


class Problem(BaseModel):
    """The problem details object; extension members (errors, request_id, ...) are allowed."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class ProblemError(Exception):
    """Raise from a handler to answer with a problem: `raise ProblemError(404, "Unknown bot")`."""

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        *,
        type: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.type = type
        self.headers = headers
        self.extensions = extensions


def problem_response(
    request: Request,
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    instance = extensions.pop("instance", None) or request.url.path
    body = Problem(
        type=type,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=instance,
        **extensions,
    ).model_dump(exclude_none=True)
    request_id = request_id_var.get()
    if request_id is not None:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def internal_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """Log an unhandled error with its traceback; answer a generic 500 problem, no details."""
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return problem_response(request, 500, detail="An internal error occurred; it has been logged.")


_SCHEMAS = "#/components/schemas/"
_FASTAPI_VALIDATION = {"$ref": _SCHEMAS + "HTTPValidationError"}


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """`document`, an OpenAPI document FastAPI made, with its error responses as the handlers
    below answer them: an application/problem+json `Problem`. That is every 422 (FastAPI writes
    them as application/json HTTPValidationError, which no route answers) and every other 4xx or
    5xx a route declares without a body of its own; a declared body (`model=`) is kept."""
    problem = {PROBLEM_JSON: {"schema": {"$ref": _SCHEMAS + "Problem"}}}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for code, response in operation.get("responses", {}).items():
                if not (code[:1] in ("4", "5") or code == "default"):
                    continue
                schemas = [media.get("schema") for media in response.get("content", {}).values()]
                if all(schema in (None, {}, _FASTAPI_VALIDATION) for schema in schemas):
                    response["content"] = problem
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template=_SCHEMAS + "{model}")
    # FastAPI's validation error schemas, once nothing refers to them (the first refers to the
    # second).
    for name in ("HTTPValidationError", "ValidationError"):
        if f'"{_SCHEMAS}{name}"' not in json.dumps(document):
            schemas.pop(name, None)
    return document


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(
            request,
            exc.status,
            title=exc.title,
            detail=exc.detail,
            type=exc.type,
            headers=exc.headers,
            **exc.extensions,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(
            request,
            exc.status_code,
            detail=detail,
            headers=dict(exc.headers) if exc.headers else None,
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Where and why, never the submitted values (they may be passwords or keys).
        errors = [
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
            for error in exc.errors()
        ]
        return problem_response(
            request,
            422,
            title="Request validation failed",
            detail="The request does not match the schema.",
            errors=errors,
        )

    async def on_unhandled(request: Request, exc: Exception) -> JSONResponse:
        # A backstop: the app's request middleware answers route errors itself (with the
        # request id); this one sees errors raised outside it.
        return internal_error_response(request, exc)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unhandled)
