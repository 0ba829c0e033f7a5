"""JSON Schemas: one per event type, structurally valid, and every sample conforms to its schema.

`jsonschema` is not installed in the workspace, so the schemas are checked structurally and with a
small validator for the keywords pydantic emits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from trademesh_events import TOPICS, TopicSpec, marketdata, orders
from trademesh_events.base import Event
from trademesh_events.schema import json_schemas, topic_schema

pytestmark = pytest.mark.unit

TOPIC_EVENTS = [(spec, cls) for spec in TOPICS for cls in spec.events]
ALL_EVENTS = sorted({cls for _, cls in TOPIC_EVENTS}, key=lambda c: c.__name__)
JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
KNOWN_KEYWORDS = {
    "$defs", "$ref", "additionalProperties", "anyOf", "oneOf", "allOf", "const", "default",
    "description", "discriminator", "enum", "exclusiveMinimum", "format", "items", "maxItems",
    "maxLength", "minimum", "minItems", "minLength", "pattern", "prefixItems", "properties",
    "required", "title", "type", "maximum", "exclusiveMaximum", "patternProperties",
    "maxProperties",
}  # fmt: skip


def _id(value: object) -> str:
    return value.name if isinstance(value, TopicSpec) else getattr(value, "__name__", str(value))


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/$defs/"), ref
    return root["$defs"][ref.removeprefix("#/$defs/")]


def _check_structure(node: Any, root: dict[str, Any]) -> None:
    """Assert `node` is a well-formed schema (for the draft 2020-12 keywords pydantic uses)."""
    assert isinstance(node, dict), node
    assert set(node) <= KNOWN_KEYWORDS, set(node) - KNOWN_KEYWORDS
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        assert set(types) <= JSON_TYPES, types
    if "$ref" in node:
        _check_structure(_resolve(root, node["$ref"]), root)
    if "properties" in node:
        assert isinstance(node["properties"], dict)
        for child in node["properties"].values():
            _check_structure(child, root)
    if "required" in node:
        assert isinstance(node["required"], list)
        assert len(node["required"]) == len(set(node["required"]))
        assert set(node["required"]) <= set(node.get("properties", {}))
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if key in node:
            assert isinstance(node[key], list) and node[key]
            for child in node[key]:
                _check_structure(child, root)
    if isinstance(node.get("items"), dict):
        _check_structure(node["items"], root)
    for pattern, child in node.get("patternProperties", {}).items():
        re.compile(pattern)
        _check_structure(child, root)
    if "pattern" in node:
        re.compile(node["pattern"])
    if "enum" in node:
        assert isinstance(node["enum"], list) and node["enum"]
    if "discriminator" in node:
        assert "oneOf" in node
        mapping = node["discriminator"]["mapping"]
        for ref in mapping.values():
            _resolve(root, ref)
    for name in ("$defs",):
        for child in node.get(name, {}).values():
            _check_structure(child, root)


def _validate(instance: Any, node: dict[str, Any], root: dict[str, Any]) -> bool:
    """A small JSON Schema validator for the keywords above (enough for pydantic's output)."""
    if "$ref" in node:
        return _validate(instance, _resolve(root, node["$ref"]), root)
    if "anyOf" in node and not any(_validate(instance, s, root) for s in node["anyOf"]):
        return False
    if "oneOf" in node and sum(_validate(instance, s, root) for s in node["oneOf"]) != 1:
        return False
    if "const" in node and instance != node["const"]:
        return False
    if "enum" in node and instance not in node["enum"]:
        return False
    kind = node.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind is not None and not checks[kind](instance):
        return False
    if isinstance(instance, str):
        if "pattern" in node and not re.search(node["pattern"], instance):
            return False
        if len(instance) < node.get("minLength", 0):
            return False
        if "maxLength" in node and len(instance) > node["maxLength"]:
            return False
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        if "exclusiveMinimum" in node and not instance > node["exclusiveMinimum"]:
            return False
        if "minimum" in node and not instance >= node["minimum"]:
            return False
    if isinstance(instance, dict):
        props = node.get("properties", {})
        if not set(node.get("required", [])) <= set(instance):
            return False
        if node.get("additionalProperties") is False and not set(instance) <= set(props):
            return False
        if "maxProperties" in node and len(instance) > node["maxProperties"]:
            return False
        for key, value in instance.items():
            if key in props and not _validate(value, props[key], root):
                return False
            for pattern, child in node.get("patternProperties", {}).items():
                if re.search(pattern, key) and not _validate(value, child, root):
                    return False
    if isinstance(instance, list) and isinstance(node.get("items"), dict):
        return all(_validate(v, node["items"], root) for v in instance)
    return True


def test_json_schemas_cover_every_event_type() -> None:
    schemas = json_schemas()
    assert set(schemas) == {cls.event_type() for cls in ALL_EVENTS}
    assert set(schemas) == {t for spec in TOPICS for t in spec.event_types}


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=_id)
def test_event_schema_is_well_formed(cls: type[Event]) -> None:
    schema = json_schemas()[cls.event_type()]
    json.dumps(schema)  # serialisable as is
    assert schema["type"] == "object"
    assert schema["title"] == cls.__name__
    assert schema["additionalProperties"] is False
    assert schema["properties"]["type"]["const"] == cls.event_type()
    _check_structure(schema, schema)
    required = set(schema["required"])
    # `type` has a default in Python but is required on the wire (the discriminator).
    assert required == {"type"} | {
        name for name, field in cls.model_fields.items() if field.is_required()
    }
    assert schema["required"][0] == "type"


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=_id)
def test_samples_conform_to_their_schema(
    cls: type[Event], make_sample: Callable[..., Event]
) -> None:
    schema = json_schemas()[cls.event_type()]
    doc = json.loads(make_sample(cls).model_dump_json())
    assert _validate(doc, schema, schema)
    # and the validator is not vacuous: an unknown field or a missing required one fails
    assert not _validate(doc | {"surprise": 1}, schema, schema)
    missing = {k: v for k, v in doc.items() if k != schema["required"][0]}
    assert not _validate(missing, schema, schema)


