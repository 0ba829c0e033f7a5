"""runtime_dependency: the app's runtime handed to routes, checked to be the service's."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from trademesh_service import runtime_dependency

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Runtime:
    name: str


get_runtime = runtime_dependency(Runtime)


def app_with(runtime: object) -> FastAPI:
    app = FastAPI()
    app.state.runtime = runtime

    @app.get("/name")
    async def name(runtime: Annotated[Runtime, Depends(get_runtime)]) -> str:
        return runtime.name

    return app


def test_the_dependency_is_async_so_it_runs_in_the_event_loop() -> None:
    assert inspect.iscoroutinefunction(get_runtime)


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_route_receives_the_apps_runtime() -> None:
    async with client_of(app_with(Runtime("risk"))) as client:
        assert (await client.get("/name")).json() == "risk"


async def test_a_runtime_of_another_kind_is_refused() -> None:
    async with client_of(app_with(object())) as client:
        with pytest.raises(AssertionError):
            await client.get("/name")
