"""runtime_dependency: the app's runtime handed to routes, checked to be the service's."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
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


def test_a_route_receives_the_apps_runtime() -> None:
    with TestClient(app_with(Runtime("risk"))) as client:
        assert client.get("/name").json() == "risk"


def test_a_runtime_of_another_kind_is_refused() -> None:
    with TestClient(app_with(object())) as client, pytest.raises(AssertionError):
        client.get("/name")
