"""An app built by create_http_app with a few demo routes, and an in-process client for it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import structlog
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from trademesh_http import ProblemError, create_http_app
from trademesh_observability.logging import get_logger, request_id_var


class Order(BaseModel):
    symbol: str = Field(min_length=1)
    qty: int = Field(gt=0)


def add_demo_routes(app: FastAPI) -> FastAPI:
    @app.get("/items/{item_id}")
    async def get_item(item_id: int, limit: int = 10) -> dict[str, int]:
        return {"item_id": item_id, "limit": limit}

    @app.post("/orders")
    async def place_order(order: Order) -> dict[str, str]:
        return {"symbol": order.symbol}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("internal detail xyz")

    @app.get("/rejected/{order_id}")
    async def rejected(order_id: str) -> None:
        raise ProblemError(
            409,
            "Order rejected",
            "Insufficient margin for the order.",
            type="https://trademesh.dev/problems/insufficient-margin",
            headers={"Retry-After": "5"},
            order_id=order_id,
            limits={"max_qty": 10},
        )

    @app.get("/bots/{bot_id}")
    async def get_bot(bot_id: str) -> None:
        raise HTTPException(404, detail=f"No bot {bot_id}")

    @app.get("/request-id")
    async def current_request_id() -> dict[str, str | None]:
        get_logger("trademesh.test").info("handling request")
        return {"request_id": request_id_var.get()}

    return app


def make_client(app: FastAPI) -> httpx.AsyncClient:
    # raise_app_exceptions=False: Starlette re-raises unhandled errors after answering 500.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
def service() -> str:
    """A unique service name, so metric series of one test never meet another test's."""
    return f"svc-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def app(service: str) -> FastAPI:
    return add_demo_routes(create_http_app(service=service))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as client:
        yield client


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    names = ("aiokafka", "asyncio", "uvicorn", "uvicorn.error", "uvicorn.access", "faststream")
    saved = {
        n: (
            logging.getLogger(n).level,
            list(logging.getLogger(n).handlers),
            logging.getLogger(n).propagate,
        )
        for n in names
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (lvl, hs, propagate) in saved.items():
        logging.getLogger(name).setLevel(lvl)
        logging.getLogger(name).handlers[:] = hs
        logging.getLogger(name).propagate = propagate
    structlog.reset_defaults()
