"""Property-based tests of an HTTP API against its own OpenAPI document (schemathesis), bad input
included: every operation, valid and invalid cases, cases with the caller's own ids, strings with
NUL and lone surrogates, and bodies nested too deep or too large. The checks say what may answer
(no 5xx, every error a problem, and any others the caller gives).

A service's test runs its app (lifespan started, in the test's event loop, where its connections
and consumers live), and `fuzz_app` serves it on a loopback port and fuzzes it from a worker
thread (schemathesis calls are synchronous):

    run = await fuzz_app(app, Target(headers=bearer(user, "admin"), ids={"bot_id": ...}))
    run.assert_clean(served=10)

The cases are derandomized: the same ones every run, so a failure is reproducible and CI time is
fixed (`examples` per operation).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from trademesh_http.inputs import MAX_BODY_BYTES

from trademesh_testing.http import served

PROBLEM_JSON = "application/problem+json"
UNSUPPORTED_CHARACTER = "/problems/unsupported-character"
#: What Postgres cannot store: NUL, and lone surrogates (asyncpg cannot encode them).
REFUSED_CHARACTERS = ("\x00", "\ud800", "\udfff")
#: A body nested deeper than any parser's recursion limit, as the attack that found the 500s.
DEEP = 60_000
#: Generated cases per operation by default (an operation with a body gets three bad bodies
#: more): the services' suites, about a hundred operations, take about 20 s in all.
EXAMPLES = 12
#: Hypothesis takes the global `random` state, which the services' own code (the Kafka client's
#: jitter) draws from in the event loop meanwhile, for a strategy's: mark each fuzzing test.
IGNORE_RANDOM_WARNING = "ignore:Do not use the `random` module inside strategies"
#: The marks of a service's fuzzing tests (`pytestmark = FUZZING`): they run the service on the
#: real engines, take a while, and hypothesis's warning about the shared `random` is expected.
FUZZING = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.filterwarnings(IGNORE_RANDOM_WARNING),
]


@dataclass
class Target:
    """Whom the cases are sent to, as whom, and with which of their ids."""

    base_url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    #: Path parameter values that name the caller's own resources: those cases reach the
    #: handlers rather than stop at a 404.
    ids: dict[str, str] = field(default_factory=dict)
    #: JSON body fields that name the caller's own resources (an `account_id`): set in the cases
    #: with the caller's ids whose body has them.
    body: dict[str, Any] = field(default_factory=dict)
    #: Operations (labels: "DELETE /api/v1/accounts/{account_id}") never sent the caller's ids:
    #: e.g. a delete that would leave the other cases nothing to reach.
    spare: frozenset[str] = frozenset()


@dataclass
class Run:
    """What the fuzzing of one document saw."""

    name: str
    operations: int = 0
    examples: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: dict[str, Counter[int]] = field(default_factory=dict)
    #: Operations that answered a 2xx at least once: a request got past every check on the way
    #: and a handler served it.
    served: set[str] = field(default_factory=set)
    #: The problems answered, by type, e.g. "/problems/unsupported-character": what stopped the
    #: cases.
    problems: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def record(self, label: str, status: int, headers: Any, body: Callable[[], Any]) -> None:
        self.examples += 1
        self.statuses[status] += 1
        self.by_operation.setdefault(label, Counter())[status] += 1
        if 200 <= status < 300:
            self.served.add(label)
        if _content_type(headers).startswith(PROBLEM_JSON):
            self.problems[str(_json(body).get("type"))] += 1

    def report(self) -> str:
        shown = "\n\n".join(self.failures[:15])
        return (
            f"{self.name}: {len(self.failures)} failing cases in {self.examples} examples of "
            f"{self.operations} operations (statuses {dict(self.statuses)}, problems "
            f"{dict(self.problems)}):\n\n{shown}"
        )

    def table(self) -> str:
        return "\n".join(f"  {op}: {dict(seen)}" for op, seen in sorted(self.by_operation.items()))

    def assert_clean(self, *, served: int, examples: int = EXAMPLES) -> None:
        """No case failed; every operation had its `examples`; at least `served` operations
        served some case (a 2xx: the cases got past the doors to the handlers); and the cases
        with a refused character met the input checks."""
        assert not self.failures, self.report()
        assert len(self.by_operation) == self.operations, self.table()
        assert all(sum(seen.values()) >= examples for seen in self.by_operation.values()), (
            self.table()
        )
        assert len(self.served) >= served, self.table()
        assert self.problems[UNSUPPORTED_CHARACTER] > 0, self.report()


# ---- the checks ---------------------------------------------------------------------------------


def _json(body: Callable[[], Any]) -> dict[str, Any]:
    """A response's JSON object, or {} (a broken problem is the checks' to find)."""
    try:
        document = body()
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _content_type(headers: Any) -> str:
    """The content type of schemathesis's headers (a list per name) or requests' (a string)."""
    value = headers.get("content-type", "")
    return ", ".join(value) if isinstance(value, list) else str(value)


@schemathesis.check
def errors_are_problems(ctx: Any, response: schemathesis.Response, case: Any) -> bool | None:
    """Every 4xx and 5xx answer is an RFC 9457 problem (application/problem+json)."""
    if response.status_code >= 400:
        content_type = _content_type(response.headers)
        assert content_type.startswith(PROBLEM_JSON), f"an error answered as {content_type!r}"
    return None


DEFAULT_CHECKS: tuple[Any, ...] = (not_a_server_error, errors_are_problems)


# ---- the cases ----------------------------------------------------------------------------------


def with_refused_character(case: Any, character: str, pick: int) -> Any:
    """`case` with `character` added to one of its strings (the `pick`-th, counted over the JSON
    body's strings, then the query's, then the path's). A path or query gets NUL whatever
    `character` is: a URL cannot carry a lone surrogate."""
    places: list[tuple[Any, Any, str]] = []  # (container, key, kind)
    if isinstance(case.body, dict | list):
        places.extend((c, k, "body") for c, k in _strings(case.body))
    for kind, values in (("query", case.query), ("path", case.path_parameters)):
        for key, value in (values or {}).items():
            if isinstance(value, str):
                places.append((values, key, kind))
    if not places:
        return case
    container, key, kind = places[pick % len(places)]
    if kind == "path":  # the generated path parameters are percent-encoded already
        container[key] = f"{container[key]}%00"
    elif kind == "query":
        container[key] = f"{container[key]}\x00"
    else:
        container[key] = f"{container[key]}{character}"
    return case


def _strings(document: Any) -> Iterator[tuple[Any, Any]]:
    items = document.items() if isinstance(document, dict) else enumerate(document)
    for key, value in list(items):
        if isinstance(value, str):
            yield document, key
        elif isinstance(value, dict | list):
            yield from _strings(value)


def _strategies(operation: Any, target: Target) -> Iterator[Any]:
    """Valid and invalid cases with random values; valid ones with a character Postgres refuses
    in one of their strings; and cases with the caller's own ids in the path and body: those
    reach the handlers rather than stop at a 404."""
    yield operation.as_strategy(GenerationMode.POSITIVE)
    yield operation.as_strategy(GenerationMode.NEGATIVE)
    yield st.builds(
        with_refused_character,
        operation.as_strategy(GenerationMode.POSITIVE),
        st.sampled_from(REFUSED_CHARACTERS),
        st.integers(min_value=0, max_value=64),
    )
    if operation.label in target.spare:
        return
    own = {p: target.ids[p] for p in re.findall(r"{(\w+)}", operation.path) if p in target.ids}
    if not own and not target.body:
        return
    for mode in (GenerationMode.POSITIVE, GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        owned = operation.as_strategy(mode, path_parameters=own or None)
        yield owned.map(lambda case: _naming(case, target.body))


def _naming(case: Any, values: dict[str, Any]) -> Any:
    if isinstance(case.body, dict):
        case.body.update({k: v for k, v in values.items() if k in case.body})
    return case


def _describe(label: str, response: schemathesis.Response, group: FailureGroup) -> str:
    titles = "; ".join(sorted({failure.title for failure in group.exceptions}))
    request = response.request
    body = (
        request.body.decode(errors="replace") if isinstance(request.body, bytes) else request.body
    )
    content_type = _content_type(response.headers)
    return (
        f"{label} -> {response.status_code} {content_type}: {titles}\n"
        f"  request: {request.method} {request.url!r} {str(body)[:300]!r}\n"
        f"  response: {response.text[:500]}"
    )


# ---- the runs -----------------------------------------------------------------------------------


def fuzz(
    name: str,
    document: dict[str, Any],
    target: Target,
    *,
    examples: int = EXAMPLES,
    checks: Sequence[Any] = DEFAULT_CHECKS,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Run:
    """Every operation of `document`: up to `examples` generated cases each, each response
    through `checks`, then the bad bodies (`_bad_bodies`). Failures are collected, not raised: no
    shrinking, and the report shows every operation that failed. Synchronous (run it in a
    worker thread when the app is served by the test's event loop)."""
    schema = schemathesis.openapi.from_dict(document)
    run = Run(name)
    with requests.Session() as session:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()  # an operation schemathesis cannot read: none would be fuzzed
            operation = result.ok()
            run.operations += 1
            _fuzz_operation(operation, run, session, target, examples, list(checks))
            _bad_bodies(operation, run, session, target, max_body_bytes)
    return run


def _fuzz_operation(
    operation: Any,
    run: Run,
    session: requests.Session,
    target: Target,
    examples: int,
    checks: list[Any],
) -> None:
    label = operation.label

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(list(_strategies(operation, target))))
    def one(case: Any) -> None:
        response = case.call(
            base_url=target.base_url, session=session, headers=target.headers, timeout=30
        )
        run.record(label, response.status_code, response.headers, response.json)
        try:
            case.validate_response(response, checks=checks, headers=target.headers)
        except FailureGroup as group:
            run.failures.append(_describe(label, response, group))

    one()


def _bad_bodies(
    operation: Any, run: Run, session: requests.Session, target: Target, max_body_bytes: int
) -> None:
    """An operation that takes a body, sent JSON nested `DEEP` deep (arrays, objects) and a body
    over `max_body_bytes`: a 422 and a 413 problem, whatever else the request holds."""
    if "requestBody" not in operation.definition.raw:
        return
    path = re.sub(r"{(\w+)}", lambda m: target.ids.get(m.group(1), "0"), operation.full_path)
    url = target.base_url.rstrip("/") + path
    cases = {
        "deep array": (b"[" * DEEP + b"]" * DEEP, 422, "/problems/too-deep"),
        "deep object": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, 422, "/problems/too-deep"),
        "too large": (b'{"a": "' + b" " * max_body_bytes + b'"}', 413, "/problems/too-large"),
    }
    headers = {**target.headers, "Content-Type": "application/json"}
    for name, (body, status, kind) in cases.items():
        try:
            response = session.request(
                operation.method.upper(), url, data=body, headers=headers, timeout=30
            )
        except requests.RequestException as exc:
            run.failures.append(f"{operation.label} with a {name} body -> {exc!r}")
            continue
        run.record(operation.label, response.status_code, response.headers, response.json)
        content_type = _content_type(response.headers)
        problem = _json(response.json) if content_type == PROBLEM_JSON else {}
        if (response.status_code, content_type, problem.get("type")) != (
            status,
            PROBLEM_JSON,
            kind,
        ):
            run.failures.append(
                f"{operation.label} with a {name} body -> {response.status_code} "
                f"{content_type}, not a {status} {kind} problem\n  response: {response.text[:300]}"
            )


async def fuzz_app(
    app: Any,
    target: Target,
    *,
    examples: int = EXAMPLES,
    checks: Sequence[Any] = DEFAULT_CHECKS,
    max_body_bytes: int = MAX_BODY_BYTES,
    skip: Sequence[str] = (),
) -> Run:
    """`app` (its lifespan already running) served on a loopback port and fuzzed (`fuzz`) from
    a worker thread against its own /openapi.json, less the paths in `skip` (a stream that never
    ends, say)."""
    async with served(app) as base_url:
        document = await asyncio.to_thread(_document, base_url)
        for path in skip:
            del document["paths"][path]
        return await asyncio.to_thread(
            fuzz,
            str(document.get("info", {}).get("title", "the document")),
            document,
            dataclasses.replace(target, base_url=base_url),
            examples=examples,
            checks=checks,
            max_body_bytes=max_body_bytes,
        )


def _document(base_url: str) -> dict[str, Any]:
    response = requests.get(f"{base_url}/openapi.json", timeout=30)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document
