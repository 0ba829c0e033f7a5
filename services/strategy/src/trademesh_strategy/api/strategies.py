"""/api/v1/strategies: the strategies this service can run, with their parameters' JSON Schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from trademesh_http import ProblemError
from trademesh_http.pagination import Page, PageDep, paginate
from trademesh_trading.registry import StrategyRegistry, UnknownStrategy

from trademesh_strategy.api.deps import RuntimeDep

router = APIRouter(prefix="/strategies", tags=["strategies"])


class StrategyOut(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema


def _describe(registry: StrategyRegistry, name: str) -> StrategyOut:
    return StrategyOut(
        name=name, description=registry.describe(name), parameters=registry.schema(name)
    )


def unknown_strategy(registry: StrategyRegistry, name: str) -> ProblemError:
    return ProblemError(
        404,
        "Unknown strategy",
        f"No strategy {name!r}; known: {', '.join(registry.names())}.",
        type="/problems/unknown-strategy",
    )


class StrategyPage(Page[StrategyOut]):
    pass


@router.get("", summary="Every strategy, with its parameters' JSON Schema, in name order")
async def list_strategies(runtime: RuntimeDep, request: PageDep) -> StrategyPage:
    after = request.after(str)
    names = sorted(runtime.registry.names())
    rows = [n for n in names if after is None or n > after[0]][: request.fetch]
    items, cursor = paginate(rows, request, lambda name: (name,))
    return StrategyPage(items=[_describe(runtime.registry, n) for n in items], next_cursor=cursor)


@router.get("/{name}", summary="One strategy and its parameters' JSON Schema")
async def get_strategy(name: str, runtime: RuntimeDep) -> StrategyOut:
    try:
        return _describe(runtime.registry, name)
    except UnknownStrategy:
        raise unknown_strategy(runtime.registry, name) from None
