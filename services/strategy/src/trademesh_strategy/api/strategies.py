"""/api/v1/strategies: the strategies this service can run, with their parameters: the JSON Schema
(the contract) and the same one parameter at a time (type, default, bounds) for people."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from trademesh_http import ProblemError
from trademesh_http.pagination import Page, PageDep, paginate
from trademesh_trading.registry import Parameter, StrategyRegistry, UnknownStrategy

from trademesh_strategy.api.deps import RuntimeDep

router = APIRouter(prefix="/strategies", tags=["strategies"])


class StrategyOut(BaseModel):
    name: str
    summary: str = Field(description="The description's first line.")
    description: str = Field(description="Its rules, exactly.")
    parameters: dict[str, Any] = Field(description="The parameters' JSON Schema.")
    parameter_list: list[Parameter] = Field(
        description="The parameters one by one, as the schema states them: type, default, bounds."
    )


def _describe(registry: StrategyRegistry, name: str) -> StrategyOut:
    return StrategyOut(
        name=name,
        summary=registry.summary(name),
        description=registry.describe(name),
        parameters=registry.schema(name),
        parameter_list=registry.parameters(name),
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


@router.get("/{name}", summary="One strategy: its rules and parameters (types, defaults, bounds)")
async def get_strategy(name: str, runtime: RuntimeDep) -> StrategyOut:
    try:
        return _describe(runtime.registry, name)
    except UnknownStrategy:
        raise unknown_strategy(runtime.registry, name) from None
