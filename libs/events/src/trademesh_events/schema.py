"""JSON Schemas of the events (pure: the CLI writes them to files)."""

from __future__ import annotations

from typing import Any

from trademesh_events.base import Event
from trademesh_events.topics import TOPICS, TopicSpec, _adapter


def json_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per event type, keyed by its CloudEvents type."""
    schemas: dict[str, dict[str, Any]] = {}
    for spec in TOPICS:
        for cls in spec.events:
            schemas[cls.event_type()] = cls.model_json_schema()
    return schemas


def topic_schema(spec: TopicSpec[Event]) -> dict[str, Any]:
    """The JSON Schema of everything `spec` carries (a discriminated union when several types)."""
    return _adapter(spec.events).json_schema()
