"""Every amount in every published document is a plain decimal string: each service's OpenAPI
document, the gateway's published one (assembled from them), and the AsyncAPI document of the
events. A field is an amount by its name (cash, price, quantity, fee, PnL, ...) or by having
pydantic's own Decimal schema (a number or a string), which only the shared types in
`trademesh_events.money` replace (decision 0115)."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from trademesh_bus.asyncapi import asyncapi_document
from trademesh_keystore import new_master_key

from trademesh_gateway.app import create_app as gateway_app
from trademesh_gateway.config import Settings as GatewaySettings
from trademesh_gateway.openapi import describe

pytestmark = pytest.mark.unit

SERVICES = ("audit", "auth", "execution", "market_data", "risk", "strategy")
AMOUNT_NAME = re.compile(
    r"(^|_)(cash|equity|pnl|price|prices|quantity|qty|fee|fees|notional|capital|exposure|position"
    r"|volume|size|open|high|low|close|filled|realised|step|pending_buy|pending_sell|amount"
    r"|realised_today|final_equity)$"
)
NOT_AMOUNTS = {"fee_currency"}
NOT_AMOUNTS_AT = (
    ".StatsOut.exposure",  # a share of bars, a float like the other statistics
    # an optimisation's range of a strategy parameter (a period, a band width), as Optuna names it
    ".SearchRange.low",
    ".SearchRange.high",
    ".SearchRange.step",
)
PLAIN = ["0", "50000", "0.5", "5.53661919", "12345678901234567890.123456789012"]
EXPONENTS = ["5E+4", "5e4", "1E-9", "-5E+4", "1.5e2", "1e400"]


def _service_document(service: str) -> dict[str, Any]:
    app = importlib.import_module(f"trademesh_{service}.app")
    config = importlib.import_module(f"trademesh_{service}.config")
    keys = {"t1": new_master_key().get_secret_value()}
    settings = config.Settings(keystore_keys=SecretStr(json.dumps(keys)), keystore_current_key="t1")
    document: dict[str, Any] = app.create_app(settings).openapi()
    return document


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    services = {name: _service_document(name) for name in SERVICES}
    local = gateway_app(GatewaySettings()).openapi()
    upstream = {name.replace("_", "-"): doc for name, doc in services.items()}
    published = describe(local, upstream)  # type: ignore[arg-type]
    return {**services, "gateway": published, "asyncapi": asyncapi_document()}


def _properties(node: Any, where: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, name, schema) of every property of every object schema under `node`."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if isinstance(prop, dict):
                yield f"{where}.{name}", name, prop
        for key, value in node.items():
            yield from _properties(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _properties(value, f"{where}[{i}]")


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a schema, without null (an optional amount is still an amount)."""
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return [o for o in options if o.get("type") != "null"]


def _is_pydantic_decimal(schema: dict[str, Any]) -> bool:
    types = {b.get("type") for b in _branches(schema)}
    return {"number", "string"} <= types


def _is_plain_decimal_string(schema: dict[str, Any]) -> bool:
    branches = _branches(schema)
    if len(branches) != 1 or branches[0].get("type") != "string" or "pattern" not in branches[0]:
        return False
    pattern = re.compile(branches[0]["pattern"])
    return bool(pattern.search("1")) and not any(pattern.search(e) for e in EXPONENTS)


def _amounts(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, name, schema in _properties(document, ""):
        if name in NOT_AMOUNTS or where.endswith(NOT_AMOUNTS_AT):
            continue
        kinds = ("object", "array", "boolean")  # a flag or a container named like an amount
        is_object = any(b.get("type") in kinds or "$ref" in b for b in _branches(schema))
        if (AMOUNT_NAME.search(name) and not is_object) or _is_pydantic_decimal(schema):
            yield where, schema


@pytest.mark.parametrize("name", [*SERVICES, "gateway", "asyncapi"])
def test_every_amount_is_a_decimal_string_without_exponent(
    name: str, documents: dict[str, dict[str, Any]]
) -> None:
    amounts = list(_amounts(documents[name]))
    wrong = [
        f"{where}: {schema}" for where, schema in amounts if not _is_plain_decimal_string(schema)
    ]
    assert not wrong, "\n".join(wrong)
    # not vacuous: the documents that carry money have amounts, and they accept plain values
    if name in ("execution", "risk", "strategy", "gateway", "asyncapi"):
        assert len(amounts) >= 5, amounts
    for _, schema in amounts:
        pattern = re.compile(_branches(schema)[0]["pattern"])
        assert pattern.search("50000") and pattern.search("0.5"), schema


def test_the_walk_finds_a_pydantic_decimal_and_an_exponent_pattern() -> None:
    """The checks above would see a plain Decimal field, or a pattern letting exponents in."""
    bare = {"properties": {"weight": {"anyOf": [{"type": "number"}, {"type": "string"}]}}}
    assert [w for w, _ in _amounts(bare)] == [".weight"]
    assert not _is_plain_decimal_string({"type": "string", "pattern": r"^[0-9.eE+-]+$"})
    assert not _is_plain_decimal_string({"type": "string"})
    assert _is_plain_decimal_string(
        {"anyOf": [{"type": "string", "pattern": r"^-?[0-9]+$"}, {"type": "null"}]}
    )
