"""The AsyncAPI document is generated from the topic registry and the committed copy is current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trademesh_bus.asyncapi import asyncapi_document
from trademesh_events.topics import TOPICS

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json"


def test_every_topic_and_event_has_a_channel_and_a_schema() -> None:
    document = asyncapi_document()
    assert document["asyncapi"].startswith("3.")
    channels = document["channels"]
    schemas = document["components"]["schemas"]
    messages = document["components"]["messages"]
    expected = {(spec.name, cls.__name__) for spec in TOPICS for cls in spec.events}
    found = set()
    for channel in channels.values():
        for ref in channel["messages"].values():
            message = messages[ref["$ref"].rsplit("/", 1)[1]]
            schema_name = message["payload"]["$ref"].rsplit("/", 1)[1]
            found.add((channel["address"], schema_name))
    assert found == expected
    for spec in TOPICS:
        for cls in spec.events:
            schema = schemas[cls.__name__]
            assert schema["properties"]["type"]["const"] == cls.event_type()
            assert set(schema["required"]) >= {"type"} | {
                name for name, field in cls.model_fields.items() if field.is_required()
            }


def test_committed_document_is_current() -> None:
    assert COMMITTED.exists(), "docs/asyncapi.json is missing: run `make asyncapi`"
    committed = json.loads(COMMITTED.read_text())
    assert committed == asyncapi_document(), "docs/asyncapi.json is stale: run `make asyncapi`"
