"""The dependency through which a service's routes receive its runtime (app.state.runtime)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request

RuntimeT = TypeVar("RuntimeT")


def runtime_dependency(kind: type[RuntimeT]) -> Callable[[Request], Awaitable[RuntimeT]]:
    """A FastAPI dependency answering the app's runtime, checked to be a `kind`:
    `get_runtime = runtime_dependency(Runtime)`, `Annotated[Runtime, Depends(get_runtime)]`."""

    # async: FastAPI runs a plain def dependency in a worker thread, on every request.
    async def get_runtime(request: Request) -> RuntimeT:
        runtime = request.app.state.runtime
        assert isinstance(runtime, kind)
        return runtime

    return get_runtime
