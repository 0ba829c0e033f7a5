"""Optimisations through the API on the real Postgres, the real broker and the real market-data
app replaying its GOOG daily fixture: the walk-forward folds equal the library's on the same
bars, the studies are Optuna journals in the service's schema and a lost worker's optimisation
resumes from its journal without running its trials again, and bad submissions are problems
that store nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import optuna
import psycopg
import pytest
from optuna.storages import JournalStorage
from trademesh_db import Database
from trademesh_testing.marketdata import Replayed, replayed
from trademesh_trading.optimize.study import run_study
from trademesh_trading.registry import StrategyRegistry

from trademesh_strategy.config import Settings
from trademesh_strategy.journal import OptimizationJournal
from trademesh_strategy.optimizations import OptimizationRequest, plan_of

pytestmark = pytest.mark.integration

Headers = Callable[[uuid.UUID], dict[str, str]]  # the conftest's fixtures
Settled = Callable[..., Awaitable[dict[str, Any]]]
Refused = Callable[[str, dict[str, Any], uuid.UUID], Awaitable[dict[str, Any]]]

START, END = "2006-01-01T00:00:00Z", "2011-01-01T00:00:00Z"  # 1259 of the fixture's 2148 days
MAX_TRIALS = 120


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"optimization_max_trials": MAX_TRIALS})


@pytest.fixture
async def goog(market: httpx.AsyncClient) -> Replayed:
    """A fresh instrument with the GOOG fixture replayed into it and stored; its bars in range."""
    return await replayed(market, START, END)


def body(instrument: str, **overrides: Any) -> dict[str, Any]:
    return {
        "strategy": "sma_cross",
        "params": {"short": False},
        "instrument_id": instrument,
        "timeframe": "1d",
        "start": START,
        "end": END,
        "space": {
            "fast": {"low": 5, "high": 30, "step": 5},
            "slow": {"low": 20, "high": 100, "step": 10},
        },
        "sampler": "grid",
        "trials": 54,
        "walk_forward": {"folds": 2, "mode": "rolling", "oos_fraction": 0.25},
        "seed": 7,
    } | overrides


def journal_states(
    settings: Settings, optimization_id: str, *, orphan: bool = False
) -> dict[str, int]:
    """Trials of the optimisation's studies by state, replayed from its journal as a new process
    would; with `orphan`, a trial of fold 2 is asked for and never told (a worker lost)."""
    with psycopg.connect(
        settings.database_url.get_secret_value(),
        autocommit=True,
        options=f"-c search_path={settings.database_schema}",
    ) as conn:
        journal = OptimizationJournal(conn, uuid.UUID(optimization_id))
        storage = JournalStorage(journal)
        states: dict[str, int] = {}
        for fold in (1, 2):
            name = f"optimization-{optimization_id}-fold-{fold}"
            study = optuna.load_study(study_name=name, storage=storage)
            if orphan and fold == 2:
                study.ask().suggest_int("fast", 5, 30, step=5)
            for trial in study.get_trials():
                states[trial.state.name] = states.get(trial.state.name, 0) + 1
        journal.flush()
    return states


async def test_an_optimisation_validates_walk_forward_and_resumes_after_a_lost_worker(
    client: httpx.AsyncClient,
    db: Database,
    goog: Replayed,
    settings: Settings,
    headers: Headers,
    settled: Settled,
) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    request = body(goog.instrument)
    response = await client.post("/api/v1/optimizations", json=request, headers=headers(user))
    assert response.status_code == 202, response.text
    submitted = response.json()
    optimization_id = submitted["optimization_id"]
    path = f"/api/v1/optimizations/{optimization_id}"
    assert response.headers["location"] == path
    assert (submitted["status"], submitted["trials_total"]) == ("QUEUED", 108)
    hidden = await client.get(path, headers=headers(other))
    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"

    done = await settled(path, user, timeout=90)
    assert (done["attempts"], done["trials_done"], done["error"]) == (1, 108, None)
    # The library's optimiser on the same bars gives the same folds.
    spec = OptimizationRequest.model_validate(request)
    expected = run_study(plan_of(spec, StrategyRegistry()), goog.bars)
    result = done["result"]
    assert len(result["folds"]) == 2
    for got, fold in zip(result["folds"], expected.folds, strict=True):
        assert fold.in_sample_stats is not None and fold.out_of_sample_stats is not None
        assert got["params"] == fold.params
        assert (got["trials"], got["infeasible"], got["failed"]) == (54, 4, 0)
        assert got["in_sample"]["bars"] == fold.in_sample.bars
        assert got["out_of_sample"]["start"] == fold.out_of_sample.start.isoformat().replace(
            "+00:00", "Z"
        )
        for side, stats in (
            ("in_sample_stats", fold.in_sample_stats),
            ("out_of_sample_stats", fold.out_of_sample_stats),
        ):
            assert got[side]["sharpe"] == stats["sharpe"]
            assert got[side]["total_return"] == stats["total_return"]
            assert got[side]["final_equity"] == stats["final_equity"]
        assert got["warning"] == fold.warning
    assert result["params"] == expected.params
    assert result["out_of_sample_sharpe"] == expected.out_of_sample_sharpe
    assert result["warning"] == expected.warning
    # The studies are Optuna journals in the service's own schema.
    assert await asyncio.to_thread(journal_states, settings, optimization_id) == {"COMPLETE": 108}

    # A worker that died in the middle of fold 2: a trial it asked for and never told, and the
    # row RUNNING with a stale heartbeat...
    states = await asyncio.to_thread(journal_states, settings, optimization_id, orphan=True)
    assert states == {"COMPLETE": 108, "RUNNING": 1}
    await db.pool.execute(
        "UPDATE optimizations SET status = 'RUNNING', result = NULL, finished_at = NULL, "
        "heartbeat_at = now() - interval '5 minutes' WHERE optimization_id = $1",
        uuid.UUID(optimization_id),
    )
    # ...claimed again: the told trials stand, the orphan is failed, nothing runs twice.
    again = await settled(path, user, timeout=90)
    assert again["attempts"] == 2
    assert again["result"] == result
    assert await asyncio.to_thread(journal_states, settings, optimization_id) == {
        "COMPLETE": 108,
        "FAIL": 1,
    }


async def test_bad_optimisations_are_problems_and_store_nothing(
    db: Database, goog: Replayed, refused: Refused
) -> None:
    user = uuid.uuid4()

    async def problem(payload: dict[str, Any]) -> dict[str, Any]:
        return await refused("/api/v1/optimizations", payload, user)

    unknown = await problem(body(goog.instrument, strategy="astrology"))
    assert unknown["title"] == "Unknown strategy"
    fixed = await problem(body(goog.instrument, params={"short": "maybe"}))
    assert fixed["title"] == "Invalid parameters"
    assert [e["loc"] for e in fixed["errors"]] == [["short"]]
    space = await problem(body(goog.instrument, space={"fats": {"low": 1, "high": 5}}))
    assert (space["title"], space["type"]) == (
        "Invalid search space",
        "/problems/invalid-search-space",
    )
    assert "unknown parameter(s) fats" in space["detail"]
    bounds = await problem(body(goog.instrument, space={"fast": {"low": 0, "high": 5}}))
    assert "leaves the schema's bounds" in bounds["detail"]
    stepless = await problem(
        body(
            goog.instrument,
            space={"fast": {"low": 5, "high": 9}, "slow": {"low": 20.0, "high": 30.5}},
        )
    )
    assert stepless["title"] == "Invalid search space"
    many = await problem(body(goog.instrument, sampler="tpe", trials=61))
    assert (many["title"], many["trials"], many["max_trials"]) == (
        "Too many trials",
        122,
        MAX_TRIALS,
    )
    short = await problem(body(goog.instrument, start="2010-12-01", end=END))
    assert short["title"] == "Windows too short"
    assert "each needs at least 20" in short["detail"]
    empty = await problem(body(goog.instrument, start="1990-01-01", end="1991-01-01"))
    assert empty["title"] == "Empty range"
    await problem(body(goog.instrument, user_id=str(uuid.uuid4())))  # no owner from the body
    await problem(body(goog.instrument, walk_forward={"folds": 0}))
    await problem(body(goog.instrument, space={"fast": {"low": 9, "high": 5}}))
    assert await db.pool.fetchval("SELECT count(*) FROM optimizations") == 0