@pytest.mark.parametrize(
    ("cls", "field", "positive"),
    [
        (marketdata.Tick, "price", True),
        (marketdata.Tick, "size", True),
        (marketdata.Bar, "high", True),
        (marketdata.Bar, "volume", False),
        (orders.SubmitOrder, "quantity", True),
        (orders.OrderFilled, "fee", False),
        (orders.OrderFilled, "leaves_qty", False),
    ],
)
def test_decimal_fields_are_plain_decimal_strings(
    cls: type[Event], field: str, positive: bool
) -> None:
    prop = json_schemas()[cls.event_type()]["properties"][field]
    assert prop["type"] == "string"
    # the encoder writes plain strings, which the schema accepts; an exponent it refuses
    assert _validate("12345678.123456789", prop, {})
    assert not _validate("1.2E+7", prop, {})
    assert _validate("0", prop, {}) is not positive


def test_an_accounts_holdings_are_decimal_strings_by_currency() -> None:
    prop = json_schemas()[orders.AccountChanged.event_type()]["properties"]["holdings"]
    assert _validate({"BTC": "0.0015", "ETH": "2"}, prop, {}) and _validate(None, prop, {})
    assert not _validate({"BTC": "1.5E-3"}, prop, {})
    assert not _validate({"BTC": "-1"}, prop, {})


def test_optional_decimal_field_allows_null() -> None:
    prop = json_schemas()[orders.SubmitOrder.event_type()]["properties"]["limit_price"]
    assert {"type": "null"} in prop["anyOf"]
    assert _validate(None, prop, {}) and _validate("101.5", prop, {})


@pytest.mark.parametrize("spec", TOPICS, ids=_id)
def test_topic_schema(spec: TopicSpec, make_sample: Callable[..., Event]) -> None:
    schema = topic_schema(spec)
    json.dumps(schema)
    _check_structure(schema, schema)
    if len(spec.events) == 1:
        assert schema["title"] == spec.events[0].__name__
        assert schema["properties"]["type"]["const"] == spec.event_types[0]
    else:
        assert schema["discriminator"]["propertyName"] == "type"
        assert set(schema["discriminator"]["mapping"]) == set(spec.event_types)
        assert len(schema["oneOf"]) == len(spec.events)
    for cls in spec.events:
        doc = json.loads(spec.encode(make_sample(cls)))
        assert _validate(doc, schema, schema), cls.__name__
        assert not _validate(doc | {"type": "trademesh.nope"}, schema, schema)


def test_schemas_are_deterministic() -> None:
    assert json.dumps(json_schemas(), sort_keys=True) == json.dumps(json_schemas(), sort_keys=True)
