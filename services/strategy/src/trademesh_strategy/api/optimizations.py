"""/api/v1/optimizations: submit an optimisation (an Optuna search validated walk-forward) and
read it while it runs and once it is done.

The caller's only: another user's optimisation does not exist for the caller (404). A submission
is checked before anything is stored (the strategy, the fixed parameters, the search space, the
trial budget, the range against market-data's bars and the walk-forward windows over them); it
is then QUEUED and the service's optimisation worker runs it (202, Location names it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from trademesh_http import ProblemError
from trademesh_trading.optimize.space import SpaceError, grid_size
from trademesh_trading.optimize.study import Objective
from trademesh_trading.optimize.walkforward import WindowsTooShort
from trademesh_trading.registry import InvalidParameters, UnknownStrategy

from trademesh_strategy.api.backtests import StatsOut, check_range
from trademesh_strategy.api.bots import start_problem
from trademesh_strategy.api.deps import CallerDep, OnBehalfDep, Runtime, RuntimeDep, owned
from trademesh_strategy.backtests.jobs import BacktestStatus
from trademesh_strategy.optimizations import (
    OptimizationRecord,
    OptimizationRequest,
    plan_of,
    trials_total,
)

router = APIRouter(prefix="/optimizations", tags=["optimizations"])


class WindowOut(BaseModel):
    start: datetime = Field(description="The window's first bar opens then.")
    end: datetime = Field(description="Its last bar closes then.")
    bars: int


class FoldOut(BaseModel):
    number: int = Field(description="From 1, oldest first.")
    in_sample: WindowOut = Field(description="Where the parameters were searched.")
    out_of_sample: WindowOut = Field(description="Where the best of them were validated.")
    trials: int = Field(description="Trials finished in the fold's study.")
    infeasible: int = Field(description="Trials whose parameters the strategy refused.")
    failed: int = Field(description="Trials whose strategy raised.")
    best_trial: int | None = Field(description="The best feasible trial's number in the study.")
    params: dict[str, Any] | None = Field(description="Its parameters, the fixed ones included.")
    in_sample_stats: StatsOut | None
    out_of_sample_stats: StatsOut | None
    warning: str | None = Field(
        description="Out-of-sample Sharpe below half the in-sample one, of the opposite sign, or "
        "an in-sample Sharpe not above zero; or why nothing could be validated."
    )
    error: str | None = Field(description="What the first failed trial raised.")


class ResultOut(BaseModel):
    """Means are over the folds with both statistics. Non-finite values are strings."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    objective: Objective
    folds: list[FoldOut]
    params: dict[str, Any] | None = Field(
        description="The last fold's best: searched on the most recent in-sample window."
    )
    in_sample_objective: float | None
    out_of_sample_objective: float | None
    in_sample_sharpe: float | None
    out_of_sample_sharpe: float | None
    warning: str | None = Field(description="The divergence rule on the mean Sharpe ratios.")
    diverging_folds: int = Field(description="Folds with a warning.")


class OptimizationOut(BaseModel):
    optimization_id: UUID
    status: BacktestStatus
    request: OptimizationRequest
    error: str | None = Field(
        description="Why it FAILED; while QUEUED again, why its last attempt did not finish."
    )
    trials_done: int = Field(description="Trials told so far (updated every few seconds).")
    trials_total: int = Field(description="Trials of all its folds.")
    attempts: int = Field(description="Times a worker took it.")
    result: ResultOut | None = Field(description="Once SUCCEEDED.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _out(record: OptimizationRecord) -> OptimizationOut:
    return OptimizationOut.model_validate(record, from_attributes=True)


def _fixed(runtime: Runtime, body: OptimizationRequest) -> dict[str, Any]:
    """The fixed parameters as the strategy's schema converts them; InvalidParameters for the
    ones it refuses. A rule across parameters is left to the trials (some searched values may
    keep it)."""
    try:
        instance = runtime.registry.create(body.strategy, body.params)
    except InvalidParameters as exc:
        wrong = [e for e in exc.errors if e["loc"]]
        if wrong:
            raise InvalidParameters(body.strategy, wrong) from None
        return dict(body.params)
    dumped: dict[str, Any] = instance.config.model_dump(mode="json")
    return {name: dumped[name] for name in body.params}


def _problem(title: str, detail: str, kind: str, **extra: Any) -> ProblemError:
    return ProblemError(422, title, detail, type=f"/problems/{kind}", **extra)


@router.post(
    "",
    status_code=202,
    summary="Submit an optimisation: an Optuna search validated walk-forward (queued; poll it)",
)
async def submit(
    body: OptimizationRequest,
    caller: CallerDep,
    who: OnBehalfDep,
    runtime: RuntimeDep,
    response: Response,
) -> OptimizationOut:
    names = runtime.registry.names()
    try:
        body = body.model_copy(update={"params": _fixed(runtime, body)})
        plan = plan_of(body, runtime.registry)
        if body.sampler == "grid":
            grid_size(plan.space)  # a number range without a step has no grid
    except (UnknownStrategy, InvalidParameters) as exc:
        raise start_problem(exc, names) from None
    except SpaceError as exc:
        raise _problem("Invalid search space", str(exc), "invalid-search-space") from None
    total = trials_total(plan)
    limit = runtime.settings.optimization_max_trials
    if total > limit:
        raise _problem(
            "Too many trials",
            f"{plan.trials_per_fold()} trials in each of {body.walk_forward.folds} folds make "
            f"{total}; at most {limit} are allowed.",
            "too-many-trials",
            trials=total,
            max_trials=limit,
        )
    bars = await check_range(runtime, body.base(), who)
    try:
        body.walk_forward.windows(bars)
    except WindowsTooShort as exc:
        raise _problem("Windows too short", f"{exc}.", "windows-too-short", bars=bars) from None
    record = await runtime.optimizations.insert(caller, body, total)
    response.headers["Location"] = f"/api/v1/optimizations/{record.optimization_id}"
    return _out(record)


@router.get(
    "/{optimization_id}",
    summary="An optimisation: its progress, and its folds in and out of sample once done",
)
async def get_optimization(
    optimization_id: UUID, caller: CallerDep, runtime: RuntimeDep
) -> OptimizationOut:
    record = await runtime.optimizations.get(optimization_id)
    return _out(owned(record, caller, "optimization", optimization_id))
