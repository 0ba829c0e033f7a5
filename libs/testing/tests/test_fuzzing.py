"""The fuzzing helper finds what it is for: a 5xx, an error that is not a problem, and a body
refused without the problem the input checks answer; and it puts the refused characters where
the cases carry strings."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from trademesh_http import create_http_app
from trademesh_testing.fuzzing import (
    IGNORE_RANDOM_WARNING,
    UNSUPPORTED_CHARACTER,
    Target,
    fuzz_app,
    with_refused_character,
)

pytestmark = pytest.mark.filterwarnings(IGNORE_RANDOM_WARNING)


class Note(BaseModel):
    text: str


class FakeCase:
    def __init__(self, body: Any, query: dict[str, Any], path: dict[str, Any]) -> None:
        self.body, self.query, self.path_parameters = body, query, path


@pytest.mark.unit
def test_a_refused_character_goes_into_one_string_of_the_case() -> None:
    places = []
    for pick in range(4):
        case = FakeCase({"a": "x", "n": 1, "b": ["y"]}, {"q": "z"}, {"id": "w"})
        with_refused_character(case, "\ud800", pick)
        places.append((case.body, case.query, case.path_parameters))
    assert places == [
        ({"a": "x\ud800", "n": 1, "b": ["y"]}, {"q": "z"}, {"id": "w"}),
        ({"a": "x", "n": 1, "b": ["y\ud800"]}, {"q": "z"}, {"id": "w"}),
        ({"a": "x", "n": 1, "b": ["y"]}, {"q": "z\x00"}, {"id": "w"}),  # a URL carries NUL
        ({"a": "x", "n": 1, "b": ["y"]}, {"q": "z"}, {"id": "w%00"}),  # already %-encoded
    ]


def _app(guarded: bool) -> FastAPI:
    app = create_http_app(service="fuzzed") if guarded else FastAPI()

    @app.post("/notes")
    async def note(body: Note) -> dict[str, int]:
        if "\x00" in body.text:
            raise RuntimeError("NUL reached the handler")  # what Postgres would do
        return {"length": len(body.text)}

    @app.get("/plain/{name}")
    async def plain(name: str) -> PlainTextResponse:
        return PlainTextResponse(f"no {name}", status_code=404)

    return app


@pytest.mark.integration  # served on a loopback port, fuzzed from a worker thread
async def test_an_unguarded_app_fails_the_fuzzing() -> None:
    run = await fuzz_app(_app(guarded=False), Target(), examples=20)
    report = run.report()
    assert any("POST /notes" in f and "Server error" in f for f in run.failures), report
    assert any("GET /plain/{name} -> 404 text/plain" in f for f in run.failures), report
    # ...and the bad bodies were not answered with the input checks' problems (a deep one is
    # FastAPI's 400, or no answer at all when the server dropped the connection of a 500).
    assert any("POST /notes with a deep array body -> " in f for f in run.failures), report
    assert any("POST /notes with a too large body -> 422" in f for f in run.failures), report


@pytest.mark.integration
async def test_a_guarded_app_passes_but_for_its_own_errors() -> None:
    run = await fuzz_app(_app(guarded=True), Target(), examples=20)
    # The guard refuses NUL before the handler, and the bodies as they should be...
    assert not any("POST /notes ->" in f or "with a" in f for f in run.failures), run.report()
    assert run.problems[UNSUPPORTED_CHARACTER] > 0, run.report()
    # ...but a route's own plain-text 404 is still not a problem.
    assert any("GET /plain/{name}" in f for f in run.failures), run.report()
